//! What the outside fuzzer found (issue 17), each pinned on both engines: a NUL or an
//! over-long value in every text field answers 4xx in the envelope, never 5xx, and changes
//! nothing; the database's own refusals are classified by engine; 405 is in the envelope;
//! a refusal that leaves a body unread closes the connection; a per-tenant flag override
//! can be removed.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use flowkey::db::errors::{classify, DbFailure};
use flowkey::db::on_pool;
use flowkey::flags::{self, FlagScope, FlowIdPrimary};
use flowkey::http::app;
use flowkey::ids::TenantId;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_engines;
use crate::support::harness::TestDb;
use crate::support::service_support::*;

/// Asserts a refusal: 4xx, in the envelope, and (for a text check) 422 naming `field`.
fn assert_refused(answer: &Answer, what: &str, field: Option<&str>) {
    assert!(
        answer.status.is_client_error(),
        "{what}: {} {}",
        answer.status,
        answer.text
    );
    assert_eq!(answer.body["success"], false, "{what}: {}", answer.text);
    assert!(!answer.error_code().is_empty(), "{what}: {}", answer.text);
    if let Some(field) = field {
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {}",
            answer.text
        );
        assert_eq!(
            answer.error_code(),
            "invalid_text",
            "{what}: {}",
            answer.text
        );
        assert_eq!(answer.body["error"]["details"]["field"], field, "{what}");
    }
}

fn long(chars: usize) -> String {
    // Multi-byte characters: the limit is in characters, as PostgreSQL counts them.
    "é".repeat(chars)
}

fn upload(tenant: TenantId, filename: &str, fields: &[(&str, &str)], csv: &str) -> Request<Body> {
    let boundary = "XbOuNdArYx";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: text/csv\r\n\r\n{csv}\r\n--{boundary}--\r\n"));
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

async fn bad_texts_are_refused(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let state = state(&db);
    let (import_id, flow_id) = v3_import(&state, tenant, 2).await;
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
    let before = all_counts(&db).await;

    let rows = json!([{"a": 1}]);
    let json_cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "v3 filename",
            "/api/v3/data-import/imports",
            json!({"file_data": rows, "metadata": {"filename": long(243)}}),
            "metadata.filename",
        ),
        (
            "v3 filename NUL",
            "/api/v3/data-import/imports",
            json!({"file_data": rows, "metadata": {"filename": "a\u{0}.csv"}}),
            "metadata.filename",
        ),
        (
            "v3 type",
            "/api/v3/data-import/imports",
            json!({"file_data": rows, "metadata": {"type": long(101)}}),
            "metadata.type",
        ),
        (
            "v3 type NUL",
            "/api/v3/data-import/imports",
            json!({"file_data": rows, "metadata": {"type": "text/\u{0}"}}),
            "metadata.type",
        ),
        (
            "v3 import_type",
            "/api/v3/data-import/imports",
            json!({"file_data": rows, "import_type": long(51)}),
            "import_type",
        ),
        (
            "v3 import_type NUL",
            "/api/v3/data-import/imports",
            json!({"file_data": rows, "import_type": "c\u{0}"}),
            "import_type",
        ),
        (
            "v3 import_name",
            "/api/v3/data-import/imports",
            json!({"file_data": rows, "import_name": long(256)}),
            "import_name",
        ),
        (
            "v3 import_name NUL",
            "/api/v3/data-import/imports",
            json!({"file_data": rows, "import_name": "n\u{0}"}),
            "import_name",
        ),
        (
            "v3 description NUL",
            "/api/v3/data-import/imports",
            json!({"file_data": rows, "description": "d\u{0}"}),
            "description",
        ),
        (
            "v3 header",
            "/api/v3/data-import/imports",
            json!({"file_data": [{long(256): 1}]}),
            "column header 1",
        ),
        (
            "v3 header NUL",
            "/api/v3/data-import/imports",
            json!({"file_data": [{"b": 2, "a\u{0}": 1}]}),
            "column header 1",
        ),
        (
            "v1 filename",
            "/api/v1/data-import/store-import",
            json!({"file_data": rows, "metadata": {"filename": long(243)}}),
            "metadata.filename",
        ),
        (
            "v1 type NUL",
            "/api/v1/data-import/store-import",
            json!({"file_data": rows, "metadata": {"type": "\u{0}"}}),
            "metadata.type",
        ),
        (
            "v1 intended_type",
            "/api/v1/data-import/store-import",
            json!({"file_data": rows, "upload_context": {"intended_type": long(51)}}),
            "upload_context.intended_type",
        ),
        (
            "v1 intended_type NUL",
            "/api/v1/data-import/store-import",
            json!({"file_data": rows, "upload_context": {"intended_type": "\u{0}"}}),
            "upload_context.intended_type",
        ),
        (
            "v1 header",
            "/api/v1/data-import/store-import",
            json!({"file_data": [{long(256): 1}]}),
            "column header 1",
        ),
    ];
    for (what, uri, body, field) in json_cases {
        let answer = send(&state, request(Method::POST, uri, tenant, Some(body))).await;
        assert_refused(&answer, what, Some(field));
    }
    for (what, body) in [
        (
            "v1 session NUL",
            json!({"file_data": rows, "upload_context": {"validation_session_id": "\u{0}"}}),
        ),
        (
            "v1 session long",
            json!({"file_data": rows, "upload_context": {"validation_session_id": long(300)}}),
        ),
    ] {
        let answer = send(
            &state,
            request(
                Method::POST,
                "/api/v1/data-import/store-import",
                tenant,
                Some(body),
            ),
        )
        .await;
        assert_refused(&answer, what, None);
    }

    let csv = "a,b\n1,2\n";
    for (what, request, field) in [
        (
            "upload filename",
            upload(tenant, &long(243), &[], csv),
            "file name",
        ),
        (
            "upload import_type",
            upload(tenant, "f.csv", &[("import_type", &long(51))], csv),
            "import_type",
        ),
        (
            "upload import_type NUL",
            upload(tenant, "f.csv", &[("import_type", "\u{0}")], csv),
            "import_type",
        ),
        (
            "upload import_name",
            upload(tenant, "f.csv", &[("import_name", &long(256))], csv),
            "import_name",
        ),
        (
            "upload import_name NUL",
            upload(tenant, "f.csv", &[("import_name", "\u{0}")], csv),
            "import_name",
        ),
        (
            "upload header",
            upload(tenant, "f.csv", &[], &format!("{},b\n1,2\n", long(256))),
            "column header 1",
        ),
        (
            "upload header NUL",
            upload(tenant, "f.csv", &[], "a\u{0},b\n1,2\n"),
            "column header 1",
        ),
    ] {
        let answer = send(&state, request).await;
        assert_refused(&answer, what, Some(field));
    }

    for (what, uri, field) in [
        (
            "flows status",
            format!("/api/v3/discovery-flow/flows?status={}", "x".repeat(21)),
            "status",
        ),
        (
            "flows status NUL",
            "/api/v3/discovery-flow/flows?status=a%00b".to_owned(),
            "status",
        ),
        (
            "imports status",
            format!("/api/v3/data-import/imports?status={}", "x".repeat(21)),
            "status",
        ),
        (
            "imports status NUL",
            "/api/v3/data-import/imports?status=%00".to_owned(),
            "status",
        ),
    ] {
        let answer = send(&state, request(Method::GET, &uri, tenant, None)).await;
        assert_refused(&answer, what, Some(field));
    }
    for (what, reason) in [
        ("reason", "r".repeat(2001)),
        ("reason NUL", "%00".to_owned()),
    ] {
        let uri = format!("/api/v3/discovery-flow/flows/{flow_id}?reason={reason}");
        let answer = send(&state, request(Method::DELETE, &uri, tenant, None)).await;
        assert_refused(&answer, what, Some("reason"));
    }
    for (what, target) in [
        ("target long", long(256)),
        ("target NUL", "a\u{0}".to_owned()),
        ("target blank", "  ".to_owned()),
    ] {
        let uri = format!("/api/v3/field-mapping/mappings/{mapping_id}");
        let answer = send(
            &state,
            request(
                Method::PUT,
                &uri,
                tenant,
                Some(json!({"target_field": target})),
            ),
        )
        .await;
        assert_refused(&answer, what, None);
        assert_eq!(answer.error_code(), "invalid_target", "{what}");
    }
    let flag_uri = "/api/admin/flags/enable_flow_id_primary";
    for (what, body, field) in [
        (
            "flag updated_by",
            json!({"value": "shadow", "updated_by": long(256)}),
            Some("updated_by"),
        ),
        (
            "flag updated_by NUL",
            json!({"value": "shadow", "updated_by": "\u{0}"}),
            Some("updated_by"),
        ),
        ("flag value NUL", json!({"value": "o\u{0}n"}), None),
        ("flag value long", json!({"value": long(300)}), None),
        (
            "flag value spelled otherwise",
            json!({"value": "TRUE"}),
            None,
        ),
        (
            "flag tenant NUL",
            json!({"value": "off", "tenant": "\u{0}"}),
            None,
        ),
        (
            "flag tenant long",
            json!({"value": "off", "tenant": long(300)}),
            None,
        ),
    ] {
        let answer = send(&state, admin(Method::PUT, flag_uri, Some(body))).await;
        assert_refused(&answer, what, field);
    }
    for uri in [
        "/api/admin/legacy-traffic?tenant=%00",
        "/api/admin/mapping-statistics?tenant=%00",
        "/api/admin/flags/enable_flow_id_primary?tenant=%00",
    ] {
        let method = if uri.starts_with("/api/admin/flags") {
            Method::DELETE
        } else {
            Method::GET
        };
        let answer = send(&state, admin(method, uri, None)).await;
        assert_refused(&answer, uri, None);
    }
    // v1 path ids: NUL and over-long.
    for id in ["%00", &"a".repeat(300)] {
        let uri = format!("/api/v1/data-import/import/{id}");
        let answer = send(&state, request(Method::GET, &uri, tenant, None)).await;
        assert_refused(&answer, &uri, None);
    }
    assert_eq!(
        all_counts(&db).await,
        before,
        "a refused request changes nothing"
    );
    let _ = import_id;
}
both_engines!(
    a_nul_or_an_over_long_value_in_every_text_field_is_a_4xx_in_the_envelope,
    bad_texts_are_refused
);

async fn database_errors_by_engine(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let unique = on_pool!(&db, pool => {
        sqlx::query("INSERT INTO engagements (id, client_account_id, name) VALUES ($1, $2, 'again')")
            .bind(tenant.engagement_id)
            .bind(tenant.client_account_id)
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap_err()
    });
    assert_eq!(classify(&unique), DbFailure::ClientData, "{unique}");
    let missing = db
        .execute_plain("SELECT x FROM no_such_table")
        .await
        .unwrap_err();
    assert_eq!(
        classify(&missing),
        DbFailure::SchemaObjectMissing,
        "{missing}"
    );
    if test_db.engine == flowkey::db::Engine::Postgres {
        // SQLSTATE 22021: as a SQLite number it would have read as "busy" (503).
        let nul = on_pool!(&db, pool => {
            sqlx::query("SELECT $1::text")
                .bind("a\u{0}b")
                .execute(pool)
                .await
                .map(|_| ())
                .unwrap_err()
        });
        assert_eq!(classify(&nul), DbFailure::ClientData, "{nul}");
    }
}
both_engines!(
    database_errors_are_classified_by_the_engine_that_raised_them,
    database_errors_by_engine
);

async fn method_not_allowed_in_envelope(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let state = state(&db);
    let answer = send(
        &state,
        request(Method::PATCH, "/api/v3/data-import/imports", tenant, None),
    )
    .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.error_code(), "method_not_allowed", "{}", answer.text);
    assert!(answer.headers.contains_key("allow"), "{:?}", answer.headers);
}
both_engines!(
    a_method_a_path_does_not_take_is_405_in_the_envelope,
    method_not_allowed_in_envelope
);

/// One HTTP/1.1 exchange on an open connection: the response's head and body.
async fn exchange(stream: &mut tokio::net::TcpStream, request: &[u8]) -> (String, String) {
    stream.write_all(request).await.unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("an answer")
            .unwrap();
        if n == 0 {
            break;
        }
        received.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                return (head.to_owned(), body.to_owned());
            }
        }
    }
    let text = String::from_utf8_lossy(&received).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_owned(), body.to_owned())
}

async fn unread_bodies_close(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = app(state(&db));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let headers = format!(
        "Host: test\r\nX-Client-Account-Id: {}\r\nX-Engagement-Id: {}\r\n",
        tenant.client_account_id, tenant.engagement_id
    );

    // A body the server reads (a JSON refusal after reading it): the connection stays open
    // and carries the next request.
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let read = "{\"file_data\": []}";
    let (head, _) = exchange(&mut stream, format!("POST /api/v3/data-import/imports HTTP/1.1\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{read}", read.len()).as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 422"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let (head, _) = exchange(
        &mut stream,
        format!("GET /api/v3/discovery-flow/flows HTTP/1.1\r\n{headers}\r\n").as_bytes(),
    )
    .await;
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "the kept-alive connection still works: {head}"
    );

    // 415 with a 100 KB body it never reads: said with `Connection: close`.
    let unread = "x".repeat(100 * 1024);
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (head, body) = exchange(&mut stream, format!("POST /api/v3/data-import/imports HTTP/1.1\r\n{headers}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{unread}", unread.len()).as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 415"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert!(body.contains("unsupported_media_type"), "{body}");
    server.abort();
}
both_engines!(
    a_refusal_that_leaves_the_body_unread_says_connection_close,
    unread_bodies_close
);

async fn override_removal(test_db: TestDb) {
    let (keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let state = state(&db);
    flags::set_flag(&db, FlagScope::Global, FlowIdPrimary::Shadow, "test")
        .await
        .unwrap();
    flags::set_flag(&db, FlagScope::Tenant(tenant), FlowIdPrimary::On, "test")
        .await
        .unwrap();
    state.refresh_flags().await.unwrap();
    assert_eq!(state.flags.mode_for(tenant), FlowIdPrimary::On);

    // The admin route removes the override; the tenant follows the global value again.
    let uri = format!("/api/admin/flags/enable_flow_id_primary?tenant={tenant}");
    let removed = send(&state, admin(Method::DELETE, &uri, None)).await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
    assert_eq!(removed.data()["removed"], true);
    assert_eq!(state.flags.mode_for(tenant), FlowIdPrimary::Shadow);
    let again = send(&state, admin(Method::DELETE, &uri, None)).await;
    assert_eq!(again.data()["removed"], false);

    // The CLI: set, listed by `get`, unset, gone.
    let cli = |args: Vec<String>| {
        let url = keep.url.clone();
        async move {
            let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_flowkey"))
                .arg("--database-url")
                .arg(url)
                .arg("flag")
                .args(args)
                .output()
                .await
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
    };
    let name = "enable_flow_id_primary".to_owned();
    let pair = tenant.to_string();
    cli(vec![
        "set".into(),
        name.clone(),
        "off".into(),
        "--tenant".into(),
        pair.clone(),
    ])
    .await;
    let listed = cli(vec!["get".into()]).await;
    assert!(
        listed.contains("per-tenant overrides: 1") && listed.contains(&format!("{pair} = off")),
        "{listed}"
    );
    let unset = cli(vec!["unset".into(), name, "--tenant".into(), pair.clone()]).await;
    assert!(unset.contains("removed"), "{unset}");
    let listed = cli(vec!["get".into()]).await;
    assert!(
        listed.contains("per-tenant overrides: 0") && !listed.contains(&pair),
        "{listed}"
    );
    let stored = flags::stored_flags(&db).await.unwrap();
    assert_eq!(stored.len(), 1, "only the global value is left: {stored:?}");
}
both_engines!(
    a_per_tenant_override_can_be_removed_by_the_cli_and_the_admin_route,
    override_removal
);
