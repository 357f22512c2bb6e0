//! SessionFlowCompatibilityService on both engines: every id form, not found, conflict, a
//! read never writes, the cache and its invalidation, legacy traffic accounting.

// Test bodies are plain async fns run by `both_engines!`, so clippy does not see them as
// tests: allow the unwraps it allows in tests.

use flowkey::compat::{
    CompatConfig, CompatError, CompatMetrics, LegacyCall, SessionFlowCompatibilityService,
};
use flowkey::db::Db;
use flowkey::flags::FlowIdPrimary;
use flowkey::ids::{AnyId, FlowId, SessionId};
use flowkey::imports::FlowDeletion;
use flowkey::paging::PageRequest;

use crate::both_engines;
use crate::support::harness::TestDb;
use crate::support::service_support::*;

fn service(db: &Db) -> SessionFlowCompatibilityService {
    let registry = prometheus::Registry::new();
    let metrics = CompatMetrics::register(&registry).expect("metrics");
    SessionFlowCompatibilityService::new(
        db.clone(),
        &CompatConfig::default(),
        metrics,
        flowkey::db::ServedKeys::default(),
    )
}

async fn every_id_form_resolves(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let migrated = migrated_session(&db, tenant).await;
    let compat = service(&db);
    let session = migrated.session.to_string();
    for text in [
        migrated.flow_id.to_string(),
        session.clone(),
        format!("disc_session_{session}"),
        format!("SESSION-{}", session.to_uppercase()),
        migrated.import_id.to_string(),
    ] {
        let flow = compat
            .resolve_text(&text, tenant)
            .await
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(flow, migrated.flow_id, "{text}");
    }
}
both_engines!(
    a_flow_id_a_session_in_any_form_and_an_import_id_resolve_to_the_flow,
    every_id_form_resolves
);

async fn unknown_and_foreign_ids_are_not_found(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let other = insert_tenant(&db).await;
    let migrated = migrated_session(&db, tenant).await;
    let compat = service(&db);
    let unknown = compat
        .resolve(AnyId::Bare(uuid::Uuid::new_v4()), tenant)
        .await;
    assert!(matches!(unknown, Err(CompatError::NotFound { .. })));
    for id in [
        AnyId::Bare(migrated.flow_id.as_uuid()),
        AnyId::Session(migrated.session),
        AnyId::Bare(migrated.import_id.as_uuid()),
    ] {
        let foreign = compat.resolve(id, other).await;
        assert!(
            matches!(foreign, Err(CompatError::NotFound { .. })),
            "{id:?}"
        );
    }
    assert!(matches!(
        compat.resolve_text("garbage", tenant).await,
        Err(CompatError::MalformedId(_))
    ));
}
both_engines!(
    unknown_ids_and_ids_of_another_tenant_are_not_found,
    unknown_and_foreign_ids_are_not_found
);

async fn two_flows_conflict(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let migrated = migrated_session(&db, tenant).await;
    // A second flow whose flow_id equals the first one's session id: the bare UUID names two
    // different flows (as a flow id, and as a mapped session).
    let clash = FlowId::from_stored(migrated.session.as_uuid());
    insert_flow(&db, tenant, clash, None).await;
    let compat = service(&db);
    let err = compat
        .resolve(AnyId::Bare(migrated.session.as_uuid()), tenant)
        .await
        .unwrap_err();
    let CompatError::Conflict { flows, .. } = err else {
        panic!("expected conflict, got {err}")
    };
    assert_eq!(flows.len(), 2);
    assert!(flows.contains(&clash) && flows.contains(&migrated.flow_id));
    // The prefixed form can only be a session, so it is not ambiguous.
    let prefixed = compat
        .resolve(AnyId::Session(migrated.session), tenant)
        .await
        .expect("session");
    assert_eq!(prefixed, migrated.flow_id);
}
both_engines!(
    an_id_naming_two_flows_is_a_conflict_not_a_pick,
    two_flows_conflict
);

async fn resolving_never_writes(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let migrated = migrated_session(&db, tenant).await;
    let user = insert_user(&db).await;
    let unmapped = insert_session(&db, tenant, user).await;
    let before = all_counts(&db).await;
    let compat = service(&db);
    let _ = compat
        .resolve(AnyId::Session(migrated.session), tenant)
        .await;
    let _ = compat.resolve(AnyId::Session(unmapped), tenant).await;
    let _ = compat
        .resolve(AnyId::Bare(uuid::Uuid::new_v4()), tenant)
        .await;
    assert_eq!(all_counts(&db).await, before);
}
both_engines!(
    resolving_never_writes_even_for_an_unmapped_session,
    resolving_never_writes
);

async fn cache_hits_then_invalidates(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let migrated = migrated_session(&db, tenant).await;
    let compat = service(&db);
    let id = AnyId::Session(migrated.session);
    compat.resolve(id, tenant).await.expect("first");
    assert_eq!(compat.metrics().cache_misses.get(), 1);
    compat.resolve(id, tenant).await.expect("second");
    assert_eq!(compat.metrics().cache_hits.get(), 1);
    assert_eq!(
        compat.metrics().cache_misses.get(),
        1,
        "a repeated resolve reads no database"
    );

    let deleted = compat
        .delete_flow(
            tenant,
            migrated.flow_id,
            FlowDeletion {
                deleted_by: "test".to_owned(),
                reason: None,
            },
        )
        .await
        .expect("delete");
    assert_eq!(deleted.imports, 1);
    assert_eq!(deleted.field_mappings, 2);
    assert_eq!(deleted.session_mappings, 1);
    assert_eq!(count_rows(&db, "flow_deletion_audit").await, 1);
    let after = compat.resolve(id, tenant).await;
    assert!(
        matches!(after, Err(CompatError::NotFound { .. })),
        "{after:?}"
    );
}
both_engines!(
    a_repeated_resolve_hits_the_cache_and_a_delete_invalidates_it,
    cache_hits_then_invalidates
);

async fn legacy_traffic_is_summarised(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let compat = service(&db);
    for _ in 0..3 {
        compat.record_legacy_use("/api/v1/x", tenant, "old-client");
    }
    compat.record_legacy_use("/api/v1/y", tenant, "old-client");
    assert_eq!(compat.flush_legacy_traffic().await.expect("flush"), 2);
    compat.record_legacy_use("/api/v1/x", tenant, "old-client");
    compat.flush_legacy_traffic().await.expect("flush");
    let rows = compat.legacy_traffic(Some(tenant)).await.expect("summary");
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].route.as_str(), rows[0].hits), ("/api/v1/x", 4));
    assert!(rows[0].last_seen >= rows[0].first_seen);
    let stats = compat.mapping_statistics(None).await.expect("stats");
    assert_eq!(stats.sessions_mapped, 0);
    let _ = SessionId::parse(&uuid::Uuid::new_v4().to_string());
}
both_engines!(
    legacy_id_use_is_counted_and_persisted_per_route,
    legacy_traffic_is_summarised
);

async fn records_by_flow_or_legacy_id(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let other = insert_tenant(&db).await;
    let session = SessionId::parse(&uuid::Uuid::new_v4().to_string()).unwrap();
    let file_data = cmdb_rows(7);
    let created = flowkey::imports::create_import(
        &db,
        flowkey::db::KeyColumns::Expanded,
        flowkey::imports::NewImportRequest {
            tenant,
            rows: flowkey::imports::rows_from_json(file_data.as_array().unwrap()).unwrap(),
            source: flowkey::imports::ImportSource::LegacyStoreImport,
            source_filename: "cmdb.csv".into(),
            file_size_bytes: None,
            file_type: None,
            import_type: "cmdb".into(),
            import_name: None,
            description: None,
            user_id: None,
            legacy_session: Some(session),
        },
    )
    .await
    .unwrap();
    let compat = service(&db);
    let page = PageRequest::parse(None, Some(5)).unwrap();
    let text = session.to_string();
    let mut first_pages = Vec::new();
    for form in [
        created.flow_id.to_string(),
        text.clone(),
        format!("disc_session_{text}"),
        format!("SESSION-{}", text.to_uppercase()),
        created.import_id.to_string(),
    ] {
        let id = AnyId::parse(&form).unwrap();
        let records = compat
            .records(tenant, id, &page)
            .await
            .unwrap_or_else(|e| panic!("{form}: {e}"));
        let rows: Vec<i32> = records.items.iter().map(|r| r.row_number).collect();
        assert_eq!(rows, vec![1, 2, 3, 4, 5], "{form}");
        assert!(records.next_cursor.is_some(), "{form}");
        first_pages.push(records);
        let foreign = compat.records(other, id, &page).await;
        assert!(
            matches!(foreign, Err(CompatError::NotFound { .. })),
            "{form} in another tenant"
        );
    }
    assert!(first_pages.windows(2).all(|pair| pair[0] == pair[1]));

    // The v1 read through the legacy key and through the flow key give the same page.
    let mut answers = Vec::new();
    for mode in [FlowIdPrimary::Off, FlowIdPrimary::On, FlowIdPrimary::Shadow] {
        let call = LegacyCall {
            route: "/v1/records",
            tenant,
            session,
            mode,
        };
        let records = compat.legacy_records(call, &page).await.unwrap();
        assert_eq!(records, first_pages[0], "{mode:?}");
        answers.push(records);
    }
    let next = PageRequest::parse(first_pages[0].next_cursor.as_deref(), Some(5)).unwrap();
    let rest = compat
        .records(tenant, AnyId::Session(session), &next)
        .await
        .unwrap();
    let rows: Vec<i32> = rest.items.iter().map(|r| r.row_number).collect();
    assert_eq!(rows, vec![6, 7]);
    let call = LegacyCall {
        route: "/v1/records",
        tenant: other,
        session,
        mode: FlowIdPrimary::Off,
    };
    let foreign = compat.legacy_records(call, &page).await;
    assert!(matches!(foreign, Err(CompatError::NotFound { .. })));
}
both_engines!(
    records_are_listed_by_flow_id_and_by_a_legacy_id_in_any_form_within_the_tenant,
    records_by_flow_or_legacy_id
);
