//! The HTTP API: `app(state)` builds the router (v3 by flow id, legacy v1 by session id,
//! admin, health, readiness, metrics, OpenAPI) without binding a socket, so tests drive it
//! with `oneshot`. Handlers parse, call the library and answer in the envelope; they issue
//! no SQL.

mod admin;
mod auth;
mod connection;
mod error;
pub mod extract;
mod metrics;
mod notifications;
mod openapi;
mod ops;
pub mod schema_gate;
mod schemas;
mod v1;
mod v3;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;

use crate::compat::{CompatConfig, CompatMetrics, SessionFlowCompatibilityService};
use crate::db::{Db, KeyColumns, ServedKeys};
use crate::flags::{FlagWatcher, FlowIdPrimary, DEFAULT_POLL_INTERVAL};

pub use auth::{AdminToken, AdminTokenError, Authenticator, MIN_TOKEN_BYTES};
pub use error::{ApiError, ErrorBody, ErrorEnvelope};
pub use metrics::HttpMetrics;
pub use openapi::openapi_json;
pub use schema_gate::{SchemaGate, DEFAULT_SCHEMA_POLL_INTERVAL};

/// Knobs of the server.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Largest request body accepted (JSON rows, any other body); larger is a 413.
    pub max_body_bytes: usize,
    /// Largest CSV upload accepted (`POST /api/v3/data-import/imports/upload`, streamed in
    /// bounded memory, so it may be far larger than `max_body_bytes`); larger is a 413.
    pub max_upload_bytes: usize,
    /// `ENABLE_FLOW_ID_PRIMARY` when `flowkey_flags` says nothing.
    pub flag_default: FlowIdPrimary,
    /// How often the flag table is read.
    pub flag_poll_interval: Duration,
    /// How often the server checks that its schema is still at head (see `schema_gate`).
    pub schema_poll_interval: Duration,
    /// How often counted legacy hits are written to `flowkey_legacy_traffic`.
    pub traffic_flush_interval: Duration,
    pub compat: CompatConfig,
    /// The `Sunset` date announced on every v1 response (an HTTP date).
    pub v1_sunset: String,
    /// The bearer token of `/api/admin/*`; `None` disables those routes (403).
    pub admin_token: Option<AdminToken>,
    /// PostgreSQL: refresh flags on `NOTIFY` as well as by polling
    /// (`FLOWKEY_FLAG_LISTEN=0` turns it off).
    pub flag_listen: bool,
    /// Where the flag listener connects (`--listen-url` / `FLOWKEY_LISTEN_URL`): a direct
    /// connection for a server behind a transaction pooler; `None`: the database URL.
    pub listen_url: Option<String>,
    /// Serve reads only (`serve --read-only`, or a hot standby found at start): writes get
    /// 503 `read_only`, legacy traffic is counted in /metrics but not written.
    pub read_only: bool,
    /// How the tenant routes authenticate. [`AuthMode::None`] (the library's default, for
    /// tests and `--auth none` on loopback) lets every caller in as before.
    pub auth: AuthMode,
}

/// How the tenant routes (v3, v1) authenticate callers.
#[derive(Debug, Clone, Default)]
pub enum AuthMode {
    /// No authentication: the tenant headers are trusted (`--auth none`, loopback only).
    #[default]
    None,
    /// A bearer JWT, verified by `verifier`; tenants granted by `grants`.
    Jwt {
        verifier: Arc<crate::identity::Verifier>,
        grants: crate::identity::GrantSource,
        grant_cache_ttl: Duration,
    },
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            max_upload_bytes: 1024 * 1024 * 1024,
            flag_default: FlowIdPrimary::Off,
            flag_poll_interval: DEFAULT_POLL_INTERVAL,
            schema_poll_interval: DEFAULT_SCHEMA_POLL_INTERVAL,
            traffic_flush_interval: Duration::from_secs(5),
            compat: CompatConfig::default(),
            v1_sunset: "Wed, 30 Jun 2027 00:00:00 GMT".to_owned(),
            admin_token: None,
            read_only: false,
            flag_listen: true,
            listen_url: None,
            auth: AuthMode::None,
        }
    }
}

/// Why the server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Flag(#[from] crate::flags::FlagError),
    #[error("environment variable {name} is invalid: {reason}")]
    BadEnvironment { name: &'static str, reason: String },
    #[error("metrics registration failed: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl ServiceConfig {
    /// Defaults, overridden by `ENABLE_FLOW_ID_PRIMARY`, `FLOWKEY_FLAG_POLL_MS`,
    /// `FLOWKEY_SCHEMA_POLL_MS`, `FLOWKEY_MAX_BODY_BYTES`, `FLOWKEY_MAX_UPLOAD_BYTES`,
    /// `FLOWKEY_RESOLVE_CACHE_TTL_MS`, `FLOWKEY_FLAG_LISTEN` and `FLOWKEY_LISTEN_URL`.
    pub fn from_env() -> Result<Self, ServiceError> {
        let mut config = Self {
            flag_default: crate::flags::default_from_env()?,
            ..Self::default()
        };
        if let Some(ms) = env_number("FLOWKEY_FLAG_POLL_MS")? {
            config.flag_poll_interval = Duration::from_millis(ms.max(50));
        }
        if let Some(ms) = env_number("FLOWKEY_SCHEMA_POLL_MS")? {
            config.schema_poll_interval = Duration::from_millis(ms.max(50));
        }
        if let Some(listen) = env_number("FLOWKEY_FLAG_LISTEN")? {
            config.flag_listen = listen != 0;
        }
        if let Ok(url) = std::env::var("FLOWKEY_LISTEN_URL") {
            config.listen_url = Some(url).filter(|url| !url.trim().is_empty());
        }
        if let Some(bytes) = env_number("FLOWKEY_MAX_BODY_BYTES")? {
            config.max_body_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        }
        if let Some(bytes) = env_number("FLOWKEY_MAX_UPLOAD_BYTES")? {
            config.max_upload_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        }
        if let Some(ms) = env_number("FLOWKEY_RESOLVE_CACHE_TTL_MS")? {
            config.compat.cache_ttl = Duration::from_millis(ms);
        }
        Ok(config)
    }
}

fn env_number(name: &'static str) -> Result<Option<u64>, ServiceError> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ServiceError::BadEnvironment {
                name,
                reason: format!("{text:?} is not a whole number"),
            }),
    }
}

/// Everything a handler needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Db,
    pub compat: Arc<SessionFlowCompatibilityService>,
    pub flags: Arc<FlagWatcher>,
    pub schema: Arc<SchemaGate>,
    pub metrics: Arc<HttpMetrics>,
    pub config: Arc<ServiceConfig>,
    /// `None` under [`AuthMode::None`].
    pub auth: Option<Arc<Authenticator>>,
}

impl AppState {
    /// Builds the state; the flag watcher knows only the default until its first refresh
    /// (call [`AppState::refresh_flags`] or [`AppState::spawn_background`]).
    pub fn new(db: Db, config: ServiceConfig) -> Result<Self, ServiceError> {
        let metrics = HttpMetrics::new()?;
        let compat_metrics = CompatMetrics::register(&metrics.registry)?;
        // One value: the gate decides the key columns, the compatibility service and the
        // handlers read them.
        let keys = ServedKeys::default();
        let compat = SessionFlowCompatibilityService::new(
            db.clone(),
            &config.compat,
            compat_metrics,
            keys.clone(),
        );
        let flags = FlagWatcher::new(db.clone(), config.flag_default);
        let schema = SchemaGate::new(db.clone(), keys);
        let auth = match &config.auth {
            AuthMode::None => None,
            AuthMode::Jwt {
                verifier,
                grants,
                grant_cache_ttl,
            } => Some(Arc::new(Authenticator {
                verifier: verifier.clone(),
                grants: crate::identity::Grants::new(db.clone(), *grants, *grant_cache_ttl),
            })),
        };
        Ok(Self {
            auth,
            db,
            compat: Arc::new(compat),
            flags: Arc::new(flags),
            schema: Arc::new(schema),
            metrics: Arc::new(metrics),
            config: Arc::new(config),
        })
    }

    /// The key columns of the schema as the last schema check found them (expanded until
    /// a first check): what the stores read and write.
    pub fn keys(&self) -> KeyColumns {
        self.compat.keys()
    }

    pub async fn refresh_flags(&self) -> Result<(), crate::flags::FlagError> {
        self.flags.refresh().await
    }

    /// Starts flag polling, schema checks and the periodic legacy traffic flush.
    pub fn spawn_background(&self) -> BackgroundTasks {
        let flag_poller = self
            .flags
            .clone()
            .spawn_polling(self.config.flag_poll_interval);
        let schema_poller = self
            .schema
            .clone()
            .spawn_polling(self.config.schema_poll_interval);
        let compat = self.compat.clone();
        let interval = self.config.traffic_flush_interval;
        let mut handles = vec![flag_poller, schema_poller];
        if self.config.flag_listen {
            let listened = notifications::Listened {
                flags: self.flags.clone(),
                schema: self.schema.clone(),
            };
            handles.extend(notifications::spawn_listener(
                &self.db,
                listened,
                self.config.listen_url.clone(),
            ));
        }
        if self.config.read_only {
            // A standby refuses writes: legacy traffic stays in /metrics only.
            return BackgroundTasks {
                compat: None,
                handles,
            };
        }
        let traffic_flusher = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            loop {
                ticker.tick().await;
                if let Err(err) = compat.flush_legacy_traffic().await {
                    tracing::warn!(error = %err, "cannot write legacy traffic; will retry");
                }
            }
        });
        handles.push(traffic_flusher);
        BackgroundTasks {
            compat: Some(self.compat.clone()),
            handles,
        }
    }
}

/// The server's periodic tasks; `shutdown` stops them and writes the last legacy hits.
#[derive(Debug)]
pub struct BackgroundTasks {
    /// Where the last legacy hits are written at shutdown; `None` on a read-only server.
    compat: Option<Arc<SessionFlowCompatibilityService>>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl BackgroundTasks {
    pub async fn shutdown(self) {
        for handle in &self.handles {
            handle.abort();
        }
        if let Some(compat) = self.compat {
            if let Err(err) = compat.flush_legacy_traffic().await {
                tracing::warn!(error = %err, "cannot write the last legacy traffic");
            }
        }
    }
}

/// The whole API as a router; serving it is the caller's business.
pub fn app(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    // Every /api route depends on the head schema; the ops routes must answer whatever the
    // schema's state, since they are how an operator sees it.
    let api = Router::new()
        .merge(
            v3::routes(state.config.max_upload_bytes)
                .merge(v1::routes(state.clone()))
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    auth::require_user,
                )),
        )
        .merge(admin::routes(state.clone()))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_writes_when_read_only,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            schema_gate::refuse_below_head,
        ));
    Router::new()
        .merge(api)
        .merge(ops::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(
            connection::close_unless_body_read,
        ))
        .fallback(not_found_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// On a read-only server (a hot standby), every method but GET and HEAD answers 503
/// `read_only` before any handler runs: the database would refuse the write anyway, half-way.
async fn refuse_writes_when_read_only(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let reads = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if state.config.read_only && !reads {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "read_only",
            "this server serves reads only (a hot standby or --read-only): send writes to a \
             server on the primary",
        )
        .into_response();
    }
    next.run(request).await
}

async fn not_found_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_such_route", "no such route")
}

/// A path the API has, with a method it does not list for it (axum adds `Allow`).
async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this path does not take this method; `Allow` lists those it takes",
    )
}

/// `{"success": true, "data": …}`: every successful answer of the API (errors are an
/// [`error::ErrorEnvelope`]).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Envelope<T> {
    /// Always `true`.
    #[schema(example = true)]
    pub success: bool,
    pub data: T,
}

/// `{"success": true, "data": …}` with a status.
pub fn envelope(status: StatusCode, data: impl Serialize) -> Response {
    (
        status,
        axum::Json(Envelope {
            success: true,
            data,
        }),
    )
        .into_response()
}

/// 200 with the envelope.
pub fn ok(data: impl Serialize) -> Response {
    envelope(StatusCode::OK, data)
}
