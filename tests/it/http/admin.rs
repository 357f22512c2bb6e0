//! The admin bearer token: disabled without one (403), 401 with a challenge for a missing
//! or wrong token, and the tenant routes untouched by it.

// Test bodies are plain async fns run by `both_engines!`, so clippy does not see them as
// tests: allow the unwraps it allows in tests.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use flowkey::http::{AppState, ServiceConfig};

use crate::both_engines;
use crate::support::harness::TestDb;
use crate::support::service_support::*;

const ADMIN_ROUTES: [(&str, &str); 5] = [
    ("GET", "/api/admin/flags"),
    ("PUT", "/api/admin/flags/enable_flow_id_primary"),
    ("GET", "/api/admin/readiness"),
    ("GET", "/api/admin/legacy-traffic"),
    ("GET", "/api/admin/mapping-statistics"),
];

fn with_authorization(method: &str, uri: &str, authorization: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(value) = authorization {
        builder = builder.header(header::AUTHORIZATION, value);
    }
    builder.body(Body::from(r#"{"value": "shadow"}"#)).unwrap()
}

async fn no_token_configured(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let state = AppState::new(db.clone(), ServiceConfig::default()).unwrap();
    for (method, uri) in ADMIN_ROUTES {
        for authorization in [None, Some("Bearer anything-at-all-here")] {
            let answer = send(&state, with_authorization(method, uri, authorization)).await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{method} {uri}");
            assert_eq!(answer.error_code(), "admin_disabled");
            let message = answer.body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("--admin-token") && message.contains("FLOWKEY_ADMIN_TOKEN"),
                "the message says how to enable them: {message}"
            );
        }
    }
    // Nothing was changed by the refused PUT.
    assert_eq!(count_rows(&db, "flowkey_flags").await, 0);
}
both_engines!(
    admin_routes_are_forbidden_until_a_token_is_configured,
    no_token_configured
);

async fn missing_or_wrong_token(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let state = state(&db);
    let wrong = format!("Bearer {ADMIN_TOKEN}x");
    let other_scheme = format!("Basic {ADMIN_TOKEN}");
    for (method, uri) in ADMIN_ROUTES {
        for (authorization, challenge) in [
            (None, "Bearer realm=\"flowkey-admin\""),
            (Some("Bearer"), "Bearer realm=\"flowkey-admin\""),
            (
                Some(other_scheme.as_str()),
                "Bearer realm=\"flowkey-admin\"",
            ),
            (
                Some(wrong.as_str()),
                "Bearer realm=\"flowkey-admin\", error=\"invalid_token\"",
            ),
        ] {
            let answer = send(&state, with_authorization(method, uri, authorization)).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{method} {uri} with {authorization:?}"
            );
            assert_eq!(answer.error_code(), "unauthorized");
            assert_eq!(
                answer.headers.get(header::WWW_AUTHENTICATE).unwrap(),
                challenge
            );
        }
    }
    assert_eq!(count_rows(&db, "flowkey_flags").await, 0);

    let right = format!("bearer {ADMIN_TOKEN}");
    let flags = send(
        &state,
        with_authorization("GET", "/api/admin/flags", Some(&right)),
    )
    .await;
    assert_eq!(flags.status, StatusCode::OK, "{}", flags.text);
    let set = send(
        &state,
        with_authorization(
            "PUT",
            "/api/admin/flags/enable_flow_id_primary",
            Some(&right),
        ),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    assert_eq!(count_rows(&db, "flowkey_flags").await, 1);

    // The token guards the admin routes only: tenant routes need none.
    let tenant = insert_tenant(&db).await;
    let flows = send(
        &state,
        request(Method::GET, "/api/v3/discovery-flow/flows", tenant, None),
    )
    .await;
    assert_eq!(flows.status, StatusCode::OK, "{}", flows.text);
}
both_engines!(
    admin_routes_answer_401_with_a_bearer_challenge_without_the_right_token,
    missing_or_wrong_token
);
