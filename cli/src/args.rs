//! The command-line tree: every subcommand and flag of `sealdesk`, as clap parses them. What
//! each command does is in [`crate::commands`]; this module only names and documents them (the
//! doc comments are the `--help` text).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use sealdesk_protocol::card::Role;

/// The relay URL used when neither `--relay` nor `SEALDESK_RELAY` is given.
const DEFAULT_RELAY: &str = "ws://127.0.0.1:7800/v1/ws";

/// End-to-end encrypted customer support with consent-gated key escrow.
#[derive(Parser, Debug)]
#[command(name = "sealdesk", version, long_about = None)]
pub struct Cli {
    /// The account's home directory (encrypted state). Default: ~/.sealdesk
    #[arg(long, env = "SEALDESK_HOME", global = true)]
    pub(crate) home: Option<PathBuf>,
    /// The relay's WebSocket URL: ws://HOST:PORT/v1/ws, or wss://HOST:PORT/v1/ws for a relay
    /// serving TLS. For a cluster, its nodes: repeat the flag, or separate the URLs with
    /// commas (also in SEALDESK_RELAY); a dropped connection moves to the next node, which
    /// must present the same relay keys.
    #[arg(
        long,
        value_name = "URL",
        env = "SEALDESK_RELAY",
        default_value = DEFAULT_RELAY,
        global = true,
        value_delimiter = ',',
        action = clap::ArgAction::Append
    )]
    pub(crate) relay: Vec<String>,
    /// PEM file of CA certificates to trust for a wss:// relay besides the system's roots: a
    /// private CA, or the relay's self-signed certificate.
    #[arg(long, value_name = "PEM", env = "SEALDESK_CA_FILE", global = true)]
    pub(crate) ca_file: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

impl Cli {
    /// Whether `--json` was given: the output, and an error, are printed as JSON.
    pub fn json(&self) -> bool {
        self.json
    }
}

#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
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
    /// Customer: restore an account on a new machine from the recovery code `init` showed:
    /// the same keys (peers see no change), its conversations synced from the relay. The code
    /// comes from --code, SEALDESK_RECOVERY_CODE or a prompt; the new home's passphrase as for
    /// `init`.
    Recover {
        /// The account's name on the relay.
        #[arg(long)]
        name: String,
        /// The recovery code (hyphens and case do not matter). Prefer SEALDESK_RECOVERY_CODE
        /// or the prompt: a command line may be kept in the shell's history.
        #[arg(long)]
        code: Option<String>,
    },
    /// Customer: make a new recovery code for this account and show it once; the code before
    /// (the one `init` showed, or the last one made here) stops working. Works for accounts
    /// made before recovery codes existed. Not offered to other roles.
    RecoveryCode,
    /// Change the home's passphrase (the old one from SEALDESK_PASSPHRASE or a prompt, the new
    /// one from SEALDESK_NEW_PASSPHRASE or a prompt, at least as long as `init` asks).
    #[command(subcommand)]
    Passphrase(PassphraseCmd),
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
        /// An open token from the org's web site (the token itself, or a file holding it), for
        /// an org that requires one.
        #[arg(long)]
        token: Option<String>,
    },
    /// Open tokens, as a business's web server issues them (needs no relay).
    #[command(subcommand)]
    Token(TokenCmd),
    /// Send a message, or a file with `--attach` (the text is then its caption).
    Send {
        /// The conversation id.
        #[arg(long)]
        conversation: String,
        /// A file to send: encrypted with a fresh key, uploaded in chunks, and announced by a
        /// signed message that carries its key and hash.
        #[arg(long)]
        attach: Option<PathBuf>,
        /// The text (optional with `--attach`).
        #[arg(required_unless_present = "attach")]
        text: Option<String>,
    },
    /// Received files: `attachment save`.
    #[command(subcommand)]
    Attachment(AttachmentCmd),
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
        /// Replace the `--export` file if it exists (refused otherwise).
        #[arg(long)]
        force: bool,
    },
    /// Interactive chat: full-screen on a terminal (conversation list, messages, input line),
    /// lines of text through a pipe or with --plain, JSON lines with --json.
    Chat {
        /// Start in this conversation.
        #[arg(long)]
        conversation: Option<String>,
        /// Lines of text even on a terminal (no full-screen window).
        #[arg(long)]
        plain: bool,
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
    Demo {
        /// Instead: serve the browser widget from DIR (the built `web/dist`) on a throwaway relay
        /// with a throwaway org, print its URL, and wait (Ctrl-C ends it).
        #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "web/dist")]
        web: Option<std::path::PathBuf>,
    },
    /// Agent: set a conversation's status (open, waiting or resolved), as a signed, encrypted
    /// status message the customer sees; `conversations` shows it.
    Status {
        /// The conversation id.
        #[arg(long)]
        conversation: String,
        /// open, waiting or resolved.
        status: String,
    },
    /// Agent or master: close a conversation as spam and block its customer's key for the org
    /// (its next open with the org, and its messages there, are refused).
    Block {
        /// The conversation id.
        #[arg(long)]
        conversation: String,
        /// spam or abuse.
        #[arg(long, default_value = "spam")]
        reason: String,
    },
    /// Master: lift the block of the customer with this key fingerprint.
    Unblock {
        /// The customer's fingerprint (as `sealdesk blocks` prints it).
        #[arg(long)]
        customer: String,
        /// The org (default: whichever of this master's orgs blocked the customer).
        #[arg(long)]
        org: Option<String>,
    },
    /// Agent or master: the customers blocked for the org.
    Blocks {
        /// The org (default: the master's orgs, or the orgs of the agent's conversations).
        #[arg(long)]
        org: Option<String>,
    },
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
pub(crate) enum TrusteeCmd {
    /// Process release requests: pending ones, then new ones as they arrive, until Ctrl-C.
    Serve {
        /// Process what is pending and exit.
        #[arg(long)]
        once: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum ConsentCmd {
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
pub(crate) enum DisputeCmd {
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
    /// Master: close a ticket: nothing more is released under it, the hold on erasing its
    /// conversation ends, and the customer is told.
    Close {
        /// The ticket id.
        #[arg(long)]
        ticket: String,
        /// Why (shown to the customer).
        #[arg(long, default_value = "resolved")]
        reason: String,
    },
}

/// `sealdesk attachment …`.
#[derive(Subcommand, Debug)]
pub(crate) enum AttachmentCmd {
    /// Fetch the file of message N (as `history` numbers it), check it against the signed
    /// message (every chunk, the size, the SHA-256) and write it. Never overwrites a file; the
    /// sender's file name is reduced to a plain name in the current directory (or in --out if
    /// it is a directory).
    Save {
        /// The conversation id.
        #[arg(long)]
        conversation: String,
        /// The message number shown by `history`.
        #[arg(long)]
        message: u64,
        /// Where to write it: a new file, or a directory to write it in.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum TranscriptCmd {
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
        /// Replace `--out` if it exists (refused otherwise).
        #[arg(long)]
        force: bool,
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
pub(crate) enum TokenCmd {
    /// Sign an open token for a visitor of the business's page with the web server key in FILE
    /// (certified with `org web-key`); prints the token.
    Issue {
        /// The web server key file (`org web-key --new-key` writes one).
        #[arg(long)]
        key: PathBuf,
        /// The org.
        #[arg(long)]
        org: String,
        /// The business's id for the visitor (1 to 64 bytes of text).
        #[arg(long)]
        visitor: String,
        /// The customer the token is for: its signing key (64 hex digits), a file holding its
        /// `sealdesk whoami --json`, or its home directory (opened with its passphrase).
        #[arg(long)]
        customer: String,
        /// How long the token is valid, in seconds (at most 86400).
        #[arg(long, default_value_t = 600)]
        valid_secs: u64,
    },
}

/// `org …` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum OrgCmd {
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
        /// Publish the policy without history hand-off: if a chat is transferred, the new
        /// agent cannot read the earlier messages (the customer's summary says so).
        #[arg(long)]
        no_history_handoff: bool,
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
    /// Re-certify an agent who lost its keys: the agent made a new home under the same name
    /// (`init --role agent`) and gave its `whoami --json` output as FILE; the relay binds the
    /// name to the new key, the old key no longer acts for it, and customers see a key change.
    Recertify {
        /// The agent's account name.
        #[arg(long)]
        name: String,
        /// The agent's new card: the output of its `sealdesk whoami --json`.
        #[arg(long, value_name = "FILE")]
        card: std::path::PathBuf,
        /// The org (needed only if this master runs several).
        #[arg(long)]
        org: Option<String>,
        /// The new fingerprint as the agent reads it from `sealdesk whoami`, compared with the
        /// card's.
        #[arg(long)]
        fingerprint: Option<String>,
    },
    /// Show an org's policy, parties and master fingerprint.
    Show {
        /// The org.
        org: String,
    },
    /// Master: certify the business's web server key (open tokens it signs are accepted), and
    /// with `--require` make the org require an open token to open a conversation.
    WebKey {
        /// The org.
        #[arg(long)]
        org: String,
        /// A name for the key (e.g. the site).
        #[arg(long, default_value = "www")]
        name: String,
        /// The web server key file to certify.
        #[arg(
            long,
            conflicts_with = "new_key",
            required_unless_present_any = ["new_key", "revoke"]
        )]
        key: Option<PathBuf>,
        /// Generate a new web server key, write it to this file (refused if it exists), and
        /// certify it.
        #[arg(long)]
        new_key: Option<PathBuf>,
        /// Also publish a policy version that requires open tokens.
        #[arg(long)]
        require: bool,
        /// After certifying the new key, revoke this earlier web key (its 64 hex digits, as
        /// `org web-key` printed them): tokens it signs are refused from then on.
        #[arg(long, value_name = "KEY")]
        retire: Option<String>,
        /// Revoke this web key (its 64 hex digits, as `org web-key` printed them) instead of
        /// certifying one: tokens it signs are refused from then on.
        #[arg(long, value_name = "KEY", conflicts_with_all = ["key", "new_key", "require", "retire"])]
        revoke: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum KeysCmd {
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
pub(crate) enum RoleArg {
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

#[derive(Subcommand, Debug)]
pub(crate) enum PassphraseCmd {
    /// Replace the passphrase, atomically: if it is interrupted, the old one still works.
    Change,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use clap::{CommandFactory as _, Parser as _};

    use super::*;

    /// A cluster's nodes: the flag repeated, comma-separated, or both, in the order given.
    #[test]
    fn relay_takes_a_clusters_nodes_repeated_or_comma_separated() {
        let cli = Cli::try_parse_from([
            "sealdesk",
            "--relay",
            "ws://a/v1/ws",
            "--relay",
            "ws://b/v1/ws,ws://c/v1/ws",
            "whoami",
        ])
        .unwrap();
        assert_eq!(cli.relay, ["ws://a/v1/ws", "ws://b/v1/ws", "ws://c/v1/ws"]);
        let one = Cli::try_parse_from(["sealdesk", "whoami", "--relay", "ws://x/v1/ws"]).unwrap();
        assert_eq!(one.relay, ["ws://x/v1/ws"]);
        let help = Cli::command().render_long_help().to_string();
        assert!(
            help.contains("For a cluster, its nodes: repeat the flag"),
            "{help}"
        );
    }
}
