//! The command line: global options, one subcommand per variant of [`Command`], each handed
//! to its module's function. No SQL here: commands call the library.

pub mod alembic;
pub mod bench;
pub mod contract;
pub mod demo;
pub mod flag;
pub mod flow;
pub mod migrate;
pub mod seed;
pub mod serve;
pub mod throttle;

use clap::{ArgAction, Args, Parser, Subcommand};
use flowkey::db::DEFAULT_DATABASE_URL;

/// Exit code of a command that failed at run time (usage errors exit with clap's 2).
pub const EXIT_FAILURE: u8 = 1;

/// Moves a multi-tenant platform's data from legacy session_id keys to flow_id, online and
/// reversibly.
#[derive(Debug, Parser)]
#[command(
    name = "flowkey",
    version,
    about,
    after_help = "Exit codes: 0 success, 1 the command failed (one `error:` line on stderr), \
                  2 invalid command line."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts, before or after the subcommand name.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Database to work on: sqlite://PATH or postgres://USER[:PASSWORD]@HOST[:PORT]/DB.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = DEFAULT_DATABASE_URL
    )]
    pub database_url: String,
    /// PostgreSQL: the schema to work in (sets the connection's search_path; default: the
    /// URL's search_path, normally `public`). Everything flowkey creates goes there.
    #[arg(long, global = true, value_name = "NAME")]
    pub schema: Option<String>,
    /// Print one JSON document instead of human-readable text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log more to stderr (-v: progress of each step, -vv: debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole transition on a fresh database: seed legacy data with every oddity, rehearse
    /// on a copy, upgrade online, verify, report, resolve legacy ids.
    Demo(Box<demo::DemoArgs>),
    /// Apply revisions up to a target (default: head), adopting a legacy database first.
    Upgrade(migrate::UpgradeArgs),
    /// Revert revisions down to a target: -1, legacy, base or a revision id.
    Downgrade(migrate::DowngradeArgs),
    /// Show the revision the database is at.
    Current(migrate::CurrentArgs),
    /// List every revision, and whether and when it was applied.
    History(migrate::HistoryArgs),
    /// The contract after head: archive session values, drop the session-key columns (gated:
    /// verify, flag on, no legacy write for a quiet period); `downgrade -1` undoes it.
    Contract(contract::ContractArgs),
    /// Record the database as being at a revision without running anything.
    Stamp(migrate::StampArgs),
    /// Show the runner's audit log: every run, revision and step.
    Audit(migrate::AuditArgs),
    /// Create the legacy schema if needed and fill it with realistic, reproducible data.
    Seed(Box<seed::SeedArgs>),
    /// Recompute the legacy fingerprints and check every link; non-zero exit on any mismatch.
    Verify(flow::VerifyArgs),
    /// Map sessions the old application wrote since the mapping step (stand-ins for those
    /// without a flow) and link their rows; run before `flag set … on`.
    CatchUp(flow::CatchUpArgs),
    /// Per table: rows, linked, unlinked and why; ambiguous sessions, conflicts, flows created.
    Report(flow::ReportArgs),
    /// Upgrade, verify, downgrade and compare on a copy of the database (the original is only
    /// read).
    Rehearse(flow::RehearseArgs),
    /// Serve the flow-keyed HTTP API (v3) and the legacy session-keyed one (v1); requires the
    /// database at head.
    Serve(serve::ServeArgs),
    /// Read or set ENABLE_FLOW_ID_PRIMARY (off, shadow, on), globally or per tenant.
    Flag(flag::FlagArgs),
    /// Pause or resume every batched run on the database (backfill), or show why a run waits.
    Throttle(throttle::ThrottleArgs),
    /// Benchmark baselines used by bench/run.sh (not for production databases).
    Bench(bench::BenchArgs),
    /// Write an Alembic revision whose upgrade() runs flowkey on Alembic's connection, for
    /// platforms that deploy with `alembic upgrade head`.
    AlembicRevision(alembic::AlembicRevisionArgs),
    /// Print the Python module whose include_object keeps Alembic's autogenerate away from
    /// flowkey's objects (for the Alembic project's env.py).
    AlembicFilter,
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut global = cli.global;
    if let Some(schema) = global.schema.take() {
        global.database_url = flowkey::db::url_in_schema(&global.database_url, &schema)?;
    }
    match cli.command {
        Command::Upgrade(args) => migrate::upgrade(args, &global).await,
        Command::Downgrade(args) => migrate::downgrade(args, &global).await,
        Command::Current(args) => migrate::current(args, &global).await,
        Command::History(args) => migrate::history(args, &global).await,
        Command::Stamp(args) => migrate::stamp(args, &global).await,
        Command::Contract(args) => contract::run(args, &global).await,
        Command::Audit(args) => migrate::audit(args, &global).await,
        Command::Demo(args) => demo::run(*args, &global).await,
        Command::Verify(args) => flow::run_verify(args, &global).await,
        Command::Report(args) => flow::run_report(args, &global).await,
        Command::CatchUp(args) => flow::run_catch_up(args, &global).await,
        Command::Rehearse(args) => flow::run_rehearse(args, &global).await,
        Command::Serve(args) => serve::run(connect(&global).await?, &args).await,
        Command::Flag(args) => flag::run(connect(&global).await?, &args).await,
        Command::Seed(args) => seed::run(&connect(&global).await?, &args, global.json).await,
        Command::Bench(args) => bench::run(args, &global).await,
        Command::Throttle(args) => throttle::run(connect(&global).await?, &args, &global).await,
        Command::AlembicRevision(args) => alembic::run(&args, &global),
        Command::AlembicFilter => {
            print!("{}", flowkey::alembic::include_object_module());
            Ok(())
        }
    }
}

/// Opens the database named by the global options.
pub async fn connect(global: &GlobalArgs) -> anyhow::Result<flowkey::db::Db> {
    Ok(flowkey::db::Db::connect(&global.database_url).await?)
}

/// Prints a value as one pretty JSON document on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
