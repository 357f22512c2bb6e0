//! SQL for `data_import_sessions` and `session_flow_mapping`. Every function names the
//! tenant, except where a comment says why it must look across tenants.

use serde::Serialize;

use crate::db::tenancy::{agrees_with_binds, names_binds};
use crate::db::types::{DbTime, DbUuid};
use crate::db::{on_tx, Tx};
use crate::ids::{ClientAccountId, EngagementId, FlowId, SessionId, TenantId};
use crate::sessions::SessionsError;

/// Whether a legacy upload session exists within the tenant.
pub async fn exists(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    session_id: SessionId,
) -> Result<bool, SessionsError> {
    let sql = format!(
        "SELECT 1 FROM data_import_sessions s WHERE s.id = $3 AND {}",
        names_binds("s", "$1", "$2")
    );
    let found: Option<i32> = on_tx!(tx, conn => {
        sqlx::query_scalar(&sql)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(session_id)
            .fetch_optional(&mut **conn)
            .await?
    });
    Ok(found.is_some())
}

/// Whether any tenant uses this id as a session. It must look across tenants: that is how a
/// v1 client is kept from taking over another tenant's session by naming it.
pub async fn id_taken(tx: &mut Tx<'_>, session_id: SessionId) -> Result<bool, SessionsError> {
    let found: Option<i32> = on_tx!(tx, conn => {
        sqlx::query_scalar("SELECT 1 FROM data_import_sessions WHERE id = $1")
            .bind(session_id)
            .fetch_optional(&mut **conn)
            .await?
    });
    Ok(found.is_some())
}

/// Creates a legacy upload session, as the v1 API did for every upload.
pub async fn insert(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    session_id: SessionId,
    source_filename: &str,
    created_by: uuid::Uuid,
) -> Result<(), SessionsError> {
    on_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO data_import_sessions (id, client_account_id, engagement_id, session_name, \
             session_type, auto_created, source_filename, status, created_by, created_at) \
             VALUES ($1, $2, $3, $4, 'data_import', $5, $6, 'active', $7, $8)",
        )
        .bind(session_id)
        .bind(tenant.client_account_id)
        .bind(tenant.engagement_id)
        .bind(format!("upload {source_filename}"))
        .bind(true)
        .bind(source_filename)
        .bind(DbUuid(created_by))
        .bind(DbTime::now())
        .execute(&mut **conn)
        .await
        .map_err(|err| match &err {
            // Two uploads naming the same new session at once: the second loses the race.
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                SessionsError::SessionTaken { session_id }
            }
            _ => SessionsError::Database(err),
        })?
        .rows_affected()
    });
    Ok(())
}

/// The flow a session is mapped to, within the tenant.
pub async fn mapped_flow(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    session_id: SessionId,
) -> Result<Option<FlowId>, SessionsError> {
    let sql = format!(
        "SELECT m.flow_id FROM session_flow_mapping m WHERE m.session_id = $1 AND {}",
        names_binds("m", "$2", "$3")
    );
    Ok(on_tx!(tx, conn => {
        sqlx::query_scalar(&sql)
            .bind(session_id)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .fetch_optional(&mut **conn)
            .await?
    }))
}

/// Links a session to its flow within the tenant; `rule` says why (`written_at_head` for a
/// session created by the running service). The live mapping's trigger has already mapped
/// the session when the flow names it in `import_session_id`: the row then only takes `rule`.
pub async fn insert_mapping(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    session_id: SessionId,
    flow_id: FlowId,
    rule: &str,
) -> Result<(), SessionsError> {
    on_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO session_flow_mapping (session_id, flow_id, client_account_id, \
             engagement_id, rule, flow_created_by_migration, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (session_id) DO UPDATE SET rule = excluded.rule \
             WHERE session_flow_mapping.flow_id = excluded.flow_id",
        )
        .bind(session_id)
        .bind(flow_id)
        .bind(tenant.client_account_id)
        .bind(tenant.engagement_id)
        .bind(rule)
        .bind(false)
        .bind(DbTime::now())
        .execute(&mut **conn)
        .await?
        .rows_affected()
    });
    Ok(())
}

/// The smallest session of the tenant mapped to a flow (the one a deletion audit names).
pub async fn first_session_of_flow(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    flow_id: FlowId,
) -> Result<Option<SessionId>, SessionsError> {
    let sql = format!(
        "SELECT m.session_id FROM session_flow_mapping m WHERE m.flow_id = $1 AND {} \
         ORDER BY m.session_id LIMIT 1",
        names_binds("m", "$2", "$3")
    );
    Ok(on_tx!(tx, conn => {
        sqlx::query_scalar(&sql)
            .bind(flow_id)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .fetch_optional(&mut **conn)
            .await?
    }))
}

/// Removes the tenant's mapping rows of a flow being deleted. A row naming the flow under
/// another tenant stays, and the flow's own deletion then fails on its foreign key instead
/// of removing another tenant's row.
pub async fn delete_mappings_of_flow(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    flow_id: FlowId,
) -> Result<u64, SessionsError> {
    let sql = format!(
        "DELETE FROM session_flow_mapping WHERE flow_id = $1 AND {}",
        agrees_with_binds("session_flow_mapping", "$2", "$3")
    );
    Ok(on_tx!(tx, conn => {
        sqlx::query(&sql)
            .bind(flow_id)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .execute(&mut **conn)
            .await?
            .rows_affected()
    }))
}

/// A mapped legacy session, as `session_flow_mapping` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappedSession {
    pub session_id: SessionId,
    pub flow_id: FlowId,
    pub tenant: TenantId,
    pub rule: String,
}

/// One mapped session per mapping rule, across every tenant: an operator's sample (the demo
/// shows how each kind of legacy id resolves), not a tenant's read.
pub async fn one_session_per_rule(tx: &mut Tx<'_>) -> Result<Vec<MappedSession>, SessionsError> {
    let rows: Vec<(SessionId, FlowId, ClientAccountId, EngagementId, String)> = on_tx!(tx, conn => {
        sqlx::query_as(
            "SELECT session_id, flow_id, client_account_id, engagement_id, rule FROM \
             (SELECT session_id, flow_id, client_account_id, engagement_id, rule, \
                     ROW_NUMBER() OVER (PARTITION BY rule ORDER BY session_id) AS n \
              FROM session_flow_mapping) ranked \
             WHERE n = 1 ORDER BY rule",
        )
        .fetch_all(&mut **conn)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(
            |(session_id, flow_id, client, engagement, rule)| MappedSession {
                session_id,
                flow_id,
                tenant: TenantId::new(client, engagement),
                rule,
            },
        )
        .collect())
}
