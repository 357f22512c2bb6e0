//! ENABLE_FLOW_ID_PRIMARY: every mode answers the same on migrated data, `on` is refused
//! while the backfill is incomplete, a change in the database applies at runtime.

// Test bodies are plain async fns run by `both_engines!`, so clippy does not see them as
// tests: allow the unwraps it allows in tests.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use flowkey::flags::{self, FlagError, FlagScope, FlowIdPrimary};
use serde_json::json;

use crate::both_engines;
use crate::support::harness::TestDb;
use crate::support::service_support::*;

const V1_ROUTES: [&str; 4] = [
    "/api/v1/data-import/import/",
    "/api/v1/data-import/processing-status/",
    "/api/v1/data-import/validation-session/",
    "/api/v1/unified-discovery/flow/status/",
];

async fn modes_agree(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let migrated = migrated_session(&db, tenant).await;
    let state = state(&db);
    let mut answers = Vec::new();
    for mode in [FlowIdPrimary::Off, FlowIdPrimary::Shadow, FlowIdPrimary::On] {
        flags::set_flag(&db, FlagScope::Global, mode, "test")
            .await
            .expect("set");
        state.refresh_flags().await.expect("refresh");
        assert_eq!(state.flags.mode_for(tenant), mode);
        let mut bodies = Vec::new();
        for route in V1_ROUTES {
            let answer = send(
                &state,
                request(
                    Method::GET,
                    &format!("{route}{}", migrated.session),
                    tenant,
                    None,
                ),
            )
            .await;
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "{mode} {route}: {}",
                answer.text
            );
            bodies.push(answer.body);
        }
        answers.push(bodies);
    }
    assert_eq!(answers[0], answers[1], "off and shadow agree");
    assert_eq!(answers[0], answers[2], "off and on agree");
    let mismatches = state
        .compat
        .metrics()
        .shadow_mismatches
        .with_label_values(&["/api/v1/data-import/import/{session_id}"])
        .get();
    assert_eq!(mismatches, 0);
}
both_engines!(
    off_shadow_and_on_answer_identically_on_migrated_data,
    modes_agree
);

/// The v1 flow routes for a session linked by rule `data_import`: the legacy platform found
/// flows by `discovery_flows.import_session_id`, which for such a session holds its import's
/// id, so legacy answered 404. `off` keeps that contract, `shadow` serves it and counts the
/// read as recovered (not as a mismatch), `on` finds the flow through the mapping.
async fn data_import_rule_sessions(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let user = insert_user(&db).await;
    let session = insert_session(&db, tenant, user).await;
    let flow_id = flowkey::ids::FlowId::new_v4();
    insert_flow(&db, tenant, flow_id, None).await;
    insert_mapping(&db, session, flow_id, tenant, "data_import").await;
    let import_id = insert_import(&db, tenant, user, Some(session), Some(flow_id)).await;
    // As the legacy upload path left it: the flow's "session" is its import's id.
    flowkey::on_pool!(&db, pool => {
        sqlx::query("UPDATE discovery_flows SET import_session_id = $1 WHERE flow_id = $2")
            .bind(flowkey::db::types::DbUuid(import_id.as_uuid()))
            .bind(flow_id)
            .execute(pool)
            .await
            .unwrap();
    });
    let state = state(&db);
    let routes = [
        "/api/v1/unified-discovery/flow/status/{session_id}",
        "/api/v1/data-import/processing-status/{session_id}",
    ];
    let read = |route: &str| {
        request(
            Method::GET,
            &route.replace("{session_id}", &format!("disc_session_{session}")),
            tenant,
            None,
        )
    };
    for (mode, expected) in [
        (FlowIdPrimary::Off, StatusCode::NOT_FOUND),
        (FlowIdPrimary::Shadow, StatusCode::NOT_FOUND),
        (FlowIdPrimary::On, StatusCode::OK),
    ] {
        flags::set_flag(&db, FlagScope::Tenant(tenant), mode, "test")
            .await
            .expect("set");
        state.refresh_flags().await.expect("refresh");
        for route in routes {
            let answer = send(&state, read(route)).await;
            assert_eq!(answer.status, expected, "{mode} {route}: {}", answer.text);
            if expected == StatusCode::OK {
                assert_eq!(answer.data()["flow_id"], flow_id.to_string(), "{route}");
            }
        }
    }
    let metrics = state.compat.metrics();
    for route in routes {
        assert_eq!(
            metrics.shadow_recovered.with_label_values(&[route]).get(),
            1,
            "{route}"
        );
        assert_eq!(
            metrics.shadow_mismatches.with_label_values(&[route]).get(),
            0,
            "{route}"
        );
    }
}
both_engines!(
    a_data_import_rule_session_is_404_when_off_as_in_legacy_recovered_in_shadow_found_when_on,
    data_import_rule_sessions
);

async fn shadow_counts_differences(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let user = insert_user(&db).await;
    let session = insert_session(&db, tenant, user).await;
    // The session key finds one flow (its import_session_id), the mapping names another:
    // the two reads disagree, and `on` would answer differently.
    let by_session = flowkey::ids::FlowId::new_v4();
    insert_flow(&db, tenant, by_session, Some(session.as_uuid())).await;
    let flow_id = flowkey::ids::FlowId::new_v4();
    insert_flow(&db, tenant, flow_id, None).await;
    insert_mapping(&db, session, flow_id, tenant, "data_import").await;
    let state = state(&db);
    flags::set_flag(
        &db,
        FlagScope::Tenant(tenant),
        FlowIdPrimary::Shadow,
        "test",
    )
    .await
    .expect("set");
    state.refresh_flags().await.expect("refresh");
    let answer = send(
        &state,
        request(
            Method::GET,
            &format!("/api/v1/unified-discovery/flow/status/{session}"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        answer.data()["flow_id"],
        by_session.to_string(),
        "shadow serves the session-keyed answer"
    );
    let route = "/api/v1/unified-discovery/flow/status/{session_id}";
    let metrics = state.compat.metrics();
    assert_eq!(
        metrics.shadow_mismatches.with_label_values(&[route]).get(),
        1
    );
    assert_eq!(
        metrics.shadow_recovered.with_label_values(&[route]).get(),
        0
    );
    // The mismatch gates `on` (issue 12): forced here, to see what `on` would answer.
    flags::set_flag_forcing(
        &db,
        FlagScope::Tenant(tenant),
        FlowIdPrimary::On,
        "test",
        true,
    )
    .await
    .expect("set");
    state.refresh_flags().await.expect("refresh");
    let on = send(
        &state,
        request(
            Method::GET,
            &format!("/api/v1/unified-discovery/flow/status/{session}"),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(on.status, StatusCode::OK, "on reads through the mapping");
    assert_eq!(on.data()["flow_id"], flow_id.to_string());
}
both_engines!(
    shadow_serves_the_session_answer_and_counts_a_difference,
    shadow_counts_differences
);

async fn on_refused_until_backfilled(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    migrated_session(&db, tenant).await;
    // An import written by old code for a session that had no mapping yet (the dual-write
    // trigger finds nothing to link it to), whose mapping appears afterwards: exactly what
    // the backfill has to catch up on.
    let user = insert_user(&db).await;
    let late_session = insert_session(&db, tenant, user).await;
    insert_import(&db, tenant, user, Some(late_session), None).await;
    let late_flow = flowkey::ids::FlowId::new_v4();
    // Written without `import_session_id` (which the live mapping would follow at once),
    // and mapped afterwards.
    insert_flow(&db, tenant, late_flow, None).await;
    insert_mapping(&db, late_session, late_flow, tenant, "import_session_id").await;
    let readiness = flags::readiness(&db).await.expect("readiness");
    assert!(!readiness.is_ready());
    let err = flags::set_flag(&db, FlagScope::Global, FlowIdPrimary::On, "test")
        .await
        .unwrap_err();
    assert!(matches!(err, FlagError::NotReady { .. }), "{err}");
    assert!(err.to_string().contains("data_imports"), "{err}");
    flags::set_flag(&db, FlagScope::Global, FlowIdPrimary::Shadow, "test")
        .await
        .expect("shadow is allowed");

    let state = state(&db);
    let refused = send(
        &state,
        admin(
            Method::PUT,
            "/api/admin/flags/enable_flow_id_primary",
            Some(json!({"value": "on"})),
        ),
    )
    .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.error_code(), "not_ready");
    let bad = send(
        &state,
        admin(
            Method::PUT,
            "/api/admin/flags/enable_flow_id_primary",
            Some(json!({"value": "sometimes"})),
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let unknown = send(
        &state,
        admin(
            Method::PUT,
            "/api/admin/flags/other_flag",
            Some(json!({"value": "on"})),
        ),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}
both_engines!(
    turning_on_is_refused_while_the_backfill_is_incomplete,
    on_refused_until_backfilled
);

async fn runtime_switch(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let other = insert_tenant(&db).await;
    let config = flowkey::http::ServiceConfig {
        flag_poll_interval: Duration::from_millis(50),
        ..crate::support::service_support::config()
    };
    let state = flowkey::http::AppState::new(db.clone(), config).expect("state");
    let background = state.spawn_background();
    assert_eq!(state.flags.mode_for(tenant), FlowIdPrimary::Off);
    // Another server (here: the library directly) changes the stored value.
    flags::set_flag(&db, FlagScope::Tenant(tenant), FlowIdPrimary::Shadow, "ops")
        .await
        .expect("set");
    let mut seen = FlowIdPrimary::Off;
    for _ in 0..200 {
        seen = state.flags.mode_for(tenant);
        if seen == FlowIdPrimary::Shadow {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        seen,
        FlowIdPrimary::Shadow,
        "the poller picked up the change"
    );
    assert_eq!(
        state.flags.mode_for(other),
        FlowIdPrimary::Off,
        "another tenant keeps the global value"
    );

    let set = send(
        &state,
        admin(
            Method::PUT,
            "/api/admin/flags/enable_flow_id_primary",
            Some(json!({"value": "on"})),
        ),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    assert_eq!(
        state.flags.mode_for(other),
        FlowIdPrimary::On,
        "the admin endpoint applies at once"
    );
    assert_eq!(
        state.flags.mode_for(tenant),
        FlowIdPrimary::Shadow,
        "a tenant override wins"
    );
    let listed = send(&state, admin(Method::GET, "/api/admin/flags", None)).await;
    assert_eq!(listed.data()["stored"].as_array().unwrap().len(), 2);
    background.shutdown().await;
}
both_engines!(
    a_flag_change_in_the_database_applies_at_runtime,
    runtime_switch
);

async fn delete_invalidates_resolution(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let migrated = migrated_session(&db, tenant).await;
    let state = state(&db);
    flags::set_flag(&db, FlagScope::Global, FlowIdPrimary::On, "test")
        .await
        .expect("set");
    state.refresh_flags().await.expect("refresh");
    let uri = format!("/api/v1/unified-discovery/flow/status/{}", migrated.session);
    for _ in 0..2 {
        let answer = send(&state, request(Method::GET, &uri, tenant, None)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    assert_eq!(
        state.compat.metrics().cache_hits.get(),
        1,
        "the second read resolved from the cache"
    );
    let deleted = send(
        &state,
        request(
            Method::DELETE,
            &format!("/api/v3/discovery-flow/flows/{}", migrated.flow_id),
            tenant,
            None,
        ),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    let after = send(&state, request(Method::GET, &uri, tenant, None)).await;
    assert_eq!(after.status, StatusCode::NOT_FOUND, "{}", after.text);
    assert_eq!(
        state.compat.metrics().cache_hits.get(),
        1,
        "the deleted flow was not served from the cache"
    );
}
both_engines!(
    deleting_a_flow_through_the_api_invalidates_the_resolve_cache,
    delete_invalidates_resolution
);

async fn environment_on_is_checked(test_db: TestDb) {
    let (keep, db) = head_db(test_db.engine).await;
    flags::check_default(&db, FlowIdPrimary::On)
        .await
        .expect("a database with nothing to link is ready");
    let tenant = insert_tenant(&db).await;
    let user = insert_user(&db).await;
    let late_session = insert_session(&db, tenant, user).await;
    insert_import(&db, tenant, user, Some(late_session), None).await;
    let late_flow = flowkey::ids::FlowId::new_v4();
    // Written without `import_session_id` (which the live mapping would follow at once),
    // and mapped afterwards.
    insert_flow(&db, tenant, late_flow, None).await;
    insert_mapping(&db, late_session, late_flow, tenant, "import_session_id").await;
    let err = flags::check_default(&db, FlowIdPrimary::On)
        .await
        .unwrap_err();
    assert!(matches!(err, FlagError::NotReady { .. }), "{err}");
    flags::check_default(&db, FlowIdPrimary::Shadow)
        .await
        .expect("shadow needs no readiness");

    // The real server refuses to start at `on` from the environment, with the reason.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_flowkey"))
        .args([
            "--database-url",
            &keep.url,
            "serve",
            "--bind",
            "127.0.0.1:0",
        ])
        .env(flags::ENV_VAR, "on")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("serve stops by itself")
        .expect("serve runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("refusing to serve with ENABLE_FLOW_ID_PRIMARY=on")
            && stderr.contains("data_imports"),
        "{stderr}"
    );
}
both_engines!(
    on_from_the_environment_passes_the_readiness_check,
    environment_on_is_checked
);
