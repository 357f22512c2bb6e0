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

use crate::migrate::MigrateError;

/// Fails with the error armed at `point` (see [`injected`]); does nothing when the point is
/// not armed, and compiles to nothing without the `failpoints` feature. For points whose
/// error simply propagates: `faults::check("runner::before_commit")?`.
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
pub fn check(point: &'static str) -> Result<(), MigrateError> {
    fail::fail_point!(point, |kind| Err(injected(point, kind)));
    Ok(())
}

/// The error a fault point returns: the one the database would give for `kind` (`None`: a
/// lost connection, the commonest failure).
///
/// Kinds: `connection_lost` (I/O reset), `lock_timeout` (PostgreSQL 55P03),
/// `serialization_failure` (40001), `deadlock` (40P01), `busy` (SQLite 5), `disk_full`
/// (PostgreSQL 53100, SQLite 13), `admin_shutdown` (57P01), `pool_timeout`.
pub fn injected(point: &str, kind: Option<String>) -> MigrateError {
    let kind = kind.unwrap_or_else(|| "connection_lost".to_owned());
    let database = |code: &'static str, message: &'static str| {
        sqlx::Error::Database(Box::new(InjectedDatabaseError {
            code,
            message: format!("{message} (injected at {point})"),
        }))
    };
    MigrateError::Sql(match kind.as_str() {
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
    })
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

    #[test]
    fn injected_errors_carry_the_codes_the_engines_use() {
        let MigrateError::Sql(sqlx::Error::Database(err)) =
            injected("p", Some("lock_timeout".into()))
        else {
            panic!("a database error");
        };
        assert_eq!(err.code().as_deref(), Some("55P03"));
        assert!(err.message().contains("injected at p"));
        assert!(matches!(
            injected("p", None),
            MigrateError::Sql(sqlx::Error::Io(_))
        ));
    }
}
