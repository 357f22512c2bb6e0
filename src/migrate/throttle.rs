//! Batched work that respects the cluster: between two batches the backfill (and any other
//! batched step) asks [`wait_while_throttled`] whether to go on. It waits, says why on the
//! progress bar and in the audit log, and resumes by itself, while
//! - an operator paused it (`flowkey throttle pause`: a row in `flowkey_throttle`, so it works
//!   from another shell or host, on both engines);
//! - a standby replays more than `max_replica_lag` behind (PostgreSQL, `pg_stat_replication`;
//!   a stuck replay shows as growing lag, see PostgreSQL's lag tracker);
//! - more than `max_load` other client sessions of the same database are active or waiting on
//!   a lock (PostgreSQL).
//!
//! Waiting happens between committed batches: a run killed while throttled has lost nothing and
//! resumes where it stopped (and waits again while the reason holds).

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::db::{Db, Engine};
use crate::migrate::{AuditSink, MigrateError};

/// When batched work waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleLimits {
    /// Wait while a standby's replay lag exceeds this (PostgreSQL); `None`: never.
    pub max_replica_lag: Option<Duration>,
    /// Wait while more than this many other client sessions are active or wait on a lock
    /// (PostgreSQL); `None`: never.
    pub max_load: Option<u32>,
    /// How often a throttled run looks again.
    pub poll: Duration,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        Self {
            max_replica_lag: Some(Duration::from_secs(5)),
            max_load: None,
            poll: Duration::from_secs(1),
        }
    }
}

/// Why batched work is waiting.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ThrottleReason {
    /// `flowkey throttle pause`.
    Paused { note: String, by: String },
    /// A standby replays behind the limit.
    ReplicaLag {
        standby: String,
        lag_seconds: f64,
        behind_bytes: i64,
        limit_seconds: f64,
    },
    /// Too many other sessions are busy.
    Load { busy_sessions: i64, limit: u32 },
}

impl std::fmt::Display for ThrottleReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ThrottleReason::Paused { note, by } => write!(f, "paused by {by}: {note}"),
            ThrottleReason::ReplicaLag {
                standby,
                lag_seconds,
                behind_bytes,
                limit_seconds,
            } => write!(
                f,
                "standby {standby} replays {lag_seconds:.1} s ({behind_bytes} bytes) behind, \
                 limit {limit_seconds:.1} s"
            ),
            ThrottleReason::Load {
                busy_sessions,
                limit,
            } => write!(f, "{busy_sessions} other sessions busy, limit {limit}"),
        }
    }
}

/// The operator's switch, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorSwitch {
    pub paused: bool,
    pub note: String,
    pub changed_by: String,
    pub changed_at: String,
}

/// Pauses (or resumes) every batched run on this database, now and until resumed.
pub async fn set_paused(db: &Db, paused: bool, note: &str, by: &str) -> Result<(), MigrateError> {
    let (create, upsert) = match db.engine() {
        Engine::Postgres => (
            "CREATE TABLE IF NOT EXISTS flowkey_throttle (
                 id integer PRIMARY KEY CHECK (id = 1),
                 paused boolean NOT NULL,
                 note text NOT NULL,
                 changed_by text NOT NULL,
                 changed_at timestamptz NOT NULL DEFAULT now())",
            "INSERT INTO flowkey_throttle (id, paused, note, changed_by) VALUES (1, $1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET paused = excluded.paused, note = excluded.note,
                 changed_by = excluded.changed_by, changed_at = now()",
        ),
        Engine::Sqlite => (
            "CREATE TABLE IF NOT EXISTS flowkey_throttle (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 paused BOOLEAN NOT NULL,
                 note TEXT NOT NULL,
                 changed_by TEXT NOT NULL,
                 changed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
            "INSERT INTO flowkey_throttle (id, paused, note, changed_by) VALUES (1, $1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET paused = excluded.paused, note = excluded.note,
                 changed_by = excluded.changed_by,
                 changed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        ),
    };
    crate::on_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        sqlx::query(create).execute(&mut *tx).await?;
        sqlx::query(upsert).bind(paused).bind(note).bind(by).execute(&mut *tx).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// The operator's switch; `None` when nobody ever used it on this database (nothing is
/// created by looking).
pub async fn operator_switch(db: &Db) -> Result<Option<OperatorSwitch>, MigrateError> {
    let exists_sql = match db.engine() {
        Engine::Postgres => "SELECT to_regclass('flowkey_throttle') IS NOT NULL",
        Engine::Sqlite => {
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' \
             AND name = 'flowkey_throttle')"
        }
    };
    let read_sql = match db.engine() {
        Engine::Postgres => {
            "SELECT paused, note, changed_by, \
             to_char(changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') \
             FROM flowkey_throttle WHERE id = 1"
        }
        Engine::Sqlite => {
            "SELECT paused, note, changed_by, changed_at FROM flowkey_throttle WHERE id = 1"
        }
    };
    let row: Option<(bool, String, String, String)> = crate::on_pool!(db, pool => {
        let exists: bool = sqlx::query_scalar(exists_sql).fetch_one(pool).await?;
        if exists {
            sqlx::query_as(read_sql).fetch_optional(pool).await?
        } else {
            None
        }
    });
    Ok(
        row.map(|(paused, note, changed_by, changed_at)| OperatorSwitch {
            paused,
            note,
            changed_by,
            changed_at,
        }),
    )
}

/// One look: the first reason to wait, if any (operator first, then lag, then load).
pub async fn reason_to_wait(
    db: &Db,
    limits: &ThrottleLimits,
) -> Result<Option<ThrottleReason>, MigrateError> {
    if let Some(switch) = operator_switch(db).await? {
        if switch.paused {
            return Ok(Some(ThrottleReason::Paused {
                note: switch.note,
                by: switch.changed_by,
            }));
        }
    }
    let Db::Postgres(pool) = db else {
        // SQLite has no standbys and no other sessions to count.
        return Ok(None);
    };
    if let Some(limit) = limits.max_replica_lag {
        // The most lagging standby. replay_lag is NULL for a standby that has caught up and
        // gone quiet; a stuck replay keeps growing (the lag tracker interpolates).
        let worst: Option<(String, f64, i64)> = sqlx::query_as(
            "SELECT COALESCE(NULLIF(application_name, ''), client_addr::text, pid::text),
                    COALESCE(EXTRACT(EPOCH FROM replay_lag), 0)::float8,
                    COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::int8
             FROM pg_stat_replication
             ORDER BY replay_lag DESC NULLS LAST LIMIT 1",
        )
        .fetch_optional(pool)
        .await?;
        if let Some((standby, lag_seconds, behind_bytes)) = worst {
            if lag_seconds > limit.as_secs_f64() {
                return Ok(Some(ThrottleReason::ReplicaLag {
                    standby,
                    lag_seconds,
                    behind_bytes,
                    limit_seconds: limit.as_secs_f64(),
                }));
            }
        }
    }
    if let Some(limit) = limits.max_load {
        let busy_sessions: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
               AND datname = current_database()
               AND (state = 'active' OR wait_event_type = 'Lock')",
        )
        .fetch_one(pool)
        .await?;
        if busy_sessions > i64::from(limit) {
            return Ok(Some(ThrottleReason::Load {
                busy_sessions,
                limit,
            }));
        }
    }
    Ok(None)
}

/// Waits while there is a reason to; returns how long it waited. Each throttled stretch is
/// a `throttled` event in the audit log per reason it waits for (in order) and one
/// `throttle_lifted` event (with its length); `on_reason` shows the current reason (the progress bar).
pub async fn wait_while_throttled(
    db: &Db,
    limits: &ThrottleLimits,
    audit: &dyn AuditSink,
    on_reason: &(dyn Fn(Option<&ThrottleReason>) + Send + Sync),
) -> Result<Duration, MigrateError> {
    let started = Instant::now();
    let mut throttled = false;
    let mut last_kind = None;
    loop {
        let reason = reason_to_wait(db, limits).await?;
        match reason {
            None => {
                if throttled {
                    on_reason(None);
                    audit
                        .record(
                            "throttle_lifted",
                            serde_json::json!({ "waited_ms": started.elapsed().as_millis() as u64 }),
                        )
                        .await?;
                }
                return Ok(started.elapsed());
            }
            Some(reason) => {
                // One event per stretch, and another whenever the reason changes (a pause
                // lifted while a standby still lags).
                let kind = std::mem::discriminant(&reason);
                if last_kind != Some(kind) {
                    throttled = true;
                    last_kind = Some(kind);
                    tracing::warn!(%reason, "throttled: waiting");
                    audit
                        .record(
                            "throttled",
                            serde_json::to_value(&reason).unwrap_or_default(),
                        )
                        .await?;
                }
                on_reason(Some(&reason));
                tokio::time::sleep(limits.poll).await;
            }
        }
    }
}
