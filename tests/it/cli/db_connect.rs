use flowkey::db::Engine;

use crate::both_engines;
use crate::support::harness::TestDb;

async fn a_fresh_database_answers(test_db: TestDb) {
    let db = test_db.connect().await;
    assert_eq!(db.engine(), test_db.engine);
    db.execute_plain("SELECT 1").await.expect("select 1");
}
both_engines!(
    a_fresh_database_answers_on_its_engine,
    a_fresh_database_answers
);

/// No pool reaps its connections (no idle timeout, no lifetime: sqlx then runs no maintenance
/// task, whose 0.8.6 spin bug hung a CI run); on PostgreSQL, an idle connection the server
/// ended is replaced when next needed, not handed out dead.
async fn pools_reap_nothing_and_replace_a_connection_the_server_ended(test_db: TestDb) {
    let db = test_db.connect().await;
    match &db {
        flowkey::db::Db::Sqlite(pool) => {
            assert_eq!(pool.options().get_idle_timeout(), None);
            assert_eq!(pool.options().get_max_lifetime(), None);
        }
        flowkey::db::Db::Postgres(pool) => {
            assert_eq!(pool.options().get_idle_timeout(), None);
            assert_eq!(pool.options().get_max_lifetime(), None);
            let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(pool)
                .await
                .unwrap();
            // The connection goes back to the pool asynchronously.
            for _ in 0..200 {
                if pool.num_idle() == 1 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            assert_eq!(pool.num_idle(), 1, "one idle connection, the one just used");
            let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&test_db.url)
                .await
                .unwrap();
            let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                .bind(backend)
                .fetch_one(&mut admin)
                .await
                .unwrap();
            assert!(ended);
            let next: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(pool)
                .await
                .expect("the pool replaces the ended connection");
            assert_ne!(next, backend);
            sqlx::Connection::close(admin).await.unwrap();
        }
    }
    db.close().await;
}
both_engines!(
    pools_reap_nothing_and_replace_a_connection_the_server_ended,
    pools_reap_nothing_and_replace_a_connection_the_server_ended
);

#[tokio::test]
async fn sqlite_database_is_created_in_wal_with_foreign_keys() {
    let test_db = TestDb::fresh(Engine::Sqlite).await;
    let db = test_db.connect().await;
    let flowkey::db::Db::Sqlite(pool) = &db else {
        panic!("expected sqlite")
    };
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(fk, 1);
}

#[tokio::test]
async fn unreachable_postgres_is_a_one_line_error() {
    let err = flowkey::db::Db::connect_with(
        "postgres://nobody@127.0.0.1:1/none",
        &flowkey::db::ConnectOptions {
            max_connections: 1,
            connect_timeout: std::time::Duration::from_secs(2),
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(!err.contains('\n'), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
}

/// The bytes of a SQLite database: the file and its write-ahead log.
fn sqlite_bytes(path: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    (
        std::fs::read(path).unwrap(),
        std::fs::read(wal).unwrap_or_default(),
    )
}

/// `?mode=ro` opens a SQLite file read-only: read commands answer, and every command that
/// writes is refused in one line before it changes a byte; a missing file is not created.
/// Any other URL parameter is refused. (Until 2026-12-05 the query was dropped, and a
/// `?mode=ro` URL opened the file read-write: `upgrade head` migrated it.)
#[tokio::test]
async fn a_read_only_sqlite_url_answers_reads_and_refuses_every_write() {
    use crate::support::reliability_support::{run_ok, run_to_end, seeded, small_seed};
    let test_db = TestDb::fresh(Engine::Sqlite).await;
    seeded(&test_db, &small_seed()).await;
    run_ok(&test_db.url, &["upgrade", "flow_mapping", "--no-progress"]);
    let path = test_db.dir.path().join("test.db");
    let before = sqlite_bytes(&path);
    let read_only = format!("{}?mode=ro", test_db.url);

    let (status, stderr) = run_to_end(&read_only, &["history"]);
    assert!(status.success(), "{stderr}");
    for args in [
        &["upgrade", "head", "--no-progress"][..],
        &["downgrade", "legacy", "--no-progress"],
        &["stamp", "head"],
    ] {
        let (status, stderr) = run_to_end(&read_only, args);
        assert!(!status.success(), "{args:?} succeeded read-only");
        assert!(
            stderr.contains("the database is read-only here")
                && stderr.contains("nothing was changed"),
            "{args:?}: {stderr}"
        );
    }
    assert!(
        before == sqlite_bytes(&path),
        "a read-only run changed the file"
    );
    let (status, stderr) = run_to_end(&test_db.url, &["current"]);
    assert!(status.success() && stderr.is_empty(), "{stderr}");

    let missing = test_db.dir.path().join("missing.db");
    let (status, stderr) = run_to_end(
        &format!("sqlite://{}?mode=ro", missing.display()),
        &["current"],
    );
    assert!(
        !status.success() && stderr.contains("cannot connect"),
        "{stderr}"
    );
    assert!(!missing.exists());
    let (status, stderr) = run_to_end(&format!("{}?cache=shared", test_db.url), &["current"]);
    assert!(
        !status.success() && stderr.contains("unsupported SQLite URL parameter \"cache=shared\""),
        "{stderr}"
    );
}
