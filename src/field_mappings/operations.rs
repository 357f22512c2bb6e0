//! What can be done to the tenant's field mappings, each in its own transaction.

use crate::db::{Db, KeyColumns};
use crate::field_mappings::{store, ImportFieldMapping, MappingDecision, MappingId, MappingsError};
use crate::flows::{self, FlowsError};
use crate::ids::{FlowId, TenantId};
use crate::paging::{Page, PageRequest};

/// Why a flow's mappings could not be listed: the flow is not the tenant's, or the mappings
/// could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ListMappingsError {
    #[error(transparent)]
    Flow(#[from] FlowsError),
    #[error(transparent)]
    Mappings(#[from] MappingsError),
}

impl From<sqlx::Error> for ListMappingsError {
    fn from(err: sqlx::Error) -> Self {
        ListMappingsError::Mappings(err.into())
    }
}

/// One page of a flow's mappings; the flow must be the tenant's.
pub async fn list_for_flow(
    db: &Db,
    keys: KeyColumns,
    tenant: TenantId,
    flow_id: FlowId,
    page: &PageRequest,
) -> Result<Page<ImportFieldMapping>, ListMappingsError> {
    let mut tx = db.begin().await?;
    let listed = async {
        flows::store::get(&mut tx, keys, tenant, flow_id).await?;
        Ok(store::list_for_flow(&mut tx, keys, tenant, flow_id, page).await?)
    }
    .await;
    tx.rollback().await?;
    listed
}

/// Changes a mapping's target, keeping the first suggestion in `original_ai_suggestion`.
pub async fn set_target(
    db: &Db,
    keys: KeyColumns,
    tenant: TenantId,
    mapping_id: MappingId,
    target: &str,
) -> Result<ImportFieldMapping, MappingsError> {
    let mut tx = db.begin_write().await?;
    let mapping = store::set_target(&mut tx, keys, tenant, mapping_id, target).await?;
    tx.commit().await?;
    Ok(mapping)
}

/// Approves or rejects a mapping.
pub async fn decide(
    db: &Db,
    keys: KeyColumns,
    tenant: TenantId,
    mapping_id: MappingId,
    decision: MappingDecision,
) -> Result<ImportFieldMapping, MappingsError> {
    let mut tx = db.begin_write().await?;
    let mapping = store::decide(&mut tx, keys, tenant, mapping_id, decision).await?;
    tx.commit().await?;
    Ok(mapping)
}
