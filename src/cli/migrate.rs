//! `upgrade`, `downgrade`, `current`, `history`, `stamp`, `audit`: the revision runner's
//! commands.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use flowkey::db::{Db, Engine};
use flowkey::migrate::throttle::ThrottleLimits;
use flowkey::migrate::{
    offline_sql, revisions, Direction, Migrator, ProgressDisplay, RunOptions, RunSummary, StampMode,
};

use crate::cli::{print_json, GlobalArgs};

/// Knobs shared by `upgrade` and `downgrade`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Print the SQL the command would run, and run nothing.
    #[arg(long)]
    pub sql: bool,
    /// With --sql: the dialect to print, without connecting to any database.
    #[arg(long, value_enum, requires = "sql")]
    pub engine: Option<EngineArg>,
    /// With --sql --engine: the revision to start from (default: base for upgrade, head for
    /// downgrade).
    #[arg(long, requires = "engine")]
    pub from: Option<String>,
    #[command(flatten)]
    pub tuning: TuningArgs,
}

/// How a run treats locks, batches and the terminal; shared by every command that migrates.
#[derive(Debug, Clone, Args)]
pub struct TuningArgs {
    /// PostgreSQL lock_timeout of each DDL statement, in milliseconds: a statement that waits
    /// longer for a lock gives up (so it never queues the application behind it) and is
    /// retried with backoff.
    #[arg(long, default_value_t = 100)]
    pub lock_timeout_ms: u64,
    /// How many times a step or online DDL statement is retried after a lock timeout.
    #[arg(long, default_value_t = 30)]
    pub ddl_retries: u32,
    /// How long to wait for another runner's deploy lock, in seconds.
    #[arg(long, default_value_t = 60)]
    pub lock_wait_secs: u64,
    /// The time one backfill batch should take, in milliseconds (batch sizes adapt to it).
    #[arg(long, default_value_t = 200)]
    pub batch_target_ms: u64,
    /// The size of the first backfill batch, in rows (at least one page on PostgreSQL),
    /// before sizes adapt to --batch-target-ms.
    #[arg(long, default_value_t = RunOptions::default().initial_batch_size, value_parser = clap::value_parser!(u32).range(1..))]
    pub initial_batch_size: u32,
    /// Wait between batches while a standby replays more than this many seconds behind
    /// (PostgreSQL, pg_stat_replication); 0: never.
    #[arg(long, default_value_t = 5.0, value_parser = non_negative_seconds)]
    pub max_replica_lag: f64,
    /// Wait between batches while more than this many other client sessions of the same
    /// database are active or waiting on a lock (PostgreSQL); unset: never.
    #[arg(long)]
    pub max_load: Option<u32>,
    /// How often a throttled run looks again, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..))]
    pub throttle_poll_ms: u64,
    /// Show no progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Let the platform's UPDATE triggers on migrated tables fire on the backfill's UPDATE
    /// of flow_id. Without it such a trigger stops the upgrade before it changes anything:
    /// one that stamps a legacy column (updated_at) would change legacy values that no
    /// downgrade gives back. Give it for triggers that only write elsewhere (audit copies);
    /// `flowkey verify` reports any legacy value they change.
    #[arg(long)]
    pub allow_update_triggers: bool,
    /// PostgreSQL: a transaction open longer than this many seconds would block online DDL
    /// (CREATE INDEX CONCURRENTLY, VALIDATE); such transactions are named before each
    /// online statement (progress output and audit log) and waited for.
    #[arg(long, default_value_t = 10)]
    pub long_transaction_secs: u64,
    /// How long to wait for those transactions to end before stopping with their names,
    /// in seconds; also how long the backfill's closing sweep waits for rows the
    /// application holds before stopping (resumable).
    #[arg(long, default_value_t = 120)]
    pub long_transaction_wait_secs: u64,
}

fn non_negative_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => Ok(seconds),
        _ => Err(format!("{text:?} is not a number of seconds (0 or more)")),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EngineArg {
    Sqlite,
    Postgres,
}

impl From<EngineArg> for Engine {
    fn from(engine: EngineArg) -> Self {
        match engine {
            EngineArg::Sqlite => Engine::Sqlite,
            EngineArg::Postgres => Engine::Postgres,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct UpgradeArgs {
    /// head, +N (N revisions further), or a revision id.
    #[arg(default_value = "head")]
    pub target: String,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DowngradeArgs {
    /// -N (N revisions back), legacy, base (nothing but flowkey's own tables), or a revision
    /// id that stays applied.
    #[arg(allow_hyphen_values = true)]
    pub target: String,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CurrentArgs {}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {}

#[derive(Debug, Clone, Args)]
pub struct StampArgs {
    /// base, head, or a revision id. Without --force the schema must be exactly the one the
    /// revisions up to it create (this is how an existing legacy database is adopted).
    pub target: String,
    /// Record the revision without checking the schema (after inspecting a dirty or edited
    /// state by hand). Audit-logged.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// How many of the latest rows to show.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

impl TuningArgs {
    pub fn options(&self, global: &GlobalArgs) -> RunOptions {
        let progress = if self.no_progress || global.json || !std::io::stderr().is_terminal() {
            ProgressDisplay::Hidden
        } else {
            ProgressDisplay::Bar
        };
        RunOptions {
            lock_timeout: Duration::from_millis(self.lock_timeout_ms),
            ddl_retries: self.ddl_retries,
            target_batch_time: Duration::from_millis(self.batch_target_ms),
            initial_batch_size: self.initial_batch_size,
            progress,
            lock_wait: Duration::from_secs(self.lock_wait_secs),
            throttle: ThrottleLimits {
                max_replica_lag: (self.max_replica_lag > 0.0)
                    .then(|| Duration::from_secs_f64(self.max_replica_lag)),
                max_load: self.max_load,
                poll: Duration::from_millis(self.throttle_poll_ms),
            },
            contract: Default::default(),
            long_transaction_threshold: Duration::from_secs(self.long_transaction_secs),
            long_transaction_wait: Duration::from_secs(self.long_transaction_wait_secs),
            allow_update_triggers: self.allow_update_triggers,
        }
    }
}

async fn connect(global: &GlobalArgs) -> anyhow::Result<Db> {
    Ok(Db::connect(&global.database_url).await?)
}

pub async fn upgrade(args: UpgradeArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    if args.run.sql {
        return print_sql(&args.run, &args.target, Direction::Up, global).await;
    }
    let db = connect(global).await?;
    let warnings = preflight_warnings(&db).await;
    let migrator = Migrator::new(db.clone(), args.run.tuning.options(global));
    let summary = migrator.upgrade(&args.target).await;
    let summary = match summary {
        // Shown once the run went through: a refusal stays one `error:` line.
        Ok(summary) => {
            for line in &warnings {
                tracing::warn!("{line}");
            }
            summary
        }
        Err(err) => {
            db.close().await;
            return Err(err.into());
        }
    };
    // Once rows are linked, the end of an upgrade shows what was linked and what was not.
    let linked_report = if !global.json && reaches(summary.to, "flow_backfill") {
        Some(flowkey::migrate::flow::report(&db).await)
    } else {
        None
    };
    db.close().await;
    print_summary(&summary, global)?;
    if let Some(linked_report) = linked_report {
        print!("{}", linked_report?);
    }
    Ok(())
}

/// The pre-flight's warning lines: session ids flowkey will not migrate (see `flowkey
/// report`). A warning only: it never stops the upgrade, and a failure to look is one too.
async fn preflight_warnings(db: &flowkey::db::Db) -> Vec<String> {
    let started = std::time::Instant::now();
    let lines = match flowkey::migrate::flow::discovery::discover_outside_migrated(db).await {
        Ok(found) if !found.is_empty() => found
            .to_string()
            .lines()
            .map(|line| line.trim().to_owned())
            .collect(),
        Ok(_) => Vec::new(),
        Err(err) => vec![format!(
            "could not look for session ids outside the migrated tables: {err}"
        )],
    };
    tracing::info!(
        "pre-flight discovery took {} ms",
        started.elapsed().as_millis()
    );
    lines
}

/// Whether revision `at` is `revision` or a later one.
fn reaches(at: Option<&str>, revision: &str) -> bool {
    let position = |id: &str| revisions::all().iter().position(|r| r.id == id);
    match (at.and_then(position), position(revision)) {
        (Some(at), Some(revision)) => at >= revision,
        _ => false,
    }
}

pub async fn downgrade(args: DowngradeArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    if args.run.sql {
        return print_sql(&args.run, &args.target, Direction::Down, global).await;
    }
    let db = connect(global).await?;
    let migrator = Migrator::new(db.clone(), args.run.tuning.options(global));
    let summary = migrator.downgrade(&args.target).await;
    db.close().await;
    print_summary(&summary?, global)
}

pub async fn current(_args: CurrentArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let db = connect(global).await?;
    let migrator = Migrator::new(db.clone(), RunOptions::default());
    let history = migrator.history().await;
    let alembic = migrator.alembic_revisions().await;
    db.close().await;
    let history = history?;
    let alembic = alembic?;
    let current = history.iter().find(|entry| entry.is_current);
    let dirty = history.iter().find(|entry| entry.dirty.is_some());
    let head = history
        .iter()
        .find(|entry| entry.is_head)
        .map(|entry| &entry.id);
    let unknown: Vec<&str> = history
        .iter()
        .filter(|entry| !entry.known)
        .map(|entry| entry.id.as_str())
        .collect();
    if global.json {
        return print_json(&serde_json::json!({
            "current": current.map(|entry| &entry.id),
            "unknown_revisions": unknown,
            "head": head,
            "is_head": current.is_some_and(|entry| entry.is_head),
            "dirty": dirty.map(|entry| serde_json::json!({
                "revision": entry.id,
                "state": entry.dirty,
            })),
            "alembic_revisions": alembic,
        }));
    }
    let mut line = current.map_or("base".to_owned(), |entry| entry.id.clone());
    if current.is_some_and(|entry| entry.is_head) {
        line.push_str(" (head)");
    }
    if current.is_some_and(|entry| revisions::is_after_head(&entry.id)) {
        line.push_str(" (contracted: after head; `flowkey downgrade -1` goes back to head)");
    }
    println!("{line}");
    if let Some(alembic) = &alembic {
        println!(
            "alembic (the platform's own migrations, not flowkey's): {}",
            if alembic.is_empty() {
                "no revision recorded".to_owned()
            } else {
                alembic.join(", ")
            }
        );
    }
    if !unknown.is_empty() {
        println!(
            "the database also records revisions this flowkey does not know: {}",
            unknown.join(", ")
        );
    }
    if let Some(entry) = dirty {
        if let Some(state) = &entry.dirty {
            println!(
                "dirty: revision {} stopped during {} after {} of {} steps",
                entry.id, state.direction, state.steps_done, state.steps
            );
        }
    }
    Ok(())
}

pub async fn history(_args: HistoryArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let db = connect(global).await?;
    let migrator = Migrator::new(db.clone(), RunOptions::default());
    let history = migrator.history().await;
    db.close().await;
    let history = history?;
    if global.json {
        return print_json(&history);
    }
    let width = history
        .iter()
        .map(|entry| entry.id.len())
        .max()
        .unwrap_or(0);
    for entry in &history {
        let mark = match (&entry.dirty, entry.applied) {
            (Some(_), _) => "[!]",
            (None, true) => "[x]",
            (None, false) => "[ ]",
        };
        let mut notes = Vec::new();
        if let (Some(at), Some(how)) = (&entry.applied_at, &entry.recorded_by) {
            notes.push(format!("{how} {}", at.0.format("%Y-%m-%d %H:%M:%S UTC")));
        }
        if let Some(state) = &entry.dirty {
            notes.push(format!(
                "dirty: {} stopped after {} of {} steps",
                state.direction, state.steps_done, state.steps
            ));
        }
        if entry.checksum_ok == Some(false) {
            notes.push("changed after it was applied".into());
        }
        if !entry.known {
            notes.push("unknown to this flowkey".into());
        }
        if entry.is_head {
            notes.push("head".into());
        }
        if revisions::is_after_head(&entry.id) {
            notes.push("after head: run by `flowkey contract`".into());
        }
        if entry.is_current {
            notes.push("current".into());
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join(", "))
        };
        println!("{mark} {:width$}  {}{notes}", entry.id, entry.description);
    }
    Ok(())
}

pub async fn stamp(args: StampArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let db = connect(global).await?;
    let migrator = Migrator::new(db.clone(), RunOptions::default());
    let mode = if args.force {
        StampMode::Force
    } else {
        StampMode::Checked
    };
    let summary = migrator.stamp(&args.target, mode).await;
    db.close().await;
    let summary = summary?;
    if global.json {
        return print_json(&summary);
    }
    if let Some(adopted) = summary.adopted {
        println!("adopted the existing database at revision {adopted}");
    } else {
        println!("stamped the database at {}", summary.to.unwrap_or("base"));
    }
    Ok(())
}

pub async fn audit(args: AuditArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let db = connect(global).await?;
    let migrator = Migrator::new(db.clone(), RunOptions::default());
    let entries = migrator.audit_log(args.limit).await;
    db.close().await;
    let entries = entries?;
    if global.json {
        return print_json(&entries);
    }
    if entries.is_empty() {
        println!("the audit log is empty");
    }
    for entry in &entries {
        let subject = [
            entry.revision.as_deref(),
            entry.direction.as_deref(),
            entry.step.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        let duration = entry
            .duration_ms
            .map(|ms| format!(" {ms} ms"))
            .unwrap_or_default();
        let error = entry
            .error
            .as_deref()
            .map(|error| format!(": {error}"))
            .unwrap_or_default();
        println!(
            "{} {} run {} {} {} {}{duration}{error} [{}@{}]",
            entry.id,
            entry.started_at.0.format("%Y-%m-%d %H:%M:%S%.3f"),
            entry.run_id.get(..8).unwrap_or(&entry.run_id),
            entry.event,
            subject,
            entry.outcome,
            entry.user_name,
            entry.host,
        );
    }
    Ok(())
}

async fn print_sql(
    args: &RunArgs,
    target: &str,
    direction: Direction,
    global: &GlobalArgs,
) -> anyhow::Result<()> {
    let (engine, from) = match args.engine {
        Some(engine) => {
            let from = args.from.clone().or_else(|| match direction {
                Direction::Up => None,
                Direction::Down => Some("head".to_owned()),
            });
            (Engine::from(engine), from)
        }
        None => {
            let db = connect(global).await?;
            let current = Migrator::new(db.clone(), RunOptions::default())
                .current()
                .await;
            db.close().await;
            let current = current.context("cannot read the database's current revision")?;
            (db.engine(), current.map(str::to_owned))
        }
    };
    let script = offline_sql(revisions::all(), engine, from.as_deref(), target, direction)?;
    if global.json {
        return print_json(&serde_json::json!({ "engine": engine, "sql": script }));
    }
    print!("{script}");
    Ok(())
}

pub(crate) fn print_summary(summary: &RunSummary, global: &GlobalArgs) -> anyhow::Result<()> {
    if global.json {
        return print_json(summary);
    }
    if let Some(adopted) = summary.adopted {
        println!("adopted the existing database at revision {adopted}");
    }
    for run in &summary.revisions {
        let verb = match run.direction {
            Direction::Up => "applied",
            Direction::Down => "reverted",
        };
        let resumed = run
            .resumed_at_step
            .map(|step| format!(", resumed at step {}", step + 1))
            .unwrap_or_default();
        let total: u64 = run.steps.iter().map(|step| step.duration_ms).sum();
        let steps = run.steps.len();
        let plural = if steps == 1 { "" } else { "s" };
        println!(
            "{verb} {} ({steps} step{plural}, {total} ms{resumed})",
            run.id
        );
    }
    let to = summary.to.unwrap_or("base");
    if summary.revisions.is_empty() {
        println!("nothing to do: the database is at {to}");
    } else {
        println!(
            "the database is at {to} (was {})",
            summary.from.unwrap_or("base")
        );
    }
    Ok(())
}
