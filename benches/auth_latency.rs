//! The cost of authentication per request (issue 19): the same `GET
//! /api/v3/discovery-flow/flows/{flow_id}` against servers on one database that differ only in
//! how they authenticate, interleaved request by request: none (`--auth none`), an HS256 JWT
//! with grants from its claims, an HS256 JWT with grants from the RBAC tables (cached, the
//! steady state), and the same with the grant cache off (one RBAC read per request).
//! Run: `cargo bench --bench auth_latency`; figures are for comparison within one run.

#[path = "support/engines.rs"]
mod engines;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use flowkey::db::types::{DbTime, DbUuid};
use flowkey::db::{on_pool, Db, Engine};
use flowkey::http::{app, AppState, AuthMode, ServiceConfig};
use flowkey::identity::{GrantSource, JwtAlgorithm, JwtConfig, KeySource, Verifier};
use flowkey::ids::{ClientAccountId, EngagementId, TenantId};
use tower::ServiceExt;
use uuid::Uuid;

const SECRET: &str = "bench-secret-0123456789abcdef-0123456789";

fn samples() -> usize {
    if std::env::args().any(|arg| arg == "--bench") {
        3_000
    } else {
        50
    }
}

fn main() {
    engines::on_both_engines("flowkey_bench_auth", |engine, url| async move {
        run(engine, &url).await
    });
}

fn jwt_state(db: &Db, grants: GrantSource, ttl: Duration) -> AppState {
    let config = JwtConfig {
        algorithm: JwtAlgorithm::Hs256,
        key: KeySource::Secret(SECRET.as_bytes().to_vec()),
        issuer: Some("https://platform.bench".to_owned()),
        audience: Some("flowkey".to_owned()),
        leeway: Duration::from_secs(5),
    };
    let config = ServiceConfig {
        auth: AuthMode::Jwt {
            verifier: Arc::new(Verifier::new(&config).expect("verifier")),
            grants,
            grant_cache_ttl: ttl,
        },
        ..ServiceConfig::default()
    };
    AppState::new(db.clone(), config).expect("state")
}

async fn run(engine: Engine, url: &str) {
    let db = Db::connect(url).await.expect("connect");
    flowkey::migrate::Migrator::new(db.clone(), flowkey::migrate::RunOptions::default())
        .upgrade("head")
        .await
        .expect("upgrade head");
    let (tenant, user) = tenant_and_granted_user(&db).await;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({
            "sub": user.to_string(),
            "iss": "https://platform.bench",
            "aud": "flowkey",
            "exp": chrono::Utc::now().timestamp() + 3600,
            "client_account_id": tenant.client_account_id.to_string(),
            "engagement_ids": [tenant.engagement_id.to_string()],
        }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token");
    let open = AppState::new(db.clone(), ServiceConfig::default()).expect("state");
    let created = app(open.clone())
        .oneshot(request(
            Method::POST,
            "/api/v3/data-import/imports",
            tenant,
            None,
            Some(serde_json::json!({ "file_data": [{"Hostname": "a"}] })),
        ))
        .await
        .expect("infallible");
    assert_eq!(created.status(), StatusCode::CREATED);
    let bytes = axum::body::to_bytes(created.into_body(), usize::MAX)
        .await
        .expect("body");
    let created: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    let uri = format!(
        "/api/v3/discovery-flow/flows/{}",
        created["data"]["flow_id"].as_str().expect("flow")
    );
    let servers = [
        ("none", open, None),
        (
            "jwt+claims",
            jwt_state(&db, GrantSource::Claims, Duration::from_secs(30)),
            Some(token.as_str()),
        ),
        (
            "jwt+rbac (cached)",
            jwt_state(&db, GrantSource::Rbac, Duration::from_secs(30)),
            Some(token.as_str()),
        ),
        (
            "jwt+rbac (no cache)",
            jwt_state(&db, GrantSource::Rbac, Duration::ZERO),
            Some(token.as_str()),
        ),
    ];
    for _ in 0..100 {
        for (_, state, token) in &servers {
            timed(state, &uri, tenant, *token).await;
        }
    }
    let mut times = vec![Vec::with_capacity(samples()); servers.len()];
    for _ in 0..samples() {
        for (i, (_, state, token)) in servers.iter().enumerate() {
            times[i].push(timed(state, &uri, tenant, *token).await);
        }
    }
    // A tenant not granted answers like one that does not exist, in time too: both run the
    // same single RBAC statement (no cache, so every request reads).
    let other = tenant_not_granted(&db).await;
    let nowhere = TenantId::new(
        ClientAccountId::from_stored(Uuid::new_v4()),
        EngagementId::from_stored(Uuid::new_v4()),
    );
    let (_, uncached, _) = &servers[3];
    let mut refused = [Vec::new(), Vec::new()];
    for _ in 0..samples() {
        for (i, target) in [other, nowhere].into_iter().enumerate() {
            refused[i].push(
                timed_status(uncached, &uri, target, Some(&token), StatusCode::FORBIDDEN).await,
            );
        }
    }
    let (existing_p50, existing_p99) = percentiles(&mut refused[0]);
    let (missing_p50, missing_p99) = percentiles(&mut refused[1]);
    println!(
        "{engine}: 403 existing tenant p50 {existing_p50:.1} µs p99 {existing_p99:.1} µs; \
         non-existent tenant p50 {missing_p50:.1} µs p99 {missing_p99:.1} µs (ratio p50 {:.2})",
        existing_p50 / missing_p50
    );
    let (base_p50, base_p99) = percentiles(&mut times[0]);
    for (i, (name, _, _)) in servers.iter().enumerate() {
        let (p50, p99) = percentiles(&mut times[i]);
        println!(
            "{engine}: {name:<20} p50 {p50:7.1} µs ({:.2}x)  p99 {p99:7.1} µs ({:.2}x)",
            p50 / base_p50,
            p99 / base_p99
        );
    }
    db.close().await;
}

/// A tenant, its user, and the RBAC tables granting the user the tenant's client account.
async fn tenant_and_granted_user(db: &Db) -> (TenantId, Uuid) {
    let tenant = TenantId::new(
        ClientAccountId::from_stored(Uuid::new_v4()),
        EngagementId::from_stored(Uuid::new_v4()),
    );
    let user = Uuid::new_v4();
    let (uuid, boolean, time) = match db.engine() {
        Engine::Postgres => ("uuid", "boolean", "timestamptz"),
        Engine::Sqlite => ("TEXT", "INTEGER", "TEXT"),
    };
    db.execute_plain(&format!(
        "CREATE TABLE user_profiles (user_id {uuid} PRIMARY KEY REFERENCES users(id), status TEXT NOT NULL);
         CREATE TABLE user_account_associations (id {uuid} PRIMARY KEY, user_id {uuid} NOT NULL, client_account_id {uuid} NOT NULL, is_mock {boolean} NOT NULL);
         CREATE TABLE client_access (id {uuid} PRIMARY KEY, user_profile_id {uuid} NOT NULL, client_account_id {uuid} NOT NULL, expires_at {time}, is_active {boolean});
         CREATE INDEX ix_client_access_user_profile_id ON client_access(user_profile_id);
         CREATE TABLE engagement_access (id {uuid} PRIMARY KEY, user_profile_id {uuid} NOT NULL, engagement_id {uuid} NOT NULL, expires_at {time}, is_active {boolean});"
    ))
    .await
    .expect("rbac tables");
    on_pool!(db, pool => {
        sqlx::query("INSERT INTO client_accounts (id, name, created_at) VALUES ($1, 'client', $2)")
            .bind(tenant.client_account_id).bind(DbTime::now()).execute(pool).await.expect("client");
        sqlx::query("INSERT INTO engagements (id, client_account_id, name, created_at) VALUES ($1, $2, 'engagement', $3)")
            .bind(tenant.engagement_id).bind(tenant.client_account_id).bind(DbTime::now()).execute(pool).await.expect("engagement");
        sqlx::query("INSERT INTO users (id, email, created_at) VALUES ($1, 'bench@example.test', $2)")
            .bind(DbUuid(user)).bind(DbTime::now()).execute(pool).await.expect("user");
        sqlx::query("INSERT INTO user_profiles (user_id, status) VALUES ($1, 'active')")
            .bind(DbUuid(user)).execute(pool).await.expect("profile");
        sqlx::query("INSERT INTO client_access (id, user_profile_id, client_account_id, is_active) VALUES ($1, $2, $3, $4)")
            .bind(DbUuid::new_v4()).bind(DbUuid(user)).bind(tenant.client_account_id).bind(true).execute(pool).await.expect("grant");
    });
    (tenant, user)
}

/// Another tenant, existing, not granted to the bench user.
async fn tenant_not_granted(db: &Db) -> TenantId {
    let tenant = TenantId::new(
        ClientAccountId::from_stored(Uuid::new_v4()),
        EngagementId::from_stored(Uuid::new_v4()),
    );
    on_pool!(db, pool => {
        sqlx::query("INSERT INTO client_accounts (id, name, created_at) VALUES ($1, 'other', $2)")
            .bind(tenant.client_account_id).bind(DbTime::now()).execute(pool).await.expect("client");
        sqlx::query("INSERT INTO engagements (id, client_account_id, name, created_at) VALUES ($1, $2, 'other', $3)")
            .bind(tenant.engagement_id).bind(tenant.client_account_id).bind(DbTime::now()).execute(pool).await.expect("engagement");
    });
    tenant
}

fn request(
    method: Method,
    uri: &str,
    tenant: TenantId,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-client-account-id", tenant.client_account_id.to_string())
        .header("x-engagement-id", tenant.engagement_id.to_string())
        .header("content-type", "application/json");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder
        .body(
            body.map(|b| Body::from(b.to_string()))
                .unwrap_or_else(Body::empty),
        )
        .expect("request")
}

/// One request's time in microseconds, body read included.
async fn timed(state: &AppState, uri: &str, tenant: TenantId, token: Option<&str>) -> f64 {
    timed_status(state, uri, tenant, token, StatusCode::OK).await
}

async fn timed_status(
    state: &AppState,
    uri: &str,
    tenant: TenantId,
    token: Option<&str>,
    expected: StatusCode,
) -> f64 {
    let router = app(state.clone());
    let request = request(Method::GET, uri, tenant, token, None);
    let started = Instant::now();
    let response = router.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), expected);
    let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await;
    started.elapsed().as_secs_f64() * 1e6
}

fn percentiles(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99))
}
