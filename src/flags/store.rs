//! SQL for `flowkey_flags` and the readiness counts.

use crate::db::types::DbTime;
use crate::db::{on_tx, Tx};
use crate::flags::{FlagScope, FlowIdPrimary, StoredFlag, FLAG_NAME};

pub async fn upsert(
    tx: &mut Tx<'_>,
    scope: FlagScope,
    value: FlowIdPrimary,
    updated_by: &str,
) -> Result<(), sqlx::Error> {
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
    Ok(())
}

pub async fn list(tx: &mut Tx<'_>) -> Result<Vec<StoredFlag>, sqlx::Error> {
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

/// Rows the backfill has not linked yet: a mapped session but no flow, or a flow-less child
/// of an import that has one.
pub const BACKFILL_PENDING: &[(&str, &str)] = &[
    (
        "data_imports",
        "SELECT COUNT(*) FROM data_imports t \
        JOIN session_flow_mapping m ON m.session_id = t.session_id WHERE t.flow_id IS NULL",
    ),
    (
        "raw_import_records",
        "SELECT COUNT(*) FROM raw_import_records t \
        JOIN data_imports di ON di.id = t.data_import_id \
        WHERE t.flow_id IS NULL AND (di.flow_id IS NOT NULL OR EXISTS \
          (SELECT 1 FROM session_flow_mapping m WHERE m.session_id = t.session_id))",
    ),
    (
        "import_field_mappings",
        "SELECT COUNT(*) FROM import_field_mappings t \
        JOIN data_imports di ON di.id = t.data_import_id \
        WHERE t.flow_id IS NULL AND di.flow_id IS NOT NULL",
    ),
    (
        "assets",
        "SELECT COUNT(*) FROM assets t \
        JOIN session_flow_mapping m ON m.session_id = t.session_id WHERE t.flow_id IS NULL",
    ),
    (
        "access_audit_log",
        "SELECT COUNT(*) FROM access_audit_log t \
        JOIN session_flow_mapping m ON m.session_id = t.session_id WHERE t.flow_id IS NULL",
    ),
];

/// Links that break an invariant: a row tied to a flow of another tenant, a mapping to a
/// missing flow, a row whose flow disagrees with its session's mapping.
pub const INTEGRITY_PROBLEMS: &[(&str, &str)] = &[
    (
        "session_flow_mapping rows whose flow is missing or of another tenant",
        "SELECT COUNT(*) \
        FROM session_flow_mapping m LEFT JOIN discovery_flows f ON f.flow_id = m.flow_id \
        WHERE f.flow_id IS NULL OR f.client_account_id <> m.client_account_id \
        OR f.engagement_id <> m.engagement_id",
    ),
    (
        "data_imports linked to a flow of another tenant",
        "SELECT COUNT(*) FROM data_imports t \
        JOIN discovery_flows f ON f.flow_id = t.flow_id \
        WHERE t.client_account_id <> f.client_account_id OR t.engagement_id <> f.engagement_id",
    ),
    (
        "raw_import_records linked to a flow of another tenant",
        "SELECT COUNT(*) \
        FROM raw_import_records t JOIN discovery_flows f ON f.flow_id = t.flow_id \
        WHERE t.client_account_id <> f.client_account_id OR t.engagement_id <> f.engagement_id",
    ),
    (
        "assets linked to a flow of another tenant",
        "SELECT COUNT(*) FROM assets t \
        JOIN discovery_flows f ON f.flow_id = t.flow_id \
        WHERE t.client_account_id <> f.client_account_id OR t.engagement_id <> f.engagement_id",
    ),
    (
        "data_imports whose flow differs from their session's",
        "SELECT COUNT(*) \
        FROM data_imports t JOIN session_flow_mapping m ON m.session_id = t.session_id \
        WHERE t.flow_id IS NOT NULL AND t.flow_id <> m.flow_id",
    ),
    (
        "raw_import_records whose flow differs from their session's",
        "SELECT COUNT(*) \
        FROM raw_import_records t JOIN session_flow_mapping m ON m.session_id = t.session_id \
        WHERE t.flow_id IS NOT NULL AND t.flow_id <> m.flow_id",
    ),
];

pub async fn count(tx: &mut Tx<'_>, sql: &'static str) -> Result<i64, sqlx::Error> {
    Ok(on_tx!(tx, conn => {
        sqlx::query_scalar(sql).fetch_one(&mut **conn).await?
    }))
}
