//! The relay world of `cli.rs`, the one client test left here: a real relay on 127.0.0.1:0 with
//! a temporary directory, and accounts in temporary homes. Every other test that needs a relay
//! lives in the `tests/` crate on `sealdesk_tests::world`, which this crate cannot use (that
//! would compile a second copy of the client); `cli.rs` moves there with the `cli/` crate.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use sealdesk_client::{Account, Client, client::OrgSpec, vault::KdfParams};
use sealdesk_protocol::card::Role;
use sealdesk_server::{RunningRelay, config::RelayConfig};
use tempfile::TempDir;

/// The passphrase of every test account.
pub const PASS: &str = "correct horse battery staple";

/// A running relay and the directory everything lives in.
pub struct World {
    pub relay: RunningRelay,
    pub url: String,
    pub dir: TempDir,
}

impl World {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RelayConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: dir.path().join("relay"),
            ..RelayConfig::default()
        };
        let relay = sealdesk_server::spawn(cfg).await.unwrap();
        let url = relay.ws_url();
        Self { relay, url, dir }
    }

    pub fn home(&self, name: &str) -> PathBuf {
        self.dir.path().join("homes").join(name)
    }

    /// Creates, connects and registers an account.
    pub async fn user(&self, name: &str, role: Role) -> Client {
        let account =
            Account::create(&self.home(name), PASS, KdfParams::TESTING, name, role).unwrap();
        let mut c = Client::connect(account, &self.url).await.unwrap();
        c.register().await.unwrap();
        c
    }

    /// Reconnects an account from its home.
    pub async fn reopen(&self, name: &str) -> Client {
        let account = Account::open(&self.home(name), PASS).unwrap();
        Client::connect(account, &self.url).await.unwrap()
    }

    /// An org "acme": master, 3 trustees (2-of-3), 3 arbiters (2-of-3); agents certified.
    pub async fn org(&self, agents: &[&str], rotate: Option<u32>) -> Org {
        let mut master = self.user("acme-owner", Role::Master).await;
        let mut others = Vec::new();
        for i in 1..=3 {
            others.push(self.user(&format!("trustee-{i}"), Role::Trustee).await);
            others.push(self.user(&format!("arbiter-{i}"), Role::Arbiter).await);
        }
        master
            .create_org(&OrgSpec {
                name: "acme".into(),
                trustees: (1..=3).map(|i| format!("trustee-{i}")).collect(),
                trustee_threshold: 2,
                arbiters: (1..=3).map(|i| format!("arbiter-{i}")).collect(),
                arbiter_threshold: 2,
                retention_days: None,
                rotate_messages: rotate,
            })
            .await
            .unwrap();
        let mut agent_clients = Vec::new();
        for a in agents {
            agent_clients.push(self.user(a, Role::Agent).await);
            master.add_agent("acme", a).await.unwrap();
        }
        for c in others {
            c.close().await;
        }
        let fingerprint = master.account().fingerprint().to_string();
        Org {
            master,
            agents: agent_clients,
            fingerprint,
        }
    }
}

pub struct Org {
    pub master: Client,
    pub agents: Vec<Client>,
    pub fingerprint: String,
}

/// The texts of the verified messages of a conversation, in order.
pub fn texts(c: &Client, conv: &sealdesk_protocol::ids::ConversationId) -> Vec<String> {
    use sealdesk_client::{account::LogEntry, client::HistoryLine};
    c.history(conv)
        .unwrap()
        .lines
        .into_iter()
        .filter_map(|l| match l {
            HistoryLine::Item {
                entry: LogEntry::Message { sender, text, .. },
                ..
            } => Some(format!("{sender}: {text}")),
            _ => None,
        })
        .collect()
}
