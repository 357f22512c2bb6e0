//! The legacy v1 API: deprecation headers, every session id form, same data as v3, tenant
//! isolation.

// Test bodies are plain async fns run by `both_engines!`, so clippy does not see them as
// tests: allow the unwraps it allows in tests.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::both_engines;
use crate::support::harness::TestDb;
use crate::support::service_support::*;

async fn store_import(
    state: &flowkey::http::AppState,
    tenant: flowkey::ids::TenantId,
    session: Option<String>,
) -> Answer {
    let mut body = json!({
        "file_data": cmdb_rows(4),
        "metadata": {"filename": "legacy.csv", "size": 1234, "type": "text/csv"},
        "upload_context": {"intended_type": "cmdb"},
    });
    if let Some(session) = session {
        body["upload_context"]["validation_session_id"] = json!(session);
    }
    send(
        state,
        request(
            Method::POST,
            "/api/v1/data-import/store-import",
            tenant,
            Some(body),
        ),
    )
    .await
}

fn assert_deprecated(answer: &Answer) {
    assert_eq!(answer.headers["deprecation"], "@1795651200");
    assert!(answer.headers.contains_key("sunset"));
    let link = answer.headers["link"].to_str().unwrap();
    assert!(
        link.contains("rel=\"successor-version\"") && link.contains("/api/v3/"),
        "{link}"
    );
}

async fn v1_matches_v3(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let state = state(&db);
    let stored = store_import(&state, tenant, None).await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text);
    assert_deprecated(&stored);
    let session = stored.data()["import_session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let import_id = stored.data()["import_id"].as_str().unwrap().to_owned();
    let flow_id = stored.data()["flow_id"].as_str().unwrap().to_owned();

    let pairs = [
        (
            format!("/api/v1/data-import/import/{session}"),
            format!("/api/v3/data-import/imports/{import_id}"),
        ),
        (
            format!("/api/v1/data-import/processing-status/disc_session_{session}"),
            format!("/api/v3/discovery-flow/flows/{flow_id}/status"),
        ),
        (
            format!(
                "/api/v1/data-import/validation-session/session-{}",
                session.to_uppercase()
            ),
            format!("/api/v3/field-mapping/mappings/{flow_id}"),
        ),
        (
            format!("/api/v1/unified-discovery/flow/status/{session}"),
            format!("/api/v3/discovery-flow/flows/{flow_id}"),
        ),
        (
            format!("/api/v1/data-import/import/disc_session_{session}/records?limit=3"),
            format!("/api/v3/data-import/imports/{import_id}/records?limit=3"),
        ),
    ];
    for (v1, v3) in pairs {
        let old = send(&state, request(Method::GET, &v1, tenant, None)).await;
        let new = send(&state, request(Method::GET, &v3, tenant, None)).await;
        assert_eq!(old.status, StatusCode::OK, "{v1}: {}", old.text);
        assert_eq!(new.status, StatusCode::OK, "{v3}: {}", new.text);
        assert_eq!(old.body, new.body, "{v1} and {v3} answer the same data");
        assert_deprecated(&old);
        let successor = v3.split('?').next().unwrap();
        assert!(
            old.headers["link"].to_str().unwrap().contains(successor),
            "{v1} links to {successor}"
        );
        assert!(!new.headers.contains_key("deprecation"));
    }
    // A second upload in the same session (X-Session-ID header) joins the same flow.
    let mut again = request(
        Method::POST,
        "/api/v1/data-import/store-import",
        tenant,
        Some(json!({"file_data": cmdb_rows(2), "metadata": {"filename": "more.csv"}})),
    );
    again.headers_mut().insert(
        "x-session-id",
        format!("disc_session_{session}").parse().unwrap(),
    );
    let again = send(&state, again).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.data()["flow_id"], flow_id.as_str());
    assert_eq!(again.data()["import_session_id"], session.as_str());
    let newest = send(
        &state,
        request(
            Method::GET,
            &format!("/api/v1/data-import/import/{session}"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(newest.data()["total_records"], 2);
}
both_engines!(
    v1_routes_answer_the_same_data_as_their_v3_successors,
    v1_matches_v3
);

async fn v1_bad_inputs(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let other = insert_tenant(&db).await;
    let state = state(&db);
    let stored = store_import(
        &state,
        tenant,
        Some(format!("session-{}", uuid::Uuid::new_v4())),
    )
    .await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text);
    let session = stored.data()["import_session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for route in [
        "data-import/import",
        "data-import/processing-status",
        "data-import/validation-session",
        "unified-discovery/flow/status",
    ] {
        let malformed = send(
            &state,
            request(
                Method::GET,
                &format!("/api/v1/{route}/flow_{session}"),
                tenant,
                None,
            ),
        )
        .await;
        assert_eq!(malformed.status, StatusCode::BAD_REQUEST, "{route}");
        assert_deprecated(&malformed);
        let foreign = send(
            &state,
            request(
                Method::GET,
                &format!("/api/v1/{route}/{session}"),
                other,
                None,
            ),
        )
        .await;
        assert_eq!(
            foreign.status,
            StatusCode::NOT_FOUND,
            "{route}: {}",
            foreign.text
        );
        let unknown = send(
            &state,
            request(
                Method::GET,
                &format!("/api/v1/{route}/{}", uuid::Uuid::new_v4()),
                tenant,
                None,
            ),
        )
        .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{route}");
    }
    // Another tenant cannot upload into this tenant's session.
    let hijack = store_import(&state, other, Some(session.clone())).await;
    assert_eq!(hijack.status, StatusCode::NOT_FOUND, "{}", hijack.text);
    let bad_session = store_import(&state, tenant, Some("nonsense".into())).await;
    assert_eq!(bad_session.status, StatusCode::BAD_REQUEST);
}
both_engines!(
    v1_refuses_malformed_unknown_and_foreign_sessions,
    v1_bad_inputs
);
