//! Health, readiness, metrics, OpenAPI, legacy traffic, and one run through a real socket.

// Test bodies are plain async fns run by `both_engines!`, so clippy does not see them as
// tests: allow the unwraps it allows in tests.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};

use crate::both_engines;
use crate::support::harness::TestDb;
use crate::support::service_support::*;
use flowkey::migrate::{Migrator, RunOptions};

async fn ops_routes(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let state = state(&db);
    let get = |uri: &str| Request::builder().uri(uri).body(Body::empty()).unwrap();
    assert_eq!(send(&state, get("/health")).await.status, StatusCode::OK);
    let ready = send(&state, get("/ready")).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);

    let migrated = migrated_session(&db, tenant).await;
    let v1 = send(
        &state,
        request(
            Method::GET,
            &format!("/api/v1/data-import/import/{}", migrated.session),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(v1.status, StatusCode::OK);
    let metrics = send(&state, get("/metrics")).await;
    assert_eq!(metrics.status, StatusCode::OK);
    for name in [
        "flowkey_http_requests_total",
        "flowkey_http_request_duration_seconds_bucket",
        "flowkey_legacy_id_hits_total",
        "flowkey_resolve_cache_misses_total",
    ] {
        assert!(metrics.text.contains(name), "{name} in /metrics");
    }
    assert!(metrics
        .text
        .contains("route=\"/api/v1/data-import/import/{session_id}\""));

    let traffic = send(
        &state,
        admin(
            Method::GET,
            &format!("/api/admin/legacy-traffic?tenant={tenant}"),
            None,
        ),
    )
    .await;
    assert_eq!(traffic.status, StatusCode::OK, "{}", traffic.text);
    assert_eq!(
        traffic.data()[0]["route"],
        "/api/v1/data-import/import/{session_id}"
    );
    assert_eq!(traffic.data()[0]["hits"], 1);
    let stats = send(
        &state,
        admin(Method::GET, "/api/admin/mapping-statistics", None),
    )
    .await;
    assert_eq!(stats.data()["sessions_mapped"], 1);

    let openapi = send(&state, get("/openapi.json")).await;
    assert_eq!(openapi.status, StatusCode::OK);
    for path in [
        "/api/v3/data-import/imports",
        "/api/v1/data-import/store-import",
        "/api/v3/discovery-flow/flows/{flow_id}",
    ] {
        assert!(
            openapi.body["paths"].get(path).is_some(),
            "{path} in openapi"
        );
    }
}
both_engines!(
    health_ready_metrics_openapi_and_legacy_traffic_answer,
    ops_routes
);

async fn not_ready_before_head(test_db: TestDb) {
    let (_keep, db) = legacy_db(test_db.engine).await;
    let state = state(&db);
    let ready = send(
        &state,
        Request::builder()
            .uri("/ready")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.error_code(), "schema_not_at_head");
    assert!(!ready.body["error"]["details"]["missing"]
        .as_array()
        .unwrap()
        .is_empty());
}
both_engines!(
    ready_is_503_until_the_schema_is_at_head,
    not_ready_before_head
);

/// A running server whose schema is taken below head (`downgrade flow_constraints`) answers 503
/// `schema_not_at_head` on every /api route once it has checked the schema (its poll or a
/// `/ready`), keeps `/health` at 200, and serves again once the schema is back at head. A
/// table taken away between two checks is a 503 of the same code, never a 500.
async fn api_follows_the_schema(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let state = state(&db);
    let get = |uri: &str| Request::builder().uri(uri).body(Body::empty()).unwrap();
    let flows = || request(Method::GET, "/api/v3/discovery-flow/flows", tenant, None);
    let traffic = || admin(Method::GET, "/api/admin/legacy-traffic", None);
    assert_eq!(send(&state, flows()).await.status, StatusCode::OK);

    let migrator = Migrator::new(db.clone(), RunOptions::default());
    migrator.downgrade("-1").await.unwrap();
    // The revision just below head (head is not the chain's last: the contract follows it).
    let chain = flowkey::migrate::revisions::all();
    let head_at = chain
        .iter()
        .position(|r| r.id == flowkey::migrate::revisions::head().id)
        .unwrap();
    let below_head = chain[head_at - 1].id;
    let ready = send(&state, get("/ready")).await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.text
    );
    assert_eq!(ready.error_code(), "schema_not_at_head");
    for answer in [send(&state, flows()).await, send(&state, traffic()).await] {
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            answer.text
        );
        assert_eq!(answer.error_code(), "schema_not_at_head");
        assert_eq!(
            answer.body["error"]["details"]["recorded_revision"],
            below_head
        );
    }
    assert_eq!(send(&state, get("/health")).await.status, StatusCode::OK);

    migrator.upgrade("head").await.unwrap();
    // The gate follows its next check: the server's poll, here called directly.
    state.schema.refresh().await.unwrap();
    assert_eq!(send(&state, flows()).await.status, StatusCode::OK);
    assert_eq!(send(&state, get("/ready")).await.status, StatusCode::OK);

    db.execute_plain("ALTER TABLE flowkey_legacy_traffic RENAME TO flowkey_traffic_away")
        .await
        .unwrap();
    let gone = send(&state, traffic()).await;
    assert_eq!(
        gone.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        gone.text
    );
    assert_eq!(gone.error_code(), "schema_not_at_head");
    db.execute_plain("ALTER TABLE flowkey_traffic_away RENAME TO flowkey_legacy_traffic")
        .await
        .unwrap();
    assert_eq!(send(&state, traffic()).await.status, StatusCode::OK);
}
both_engines!(
    the_api_answers_503_while_the_schema_is_below_head_and_serves_again_at_head,
    api_follows_the_schema
);

async fn real_socket(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let state = state(&db);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, flowkey::http::app(state))
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    let client = reqwest::Client::new();
    let base = format!("http://{address}");
    let created = client
        .post(format!("{base}/api/v3/data-import/imports"))
        .header("x-client-account-id", tenant.client_account_id.to_string())
        .header("x-engagement-id", tenant.engagement_id.to_string())
        .json(&serde_json::json!({ "file_data": cmdb_rows(3) }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let body: serde_json::Value = created.json().await.unwrap();
    let flow_id = body["data"]["flow_id"].as_str().unwrap();
    let flow = client
        .get(format!("{base}/api/v3/discovery-flow/flows/{flow_id}"))
        .header("x-client-account-id", tenant.client_account_id.to_string())
        .header("x-engagement-id", tenant.engagement_id.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(flow.status(), reqwest::StatusCode::OK);
    let health = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
both_engines!(
    the_api_serves_over_a_real_socket_and_shuts_down_gracefully,
    real_socket
);

/// The database going away in the middle of the server's schema check (faults injected in
/// the real `flowkey serve`) is not a schema below head. A running server whose checks lose
/// the database at the recorded revision's read answers `/ready` with 503
/// `database_unavailable` and keeps its verdict, so the API goes on serving; a check that
/// took the failure for "no revision recorded" would close a healthy server. At start, a
/// probe of a head table that loses the database stops `serve` with "cannot read the
/// database schema", not "refusing to serve" a schema it never saw.
async fn a_check_losing_its_database_keeps_the_verdict(test_db: TestDb) {
    use crate::support::reliability_support::run_with_faults;
    use crate::support::served::serve_with_env;
    let (keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let migrated = migrated_session(&db, tenant).await;
    let client = reqwest::Client::new();
    // The first check (at start) reads the revision; every later one loses the database.
    let server = serve_with_env(
        &keep.url,
        &[],
        &[(
            "FAILPOINTS",
            "serving::before_revision_read=1*off->return(connection_lost)",
        )],
    )
    .await;
    let ready = client
        .get(format!("{}/ready", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(
        body["error"]["code"],
        serde_json::json!("database_unavailable"),
        "{body}"
    );
    let v1 = client
        .get(format!(
            "{}/api/v1/data-import/import/{}",
            server.base, migrated.session
        ))
        .header("x-client-account-id", tenant.client_account_id.to_string())
        .header("x-engagement-id", tenant.engagement_id.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(v1.status().as_u16(), 200);
    // Stopped, not killed: a killed process writes no coverage profile.
    server.stop_gracefully();

    let (status, stderr) = run_with_faults(
        &keep.url,
        &["serve", "--bind", "127.0.0.1:0"],
        "serving::before_probe=return(connection_lost)",
    );
    assert!(!status.success());
    assert!(
        stderr.contains("cannot read the database schema")
            && stderr.contains("connection reset by peer (injected at serving::before_probe)")
            && !stderr.contains("refusing to serve"),
        "{stderr}"
    );
}
both_engines!(
    a_schema_check_that_loses_its_database_keeps_the_server_serving,
    a_check_losing_its_database_keeps_the_verdict
);
