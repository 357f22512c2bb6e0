//! Whole-service figures on both engines: the overhead of a legacy-id request over the same
//! read by flow id (`GET /api/v1/unified-discovery/flow/status/{session}` with
//! ENABLE_FLOW_ID_PRIMARY=on against `GET /api/v3/discovery-flow/flows/{flow_id}`, same
//! server, interleaved), and requests per second of `GET …/flows/{flow_id}` over a real
//! socket. Run: `cargo bench --bench service_latency`. Figures are for comparison within one
//! run: the machines that run this are shared and noisy.

#[path = "support/engines.rs"]
mod engines;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use flowkey::db::types::DbTime;
use flowkey::db::{on_pool, Db, Engine};
use flowkey::flags::{self, FlagScope, FlowIdPrimary};
use flowkey::http::{app, AppState, ServiceConfig};
use flowkey::ids::{ClientAccountId, EngagementId, TenantId};
use tower::ServiceExt;

/// Requests per measured kind: `cargo bench` passes `--bench`; `cargo test --all-targets`
/// runs this once without it, as a smoke test, and then a few requests are enough.
fn samples() -> usize {
    if std::env::args().any(|arg| arg == "--bench") {
        3_000
    } else {
        100
    }
}
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(3);
const CONCURRENCY: usize = 8;

fn main() {
    engines::on_both_engines("flowkey_bench", |engine, url| async move {
        run(engine, &url).await
    });
}

async fn run(engine: Engine, url: &str) {
    let db = Db::connect(url).await.expect("connect");
    flowkey::migrate::Migrator::new(db.clone(), flowkey::migrate::RunOptions::default())
        .upgrade("head")
        .await
        .expect("upgrade head");
    let tenant = insert_tenant(&db).await;
    let state = AppState::new(db.clone(), ServiceConfig::default()).expect("state");
    let stored = call(
        &state,
        Method::POST,
        "/api/v1/data-import/store-import",
        tenant,
        Some(serde_json::json!({ "file_data": [{"Hostname": "a", "OS": "linux"}] })),
    )
    .await;
    let session = stored["data"]["import_session_id"]
        .as_str()
        .expect("session")
        .to_owned();
    let flow_id = stored["data"]["flow_id"].as_str().expect("flow").to_owned();
    flags::set_flag(&db, FlagScope::Global, FlowIdPrimary::On, "bench")
        .await
        .expect("flag");
    state.refresh_flags().await.expect("refresh");

    let legacy_uri = format!("/api/v1/unified-discovery/flow/status/disc_session_{session}");
    let v3_uri = format!("/api/v3/discovery-flow/flows/{flow_id}");
    for _ in 0..200 {
        call(&state, Method::GET, &legacy_uri, tenant, None).await;
        call(&state, Method::GET, &v3_uri, tenant, None).await;
    }
    let mut legacy = Vec::with_capacity(samples());
    let mut by_flow = Vec::with_capacity(samples());
    for _ in 0..samples() {
        legacy.push(timed(&state, &legacy_uri, tenant).await);
        by_flow.push(timed(&state, &v3_uri, tenant).await);
    }
    let (legacy_p50, legacy_p99) = percentiles(&mut legacy);
    let (flow_p50, flow_p99) = percentiles(&mut by_flow);
    println!(
        "{engine}: legacy-id p50 {legacy_p50:.1} µs p99 {legacy_p99:.1} µs; by flow id p50 {flow_p50:.1} µs p99 {flow_p99:.1} µs; overhead p50 {:.1} µs p99 {:.1} µs",
        legacy_p50 - flow_p50,
        legacy_p99 - flow_p99
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(async move { axum::serve(listener, app(state)).await });
    let client = reqwest::Client::new();
    let url = format!("http://{address}{v3_uri}");
    let deadline = Instant::now() + THROUGHPUT_WINDOW;
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let client = client.clone();
        let url = url.clone();
        workers.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                let response = client
                    .get(&url)
                    .header("x-client-account-id", tenant.client_account_id.to_string())
                    .header("x-engagement-id", tenant.engagement_id.to_string())
                    .send()
                    .await
                    .expect("request");
                assert_eq!(response.status(), reqwest::StatusCode::OK);
                let _ = response.bytes().await;
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for worker in workers {
        total += worker.await.expect("worker");
    }
    server.abort();
    println!(
        "{engine}: GET /api/v3/discovery-flow/flows/{{flow_id}} over a socket, {CONCURRENCY} clients: {:.0} requests/s",
        total as f64 / THROUGHPUT_WINDOW.as_secs_f64()
    );
    db.close().await;
}

async fn insert_tenant(db: &Db) -> TenantId {
    let tenant = TenantId::new(
        ClientAccountId::from_stored(uuid::Uuid::new_v4()),
        EngagementId::from_stored(uuid::Uuid::new_v4()),
    );
    on_pool!(db, pool => {
        sqlx::query("INSERT INTO client_accounts (id, name, created_at) VALUES ($1, 'c', $2)")
            .bind(tenant.client_account_id)
            .bind(DbTime::now())
            .execute(pool)
            .await
            .expect("client");
        sqlx::query("INSERT INTO engagements (id, client_account_id, name, created_at) VALUES ($1, $2, 'e', $3)")
            .bind(tenant.engagement_id)
            .bind(tenant.client_account_id)
            .bind(DbTime::now())
            .execute(pool)
            .await
            .expect("engagement");
    });
    tenant
}

fn request(
    method: Method,
    uri: &str,
    tenant: TenantId,
    body: Option<serde_json::Value>,
) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("x-client-account-id", tenant.client_account_id.to_string())
        .header("x-engagement-id", tenant.engagement_id.to_string())
        .header("content-type", "application/json")
        .body(
            body.map(|b| Body::from(b.to_string()))
                .unwrap_or_else(Body::empty),
        )
        .expect("request")
}

async fn call(
    state: &AppState,
    method: Method,
    uri: &str,
    tenant: TenantId,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let response = app(state.clone())
        .oneshot(request(method, uri, tenant, body))
        .await
        .expect("infallible");
    assert!(
        response.status().is_success(),
        "{uri}: {}",
        response.status()
    );
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    serde_json::from_slice(&bytes).expect("json")
}

/// One request's time in microseconds, body read included. The router is built once per
/// state clone outside the timed part.
async fn timed(state: &AppState, uri: &str, tenant: TenantId) -> f64 {
    let router = app(state.clone());
    let request = request(Method::GET, uri, tenant, None);
    let started = Instant::now();
    let response = router.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await;
    started.elapsed().as_secs_f64() * 1e6
}

fn percentiles(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99))
}
