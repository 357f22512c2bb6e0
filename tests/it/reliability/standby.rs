//! A hot standby serves reads: `flowkey serve` pointed at a real streaming standby (a private
//! primary and its `pg_basebackup -R` copy) finds it is one, answers every GET of v3 and v1,
//! answers writes with 503 `read_only`, writes nothing, and its schema gate follows the
//! revision as the standby replays it. `--read-only` does the same on any database.

use std::time::{Duration, Instant};

use flowkey::db::{Db, Engine};
use flowkey::seed::SeedConfig;

use crate::support::harness::TestDb;
use crate::support::private_postgres::PrivateCluster;
use crate::support::reliability_support::{run_ok, seeded};
use crate::support::served::{call, serve, Server};

/// A tenant with a flow and a session of it (by the mapping).
async fn tenant_flow_session(db: &Db) -> ((String, String), String, String) {
    let row: (String, String, String, String) = flowkey::on_pool!(db, pool => {
        sqlx::query_as(
            "SELECT f.client_account_id::text, f.engagement_id::text, f.flow_id::text, m.session_id::text
             FROM session_flow_mapping m JOIN discovery_flows f ON f.flow_id = m.flow_id
             ORDER BY m.session_id LIMIT 1",
        )
        .fetch_one(pool)
        .await
        .expect("a mapped session")
    });
    ((row.0, row.1), row.2, row.3)
}

async fn legacy_traffic_rows(db: &Db) -> i64 {
    flowkey::on_pool!(db, pool => {
        sqlx::query_scalar("SELECT count(*) FROM flowkey_legacy_traffic")
            .fetch_one(pool)
            .await
            .expect("count")
    })
}

async fn reads_served_writes_refused(server: &Server, db: &Db) {
    let (tenant, flow, session) = tenant_flow_session(db).await;
    let get = reqwest::Method::GET;
    for path in [
        "/api/v3/discovery-flow/flows".to_owned(),
        format!("/api/v3/discovery-flow/flows/{flow}"),
        format!("/api/v3/discovery-flow/flows/{flow}/status"),
        "/api/v3/data-import/imports".to_owned(),
        format!("/api/v1/data-import/import/{session}"),
        format!("/api/v1/unified-discovery/flow/status/disc_session_{session}"),
    ] {
        let (status, body) = call(server, get.clone(), &path, &tenant).await;
        assert!(
            status == 200 || status == 404,
            "GET {path}: {status} {body}"
        );
        assert_ne!(body["error"]["code"], "read_only", "GET {path}");
    }
    for (method, path) in [
        (
            reqwest::Method::POST,
            "/api/v3/data-import/imports".to_owned(),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v3/discovery-flow/flows/{flow}/pause"),
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/v3/discovery-flow/flows/{flow}"),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/data-import/store-import".to_owned(),
        ),
    ] {
        let (status, body) = call(server, method.clone(), &path, &tenant).await;
        assert_eq!(status, 503, "{method} {path}: {body}");
        assert_eq!(
            body["error"]["code"], "read_only",
            "{method} {path}: {body}"
        );
    }
}

#[tokio::test]
async fn a_hot_standby_serves_reads_and_refuses_writes() {
    let primary = PrivateCluster::start();
    let url = primary.create_database("served").await;
    let db = Db::connect(&url).await.expect("connect");
    flowkey::seed::seed(&db, &SeedConfig::default())
        .await
        .expect("seed");
    run_ok(&url, &["upgrade", "head", "--no-progress"]);
    let standby = primary.start_standby();
    let standby_url = standby.url("served");
    let server = serve(&standby_url, &[]).await;
    reads_served_writes_refused(&server, &db).await;

    // The gate follows the revision as the standby replays it: a downgrade on the primary
    // closes /api on the standby's server, the upgrade opens it again.
    let (tenant, _, _) = tenant_flow_session(&db).await;
    run_ok(&url, &["downgrade", "-1", "--no-progress"]);
    let until = |wanted: u16| {
        let server = &server;
        let tenant = tenant.clone();
        async move {
            let started = Instant::now();
            loop {
                let (status, _) = call(
                    server,
                    reqwest::Method::GET,
                    "/api/v3/discovery-flow/flows",
                    &tenant,
                )
                .await;
                if status == wanted {
                    return;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "never {wanted}: {status}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    until(503).await;
    run_ok(&url, &["upgrade", "head", "--no-progress"]);
    until(200).await;
    db.close().await;
}

#[tokio::test]
async fn read_only_on_a_primary_writes_nothing() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    seeded(&test_db, &SeedConfig::default()).await;
    run_ok(&test_db.url, &["upgrade", "head", "--no-progress"]);
    let db = test_db.connect().await;
    let server = serve(&test_db.url, &["--read-only"]).await;
    reads_served_writes_refused(&server, &db).await;
    // Legacy calls were counted, in /metrics only: stopping the server writes nothing (a
    // server that is not read-only writes them here).
    server.stop_gracefully();
    assert_eq!(legacy_traffic_rows(&db).await, 0);
    db.close().await;
}
