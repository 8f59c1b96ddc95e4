//! Relay configuration: defaults, a TOML file, environment variables and flags.
//!
//! Layers apply in this order, later ones winning:
//!
//! 1. [`RelayConfig::default()`],
//! 2. the TOML file given with `--config` ([`RelayConfig::from_file`]),
//! 3. environment variables `SEALDESK_RELAY_<FIELD>` ([`RelayConfig::apply_env`]),
//! 4. command-line flags ([`RelayConfig::apply_overrides`]),
//!
//! and then [`RelayConfig::validate`] checks the result. [`RelayConfig::load`] does all of it.
//!
//! Durations are whole milliseconds (`…_ms`) or microseconds (`…_us`) so that the TOML stays
//! plain integers. Environment lookups are passed in as a function, so tests never touch the
//! process environment.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::ClockHandle;
use crate::error::{Error, Result};

/// Prefix of every environment variable the relay reads.
pub const ENV_PREFIX: &str = "SEALDESK_RELAY_";

/// Largest header a server WebSocket frame can carry (2 + 8 length bytes, rounded up to
/// include a mask so the bound also holds for client frames).
const MAX_FRAME_HEADER: usize = 14;

/// hyper refuses a read buffer below 8 KiB, so the header limit cannot go lower.
const MIN_HTTP_HEADER_SIZE: usize = 8 * 1024;

/// Sanity cap on message sizes: far below tungstenite's own 16 MiB / 64 MiB defaults, and any
/// value above it is far more likely a typo than a plan.
const MAX_MESSAGE_SIZE_CAP: usize = 16 * 1024 * 1024;

/// The whole relay configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Address to listen on. Env `SEALDESK_RELAY_LISTEN`, flag `--listen`.
    pub listen: SocketAddr,
    /// Directory holding the relay's database. Env `SEALDESK_RELAY_DATA`, flag `--data`.
    pub data_dir: PathBuf,
    /// Where the relay keeps its state: `sled` in [`data_dir`](Self::data_dir) (the default),
    /// or `postgres` in the database at [`database_url`](Self::database_url), which several
    /// relay nodes can share. Env `SEALDESK_RELAY_STORE`, flag `--store`.
    pub store: StoreKind,
    /// The PostgreSQL database (`postgres://user@host:port/db` or `host=… dbname=…`) when
    /// [`store`](Self::store) is `postgres`. Env `SEALDESK_RELAY_DATABASE_URL`, flag
    /// `--database-url`. Prefer a password file (`PGPASSFILE`) to a password in the URL:
    /// `--check-config` prints the URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Bring the database's schema up to this build's at start (`postgres` only); without it
    /// a relay refuses a database whose schema is behind. Env `SEALDESK_RELAY_MIGRATE`
    /// (`true`/`false`), flag `--migrate`.
    pub migrate: bool,
    /// A file holding the relay's identity (its log key: the 64 secret bytes every node of a
    /// cluster shares, so that tree heads verify under one pinned key). When set, the relay
    /// stores this key if its store has none and refuses to start if the store holds another
    /// one. Env `SEALDESK_RELAY_LOG_KEY_FILE`, flag `--log-key-file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_key_file: Option<PathBuf>,
    /// Cluster mode (`postgres` only): how often, in milliseconds, a node reads every
    /// conversation with members connected to it from its push cursor, so that a lost wake-up
    /// only delays a push. Env `SEALDESK_RELAY_CLUSTER_CATCH_UP_MS`.
    pub cluster_catch_up_ms: u64,
    /// Cluster mode (`postgres` only): listen for the other nodes' wake-ups (`LISTEN`); with
    /// `false`, the periodic catch-up alone delivers across nodes. Env
    /// `SEALDESK_RELAY_CLUSTER_WAKEUPS` (`true`/`false`).
    pub cluster_wakeups: bool,
    /// Cluster mode (`postgres` only): how long, in milliseconds, a node's record of the agents
    /// connected to it counts them online for the other nodes' agent pick unless refreshed
    /// (every `cluster_catch_up_ms`, and at an agent's first connection and last
    /// disconnection): a node that crashes stops counting its agents online within this
    /// time. Unset: three catch-up periods; set, at least two, so one late refresh does not
    /// lapse a record. Env `SEALDESK_RELAY_CLUSTER_PRESENCE_TTL_MS`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_presence_ttl_ms: Option<u64>,
    /// PEM certificate chain; when set (with [`tls_key`](Self::tls_key)) the relay speaks
    /// `https`/`wss` only. Env `SEALDESK_RELAY_TLS_CERT`, flag `--tls-cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching [`tls_cert`](Self::tls_cert). Env `SEALDESK_RELAY_TLS_KEY`,
    /// flag `--tls-key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Log output format. Env `SEALDESK_RELAY_LOG_FORMAT`, flag `--log-format`.
    pub log_format: LogFormat,
    /// Directory of built browser pages to serve from the relay's origin (`crate::web`).
    /// Flag `--web-root`, env `SEALDESK_RELAY_WEB_ROOT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_root: Option<PathBuf>,
    /// Reverse proxies whose `X-Forwarded-For` names the client the per-source limits count
    /// (see [`crate::limits::source_of`]); empty: every peer is its own source. Env
    /// `SEALDESK_RELAY_TRUSTED_PROXIES` (comma-separated), flag `--trusted-proxy` (repeated).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<IpAddr>,
    /// Resource limits (the `[limits]` table). Each field can also be set with
    /// `SEALDESK_RELAY_<FIELD>` in upper case, e.g. `SEALDESK_RELAY_MAX_CONNECTIONS`.
    pub limits: Limits,
    /// The clock the relay stamps and checks times with: the system's, unless a test passes
    /// a [`TestClock`](crate::clock::TestClock). Not read from a file, the environment or flags.
    #[serde(skip)]
    pub clock: ClockHandle,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7800)),
            data_dir: PathBuf::from("./sealdesk-data"),
            store: StoreKind::Sled,
            database_url: None,
            migrate: false,
            log_key_file: None,
            cluster_catch_up_ms: 2_000,
            cluster_wakeups: true,
            cluster_presence_ttl_ms: None,
            tls_cert: None,
            tls_key: None,
            log_format: LogFormat::Human,
            web_root: None,
            trusted_proxies: Vec::new(),
            limits: Limits::default(),
            clock: ClockHandle::System,
        }
    }
}

/// The relay's storage engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// sled, embedded, in the data directory: one relay.
    #[default]
    Sled,
    /// A PostgreSQL database: one relay or a cluster of them.
    Postgres,
}

impl FromStr for StoreKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sled" => Ok(StoreKind::Sled),
            "postgres" | "postgresql" => Ok(StoreKind::Postgres),
            _ => Err(Error::Config(format!(
                "store must be `sled` or `postgres`, not `{s}`"
            ))),
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreKind::Sled => "sled",
            StoreKind::Postgres => "postgres",
        })
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            _ => Err(Error::Config(format!(
                "log format must be `human` or `json`, not `{s}`"
            ))),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        })
    }
}

/// Bounds on everything a peer can make the relay hold or do.
///
/// The defaults are sized for ~20 000 mostly idle connections on a small machine: about
/// 16 KiB of socket buffers per idle connection instead of tungstenite's 256 KiB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest incoming WebSocket frame payload, in bytes.
    pub max_frame_size: usize,
    /// Largest incoming (reassembled) or outgoing WebSocket message, in bytes.
    pub max_message_size: usize,
    /// Per-connection read buffer, allocated up front, in bytes.
    pub read_buffer_size: usize,
    /// Outgoing bytes buffered before a socket write, in bytes.
    pub write_buffer_size: usize,
    /// Hard cap on buffered outgoing bytes while the socket is blocked. It must hold
    /// `write_buffer_size` plus one maximal message and its header, otherwise tungstenite
    /// refuses a legal frame; hence 128 KiB rather than 64 KiB by default.
    pub max_write_buffer_size: usize,
    /// Frames queued for one connection before it counts as a slow consumer and is closed.
    pub outbound_queue: usize,
    /// Largest HTTP request head (request line plus headers), in bytes; at least 8192.
    pub max_http_header_size: usize,
    /// Time allowed for the TLS handshake and for reading HTTP request headers.
    pub handshake_timeout_ms: u64,
    /// Time a new WebSocket session has to authenticate (enforced by the protocol layer).
    pub auth_timeout_ms: u64,
    /// A connection that sends nothing (not even a pong) for this long is closed.
    pub idle_timeout_ms: u64,
    /// Interval between keepalive pings; must be shorter than `idle_timeout_ms`.
    pub ping_interval_ms: u64,
    /// Simultaneous connections; further ones get HTTP 503.
    pub max_connections: usize,
    /// Sustained incoming frames per second per connection (token-bucket refill rate).
    pub max_frames_per_second: u32,
    /// Incoming frames a connection may send in a burst (token-bucket capacity).
    pub frame_burst: u32,
    /// Most durability waiters served by one group-commit flush.
    pub commit_max_batch: usize,
    /// Messages one connection may have stored but not yet acknowledged (waiting for their
    /// group commit) while the relay reads its next requests; 1 serves requests one at a time.
    pub max_pipelined: usize,
    /// Longest a group commit waits for more writers before flushing, in microseconds
    /// (0 flushes as soon as one writer waits).
    pub commit_max_delay_us: u64,
    /// Interval between retention sweeps that delete expired data.
    pub retention_sweep_interval_ms: u64,
    /// On shutdown, how long sessions get to finish before the relay stops waiting.
    pub shutdown_grace_ms: u64,
    /// WebSocket upgrades one source address may make per minute, sustained (its source:
    /// [`crate::limits::source_of`]; IPv6 counted by /64).
    pub source_connections_per_minute: u32,
    /// WebSocket upgrades one source address may make in a burst.
    pub source_connection_burst: u32,
    /// Registrations one source address may make per minute, sustained.
    pub source_registrations_per_minute: u32,
    /// Registrations one source address may make in a burst.
    pub source_registration_burst: u32,
    /// Registrations the whole relay takes per minute, sustained.
    pub registrations_per_minute: u32,
    /// Registrations the whole relay takes in a burst.
    pub registration_burst: u32,
    /// Failed authentications one source address may make per minute, sustained; past its
    /// burst the source's connections are refused before the challenge.
    pub source_auth_failures_per_minute: u32,
    /// Failed authentications one source address may make in a burst.
    pub source_auth_failure_burst: u32,
    /// Most source addresses (and accounts, and conversations) each limit tracks at once;
    /// bounds their memory, and in a cluster each limit's rows in the shared database.
    pub max_tracked_sources: usize,
    /// Conversations a customer may have open with one org at once.
    pub open_conversations_per_org: usize,
    /// A conversation with no new item for this long (seconds) no longer counts as open.
    pub open_conversation_idle_secs: u64,
    /// Conversations one customer may open per hour (also the burst).
    pub conversation_opens_per_hour: u32,
    /// Messages one conversation takes per minute, sustained.
    pub conversation_messages_per_minute: u32,
    /// Messages one conversation takes in a burst.
    pub conversation_message_burst: u32,
    /// WebSocket connections one source address may hold open at once (its source:
    /// [`crate::limits::source_of`]); one more gets HTTP 429 until one of them closes.
    pub max_connections_per_source: usize,
    /// Largest attachment (its plaintext size, in bytes); a larger upload is refused
    /// `too_large`.
    pub max_attachment_bytes: u64,
    /// Attachment bytes (ciphertext) one account may have stored; past it an upload is
    /// refused `quota_exceeded`, with a warning from 80%.
    pub stored_bytes_per_account: u64,
    /// Attachment bytes (ciphertext) the conversations of one org may have stored.
    pub stored_bytes_per_org: u64,
    /// An attachment upload not completed, or not followed by a message from its uploader,
    /// within this many seconds is deleted by the retention sweep.
    pub attachment_upload_expiry_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_size: 64 * 1024,
            max_message_size: 64 * 1024,
            read_buffer_size: 4 * 1024,
            write_buffer_size: 8 * 1024,
            max_write_buffer_size: 128 * 1024,
            outbound_queue: 256,
            max_http_header_size: 8 * 1024,
            handshake_timeout_ms: 10_000,
            auth_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            ping_interval_ms: 20_000,
            max_connections: 20_000,
            max_frames_per_second: 200,
            frame_burst: 400,
            commit_max_batch: 1024,
            max_pipelined: 64,
            commit_max_delay_us: 250,
            retention_sweep_interval_ms: 300_000,
            shutdown_grace_ms: 5_000,
            source_connections_per_minute: 600,
            source_connection_burst: 1_000,
            source_registrations_per_minute: 20,
            source_registration_burst: 100,
            registrations_per_minute: 600,
            registration_burst: 1_200,
            source_auth_failures_per_minute: 10,
            source_auth_failure_burst: 30,
            max_tracked_sources: 100_000,
            open_conversations_per_org: 4,
            open_conversation_idle_secs: 86_400,
            conversation_opens_per_hour: 20,
            conversation_messages_per_minute: 300,
            conversation_message_burst: 600,
            max_connections_per_source: 1_000,
            max_attachment_bytes: 10 * 1024 * 1024,
            stored_bytes_per_account: 100 * 1024 * 1024,
            stored_bytes_per_org: 10 * 1024 * 1024 * 1024,
            attachment_upload_expiry_secs: 86_400,
        }
    }
}

/// One line of documentation per [`Limits`] field, in declaration order, for `--help`.
/// A unit test keeps it in step with the struct.
pub const LIMIT_DOCS: &[(&str, &str)] = &[
    (
        "max_frame_size",
        "largest incoming WebSocket frame payload, bytes",
    ),
    (
        "max_message_size",
        "largest WebSocket message in or out, bytes",
    ),
    ("read_buffer_size", "per-connection read buffer, bytes"),
    (
        "write_buffer_size",
        "outgoing bytes buffered before a socket write",
    ),
    (
        "max_write_buffer_size",
        "cap on buffered outgoing bytes (> write buffer + one message)",
    ),
    (
        "outbound_queue",
        "queued frames per connection before closing it as a slow consumer",
    ),
    (
        "max_http_header_size",
        "largest HTTP request head, bytes (>= 8192)",
    ),
    (
        "handshake_timeout_ms",
        "TLS handshake and HTTP header read timeout",
    ),
    ("auth_timeout_ms", "time a session has to authenticate"),
    ("idle_timeout_ms", "close a connection silent for this long"),
    (
        "ping_interval_ms",
        "keepalive ping interval (< idle_timeout_ms)",
    ),
    (
        "max_connections",
        "simultaneous connections; more get HTTP 503",
    ),
    (
        "max_frames_per_second",
        "sustained incoming frames per second per connection",
    ),
    ("frame_burst", "incoming frame burst per connection"),
    ("commit_max_batch", "most writers sharing one durable flush"),
    (
        "max_pipelined",
        "messages per connection awaiting their flush while more are read",
    ),
    (
        "commit_max_delay_us",
        "longest wait for more writers before a flush, microseconds",
    ),
    (
        "retention_sweep_interval_ms",
        "interval between retention sweeps",
    ),
    (
        "shutdown_grace_ms",
        "time sessions get to finish on shutdown",
    ),
    (
        "source_connections_per_minute",
        "WebSocket upgrades per source address per minute",
    ),
    (
        "source_connection_burst",
        "WebSocket upgrades per source address in a burst",
    ),
    (
        "source_registrations_per_minute",
        "registrations per source address per minute",
    ),
    (
        "source_registration_burst",
        "registrations per source address in a burst",
    ),
    (
        "registrations_per_minute",
        "registrations per minute, overall",
    ),
    ("registration_burst", "registrations in a burst, overall"),
    (
        "source_auth_failures_per_minute",
        "failed authentications per source address per minute",
    ),
    (
        "source_auth_failure_burst",
        "failed authentications per source address in a burst",
    ),
    (
        "max_tracked_sources",
        "most addresses, accounts or conversations one limit tracks",
    ),
    (
        "open_conversations_per_org",
        "conversations a customer may have open with one org",
    ),
    (
        "open_conversation_idle_secs",
        "a conversation idle this long no longer counts as open",
    ),
    (
        "conversation_opens_per_hour",
        "conversations one customer may open per hour",
    ),
    (
        "conversation_messages_per_minute",
        "messages per conversation per minute",
    ),
    (
        "conversation_message_burst",
        "messages per conversation in a burst",
    ),
    (
        "max_connections_per_source",
        "WebSocket connections one source address holds open at once; more get HTTP 429",
    ),
    ("max_attachment_bytes", "largest attachment, bytes"),
    (
        "stored_bytes_per_account",
        "attachment bytes one account may store",
    ),
    (
        "stored_bytes_per_org",
        "attachment bytes one org's conversations may store",
    ),
    (
        "attachment_upload_expiry_secs",
        "an upload not completed and sent within this long is deleted",
    ),
];

impl Limits {
    /// [`handshake_timeout_ms`](Self::handshake_timeout_ms) as a `Duration`.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    /// [`auth_timeout_ms`](Self::auth_timeout_ms) as a `Duration`.
    pub fn auth_timeout(&self) -> Duration {
        Duration::from_millis(self.auth_timeout_ms)
    }

    /// [`idle_timeout_ms`](Self::idle_timeout_ms) as a `Duration`.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// [`ping_interval_ms`](Self::ping_interval_ms) as a `Duration`.
    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms)
    }

    /// [`commit_max_delay_us`](Self::commit_max_delay_us) as a `Duration`.
    pub fn commit_max_delay(&self) -> Duration {
        Duration::from_micros(self.commit_max_delay_us)
    }

    /// [`retention_sweep_interval_ms`](Self::retention_sweep_interval_ms) as a `Duration`.
    pub fn retention_sweep_interval(&self) -> Duration {
        Duration::from_millis(self.retention_sweep_interval_ms)
    }

    /// [`shutdown_grace_ms`](Self::shutdown_grace_ms) as a `Duration`.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// Checks each limit and the relations between them.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first offending setting.
    pub fn validate(&self) -> Result<()> {
        let nonzero: [(&str, u64); 37] = [
            ("max_frame_size", self.max_frame_size as u64),
            ("max_message_size", self.max_message_size as u64),
            ("read_buffer_size", self.read_buffer_size as u64),
            ("write_buffer_size", self.write_buffer_size as u64),
            ("max_write_buffer_size", self.max_write_buffer_size as u64),
            ("outbound_queue", self.outbound_queue as u64),
            ("max_http_header_size", self.max_http_header_size as u64),
            ("handshake_timeout_ms", self.handshake_timeout_ms),
            ("auth_timeout_ms", self.auth_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("ping_interval_ms", self.ping_interval_ms),
            ("max_connections", self.max_connections as u64),
            (
                "max_frames_per_second",
                u64::from(self.max_frames_per_second),
            ),
            ("frame_burst", u64::from(self.frame_burst)),
            ("commit_max_batch", self.commit_max_batch as u64),
            ("max_pipelined", self.max_pipelined as u64),
            (
                "retention_sweep_interval_ms",
                self.retention_sweep_interval_ms,
            ),
            ("shutdown_grace_ms", self.shutdown_grace_ms),
            (
                "source_connections_per_minute",
                u64::from(self.source_connections_per_minute),
            ),
            (
                "source_connection_burst",
                u64::from(self.source_connection_burst),
            ),
            (
                "source_registrations_per_minute",
                u64::from(self.source_registrations_per_minute),
            ),
            (
                "source_registration_burst",
                u64::from(self.source_registration_burst),
            ),
            (
                "registrations_per_minute",
                u64::from(self.registrations_per_minute),
            ),
            ("registration_burst", u64::from(self.registration_burst)),
            (
                "source_auth_failures_per_minute",
                u64::from(self.source_auth_failures_per_minute),
            ),
            (
                "source_auth_failure_burst",
                u64::from(self.source_auth_failure_burst),
            ),
            ("max_tracked_sources", self.max_tracked_sources as u64),
            (
                "open_conversations_per_org",
                self.open_conversations_per_org as u64,
            ),
            (
                "open_conversation_idle_secs",
                self.open_conversation_idle_secs,
            ),
            (
                "conversation_opens_per_hour",
                u64::from(self.conversation_opens_per_hour),
            ),
            (
                "conversation_messages_per_minute",
                u64::from(self.conversation_messages_per_minute),
            ),
            (
                "conversation_message_burst",
                u64::from(self.conversation_message_burst),
            ),
            (
                "max_connections_per_source",
                self.max_connections_per_source as u64,
            ),
            ("max_attachment_bytes", self.max_attachment_bytes),
            ("stored_bytes_per_account", self.stored_bytes_per_account),
            ("stored_bytes_per_org", self.stored_bytes_per_org),
            (
                "attachment_upload_expiry_secs",
                self.attachment_upload_expiry_secs,
            ),
        ];
        if let Some((name, _)) = nonzero.iter().find(|(_, v)| *v == 0) {
            return Err(Error::Config(format!(
                "limits.{name} must be greater than zero"
            )));
        }
        if self.max_message_size > MAX_MESSAGE_SIZE_CAP {
            return Err(Error::Config(format!(
                "limits.max_message_size ({}) exceeds the {MAX_MESSAGE_SIZE_CAP}-byte cap",
                self.max_message_size
            )));
        }
        if self.max_frame_size > self.max_message_size {
            return Err(Error::Config(format!(
                "limits.max_frame_size ({}) is larger than limits.max_message_size ({})",
                self.max_frame_size, self.max_message_size
            )));
        }
        if self.read_buffer_size > self.max_frame_size {
            return Err(Error::Config(format!(
                "limits.read_buffer_size ({}) is larger than limits.max_frame_size ({}); \
                 the extra buffer could never be used",
                self.read_buffer_size, self.max_frame_size
            )));
        }
        if self.write_buffer_size > self.max_message_size {
            return Err(Error::Config(format!(
                "limits.write_buffer_size ({}) is larger than limits.max_message_size ({})",
                self.write_buffer_size, self.max_message_size
            )));
        }
        let needed = self.write_buffer_size + self.max_message_size + MAX_FRAME_HEADER;
        if self.max_write_buffer_size < needed {
            return Err(Error::Config(format!(
                "limits.max_write_buffer_size ({}) must be at least write_buffer_size + \
                 max_message_size + {MAX_FRAME_HEADER} = {needed}",
                self.max_write_buffer_size
            )));
        }
        if self.max_http_header_size < MIN_HTTP_HEADER_SIZE {
            return Err(Error::Config(format!(
                "limits.max_http_header_size ({}) must be at least {MIN_HTTP_HEADER_SIZE}",
                self.max_http_header_size
            )));
        }
        if self.ping_interval_ms >= self.idle_timeout_ms {
            return Err(Error::Config(format!(
                "limits.ping_interval_ms ({}) must be shorter than limits.idle_timeout_ms ({}), \
                 or live but quiet clients would time out",
                self.ping_interval_ms, self.idle_timeout_ms
            )));
        }
        if self.frame_burst < self.max_frames_per_second {
            return Err(Error::Config(format!(
                "limits.frame_burst ({}) must be at least limits.max_frames_per_second ({})",
                self.frame_burst, self.max_frames_per_second
            )));
        }
        Ok(())
    }
}

/// Values given on the command line; `None` leaves the lower layers' value in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data`.
    pub data_dir: Option<PathBuf>,
    /// `--store`.
    pub store: Option<StoreKind>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--migrate` (given: `Some(true)`).
    pub migrate: Option<bool>,
    /// `--log-key-file`.
    pub log_key_file: Option<PathBuf>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
    /// `--max-connections`.
    pub max_connections: Option<usize>,
    /// `--web-root`.
    pub web_root: Option<PathBuf>,
    /// `--trusted-proxy` (each one given).
    pub trusted_proxies: Option<Vec<IpAddr>>,
    /// `--limit NAME=VALUE` (each one given), applied last.
    pub limits: Vec<(String, u64)>,
}

impl RelayConfig {
    /// Builds the effective configuration from all layers and validates it.
    ///
    /// `env` looks up one environment variable (pass `|k| std::env::var(k).ok()` in `main`).
    ///
    /// # Errors
    ///
    /// [`Error::File`] if the file cannot be read or parsed, [`Error::Config`] for a bad
    /// environment value or a configuration that fails [`validate`](Self::validate).
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Self> {
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        config.apply_env(env)?;
        config.apply_overrides(overrides);
        config.set_limits(&overrides.limits)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads a TOML configuration file; missing fields keep their defaults.
    ///
    /// # Errors
    ///
    /// [`Error::File`] if the file cannot be read, is not valid TOML, or has unknown fields.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
        Self::from_toml(&text).map_err(|e| match e {
            Error::Config(detail) => Error::File {
                path: path.to_owned(),
                detail,
            },
            other => other,
        })
    }

    /// Parses TOML text; missing fields keep their defaults. Does not validate.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the text is not valid TOML or has unknown fields.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Config(e.message().to_owned()))
    }

    /// Renders the configuration as TOML (what `--check-config` prints).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if a value cannot be represented (a non-UTF-8 path).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::Config(e.to_string()))
    }

    /// Applies `SEALDESK_RELAY_*` variables: `LISTEN`, `DATA`, `TLS_CERT`, `TLS_KEY`,
    /// `LOG_FORMAT`, and the upper-cased name of every [`Limits`] field. Empty values are
    /// ignored.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable whose value does not parse.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<()> {
        let var = |name: &str| {
            let key = format!("{ENV_PREFIX}{name}");
            env(&key).filter(|v| !v.trim().is_empty()).map(|v| (key, v))
        };
        if let Some((key, v)) = var("LISTEN") {
            self.listen = v.trim().parse().map_err(|_| {
                Error::Config(format!(
                    "{key}: `{v}` is not a socket address like 127.0.0.1:7800"
                ))
            })?;
        }
        if let Some((_, v)) = var("DATA") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some((key, v)) = var("STORE") {
            self.store = v
                .parse()
                .map_err(|e: Error| Error::Config(format!("{key}: {e}")))?;
        }
        if let Some((_, v)) = var("DATABASE_URL") {
            self.database_url = Some(v);
        }
        if let Some((key, v)) = var("MIGRATE") {
            self.migrate = v
                .trim()
                .parse()
                .map_err(|_| Error::Config(format!("{key}: `{v}` is not `true` or `false`")))?;
        }
        if let Some((_, v)) = var("LOG_KEY_FILE") {
            self.log_key_file = Some(PathBuf::from(v));
        }
        if let Some((key, v)) = var("CLUSTER_CATCH_UP_MS") {
            self.cluster_catch_up_ms = v.trim().parse().map_err(|_| {
                Error::Config(format!("{key}: `{v}` is not a non-negative integer"))
            })?;
        }
        if let Some((key, v)) = var("CLUSTER_PRESENCE_TTL_MS") {
            self.cluster_presence_ttl_ms = Some(v.trim().parse().map_err(|_| {
                Error::Config(format!("{key}: `{v}` is not a non-negative integer"))
            })?);
        }
        if let Some((key, v)) = var("CLUSTER_WAKEUPS") {
            self.cluster_wakeups = v
                .trim()
                .parse()
                .map_err(|_| Error::Config(format!("{key}: `{v}` is not `true` or `false`")))?;
        }
        if let Some((_, v)) = var("TLS_CERT") {
            self.tls_cert = Some(PathBuf::from(v));
        }
        if let Some((_, v)) = var("TLS_KEY") {
            self.tls_key = Some(PathBuf::from(v));
        }
        if let Some((key, v)) = var("TRUSTED_PROXIES") {
            self.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| {
                    a.parse()
                        .map_err(|_| Error::Config(format!("{key}: `{a}` is not an IP address")))
                })
                .collect::<Result<_>>()?;
        }
        if let Some((key, v)) = var("LOG_FORMAT") {
            self.log_format = v
                .parse()
                .map_err(|e: Error| Error::Config(format!("{key}: {e}")))?;
        }

        // Every limit is a non-negative integer, so go through the serialized table: adding a
        // field to `Limits` makes it settable from the environment with no code here.
        let mut table = toml::Table::try_from(&self.limits)
            .map_err(|e| Error::Config(format!("limits: {e}")))?;
        let mut changed = false;
        for (field, value) in table.iter_mut() {
            if let Some((key, v)) = var(&field.to_ascii_uppercase()) {
                let n: i64 = v.trim().parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    Error::Config(format!("{key}: `{v}` is not a non-negative integer"))
                })?;
                *value = toml::Value::Integer(n);
                changed = true;
            }
        }
        if changed {
            self.limits = table.try_into().map_err(|e: toml::de::Error| {
                Error::Config(format!("limits from environment: {}", e.message()))
            })?;
        }
        Ok(())
    }

    /// Applies command-line values over everything else.
    pub fn apply_overrides(&mut self, o: &Overrides) {
        if let Some(listen) = o.listen {
            self.listen = listen;
        }
        if let Some(dir) = &o.data_dir {
            self.data_dir.clone_from(dir);
        }
        if let Some(store) = o.store {
            self.store = store;
        }
        if let Some(url) = &o.database_url {
            self.database_url = Some(url.clone());
        }
        if let Some(migrate) = o.migrate {
            self.migrate = migrate;
        }
        if let Some(file) = &o.log_key_file {
            self.log_key_file = Some(file.clone());
        }
        if let Some(cert) = &o.tls_cert {
            self.tls_cert = Some(cert.clone());
        }
        if let Some(key) = &o.tls_key {
            self.tls_key = Some(key.clone());
        }
        if let Some(format) = o.log_format {
            self.log_format = format;
        }
        if let Some(n) = o.max_connections {
            self.limits.max_connections = n;
        }
        if let Some(dir) = &o.web_root {
            self.web_root = Some(dir.clone());
        }
        if let Some(proxies) = &o.trusted_proxies {
            self.trusted_proxies.clone_from(proxies);
        }
    }

    /// Sets limits by name (`--limit NAME=VALUE`).
    ///
    /// # Errors
    /// [`Error::Config`] naming a limit that does not exist or a value it cannot hold.
    pub fn set_limits(&mut self, values: &[(String, u64)]) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let mut table = toml::Table::try_from(&self.limits)
            .map_err(|e| Error::Config(format!("limits: {e}")))?;
        for (name, value) in values {
            let slot = table
                .get_mut(name.as_str())
                .ok_or_else(|| Error::Config(format!("--limit: no limit named `{name}`")))?;
            let n = i64::try_from(*value)
                .map_err(|_| Error::Config(format!("--limit {name}: {value} is too large")))?;
            *slot = toml::Value::Integer(n);
        }
        self.limits = table
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config(format!("--limit: {}", e.message())))?;
        Ok(())
    }

    /// Checks the configuration as a whole.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first problem: a certificate without a key (or the other
    /// way round), an empty data directory, or a bad limit (see [`Limits::validate`]).
    pub fn validate(&self) -> Result<()> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err(Error::Config("tls_cert is set but tls_key is not".into()));
            }
            (None, Some(_)) => {
                return Err(Error::Config("tls_key is set but tls_cert is not".into()));
            }
            _ => {}
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(Error::Config("data_dir must not be empty".into()));
        }
        if self.store == StoreKind::Postgres
            && self
                .database_url
                .as_deref()
                .is_none_or(|u| u.trim().is_empty())
        {
            return Err(Error::Config(
                "store = \"postgres\" needs database_url (--database-url)".into(),
            ));
        }
        let refresh = self.cluster_catch_up_ms.max(MIN_CATCH_UP_MS);
        if let Some(ttl) = self.cluster_presence_ttl_ms
            && ttl < refresh.saturating_mul(2)
        {
            return Err(Error::Config(format!(
                "cluster_presence_ttl_ms ({ttl}) must be at least twice cluster_catch_up_ms \
                 ({}): a node refreshes its agents' presence once per catch-up, and one late \
                 refresh must not make them look offline",
                self.cluster_catch_up_ms
            )));
        }
        self.limits.validate()
    }

    /// How long a cluster node's record of its connected agents lasts unless refreshed:
    /// `cluster_presence_ttl_ms`, or three catch-up periods.
    pub fn cluster_presence_ttl(&self) -> std::time::Duration {
        let refresh = self.cluster_catch_up_ms.max(MIN_CATCH_UP_MS);
        std::time::Duration::from_millis(
            self.cluster_presence_ttl_ms
                .unwrap_or_else(|| refresh.saturating_mul(3)),
        )
    }

    /// Whether the relay serves TLS (`https`/`wss`).
    pub fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }
}

/// The shortest catch-up period a cluster node runs (a shorter `cluster_catch_up_ms` is
/// raised to it).
pub const MIN_CATCH_UP_MS: u64 = 10;

/// The environment variable for a [`Limits`] field or top-level setting name.
pub fn env_var_for(field: &str) -> String {
    format!("{ENV_PREFIX}{}", field.to_ascii_uppercase())
}

/// The names of all [`Limits`] fields as serialized (for tests and help text).
pub fn limit_names() -> BTreeSet<String> {
    toml::Table::try_from(Limits::default())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_are_valid() {
        RelayConfig::default().validate().unwrap();
        assert_eq!(RelayConfig::default().listen.to_string(), "127.0.0.1:7800");
    }

    #[test]
    fn the_presence_time_to_live_is_three_periods_unless_set_and_at_least_two() {
        use std::time::Duration;
        let mut config = RelayConfig::default();
        assert_eq!(config.cluster_presence_ttl(), Duration::from_secs(6));
        config
            .apply_env(env_of(&[(
                "SEALDESK_RELAY_CLUSTER_PRESENCE_TTL_MS",
                "3999",
            )]))
            .unwrap();
        let err = config.validate().unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("cluster_presence_ttl_ms (3999)")),
            "{err:?}"
        );
        config.cluster_presence_ttl_ms = Some(4_000);
        config.validate().unwrap();
        assert_eq!(config.cluster_presence_ttl(), Duration::from_secs(4));
        // A catch-up below the shortest period runs at the shortest: three of those.
        config.cluster_presence_ttl_ms = None;
        config.cluster_catch_up_ms = 0;
        config.validate().unwrap();
        assert_eq!(config.cluster_presence_ttl(), Duration::from_millis(30));
        assert!(matches!(
            config.apply_env(env_of(&[(
                "SEALDESK_RELAY_CLUSTER_PRESENCE_TTL_MS",
                "soon"
            )])),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn every_limit_is_documented() {
        let documented: BTreeSet<String> = LIMIT_DOCS
            .iter()
            .map(|(name, _)| name.to_string())
            .collect();
        assert_eq!(documented, limit_names());
    }

    #[test]
    fn toml_round_trip() {
        let config = RelayConfig {
            tls_cert: Some("/etc/cert.pem".into()),
            tls_key: Some("/etc/key.pem".into()),
            limits: Limits {
                max_connections: 7,
                ..Limits::default()
            },
            ..RelayConfig::default()
        };
        let text = config.to_toml().unwrap();
        assert_eq!(RelayConfig::from_toml(&text).unwrap(), config);
    }

    #[test]
    fn partial_file_keeps_defaults() {
        let config =
            RelayConfig::from_toml("listen = \"0.0.0.0:9000\"\n[limits]\nouter_queue_x = 1\n");
        assert!(
            matches!(config, Err(Error::Config(_))),
            "unknown limit field must be refused"
        );

        let config =
            RelayConfig::from_toml("listen = \"0.0.0.0:9000\"\n[limits]\noutbound_queue = 9\n")
                .unwrap();
        assert_eq!(config.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(config.limits.outbound_queue, 9);
        assert_eq!(
            config.limits.max_frame_size,
            Limits::default().max_frame_size
        );
    }

    #[test]
    fn unknown_top_level_field_is_refused() {
        assert!(matches!(
            RelayConfig::from_toml("lisen = \"x\""),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relay.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:1111\"\ndata_dir = \"/from/file\"\nlog_format = \"json\"\n\
             [limits]\nmax_connections = 10\noutbound_queue = 11\n",
        )
        .unwrap();
        let env = env_of(&[
            ("SEALDESK_RELAY_LISTEN", "127.0.0.1:2222"),
            ("SEALDESK_RELAY_MAX_CONNECTIONS", "20"),
            ("SEALDESK_RELAY_DATA", ""),
        ]);
        let overrides = Overrides {
            max_connections: Some(30),
            ..Overrides::default()
        };
        let config = RelayConfig::load(Some(&file), env, &overrides).unwrap();
        assert_eq!(
            config.listen.to_string(),
            "127.0.0.1:2222",
            "env beats file"
        );
        assert_eq!(
            config.data_dir,
            PathBuf::from("/from/file"),
            "empty env is ignored"
        );
        assert_eq!(config.log_format, LogFormat::Json, "file beats default");
        assert_eq!(config.limits.outbound_queue, 11);
        assert_eq!(config.limits.max_connections, 30, "flag beats env");
    }

    #[test]
    fn the_postgres_store_needs_a_database_url_from_any_layer() {
        let no_url = env_of(&[("SEALDESK_RELAY_STORE", "postgres")]);
        let err = RelayConfig::load(None, no_url, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("database_url"), "{err}");
        let env = env_of(&[
            ("SEALDESK_RELAY_STORE", "PostgreSQL"),
            (
                "SEALDESK_RELAY_DATABASE_URL",
                "postgres://relay@db/sealdesk",
            ),
            ("SEALDESK_RELAY_MIGRATE", "true"),
        ]);
        let config = RelayConfig::load(None, env, &Overrides::default()).unwrap();
        assert_eq!(config.store, StoreKind::Postgres);
        assert!(config.migrate);
        let text = config.to_toml().unwrap();
        assert_eq!(RelayConfig::from_toml(&text).unwrap(), config, "round trip");
        let flags = Overrides {
            store: Some(StoreKind::Sled),
            ..Overrides::default()
        };
        let config = RelayConfig::load(None, env_of(&[]), &flags).unwrap();
        assert_eq!(config.store, StoreKind::Sled, "sled is the default");
        let garbage = env_of(&[("SEALDESK_RELAY_STORE", "redis")]);
        assert!(RelayConfig::load(None, garbage, &Overrides::default()).is_err());
    }

    #[test]
    fn env_sets_any_limit_and_rejects_garbage() {
        let mut config = RelayConfig::default();
        config
            .apply_env(env_of(&[
                ("SEALDESK_RELAY_IDLE_TIMEOUT_MS", "1234"),
                ("SEALDESK_RELAY_TLS_CERT", "/c.pem"),
                ("SEALDESK_RELAY_TLS_KEY", "/k.pem"),
                ("SEALDESK_RELAY_LOG_FORMAT", "JSON"),
            ]))
            .unwrap();
        assert_eq!(config.limits.idle_timeout_ms, 1234);
        assert!(config.tls_enabled());
        assert_eq!(config.log_format, LogFormat::Json);

        let err = RelayConfig::default()
            .apply_env(env_of(&[("SEALDESK_RELAY_MAX_CONNECTIONS", "-3")]))
            .unwrap_err();
        assert!(
            err.to_string().contains("SEALDESK_RELAY_MAX_CONNECTIONS"),
            "{err}"
        );
        let err = RelayConfig::default()
            .apply_env(env_of(&[("SEALDESK_RELAY_LISTEN", "nowhere")]))
            .unwrap_err();
        assert!(err.to_string().contains("SEALDESK_RELAY_LISTEN"), "{err}");
    }

    #[test]
    fn limits_by_name_and_trusted_proxies_from_every_layer() {
        let env = env_of(&[
            ("SEALDESK_RELAY_TRUSTED_PROXIES", "10.0.0.1, ::1"),
            ("SEALDESK_RELAY_OPEN_CONVERSATIONS_PER_ORG", "5"),
        ]);
        let overrides = Overrides {
            limits: vec![("source_registration_burst".into(), 7)],
            ..Overrides::default()
        };
        let config = RelayConfig::load(None, env, &overrides).unwrap();
        assert_eq!(
            config.trusted_proxies,
            vec![
                "10.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse::<IpAddr>().unwrap()
            ]
        );
        assert_eq!(config.limits.open_conversations_per_org, 5);
        assert_eq!(config.limits.source_registration_burst, 7);

        let flag = Overrides {
            trusted_proxies: Some(vec!["192.0.2.1".parse().unwrap()]),
            ..Overrides::default()
        };
        let config = RelayConfig::load(
            None,
            env_of(&[("SEALDESK_RELAY_TRUSTED_PROXIES", "10.0.0.1")]),
            &flag,
        )
        .unwrap();
        assert_eq!(config.trusted_proxies.len(), 1, "the flag replaces the env");

        let err = RelayConfig::default()
            .set_limits(&[("no_such_limit".into(), 1)])
            .unwrap_err();
        assert!(err.to_string().contains("no_such_limit"), "{err}");
        let err = RelayConfig::default()
            .apply_env(env_of(&[("SEALDESK_RELAY_TRUSTED_PROXIES", "proxy.local")]))
            .unwrap_err();
        assert!(err.to_string().contains("proxy.local"), "{err}");
        invalid(
            |c| c.limits.open_conversations_per_org = 0,
            "open_conversations_per_org",
        );
        let text = RelayConfig {
            trusted_proxies: vec!["10.0.0.1".parse().unwrap()],
            ..RelayConfig::default()
        }
        .to_toml()
        .unwrap();
        assert_eq!(
            RelayConfig::from_toml(&text).unwrap().trusted_proxies.len(),
            1
        );
    }

    #[test]
    fn missing_file_is_a_file_error() {
        let err = RelayConfig::from_file(Path::new("/nonexistent/relay.toml")).unwrap_err();
        assert!(matches!(err, Error::File { .. }), "{err:?}");
    }

    fn invalid(change: impl FnOnce(&mut RelayConfig), needle: &str) {
        let mut config = RelayConfig::default();
        change(&mut config);
        let err = config.validate().unwrap_err();
        assert!(
            err.to_string().contains(needle),
            "`{err}` should mention `{needle}`"
        );
    }

    #[test]
    fn validation_names_the_problem() {
        invalid(|c| c.tls_cert = Some("c.pem".into()), "tls_key is not");
        invalid(|c| c.tls_key = Some("k.pem".into()), "tls_cert is not");
        invalid(|c| c.data_dir = PathBuf::new(), "data_dir");
        invalid(
            |c| c.limits.outbound_queue = 0,
            "outbound_queue must be greater than zero",
        );
        invalid(|c| c.limits.max_connections = 0, "max_connections");
        invalid(|c| c.limits.max_frame_size = 1 << 20, "max_frame_size");
        invalid(|c| c.limits.read_buffer_size = 1 << 20, "read_buffer_size");
        invalid(
            |c| c.limits.write_buffer_size = 1 << 20,
            "write_buffer_size",
        );
        invalid(
            |c| c.limits.max_write_buffer_size = 64 * 1024,
            "max_write_buffer_size",
        );
        invalid(|c| c.limits.max_message_size = 1 << 30, "cap");
        invalid(|c| c.limits.ping_interval_ms = 60_000, "ping_interval_ms");
        invalid(|c| c.limits.frame_burst = 10, "frame_burst");
        invalid(
            |c| c.limits.max_http_header_size = 1024,
            "max_http_header_size",
        );
    }

    #[test]
    fn zero_commit_delay_is_allowed() {
        let config = RelayConfig {
            limits: Limits {
                commit_max_delay_us: 0,
                ..Limits::default()
            },
            ..RelayConfig::default()
        };
        config.validate().unwrap();
    }
}
