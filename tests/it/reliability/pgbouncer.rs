//! Through a real PgBouncer (the distribution's, started by the test): migrations refuse a
//! transaction pooler before changing anything and run through a session pooler; the
//! service refuses to start behind a transaction pooler that loses prepared statements
//! (PgBouncer before 1.21, as the distribution ships) and serves through a session pooler
//! under concurrent load with no error.

use std::time::Duration;

use flowkey::db::Engine;
use flowkey::seed::SeedConfig;

use crate::support::flow_support::{error_line, schema_dump};
use crate::support::harness::TestDb;
use crate::support::pgbouncer::{PgBouncer, PoolMode};
use crate::support::reliability_support::{run_ok, run_to_end, seeded};
use crate::support::served::{call, serve};

/// flowkey's own books: the revisions recorded and the audit log's length.
async fn books(db: &flowkey::db::Db) -> (Vec<String>, i64) {
    flowkey::on_pool!(db, pool => {
        let versions: Vec<String> = sqlx::query_scalar(
            "SELECT revision || ' ' || dirty::text || ' ' || steps_done::text FROM flowkey_versions ORDER BY position",
        )
        .fetch_all(pool)
        .await
        .expect("versions");
        let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM flowkey_audit_log")
            .fetch_one(pool)
            .await
            .expect("audit");
        (versions, audit)
    })
}

#[tokio::test]
async fn upgrade_through_a_transaction_pooler_is_refused_and_changes_nothing() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    seeded(&test_db, &SeedConfig::default()).await;
    let db = test_db.connect().await;
    let before = (schema_dump(&db).await, books(&db).await);
    let bouncer = PgBouncer::start(PoolMode::Transaction);
    let pooled = bouncer.url_for(&test_db.url);
    for args in [
        &["upgrade", "head", "--no-progress"][..],
        &["upgrade", "flow_mapping", "--no-progress"][..],
    ] {
        let (status, stderr) = run_to_end(&pooled, args);
        assert_eq!(status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            error_line(&stderr).contains("transaction pooler"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!((schema_dump(&db).await, books(&db).await), before);
    db.close().await;
}

#[tokio::test]
async fn upgrade_through_a_session_pooler_runs() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    seeded(&test_db, &SeedConfig::default()).await;
    let bouncer = PgBouncer::start(PoolMode::Session);
    let pooled = bouncer.url_for(&test_db.url);
    run_ok(&pooled, &["upgrade", "head", "--no-progress"]);
    run_ok(&test_db.url, &["verify"]);
}

#[tokio::test]
async fn serve_through_a_session_pooler_under_concurrent_load() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    seeded(&test_db, &SeedConfig::default()).await;
    run_ok(&test_db.url, &["upgrade", "head", "--no-progress"]);
    let db = test_db.connect().await;
    let (tenant, flow, session): (String, String, String) = flowkey::on_pool!(&db, pool => {
        sqlx::query_as(
            "SELECT f.client_account_id::text || ' ' || f.engagement_id::text, f.flow_id::text, m.session_id::text
             FROM session_flow_mapping m JOIN discovery_flows f ON f.flow_id = m.flow_id
             ORDER BY m.session_id LIMIT 1",
        )
        .fetch_one(pool)
        .await
        .expect("a mapped session")
    });
    let (client, engagement) = tenant.split_once(' ').expect("two ids");
    let tenant = (client.to_owned(), engagement.to_owned());
    let paths = [
        "/api/v3/discovery-flow/flows".to_owned(),
        format!("/api/v3/discovery-flow/flows/{flow}"),
        "/api/v3/data-import/imports".to_owned(),
        format!("/api/v1/data-import/import/{session}"),
        format!("/api/v1/unified-discovery/flow/status/{session}"),
    ];
    // The same load through the pooler and directly, same run: the pooler's cost in req/s
    // is printed (a figure, not asserted: the machine is shared).
    let bouncer = PgBouncer::start(PoolMode::Session);
    let pooled = serve(&bouncer.url_for(&test_db.url), &[]).await;
    let direct = serve(&test_db.url, &[]).await;
    let mut rates = Vec::new();
    for (name, server) in [
        ("pooled", pooled),
        ("direct", direct),
        ("pooled", serve(&bouncer.url_for(&test_db.url), &[]).await),
    ] {
        let (failures, requests, elapsed) = load(server, &paths, &tenant).await;
        assert!(
            failures.is_empty(),
            "{name}: {} failed requests: {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
        rates.push((name, requests as f64 / elapsed.as_secs_f64()));
    }
    eprintln!(
        "requests/s through PgBouncer (session mode) and direct, 8 clients, same run: {}",
        rates
            .iter()
            .map(|(name, rate)| format!("{name} {rate:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    db.close().await;
}

#[tokio::test]
async fn serve_refuses_a_transaction_pooler_that_loses_prepared_statements() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    seeded(&test_db, &SeedConfig::default()).await;
    run_ok(&test_db.url, &["upgrade", "head", "--no-progress"]);
    let bouncer = PgBouncer::start(PoolMode::Transaction);
    let (status, stderr) = run_to_end(
        &bouncer.url_for(&test_db.url),
        &["serve", "--bind", "127.0.0.1:0"],
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        error_line(&stderr).contains("transaction pooler"),
        "{stderr}"
    );
}

/// 8 clients, 40 GETs each over `paths`; returns the failures, the requests made and the
/// wall time.
async fn load(
    server: crate::support::served::Server,
    paths: &[String],
    tenant: &(String, String),
) -> (Vec<String>, usize, Duration) {
    let server = std::sync::Arc::new(server);
    let started = std::time::Instant::now();
    let mut clients = Vec::new();
    for worker in 0..8 {
        let server = server.clone();
        let tenant = tenant.clone();
        let paths = paths.to_vec();
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for round in 0..40 {
                let path = &paths[(worker + round) % paths.len()];
                let (status, body) = call(&server, reqwest::Method::GET, path, &tenant).await;
                if !(status == 200 || status == 404) {
                    failures.push(format!("GET {path}: {status} {body}"));
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(
            tokio::time::timeout(Duration::from_secs(120), client)
                .await
                .expect("in time")
                .expect("client"),
        );
    }
    (failures, 8 * 40, started.elapsed())
}
