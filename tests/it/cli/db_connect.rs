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
