//! The write ledger (issue 12, item 4): a go/no-go that passes while the application writes
//! and still names what anything else changed. The application's writes are plain SQL on a
//! pool connection, as the old application's; "flowkey's" writes go through flowkey's own
//! batch transactions (`tables::begin_batch`), which is how a defect in flowkey would write.

use flowkey::db::Db;
use flowkey::migrate::flow::tables::{begin_batch, commit_batch};
use flowkey::migrate::flow::verify::{verify, verify_online, VerifyReport};
use flowkey::migrate::flow::write_ledger::{self, UnexplainedRow};
use uuid::Uuid;

use crate::both_engines;
use crate::support::flow_fixtures::{Fx, Tenant};
use crate::support::flow_support::{downgrade_to, upgrade_to};
use crate::support::harness::TestDb;

/// A write in one of flowkey's own batch transactions (marked, so the ledger leaves it out).
async fn written_by_flowkey(db: &Db, sql: &str) {
    let mut tx = begin_batch(db).await.unwrap();
    flowkey::on_tx!(&mut tx, conn => {
        sqlx::query(sql).execute(&mut **conn).await.unwrap_or_else(|err| panic!("{sql}: {err}"));
    });
    commit_batch(tx).await.unwrap();
}
/// A legacy database holding one tenant, one session with its flow, and one import of it.
struct LegacyImport {
    fx: Fx,
    tenant: Tenant,
    session: Uuid,
    import: Uuid,
}

async fn legacy_import(db: Db) -> LegacyImport {
    upgrade_to(&db, "legacy").await;
    let fx = Fx::new(db).await;
    let tenant = fx.tenant().await;
    let session = fx.session(tenant, 0).await;
    fx.flow(tenant, None, Some(session), None, 1).await;
    let import = fx.import(Some(tenant), Some(session)).await;
    LegacyImport {
        fx,
        tenant,
        session,
        import,
    }
}

fn unexplained(report: &VerifyReport) -> Vec<(String, String, String)> {
    let ledger = report.ledger.as_ref().expect("the database has a ledger");
    let mut rows: Vec<(String, String, String)> = ledger
        .unexplained_rows
        .iter()
        .map(|UnexplainedRow { table, id, what }| (table.clone(), id.to_lowercase(), what.clone()))
        .collect();
    rows.sort();
    rows
}

async fn marker_rows(fx: &Fx) -> i64 {
    match fx.engine() {
        flowkey::db::Engine::Sqlite => {
            fx.count("SELECT count(*) FROM flowkey_migration_writer")
                .await
        }
        flowkey::db::Engine::Postgres => 0,
    }
}

async fn the_online_check_passes_while_the_application_writes_and_names_what_else_changed(
    test_db: TestDb,
) {
    let LegacyImport {
        fx,
        tenant,
        session,
        import,
    } = legacy_import(test_db.connect().await).await;
    let edited = fx.raw(import, Some(tenant), Some(session)).await;
    let broken = fx.raw(import, Some(tenant), Some(session)).await;
    let deleted = fx.asset(tenant, Some(session)).await;
    let lost = fx.asset(tenant, Some(session)).await;

    // The application writes during the upgrade, before the ledger starts: the ledger is not
    // continuous with the fingerprints, so only the online check may use it.
    upgrade_to(&fx.db, "legacy_write_signal").await;
    fx.asset(tenant, Some(session)).await;
    upgrade_to(&fx.db, "head").await;
    let start = write_ledger::load_start(&fx.db).await.unwrap().unwrap();
    assert!(!start.continuous, "{start:?}");
    assert!(start.detail.contains("assets"), "{start:?}");

    // The application inserts, updates and deletes after the start.
    fx.raw(import, Some(tenant), Some(session)).await;
    fx.sql(&format!(
        "UPDATE raw_import_records SET processing_notes = 'edited by the application' WHERE id = '{edited}'"
    ))
    .await;
    fx.sql(&format!("DELETE FROM assets WHERE id = '{deleted}'"))
        .await;

    let exact = verify(&fx.db).await.unwrap();
    assert!(
        !exact.is_ok(),
        "the exact proof cannot pass: {}",
        exact.summary()
    );
    assert!(
        exact.summary().contains("verify --online"),
        "{}",
        exact.summary()
    );
    let online = verify_online(&fx.db).await.unwrap();
    assert!(online.is_ok(), "{}", online.summary());
    let ledger = online.ledger.as_ref().unwrap();
    let written: i64 = ledger.tables.iter().map(|t| t.written_by_application).sum();
    assert!(written >= 3, "{ledger:?}");
    assert_eq!(marker_rows(&fx).await, 0, "no marker row is ever committed");

    // Now "flowkey" changes a legacy value, loses a row and adds one: each is named.
    written_by_flowkey(
        &fx.db,
        &format!("UPDATE raw_import_records SET processing_notes = 'changed by flowkey' WHERE id = '{broken}'"),
    )
    .await;
    written_by_flowkey(&fx.db, &format!("DELETE FROM assets WHERE id = '{lost}'")).await;
    let added = Uuid::new_v4();
    written_by_flowkey(
        &fx.db,
        &format!("INSERT INTO client_accounts (id, name) VALUES ('{added}', 'added by flowkey')"),
    )
    .await;
    assert_eq!(marker_rows(&fx).await, 0, "no marker row is ever committed");
    let online = verify_online(&fx.db).await.unwrap();
    assert!(!online.is_ok());
    assert_eq!(
        unexplained(&online),
        vec![
            ("assets".to_owned(), lost.to_string(), "lost".to_owned()),
            (
                "client_accounts".to_owned(),
                added.to_string(),
                "added".to_owned()
            ),
            (
                "raw_import_records".to_owned(),
                broken.to_string(),
                "changed".to_owned()
            ),
        ]
    );
    let summary = online.summary();
    assert!(
        summary.contains("3 legacy rows differ")
            && summary.contains("raw_import_records: 1 changed"),
        "{summary}"
    );
    // The printed report (`flowkey verify --online`) names each row the application did
    // not write.
    let printed = online.to_string().to_lowercase();
    assert!(
        printed.contains(&format!(
            "  assets {lost}: lost without an application write"
        )),
        "{printed}"
    );

    // The way down removes the triggers and empties the ledger (flowkey's own tables stay);
    // the online check then says it has nothing to compare.
    downgrade_to(&fx.db, "-1").await;
    assert!(write_ledger::load_start(&fx.db).await.unwrap().is_none());
    assert_eq!(
        fx.count("SELECT count(*) FROM flowkey_row_baseline").await,
        0
    );
    fx.asset(tenant, Some(session)).await;
    assert_eq!(
        fx.count("SELECT count(*) FROM flowkey_write_ledger").await,
        0,
        "no trigger records after the way down"
    );
    let without = verify_online(&fx.db).await.unwrap();
    assert!(!without.is_ok());
    assert!(
        without.summary().contains("no write ledger"),
        "{}",
        without.summary()
    );
}
both_engines!(
    online_check_names_changes_not_made_by_the_application,
    the_online_check_passes_while_the_application_writes_and_names_what_else_changed
);

async fn a_ledger_started_on_a_quiet_database_is_continuous_with_the_fingerprints(test_db: TestDb) {
    let LegacyImport {
        fx,
        tenant,
        session,
        import,
    } = legacy_import(test_db.connect().await).await;
    let raw = fx.raw(import, Some(tenant), Some(session)).await;
    fx.field_mapping(import).await;
    fx.llm(Some(tenant), Some(&session.to_string())).await;

    upgrade_to(&fx.db, "head").await;
    let start = write_ledger::load_start(&fx.db).await.unwrap().unwrap();
    assert!(start.continuous, "a quiet upgrade: {start:?}");

    // The application writes: the exact proof fails as it always did (it cannot tell whose
    // writes they are), the online check passes.
    fx.asset(tenant, Some(session)).await;
    fx.sql(&format!(
        "UPDATE raw_import_records SET is_valid = {} WHERE id = '{raw}'",
        match fx.engine() {
            flowkey::db::Engine::Sqlite => "0",
            flowkey::db::Engine::Postgres => "false",
        }
    ))
    .await;
    let exact = verify(&fx.db).await.unwrap();
    assert!(!exact.fingerprints_match());
    assert!(!exact.is_ok());
    assert!(
        exact.summary().contains("verify --online"),
        "{}",
        exact.summary()
    );
    let online = verify_online(&fx.db).await.unwrap();
    assert!(online.is_ok(), "{}", online.summary());
    assert!(
        online
            .ledger
            .as_ref()
            .unwrap()
            .summary()
            .contains("since before the upgrade"),
        "{}",
        online.ledger.as_ref().unwrap().summary()
    );

    // A change flowkey's own transaction makes fails it, named.
    written_by_flowkey(
        &fx.db,
        &format!("UPDATE data_imports SET status = 'changed by flowkey' WHERE id = '{import}'"),
    )
    .await;
    let report = verify_online(&fx.db).await.unwrap();
    assert!(!report.is_ok());
    assert_eq!(
        unexplained(&report),
        vec![(
            "data_imports".to_owned(),
            import.to_string(),
            "changed".to_owned()
        )]
    );
}
both_engines!(
    quiet_start_is_continuous,
    a_ledger_started_on_a_quiet_database_is_continuous_with_the_fingerprints
);

/// More rows than one SQLite chunk: the comparison walks several chunks and still names a
/// change in the last one and a row lost in between.
async fn the_comparison_names_rows_past_the_first_chunk(test_db: TestDb) {
    let db = test_db.connect().await;
    upgrade_to(&db, "legacy").await;
    let fx = Fx::new(db).await;
    fx.sql(match fx.engine() {
        flowkey::db::Engine::Postgres => {
            "INSERT INTO client_accounts (id, name) SELECT gen_random_uuid(), 'account ' || n \
             FROM generate_series(1, 12000) AS n"
        }
        flowkey::db::Engine::Sqlite => {
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12000) \
             INSERT INTO client_accounts (id, name) SELECT lower(hex(randomblob(16))), 'account ' || i FROM n"
        }
    })
    .await;
    upgrade_to(&fx.db, "head").await;
    let online = verify_online(&fx.db).await.unwrap();
    assert!(online.is_ok(), "{}", online.summary());
    let ids: Vec<String> = flowkey::on_pool!(&fx.db, pool => {
        sqlx::query_scalar::<_, String>("SELECT CAST(id AS TEXT) FROM client_accounts ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap()
    });
    let (last, middle) = (ids[ids.len() - 1].clone(), ids[7000].clone());
    written_by_flowkey(
        &fx.db,
        &format!("UPDATE client_accounts SET name = 'changed' WHERE id = '{last}'"),
    )
    .await;
    written_by_flowkey(
        &fx.db,
        &format!("DELETE FROM client_accounts WHERE id = '{middle}'"),
    )
    .await;
    let online = verify_online(&fx.db).await.unwrap();
    let mut wanted = vec![
        ("client_accounts".to_owned(), last, "changed".to_owned()),
        ("client_accounts".to_owned(), middle, "lost".to_owned()),
    ];
    wanted.sort();
    assert_eq!(unexplained(&online), wanted);
}
both_engines!(
    comparison_past_the_first_chunk,
    the_comparison_names_rows_past_the_first_chunk
);

/// SQLite: a marker row left committed would hide every later application write from the
/// ledger (its triggers skip while the marker table is not empty), so the online check
/// refuses to pass and says so, even when no row differs.
#[tokio::test]
async fn a_committed_marker_row_fails_the_online_check_on_sqlite() {
    let test_db = TestDb::fresh(flowkey::db::Engine::Sqlite).await;
    let db = test_db.connect().await;
    upgrade_to(&db, "head").await;
    let fx = Fx::new(db).await;
    let online = verify_online(&fx.db).await.unwrap();
    assert!(online.is_ok(), "{}", online.summary());
    fx.sql("INSERT INTO flowkey_migration_writer (marked) VALUES (1)")
        .await;
    let online = verify_online(&fx.db).await.unwrap();
    let ledger = online.ledger.as_ref().expect("the database has a ledger");
    assert!(ledger.marker_left_committed);
    assert!(!online.is_ok());
    assert!(
        ledger.summary().contains("marker row was committed"),
        "{}",
        ledger.summary()
    );
}

/// An in-memory SQLite database lives in the pool's one connection, which no connection of
/// flowkey's own can open: its baseline is taken through the pool, and equals the one a file
/// gets (continuous with the fingerprints on a quiet database).
#[tokio::test]
async fn an_in_memory_sqlite_database_takes_its_baseline_through_the_pool() {
    let db = Db::connect("sqlite://:memory:").await.expect("in-memory");
    let LegacyImport {
        fx,
        tenant,
        session,
        import,
    } = legacy_import(db).await;
    fx.raw(import, Some(tenant), Some(session)).await;
    // More raw records than one chunk of the comparison (5,000), ids in random order.
    fx.sql(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12000) \
         INSERT INTO raw_import_records (id, data_import_id, client_account_id, engagement_id, session_id, row_number, raw_data) \
         SELECT lower(hex(randomblob(16))), '{import}', '{}', '{}', '{session}', i, '{{}}' FROM n",
        tenant.client, tenant.engagement
    ))
    .await;
    upgrade_to(&fx.db, "head").await;
    let online = verify_online(&fx.db).await.unwrap();
    assert!(online.is_ok(), "{}", online.summary());
    let ledger = online.ledger.as_ref().expect("the database has a ledger");
    assert!(ledger.start.continuous, "{}", ledger.start.detail);

    // Old code writes rows of every chunk: each is the application's, none unexplained.
    fx.sql("UPDATE raw_import_records SET processing_notes = 'app' WHERE row_number % 1000 = 0")
        .await;
    let online = verify_online(&fx.db).await.unwrap();
    assert!(online.is_ok(), "{}", online.summary());
    let ledger = online.ledger.as_ref().expect("the database has a ledger");
    let raw = ledger
        .tables
        .iter()
        .find(|table| table.table == "raw_import_records")
        .unwrap();
    assert_eq!(raw.baseline_rows, 12_001);
    assert_eq!(raw.written_by_application, 12);
    assert!(ledger.unexplained_rows.is_empty());
}

/// Below `write_ledger` there is no baseline: `verify --online` has nothing to compare, and
/// a legacy row changed since the fingerprints fails it with that reason named instead of
/// passing unexplained.
async fn below_the_ledger_the_online_check_says_it_has_nothing_to_compare(test_db: TestDb) {
    let LegacyImport {
        fx,
        tenant,
        session,
        import,
    } = legacy_import(test_db.connect().await).await;
    fx.raw(import, Some(tenant), Some(session)).await;
    upgrade_to(&fx.db, "legacy_write_signal").await;
    fx.db
        .execute_plain("UPDATE users SET email = 'changed@example.com';")
        .await
        .unwrap();
    let online = verify_online(&fx.db).await.unwrap();
    assert!(online.ledger.is_none());
    assert!(!online.is_ok());
    assert!(
        online
            .summary()
            .contains("no write ledger (revision write_ledger not applied, or after the contract)"),
        "{}",
        online.summary()
    );
    fx.db.close().await;
}
both_engines!(
    below_the_ledger_the_online_check_says_it_has_nothing_to_compare,
    below_the_ledger_the_online_check_says_it_has_nothing_to_compare
);
