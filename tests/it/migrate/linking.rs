//! A revision that links tables after `flow_expand` was released (`revisions::linking`), run
//! on real databases. No released revision calls `link_revision` yet, so the test chain
//! stands its tables in: `legacy`, `flow_mapping`, the session parser `flow_expand` creates,
//! then `link_revision("flow_expand")`, which links every table of `flow_expand` one by one
//! (column and trigger, backfill, index and foreign key, validation, verify) and undoes them
//! table by table. The chain must link every row as the released chain does and give the
//! legacy database back exactly, rows written at head by new code included.

use std::sync::LazyLock;
use std::time::Duration;

use flowkey::db::Engine;
use flowkey::migrate::flow::{self, FingerprintScope};
use flowkey::migrate::revisions::linking::link_revision;
use flowkey::migrate::revisions::{flow_mapping::FLOW_MAPPING, legacy::LEGACY};
use flowkey::migrate::{
    Action, Direction, EngineSql, Migrator, Revision, RunOptions, Step, StepSql,
};
use uuid::Uuid;

use super::flow_migration::build_scenario;
use super::offline_script::psql;
use crate::both_engines;
use crate::support::flow_fixtures::Fx;
use crate::support::flow_support::{audit_events, schema_dump, upgrade_to};
use crate::support::harness::TestDb;

/// `flow_expand`'s session parser, which a linking revision finds in place (PostgreSQL;
/// SQLite parses inline).
static SESSION_PARSER: Revision = Revision {
    id: "session_parser",
    description: "the session parser flow_expand creates",
    up: &[Step {
        name: "create the session parser",
        action: Action::Sql(StepSql::Fixed(EngineSql {
            sqlite: "SELECT 1;\n",
            postgres: include_str!("../../../src/migrate/sql/flow_parse_session.postgres.sql"),
        })),
    }],
    down: &[Step {
        name: "drop the session parser",
        action: Action::Sql(StepSql::Fixed(EngineSql {
            sqlite: "SELECT 1;\n",
            postgres: "DROP FUNCTION IF EXISTS flowkey_parse_session_id(text);\n",
        })),
    }],
    earlier_checksums: &[],
};

static LINK: LazyLock<Revision> =
    LazyLock::new(|| link_revision("flow_expand", "link flow_expand's tables one by one"));

static CHAIN: LazyLock<[&'static Revision; 4]> =
    LazyLock::new(|| [&LEGACY, &FLOW_MAPPING, &SESSION_PARSER, &*LINK]);

fn migrator(fx: &Fx) -> Migrator {
    let options = RunOptions {
        lock_wait: Duration::from_secs(30),
        ..RunOptions::default()
    };
    Migrator::with_revisions(fx.db.clone(), options, &*CHAIN)
}

/// New code at head: a flow of no session, and an asset keyed by it only; (flow, asset).
async fn new_code_asset(fx: &Fx, tenant: crate::support::flow_fixtures::Tenant) -> (Uuid, Uuid) {
    let flow = fx.flow(tenant, None, None, None, 100).await;
    let asset = Uuid::new_v4();
    fx.sql(&format!(
        "INSERT INTO assets (id, client_account_id, engagement_id, name, asset_type, flow_id) \
         VALUES ('{asset}', '{}', '{}', 'new', 'server', '{flow}')",
        tenant.client, tenant.engagement
    ))
    .await;
    (flow, asset)
}

async fn a_linking_revision_links_each_table_and_gives_the_legacy_database_back(test_db: TestDb) {
    let db = test_db.connect().await;
    upgrade_to(&db, "legacy").await;
    let fx = Fx::new(db).await;
    let scenario = build_scenario(&fx).await;
    let legacy_schema = schema_dump(&fx.db).await;
    let before = flow::fingerprint_database(&fx.db, FingerprintScope::AllRows)
        .await
        .unwrap();
    let migrator = migrator(&fx);

    let up = migrator.upgrade("head").await.unwrap();
    assert_eq!(migrator.current().await.unwrap(), Some("flow_expand"));
    let ran: Vec<&str> = up.revisions.iter().map(|revision| revision.id).collect();
    assert_eq!(ran, ["flow_mapping", "session_parser", "flow_expand"]);
    // Every table linked one by one, by the rules the released chain follows.
    let expected = [
        (
            "raw_import_records",
            scenario.raw_by_session,
            Some(scenario.f_rule1),
        ),
        (
            "raw_import_records",
            scenario.raw_by_import,
            Some(scenario.f_names_import),
        ),
        (
            "import_field_mappings",
            scenario.mapping_row,
            Some(scenario.f_rule3),
        ),
        ("assets", scenario.asset, Some(scenario.s_rule2)),
        ("assets", scenario.asset_no_session, None),
        (
            "llm_usage_logs",
            scenario.llm_prefixed,
            Some(scenario.f_rule1),
        ),
        ("llm_usage_logs", scenario.llm_garbage, None),
    ];
    for (table, row, flow) in expected {
        assert_eq!(fx.flow_of(table, row).await, flow, "{table} {row}");
    }
    let linked = fx.all_links().await;
    assert_eq!(linked.len(), 12);
    assert_eq!(
        linked.iter().filter(|(_, _, flow)| flow.is_some()).count(),
        8
    );
    let verified = flow::verify(&fx.db).await.unwrap();
    assert!(verified.links_are_sound(), "{verified}");

    // Old code at head: its session gets the flow the mapping gives it.
    let old_asset = fx.asset(scenario.tenant, Some(scenario.s_rule1)).await;
    assert_eq!(
        fx.flow_of("assets", old_asset).await,
        Some(scenario.f_rule1)
    );
    let (new_flow, new_asset) = new_code_asset(&fx, scenario.tenant).await;

    migrator.downgrade("legacy").await.unwrap();
    assert_eq!(migrator.current().await.unwrap(), Some("legacy"));
    assert_eq!(schema_dump(&fx.db).await, legacy_schema);
    // The asset new code wrote has a legacy session again: one created with its flow's id.
    assert_eq!(
        fx.session_of("assets", new_asset).await,
        Some(new_flow.to_string())
    );
    assert_eq!(
        fx.session_of("assets", old_asset).await,
        Some(scenario.s_rule1.to_string())
    );
    let restored = audit_events(&fx.db, "sessions_restored").await;
    assert_eq!(
        restored.len(),
        flow::linked::linked_since("flow_expand").count(),
        "one restore per linked table: {restored:?}"
    );
    // Without the rows written at head, the data is legacy's to the byte.
    fx.sql(&format!(
        "DELETE FROM assets WHERE id IN ('{new_asset}', '{old_asset}')"
    ))
    .await;
    fx.sql(&format!(
        "DELETE FROM data_import_sessions WHERE id = '{new_flow}'"
    ))
    .await;
    fx.sql(&format!(
        "DELETE FROM discovery_flows WHERE flow_id = '{new_flow}'"
    ))
    .await;
    let after = flow::fingerprint_database(&fx.db, FingerprintScope::AllRows)
        .await
        .unwrap();
    assert_eq!(after, before);

    // And it links again, to the same flows.
    migrator.upgrade("head").await.unwrap();
    let verified = flow::verify(&fx.db).await.unwrap();
    assert!(verified.links_are_sound(), "{verified}");
}
both_engines!(
    a_linking_revision_links_each_table_and_gives_the_legacy_database_back,
    a_linking_revision_links_each_table_and_gives_the_legacy_database_back
);

/// The runnable `--sql` script of the linking revision's way down (`psql`, PostgreSQL)
/// ends where the runner's does: the legacy schema, and a row new code wrote at head with
/// its flow's session. SQLite's script describes the code steps it cannot run.
async fn the_linking_revisions_offline_downgrade_ends_where_the_runners_does(test_db: TestDb) {
    let db = test_db.connect().await;
    upgrade_to(&db, "legacy").await;
    let fx = Fx::new(db).await;
    let scenario = build_scenario(&fx).await;
    let legacy_schema = schema_dump(&fx.db).await;
    let migrator = migrator(&fx);
    migrator.upgrade("head").await.unwrap();
    let (new_flow, new_asset) = new_code_asset(&fx, scenario.tenant).await;

    let down = migrator
        .offline_sql(
            test_db.engine,
            Some("flow_expand"),
            "legacy",
            Direction::Down,
        )
        .unwrap();
    for table in flow::linked::linked_since("flow_expand") {
        assert!(
            down.contains(&format!("give rows of {} written at head", table.name)),
            "{down}"
        );
    }
    match test_db.engine {
        Engine::Sqlite => {
            // Nothing run: the script names the rebuilds it leaves to flowkey.
            assert!(down.contains("rebuild assets (sqlite)"), "{down}");
        }
        Engine::Postgres => {
            let (ok, stderr) = psql(&test_db.url, &down);
            assert!(ok, "{stderr}");
            assert_eq!(migrator.current().await.unwrap(), Some("legacy"));
            assert_eq!(schema_dump(&fx.db).await, legacy_schema);
            assert_eq!(
                fx.session_of("assets", new_asset).await,
                Some(new_flow.to_string())
            );
        }
    }
}
both_engines!(
    the_linking_revisions_offline_downgrade_ends_where_the_runners_does,
    the_linking_revisions_offline_downgrade_ends_where_the_runners_does
);

/// A revision whose per-table step names no table: the step stops with an error naming it,
/// and nothing of the revision is recorded as applied.
static TABLELESS: Revision = Revision {
    id: "tableless",
    description: "a per-table step without its table",
    up: &[Step {
        name: "backfill nothing in particular",
        action: Action::Code {
            run: flow::backfill::backfill_step,
            sql: StepSql::Fixed(EngineSql {
                sqlite: "SELECT 1;\n",
                postgres: "SELECT 1;\n",
            }),
            offline: None,
        },
    }],
    down: &[],
    earlier_checksums: &[],
};

static TABLELESS_CHAIN: [&Revision; 2] = [&LEGACY, &TABLELESS];

async fn a_per_table_step_that_names_no_table_is_refused(test_db: TestDb) {
    let db = test_db.connect().await;
    let migrator = Migrator::with_revisions(db.clone(), RunOptions::default(), &TABLELESS_CHAIN);
    let err = migrator.upgrade("head").await.unwrap_err().to_string();
    assert!(
        err.contains("\"backfill nothing in particular\" works on a linked table but names none"),
        "{err}"
    );
    assert_eq!(migrator.current().await.unwrap(), Some("legacy"));
}
both_engines!(
    a_per_table_step_that_names_no_table_is_refused,
    a_per_table_step_that_names_no_table_is_refused
);
