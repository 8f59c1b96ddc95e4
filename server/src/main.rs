//! `sealdesk-relay`: the Sealdesk relay server.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory, FromArgMatches, Parser};
use sealdesk_server::config::{self, LogFormat, Overrides, RelayConfig};
use sealdesk_server::net;
use tokio::net::TcpListener;
use tracing::{error, info};

/// mimalloc instead of the system allocator: the store allocates for every insert, and with
/// glibc's malloc that was a fifth of the relay's CPU under load (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sealdesk relay: stores and forwards end-to-end encrypted support conversations.
///
/// Settings are read from defaults, then `--config FILE` (TOML), then `SEALDESK_RELAY_*`
/// environment variables, then these flags; later ones win.
#[derive(Debug, Parser)]
#[command(name = "sealdesk-relay", version)]
struct Cli {
    /// Address to listen on [default: 127.0.0.1:7800].
    #[arg(long, value_name = "ADDR", env = "SEALDESK_RELAY_LISTEN")]
    listen: Option<SocketAddr>,

    /// Directory for the relay's database [default: ./sealdesk-data].
    #[arg(long, value_name = "DIR", env = "SEALDESK_RELAY_DATA")]
    data: Option<PathBuf>,

    /// Storage engine: sled (in --data) or postgres (at --database-url) [default: sled].
    #[arg(long, value_name = "ENGINE", env = "SEALDESK_RELAY_STORE")]
    store: Option<config::StoreKind>,

    /// PostgreSQL database for --store postgres (postgres://user@host:port/dbname).
    #[arg(long, value_name = "URL", env = "SEALDESK_RELAY_DATABASE_URL")]
    database_url: Option<String>,

    /// Bring the PostgreSQL schema up to this build's at start.
    #[arg(long)]
    migrate: bool,

    /// File with the relay's log key (64 secret bytes), the same on every node of a cluster.
    #[arg(long, value_name = "PATH", env = "SEALDESK_RELAY_LOG_KEY_FILE")]
    log_key_file: Option<PathBuf>,

    /// TOML configuration file (same keys as printed by --check-config).
    #[arg(long, value_name = "FILE", env = "SEALDESK_RELAY_CONFIG")]
    config: Option<PathBuf>,

    /// PEM certificate chain; enables https/wss (needs --tls-key).
    #[arg(long, value_name = "PEM", env = "SEALDESK_RELAY_TLS_CERT")]
    tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "PEM", env = "SEALDESK_RELAY_TLS_KEY")]
    tls_key: Option<PathBuf>,

    /// Log format: human or json [default: human]. Filter with RUST_LOG (default: info).
    #[arg(long, value_name = "FORMAT", env = "SEALDESK_RELAY_LOG_FORMAT")]
    log_format: Option<LogFormat>,

    /// Simultaneous connections; more get HTTP 503 [default: 20000].
    #[arg(long, value_name = "N", env = "SEALDESK_RELAY_MAX_CONNECTIONS")]
    max_connections: Option<usize>,

    /// Directory of built browser pages (web/dist) to serve from the relay's origin.
    #[arg(long, value_name = "DIR", env = "SEALDESK_RELAY_WEB_ROOT")]
    web_root: Option<PathBuf>,
    /// A reverse proxy whose X-Forwarded-For names the client for the per-source limits
    /// (repeat for each; replaces SEALDESK_RELAY_TRUSTED_PROXIES).
    #[arg(long = "trusted-proxy", value_name = "IP")]
    trusted_proxies: Vec<IpAddr>,

    /// Sets any limit listed below, e.g. --limit open_conversations_per_org=5 (repeatable).
    #[arg(long = "limit", value_name = "NAME=VALUE", value_parser = parse_limit)]
    limits: Vec<(String, u64)>,

    /// Print the effective configuration as TOML and exit (0 if valid, 2 if not).
    #[arg(long)]
    check_config: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

/// Operations other than serving.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Copy a sled data directory into an empty PostgreSQL database, then verify the copy
    /// (entries per collection, each conversation's last sequence number, the audit log's
    /// size and root). The relay on the directory must be stopped; the copy is one
    /// transaction, so an interrupted one leaves the database empty and is run again.
    Migrate {
        /// The relay's sled data directory (its --data).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The empty PostgreSQL database (postgres://user@host:port/dbname).
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

fn main() -> ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Some(Command::Migrate { from, to }) = &cli.command {
        return migrate(from, to);
    }
    let overrides = Overrides {
        listen: cli.listen,
        data_dir: cli.data.clone(),
        store: cli.store,
        database_url: cli.database_url.clone(),
        migrate: cli.migrate.then_some(true),
        log_key_file: cli.log_key_file.clone(),
        tls_cert: cli.tls_cert.clone(),
        tls_key: cli.tls_key.clone(),
        log_format: cli.log_format,
        max_connections: cli.max_connections,
        web_root: cli.web_root.clone(),
        trusted_proxies: (!cli.trusted_proxies.is_empty()).then(|| cli.trusted_proxies.clone()),
        limits: cli.limits.clone(),
    };
    let loaded = RelayConfig::load(cli.config.as_deref(), |k| std::env::var(k).ok(), &overrides);

    if cli.check_config {
        return check_config(loaded);
    }
    let config = match loaded {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sealdesk-relay: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = format!("{e:#}"), "relay failed");
            eprintln!("sealdesk-relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One `--limit NAME=VALUE`.
fn parse_limit(s: &str) -> Result<(String, u64), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    let value = value
        .trim()
        .parse()
        .map_err(|_| format!("`{value}` is not a non-negative integer"))?;
    Ok((name.trim().to_owned(), value))
}

/// Parses flags, with every limit and its environment variable listed in `--help`.
fn parse_cli() -> Result<Cli, clap::Error> {
    let defaults = toml::Table::try_from(config::Limits::default()).unwrap_or_default();
    let mut help = String::from(
        "Limits (the [limits] table of the config file, or the environment variable shown):\n",
    );
    for (name, doc) in config::LIMIT_DOCS {
        let default = defaults
            .get(*name)
            .map(ToString::to_string)
            .unwrap_or_default();
        let _ = writeln!(
            help,
            "  {name} = {default}\n      {doc}  [env: {}]",
            config::env_var_for(name)
        );
    }
    let matches = Cli::command().after_long_help(help).try_get_matches()?;
    Cli::from_arg_matches(&matches)
}

/// `sealdesk-relay migrate`: prints the verified counts, or why nothing (or not all) was done.
fn migrate(from: &std::path::Path, to: &str) -> ExitCode {
    init_logging(LogFormat::Human);
    match sealdesk_server::migrate::migrate(from, to) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sealdesk-relay migrate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(loaded: sealdesk_server::Result<RelayConfig>) -> ExitCode {
    let checked = loaded.and_then(|config| {
        net::tls_config(&config)?;
        config.to_toml()
    });
    match checked {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sealdesk-relay: {e}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a terminal: logs piped to a file or a collector stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn serve(config: RelayConfig) -> anyhow::Result<()> {
    if config.store == config::StoreKind::Sled {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    sealdesk_server::serve(listener, config, shutdown_signal()).await?;
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("ctrl-c received"),
        () = term => info!("SIGTERM received"),
    }
}
