//! Authentication and per-tenant authorization of the tenant routes (issue 19): tokens minted
//! here, good and bad in every way the verifier checks; grants from the platform's RBAC
//! tables and from token claims; a tenant not granted answers exactly as one that does not
//! exist, on every route and in every flag mode; the token's user is who is recorded.

use axum::http::{Method, StatusCode};
use flowkey::db::types::{DbTime, DbUuid};
use flowkey::db::{on_pool, Db};
use flowkey::flags::{self, FlagScope, FlowIdPrimary};
use flowkey::identity::{GrantSource, JwtAlgorithm, KeySource};
use flowkey::ids::{ClientAccountId, EngagementId, TenantId};
use serde_json::json;
use uuid::Uuid;

use crate::both_engines;
use crate::support::auth_support::*;
use crate::support::harness::TestDb;
use crate::support::service_support::*;

/// A database at head with the RBAC tables, a tenant and a user granted it (client access).
struct Rbac {
    _keep: TestDb,
    db: Db,
    tenant: TenantId,
    other: TenantId,
    user: Uuid,
}

async fn rbac(engine: flowkey::db::Engine) -> Rbac {
    let (keep, db) = head_db(engine).await;
    create_rbac_tables(&db).await;
    let tenant = insert_tenant(&db).await;
    let other = insert_tenant(&db).await;
    let user = insert_user(&db).await;
    insert_profile(&db, user, "active").await;
    grant_client(&db, user, tenant, None).await;
    Rbac {
        _keep: keep,
        db,
        tenant,
        other,
        user,
    }
}

const LIST: &str = "/api/v3/data-import/imports";

async fn tokens_are_checked_before_anything(test_db: TestDb) {
    let Rbac {
        _keep,
        db,
        tenant,
        user,
        ..
    } = rbac(test_db.engine).await;
    let state = hs256_state(&db, GrantSource::Rbac);
    let get = |token: Option<String>| {
        let request = request(Method::GET, LIST, tenant, None);
        match token {
            Some(token) => with_token(request, &token),
            None => request,
        }
    };
    let ok = send(&state, get(Some(test_token(user)))).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);

    let secret = TEST_SECRET.as_bytes();
    let mut expired = claims(user);
    expired["exp"] = json!(now() - 600);
    let mut not_yet = claims(user);
    not_yet["nbf"] = json!(now() + 600);
    let mut wrong_issuer = claims(user);
    wrong_issuer["iss"] = json!("https://elsewhere.test");
    let mut wrong_audience = claims(user);
    wrong_audience["aud"] = json!("another-service");
    let mut no_sub = claims(user);
    no_sub.as_object_mut().unwrap().remove("sub");
    let mut sub_not_user = claims(user);
    sub_not_user["sub"] = json!("demo-user");
    let unknown = Uuid::new_v4();
    let inactive = insert_user(&db).await;
    insert_profile(&db, inactive, "deactivated").await;
    grant_client(&db, inactive, tenant, None).await;
    let no_profile = insert_user(&db).await;
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no token", None, "Authorization"),
        ("expired", Some(hs256(&expired, secret)), "expired"),
        (
            "not yet valid",
            Some(hs256(&not_yet, secret)),
            "not valid yet",
        ),
        ("wrong issuer", Some(hs256(&wrong_issuer, secret)), "issuer"),
        (
            "wrong audience",
            Some(hs256(&wrong_audience, secret)),
            "audience",
        ),
        (
            "wrong signature",
            Some(hs256(&claims(user), b"another-secret-0123456789abcdef-xyz")),
            "signature",
        ),
        ("alg none", Some(unsigned(&claims(user))), "algorithm"),
        (
            "RS256 against HS256",
            Some(rs256(&claims(user), None)),
            "algorithm",
        ),
        ("missing sub", Some(hs256(&no_sub, secret)), "sub"),
        (
            "sub not a user id",
            Some(hs256(&sub_not_user, secret)),
            "sub",
        ),
        (
            "not a JWT",
            Some("db-token-".to_owned() + &user.to_string()),
            "JWT",
        ),
        ("unknown user", Some(test_token(unknown)), "not a user"),
        ("inactive user", Some(test_token(inactive)), "not active"),
        (
            "user without profile",
            Some(test_token(no_profile)),
            "not active",
        ),
    ];
    let before = all_counts(&db).await;
    for (case, token, says) in cases {
        let answer = send(&state, get(token)).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{case}: {}",
            answer.text
        );
        assert_eq!(answer.error_code(), "unauthorized", "{case}");
        assert_eq!(answer.body["success"], json!(false), "{case}");
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(says),
            "{case}: {}",
            answer.text
        );
        let challenge = answer.headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer"), "{case}: {challenge}");
    }
    // A refused upload writes nothing (no fallback user, no import).
    let upload = request(
        Method::POST,
        LIST,
        tenant,
        Some(json!({ "file_data": cmdb_rows(2) })),
    );
    let answer = send(&state, with_token(upload, &test_token(unknown))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(all_counts(&db).await, before);
}
both_engines!(
    tokens_are_checked_before_anything,
    tokens_are_checked_before_anything
);

async fn asymmetric_keys_and_algorithm_confusion(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let user = insert_user(&db).await;
    let mut granted = claims(user);
    granted["client_account_id"] = json!(tenant.client_account_id.to_string());
    granted["engagement_ids"] = json!([tenant.engagement_id.to_string()]);
    let public_pem = std::fs::read(key_file("rsa_public.pem")).unwrap();
    let configs = [
        (
            "RS256 PEM",
            jwt_config(
                JwtAlgorithm::Rs256,
                KeySource::PublicKeyFile(key_file("rsa_public.pem")),
            ),
            rs256(&granted, None),
        ),
        (
            "RS256 JWKS",
            jwt_config(
                JwtAlgorithm::Rs256,
                KeySource::JwksFile(key_file("rsa_jwks.json")),
            ),
            rs256(&granted, Some("test-rsa")),
        ),
        (
            "ES256 PEM",
            jwt_config(
                JwtAlgorithm::Es256,
                KeySource::PublicKeyFile(key_file("ec_public.pem")),
            ),
            es256(&granted),
        ),
    ];
    for (name, config, good) in configs {
        let state = jwt_state(&db, &config, GrantSource::Claims);
        let answer = send(
            &state,
            with_token(request(Method::GET, LIST, tenant, None), &good),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{name}: {}", answer.text);
        // HS256 signed with the public key's bytes: the classic confusion, refused before
        // any signature check because the algorithm is pinned.
        for bad in [
            hs256(&granted, &public_pem),
            unsigned(&granted),
            hs256(&granted, TEST_SECRET.as_bytes()),
        ] {
            let answer = send(
                &state,
                with_token(request(Method::GET, LIST, tenant, None), &bad),
            )
            .await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{name}: {}",
                answer.text
            );
            assert!(answer.text.contains("algorithm"), "{name}: {}", answer.text);
        }
    }
    // A kid the JWKS does not hold.
    let state = jwt_state(
        &db,
        &jwt_config(
            JwtAlgorithm::Rs256,
            KeySource::JwksFile(key_file("rsa_jwks.json")),
        ),
        GrantSource::Claims,
    );
    let answer = send(
        &state,
        with_token(
            request(Method::GET, LIST, tenant, None),
            &rs256(&granted, Some("other")),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
}
both_engines!(
    asymmetric_keys_and_algorithm_confusion,
    asymmetric_keys_and_algorithm_confusion
);

/// Every tenant route, with ids that exist in `tenant` (so a granted caller is served).
fn every_route(session: &str, flow: &str, import: &str, mapping: &str) -> Vec<(Method, String)> {
    vec![
        (Method::POST, LIST.to_owned()),
        (Method::GET, LIST.to_owned()),
        (Method::POST, format!("{LIST}/upload")),
        (Method::GET, format!("{LIST}/{import}")),
        (Method::GET, format!("{LIST}/{import}/records")),
        (Method::GET, "/api/v3/discovery-flow/flows".to_owned()),
        (Method::GET, format!("/api/v3/discovery-flow/flows/{flow}")),
        (
            Method::GET,
            format!("/api/v3/discovery-flow/flows/{flow}/status"),
        ),
        (
            Method::POST,
            format!("/api/v3/discovery-flow/flows/{flow}/pause"),
        ),
        (
            Method::POST,
            format!("/api/v3/discovery-flow/flows/{flow}/resume"),
        ),
        (
            Method::GET,
            format!("/api/v3/field-mapping/mappings/{flow}"),
        ),
        (
            Method::PUT,
            format!("/api/v3/field-mapping/mappings/{mapping}"),
        ),
        (
            Method::POST,
            format!("/api/v3/field-mapping/mappings/{mapping}/approve"),
        ),
        (
            Method::POST,
            format!("/api/v3/field-mapping/mappings/{mapping}/reject"),
        ),
        (Method::POST, "/api/v1/data-import/store-import".to_owned()),
        (Method::GET, format!("/api/v1/data-import/import/{session}")),
        (
            Method::GET,
            format!("/api/v1/data-import/import/{session}/records"),
        ),
        (
            Method::GET,
            format!("/api/v1/data-import/processing-status/{session}"),
        ),
        (
            Method::GET,
            format!("/api/v1/data-import/validation-session/{session}"),
        ),
        (
            Method::GET,
            format!("/api/v1/unified-discovery/flow/status/{session}"),
        ),
        (Method::DELETE, format!("{LIST}/{import}")),
        (
            Method::DELETE,
            format!("/api/v3/discovery-flow/flows/{flow}"),
        ),
    ]
}

fn body_for(method: &Method, path: &str) -> Option<serde_json::Value> {
    match (method, path) {
        (&Method::PUT, _) => Some(json!({ "target_field": "hostname" })),
        (&Method::POST, p) if p == LIST || p.ends_with("store-import") => {
            Some(json!({ "file_data": cmdb_rows(1) }))
        }
        _ => None,
    }
}

async fn a_user_reaches_only_the_tenants_granted(test_db: TestDb) {
    let Rbac {
        _keep,
        db,
        tenant,
        other,
        user,
    } = rbac(test_db.engine).await;
    // The same data in the tenant granted and in one that is not.
    let mine = migrated_session(&db, tenant).await;
    let theirs = migrated_session(&db, other).await;
    let mapping_of = |import| {
        let db = db.clone();
        async move {
            let id: DbUuid = on_pool!(&db, pool => {
                sqlx::query_scalar("SELECT id FROM import_field_mappings WHERE data_import_id = $1 ORDER BY id LIMIT 1")
                    .bind(import)
                    .fetch_one(pool)
                    .await
                    .unwrap()
            });
            id.0.to_string()
        }
    };
    let nowhere = TenantId::new(
        ClientAccountId::from_stored(Uuid::new_v4()),
        EngagementId::from_stored(Uuid::new_v4()),
    );
    // The granted user's engagement under another client account is not granted either.
    let crossed = TenantId::new(tenant.client_account_id, other.engagement_id);
    let state = hs256_state(&db, GrantSource::Rbac);
    let token = test_token(user);
    for mode in [FlowIdPrimary::Off, FlowIdPrimary::Shadow, FlowIdPrimary::On] {
        flags::set_flag(&db, FlagScope::Global, mode, "test")
            .await
            .unwrap();
        state.refresh_flags().await.unwrap();
        let routes = every_route(
            &theirs.session.to_string(),
            &theirs.flow_id.to_string(),
            &theirs.import_id.to_string(),
            &mapping_of(theirs.import_id).await,
        );
        let before = all_counts(&db).await;
        for (method, path) in &routes {
            let mut bodies = Vec::new();
            for target in [other, nowhere, crossed] {
                let request = request(method.clone(), path, target, body_for(method, path));
                let answer = send(&state, with_token(request, &token)).await;
                assert_eq!(
                    answer.status,
                    StatusCode::FORBIDDEN,
                    "{mode:?} {method} {path}: {}",
                    answer.text
                );
                assert_eq!(answer.error_code(), "tenant_forbidden");
                bodies.push(answer.text);
            }
            assert!(
                bodies.windows(2).all(|w| w[0] == w[1]),
                "{method} {path}: {bodies:?}"
            );
        }
        assert_eq!(
            all_counts(&db).await,
            before,
            "{mode:?}: a refused request wrote"
        );
        // Reads of its own tenant are served.
        for (method, path) in every_route(
            &mine.session.to_string(),
            &mine.flow_id.to_string(),
            &mine.import_id.to_string(),
            &mapping_of(mine.import_id).await,
        ) {
            if method != Method::GET {
                continue;
            }
            let answer = send(
                &state,
                with_token(request(method.clone(), &path, tenant, None), &token),
            )
            .await;
            assert!(
                answer.status != StatusCode::FORBIDDEN && answer.status != StatusCode::UNAUTHORIZED,
                "{mode:?} {method} {path}: {}",
                answer.text
            );
        }
    }
}
both_engines!(
    a_user_reaches_only_the_tenants_granted,
    a_user_reaches_only_the_tenants_granted
);

async fn rbac_grants_follow_the_platform_rows(test_db: TestDb) {
    let Rbac {
        _keep,
        db,
        tenant,
        other,
        ..
    } = rbac(test_db.engine).await;
    let state = hs256_state(&db, GrantSource::Rbac);
    let status = |user: Uuid, target: TenantId| {
        let state = state.clone();
        async move {
            send(
                &state,
                with_token(request(Method::GET, LIST, target, None), &test_token(user)),
            )
            .await
            .status
        }
    };
    // Association + engagement access: that engagement only.
    let member = insert_user(&db).await;
    insert_profile(&db, member, "active").await;
    grant_engagement(&db, member, other).await;
    assert_eq!(status(member, other).await, StatusCode::OK);
    assert_eq!(status(member, tenant).await, StatusCode::FORBIDDEN);
    // An expired client access grants nothing.
    let lapsed = insert_user(&db).await;
    insert_profile(&db, lapsed, "active").await;
    grant_client(
        &db,
        lapsed,
        tenant,
        Some(DbTime(chrono::Utc::now() - chrono::Duration::hours(1))),
    )
    .await;
    assert_eq!(status(lapsed, tenant).await, StatusCode::FORBIDDEN);
    // A grant made after a refusal is seen once the cache is cleared.
    let later = insert_user(&db).await;
    insert_profile(&db, later, "active").await;
    assert_eq!(status(later, tenant).await, StatusCode::FORBIDDEN);
    grant_client(&db, later, tenant, None).await;
    assert_eq!(status(later, tenant).await, StatusCode::FORBIDDEN, "cached");
    state.auth.as_ref().unwrap().grants.clear_cache();
    assert_eq!(status(later, tenant).await, StatusCode::OK);
}
both_engines!(
    rbac_grants_follow_the_platform_rows,
    rbac_grants_follow_the_platform_rows
);

async fn claims_grant_only_what_they_name(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let other = insert_tenant(&db).await;
    let user = insert_user(&db).await;
    let state = hs256_state(&db, GrantSource::Claims);
    let mut granted = claims(user);
    granted["client_account_id"] = json!(tenant.client_account_id.to_string());
    granted["engagement_ids"] = json!([tenant.engagement_id.to_string()]);
    let token = hs256(&granted, TEST_SECRET.as_bytes());
    let answer = send(
        &state,
        with_token(request(Method::GET, LIST, tenant, None), &token),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let crossed = TenantId::new(tenant.client_account_id, other.engagement_id);
    for target in [other, crossed] {
        let answer = send(
            &state,
            with_token(request(Method::GET, LIST, target, None), &token),
        )
        .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
    }
    // No claims at all: nothing granted; a malformed claim: the token is refused.
    let bare = test_token(user);
    let answer = send(
        &state,
        with_token(request(Method::GET, LIST, tenant, None), &bare),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    granted["engagement_ids"] = json!("not-a-list");
    let bad = hs256(&granted, TEST_SECRET.as_bytes());
    let answer = send(
        &state,
        with_token(request(Method::GET, LIST, tenant, None), &bad),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}
both_engines!(
    claims_grant_only_what_they_name,
    claims_grant_only_what_they_name
);

async fn the_token_user_is_who_is_recorded(test_db: TestDb) {
    let Rbac {
        _keep,
        db,
        tenant,
        user,
        ..
    } = rbac(test_db.engine).await;
    let state = hs256_state(&db, GrantSource::Rbac);
    let someone_else = insert_user(&db).await;
    let mut upload = request(
        Method::POST,
        LIST,
        tenant,
        Some(json!({ "file_data": cmdb_rows(2) })),
    );
    upload
        .headers_mut()
        .insert("x-user-id", someone_else.to_string().parse().unwrap());
    let answer = send(&state, with_token(upload, &test_token(user))).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let import_id = answer.data()["import_id"].as_str().unwrap().to_owned();
    let flow_id = answer.data()["flow_id"].as_str().unwrap().to_owned();
    let imported_by: DbUuid = on_pool!(&db, pool => {
        sqlx::query_scalar("SELECT imported_by FROM data_imports WHERE id = $1")
            .bind(DbUuid(Uuid::parse_str(&import_id).unwrap()))
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(imported_by.0, user);
    let mut delete = request(
        Method::DELETE,
        &format!("/api/v3/discovery-flow/flows/{flow_id}"),
        tenant,
        None,
    );
    delete
        .headers_mut()
        .insert("x-user-id", someone_else.to_string().parse().unwrap());
    let answer = send(&state, with_token(delete, &test_token(user))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let deleted_by: String = on_pool!(&db, pool => {
        sqlx::query_scalar("SELECT deleted_by FROM flow_deletion_audit ORDER BY deleted_at DESC LIMIT 1")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(deleted_by, user.to_string());
}
both_engines!(
    the_token_user_is_who_is_recorded,
    the_token_user_is_who_is_recorded
);

async fn ops_routes_stay_open_and_ready_says_auth(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let secured = hs256_state(&db, GrantSource::Claims);
    for path in ["/health", "/ready", "/metrics", "/openapi.json"] {
        let answer = send(
            &secured,
            axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
    }
    let ready = |state| async move {
        send(
            &state,
            axum::http::Request::get("/ready")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
    };
    let answer = ready(secured.clone()).await;
    assert_eq!(answer.data()["auth"], json!("jwt"));
    assert!(answer.data().get("warning").is_none());
    let open = ready(state(&db)).await;
    assert_eq!(open.data()["auth"], json!("none"));
    assert!(open.data()["warning"]
        .as_str()
        .unwrap()
        .contains("authentication is off"));
}
both_engines!(
    ops_routes_stay_open_and_ready_says_auth,
    ops_routes_stay_open_and_ready_says_auth
);
