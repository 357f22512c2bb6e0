//! Operator routes: the flag, its readiness, the legacy traffic summary and mapping
//! statistics. They act on the whole database, so they take no tenant headers; put them
//! behind the platform's admin gateway.

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, put};
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use crate::flags::{self, FlagError, FlagScope, FlowIdPrimary, FLAG_NAME};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::{ok, ApiError, AppState};
use crate::ids::TenantId;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/flags", get(get_flags))
        .route("/api/admin/flags/{name}", put(set_flag))
        .route("/api/admin/readiness", get(readiness))
        .route("/api/admin/legacy-traffic", get(legacy_traffic))
        .route("/api/admin/mapping-statistics", get(mapping_statistics))
}

#[utoipa::path(get, path = "/api/admin/flags", tag = "admin", responses((status = 200, description = "default and stored values")))]
pub(crate) async fn get_flags(State(state): State<AppState>) -> Result<Response, ApiError> {
    let stored = flags::stored_flags(&state.db).await?;
    Ok(ok(json!({
        "name": FLAG_NAME,
        "default": state.config.flag_default,
        "stored": stored,
    })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct SetFlagBody {
    pub value: String,
    /// `CLIENT_ACCOUNT_ID:ENGAGEMENT_ID`; the global value when absent.
    pub tenant: Option<String>,
    pub updated_by: Option<String>,
}

#[utoipa::path(put, path = "/api/admin/flags/enable_flow_id_primary", tag = "admin", responses(
    (status = 200, description = "stored; every server applies it within one poll interval"),
    (status = 400, description = "unknown value or scope"),
    (status = 409, description = "`on` refused: backfill incomplete or integrity check failing"),
))]
pub(crate) async fn set_flag(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<SetFlagBody>,
) -> Result<Response, ApiError> {
    if name != FLAG_NAME {
        return Err(FlagError::UnknownFlag { name }.into());
    }
    let value: FlowIdPrimary = body.value.parse()?;
    let scope = match body.tenant.as_deref() {
        None => FlagScope::Global,
        Some(text) => FlagScope::parse(text)?,
    };
    let updated_by: String = body
        .updated_by
        .unwrap_or_else(|| "admin-api".to_owned())
        .chars()
        .take(255)
        .collect();
    flags::set_flag(&state.db, scope, value, &updated_by).await?;
    state.flags.refresh().await?;
    Ok(ok(
        json!({ "name": FLAG_NAME, "scope": scope.to_string(), "value": value }),
    ))
}

#[utoipa::path(get, path = "/api/admin/readiness", tag = "admin", responses((status = 200, description = "what stands between the database and flag `on`")))]
pub(crate) async fn readiness(State(state): State<AppState>) -> Result<Response, ApiError> {
    let readiness = flags::readiness(&state.db).await?;
    Ok(ok(
        json!({ "ready": readiness.is_ready(), "details": readiness }),
    ))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TenantQuery {
    pub tenant: Option<String>,
}

impl TenantQuery {
    fn tenant(&self) -> Result<Option<TenantId>, ApiError> {
        Ok(self
            .tenant
            .as_deref()
            .map(TenantId::parse_pair)
            .transpose()?)
    }
}

#[utoipa::path(get, path = "/api/admin/legacy-traffic", tag = "admin", responses((status = 200, description = "hits, first and last seen per route and tenant")))]
pub(crate) async fn legacy_traffic(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Response, ApiError> {
    let tenant = query.tenant()?;
    state.compat.flush_legacy_traffic().await?;
    let rows = state.compat.legacy_traffic(tenant).await?;
    Ok(ok(rows))
}

#[utoipa::path(get, path = "/api/admin/mapping-statistics", tag = "admin", responses((status = 200, description = "sessions mapped per rule")))]
pub(crate) async fn mapping_statistics(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Response, ApiError> {
    let tenant = query.tenant()?;
    Ok(ok(state.compat.mapping_statistics(tenant).await?))
}
