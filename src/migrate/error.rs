//! Everything that can stop a migration run, each variant named for its diagnosis.

use crate::db::introspect::SchemaDifference;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "the database is reached through a transaction pooler (PgBouncer with pool_mode = \
         transaction or statement): the deploy lock and lock_timeout need a session of their \
         own; run migrations over a direct connection to PostgreSQL (or a session-mode pool); \
         nothing was changed"
    )]
    BehindTransactionPooler,
    #[error(
        "the platform's UPDATE triggers on migrated tables would fire on the backfill's UPDATE \
         of flow_id, and one that stamps a legacy column (updated_at) changes legacy values no \
         downgrade gives back: {triggers}; make each fire only on the columns it watches \
         (UPDATE OF ...), drop it for the upgrade, or pass --allow-update-triggers if it only \
         writes elsewhere; nothing was changed"
    )]
    PlatformUpdateTriggers { triggers: String },
    #[error("unknown revision {target:?}; known: {known}")]
    UnknownTarget { target: String, known: String },
    /// A target that names a known revision (or `+N`/`-N`) but cannot be reached in the
    /// direction asked, e.g. `upgrade legacy` from a later revision.
    #[error("cannot {direction} to {target:?}: {reason}")]
    UnreachableTarget {
        target: String,
        direction: &'static str,
        reason: String,
    },
    /// A run with a relative target (`-1`, `+2`) that stopped after it began: rerunning the
    /// same command would count again from where it stopped, so the error names the
    /// revision the target resolved to.
    #[error(
        "{source}; `{command} {target}` resolved to {resolved} when it started: to resume, run \
         `flowkey {command} {resolved}` (`{target}` would count again from where it stopped)"
    )]
    RelativeTargetInterrupted {
        source: Box<MigrateError>,
        command: &'static str,
        target: String,
        resolved: &'static str,
    },
    #[error("step {step:?} of revision {revision:?} failed: {message}")]
    StepFailed {
        revision: String,
        step: String,
        message: String,
    },
    #[error(
        "revision {revision} was changed after it was applied (checksum {in_database} in database, \
         {in_flowkey} in this flowkey); restore the released revision, or after inspection run \
         `flowkey stamp {revision} --force`"
    )]
    ChecksumMismatch {
        revision: String,
        in_database: String,
        in_flowkey: String,
    },
    #[error(
        "the database records revision {revision:?}, which this flowkey does not know (a newer \
         flowkey applied it?); use that flowkey, or after inspection run `flowkey stamp <revision> --force`"
    )]
    UnknownAppliedRevision { revision: String },
    #[error(
        "revision {revision} is dirty: its {direction} stopped after {steps_done} of {steps} steps \
         and {reason}; inspect the database, then record where it really is: `flowkey stamp \
         {revision} --force` if the revision is fully applied, `flowkey stamp {before} --force` if \
         it is fully undone"
    )]
    Dirty {
        revision: String,
        direction: String,
        steps_done: i64,
        steps: usize,
        /// The revision before it (`base` for the first).
        before: String,
        reason: String,
    },
    #[error(
        "the deploy lock is held by {holder} since {since}; another flowkey is migrating this \
         database (wait for it, or raise --lock-wait-secs)"
    )]
    Locked { holder: String, since: String },
    /// SQLite: no flowkey run holds the deploy lock, but another connection's write
    /// transaction kept the database locked for the whole wait.
    #[error(
        "the database stayed locked by another connection's write transaction for the whole \
         wait ({waited_secs} s; no flowkey run holds the deploy lock); nothing was changed: \
         retry when it ends, or raise --lock-wait-secs"
    )]
    DatabaseBusy { waited_secs: u64 },
    /// SQLite: the deploy lock's row cannot be written (a `?mode=ro` URL, a read-only file or
    /// mount), so no command that writes can run.
    #[error(
        "the database is read-only here ({reason}): this command writes, and nothing was \
         changed; open it read-write (without ?mode=ro, on a writable file)"
    )]
    ReadOnly { reason: String },
    #[error(
        "the deploy lock was lost: the connection holding it closed ({reason}), as when the \
         database restarts; stopped before the next step: rerun the same command to resume"
    )]
    LockLost { reason: String },
    #[error(
        "lost the connection to the database ({reason}); the run stopped where it was: rerun \
         the same command to resume"
    )]
    ConnectionLost { reason: String },
    #[error(
        "the tables flowkey migrates are not what revision {revision} needs ({count} incompatible \
         items): {}; nothing was changed",
        differences.iter().map(SchemaDifference::as_requirement).collect::<Vec<_>>().join("; ")
    )]
    ForeignSchema {
        revision: String,
        count: usize,
        differences: Vec<SchemaDifference>,
    },
    #[error(
        "the downgrade would drop the flow_id columns flowkey added, and {} object(s) created \
         since depend on them: {}; drop or change them first (flowkey never drops an object it \
         did not create); nothing was changed",
        objects.len(),
        objects.join("; ")
    )]
    DependentObjects { objects: Vec<String> },
    #[error(
        "a downgrade below legacy would drop the platform's legacy tables, and {why}: flowkey \
         never deletes the platform's data, so `downgrade legacy` is as far down as it goes \
         (drop the tables yourself if that is what you want); nothing was changed"
    )]
    WouldDropPlatformTables { why: String },
    #[error(
        "online DDL is blocked by transactions open longer than {threshold_secs} s, still \
         there after waiting {waited_secs} s: {transactions}; end them (or wait) and rerun \
         the same command"
    )]
    LongTransactions {
        threshold_secs: u64,
        waited_secs: u64,
        transactions: String,
    },
    #[error(transparent)]
    Flow(#[from] crate::migrate::flow::FlowMigrationError),
    #[error(transparent)]
    Contract(#[from] crate::migrate::flow::contract::ContractError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}
