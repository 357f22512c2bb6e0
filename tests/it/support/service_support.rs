//! A database at `head` for service tests, fixture builders, and HTTP helpers.
//!
//! `head_db` brings a fresh database to `head` with the real revision runner (legacy, the
//! session→flow migration, service_state); every service test goes through it and the
//! builders below, nothing else.

// Test bodies are plain async fns run by `both_engines!`, so clippy does not see them as
// tests: allow the unwraps it allows in tests.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use flowkey::db::types::{DbTime, DbUuid};
use flowkey::db::{on_pool, Db, Engine};
use flowkey::http::{app, AdminToken, AppState, ServiceConfig};
use flowkey::ids::{ClientAccountId, EngagementId, FlowId, ImportId, SessionId, TenantId};
use flowkey::migrate::revisions::legacy::LEGACY_SQL;
use flowkey::migrate::{Migrator, RunOptions};
use serde_json::Value;
use tower::ServiceExt;
use uuid::Uuid;

use crate::support::harness::TestDb;

/// A fresh database at head, and a pool on it.
pub async fn head_db(engine: Engine) -> (TestDb, Db) {
    let test_db = TestDb::fresh(engine).await;
    let db = test_db.connect().await;
    Migrator::new(db.clone(), RunOptions::default())
        .upgrade("head")
        .await
        .expect("upgrade head");
    (test_db, db)
}

/// A database with the legacy schema only (for "not at head" checks).
pub async fn legacy_db(engine: Engine) -> (TestDb, Db) {
    let test_db = TestDb::fresh(engine).await;
    let db = test_db.connect().await;
    db.execute_plain(LEGACY_SQL.for_engine(engine))
        .await
        .expect("legacy schema");
    (test_db, db)
}

/// A client account with one engagement.
pub async fn insert_tenant(db: &Db) -> TenantId {
    let tenant = TenantId::new(
        ClientAccountId::from_stored(Uuid::new_v4()),
        EngagementId::from_stored(Uuid::new_v4()),
    );
    on_pool!(db, pool => {
        sqlx::query("INSERT INTO client_accounts (id, name, created_at) VALUES ($1, 'client', $2)")
            .bind(tenant.client_account_id)
            .bind(DbTime::now())
            .execute(pool)
            .await
            .expect("client account");
        sqlx::query("INSERT INTO engagements (id, client_account_id, name, created_at) VALUES ($1, $2, 'engagement', $3)")
            .bind(tenant.engagement_id)
            .bind(tenant.client_account_id)
            .bind(DbTime::now())
            .execute(pool)
            .await
            .expect("engagement");
    });
    tenant
}

pub async fn insert_user(db: &Db) -> Uuid {
    let id = Uuid::new_v4();
    on_pool!(db, pool => {
        sqlx::query("INSERT INTO users (id, email, created_at) VALUES ($1, $2, $3)")
            .bind(DbUuid(id))
            .bind(format!("{id}@example.test"))
            .bind(DbTime::now())
            .execute(pool)
            .await
            .expect("user");
    });
    id
}

pub async fn insert_session(db: &Db, tenant: TenantId, user: Uuid) -> SessionId {
    let session = SessionId::from_stored(Uuid::new_v4());
    on_pool!(db, pool => {
        sqlx::query("INSERT INTO data_import_sessions (id, client_account_id, engagement_id, session_name, created_by, created_at) VALUES ($1, $2, $3, 'legacy session', $4, $5)")
            .bind(session)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(DbUuid(user))
            .bind(DbTime::now())
            .execute(pool)
            .await
            .expect("session");
    });
    session
}

pub async fn insert_flow(
    db: &Db,
    tenant: TenantId,
    flow_id: FlowId,
    import_session_id: Option<Uuid>,
) {
    on_pool!(db, pool => {
        sqlx::query("INSERT INTO discovery_flows (id, flow_id, client_account_id, engagement_id, import_session_id, flow_name, status, created_at) VALUES ($1, $2, $3, $4, $5, 'legacy flow', 'attribute_mapping', $6)")
            .bind(DbUuid::new_v4())
            .bind(flow_id)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(import_session_id.map(DbUuid))
            .bind(DbTime::now())
            .execute(pool)
            .await
            .expect("flow");
    });
}

/// A mapping row as a test states it; replaces the one the live mapping's triggers made when
/// the test wrote a flow naming the session.
pub async fn insert_mapping(
    db: &Db,
    session: SessionId,
    flow_id: FlowId,
    tenant: TenantId,
    rule: &str,
) {
    on_pool!(db, pool => {
        sqlx::query("INSERT INTO session_flow_mapping (session_id, flow_id, client_account_id, engagement_id, rule, flow_created_by_migration, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (session_id) DO UPDATE SET flow_id = excluded.flow_id, rule = excluded.rule")
            .bind(session)
            .bind(flow_id)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(rule)
            .bind(false)
            .bind(DbTime::now())
            .execute(pool)
            .await
            .expect("mapping");
    });
}

/// An import row with both keys as the backfill leaves them (either may be `None`).
pub async fn insert_import(
    db: &Db,
    tenant: TenantId,
    user: Uuid,
    session: Option<SessionId>,
    flow_id: Option<FlowId>,
) -> ImportId {
    let id = ImportId::new_v4();
    on_pool!(db, pool => {
        sqlx::query("INSERT INTO data_imports (id, client_account_id, engagement_id, session_id, flow_id, import_name, import_type, source_filename, status, total_records, imported_by, created_at) VALUES ($1, $2, $3, $4, $5, 'legacy import', 'cmdb', 'legacy.csv', 'completed', 2, $6, $7)")
            .bind(id)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(session)
            .bind(flow_id)
            .bind(DbUuid(user))
            .bind(DbTime::now())
            .execute(pool)
            .await
            .expect("import");
    });
    id
}

pub async fn insert_field_mapping(
    db: &Db,
    import: ImportId,
    flow_id: Option<FlowId>,
    source: &str,
) {
    on_pool!(db, pool => {
        sqlx::query("INSERT INTO import_field_mappings (id, data_import_id, flow_id, source_field, target_field, confidence_score, sample_values, created_at) VALUES ($1, $2, $3, $4, $5, 0.9, '[\"a\"]', $6)")
            .bind(DbUuid::new_v4())
            .bind(import)
            .bind(flow_id)
            .bind(source)
            .bind(source.to_lowercase())
            .bind(DbTime::now())
            .execute(pool)
            .await
            .expect("field mapping");
    });
}

/// Legacy data as the migration leaves it at head: a session, its flow (named by
/// `import_session_id`), the mapping, an import with both keys and two field mappings.
pub struct Migrated {
    pub session: SessionId,
    pub flow_id: FlowId,
    pub import_id: ImportId,
}

pub async fn migrated_session(db: &Db, tenant: TenantId) -> Migrated {
    let user = insert_user(db).await;
    let session = insert_session(db, tenant, user).await;
    let flow_id = FlowId::new_v4();
    insert_flow(db, tenant, flow_id, Some(session.as_uuid())).await;
    insert_mapping(db, session, flow_id, tenant, "import_session_id").await;
    let import_id = insert_import(db, tenant, user, Some(session), Some(flow_id)).await;
    insert_field_mapping(db, import_id, Some(flow_id), "Hostname").await;
    insert_field_mapping(db, import_id, Some(flow_id), "OS").await;
    Migrated {
        session,
        flow_id,
        import_id,
    }
}

/// Rows in a table (for "a read never writes").
pub async fn count_rows(db: &Db, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    on_pool!(db, pool => sqlx::query_scalar::<_, i64>(&sql).fetch_one(pool).await.expect("count"))
}

/// Row counts of every table the service touches.
pub async fn all_counts(db: &Db) -> Vec<(String, i64)> {
    let mut counts = Vec::new();
    for table in [
        "data_import_sessions",
        "data_imports",
        "raw_import_records",
        "import_field_mappings",
        "discovery_flows",
        "session_flow_mapping",
        "flow_deletion_audit",
        "flowkey_flags",
        "flowkey_legacy_traffic",
        "users",
    ] {
        counts.push((table.to_owned(), count_rows(db, table).await));
    }
    counts
}

/// The admin token every test server is configured with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// The default config, with the test admin token.
pub fn config() -> ServiceConfig {
    ServiceConfig {
        admin_token: Some(AdminToken::parse(ADMIN_TOKEN).expect("admin token")),
        ..ServiceConfig::default()
    }
}

pub fn state(db: &Db) -> AppState {
    AppState::new(db.clone(), config()).expect("state")
}

/// A state whose body limit, CSV uploads included, is `max_body_bytes`.
pub fn small_body_state(db: &Db, max_body_bytes: usize) -> AppState {
    let config = ServiceConfig {
        max_body_bytes,
        max_upload_bytes: max_body_bytes,
        ..config()
    };
    AppState::new(db.clone(), config).expect("state")
}

/// A request with the tenant headers.
pub fn request(method: Method, uri: &str, tenant: TenantId, body: Option<Value>) -> Request<Body> {
    let builder = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-client-account-id", tenant.client_account_id.to_string())
        .header("x-engagement-id", tenant.engagement_id.to_string());
    match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("request"),
        None => builder.body(Body::empty()).expect("request"),
    }
}

/// A request to an admin route, with the test admin token (and no tenant headers: admin
/// routes act on the whole database).
pub fn admin(method: Method, uri: &str, body: Option<Value>) -> Request<Body> {
    let builder = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"));
    match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("request"),
        None => builder.body(Body::empty()).expect("request"),
    }
}

/// A response: status, headers and the JSON body (Null when not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

pub async fn send(state: &AppState, request: Request<Body>) -> Answer {
    let response = app(state.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        text,
    }
}

/// CMDB rows as a client sends them.
pub fn cmdb_rows(count: usize) -> Value {
    let rows: Vec<Value> = (1..=count)
        .map(|n| {
            serde_json::json!({
                "Asset Name": format!("srv{n:03}"),
                "OS": if n % 2 == 0 { "linux" } else { "windows" },
                "CPU Cores": n % 8 + 1,
                "IP Address": format!("10.0.0.{n}"),
            })
        })
        .collect();
    Value::Array(rows)
}

/// Stores rows through the v3 JSON route; answers (import_id, flow_id).
pub async fn v3_import(state: &AppState, tenant: TenantId, rows: usize) -> (String, String) {
    let answer = send(
        state,
        request(
            Method::POST,
            "/api/v3/data-import/imports",
            tenant,
            Some(serde_json::json!({ "file_data": cmdb_rows(rows), "metadata": {"filename": "cmdb.json"} })),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    (
        answer.data()["import_id"]
            .as_str()
            .expect("import id")
            .to_owned(),
        answer.data()["flow_id"]
            .as_str()
            .expect("flow id")
            .to_owned(),
    )
}
