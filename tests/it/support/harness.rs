//! Gives every test its own fresh database, on SQLite (a temp file) and on PostgreSQL (a new
//! database on the server named by `FLOWKEY_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`). PostgreSQL is never skipped: if it is
//! configured but unreachable, the test fails and says so.

// Not every test module uses every helper.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use flowkey::db::{Db, Engine};

pub const DEFAULT_PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn pg_admin_url() -> String {
    std::env::var("FLOWKEY_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_ADMIN_URL.to_owned())
}

/// A database that exists for one test and is removed when the test ends.
pub struct TestDb {
    pub engine: Engine,
    pub url: String,
    /// Keeps the SQLite file's directory alive.
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

/// Every log statement of flowkey is formatted, as under `RUST_LOG=flowkey=trace`, and
/// thrown away: without a subscriber, `tracing` never evaluates a statement's arguments, and
/// an argument that panics (a text cut inside a character) would first show in production.
fn format_every_log_statement() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("flowkey=trace,warn"))
            .with_writer(std::io::sink)
            .try_init();
    });
}

impl TestDb {
    pub async fn fresh(engine: Engine) -> TestDb {
        format_every_log_statement();
        let dir = tempfile::tempdir().expect("temp dir");
        match engine {
            Engine::Sqlite => {
                let path = dir.path().join("test.db");
                TestDb {
                    engine,
                    url: format!("sqlite://{}", path.display()),
                    dir,
                    pg_name: None,
                }
            }
            Engine::Postgres => {
                static COUNTER: AtomicU32 = AtomicU32::new(0);
                let name = format!(
                    "flowkey_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed),
                    rand_suffix()
                );
                let admin = pg_admin_url();
                let mut conn = connect_admin(&admin).await;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|err| panic!("cannot create test database {name}: {err}"));
                let url = with_database(&admin, &name);
                TestDb {
                    engine,
                    url,
                    dir,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// Opens a pool on this test's database.
    pub async fn connect(&self) -> Db {
        Db::connect(&self.url)
            .await
            .unwrap_or_else(|err| panic!("cannot open test database: {err}"))
    }

    /// Runs a whole SQL script (for instance the shared legacy schema) on this database.
    pub async fn run_script(&self, sql: &str) {
        let db = self.connect().await;
        db.execute_plain(sql).await.expect("script runs");
        db.close().await;
    }
}

async fn connect_admin(admin: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(admin)
        .await
        .unwrap_or_else(|err| {
            panic!(
                "PostgreSQL is required by the test suite but {admin} does not answer: {err}\n\
             start one (see .ci/run) or point FLOWKEY_TEST_PG_URL at a server"
            )
        })
}

fn rand_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// The admin URL with its database name replaced.
pub fn with_database(admin: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin).expect("FLOWKEY_TEST_PG_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        let admin = pg_admin_url();
        // Drop runs outside any runtime guarantee: use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Declares one test per engine, each on its own fresh database:
/// `both_engines!(name_that_reads_as_a_sentence, async_fn_taking_TestDb);`
#[macro_export]
macro_rules! both_engines {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body(
                    $crate::support::harness::TestDb::fresh(flowkey::db::Engine::Sqlite).await,
                )
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body(
                    $crate::support::harness::TestDb::fresh(flowkey::db::Engine::Postgres).await,
                )
                .await
            }
        }
    };
}
