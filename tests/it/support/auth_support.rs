//! Tokens for the authentication tests, minted here with `jsonwebtoken` (the crate the server
//! verifies with, but from the test's own keys and claims), servers configured to demand
//! them, and the platform's RBAC tables for the grant tests.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Request};
use flowkey::db::types::{DbTime, DbUuid};
use flowkey::db::{on_pool, Db, Engine};
use flowkey::http::{AppState, AuthMode, ServiceConfig};
use flowkey::identity::{GrantSource, JwtAlgorithm, JwtConfig, KeySource, Verifier};
use flowkey::ids::TenantId;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::service_support::config;

/// The HS256 secret of test servers (32 bytes and more).
pub const TEST_SECRET: &str = "flowkey-test-secret-0123456789abcdef";
pub const TEST_ISSUER: &str = "https://platform.test";
pub const TEST_AUDIENCE: &str = "flowkey";

pub fn key_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/http/keys")
        .join(name)
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The claims of a valid token for `user`: issuer, audience, an hour of validity.
pub fn claims(user: Uuid) -> Value {
    json!({
        "sub": user.to_string(),
        "iss": TEST_ISSUER,
        "aud": TEST_AUDIENCE,
        "iat": now(),
        "exp": now() + 3600,
    })
}

/// `claims` signed HS256 with `secret`.
pub fn hs256(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("token")
}

/// A token for `user` as the test server accepts it.
pub fn test_token(user: Uuid) -> String {
    hs256(&claims(user), TEST_SECRET.as_bytes())
}

pub fn rs256(claims: &Value, kid: Option<&str>) -> String {
    let pem = std::fs::read(key_file("rsa_private.pem")).expect("rsa key");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(&pem).expect("rsa"),
    )
    .expect("token")
}

pub fn es256(claims: &Value) -> String {
    let pem = std::fs::read(key_file("ec_private.pem")).expect("ec key");
    jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        claims,
        &EncodingKey::from_ec_pem(&pem).expect("ec"),
    )
    .expect("token")
}

/// A token whose header says `alg: none`, with no signature.
pub fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        base64_url(br#"{"alg":"none","typ":"JWT"}"#),
        base64_url(claims.to_string().as_bytes())
    )
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The JWT configuration of test servers, for `algorithm` and `key`.
pub fn jwt_config(algorithm: JwtAlgorithm, key: KeySource) -> JwtConfig {
    JwtConfig {
        algorithm,
        key,
        issuer: Some(TEST_ISSUER.to_owned()),
        audience: Some(TEST_AUDIENCE.to_owned()),
        leeway: Duration::from_secs(5),
    }
}

/// A server that demands a JWT verified by `jwt`, grants from `grants`.
pub fn jwt_state(db: &Db, jwt: &JwtConfig, grants: GrantSource) -> AppState {
    let config = ServiceConfig {
        auth: AuthMode::Jwt {
            verifier: Arc::new(Verifier::new(jwt).expect("verifier")),
            grants,
            grant_cache_ttl: Duration::from_secs(30),
        },
        ..config()
    };
    AppState::new(db.clone(), config).expect("state")
}

/// The test server: HS256 with [`TEST_SECRET`], grants from `grants`.
pub fn hs256_state(db: &Db, grants: GrantSource) -> AppState {
    jwt_state(
        db,
        &jwt_config(
            JwtAlgorithm::Hs256,
            KeySource::Secret(TEST_SECRET.as_bytes().to_vec()),
        ),
        grants,
    )
}

/// `request` with `Authorization: Bearer <token>`.
pub fn with_token(mut request: Request<Body>, token: &str) -> Request<Body> {
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    request
}

/// The four RBAC tables the platform adds beside the legacy `users` (DDL as in
/// `../shared/platform/{postgres,sqlite}.sql`, only the columns' shape; the platform
/// database adoption of issue 11 is not needed for the grant read).
pub async fn create_rbac_tables(db: &Db) {
    let (uuid, text, time, boolean) = match db.engine() {
        Engine::Postgres => ("uuid", "varchar(255)", "timestamptz", "boolean"),
        Engine::Sqlite => ("TEXT", "TEXT", "TEXT", "INTEGER"),
    };
    let ddl = format!(
        "CREATE TABLE user_account_associations (
            id {uuid} PRIMARY KEY,
            user_id {uuid} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            client_account_id {uuid} NOT NULL REFERENCES client_accounts(id) ON DELETE CASCADE,
            role {text} NOT NULL,
            is_mock {boolean} NOT NULL,
            created_at {time},
            updated_at {time},
            created_by {uuid} REFERENCES users(id),
            CONSTRAINT _user_client_account_uc UNIQUE (user_id, client_account_id));
        CREATE TABLE user_profiles (
            user_id {uuid} PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
            status {text} NOT NULL,
            approval_requested_at {time},
            approved_at {time},
            approved_by {uuid} REFERENCES users(id),
            created_at {time},
            updated_at {time});
        CREATE TABLE client_access (
            id {uuid} PRIMARY KEY,
            user_profile_id {uuid} NOT NULL REFERENCES user_profiles(user_id) ON DELETE CASCADE,
            client_account_id {uuid} NOT NULL REFERENCES client_accounts(id) ON DELETE CASCADE,
            access_level {text} NOT NULL,
            granted_at {time},
            granted_by {uuid} NOT NULL REFERENCES users(id),
            expires_at {time},
            is_active {boolean},
            created_at {time},
            updated_at {time});
        CREATE TABLE engagement_access (
            id {uuid} PRIMARY KEY,
            user_profile_id {uuid} NOT NULL REFERENCES user_profiles(user_id) ON DELETE CASCADE,
            engagement_id {uuid} NOT NULL REFERENCES engagements(id) ON DELETE CASCADE,
            access_level {text} NOT NULL,
            granted_at {time},
            granted_by {uuid} NOT NULL REFERENCES users(id),
            expires_at {time},
            is_active {boolean},
            created_at {time},
            updated_at {time});"
    );
    db.execute_plain(&ddl).await.expect("rbac tables");
}

/// A `user_profiles` row with `status`.
pub async fn insert_profile(db: &Db, user: Uuid, status: &str) {
    on_pool!(db, pool => {
        sqlx::query("INSERT INTO user_profiles (user_id, status, created_at) VALUES ($1, $2, $3)")
            .bind(DbUuid(user))
            .bind(status)
            .bind(DbTime::now())
            .execute(pool)
            .await
            .expect("profile");
    });
}

/// An active `client_access` row: the whole client account (every engagement of it).
pub async fn grant_client(db: &Db, user: Uuid, tenant: TenantId, expires: Option<DbTime>) {
    on_pool!(db, pool => {
        sqlx::query("INSERT INTO client_access (id, user_profile_id, client_account_id, access_level, granted_by, expires_at, is_active, created_at) VALUES ($1, $2, $3, 'admin', $2, $4, $5, $6)")
            .bind(DbUuid::new_v4())
            .bind(DbUuid(user))
            .bind(tenant.client_account_id)
            .bind(expires)
            .bind(true)
            .bind(DbTime::now())
            .execute(pool)
            .await
            .expect("client access");
    });
}

/// A (non-mock) association with the client account and an active `engagement_access` row.
pub async fn grant_engagement(db: &Db, user: Uuid, tenant: TenantId) {
    on_pool!(db, pool => {
        sqlx::query("INSERT INTO user_account_associations (id, user_id, client_account_id, role, is_mock, created_at) VALUES ($1, $2, $3, 'member', $4, $5)")
            .bind(DbUuid::new_v4())
            .bind(DbUuid(user))
            .bind(tenant.client_account_id)
            .bind(false)
            .bind(DbTime::now())
            .execute(pool)
            .await
            .expect("association");
        sqlx::query("INSERT INTO engagement_access (id, user_profile_id, engagement_id, access_level, granted_by, is_active, created_at) VALUES ($1, $2, $3, 'read_write', $2, $4, $5)")
            .bind(DbUuid::new_v4())
            .bind(DbUuid(user))
            .bind(tenant.engagement_id)
            .bind(true)
            .bind(DbTime::now())
            .execute(pool)
            .await
            .expect("engagement access");
    });
}
