//! The whole lifecycle on platform-shaped databases (`../shared/legacy/` +
//! `../shared/platform/`), on SQLite and on PostgreSQL in `public` and in a schema
//! `migration`: after every command, every object flowkey does not own is what it was.

use std::collections::BTreeSet;
use std::time::Duration;

use flowkey::db::Engine;
use flowkey::migrate::flow::verify;
use flowkey::migrate::{Migrator, RunOptions};

use crate::support::harness::TestDb;
use crate::support::platform::{
    assert_same, migrated_tables, other_schemas, platform_db, shared, snapshot, Placement,
};

fn quick() -> RunOptions {
    RunOptions {
        lock_wait: Duration::from_secs(30),
        ..RunOptions::default()
    }
}

async fn lifecycle(test_db: TestDb) {
    let db = test_db.connect().await;
    let migrated = migrated_tables(&db).await;
    let none = BTreeSet::new();
    let whole_before = snapshot(&test_db.url, &none).await;
    let others_before = snapshot(&test_db.url, &migrated).await;
    assert!(
        whole_before
            .iter()
            .any(|line| line.contains("alembic_version")),
        "the fixture is loaded"
    );
    let migrator = Migrator::new(db.clone(), quick());
    // flowkey reads the platform's own Alembic head (`flowkey current` shows it) and never
    // writes it.
    let alembic_head = Some(vec!["add_v3_persistence_001".to_owned()]);
    assert_eq!(migrator.alembic_revisions().await.unwrap(), alembic_head);

    let summary = migrator
        .upgrade("head")
        .await
        .expect("a platform database is adopted");
    assert_eq!(summary.adopted, Some("legacy"));
    assert_same(
        &others_before,
        &snapshot(&test_db.url, &migrated).await,
        "after upgrade head",
    );
    let report = verify(&db).await.unwrap();
    assert!(report.is_ok(), "{report:?}");

    migrator.downgrade("-1").await.unwrap();
    assert_same(
        &others_before,
        &snapshot(&test_db.url, &migrated).await,
        "after downgrade -1",
    );
    migrator.downgrade("legacy").await.unwrap();
    assert_same(
        &whole_before,
        &snapshot(&test_db.url, &none).await,
        "after downgrade legacy",
    );

    migrator.upgrade("head").await.expect("re-upgrade");
    assert_same(
        &others_before,
        &snapshot(&test_db.url, &migrated).await,
        "after re-upgrade",
    );
    migrator.downgrade("legacy").await.unwrap();
    assert_same(
        &whole_before,
        &snapshot(&test_db.url, &none).await,
        "after the second downgrade",
    );
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_leaves_the_rest_of_a_sqlite_platform_as_it_was() {
    lifecycle(platform_db(Engine::Sqlite, Placement::Public).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_leaves_the_rest_of_a_postgres_platform_in_public_as_it_was() {
    lifecycle(platform_db(Engine::Postgres, Placement::Public).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_leaves_the_rest_of_a_postgres_platform_in_a_schema_as_it_was() {
    lifecycle(platform_db(Engine::Postgres, Placement::Migration).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_schema_with_the_same_tables_is_never_touched() {
    let test_db = platform_db(Engine::Postgres, Placement::Migration).await;
    let public = test_db.url.split('?').next().unwrap().to_owned();
    // The same legacy tables in `public`, with the rows flowkey would link if it looked there.
    let public_db = flowkey::db::Db::connect(&public).await.unwrap();
    public_db
        .execute_plain(&shared("legacy/postgres.sql"))
        .await
        .unwrap();
    public_db.close().await;
    let db = test_db.connect().await;
    let before = other_schemas(&db, "migration").await;
    let public_before = snapshot(&public, &BTreeSet::new()).await;
    let migrator = Migrator::new(db.clone(), quick());
    migrator.upgrade("head").await.unwrap();
    assert_eq!(before, other_schemas(&db, "migration").await);
    // The dual-write triggers look up flows in `migration` whatever the writer's path.
    let flowkey::db::Db::Postgres(pool) = &db else {
        unreachable!()
    };
    let configs: Vec<(String, Option<Vec<String>>)> = sqlx::query_as(
        "SELECT p.proname::text, p.proconfig FROM pg_proc p JOIN pg_namespace n \
         ON n.oid = p.pronamespace WHERE p.proname LIKE 'flowkey_dual_write_%' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(!configs.is_empty());
    for (name, config) in configs {
        assert_eq!(
            config,
            Some(vec!["search_path=migration".to_owned()]),
            "{name}"
        );
    }
    assert_same(
        &public_before,
        &snapshot(&public, &BTreeSet::new()).await,
        "public",
    );
    migrator.downgrade("legacy").await.unwrap();
    assert_eq!(before, other_schemas(&db, "migration").await);
    assert_same(
        &public_before,
        &snapshot(&public, &BTreeSet::new()).await,
        "public",
    );
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_shows_the_platforms_alembic_revision_in_the_schema_given_by_option() {
    let test_db = platform_db(Engine::Postgres, Placement::Migration).await;
    let public = test_db.url.split('?').next().unwrap().to_owned();
    let output = assert_cmd::Command::cargo_bin("flowkey")
        .unwrap()
        .args([
            "--database-url",
            &public,
            "--schema",
            "migration",
            "current",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("base")
            && stdout.contains("alembic")
            && stdout.contains("add_v3_persistence_001"),
        "{stdout}"
    );
    // Without the option the connection looks in `public`, where the platform is not.
    let output = assert_cmd::Command::cargo_bin("flowkey")
        .unwrap()
        .args(["--database-url", &public, "current"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&output.stdout).contains("alembic"));
}

/// `rehearse` only reads the platform database; a run interrupted half way (a lost
/// connection after a step, up and down) and rerun ends with the rest of the platform as it
/// was.
async fn rehearsed_and_interrupted(test_db: TestDb) {
    use crate::support::reliability_support::{
        run_ok, run_with_faults, DOWNGRADE_LEGACY, UPGRADE_HEAD,
    };
    // A template copy needs no other session on the source: connect after the rehearsal.
    let probe = test_db.connect().await;
    let migrated = migrated_tables(&probe).await;
    probe.close().await;
    let none = BTreeSet::new();
    let whole_before = snapshot(&test_db.url, &none).await;
    let others_before = snapshot(&test_db.url, &migrated).await;

    let rehearsal = flowkey::migrate::flow::rehearse(&test_db.url, &quick())
        .await
        .expect("rehearsal runs");
    assert!(rehearsal.is_ok(), "{rehearsal}");
    assert_same(
        &whole_before,
        &snapshot(&test_db.url, &none).await,
        "after rehearse",
    );
    let db = test_db.connect().await;

    let (status, stderr) = run_with_faults(
        &test_db.url,
        UPGRADE_HEAD,
        "runner::after_step=5*off->return(connection_lost)",
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    run_ok(&test_db.url, UPGRADE_HEAD);
    assert_same(
        &others_before,
        &snapshot(&test_db.url, &migrated).await,
        "resumed upgrade",
    );
    assert!(verify(&db).await.unwrap().is_ok());

    let (status, stderr) = run_with_faults(
        &test_db.url,
        DOWNGRADE_LEGACY,
        "runner::after_step=3*off->return(connection_lost)",
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    run_ok(&test_db.url, DOWNGRADE_LEGACY);
    assert_same(
        &whole_before,
        &snapshot(&test_db.url, &none).await,
        "resumed downgrade",
    );
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_platform_survives_rehearse_and_an_interrupted_run() {
    rehearsed_and_interrupted(platform_db(Engine::Sqlite, Placement::Public).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_platform_in_public_survives_rehearse_and_an_interrupted_run() {
    rehearsed_and_interrupted(platform_db(Engine::Postgres, Placement::Public).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_platform_in_a_schema_survives_rehearse_and_an_interrupted_run() {
    rehearsed_and_interrupted(platform_db(Engine::Postgres, Placement::Migration).await).await;
}
