//! `sealdesk`: the command-line client. It parses arguments, runs the command and prints what
//! it returns — text, or one JSON document with `--json` — and maps errors to exit statuses:
//! 0 success, 1 a failed command or a refused verdict, 2 when `transcript verify` could not
//! check at all, 3 when the relay could not be reached (README.md, "Exit statuses and
//! errors"). With `--json` an error is one JSON object on stderr with a stable `code`.
//! The commands live in the `sealdesk_cli` library; the protocol, the state and the checks in
//! `sealdesk_client`.

use std::io::{ErrorKind, Write as _};
use std::process::ExitCode;

use clap::Parser as _;
use sealdesk_cli::{
    Cli, run,
    status::{classify, error_document},
};

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
    let result = runtime.block_on(run(cli));
    // Not waiting for blocking tasks: a read of the terminal the chat started (and left when
    // Ctrl-C ended it) cannot be cancelled, and would hold the exit until Enter is pressed.
    runtime.shutdown_background();
    match result {
        Ok(Some(out)) => {
            let printed = if json {
                print_line(&out.json_document().to_string())
            } else {
                let printed = if out.text.is_empty() {
                    Ok(())
                } else {
                    print_line(&out.text)
                };
                for w in &out.warnings {
                    eprintln!("warning: {w}");
                }
                printed
            };
            match printed {
                // The reader left early (`sealdesk … | head`): the command itself ran, and
                // its status says how; nothing more to tell anyone.
                Err(e) if e.kind() == ErrorKind::BrokenPipe => ExitCode::from(out.status()),
                Err(e) => {
                    eprintln!("error: could not write the output: {e}");
                    ExitCode::FAILURE
                }
                Ok(()) => ExitCode::from(out.status()),
            }
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                eprintln!("{}", error_document(&e));
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(classify(&e).status)
        }
    }
}

/// Writes `text` and a newline to standard output, returning the error `println!` would panic
/// on (a closed pipe, a full disk).
fn print_line(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()
}
