//! The backfill respects the cluster: it waits between batches while an operator paused it
//! (both engines), while a real streaming standby's replay is stuck (PostgreSQL, a private
//! primary with a `pg_basebackup -R` standby), and while other sessions are busy; it says why
//! in the audit log and resumes by itself. A run killed while it waits resumes to the same end.

use std::process::Child;
use std::time::{Duration, Instant};

use flowkey::db::{Db, Engine};
use flowkey::seed::SeedConfig;

use crate::support::flow_support::{audit_events, schema_dump};
use crate::support::harness::TestDb;
use crate::support::private_postgres::PrivateCluster;
use crate::support::reliability_support::{flowkey, run_ok, seeded, table_exists};

/// Small batches, a quick second look, no progress bar: many chances to wait.
fn throttled_upgrade(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "upgrade",
        "head",
        "--no-progress",
        "--initial-batch-size",
        "10",
        "--batch-target-ms",
        "1",
        "--throttle-poll-ms",
        "50",
        "--lock-wait-secs",
        "60",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args
}

fn spawn(url: &str, args: &[String]) -> Child {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    flowkey(url, &args).spawn().expect("flowkey starts")
}

/// Waits for a `throttled` audit event for `reason` and returns its details.
async fn throttled_for(db: &Db, child: &mut Child, reason: &str) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let events = audit_events(db, "throttled").await;
        if let Some(event) = events.into_iter().find(|event| event["reason"] == reason) {
            return event;
        }
        if let Some(status) = child.try_wait().expect("child status") {
            panic!("the run ended ({status}) without waiting");
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no throttled event after 90 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_success(mut child: Child, limit: Duration) {
    let started = Instant::now();
    while child.try_wait().expect("child status").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "the run still waits after {limit:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = child.wait_with_output().expect("output");
    assert!(
        output.status.success(),
        "the run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn linked_imports(db: &Db) -> i64 {
    flowkey::on_pool!(db, pool => {
        sqlx::query_scalar("SELECT count(*) FROM raw_import_records WHERE flow_id IS NOT NULL")
            .fetch_one(pool)
            .await
            .expect("count")
    })
}

async fn paused_then_killed_then_resumed(engine: Engine) {
    let test_db = TestDb::fresh(engine).await;
    seeded(&test_db, &SeedConfig::default()).await;
    let db = test_db.connect().await;
    run_ok(&test_db.url, &["throttle", "pause", "--note", "drill"]);

    let mut child = spawn(&test_db.url, &throttled_upgrade(&[]));
    let event = throttled_for(&db, &mut child, "paused").await;
    assert_eq!(event["note"], "drill", "{event}");
    // While paused, no batch runs.
    let linked = linked_imports(&db).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        linked_imports(&db).await,
        linked,
        "a batch ran while paused"
    );
    assert!(
        child.try_wait().expect("status").is_none(),
        "the run stopped waiting"
    );

    // Killed while it waits, then resumed by the operator and rerun: it reaches head.
    child.kill().expect("kill");
    child.wait().expect("reaped");
    run_ok(&test_db.url, &["throttle", "resume"]);
    let rerun = throttled_upgrade(&[]);
    let rerun: Vec<&str> = rerun.iter().map(String::as_str).collect();
    run_ok(&test_db.url, &rerun);
    run_ok(&test_db.url, &["verify"]);
    assert!(linked_imports(&db).await > 0);
}

#[tokio::test]
async fn an_operator_pause_holds_the_backfill_and_a_kill_while_waiting_resumes_sqlite() {
    paused_then_killed_then_resumed(Engine::Sqlite).await;
}

#[tokio::test]
async fn an_operator_pause_holds_the_backfill_and_a_kill_while_waiting_resumes_postgres() {
    paused_then_killed_then_resumed(Engine::Postgres).await;
}

async fn looking_creates_nothing(engine: Engine) {
    let test_db = TestDb::fresh(engine).await;
    seeded(&test_db, &SeedConfig::default()).await;
    let db = test_db.connect().await;
    let before = schema_dump(&db).await;
    run_ok(&test_db.url, &["throttle", "status"]);
    assert_eq!(schema_dump(&db).await, before);
    assert!(!table_exists(&db, "flowkey_throttle").await);
}

#[tokio::test]
async fn throttle_status_changes_nothing_sqlite() {
    looking_creates_nothing(Engine::Sqlite).await;
}

#[tokio::test]
async fn throttle_status_changes_nothing_postgres() {
    looking_creates_nothing(Engine::Postgres).await;
}

async fn run_sql(url: &str, sql: &str) {
    let db = Db::connect(url).await.expect("connect");
    flowkey::on_pool!(&db, pool => {
        sqlx::query(sql).execute(pool).await.expect("statement");
    });
    db.close().await;
}

#[tokio::test]
async fn a_stuck_standby_holds_the_backfill_until_it_replays_again() {
    let primary = PrivateCluster::start();
    let url = primary.create_database("lagging").await;
    let standby = primary.start_standby();
    let standby_url = standby.url("postgres");
    let db = Db::connect(&url).await.expect("connect");
    flowkey::seed::seed(&db, &SeedConfig::default())
        .await
        .expect("seed");
    // The standby streams, then stops replaying (WAL still arrives and is acknowledged).
    let started = Instant::now();
    loop {
        let streaming: i64 = flowkey::on_pool!(&db, pool => {
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
                .fetch_one(pool)
                .await
                .expect("pg_stat_replication")
        });
        if streaming == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the standby never streamed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    run_sql(&standby_url, "SELECT pg_wal_replay_pause()").await;
    // WAL the standby receives but does not replay, and time for the lag to pass the limit
    // before the backfill's first look (a small backfill could otherwise finish first).
    run_sql(
        &url,
        "CREATE TABLE lag_probe AS SELECT generate_series(1, 1000) AS n",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut child = spawn(&url, &throttled_upgrade(&["--max-replica-lag", "0.5"]));
    let event = throttled_for(&db, &mut child, "replica_lag").await;
    assert!(event["lag_seconds"].as_f64().expect("lag") > 0.5, "{event}");
    let linked = linked_imports(&db).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        linked_imports(&db).await,
        linked,
        "a batch ran while the standby was stuck"
    );

    run_sql(&standby_url, "SELECT pg_wal_replay_resume()").await;
    wait_for_success(child, Duration::from_secs(120)).await;
    assert!(!audit_events(&db, "throttle_lifted").await.is_empty());
    db.close().await;
}

#[tokio::test]
async fn busy_sessions_hold_the_backfill_until_they_finish() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    seeded(&test_db, &SeedConfig::default()).await;
    let db = test_db.connect().await;
    // Held at the start of the backfill by the operator, so that the busy client below (a
    // statement holds a snapshot) never meets the expand step's concurrent index builds.
    run_ok(&test_db.url, &["throttle", "pause"]);
    let mut child = spawn(
        &test_db.url,
        &throttled_upgrade(&["--max-load", "0", "--max-replica-lag", "0"]),
    );
    throttled_for(&db, &mut child, "paused").await;
    // Another client busy for as long as the test wants: a sleep it cancels.
    let sleeper_url = test_db.url.clone();
    let sleeper = tokio::spawn(async move {
        let busy = Db::connect(&sleeper_url).await.expect("connect");
        let result = flowkey::on_pool!(&busy, pool => {
            sqlx::query("SELECT pg_sleep(120), 'flowkey-throttle-test'")
                .execute(pool)
                .await
                .map(|_| ())
        });
        busy.close().await;
        result
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    run_ok(&test_db.url, &["throttle", "resume"]);
    let event = throttled_for(&db, &mut child, "load").await;
    assert!(
        event["busy_sessions"].as_i64().expect("count") >= 1,
        "{event}"
    );
    let linked = linked_imports(&db).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        linked_imports(&db).await,
        linked,
        "a batch ran while sessions were busy"
    );
    flowkey::on_pool!(&db, pool => {
        sqlx::query(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE '%flowkey-throttle-test%' AND pid <> pg_backend_pid()",
        )
        .execute(pool)
        .await
        .expect("cancel the sleeper");
    });
    assert!(
        sleeper.await.expect("sleeper task").is_err(),
        "the sleep was cancelled"
    );
    wait_for_success(child, Duration::from_secs(120)).await;
    run_ok(&test_db.url, &["verify"]);
}
