use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use crate::field_mappings::{self, ImportFieldMapping, MappingDecision, MappingId};
use crate::http::extract::{flow_id_param, ApiJson, ApiPath, ApiQuery, Tenant};
use crate::http::v3::PageQuery;
use crate::http::{ok, ApiError, AppState, Envelope, ErrorEnvelope};
use crate::paging::Page;

#[utoipa::path(get, path = "/api/v3/field-mapping/mappings/{id}", tag = "v3 field mapping",
    params(Tenant, ("id" = uuid::Uuid, Path, description = "The flow's id: GET lists the flow's mappings (PUT on the same path takes a mapping id)."), PageQuery),
    responses(
        (status = 200, description = "one page of the flow's field mappings", body = Envelope<Page<ImportFieldMapping>>),
        (status = 400, description = "missing or malformed tenant headers, flow id, `cursor` or `limit`", body = ErrorEnvelope),
        (status = 404, description = "no such flow in this tenant", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn list_mappings(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(flow_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let flow_id = flow_id_param(&flow_id)?;
    let page = query.page()?;
    let mappings =
        field_mappings::list_for_flow(&state.db, state.keys(), tenant, flow_id, &page).await?;
    Ok(ok(mappings))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct UpdateMappingBody {
    /// The platform attribute the column maps to: at most 255 characters, no control
    /// character, not only whitespace (stored without surrounding whitespace).
    #[schema(
        example = "hostname",
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub target_field: String,
}

#[utoipa::path(put, path = "/api/v3/field-mapping/mappings/{id}", tag = "v3 field mapping",
    params(Tenant, ("id" = uuid::Uuid, Path, description = "The mapping's id (`mapping_id`).")),
    request_body = UpdateMappingBody,
    responses(
        (status = 200, description = "target changed", body = Envelope<ImportFieldMapping>),
        (status = 400, description = "missing or malformed tenant headers or mapping id", body = ErrorEnvelope),
        (status = 404, description = "no such mapping in this tenant", body = ErrorEnvelope),
        (status = 422, description = "`invalid_target`: not a usable attribute name", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn update_mapping(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(mapping_id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateMappingBody>,
) -> Result<Response, ApiError> {
    let mapping_id = MappingId::parse(&mapping_id)?;
    let mapping = field_mappings::set_target(
        &state.db,
        state.keys(),
        tenant,
        mapping_id,
        &body.target_field,
    )
    .await?;
    Ok(ok(mapping))
}

#[utoipa::path(post, path = "/api/v3/field-mapping/mappings/{id}/approve", tag = "v3 field mapping",
    params(Tenant, ("id" = uuid::Uuid, Path, description = "The mapping's id (`mapping_id`).")),
    responses(
        (status = 200, description = "approved", body = Envelope<ImportFieldMapping>),
        (status = 400, description = "missing or malformed tenant headers or mapping id", body = ErrorEnvelope),
        (status = 404, description = "no such mapping in this tenant", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn approve_mapping(
    state: State<AppState>,
    tenant: Tenant,
    mapping_id: ApiPath<String>,
) -> Result<Response, ApiError> {
    decide(state, tenant, mapping_id, MappingDecision::Approve).await
}

#[utoipa::path(post, path = "/api/v3/field-mapping/mappings/{id}/reject", tag = "v3 field mapping",
    params(Tenant, ("id" = uuid::Uuid, Path, description = "The mapping's id (`mapping_id`).")),
    responses(
        (status = 200, description = "rejected", body = Envelope<ImportFieldMapping>),
        (status = 400, description = "missing or malformed tenant headers or mapping id", body = ErrorEnvelope),
        (status = 404, description = "no such mapping in this tenant", body = ErrorEnvelope),
    ),
)]
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
    let mapping =
        field_mappings::decide(&state.db, state.keys(), tenant, mapping_id, decision).await?;
    Ok(ok(mapping))
}
