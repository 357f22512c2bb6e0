//! How a SQL step runs on PostgreSQL, always under `lock_timeout` so that a DDL statement
//! never queues (and blocks the application) behind a long transaction, and retried with
//! backoff after a lock timeout ([`retry_on_lock_timeout`]):
//! - `Sql`: the script in one transaction (`SET LOCAL lock_timeout`), with the step recorded
//!   done in it; the whole transaction is retried.
//! - `OnlineDdl`: statement by statement outside any transaction block (this is where
//!   `CREATE INDEX CONCURRENTLY` lives), each retried alone, its lock wait and duration written
//!   to the audit log; an invalid leftover of an interrupted concurrent index build is dropped
//!   before the build runs again.

use std::time::{Duration, Instant};

use sqlx::PgConnection;

use crate::migrate::audit::{AuditLog, Outcome, Scope};
use crate::migrate::faults;
use crate::migrate::offline::split_statements;
use crate::migrate::runner::millis;
use crate::migrate::runner::steps::end_transaction;
use crate::migrate::runner::versions::set_steps_done;
use crate::migrate::{MigrateError, Revision, RunOptions};

/// How many attempts a PostgreSQL step or statement needed, and how long it waited for locks.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retried {
    pub attempts: u32,
    pub lock_wait: Duration,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Runs a PostgreSQL script in one transaction under `SET LOCAL lock_timeout`, recording the
/// step done in it; the whole transaction is retried after a lock timeout.
pub(super) async fn run_postgres_transaction(
    pool: &sqlx::PgPool,
    script: &str,
    options: &RunOptions,
    revision: &'static Revision,
    steps_done: usize,
) -> Result<Retried, MigrateError> {
    let lock_timeout = lock_timeout_setting(options);
    let mut pool = pool.clone();
    let (result, retried) = retry_on_lock_timeout(
        &mut pool,
        options,
        |attempt, backoff| {
            tracing::warn!(
                "lock timeout in revision {} (attempt {attempt}), retrying in {backoff:?}",
                revision.id
            );
        },
        async |pool: &mut sqlx::PgPool| {
            let mut tx = pool.begin().await?;
            let work = async {
                sqlx::query("SELECT set_config('lock_timeout', $1, true)")
                    .bind(&lock_timeout)
                    .execute(&mut *tx)
                    .await?;
                faults::check("runner::before_postgres_script")?;
                sqlx::raw_sql(script).execute(&mut *tx).await?;
                faults::check("runner::after_postgres_script")?;
                set_steps_done(&mut *tx, revision, steps_done).await
            }
            .await;
            end_transaction(tx, work).await
        },
    )
    .await;
    result.map(|()| retried)
}

/// Runs an online DDL script: each statement alone, outside a transaction block, under
/// `lock_timeout`, retried with backoff when it times out waiting for a lock; an invalid
/// leftover of a concurrent index build is dropped before rebuilding. The session's
/// `lock_timeout` is reset afterwards.
pub(super) async fn run_online_ddl(
    conn: &mut PgConnection,
    script: &str,
    options: &RunOptions,
    audit: &AuditLog,
    scope: Scope<'_>,
) -> Result<(), MigrateError> {
    let lock_timeout = lock_timeout_setting(options);
    sqlx::query("SELECT set_config('lock_timeout', $1, false)")
        .bind(&lock_timeout)
        .execute(&mut *conn)
        .await?;
    let result = run_statements(conn, script, options, audit, scope).await;
    let reset = sqlx::raw_sql("RESET lock_timeout")
        .execute(&mut *conn)
        .await;
    result?;
    reset?;
    Ok(())
}

async fn run_statements(
    conn: &mut PgConnection,
    script: &str,
    options: &RunOptions,
    audit: &AuditLog,
    scope: Scope<'_>,
) -> Result<(), MigrateError> {
    for statement in split_statements(script) {
        let index_name = concurrent_index_name(&statement);
        let started = Instant::now();
        let long_wait_until = started + options.long_transaction_wait;
        let (result, retried) = retry_on_lock_timeout(
            conn,
            options,
            |attempt, backoff| {
                let statement = first_line(&statement);
                tracing::warn!(
                    "lock timeout (attempt {attempt}), retrying in {backoff:?}: {statement}"
                );
            },
            async |conn: &mut PgConnection| {
                wait_for_long_transactions(conn, options, audit, scope, long_wait_until).await?;
                if let Some(name) = &index_name {
                    if drop_invalid_index(conn, name).await? {
                        audit
                            .event(
                                scope,
                                "invalid_index_dropped",
                                Outcome::Info,
                                None,
                                None,
                                serde_json::json!({ "index": name }),
                            )
                            .await?;
                    }
                }
                faults::check("runner::before_online_statement")?;
                sqlx::raw_sql(&statement).execute(&mut *conn).await?;
                faults::check("runner::after_online_statement")
            },
        )
        .await;
        let (outcome, error) = match &result {
            Ok(()) => (Outcome::Ok, None),
            Err(err) => (Outcome::Failed, Some(err.to_string())),
        };
        audit
            .event(
                scope,
                "statement",
                outcome,
                Some(started.elapsed()),
                error.as_deref(),
                statement_details(&statement, retried),
            )
            .await?;
        result?;
    }
    Ok(())
}

/// A transaction of this database open longer than the threshold (another session's).
#[derive(Debug, Clone, serde::Serialize)]
struct LongTransaction {
    pid: i32,
    age_seconds: f64,
    transaction_start: String,
    query_start: Option<String>,
    state: Option<String>,
    query: Option<String>,
}

impl std::fmt::Display for LongTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} open {:.0} s (since {}, last query started {}, {}: {:?})",
            self.pid,
            self.age_seconds,
            self.transaction_start,
            self.query_start.as_deref().unwrap_or("never"),
            self.state.as_deref().unwrap_or("unknown state"),
            self.query.as_deref().unwrap_or(""),
        )
    }
}

async fn long_transactions(
    conn: &mut PgConnection,
    threshold: Duration,
) -> Result<Vec<LongTransaction>, sqlx::Error> {
    use sqlx::Row;
    // Only this database's sessions: CREATE INDEX CONCURRENTLY and VALIDATE wait for
    // transactions of the same database. The query is cut: it is for naming, not auditing.
    let rows = sqlx::query(
        "SELECT pid, extract(epoch FROM clock_timestamp() - xact_start)::float8, \
                xact_start::text, query_start::text, state, left(query, 200) \
         FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
           AND xact_start IS NOT NULL \
           AND clock_timestamp() - xact_start > make_interval(secs => $1) \
         ORDER BY xact_start",
    )
    .bind(threshold.as_secs_f64())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(LongTransaction {
                pid: row.try_get(0)?,
                age_seconds: row.try_get(1)?,
                transaction_start: row.try_get(2)?,
                query_start: row.try_get(3)?,
                state: row.try_get(4)?,
                query: row.try_get(5)?,
            })
        })
        .collect()
}

/// Before an online DDL statement (and before each retry after a lock timeout): names the
/// transactions older than the threshold, which the statement would wait for and time out
/// on, in the progress output and the audit log, and waits for them to end until `until`;
/// then stops with their names rather than retrying blind.
async fn wait_for_long_transactions(
    conn: &mut PgConnection,
    options: &RunOptions,
    audit: &AuditLog,
    scope: Scope<'_>,
    until: Instant,
) -> Result<(), MigrateError> {
    let waiting_since = Instant::now();
    let mut reported: Vec<i32> = Vec::new();
    loop {
        let found = long_transactions(conn, options.long_transaction_threshold).await?;
        if found.is_empty() {
            return Ok(());
        }
        let pids: Vec<i32> = found.iter().map(|t| t.pid).collect();
        if pids != reported {
            let names = found
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            tracing::warn!("online DDL waits for long transactions: {names}");
            audit
                .event(
                    scope,
                    "long_transactions",
                    Outcome::Info,
                    None,
                    None,
                    serde_json::json!({
                        "threshold_seconds": options.long_transaction_threshold.as_secs_f64(),
                        "transactions": found,
                    }),
                )
                .await?;
            reported = pids;
        }
        if Instant::now() >= until {
            return Err(MigrateError::LongTransactions {
                threshold_secs: options.long_transaction_threshold.as_secs(),
                waited_secs: waiting_since.elapsed().as_secs(),
                transactions: found
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        tokio::time::sleep(LONG_TRANSACTION_POLL.min(until - Instant::now())).await;
    }
}

const LONG_TRANSACTION_POLL: Duration = Duration::from_millis(500);

/// Runs `attempt` on `target` until it succeeds, fails with anything but a lock timeout, or
/// has been retried `options.ddl_retries` times, sleeping with exponential backoff between
/// attempts (`on_retry` says so first). Returns the last attempt's result and how many
/// attempts and how much lock waiting it took.
async fn retry_on_lock_timeout<T, C: ?Sized>(
    target: &mut C,
    options: &RunOptions,
    on_retry: impl Fn(u32, Duration),
    mut attempt: impl AsyncFnMut(&mut C) -> Result<T, MigrateError>,
) -> (Result<T, MigrateError>, Retried) {
    let mut retried = Retried {
        attempts: 0,
        lock_wait: Duration::ZERO,
    };
    let mut backoff = FIRST_BACKOFF;
    loop {
        retried.attempts += 1;
        let attempt_started = Instant::now();
        match attempt(target).await {
            Err(err) if is_lock_timeout(&err) && retried.attempts <= options.ddl_retries => {
                retried.lock_wait += attempt_started.elapsed() + backoff;
                on_retry(retried.attempts, backoff);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            result => {
                if result.as_ref().is_err_and(is_lock_timeout) {
                    retried.lock_wait += attempt_started.elapsed();
                }
                return (result, retried);
            }
        }
    }
}

fn lock_timeout_setting(options: &RunOptions) -> String {
    format!("{}ms", options.lock_timeout.as_millis().max(1))
}

fn statement_details(statement: &str, retried: Retried) -> serde_json::Value {
    const MAX_SHOWN: usize = 500;
    let mut shown = statement.to_owned();
    if shown.len() > MAX_SHOWN {
        shown.truncate(shown.floor_char_boundary(MAX_SHOWN));
        shown.push('…');
    }
    serde_json::json!({
        "statement": shown,
        "attempts": retried.attempts,
        "lock_wait_ms": millis(retried.lock_wait),
    })
}

fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with("--"))
        .unwrap_or_default()
}

fn is_lock_timeout(err: &MigrateError) -> bool {
    let MigrateError::Sql(sqlx::Error::Database(db)) = err else {
        return false;
    };
    db.code().as_deref() == Some("55P03")
}

/// The index a `CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS <name>` statement builds.
fn concurrent_index_name(statement: &str) -> Option<String> {
    let code: String = statement
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join(" ");
    let words: Vec<&str> = code.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|word| word.to_uppercase()).collect();
    let mut at = 0;
    let mut expect = |word: &str| {
        if upper.get(at).map(String::as_str) == Some(word) {
            at += 1;
            true
        } else {
            false
        }
    };
    if !expect("CREATE") {
        return None;
    }
    expect("UNIQUE");
    if !(expect("INDEX")
        && expect("CONCURRENTLY")
        && expect("IF")
        && expect("NOT")
        && expect("EXISTS"))
    {
        return None;
    }
    let name = words.get(at)?;
    let name = name.split('(').next().unwrap_or(name).trim_matches('"');
    (!name.is_empty() && !name.eq_ignore_ascii_case("ON")).then(|| name.to_owned())
}

/// Drops `name` if it is an index left invalid by an interrupted concurrent build.
async fn drop_invalid_index(conn: &mut PgConnection, name: &str) -> Result<bool, MigrateError> {
    let invalid: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE c.relname = $1 AND NOT i.indisvalid \
           AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()))",
    )
    .bind(name)
    .fetch_one(&mut *conn)
    .await?;
    if invalid {
        tracing::warn!("dropping invalid index {name} left by an interrupted build");
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        sqlx::raw_sql(&format!("DROP INDEX CONCURRENTLY IF EXISTS {quoted}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_index_names_are_found() {
        assert_eq!(
            concurrent_index_name(
                "-- why\nCREATE INDEX CONCURRENTLY IF NOT EXISTS ix_a_flow_id ON a (flow_id);"
            )
            .as_deref(),
            Some("ix_a_flow_id")
        );
        assert_eq!(
            concurrent_index_name("create unique index concurrently if not exists \"ix\" on a(x);")
                .as_deref(),
            Some("ix")
        );
        assert_eq!(concurrent_index_name("CREATE INDEX ix ON a (x);"), None);
        assert_eq!(
            concurrent_index_name("ALTER TABLE a VALIDATE CONSTRAINT c;"),
            None
        );
    }
}
