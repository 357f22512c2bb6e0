//! The live mapping (issue 12, item 1): sessions the old application creates after the
//! mapping step get their flow and their rows their `flow_id`, without a downgrade. Old-code
//! writers are plain SQL inserts with `session_id` only, as the legacy application writes.

use flowkey::migrate::flow;
use uuid::Uuid;

use crate::both_engines;
use crate::support::flow_fixtures::{Fx, Tenant};
use crate::support::flow_support::{audit_events, downgrade_to, upgrade_to};
use crate::support::harness::TestDb;

async fn at_head(test_db: &TestDb) -> Fx {
    let db = test_db.connect().await;
    upgrade_to(&db, "head").await;
    Fx::new(db).await
}

/// One old-code session's rows: an import with records (with and without a session), a field
/// mapping, an asset, an audit row and an LLM row naming it in free text.
struct OldRows {
    import: Uuid,
    raw_with_session: Uuid,
    raw_without_session: Uuid,
    field_mapping: Uuid,
    asset: Uuid,
    audit: Uuid,
    llm: Uuid,
}

async fn old_code_rows(fx: &Fx, tenant: Tenant, session: Uuid) -> OldRows {
    let import = fx.import(Some(tenant), Some(session)).await;
    OldRows {
        import,
        raw_with_session: fx.raw(import, Some(tenant), Some(session)).await,
        raw_without_session: fx.raw(import, Some(tenant), None).await,
        field_mapping: fx.field_mapping(import).await,
        asset: fx.asset(tenant, Some(session)).await,
        audit: fx.access_audit(Some(tenant), Some(session)).await,
        llm: fx
            .llm(Some(tenant), Some(&format!("disc_session_{session}")))
            .await,
    }
}

async fn flows_of(fx: &Fx, rows: &OldRows) -> Vec<Option<Uuid>> {
    vec![
        fx.flow_of("data_imports", rows.import).await,
        fx.flow_of("raw_import_records", rows.raw_with_session)
            .await,
        fx.flow_of("raw_import_records", rows.raw_without_session)
            .await,
        fx.flow_of("import_field_mappings", rows.field_mapping)
            .await,
        fx.flow_of("assets", rows.asset).await,
        fx.flow_of("access_audit_log", rows.audit).await,
        fx.flow_of("llm_usage_logs", rows.llm).await,
    ]
}

async fn a_session_created_at_head_is_mapped_when_its_flow_arrives(test_db: TestDb) {
    let fx = at_head(&test_db).await;
    let tenant = fx.tenant().await;
    let other = fx.tenant().await;
    let session = fx.session(tenant, 0).await;
    let rows = old_code_rows(&fx, tenant, session).await;
    assert_eq!(fx.mapping_of(session).await, None);
    assert_eq!(flows_of(&fx, &rows).await, vec![None; 7]);

    // A flow of another tenant naming the session is never its flow.
    fx.flow(other, None, Some(session), None, 1).await;
    assert_eq!(fx.mapping_of(session).await, None);
    let flow_id = fx.flow(tenant, None, Some(session), None, 2).await;
    // A later claimant does not move the mapping.
    fx.flow(tenant, None, Some(session), None, 3).await;

    assert_eq!(
        fx.mapping_of(session).await,
        Some((flow_id, "import_session_id".to_owned(), false))
    );
    assert_eq!(flows_of(&fx, &rows).await, vec![Some(flow_id); 7]);
    // Rows the old code writes afterwards are linked by the dual-write triggers.
    let later = fx.raw(rows.import, Some(tenant), Some(session)).await;
    assert_eq!(fx.flow_of("raw_import_records", later).await, Some(flow_id));
    let report = flow::verify(&fx.db).await.unwrap();
    assert!(report.links_are_sound(), "{}", report.summary());
    assert_eq!(report.mapping.sessions_without_mapping, 0);
}
both_engines!(
    a_session_created_at_head_is_mapped_when_its_flow_arrives,
    a_session_created_at_head_is_mapped_when_its_flow_arrives
);

async fn a_flow_written_before_its_session_maps_the_earliest_claimant(test_db: TestDb) {
    let fx = at_head(&test_db).await;
    let tenant = fx.tenant().await;
    let session = Uuid::new_v4();
    // import_session_id has no foreign key: the flows may come first, in any order.
    let later = fx.flow(tenant, None, Some(session), None, 10).await;
    let earliest = fx.flow(tenant, None, Some(session), None, 5).await;
    fx.session_with_id(session, tenant, 0).await;
    assert_eq!(
        fx.mapping_of(session).await,
        Some((earliest, "import_session_id".to_owned(), false))
    );
    assert_ne!(later, earliest);
    let import = fx.import(Some(tenant), Some(session)).await;
    assert_eq!(fx.flow_of("data_imports", import).await, Some(earliest));
}
both_engines!(
    a_flow_written_before_its_session_maps_the_earliest_claimant,
    a_flow_written_before_its_session_maps_the_earliest_claimant
);

async fn a_mapped_session_moves_to_an_earlier_claimant_with_its_rows(test_db: TestDb) {
    let fx = at_head(&test_db).await;
    let tenant = fx.tenant().await;
    let session = fx.session(tenant, 0).await;
    let larger = Uuid::parse_str("ffffffff-ffff-4fff-bfff-ffffffffffff").unwrap();
    let smaller = Uuid::parse_str("00000000-0000-4000-8000-000000000001").unwrap();
    fx.flow(tenant, Some(larger), Some(session), None, 1).await;
    let rows = old_code_rows(&fx, tenant, session).await;
    assert_eq!(flows_of(&fx, &rows).await, vec![Some(larger); 7]);

    // The old code writes a second flow at the same instant (one transaction, one `now()`):
    // by the tie-break it is the session's flow, and the session's rows follow it.
    fx.flow(tenant, Some(smaller), Some(session), None, 1).await;
    assert_eq!(
        fx.mapping_of(session).await,
        Some((smaller, "import_session_id".to_owned(), false))
    );
    assert_eq!(flows_of(&fx, &rows).await, vec![Some(smaller); 7]);
    let report = flow::verify(&fx.db).await.unwrap();
    assert!(report.links_are_sound(), "{}", report.summary());
    assert!(report.tables.iter().all(|t| t.wrong_flow == 0), "{report}");
}
both_engines!(
    a_mapped_session_moves_to_an_earlier_claimant_with_its_rows,
    a_mapped_session_moves_to_an_earlier_claimant_with_its_rows
);

async fn a_stand_in_gives_way_to_the_real_flow(test_db: TestDb) {
    let fx = at_head(&test_db).await;
    let tenant = fx.tenant().await;
    let session = fx.session(tenant, 0).await;
    let rows = old_code_rows(&fx, tenant, session).await;

    // No flow: the catch-up gives the session a stand-in and links its rows to it.
    let summary = flow::catch_up(&fx.db).await.unwrap();
    assert_eq!(summary.mapping.flows_created, 1);
    assert_eq!(summary.sessions_unmapped, 0);
    let (stand_in, rule, created) = fx.mapping_of(session).await.unwrap();
    assert_eq!((rule.as_str(), created), ("created", true));
    assert_eq!(flows_of(&fx, &rows).await, vec![Some(stand_in); 7]);

    // The old code writes the session's real flow: the stand-in gives way and is removed.
    let real = fx.flow(tenant, None, Some(session), None, 1).await;
    assert_eq!(
        fx.mapping_of(session).await,
        Some((real, "import_session_id".to_owned(), false))
    );
    assert_eq!(flows_of(&fx, &rows).await, vec![Some(real); 7]);
    let stand_in_left = fx
        .count(&format!(
            "SELECT count(*) FROM discovery_flows WHERE flow_id = '{stand_in}'"
        ))
        .await;
    assert_eq!(stand_in_left, 0);
    let report = flow::verify(&fx.db).await.unwrap();
    assert!(report.links_are_sound(), "{}", report.summary());
}
both_engines!(
    a_stand_in_gives_way_to_the_real_flow,
    a_stand_in_gives_way_to_the_real_flow
);

async fn a_stand_in_something_refers_to_is_kept_but_still_gives_way(test_db: TestDb) {
    let fx = at_head(&test_db).await;
    let tenant = fx.tenant().await;
    let session = fx.session(tenant, 0).await;
    let rows = old_code_rows(&fx, tenant, session).await;
    flow::catch_up(&fx.db).await.unwrap();
    let (stand_in, _, _) = fx.mapping_of(session).await.unwrap();
    // New code changed the stand-in (under `on` it is a flow like any other).
    fx.sql(&format!(
        "UPDATE discovery_flows SET status = 'completed' WHERE flow_id = '{stand_in}'"
    ))
    .await;

    let real = fx.flow(tenant, None, Some(session), None, 1).await;
    assert_eq!(fx.mapping_of(session).await.unwrap().0, real);
    assert_eq!(flows_of(&fx, &rows).await, vec![Some(real); 7]);
    let kept = fx
        .count(&format!(
            "SELECT count(*) FROM discovery_flows WHERE flow_id = '{stand_in}'"
        ))
        .await;
    assert_eq!(kept, 1);
}
both_engines!(
    a_stand_in_something_refers_to_is_kept_but_still_gives_way,
    a_stand_in_something_refers_to_is_kept_but_still_gives_way
);

async fn the_revision_catches_up_sessions_created_since_the_mapping_step(test_db: TestDb) {
    let db = test_db.connect().await;
    upgrade_to(&db, "service_state").await;
    let fx = Fx::new(db).await;
    let tenant = fx.tenant().await;
    // Written between the mapping step and the live mapping: one session with its flow, one
    // without, one whose stand-in (from the catch-up) has to give way at the next catch-up.
    let with_flow = fx.session(tenant, 0).await;
    let flow_id = fx.flow(tenant, None, Some(with_flow), None, 1).await;
    let rows = old_code_rows(&fx, tenant, with_flow).await;
    let without_flow = fx.session(tenant, 0).await;
    let orphan_rows = old_code_rows(&fx, tenant, without_flow).await;
    assert_eq!(flows_of(&fx, &rows).await, vec![None; 7]);

    upgrade_to(&fx.db, "head").await;

    assert_eq!(fx.mapping_of(with_flow).await.unwrap().0, flow_id);
    assert_eq!(flows_of(&fx, &rows).await, vec![Some(flow_id); 7]);
    let (stand_in, rule, _) = fx.mapping_of(without_flow).await.unwrap();
    assert_eq!(rule, "created");
    assert_eq!(flows_of(&fx, &orphan_rows).await, vec![Some(stand_in); 7]);
    let event = &audit_events(&fx.db, "catch_up").await[0];
    assert_eq!(event["mapping"]["flows_created"], 1);
    assert_eq!(event["sessions_unmapped"], 0);

    // The way down drops the triggers: a later session is not mapped.
    downgrade_to(&fx.db, "service_state").await;
    let late = fx.session(tenant, 0).await;
    fx.flow(tenant, None, Some(late), None, 1).await;
    assert_eq!(fx.mapping_of(late).await, None);
    upgrade_to(&fx.db, "head").await;
    assert!(fx.mapping_of(late).await.is_some());
}
both_engines!(
    the_revision_catches_up_sessions_created_since_the_mapping_step,
    the_revision_catches_up_sessions_created_since_the_mapping_step
);

/// A session given a stand-in, whose real flow the old application writes while the live
/// mapping's triggers are down (the database taken back below `live_mapping`): `flowkey
/// catch-up` refuses there and changes nothing; the upgrade back to head moves the mapping to
/// the real flow and relinks every row; `flowkey catch-up` at head then has nothing to do.
async fn a_stand_in_gives_way_to_a_flow_written_while_the_triggers_were_down(test_db: TestDb) {
    use crate::support::reliability_support::run_to_end;
    let db = test_db.connect().await;
    upgrade_to(&db, "service_state").await;
    let fx = Fx::new(db).await;
    let tenant = fx.tenant().await;
    let session = fx.session(tenant, 0).await;
    let rows = old_code_rows(&fx, tenant, session).await;
    upgrade_to(&fx.db, "head").await;
    let (stand_in, rule, _) = fx.mapping_of(session).await.unwrap();
    assert_eq!(rule, "created");
    assert_eq!(flows_of(&fx, &rows).await, vec![Some(stand_in); 7]);

    downgrade_to(&fx.db, "service_state").await;
    let real = fx.flow(tenant, None, Some(session), None, 1).await;
    let (status, stderr) = run_to_end(&test_db.url, &["catch-up"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the database is at service_state: a catch-up needs the live mapping"),
        "{stderr}"
    );
    assert_eq!(fx.mapping_of(session).await.unwrap().0, stand_in);

    upgrade_to(&fx.db, "head").await;
    assert_eq!(fx.mapping_of(session).await.unwrap().0, real);
    assert_eq!(flows_of(&fx, &rows).await, vec![Some(real); 7]);
    let events = audit_events(&fx.db, "catch_up").await;
    assert_eq!(events.last().unwrap()["sessions_moved"], 1, "{events:?}");

    let (status, stderr) = run_to_end(&test_db.url, &["--json", "catch-up"]);
    assert!(status.success(), "{stderr}");
    assert_eq!(fx.mapping_of(session).await.unwrap().0, real);
}
both_engines!(
    a_stand_in_gives_way_to_a_flow_written_while_the_triggers_were_down,
    a_stand_in_gives_way_to_a_flow_written_while_the_triggers_were_down
);

async fn verify_and_readiness_report_unmapped_sessions(test_db: TestDb) {
    let fx = at_head(&test_db).await;
    let tenant = fx.tenant().await;
    fx.session(tenant, 0).await;

    let report = flow::verify(&fx.db).await.unwrap();
    assert_eq!(report.mapping.sessions_without_mapping, 1);
    assert!(
        report.summary().contains("1 sessions without a mapping"),
        "{}",
        report.summary()
    );
    let readiness = flowkey::flags::readiness(&fx.db).await.unwrap();
    assert!(!readiness.is_ready());
    assert!(
        readiness
            .reasons()
            .iter()
            .any(|reason| reason.contains("flowkey catch-up")),
        "{:?}",
        readiness.reasons()
    );

    flow::catch_up(&fx.db).await.unwrap();
    let readiness = flowkey::flags::readiness(&fx.db).await.unwrap();
    assert!(readiness.is_ready(), "{:?}", readiness.reasons());
}
both_engines!(
    verify_and_readiness_report_unmapped_sessions,
    verify_and_readiness_report_unmapped_sessions
);
