//! The deploy lock: only one runner at a time changes a database's schema.
//!
//! PostgreSQL: a session advisory lock ([`DEPLOY_LOCK_KEY`]) taken with the non-blocking
//! `pg_try_advisory_lock`, polled, on a dedicated connection held for the whole run (the
//! server frees it if the process dies). SQLite: the single row of `flowkey_deploy_lock`,
//! inserted atomically; a row left by a dead process on this host is taken over.

use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, SqlitePool};

use crate::db::errors::sqlite_primary_code;
use crate::db::types::DbTime;
use crate::db::Db;
use crate::migrate::audit::Identity;
use crate::migrate::{faults, MigrateError};

/// The advisory lock key on PostgreSQL: "flowkey" in ASCII.
pub const DEPLOY_LOCK_KEY: i64 = 0x0066_6c6f_776b_6579;

/// The advisory lock key of the PostgreSQL schema `schema`: [`DEPLOY_LOCK_KEY`] for `public`
/// (the key every earlier flowkey used, so mixed versions still exclude each other there),
/// and for any other schema that key with its low 32 bits mixed with an FNV-1a hash of the
/// name: two schemas of one database are two databases to flowkey, migrated independently.
pub fn deploy_lock_key(schema: &str) -> i64 {
    if schema == "public" {
        return DEPLOY_LOCK_KEY;
    }
    let mut hash: u32 = 0x811c_9dc5;
    for byte in schema.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (DEPLOY_LOCK_KEY & !0xffff_ffff) | i64::from(hash ^ (DEPLOY_LOCK_KEY as u32))
}

/// The lock row's table on SQLite; never dropped by a downgrade.
pub const LOCK_TABLE: &str = "flowkey_deploy_lock";

const CREATE_SQLITE_LOCK_TABLE: &str = "\
CREATE TABLE IF NOT EXISTS flowkey_deploy_lock (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    run_id       TEXT NOT NULL,
    holder       TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    host         TEXT NOT NULL,
    acquired_at  TEXT NOT NULL
);
";

const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// A held deploy lock. Release it with [`DeployLock::release`]; if the process dies instead,
/// PostgreSQL frees it with the connection and the next SQLite runner on this host takes it
/// over.
pub(crate) struct DeployLock {
    held: Held,
    /// The stale holder replaced when the lock was taken over (SQLite), for the audit log.
    pub taken_over_from: Option<String>,
}

enum Held {
    /// Behind a mutex so that a run holding `&Session` can check it between steps.
    Postgres(tokio::sync::Mutex<PgConnection>, i64),
    Sqlite {
        pool: SqlitePool,
        run_id: String,
    },
}

/// Who holds the lock, for messages.
struct Holder {
    description: String,
    since: String,
}

impl DeployLock {
    /// Takes the lock, polling for up to `wait` while another runner holds it.
    pub async fn acquire(
        db: &Db,
        run_id: &str,
        identity: &Identity,
        wait: Duration,
    ) -> Result<DeployLock, MigrateError> {
        match db {
            Db::Postgres(pool) => {
                // A session-level advisory lock means nothing behind a transaction pooler
                // (two runners could both "hold" it): every command that takes the lock has
                // refused one already, before its read-only plan (`runner::refuse_transaction_pooler`).
                let application_name = truncate(&format!("flowkey {}", identity.describe()), 63);
                let options = PgConnectOptions::clone(&pool.connect_options())
                    .application_name(&application_name);
                let mut conn = PgConnection::connect_with(&options).await?;
                let schema: String = sqlx::query_scalar("SELECT current_schema()")
                    .fetch_one(&mut conn)
                    .await?;
                let key = deploy_lock_key(&schema);
                let deadline = Instant::now() + wait;
                let mut announced = false;
                loop {
                    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                        .bind(key)
                        .fetch_one(&mut conn)
                        .await?;
                    if got {
                        return Ok(DeployLock {
                            held: Held::Postgres(tokio::sync::Mutex::new(conn), key),
                            taken_over_from: None,
                        });
                    }
                    // The holder may let go between the try and this lookup (tests pause
                    // here to make that race happen).
                    faults::check("lock::before_holder_lookup")?;
                    let holder = postgres_holder(&mut conn, key).await?;
                    if Instant::now() >= deadline {
                        let _ = conn.close().await;
                        return Err(locked(holder));
                    }
                    announce(&mut announced, &holder);
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
            }
            Db::Sqlite(pool) => {
                sqlx::raw_sql(CREATE_SQLITE_LOCK_TABLE)
                    .execute(pool)
                    .await?;
                let deadline = Instant::now() + wait;
                let mut announced = false;
                loop {
                    let inserted = async {
                        faults::check_sql("lock::before_sqlite_insert")?;
                        sqlx::query(
                            "INSERT INTO flowkey_deploy_lock (id, run_id, holder, pid, host, acquired_at) \
                             VALUES (1, $1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                        )
                        .bind(run_id)
                        .bind(identity.describe())
                        .bind(i64::from(identity.pid))
                        .bind(&identity.host)
                        .bind(DbTime::now())
                        .execute(pool)
                        .await
                    }
                    .await;
                    // A runner whose step holds SQLite's write lock longer than the busy
                    // timeout surely holds the deploy lock too: read who it is, and wait.
                    let busy = matches!(&inserted, Err(err) if sqlite_busy(err));
                    let inserted = match inserted {
                        Ok(result) => result.rows_affected(),
                        Err(_) if busy => 0,
                        Err(err) if sqlite_read_only(&err) => {
                            return Err(MigrateError::ReadOnly {
                                reason: err
                                    .as_database_error()
                                    .map_or_else(|| err.to_string(), |db| db.message().to_owned()),
                            })
                        }
                        Err(err) => return Err(err.into()),
                    };
                    let held = Held::Sqlite {
                        pool: pool.clone(),
                        run_id: run_id.to_owned(),
                    };
                    if inserted == 1 {
                        return Ok(DeployLock {
                            held,
                            taken_over_from: None,
                        });
                    }
                    // The holder may let go right here (tests pause here to make it happen).
                    faults::check("lock::before_sqlite_holder_read")?;
                    let row: Option<(String, String, i64, String, String)> = sqlx::query_as(
                        "SELECT run_id, holder, pid, host, acquired_at FROM flowkey_deploy_lock WHERE id = 1",
                    )
                    .fetch_optional(pool)
                    .await?;
                    // The holder released it between our insert and our read: try again. No
                    // row and a busy database: a write transaction that is not a flowkey run
                    // (the application's, a backup's) holds SQLite's write lock; wait for it
                    // no longer than for a holder.
                    let Some((stale_run, holder, pid, host, since)) = row else {
                        if busy {
                            still_within(deadline, wait)?;
                            tokio::time::sleep(POLL_INTERVAL).await;
                        }
                        continue;
                    };
                    if host == identity.host && !process_is_alive(pid) {
                        let taken = async {
                            // Another runner may take the dead holder's lock over first (tests
                            // pause here to make that race happen).
                            faults::check_sql("lock::before_takeover")?;
                            sqlx::query(
                                "UPDATE flowkey_deploy_lock SET run_id = $1, holder = $2, pid = $3, \
                                 host = $4, acquired_at = $5 WHERE id = 1 AND run_id = $6",
                            )
                            .bind(run_id)
                            .bind(identity.describe())
                            .bind(i64::from(identity.pid))
                            .bind(&identity.host)
                            .bind(DbTime::now())
                            .bind(&stale_run)
                            .execute(pool)
                            .await
                        }
                        .await;
                        let taken = match taken {
                            Ok(result) => result.rows_affected(),
                            Err(err) if sqlite_busy(&err) => {
                                still_within(deadline, wait)?;
                                0
                            }
                            Err(err) => return Err(err.into()),
                        };
                        if taken == 1 {
                            tracing::warn!(
                                "took over the deploy lock left by {holder} (since {since}): that process is gone"
                            );
                            return Ok(DeployLock {
                                held,
                                taken_over_from: Some(format!("{holder} since {since}")),
                            });
                        }
                        tokio::time::sleep(POLL_INTERVAL).await;
                        continue;
                    }
                    let holder = Holder {
                        description: holder,
                        since,
                    };
                    if Instant::now() >= deadline {
                        return Err(locked(holder));
                    }
                    announce(&mut announced, &holder);
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
            }
        }
    }

    /// Fails when the lock is no longer held. On PostgreSQL the lock lives as long as the
    /// connection that took it: a server restart (or a terminated backend) ends both, while
    /// the run's pool quietly reconnects and would carry on unprotected, so a second runner
    /// could start beside it. Checked before every step and before a revision is recorded.
    pub async fn ensure_held(&self) -> Result<(), MigrateError> {
        match &self.held {
            Held::Postgres(conn, _) => {
                let mut conn = conn.lock().await;
                // The lock is the session's: while the session answers, nobody else can have
                // released it.
                let answered = async {
                    faults::check("runner::lock_check")?;
                    conn.ping().await?;
                    Ok::<_, MigrateError>(())
                }
                .await;
                answered.map_err(|err| MigrateError::LockLost {
                    reason: err.to_string(),
                })
            }
            // A row in the database: it outlives connections, and only a dead holder's row
            // is ever taken over.
            Held::Sqlite { .. } => Ok(()),
        }
    }

    /// Gives the lock back.
    pub async fn release(self) -> Result<(), MigrateError> {
        match self.held {
            Held::Postgres(conn, key) => {
                let mut conn = conn.into_inner();
                let unlocked = async {
                    faults::check("runner::before_lock_release")?;
                    sqlx::query("SELECT pg_advisory_unlock($1)")
                        .bind(key)
                        .execute(&mut conn)
                        .await?;
                    Ok::<_, MigrateError>(())
                }
                .await;
                if let Err(err) = unlocked {
                    // The connection is gone, and the lock went with it: there is nothing
                    // to give back, and the run's own result stands.
                    tracing::debug!(error = %err, "the deploy lock's connection was already closed");
                    return Ok(());
                }
                conn.close().await?;
            }
            Held::Sqlite { pool, run_id } => {
                faults::check("runner::before_lock_release")?;
                sqlx::query("DELETE FROM flowkey_deploy_lock WHERE id = 1 AND run_id = $1")
                    .bind(run_id)
                    .execute(&pool)
                    .await?;
            }
        }
        faults::check("runner::after_lock_release")
    }
}

/// SQLITE_BUSY or SQLITE_LOCKED (any extended code): another connection holds the write lock.
fn sqlite_busy(err: &sqlx::Error) -> bool {
    matches!(sqlite_primary_code(err), Some(5 | 6))
}

/// SQLITE_READONLY and its extended codes: the connection or the file cannot be written.
fn sqlite_read_only(err: &sqlx::Error) -> bool {
    sqlite_primary_code(err) == Some(8)
}

fn announce(announced: &mut bool, holder: &Holder) {
    if !*announced {
        *announced = true;
        tracing::warn!(
            "waiting for the deploy lock held by {} since {}",
            holder.description,
            holder.since
        );
    }
}

fn locked(holder: Holder) -> MigrateError {
    MigrateError::Locked {
        holder: holder.description,
        since: holder.since,
    }
}

async fn postgres_holder(conn: &mut PgConnection, key: i64) -> Result<Holder, sqlx::Error> {
    let high = key >> 32;
    let low = key & 0xffff_ffff;
    let row: Option<(i32, String, String, String)> = sqlx::query_as(
        "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), \
                coalesce(to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '?') \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = $1 \
           AND l.objid::bigint = $2 AND l.objsubid = 1 \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         LIMIT 1",
    )
    .bind(high)
    .bind(low)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some((pid, application, user, since)) => Holder {
            description: if application.is_empty() {
                format!("PostgreSQL backend pid {pid} (user {user})")
            } else {
                format!("{application} (PostgreSQL backend pid {pid}, user {user})")
            },
            since,
        },
        None => Holder {
            description: "another session".into(),
            since: "a moment ago".into(),
        },
    })
}

/// Whether a process of this host still runs. Without /proc (not Linux) every process counts
/// as alive, so a lock is never taken from a live runner.
fn process_is_alive(pid: i64) -> bool {
    let proc = std::path::Path::new("/proc");
    !proc.join("self").exists() || pid <= 0 || proc.join(pid.to_string()).exists()
}

/// SQLite: a database kept busy by a connection that is not a flowkey run is waited for no
/// longer than a holder would be.
fn still_within(deadline: Instant, wait: Duration) -> Result<(), MigrateError> {
    if Instant::now() >= deadline {
        return Err(MigrateError::DatabaseBusy {
            waited_secs: wait.as_secs(),
        });
    }
    Ok(())
}

fn truncate(text: &str, max: usize) -> String {
    text[..text.floor_char_boundary(max)].to_owned()
}
