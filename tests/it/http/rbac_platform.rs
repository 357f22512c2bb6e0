//! The RBAC grants on the platform's own tables and data (`../shared/legacy` +
//! `../shared/platform`, migrated by flowkey): Ana (user 1, a `client_access` row for Acme)
//! reads Acme's engagement and nothing of Zenith Vault; Raj (user 2, an association with
//! Zenith Vault and an `engagement_access` row) reads Zenith Vault's engagement and nothing
//! of Acme; a tenant that does not exist answers exactly as a tenant not granted; a user
//! the platform does not know is not authenticated. SQLite and PostgreSQL in its `migration`
//! schema.

use axum::http::{Method, StatusCode};
use flowkey::db::Engine;
use flowkey::identity::GrantSource;
use flowkey::ids::TenantId;
use flowkey::migrate::{Migrator, RunOptions};
use uuid::Uuid;

use crate::support::auth_support::{hs256_state, test_token, with_token};
use crate::support::platform::{platform_db, Placement};
use crate::support::service_support::{request, send};

const ANA: &str = "30000000-0000-4000-8000-000000000001";
const RAJ: &str = "30000000-0000-4000-8000-000000000002";
const ACME: (&str, &str) = (
    "10000000-0000-4000-8000-000000000001",
    "20000000-0000-4000-8000-000000000001",
);
const ZENITH: (&str, &str) = (
    "10000000-0000-4000-8000-000000000002",
    "20000000-0000-4000-8000-000000000002",
);
const NOWHERE: (&str, &str) = (
    "10000000-0000-4000-8000-0000000000ff",
    "20000000-0000-4000-8000-0000000000ff",
);

fn tenant((client, engagement): (&str, &str)) -> TenantId {
    TenantId::parse(client, engagement).expect("tenant ids")
}

async fn rbac_on_the_platform(engine: Engine, placement: Placement) {
    let test_db = platform_db(engine, placement).await;
    let db = test_db.connect().await;
    Migrator::new(db.clone(), RunOptions::default())
        .upgrade("head")
        .await
        .expect("upgrade head on the platform database");
    let state = hs256_state(&db, GrantSource::Rbac);
    let call = |user: &'static str, who: (&'static str, &'static str)| {
        let state = state.clone();
        let token = test_token(Uuid::parse_str(user).expect("user id"));
        async move {
            send(
                &state,
                with_token(
                    request(
                        Method::GET,
                        "/api/v3/discovery-flow/flows",
                        tenant(who),
                        None,
                    ),
                    &token,
                ),
            )
            .await
        }
    };
    for (user, granted, other) in [(ANA, ACME, ZENITH), (RAJ, ZENITH, ACME)] {
        let allowed = call(user, granted).await;
        assert_eq!(
            allowed.status,
            StatusCode::OK,
            "{user} on its tenant: {}",
            allowed.text
        );
        let refused = call(user, other).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{user} elsewhere: {}",
            refused.text
        );
        assert_eq!(refused.error_code(), "tenant_forbidden");
        let missing = call(user, NOWHERE).await;
        assert_eq!(missing.status, refused.status);
        assert_eq!(
            missing.body, refused.body,
            "a missing tenant answers as a refused one"
        );
    }
    let stranger = call("30000000-0000-4000-8000-0000000000ff", ACME).await;
    assert_eq!(
        stranger.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        stranger.text
    );
    db.close().await;
}

#[tokio::test]
async fn rbac_grants_on_the_platform_database_sqlite() {
    rbac_on_the_platform(Engine::Sqlite, Placement::Public).await;
}

#[tokio::test]
async fn rbac_grants_on_the_platform_database_postgres_in_its_schema() {
    rbac_on_the_platform(Engine::Postgres, Placement::Migration).await;
}
