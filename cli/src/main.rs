//! `sealdesk`: the command-line client. It parses arguments, runs the command and prints what
//! it returns — text, or JSON with `--json` — and maps errors to exit statuses: 0 success, 1 a
//! failed command or a refused verdict, 2 when `transcript verify` could not check at all.
//! The commands live in the `sealdesk_cli` library; the protocol, the state and the checks in
//! `sealdesk_client`.

use std::process::ExitCode;

use clap::Parser as _;
use sealdesk_cli::{Cli, error::CannotCheck, run};
use serde_json::json;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json();
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

/// The exit status of an error: 2 where `transcript verify` could not check at all, else 1.
fn error_status(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<CannotCheck>().is_some() {
        2
    } else {
        1
    }
}
