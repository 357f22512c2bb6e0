//! Coverage of refusals reachable from input on the real revision chain: targets that cannot
//! be reached, stamps that do not match, verify without a baseline, rehearsals of sources
//! that cannot be copied.

// The test bodies are async fns run by `both_engines!`, outside clippy's test detection.

use std::time::Duration;

use flowkey::db::{Db, Engine};
use flowkey::migrate::flow::{rehearse, verify, FlowMigrationError};
use flowkey::migrate::{MigrateError, Migrator, RunOptions, StampMode};

use crate::both_engines;
use crate::support::harness::TestDb;

fn quick() -> RunOptions {
    RunOptions {
        lock_wait: Duration::from_secs(30),
        ..RunOptions::default()
    }
}

async fn the_real_chain_refuses_targets_it_cannot_reach(test_db: TestDb) {
    let db = test_db.connect().await;
    let migrator = Migrator::new(db.clone(), quick());
    let at_base = migrator
        .downgrade("-1")
        .await
        .expect_err("nothing to revert");
    assert!(
        at_base
            .to_string()
            .contains("the database is at base already"),
        "{at_base}"
    );
    migrator.upgrade("legacy").await.unwrap();
    let cases = [
        (
            migrator.upgrade("base").await,
            "cannot upgrade to \"base\": use `flowkey downgrade base`",
        ),
        (
            migrator.downgrade("head").await,
            "cannot downgrade to \"head\": use `flowkey upgrade head`",
        ),
        (migrator.downgrade("flow_mapping").await, "cannot downgrade"),
        (migrator.upgrade("+x").await, "unknown revision \"+x\""),
        (migrator.downgrade("-x").await, "unknown revision \"-x\""),
        (
            migrator.stamp("nowhere", StampMode::Checked).await,
            "unknown revision \"nowhere\"; known: base, head, legacy",
        ),
    ];
    for (result, wanted) in cases {
        let err = result.expect_err(wanted);
        assert!(err.to_string().contains(wanted), "{err} lacks {wanted:?}");
    }
    assert_eq!(migrator.current().await.unwrap(), Some("legacy"));
    // Upgrading to the revision it is already past names the way back.
    migrator.upgrade("flow_mapping").await.unwrap();
    let err = migrator.upgrade("legacy").await.expect_err("already past");
    assert!(
        err.to_string()
            .contains("the database is already at flow_mapping; use `flowkey downgrade legacy`"),
        "{err}"
    );
    db.close().await;
}
both_engines!(
    the_real_chain_refuses_targets_it_cannot_reach,
    the_real_chain_refuses_targets_it_cannot_reach
);

async fn stamp_checked_refuses_a_schema_that_is_not_the_target(test_db: TestDb) {
    let db = test_db.connect().await;
    let migrator = Migrator::new(db.clone(), quick());
    migrator.upgrade("legacy").await.unwrap();
    let head_id = flowkey::migrate::revisions::head().id;
    let err = migrator
        .stamp("head", StampMode::Checked)
        .await
        .expect_err("a legacy schema is not head");
    assert!(
        matches!(&err, MigrateError::ForeignSchema { revision, count, .. } if revision == head_id && *count > 0),
        "{err}"
    );
    assert!(
        err.to_string().contains("session_flow_mapping"),
        "the differences name the missing table: {err}"
    );
    assert_eq!(migrator.current().await.unwrap(), Some("legacy"));
    // Stamping where it is passes the check; base is refused while tables exist.
    let summary = migrator.stamp("legacy", StampMode::Checked).await.unwrap();
    assert_eq!(summary.to, Some("legacy"));
    let err = migrator
        .stamp("base", StampMode::Checked)
        .await
        .expect_err("tables exist");
    assert!(
        matches!(&err, MigrateError::ForeignSchema { revision, .. } if revision == "base"),
        "{err}"
    );
    // Forced, it records without looking, and history says so.
    let summary = migrator.stamp("head", StampMode::Force).await.unwrap();
    assert_eq!(summary.from, Some("legacy"));
    let history = migrator.history().await.unwrap();
    let head = history.iter().find(|entry| entry.id == head_id).unwrap();
    assert!(head.is_head && head.is_current, "{history:?}");
    assert_eq!(head.recorded_by.as_deref(), Some("forced"));
    let summary = migrator.stamp("base", StampMode::Force).await.unwrap();
    assert_eq!(summary.to, None);
    assert_eq!(migrator.current().await.unwrap(), None);
    db.close().await;
}
both_engines!(
    stamp_checked_refuses_a_schema_that_is_not_the_target_and_force_records_anyway,
    stamp_checked_refuses_a_schema_that_is_not_the_target
);

async fn verify_without_a_baseline_says_to_upgrade_first(test_db: TestDb) {
    let db = test_db.connect().await;
    let migrator = Migrator::new(db.clone(), quick());
    migrator.upgrade("legacy").await.unwrap();
    // At legacy there is no fingerprint table yet (it was "no such table:
    // flowkey_fingerprints").
    let err = verify(&db).await.expect_err("no baseline");
    assert!(
        matches!(err, MigrateError::Flow(FlowMigrationError::NoFingerprint)),
        "{err}"
    );
    // Nor a flag table: reading the flag says so (it was "no such table: flowkey_flags").
    let err = flowkey::flags::stored_flags(&db)
        .await
        .expect_err("no flag table");
    assert!(
        matches!(err, flowkey::flags::FlagError::NotInstalled),
        "{err}"
    );
    migrator.upgrade("flow_mapping").await.unwrap();
    // Fingerprinted, but no flow_id yet: no link to verify or report (both said "no such
    // column: r.flow_id").
    let wanted = "data_imports has no flow_id yet (the database is below flow_expand): there is \
                  no link to verify or report; run `flowkey upgrade head` first";
    let err = verify(&db).await.expect_err("no links yet");
    assert_eq!(err.to_string(), wanted);
    let err = flowkey::migrate::flow::report::report(&db)
        .await
        .expect_err("no links yet");
    assert_eq!(err.to_string(), wanted);
    db.execute_plain("DELETE FROM flowkey_fingerprints")
        .await
        .unwrap();
    let err = verify(&db).await.expect_err("no baseline");
    assert!(
        matches!(err, MigrateError::Flow(FlowMigrationError::NoFingerprint)),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "no pre-migration fingerprint is stored; upgrade from legacy first"
    );
    db.close().await;
}
both_engines!(
    verify_without_a_baseline_says_to_upgrade_first,
    verify_without_a_baseline_says_to_upgrade_first
);

#[tokio::test]
async fn a_rehearsal_refuses_sources_it_cannot_copy() {
    for (url, wanted) in [
        (
            "sqlite::memory:",
            "an in-memory sqlite database cannot be copied; use a file",
        ),
        ("mysql://u:secret@h/db", "cannot copy the database"),
        ("nonsense", "cannot copy the database"),
    ] {
        let err = rehearse(url, &quick()).await.expect_err(url);
        let text = err.to_string();
        assert!(text.contains(wanted), "{url}: {text}");
        assert!(!text.contains("secret"), "{text}");
    }
}

/// A SQLite source that does not exist is named, and not created: connecting would make an
/// empty file and rehearse on it.
#[tokio::test]
async fn a_rehearsal_of_a_missing_sqlite_file_names_it_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo.db");
    let url = format!("sqlite://{}", missing.display());
    let err = rehearse(&url, &quick()).await.expect_err("no such file");
    assert!(
        err.to_string()
            .contains(&format!("{} does not exist", missing.display())),
        "{err}"
    );
    assert!(!missing.exists());
}

/// A copy that cannot be written (the temporary directory is gone) is one error naming the
/// copy, and the source is left as it was.
#[tokio::test]
async fn a_sqlite_rehearsal_whose_copy_cannot_be_written_says_so() {
    let test_db = TestDb::fresh(Engine::Sqlite).await;
    let db = test_db.connect().await;
    crate::support::flow_support::upgrade_to(&db, "legacy").await;
    db.close().await;
    let output = std::process::Command::new(crate::support::reliability_support::flowkey_binary())
        .args(["--database-url", &test_db.url, "rehearse", "--no-progress"])
        .env("TMPDIR", "/nonexistent/flowkey-rehearsal")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "cannot copy the database for a rehearsal: vacuum into /nonexistent/flowkey-rehearsal/"
        ),
        "{stderr}"
    );
    let db = test_db.connect().await;
    assert_eq!(
        flowkey::migrate::Migrator::new(db.clone(), quick())
            .current()
            .await
            .unwrap(),
        Some("legacy")
    );
}

#[tokio::test]
async fn a_postgres_rehearsal_refuses_a_source_with_other_sessions() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    let other = Db::connect(&test_db.url).await.unwrap();
    flowkey::on_pool!(&other, pool => {
        sqlx::query("SELECT 1").execute(pool).await.unwrap();
    });
    let err = rehearse(&test_db.url, &quick())
        .await
        .expect_err("another session is connected");
    let text = err.to_string();
    assert!(text.contains("other sessions are connected"), "{text}");
    assert!(text.contains("pg_dump -Fc"), "{text}");
    other.close().await;
}

static LEGACY_ONLY: [&flowkey::migrate::Revision; 1] =
    [&flowkey::migrate::revisions::legacy::LEGACY];

async fn an_older_flowkey_lists_revisions_it_does_not_know(test_db: TestDb) {
    let db = test_db.connect().await;
    let summary = flowkey::migrate::upgrade(&db, "flow_mapping", &quick())
        .await
        .unwrap();
    assert_eq!(summary.to, Some("flow_mapping"));
    let older = Migrator::with_revisions(db.clone(), quick(), &LEGACY_ONLY);
    let history = older.history().await.unwrap();
    let unknown = history
        .iter()
        .find(|entry| entry.id == "flow_mapping")
        .expect("the recorded revision is listed");
    assert!(!unknown.known && unknown.applied, "{unknown:?}");
    assert!(
        unknown.checksum_ok.is_none() && !unknown.is_current,
        "{unknown:?}"
    );
    let err = older.upgrade("legacy").await.expect_err("unknown record");
    assert!(
        matches!(&err, MigrateError::UnknownAppliedRevision { revision } if revision == "flow_mapping"),
        "{err}"
    );
    db.close().await;
}
both_engines!(
    an_older_flowkey_lists_revisions_it_does_not_know_and_refuses_to_run,
    an_older_flowkey_lists_revisions_it_does_not_know
);

#[tokio::test]
async fn a_postgres_online_ddl_step_that_keeps_timing_out_fails_the_step_and_resumes_later() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    let db = test_db.connect().await;
    Migrator::new(db.clone(), quick())
        .upgrade("flow_mapping")
        .await
        .unwrap();
    // An open transaction that read data_imports: ALTER TABLE must wait for it.
    let holder = Db::connect(&test_db.url).await.unwrap();
    let Db::Postgres(pool) = &holder else {
        panic!("a postgres pool")
    };
    let mut reader = pool.acquire().await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE data_imports IN ACCESS SHARE MODE;")
        .execute(&mut *reader)
        .await
        .unwrap();
    let impatient = RunOptions {
        lock_timeout: Duration::from_millis(50),
        ddl_retries: 0,
        ..quick()
    };
    let err = Migrator::new(db.clone(), impatient)
        .upgrade("flow_expand")
        .await
        .expect_err("the table stays locked");
    assert!(
        matches!(&err, MigrateError::StepFailed { revision, .. } if revision == "flow_expand"),
        "{err}"
    );
    assert!(err.to_string().contains("lock timeout"), "{err}");
    let migrator = Migrator::new(db.clone(), quick());
    let history = migrator.history().await.unwrap();
    let expand = history
        .iter()
        .find(|entry| entry.id == "flow_expand")
        .unwrap();
    assert!(expand.dirty.is_some() && !expand.applied, "{expand:?}");
    let failed_statements = migrator
        .audit_log(1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|entry| entry.event == "statement" && entry.error.is_some())
        .count();
    assert_eq!(failed_statements, 1);
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut *reader)
        .await
        .unwrap();
    drop(reader);
    holder.close().await;
    let summary = migrator.upgrade("flow_expand").await.unwrap();
    assert_eq!(summary.to, Some("flow_expand"));
    assert_eq!(summary.revisions[0].resumed_at_step, Some(0));
    db.close().await;
}

async fn mark_dirty(db: &Db, revision: &str, recorded_as: &str, direction: &str, steps_done: i64) {
    flowkey::on_pool!(db, pool => {
        sqlx::query(
            "UPDATE flowkey_versions SET revision = $1, position = $2, dirty = $3, direction = $4, \
             steps_done = $5 WHERE revision = $6",
        )
        .bind(revision)
        .bind(
            flowkey::migrate::revisions::all()
                .iter()
                .position(|known| known.id == revision)
                .unwrap() as i64,
        )
        .bind(true)
        .bind(direction)
        .bind(steps_done)
        .bind(recorded_as)
        .execute(pool)
        .await
        .unwrap();
    });
}

/// States a crash cannot leave but a hand edit of `flowkey_versions` can: each is refused
/// with the way out, and nothing runs.
async fn dirty_states_that_do_not_fit_the_target_are_refused(test_db: TestDb) {
    let db = test_db.connect().await;
    let migrator = Migrator::new(db.clone(), quick());
    migrator.upgrade("flow_mapping").await.unwrap();
    assert_eq!(
        migrator.upgrade("+0").await.unwrap().to,
        Some("flow_mapping")
    );

    mark_dirty(&db, "flow_mapping", "flow_mapping", "up", 1).await;
    let err = migrator
        .upgrade("legacy")
        .await
        .expect_err("target before it");
    assert!(
        err.to_string()
            .contains("the target legacy comes before it"),
        "{err}"
    );

    mark_dirty(&db, "flow_mapping", "flow_mapping", "down", 1).await;
    let err = migrator
        .downgrade("flow_mapping")
        .await
        .expect_err("target does not revert it");
    assert!(
        err.to_string()
            .contains("the target flow_mapping does not revert it"),
        "{err}"
    );

    // A dirty revision two places after the last applied one (started, no step done).
    mark_dirty(&db, "flow_expand", "flow_mapping", "up", 0).await;
    let err = migrator.upgrade("head").await.expect_err("does not follow");
    assert!(
        matches!(&err, MigrateError::Dirty { revision, .. } if revision == "flow_expand"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("it does not follow the last applied revision"),
        "{err}"
    );
    db.close().await;
}
both_engines!(
    dirty_states_that_do_not_fit_the_target_are_refused,
    dirty_states_that_do_not_fit_the_target_are_refused
);

async fn views_are_part_of_the_introspected_schema(test_db: TestDb) {
    let db = test_db.connect().await;
    db.execute_plain(
        "CREATE TABLE t (id integer PRIMARY KEY); CREATE VIEW v_t AS SELECT id FROM t;",
    )
    .await
    .unwrap();
    let schema = flowkey::db::introspect::introspect(&db).await.unwrap();
    assert!(schema.views.contains("v_t"), "{schema:?}");
    let err = Migrator::new(db.clone(), quick())
        .upgrade("head")
        .await
        .expect_err("a foreign schema");
    // The view is the platform's: tolerated; what is missing is named.
    assert!(
        err.to_string()
            .contains("table assets is missing; flowkey needs it")
            && !err.to_string().contains("v_t"),
        "{err}"
    );
    db.close().await;
}
both_engines!(
    views_are_part_of_the_introspected_schema,
    views_are_part_of_the_introspected_schema
);

async fn verify_names_mapping_rows_moved_to_another_tenant(test_db: TestDb) {
    let db = test_db.connect().await;
    let migrator = Migrator::new(db.clone(), quick());
    migrator.upgrade("legacy").await.unwrap();
    let fx = crate::support::flow_fixtures::Fx::new(db.clone()).await;
    let tenant = fx.tenant().await;
    let other = fx.tenant().await;
    let session = fx.session(tenant, 0).await;
    fx.flow(tenant, None, Some(session), None, 1).await;
    migrator.upgrade("head").await.unwrap();
    assert!(verify(&db).await.unwrap().is_ok());
    fx.sql(&format!(
        "UPDATE session_flow_mapping SET client_account_id = '{}', engagement_id = '{}' \
         WHERE session_id = '{session}'",
        other.client, other.engagement
    ))
    .await;
    let report = verify(&db).await.unwrap();
    assert_eq!(report.mapping.tenant_differs_from_flow, 1, "{report}");
    assert_eq!(report.mapping.tenant_differs_from_session, 1, "{report}");
    assert_eq!(report.mapping.orphan_flow, 0, "{report}");
    assert!(!report.links_are_sound());
    let named: Vec<&str> = report
        .offending_rows
        .iter()
        .filter(|row| row.table == "session_flow_mapping" && row.id == session.to_string())
        .map(|row| row.problem.as_str())
        .collect();
    assert_eq!(
        named,
        [
            "tenant differs from its flow's",
            "tenant differs from its session's"
        ],
        "{report}"
    );
    db.close().await;
}
both_engines!(
    verify_names_mapping_rows_moved_to_another_tenant,
    verify_names_mapping_rows_moved_to_another_tenant
);

/// The service's schema gate (`migrate::serving::check_schema`): below head it names the
/// revision and what is missing and refuses to serve; at head it serves; a record written by a
/// newer build (a revision this one does not know) is refused, and said.
async fn the_schema_gate_names_what_stands_between_the_database_and_serving(test_db: TestDb) {
    use flowkey::migrate::serving::check_schema;
    let db = test_db.connect().await;
    let migrator = Migrator::new(db.clone(), quick());
    migrator.upgrade("legacy").await.unwrap();
    let below = check_schema(&db).await.unwrap();
    assert!(!below.servable());
    let said = below.describe();
    assert!(
        said.contains("the database is at revision legacy")
            && said.contains("missing")
            && said.contains("session_flow_mapping")
            && said.ends_with("run `flowkey upgrade head`"),
        "{said}"
    );

    migrator.upgrade("head").await.unwrap();
    let at_head = check_schema(&db).await.unwrap();
    assert!(at_head.servable(), "{}", at_head.describe());
    assert_eq!(at_head.key_columns(), flowkey::db::KeyColumns::Expanded);
    assert!(at_head.describe().starts_with("the database is at head"));

    let started_at = match db.engine() {
        Engine::Postgres => "now()",
        Engine::Sqlite => "'2026-12-04T00:00:00Z'",
    };
    let newer = format!(
        "INSERT INTO flowkey_versions (revision, position, checksum, dirty, direction, \
         steps_done, recorded_by, run_id, started_at, applied_at) \
         VALUES ('from_a_newer_build', 999, 'x', {false_}, 'up', 0, 'test', 'test', {started_at}, {started_at})",
        false_ = if db.engine() == Engine::Postgres { "false" } else { "0" },
    );
    db.execute_plain(&newer).await.unwrap();
    let unknown = check_schema(&db).await.unwrap();
    assert_eq!(unknown.recorded_revision, None, "the record is unreadable");
    assert!(
        unknown
            .unreadable_record
            .as_deref()
            .is_some_and(|why| why.contains("from_a_newer_build")),
        "{unknown:?}"
    );
    assert!(unknown.missing.is_empty(), "{:?}", unknown.missing);
    assert!(!unknown.servable(), "{}", unknown.describe());
    assert!(
        unknown
            .describe()
            .contains("serve the database with the flowkey that migrated it"),
        "{}",
        unknown.describe()
    );
    db.close().await;
}
both_engines!(
    the_schema_gate_names_what_stands_between_the_database_and_serving,
    the_schema_gate_names_what_stands_between_the_database_and_serving
);

/// SQLite: a write transaction that is not a flowkey run (the application's, a backup's)
/// holding the database's write lock for longer than the lock wait stops a run at the
/// deploy lock with an error that says so, after the wait, instead of polling forever; nothing
/// changes, and the run goes through once that transaction ends.
#[tokio::test]
async fn a_sqlite_write_lock_held_by_another_connection_is_waited_for_only_as_long_as_asked() {
    use sqlx::Connection;

    let test_db = TestDb::fresh(Engine::Sqlite).await;
    let db = test_db.connect().await;
    let migrator = Migrator::new(db.clone(), quick());
    migrator.upgrade("head").await.unwrap();
    let before = migrator.history().await.unwrap().len();

    let mut other = sqlx::SqliteConnection::connect(&test_db.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let impatient = Migrator::new(
        db.clone(),
        RunOptions {
            lock_wait: Duration::from_secs(1),
            ..RunOptions::default()
        },
    );
    let outcome = tokio::time::timeout(Duration::from_secs(90), impatient.downgrade("legacy"))
        .await
        .expect("the run kept waiting for the write lock past its lock wait");
    let err = outcome.expect_err("the database stayed locked");
    assert!(matches!(err, MigrateError::DatabaseBusy { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("no flowkey run holds the deploy lock"),
        "{err}"
    );
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();

    let history = migrator.history().await.unwrap();
    assert_eq!(history.len(), before);
    assert!(history.iter().all(|entry| entry.dirty.is_none()));
    assert_eq!(
        migrator.current().await.unwrap(),
        Some(flowkey::migrate::revisions::head().id)
    );
    impatient.downgrade("legacy").await.unwrap();
    db.close().await;
}

/// Below legacy is base: reverting `legacy` drops the twelve tables. flowkey refuses when
/// they hold a row (a seeded database, recorded as applied by flowkey) or when it adopted
/// them (the platform's own, even empty), before any step: the tables and their rows stay,
/// and the database stays at legacy. Empty tables flowkey created itself still go.
async fn a_downgrade_below_legacy_never_drops_the_platforms_tables(test_db: TestDb) {
    let engine = test_db.engine;
    let db = test_db.connect().await;
    flowkey::seed::seed(&db, &flowkey::seed::SeedConfig::default())
        .await
        .unwrap();
    let migrator = Migrator::new(db.clone(), quick());
    let rows = |db: Db| async move {
        flowkey::on_pool!(&db, pool => {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM raw_import_records")
                .fetch_one(pool)
                .await
                .unwrap()
        })
    };
    let before = rows(db.clone()).await;
    for target in ["base", "-1"] {
        let err = migrator
            .downgrade(target)
            .await
            .expect_err("data")
            .to_string();
        assert!(
            err.starts_with(
                "a downgrade below legacy would drop the platform's legacy tables, and they hold "
            ) && err.ends_with("nothing was changed"),
            "{err}"
        );
    }
    assert_eq!(migrator.current().await.unwrap(), Some("legacy"));
    assert_eq!(rows(db.clone()).await, before);
    db.close().await;

    // The platform's own tables, adopted by flowkey: refused even once emptied.
    let platform =
        crate::support::platform::platform_db(engine, crate::support::platform::Placement::Public)
            .await;
    let db = platform.connect().await;
    let migrator = Migrator::new(db.clone(), quick());
    migrator.upgrade("legacy").await.unwrap();
    let err = migrator
        .downgrade("base")
        .await
        .expect_err("adopted")
        .to_string();
    assert!(
        err.contains("and flowkey adopted them: the platform created them"),
        "{err}"
    );
    assert_eq!(migrator.current().await.unwrap(), Some("legacy"));
    db.close().await;

    // Empty tables flowkey created itself go, as `upgrade legacy` made them.
    let empty = TestDb::fresh(engine).await;
    let db = empty.connect().await;
    let migrator = Migrator::new(db.clone(), quick());
    migrator.upgrade("legacy").await.unwrap();
    migrator.downgrade("base").await.unwrap();
    assert_eq!(migrator.current().await.unwrap(), None);
    db.close().await;
}
both_engines!(
    a_downgrade_below_legacy_never_drops_the_platforms_tables,
    a_downgrade_below_legacy_never_drops_the_platforms_tables
);

/// Between `flow_expand` and the end of the backfill, the rows the backfill has not reached
/// are named as work still to do, with the command that does it; after the backfill the same
/// count means a link gone wrong and says so (it said "wrong flow" in both cases).
async fn verify_before_the_backfill_ends_says_not_backfilled_yet(test_db: TestDb) {
    crate::support::reliability_support::seeded(
        &test_db,
        &crate::support::reliability_support::small_seed(),
    )
    .await;
    let db = test_db.connect().await;
    let migrator = Migrator::new(db.clone(), quick());
    migrator.upgrade("flow_expand").await.unwrap();
    let report = verify(&db).await.unwrap();
    assert!(!report.is_ok());
    let summary = report.summary();
    let unlinked: i64 = flowkey::on_pool!(&db, pool => {
        sqlx::query_scalar("SELECT count(*) FROM raw_import_records WHERE flow_id IS NULL")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    let raw = report
        .tables
        .iter()
        .find(|table| table.table == "raw_import_records")
        .unwrap();
    assert!(raw.wrong_flow > 0 && raw.wrong_flow <= unlinked, "{raw:?}");
    assert!(
        summary.contains(&format!(
            "raw_import_records: {} rows not backfilled yet (its backfill has not finished: \
             run `flowkey upgrade head`)",
            raw.wrong_flow
        )),
        "{summary}"
    );
    assert!(!summary.contains("wrong flow"), "{summary}");

    migrator.upgrade("flow_backfill").await.unwrap();
    // What `flowkey verify` runs: it also stores the result for readiness.
    let report = flowkey::migrate::flow::verification_record::verify_and_record(&db)
        .await
        .unwrap();
    assert!(report.links_are_sound(), "{}", report.summary());
    db.execute_plain(
        // Another row's flow (a NULL would be filled again by the dual-write trigger).
        "UPDATE raw_import_records SET flow_id = (SELECT r2.flow_id FROM raw_import_records r2 \
         WHERE r2.flow_id IS NOT NULL AND r2.flow_id <> raw_import_records.flow_id \
         ORDER BY r2.id LIMIT 1) \
         WHERE id = (SELECT id FROM raw_import_records WHERE flow_id IS NOT NULL \
         ORDER BY id LIMIT 1)",
    )
    .await
    .unwrap();
    let summary = verify(&db).await.unwrap().summary();
    assert!(
        summary.contains("raw_import_records: 1 rows with wrong flow"),
        "{summary}"
    );
    assert!(!summary.contains("not backfilled"), "{summary}");
    db.close().await;
}
both_engines!(
    verify_before_the_backfill_ends_says_not_backfilled_yet,
    verify_before_the_backfill_ends_says_not_backfilled_yet
);
