//! PostgreSQL notifications a server listens for, so that what another process changed
//! reaches it in milliseconds instead of at its next poll: a flag change
//! ([`crate::flags::store::FLAG_CHANNEL`], sent in the transaction that changes the flag)
//! refreshes the flags, a change of the runner's book of revisions
//! ([`crate::migrate::SCHEMA_CHANNEL`], sent by the runner after each write to
//! `flowkey_versions`) re-checks the schema gate.
//!
//! One listener connection per server, on its own connection (`listen_url`, for a server
//! behind a transaction pooler, where LISTEN cannot work; else one taken from the pool's
//! server). Polling stays on beside it: a lost connection is reconnected with backoff and
//! both views are refreshed then, since notifications sent meanwhile are lost; a listener
//! that cannot connect at all costs at most the poll interval. SQLite has no notifications.

use std::sync::Arc;
use std::time::Duration;

use crate::db::listen::{Heard, Listener};
use crate::db::Db;
use crate::flags::store::FLAG_CHANNEL;
use crate::flags::FlagWatcher;
use crate::http::SchemaGate;
use crate::migrate::SCHEMA_CHANNEL;

/// What a server refreshes when told to.
pub struct Listened {
    pub flags: Arc<FlagWatcher>,
    pub schema: Arc<SchemaGate>,
}

impl Listened {
    async fn refresh_all(&self) {
        self.flags.refresh_logged().await;
        self.refresh_schema().await;
    }

    async fn refresh_schema(&self) {
        if let Err(err) = self.schema.refresh().await {
            tracing::debug!(error = %err, "cannot check the schema; keeping the last verdict");
        }
    }
}

/// Starts the listener; `None` on SQLite.
pub fn spawn_listener(
    db: &Db,
    listened: Listened,
    listen_url: Option<String>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !matches!(db, Db::Postgres(_)) {
        return None;
    }
    let db = db.clone();
    Some(tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let connected =
                Listener::connect(&db, listen_url.as_deref(), &[FLAG_CHANNEL, SCHEMA_CHANNEL])
                    .await;
            let mut listener = match connected {
                None => return,
                Some(Ok(listener)) => listener,
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "cannot LISTEN for flag and schema changes; polling meanwhile");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            // Whatever changed before the LISTEN took effect.
            listened.refresh_all().await;
            loop {
                match listener.next().await {
                    Ok(Heard::Notification { channel }) if channel == SCHEMA_CHANNEL => {
                        listened.refresh_schema().await
                    }
                    Ok(Heard::Notification { .. }) => listened.flags.refresh_logged().await,
                    // What was sent while the connection was lost is lost: read both again.
                    Ok(Heard::Reconnecting) => listened.refresh_all().await,
                    Err(err) => {
                        tracing::warn!(error = %err, "listener failed; reconnecting");
                        break;
                    }
                }
            }
        }
    }))
}
