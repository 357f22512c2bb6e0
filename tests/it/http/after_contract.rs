//! The service after the contract (issue 14, item 5), on both engines, each test on its own
//! fresh database: every v1 and v3 read answers the same status, body and deprecation headers
//! after the contract as before it (under `on`), for every client form of a legacy id, for a
//! session claimed by several flows, a session written by old code after the mapping (the
//! live mapping), a flow holding two sessions and another tenant's requests; writes after the
//! contract work and are read back by the mapping; `flag set off|shadow` is refused (library,
//! admin route, CLI) saying why and how to go back; `downgrade -1` from the contract is
//! followed by the running server (oneshot router and the real `flowkey serve`), which answers
//! the same again; a server behind the schema answers 503, never 500; seeded data with every
//! session oddity answers the same.

use axum::http::{Method, StatusCode};
use flowkey::db::{on_pool, Db, KeyColumns};
use flowkey::flags::{set_flag, FlagScope, FlowIdPrimary};
use flowkey::http::AppState;
use flowkey::ids::{FlowId, SessionId, TenantId};
use flowkey::migrate::flow::contract::{GateOptions, QuietPeriod, CONTRACT_REVISION};
use flowkey::migrate::{Migrator, RunOptions};
use serde_json::{json, Value};

use crate::both_engines;
use crate::support::flow_support::downgrade_to;
use crate::support::harness::TestDb;
use crate::support::reliability_support::run_to_end;
use crate::support::served::{serve, serve_with_env, Server};
use crate::support::service_support::*;

/// The contract, as `flowkey contract --quiet-period 0s --force` runs it (forced: the test's
/// legacy writes are seconds old, and forcing is audited, never past a blocker).
async fn contract(db: &Db) {
    let options = RunOptions {
        contract: GateOptions {
            quiet_period: QuietPeriod::parse("0s").unwrap(),
            force: true,
        },
        ..RunOptions::default()
    };
    Migrator::new(db.clone(), options)
        .upgrade(CONTRACT_REVISION)
        .await
        .unwrap_or_else(|err| panic!("contract: {err}"));
}

/// A v1 upload into `session` (created when new).
async fn v1_store(state: &AppState, tenant: TenantId, session: &str) -> Value {
    let body = json!({
        "file_data": cmdb_rows(3),
        "metadata": {"filename": "legacy.csv", "size": 99, "type": "text/csv"},
        "upload_context": {"intended_type": "cmdb", "validation_session_id": session},
    });
    let answer = send(
        state,
        request(
            Method::POST,
            "/api/v1/data-import/store-import",
            tenant,
            Some(body),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.data().clone()
}

/// The legacy data: what each case needs, at head.
struct Fixture {
    tenant: TenantId,
    other: TenantId,
    sessions: Vec<SessionId>,
    flows: Vec<FlowId>,
    /// The session of a flow that holds two sessions, the larger one (the rule gives the
    /// smaller: its rows' session is archived).
    second_of_two: SessionId,
    flow_of_two: FlowId,
}

async fn fixture(db: &Db, state: &AppState) -> Fixture {
    let tenant = insert_tenant(db).await;
    let other = insert_tenant(db).await;
    let user = insert_user(db).await;
    let mut sessions = Vec::new();
    let mut flows = Vec::new();

    // Migrated by the backfill: both keys, field mappings.
    let migrated = migrated_session(db, tenant).await;
    sessions.push(migrated.session);
    flows.push(migrated.flow_id);

    // Written at head through v1: a new session, its flow, records and mappings.
    let written = SessionId::from_stored(uuid::Uuid::new_v4());
    let stored = v1_store(state, tenant, &written.to_string()).await;
    sessions.push(written);
    flows.push(FlowId::parse(stored["flow_id"].as_str().unwrap()).unwrap());

    // Claimed by several flows: the earliest claims it (the live mapping maps it so).
    let claimed = insert_session(db, tenant, user).await;
    let first = FlowId::new_v4();
    insert_flow(db, tenant, first, Some(claimed.as_uuid())).await;
    // `created_at` has millisecond resolution: in the same millisecond the tie-break (the
    // lower flow id) could make `second` the earliest (a CI run saw it: "1 rows of
    // data_imports do not have the flow_id the rules give").
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = FlowId::new_v4();
    insert_flow(db, tenant, second, Some(claimed.as_uuid())).await;
    let import = insert_import(db, tenant, user, Some(claimed), Some(first)).await;
    insert_field_mapping(db, import, Some(first), "Serial").await;
    sessions.push(claimed);
    flows.extend([first, second]);

    // Old code after the mapping: session, flow naming it, then an import by session only
    // (the live mapping's triggers link it to the flow).
    let live = insert_session(db, tenant, user).await;
    let live_flow = FlowId::new_v4();
    insert_flow(db, tenant, live_flow, Some(live.as_uuid())).await;
    insert_import(db, tenant, user, Some(live), None).await;
    sessions.push(live);
    flows.push(live_flow);

    // A flow holding two sessions; v1 uploads into the larger one.
    let mut pair = [
        insert_session(db, tenant, user).await,
        insert_session(db, tenant, user).await,
    ];
    pair.sort_by_key(|s| s.as_uuid());
    let flow_of_two = FlowId::new_v4();
    insert_flow(db, tenant, flow_of_two, Some(pair[0].as_uuid())).await;
    insert_mapping(db, pair[0], flow_of_two, tenant, "import_session_id").await;
    insert_mapping(db, pair[1], flow_of_two, tenant, "import_session_id").await;
    v1_store(state, tenant, &pair[1].to_string()).await;
    sessions.extend(pair);
    flows.push(flow_of_two);

    Fixture {
        tenant,
        other,
        sessions,
        flows,
        second_of_two: pair[1],
        flow_of_two,
    }
}

/// Every client form of a legacy id, as a path segment.
fn forms(session: SessionId) -> Vec<String> {
    let bare = session.to_string();
    vec![
        bare.clone(),
        format!("disc_session_{bare}"),
        format!("session-{bare}"),
        bare.to_uppercase(),
        format!("%20{bare}%20"),
        format!("disc_session_{}", bare.to_uppercase()),
    ]
}

const V1_READS: [&str; 5] = [
    "/api/v1/data-import/import/{}",
    "/api/v1/data-import/import/{}/records",
    "/api/v1/data-import/processing-status/{}",
    "/api/v1/data-import/validation-session/{}",
    "/api/v1/unified-discovery/flow/status/{}",
];

/// What a route answered: status, body and the deprecation headers.
type Seen = Vec<(String, u16, Value, Vec<Option<String>>)>;

async fn get(state: &AppState, tenant: TenantId, uri: &str, seen: &mut Seen) -> Value {
    let answer = send(state, request(Method::GET, uri, tenant, None)).await;
    let headers = ["deprecation", "sunset", "link"]
        .iter()
        .map(|name| {
            answer
                .headers
                .get(*name)
                .map(|v| v.to_str().unwrap().to_owned())
        })
        .collect();
    let body: Value = serde_json::from_str(&answer.text).unwrap_or(Value::Null);
    seen.push((
        format!("{tenant} {uri}"),
        answer.status.as_u16(),
        body.clone(),
        headers,
    ));
    body
}

/// Every v1 read in every client form, for the tenant and another tenant, and every v3 read
/// of the tenant's flows and imports.
async fn read_everything(state: &AppState, fixture: &Fixture) -> Seen {
    let mut seen = Seen::new();
    for session in &fixture.sessions {
        for form in forms(*session) {
            for route in V1_READS {
                let uri = route.replace("{}", &form);
                get(state, fixture.tenant, &uri, &mut seen).await;
            }
        }
        for route in V1_READS {
            let uri = route.replace("{}", &session.to_string());
            get(state, fixture.other, &uri, &mut seen).await;
        }
    }
    let flows = get(
        state,
        fixture.tenant,
        "/api/v3/discovery-flow/flows?limit=100",
        &mut seen,
    )
    .await;
    assert!(flows["data"]["items"].as_array().is_some(), "{flows}");
    for flow in &fixture.flows {
        for uri in [
            format!("/api/v3/discovery-flow/flows/{flow}"),
            format!("/api/v3/discovery-flow/flows/{flow}/status"),
            format!("/api/v3/field-mapping/mappings/{flow}"),
            format!("/api/v3/data-import/imports?flow_id={flow}"),
        ] {
            get(state, fixture.tenant, &uri, &mut seen).await;
            get(state, fixture.other, &uri, &mut seen).await;
        }
    }
    let imports = get(
        state,
        fixture.tenant,
        "/api/v3/data-import/imports?limit=100",
        &mut seen,
    )
    .await;
    let ids: Vec<String> = imports["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|import| import["import_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.len() >= 5, "{imports}");
    for id in ids {
        for uri in [
            format!("/api/v3/data-import/imports/{id}"),
            format!("/api/v3/data-import/imports/{id}/records"),
        ] {
            get(state, fixture.tenant, &uri, &mut seen).await;
            get(state, fixture.other, &uri, &mut seen).await;
        }
    }
    seen
}

fn assert_same(before: &Seen, after: &Seen) {
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(after) {
        assert_eq!(b, a, "{} answers differently", b.0);
    }
}

/// A server whose gate has checked the schema (as `flowkey serve` does at start and every
/// poll), with the flag `on` as the contract's gate wants it.
async fn checked(state: &AppState) {
    state.schema.check().await.unwrap();
    state.refresh_flags().await.unwrap();
}

async fn v1_and_v3_answer_the_same_after_the_contract(test_db: TestDb) {
    let db = test_db.connect().await;
    flowkey::migrate::Migrator::new(db.clone(), RunOptions::default())
        .upgrade("head")
        .await
        .unwrap();
    let state = state(&db);
    let fixture = fixture(&db, &state).await;
    set_flag(&db, FlagScope::Global, FlowIdPrimary::On, "test")
        .await
        .unwrap();
    checked(&state).await;
    assert_eq!(state.keys(), KeyColumns::Expanded);
    let before = read_everything(&state, &fixture).await;
    // The cases are real: found, deprecated, and 404 for the other tenant.
    let found = before.iter().filter(|s| s.1 == 200).count();
    let refused = before.iter().filter(|s| s.1 == 404).count();
    assert!(found > 150 && refused > 50, "{found} found, {refused} 404");
    let v1_found = before
        .iter()
        .find(|s| s.0.contains("/api/v1/") && s.1 == 200)
        .unwrap();
    assert_eq!(v1_found.3[0].as_deref(), Some("@1795651200"));
    // The flow of two sessions: its import says the session it was written with.
    let of_two = before
        .iter()
        .find(|s| {
            s.0.ends_with(&format!(
                "/api/v1/data-import/import/{}",
                fixture.second_of_two
            ))
        })
        .unwrap();
    assert_eq!(
        of_two.2["data"]["session_id"],
        json!(fixture.second_of_two.to_string())
    );

    contract(&db).await;
    // The old verdict still stands until the gate checks again; then it serves contracted.
    checked(&state).await;
    assert_eq!(state.keys(), KeyColumns::Contracted);
    let ready = send(&state, admin(Method::GET, "/ready", None)).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(
        ready.data()["key_columns"],
        json!("contracted"),
        "{}",
        ready.text
    );
    let after = read_everything(&state, &fixture).await;
    assert_same(&before, &after);
    // The cache played no part: a fresh server answers the same.
    let fresh = state_checked(&db).await;
    assert_same(&before, &read_everything(&fresh, &fixture).await);
}
both_engines!(
    v1_and_v3_answer_the_same_after_the_contract,
    v1_and_v3_answer_the_same_after_the_contract
);

async fn state_checked(db: &Db) -> AppState {
    let state = state(db);
    checked(&state).await;
    state
}

async fn column_text(db: &Db, sql: &str, id: &str) -> Option<String> {
    on_pool!(db, pool => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await.unwrap())
}

async fn writes_after_the_contract_are_read_by_the_mapping(test_db: TestDb) {
    let db = test_db.connect().await;
    flowkey::migrate::Migrator::new(db.clone(), RunOptions::default())
        .upgrade("head")
        .await
        .unwrap();
    let state = state(&db);
    let fixture = fixture(&db, &state).await;
    set_flag(&db, FlagScope::Global, FlowIdPrimary::On, "test")
        .await
        .unwrap();
    contract(&db).await;
    checked(&state).await;
    assert_eq!(state.keys(), KeyColumns::Contracted);
    let tenant = fixture.tenant;
    let migrated = fixture.sessions[0];
    let migrated_flow = fixture.flows[0];

    // v1 upload into a mapped session: the import goes to its flow, v1 reads it back by the
    // session in any form, v3 shows the session it was written with.
    let stored = v1_store(&state, tenant, &format!("session-{migrated}")).await;
    assert_eq!(stored["flow_id"], json!(migrated_flow.to_string()));
    assert_eq!(stored["flow_created"], json!(false));
    let import_id = stored["import_id"].as_str().unwrap().to_owned();
    for form in forms(migrated) {
        let mut seen = Seen::new();
        let import = get(
            &state,
            tenant,
            &format!("/api/v1/data-import/import/{form}"),
            &mut seen,
        )
        .await;
        assert_eq!(import["data"]["import_id"], json!(import_id), "{form}");
        assert_eq!(import["data"]["session_id"], json!(migrated.to_string()));
        let records = get(
            &state,
            tenant,
            &format!("/api/v1/data-import/import/{form}/records"),
            &mut seen,
        )
        .await;
        let items = records["data"]["items"].as_array().unwrap();
        assert_eq!(items.len(), 3, "{records}");
        assert!(items
            .iter()
            .all(|r| r["session_id"] == json!(migrated.to_string())));
    }
    let mut seen = Seen::new();
    let v3 = get(
        &state,
        tenant,
        &format!("/api/v3/data-import/imports/{import_id}"),
        &mut seen,
    )
    .await;
    assert_eq!(v3["data"]["session_id"], json!(migrated.to_string()));

    // v1 upload into the larger session of a flow of two: the rule would say the smaller
    // one, so the service keeps it in the archive, and reads and the downgrade find it.
    let second = fixture.second_of_two;
    let stored = v1_store(&state, tenant, &second.to_string().to_uppercase()).await;
    assert_eq!(stored["flow_id"], json!(fixture.flow_of_two.to_string()));
    let of_two = stored["import_id"].as_str().unwrap().to_owned();
    let import = get(
        &state,
        tenant,
        &format!("/api/v1/data-import/import/disc_session_{second}"),
        &mut seen,
    )
    .await;
    assert_eq!(import["data"]["import_id"], json!(of_two));
    assert_eq!(import["data"]["session_id"], json!(second.to_string()));

    // v1 upload of a new session: a new flow and its mapping.
    let new_session = SessionId::from_stored(uuid::Uuid::new_v4());
    let stored = v1_store(&state, tenant, &format!("disc_session_{new_session}")).await;
    assert_eq!(stored["flow_created"], json!(true));
    let new_flow = stored["flow_id"].as_str().unwrap().to_owned();
    let flow = get(
        &state,
        tenant,
        &format!("/api/v1/unified-discovery/flow/status/{new_session}"),
        &mut seen,
    )
    .await;
    assert_eq!(flow["data"]["flow_id"], json!(new_flow));
    assert_eq!(
        flow["data"]["import_session_id"],
        json!(new_session.to_string())
    );

    // v3 writes: an import by flow (no session), a pause, a decision, a deletion.
    let (v3_import, v3_flow) = v3_import(&state, tenant, 4).await;
    let v3_read = get(
        &state,
        tenant,
        &format!("/api/v3/data-import/imports/{v3_import}"),
        &mut seen,
    )
    .await;
    assert_eq!(v3_read["data"]["flow_id"], json!(v3_flow));
    assert_eq!(v3_read["data"]["session_id"], Value::Null);
    let paused = send(
        &state,
        request(
            Method::POST,
            &format!("/api/v3/discovery-flow/flows/{migrated_flow}/pause"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.text);
    let status = get(
        &state,
        tenant,
        &format!("/api/v1/data-import/processing-status/{migrated}"),
        &mut seen,
    )
    .await;
    assert_eq!(status["data"]["status"], json!("paused"), "{status}");
    let mappings = get(
        &state,
        tenant,
        &format!("/api/v3/field-mapping/mappings/{migrated_flow}"),
        &mut seen,
    )
    .await;
    let mapping_id = mappings["data"]["items"][0]["mapping_id"]
        .as_str()
        .unwrap()
        .to_owned();
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
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
    let legacy_mappings = get(
        &state,
        tenant,
        &format!("/api/v1/data-import/validation-session/{migrated}"),
        &mut seen,
    )
    .await;
    let approved_row = legacy_mappings["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mapping_id"] == json!(mapping_id))
        .unwrap()
        .clone();
    assert_eq!(approved_row["status"], json!("approved"), "{approved_row}");
    let written_session = fixture.sessions[1];
    let written_flow = fixture.flows[1];
    let deleted = send(
        &state,
        request(
            Method::DELETE,
            &format!("/api/v3/discovery-flow/flows/{written_flow}"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    let gone = send(
        &state,
        request(
            Method::GET,
            &format!("/api/v1/data-import/import/{written_session}"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.text);

    // What the server answers now, then the same after `downgrade -1`, once its gate checks.
    let mut fixture = fixture;
    fixture.sessions.push(new_session);
    fixture.flows.retain(|flow| *flow != written_flow);
    fixture.flows.push(FlowId::parse(&new_flow).unwrap());
    fixture.flows.push(FlowId::parse(&v3_flow).unwrap());
    let contracted = read_everything(&state, &fixture).await;
    downgrade_to(&db, "-1").await;
    checked(&state).await;
    assert_eq!(state.keys(), KeyColumns::Expanded);
    assert_same(&contracted, &read_everything(&state, &fixture).await);
    // The columns are back with what the service wrote while contracted.
    let of_two_session = column_text(
        &db,
        "SELECT CAST(session_id AS TEXT) FROM data_imports WHERE CAST(id AS TEXT) = $1",
        &of_two,
    )
    .await;
    assert_eq!(of_two_session, Some(second.to_string()));
    let deletion_session = column_text(
        &db,
        "SELECT CAST(session_id AS TEXT) FROM flow_deletion_audit WHERE CAST(flow_id AS TEXT) = $1",
        &written_flow.to_string(),
    )
    .await;
    assert_eq!(deletion_session, Some(written_session.to_string()));
    let flow_session = column_text(
        &db,
        "SELECT CAST(import_session_id AS TEXT) FROM discovery_flows WHERE CAST(flow_id AS TEXT) = $1",
        &new_flow,
    )
    .await;
    assert_eq!(flow_session, Some(new_session.to_string()));
}
both_engines!(
    writes_after_the_contract_are_read_by_the_mapping,
    writes_after_the_contract_are_read_by_the_mapping
);

async fn off_and_shadow_are_refused_after_the_contract(test_db: TestDb) {
    let db = test_db.connect().await;
    flowkey::migrate::Migrator::new(db.clone(), RunOptions::default())
        .upgrade("head")
        .await
        .unwrap();
    let tenant = insert_tenant(&db).await;
    set_flag(&db, FlagScope::Global, FlowIdPrimary::On, "test")
        .await
        .unwrap();
    contract(&db).await;
    let state = state_checked(&db).await;
    let scope = format!("{}:{}", tenant.client_account_id, tenant.engagement_id);
    for value in ["off", "shadow"] {
        for body in [
            json!({"value": value}),
            json!({"value": value, "tenant": scope}),
        ] {
            let answer = send(
                &state,
                admin(
                    Method::PUT,
                    "/api/admin/flags/enable_flow_id_primary",
                    Some(body),
                ),
            )
            .await;
            assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text);
            assert_eq!(answer.error_code(), "contracted");
            assert!(
                answer.text.contains("contracted") && answer.text.contains("downgrade -1"),
                "{}",
                answer.text
            );
        }
        let (status, stderr) = run_to_end(
            &test_db.url,
            &["flag", "set", "enable_flow_id_primary", value],
        );
        assert!(!status.success(), "{stderr}");
        assert!(
            stderr.contains("contracted") && stderr.contains("downgrade -1"),
            "{stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
    // Nothing changed: the flag is still `on`, and `on` is still allowed.
    let (status, stderr) = run_to_end(
        &test_db.url,
        &["flag", "set", "enable_flow_id_primary", "on"],
    );
    assert!(status.success(), "{stderr}");
    let flags = flowkey::flags::stored_flags(&db).await.unwrap();
    assert!(flags.iter().all(|f| f.value == "on"), "{flags:?}");
    // A server whose default is `off` still starts and answers legacy ids from the mapping.
    flowkey::flags::check_default(&db, FlowIdPrimary::Off)
        .await
        .unwrap();
    // After `downgrade -1` they are allowed again.
    downgrade_to(&db, "-1").await;
    let (status, stderr) = run_to_end(
        &test_db.url,
        &["flag", "set", "enable_flow_id_primary", "shadow"],
    );
    assert!(status.success(), "{stderr}");
}
both_engines!(
    off_and_shadow_are_refused_after_the_contract,
    off_and_shadow_are_refused_after_the_contract
);

/// A tenant left `off` (a forced contract) or a server defaulting to `off` still answers
/// legacy ids from the mapping: the session columns are gone, so `off` cannot read them.
async fn a_stored_off_is_served_as_on_after_the_contract(test_db: TestDb) {
    let db = test_db.connect().await;
    flowkey::migrate::Migrator::new(db.clone(), RunOptions::default())
        .upgrade("head")
        .await
        .unwrap();
    let tenant = insert_tenant(&db).await;
    let migrated = migrated_session(&db, tenant).await;
    set_flag(&db, FlagScope::Tenant(tenant), FlowIdPrimary::Off, "test")
        .await
        .unwrap();
    contract(&db).await;
    let state = state_checked(&db).await;
    let mut seen = Seen::new();
    for route in V1_READS {
        let uri = route.replace("{}", &format!("session-{}", migrated.session));
        get(&state, tenant, &uri, &mut seen).await;
    }
    for (uri, status, body, _) in &seen {
        assert_ne!(*status, 500, "{uri}: {body}");
    }
    assert_eq!(seen[0].1, 200, "{:?}", seen[0]);
    assert_eq!(
        seen[0].2["data"]["import_id"],
        json!(migrated.import_id.to_string())
    );
}
both_engines!(
    a_stored_off_is_served_as_on_after_the_contract,
    a_stored_off_is_served_as_on_after_the_contract
);

/// A GET to a running `flowkey serve` with the tenant headers: status, body and the
/// deprecation headers.
async fn served_get(
    server: &Server,
    tenant: TenantId,
    path: &str,
) -> (u16, Value, Vec<Option<String>>) {
    let answer = reqwest::Client::new()
        .get(format!("{}{path}", server.base))
        .header("x-client-account-id", tenant.client_account_id.to_string())
        .header("x-engagement-id", tenant.engagement_id.to_string())
        .send()
        .await
        .expect("answer");
    let headers = ["deprecation", "sunset", "link"]
        .iter()
        .map(|name| {
            answer
                .headers()
                .get(*name)
                .map(|v| v.to_str().unwrap().to_owned())
        })
        .collect();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null), headers)
}

/// `/ready` until it answers `expected` (the server's gate follows the schema by itself).
async fn ready_becomes(server: &Server, tenant: TenantId, expected: u16) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (status, body, _) = served_get(server, tenant, "/ready").await;
        if status == expected {
            return body;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "/ready stays {status}: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The real binary: a server running at head follows `flowkey contract` and `flowkey
/// downgrade -1` by itself and answers the same throughout; a server started on the
/// contracted database (no `ENABLE_FLOW_ID_PRIMARY`: default `off`) starts and answers the
/// same; `/openapi.json` is the same document, v1 deprecated.
async fn flowkey_serve_follows_the_contract_and_its_downgrade(test_db: TestDb) {
    let db = test_db.connect().await;
    flowkey::migrate::Migrator::new(db.clone(), RunOptions::default())
        .upgrade("head")
        .await
        .unwrap();
    let tenant = insert_tenant(&db).await;
    let migrated = migrated_session(&db, tenant).await;
    set_flag(&db, FlagScope::Global, FlowIdPrimary::On, "test")
        .await
        .unwrap();
    let paths: Vec<String> = V1_READS
        .iter()
        .map(|route| route.replace("{}", &format!("disc_session_{}", migrated.session)))
        .chain([
            format!("/api/v3/discovery-flow/flows/{}", migrated.flow_id),
            format!("/api/v3/data-import/imports/{}", migrated.import_id),
            format!("/api/v3/field-mapping/mappings/{}", migrated.flow_id),
        ])
        .collect();
    let server = serve(&test_db.url, &[]).await;
    ready_becomes(&server, tenant, 200).await;
    let mut before = Vec::new();
    for path in &paths {
        before.push(served_get(&server, tenant, path).await);
    }
    assert_eq!(before[0].0, 200, "{:?}", before[0]);
    assert_eq!(before[0].2[0].as_deref(), Some("@1795651200"));
    let (_, openapi, _) = served_get(&server, tenant, "/openapi.json").await;
    for path in V1_READS {
        let path = path.replace("{}", "{session_id}");
        assert_eq!(
            openapi["paths"][&path]["get"]["deprecated"],
            json!(true),
            "{path}"
        );
    }

    let (status, stderr) = run_to_end(
        &test_db.url,
        &["contract", "--quiet-period", "0s", "--force"],
    );
    assert!(status.success(), "{stderr}");
    let ready = ready_becomes(&server, tenant, 200).await;
    assert_eq!(ready["data"]["key_columns"], json!("contracted"), "{ready}");
    for (path, seen) in paths.iter().zip(&before) {
        assert_eq!(&served_get(&server, tenant, path).await, seen, "{path}");
    }
    assert_eq!(
        served_get(&server, tenant, "/openapi.json").await.1,
        openapi
    );

    // Started on the contracted database, with the default flag (`off`).
    let fresh = serve_with_env(&test_db.url, &[], &[("ENABLE_FLOW_ID_PRIMARY", "off")]).await;
    ready_becomes(&fresh, tenant, 200).await;
    for (path, seen) in paths.iter().zip(&before) {
        assert_eq!(&served_get(&fresh, tenant, path).await, seen, "{path}");
    }
    drop(fresh);

    let (status, stderr) = run_to_end(&test_db.url, &["downgrade", "-1", "--no-progress"]);
    assert!(status.success(), "{stderr}");
    // The server follows by itself (its /ready checks too): the session columns are read
    // again, the answers are the same.
    ready_becomes(&server, tenant, 200).await;
    for (path, seen) in paths.iter().zip(&before) {
        assert_eq!(&served_get(&server, tenant, path).await, seen, "{path}");
    }
}
both_engines!(
    flowkey_serve_follows_the_contract_and_its_downgrade,
    flowkey_serve_follows_the_contract_and_its_downgrade
);

/// Between the contract (or its downgrade) and a server's next schema check, the server
/// reads with the key columns of the schema it last saw: it answers 503
/// `schema_not_at_head` where that fails, never 500, and serves once it checks.
async fn a_server_behind_the_schema_answers_503_never_500(test_db: TestDb) {
    let db = test_db.connect().await;
    flowkey::migrate::Migrator::new(db.clone(), RunOptions::default())
        .upgrade("head")
        .await
        .unwrap();
    let tenant = insert_tenant(&db).await;
    let migrated = migrated_session(&db, tenant).await;
    set_flag(&db, FlagScope::Global, FlowIdPrimary::On, "test")
        .await
        .unwrap();
    let state = state_checked(&db).await;
    let paths: Vec<String> = V1_READS
        .iter()
        .map(|route| route.replace("{}", &migrated.session.to_string()))
        .chain([
            format!("/api/v3/discovery-flow/flows/{}", migrated.flow_id),
            format!("/api/v3/data-import/imports/{}", migrated.import_id),
            format!("/api/v3/data-import/imports/{}/records", migrated.import_id),
            format!("/api/v3/field-mapping/mappings/{}", migrated.flow_id),
        ])
        .collect();
    let mut before = Seen::new();
    for path in &paths {
        get(&state, tenant, path, &mut before).await;
    }
    assert!(before.iter().all(|s| s.1 == 200), "{before:?}");

    for step in ["contract", "downgrade"] {
        match step {
            "contract" => contract(&db).await,
            _ => downgrade_to(&db, "-1").await,
        }
        let mut behind = Seen::new();
        for path in &paths {
            get(&state, tenant, path, &mut behind).await;
        }
        for (uri, status, body, _) in &behind {
            assert!(
                *status == 200 || *status == 503,
                "{step}: {uri} answered {status}: {body}"
            );
            if *status == 503 {
                assert_eq!(body["error"]["code"], json!("schema_not_at_head"), "{body}");
            }
        }
        // The v1 import read names `session_id`: behind a contract it cannot be answered.
        if step == "contract" {
            assert_eq!(behind[0].1, 503, "{:?}", behind[0]);
        }
        checked(&state).await;
        let mut caught_up = Seen::new();
        for path in &paths {
            get(&state, tenant, path, &mut caught_up).await;
        }
        assert_same(&before, &caught_up);
    }
}
both_engines!(
    a_server_behind_the_schema_answers_503_never_500,
    a_server_behind_the_schema_answers_503_never_500
);

/// Seeded legacy data with every oddity of session values (dangling, free text, upper case,
/// another tenant's, several flows per session, ...): every v1 read of every session and
/// every v3 read of every flow and import, in each tenant, answers the same after the
/// contract.
async fn seeded_oddities_answer_the_same_after_the_contract(test_db: TestDb) {
    let db = test_db.connect().await;
    flowkey::seed::seed(&db, &flowkey::seed::SeedConfig::default())
        .await
        .unwrap();
    flowkey::migrate::Migrator::new(db.clone(), RunOptions::default())
        .upgrade("head")
        .await
        .unwrap();
    set_flag(&db, FlagScope::Global, FlowIdPrimary::On, "test")
        .await
        .unwrap();
    let sql = "SELECT CAST(s.id AS TEXT), CAST(e.client_account_id AS TEXT), CAST(e.id AS TEXT) \
               FROM data_import_sessions s CROSS JOIN engagements e ORDER BY 1, 2, 3";
    let pairs: Vec<(String, String, String)> =
        on_pool!(&db, pool => sqlx::query_as(sql).fetch_all(pool).await.unwrap());
    let flows_sql = "SELECT CAST(flow_id AS TEXT), CAST(client_account_id AS TEXT), \
                     CAST(engagement_id AS TEXT) FROM discovery_flows \
                     WHERE client_account_id IS NOT NULL AND engagement_id IS NOT NULL ORDER BY 1";
    let flows: Vec<(String, String, String)> =
        on_pool!(&db, pool => sqlx::query_as(flows_sql).fetch_all(pool).await.unwrap());
    let imports_sql = "SELECT CAST(di.id AS TEXT), CAST(e.client_account_id AS TEXT), \
                       CAST(e.id AS TEXT) FROM data_imports di CROSS JOIN engagements e ORDER BY 1, 2, 3";
    let imports: Vec<(String, String, String)> =
        on_pool!(&db, pool => sqlx::query_as(imports_sql).fetch_all(pool).await.unwrap());
    let tenant_of = |client: &str, engagement: &str| TenantId::parse(client, engagement).unwrap();
    let read = |state: AppState| {
        let (pairs, flows, imports) = (pairs.clone(), flows.clone(), imports.clone());
        async move {
            let mut seen = Seen::new();
            for (session, client, engagement) in &pairs {
                for route in V1_READS {
                    let uri = route.replace("{}", &format!("session-{session}"));
                    get(&state, tenant_of(client, engagement), &uri, &mut seen).await;
                }
            }
            for (flow, client, engagement) in &flows {
                for uri in [
                    format!("/api/v3/discovery-flow/flows/{flow}"),
                    format!("/api/v3/field-mapping/mappings/{flow}"),
                    format!("/api/v3/data-import/imports?flow_id={flow}"),
                ] {
                    get(&state, tenant_of(client, engagement), &uri, &mut seen).await;
                }
            }
            for (import, client, engagement) in &imports {
                for uri in [
                    format!("/api/v3/data-import/imports/{import}"),
                    format!("/api/v3/data-import/imports/{import}/records?limit=500"),
                ] {
                    get(&state, tenant_of(client, engagement), &uri, &mut seen).await;
                }
            }
            seen
        }
    };
    let before = read(state_checked(&db).await).await;
    let found = before.iter().filter(|s| s.1 == 200).count();
    assert!(found > 100, "{found} found of {}", before.len());
    assert!(
        before.iter().all(|s| s.1 != 500),
        "{:?}",
        before.iter().find(|s| s.1 == 500)
    );
    contract(&db).await;
    let after = read(state_checked(&db).await).await;
    assert_same(&before, &after);
}
both_engines!(
    seeded_oddities_answer_the_same_after_the_contract,
    seeded_oddities_answer_the_same_after_the_contract
);
