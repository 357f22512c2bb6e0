//! The schema gate: a running server's view of whether its database is still servable (at
//! head, or contracted after it), and with which key columns.
//!
//! A server starts only at head, but an operator may take the schema down (`flowkey
//! downgrade -1`) and up again (`flowkey upgrade head`) while servers run. The gate re-reads
//! the schema check every poll interval (and `/ready` checks through it); while the
//! last check says "below head", every `/api` route answers 503 `schema_not_at_head` instead
//! of running queries against a schema the server was not built for, and the server serves
//! again by itself once the check says head. A check that fails (database unreachable) keeps
//! the last verdict: the routes then fail on their own with `database_unavailable`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::db::{Db, ServedKeys};
use crate::http::{ApiError, AppState};
use crate::migrate::serving::{check_schema, SchemaCheck};

/// How often a server re-checks its schema unless configured otherwise.
pub const DEFAULT_SCHEMA_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The last schema check a server saw; none until the first one (a server built without a
/// check, as in tests that drive the router directly, serves).
#[derive(Debug)]
pub struct SchemaGate {
    db: Db,
    /// The key columns of the last check, read by the stores (through the compatibility
    /// service and [`crate::http::AppState::keys`]).
    keys: ServedKeys,
    last: RwLock<Option<SchemaCheck>>,
    /// One check at a time. Two overlapping checks can finish in the other order: a poll
    /// that read the revision before a downgrade would then overwrite the verdict of a
    /// `/ready` that read it after, and the server would serve below head until its next
    /// check. In turn, each check reads after the previous one was recorded.
    checking: tokio::sync::Mutex<()>,
}

impl SchemaGate {
    pub fn new(db: Db, keys: ServedKeys) -> Self {
        Self {
            db,
            keys,
            last: RwLock::new(None),
            checking: tokio::sync::Mutex::new(()),
        }
    }

    /// Checks the schema now, records the verdict and returns the check.
    pub async fn check(&self) -> Result<SchemaCheck, sqlx::Error> {
        let _one_at_a_time = self.checking.lock().await;
        let check = check_schema(&self.db).await?;
        self.record(check.clone());
        Ok(check)
    }

    /// Logs each change of verdict once, so an operator sees when a server stopped and
    /// started serving.
    fn record(&self, check: SchemaCheck) {
        let mut last = self
            .last
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        let was_servable = last.as_ref().is_none_or(SchemaCheck::servable);
        match (was_servable, check.servable()) {
            (true, false) => tracing::warn!(
                schema = %check.describe(),
                "schema not servable: answering 503 schema_not_at_head until it is back"
            ),
            (false, true) => tracing::warn!("schema back at head: serving again"),
            _ => {}
        }
        if let Some(previous) = last
            .as_ref()
            .filter(|l| l.key_columns() != check.key_columns())
        {
            tracing::warn!(
                from = ?previous.key_columns(),
                to = ?check.key_columns(),
                schema = %check.describe(),
                "the schema's key columns changed: the stores follow"
            );
        }
        // Set before the verdict that opens the gate is recorded, so no request passes the
        // gate with the key columns of the previous schema.
        self.keys.set(check.key_columns());
        *last = Some(check);
    }

    /// The answer every `/api` route gives while the last check says "below head".
    pub fn refusal(&self) -> Option<ApiError> {
        let last = self
            .last
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        last.as_ref()
            .filter(|check| !check.servable())
            .map(schema_not_at_head)
    }

    /// Checks the schema now (the poll's form of [`SchemaGate::check`]).
    pub async fn refresh(&self) -> Result<(), sqlx::Error> {
        self.check().await.map(drop)
    }

    /// Refreshes every `interval` until the task is aborted; a failed check keeps the last
    /// verdict and is logged.
    pub fn spawn_polling(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if let Err(err) = self.refresh().await {
                    tracing::debug!(error = %err, "cannot check the schema; keeping the last verdict");
                }
            }
        })
    }
}

/// 503 `schema_not_at_head`, with what the check found: the same answer from `/ready` and
/// from every gated route.
pub fn schema_not_at_head(check: &SchemaCheck) -> ApiError {
    ApiError::unavailable("schema_not_at_head", check.describe()).with_details(json!({
        "recorded_revision": check.recorded_revision,
        "head": check.head,
        "missing": check.missing,
    }))
}

/// Middleware of the `/api` routes: refuses while the schema is not servable.
pub(crate) async fn refuse_below_head(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match state.schema.refusal() {
        Some(refusal) => refusal.into_response(),
        None => next.run(request).await,
    }
}
