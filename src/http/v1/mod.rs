//! v1, the legacy API by session id, kept for old clients. Every response announces its
//! deprecation (`Deprecation`, `Sunset`, and a `Link` to the v3 successor) and carries the
//! same data as that successor. Reads go through the session or the flow key as
//! `ENABLE_FLOW_ID_PRIMARY` says for the tenant; every call counts as legacy traffic.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::Value;

use crate::compat::LegacyCall;
use crate::field_mappings::ImportFieldMapping;
use crate::flows::{DiscoveryFlow, FlowStatus};
use crate::http::extract::ApiQuery;
use crate::http::extract::{
    single_header, ApiJson, ApiPath, Caller, Tenant, UserHeader, SESSION_HEADER,
};
use crate::http::v3::{bounded, optional_text, FileMetadata, PageQuery};
use crate::http::{ok, ApiError, AppState, Envelope, ErrorEnvelope};
use crate::ids::SessionId;
use crate::imports::{
    self, rows_from_json, DataImport, ImportCreated, ImportSource, NewImportRequest,
    RawImportRecord, MAX_FILENAME_CHARS, MAX_FILE_TYPE_CHARS, MAX_IMPORT_TYPE_CHARS,
};
use crate::paging::Page;

const STORE_IMPORT: &str = "/api/v1/data-import/store-import";
const IMPORT: &str = "/api/v1/data-import/import/{session_id}";
const IMPORT_RECORDS: &str = "/api/v1/data-import/import/{session_id}/records";
const PROCESSING_STATUS: &str = "/api/v1/data-import/processing-status/{session_id}";
const VALIDATION_SESSION: &str = "/api/v1/data-import/validation-session/{session_id}";
const FLOW_STATUS: &str = "/api/v1/unified-discovery/flow/status/{session_id}";

pub(crate) fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route(STORE_IMPORT, post(store_import))
        .route(IMPORT, get(get_import))
        .route(IMPORT_RECORDS, get(import_records))
        .route(PROCESSING_STATUS, get(processing_status))
        .route(VALIDATION_SESSION, get(validation_session))
        .route(FLOW_STATUS, get(flow_status))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            deprecation_headers,
        ))
}

/// When the v1 API was deprecated (the release that introduced v3 by flow id), in RFC 9745's
/// structured-field date form: `@` and seconds since the epoch (2026-11-26T00:00:00Z).
pub const V1_DEPRECATED_SINCE: &str = "@1795651200";

/// Adds `Deprecation` and `Sunset` to every v1 response, and a `Link` to the v3 collection
/// when the handler did not name a precise successor.
async fn deprecation_headers(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let fallback = if request.uri().path().contains("unified-discovery") {
        "</api/v3/discovery-flow/flows>; rel=\"successor-version\""
    } else {
        "</api/v3/data-import/imports>; rel=\"successor-version\""
    };
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("deprecation"),
        HeaderValue::from_static(V1_DEPRECATED_SINCE),
    );
    if let Ok(sunset) = HeaderValue::from_str(&state.config.v1_sunset) {
        headers.insert(HeaderName::from_static("sunset"), sunset);
    }
    if !headers.contains_key(axum::http::header::LINK) {
        headers.insert(axum::http::header::LINK, HeaderValue::from_static(fallback));
    }
    response
}

fn with_successor(mut response: Response, successor: String) -> Response {
    if let Ok(value) = HeaderValue::from_str(&format!("<{successor}>; rel=\"successor-version\"")) {
        response
            .headers_mut()
            .insert(axum::http::header::LINK, value);
    }
    response
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct UploadContext {
    /// Recorded as `import_type` (`cmdb` when absent or blank).
    #[schema(max_length = 50, pattern = "^[^\\u0000]*$")]
    pub intended_type: Option<String>,
    /// The legacy session, when `X-Session-ID` is absent (any accepted form).
    #[schema(
        pattern = "^([dD][iI][sS][cC]_[sS][eE][sS][sS][iI][oO][nN]_|[sS][eE][sS][sS][iI][oO][nN]-)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub validation_session_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct StoreImportBody {
    /// The rows, each an object `{header: value}`.
    #[schema(schema_with = crate::http::schemas::file_data)]
    pub file_data: Vec<Value>,
    #[serde(default)]
    pub metadata: FileMetadata,
    #[serde(default)]
    pub upload_context: UploadContext,
}

/// The legacy upload: same effect as `POST /api/v3/data-import/imports`, under a legacy
/// session (from `X-Session-ID`, else `upload_context.validation_session_id`, else new).
#[utoipa::path(post, path = "/api/v1/data-import/store-import", operation_id = "v1_store_import", tag = "v1 legacy (deprecated)",
    params(
        Tenant,
        ("X-Session-ID" = Option<String>, Header, description = "The legacy session to store under, in any form the path parameter `session_id` accepts; else `upload_context.validation_session_id`; else a new session.", pattern = "^([dD][iI][sS][cC]_[sS][eE][sS][sS][iI][oO][nN]_|[sS][eE][sS][sS][iI][oO][nN]-)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
        UserHeader,
        Caller,
    ),
    request_body = StoreImportBody,
    responses(
        (status = 200, description = "stored; `import_session_id` and `flow_id`", body = Envelope<ImportCreated>),
        (status = 400, description = "`malformed_body` (not JSON), a malformed session id or tenant headers", body = ErrorEnvelope),
        (status = 404, description = "`tenant_not_found`: no such engagement under this client account; `user_not_found`: no user with the `X-User-Id` given; `not_found`: the session belongs to another tenant", body = ErrorEnvelope),
        (status = 409, description = "`session_taken`: another upload created this new session at the same moment; retry", body = ErrorEnvelope),
        (status = 413, description = "body too large", body = ErrorEnvelope),
        (status = 422, description = "`invalid_file_data` (rows unusable), `invalid_text` (a text too long for its column or holding NUL; `details.field` names it), `invalid_body` (JSON of the wrong shape)", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn store_import(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Caller(caller): Caller,
    UserHeader(user): UserHeader,
    headers: HeaderMap,
    ApiJson(body): ApiJson<StoreImportBody>,
) -> Result<Response, ApiError> {
    state
        .compat
        .record_legacy_use(STORE_IMPORT, tenant, &caller);
    let named = match single_header(&headers, SESSION_HEADER)? {
        Some(header) => Some(header),
        None => body.upload_context.validation_session_id.clone(),
    };
    let session = match named.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => SessionId::parse(text)?,
        None => SessionId::from_stored(uuid::Uuid::new_v4()),
    };
    let rows = rows_from_json(&body.file_data)?;
    let request = NewImportRequest {
        tenant,
        rows,
        source: ImportSource::LegacyStoreImport,
        source_filename: bounded(
            "metadata.filename",
            body.metadata.filename,
            "upload.csv",
            MAX_FILENAME_CHARS,
        )?,
        file_size_bytes: body.metadata.size,
        file_type: optional_text(
            "metadata.type",
            body.metadata.file_type,
            Some(MAX_FILE_TYPE_CHARS),
        )?,
        import_type: bounded(
            "upload_context.intended_type",
            body.upload_context.intended_type,
            "cmdb",
            MAX_IMPORT_TYPE_CHARS,
        )?,
        import_name: None,
        description: None,
        user_id: user,
        legacy_session: Some(session),
    };
    let created = imports::create_import(&state.db, state.keys(), request).await?;
    let successor = format!("/api/v3/data-import/imports/{}", created.import_id);
    Ok(with_successor(ok(created), successor))
}

#[utoipa::path(get, path = "/api/v1/data-import/import/{session_id}", operation_id = "v1_get_import", tag = "v1 legacy (deprecated)",
    params(Tenant, ("session_id" = String, Path, description = "The legacy session id in any form a client ever sent: a bare UUID, `disc_session_<uuid>` or `session-<uuid>`, in any letter case.", example = "disc_session_6f1c2a3e-4b5d-4e6f-8a7b-9c0d1e2f3a4b", pattern = "^([dD][iI][sS][cC]_[sS][eE][sS][sS][iI][oO][nN]_|[sS][eE][sS][sS][iI][oO][nN]-)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"), Caller),
    responses(
        (status = 200, description = "the session's newest import (as GET /api/v3/data-import/imports/{import_id})", body = Envelope<DataImport>),
        (status = 400, description = "missing or malformed tenant headers or session id", body = ErrorEnvelope),
        (status = 404, description = "no import for this session in this tenant", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn get_import(
    State(state): State<AppState>,
    tenant: Tenant,
    caller: Caller,
    session: ApiPath<String>,
) -> Result<Response, ApiError> {
    let call = legacy_call(&state, tenant, caller, session, IMPORT)?;
    let import = state.compat.legacy_import(call).await?;
    let successor = format!("/api/v3/data-import/imports/{}", import.id);
    Ok(with_successor(ok(import), successor))
}

#[utoipa::path(get, path = "/api/v1/data-import/import/{session_id}/records", operation_id = "v1_import_records", tag = "v1 legacy (deprecated)",
    params(Tenant, ("session_id" = String, Path, description = "The legacy session id in any form a client ever sent: a bare UUID, `disc_session_<uuid>` or `session-<uuid>`, in any letter case.", example = "disc_session_6f1c2a3e-4b5d-4e6f-8a7b-9c0d1e2f3a4b", pattern = "^([dD][iI][sS][cC]_[sS][eE][sS][sS][iI][oO][nN]_|[sS][eE][sS][sS][iI][oO][nN]-)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"), Caller, PageQuery),
    responses(
        (status = 200, description = "one page of the raw records of the session's newest import (as GET /api/v3/data-import/imports/{import_id}/records)", body = Envelope<Page<RawImportRecord>>),
        (status = 400, description = "missing or malformed tenant headers, session id or page parameters", body = ErrorEnvelope),
        (status = 404, description = "no import for this session in this tenant", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn import_records(
    State(state): State<AppState>,
    tenant: Tenant,
    caller: Caller,
    session: ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let page = query.page()?;
    let call = legacy_call(&state, tenant, caller, session, IMPORT_RECORDS)?;
    let records = state.compat.legacy_records(call, &page).await?;
    let successor = records.items.first().map(|record| {
        format!(
            "/api/v3/data-import/imports/{}/records",
            record.data_import_id
        )
    });
    let response = ok(records);
    Ok(match successor {
        Some(successor) => with_successor(response, successor),
        None => response,
    })
}

#[utoipa::path(get, path = "/api/v1/data-import/processing-status/{session_id}", operation_id = "v1_processing_status", tag = "v1 legacy (deprecated)",
    params(Tenant, ("session_id" = String, Path, description = "The legacy session id in any form a client ever sent: a bare UUID, `disc_session_<uuid>` or `session-<uuid>`, in any letter case.", example = "disc_session_6f1c2a3e-4b5d-4e6f-8a7b-9c0d1e2f3a4b", pattern = "^([dD][iI][sS][cC]_[sS][eE][sS][sS][iI][oO][nN]_|[sS][eE][sS][sS][iI][oO][nN]-)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"), Caller),
    responses(
        (status = 200, description = "the session's flow status (as GET /api/v3/discovery-flow/flows/{flow_id}/status)", body = Envelope<FlowStatus>),
        (status = 400, description = "missing or malformed tenant headers or session id", body = ErrorEnvelope),
        (status = 404, description = "no flow for this session", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn processing_status(
    State(state): State<AppState>,
    tenant: Tenant,
    caller: Caller,
    session: ApiPath<String>,
) -> Result<Response, ApiError> {
    let call = legacy_call(&state, tenant, caller, session, PROCESSING_STATUS)?;
    let flow = state.compat.legacy_flow(call).await?;
    let successor = format!("/api/v3/discovery-flow/flows/{}/status", flow.flow_id);
    Ok(with_successor(ok(flow.status_view()), successor))
}

#[utoipa::path(get, path = "/api/v1/data-import/validation-session/{session_id}", operation_id = "v1_validation_session", tag = "v1 legacy (deprecated)",
    params(Tenant, ("session_id" = String, Path, description = "The legacy session id in any form a client ever sent: a bare UUID, `disc_session_<uuid>` or `session-<uuid>`, in any letter case.", example = "disc_session_6f1c2a3e-4b5d-4e6f-8a7b-9c0d1e2f3a4b", pattern = "^([dD][iI][sS][cC]_[sS][eE][sS][sS][iI][oO][nN]_|[sS][eE][sS][sS][iI][oO][nN]-)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"), Caller, PageQuery),
    responses(
        (status = 200, description = "the session's field mappings (as GET /api/v3/field-mapping/mappings/{flow_id})", body = Envelope<Page<ImportFieldMapping>>),
        (status = 400, description = "missing or malformed tenant headers or session id", body = ErrorEnvelope),
        (status = 404, description = "no import for this session", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn validation_session(
    State(state): State<AppState>,
    tenant: Tenant,
    caller: Caller,
    session: ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let page = query.page()?;
    let call = legacy_call(&state, tenant, caller, session, VALIDATION_SESSION)?;
    let mappings = state.compat.legacy_mappings(call, &page).await?;
    let successor = mappings
        .items
        .first()
        .and_then(|m| m.flow_id)
        .map(|flow_id| format!("/api/v3/field-mapping/mappings/{flow_id}"));
    let response = ok(mappings);
    Ok(match successor {
        Some(successor) => with_successor(response, successor),
        None => response,
    })
}

#[utoipa::path(get, path = "/api/v1/unified-discovery/flow/status/{session_id}", operation_id = "v1_flow_status", tag = "v1 legacy (deprecated)",
    params(Tenant, ("session_id" = String, Path, description = "The legacy session id in any form a client ever sent: a bare UUID, `disc_session_<uuid>` or `session-<uuid>`, in any letter case.", example = "disc_session_6f1c2a3e-4b5d-4e6f-8a7b-9c0d1e2f3a4b", pattern = "^([dD][iI][sS][cC]_[sS][eE][sS][sS][iI][oO][nN]_|[sS][eE][sS][sS][iI][oO][nN]-)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"), Caller),
    responses(
        (status = 200, description = "the session's flow (as GET /api/v3/discovery-flow/flows/{flow_id})", body = Envelope<DiscoveryFlow>),
        (status = 400, description = "missing or malformed tenant headers or session id", body = ErrorEnvelope),
        (status = 404, description = "no flow for this session", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn flow_status(
    State(state): State<AppState>,
    tenant: Tenant,
    caller: Caller,
    session: ApiPath<String>,
) -> Result<Response, ApiError> {
    let call = legacy_call(&state, tenant, caller, session, FLOW_STATUS)?;
    let flow = state.compat.legacy_flow(call).await?;
    let successor = format!("/api/v3/discovery-flow/flows/{}", flow.flow_id);
    Ok(with_successor(ok(flow), successor))
}

/// Parses the session, counts the legacy use and reads the tenant's flag mode.
fn legacy_call(
    state: &AppState,
    Tenant(tenant): Tenant,
    Caller(caller): Caller,
    ApiPath(session): ApiPath<String>,
    route: &'static str,
) -> Result<LegacyCall, ApiError> {
    let session = SessionId::parse(&session)?;
    state.compat.record_legacy_use(route, tenant, &caller);
    Ok(LegacyCall {
        route,
        tenant,
        session,
        mode: state.flags.mode_for(tenant),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shadow_read_route_has_its_series_from_the_start() {
        let mut reads = [
            IMPORT,
            IMPORT_RECORDS,
            PROCESSING_STATUS,
            VALIDATION_SESSION,
            FLOW_STATUS,
        ];
        let mut known = crate::compat::SHADOW_ROUTES;
        reads.sort_unstable();
        known.sort_unstable();
        assert_eq!(reads, known);
    }
}
