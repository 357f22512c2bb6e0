//! A refused command changes nothing: not one table, sequence or row, flowkey's own included,
//! on a platform-shaped database of either engine.

use std::collections::BTreeSet;
use std::time::Duration;

use flowkey::db::{Db, Engine};
use flowkey::migrate::{MigrateError, Migrator, RunOptions, StampMode};

use crate::both_engines;
use crate::support::harness::TestDb;
use crate::support::platform::{assert_same, platform_db, snapshot, Placement};

fn quick() -> RunOptions {
    RunOptions {
        lock_wait: Duration::from_secs(30),
        ..RunOptions::default()
    }
}

/// Every object, flowkey's tables included (there must be none).
async fn everything(test_db: &TestDb) -> Vec<String> {
    let lines = snapshot(&test_db.url, &BTreeSet::new()).await;
    let db = test_db.connect().await;
    let flowkey_tables = flowkey_objects(&db).await;
    db.close().await;
    assert!(
        flowkey_tables.is_empty(),
        "flowkey created {flowkey_tables:?}"
    );
    lines
}

async fn flowkey_objects(db: &Db) -> Vec<String> {
    match db {
        Db::Sqlite(pool) => {
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE name LIKE 'flowkey%'")
                .fetch_all(pool)
                .await
                .unwrap()
        }
        Db::Postgres(pool) => sqlx::query_scalar(
            "SELECT nspname || '.' || relname FROM pg_class c JOIN pg_namespace n \
             ON n.oid = c.relnamespace WHERE relname LIKE 'flowkey%'",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
    }
}

async fn refused_commands_change_nothing(test_db: TestDb) {
    let test_db = platform_db(test_db.engine, Placement::Public).await;
    let db = test_db.connect().await;
    let migrator = Migrator::new(db.clone(), quick());
    let before = everything(&test_db).await;

    let err = migrator
        .upgrade("nowhere")
        .await
        .expect_err("unknown target");
    assert!(matches!(err, MigrateError::UnknownTarget { .. }), "{err}");
    assert_same(&before, &everything(&test_db).await, "unknown target");

    let err = migrator
        .stamp("head", StampMode::Checked)
        .await
        .expect_err("a legacy schema is not head");
    assert!(err.to_string().contains("session_flow_mapping"), "{err}");
    assert_same(&before, &everything(&test_db).await, "refused stamp");

    let err = migrator
        .downgrade("-1")
        .await
        .expect_err("nothing recorded");
    assert!(err.to_string().contains("base"), "{err}");
    assert_same(&before, &everything(&test_db).await, "refused downgrade");

    // An incompatible migrated table: a column flowkey reads renamed, one it does not know
    // added (tolerated, so not named).
    db.execute_plain(
        "ALTER TABLE assets RENAME COLUMN session_id TO old_session; \
         ALTER TABLE assets ADD COLUMN platform_note TEXT;",
    )
    .await
    .unwrap();
    let before = everything(&test_db).await;
    let err = migrator.upgrade("head").await.expect_err("incompatible");
    let text = err.to_string();
    assert!(
        matches!(&err, MigrateError::ForeignSchema { revision, .. } if revision == "legacy"),
        "{err}"
    );
    assert!(
        text.contains("column assets.session_id is missing; flowkey needs it"),
        "{text}"
    );
    assert!(
        !text.contains("platform_note"),
        "extra columns are tolerated: {text}"
    );
    assert!(
        !text.contains("alembic_version"),
        "other tables are tolerated: {text}"
    );
    assert_same(&before, &everything(&test_db).await, "incompatible table");
    db.close().await;
}
both_engines!(
    refused_commands_on_a_platform_database_change_nothing,
    refused_commands_change_nothing
);

async fn a_foreign_database_is_refused_unchanged(test_db: TestDb) {
    let db = test_db.connect().await;
    db.execute_plain(
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY); \
         INSERT INTO alembic_version VALUES ('abc'); \
         CREATE TABLE migration_waves (id INTEGER PRIMARY KEY, name TEXT);",
    )
    .await
    .unwrap();
    let before = everything(&test_db).await;
    let err = Migrator::new(db.clone(), quick())
        .upgrade("head")
        .await
        .expect_err("no legacy table");
    assert!(
        err.to_string()
            .contains("table assets is missing; flowkey needs it"),
        "{err}"
    );
    assert_same(&before, &everything(&test_db).await, "foreign database");
    db.close().await;
}
both_engines!(
    a_foreign_database_is_refused_and_left_unchanged,
    a_foreign_database_is_refused_unchanged
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_target_in_a_schema_creates_nothing_anywhere() {
    let test_db = platform_db(Engine::Postgres, Placement::Migration).await;
    let db = test_db.connect().await;
    let before = everything(&test_db).await;
    Migrator::new(db.clone(), quick())
        .upgrade("nowhere")
        .await
        .expect_err("unknown target");
    assert_same(&before, &everything(&test_db).await, "unknown target");
    db.close().await;
}

/// A view, an index and a foreign key created by the platform after the upgrade
/// on a `flow_id` flowkey added: the downgrade refuses before its first step, naming each;
/// once they are gone it runs.
async fn a_downgrade_refuses_while_platform_objects_depend_on_flow_id(test_db: TestDb) {
    let engine = test_db.engine;
    let test_db = platform_db(engine, Placement::Public).await;
    let db = test_db.connect().await;
    let migrator = Migrator::new(db.clone(), quick());
    migrator.upgrade("head").await.unwrap();
    let mut created = String::from(
        "CREATE VIEW imports_by_flow AS SELECT flow_id, count(*) AS n FROM data_imports GROUP BY flow_id;\n\
         CREATE INDEX ix_platform_assets_flow ON assets (flow_id);\n",
    );
    match engine {
        Engine::Postgres => created.push_str(
            "ALTER TABLE raw_import_records ADD CONSTRAINT fk_platform_records_flow \
             FOREIGN KEY (flow_id) REFERENCES discovery_flows (flow_id);\n",
        ),
        // SQLite keeps a foreign key with the referencing table: one of the platform's
        // that points at a flow_id flowkey added. And indexes that list no flow_id column
        // but name it: on an expression of it, or partial on it.
        Engine::Sqlite => created.push_str(
            "CREATE TABLE platform_record_links (id TEXT PRIMARY KEY, \
             record_flow TEXT REFERENCES raw_import_records (flow_id));\n\
             CREATE INDEX ix_platform_assets_flow_text ON assets (lower(flow_id));\n\
             CREATE INDEX ix_platform_linked_imports ON data_imports (id) WHERE flow_id IS NOT NULL;\n",
        ),
    }
    db.execute_plain(&created).await.unwrap();
    let before = snapshot(&test_db.url, &BTreeSet::new()).await;
    let history_before = migrator.history().await.unwrap().len();
    let err = migrator.downgrade("legacy").await.expect_err("dependents");
    assert!(
        matches!(err, MigrateError::DependentObjects { .. }),
        "{err}"
    );
    let text = err.to_string();
    let mut wanted = vec![
        "view imports_by_flow depends on data_imports.flow_id",
        "index ix_platform_assets_flow depends on assets.flow_id",
    ];
    wanted.push(match engine {
        Engine::Postgres => "constraint fk_platform_records_flow on raw_import_records depends on raw_import_records.flow_id",
        Engine::Sqlite => "foreign key of platform_record_links depends on raw_import_records.flow_id",
    });
    if engine == Engine::Sqlite {
        wanted.push("index ix_platform_assets_flow_text depends on assets.flow_id");
        wanted.push("index ix_platform_linked_imports depends on data_imports.flow_id");
    }
    for words in wanted {
        assert!(text.contains(words), "{words:?} not in {text}");
    }
    assert!(
        !text.contains("ix_assets_flow_id"),
        "flowkey's own are not named: {text}"
    );
    assert_same(
        &before,
        &snapshot(&test_db.url, &BTreeSet::new()).await,
        "refused downgrade",
    );
    assert_eq!(migrator.history().await.unwrap().len(), history_before);
    assert!(migrator
        .current()
        .await
        .unwrap()
        .is_some_and(|at| at != "legacy"));

    let mut dropped =
        String::from("DROP VIEW imports_by_flow;\nDROP INDEX ix_platform_assets_flow;\n");
    dropped.push_str(match engine {
        Engine::Postgres => {
            "ALTER TABLE raw_import_records DROP CONSTRAINT fk_platform_records_flow;\n"
        }
        Engine::Sqlite => "DROP TABLE platform_record_links;\nDROP INDEX ix_platform_assets_flow_text;\nDROP INDEX ix_platform_linked_imports;\n",
    });
    db.execute_plain(&dropped).await.unwrap();
    migrator
        .downgrade("legacy")
        .await
        .expect("nothing depends any more");
    db.close().await;
}
both_engines!(
    a_downgrade_refuses_before_any_step_while_platform_objects_depend_on_flow_id,
    a_downgrade_refuses_while_platform_objects_depend_on_flow_id
);

/// On SQLite the deletion audit is rebuilt from its contract text: a column, an index or a
/// trigger the platform added to it is refused at adoption, before anything is changed,
/// rather than lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_extra_columns_on_the_rebuilt_deletion_audit() {
    let test_db = platform_db(Engine::Sqlite, Placement::Public).await;
    let db = test_db.connect().await;
    db.execute_plain(
        "ALTER TABLE flow_deletion_audit ADD COLUMN platform_note TEXT;\n\
         CREATE INDEX platform_audit_by_note ON flow_deletion_audit (platform_note);\n\
         CREATE TABLE platform_audit_copies (id TEXT);\n\
         CREATE TRIGGER platform_audit_copy AFTER INSERT ON flow_deletion_audit \
         BEGIN INSERT INTO platform_audit_copies (id) VALUES (NEW.id); END;",
    )
    .await
    .unwrap();
    let before = everything(&test_db).await;
    let err = Migrator::new(db.clone(), quick())
        .upgrade("head")
        .await
        .expect_err("cannot keep the column")
        .to_string();
    for what in [
        "table flow_deletion_audit: column platform_note cannot be kept",
        "table flow_deletion_audit: column (index platform_audit_by_note) cannot be kept",
        "table flow_deletion_audit: column (trigger platform_audit_copy) cannot be kept",
    ] {
        assert!(err.contains(what), "{what}: {err}");
    }
    assert_same(&before, &everything(&test_db).await, "refused adoption");
    db.close().await;
}
