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
use crate::http::v3::optional_text;
use crate::http::{ok, ApiError, AppState, Envelope, ErrorEnvelope};
use crate::ids::TenantId;

pub(crate) fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/admin/flags", get(get_flags))
        .route("/api/admin/flags/{name}", put(set_flag).delete(unset_flag))
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
    /// The value.
    #[schema(schema_with = crate::http::schemas::flag_value)]
    pub value: String,
    /// `CLIENT_ACCOUNT_ID:ENGAGEMENT_ID` (or `global`); the global value when absent.
    #[schema(
        pattern = "^(global|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
    )]
    pub tenant: Option<String>,
    /// Recorded in `flowkey_flags.updated_by` (`admin-api` when absent).
    #[schema(max_length = 255, pattern = "^[^\\u0000]*$")]
    pub updated_by: Option<String>,
    /// Turn `on` even though the scope has shadow mismatches since its last flag change
    /// (recorded in `flowkey_flag_changes`); never past the readiness check.
    pub force: Option<bool>,
}

/// The API takes the flag's three values exactly as the document lists them (the CLI and the
/// environment also take the boolean spellings).
fn api_flag_value(text: &str) -> Result<FlowIdPrimary, FlagError> {
    match text {
        "off" | "shadow" | "on" => text.parse(),
        _ => Err(FlagError::UnknownValue {
            input: text.chars().take(40).collect(),
        }),
    }
}

#[utoipa::path(put, path = "/api/admin/flags/{name}", tag = "admin", security(("admin_token" = [])),
    params(("name" = String, Path, description = "The flag; only `enable_flow_id_primary` exists.", example = "enable_flow_id_primary")),
    request_body = SetFlagBody,
    responses(
        (status = 200, description = "stored; every server applies it within one poll interval", body = Envelope<FlagSet>),
        (status = 400, description = "`invalid_flag`: unknown value or scope; `malformed_body`: not JSON", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`: no or wrong bearer token (with `WWW-Authenticate: Bearer`)", body = ErrorEnvelope),
        (status = 403, description = "`admin_disabled`: the server was started without an admin token", body = ErrorEnvelope),
        (status = 404, description = "no such flag", body = ErrorEnvelope),
        (status = 409, description = "`not_ready`: `on` refused while the backfill is incomplete, an integrity check fails or a session has no mapping; `shadow_mismatches`: `on` refused while the scope has shadow mismatches since its last flag change (`force` overrides); `contracted`: `off` and `shadow` refused after the contract (`flowkey downgrade -1` first)", body = ErrorEnvelope),
        (status = 422, description = "`invalid_body`: JSON of the wrong shape; `invalid_text`: `updated_by` longer than 255 characters or holding NUL", body = ErrorEnvelope),
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
    let value = api_flag_value(&body.value)?;
    let scope = match body.tenant.as_deref() {
        None => FlagScope::Global,
        Some(text) => FlagScope::parse(text)?,
    };
    let updated_by = optional_text("updated_by", body.updated_by, Some(255))?
        .unwrap_or_else(|| "admin-api".to_owned());
    flags::set_flag_forcing(
        &state.db,
        scope,
        value,
        &updated_by,
        body.force.unwrap_or(false),
    )
    .await?;
    state.flags.refresh().await?;
    Ok(ok(FlagSet {
        name: FLAG_NAME,
        scope: scope.to_string(),
        value,
    }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UnsetFlagQuery {
    /// The override to remove, as `CLIENT_ACCOUNT_ID:ENGAGEMENT_ID`; the global value when
    /// absent.
    #[param(
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub tenant: Option<String>,
}

/// What `DELETE /api/admin/flags/{name}` removed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FlagUnset {
    pub name: &'static str,
    /// `global`, or `CLIENT_ACCOUNT_ID:ENGAGEMENT_ID`.
    pub scope: String,
    /// Whether a value was stored for the scope (removing nothing is not an error).
    pub removed: bool,
}

#[utoipa::path(delete, path = "/api/admin/flags/{name}", tag = "admin", security(("admin_token" = [])),
    params(("name" = String, Path, description = "The flag; only `enable_flow_id_primary` exists.", example = "enable_flow_id_primary"), UnsetFlagQuery),
    responses(
        (status = 200, description = "the stored value of the scope removed: a tenant follows the global value again, the global scope the servers' default; every server applies it within one poll interval", body = Envelope<FlagUnset>),
        (status = 400, description = "`malformed_id`: `tenant` is not CLIENT_ACCOUNT_ID:ENGAGEMENT_ID", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`: no or wrong bearer token (with `WWW-Authenticate: Bearer`)", body = ErrorEnvelope),
        (status = 403, description = "`admin_disabled`: the server was started without an admin token", body = ErrorEnvelope),
        (status = 404, description = "no such flag", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn unset_flag(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<UnsetFlagQuery>,
) -> Result<Response, ApiError> {
    if name != FLAG_NAME {
        return Err(FlagError::UnknownFlag { name }.into());
    }
    let scope = match query.tenant.as_deref() {
        None => FlagScope::Global,
        Some(text) => FlagScope::Tenant(TenantId::parse_pair(text)?),
    };
    let removed = flags::unset_flag(&state.db, scope, "admin-api").await?;
    state.flags.refresh().await?;
    Ok(ok(FlagUnset {
        name: FLAG_NAME,
        scope: scope.to_string(),
        removed,
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
    #[param(
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
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
