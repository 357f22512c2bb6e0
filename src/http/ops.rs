//! Liveness, readiness, metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::KeyColumns;
use crate::http::schema_gate::schema_not_at_head;
use crate::http::{ok, ApiError, AppState, Envelope, ErrorEnvelope};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

/// The process answers.
#[utoipa::path(get, path = "/health", tag = "ops", responses(
    (status = 200, description = "the server is alive", body = Envelope<HealthView>),
))]
pub(crate) async fn health() -> Response {
    ok(HealthView { status: "ok" })
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HealthView {
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReadyView {
    #[schema(example = "ready")]
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub database: String,
    /// The global `ENABLE_FLOW_ID_PRIMARY` this server applies now (a tenant override may
    /// differ): how an operator sees every instance pick up a `flag set`.
    #[schema(example = "off")]
    pub flag: String,
    /// The schema this server serves: `expanded` (at head: session columns beside `flow_id`)
    /// or `contracted` (after `flowkey contract`: `flow_id` alone, legacy ids answered from
    /// `session_flow_mapping` whatever the flag says).
    #[schema(example = "expanded")]
    pub key_columns: &'static str,
    /// `jwt`, or `none` when the server runs without authentication (`--auth none`).
    #[schema(example = "jwt")]
    pub auth: &'static str,
    /// Set when something about the server's configuration deserves an operator's eye
    /// (authentication off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<&'static str>,
}

/// The database answers and its schema is at head.
#[utoipa::path(get, path = "/ready", tag = "ops", responses(
    (status = 200, description = "ready to serve", body = Envelope<ReadyView>),
    (status = 503, description = "`database_unavailable`, or `schema_not_at_head` with the missing revisions in `details`", body = ErrorEnvelope),
))]
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Response, ApiError> {
    // Through the gate of the /api routes: a server probed by its load balancer follows the
    // schema sooner than its own poll would.
    let check = state.schema.check().await.map_err(|err| {
        tracing::warn!(error = %err, "readiness: database unreachable");
        ApiError::unavailable("database_unavailable", "the database is not answering")
    })?;
    if !check.servable() {
        return Err(schema_not_at_head(&check));
    }
    let (auth, warning) = match state.auth {
        Some(_) => ("jwt", None),
        None => (
            "none",
            Some("authentication is off (--auth none): any caller reaching this server reaches every tenant"),
        ),
    };
    Ok(ok(ReadyView {
        status: "ready",
        database: state.db.engine().to_string(),
        flag: state.flags.global_mode().to_string(),
        key_columns: match check.key_columns() {
            KeyColumns::Expanded => "expanded",
            KeyColumns::Contracted => "contracted",
        },
        auth,
        warning,
    }))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses(
    (status = 200, description = "this document (OpenAPI 3.1)", body = Object),
))]
pub(crate) async fn openapi() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        crate::http::openapi_json(),
    )
        .into_response()
}
