//! What a database error means for the caller, on both engines: the database is away (try
//! again), the schema lacks a table or column, the client's data was refused, or the server
//! is misconfigured. Each engine speaks its own codes: PostgreSQL a five-character SQLSTATE,
//! SQLite a number (its primary result code in the low byte). A code is read only by the
//! rules of the engine that sent it (SQLSTATE 22021 & 0xff is 5, SQLite's "busy": read as a
//! number it would make a NUL byte look like an outage).

use crate::db::Engine;

/// What went wrong, as the caller must answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFailure {
    /// Connection lost, server shutting down or starting, out of resources, busy: try again
    /// later (HTTP 503).
    Unavailable,
    /// A table or column the statement names does not exist (HTTP 503 `schema_not_at_head`).
    SchemaObjectMissing,
    /// The database refused a value: bad text or number (PostgreSQL class 22) or a
    /// constraint (class 23, SQLite's constraint codes). The client's data (HTTP 422).
    ClientData,
    /// The database refused flowkey itself: permission denied (42501), a login or
    /// privilege problem. An operator's to fix (HTTP 500, logged as such).
    Misconfigured,
    /// Anything else: a bug (HTTP 500).
    Other,
}

/// Classifies a driver error by the engine that raised it.
pub fn classify(err: &sqlx::Error) -> DbFailure {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => DbFailure::Unavailable,
        sqlx::Error::Database(db) => {
            let engine = if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                Engine::Postgres
            } else {
                Engine::Sqlite
            };
            let code = db.code().unwrap_or_default();
            classify_code(engine, &code, db.message())
        }
        _ => DbFailure::Other,
    }
}

/// Classifies an error code (and, for SQLite, whose "no such table" has only the generic code,
/// its message) by the rules of `engine`.
pub fn classify_code(engine: Engine, code: &str, message: &str) -> DbFailure {
    match engine {
        Engine::Postgres => match code {
            "42P01" | "42703" => DbFailure::SchemaObjectMissing,
            // An ambiguous column: a server still reading a contracted table as served (its
            // session column derived) after `downgrade -1` added the real column back, until
            // its schema gate's next check. The schema moved under it, as with a missing one.
            "42702" => DbFailure::SchemaObjectMissing,
            "42501" => DbFailure::Misconfigured,
            // 08: connection exception; 57P0x: admin shutdown, crash shutdown, cannot connect
            // now, database dropped; 57014 (query canceled, e.g. statement timeout) too; 53:
            // insufficient resources; 55000: database not accepting connections.
            _ if code.starts_with("08")
                || code.starts_with("57P0")
                || code == "57014"
                || code.starts_with("53")
                || code == "55000" =>
            {
                DbFailure::Unavailable
            }
            _ if code.starts_with("22") || code.starts_with("23") => DbFailure::ClientData,
            // 28: invalid authorization (a login refused mid-life).
            _ if code.starts_with("28") => DbFailure::Misconfigured,
            _ => DbFailure::Other,
        },
        Engine::Sqlite => {
            let Some(primary) = sqlite_primary(code) else {
                return DbFailure::Other;
            };
            match primary {
                // SQLITE_BUSY, SQLITE_LOCKED (with their extended codes).
                5 | 6 => DbFailure::Unavailable,
                // SQLITE_CONSTRAINT, SQLITE_TOOBIG, SQLITE_MISMATCH, SQLITE_RANGE.
                19 | 18 | 20 | 25 => DbFailure::ClientData,
                // SQLITE_PERM, SQLITE_READONLY, SQLITE_AUTH, SQLITE_CANTOPEN.
                3 | 8 | 23 | 14 => DbFailure::Misconfigured,
                // SQLITE_IOERR, SQLITE_FULL: the disk, not the request.
                10 | 13 => DbFailure::Unavailable,
                1 if message.starts_with("no such table")
                    || message.starts_with("no such column")
                    || message.contains("has no column named") =>
                {
                    DbFailure::SchemaObjectMissing
                }
                _ => DbFailure::Other,
            }
        }
    }
}

/// SQLite's primary result code (the low byte of its extended code) of a driver error raised
/// by SQLite; `None` for any other error, a PostgreSQL one included (its SQLSTATE is not a
/// SQLite number even when it parses as one).
pub fn sqlite_primary_code(err: &sqlx::Error) -> Option<i32> {
    let db = err.as_database_error()?;
    if db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        return None;
    }
    sqlite_primary(&db.code()?)
}

fn sqlite_primary(code: &str) -> Option<i32> {
    code.parse::<i32>().ok().map(|extended| extended & 0xff)
}

/// The database cannot be reached or is busy right now (not "this request is wrong").
pub fn database_unavailable(err: &sqlx::Error) -> bool {
    classify(err) == DbFailure::Unavailable
}

/// A table or column the statement names does not exist.
pub fn schema_object_missing(err: &sqlx::Error) -> bool {
    classify(err) == DbFailure::SchemaObjectMissing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(code: &str) -> DbFailure {
        classify_code(Engine::Postgres, code, "")
    }

    fn sqlite(code: i32, message: &str) -> DbFailure {
        classify_code(Engine::Sqlite, &code.to_string(), message)
    }

    #[test]
    fn postgres_unavailability_classes() {
        for code in [
            "08006", "08001", "57P01", "57P02", "57P03", "57014", "53300", "53100",
        ] {
            assert_eq!(pg(code), DbFailure::Unavailable, "{code}");
        }
        assert_eq!(pg("55000"), DbFailure::Unavailable);
    }

    #[test]
    fn postgres_client_data_classes() {
        // 22021: a NUL byte; 22001: text too long; 23505: unique; 23503: foreign key. Read
        // as SQLite numbers, 22021 & 0xff = 5 would have said "busy".
        for code in ["22021", "22001", "22P02", "23505", "23503", "23502"] {
            assert_eq!(pg(code), DbFailure::ClientData, "{code}");
        }
    }

    #[test]
    fn postgres_misconfiguration_and_schema() {
        assert_eq!(pg("42501"), DbFailure::Misconfigured);
        assert_eq!(pg("28P01"), DbFailure::Misconfigured);
        assert_eq!(pg("42P01"), DbFailure::SchemaObjectMissing);
        assert_eq!(pg("42702"), DbFailure::SchemaObjectMissing);
        assert_eq!(pg("42703"), DbFailure::SchemaObjectMissing);
        assert_eq!(pg("42601"), DbFailure::Other);
        assert_eq!(pg("XX000"), DbFailure::Other);
    }

    #[test]
    fn sqlite_classes() {
        assert_eq!(sqlite(5, "database is locked"), DbFailure::Unavailable);
        assert_eq!(sqlite(517, "database is locked"), DbFailure::Unavailable);
        assert_eq!(
            sqlite(6, "database table is locked"),
            DbFailure::Unavailable
        );
        assert_eq!(
            sqlite(2067, "UNIQUE constraint failed"),
            DbFailure::ClientData
        );
        assert_eq!(
            sqlite(787, "FOREIGN KEY constraint failed"),
            DbFailure::ClientData
        );
        assert_eq!(sqlite(18, "string or blob too big"), DbFailure::ClientData);
        assert_eq!(
            sqlite(8, "attempt to write a readonly database"),
            DbFailure::Misconfigured
        );
        assert_eq!(
            sqlite(1, "no such table: t"),
            DbFailure::SchemaObjectMissing
        );
        assert_eq!(
            sqlite(1, "table t has no column named c"),
            DbFailure::SchemaObjectMissing
        );
        assert_eq!(sqlite(1, "near \"x\": syntax error"), DbFailure::Other);
    }

    #[test]
    fn a_code_is_read_by_its_own_engine() {
        assert_eq!(
            classify_code(Engine::Sqlite, "22021", ""),
            DbFailure::Unavailable
        );
        assert_eq!(pg("22021"), DbFailure::ClientData);
        assert_eq!(classify_code(Engine::Postgres, "5", ""), DbFailure::Other);
    }
}
