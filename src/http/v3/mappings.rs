use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use crate::field_mappings::{self, MappingDecision, MappingId};
use crate::flows;
use crate::http::extract::{flow_id_param, ApiJson, ApiPath, ApiQuery, Tenant};
use crate::http::v3::PageQuery;
use crate::http::{ok, ApiError, AppState};

#[utoipa::path(get, path = "/api/v3/field-mapping/mappings/{flow_id}", tag = "v3 field mapping", responses(
    (status = 200, description = "one page of the flow's field mappings"), (status = 404, description = "no such flow"),
))]
pub(crate) async fn list_mappings(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(flow_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let flow_id = flow_id_param(&flow_id)?;
    let page = query.page()?;
    let mut tx = state.db.begin().await?;
    flows::store::get(&mut tx, tenant, flow_id).await?;
    let mappings = field_mappings::store::list_for_flow(&mut tx, tenant, flow_id, &page).await?;
    tx.rollback().await?;
    Ok(ok(mappings))
}

#[derive(Debug, Deserialize)]
pub(crate) struct UpdateMappingBody {
    pub target_field: String,
}

#[utoipa::path(put, path = "/api/v3/field-mapping/mappings/{mapping_id}", tag = "v3 field mapping", responses(
    (status = 200, description = "target changed"), (status = 404, description = "no such mapping"), (status = 422, description = "invalid target"),
))]
pub(crate) async fn update_mapping(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(mapping_id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateMappingBody>,
) -> Result<Response, ApiError> {
    let mapping_id = MappingId::parse(&mapping_id)?;
    let mut tx = state.db.begin_write().await?;
    let mapping =
        field_mappings::store::set_target(&mut tx, tenant, mapping_id, &body.target_field).await?;
    tx.commit().await?;
    Ok(ok(mapping))
}

#[utoipa::path(post, path = "/api/v3/field-mapping/mappings/{mapping_id}/approve", tag = "v3 field mapping", responses(
    (status = 200, description = "approved"), (status = 404, description = "no such mapping"),
))]
pub(crate) async fn approve_mapping(
    state: State<AppState>,
    tenant: Tenant,
    mapping_id: ApiPath<String>,
) -> Result<Response, ApiError> {
    decide(state, tenant, mapping_id, MappingDecision::Approve).await
}

#[utoipa::path(post, path = "/api/v3/field-mapping/mappings/{mapping_id}/reject", tag = "v3 field mapping", responses(
    (status = 200, description = "rejected"), (status = 404, description = "no such mapping"),
))]
pub(crate) async fn reject_mapping(
    state: State<AppState>,
    tenant: Tenant,
    mapping_id: ApiPath<String>,
) -> Result<Response, ApiError> {
    decide(state, tenant, mapping_id, MappingDecision::Reject).await
}

async fn decide(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(mapping_id): ApiPath<String>,
    decision: MappingDecision,
) -> Result<Response, ApiError> {
    let mapping_id = MappingId::parse(&mapping_id)?;
    let mut tx = state.db.begin_write().await?;
    let mapping = field_mappings::store::decide(&mut tx, tenant, mapping_id, decision).await?;
    tx.commit().await?;
    Ok(ok(mapping))
}
