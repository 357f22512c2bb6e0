//! One database handle for the two engines flowkey speaks: SQLite (the embedded default) and
//! PostgreSQL (production). The engine is chosen once, from the URL.
//!
//! Code that must run on both engines matches on [`Db`] (or [`Tx`]) with [`on_pool!`] /
//! [`on_tx!`]: the body is compiled once per engine, so the same SQL text and the same binds
//! serve both wherever the dialects agree, and a per-engine branch is written only where
//! they really differ.

pub mod errors;
pub mod foreign_keys;
pub mod introspect;
pub mod keys;
pub mod listen;
pub mod pooler;
pub mod tenancy;
pub mod text;
pub mod types;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use keys::{KeyColumns, ServedKeys};

/// The URL used when neither `--database-url` nor `DATABASE_URL` is given.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://flowkey.db";

/// Which SQL dialect a database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        })
    }
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "unsupported database url scheme {scheme:?}: use sqlite://PATH or postgres://USER@HOST/DB"
    )]
    UnsupportedScheme { scheme: String },
    #[error("invalid database url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// `url` with its PostgreSQL connection's `search_path` set to `schema` alone (the
/// `options=-csearch_path=...` parameter), so that every object flowkey reads or creates is
/// in that schema. The name must be a plain identifier: it is not quoted anywhere after.
pub fn url_in_schema(url: &str, schema: &str) -> Result<String, DbError> {
    let plain = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let invalid = |reason: String| DbError::InvalidUrl {
        url: redact(url),
        reason,
    };
    if !plain {
        return Err(invalid(format!(
            "--schema {schema:?} is not a plain lowercase identifier (a-z, 0-9, _; at most 63)"
        )));
    }
    match DbUrl::parse(url)? {
        DbUrl::Sqlite { .. } => Err(invalid(
            "--schema applies to PostgreSQL only; a SQLite file has no schemas".into(),
        )),
        DbUrl::Postgres { url } => {
            let mut parsed = url::Url::parse(&url).map_err(|err| invalid(err.to_string()))?;
            let kept: Vec<(String, String)> = parsed
                .query_pairs()
                .filter(|(key, _)| key != "options")
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect();
            parsed
                .query_pairs_mut()
                .clear()
                .extend_pairs(kept)
                .append_pair("options", &format!("-csearch_path={schema}"));
            Ok(parsed.to_string())
        }
    }
}

/// A parsed database URL, password hidden when displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    Sqlite {
        path: PathBuf,
        memory: bool,
        mode: SqliteMode,
    },
    Postgres {
        url: String,
    },
}

/// How a SQLite file is opened, from the URL's `mode` parameter (SQLite's own URI names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteMode {
    /// `mode=rwc` (or no `mode`): read-write, the file created if missing, WAL.
    #[default]
    ReadWriteCreate,
    /// `mode=rw`: read-write, a missing file is an error, WAL.
    ReadWrite,
    /// `mode=ro`: read-only, a missing file is an error, the journal mode left as it is
    /// (changing it writes). Commands that write fail before they change anything.
    ReadOnly,
}

impl SqliteMode {
    /// The mode a SQLite URL's query asks for. Any other parameter is refused: a URL option
    /// flowkey would not honour (a read-only mode above all) must not be dropped silently.
    fn from_query(query: &str) -> Result<Self, String> {
        let mut mode = SqliteMode::default();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            mode = match pair {
                "mode=rwc" => SqliteMode::ReadWriteCreate,
                "mode=rw" => SqliteMode::ReadWrite,
                "mode=ro" => SqliteMode::ReadOnly,
                other => {
                    return Err(format!(
                        "unsupported SQLite URL parameter {other:?}: flowkey reads only \
                         mode=ro, mode=rw or mode=rwc (the default)"
                    ))
                }
            };
        }
        Ok(mode)
    }

    fn as_query(self) -> &'static str {
        match self {
            SqliteMode::ReadWriteCreate => "",
            SqliteMode::ReadWrite => "?mode=rw",
            SqliteMode::ReadOnly => "?mode=ro",
        }
    }
}

impl DbUrl {
    pub fn parse(url: &str) -> Result<Self, DbError> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(DbError::InvalidUrl {
                url: redact(url),
                reason: "expected a scheme such as sqlite:// or postgres://".into(),
            });
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                let (path, query) = path.split_once('?').unwrap_or((path, ""));
                if path.is_empty() {
                    return Err(DbError::InvalidUrl {
                        url: url.into(),
                        reason: "no file path after sqlite://".into(),
                    });
                }
                let mode = SqliteMode::from_query(query).map_err(|reason| DbError::InvalidUrl {
                    url: url.into(),
                    reason,
                })?;
                let memory = path == ":memory:";
                Ok(DbUrl::Sqlite {
                    path: PathBuf::from(path),
                    memory,
                    mode,
                })
            }
            "postgres" | "postgresql" => {
                PgConnectOptions::from_str(url).map_err(|err| DbError::InvalidUrl {
                    url: redact(url),
                    reason: first_line(&err.to_string()),
                })?;
                Ok(DbUrl::Postgres { url: url.into() })
            }
            other => Err(DbError::UnsupportedScheme {
                scheme: other.into(),
            }),
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            DbUrl::Sqlite { .. } => Engine::Sqlite,
            DbUrl::Postgres { .. } => Engine::Postgres,
        }
    }
}

impl std::fmt::Display for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbUrl::Sqlite { path, mode, .. } => {
                write!(f, "sqlite://{}{}", path.display(), mode.as_query())
            }
            DbUrl::Postgres { url } => f.write_str(&redact(url)),
        }
    }
}

/// Hides the password of a URL, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

/// A pool on one of the two engines. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The options every pool flowkey opens starts from: no idle timeout and no lifetime, hence
/// no pool maintenance task. sqlx 0.8.6's can spin at 100% CPU forever after a race in its
/// idle count (sqlx issue 3645, fixed by PR 4289 after 0.8.6): a CI run hung 20 min on it,
/// and it would keep a finished `upgrade` from exiting. A pool keeps at most its
/// `max_connections` open; a connection the server or a pooler closed is found by the ping
/// sqlx makes before handing an idle one out (`test_before_acquire`, on by default).
pub(crate) fn unreaped_pool<DB: sqlx::Database>() -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .idle_timeout(None)
        .max_lifetime(None)
}

/// Options for opening a database.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    /// How long to wait for a first connection before giving up.
    pub connect_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl Db {
    /// Opens the database named by `url`: a SQLite file (created if missing, WAL, foreign
    /// keys on) or a PostgreSQL server. Fails fast and in one line on a bad scheme, an
    /// unreachable server or a refused login.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        Self::connect_with(url, &ConnectOptions::default()).await
    }

    pub async fn connect_with(url: &str, options: &ConnectOptions) -> Result<Self, DbError> {
        let parsed = DbUrl::parse(url)?;
        let target = parsed.to_string();
        let connect_error = |err: sqlx::Error| DbError::Connect {
            target: target.clone(),
            reason: describe_connect_error(&err),
        };
        match parsed {
            DbUrl::Sqlite { path, memory, mode } => {
                let mut opts = SqliteConnectOptions::new()
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10));
                opts = match (memory, mode) {
                    (true, _) => opts.in_memory(true),
                    (false, SqliteMode::ReadOnly) => opts.filename(&path).read_only(true),
                    (false, SqliteMode::ReadWrite | SqliteMode::ReadWriteCreate) => opts
                        .filename(&path)
                        .create_if_missing(mode == SqliteMode::ReadWriteCreate)
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal),
                };
                let pool = unreaped_pool::<sqlx::Sqlite>()
                    // An in-memory database lives in one connection only (reaping it would
                    // lose the database).
                    .max_connections(if memory { 1 } else { options.max_connections })
                    .acquire_timeout(options.connect_timeout)
                    .connect_with(opts)
                    .await
                    .map_err(connect_error)?;
                Ok(Db::Sqlite(pool))
            }
            DbUrl::Postgres { url } => {
                let opts = PgConnectOptions::from_str(&url)?;
                // One direct attempt first: the pool retries until its timeout and then only
                // says "timed out", hiding "connection refused" or "password authentication
                // failed", which is what the operator needs to read.
                let probe = tokio::time::timeout(
                    options.connect_timeout,
                    <sqlx::PgConnection as sqlx::Connection>::connect_with(&opts),
                )
                .await
                .map_err(|_| DbError::Connect {
                    target: target.clone(),
                    reason: format!(
                        "no answer within {} s",
                        options.connect_timeout.as_secs_f64()
                    ),
                })?
                .map_err(connect_error)?;
                let _ = sqlx::Connection::close(probe).await;
                let pool = unreaped_pool::<sqlx::Postgres>()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.connect_timeout)
                    .connect_with(opts)
                    .await
                    .map_err(connect_error)?;
                Ok(Db::Postgres(pool))
            }
        }
    }

    /// Whether this database is reached through a transaction pooler (see [`pooler`]): the
    /// session state a migration relies on (its deploy lock, `lock_timeout`) would not hold.
    pub async fn behind_transaction_pooler(&self) -> Result<bool, sqlx::Error> {
        match self {
            Db::Sqlite(_) => Ok(false),
            Db::Postgres(pool) => {
                let options = PgConnectOptions::clone(&pool.connect_options());
                let mut first =
                    <sqlx::PgConnection as sqlx::Connection>::connect_with(&options).await?;
                let mut second =
                    <sqlx::PgConnection as sqlx::Connection>::connect_with(&options).await?;
                let shared = pooler::share_server_sessions(&mut first, &mut second).await;
                let _ = sqlx::Connection::close(first).await;
                let _ = sqlx::Connection::close(second).await;
                shared
            }
        }
    }

    /// Whether named prepared statements — what sqlx sends for every query — survive the
    /// way to the server: always directly; through a transaction pooler only where it keeps
    /// them per client (PgBouncer 1.21+ with `max_prepared_statements`). Two client
    /// connections alternate the same statements; a collision or a lost statement says no.
    pub async fn prepared_statements_survive(&self) -> Result<bool, sqlx::Error> {
        let Db::Postgres(pool) = self else {
            return Ok(true);
        };
        let options = PgConnectOptions::clone(&pool.connect_options());
        let mut first = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options).await?;
        let mut second = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options).await?;
        let mut survived = true;
        'rounds: for round in 0..4i32 {
            for conn in [&mut first, &mut second] {
                let answer: Result<i32, sqlx::Error> = sqlx::query_scalar("SELECT $1::int4 + 1")
                    .bind(round)
                    .fetch_one(&mut *conn)
                    .await;
                match answer {
                    Ok(_) => {}
                    Err(err) if pooler::statement_lost(&err) => {
                        survived = false;
                        break 'rounds;
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        let _ = sqlx::Connection::close(first).await;
        let _ = sqlx::Connection::close(second).await;
        Ok(survived)
    }

    /// Whether this is a hot standby (PostgreSQL in recovery): it serves reads, and refuses
    /// every write. A SQLite file never is.
    pub async fn is_hot_standby(&self) -> Result<bool, sqlx::Error> {
        match self {
            Db::Sqlite(_) => Ok(false),
            Db::Postgres(pool) => {
                sqlx::query_scalar("SELECT pg_is_in_recovery()")
                    .fetch_one(pool)
                    .await
            }
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
        }
    }

    /// Starts a transaction on either engine.
    pub async fn begin(&self) -> Result<Tx<'static>, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Starts a read-only transaction that reads one snapshot: on PostgreSQL `REPEATABLE
    /// READ, READ ONLY`; on SQLite a deferred `BEGIN`, whose first read fixes the snapshot
    /// (WAL) and which takes no write lock.
    pub async fn begin_read_snapshot(&self) -> Result<Tx<'static>, sqlx::Error> {
        let mut tx = self.begin().await?;
        if let Tx::Postgres(conn) = &mut tx {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut **conn)
                .await?;
        }
        Ok(tx)
    }

    /// Starts a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`: a deferred
    /// transaction that reads first and writes later cannot upgrade its read lock while
    /// another connection commits (SQLITE_BUSY without waiting, seen as "database is
    /// locked" under concurrent writers); taking the write lock up front makes it wait on
    /// the busy timeout instead. On PostgreSQL it is a plain `BEGIN`.
    pub async fn begin_write(&self) -> Result<Tx<'static>, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Runs a statement that needs no result and no binds (DDL, `SELECT 1`).
    pub async fn execute_plain(&self, sql: &str) -> Result<u64, sqlx::Error> {
        on_pool!(self, pool => {
            let result = sqlx::raw_sql(sql).execute(pool).await?;
            Ok(result.rows_affected())
        })
    }

    /// Closes every connection of the pool. A connection that was on its way back to the
    /// pool while `close` ran can survive the first pass (seen with sqlx 0.8 after a COPY), so
    /// this waits for the pool to be empty, briefly, closing again. A PostgreSQL template copy
    /// (rehearse) needs the source database to have no session left.
    pub async fn close(&self) {
        on_pool!(self, pool => {
            for _ in 0..50 {
                pool.close().await;
                if pool.size() == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    }
}

fn describe_connect_error(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => first_line(db.message()),
        sqlx::Error::Io(io) => first_line(&io.to_string()),
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".into(),
        other => first_line(&other.to_string()),
    }
}

/// A transaction on one of the two engines. Store functions take `&mut Tx` from their caller
/// so that a service can make several writes atomic.
#[derive(Debug)]
pub enum Tx<'c> {
    Sqlite(sqlx::Transaction<'c, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'c, sqlx::Postgres>),
}

impl Tx<'_> {
    pub fn engine(&self) -> Engine {
        match self {
            Tx::Sqlite(_) => Engine::Sqlite,
            Tx::Postgres(_) => Engine::Postgres,
        }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await,
            Tx::Postgres(tx) => tx.rollback().await,
        }
    }
}

/// Runs `$body` with `$pool` bound to the engine's pool; the body is compiled once per engine.
#[macro_export]
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$conn` bound to the transaction's connection (`&mut *tx`), compiled once
/// per engine. Use it as `sqlx::query(..).execute(&mut **$conn)`.
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::db::Tx::Sqlite($conn) => $body,
            $crate::db::Tx::Postgres($conn) => $body,
        }
    };
}

pub use crate::{on_pool, on_tx};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_engine() {
        assert_eq!(
            DbUrl::parse("sqlite://flowkey.db").unwrap().engine(),
            Engine::Sqlite
        );
        assert_eq!(
            DbUrl::parse("postgres://u@127.0.0.1/db").unwrap().engine(),
            Engine::Postgres
        );
        assert_eq!(
            DbUrl::parse("postgresql://u@127.0.0.1/db")
                .unwrap()
                .engine(),
            Engine::Postgres
        );
        assert!(matches!(
            DbUrl::parse("mysql://u@h/db"),
            Err(DbError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            DbUrl::parse("flowkey.db"),
            Err(DbError::InvalidUrl { .. })
        ));
    }

    /// A SQLite URL's `mode` is honoured and shown; any other parameter is refused rather
    /// than dropped (a `?mode=ro` once opened the file read-write).
    #[test]
    fn a_sqlite_url_keeps_its_mode_and_refuses_other_parameters() {
        let mode = |url: &str| match DbUrl::parse(url) {
            Ok(DbUrl::Sqlite { mode, .. }) => Ok(mode),
            Ok(other) => panic!("{other:?}"),
            Err(err) => Err(err.to_string()),
        };
        assert_eq!(mode("sqlite://f.db"), Ok(SqliteMode::ReadWriteCreate));
        assert_eq!(
            mode("sqlite://f.db?mode=rwc"),
            Ok(SqliteMode::ReadWriteCreate)
        );
        assert_eq!(mode("sqlite://f.db?mode=rw"), Ok(SqliteMode::ReadWrite));
        assert_eq!(mode("sqlite:///tmp/f.db?mode=ro"), Ok(SqliteMode::ReadOnly));
        assert_eq!(
            DbUrl::parse("sqlite:///tmp/f.db?mode=ro")
                .unwrap()
                .to_string(),
            "sqlite:///tmp/f.db?mode=ro"
        );
        for url in [
            "sqlite://f.db?cache=shared",
            "sqlite://f.db?mode=memory",
            "sqlite://f.db?mode=ro&x=1",
        ] {
            let err = mode(url).unwrap_err();
            assert!(
                err.contains("unsupported SQLite URL parameter"),
                "{url}: {err}"
            );
        }
    }

    /// SQLite pools run no maintenance task (see `connect_with`): nothing reaps a connection.
    #[tokio::test]
    async fn sqlite_pools_never_reap_their_connections() {
        let dir = tempfile::tempdir().unwrap();
        let file = format!("sqlite://{}", dir.path().join("f.db").display());
        for url in ["sqlite://:memory:", file.as_str()] {
            let Db::Sqlite(pool) = Db::connect(url).await.unwrap() else {
                panic!("{url} is not SQLite")
            };
            assert_eq!(pool.options().get_idle_timeout(), None, "{url}");
            assert_eq!(pool.options().get_max_lifetime(), None, "{url}");
            pool.close().await;
        }
    }

    #[test]
    fn passwords_are_redacted() {
        let shown = DbUrl::parse("postgres://me:secret@h/db")
            .unwrap()
            .to_string();
        assert!(!shown.contains("secret"), "{shown}");
    }
}
