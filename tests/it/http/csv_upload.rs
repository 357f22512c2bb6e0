//! The streamed CSV upload (`POST /api/v3/data-import/imports/upload`) through
//! `app(state).oneshot(…)` on both engines: a file of many batches lands whole and in order,
//! a late bad row or an oversized body leaves nothing, multipart fields may follow the file,
//! and arbitrary bytes are never a 5xx (proptest).

// Test bodies are plain async fns run by `both_engines!`, so clippy does not see them as
// tests: allow the unwraps it allows in tests.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use flowkey::db::{on_pool, Db};
use flowkey::http::{AppState, ServiceConfig};
use flowkey::ids::TenantId;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};

use crate::both_engines;
use crate::support::harness::TestDb;
use crate::support::service_support::*;

const BOUNDARY: &str = "XbOuNdArYx";

/// Multipart parts in the order given: `("file", bytes)` is the file, anything else a text
/// field.
fn multipart_body(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, bytes) in parts {
        if *name == "file" {
            body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"assets.csv\"\r\nContent-Type: text/csv\r\n\r\n").as_bytes());
        } else {
            body.extend_from_slice(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                    .as_bytes(),
            );
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn upload(tenant: TenantId, body: Body, length: Option<usize>) -> Request<Body> {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri("/api/v3/data-import/imports/upload")
        .header("x-client-account-id", tenant.client_account_id.to_string())
        .header("x-engagement-id", tenant.engagement_id.to_string())
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        );
    if let Some(length) = length {
        builder = builder.header("content-length", length.to_string());
    }
    builder.body(body).unwrap()
}

/// The body as a stream of small chunks without a declared length, as a chunked upload
/// arrives.
fn streamed(body: Vec<u8>) -> Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(7_919).map(|chunk| Ok(chunk.to_vec())).collect();
    Body::from_stream(futures::stream::iter(chunks))
}

/// `rows` rows of `n,host,notes`, where `n` is the row's own number; `bad_at` replaces one
/// row by a row with a missing field.
fn numbered_csv(rows: usize, bad_at: Option<usize>) -> String {
    let mut file = String::from("n,Host Name,Notes\n");
    for n in 1..=rows {
        if Some(n) == bad_at {
            file.push_str("only,two\n");
        } else {
            file.push_str(&format!(
                "{n},host-{},\"rack {}, \"\"row\"\" {n}\"\n",
                n % 13,
                n % 5
            ));
        }
    }
    file
}

/// Every raw record as (row_number, raw_data text), in row order.
async fn stored_records(db: &Db) -> Vec<(i32, String)> {
    on_pool!(db, pool => {
        sqlx::query_as::<_, (i32, String)>(
            "SELECT row_number, CAST(raw_data AS TEXT) FROM raw_import_records ORDER BY row_number",
        )
        .fetch_all(pool)
        .await
        .unwrap()
    })
}

async fn nothing_stored(db: &Db, what: &str) {
    for table in [
        "data_imports",
        "raw_import_records",
        "import_field_mappings",
        "discovery_flows",
    ] {
        assert_eq!(count_rows(db, table).await, 0, "{what}: {table}");
    }
}

async fn many_batches_land_in_order(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let state = state(&db);
    const ROWS: usize = 20_000;
    let file = numbered_csv(ROWS, None);
    let body = multipart_body(&[("import_type", b"servers"), ("file", file.as_bytes())]);
    let created = send(&state, upload(tenant, streamed(body), None)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.data()["record_count"], ROWS);
    assert_eq!(created.data()["field_mapping_count"], 3);

    let records = stored_records(&db).await;
    assert_eq!(records.len(), ROWS);
    for (index, (row_number, text)) in records.iter().enumerate() {
        assert_eq!(*row_number as usize, index + 1);
        assert!(text.starts_with("{\"n\":"), "keys in header order: {text}");
        let row: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(row["n"], row_number.to_string(), "{text}");
        assert_eq!(
            row["Notes"],
            format!("rack {}, \"row\" {row_number}", *row_number as usize % 5)
        );
    }

    let import_id = created.data()["import_id"].as_str().unwrap();
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
    assert_eq!(import.data()["total_records"], ROWS);
    assert_eq!(import.data()["import_type"], "servers");
    assert_eq!(import.data()["file_size_bytes"], file.len());
    let flow_id = created.data()["flow_id"].as_str().unwrap();
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
    let host = mappings.data()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["source_field"] == "Host Name")
        .unwrap()
        .clone();
    assert_eq!(host["target_field"], "hostname");
    assert_eq!(
        host["sample_values"],
        serde_json::json!(["host-1", "host-2", "host-3", "host-4", "host-5"])
    );
    assert_eq!(count_rows(&db, "discovery_flows").await, 1);
}
both_engines!(
    an_upload_of_many_batches_stores_every_row_with_its_row_number,
    many_batches_land_in_order
);

async fn late_bad_row_leaves_nothing(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let state = state(&db);
    let file = numbered_csv(20_000, Some(19_500));
    let body = multipart_body(&[("file", file.as_bytes())]);
    let refused = send(&state, upload(tenant, streamed(body), None)).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    assert_eq!(refused.error_code(), "invalid_csv");
    let details = &refused.body["error"]["details"];
    assert_eq!(details["bad_row_count"], 1);
    // Row 19,500 is on line 19,501 (the header is line 1).
    assert_eq!(details["bad_rows"][0]["line"], 19_501);
    nothing_stored(&db, "a bad row late in the file").await;
}
both_engines!(
    a_bad_row_late_in_a_large_file_is_a_422_with_its_line_and_stores_nothing,
    late_bad_row_leaves_nothing
);

async fn fields_after_the_file(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let state = state(&db);
    let file = numbered_csv(3, None);
    let body = multipart_body(&[
        ("file", file.as_bytes()),
        ("import_type", b"network"),
        ("import_name", b"Core switches"),
    ]);
    let length = body.len();
    let created = send(&state, upload(tenant, Body::from(body), Some(length))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let import_id = created.data()["import_id"].as_str().unwrap();
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
    assert_eq!(import.data()["import_type"], "network");
    assert_eq!(import.data()["import_name"], "Core switches");
    assert_eq!(import.data()["total_records"], 3);

    let too_long = "x".repeat(300);
    let body = multipart_body(&[
        ("file", file.as_bytes()),
        ("import_type", too_long.as_bytes()),
    ]);
    let refused = send(&state, upload(tenant, Body::from(body), None)).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    assert_eq!(
        count_rows(&db, "data_imports").await,
        1,
        "a refused trailing field stores nothing"
    );
}
both_engines!(
    import_type_and_name_after_the_file_are_recorded,
    fields_after_the_file
);

async fn oversized_upload_leaves_nothing(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    const LIMIT: usize = 256 * 1024;
    let config = ServiceConfig {
        max_upload_bytes: LIMIT,
        ..ServiceConfig::default()
    };
    let state = AppState::new(db.clone(), config).unwrap();
    // About 1 MiB: several batches are written before the limit is reached.
    let file = numbered_csv(25_000, None);
    let body = multipart_body(&[("file", file.as_bytes())]);
    assert!(body.len() > 3 * LIMIT);

    // Declared too large: refused before any of it is read.
    let length = body.len();
    let declared = send(
        &state,
        upload(tenant, Body::from(body.clone()), Some(length)),
    )
    .await;
    assert_eq!(
        declared.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        declared.text
    );
    assert_eq!(declared.error_code(), "payload_too_large");
    assert_eq!(declared.headers["connection"], "close");

    // No length declared: cut when the limit is crossed, after rows were already written.
    let cut = send(&state, upload(tenant, streamed(body), None)).await;
    assert_eq!(cut.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", cut.text);
    assert_eq!(cut.error_code(), "payload_too_large");
    nothing_stored(&db, "an oversized upload").await;

    // The JSON body limit does not apply to uploads: a file over it but under the upload
    // limit is stored.
    let small = ServiceConfig {
        max_body_bytes: 1024,
        max_upload_bytes: LIMIT,
        ..ServiceConfig::default()
    };
    let state = AppState::new(db.clone(), small).unwrap();
    let file = numbered_csv(500, None);
    let body = multipart_body(&[("file", file.as_bytes())]);
    assert!(body.len() > 1024);
    let stored = send(&state, upload(tenant, streamed(body), None)).await;
    assert_eq!(stored.status, StatusCode::CREATED, "{}", stored.text);
}
both_engines!(
    an_upload_over_its_limit_is_a_413_and_stores_nothing,
    oversized_upload_leaves_nothing
);

/// Bytes that look like CSV (quotes, separators, line ends, byte order marks, invalid UTF-8)
/// or are anything at all, or a valid file with a few bytes changed.
fn hostile_files() -> impl Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let alphabet = vec![
        b'a', b'B', b'1', b',', b',', b'"', b'\n', b'\n', b'\r', b' ', 0xEF, 0xBB, 0xBF, 0xff,
        0xc3, 0xa9, 0x00, b'-',
    ];
    let valid = numbered_csv(40, None).into_bytes();
    let mutated = (
        prop::collection::vec((0..valid.len(), any::<u8>()), 1..6),
        Just(valid),
    )
        .prop_map(|(edits, mut file)| {
            for (at, byte) in edits {
                file[at] = byte;
            }
            file
        });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..400),
        prop::collection::vec(prop::sample::select(alphabet), 0..400),
        mutated,
    ]
}

async fn hostile_files_are_never_server_errors(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let state = state(&db);
    let strategy = hostile_files();
    // Deterministic: a failure names the case and reproduces on the next run.
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let mut stored: i64 = 0;
    for case in 0..48 {
        let file = strategy.new_tree(&mut runner).unwrap().current();
        let body = multipart_body(&[("file", &file)]);
        let answer = send(&state, upload(tenant, streamed(body), None)).await;
        assert!(
            answer.status == StatusCode::CREATED || answer.status.is_client_error(),
            "case {case}: {} for {:?}: {}",
            answer.status,
            String::from_utf8_lossy(&file),
            answer.text
        );
        if answer.status == StatusCode::CREATED {
            stored += 1;
        }
    }
    assert_eq!(count_rows(&db, "data_imports").await, stored);
}
both_engines!(
    arbitrary_and_mutated_csv_uploads_are_201_or_4xx_never_5xx,
    hostile_files_are_never_server_errors
);
