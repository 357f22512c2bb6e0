//! Finding a transaction pooler (PgBouncer in `pool_mode = transaction` or `statement`) in
//! front of PostgreSQL. Behind one, a client connection is not a server session: session
//! state — an advisory lock, a `SET`, a named prepared statement — stays on a server
//! connection that the pooler hands to other clients between transactions.
//!
//! The probe asks the property itself rather than the pooler's name: two client connections
//! ask alternately for their server session's pid (`pg_backend_pid()`); directly, or through a
//! session pooler, each client keeps its own session, so the pids always differ; through a
//! transaction pooler, the session one client just released serves the other (PgBouncer
//! reuses the last released server connection first), so a pid repeats.

use sqlx::{PgConnection, Row};

/// How many alternations: one is enough against PgBouncer's default (LIFO reuse); a few
/// more catch `server_round_robin = 1` with a small pool.
const ROUNDS: usize = 4;

/// Whether `first` and `second` (two client connections to the same URL) share server
/// sessions.
pub async fn share_server_sessions(
    first: &mut PgConnection,
    second: &mut PgConnection,
) -> Result<bool, sqlx::Error> {
    for _ in 0..ROUNDS {
        let (a, b) = match (backend_pid(first).await, backend_pid(second).await) {
            (Ok(a), Ok(b)) => (a, b),
            // A statement lost between two messages of one query is itself the proof.
            (Err(err), _) | (_, Err(err)) if statement_lost(&err) => return Ok(true),
            (Err(err), _) | (_, Err(err)) => return Err(err),
        };
        if a == b {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One simple-protocol message (`Query`), answered within one server transaction: an
/// extended-protocol query is several messages (Parse and Describe, then Bind and Execute),
/// and a transaction pooler may hand the server session to another client between them,
/// which loses even the unnamed statement ("unnamed prepared statement does not exist").
async fn backend_pid(conn: &mut PgConnection) -> Result<i32, sqlx::Error> {
    let row = sqlx::raw_sql("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await?;
    row.try_get(0)
}

/// 26000 invalid_sql_statement_name, 42P05 duplicate_prepared_statement: what a server
/// session answers when a statement prepared by one client meets another client's messages.
pub(crate) fn statement_lost(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("26000" | "42P05")))
}
