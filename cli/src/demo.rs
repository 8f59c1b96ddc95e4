//! `sealdesk demo`: the whole story in one process, narrated for a newcomer.
//!
//! A relay runs in-process (`sealdesk_server`) on a free loopback port with a temporary
//! directory; every account lives in its own temporary home. Everything is deleted at the end,
//! unless `--home DIR` names where to keep it ([`run_in`]: an empty or new directory, never
//! one that holds anything, such as an account).
//! The throwaway accounts' vaults use the real passphrase hashing ([`crate::kdf`]): the demo is
//! no reason to weaken it.

use std::io::Write;
use std::path::Path;

use std::time::Duration;

use sealdesk_client::ClientError;
use sealdesk_client::account::{Account, LogEntry};
use sealdesk_client::client::{Client, HistoryLine, OrgSpec};
use sealdesk_client::escrow::Transcript;
use sealdesk_client::transcript::{Anchors, verify_export};
use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    release::{Justification, ReleaseRequest, Scope, Verdict},
    wire::Request,
};
use sealdesk_server::config::RelayConfig;

use crate::error::CliError;
use crate::kdf;
use crate::print::render_line;

/// The demo's result.
type Result<T> = std::result::Result<T, CliError>;

/// The passphrase of every throwaway demo account.
const DEMO_PASSPHRASE: &str = "demo passphrase (throwaway accounts)";

/// Runs the demo, narrating to `out`.
///
/// # Errors
/// Any failure of the story (which would be a bug).
pub async fn run<W: Write>(out: &mut W) -> Result<()> {
    run_in(out, None).await
}

/// Runs the demo, narrating to `out`, with its relay and homes in `keep` (kept afterwards;
/// it must be empty or not exist yet), or in a temporary directory deleted at the end.
///
/// # Errors
/// [`CliError::DemoDirNotEmpty`] for a `keep` that holds anything; any failure of the story.
pub async fn run_in<W: Write>(out: &mut W, keep: Option<&Path>) -> Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| io("create a temporary directory", e))?;
    let dir = match keep {
        Some(d) => {
            let empty = match std::fs::read_dir(d) {
                Ok(mut entries) => entries.next().is_none(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
                Err(e) => return Err(io("read the --home directory", e)),
            };
            if !empty {
                return Err(CliError::DemoDirNotEmpty(d.to_path_buf()));
            }
            std::fs::create_dir_all(d).map_err(|e| io("create the --home directory", e))?;
            d.to_path_buf()
        }
        None => tmp.path().to_path_buf(),
    };
    let cfg = RelayConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.join("relay"),
        ..RelayConfig::default()
    };
    let relay = sealdesk_server::spawn(cfg)
        .await
        .map_err(|e| CliError::DemoRelay(e.to_string()))?;
    let url = relay.ws_url();
    let result = story(out, &dir, &url, keep.is_some()).await;
    let _ = relay.shutdown().await;
    result
}

/// `sealdesk demo --web DIR`: a throwaway relay serving the built browser pages in `web_root`
/// (`--web-root`), a throwaway org "acme" (master, one trustee, one arbiter, the agent alice),
/// and the widget's URL, printed to `out`; then waits for Ctrl-C and deletes everything.
///
/// # Errors
/// [`CliError::DemoRelay`] if `web_root` is not a built web directory or the relay fails; any
/// failure creating the accounts.
pub async fn run_web<W: Write>(out: &mut W, web_root: &Path) -> Result<()> {
    if let Err(e) = sealdesk_server::web::WebRoot::load(web_root) {
        return Err(CliError::DemoRelay(format!(
            "{e} (build the pages first: cd web && npm ci && npm run build)"
        )));
    }
    let tmp = tempfile::tempdir().map_err(|e| io("create a temporary directory", e))?;
    let cfg = RelayConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: tmp.path().join("relay"),
        web_root: Some(web_root.to_owned()),
        ..RelayConfig::default()
    };
    let relay = sealdesk_server::spawn(cfg)
        .await
        .map_err(|e| CliError::DemoRelay(e.to_string()))?;
    let url = relay.ws_url();
    let result = web_story(out, tmp.path(), &url, relay.local_addr()).await;
    let _ = relay.shutdown().await;
    result
}

async fn web_story<W: Write>(
    out: &mut W,
    dir: &Path,
    url: &str,
    addr: std::net::SocketAddr,
) -> Result<()> {
    let mut n = Narrator { out, step: 0 };
    n.title("Sealdesk demo: chat from a web page")?;
    n.step("A throwaway org: acme, with a trustee, an arbiter and the agent alice")?;
    let mut master = account(&mut n, dir, url, "acme-owner", Role::Master).await?;
    let trustee = account(&mut n, dir, url, "trustee-1", Role::Trustee).await?;
    let arbiter = account(&mut n, dir, url, "arbiter-1", Role::Arbiter).await?;
    let alice = account(&mut n, dir, url, "alice", Role::Agent).await?;
    master
        .create_org(&OrgSpec {
            name: "acme".into(),
            trustees: vec!["trustee-1".into()],
            trustee_threshold: 1,
            arbiters: vec!["arbiter-1".into()],
            arbiter_threshold: 1,
            retention_days: None,
            rotate_messages: None,
            no_history_handoff: false,
        })
        .await?;
    master.add_agent("acme", "alice").await?;
    let fp = master.account().fingerprint().to_string();
    for c in [master, trustee, arbiter, alice] {
        c.close().await;
    }
    let page = format!("http://{addr}/?org=acme&fp={}", fp.replace(' ', "+"));
    n.step("Open the widget in your browser")?;
    n.quote(&page)?;
    n.say("(The org's master fingerprint is in the URL: the page checks the policy against it.)")?;
    n.step("Answer as the agent alice, in another terminal")?;
    n.quote(&format!(
        "SEALDESK_PASSPHRASE='{DEMO_PASSPHRASE}' sealdesk --home {} --relay {url} chat",
        dir.join("alice").display()
    ))?;
    n.step("Or answer as alice in the browser: the agent console")?;
    n.quote(&format!("http://{addr}/console/"))?;
    n.say(&format!(
        "(Unlock it with alice's vault: choose vault.json, records/identity.rec and \
         records/profile.rec in {}, passphrase '{DEMO_PASSPHRASE}'. The console and the CLI \
         can both answer as alice.)",
        dir.join("alice").display()
    ))?;
    n.step("On a web site of your own, one script tag does the same")?;
    n.quote(&format!(
        "<script src=\"http://{addr}/embed.js\" data-org=\"acme\" data-fingerprint=\"{fp}\" defer></script>"
    ))?;
    n.say("Ctrl-C stops the relay and deletes every account and message.")?;
    // A failed signal handler ends the demo at once rather than never.
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}

async fn story<W: Write>(out: &mut W, dir: &Path, url: &str, kept: bool) -> Result<()> {
    let mut n = Narrator { out, step: 0 };
    n.title("Sealdesk demo: end-to-end encrypted support chat with consent-gated escrow")?;
    let where_ = if kept {
        format!("in {}, kept after the demo", dir.display())
    } else {
        "in a temporary folder, deleted at the end".to_owned()
    };
    n.say(&format!(
        "A relay is running at {url}. It stores and forwards only ciphertext. Each person below \
         has their own encrypted home directory ({where_})."
    ))?;
    if let (_, Some(warning)) = kdf::for_new_vault() {
        n.say(&format!("warning: {warning}"))?;
    }

    n.step("Everyone creates an account and registers it with the relay")?;
    let master = account(&mut n, dir, url, "acme-owner", Role::Master).await?;
    let mut trustees: Vec<Client> = Vec::new();
    for i in 1..=3 {
        trustees.push(account(&mut n, dir, url, &format!("trustee-{i}"), Role::Trustee).await?);
    }
    let mut arbiters: Vec<Client> = Vec::new();
    for i in 1..=3 {
        arbiters.push(account(&mut n, dir, url, &format!("arbiter-{i}"), Role::Arbiter).await?);
    }
    let mut alice = account(&mut n, dir, url, "alice", Role::Agent).await?;
    let dave = account(&mut n, dir, url, "dave", Role::Agent).await?;
    let mut carol = account(&mut n, dir, url, "carol", Role::Customer).await?;
    n.say(
        "acme-owner is the business's master account; trustee-1..3 are independent escrow \
         trustees; arbiter-1..3 handle disputes; alice and dave are support agents; carol is a \
         customer.",
    )?;

    n.step("The business owner publishes the org policy")?;
    let mut master = master;
    let policy = master
        .create_org(&OrgSpec {
            name: "acme".into(),
            trustees: (1..=3).map(|i| format!("trustee-{i}")).collect(),
            trustee_threshold: 2,
            arbiters: (1..=3).map(|i| format!("arbiter-{i}")).collect(),
            arbiter_threshold: 2,
            retention_days: None,
            rotate_messages: None,
            no_history_handoff: false,
        })
        .await?;
    let org_fp = master.account().fingerprint().to_string();
    n.say(&format!(
        "The policy is signed by the master key. Trustees: 2 of 3 must agree to release a key. \
         Disputes: 2 of 3 arbiters must approve. The master is neither a trustee nor an arbiter \
         (every client checks this separation of duties). ACME prints its master fingerprint \
         on its website: {org_fp}"
    ))?;
    for agent in ["alice", "dave"] {
        master.add_agent("acme", agent).await?;
    }
    n.say("The master certifies alice and dave as agents of acme.")?;
    drop(policy);

    n.step("Carol opens a chat; her app verifies everything before she types")?;
    let opened = carol.open_conversation("acme", Some(&org_fp)).await?;
    let conv = opened.conversation;
    n.say(&format!(
        "Carol's app checked the policy signature against the fingerprint she got from ACME's \
         website, checked {}'s agent certificate, and opened epoch 0: a random key sealed to \
         carol and {} only, with its escrow split between the master and the trustees. It shows \
         her, in plain words:",
        opened.agent, opened.agent
    ))?;
    n.quote(&opened.summary)?;
    n.say(&format!("Conversation id: {conv}"))?;

    n.step("They chat")?;
    carol
        .send_text(&conv, "Hi! My order #1234 never arrived.")
        .await?;
    alice.sync_all().await?;
    alice
        .send_text(
            &conv,
            "Sorry about that, Carol. Let me check the tracking number.",
        )
        .await?;
    carol.sync_all().await?;
    carol.mark_seen(&conv)?;
    carol.send_read_receipt(&conv).await?;
    alice.sync_all().await?;
    n.say("Carol's view (verified = signature checked, decrypted under a verified epoch):")?;
    show(&mut n, &carol, &conv)?;
    n.say("alice's view, with delivery and end-to-end read receipts on her own messages:")?;
    show(&mut n, &alice, &conv)?;

    n.step("alice transfers the chat to dave")?;
    let epoch = alice.transfer(&conv, "dave").await?;
    let mut dave = dave;
    dave.sync_all().await?;
    dave.send_text(
        &conv,
        "Hi Carol, dave here. The parcel is at the depot; it will arrive tomorrow.",
    )
    .await?;
    carol.sync_all().await?;
    alice.sync_all().await?;
    n.say(&format!(
        "alice opened epoch {epoch} for carol and dave, and (the policy allows history hand-off) \
         sealed the earlier epoch's key to dave. dave's view:"
    ))?;
    show(&mut n, &dave, &conv)?;
    n.say("alice was transferred out: she cannot read the new epoch. Her view:")?;
    show(&mut n, &alice, &conv)?;

    n.step("What the disk sees")?;
    let (files, found) = scan(
        &dir.join("carol"),
        &["order #1234", "parcel is at the depot"],
    )?;
    n.say(&format!(
        "carol's home holds {files} files, all sealed under a key derived from her passphrase \
         with Argon2id (identity keys, epoch keys, decrypted messages). Searching them for the \
         words of the chat finds {}. The relay's database holds only sealed records and \
         ciphertext.",
        crate::print::counted(
            u64::try_from(found).unwrap_or(u64::MAX),
            "occurrence",
            "occurrences"
        )
    ))?;

    n.step("The business owner cannot read the chat on their own")?;
    match master.transcript(&conv) {
        Err(e) => n.say(&format!(
            "acme-owner asks for the transcript and is refused: {e}"
        ))?,
        Ok(_) => {
            return Err(CliError::DemoStory(
                "the master read a transcript without a release",
            ));
        }
    }
    n.say(
        "The master holds only one half of each epoch key's escrow; the other half is split \
         between the trustees, who release it only against a valid, signed justification.",
    )?;

    n.step("Carol consents to a review")?;
    let token = carol
        .grant_consent(&conv, None, Scope::Full, 86_400, "complaint review")
        .await?;
    n.say(&format!(
        "Carol signs a single-use consent {} for {} of this chat, valid for a day, granted to \
         acme-owner's key only. Her app hands the token to the business.",
        token.id, token.epochs
    ))?;

    n.step("Two of the three trustees release their shares")?;
    let (t1, t2) = {
        let mut it = trustees.into_iter();
        let t1 = it.next().ok_or(CliError::DemoStory("no trustee"))?;
        let t2 = it.next().ok_or(CliError::DemoStory("no trustee"))?;
        (t1, t2)
    };
    let (transcript, t1, t2) = unlock_with_trustees(
        &mut n,
        &mut master,
        &conv,
        Justification::Consent(token.clone()),
        t1,
        t2,
    )
    .await?;
    n.say(
        "Each trustee checked the consent (carol's key from the signed epoch record, the grantee, \
           expiry, not revoked, not used), wrote a signed release entry to the audit log, waited \
           until the log accepted it, and only then sealed its share to the master. The master \
           rebuilt each epoch key, checked it against the epoch's commitment, and decrypted:",
    )?;
    let numbers = sealdesk_client::client::message_numbers(
        transcript
            .messages
            .iter()
            .map(|m| Some(m.envelope.header.kind)),
    );
    for (m, number) in transcript.messages.iter().zip(numbers) {
        let label = match number {
            Some(k) => format!("#{k} (seq {})", m.seq),
            None => format!("(seq {})", m.seq),
        };
        n.quote(&format!(
            "{label} {} (epoch {}): {}   [signature verified]",
            m.sender, m.epoch, m.text
        ))?;
    }

    n.step("Carol is told, and her app checks the audit log")?;
    carol.sync_all().await?;
    for l in carol.history(&conv)?.lines {
        if let HistoryLine::Item {
            entry: LogEntry::Notice { .. },
            ..
        } = &l
        {
            n.quote(&render_line(&l))?;
        }
    }
    let report = carol.audit(Some(conv), true).await?;
    n.say(&format!(
        "Carol's app verified {} with inclusion proofs under a relay-signed tree head of {}, \
         consistent with the head it saw before.",
        crate::print::counted(
            report.entries.len() as u64,
            "release entry",
            "release entries"
        ),
        crate::print::counted(report.size, "entry", "entries")
    ))?;

    n.step("The same consent cannot be used twice")?;
    // `unlock` run again under this consent would only collect the same request again; a
    // second request under it, made by hand, is what the trustees must refuse.
    let policy = master.latest_policy("acme").await?;
    let second = ReleaseRequest::sign(
        &mut sealdesk_client::rng()?,
        master.account().keys(),
        &policy,
        token.epochs,
        Justification::Consent(token),
        sealdesk_client::now(),
    )
    .map_err(ClientError::from)?;
    master
        .session()
        .request(Request::SubmitRelease(second))
        .await?;
    let (mut t1, mut t2) = (t1, t2);
    for t in [&mut t1, &mut t2] {
        for o in t.trustee_pending().await? {
            if !o.outcome.starts_with("refused") {
                return Err(CliError::DemoStory("a consent was used twice"));
            }
            n.say(&format!("{}: {}", t.account().name(), o.outcome))?;
        }
    }

    n.step("A dispute needs two independent arbiters")?;
    let ticket = master
        .open_dispute(&conv, None, "chargeback dispute")
        .await?;
    n.say(&format!(
        "acme-owner opens dispute ticket {} (\"chargeback dispute\").",
        ticket.id
    ))?;
    let mut arbiters = arbiters.into_iter();
    let mut a1 = arbiters.next().ok_or(CliError::DemoStory("no arbiter"))?;
    a1.decide_ticket(&ticket.id, Verdict::Approve).await?;
    let j = master.justification(&conv, None, Some(&ticket.id)).await?;
    let (one, t1, t2) = try_unlock_with_trustees(&mut master, &conv, j, t1, t2).await;
    match one {
        Err(e) => n.say(&format!(
            "With only arbiter-1's approval the trustees refuse: {e}"
        ))?,
        Ok(_) => {
            return Err(CliError::DemoStory("a dispute opened with one approval"));
        }
    }
    match carol.erase(&conv).await {
        Err(e) => n.say(&format!(
            "Meanwhile carol asks to erase the chat; the relay holds it: {e}"
        ))?,
        Ok(()) => n.say("Carol's erasure went through.")?,
    }
    let mut a2 = arbiters.next().ok_or(CliError::DemoStory("no arbiter"))?;
    a2.decide_ticket(&ticket.id, Verdict::Approve).await?;
    n.say("arbiter-2 approves too: 2 of 3, so the trustees release again.")?;
    let j = master.justification(&conv, None, Some(&ticket.id)).await?;
    let (_t, t1, t2) = unlock_with_trustees(&mut n, &mut master, &conv, j, t1, t2).await?;
    n.say("And carol is told:")?;
    carol.sync_all().await?;
    if let Some(l) = carol.history(&conv)?.lines.into_iter().rev().find(|l| {
        matches!(
            l,
            HistoryLine::Item {
                entry: LogEntry::Notice { .. },
                ..
            }
        )
    }) {
        n.quote(&render_line(&l))?;
    }

    n.step("The transcript verifies offline")?;
    let export = master.export_transcript(&conv, true).await?;
    // Anchored as a reader would: the master fingerprint the business publishes and the log
    // key the relay operator publishes.
    let anchors = Anchors {
        org_fingerprint: Some(master.account().fingerprint().to_string()),
        log_keys: vec![master.session().welcome().log_key],
    };
    let v = verify_export(&export, &anchors);
    for line in &v.passed {
        n.quote(&format!("✓ {line}"))?;
    }
    for line in &v.weaker {
        n.quote(&format!("~ weaker: {line}"))?;
    }
    for f in &v.failures {
        n.quote(&format!("✗ [{}] {}", f.reason, f.detail))?;
    }
    n.say(&format!(
        "Verdict: {}. (This export is redacted: a message holding an e-mail address, a phone \
         number, a card number or an IBAN, or a file, is withheld whole; who sent it and when is \
         still proven.)",
        if v.ok {
            "the transcript verifies"
        } else {
            "DOES NOT VERIFY"
        }
    ))?;
    let trustees = vec![t1, t2];
    let arbiters: Vec<Client> = vec![a1, a2].into_iter().chain(arbiters).collect();
    for c in trustees.into_iter().chain(arbiters) {
        c.close().await;
    }
    for c in [master, alice, dave, carol] {
        c.close().await;
    }
    n.title("Done. Every check above is also an automated test: cargo test -p sealdesk-client")?;
    Ok(())
}

/// Runs the master's unlock while two trustees answer pending requests.
async fn try_unlock_with_trustees(
    master: &mut Client,
    conv: &ConversationId,
    j: Justification,
    mut t1: Client,
    mut t2: Client,
) -> (Result<Transcript>, Client, Client) {
    let unlock = master.unlock(conv, j, None, Duration::from_secs(30), |_| {});
    let answer = async {
        let mut err = None;
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            for t in [&mut t1, &mut t2] {
                if let Err(e) = t.trustee_pending().await {
                    err = Some(e);
                }
            }
        }
        err
    };
    let (r, err) = tokio::join!(unlock, answer);
    let r = match err {
        Some(e) => Err(e),
        None => r,
    };
    (r.map_err(CliError::from), t1, t2)
}

async fn unlock_with_trustees<W: Write>(
    n: &mut Narrator<'_, W>,
    master: &mut Client,
    conv: &ConversationId,
    j: Justification,
    t1: Client,
    t2: Client,
) -> Result<(Transcript, Client, Client)> {
    let (r, t1, t2) = try_unlock_with_trustees(master, conv, j, t1, t2).await;
    let t = r?;
    n.say(&format!(
        "Enough trustees released; the transcript's release entries so far are #{} in the audit log.",
        t.releases
            .iter()
            .map(|(i, _)| i.to_string())
            .collect::<Vec<_>>()
            .join(", #")
    ))?;
    Ok((t, t1, t2))
}

async fn account<W: Write>(
    n: &mut Narrator<'_, W>,
    dir: &Path,
    url: &str,
    name: &str,
    role: Role,
) -> Result<Client> {
    let home = dir.join(name);
    let (params, _) = kdf::for_new_vault();
    let account = Account::create(&home, DEMO_PASSPHRASE, params, name, role)?;
    let fp = account.fingerprint();
    let mut c = Client::connect(account, url).await?;
    c.register().await?;
    n.say(&format!("  {name:<11} {:<8} fingerprint {fp}", role.name()))?;
    Ok(c)
}

fn show<W: Write>(n: &mut Narrator<'_, W>, c: &Client, conv: &ConversationId) -> Result<()> {
    let h = c.history(conv)?;
    for l in &h.lines {
        if matches!(
            l,
            HistoryLine::Item {
                entry: LogEntry::Epoch { .. } | LogEntry::HandOff { .. },
                ..
            }
        ) || matches!(l, HistoryLine::Item { .. } | HistoryLine::Gap { .. })
        {
            n.quote(&render_line(l))?;
        }
    }
    Ok(())
}

/// Counts the files under `dir` and the occurrences of `needles` in them.
fn scan(dir: &Path, needles: &[&str]) -> Result<(usize, usize)> {
    let mut files = 0;
    let mut found = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| io("read the demo home", e))? {
            let path = entry.map_err(|e| io("read the demo home", e))?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            files += 1;
            let bytes = std::fs::read(&path).map_err(|e| io("read a demo file", e))?;
            for n in needles {
                found += bytes
                    .windows(n.len())
                    .filter(|w| *w == n.as_bytes())
                    .count();
            }
        }
    }
    Ok((files, found))
}

struct Narrator<'a, W: Write> {
    out: &'a mut W,
    step: u32,
}

impl<W: Write> Narrator<'_, W> {
    fn title(&mut self, t: &str) -> Result<()> {
        writeln!(self.out, "\n=== {t} ===\n").map_err(|e| io("write", e))
    }
    fn step(&mut self, t: &str) -> Result<()> {
        self.step += 1;
        writeln!(self.out, "\n── Step {}: {t} ──", self.step).map_err(|e| io("write", e))
    }
    fn say(&mut self, t: &str) -> Result<()> {
        writeln!(self.out, "{t}").map_err(|e| io("write", e))
    }
    fn quote(&mut self, t: &str) -> Result<()> {
        writeln!(self.out, "    │ {t}").map_err(|e| io("write", e))
    }
}

fn io(op: &'static str, source: std::io::Error) -> CliError {
    CliError::Io { op, source }
}
