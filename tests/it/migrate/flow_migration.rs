//! The session→flow migration (issue 3) on both engines: mapping rules and tie-breaks,
//! tenant isolation, row linking, dual-write triggers, resumable backfill, verify, report,
//! exact round trip, downgrade after writes at head and re-upgrade. Every database is brought
//! to each revision by the real runner; a backfill is interrupted by a fault armed in the
//! `flowkey` binary (see `migrate::faults`), as a lost connection would interrupt it.

use flowkey::migrate::flow::{self, FingerprintScope};
use uuid::Uuid;

use crate::both_engines;
use crate::support::flow_fixtures::{Fx, Tenant};
use crate::support::flow_support::{
    audit_events, downgrade_to, history_of, schema_dump, upgrade_to,
};
#[cfg(feature = "failpoints")]
use crate::support::flow_support::{
    error_line, one_row_batches, upgrade_binary_with_faults, upgrade_with,
};
use crate::support::harness::TestDb;

/// A database at the legacy revision, created by the runner, with a user.
async fn legacy_db(test_db: &TestDb) -> Fx {
    let db = test_db.connect().await;
    upgrade_to(&db, "legacy").await;
    Fx::new(db).await
}

/// A legacy database with one example of every rule, tie-break and oddity the migration
/// handles; returns the ids the tests look at.
pub struct Scenario {
    pub tenant: Tenant,
    pub other: Tenant,
    pub s_rule1: Uuid,
    pub f_rule1: Uuid,
    pub s_rule2: Uuid,
    pub s_rule3: Uuid,
    pub f_rule3: Uuid,
    pub s_none: Uuid,
    pub s_cross: Uuid,
    pub import_rule3: Uuid,
    pub import_no_session: Uuid,
    pub f_names_import: Uuid,
    pub import_mismatch: Uuid,
    pub raw_by_session: Uuid,
    pub raw_by_import: Uuid,
    pub raw_mismatch: Uuid,
    pub mapping_row: Uuid,
    pub asset: Uuid,
    pub asset_no_session: Uuid,
    pub audit_row: Uuid,
    pub llm_prefixed: Uuid,
    pub llm_garbage: Uuid,
}

pub async fn build_scenario(fx: &Fx) -> Scenario {
    let tenant = fx.tenant().await;
    let other = fx.tenant().await;
    let placeholder = fx.placeholder_tenant().await;

    // Rule 1 (import_session_id) beats rule 2 (flow_id = session id).
    let s_rule1 = fx.session(tenant, 0).await;
    let f_rule1 = fx.flow(tenant, None, Some(s_rule1), None, 10).await;
    // Rule 2 only: the session id reused as the flow id.
    let s_rule2 = fx.session(tenant, 1).await;
    fx.flow(tenant, Some(s_rule2), None, None, 5).await;
    // Rule 3: a flow names the session's import.
    let s_rule3 = fx.session(tenant, 2).await;
    let import_rule3 = fx.import(Some(tenant), Some(s_rule3)).await;
    let f_rule3 = fx.flow(tenant, None, None, Some(import_rule3), 3).await;
    // No candidate at all.
    let s_none = fx.session(tenant, 3).await;
    // Only candidates of other tenants (a real one and the placeholder).
    let s_cross = fx.session(tenant, 4).await;
    fx.flow(other, None, Some(s_cross), None, 0).await;
    fx.flow(placeholder, None, Some(s_cross), None, 0).await;

    // An import without a session, named by a flow.
    let import_no_session = fx.import(Some(tenant), None).await;
    let f_names_import = fx
        .flow(tenant, None, Some(import_no_session), None, 7)
        .await;
    // An import whose own tenant disagrees with its session's.
    let import_mismatch = fx.import(Some(other), Some(s_rule1)).await;

    let raw_by_session = fx.raw(import_rule3, Some(tenant), Some(s_rule1)).await;
    let raw_by_import = fx.raw(import_no_session, None, None).await;
    let raw_mismatch = fx.raw(import_rule3, Some(other), Some(s_rule3)).await;
    let mapping_row = fx.field_mapping(import_rule3).await;
    let asset = fx.asset(tenant, Some(s_rule2)).await;
    let asset_no_session = fx.asset(tenant, None).await;
    let audit_row = fx.access_audit(None, Some(s_none)).await;
    let llm_prefixed = fx
        .llm(
            Some(tenant),
            Some(&format!(
                "  DISC_SESSION_{}",
                s_rule1.to_string().to_uppercase()
            )),
        )
        .await;
    let llm_garbage = fx.llm(Some(tenant), Some("not-a-session")).await;
    fx.deletion_audit(tenant, Uuid::new_v4(), Uuid::new_v4())
        .await;

    Scenario {
        tenant,
        other,
        s_rule1,
        f_rule1,
        s_rule2,
        s_rule3,
        f_rule3,
        s_none,
        s_cross,
        import_rule3,
        import_no_session,
        f_names_import,
        import_mismatch,
        raw_by_session,
        raw_by_import,
        raw_mismatch,
        mapping_row,
        asset,
        asset_no_session,
        audit_row,
        llm_prefixed,
        llm_garbage,
    }
}

async fn the_mapping_follows_rule_order_and_tie_breaks(test_db: TestDb) {
    let fx = legacy_db(&test_db).await;
    let tenant = fx.tenant().await;
    // Rule 1 beats rule 2 and rule 3.
    let s1 = fx.session(tenant, 0).await;
    let import = fx.import(Some(tenant), Some(s1)).await;
    fx.flow(tenant, None, None, Some(import), 0).await;
    fx.flow(tenant, Some(s1), None, None, 0).await;
    let f1 = fx.flow(tenant, None, Some(s1), None, 50).await;
    // Rule 2 beats rule 3.
    let s2 = fx.session(tenant, 0).await;
    let import2 = fx.import(Some(tenant), Some(s2)).await;
    fx.flow(tenant, None, Some(import2), None, 0).await;
    fx.flow(tenant, Some(s2), None, None, 60).await;
    // Earliest created_at wins; the later one is ambiguous.
    let s3 = fx.session(tenant, 0).await;
    let late = fx.flow(tenant, None, Some(s3), None, 20).await;
    let early = fx.flow(tenant, None, Some(s3), None, 10).await;
    // Equal created_at: smallest flow id wins.
    let s4 = fx.session(tenant, 0).await;
    let small = Uuid::parse_str("00000000-0000-4000-8000-000000000001").unwrap();
    let big = Uuid::parse_str("ffffffff-0000-4000-8000-000000000001").unwrap();
    fx.flow(tenant, Some(big), Some(s4), None, 30).await;
    fx.flow(tenant, Some(small), Some(s4), None, 30).await;

    upgrade_to(&fx.db, "flow_mapping").await;

    assert_eq!(
        fx.mapping_of(s1).await,
        Some((f1, "import_session_id".into(), false))
    );
    assert_eq!(fx.mapping_of(s2).await, Some((s2, "flow_id".into(), false)));
    assert_eq!(fx.mapping_of(s3).await.map(|m| m.0), Some(early));
    assert_eq!(fx.findings(s3, "ambiguous").await, vec![late]);
    assert_eq!(fx.mapping_of(s4).await.map(|m| m.0), Some(small));
    assert_eq!(fx.findings(s4, "ambiguous").await, vec![big]);
    // Candidates of losing rules are not ambiguities.
    assert!(fx.findings(s1, "ambiguous").await.is_empty());
    let summary = &audit_events(&fx.db, "mapping").await[0];
    assert_eq!(summary["ambiguous_sessions"], 2);
    assert_eq!(summary["flows_created"], 0);
    assert_eq!(audit_events(&fx.db, "fingerprint").await.len(), 1);
}
both_engines!(
    the_mapping_follows_rule_order_and_tie_breaks,
    the_mapping_follows_rule_order_and_tie_breaks
);

async fn flows_of_other_tenants_are_refused_and_reported(test_db: TestDb) {
    let fx = legacy_db(&test_db).await;
    let s = build_scenario(&fx).await;
    upgrade_to(&fx.db, "flow_mapping").await;

    let (flow, rule, created) = fx.mapping_of(s.s_cross).await.expect("mapped");
    assert_eq!(rule, "created");
    assert!(created);
    assert_eq!(fx.findings(s.s_cross, "cross_tenant").await.len(), 2);
    // The created flow lives in the session's tenant.
    let in_tenant = fx
        .count(&format!(
            "SELECT count(*) FROM discovery_flows WHERE flow_id = '{flow}' AND client_account_id = '{}' AND status = 'migrated'",
            s.tenant.client
        ))
        .await;
    assert_eq!(in_tenant, 1);
    assert_eq!(
        audit_events(&fx.db, "mapping").await[0]["cross_tenant_conflicts"],
        2
    );
}
both_engines!(
    flows_of_other_tenants_are_refused_and_reported,
    flows_of_other_tenants_are_refused_and_reported
);

async fn every_row_kind_is_linked_as_specified(test_db: TestDb) {
    let fx = legacy_db(&test_db).await;
    let s = build_scenario(&fx).await;
    upgrade_to(&fx.db, "head").await;
    let created_for_none = fx.mapping_of(s.s_none).await.expect("mapped").0;

    assert_eq!(
        fx.flow_of("data_imports", s.import_rule3).await,
        Some(s.f_rule3)
    );
    assert_eq!(
        fx.flow_of("data_imports", s.import_no_session).await,
        Some(s.f_names_import)
    );
    assert_eq!(
        fx.flow_of("data_imports", s.import_mismatch).await,
        None,
        "tenant mismatch"
    );
    assert_eq!(
        fx.flow_of("raw_import_records", s.raw_by_session).await,
        Some(s.f_rule1)
    );
    assert_eq!(
        fx.flow_of("raw_import_records", s.raw_by_import).await,
        Some(s.f_names_import)
    );
    assert_eq!(
        fx.flow_of("raw_import_records", s.raw_mismatch).await,
        None,
        "tenant mismatch"
    );
    assert_eq!(
        fx.flow_of("import_field_mappings", s.mapping_row).await,
        Some(s.f_rule3)
    );
    assert_eq!(fx.flow_of("assets", s.asset).await, Some(s.s_rule2));
    assert_eq!(fx.flow_of("assets", s.asset_no_session).await, None);
    assert_eq!(
        fx.flow_of("access_audit_log", s.audit_row).await,
        Some(created_for_none)
    );
    assert_eq!(
        fx.flow_of("llm_usage_logs", s.llm_prefixed).await,
        Some(s.f_rule1)
    );
    assert_eq!(fx.flow_of("llm_usage_logs", s.llm_garbage).await, None);

    let verified = flow::verify(&fx.db).await.expect("verify runs");
    assert!(verified.is_ok(), "{verified}");
    let report = flow::report(&fx.db).await.expect("report");
    let table = |name: &str| {
        report
            .tables
            .iter()
            .find(|t| t.table == name)
            .unwrap()
            .clone()
    };
    assert_eq!(table("data_imports").unlinked.tenant_mismatch, 1);
    assert_eq!(table("raw_import_records").unlinked.tenant_mismatch, 1);
    assert_eq!(table("assets").unlinked.no_session, 1);
    assert_eq!(table("llm_usage_logs").unlinked.unparseable_id, 1);
    assert_eq!(table("llm_usage_logs").linked, 1);
    assert_eq!(report.cross_tenant_conflicts, 2);
    assert_eq!(report.flows_created, 2);
    assert!(report.to_string().contains("raw_import_records"));
}
both_engines!(
    every_row_kind_is_linked_as_specified,
    every_row_kind_is_linked_as_specified
);

async fn llm_free_text_links_only_to_a_mapped_session_of_its_tenant(test_db: TestDb) {
    let fx = legacy_db(&test_db).await;
    let tenant = fx.tenant().await;
    let other = fx.tenant().await;
    let session = fx.session(tenant, 0).await;
    let flow_id = fx.flow(tenant, None, Some(session), None, 0).await;
    let upper = session.to_string().to_uppercase();
    let linked = [
        fx.llm(Some(tenant), Some(&session.to_string())).await,
        fx.llm(Some(tenant), Some(&format!("disc_session_{session}")))
            .await,
        fx.llm(Some(tenant), Some(&format!("Session-{upper}")))
            .await,
        fx.llm(None, Some(&format!("\t session-{session}\n"))).await,
    ];
    let unlinked = [
        fx.llm(Some(other), Some(&session.to_string())).await,
        fx.llm(Some(tenant), Some("")).await,
        fx.llm(Some(tenant), Some(&format!("flow_{session}"))).await,
        fx.llm(Some(tenant), Some(&session.simple().to_string()))
            .await,
        fx.llm(Some(tenant), Some(&Uuid::new_v4().to_string()))
            .await,
        fx.llm(Some(tenant), None).await,
    ];
    upgrade_to(&fx.db, "head").await;
    for row in linked {
        assert_eq!(fx.flow_of("llm_usage_logs", row).await, Some(flow_id));
    }
    for row in unlinked {
        assert_eq!(fx.flow_of("llm_usage_logs", row).await, None);
    }
    let report = flow::report(&fx.db).await.unwrap();
    let llm = report
        .tables
        .iter()
        .find(|t| t.table == "llm_usage_logs")
        .unwrap();
    assert_eq!(llm.unlinked.tenant_mismatch, 1);
    assert_eq!(llm.unlinked.unparseable_id, 3);
    assert_eq!(llm.unlinked.dangling_session, 1);
    assert_eq!(llm.unlinked.no_session, 1);
}
both_engines!(
    llm_free_text_links_only_to_a_mapped_session_of_its_tenant,
    llm_free_text_links_only_to_a_mapped_session_of_its_tenant
);

async fn old_and_new_code_writes_after_expand_get_both_keys(test_db: TestDb) {
    let fx = legacy_db(&test_db).await;
    let s = build_scenario(&fx).await;
    upgrade_to(&fx.db, "flow_expand").await;
    // Old code: only session_id.
    let import = fx.import(Some(s.tenant), Some(s.s_rule1)).await;
    let raw = fx.raw(import, None, Some(s.s_rule1)).await;
    let raw_no_session = fx.raw(s.import_rule3, None, None).await;
    let mapping = fx.field_mapping(import).await;
    let wrong_tenant = fx.access_audit(Some(s.other), Some(s.s_rule1)).await;
    let llm = fx.llm(None, Some(&format!("session-{}", s.s_rule1))).await;
    assert_eq!(fx.flow_of("data_imports", import).await, Some(s.f_rule1));
    assert_eq!(fx.flow_of("raw_import_records", raw).await, Some(s.f_rule1));
    assert_eq!(
        fx.flow_of("import_field_mappings", mapping).await,
        Some(s.f_rule1)
    );
    assert_eq!(fx.flow_of("access_audit_log", wrong_tenant).await, None);
    assert_eq!(fx.flow_of("llm_usage_logs", llm).await, Some(s.f_rule1));
    // The import was not backfilled yet, so its raw record waits for the backfill.
    assert_eq!(fx.flow_of("raw_import_records", raw_no_session).await, None);
    // Old code moving a row to another session moves its flow too.
    fx.sql(&format!(
        "UPDATE assets SET session_id = '{}' WHERE id = '{}'",
        s.s_rule1, s.asset_no_session
    ))
    .await;
    assert_eq!(
        fx.flow_of("assets", s.asset_no_session).await,
        Some(s.f_rule1)
    );
    // New code: only flow_id; gets the smallest mapped session of that flow.
    let new_asset = Uuid::new_v4();
    fx.sql(&format!(
        "INSERT INTO assets (id, client_account_id, engagement_id, name, asset_type, flow_id) \
         VALUES ('{new_asset}', '{}', '{}', 'db-01', 'server', '{}')",
        s.tenant.client, s.tenant.engagement, s.f_rule3
    ))
    .await;
    assert_eq!(
        fx.session_of("assets", new_asset).await,
        Some(s.s_rule3.to_string())
    );

    // Finishing the upgrade links everything and verifies.
    upgrade_to(&fx.db, "flow_constraints").await;
    assert_eq!(
        fx.flow_of("raw_import_records", raw_no_session).await,
        Some(s.f_rule3)
    );
}
both_engines!(
    old_and_new_code_writes_after_expand_get_both_keys,
    old_and_new_code_writes_after_expand_get_both_keys
);

#[cfg(feature = "failpoints")]
async fn a_killed_backfill_resumes_to_the_same_result(test_db: TestDb) {
    let fx = legacy_db(&test_db).await;
    let s = build_scenario(&fx).await;
    for id in 0..40 {
        let session = if id % 3 == 0 { None } else { Some(s.s_rule1) };
        let import = if id % 2 == 0 {
            s.import_no_session
        } else {
            s.import_rule3
        };
        fx.raw(import, None, session).await;
        fx.asset(s.tenant, session).await;
        fx.wide_raw(import, session).await;
    }
    // One row (SQLite) or one page (PostgreSQL) per batch, whatever the batches take.
    upgrade_with(&fx.db, "flow_backfill", one_row_batches()).await;
    let expected = fx.all_links().await;
    assert!(
        expected
            .iter()
            .filter(|(_, _, flow)| flow.is_some())
            .count()
            > 40
    );

    // The same database with its links undone (flow_backfill and flow_expand reverted, which
    // forgets the backfill cursors, and flow_expand applied again: the columns come back
    // empty), backfilled again by runs that lose their connection after every 3 batches.
    downgrade_to(&fx.db, "flow_mapping").await;
    upgrade_to(&fx.db, "flow_expand").await;
    assert!(fx
        .all_links()
        .await
        .iter()
        .all(|(_, _, flow)| flow.is_none()));
    let mut runs = 0;
    loop {
        runs += 1;
        let (status, stderr) = upgrade_binary_with_faults(
            &test_db.url,
            "flow_backfill",
            "backfill::batch_committed=2*off->return(connection_lost)",
        );
        if status.success() {
            break;
        }
        assert!(
            error_line(&stderr).contains("injected at backfill::batch_committed"),
            "{stderr}"
        );
        assert!(history_of(&fx.db, "flow_backfill").await.dirty.is_some());
        assert!(runs < 500, "the backfill never finishes");
    }
    assert!(runs > 5, "the backfill was interrupted only {runs} times");
    assert_eq!(fx.all_links().await, expected);
    assert!(!audit_events(&fx.db, "progress").await.is_empty());
    assert!(audit_events(&fx.db, "resumed").await.len() >= runs - 1);
}
#[cfg(feature = "failpoints")]
both_engines!(
    a_killed_backfill_resumes_to_the_same_result,
    a_killed_backfill_resumes_to_the_same_result
);

async fn downgrade_after_upgrade_gives_the_legacy_database_back(test_db: TestDb) {
    let fx = legacy_db(&test_db).await;
    build_scenario(&fx).await;
    let fresh_db = TestDb::fresh(test_db.engine).await;
    let fresh = fresh_db.connect().await;
    upgrade_to(&fresh, "legacy").await;
    let legacy_schema = schema_dump(&fresh).await;
    assert_eq!(schema_dump(&fx.db).await, legacy_schema);
    let before = flow::fingerprint_database(&fx.db, FingerprintScope::AllRows)
        .await
        .unwrap();

    upgrade_to(&fx.db, "head").await;
    assert_ne!(schema_dump(&fx.db).await, legacy_schema);
    downgrade_to(&fx.db, "legacy").await;

    assert_eq!(schema_dump(&fx.db).await, legacy_schema);
    let after = flow::fingerprint_database(&fx.db, FingerprintScope::AllRows)
        .await
        .unwrap();
    assert_eq!(after, before);
    let removed = &audit_events(&fx.db, "created_flows_removed").await[0];
    assert_eq!(removed["deleted"], 2);
}
both_engines!(
    downgrade_after_upgrade_gives_the_legacy_database_back,
    downgrade_after_upgrade_gives_the_legacy_database_back
);

async fn downgrade_after_new_writes_keeps_rows_reachable_and_reupgrade_links_the_same(
    test_db: TestDb,
) {
    let fx = legacy_db(&test_db).await;
    let s = build_scenario(&fx).await;
    upgrade_to(&fx.db, "head").await;
    let created_for_none = fx.mapping_of(s.s_none).await.unwrap().0;
    // New code at head: a flow without any session, with an import and an asset.
    let new_flow = fx.flow(s.tenant, None, None, None, 100).await;
    let import = Uuid::new_v4();
    fx.sql(&format!(
        "INSERT INTO data_imports (id, client_account_id, engagement_id, import_name, import_type, source_filename, imported_by, flow_id) \
         VALUES ('{import}', '{}', '{}', 'new', 'cmdb', 'new.csv', '{}', '{new_flow}')",
        s.tenant.client, s.tenant.engagement, fx.user
    ))
    .await;
    let raw = fx.raw(import, None, None).await;
    let asset = Uuid::new_v4();
    fx.sql(&format!(
        "INSERT INTO assets (id, client_account_id, engagement_id, name, asset_type, flow_id) \
         VALUES ('{asset}', '{}', '{}', 'new', 'server', '{new_flow}')",
        s.tenant.client, s.tenant.engagement
    ))
    .await;
    // Old code at head, on a session whose flow the migration created.
    let old_asset = fx.asset(s.tenant, Some(s.s_none)).await;
    assert_eq!(
        fx.flow_of("assets", old_asset).await,
        Some(created_for_none)
    );
    assert_eq!(fx.flow_of("raw_import_records", raw).await, Some(new_flow));
    // New code records deleted flows without a session.
    let gone = Uuid::new_v4();
    let deletions = [(Uuid::new_v4(), new_flow), (Uuid::new_v4(), gone)];
    for (row, flow_id) in deletions {
        fx.sql(&format!(
            "INSERT INTO flow_deletion_audit (id, flow_id, client_account_id, engagement_id, user_id, deleted_by) \
             VALUES ('{row}', '{flow_id}', '{}', '{}', 'u', 'u')",
            s.tenant.client, s.tenant.engagement
        ))
        .await;
    }
    let links_at_head = fx.all_links().await;

    downgrade_to(&fx.db, "legacy").await;
    // flow_deletion_audit.session_id is NOT NULL again: the flow's session, else the flow id.
    for (row, flow_id) in deletions {
        assert_eq!(
            fx.session_of("flow_deletion_audit", row).await,
            Some(flow_id.to_string())
        );
    }
    // Every row survived; the new flow got a session whose id is the flow id.
    assert_eq!(
        fx.session_of("data_imports", import).await,
        Some(new_flow.to_string())
    );
    assert_eq!(
        fx.session_of("assets", asset).await,
        Some(new_flow.to_string())
    );
    assert_eq!(
        fx.session_of("assets", old_asset).await,
        Some(s.s_none.to_string())
    );
    let restored = flow::restored_sessions(&fx.db).await.unwrap();
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0].flow_id, new_flow.to_string());
    assert_eq!(audit_events(&fx.db, "sessions_restored").await.len(), 1);

    // Upgrading again gives every row the flow it had.
    upgrade_to(&fx.db, "head").await;
    assert_eq!(fx.all_links().await, links_at_head);
    assert_eq!(fx.mapping_of(s.s_none).await.unwrap().0, created_for_none);
    let verified = flow::verify(&fx.db).await.unwrap();
    assert!(verified.links_are_sound(), "{verified}");
}
both_engines!(
    downgrade_after_new_writes_keeps_rows_reachable_and_reupgrade_links_the_same,
    downgrade_after_new_writes_keeps_rows_reachable_and_reupgrade_links_the_same
);

/// An asset of new code at head: keyed by its flow only.
async fn flow_keyed_asset(fx: &Fx, client: Uuid, engagement: Uuid, flow: Uuid) -> Uuid {
    let asset = Uuid::new_v4();
    fx.sql(&format!(
        "INSERT INTO assets (id, client_account_id, engagement_id, name, asset_type, flow_id) \
         VALUES ('{asset}', '{client}', '{engagement}', 'new', 'server', '{flow}')"
    ))
    .await;
    asset
}

/// Flows new code wrote at head in places the downgrade must think about: in a tenant with
/// no session at all (its restored session's creator is flowkey's own user, created once
/// and found again by a later downgrade), with an engagement of another client (no tenant
/// to create a session in), and with the id of an existing session that maps elsewhere (the
/// session cannot be created under that id). The last two are named in the audit log with
/// their reason and their rows stay, without a session; nothing is lost.
async fn the_downgrade_names_flows_it_cannot_give_a_session_and_keeps_their_rows(test_db: TestDb) {
    let fx = legacy_db(&test_db).await;
    upgrade_to(&fx.db, "head").await;
    let lonely = fx.tenant().await;
    let lone_flow = fx.flow(lonely, None, None, None, 1).await;
    let lone_asset = flow_keyed_asset(&fx, lonely.client, lonely.engagement, lone_flow).await;
    let (a, b) = (fx.tenant().await, fx.tenant().await);
    let mixed = crate::support::flow_fixtures::Tenant {
        client: a.client,
        engagement: b.engagement,
    };
    let mixed_flow = fx.flow(mixed, None, None, None, 2).await;
    let mixed_asset = flow_keyed_asset(&fx, a.client, a.engagement, mixed_flow).await;
    let session = fx.session(a, 0).await;
    fx.flow(a, None, Some(session), None, 3).await;
    let clashing_flow = fx.flow(a, Some(session), None, None, 4).await;
    let clashing_asset = flow_keyed_asset(&fx, a.client, a.engagement, clashing_flow).await;
    let assets_before = fx.count("SELECT count(*) FROM assets").await;

    downgrade_to(&fx.db, "legacy").await;
    let event = &audit_events(&fx.db, "sessions_restored").await[0];
    let left = event["flows_left_without_session"]
        .as_array()
        .expect("a list");
    let reason_of = |flow: Uuid| {
        left.iter()
            .find(|entry| entry["flow_id"] == flow.to_string())
            .and_then(|entry| entry["reason"].as_str())
            .unwrap_or_else(|| panic!("{flow} is not named: {event}"))
            .to_owned()
    };
    assert!(
        reason_of(mixed_flow).contains("no client_accounts/engagements row"),
        "{event}"
    );
    assert!(
        reason_of(clashing_flow).contains(&clashing_flow.to_string()),
        "{event}"
    );
    assert_eq!(left.len(), 2, "{event}");
    assert_eq!(fx.count("SELECT count(*) FROM assets").await, assets_before);
    assert_eq!(
        fx.session_of("assets", lone_asset).await,
        Some(lone_flow.to_string())
    );
    assert_eq!(fx.session_of("assets", mixed_asset).await, None);
    assert_eq!(fx.session_of("assets", clashing_asset).await, None);
    let restored = flow::restored_sessions(&fx.db).await.unwrap();
    assert_eq!(restored.len(), 1);
    let flowkey_user = restored[0].created_by.clone();

    // Another tenant with no session, another round: the same user creates its session.
    upgrade_to(&fx.db, "head").await;
    let later = fx.tenant().await;
    let later_flow = fx.flow(later, None, None, None, 5).await;
    flow_keyed_asset(&fx, later.client, later.engagement, later_flow).await;
    downgrade_to(&fx.db, "legacy").await;
    let restored = flow::restored_sessions(&fx.db).await.unwrap();
    let again = restored
        .iter()
        .find(|session| session.flow_id == later_flow.to_string())
        .expect("the later flow got a session");
    assert_eq!(again.created_by, flowkey_user);
}
both_engines!(
    the_downgrade_names_flows_it_cannot_give_a_session_and_keeps_their_rows,
    the_downgrade_names_flows_it_cannot_give_a_session_and_keeps_their_rows
);

/// A link broken between the backfill and the constraints (behind the triggers' back): the
/// upgrade stops at `flow_constraints`' verify with one error that names the table, leaves the
/// revision dirty at that step, and once the link is mended the rerun finishes from there.
async fn the_upgrade_stops_at_verify_when_a_link_is_wrong(test_db: TestDb) {
    let fx = legacy_db(&test_db).await;
    let s = build_scenario(&fx).await;
    upgrade_to(&fx.db, "flow_backfill").await;
    let right = fx.flow_of("assets", s.asset).await;
    fx.sql(&format!(
        "UPDATE assets SET flow_id = '{}' WHERE id = '{}'",
        s.f_rule3, s.asset
    ))
    .await;
    let migrator =
        flowkey::migrate::Migrator::new(fx.db.clone(), flowkey::migrate::RunOptions::default());
    let err = migrator.upgrade("head").await.unwrap_err().to_string();
    assert!(err.contains("verification failed"), "{err}");
    assert!(err.contains("assets"), "{err}");
    assert_eq!(migrator.current().await.unwrap(), Some("flow_backfill"));
    let constraints = history_of(&fx.db, "flow_constraints").await;
    let dirty = constraints.dirty.expect("stopped half way");
    assert_eq!(
        (dirty.direction.as_str(), dirty.steps_done, dirty.steps),
        ("up", 3, 4)
    );

    fx.sql(&format!(
        "UPDATE assets SET flow_id = '{}' WHERE id = '{}'",
        right.unwrap(),
        s.asset
    ))
    .await;
    migrator.upgrade("head").await.unwrap();
    let verified = flow::verify(&fx.db).await.unwrap();
    assert!(verified.is_ok(), "{}", verified.summary());
}
both_engines!(
    the_upgrade_stops_at_verify_when_a_link_is_wrong,
    the_upgrade_stops_at_verify_when_a_link_is_wrong
);

async fn verify_names_rows_linked_against_the_rules(test_db: TestDb) {
    let fx = legacy_db(&test_db).await;
    let s = build_scenario(&fx).await;
    upgrade_to(&fx.db, "head").await;
    // Corrupt one link behind the triggers' back and change one legacy value.
    fx.sql(&format!(
        "UPDATE assets SET flow_id = '{}' WHERE id = '{}'",
        s.f_rule3, s.asset
    ))
    .await;
    fx.sql(&format!(
        "UPDATE assets SET name = 'renamed' WHERE id = '{}'",
        s.asset_no_session
    ))
    .await;
    let report = flow::verify(&fx.db).await.unwrap();
    assert!(!report.is_ok());
    assert!(!report.fingerprints_match());
    let assets = report.tables.iter().find(|t| t.table == "assets").unwrap();
    assert_eq!(assets.wrong_flow, 1);
    assert!(report
        .offending_rows
        .iter()
        .any(|row| row.id == s.asset.to_string()));
    assert!(
        report
            .summary()
            .contains("assets changed since the fingerprint"),
        "{}",
        report.summary()
    );
}
both_engines!(
    verify_names_rows_linked_against_the_rules,
    verify_names_rows_linked_against_the_rules
);

async fn sql_session_parsing_agrees_with_the_rust_parser(test_db: TestDb) {
    let fx = legacy_db(&test_db).await;
    upgrade_to(&fx.db, "flow_expand").await;
    let u = "3f2b8c1e-9d4a-4b7e-8c21-5a6f7e8d9c0b";
    let inputs = [
        u.to_owned(),
        u.to_uppercase(),
        format!("disc_session_{u}"),
        format!("DISC_SESSION_{u}"),
        format!("session-{u}"),
        format!("SeSsIoN-{}", u.to_uppercase()),
        format!(" \t{u}\n"),
        String::new(),
        "   ".to_owned(),
        "garbage".to_owned(),
        format!("flow_{u}"),
        u.replace('-', ""),
        format!("{{{u}}}"),
        format!("session-session-{u}"),
        format!("{u}x"),
        u.replacen('3', "g", 1),
    ];
    let engine = fx.engine();
    let parse = flow::linked::parse_session_sql(engine, "$1");
    for input in inputs {
        let sql = match engine {
            flowkey::db::Engine::Postgres => format!("SELECT ({parse})::text"),
            flowkey::db::Engine::Sqlite => format!("SELECT {parse}"),
        };
        let from_sql: Option<String> = flowkey::on_pool!(&fx.db, pool => {
            sqlx::query_scalar(&sql).bind(&input).fetch_one(pool).await.unwrap()
        });
        let from_rust = flowkey::ids::SessionId::parse(&input)
            .ok()
            .map(|id| id.to_string());
        assert_eq!(from_sql, from_rust, "{input:?}");
    }
}
both_engines!(
    sql_session_parsing_agrees_with_the_rust_parser,
    sql_session_parsing_agrees_with_the_rust_parser
);

#[cfg(feature = "failpoints")]
async fn old_code_writes_during_the_backfill_all_end_linked(test_db: TestDb) {
    let fx = legacy_db(&test_db).await;
    let s = build_scenario(&fx).await;
    for _ in 0..40 {
        fx.wide_raw(s.import_rule3, Some(s.s_rule3)).await;
    }
    upgrade_to(&fx.db, "flow_expand").await;
    let created_for_none = fx.mapping_of(s.s_none).await.unwrap().0;
    let mut written = Vec::new();
    // Write between batches, all through the backfill: old code knows only session_id. Each
    // run of the runner loses its connection after 2 batches of one row (one page).
    loop {
        let (status, stderr) = upgrade_binary_with_faults(
            &test_db.url,
            "flow_backfill",
            "backfill::batch_committed=1*off->return(connection_lost)",
        );
        assert!(
            status.success()
                || error_line(&stderr).contains("injected at backfill::batch_committed"),
            "{stderr}"
        );
        let import = fx.import(Some(s.tenant), Some(s.s_rule1)).await;
        written.push(("data_imports", import, Some(s.f_rule1)));
        written.push((
            "raw_import_records",
            fx.raw(import, None, None).await,
            Some(s.f_rule1),
        ));
        written.push((
            "raw_import_records",
            fx.raw(s.import_rule3, None, Some(s.s_rule3)).await,
            Some(s.f_rule3),
        ));
        written.push((
            "import_field_mappings",
            fx.field_mapping(import).await,
            Some(s.f_rule1),
        ));
        written.push((
            "assets",
            fx.asset(s.tenant, Some(s.s_none)).await,
            Some(created_for_none),
        ));
        written.push((
            "llm_usage_logs",
            fx.llm(None, Some(&format!("disc_session_{}", s.s_rule2)))
                .await,
            Some(s.s_rule2),
        ));
        if status.success() {
            break;
        }
    }
    assert!(written.len() > 30);
    for (table, row, flow_id) in written {
        assert_eq!(fx.flow_of(table, row).await, flow_id, "{table} {row}");
    }
    upgrade_to(&fx.db, "flow_constraints").await;
    let verified = flow::verify(&fx.db).await.unwrap();
    assert!(verified.links_are_sound(), "{verified}");
}
#[cfg(feature = "failpoints")]
both_engines!(
    old_code_writes_during_the_backfill_all_end_linked,
    old_code_writes_during_the_backfill_all_end_linked
);

/// PostgreSQL walks pages. A table rewritten under the walk (`VACUUM FULL` moves rows not yet
/// walked into pages already walked, and fires no trigger) is caught by the closing sweep,
/// which links those rows and records how many.
#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_rewritten_under_the_page_walk_is_caught_by_the_sweep() {
    let test_db = TestDb::fresh(flowkey::db::Engine::Postgres).await;
    let fx = legacy_db(&test_db).await;
    let s = build_scenario(&fx).await;
    let mut wide = Vec::new();
    for _ in 0..60 {
        wide.push(fx.wide_raw(s.import_rule3, Some(s.s_rule3)).await);
    }
    upgrade_to(&fx.db, "flow_expand").await;
    // data_imports fits in one page (one batch); the run stops after 4 batches of
    // raw_import_records, as a lost connection would stop it.
    let (status, stderr) = upgrade_binary_with_faults(
        &test_db.url,
        "flow_backfill",
        "backfill::batch_committed=4*off->return(connection_lost)",
    );
    assert!(!status.success(), "the backfill was not interrupted");
    assert!(
        error_line(&stderr).contains("step \"backfill raw_import_records\""),
        "the run did not stop inside raw_import_records: {stderr}"
    );
    let dirty = history_of(&fx.db, "flow_backfill").await.dirty.unwrap();
    assert_eq!(
        dirty.steps_done, 1,
        "data_imports is done, raw_import_records is not"
    );
    fx.sql("VACUUM FULL raw_import_records").await;

    upgrade_to(&fx.db, "flow_backfill").await;
    for raw in wide {
        assert_eq!(fx.flow_of("raw_import_records", raw).await, Some(s.f_rule3));
    }
    let sweeps = audit_events(&fx.db, "sweep").await;
    let raw_sweep = sweeps
        .iter()
        .find(|event| event["table"] == "raw_import_records")
        .unwrap();
    assert!(
        raw_sweep["rows_linked"].as_u64().unwrap() > 0,
        "the walk alone reached every row, so this test no longer moves rows behind it: {raw_sweep}"
    );
}
