//! What can be done to the tenant's flows, each in its own transaction.

use crate::db::{Db, KeyColumns};
use crate::flows::{store, DiscoveryFlow, FlowAction, FlowsError};
use crate::ids::{FlowId, TenantId};
use crate::paging::{Page, PageRequest};

/// One flow of the tenant.
pub async fn get(
    db: &Db,
    keys: KeyColumns,
    tenant: TenantId,
    flow_id: FlowId,
) -> Result<DiscoveryFlow, FlowsError> {
    let mut tx = db.begin().await?;
    let flow = store::get(&mut tx, keys, tenant, flow_id).await;
    tx.rollback().await?;
    flow
}

/// One page of the tenant's flows, by flow id, optionally with one status.
pub async fn list(
    db: &Db,
    keys: KeyColumns,
    tenant: TenantId,
    status: Option<&str>,
    page: &PageRequest,
) -> Result<Page<DiscoveryFlow>, FlowsError> {
    let mut tx = db.begin().await?;
    let flows = store::list(&mut tx, keys, tenant, status, page).await;
    tx.rollback().await?;
    flows
}

/// Pauses or resumes a flow; refused when its status does not allow the action. Answers the
/// flow as stored afterwards. A status change leaves every id resolving as before, so no
/// resolved id needs forgetting.
pub async fn change_status(
    db: &Db,
    keys: KeyColumns,
    tenant: TenantId,
    flow_id: FlowId,
    action: FlowAction,
) -> Result<DiscoveryFlow, FlowsError> {
    let mut tx = db.begin_write().await?;
    let flow = store::get(&mut tx, keys, tenant, flow_id).await?;
    let Some(next) = flow.next_status(action) else {
        return Err(FlowsError::InvalidTransition {
            flow_id,
            status: flow.status,
            action: action.verb(),
        });
    };
    store::set_status(&mut tx, tenant, flow_id, next).await?;
    let flow = store::get(&mut tx, keys, tenant, flow_id).await?;
    tx.commit().await?;
    Ok(flow)
}
