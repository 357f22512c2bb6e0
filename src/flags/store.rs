//! SQL for `flowkey_flags`. The flag is the operator's, stored per scope (global or one
//! tenant): these functions act on one scope or list every one, never on a tenant's data.

use crate::db::types::DbTime;
use crate::db::{on_tx, Tx};
use crate::flags::{FlagError, FlagScope, FlowIdPrimary, StoredFlag, FLAG_NAME};

pub async fn upsert(
    tx: &mut Tx<'_>,
    scope: FlagScope,
    value: FlowIdPrimary,
    updated_by: &str,
) -> Result<(), FlagError> {
    on_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO flowkey_flags (name, scope, value, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, scope) DO UPDATE SET \
             value = excluded.value, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by",
        )
        .bind(FLAG_NAME)
        .bind(scope.to_string())
        .bind(value.as_str())
        .bind(DbTime::now())
        .bind(updated_by)
        .execute(&mut **conn)
        .await?
        .rows_affected()
    });
    notify_servers(tx).await
}

/// Removes the stored value of a scope; answers whether there was one.
pub async fn delete(tx: &mut Tx<'_>, scope: FlagScope) -> Result<bool, FlagError> {
    let deleted = on_tx!(tx, conn => {
        sqlx::query("DELETE FROM flowkey_flags WHERE name = $1 AND scope = $2")
            .bind(FLAG_NAME)
            .bind(scope.to_string())
            .execute(&mut **conn)
            .await?
            .rows_affected()
    });
    notify_servers(tx).await?;
    Ok(deleted > 0)
}

/// The channel servers LISTEN on for flag changes (PostgreSQL).
pub const FLAG_CHANNEL: &str = "flowkey_flags";

/// Wakes every listening server when the change commits (PostgreSQL delivers a NOTIFY at
/// commit, and never for a rolled-back change); SQLite servers poll.
async fn notify_servers(tx: &mut Tx<'_>) -> Result<(), FlagError> {
    if let Tx::Postgres(conn) = tx {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(FLAG_CHANNEL)
            .execute(&mut **conn)
            .await?;
    }
    Ok(())
}

pub async fn list(tx: &mut Tx<'_>) -> Result<Vec<StoredFlag>, FlagError> {
    Ok(on_tx!(tx, conn => {
        sqlx::query_as(
            "SELECT name, scope, value, updated_at, updated_by FROM flowkey_flags \
             WHERE name = $1 ORDER BY scope",
        )
        .bind(FLAG_NAME)
        .fetch_all(&mut **conn)
        .await?
    }))
}
