//! Hostile input for the migration, through the command line on seeded data: a database that
//! is not the expected legacy schema, targets that do not exist, a revision edited after it
//! was applied. Each is refused in one line with a non-zero exit, and nothing changes: the
//! introspected schema, the schema text, the fingerprints of every legacy table and every
//! `flow_id` are the same before and after. (migrate/runner.rs covers the same refusals on
//! the library with a test chain and empty tables.)

use flowkey::db::Engine;
use flowkey::migrate::flow::FingerprintScope;

use crate::both_engines;
use crate::support::harness::TestDb;
use crate::support::reliability_support::{
    assert_same, run_ok, run_to_end, seeded, small_seed, snapshot, table_exists, UPGRADE_HEAD,
};

/// Runs a command that must be refused: exit code 1, one `error:` line naming `expected`.
fn refused(url: &str, args: &[&str], expected: &str) {
    let (status, stderr) = run_to_end(url, args);
    assert_eq!(status.code(), Some(1), "flowkey {args:?}: {stderr}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "flowkey {args:?}: {stderr}"
    );
    assert!(stderr.starts_with("error: "), "flowkey {args:?}: {stderr}");
    assert!(
        stderr.contains(expected),
        "flowkey {args:?} does not say {expected:?}: {stderr}"
    );
}

async fn a_seeded_database_that_is_not_the_legacy_schema_is_refused_and_unchanged(test_db: TestDb) {
    seeded(&test_db, &small_seed()).await;
    // `flowkey seed` records the database at `legacy`; a production database has never seen
    // flowkey: forget the record, so that the upgrade has to adopt it. (A database recorded
    // at `legacy` that drifted afterwards is upgraded without a check: a known gap,
    // reproduced by reliability/drift-after-record.sh.)
    test_db.run_script("DELETE FROM flowkey_versions;\n").await;
    let drift = match test_db.engine {
        Engine::Postgres => {
            "ALTER TABLE assets RENAME COLUMN current_phase TO owner_team;\n\
             ALTER TABLE data_imports ALTER COLUMN import_type TYPE varchar(80);\n"
        }
        // SQLite cannot change a column's type in place. (An added column is the platform's
        // and tolerated: a renamed one is what flowkey relies on gone.)
        Engine::Sqlite => "ALTER TABLE assets RENAME COLUMN current_phase TO owner_team;\n",
    };
    test_db.run_script(drift).await;
    let db = test_db.connect().await;
    let before = snapshot(&db, FingerprintScope::AllRows).await;
    for args in [
        UPGRADE_HEAD,
        &["upgrade", "flow_expand", "--no-progress"],
        &["stamp", "legacy"],
    ] {
        refused(&test_db.url, args, "column assets.current_phase is missing");
    }
    assert_same(
        &snapshot(&db, FingerprintScope::AllRows).await,
        &before,
        "a foreign schema after refusals",
    );
    assert!(!table_exists(&db, "session_flow_mapping").await);
}
both_engines!(
    a_seeded_database_that_is_not_the_legacy_schema_is_refused_and_unchanged,
    a_seeded_database_that_is_not_the_legacy_schema_is_refused_and_unchanged
);

async fn targets_that_do_not_exist_are_refused_at_head_and_change_nothing(test_db: TestDb) {
    seeded(&test_db, &small_seed()).await;
    run_ok(&test_db.url, UPGRADE_HEAD);
    let db = test_db.connect().await;
    let before = snapshot(&db, FingerprintScope::AllRows).await;
    for (args, expected) in [
        (&["downgrade", "nowhere"][..], "nowhere"),
        (&["downgrade", "-99"][..], "-99"),
        (&["downgrade", "t_two"][..], "t_two"),
        (
            &["downgrade", "legacy'; DROP TABLE assets; --"][..],
            "DROP TABLE",
        ),
        (&["upgrade", "nowhere"][..], "nowhere"),
        (&["upgrade", "+3"][..], "+3"),
        (&["stamp", "nowhere"][..], "nowhere"),
    ] {
        refused(&test_db.url, args, expected);
    }
    assert_same(
        &snapshot(&db, FingerprintScope::AllRows).await,
        &before,
        "bad targets at head",
    );
}
both_engines!(
    targets_that_do_not_exist_are_refused_at_head_and_change_nothing,
    targets_that_do_not_exist_are_refused_at_head_and_change_nothing
);

/// An edited revision file means the binary's revision no longer has the checksum recorded
/// when it was applied; changing the recorded checksum is the same situation seen from the
/// database.
async fn a_revision_edited_after_it_was_applied_is_refused_and_nothing_changes(test_db: TestDb) {
    seeded(&test_db, &small_seed()).await;
    run_ok(&test_db.url, UPGRADE_HEAD);
    let db = test_db.connect().await;
    db.execute_plain(
        "UPDATE flowkey_versions SET checksum = 'edited-after-apply' WHERE revision = 'flow_expand'",
    )
    .await
    .unwrap();
    let before = snapshot(&db, FingerprintScope::AllRows).await;
    for args in [
        &["downgrade", "legacy", "--no-progress"][..],
        &["downgrade", "-1", "--no-progress"][..],
        UPGRADE_HEAD,
    ] {
        refused(&test_db.url, args, "flow_expand");
    }
    assert_same(
        &snapshot(&db, FingerprintScope::AllRows).await,
        &before,
        "an edited revision after refusals",
    );
}
both_engines!(
    a_revision_edited_after_it_was_applied_is_refused_and_nothing_changes,
    a_revision_edited_after_it_was_applied_is_refused_and_nothing_changes
);

/// A column flowkey relies on renamed by hand in a database recorded at `legacy` is drift:
/// the next upgrade refuses it, names the difference, and changes nothing. (A column added
/// is the platform's and is tolerated.)
async fn drift_after_a_recorded_revision_is_refused(test_db: TestDb) {
    use flowkey::migrate::{MigrateError, Migrator, RunOptions};
    let db = test_db.connect().await;
    let migrator = Migrator::new(db.clone(), RunOptions::default());
    migrator.upgrade("legacy").await.expect("upgrade legacy");
    db.execute_plain("ALTER TABLE assets RENAME COLUMN current_phase TO owner_team")
        .await
        .expect("drift");
    let err = migrator.upgrade("head").await.unwrap_err();
    assert!(matches!(err, MigrateError::ForeignSchema { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("column assets.current_phase is missing"),
        "{err}"
    );
    assert_eq!(migrator.current().await.expect("current"), Some("legacy"));
    db.close().await;
}
both_engines!(
    drift_after_a_recorded_revision_is_refused,
    drift_after_a_recorded_revision_is_refused
);
