//! The v3 API through `app(state).oneshot(…)` on both engines: success paths, bad inputs,
//! tenant isolation on every route, pagination.

// Test bodies are plain async fns run by `both_engines!`, so clippy does not see them as
// tests: allow the unwraps it allows in tests.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;

use crate::both_engines;
use crate::support::harness::TestDb;
use crate::support::service_support::*;

async fn json_import_round_trip(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let state = state(&db);
    let created = send(&state, request(Method::POST, "/api/v3/data-import/imports", tenant,
        Some(json!({ "file_data": cmdb_rows(12), "metadata": {"filename": "cmdb.json", "size": 999, "type": "application/json"} })))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["success"], true);
    let import_id = created.data()["import_id"].as_str().unwrap().to_owned();
    let flow_id = created.data()["flow_id"].as_str().unwrap().to_owned();
    assert_eq!(created.data()["record_count"], 12);
    assert_eq!(created.data()["field_mapping_count"], 4);

    let import = send(
        &state,
        request(
            Method::GET,
            &format!("/api/v3/data-import/imports/{import_id}"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(import.status, StatusCode::OK);
    assert_eq!(import.data()["flow_id"], flow_id.as_str());
    assert_eq!(import.data()["total_records"], 12);

    let listed = send(
        &state,
        request(
            Method::GET,
            &format!("/api/v3/data-import/imports?flow_id={flow_id}&status=completed"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(listed.data()["items"].as_array().unwrap().len(), 1);
    let none = send(
        &state,
        request(
            Method::GET,
            "/api/v3/data-import/imports?status=pending",
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(none.data()["items"].as_array().unwrap().len(), 0);

    // Records page by cursor, in row order, with nothing lost or repeated.
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let uri = match &cursor {
            None => format!("/api/v3/data-import/imports/{import_id}/records?limit=5"),
            Some(c) => {
                format!("/api/v3/data-import/imports/{import_id}/records?limit=5&cursor={c}")
            }
        };
        let page = send(&state, request(Method::GET, &uri, tenant, None)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for item in page.data()["items"].as_array().unwrap() {
            rows.push(item["row_number"].as_i64().unwrap());
        }
        match page.data()["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(rows, (1..=12).collect::<Vec<_>>());

    let mappings = send(
        &state,
        request(
            Method::GET,
            &format!("/api/v3/field-mapping/mappings/{flow_id}"),
            tenant,
            None,
        ),
    )
    .await;
    let items = mappings.data()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 4);
    let by_source = |name: &str| {
        items
            .iter()
            .find(|m| m["source_field"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_source("CPU Cores")["target_field"], "cpu_cores");
    assert_eq!(
        by_source("Asset Name")["sample_values"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert!(
        by_source("Asset Name")["confidence_score"]
            .as_f64()
            .unwrap()
            > 0.5
    );

    let deleted = send(
        &state,
        request(
            Method::DELETE,
            &format!("/api/v3/data-import/imports/{import_id}"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.data()["deleted"]["records"], 12);
    let gone = send(
        &state,
        request(
            Method::GET,
            &format!("/api/v3/data-import/imports/{import_id}"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.body["success"], false);
}
both_engines!(
    a_json_import_is_stored_listed_paged_and_deleted,
    json_import_round_trip
);

fn multipart(tenant: flowkey::ids::TenantId, file: &[u8]) -> Request<Body> {
    let boundary = "XbOuNdArYx";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"import_type\"\r\n\r\ncmdb\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"assets.csv\"\r\nContent-Type: text/csv\r\n\r\n").as_bytes());
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Request::builder()
        .method(Method::POST)
        .uri("/api/v3/data-import/imports/upload")
        .header("x-client-account-id", tenant.client_account_id.to_string())
        .header("x-engagement-id", tenant.engagement_id.to_string())
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .unwrap()
}

async fn csv_upload(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let state = state(&db);
    let file = "\u{feff}Hostname,Notes,Memory GB\nweb01,\"rack 4, row 2\",16\n\"db01\",\"said \"\"hi\"\"\",64\n";
    let created = send(&state, multipart(tenant, file.as_bytes())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.data()["record_count"], 2);
    let import_id = created.data()["import_id"].as_str().unwrap();
    let records = send(
        &state,
        request(
            Method::GET,
            &format!("/api/v3/data-import/imports/{import_id}/records"),
            tenant,
            None,
        ),
    )
    .await;
    let first = &records.data()["items"][0]["raw_data"];
    assert_eq!(
        first["Hostname"], "web01",
        "the BOM is not part of the first header"
    );
    assert_eq!(first["Notes"], "rack 4, row 2");
    assert_eq!(
        records.data()["items"][1]["raw_data"]["Notes"],
        "said \"hi\""
    );

    let bad = send(&state, multipart(tenant, b"a,b\n1,2\n3\n4,5\n6,7,8\n")).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    assert_eq!(bad.error_code(), "invalid_csv");
    let lines: Vec<i64> = bad.body["error"]["details"]["bad_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, vec![3, 5]);
    let empty = send(&state, multipart(tenant, b"")).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        count_rows(&db, "data_imports").await,
        1,
        "bad files store nothing"
    );
}
both_engines!(
    a_csv_upload_reads_quotes_and_bom_and_reports_bad_lines,
    csv_upload
);

async fn bad_inputs_are_client_errors(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let state = small_body_state(&db, 4096);
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            request(
                Method::GET,
                "/api/v3/data-import/imports/not-a-uuid",
                tenant,
                None,
            ),
            StatusCode::BAD_REQUEST,
            "malformed_id",
        ),
        (
            request(
                Method::GET,
                "/api/v3/discovery-flow/flows/12345",
                tenant,
                None,
            ),
            StatusCode::BAD_REQUEST,
            "malformed_id",
        ),
        (
            request(
                Method::PUT,
                "/api/v3/field-mapping/mappings/xyz",
                tenant,
                Some(json!({"target_field": "a"})),
            ),
            StatusCode::BAD_REQUEST,
            "malformed_id",
        ),
        (
            request(
                Method::GET,
                &format!("/api/v3/data-import/imports/{}", uuid::Uuid::new_v4()),
                tenant,
                None,
            ),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            request(
                Method::GET,
                &format!("/api/v3/discovery-flow/flows/{}", uuid::Uuid::new_v4()),
                tenant,
                None,
            ),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            request(
                Method::GET,
                "/api/v3/data-import/imports?limit=0",
                tenant,
                None,
            ),
            StatusCode::BAD_REQUEST,
            "bad_pagination",
        ),
        (
            request(
                Method::GET,
                "/api/v3/data-import/imports?limit=100000",
                tenant,
                None,
            ),
            StatusCode::BAD_REQUEST,
            "bad_pagination",
        ),
        (
            request(
                Method::GET,
                "/api/v3/data-import/imports?limit=ten",
                tenant,
                None,
            ),
            StatusCode::BAD_REQUEST,
            "bad_pagination",
        ),
        (
            request(
                Method::GET,
                "/api/v3/discovery-flow/flows?cursor=nothex",
                tenant,
                None,
            ),
            StatusCode::BAD_REQUEST,
            "bad_pagination",
        ),
        (
            request(
                Method::POST,
                "/api/v3/data-import/imports",
                tenant,
                Some(json!({"file_data": []})),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_file_data",
        ),
        (
            request(
                Method::POST,
                "/api/v3/data-import/imports",
                tenant,
                Some(json!({"file_data": [1, 2]})),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_file_data",
        ),
        (
            request(
                Method::POST,
                "/api/v3/data-import/imports",
                tenant,
                Some(json!({"rows": []})),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            request(
                Method::POST,
                "/api/v3/data-import/imports",
                tenant,
                Some(json!({"file_data": cmdb_rows(200)})),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            request(Method::GET, "/api/v3/nothing-here", tenant, None),
            StatusCode::NOT_FOUND,
            "no_such_route",
        ),
    ];
    for (req, status, code) in cases {
        let uri = req.uri().to_string();
        let answer = send(&state, req).await;
        assert_eq!(answer.status, status, "{uri}: {}", answer.text);
        assert_eq!(answer.error_code(), code, "{uri}");
        assert_eq!(answer.body["success"], false, "{uri}");
    }
    let syntax = Request::builder()
        .method(Method::POST)
        .uri("/api/v3/data-import/imports")
        .header("x-client-account-id", tenant.client_account_id.to_string())
        .header("x-engagement-id", tenant.engagement_id.to_string())
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    assert_eq!(send(&state, syntax).await.status, StatusCode::BAD_REQUEST);
    let big_csv = send(&state, multipart(tenant, &vec![b'a'; 10_000])).await;
    assert_eq!(
        big_csv.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        big_csv.text
    );
    // The unread rest of the body is still on the connection: the client must not reuse it.
    assert_eq!(big_csv.headers["connection"], "close");
}
both_engines!(
    malformed_ids_bad_pages_bad_bodies_and_oversized_bodies_are_4xx,
    bad_inputs_are_client_errors
);

async fn tenant_headers_are_required(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let state = state(&db);
    let missing = Request::builder()
        .uri("/api/v3/discovery-flow/flows")
        .body(Body::empty())
        .unwrap();
    let answer = send(&state, missing).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.error_code(), "missing_tenant");
    let malformed = Request::builder()
        .uri("/api/v3/discovery-flow/flows")
        .header("x-client-account-id", "acme")
        .header("x-engagement-id", tenant.engagement_id.to_string())
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&state, malformed).await.error_code(),
        "malformed_tenant"
    );
    let duplicated = Request::builder()
        .uri("/api/v3/discovery-flow/flows")
        .header("x-client-account-id", tenant.client_account_id.to_string())
        .header("x-client-account-id", uuid::Uuid::new_v4().to_string())
        .header("x-engagement-id", tenant.engagement_id.to_string())
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&state, duplicated).await.error_code(),
        "duplicate_header"
    );
}
both_engines!(
    missing_malformed_or_duplicated_tenant_headers_are_400,
    tenant_headers_are_required
);

async fn every_route_isolates_tenants(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let other = insert_tenant(&db).await;
    let state = state(&db);
    let (import_id, flow_id) = v3_import(&state, tenant, 3).await;
    let mappings = send(
        &state,
        request(
            Method::GET,
            &format!("/api/v3/field-mapping/mappings/{flow_id}"),
            tenant,
            None,
        ),
    )
    .await;
    let mapping_id = mappings.data()["items"][0]["mapping_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let routes = [
        (
            Method::GET,
            format!("/api/v3/data-import/imports/{import_id}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v3/data-import/imports/{import_id}/records"),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v3/data-import/imports/{import_id}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v3/discovery-flow/flows/{flow_id}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v3/discovery-flow/flows/{flow_id}/status"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v3/discovery-flow/flows/{flow_id}/pause"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v3/discovery-flow/flows/{flow_id}/resume"),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v3/discovery-flow/flows/{flow_id}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v3/field-mapping/mappings/{flow_id}"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/v3/field-mapping/mappings/{mapping_id}"),
            Some(json!({"target_field": "x"})),
        ),
        (
            Method::POST,
            format!("/api/v3/field-mapping/mappings/{mapping_id}/approve"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v3/field-mapping/mappings/{mapping_id}/reject"),
            None,
        ),
    ];
    let before = all_counts(&db).await;
    for (method, uri, body) in routes {
        let answer = send(&state, request(method.clone(), &uri, other, body)).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{method} {uri}: {}",
            answer.text
        );
    }
    assert_eq!(
        all_counts(&db).await,
        before,
        "nothing of the owner changed"
    );
    for uri in [
        "/api/v3/data-import/imports",
        "/api/v3/discovery-flow/flows",
    ] {
        let listed = send(&state, request(Method::GET, uri, other, None)).await;
        assert_eq!(listed.data()["items"].as_array().unwrap().len(), 0, "{uri}");
    }
}
both_engines!(
    every_v3_route_answers_404_for_another_tenants_resource,
    every_route_isolates_tenants
);

async fn flows_and_mappings_change(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let state = state(&db);
    let (_import_id, flow_id) = v3_import(&state, tenant, 3).await;
    let flow = send(
        &state,
        request(
            Method::GET,
            &format!("/api/v3/discovery-flow/flows/{flow_id}"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(flow.data()["status"], "active");
    assert_eq!(flow.data()["data_import_completed"], true);
    let status = send(
        &state,
        request(
            Method::GET,
            &format!("/api/v3/discovery-flow/flows/{flow_id}/status"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(status.data()["current_phase"], "attribute_mapping");
    let paused = send(
        &state,
        request(
            Method::POST,
            &format!("/api/v3/discovery-flow/flows/{flow_id}/pause"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(paused.data()["status"], "paused");
    let again = send(
        &state,
        request(
            Method::POST,
            &format!("/api/v3/discovery-flow/flows/{flow_id}/pause"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let resumed = send(
        &state,
        request(
            Method::POST,
            &format!("/api/v3/discovery-flow/flows/{flow_id}/resume"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(resumed.data()["status"], "active");
    let listed = send(
        &state,
        request(
            Method::GET,
            "/api/v3/discovery-flow/flows?status=active",
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(listed.data()["items"].as_array().unwrap().len(), 1);

    let mappings = send(
        &state,
        request(
            Method::GET,
            &format!("/api/v3/field-mapping/mappings/{flow_id}?limit=2"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(mappings.data()["items"].as_array().unwrap().len(), 2);
    assert!(mappings.data()["next_cursor"].is_string());
    let mapping_id = mappings.data()["items"][0]["mapping_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first_target = mappings.data()["items"][0]["target_field"].clone();
    let changed = send(
        &state,
        request(
            Method::PUT,
            &format!("/api/v3/field-mapping/mappings/{mapping_id}"),
            tenant,
            Some(json!({"target_field": "custom_attr"})),
        ),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(changed.data()["target_field"], "custom_attr");
    assert_eq!(changed.data()["original_ai_suggestion"], first_target);
    assert_eq!(changed.data()["is_user_defined"], true);
    let empty = send(
        &state,
        request(
            Method::PUT,
            &format!("/api/v3/field-mapping/mappings/{mapping_id}"),
            tenant,
            Some(json!({"target_field": "  "})),
        ),
    )
    .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    let approved = send(
        &state,
        request(
            Method::POST,
            &format!("/api/v3/field-mapping/mappings/{mapping_id}/approve"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(approved.data()["status"], "approved");
    assert_eq!(approved.data()["is_validated"], true);
    let rejected = send(
        &state,
        request(
            Method::POST,
            &format!("/api/v3/field-mapping/mappings/{mapping_id}/reject"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(rejected.data()["status"], "rejected");

    let deleted = send(
        &state,
        request(
            Method::DELETE,
            &format!("/api/v3/discovery-flow/flows/{flow_id}?reason=cleanup"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.data()["records"], 3);
    assert_eq!(count_rows(&db, "flow_deletion_audit").await, 1);
    assert_eq!(count_rows(&db, "discovery_flows").await, 0);
    assert_eq!(count_rows(&db, "raw_import_records").await, 0);
    let gone = send(
        &state,
        request(
            Method::GET,
            &format!("/api/v3/discovery-flow/flows/{flow_id}"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}
both_engines!(
    flows_pause_resume_and_delete_and_mappings_change_target_and_verdict,
    flows_and_mappings_change
);
