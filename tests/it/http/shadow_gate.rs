//! Shadow that can reach zero, and the `on` gate that uses it (issue 12, item 3): every
//! difference between the session-keyed and the flow-keyed answer is a mismatch or a named
//! category, counted apart; `flag set … on` (library, admin route, CLI) refuses while the
//! tenant has mismatches since its last flag change, `--force` overrides and is recorded;
//! every `flowkey_shadow_*` series is exported from the start. Old-code rows are plain SQL.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use flowkey::db::types::{DbTime, DbUuid};
use flowkey::db::Db;
use flowkey::flags::{self, FlagError, FlagScope, FlowIdPrimary};
use flowkey::ids::{FlowId, ImportId, SessionId, TenantId};
use serde_json::json;

use crate::both_engines;
use crate::support::harness::TestDb;
use crate::support::reliability_support::run_to_end;
use crate::support::service_support::*;

const RECORDS: &str = "/api/v1/data-import/import/{session_id}/records";
const FLOW_STATUS: &str = "/api/v1/unified-discovery/flow/status/{session_id}";

/// A raw record as the old application writes it: `session_id` only (or none), no flow.
async fn old_code_record(
    db: &Db,
    tenant: TenantId,
    import: ImportId,
    session: Option<SessionId>,
    row: i32,
) {
    let json = match db.engine() {
        flowkey::db::Engine::Postgres => "::json",
        flowkey::db::Engine::Sqlite => "",
    };
    let sql = format!(
        "INSERT INTO raw_import_records (id, data_import_id, client_account_id, engagement_id, session_id, row_number, raw_data, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7{json}, $8)"
    );
    flowkey::on_pool!(db, pool => {
        sqlx::query(&sql)
            .bind(DbUuid::new_v4())
            .bind(import)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(session)
            .bind(row)
            .bind("{\"host\": \"web-01\"}")
            .bind(DbTime::now())
            .execute(pool)
            .await
            .unwrap();
    });
}

async fn shadow(db: &Db, state: &flowkey::http::AppState, tenant: TenantId) {
    flags::set_flag(db, FlagScope::Tenant(tenant), FlowIdPrimary::Shadow, "test")
        .await
        .expect("shadow");
    state.refresh_flags().await.expect("refresh");
}

async fn read(state: &flowkey::http::AppState, route: &str, tenant: TenantId, session: SessionId) {
    let answer = send(
        state,
        request(
            Method::GET,
            &route.replace("{session_id}", &session.to_string()),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{route}: {}", answer.text);
}

async fn a_record_without_a_session_is_a_category_not_a_mismatch(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let user = insert_user(&db).await;
    // The old application: a session, its flow, an import, records with and without a session.
    let session = insert_session(&db, tenant, user).await;
    insert_flow(&db, tenant, FlowId::new_v4(), Some(session.as_uuid())).await;
    let import = insert_import(&db, tenant, user, Some(session), None).await;
    old_code_record(&db, tenant, import, Some(session), 1).await;
    old_code_record(&db, tenant, import, None, 2).await;
    let state = state(&db);
    shadow(&db, &state, tenant).await;

    read(&state, RECORDS, tenant, session).await;

    let metrics = state.compat.metrics();
    assert_eq!(metrics.shadow_reads.with_label_values(&[RECORDS]).get(), 1);
    assert_eq!(
        metrics
            .shadow_explained
            .with_label_values(&[RECORDS, "record_without_session"])
            .get(),
        1
    );
    assert_eq!(
        metrics
            .shadow_mismatches
            .with_label_values(&[RECORDS])
            .get(),
        0
    );
    // No mismatch: `on` is allowed without --force.
    flags::set_flag(&db, FlagScope::Tenant(tenant), FlowIdPrimary::On, "test")
        .await
        .expect("on without mismatches");
}
both_engines!(
    a_record_without_a_session_is_a_category_not_a_mismatch,
    a_record_without_a_session_is_a_category_not_a_mismatch
);

async fn on_is_refused_after_a_mismatch_until_forced(test_db: TestDb) {
    let (at_head, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let user = insert_user(&db).await;
    let session = insert_session(&db, tenant, user).await;
    // The old application's flow names the session; a mapping row naming another flow (a
    // defect) makes the two keys disagree.
    insert_flow(&db, tenant, FlowId::new_v4(), Some(session.as_uuid())).await;
    let other = FlowId::new_v4();
    insert_flow(&db, tenant, other, None).await;
    insert_mapping(&db, session, other, tenant, "data_import").await;
    let state = state(&db);
    shadow(&db, &state, tenant).await;
    read(&state, FLOW_STATUS, tenant, session).await;
    assert_eq!(
        state
            .compat
            .metrics()
            .shadow_mismatches
            .with_label_values(&[FLOW_STATUS])
            .get(),
        1
    );

    let err = flags::set_flag(&db, FlagScope::Tenant(tenant), FlowIdPrimary::On, "test")
        .await
        .unwrap_err();
    assert!(
        matches!(err, FlagError::ShadowMismatches { mismatches: 1, .. }),
        "{err}"
    );
    // Another tenant's count is its own.
    let clean = insert_tenant(&db).await;
    flags::set_flag(&db, FlagScope::Tenant(clean), FlowIdPrimary::On, "test")
        .await
        .expect("a tenant without mismatches");

    let refused = send(
        &state,
        admin(
            Method::PUT,
            "/api/admin/flags/enable_flow_id_primary",
            Some(json!({"value": "on", "tenant": tenant.to_string()})),
        ),
    )
    .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.error_code(), "shadow_mismatches");
    assert_eq!(refused.body["error"]["details"]["mismatches"], 1);

    let scope = tenant.to_string();
    let set_on = [
        "flag",
        "set",
        "enable_flow_id_primary",
        "on",
        "--tenant",
        scope.as_str(),
    ];
    let (status, stderr) = run_to_end(&at_head.url, &set_on);
    assert!(!status.success());
    assert!(stderr.contains("1 shadow mismatches"), "{stderr}");
    assert_eq!(
        flags::stored_flags(&db)
            .await
            .unwrap()
            .iter()
            .find(|flag| flag.scope == scope)
            .map(|flag| flag.value.clone()),
        Some("shadow".to_owned()),
        "nothing changed"
    );

    let forced: Vec<&str> = set_on.iter().copied().chain(["--force"]).collect();
    let (status, stderr) = run_to_end(&at_head.url, &forced);
    assert!(status.success(), "{stderr}");
    let audit: (i64, i64) = flowkey::on_pool!(&db, pool => {
        sqlx::query_as(
            "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(mismatches_overridden), 0) AS BIGINT) \
             FROM flowkey_flag_changes WHERE scope = $1 AND value = 'on' AND forced",
        )
        .bind(&scope)
        .fetch_one(pool)
        .await
        .unwrap()
    });
    assert_eq!(audit, (1, 1));
    // The change started a new count: the tenant can go back to shadow and on again.
    flags::set_flag(
        &db,
        FlagScope::Tenant(tenant),
        FlowIdPrimary::Shadow,
        "test",
    )
    .await
    .unwrap();
    flags::set_flag(&db, FlagScope::Tenant(tenant), FlowIdPrimary::On, "test")
        .await
        .expect("count restarted at the change");
}
both_engines!(
    on_is_refused_after_a_mismatch_until_forced,
    on_is_refused_after_a_mismatch_until_forced
);

async fn every_shadow_series_is_exported_from_the_start(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let state = state(&db);
    let metrics = send(
        &state,
        Request::builder()
            .uri("/metrics")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(metrics.status, StatusCode::OK);
    for route in flowkey::compat::SHADOW_ROUTES {
        for series in [
            format!("flowkey_shadow_mismatches_total{{route=\"{route}\"}} 0"),
            format!("flowkey_shadow_recovered_total{{route=\"{route}\"}} 0"),
            format!("flowkey_shadow_reads_total{{route=\"{route}\"}} 0"),
            format!(
                "flowkey_shadow_explained_total{{category=\"record_without_session\",route=\"{route}\"}} 0"
            ),
        ] {
            assert!(metrics.text.contains(&series), "{series} in {}", metrics.text);
        }
    }
}
both_engines!(
    every_shadow_series_is_exported_from_the_start,
    every_shadow_series_is_exported_from_the_start
);
