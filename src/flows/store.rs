//! SQL for `discovery_flows` and `flow_deletion_audit`. Every read names the tenant.

use serde_json::Value;
use sqlx::types::Json;

use crate::db::tenancy;
use crate::db::types::{DbTime, DbUuid};
use crate::db::{on_tx, KeyColumns, Tx};
use crate::flows::{DiscoveryFlow, FlowsError, NewFlow};
use crate::ids::{FlowId, SessionId, TenantId};
use crate::migrate::flow::contract;
use crate::paging::{Cursor, Page, PageRequest};

const FLOW_COLUMNS: &str = "flow_id, client_account_id, engagement_id, user_id, \
     import_session_id, data_import_id, flow_name, flow_description, status, \
     progress_percentage, data_import_completed, attribute_mapping_completed, \
     data_cleansing_completed, inventory_completed, dependencies_completed, \
     tech_debt_completed, crewai_state_data, assessment_ready, created_at, updated_at, \
     completed_at";

/// `discovery_flows` as read with `keys` (after the contract, with `import_session_id`
/// computed: `contract::served_table`), aliased as the table itself.
fn flows_table(tx: &Tx<'_>, keys: KeyColumns) -> String {
    format!(
        "{} discovery_flows",
        contract::served_table(keys, tx.engine(), "discovery_flows")
    )
}

/// A new flow starts with its data import phase done: the file is already stored.
pub async fn insert(tx: &mut Tx<'_>, keys: KeyColumns, flow: &NewFlow) -> Result<(), FlowsError> {
    let now = DbTime::now();
    let state = serde_json::json!({
        "flow_id": flow.flow_id,
        "current_phase": "attribute_mapping",
        "created_by": "flowkey",
    });
    // After the contract the flow's session is the mapping's: a flow created for a legacy
    // session gets that session's mapping in the same transaction (`imports::create`).
    let sql = match keys {
        KeyColumns::Expanded => {
            "INSERT INTO discovery_flows (id, flow_id, client_account_id, engagement_id, user_id, \
             import_session_id, data_import_id, flow_name, status, progress_percentage, \
             data_import_completed, crewai_state_data, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $10, $11, $12, $12)"
        }
        KeyColumns::Contracted => {
            "INSERT INTO discovery_flows (id, flow_id, client_account_id, engagement_id, user_id, \
             data_import_id, flow_name, status, progress_percentage, \
             data_import_completed, crewai_state_data, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $9, $10, $11, $11)"
        }
    };
    on_tx!(tx, conn => {
        let query = sqlx::query(sql)
            .bind(DbUuid::new_v4())
            .bind(flow.flow_id)
            .bind(flow.tenant.client_account_id)
            .bind(flow.tenant.engagement_id)
            .bind(&flow.user_id);
        let query = match keys {
            KeyColumns::Expanded => query.bind(flow.import_session_id),
            KeyColumns::Contracted => query,
        };
        query
        .bind(flow.data_import_id)
        .bind(&flow.flow_name)
        .bind(100.0 / 6.0)
        .bind(true)
        .bind(Json(&state))
        .bind(now)
        .execute(&mut **conn)
        .await?
        .rows_affected()
    });
    Ok(())
}

pub async fn get(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    flow_id: FlowId,
) -> Result<DiscoveryFlow, FlowsError> {
    find(tx, keys, tenant, flow_id)
        .await?
        .ok_or(FlowsError::NotFound { flow_id })
}

pub async fn find(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    flow_id: FlowId,
) -> Result<Option<DiscoveryFlow>, FlowsError> {
    let flows = flows_table(tx, keys);
    let sql = format!(
        "SELECT {FLOW_COLUMNS} FROM {flows} \
         WHERE flow_id = $1 AND client_account_id = $2 AND engagement_id = $3"
    );
    Ok(on_tx!(tx, conn => {
        sqlx::query_as(&sql)
            .bind(flow_id)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .fetch_optional(&mut **conn)
            .await?
    }))
}

/// The flow a legacy session means, found the pre-flow-id way (`import_session_id`): of the
/// tenant's flows naming the session, the earliest by `created_at`, then the smallest
/// `flow_id` — the one choice the mapping, the live mapping triggers and `on` make too
/// (BREAKING_CHANGES.md, "A session claimed by several flows"). A stand-in flow the
/// migration created (`flowkey_remembered_flows`) comes after every real one: it gives way
/// to a real flow the old code creates later.
pub async fn claiming_flow_for_session(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    session_id: SessionId,
) -> Result<Option<DiscoveryFlow>, FlowsError> {
    // Reached through the session: the session too, where it exists, must be the tenant's.
    let session_agrees = tenancy::parent_agrees(
        "data_import_sessions",
        "id",
        "discovery_flows.import_session_id",
        "$2",
        "$3",
    );
    let flows = flows_table(tx, keys);
    let sql = format!(
        "SELECT {FLOW_COLUMNS} FROM {flows} \
         WHERE import_session_id = $1 AND client_account_id = $2 AND engagement_id = $3 \
         AND {session_agrees} \
         ORDER BY CASE WHEN EXISTS (SELECT 1 FROM flowkey_remembered_flows r \
                  WHERE r.flow_id = discovery_flows.flow_id) THEN 1 ELSE 0 END, \
         created_at, flow_id LIMIT 1"
    );
    Ok(on_tx!(tx, conn => {
        sqlx::query_as(&sql)
            .bind(session_id)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .fetch_optional(&mut **conn)
            .await?
    }))
}

/// The tenant's flows, by flow id, optionally with one status.
pub async fn list(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    status: Option<&str>,
    page: &PageRequest,
) -> Result<Page<DiscoveryFlow>, FlowsError> {
    let flows = flows_table(tx, keys);
    let sql = format!(
        "SELECT {FLOW_COLUMNS} FROM {flows} \
         WHERE client_account_id = $1 AND engagement_id = $2 AND ($3 IS NULL OR status = $3) \
         AND flow_id > $4 ORDER BY flow_id LIMIT $5"
    );
    let (_, after) = page.after_key();
    let rows: Vec<DiscoveryFlow> = on_tx!(tx, conn => {
        sqlx::query_as(&sql)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(status)
            .bind(DbUuid(after))
            .bind(page.fetch_limit())
            .fetch_all(&mut **conn)
            .await?
    });
    Ok(Page::from_rows(rows, page, |row| Cursor {
        rank: 0,
        id: row.flow_id.as_uuid(),
    }))
}

pub async fn set_status(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    flow_id: FlowId,
    status: &str,
) -> Result<(), FlowsError> {
    let changed = on_tx!(tx, conn => {
        sqlx::query(
            "UPDATE discovery_flows SET status = $1, updated_at = $2 \
             WHERE flow_id = $3 AND client_account_id = $4 AND engagement_id = $5",
        )
        .bind(status)
        .bind(DbTime::now())
        .bind(flow_id)
        .bind(tenant.client_account_id)
        .bind(tenant.engagement_id)
        .execute(&mut **conn)
        .await?
        .rows_affected()
    });
    if changed == 0 {
        return Err(FlowsError::NotFound { flow_id });
    }
    Ok(())
}

/// Deletes the tenant's assets of a flow (their raw records keep their rows, `asset_id` goes
/// NULL by the legacy foreign key's own rule). An asset of another tenant naming the flow
/// stays, and the flow's deletion then fails on its foreign key.
pub async fn delete_assets(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    flow_id: FlowId,
) -> Result<u64, FlowsError> {
    let sql = format!(
        "DELETE FROM assets WHERE flow_id = $1 AND {}",
        tenancy::agrees_with_binds("assets", "$2", "$3")
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

/// What `flow_deletion_audit` records about a deletion.
#[derive(Debug, Clone)]
pub struct DeletionAudit {
    pub flow_id: FlowId,
    pub session_id: Option<SessionId>,
    pub tenant: TenantId,
    pub user_id: String,
    pub reason: Option<String>,
    pub data_deleted: Value,
}

pub async fn insert_deletion_audit(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    audit: &DeletionAudit,
) -> Result<(), FlowsError> {
    let id = DbUuid::new_v4();
    let sql = match keys {
        KeyColumns::Expanded => {
            "INSERT INTO flow_deletion_audit (id, flow_id, session_id, client_account_id, \
             engagement_id, user_id, deletion_reason, deletion_method, deleted_by, deleted_at, \
             data_deleted, deletion_impact) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'api', $6, $8, $9, $10)"
        }
        KeyColumns::Contracted => {
            "INSERT INTO flow_deletion_audit (id, flow_id, client_account_id, \
             engagement_id, user_id, deletion_reason, deletion_method, deleted_by, deleted_at, \
             data_deleted, deletion_impact) \
             VALUES ($1, $2, $3, $4, $5, $6, 'api', $5, $7, $8, $9)"
        }
    };
    on_tx!(tx, conn => {
        let query = sqlx::query(sql).bind(id).bind(audit.flow_id);
        let query = match keys {
            KeyColumns::Expanded => query.bind(audit.session_id),
            KeyColumns::Contracted => query,
        };
        query
        .bind(audit.tenant.client_account_id)
        .bind(audit.tenant.engagement_id)
        .bind(&audit.user_id)
        .bind(&audit.reason)
        .bind(DbTime::now())
        .bind(Json(&audit.data_deleted))
        .bind(Json(serde_json::json!({ "deleted_by_service": "flowkey" })))
        .execute(&mut **conn)
        .await?
        .rows_affected()
    });
    // The flow's mappings are gone with it: after the contract the session it had is kept
    // in the archive, where the downgrade gives it back to the column.
    if let (Some(session), Some(archive)) = (
        audit.session_id,
        contract::archive_written_session(keys, tx.engine(), "flow_deletion_audit", "r.id = $2"),
    ) {
        on_tx!(tx, conn => {
            sqlx::query(&archive)
                .bind(session)
                .bind(id)
                .execute(&mut **conn)
                .await?
                .rows_affected()
        });
    }
    Ok(())
}

/// Deletes the flow row itself; its rows must be gone already (the foreign keys are NO
/// ACTION at head, so a forgotten row fails the deletion instead of vanishing silently).
pub async fn delete(tx: &mut Tx<'_>, tenant: TenantId, flow_id: FlowId) -> Result<u64, FlowsError> {
    let deleted = on_tx!(tx, conn => {
        sqlx::query(
            "DELETE FROM discovery_flows WHERE flow_id = $1 AND client_account_id = $2 \
             AND engagement_id = $3",
        )
        .bind(flow_id)
        .bind(tenant.client_account_id)
        .bind(tenant.engagement_id)
        .execute(&mut **conn)
        .await
        .map_err(|err| match &err {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                FlowsError::StillReferenced { flow_id }
            }
            _ => FlowsError::Database(err),
        })?
        .rows_affected()
    });
    Ok(deleted)
}
