//! Operator routes: the flag, its readiness, the legacy traffic summary and mapping
//! statistics. They act on the whole database, so they take no tenant headers; instead they
//! demand the admin bearer token (`auth::require_admin`).

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, put};
use axum::Router;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::compat::{LegacyTrafficRow, MappingStatistics};
use crate::flags::{self, FlagError, FlagScope, FlowIdPrimary, Readiness, StoredFlag, FLAG_NAME};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::{ok, ApiError, AppState, Envelope, ErrorEnvelope};
use crate::ids::TenantId;

pub(crate) fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/admin/flags", get(get_flags))
        .route("/api/admin/flags/{name}", put(set_flag))
        .route("/api/admin/readiness", get(readiness))
        .route("/api/admin/legacy-traffic", get(legacy_traffic))
        .route("/api/admin/mapping-statistics", get(mapping_statistics))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            crate::http::auth::require_admin,
        ))
}

#[utoipa::path(get, path = "/api/admin/flags", tag = "admin", security(("admin_token" = [])),
    responses(
        (status = 200, description = "default and stored values", body = Envelope<FlagsView>),
        (status = 401, description = "`unauthorized`: no or wrong bearer token (with `WWW-Authenticate: Bearer`)", body = ErrorEnvelope),
        (status = 403, description = "`admin_disabled`: the server was started without an admin token", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn get_flags(State(state): State<AppState>) -> Result<Response, ApiError> {
    let stored = flags::stored_flags(&state.db).await?;
    Ok(ok(FlagsView {
        name: FLAG_NAME,
        default: state.config.flag_default,
        stored,
    }))
}

/// The flag: the server's default and every stored value.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FlagsView {
    #[schema(example = "enable_flow_id_primary")]
    pub name: &'static str,
    /// `ENABLE_FLOW_ID_PRIMARY` of this server, used where nothing is stored.
    pub default: FlowIdPrimary,
    /// The global value (scope `global`) and per-tenant overrides.
    pub stored: Vec<StoredFlag>,
}

/// What `PUT /api/admin/flags/{name}` stored.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FlagSet {
    pub name: &'static str,
    /// `global`, or `CLIENT_ACCOUNT_ID:ENGAGEMENT_ID`.
    pub scope: String,
    pub value: FlowIdPrimary,
}

/// Whether the flag may be turned `on`, and why not.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReadinessView {
    pub ready: bool,
    pub details: Readiness,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct SetFlagBody {
    /// `off`, `shadow` or `on` (also `false`/`true`, any case).
    #[schema(example = "shadow")]
    pub value: String,
    /// `CLIENT_ACCOUNT_ID:ENGAGEMENT_ID`; the global value when absent.
    pub tenant: Option<String>,
    pub updated_by: Option<String>,
}

#[utoipa::path(put, path = "/api/admin/flags/{name}", tag = "admin", security(("admin_token" = [])),
    params(("name" = String, Path, description = "The flag; only `enable_flow_id_primary` exists.", example = "enable_flow_id_primary")),
    request_body = SetFlagBody,
    responses(
        (status = 200, description = "stored; every server applies it within one poll interval", body = Envelope<FlagSet>),
        (status = 400, description = "unknown value or scope", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`: no or wrong bearer token (with `WWW-Authenticate: Bearer`)", body = ErrorEnvelope),
        (status = 403, description = "`admin_disabled`: the server was started without an admin token", body = ErrorEnvelope),
        (status = 404, description = "no such flag", body = ErrorEnvelope),
        (status = 409, description = "`not_ready`: `on` refused while the backfill is incomplete or an integrity check fails", body = ErrorEnvelope),
    ),
)]
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
    Ok(ok(FlagSet {
        name: FLAG_NAME,
        scope: scope.to_string(),
        value,
    }))
}

#[utoipa::path(get, path = "/api/admin/readiness", tag = "admin", security(("admin_token" = [])),
    responses(
        (status = 200, description = "what stands between the database and flag `on`", body = Envelope<ReadinessView>),
        (status = 401, description = "`unauthorized`: no or wrong bearer token (with `WWW-Authenticate: Bearer`)", body = ErrorEnvelope),
        (status = 403, description = "`admin_disabled`: the server was started without an admin token", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn readiness(State(state): State<AppState>) -> Result<Response, ApiError> {
    let readiness = flags::readiness(&state.db).await?;
    Ok(ok(ReadinessView {
        ready: readiness.is_ready(),
        details: readiness,
    }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TenantQuery {
    /// Only this tenant, as `CLIENT_ACCOUNT_ID:ENGAGEMENT_ID`; every tenant when absent.
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

#[utoipa::path(get, path = "/api/admin/legacy-traffic", tag = "admin", security(("admin_token" = [])),
    params(TenantQuery),
    responses(
        (status = 200, description = "hits, first and last seen per route and tenant", body = Envelope<Vec<LegacyTrafficRow>>),
        (status = 400, description = "malformed `tenant`", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`: no or wrong bearer token (with `WWW-Authenticate: Bearer`)", body = ErrorEnvelope),
        (status = 403, description = "`admin_disabled`: the server was started without an admin token", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn legacy_traffic(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Response, ApiError> {
    let tenant = query.tenant()?;
    state.compat.flush_legacy_traffic().await?;
    let rows = state.compat.legacy_traffic(tenant).await?;
    Ok(ok(rows))
}

#[utoipa::path(get, path = "/api/admin/mapping-statistics", tag = "admin", security(("admin_token" = [])),
    params(TenantQuery),
    responses(
        (status = 200, description = "sessions mapped per rule", body = Envelope<MappingStatistics>),
        (status = 400, description = "malformed `tenant`", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`: no or wrong bearer token (with `WWW-Authenticate: Bearer`)", body = ErrorEnvelope),
        (status = 403, description = "`admin_disabled`: the server was started without an admin token", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn mapping_statistics(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Response, ApiError> {
    let tenant = query.tenant()?;
    Ok(ok(state.compat.mapping_statistics(tenant).await?))
}
