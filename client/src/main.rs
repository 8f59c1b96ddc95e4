//! `sealdesk`: the command-line client. It parses arguments, calls the library and prints; the
//! protocol, the state and the checks all live in the library (`sealdesk_client`).

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};
use sealdesk_client::escrow::{Transcript, TrusteeOutcome, encode_consent};
use sealdesk_client::transcript::{self as export, Anchors, ExportFile, verify_export};
use sealdesk_client::{
    Account, Client, ClientError, TlsOptions,
    account::LogEntry,
    chat,
    client::{HistoryLine, OrgSpec},
    vault::{INSECURE_FAST_KDF_ENV, KdfParams},
};
use sealdesk_protocol::{
    card::Role,
    ids::{ConversationId, EpochRange, TokenId},
    release::{Scope, Verdict},
    wire::TicketState,
};
use serde_json::json;

/// The relay URL used when neither `--relay` nor `SEALDESK_RELAY` is given.
const DEFAULT_RELAY: &str = "ws://127.0.0.1:7800/v1/ws";

/// End-to-end encrypted customer support with consent-gated key escrow.
#[derive(Parser, Debug)]
#[command(name = "sealdesk", version, about, long_about = None)]
struct Cli {
    /// The account's home directory (encrypted state). Default: ~/.sealdesk
    #[arg(long, env = "SEALDESK_HOME", global = true)]
    home: Option<PathBuf>,
    /// The relay's WebSocket URL: ws://HOST:PORT/v1/ws, or wss://HOST:PORT/v1/ws for a relay
    /// serving TLS.
    #[arg(long, env = "SEALDESK_RELAY", default_value = DEFAULT_RELAY, global = true)]
    relay: String,
    /// PEM file of CA certificates to trust for a wss:// relay besides the system's roots: a
    /// private CA, or the relay's self-signed certificate.
    #[arg(long, value_name = "PEM", env = "SEALDESK_CA_FILE", global = true)]
    ca_file: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create an account: fresh identity keys in a new encrypted home. The passphrase comes
    /// from SEALDESK_PASSPHRASE or a prompt. SEALDESK_INSECURE_FAST_KDF=1 makes the passphrase
    /// hashing cheap: for test suites only, never for a real account.
    Init {
        /// The account name (unique on the relay): letters, digits, . _ -
        #[arg(long)]
        name: String,
        /// What the account is for.
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Register this account's card on the relay.
    Register,
    /// Show this account: name, role, fingerprint.
    Whoami,
    /// Org management (master) and inspection.
    #[command(subcommand)]
    Org(OrgCmd),
    /// Customer: open a conversation with an org; prints the policy and the conversation id.
    Open {
        /// The org.
        #[arg(long)]
        org: String,
        /// The org master's fingerprint, obtained out of band (otherwise trust on first use).
        #[arg(long)]
        org_fingerprint: Option<String>,
    },
    /// Send a message.
    Send {
        /// The conversation id.
        #[arg(long)]
        conversation: String,
        /// The text.
        text: String,
    },
    /// List conversations (after catching up with the relay).
    Conversations,
    /// Show a conversation's decrypted history.
    History {
        /// The conversation id.
        #[arg(long)]
        conversation: String,
        /// Also write the history as JSON to this file (your own plaintext copy).
        #[arg(long)]
        export: Option<PathBuf>,
    },
    /// Interactive chat (line-based; shows live messages as they arrive).
    Chat {
        /// Start in this conversation.
        #[arg(long)]
        conversation: Option<String>,
    },
    /// Agent: hand a conversation to another agent (opens a new epoch).
    Transfer {
        /// The conversation id.
        #[arg(long)]
        conversation: String,
        /// The agent to hand it to.
        #[arg(long)]
        to: String,
    },
    /// Fingerprints and key changes.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Run the whole story in one process with a throwaway relay and accounts.
    Demo,
    /// Trustee: answer release requests.
    #[command(subcommand)]
    Trustee(TrusteeCmd),
    /// Customer: consent to the business opening a conversation.
    #[command(subcommand)]
    Consent(ConsentCmd),
    /// Disputes: the master opens tickets, arbiters approve or reject them.
    #[command(subcommand)]
    Dispute(DisputeCmd),
    /// Master: unlock, show, export released transcripts; anyone: verify an export offline.
    #[command(subcommand)]
    Transcript(TranscriptCmd),
    /// The audit log entries that concern you, checked against the tree head pinned last time.
    Audit {
        /// Only this conversation.
        #[arg(long)]
        conversation: Option<String>,
        /// Also prove each entry's inclusion in the log.
        #[arg(long)]
        verify: bool,
    },
    /// Customer: ask the relay to erase a conversation (refused while a dispute is open).
    Erase {
        /// The conversation id.
        #[arg(long)]
        conversation: String,
    },
}

#[derive(Subcommand, Debug)]
enum TrusteeCmd {
    /// Process release requests: pending ones, then new ones as they arrive, until Ctrl-C.
    Serve {
        /// Process what is pending and exit.
        #[arg(long)]
        once: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ConsentCmd {
    /// Grant a single-use consent; prints its id and the token to give the business.
    Grant {
        /// The conversation id.
        #[arg(long)]
        conversation: String,
        /// `all` or `A-B` (epoch numbers).
        #[arg(long, default_value = "all")]
        epochs: String,
        /// `full` or `redacted` (personal data masked in any export).
        #[arg(long, default_value = "full")]
        scope: String,
        /// How long it stays valid: e.g. 7d, 12h, 30m.
        #[arg(long, default_value = "7d")]
        expires: String,
        /// Why, in your words.
        #[arg(long, default_value = "support quality review")]
        purpose: String,
        /// Also write the token to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Revoke an unused consent (logged in the audit log).
    Revoke {
        /// The consent id.
        #[arg(long)]
        consent: String,
    },
    /// List the consents you granted.
    List,
}

#[derive(Subcommand, Debug)]
enum DisputeCmd {
    /// Master: open a dispute ticket; prints its id.
    Open {
        /// The conversation id.
        #[arg(long)]
        conversation: String,
        /// Why.
        #[arg(long)]
        reason: String,
        /// `all` or `A-B`.
        #[arg(long, default_value = "all")]
        epochs: String,
    },
    /// Arbiter or master: list tickets and decisions.
    List,
    /// Show a ticket in readable form.
    Show {
        /// The ticket id.
        #[arg(long)]
        ticket: String,
    },
    /// Arbiter: approve a ticket.
    Approve {
        /// The ticket id.
        #[arg(long)]
        ticket: String,
    },
    /// Arbiter: reject a ticket.
    Reject {
        /// The ticket id.
        #[arg(long)]
        ticket: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand, Debug)]
enum TranscriptCmd {
    /// Master: request a release and wait for the trustees.
    Unlock {
        /// The conversation id.
        #[arg(long)]
        conversation: String,
        /// The consent id (shared through the relay by `sealdesk consent grant`), or the token itself / a file holding it.
        #[arg(long)]
        consent: Option<String>,
        /// An approved dispute ticket id.
        #[arg(long)]
        ticket: Option<String>,
        /// Seconds to wait for trustees.
        #[arg(long, default_value_t = 60)]
        wait: u64,
    },
    /// Master: show an unlocked transcript.
    Show {
        /// The conversation id.
        #[arg(long)]
        conversation: String,
    },
    /// Master: export an unlocked transcript.
    Export {
        /// The conversation id.
        #[arg(long)]
        conversation: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// json (verifiable), text or html.
        #[arg(long, default_value = "json")]
        format: String,
        /// Mask e-mail addresses, phone, card numbers and IBANs.
        #[arg(long)]
        redact: bool,
    },
    /// Check an exported transcript offline (no relay needed), against keys you trust: the
    /// org's master fingerprint and the relay's log key, given here or pinned in --home.
    ///
    /// Exit status: 0 the transcript verifies (with --no-anchor: everything but the missing
    /// anchors checks out); 1 it is refused, with named reasons (also a file of another format
    /// or one that does not decode); 2 nothing could be checked (the file cannot be read, a
    /// flag or the pins of --home are malformed).
    Verify {
        /// The exported JSON file.
        file: PathBuf,
        /// The org master's fingerprint, as the business publishes it.
        #[arg(long)]
        org_fingerprint: Option<String>,
        /// The relay's audit-log key (64 hex digits), as the relay operator publishes it
        /// (the relay logs it at start). Repeat for several relays.
        #[arg(long)]
        log_key: Vec<String>,
        /// Check without a trusted key: the verdict says nothing was verified against one, and
        /// the exit status is 0 if everything else checks out.
        #[arg(long)]
        no_anchor: bool,
    },
}

#[derive(Subcommand, Debug)]
enum OrgCmd {
    /// Master: create an org (or publish a new version of its policy).
    Create {
        /// The org name.
        #[arg(long)]
        name: String,
        /// Trustee account names (repeat the flag), in share order; `NAME=FINGERPRINT` checks the
        /// card against the fingerprint the trustee read from `sealdesk whoami`.
        #[arg(long = "trustee", required = true, num_args = 1..)]
        trustees: Vec<String>,
        /// How many trustees must agree to release.
        #[arg(long)]
        trustee_threshold: u8,
        /// Arbiter account names (repeat the flag); `NAME=FINGERPRINT` checks the card as for
        /// trustees.
        #[arg(long = "arbiter", num_args = 1..)]
        arbiters: Vec<String>,
        /// How many arbiters must approve a dispute.
        #[arg(long)]
        arbiter_threshold: u8,
        /// Delete conversations this many days after they end (default 365).
        #[arg(long)]
        retention_days: Option<u64>,
        /// Start a new epoch after this many messages (default 1000).
        #[arg(long)]
        rotate_messages: Option<u32>,
    },
    /// Master: certify an agent.
    AddAgent {
        /// The agent's account name.
        name: String,
        /// The org (needed only if this master runs several).
        #[arg(long)]
        org: Option<String>,
        /// The agent's fingerprint as the agent reads it from `sealdesk whoami`; without it the
        /// relay's answer is trusted on first use and the fingerprint is printed to compare.
        #[arg(long)]
        fingerprint: Option<String>,
    },
    /// Show an org's policy, parties and master fingerprint.
    Show {
        /// The org.
        org: String,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCmd {
    /// Show the fingerprint of an account (yours, pinned, or fetched from the relay).
    Fingerprint {
        /// The account name.
        name: String,
    },
    /// Accept a changed key of NAME after comparing fingerprints out of band.
    Trust {
        /// The account name.
        name: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RoleArg {
    Customer,
    Agent,
    Master,
    Trustee,
    Arbiter,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Customer => Role::Customer,
            RoleArg::Agent => Role::Agent,
            RoleArg::Master => Role::Master,
            RoleArg::Trustee => Role::Trustee,
            RoleArg::Arbiter => Role::Arbiter,
        }
    }
}

/// The relay a command talks to: its URL, and what to trust of its TLS certificate.
struct Relay {
    url: String,
    tls: TlsOptions,
}

/// What a command prints: text for people, JSON for scripts.
struct Output {
    text: String,
    json: serde_json::Value,
    /// Print the output as usual, then exit with a failure status (a negative verdict).
    failed: bool,
}

impl Output {
    fn new(text: impl Into<String>, json: serde_json::Value) -> Self {
        Self {
            text: text.into(),
            json,
            failed: false,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(Some(out)) => {
            if json {
                println!("{}", out.json);
            } else if !out.text.is_empty() {
                println!("{}", out.text);
            }
            if out.failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                println!("{}", json!({"ok": false, "error": format!("{e:#}")}));
            }
            eprintln!("error: {e:#}");
            ExitCode::from(error_status(&e))
        }
    }
}

async fn run(cli: Cli) -> Result<Option<Output>> {
    let home = home_dir(cli.home.as_deref())?;
    let relay = Relay {
        url: cli.relay.clone(),
        tls: cli
            .ca_file
            .clone()
            .map_or_else(TlsOptions::system, TlsOptions::with_ca_file),
    };
    Ok(Some(match cli.cmd {
        Cmd::Init { name, role } => init(&home, &name, role.into())?,
        Cmd::Whoami => whoami(&home)?,
        Cmd::Register => {
            let mut c = connect(&home, &relay, true).await?;
            c.register().await?;
            let out = Output::new(
                format!("registered {} on {}", c.account().name(), relay.url),
                json!({"ok": true, "name": c.account().name(), "relay": relay.url}),
            );
            c.close().await;
            out
        }
        Cmd::Org(cmd) => org(&home, &relay, cmd).await?,
        Cmd::Open {
            org,
            org_fingerprint,
        } => {
            let mut c = connect(&home, &relay, false).await?;
            let o = c
                .open_conversation(&org, org_fingerprint.as_deref())
                .await?;
            let mut text = String::new();
            for w in &o.warnings {
                text.push_str(&format!("warning: {w}\n"));
            }
            text.push_str(&format!(
                "{}\n\nOpened conversation {} with {} (agent {}, fingerprint {}).\n\
                 Send with: sealdesk send --conversation {} \"hello\"",
                o.summary, o.conversation, o.org, o.agent, o.agent_fingerprint, o.conversation
            ));
            let out = Output::new(
                text,
                json!({
                    "ok": true, "conversation": o.conversation.to_string(), "org": o.org,
                    "agent": o.agent, "agent_fingerprint": o.agent_fingerprint,
                    "org_fingerprint": o.org_fingerprint, "summary": o.summary,
                    "warnings": o.warnings,
                }),
            );
            c.close().await;
            out
        }
        Cmd::Send { conversation, text } => {
            let id = conv_id(&conversation)?;
            let mut c = connect(&home, &relay, false).await?;
            c.sync_all().await?;
            let seq = c.send_text(&id, &text).await?;
            c.close().await;
            Output::new(
                format!("sent (#{seq})"),
                json!({"ok": true, "conversation": id.to_string(), "seq": seq}),
            )
        }
        Cmd::Conversations => conversations(&home, &relay).await?,
        Cmd::History {
            conversation,
            export,
        } => history(&home, &relay, &conversation, export.as_deref()).await?,
        Cmd::Chat { conversation } => {
            let id = conversation.as_deref().map(conv_id).transpose()?;
            let mut c = connect(&home, &relay, false).await?;
            let stdin = tokio::io::BufReader::new(tokio::io::stdin());
            let mut stdout = std::io::stdout();
            chat::run(&mut c, stdin, &mut stdout, id).await?;
            c.close().await;
            return Ok(None);
        }
        Cmd::Transfer { conversation, to } => {
            let id = conv_id(&conversation)?;
            let mut c = connect(&home, &relay, false).await?;
            c.sync_all().await?;
            let epoch = c.transfer(&id, &to).await?;
            c.close().await;
            Output::new(
                format!(
                    "transferred {id} to {to}: epoch {epoch} is sealed to the customer and {to}"
                ),
                json!({"ok": true, "conversation": id.to_string(), "to": to, "epoch": epoch}),
            )
        }
        Cmd::Keys(KeysCmd::Fingerprint { name }) => fingerprint(&home, &relay, &name).await?,
        Cmd::Keys(KeysCmd::Trust { name }) => {
            let mut c = connect(&home, &relay, false).await?;
            let card = c.trust(&name).await?;
            let fp = card.clone().verify()?.fingerprint().to_string();
            c.close().await;
            Output::new(
                format!("now trusting the key of {name} (fingerprint {fp}); sending is unblocked"),
                json!({"ok": true, "name": name, "fingerprint": fp}),
            )
        }
        Cmd::Trustee(TrusteeCmd::Serve { once }) => {
            return trustee(&home, &relay, once, cli.json).await;
        }
        Cmd::Consent(cmd) => consent(&home, &relay, cmd).await?,
        Cmd::Dispute(cmd) => dispute(&home, &relay, cmd).await?,
        Cmd::Transcript(cmd) => transcript(&home, cli.home.is_some(), &relay, cmd).await?,
        Cmd::Audit {
            conversation,
            verify,
        } => {
            let id = conversation.as_deref().map(conv_id).transpose()?;
            let mut c = connect(&home, &relay, false).await?;
            c.sync_all().await?;
            let r = c.audit(id, verify).await?;
            c.close().await;
            let mut text = format!(
                "audit log: {} entries, signed by the relay's pinned log key; {}\n",
                r.size,
                match r.consistent_with_pinned {
                    Some(true) => "consistent with the tree head you saw last time",
                    _ => "tree head pinned now (first check)",
                }
            );
            for (org, n) in &r.witnessed {
                text.push_str(&format!(
                    "tree head witnessed by {n} trustee(s) of {org} (fresh cosignatures)\n"
                ));
            }
            text.push_str(&audit_text(&r));
            if !r.verified() {
                bail!(
                    "{text}the audit log failed verification: entries above are not genuine, \
                     not proven, or contradict each other"
                );
            }
            Output::new(text.trim_end().to_owned(), serde_json::to_value(&r)?)
        }
        Cmd::Erase { conversation } => {
            let id = conv_id(&conversation)?;
            let mut c = connect(&home, &relay, false).await?;
            c.erase(&id).await?;
            c.close().await;
            Output::new(
                format!("the relay erased conversation {id}; your local copy is kept"),
                json!({"ok": true, "conversation": id.to_string()}),
            )
        }
        Cmd::Demo => {
            let mut stdout = std::io::stdout();
            sealdesk_client::demo::run(&mut stdout).await?;
            return Ok(None);
        }
    }))
}

fn home_dir(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(h) = given {
        return Ok(h.to_path_buf());
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| anyhow!("no --home given and $HOME is not set; pass --home DIR"))?;
    Ok(PathBuf::from(home).join(".sealdesk"))
}

fn passphrase(confirm: bool) -> Result<String> {
    if let Ok(p) = std::env::var("SEALDESK_PASSPHRASE") {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: set SEALDESK_PASSPHRASE or run in a terminal to be asked");
    }
    let p = rpassword::prompt_password("Passphrase: ").context("could not read the passphrase")?;
    if confirm {
        let again = rpassword::prompt_password("Repeat passphrase: ")
            .context("could not read the passphrase")?;
        if again != p {
            bail!("the two passphrases differ; try again");
        }
    }
    Ok(p)
}

fn open_account(home: &Path) -> Result<Account> {
    let pass = passphrase(false)?;
    Ok(Account::open(home, &pass)?)
}

async fn connect(home: &Path, relay: &Relay, allow_unregistered: bool) -> Result<Client> {
    let account = open_account(home)?;
    let client = Client::connect_with(account, &relay.url, &relay.tls).await?;
    if !allow_unregistered && !client.registered() {
        return Err(ClientError::NotRegistered.into());
    }
    Ok(client)
}

fn conv_id(s: &str) -> Result<ConversationId> {
    ConversationId::parse(s).map_err(|_| {
        anyhow!(
            "{s:?} is not a conversation id (32 hex digits); `sealdesk conversations` lists them"
        )
    })
}

fn init(home: &Path, name: &str, role: Role) -> Result<Output> {
    let fast = std::env::var(INSECURE_FAST_KDF_ENV).is_ok_and(|v| v == "1");
    let params = if fast {
        KdfParams::TESTING
    } else {
        KdfParams::INTERACTIVE
    };
    let pass = passphrase(true)?;
    let account = Account::create(home, &pass, params, name, role)?;
    let fp = account.fingerprint().to_string();
    let mut text = format!(
        "created {role} account {name} in {}\nfingerprint: {fp}\nnext: sealdesk register",
        home.display()
    );
    if fast {
        text.push_str("\nwarning: SEALDESK_INSECURE_FAST_KDF=1: this vault's passphrase is cheap to guess; use it for tests only");
    }
    Ok(Output::new(
        text,
        json!({"ok": true, "name": name, "role": role.name(), "fingerprint": fp, "home": home}),
    ))
}

fn whoami(home: &Path) -> Result<Output> {
    let a = open_account(home)?;
    let fp = a.fingerprint().to_string();
    let relays: Vec<String> = a.pins()?.relays.keys().cloned().collect();
    Ok(Output::new(
        format!(
            "{} ({})\nfingerprint: {fp}\nhome: {}\nrelays pinned: {}",
            a.name(),
            a.role(),
            home.display(),
            if relays.is_empty() {
                "none yet".to_owned()
            } else {
                relays.join(", ")
            }
        ),
        json!({"name": a.name(), "role": a.role().name(), "fingerprint": fp, "home": home, "relays": relays}),
    ))
}

async fn org(home: &Path, relay: &Relay, cmd: OrgCmd) -> Result<Output> {
    let mut c = connect(home, relay, false).await?;
    let out = match cmd {
        OrgCmd::Create {
            name,
            trustees,
            trustee_threshold,
            arbiters,
            arbiter_threshold,
            retention_days,
            rotate_messages,
        } => {
            let spec = OrgSpec {
                name,
                trustees,
                trustee_threshold,
                arbiters,
                arbiter_threshold,
                retention_days,
                rotate_messages,
            };
            let p = c.create_org(&spec).await?;
            let fp = c.account().fingerprint().to_string();
            Output::new(
                format!(
                    "published {} policy version {}\nmaster fingerprint (give it to customers for --org-fingerprint): {fp}\n\n{}",
                    p.org,
                    p.version,
                    p.summary()
                ),
                json!({"ok": true, "org": p.org, "version": p.version, "org_fingerprint": fp, "summary": p.summary()}),
            )
        }
        OrgCmd::AddAgent {
            name,
            org,
            fingerprint,
        } => {
            c.account().require(Role::Master, "org add-agent")?;
            let org = match org {
                Some(o) => o,
                None => {
                    let mut own = c.own_orgs()?;
                    match own.len() {
                        1 => own.remove(0),
                        0 => bail!(
                            "this account has not created an org yet; run `sealdesk org create` first"
                        ),
                        _ => bail!(
                            "this master runs several orgs ({}); pass --org",
                            own.join(", ")
                        ),
                    }
                }
            };
            let cert = c
                .add_agent_checked(&org, &name, fingerprint.as_deref())
                .await?;
            let fp = sealdesk_protocol::keys::Fingerprint::of(
                &cert.agent.signing_key,
                &cert.agent.agreement_key,
            );
            let check = if fingerprint.is_some() {
                "fingerprint checked".to_owned()
            } else {
                format!(
                    "fingerprint {fp}: compare it with what {name}'s `sealdesk whoami` shows, \
                     or pass --fingerprint next time"
                )
            };
            Output::new(
                format!(
                    "certified {name} as an agent of {org} until {} ({check})",
                    chat::fmt_time(cert.expires_at)
                ),
                json!({"ok": true, "org": org, "agent": name, "expires_at": cert.expires_at,
                       "fingerprint": fp.to_string(), "fingerprint_checked": fingerprint.is_some()}),
            )
        }
        OrgCmd::Show { org } => {
            let p = c.latest_policy(&org).await?;
            let master = p.master.clone().verify()?;
            let pin = c.account().org_pin(&org)?;
            let mut text = format!(
                "{} (policy version {}, master {} fingerprint {}, pinned: {})\n{}\n",
                p.org,
                p.version,
                master.name,
                master.fingerprint(),
                pin.map(|p| format!("{:?}", p.source).to_lowercase())
                    .unwrap_or_else(|| "no".into()),
                p.summary()
            );
            let mut parties = Vec::new();
            for (label, cards) in [("trustee", &p.trustees), ("arbiter", &p.arbiters)] {
                for card in cards.iter() {
                    let fp = card.clone().verify()?.fingerprint().to_string();
                    text.push_str(&format!("  {label} {} {fp}\n", card.name));
                    parties.push(json!({"role": label, "name": card.name, "fingerprint": fp}));
                }
            }
            text.push_str(&format!(
                "  trustee threshold {} of {}, arbiter threshold {} of {}, rotate after {} messages, retention {} days, hand-off {}",
                p.trustee_threshold,
                p.trustees.len(),
                p.arbiter_threshold,
                p.arbiters.len(),
                p.rotate_after_messages,
                p.retention_secs / 86_400,
                if p.history_handoff { "on" } else { "off" }
            ));
            Output::new(
                text,
                json!({
                    "org": p.org, "version": p.version, "master": master.name,
                    "org_fingerprint": master.fingerprint().to_string(), "summary": p.summary(),
                    "parties": parties, "trustee_threshold": p.trustee_threshold,
                    "arbiter_threshold": p.arbiter_threshold,
                    "rotate_after_messages": p.rotate_after_messages,
                    "retention_days": p.retention_secs / 86_400, "history_handoff": p.history_handoff,
                }),
            )
        }
    };
    c.close().await;
    Ok(out)
}

/// Connects and catches up; when the relay is unreachable, falls back to local state and says so.
async fn sync_or_offline(
    home: &Path,
    relay: &Relay,
) -> Result<(Option<Client>, Option<Account>, Option<String>)> {
    let account = open_account(home)?;
    match Client::try_connect_with(account, &relay.url, &relay.tls).await {
        Ok(mut c) => {
            c.sync_all().await?;
            Ok((Some(c), None, None))
        }
        Err((
            account,
            e @ (ClientError::Transport(_) | ClientError::Timeout { .. } | ClientError::Closed(_)),
        )) => Ok((
            None,
            Some(account),
            Some(format!("offline ({e}); showing local state")),
        )),
        Err((_, e)) => Err(e.into()),
    }
}

async fn conversations(home: &Path, relay: &Relay) -> Result<Output> {
    let (client, account, warning) = sync_or_offline(home, relay).await?;
    let account_ref = match (&client, &account) {
        (Some(c), _) => c.account(),
        (None, Some(a)) => a,
        (None, None) => bail!("no account"),
    };
    let mut text = String::new();
    if let Some(w) = &warning {
        text.push_str(&format!("warning: {w}\n"));
    }
    let mut rows = Vec::new();
    let convs = account_ref.conversations()?;
    if convs.is_empty() {
        text.push_str("no conversations");
    }
    for m in &convs {
        let unread = sealdesk_client::client::unread(account_ref, &m.id)?;
        let epochs = account_ref.epochs(&m.id)?.len();
        text.push_str(&format!(
            "{}  {}  customer {}  agent {}  {} epoch(s)  {} unread{}\n",
            m.id,
            m.org,
            m.customer,
            m.agent,
            epochs,
            unread,
            if m.transferred_out {
                "  (transferred)"
            } else {
                ""
            }
        ));
        rows.push(json!({
            "conversation": m.id.to_string(), "org": m.org, "customer": m.customer,
            "agent": m.agent, "epochs": epochs, "unread": unread, "last_seq": m.cursor,
            "transferred_out": m.transferred_out,
        }));
    }
    if let Some(c) = client {
        c.close().await;
    }
    Ok(Output::new(
        text.trim_end().to_owned(),
        json!({"conversations": rows, "warning": warning}),
    ))
}

async fn history(
    home: &Path,
    relay: &Relay,
    conversation: &str,
    export: Option<&Path>,
) -> Result<Output> {
    let id = conv_id(conversation)?;
    let (mut client, account, warning) = sync_or_offline(home, relay).await?;
    let h = match (&client, &account) {
        (Some(c), _) => c.history(&id)?,
        (None, Some(a)) => sealdesk_client::client::history(a, &id)?,
        (None, None) => bail!("no account"),
    };
    let mut text = String::new();
    if let Some(w) = &warning {
        text.push_str(&format!("warning: {w}\n"));
    }
    if let Some(s) = &h.summary {
        text.push_str(&format!("🔒 {s}\n"));
    }
    for l in &h.lines {
        text.push_str(&chat::render_line(l));
        text.push('\n');
    }
    let lines = serde_json::to_value(&h.lines)?;
    let value = json!({
        "conversation": id.to_string(), "org": h.org, "summary": h.summary,
        "lines": lines, "warning": warning,
    });
    if let Some(path) = export {
        let mut f = std::fs::File::create(path)
            .with_context(|| format!("could not create {}", path.display()))?;
        f.write_all(serde_json::to_string_pretty(&value)?.as_bytes())
            .with_context(|| format!("could not write {}", path.display()))?;
        text.push_str(&format!(
            "exported to {} (plaintext: keep it safe)\n",
            path.display()
        ));
    }
    let messages = h
        .lines
        .iter()
        .filter(|l| {
            matches!(
                l,
                HistoryLine::Item {
                    entry: LogEntry::Message { .. },
                    ..
                }
            )
        })
        .count();
    if messages == 0 {
        text.push_str("(no messages yet)\n");
    }
    if let Some(c) = client.as_mut() {
        c.mark_seen(&id)?;
        // Best effort: history is still shown if the receipt cannot be sent (e.g. a blocked key).
        let _ = c.send_read_receipt(&id).await;
    }
    if let Some(c) = client {
        c.close().await;
    }
    Ok(Output::new(text.trim_end().to_owned(), value))
}

async fn fingerprint(home: &Path, relay: &Relay, name: &str) -> Result<Output> {
    let account = open_account(home)?;
    if name == account.name() {
        let fp = account.fingerprint().to_string();
        return Ok(Output::new(
            format!("{name} (you): {fp}"),
            json!({"name": name, "fingerprint": fp, "source": "own"}),
        ));
    }
    if let Some(pin) = account.pins()?.peers.get(name) {
        let fp = pin.card.clone().verify()?.fingerprint().to_string();
        let pending = match &pin.pending {
            Some(p) => Some(p.clone().verify()?.fingerprint().to_string()),
            None => None,
        };
        let mut text = format!("{name} (pinned): {fp}");
        if let Some(p) = &pending {
            text.push_str(&format!(
                "\n{name} NOW PRESENTS A DIFFERENT KEY: {p}\ncompare it out of band, then `sealdesk keys trust {name}`"
            ));
        }
        return Ok(Output::new(
            text,
            json!({"name": name, "fingerprint": fp, "source": "pinned", "pending": pending}),
        ));
    }
    let c = Client::connect_with(account, &relay.url, &relay.tls).await?;
    let card = c.fetch_card(name).await?;
    let fp = card.fingerprint().to_string();
    c.close().await;
    Ok(Output::new(
        format!("{name} (from the relay, not pinned yet): {fp}"),
        json!({"name": name, "fingerprint": fp, "source": "relay"}),
    ))
}

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

fn token_id(s: &str) -> Result<TokenId> {
    TokenId::parse(s).map_err(|_| anyhow!("{s:?} is not an id (32 hex digits)"))
}

async fn trustee(home: &Path, relay: &Relay, once: bool, json_out: bool) -> Result<Option<Output>> {
    let mut c = connect(home, relay, false).await?;
    let print = |o: &TrusteeOutcome| {
        if json_out {
            println!("{}", json!(o));
        } else {
            println!(
                "request {} (conversation {}): {}",
                o.request, o.conversation, o.outcome
            );
        }
    };
    if once {
        let outcomes = c.trustee_pending().await?;
        for o in &outcomes {
            print(o);
        }
        if outcomes.is_empty() && !json_out {
            println!("no release requests pending");
        }
    } else {
        if !json_out {
            println!(
                "serving release requests as {}; Ctrl-C to stop",
                c.account().name()
            );
        }
        c.trustee_serve(
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
            print,
        )
        .await?;
    }
    c.close().await;
    Ok(None)
}

async fn consent(home: &Path, relay: &Relay, cmd: ConsentCmd) -> Result<Output> {
    let mut c = connect(home, relay, false).await?;
    let out = match cmd {
        ConsentCmd::Grant {
            conversation,
            epochs,
            scope,
            expires,
            purpose,
            out,
        } => {
            let id = conv_id(&conversation)?;
            let scope = match scope.as_str() {
                "full" => Scope::Full,
                "redacted" => Scope::Redacted,
                _ => bail!("--scope is full or redacted"),
            };
            let token = c
                .grant_consent(
                    &id,
                    parse_epochs(&epochs)?,
                    scope,
                    parse_duration(&expires)?,
                    &purpose,
                )
                .await?;
            let encoded = encode_consent(&token)?;
            if let Some(path) = &out {
                std::fs::write(path, &encoded)
                    .with_context(|| format!("could not write {}", path.display()))?;
            }
            Output::new(
                format!(
                    "consent {} granted to the master of {} for {} of {id} ({:?}, until {})\n\
                     it was shared with the business through the relay; they unlock with\n  \
                     sealdesk transcript unlock --conversation {id} --consent {}",
                    token.id,
                    token.org,
                    token.epochs,
                    token.scope,
                    chat::fmt_time(token.expires_at),
                    token.id
                ),
                json!({"ok": true, "consent": token.id.to_string(), "token": encoded, "expires_at": token.expires_at}),
            )
        }
        ConsentCmd::Revoke { consent } => {
            let index = c.revoke_consent(&token_id(&consent)?).await?;
            Output::new(
                format!(
                    "consent {consent} revoked (audit log entry #{index}); trustees will refuse it"
                ),
                json!({"ok": true, "consent": consent, "index": index}),
            )
        }
        ConsentCmd::List => {
            let all = c.consents()?;
            let mut text = String::new();
            let mut rows = Vec::new();
            for r in &all {
                let t = &r.token;
                let state = if r.revoked {
                    "revoked"
                } else if t.expires_at <= sealdesk_client::now() {
                    "expired"
                } else {
                    "active"
                };
                text.push_str(&format!(
                    "{} {} {} {:?} until {} [{state}] {}\n",
                    t.id,
                    t.conversation,
                    t.epochs,
                    t.scope,
                    chat::fmt_time(t.expires_at),
                    t.purpose
                ));
                rows.push(json!({"consent": t.id.to_string(), "conversation": t.conversation.to_string(), "state": state, "purpose": t.purpose}));
            }
            if all.is_empty() {
                text.push_str("no consents granted");
            }
            Output::new(text.trim_end().to_owned(), json!({"consents": rows}))
        }
    };
    c.close().await;
    Ok(out)
}

fn describe_ticket(st: &TicketState) -> String {
    let t = &st.ticket;
    let approvals = st
        .decisions
        .iter()
        .filter(|d| d.verdict == Verdict::Approve)
        .count();
    let mut s = format!(
        "ticket {}\n  org {} · conversation {} · {}\n  reason: {}\n  opened {} · expires {}\n  {} approval(s)",
        t.id,
        t.org,
        t.conversation,
        t.epochs,
        t.reason,
        chat::fmt_time(t.opened_at),
        chat::fmt_time(t.expires_at),
        approvals
    );
    for d in &st.decisions {
        let v = match &d.verdict {
            Verdict::Approve => "approved".to_owned(),
            Verdict::Reject(r) => format!("rejected: {r}"),
        };
        s.push_str(&format!(
            "\n    {} {v} at {}",
            d.arbiter,
            chat::fmt_time(d.decided_at)
        ));
    }
    s
}

fn ticket_json(st: &TicketState) -> serde_json::Value {
    json!({
        "ticket": st.ticket.id.to_string(), "org": st.ticket.org,
        "conversation": st.ticket.conversation.to_string(), "reason": st.ticket.reason,
        "epochs": [st.ticket.epochs.first, st.ticket.epochs.last],
        "approvals": st.decisions.iter().filter(|d| d.verdict == Verdict::Approve).count(),
        "decisions": st.decisions.len(),
    })
}

async fn dispute(home: &Path, relay: &Relay, cmd: DisputeCmd) -> Result<Output> {
    let mut c = connect(home, relay, false).await?;
    let out = match cmd {
        DisputeCmd::Open {
            conversation,
            reason,
            epochs,
        } => {
            let id = conv_id(&conversation)?;
            let t = c.open_dispute(&id, parse_epochs(&epochs)?, &reason).await?;
            Output::new(
                format!(
                    "opened dispute ticket {} for {} of {id}; arbiters have been notified",
                    t.id, t.epochs
                ),
                json!({"ok": true, "ticket": t.id.to_string()}),
            )
        }
        DisputeCmd::List => {
            let all = c.tickets().await?;
            let text = if all.is_empty() {
                "no tickets".to_owned()
            } else {
                all.iter()
                    .map(describe_ticket)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            Output::new(
                text,
                json!({"tickets": all.iter().map(ticket_json).collect::<Vec<_>>()}),
            )
        }
        DisputeCmd::Show { ticket } => {
            let id = token_id(&ticket)?;
            let st = c
                .tickets()
                .await?
                .into_iter()
                .find(|t| t.ticket.id == id)
                .ok_or_else(|| anyhow!("no ticket {ticket}; `sealdesk dispute list` shows them"))?;
            let policy = c.latest_policy(&st.ticket.org).await?;
            let signed = st.ticket.verify(&policy).is_ok();
            Output::new(
                format!(
                    "{}\n  master signature: {}",
                    describe_ticket(&st),
                    if signed { "valid" } else { "INVALID" }
                ),
                ticket_json(&st),
            )
        }
        DisputeCmd::Approve { ticket } => {
            let st = c
                .decide_ticket(&token_id(&ticket)?, Verdict::Approve)
                .await?;
            Output::new(
                format!("approved\n{}", describe_ticket(&st)),
                ticket_json(&st),
            )
        }
        DisputeCmd::Reject { ticket, reason } => {
            let st = c
                .decide_ticket(&token_id(&ticket)?, Verdict::Reject(reason))
                .await?;
            Output::new(
                format!("rejected\n{}", describe_ticket(&st)),
                ticket_json(&st),
            )
        }
    };
    c.close().await;
    Ok(out)
}

/// The audit report's lines: one line per release request (its trustees' entries listed under
/// it, each with its own checks), every other entry on a line of its own.
fn audit_text(r: &sealdesk_client::escrow::AuditReport) -> String {
    let proof = |included: Option<bool>| match included {
        Some(true) => "  [inclusion proven]",
        Some(false) => "  [INCLUSION PROOF FAILED]",
        None => "",
    };
    let group_of = |index: u64| {
        r.releases
            .iter()
            .position(|g| g.notice.all_indexes().contains(&index))
    };
    let mut shown = std::collections::BTreeSet::new();
    let mut text = String::new();
    for e in &r.entries {
        let Some(g) = group_of(e.index) else {
            text.push_str(&format!("#{} {}{}\n", e.index, e.text, proof(e.included)));
            continue;
        };
        if !shown.insert(g) {
            continue;
        }
        let Some(group) = r.releases.get(g) else {
            continue;
        };
        text.push_str(&format!("{}\n", group.text));
        let included = |i: u64| {
            r.entries
                .iter()
                .find(|l| l.index == i)
                .and_then(|l| l.included)
        };
        for (name, i) in group.notice.trustees.iter().zip(&group.notice.indexes) {
            text.push_str(&format!(
                "    #{i} released by {name}: signed by a trustee{}\n",
                proof(included(*i))
            ));
        }
        for v in &group.notice.contradicting {
            for (name, i) in v.trustees.iter().zip(&v.indexes) {
                text.push_str(&format!(
                    "    #{i} by {name}: CONTRADICTS other entries of this release (says {}; \
                     not counted with them){}\n",
                    v.epochs,
                    proof(included(*i))
                ));
            }
        }
        for i in &group.notice.failed {
            text.push_str(&format!(
                "    #{i} NOT GENUINE: not signed by a trustee of the org, or not proven{}\n",
                proof(included(*i))
            ));
        }
    }
    text
}

fn transcript_text(t: &Transcript) -> String {
    let mut s = format!(
        "transcript of {} ({}){}\n",
        t.conversation,
        t.org,
        if t.redacted { " — redacted" } else { "" }
    );
    for line in sealdesk_client::escrow::transcript_releases(t) {
        s.push_str(&format!("  {line}\n"));
    }
    for m in &t.messages {
        s.push_str(&format!(
            "#{} {} {} (epoch {}): {}   [signature verified]\n",
            m.seq,
            chat::fmt_time(m.sent_at),
            m.sender,
            m.epoch,
            m.text
        ));
    }
    for (epoch, sender, missing) in &t.gaps {
        s.push_str(&format!(
            "  ⋯ gap: {} message(s) from {sender} in epoch {epoch} missing\n",
            missing.len()
        ));
    }
    s
}

async fn transcript(
    home: &Path,
    home_given: bool,
    relay: &Relay,
    cmd: TranscriptCmd,
) -> Result<Output> {
    if let TranscriptCmd::Verify {
        file,
        org_fingerprint,
        log_key,
        no_anchor,
    } = &cmd
    {
        return verify_file(
            file,
            home_given.then_some(home),
            org_fingerprint,
            log_key,
            *no_anchor,
        );
    }
    let mut c = connect(home, relay, false).await?;
    let out = match cmd {
        TranscriptCmd::Unlock {
            conversation,
            consent,
            ticket,
            wait,
        } => {
            let id = conv_id(&conversation)?;
            let ticket = ticket.as_deref().map(token_id).transpose()?;
            let j = c
                .justification(&id, consent.as_deref(), ticket.as_ref())
                .await?;
            let t = c
                .unlock(&id, j, None, std::time::Duration::from_secs(wait), |p| {
                    eprintln!(
                        "trustees: {} of {} released{}",
                        p.released,
                        p.needed,
                        if p.refusals.is_empty() {
                            String::new()
                        } else {
                            format!(", {} refused", p.refusals.len())
                        }
                    );
                })
                .await?;
            Output::new(
                transcript_text(&t).trim_end().to_owned(),
                json!({"ok": true, "messages": t.messages.len(), "epochs": t.records.iter().map(|r| r.epoch).collect::<Vec<_>>()}),
            )
        }
        TranscriptCmd::Show { conversation } => {
            let t = c.transcript(&conv_id(&conversation)?)?;
            Output::new(
                transcript_text(&t).trim_end().to_owned(),
                json!({"messages": t.messages.iter().map(|m| json!({"seq": m.seq, "sender": m.sender, "text": m.text, "epoch": m.epoch})).collect::<Vec<_>>()}),
            )
        }
        TranscriptCmd::Export {
            conversation,
            out,
            format,
            redact,
        } => {
            let id = conv_id(&conversation)?;
            let export = c.export_transcript(&id, redact).await?;
            let body = match format.as_str() {
                "json" => serde_json::to_string_pretty(&export)?,
                "text" => {
                    let mut s = format!("Transcript of {} ({})\n", export.conversation, export.org);
                    for r in &export.releases {
                        s.push_str(&format!("Released: {} [audit #{}]\n", r.text, r.index));
                    }
                    for m in &export.messages {
                        s.push_str(&format!(
                            "#{} {} {}: {}\n",
                            m.seq,
                            chat::fmt_time(m.sent_at),
                            m.sender,
                            m.text
                        ));
                    }
                    s
                }
                "html" => {
                    let esc = |s: &str| {
                        s.replace('&', "&amp;")
                            .replace('<', "&lt;")
                            .replace('>', "&gt;")
                            .replace('"', "&quot;")
                    };
                    let mut s = format!(
                        "<!doctype html><meta charset=utf-8><title>Transcript {}</title><h1>Transcript of {} ({})</h1><ul>",
                        esc(&export.conversation),
                        esc(&export.conversation),
                        esc(&export.org)
                    );
                    for r in &export.releases {
                        s.push_str(&format!(
                            "<li>Released: {} [audit #{}]</li>",
                            esc(&r.text),
                            r.index
                        ));
                    }
                    s.push_str("</ul><table>");
                    for m in &export.messages {
                        s.push_str(&format!(
                            "<tr><td>#{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            m.seq,
                            chat::fmt_time(m.sent_at),
                            esc(&m.sender),
                            esc(&m.text)
                        ));
                    }
                    s.push_str("</table>");
                    s
                }
                _ => bail!("--format is json, text or html"),
            };
            std::fs::write(&out, body)
                .with_context(|| format!("could not write {}", out.display()))?;
            Output::new(
                format!(
                    "exported {} message(s) to {}{}",
                    export.messages.len(),
                    out.display(),
                    if export.redacted { " (redacted)" } else { "" }
                ),
                json!({"ok": true, "out": out, "redacted": export.redacted}),
            )
        }
        TranscriptCmd::Verify { .. } => unreachable_verify()?,
    };
    c.close().await;
    Ok(out)
}

fn unreachable_verify() -> Result<Output> {
    bail!("transcript verify is handled before connecting")
}

/// `transcript verify`: the anchors come from the flags, else from the pins of `--home`.
fn verify_file(
    file: &Path,
    home: Option<&Path>,
    org_fingerprint: &Option<String>,
    log_keys: &[String],
    no_anchor: bool,
) -> Result<Output> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        anyhow!(CannotCheck(format!(
            "could not read {}: {e}",
            file.display()
        )))
    })?;
    let export: ExportFile = match export::parse_export(&text) {
        Ok(e) => e,
        Err(v) => return Ok(verdict_output(file, &v, no_anchor)),
    };
    let mut anchors = Anchors {
        org_fingerprint: org_fingerprint.clone(),
        log_keys: Vec::new(),
    };
    for k in log_keys {
        let key = hex::decode(k.trim())
            .ok()
            .and_then(|b| sealdesk_protocol::keys::SigningPublicKey::try_from(b.as_slice()).ok())
            .ok_or_else(|| {
                anyhow!(CannotCheck(
                    "--log-key takes the relay's log key as 64 hex digits".into()
                ))
            })?;
        anchors.log_keys.push(key);
    }
    if let Some(home) = home
        && (anchors.org_fingerprint.is_none() || anchors.log_keys.is_empty())
    {
        let pins = open_account(home)
            .and_then(|a| a.pins().map_err(anyhow::Error::from))
            .map_err(|e| {
                anyhow!(CannotCheck(format!(
                    "could not read the pins of --home: {e:#}"
                )))
            })?;
        if anchors.org_fingerprint.is_none()
            && let Some(pin) = pins.orgs.get(&export.org)
        {
            anchors.org_fingerprint = Some(pin.master.clone().verify()?.fingerprint().to_string());
        }
        if anchors.log_keys.is_empty() {
            anchors.log_keys = home_log_keys(&pins, &export.log_key);
        }
    }
    let v = verify_export(&export, &anchors);
    Ok(verdict_output(file, &v, no_anchor))
}

/// The log key a home anchors for `export`: the pinned relay whose log key the export names,
/// if that relay is pinned — not every relay the home ever pinned (a tree head signed by any
/// of them would otherwise pass).
fn home_log_keys(
    pins: &sealdesk_client::account::Pins,
    named: &str,
) -> Vec<sealdesk_protocol::keys::SigningPublicKey> {
    let named = hex::decode(named.trim())
        .ok()
        .and_then(|b| sealdesk_protocol::keys::SigningPublicKey::try_from(b.as_slice()).ok());
    pins.relays
        .values()
        .map(|r| r.log_key)
        .filter(|k| Some(*k) == named)
        .take(1)
        .collect()
}

/// A `transcript verify` that could not check at all (the file could not be read, a flag is
/// malformed): exit status 2, apart from a refused transcript's 1.
#[derive(Debug)]
struct CannotCheck(String);

impl std::fmt::Display for CannotCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CannotCheck {}

/// The exit status of an error: 2 where `transcript verify` could not check at all, else 1.
fn error_status(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<CannotCheck>().is_some() {
        2
    } else {
        1
    }
}

/// Prints a verdict; the output fails (exit status 1) unless the transcript verified, or only
/// the anchors are missing under `--no-anchor` after everything else was checked.
fn verdict_output(file: &Path, v: &export::Verification, no_anchor: bool) -> Output {
    let mut out = format!(
        "verifying {} (master fingerprint {}):\n",
        file.display(),
        v.master_fingerprint
    );
    for line in &v.passed {
        out.push_str(&format!("  ✓ {line}\n"));
    }
    for line in &v.weaker {
        out.push_str(&format!("  ~ weaker: {line}\n"));
    }
    let unanchored_only = v.checked
        && !v.failures.is_empty()
        && v.failures.iter().all(|f| {
            matches!(
                f.reason,
                export::Reason::NoOrgAnchor | export::Reason::NoLogAnchor
            )
        });
    for f in &v.failures {
        out.push_str(&format!("  ✗ [{}] {}\n", f.reason, f.detail));
    }
    let org_unanchored = v.failed(export::Reason::NoOrgAnchor);
    let (verdict, failed) = if v.ok {
        (
            "VERDICT: the transcript verifies against the anchored master and log keys",
            false,
        )
    } else if unanchored_only && org_unanchored {
        (
            "VERDICT: NOTHING WAS VERIFIED AGAINST A TRUSTED KEY: the checks above hold only \
             relative to keys the file itself carries (pass --org-fingerprint and --log-key, or \
             --home with pinned keys)",
            !no_anchor,
        )
    } else if unanchored_only {
        (
            "VERDICT: the transcript verifies against the anchored master, but its release \
             entries were NOT checked against a trusted audit log (pass --log-key, or --home \
             with the relay pinned)",
            !no_anchor,
        )
    } else {
        ("VERDICT: the transcript does NOT verify", true)
    };
    out.push_str(verdict);
    let mut json = serde_json::to_value(v).unwrap_or_else(|_| json!({}));
    if let Some(o) = json.as_object_mut() {
        // `ok` is what the exit status says: true only for a 0 exit.
        o.insert("ok".into(), json!(!failed));
        o.insert("verified".into(), json!(v.ok));
        o.insert("verdict".into(), json!(verdict));
    }
    let mut o = Output::new(out, json);
    o.failed = failed;
    o
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sealdesk_client::account::{Pins, RelayPin};
    use sealdesk_protocol::keys::IdentityKeys;

    #[test]
    fn a_home_anchors_only_the_log_key_of_the_relay_the_export_names() {
        let mut rng = sealdesk_client::rng().unwrap();
        let mut key = || IdentityKeys::generate(&mut rng).signing_public();
        let (a, b) = (key(), key());
        let mut pins = Pins::default();
        for (url, log_key) in [("ws://a", a), ("ws://b", b)] {
            pins.relays.insert(
                url.into(),
                RelayPin {
                    relay_key: key(),
                    log_key,
                },
            );
        }
        assert_eq!(home_log_keys(&pins, &hex::encode(a.as_bytes())), vec![a]);
        assert_eq!(home_log_keys(&pins, &hex::encode(b.as_bytes())), vec![b]);
        // A relay the home never pinned, or no key at all: no log anchor.
        assert!(home_log_keys(&pins, &hex::encode(key().as_bytes())).is_empty());
        assert!(home_log_keys(&pins, "").is_empty());
    }
}
