//! The session→flow revisions driven by the real runner on seeded legacy data with every
//! oddity: round trips (several seeds and shapes), verify and report, and a backfill killed
//! with SIGKILL at random moments that resumes to the result of an uninterrupted run.

use std::time::Duration;

use flowkey::db::introspect::introspect;
use flowkey::db::{Db, Engine};
use flowkey::migrate::flow::{self, FingerprintScope};
use flowkey::migrate::{Migrator, RunOptions};
use flowkey::seed::{seed, SeedConfig};
use sqlx::Row;

use crate::both_engines;
use crate::support::harness::TestDb;

fn quick() -> RunOptions {
    RunOptions {
        lock_wait: Duration::from_secs(30),
        ..RunOptions::default()
    }
}

/// Upgrade → verify → downgrade → the same schema and the same bytes, on a seeded database.
pub async fn round_trip_is_exact(db: &Db, legacy_reference: &Db) {
    let schema_before = introspect(db).await.unwrap();
    let before = flow::fingerprint_database(db, FingerprintScope::AllRows)
        .await
        .unwrap();
    let migrator = Migrator::new(db.clone(), quick());
    migrator.upgrade("head").await.unwrap();
    let verified = flow::verify(db).await.unwrap();
    assert!(verified.is_ok(), "{verified}");
    let report = flow::report(db).await.unwrap();
    let raw = report
        .tables
        .iter()
        .find(|t| t.table == "raw_import_records")
        .unwrap();
    assert!(raw.linked > 0, "{report}");
    migrator.downgrade("legacy").await.unwrap();
    let schema_after = introspect(db).await.unwrap();
    let differences = schema_after.diff(&introspect(legacy_reference).await.unwrap());
    assert!(differences.is_empty(), "{differences:#?}");
    assert_eq!(schema_after, schema_before);
    let after = flow::fingerprint_database(db, FingerprintScope::AllRows)
        .await
        .unwrap();
    assert_eq!(after, before);
}

async fn seeded_databases_round_trip_exactly(test_db: TestDb) {
    let reference_db = TestDb::fresh(test_db.engine).await;
    let reference = reference_db.connect().await;
    Migrator::new(reference.clone(), quick())
        .upgrade("legacy")
        .await
        .unwrap();
    // A few shapes: the default (every oddity), a denser one, and one with many oddities.
    let shapes = [(42u64, 2u32, 8u32, 20u32), (7, 3, 3, 5), (1234, 2, 5, 3)];
    for (seed_value, tenants, imports, rows) in shapes {
        let one = TestDb::fresh(test_db.engine).await;
        let db = one.connect().await;
        let config = SeedConfig {
            seed: seed_value,
            tenants,
            imports_per_tenant: imports,
            rows_per_import: rows,
            ..SeedConfig::default()
        };
        seed(&db, &config).await.unwrap();
        round_trip_is_exact(&db, &reference).await;
        // Upgrading again after the round trip links the same way and verifies.
        Migrator::new(db.clone(), quick())
            .upgrade("head")
            .await
            .unwrap();
        assert!(flow::verify(&db).await.unwrap().is_ok());
        db.close().await;
    }
}
both_engines!(
    seeded_databases_round_trip_exactly,
    seeded_databases_round_trip_exactly
);

async fn upgrade_records_fingerprint_mapping_and_progress_in_the_audit_log(test_db: TestDb) {
    let db = test_db.connect().await;
    seed(&db, &SeedConfig::default()).await.unwrap();
    let migrator = Migrator::new(db.clone(), quick());
    migrator.upgrade("head").await.unwrap();
    let log = migrator.audit_log(10_000).await.unwrap();
    for event in ["fingerprint", "mapping", "progress", "verify"] {
        assert!(
            log.iter().any(|entry| entry.event == event),
            "no {event} event"
        );
    }
    let report = flow::report(&db).await.unwrap();
    assert!(report.ambiguous_sessions > 0, "{report}");
    assert!(report.cross_tenant_conflicts > 0, "{report}");
    assert!(report.flows_created > 0, "{report}");
}
both_engines!(
    upgrade_records_fingerprint_mapping_and_progress_in_the_audit_log,
    upgrade_records_fingerprint_mapping_and_progress_in_the_audit_log
);

/// Every link, with flows the migration created named by their session (their ids are
/// random per run), for comparing two databases migrated separately.
async fn normalized_links(db: &Db) -> Vec<String> {
    let (id, flow_id) = match db.engine() {
        Engine::Postgres => ("r.id::text", "r.flow_id::text"),
        Engine::Sqlite => ("r.id", "r.flow_id"),
    };
    let created = match db.engine() {
        Engine::Postgres => "c.session_id::text",
        Engine::Sqlite => "c.session_id",
    };
    let mut all = Vec::new();
    for table in flow::linked::LINKED_TABLES.iter().map(|t| t.name) {
        let sql = format!(
            "SELECT {id}, COALESCE('created:' || {created}, {flow_id}) FROM {table} r \
             LEFT JOIN flowkey_remembered_flows c ON c.flow_id = r.flow_id ORDER BY r.id"
        );
        let rows: Vec<String> = flowkey::on_pool!(db, pool => {
            sqlx::query(&sql).fetch_all(pool).await.unwrap().into_iter()
                .map(|row| format!("{table} {} {:?}", row.get::<String, _>(0), row.get::<Option<String>, _>(1)))
                .collect()
        });
        all.extend(rows);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_killed_with_sigkill_resumes_to_the_uninterrupted_result() {
    use std::process::Command;
    let killed_db = TestDb::fresh(Engine::Sqlite).await;
    let clean_db = TestDb::fresh(Engine::Sqlite).await;
    let config = SeedConfig {
        tenants: 3,
        imports_per_tenant: 20,
        rows_per_import: 150,
        ..SeedConfig::default()
    };
    for test_db in [&killed_db, &clean_db] {
        let db = test_db.connect().await;
        seed(&db, &config).await.unwrap();
        db.close().await;
    }
    let clean = clean_db.connect().await;
    Migrator::new(clean.clone(), quick())
        .upgrade("head")
        .await
        .unwrap();
    let expected = normalized_links(&clean).await;

    let binary = assert_cmd::cargo::cargo_bin("flowkey");
    let upgrade = |url: &str| {
        let mut command = Command::new(&binary);
        command
            .args([
                "--database-url",
                url,
                "upgrade",
                "head",
                "--batch-target-ms",
                "1",
                "--no-progress",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command
    };
    let mut kills = 0;
    for delay_ms in [150u64, 60, 250, 90, 400, 120, 700, 200] {
        let mut child = upgrade(&killed_db.url).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            // SIGKILL: no chance to clean up.
            child.kill().unwrap();
            kills += 1;
        }
        let _ = child.wait();
    }
    let status = upgrade(&killed_db.url).status().unwrap();
    assert!(
        status.success(),
        "the final upgrade failed after {kills} kills"
    );
    assert!(kills > 0, "no run was killed");
    let killed = killed_db.connect().await;
    assert_eq!(normalized_links(&killed).await, expected);
    assert!(flow::verify(&killed).await.unwrap().is_ok());
}

async fn rehearsal_runs_on_a_copy_and_leaves_the_source_untouched(test_db: TestDb) {
    let db = test_db.connect().await;
    seed(&db, &SeedConfig::default()).await.unwrap();
    let before = flow::fingerprint_database(&db, FingerprintScope::AllRows)
        .await
        .unwrap();
    let schema_before = introspect(&db).await.unwrap();
    if test_db.engine == Engine::Postgres {
        // A template copy needs the source to have no other connection.
        let err = flow::rehearse(&test_db.url, &quick())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("pg_dump"), "{err}");
    }
    db.close().await;
    let rehearsal = flow::rehearse(&test_db.url, &quick()).await.unwrap();
    assert!(rehearsal.is_ok(), "{rehearsal}");
    assert!(rehearsal.to_string().contains("identical"), "{rehearsal}");
    let db = test_db.connect().await;
    assert_eq!(
        flow::fingerprint_database(&db, FingerprintScope::AllRows)
            .await
            .unwrap(),
        before
    );
    assert_eq!(introspect(&db).await.unwrap(), schema_before);
}
both_engines!(
    rehearsal_runs_on_a_copy_and_leaves_the_source_untouched,
    rehearsal_runs_on_a_copy_and_leaves_the_source_untouched
);

/// A platform trigger on `assets` that stamps `updated_at` on every UPDATE (the platform's
/// `set_timestamp` pattern), or only on an UPDATE of `name`.
fn platform_touch_trigger(engine: Engine, every_column: bool) -> Vec<String> {
    let event = if every_column {
        "UPDATE"
    } else {
        "UPDATE OF name"
    };
    match engine {
        Engine::Postgres => vec![
            "CREATE FUNCTION platform_touch() RETURNS trigger LANGUAGE plpgsql AS \
             $$BEGIN NEW.updated_at = now(); RETURN NEW; END$$"
                .to_owned(),
            format!(
                "CREATE TRIGGER platform_touch_assets BEFORE {event} ON assets \
                 FOR EACH ROW EXECUTE FUNCTION platform_touch()"
            ),
        ],
        Engine::Sqlite => vec![format!(
            "CREATE TRIGGER platform_touch_assets AFTER {event} ON assets \
             BEGIN UPDATE assets SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
             WHERE id = NEW.id; END"
        )],
    }
}

/// Such a trigger fires on the backfill's UPDATE of `flow_id` and would change legacy values
/// no downgrade gives back (it did, silently: only a later `verify` said so). The upgrade
/// stops before it changes anything, naming the trigger; one restricted to the columns it
/// watches passes; `--allow-update-triggers` lets the run go on (an audit trigger).
async fn a_platform_update_trigger_stops_the_upgrade_before_it_changes_anything(test_db: TestDb) {
    let db = test_db.connect().await;
    seed(&db, &SeedConfig::default()).await.unwrap();
    for statement in platform_touch_trigger(test_db.engine, true) {
        db.execute_plain(&statement).await.unwrap();
    }
    let schema_before = introspect(&db).await.unwrap();
    let at = Migrator::new(db.clone(), quick()).current().await.unwrap();
    let err = Migrator::new(db.clone(), quick())
        .upgrade("head")
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("would fire on the backfill's UPDATE of flow_id")
            && text.contains(": trigger platform_touch_assets on assets;")
            && text.ends_with(
                "--allow-update-triggers if it only writes elsewhere; nothing was changed"
            ),
        "{text}"
    );
    assert_eq!(introspect(&db).await.unwrap(), schema_before);
    assert_eq!(
        Migrator::new(db.clone(), quick()).current().await.unwrap(),
        at
    );

    // Through the command line, with the flag: the run goes on (and verify would report
    // what the trigger changed).
    let (status, stderr) = crate::support::reliability_support::run_to_end(
        &test_db.url,
        &[
            "upgrade",
            "flow_backfill",
            "--no-progress",
            "--allow-update-triggers",
        ],
    );
    assert!(status.success(), "{stderr}");
    let summary = flow::verify(&db).await.unwrap().summary();
    assert!(
        summary.contains("assets changed since the fingerprint"),
        "{summary}"
    );
}
both_engines!(
    a_platform_update_trigger_stops_the_upgrade_before_it_changes_anything,
    a_platform_update_trigger_stops_the_upgrade_before_it_changes_anything
);

/// A trigger that fires only on the columns it watches is not refused, and the upgrade
/// changes no legacy value.
async fn a_platform_trigger_on_other_columns_lets_the_upgrade_run(test_db: TestDb) {
    let db = test_db.connect().await;
    seed(&db, &SeedConfig::default()).await.unwrap();
    for statement in platform_touch_trigger(test_db.engine, false) {
        db.execute_plain(&statement).await.unwrap();
    }
    Migrator::new(db.clone(), quick())
        .upgrade("head")
        .await
        .unwrap();
    assert!(flow::verify(&db).await.unwrap().is_ok());
}
both_engines!(
    a_platform_trigger_on_other_columns_lets_the_upgrade_run,
    a_platform_trigger_on_other_columns_lets_the_upgrade_run
);

/// Let through (`--allow-update-triggers`), a platform trigger that stamps `updated_at`
/// changes the legacy bytes, and no downgrade can give the old stamps back. The rehearsal
/// finds that before production: the copy's verify names the table, and the downgrade is
/// reported not exact, naming it with its row counts; the source is untouched.
async fn a_rehearsal_names_a_table_a_platform_trigger_changed(test_db: TestDb) {
    let db = test_db.connect().await;
    seed(&db, &SeedConfig::default()).await.unwrap();
    let trigger = platform_touch_trigger(test_db.engine, true);
    for statement in &trigger {
        db.execute_plain(statement).await.unwrap();
    }
    let before = flow::fingerprint_database(&db, FingerprintScope::AllRows)
        .await
        .unwrap();
    db.close().await;
    let options = RunOptions {
        allow_update_triggers: true,
        ..quick()
    };
    let rehearsal = flow::rehearse(&test_db.url, &options).await.unwrap();
    assert!(!rehearsal.is_ok(), "{rehearsal}");
    assert!(!rehearsal.downgrade_exact, "{rehearsal}");
    let assets_rows = before.iter().find(|t| t.table == "assets").unwrap().rows;
    assert_eq!(
        rehearsal.downgrade_differences,
        vec![format!(
            "assets: {assets_rows} rows before, {assets_rows} after, or different bytes"
        )]
    );
    assert!(
        rehearsal.verify.summary().contains(&format!(
            "assets changed since the fingerprint ({assets_rows} rows then"
        )),
        "{rehearsal}"
    );
    let db = test_db.connect().await;
    assert_eq!(
        flow::fingerprint_database(&db, FingerprintScope::AllRows)
            .await
            .unwrap(),
        before
    );
}
both_engines!(
    a_rehearsal_names_a_table_a_platform_trigger_changed,
    a_rehearsal_names_a_table_a_platform_trigger_changed
);

mod random_shapes {
    use proptest::prelude::*;

    use super::*;

    fn round_trip(engine: Engine, config: SeedConfig) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let test_db = TestDb::fresh(engine).await;
            let reference_db = TestDb::fresh(engine).await;
            let reference = reference_db.connect().await;
            Migrator::new(reference.clone(), quick())
                .upgrade("legacy")
                .await
                .unwrap();
            let db = test_db.connect().await;
            seed(&db, &config).await.unwrap();
            round_trip_is_exact(&db, &reference).await;
            db.close().await;
            reference.close().await;
        });
    }

    fn config(seed_value: u64, tenants: u32, imports: u32, rows: u32, rate: f64) -> SeedConfig {
        let mut config = SeedConfig {
            seed: seed_value,
            tenants,
            imports_per_tenant: imports,
            rows_per_import: rows,
            ..SeedConfig::default()
        };
        let oddities = &mut config.oddities;
        oddities.import_without_session = rate;
        oddities.session_without_flow = rate;
        oddities.flow_under_placeholder_tenant = rate;
        oddities.session_claimed_twice_same_time = rate;
        oddities.child_tenant_mismatch = rate;
        oddities.raw_record_without_session = rate;
        oddities.llm_session_id_odd = rate;
        config
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

        #[test]
        fn random_seeded_shapes_round_trip_exactly(
            seed_value in any::<u64>(),
            tenants in 1u32..4,
            imports in 1u32..4,
            rows in 1u32..4,
            rate in 0.0f64..=1.0,
        ) {
            for engine in [Engine::Sqlite, Engine::Postgres] {
                round_trip(engine, config(seed_value, tenants, imports, rows, rate));
            }
        }
    }
}
