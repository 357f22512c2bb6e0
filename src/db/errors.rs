//! What a database error means for the caller, on both engines: "the database is away, try
//! again" or "the schema lacks a table or column". The HTTP layer turns both into a 503, and
//! the schema check must not mistake the first for the second.

/// Errors that mean "the database cannot be reached or is busy right now", not "this request
/// is wrong": PostgreSQL SQLSTATE classes 08 (connection exception) and 57 (operator
/// intervention: shutdown, terminated backend, starting up), 55000 (database not accepting
/// connections); SQLite 5 and 6 (busy, locked) with their extended codes; and every
/// transport-level failure.
pub fn database_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || code.starts_with("57")
                || code == "55000"
                || code
                    .parse::<i32>()
                    .is_ok_and(|sqlite| matches!(sqlite & 0xff, 5 | 6))
        }),
        _ => false,
    }
}

/// A table or column the statement names does not exist: PostgreSQL 42P01 (undefined table)
/// and 42703 (undefined column); SQLite says it only in its message (generic code 1).
pub fn schema_object_missing(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    match db.code().as_deref() {
        Some("42P01" | "42703") => true,
        Some("1") => {
            let message = db.message();
            message.starts_with("no such table")
                || message.starts_with("no such column")
                || message.contains("has no column named")
        }
        _ => false,
    }
}
