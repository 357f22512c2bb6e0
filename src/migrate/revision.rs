//! What a revision is: an ordered list of steps up, and an ordered list of steps down.
//!
//! Most steps are SQL, given per engine, either fixed text or generated from descriptions
//! (the linked tables of [`crate::migrate::flow::linked`]). Some work cannot be one static
//! statement (a backfill in batches, computing the session→flow mapping, verifying): those
//! are code steps, each with the SQL it runs, which `--sql` prints in place of running it.
//!
//! What a revision does is frozen once released: its checksum covers the text of every step
//! for both engines, generated text and code steps' SQL included, and
//! `released_revisions_keep_their_checksums` pins each released revision's checksum.

use std::borrow::Cow;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::db::{Db, Engine};
use crate::migrate::MigrateError;

/// One schema change, with the way back.
#[derive(Debug)]
pub struct Revision {
    /// Stable, unique, used as a target on the command line (`legacy`, `flow_mapping`, ...).
    pub id: &'static str,
    /// One line for `history`.
    pub description: &'static str,
    pub up: &'static [Step],
    pub down: &'static [Step],
    /// Checksums this revision had in earlier builds whose steps did the same thing in text
    /// that was worded differently (the checksum once hashed a prose description of code
    /// steps). A database that recorded one of them is accepted as recording this revision.
    pub earlier_checksums: &'static [&'static str],
}

/// A step list built at run time (from the linked tables), kept for the life of the process
/// like a static one: revisions are `'static` and built once.
pub fn leak_steps(steps: Vec<Step>) -> &'static [Step] {
    Box::leak(steps.into_boxed_slice())
}

/// A step name built at run time, kept for the life of the process (see [`leak_steps`]).
pub fn leak_name(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

/// One unit of a revision. The runner records each completed step, so a revision killed half
/// way resumes at the first step not yet done; every step must therefore be safe to run again
/// after a crash in its middle (its own transaction, `IF NOT EXISTS`, a persisted cursor).
#[derive(Debug)]
pub struct Step {
    pub name: &'static str,
    pub action: Action,
}

#[derive(Debug)]
pub enum Action {
    /// Statements run in one transaction, per engine.
    Sql(StepSql),
    /// DDL that must not hold locks long: on PostgreSQL each statement runs outside a
    /// transaction block, alone, under `lock_timeout` with retries and backoff (this is where
    /// `CREATE INDEX CONCURRENTLY` and `ALTER TABLE … VALIDATE CONSTRAINT` live). Each
    /// statement's lock wait and duration go to the audit log. On SQLite the statements run
    /// in one transaction like [`Action::Sql`].
    OnlineDdl(StepSql),
    /// Rust code: batched backfills, computing the mapping, verifying.
    Code {
        run: CodeFn,
        /// The SQL the code runs (its statements, with the batch bounds as parameters), so
        /// that the revision's checksum changes whenever what the step does changes; `--sql`
        /// prints it in place of running the step.
        sql: StepSql,
        /// What the step amounts to as plain SQL that runs as is (in `psql`): its batches
        /// as one set-based statement each, its parameters filled in. `--sql` prints it in
        /// the runnable script. Not in the checksum: the runner never runs it; that it ends
        /// where the runner ends is what `tests/it/migrate/offline_script.rs` proves. `None`:
        /// the step has no such form (the script stops there, saying so).
        offline: Option<StepSql>,
    },
    /// Rust code that reads the legacy data and writes only flowkey's own bookkeeping
    /// (fingerprints, verification results): it cannot change what a database holds, so its
    /// SQL is left out of the checksum and may get faster or stricter in a later build
    /// without a new revision. What it stores carries a format version instead. A check may
    /// fail its revision (a failed proof stops the run).
    Check {
        run: CodeFn,
        /// The SQL the check runs, described.
        sql: StepSql,
        /// The check as plain SQL that runs as is and raises when the check fails (see
        /// [`Action::Code`]'s `offline`); `None`: the script stops there, saying so.
        offline: Option<StepSql>,
    },
}

/// The SQL of a step for both engines: fixed text, or text generated from descriptions.
#[derive(Debug, Clone, Copy)]
pub enum StepSql {
    Fixed(EngineSql),
    /// Generated at run time from one description (e.g. the linked tables), so one fact is
    /// written once; the checksum hashes the generated text.
    Generated(fn(Engine) -> String),
    /// Generated for one linked table; a code step with such SQL works on that table
    /// (its [`StepContext::table`]).
    ForTable {
        generate: fn(Engine, &'static str) -> String,
        table: &'static str,
    },
}

impl StepSql {
    pub fn for_engine(&self, engine: Engine) -> Cow<'static, str> {
        match self {
            StepSql::Fixed(sql) => Cow::Borrowed(sql.for_engine(engine)),
            StepSql::Generated(generate) => Cow::Owned(generate(engine)),
            StepSql::ForTable { generate, table } => Cow::Owned(generate(engine, table)),
        }
    }

    /// The linked table the SQL is generated for, if any.
    pub fn table(&self) -> Option<&'static str> {
        match self {
            StepSql::ForTable { table, .. } => Some(table),
            StepSql::Fixed(_) | StepSql::Generated(_) => None,
        }
    }
}

/// The same change in the two dialects. Statements are separated by `;` at the end of a
/// line; `$$`-quoted bodies (PostgreSQL functions) are kept whole.
#[derive(Debug, Clone, Copy)]
pub struct EngineSql {
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

impl EngineSql {
    pub fn for_engine(&self, engine: Engine) -> &'static str {
        match engine {
            Engine::Sqlite => self.sqlite,
            Engine::Postgres => self.postgres,
        }
    }
}

pub type CodeFn =
    for<'a, 'b> fn(&'a mut StepContext<'b>) -> BoxFuture<'a, Result<(), MigrateError>>;

/// Whether a revision is being applied or reverted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Up => "up",
            Direction::Down => "down",
        })
    }
}

/// How progress is shown while a long step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressDisplay {
    /// A progress bar on stderr (rows done, rate, ETA).
    Bar,
    /// Nothing on the terminal; progress still goes to the audit log.
    Hidden,
}

/// Knobs of a run, from the command line.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// PostgreSQL `lock_timeout` for each online DDL statement.
    pub lock_timeout: Duration,
    /// How many times an online DDL statement is retried after a lock timeout.
    pub ddl_retries: u32,
    /// The backfill adapts its batch size so that one batch takes about this long.
    pub target_batch_time: Duration,
    /// First backfill batch size, before adapting.
    pub initial_batch_size: u32,
    pub progress: ProgressDisplay,
    /// How long a runner waits for another runner's deploy lock before giving up.
    pub lock_wait: Duration,
    /// When batched work waits between batches (replica lag, load, the operator's pause).
    pub throttle: crate::migrate::throttle::ThrottleLimits,
    /// The contract's gate (`flowkey contract --quiet-period/--force`); the default gate
    /// for any other run that reaches the contract.
    pub contract: crate::migrate::flow::contract::GateOptions,
    /// A transaction open longer than this blocks online DDL (`CREATE INDEX CONCURRENTLY`
    /// waits for every older snapshot, `VALIDATE` for conflicting locks): it is named
    /// before each online statement and waited for (PostgreSQL).
    pub long_transaction_threshold: Duration,
    /// How long an online statement waits for such transactions to end before the run stops
    /// naming them.
    pub long_transaction_wait: Duration,
    /// Let the platform's UPDATE triggers on migrated tables fire on the backfill's UPDATE
    /// of `flow_id` (an audit trigger that writes elsewhere); otherwise such a trigger stops
    /// the upgrade before it changes anything, since one that stamps a legacy column would
    /// change legacy values no downgrade gives back.
    pub allow_update_triggers: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_millis(100),
            ddl_retries: 30,
            target_batch_time: Duration::from_millis(200),
            initial_batch_size: 1_000,
            progress: ProgressDisplay::Hidden,
            lock_wait: Duration::from_secs(0),
            throttle: crate::migrate::throttle::ThrottleLimits::default(),
            contract: Default::default(),
            long_transaction_threshold: Duration::from_secs(10),
            long_transaction_wait: Duration::from_secs(120),
            allow_update_triggers: false,
        }
    }
}

/// What a code step gets: the database (its caller holds the deploy lock), the run's options
/// and a way to write to the runner's audit log.
pub struct StepContext<'a> {
    pub db: &'a Db,
    pub options: &'a RunOptions,
    pub revision: &'static str,
    pub step: &'static str,
    /// The linked table the step works on (steps generated per table).
    pub table: Option<&'static str>,
    pub direction: Direction,
    pub audit: &'a dyn AuditSink,
}

/// Where code steps report events (progress, counts, findings); the runner writes them to its
/// audit log table with the run they belong to.
pub trait AuditSink: Send + Sync {
    fn record<'a>(
        &'a self,
        event: &'a str,
        details: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), MigrateError>>;
}
