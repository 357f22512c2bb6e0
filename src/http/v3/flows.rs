use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use utoipa::IntoParams;

use crate::flows::{self, DiscoveryFlow, FlowAction, FlowStatus};
use crate::http::extract::{flow_id_param, ApiPath, ApiQuery, Tenant, UserHeader};
use crate::http::v3::{optional_text, PageQuery, MAX_STATUS_CHARS};
use crate::http::{ok, ApiError, AppState, Envelope, ErrorEnvelope};
use crate::imports::{DeletedFlow, FlowDeletion};
use crate::paging::Page;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListFlowsQuery {
    /// Only flows with this status.
    #[param(max_length = 20, pattern = "^[^\\u0000]*$")]
    pub status: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    pub page: PageQuery,
}

#[utoipa::path(get, path = "/api/v3/discovery-flow/flows", tag = "v3 discovery flow",
    params(Tenant, ListFlowsQuery, PageQuery),
    responses(
        (status = 200, description = "one page of the tenant's flows, by flow id", body = Envelope<Page<DiscoveryFlow>>),
        (status = 400, description = "missing or malformed tenant headers, `cursor` or `limit`", body = ErrorEnvelope),
        (status = 422, description = "`invalid_text`: `status` longer than 20 characters or holding NUL", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn list_flows(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(query): ApiQuery<ListFlowsQuery>,
) -> Result<Response, ApiError> {
    let page = query.page.page()?;
    let status = optional_text("status", query.status, Some(MAX_STATUS_CHARS))?;
    let flows = flows::list(&state.db, state.keys(), tenant, status.as_deref(), &page).await?;
    Ok(ok(flows))
}

#[utoipa::path(get, path = "/api/v3/discovery-flow/flows/{flow_id}", tag = "v3 discovery flow",
    params(Tenant, ("flow_id" = uuid::Uuid, Path, description = "The flow's id (any UUID: legacy flows may hold a non-v4 id).")),
    responses(
        (status = 200, description = "the flow's persisted state", body = Envelope<DiscoveryFlow>),
        (status = 400, description = "missing or malformed tenant headers, flow id or query", body = ErrorEnvelope),
        (status = 404, description = "no such flow in this tenant", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn get_flow(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(flow_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let flow_id = flow_id_param(&flow_id)?;
    Ok(ok(
        flows::get(&state.db, state.keys(), tenant, flow_id).await?
    ))
}

#[utoipa::path(get, path = "/api/v3/discovery-flow/flows/{flow_id}/status", tag = "v3 discovery flow",
    params(Tenant, ("flow_id" = uuid::Uuid, Path, description = "The flow's id (any UUID: legacy flows may hold a non-v4 id).")),
    responses(
        (status = 200, description = "status, current phase, progress", body = Envelope<FlowStatus>),
        (status = 400, description = "missing or malformed tenant headers, flow id or query", body = ErrorEnvelope),
        (status = 404, description = "no such flow in this tenant", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn flow_status(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(flow_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let flow_id = flow_id_param(&flow_id)?;
    let flow = flows::get(&state.db, state.keys(), tenant, flow_id).await?;
    Ok(ok(flow.status_view()))
}

#[utoipa::path(post, path = "/api/v3/discovery-flow/flows/{flow_id}/pause", tag = "v3 discovery flow",
    params(Tenant, ("flow_id" = uuid::Uuid, Path, description = "The flow's id (any UUID: legacy flows may hold a non-v4 id).")),
    responses(
        (status = 200, description = "paused", body = Envelope<FlowStatus>),
        (status = 400, description = "missing or malformed tenant headers, flow id or query", body = ErrorEnvelope),
        (status = 404, description = "no such flow in this tenant", body = ErrorEnvelope),
        (status = 409, description = "`invalid_transition`: finished or already paused", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn pause_flow(
    state: State<AppState>,
    tenant: Tenant,
    flow_id: ApiPath<String>,
) -> Result<Response, ApiError> {
    change_flow(state, tenant, flow_id, FlowAction::Pause).await
}

#[utoipa::path(post, path = "/api/v3/discovery-flow/flows/{flow_id}/resume", tag = "v3 discovery flow",
    params(Tenant, ("flow_id" = uuid::Uuid, Path, description = "The flow's id (any UUID: legacy flows may hold a non-v4 id).")),
    responses(
        (status = 200, description = "resumed (status `active`)", body = Envelope<FlowStatus>),
        (status = 400, description = "missing or malformed tenant headers, flow id or query", body = ErrorEnvelope),
        (status = 404, description = "no such flow in this tenant", body = ErrorEnvelope),
        (status = 409, description = "`invalid_transition`: not paused", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn resume_flow(
    state: State<AppState>,
    tenant: Tenant,
    flow_id: ApiPath<String>,
) -> Result<Response, ApiError> {
    change_flow(state, tenant, flow_id, FlowAction::Resume).await
}

async fn change_flow(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(flow_id): ApiPath<String>,
    action: FlowAction,
) -> Result<Response, ApiError> {
    let flow_id = flow_id_param(&flow_id)?;
    let flow = flows::change_status(&state.db, state.keys(), tenant, flow_id, action).await?;
    Ok(ok(flow.status_view()))
}

/// Longest deletion reason kept in `flow_deletion_audit`.
pub(crate) const MAX_REASON_CHARS: usize = 2000;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeleteFlowQuery {
    /// Why, recorded in `flow_deletion_audit` (at most 2000 characters).
    #[param(max_length = 2000, pattern = "^[^\\u0000]*$")]
    pub reason: Option<String>,
}

#[utoipa::path(delete, path = "/api/v3/discovery-flow/flows/{flow_id}", tag = "v3 discovery flow",
    params(Tenant, ("flow_id" = uuid::Uuid, Path, description = "The flow's id (any UUID: legacy flows may hold a non-v4 id)."), DeleteFlowQuery, UserHeader),
    responses(
        (status = 200, description = "the flow and its rows deleted, recorded in flow_deletion_audit", body = Envelope<DeletedFlow>),
        (status = 400, description = "missing or malformed tenant headers, flow id or query", body = ErrorEnvelope),
        (status = 404, description = "no such flow in this tenant", body = ErrorEnvelope),
        (status = 409, description = "`still_referenced`: rows of another tenant still name the flow", body = ErrorEnvelope),
        (status = 422, description = "`invalid_text`: `reason` longer than 2000 characters or holding NUL", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn delete_flow(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(flow_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeleteFlowQuery>,
    UserHeader(user): UserHeader,
) -> Result<Response, ApiError> {
    let flow_id = flow_id_param(&flow_id)?;
    let deleted_by = user.map_or_else(|| "api".to_owned(), |user| user.to_string());
    let reason = optional_text("reason", query.reason, Some(MAX_REASON_CHARS))?;
    let deletion = FlowDeletion { deleted_by, reason };
    let deleted = state.compat.delete_flow(tenant, flow_id, deletion).await?;
    Ok(ok(deleted))
}
