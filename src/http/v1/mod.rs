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

use crate::compat::{LegacyAnswer, LegacyRead};
use crate::http::extract::ApiQuery;
use crate::http::extract::{
    single_header, ApiJson, ApiPath, Caller, Tenant, UserHeader, SESSION_HEADER,
};
use crate::http::v3::{bounded, FileMetadata, PageQuery};
use crate::http::{ok, ApiError, AppState};
use crate::ids::SessionId;
use crate::imports::{self, rows_from_json, ImportSource, NewImportRequest};

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

#[derive(Debug, Default, Deserialize)]
pub(crate) struct UploadContext {
    pub intended_type: Option<String>,
    pub validation_session_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct StoreImportBody {
    pub file_data: Vec<Value>,
    #[serde(default)]
    pub metadata: FileMetadata,
    #[serde(default)]
    pub upload_context: UploadContext,
}

/// The legacy upload: same effect as `POST /api/v3/data-import/imports`, under a legacy
/// session (from `X-Session-ID`, else `upload_context.validation_session_id`, else new).
#[utoipa::path(post, path = "/api/v1/data-import/store-import", tag = "v1 legacy (deprecated)", responses(
    (status = 200, description = "stored; import_session_id and flow_id"),
    (status = 400, description = "malformed body, session id or tenant headers"),
))]
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
        source_filename: bounded(body.metadata.filename, "upload.csv")?,
        file_size_bytes: body.metadata.size,
        file_type: body.metadata.file_type,
        import_type: bounded(body.upload_context.intended_type, "cmdb")?,
        import_name: None,
        description: None,
        user_id: user,
        legacy_session: Some(session),
    };
    let created = imports::create_import(&state.db, request).await?;
    let successor = format!("/api/v3/data-import/imports/{}", created.import_id);
    Ok(with_successor(ok(created), successor))
}

#[utoipa::path(get, path = "/api/v1/data-import/import/{session_id}", tag = "v1 legacy (deprecated)", responses(
    (status = 200, description = "the session's newest import (as GET /api/v3/data-import/imports/{import_id})"),
    (status = 404, description = "no import for this session in this tenant"),
))]
pub(crate) async fn get_import(
    state: State<AppState>,
    tenant: Tenant,
    caller: Caller,
    session: ApiPath<String>,
) -> Result<Response, ApiError> {
    match legacy_read(state, tenant, caller, session, IMPORT, LegacyRead::Import).await? {
        LegacyAnswer::Import(import) => {
            let successor = format!("/api/v3/data-import/imports/{}", import.id);
            Ok(with_successor(ok(import), successor))
        }
        _ => Err(ApiError::internal("legacy read answered with another kind")),
    }
}

#[utoipa::path(get, path = "/api/v1/data-import/import/{session_id}/records", tag = "v1 legacy (deprecated)", responses(
    (status = 200, description = "one page of the raw records of the session's newest import (as GET /api/v3/data-import/imports/{import_id}/records)"),
    (status = 404, description = "no import for this session in this tenant"),
))]
pub(crate) async fn import_records(
    state: State<AppState>,
    tenant: Tenant,
    caller: Caller,
    session: ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let page = query.page()?;
    match legacy_read(
        state,
        tenant,
        caller,
        session,
        IMPORT_RECORDS,
        LegacyRead::Records(page),
    )
    .await?
    {
        LegacyAnswer::Records(records) => {
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
        _ => Err(ApiError::internal("legacy read answered with another kind")),
    }
}

#[utoipa::path(get, path = "/api/v1/data-import/processing-status/{session_id}", tag = "v1 legacy (deprecated)", responses(
    (status = 200, description = "the session's flow status (as GET /api/v3/discovery-flow/flows/{flow_id}/status)"),
    (status = 404, description = "no flow for this session"),
))]
pub(crate) async fn processing_status(
    state: State<AppState>,
    tenant: Tenant,
    caller: Caller,
    session: ApiPath<String>,
) -> Result<Response, ApiError> {
    match legacy_read(
        state,
        tenant,
        caller,
        session,
        PROCESSING_STATUS,
        LegacyRead::Flow,
    )
    .await?
    {
        LegacyAnswer::Flow(flow) => {
            let successor = format!("/api/v3/discovery-flow/flows/{}/status", flow.flow_id);
            Ok(with_successor(ok(flow.status_view()), successor))
        }
        _ => Err(ApiError::internal("legacy read answered with another kind")),
    }
}

#[utoipa::path(get, path = "/api/v1/data-import/validation-session/{session_id}", tag = "v1 legacy (deprecated)", responses(
    (status = 200, description = "the session's field mappings (as GET /api/v3/field-mapping/mappings/{flow_id})"),
    (status = 404, description = "no import for this session"),
))]
pub(crate) async fn validation_session(
    state: State<AppState>,
    tenant: Tenant,
    caller: Caller,
    session: ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let page = query.page()?;
    match legacy_read(
        state,
        tenant,
        caller,
        session,
        VALIDATION_SESSION,
        LegacyRead::Mappings(page),
    )
    .await?
    {
        LegacyAnswer::Mappings(mappings) => {
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
        _ => Err(ApiError::internal("legacy read answered with another kind")),
    }
}

#[utoipa::path(get, path = "/api/v1/unified-discovery/flow/status/{session_id}", tag = "v1 legacy (deprecated)", responses(
    (status = 200, description = "the session's flow (as GET /api/v3/discovery-flow/flows/{flow_id})"),
    (status = 404, description = "no flow for this session"),
))]
pub(crate) async fn flow_status(
    state: State<AppState>,
    tenant: Tenant,
    caller: Caller,
    session: ApiPath<String>,
) -> Result<Response, ApiError> {
    match legacy_read(
        state,
        tenant,
        caller,
        session,
        FLOW_STATUS,
        LegacyRead::Flow,
    )
    .await?
    {
        LegacyAnswer::Flow(flow) => {
            let successor = format!("/api/v3/discovery-flow/flows/{}", flow.flow_id);
            Ok(with_successor(ok(flow), successor))
        }
        _ => Err(ApiError::internal("legacy read answered with another kind")),
    }
}

async fn legacy_read(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Caller(caller): Caller,
    ApiPath(session): ApiPath<String>,
    route: &'static str,
    what: LegacyRead,
) -> Result<LegacyAnswer, ApiError> {
    let session = SessionId::parse(&session)?;
    state.compat.record_legacy_use(route, tenant, &caller);
    let mode = state.flags.mode_for(tenant);
    let answer = state
        .compat
        .legacy_read(route, tenant, session, what, mode)
        .await?;
    Ok(answer)
}
