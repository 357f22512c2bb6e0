//! Fault injection for tests: the errors a database really returns, made on demand.
//!
//! Migration code marks the places where the worst day of a production run can strike with
//! `fail::fail_point!` (the `fail` crate). Without the `failpoints` feature, which only the
//! test suite turns on, each point compiles to nothing. With it, a process arms points from
//! the `FAILPOINTS` environment variable (`main` sets up the scenario), e.g.
//! `FAILPOINTS='backfill::batch_committed=3*off->return(connection_lost)'`: the fourth batch
//! commit is followed by a lost connection. The argument names the error ([`injected`]).
//!
//! Points are armed per process so that tests running in parallel never see each other's
//! faults: a test that injects one runs the real `flowkey` binary.
//!
//! # The points
//!
//! A `before_` point fails as if the operation itself failed, before it happened; an `after_`
//! point fails as if the connection went away just after it succeeded.
//!
//! The runner (`migrate::runner`):
//! - a step: `runner::before_step` (after the lock check, before the step's audit row),
//!   `runner::after_step` (the step is done and recorded, its audit row not yet closed);
//! - a step's SQL, by class: `runner::before_sqlite_script` / `runner::after_sqlite_script`
//!   (inside the step's SQLite transaction), `runner::before_foreign_keys_on` (SQLite: a
//!   script that turned foreign keys off is done, they are about to be switched back on;
//!   the driver's error, [`check_sql`]), `runner::before_postgres_script` /
//!   `runner::after_postgres_script` (inside the PostgreSQL step transaction, whose lock
//!   timeouts are retried), `runner::before_online_statement` /
//!   `runner::after_online_statement` (each online DDL statement, retried alone),
//!   `runner::before_code_step` / `runner::after_code_step` (a `Code` or `Check` step's
//!   function, before it is recorded done);
//! - a step's transaction: `runner::before_commit`, `runner::after_commit`,
//!   `runner::before_rollback`, `runner::after_rollback` (a failed rollback is logged; the
//!   step's own error stands);
//! - the deploy lock (`migrate::lock`): `runner::before_lock_acquire`,
//!   `runner::after_lock_acquire` (the lock is given back), `runner::lock_check` (PostgreSQL:
//!   the lock's session stops answering when checked before a step, so the run stops with
//!   "lock lost"; SQLite keeps its lock in a row and has nothing to check),
//!   `runner::before_lock_release` (PostgreSQL: the lock goes with its connection, and the
//!   run's result stands; SQLite: the row stays, and the next run takes it over from this
//!   dead process), `runner::after_lock_release`, `lock::before_holder_lookup` (PostgreSQL:
//!   the try failed, the holder not yet looked up), `lock::before_takeover` (SQLite: a dead
//!   holder's row read, not yet taken over); tests make these two `sleep` to open a race;
//!   `lock::before_sqlite_holder_read` (SQLite: the lock row was there at the insert, its
//!   holder not yet read; a test makes it `sleep` while the holder lets go);
//!   `lock::before_sqlite_insert` (SQLite: the lock row about to be inserted); this point
//!   and `lock::before_takeover` fail with the driver's own error ([`check_sql`]: `busy` is
//!   waited out like a runner's write lock, any other error stops the run);
//! - a failed step's audit row: `runner::before_failure_recorded` (the step failed; recording
//!   its failure fails too, and the step's own error must stand);
//! - the servers' notification (PostgreSQL): `runner::before_schema_notify` (the book changed;
//!   a notification that cannot be sent is logged, the run goes on; the driver's error,
//!   [`check_sql`]);
//! - the versions book: `runner::before_mark_dirty`, `runner::after_mark_dirty`,
//!   `runner::before_set_steps_done`, `runner::after_set_steps_done` (in the step's
//!   transaction where it has one), `runner::before_mark_applied`,
//!   `runner::after_mark_applied`, `runner::before_delete_version`,
//!   `runner::after_delete_version`.
//!
//! The backfill (`migrate::flow::backfill`): `backfill::before_batch_commit`,
//! `backfill::batch_committed`, `backfill::before_sweep`.
//!
//! SQLite reads through a connection of flowkey's own ([`check_own_sqlite`]: a row read
//! fails with an I/O error): `fingerprint::sqlite_row` (the fingerprints),
//! `write_ledger::sqlite_baseline_row` (the ledger's baseline), `write_ledger::sqlite_compare_row`
//! (its comparison, `verify --online`).
//!
//! `verify`'s record for readiness (`migrate::flow::verification_record`):
//! `readiness::before_store_basis` (the verification is recorded, its delta's basis not yet
//! stored; storing is an optimisation, so a failure is logged and readiness checks in full).
//!
//! The fingerprint bench (`flowkey bench fingerprint`): `bench::between_count_and_fingerprint`
//! (a table counted, not yet fingerprinted; tests make it `sleep` while they write a row).
//!
//! The rehearsal (`flowkey rehearse`, PostgreSQL): `rehearse::before_copy_drop` (the
//! rehearsal is done; the server is lost before its copy database is dropped; the driver's
//! error, [`check_sql`]).
//!
//! The downgrade (`migrate::flow::sqlite_rebuild`): `downgrade::before_drop_column` (SQLite:
//! one of the added columns about to be dropped, in the transaction that drops them all).
//!
//! The server's schema check (`migrate::serving`, errors as the driver gives them, see
//! [`check_sql`]): `serving::before_revision_read` (the recorded revision about to be read),
//! `serving::before_probe` (a head table about to be probed): the database going away in
//! the middle of a check.
//!
//! The contract (`migrate::flow::contract`): `contract::archive_batch` (an archive batch and
//! its cursor written, not committed), `contract::rebuild_commit` (SQLite: every table
//! rebuilt, not committed), `contract::restore_batch` (a downgrade's restore batch written,
//! not committed).

use crate::migrate::MigrateError;

/// Fails with the error armed at `point` (see [`injected`]); does nothing when the point is
/// not armed, and compiles to nothing without the `failpoints` feature. For points whose
/// error simply propagates: `faults::check("runner::before_commit")?`.
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
pub fn check(point: &'static str) -> Result<(), MigrateError> {
    fail::fail_point!(point, |kind| Err(injected(point, kind)));
    Ok(())
}

/// [`check`] for the reads flowkey makes through a SQLite connection of its own (rusqlite:
/// the fingerprint, the write ledger's baseline and comparison): an I/O error, as a failing
/// disk gives, whatever the armed argument.
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
pub fn check_own_sqlite(point: &'static str) -> rusqlite::Result<()> {
    fail::fail_point!(point, |_| Err(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
        Some(format!("disk I/O error (injected at {point})")),
    )));
    Ok(())
}

/// [`check`] for code whose errors are the driver's own (`sqlx::Error`): the error
/// [`injected`] wraps.
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
pub fn check_sql(point: &'static str) -> Result<(), sqlx::Error> {
    fail::fail_point!(point, |kind| Err(injected_sql(point, kind)));
    Ok(())
}

/// The error a fault point returns: the one the database would give for `kind` (`None`: a
/// lost connection, the commonest failure).
///
/// Kinds: `connection_lost` (I/O reset), `lock_timeout` (PostgreSQL 55P03),
/// `serialization_failure` (40001), `deadlock` (40P01), `busy` (SQLite 5), `disk_full`
/// (PostgreSQL 53100, SQLite 13), `admin_shutdown` (57P01), `pool_timeout`.
pub fn injected(point: &str, kind: Option<String>) -> MigrateError {
    MigrateError::Sql(injected_sql(point, kind))
}

/// [`injected`]'s driver error.
fn injected_sql(point: &str, kind: Option<String>) -> sqlx::Error {
    let kind = kind.unwrap_or_else(|| "connection_lost".to_owned());
    let database = |code: &'static str, message: &'static str| {
        sqlx::Error::Database(Box::new(InjectedDatabaseError {
            code,
            message: format!("{message} (injected at {point})"),
        }))
    };
    match kind.as_str() {
        "lock_timeout" => database("55P03", "canceling statement due to lock timeout"),
        "serialization_failure" => database(
            "40001",
            "could not serialize access due to concurrent update",
        ),
        "deadlock" => database("40P01", "deadlock detected"),
        "busy" => database("5", "database is locked"),
        "disk_full" => database("53100", "could not extend file: No space left on device"),
        "sqlite_full" => database("13", "database or disk is full"),
        "admin_shutdown" => database(
            "57P01",
            "terminating connection due to administrator command",
        ),
        "pool_timeout" => sqlx::Error::PoolTimedOut,
        _ => sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            format!("connection reset by peer (injected at {point})"),
        )),
    }
}

/// A driver error with a code, as PostgreSQL (a SQLSTATE) or SQLite (a result code) reports it.
#[derive(Debug)]
struct InjectedDatabaseError {
    code: &'static str,
    message: String,
}

impl std::fmt::Display for InjectedDatabaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InjectedDatabaseError {}

impl sqlx::error::DatabaseError for InjectedDatabaseError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(std::borrow::Cow::Borrowed(self.code))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        sqlx::error::ErrorKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every point the runner arms is listed in this module's documentation, where a test
    /// author looks for it.
    #[test]
    fn every_runner_point_is_documented() {
        let documentation = include_str!("faults.rs")
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default();
        let sources = [
            include_str!("runner/mod.rs"),
            include_str!("runner/session.rs"),
            include_str!("runner/steps.rs"),
            include_str!("runner/versions.rs"),
            include_str!("runner/sqlite.rs"),
            include_str!("runner/postgres.rs"),
            include_str!("lock.rs"),
        ];
        let mut points = Vec::new();
        for source in sources {
            for call in ["faults::check(\"", "faults::check_sql(\""] {
                for (_, rest) in source
                    .match_indices(call)
                    .map(|(at, _)| source.split_at(at + call.len()))
                {
                    let point = rest.split('"').next().unwrap_or_default();
                    points.push(point.to_owned());
                }
            }
        }
        assert!(points.len() >= 27, "{points:?}");
        for point in points {
            assert!(
                documentation.contains(&format!("`{point}`")),
                "{point} is not listed in faults.rs"
            );
        }
    }

    /// The driver error inside an injected error, if it is a database error.
    fn database_error(err: MigrateError) -> Option<Box<dyn sqlx::error::DatabaseError>> {
        match err {
            MigrateError::Sql(sqlx::Error::Database(err)) => Some(err),
            _ => None,
        }
    }

    #[test]
    fn injected_errors_carry_the_codes_the_engines_use() {
        for (kind, code) in [
            ("lock_timeout", "55P03"),
            ("serialization_failure", "40001"),
            ("deadlock", "40P01"),
            ("busy", "5"),
            ("disk_full", "53100"),
            ("sqlite_full", "13"),
            ("admin_shutdown", "57P01"),
        ] {
            let mut err = database_error(injected("p", Some(kind.into())))
                .unwrap_or_else(|| panic!("{kind}: not a database error"));
            assert_eq!(err.code().as_deref(), Some(code), "{kind}");
            assert!(err.message().contains("injected at p"), "{kind}");
            assert!(matches!(err.kind(), sqlx::error::ErrorKind::Other));
            assert_eq!(err.as_error().to_string(), err.message());
            assert_eq!(err.as_error_mut().to_string(), err.message());
            assert!(err.into_error().to_string().contains("injected at p"));
        }
        assert!(matches!(
            injected("p", None),
            MigrateError::Sql(sqlx::Error::Io(_))
        ));
        assert!(database_error(injected("p", Some("pool_timeout".into()))).is_none());
    }
}
