//! The OpenAPI document is complete (every operation names its parameters and the schema of
//! each answer, every `$ref` resolves), and real answers match the schema documented for
//! their status.
//!
//! The structural check below is ours, not a JSON Schema crate: `jsonschema` is not in this
//! machine's offline registry, and the check needs only what utoipa emits (`$ref`, `oneOf`/
//! `allOf`/`anyOf`, `type` as a name or a list, `required`, `properties`, `items`, `enum`,
//! and the `uuid`/`date-time` formats).

// Test bodies are plain async fns run by `both_engines!`, so clippy does not see them as
// tests: allow the unwraps it allows in tests.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::both_engines;
use crate::support::harness::TestDb;
use crate::support::service_support::*;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn document() -> Value {
    serde_json::from_str(&flowkey::http::openapi_json()).unwrap()
}

/// Every `{name}` of a path template.
fn template_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// Every `$ref` in the document.
fn refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => found.push(target.clone()),
                    _ => refs(inner, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, found)),
        _ => {}
    }
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

#[test]
fn every_operation_documents_its_parameters_and_answers_and_every_ref_resolves() {
    let doc = document();
    let mut problems = Vec::new();
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    let mut lists = 0;
    let mut operation_ids = std::collections::HashSet::new();
    for (path, item) in paths {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            operations += 1;
            let at = format!("{} {path}", method.to_uppercase());
            match op["operationId"].as_str() {
                Some(id) if operation_ids.insert(id.to_owned()) => {}
                other => {
                    problems.push(format!("{at}: operationId {other:?} missing or not unique"))
                }
            }
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let param = |name: &str, place: &str| {
                params
                    .iter()
                    .find(|p| p["name"].as_str() == Some(name) && p["in"] == place)
                    .cloned()
            };
            for p in &params {
                if p.get("schema").is_none() {
                    problems.push(format!("{at}: parameter {} has no schema", p["name"]));
                }
            }
            for name in template_params(path) {
                match param(name, "path") {
                    Some(p) if p["required"] == true => {}
                    _ => problems.push(format!("{at}: path parameter {name} not documented")),
                }
            }
            if path.starts_with("/api/v1/") || path.starts_with("/api/v3/") {
                for header in ["X-Client-Account-Id", "X-Engagement-Id"] {
                    match param(header, "header") {
                        Some(p) if p["required"] == true && p["schema"]["format"] == "uuid" => {}
                        _ => problems.push(format!("{at}: required uuid header {header} missing")),
                    }
                }
            }
            if path.starts_with("/api/admin/") {
                if op["security"] != json!([{ "admin_token": [] }]) {
                    problems.push(format!(
                        "{at}: admin operation without admin_token security"
                    ));
                }
                for status in ["401", "403"] {
                    if op["responses"].get(status).is_none() {
                        problems.push(format!("{at}: no {status} documented"));
                    }
                }
            }
            if path.starts_with("/api/v1/") && path.contains("{session_id}") {
                let described = param("session_id", "path")
                    .and_then(|p| p["description"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                if !(described.contains("disc_session_") && described.contains("session-")) {
                    problems.push(format!("{at}: session_id does not name its accepted forms"));
                }
            }
            if ["post", "put"].contains(&method)
                && !path.ends_with("/pause")
                && !path.ends_with("/resume")
                && !path.ends_with("/approve")
                && !path.ends_with("/reject")
            {
                let content = &op["requestBody"]["content"];
                let has_schema = content.as_object().is_some_and(|c| {
                    !c.is_empty() && c.values().all(|m| m.get("schema").is_some())
                });
                if !has_schema {
                    problems.push(format!("{at}: request body without a schema"));
                }
            }
            if path.starts_with("/api/v1/") != (op["deprecated"] == true) {
                problems.push(format!("{at}: deprecated exactly when v1"));
            }
            if path == "/api/v1/data-import/store-import"
                && !param("X-Session-ID", "header").is_some_and(|p| p["required"] == false)
            {
                problems.push(format!("{at}: optional X-Session-ID header not documented"));
            }
            let pages = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .is_some_and(|name| name.contains("Envelope_Page_"));
            if pages {
                lists += 1;
                for name in ["cursor", "limit"] {
                    if param(name, "query").is_none() {
                        problems.push(format!("{at}: a list without the {name} parameter"));
                    }
                }
                if param("limit", "query").is_some_and(|p| p["schema"]["maximum"] != 500) {
                    problems.push(format!("{at}: limit without its bound"));
                }
            }
            let responses = op["responses"].as_object().unwrap();
            if !responses.keys().any(|status| status.starts_with('2')) {
                problems.push(format!("{at}: no 2xx response"));
            }
            for (status, response) in responses {
                let content = response["content"].as_object();
                let ok = content.is_some_and(|c| {
                    !c.is_empty() && c.values().all(|media| media.get("schema").is_some())
                });
                if !ok {
                    problems.push(format!("{at}: response {status} has no body schema"));
                }
            }
        }
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    for reference in &found {
        if resolve(&doc, reference).is_none() {
            problems.push(format!("$ref {reference} does not resolve"));
        }
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "DataImport",
        "RawImportRecord",
        "ImportFieldMapping",
        "DiscoveryFlow",
        "FlowStatus",
        "ImportCreated",
        "ErrorEnvelope",
        "ErrorBody",
        "FlowIdPrimary",
        "StoredFlag",
        "CreateImportBody",
        "StoreImportBody",
        "SetFlagBody",
        "FlowId",
        "SessionId",
    ] {
        if !schemas.contains_key(name) {
            problems.push(format!("components.schemas.{name} missing"));
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
    assert!(operations >= 30, "{operations} operations documented");
    assert_eq!(
        lists, 6,
        "the paged lists (imports, records, flows, mappings, v1 mappings, v1 records)"
    );
    assert!(!found.is_empty());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Where `value` does not match `schema` (empty when it does).
fn mismatches(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    if let Some(reference) = schema["$ref"].as_str() {
        return match resolve(doc, reference) {
            Some(target) => mismatches(doc, target, value, at),
            None => vec![format!("{at}: unresolved {reference}")],
        };
    }
    let mut problems = Vec::new();
    if let Some(options) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        if !options
            .iter()
            .any(|option| mismatches(doc, option, value, at).is_empty())
        {
            problems.push(format!("{at}: {value} matches none of {options:?}"));
        }
    }
    if let Some(parts) = schema["allOf"].as_array() {
        for part in parts {
            problems.extend(mismatches(doc, part, value, at));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() {
        let fits = types.iter().any(|kind| match *kind {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => false,
        });
        if !fits {
            problems.push(format!("{at}: {value} is not of type {types:?}"));
            return problems;
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            problems.push(format!("{at}: {value} not in {allowed:?}"));
        }
    }
    if let Some(text) = value.as_str() {
        match schema["format"].as_str() {
            Some("uuid") if uuid::Uuid::try_parse(text).is_err() => {
                problems.push(format!("{at}: {text:?} is not a uuid"));
            }
            Some("date-time") if chrono::DateTime::parse_from_rfc3339(text).is_err() => {
                problems.push(format!("{at}: {text:?} is not a date-time"));
            }
            _ => {}
        }
    }
    if let Some(object) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap();
            if !object.contains_key(name) {
                problems.push(format!("{at}: required field {name} missing"));
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (name, property) in properties {
                if let Some(inner) = object.get(name) {
                    problems.extend(mismatches(doc, property, inner, &format!("{at}.{name}")));
                }
            }
        }
    }
    if let (Some(items), Some(schema)) = (value.as_array(), schema.get("items")) {
        for (index, item) in items.iter().enumerate() {
            problems.extend(mismatches(doc, schema, item, &format!("{at}[{index}]")));
        }
    }
    problems
}

/// One call: the documented template, the concrete path, and the answer it must match.
struct Checked {
    checked: usize,
    problems: Vec<String>,
}

impl Checked {
    fn check(&mut self, doc: &Value, method: &Method, template: &str, answer: &Answer) {
        let at = format!("{method} {template} -> {}", answer.status.as_u16());
        let op = &doc["paths"][template][method.as_str().to_lowercase()];
        if op.is_null() {
            self.problems.push(format!("{at}: not documented"));
            return;
        }
        let response = &op["responses"][answer.status.as_str()];
        let Some(schema) = response["content"]["application/json"].get("schema") else {
            self.problems
                .push(format!("{at}: status not documented with a JSON schema"));
            return;
        };
        self.checked += 1;
        self.problems
            .extend(mismatches(doc, schema, &answer.body, &format!("{at} body")));
    }
}

async fn real_answers(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let state = state(&db);
    let doc = send(
        &state,
        Request::builder()
            .uri("/openapi.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .body;
    let mut checked = Checked {
        checked: 0,
        problems: Vec::new(),
    };
    let call = |method: Method, template: &'static str, uri: String, body: Option<Value>| {
        let state = state.clone();
        async move {
            let req = if template.starts_with("/api/admin/") {
                admin(method.clone(), &uri, body)
            } else if template.starts_with("/api/") {
                request(method.clone(), &uri, tenant, body)
            } else {
                Request::builder().uri(&uri).body(Body::empty()).unwrap()
            };
            (method, template, send(&state, req).await)
        }
    };

    let mut answers = Vec::new();
    let created = call(
        Method::POST,
        "/api/v3/data-import/imports",
        "/api/v3/data-import/imports".to_owned(),
        Some(json!({ "file_data": cmdb_rows(3), "metadata": {"filename": "cmdb.json"} })),
    )
    .await;
    assert_eq!(created.2.status, StatusCode::CREATED, "{}", created.2.text);
    let import_id = created.2.data()["import_id"].as_str().unwrap().to_owned();
    let flow_id = created.2.data()["flow_id"].as_str().unwrap().to_owned();
    answers.push(created);
    let migrated = migrated_session(&db, tenant).await;
    let session = format!("DISC_SESSION_{}", migrated.session);
    let mappings = call(
        Method::GET,
        "/api/v3/field-mapping/mappings/{id}",
        format!("/api/v3/field-mapping/mappings/{flow_id}"),
        None,
    )
    .await;
    let mapping_id = mappings.2.data()["items"][0]["mapping_id"]
        .as_str()
        .unwrap()
        .to_owned();
    answers.push(mappings);
    let missing = uuid::Uuid::new_v4();
    for (method, template, uri, body) in [
        (Method::GET, "/health", "/health".to_owned(), None),
        (Method::GET, "/ready", "/ready".to_owned(), None),
        (
            Method::GET,
            "/api/v3/data-import/imports",
            "/api/v3/data-import/imports?limit=1".to_owned(),
            None,
        ),
        (
            Method::GET,
            "/api/v3/data-import/imports/{import_id}",
            format!("/api/v3/data-import/imports/{import_id}"),
            None,
        ),
        (
            Method::GET,
            "/api/v3/data-import/imports/{import_id}",
            format!("/api/v3/data-import/imports/{missing}"),
            None,
        ),
        (
            Method::GET,
            "/api/v3/data-import/imports/{import_id}/records",
            format!("/api/v3/data-import/imports/{import_id}/records"),
            None,
        ),
        (
            Method::GET,
            "/api/v3/discovery-flow/flows",
            "/api/v3/discovery-flow/flows".to_owned(),
            None,
        ),
        (
            Method::GET,
            "/api/v3/discovery-flow/flows",
            "/api/v3/discovery-flow/flows?limit=0".to_owned(),
            None,
        ),
        (
            Method::GET,
            "/api/v3/discovery-flow/flows/{flow_id}",
            format!("/api/v3/discovery-flow/flows/{flow_id}"),
            None,
        ),
        (
            Method::GET,
            "/api/v3/discovery-flow/flows/{flow_id}/status",
            format!("/api/v3/discovery-flow/flows/{flow_id}/status"),
            None,
        ),
        (
            Method::POST,
            "/api/v3/discovery-flow/flows/{flow_id}/pause",
            format!("/api/v3/discovery-flow/flows/{flow_id}/pause"),
            None,
        ),
        (
            Method::POST,
            "/api/v3/discovery-flow/flows/{flow_id}/pause",
            format!("/api/v3/discovery-flow/flows/{flow_id}/pause"),
            None,
        ),
        (
            Method::PUT,
            "/api/v3/field-mapping/mappings/{id}",
            format!("/api/v3/field-mapping/mappings/{mapping_id}"),
            Some(json!({"target_field": "hostname"})),
        ),
        (
            Method::POST,
            "/api/v3/field-mapping/mappings/{id}/approve",
            format!("/api/v3/field-mapping/mappings/{mapping_id}/approve"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/data-import/store-import",
            "/api/v1/data-import/store-import".to_owned(),
            Some(json!({ "file_data": cmdb_rows(2) })),
        ),
        (
            Method::GET,
            "/api/v1/data-import/import/{session_id}",
            format!("/api/v1/data-import/import/{session}"),
            None,
        ),
        (
            Method::GET,
            "/api/v1/data-import/processing-status/{session_id}",
            format!("/api/v1/data-import/processing-status/{session}"),
            None,
        ),
        (
            Method::GET,
            "/api/v1/data-import/validation-session/{session_id}",
            format!("/api/v1/data-import/validation-session/{session}"),
            None,
        ),
        (
            Method::GET,
            "/api/v1/unified-discovery/flow/status/{session_id}",
            format!("/api/v1/unified-discovery/flow/status/{session}"),
            None,
        ),
        (
            Method::GET,
            "/api/v1/unified-discovery/flow/status/{session_id}",
            "/api/v1/unified-discovery/flow/status/nonsense".to_owned(),
            None,
        ),
        (
            Method::GET,
            "/api/admin/flags",
            "/api/admin/flags".to_owned(),
            None,
        ),
        (
            Method::PUT,
            "/api/admin/flags/{name}",
            "/api/admin/flags/enable_flow_id_primary".to_owned(),
            Some(json!({"value": "shadow"})),
        ),
        (
            Method::GET,
            "/api/admin/readiness",
            "/api/admin/readiness".to_owned(),
            None,
        ),
        (
            Method::GET,
            "/api/admin/legacy-traffic",
            "/api/admin/legacy-traffic".to_owned(),
            None,
        ),
        (
            Method::GET,
            "/api/admin/mapping-statistics",
            "/api/admin/mapping-statistics".to_owned(),
            None,
        ),
        (
            Method::DELETE,
            "/api/v3/data-import/imports/{import_id}",
            format!("/api/v3/data-import/imports/{import_id}"),
            None,
        ),
        (
            Method::DELETE,
            "/api/v3/discovery-flow/flows/{flow_id}",
            format!("/api/v3/discovery-flow/flows/{flow_id}?reason=test"),
            None,
        ),
    ] {
        answers.push(call(method, template, uri, body).await);
    }
    // The CSV upload, accepted and refused for its bad lines.
    for (file, expected) in [
        (
            &b"Asset Name,OS\nsrv1,linux\nsrv2,windows\n"[..],
            StatusCode::CREATED,
        ),
        (&b"a,b\n1,2\n3\n"[..], StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let answer = send(&state, csv_upload(tenant, file)).await;
        assert_eq!(answer.status, expected, "{}", answer.text);
        answers.push((Method::POST, "/api/v3/data-import/imports/upload", answer));
    }
    // A client mistake on a tenant route: no tenant headers at all.
    let no_tenant = send(
        &state,
        Request::builder()
            .uri(format!("/api/v3/discovery-flow/flows/{missing}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(no_tenant.status, StatusCode::BAD_REQUEST);
    answers.push((
        Method::GET,
        "/api/v3/discovery-flow/flows/{flow_id}",
        no_tenant,
    ));

    let mut statuses = Vec::new();
    for (method, template, answer) in &answers {
        assert!(
            answer.status.as_u16() < 500,
            "{method} {template}: {}",
            answer.text
        );
        statuses.push(answer.status.as_u16());
        checked.check(&doc, method, template, answer);
    }
    // Both kinds of answer were checked: successes and client errors.
    assert!(statuses.contains(&200) && statuses.contains(&201));
    assert!(statuses.contains(&400) && statuses.contains(&404) && statuses.contains(&409));
    assert!(statuses.contains(&422));
    assert_eq!(checked.checked, answers.len());
    assert!(
        checked.problems.is_empty(),
        "{}",
        checked.problems.join("\n")
    );
}
both_engines!(
    real_answers_match_the_schema_documented_for_their_status,
    real_answers
);

/// A multipart upload of `file` as the form field `file`.
fn csv_upload(tenant: flowkey::ids::TenantId, file: &[u8]) -> Request<Body> {
    let boundary = "openapiBoundary7";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\
         Content-Type: text/csv\r\n\r\n"
    )
    .into_bytes();
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

#[test]
fn the_structural_check_catches_what_it_claims_to() {
    let doc = document();
    let schema = json!({ "$ref": "#/components/schemas/ImportCreated" });
    let good = json!({
        "import_id": uuid::Uuid::new_v4().to_string(),
        "flow_id": uuid::Uuid::new_v4().to_string(),
        "record_count": 3,
        "field_mapping_count": 4,
        "flow_created": true,
    });
    assert_eq!(mismatches(&doc, &schema, &good, "x"), Vec::<String>::new());
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("flow_id");
    assert!(!mismatches(&doc, &schema, &missing, "x").is_empty());
    let mut wrong_type = good.clone();
    wrong_type["record_count"] = json!("three");
    assert!(!mismatches(&doc, &schema, &wrong_type, "x").is_empty());
    let mut not_uuid = good;
    not_uuid["import_id"] = json!("nope");
    assert!(!mismatches(&doc, &schema, &not_uuid, "x").is_empty());
}
