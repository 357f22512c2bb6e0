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

use sqlx::PgConnection;

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
        let a = backend_pid(first).await?;
        let b = backend_pid(second).await?;
        if a == b {
            return Ok(true);
        }
    }
    Ok(false)
}

async fn backend_pid(conn: &mut PgConnection) -> Result<i32, sqlx::Error> {
    // Unnamed (not persistent): a named statement would itself collide through the pooler.
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .persistent(false)
        .fetch_one(&mut *conn)
        .await
}
