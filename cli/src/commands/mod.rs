//! What each command does: one module per concern, each calling the library and building an
//! [`Output`]; the shared steps (the home, the passphrase, connecting, parsing ids) are here.
//!
//! - [`account`] — `init`, `whoami`, `register`, `keys fingerprint`, `keys trust`.
//! - [`recover`] — `recover` (a customer's account from its recovery code), `org recertify`.
//! - [`passphrase`] — `passphrase change`.
//! - [`org`] — `org create`, `org add-agent`, `org show`.
//! - [`conversation`] — `open`, `send`, `conversations`, `history`, `chat`, `transfer`, `erase`.
//! - [`escrow`] — `trustee serve`, `consent grant|revoke|list`.
//! - [`dispute`] — `dispute open|list|show|approve|reject`.
//! - [`transcript`] — `transcript unlock|show|export`.
//! - [`verify`] — `transcript verify`, offline, against anchors.
//! - [`audit`] — `audit`.
//! - [`status`] — `status` (agent: open, waiting, resolved).
//! - [`block`] — `block`, `unblock`, `blocks` (agents and the master act on spam).
//! - [`token`] — `org web-key`, `token issue` (open tokens), and reading `open --token`.
//! - [`attachment`] — `send --attach`, `attachment save`.

mod account;
mod attachment;
mod audit;
mod block;
mod conv_ref;
mod conversation;
mod dispute;
mod escrow;
mod org;
mod passphrase;
mod recover;
mod recovery_code;
mod status;
mod token;
mod transcript;
mod transcript_render;
mod verify;

pub(crate) use attachment::media_type;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use sealdesk_client::{Account, Client, ClientError, TlsOptions};
use sealdesk_protocol::ids::{EpochRange, TokenId};

use crate::args::{Cli, Cmd, KeysCmd, TrusteeCmd};
use crate::print::Output;

/// The relay a command talks to: its URL, and what to trust of its TLS certificate.
struct Relay {
    /// The first of [`Relay::urls`].
    url: String,
    /// Every URL `--relay` names (comma-separated: the nodes of one relay cluster), in order;
    /// a long-running command moves on to the next when its connection drops.
    urls: Vec<String>,
    tls: TlsOptions,
}

/// Runs the command `cli` names. `Ok(None)` when the command printed as it went (`chat`,
/// `demo`, `trustee serve`); otherwise what to print.
///
/// # Errors
/// Whatever stopped the command, worded for the user; [`crate::error::CannotCheck`] when
/// `transcript verify` could not check at all.
pub async fn run(cli: Cli) -> Result<Option<Output>> {
    let home = home_dir(cli.home.as_deref())?;
    let urls: Vec<String> = cli
        .relay
        .iter()
        .map(|u| u.trim())
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    let relay = Relay {
        url: urls.first().cloned().unwrap_or_default(),
        urls,
        tls: cli
            .ca_file
            .clone()
            .map_or_else(TlsOptions::system, TlsOptions::with_ca_file),
    };
    Ok(Some(match cli.cmd {
        Cmd::Init { name, role } => account::init(&home, &name, role.into())?,
        Cmd::Whoami => account::whoami(&home)?,
        Cmd::Recover { name, code } => recover::recover(&home, &relay, &name, code).await?,
        Cmd::RecoveryCode => recovery_code::recovery_code(&home, &relay).await?,
        Cmd::Passphrase(crate::args::PassphraseCmd::Change) => passphrase::change(&home)?,
        Cmd::Register => account::register(&home, &relay).await?,
        Cmd::Org(cmd) => org::org(&home, &relay, cmd).await?,
        Cmd::Open {
            org,
            org_fingerprint,
            token,
        } => {
            let token = token.as_deref().map(token::read).transpose()?;
            conversation::open(&home, &relay, &org, org_fingerprint.as_deref(), token).await?
        }
        Cmd::Token(cmd) => token::token(cmd)?,
        Cmd::Send {
            conversation,
            attach: None,
            text,
        } => conversation::send(&home, &relay, &conversation, &text.unwrap_or_default()).await?,
        Cmd::Send {
            conversation,
            attach: Some(file),
            text,
        } => {
            attachment::send(
                &home,
                &relay,
                &conversation,
                &file,
                &text.unwrap_or_default(),
                !cli.json,
            )
            .await?
        }
        Cmd::Attachment(cmd) => attachment::attachment(&home, &relay, cmd).await?,
        Cmd::Conversations => conversation::conversations(&home, &relay).await?,
        Cmd::History {
            conversation,
            export,
            force,
        } => {
            let export = export.as_deref().map(|p| (p, force));
            conversation::history(&home, &relay, &conversation, export).await?
        }
        Cmd::Chat {
            conversation,
            plain,
        } => {
            let display = if cli.json {
                crate::chat::Display::Json
            } else if plain {
                crate::chat::Display::Text
            } else {
                crate::chat::Display::for_terminal()
            };
            conversation::chat(&home, &relay, conversation.as_deref(), display).await?;
            return Ok(None);
        }
        Cmd::Transfer { conversation, to } => {
            conversation::transfer(&home, &relay, &conversation, &to).await?
        }
        Cmd::Keys(KeysCmd::Fingerprint { name }) => {
            account::fingerprint(&home, &relay, &name).await?
        }
        Cmd::Keys(KeysCmd::Trust { name }) => account::trust(&home, &relay, &name).await?,
        Cmd::Trustee(TrusteeCmd::Serve { once }) => {
            return escrow::trustee(&home, &relay, once, cli.json).await;
        }
        Cmd::Consent(cmd) => escrow::consent(&home, &relay, cmd).await?,
        Cmd::Dispute(cmd) => dispute::dispute(&home, &relay, cmd).await?,
        Cmd::Transcript(cmd) => {
            transcript::transcript(&home, cli.home.is_some(), &relay, cmd).await?
        }
        Cmd::Audit {
            conversation,
            verify,
        } => audit::audit(&home, &relay, conversation.as_deref(), verify).await?,
        Cmd::Erase { conversation } => conversation::erase(&home, &relay, &conversation).await?,
        Cmd::Status {
            conversation,
            status,
        } => status::set(&home, &relay, &conversation, &status).await?,
        Cmd::Block {
            conversation,
            reason,
        } => block::block(&home, &relay, &conversation, &reason).await?,
        Cmd::Unblock { customer, org } => {
            block::unblock(&home, &relay, org.as_deref(), &customer).await?
        }
        Cmd::Blocks { org } => block::blocks(&home, &relay, org.as_deref()).await?,
        Cmd::Demo { web } => {
            let mut stdout = std::io::stdout();
            match web {
                Some(dir) => crate::demo::run_web(&mut stdout, &dir).await?,
                None => crate::demo::run_in(&mut stdout, cli.home.as_deref()).await?,
            }
            return Ok(None);
        }
    }))
}

/// `--home`, else `~/.sealdesk`.
fn home_dir(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(h) = given {
        return Ok(h.to_path_buf());
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| anyhow!("no --home given and $HOME is not set; pass --home DIR"))?;
    Ok(PathBuf::from(home).join(".sealdesk"))
}

/// The shortest passphrase a new vault accepts, in characters.
pub const MIN_PASSPHRASE_CHARS: usize = 10;

/// How many times a terminal user is asked again after a mismatch or a wrong passphrase.
const PROMPT_TRIES: usize = 3;

/// Whether passphrases are asked for at a terminal (no `SEALDESK_PASSPHRASE`).
fn prompting() -> bool {
    std::env::var_os("SEALDESK_PASSPHRASE").is_none() && std::io::stdin().is_terminal()
}

/// The passphrase: `SEALDESK_PASSPHRASE`, else a prompt without echo. A new one (`confirm`)
/// is asked twice and must be at least [`MIN_PASSPHRASE_CHARS`] long; at a terminal a short
/// or mismatched one is asked for again.
fn passphrase(confirm: bool) -> Result<String> {
    passphrase_with(confirm, "Passphrase: ")
}

/// [`passphrase`] with its prompt.
fn passphrase_with(confirm: bool, prompt: &str) -> Result<String> {
    let check = |p: &str| -> Result<()> {
        if confirm && p.chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(crate::error::CliError::WeakPassphrase {
                min: MIN_PASSPHRASE_CHARS,
            }
            .into());
        }
        Ok(())
    };
    if let Ok(p) = std::env::var("SEALDESK_PASSPHRASE") {
        check(&p)?;
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: set SEALDESK_PASSPHRASE or run in a terminal to be asked");
    }
    let mut tries = 0;
    loop {
        tries += 1;
        let p = rpassword::prompt_password(prompt).context("could not read the passphrase")?;
        if !confirm {
            return Ok(p);
        }
        let problem = match check(&p) {
            Err(e) => Some(e),
            Ok(()) => {
                let again = rpassword::prompt_password("Repeat passphrase: ")
                    .context("could not read the passphrase")?;
                (again != p).then(|| anyhow!("the two passphrases differ"))
            }
        };
        match problem {
            None => return Ok(p),
            Some(e) if tries >= PROMPT_TRIES => return Err(e),
            Some(e) => eprintln!("{e:#}; try again"),
        }
    }
}

/// Opens the account in `home` with the passphrase; at a terminal, a wrong passphrase is asked
/// for again.
fn open_account(home: &Path) -> Result<Account> {
    let mut tries = 0;
    loop {
        tries += 1;
        let pass = passphrase(false)?;
        match Account::open(home, &pass) {
            Err(ClientError::Vault(sealdesk_client::vault::VaultError::WrongPassphrase {
                ..
            })) if prompting() && tries < PROMPT_TRIES => {
                eprintln!("wrong passphrase; try again");
            }
            other => return Ok(other?),
        }
    }
}

/// Opens the account and connects it to the relay; refuses an unregistered account unless
/// `allow_unregistered`.
async fn connect(home: &Path, relay: &Relay, allow_unregistered: bool) -> Result<Client> {
    let account = open_account(home)?;
    let mut client = Client::connect_with(account, &relay.url, &relay.tls).await?;
    if !allow_unregistered && !client.registered() {
        return Err(ClientError::NotRegistered.into());
    }
    client.set_file_cache_limit(file_cache_limit()?);
    Ok(client)
}

/// The environment variable that bounds the vault's cache of verified files, in MiB (0 keeps
/// none); the library's default when unset.
pub const FILE_CACHE_ENV: &str = "SEALDESK_FILE_CACHE_MB";

/// The file cache's bound in bytes: [`FILE_CACHE_ENV`], else the library's default.
fn file_cache_limit() -> Result<u64> {
    match std::env::var(FILE_CACHE_ENV) {
        Err(_) => Ok(sealdesk_client::file_cache::FILE_CACHE_DEFAULT),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .map(|mib| mib.saturating_mul(1024 * 1024))
            .with_context(|| format!("{FILE_CACHE_ENV}={v:?} is not a number of MiB")),
    }
}

/// A `--conversation` argument from the command line, checked for its form; resolve it with
/// [`conv_ref::ConvRef::resolve`] once the account is open.
fn conv_id(s: &str) -> Result<conv_ref::ConvRef> {
    Ok(conv_ref::ConvRef::parse(s)?)
}

/// `all` (`None`) or an epoch range `A-B` (or one epoch `A`).
fn parse_epochs(s: &str) -> Result<Option<EpochRange>> {
    if s == "all" {
        return Ok(None);
    }
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u32 = a
        .trim()
        .parse()
        .with_context(|| format!("bad epoch range {s:?}: use all or A-B"))?;
    let b: u32 = b
        .trim()
        .parse()
        .with_context(|| format!("bad epoch range {s:?}: use all or A-B"))?;
    Ok(Some(EpochRange::new(a, b)?))
}

/// A duration such as `7d`, `12h`, `30m` or `90s` (or plain seconds), in seconds.
fn parse_duration(s: &str) -> Result<u64> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("bad duration {s:?}: use e.g. 7d, 12h, 30m"))?;
    let mult = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" | "" => 1,
        _ => bail!("bad duration {s:?}: use e.g. 7d, 12h, 30m"),
    };
    Ok(n.saturating_mul(mult))
}

/// A consent or ticket id from the command line.
fn token_id(s: &str) -> Result<TokenId> {
    TokenId::parse(s).map_err(|_| anyhow!("{s:?} is not an id (32 hex digits)"))
}

/// Writes `bytes` to `path`, which must not exist unless `force`: an export never replaces a
/// file by surprise.
///
/// # Errors
/// [`CliError::FileExists`](crate::error::CliError::FileExists), or the write's error.
pub(super) fn write_output(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut f = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(crate::error::CliError::FileExists {
                path: path.to_path_buf(),
            }
            .into());
        }
        Err(e) => {
            return Err(
                anyhow::Error::new(e).context(format!("could not create {}", path.display()))
            );
        }
    };
    f.write_all(bytes)
        .with_context(|| format!("could not write {}", path.display()))
}
