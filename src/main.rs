//! The `flowkey` command: parses arguments and hands each command to `cli::*`.
//!
//! Exit codes: 0 success, 1 the command failed (one `error: …` line on stderr), 2 the
//! command line is wrong (clap's usage message).

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // A bug must still end in one readable line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        eprintln!("error: internal error: {}", one_line(&message));
    }));
    let cli = cli::Cli::parse();
    init_tracing(cli.global.verbose);
    // Test builds only: arms the fault injection points named in `FAILPOINTS` (one process,
    // one scenario, so parallel tests never see each other's faults).
    #[cfg(feature = "failpoints")]
    let _faults = fail::FailScenario::setup();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!(
                "error: cannot start the async runtime: {}",
                one_line(&err.to_string())
            );
            return ExitCode::from(cli::EXIT_FAILURE);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&describe(&err)));
            ExitCode::from(cli::EXIT_FAILURE)
        }
    }
}

/// Logs go to stderr; quiet (warnings only) unless `-v` or `RUST_LOG` asks for more.
fn init_tracing(verbose: u8) {
    let default = match verbose {
        // sqlx warns about slow statements and dropped connections on its own; at the
        // default level a failed command must still print one line.
        0 => "warn,sqlx=error",
        1 => "info,sqlx=warn",
        2 => "debug,sqlx=info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// The error and its causes, each cause once: a database error's message often already ends
/// with its source's text, and repeating it makes the one line harder to read.
fn describe(err: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
