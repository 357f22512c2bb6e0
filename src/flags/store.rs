//! SQL for `flowkey_flags`. The flag is the operator's, stored per scope (global or one
//! tenant): these functions act on one scope or list every one, never on a tenant's data.

use crate::db::types::DbTime;
use crate::db::{on_tx, Tx};
use crate::flags::{FlagError, FlagScope, FlowIdPrimary, StoredFlag, FLAG_NAME};
use crate::ids::TenantId;

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

/// Counts one shadow mismatch of `route` for `tenant` (`flowkey_shadow_mismatches`, the
/// count the `on` gate reads; it starts again at every flag change of the tenant's scope).
pub async fn record_shadow_mismatch(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    route: &str,
) -> Result<(), FlagError> {
    let now = DbTime::now();
    on_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO flowkey_shadow_mismatches \
             (client_account_id, engagement_id, route, mismatches, first_seen, last_seen) \
             VALUES ($1, $2, $3, 1, $4, $4) ON CONFLICT (client_account_id, engagement_id, route) \
             DO UPDATE SET mismatches = flowkey_shadow_mismatches.mismatches + 1, \
             last_seen = excluded.last_seen",
        )
        .bind(tenant.client_account_id)
        .bind(tenant.engagement_id)
        .bind(route)
        .bind(now)
        .execute(&mut **conn)
        .await?
        .rows_affected()
    });
    Ok(())
}

/// Shadow mismatches since the scope's last flag change: one tenant's, or every tenant's for
/// the global scope.
pub async fn shadow_mismatches(tx: &mut Tx<'_>, scope: FlagScope) -> Result<i64, FlagError> {
    Ok(on_tx!(tx, conn => {
        match scope {
            FlagScope::Global => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT CAST(COALESCE(SUM(mismatches), 0) AS BIGINT) FROM flowkey_shadow_mismatches",
                )
                .fetch_one(&mut **conn)
                .await?
            }
            FlagScope::Tenant(tenant) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT CAST(COALESCE(SUM(mismatches), 0) AS BIGINT) FROM flowkey_shadow_mismatches \
                     WHERE client_account_id = $1 AND engagement_id = $2",
                )
                .bind(tenant.client_account_id)
                .bind(tenant.engagement_id)
                .fetch_one(&mut **conn)
                .await?
            }
        }
    }))
}

/// Starts the scope's count again (a flag change): the tenant's rows, or every row for the
/// global scope, which every tenant without an override follows.
pub async fn reset_shadow_mismatches(tx: &mut Tx<'_>, scope: FlagScope) -> Result<(), FlagError> {
    on_tx!(tx, conn => {
        match scope {
            FlagScope::Global => {
                sqlx::query("DELETE FROM flowkey_shadow_mismatches")
                    .execute(&mut **conn)
                    .await?
                    .rows_affected()
            }
            FlagScope::Tenant(tenant) => {
                sqlx::query(
                    "DELETE FROM flowkey_shadow_mismatches \
                     WHERE client_account_id = $1 AND engagement_id = $2",
                )
                .bind(tenant.client_account_id)
                .bind(tenant.engagement_id)
                .execute(&mut **conn)
                .await?
                .rows_affected()
            }
        }
    });
    Ok(())
}

/// One flag change in `flowkey_flag_changes` (`value` `None`: the scope's value removed),
/// with whether it was forced past the shadow gate and how many mismatches that overrode.
pub async fn record_change(
    tx: &mut Tx<'_>,
    scope: FlagScope,
    value: Option<FlowIdPrimary>,
    changed_by: &str,
    mismatches_overridden: Option<i64>,
) -> Result<(), FlagError> {
    on_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO flowkey_flag_changes \
             (name, scope, value, changed_at, changed_by, forced, mismatches_overridden) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(FLAG_NAME)
        .bind(scope.to_string())
        .bind(value.map(|value| value.as_str()))
        .bind(DbTime::now())
        .bind(changed_by)
        .bind(mismatches_overridden.is_some())
        .bind(mismatches_overridden.unwrap_or(0))
        .execute(&mut **conn)
        .await?
        .rows_affected()
    });
    Ok(())
}
