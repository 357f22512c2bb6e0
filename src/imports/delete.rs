//! Deleting what a tenant imported: one import with its records and mappings, or a whole
//! flow with every row keyed by it. Each deletion is one write transaction; the foreign keys
//! are NO ACTION at head, so a row forgotten here fails the deletion instead of vanishing.

use serde::Serialize;

use crate::db::{Db, KeyColumns, Tx};
use crate::flows::{self, FlowsError};
use crate::ids::{FlowId, ImportId, TenantId};
use crate::imports::store::{self, DeletedRows};
use crate::imports::ImportsError;
use crate::sessions;

/// What a flow deletion removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeletedFlow {
    pub flow_id: FlowId,
    pub imports: u64,
    pub records: u64,
    pub field_mappings: u64,
    pub assets: u64,
    pub session_mappings: u64,
}

/// Who deletes a flow and why, for `flow_deletion_audit`.
#[derive(Debug, Clone)]
pub struct FlowDeletion {
    pub deleted_by: String,
    pub reason: Option<String>,
}

/// Deletes a flow of the tenant and every row keyed by it, in one transaction, and records
/// the deletion in `flow_deletion_audit`.
pub async fn delete_flow(
    db: &Db,
    keys: KeyColumns,
    tenant: TenantId,
    flow_id: FlowId,
    deletion: FlowDeletion,
) -> Result<DeletedFlow, ImportsError> {
    let mut tx = db.begin_write().await?;
    let deleted = delete_flow_rows(&mut tx, keys, tenant, flow_id, deletion).await?;
    tx.commit().await?;
    Ok(deleted)
}

/// Deletes one import of the tenant with its records and mappings, in one transaction.
pub async fn delete_import(
    db: &Db,
    keys: KeyColumns,
    tenant: TenantId,
    import_id: ImportId,
) -> Result<DeletedRows, ImportsError> {
    let mut tx = db.begin_write().await?;
    let (_, deleted) = store::delete(&mut tx, keys, tenant, import_id).await?;
    tx.commit().await?;
    Ok(deleted)
}

async fn delete_flow_rows(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    flow_id: FlowId,
    deletion: FlowDeletion,
) -> Result<DeletedFlow, ImportsError> {
    flows::store::get(tx, keys, tenant, flow_id).await?;
    let session_id = sessions::store::first_session_of_flow(tx, tenant, flow_id).await?;
    let rows = store::delete_for_flow(tx, keys, tenant, flow_id).await?;
    let assets = flows::store::delete_assets(tx, tenant, flow_id).await?;
    let session_mappings = sessions::store::delete_mappings_of_flow(tx, tenant, flow_id).await?;
    let deleted = DeletedFlow {
        flow_id,
        imports: rows.imports,
        records: rows.records,
        field_mappings: rows.field_mappings,
        assets,
        session_mappings,
    };
    let audit = flows::store::DeletionAudit {
        flow_id,
        session_id,
        tenant,
        user_id: deletion.deleted_by,
        reason: deletion.reason,
        data_deleted: serde_json::to_value(&deleted).unwrap_or_default(),
    };
    flows::store::insert_deletion_audit(tx, keys, &audit).await?;
    if flows::store::delete(tx, tenant, flow_id).await? == 0 {
        return Err(FlowsError::NotFound { flow_id }.into());
    }
    Ok(deleted)
}
