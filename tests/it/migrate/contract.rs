//! The contract (issue 14) on both engines, each test on its own fresh seeded database (the
//! seed has every oddity of session values: dangling, free text, other tenant, ...): `upgrade
//! head` stops before it; the gate refuses for each reason alone and names it; a forced
//! contract is audited; the contract and its downgrade give back every legacy row exactly;
//! rows written by flow only after the contract get their flow's session; a killed contract or
//! downgrade, rerun, ends where an uninterrupted one does.

use flowkey::db::introspect::introspect;
use flowkey::db::{Db, Engine};
use flowkey::flags::{set_flag, FlagScope, FlowIdPrimary};
use flowkey::migrate::flow::contract::{gate, GateOptions, QuietPeriod, CONTRACT_REVISION};
use flowkey::migrate::flow::fingerprint::{fingerprint_database, FingerprintScope};
use flowkey::migrate::{revisions, Migrator, RunOptions};
use flowkey::seed::{seed, SeedConfig};

use crate::both_engines;
use crate::support::flow_support::{audit_events, downgrade_to, upgrade_to};
use crate::support::harness::TestDb;
#[cfg(feature = "failpoints")]
use crate::support::reliability_support::run_ok;
use crate::support::reliability_support::run_to_end;

fn quiet(period: &str) -> GateOptions {
    GateOptions {
        quiet_period: QuietPeriod::parse(period).unwrap(),
        force: false,
    }
}

fn with_gate(gate: GateOptions) -> RunOptions {
    RunOptions {
        contract: gate,
        initial_batch_size: 7,
        ..RunOptions::default()
    }
}

async fn contract(db: &Db, gate: GateOptions) -> Result<(), String> {
    Migrator::new(db.clone(), with_gate(gate))
        .upgrade(CONTRACT_REVISION)
        .await
        .map(|_| ())
        .map_err(|err| err.to_string())
}

async fn current(db: &Db) -> Option<&'static str> {
    Migrator::new(db.clone(), RunOptions::default())
        .current()
        .await
        .unwrap()
}

/// A seeded legacy database's fingerprint, then the database at head with the flag `on`: the
/// gate passes with a quiet period of 0s.
async fn ready(test_db: &TestDb) -> (Db, Vec<flowkey::migrate::flow::TableFingerprint>) {
    let db = test_db.connect().await;
    seed(&db, &SeedConfig::default()).await.expect("seed");
    let before = fingerprint_database(&db, FingerprintScope::AllRows)
        .await
        .unwrap();
    upgrade_to(&db, "head").await;
    set_flag(&db, FlagScope::Global, FlowIdPrimary::On, "test")
        .await
        .unwrap();
    (db, before)
}

async fn has_column(db: &Db, table: &str, column: &str) -> bool {
    introspect(db)
        .await
        .unwrap()
        .tables
        .get(table)
        .is_some_and(|t| t.columns.contains_key(column))
}

async fn scalar(db: &Db, sql: &str) -> i64 {
    match db {
        Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    }
}

async fn text(db: &Db, sql: &str) -> Option<String> {
    match db {
        Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    }
}

fn id_text(engine: Engine, column: &str) -> String {
    match engine {
        Engine::Postgres => format!("{column}::text"),
        Engine::Sqlite => column.to_owned(),
    }
}

/// Every archived value, in order (the archive's whole content).
async fn archive(db: &Db) -> Vec<(String, String, String, Option<String>)> {
    let sql = "SELECT table_name, column_name, row_id, CAST(session_value AS TEXT) \
               FROM flowkey_contract_archive ORDER BY 1, 2, 3";
    match db {
        Db::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        Db::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
    }
}

/// `upgrade head` stops before the contract, and `+N` does not cross into it.
async fn upgrade_head_does_not_contract(test_db: TestDb) {
    let db = test_db.connect().await;
    upgrade_to(&db, "head").await;
    assert_eq!(current(&db).await, Some(revisions::head().id));
    assert_ne!(revisions::head().id, CONTRACT_REVISION);
    let err = Migrator::new(db.clone(), RunOptions::default())
        .upgrade("+1")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("flowkey contract"), "{err}");
    assert!(has_column(&db, "assets", "session_id").await);
    let history = Migrator::new(db.clone(), RunOptions::default())
        .history()
        .await
        .unwrap();
    let last = history.last().unwrap();
    assert_eq!(last.id, CONTRACT_REVISION);
    assert!(!last.applied && !last.is_head);
}
both_engines!(
    upgrade_head_stops_before_the_contract,
    upgrade_head_does_not_contract
);

/// Contract, downgrade -1, downgrade legacy: every legacy row byte-identical (fingerprint of
/// every legacy column), the schema the legacy one, the archive emptied.
async fn round_trip(test_db: TestDb) {
    let (db, before) = ready(&test_db).await;
    let head_schema = introspect(&db).await.unwrap();
    contract(&db, quiet("0s")).await.unwrap();
    assert_eq!(current(&db).await, Some(CONTRACT_REVISION));
    for (table, column) in [
        ("data_imports", "session_id"),
        ("raw_import_records", "session_id"),
        ("assets", "session_id"),
        ("access_audit_log", "session_id"),
        ("llm_usage_logs", "session_id"),
        ("flow_deletion_audit", "session_id"),
        ("discovery_flows", "import_session_id"),
    ] {
        assert!(!has_column(&db, table, column).await, "{table}.{column}");
    }
    assert!(has_column(&db, "session_flow_mapping", "session_id").await);
    assert!(has_column(&db, "data_import_sessions", "id").await);
    // The ledger's baseline hashed the session values the archive now holds: after the
    // contract it has nothing to compare, and says so instead of naming every row.
    assert!(flowkey::migrate::flow::write_ledger::compare(&db)
        .await
        .unwrap()
        .is_none());
    for value in [FlowIdPrimary::Off, FlowIdPrimary::Shadow] {
        let err = set_flag(&db, FlagScope::Global, value, "test")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("contracted") && err.contains("downgrade -1"),
            "{err}"
        );
    }
    set_flag(&db, FlagScope::Global, FlowIdPrimary::On, "test")
        .await
        .unwrap();
    let serving = flowkey::migrate::serving::check_schema(&db).await.unwrap();
    // Servable, by flow id alone.
    assert!(serving.servable(), "{}", serving.describe());
    assert_eq!(serving.key_columns(), flowkey::db::KeyColumns::Contracted);
    assert!(
        serving.describe().contains("contracted"),
        "{}",
        serving.describe()
    );
    let archived = archive(&db).await;
    assert!(
        archived.iter().any(|row| row.0 == "llm_usage_logs"),
        "free-text sessions archived: {archived:?}"
    );
    assert!(
        archived.iter().any(|row| row.3.is_none()),
        "a NULL the rule would fill is archived as NULL"
    );

    downgrade_to(&db, "-1").await;
    assert_eq!(current(&db).await, Some(revisions::head().id));
    let differences = introspect(&db).await.unwrap().diff(&head_schema);
    assert!(differences.is_empty(), "{differences:?}");
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM flowkey_contract_archive").await,
        0
    );

    downgrade_to(&db, "legacy").await;
    let after = fingerprint_database(&db, FingerprintScope::AllRows)
        .await
        .unwrap();
    assert_eq!(after, before, "every legacy row byte-identical");
}
both_engines!(contract_then_downgrade_legacy_is_exact, round_trip);

/// Each reason refuses alone, named; nothing changes; a blocker refuses even when forced.
async fn gate_reasons(test_db: TestDb) {
    let engine = test_db.engine;
    // The flag: a tenant set apart in shadow.
    let (db, _) = ready(&test_db).await;
    assert!(gate(&db, quiet("0s")).await.unwrap().reasons.is_empty());
    let tenant = text(
        &db,
        &format!(
            "SELECT {} FROM data_import_sessions ORDER BY id LIMIT 1",
            id_text(engine, "client_account_id")
        ),
    )
    .await
    .unwrap();
    let engagement = text(
        &db,
        &format!(
            "SELECT {} FROM data_import_sessions ORDER BY id LIMIT 1",
            id_text(engine, "engagement_id")
        ),
    )
    .await
    .unwrap();
    let scope = FlagScope::parse(&format!("{tenant}:{engagement}")).unwrap();
    set_flag(&db, scope, FlowIdPrimary::Shadow, "test")
        .await
        .unwrap();
    let verdict = gate(&db, quiet("0s")).await.unwrap();
    assert_eq!(verdict.reasons.len(), 1, "{:?}", verdict.reasons);
    assert!(verdict.reasons[0].contains("enable_flow_id_primary"));
    let err = contract(&db, quiet("0s")).await.unwrap_err();
    assert!(err.contains("enable_flow_id_primary"), "{err}");
    assert!(
        has_column(&db, "assets", "session_id").await,
        "nothing changed"
    );
    set_flag(&db, scope, FlowIdPrimary::On, "test")
        .await
        .unwrap();
    contract(&db, quiet("0s")).await.unwrap();
    assert_eq!(current(&db).await, Some(CONTRACT_REVISION));
    db.close().await;

    // A legacy write (a session key, no flow_id) within the quiet period.
    let fresh = TestDb::fresh(engine).await;
    let (db, _) = ready(&fresh).await;
    let legacy_insert = match engine {
        Engine::Postgres => "INSERT INTO assets (id, client_account_id, engagement_id, session_id, name, asset_type) \
             SELECT gen_random_uuid(), s.client_account_id, s.engagement_id, s.id, 'old code', 'server' \
             FROM data_import_sessions s ORDER BY s.id LIMIT 1",
        Engine::Sqlite => "INSERT INTO assets (id, client_account_id, engagement_id, session_id, name, asset_type) \
             SELECT lower(hex(randomblob(16))), s.client_account_id, s.engagement_id, s.id, 'old code', 'server' \
             FROM data_import_sessions s ORDER BY s.id LIMIT 1",
    };
    db.execute_plain(legacy_insert).await.unwrap();
    let verdict = gate(&db, GateOptions::default()).await.unwrap();
    assert_eq!(verdict.reasons.len(), 1, "{:?}", verdict.reasons);
    assert!(
        verdict.reasons[0].contains("legacy write"),
        "{:?}",
        verdict.reasons
    );
    assert!(verdict.reasons[0].contains("assets"));
    assert!(contract(&db, GateOptions::default()).await.is_err());
    assert!(has_column(&db, "assets", "session_id").await);
    assert!(gate(&db, quiet("0s")).await.unwrap().reasons.is_empty());
    db.close().await;

    // verify's link checks: a row linked to another flow than the rules give.
    let fresh = TestDb::fresh(engine).await;
    let (db, _) = ready(&fresh).await;
    db.execute_plain(
        "UPDATE assets SET flow_id = (SELECT flow_id FROM discovery_flows ORDER BY created_at DESC, id LIMIT 1) \
         WHERE id = (SELECT id FROM assets WHERE flow_id IS NOT NULL ORDER BY id LIMIT 1)",
    )
    .await
    .unwrap();
    // And a mapping row moved to another tenant.
    db.execute_plain(
        "UPDATE session_flow_mapping SET client_account_id = \
         (SELECT c.id FROM client_accounts c WHERE c.id <> session_flow_mapping.client_account_id ORDER BY c.id LIMIT 1) \
         WHERE session_id = (SELECT session_id FROM session_flow_mapping ORDER BY session_id LIMIT 1)",
    )
    .await
    .unwrap();
    let verdict = gate(&db, quiet("0s")).await.unwrap();
    assert!(!verdict.reasons.is_empty());
    assert!(
        verdict
            .reasons
            .iter()
            .all(|reason| reason.starts_with("verify:")),
        "{:?}",
        verdict.reasons
    );
    assert!(
        verdict.reasons.iter().any(|reason| reason
            == "verify: 1 session_flow_mapping rows of another tenant than their flow"),
        "{:?}",
        verdict.reasons
    );
    assert!(contract(&db, quiet("0s")).await.is_err());
    assert!(has_column(&db, "assets", "session_id").await);
    db.close().await;

    // A view over a dropped column blocks, forced or not, before anything changes.
    let fresh = TestDb::fresh(engine).await;
    let (db, _) = ready(&fresh).await;
    db.execute_plain(
        "CREATE VIEW import_session_summary AS SELECT session_id, count(*) AS imports \
         FROM data_imports GROUP BY session_id",
    )
    .await
    .unwrap();
    let forced = GateOptions {
        quiet_period: QuietPeriod::parse("0s").unwrap(),
        force: true,
    };
    let verdict = gate(&db, forced).await.unwrap();
    assert!(verdict.reasons.is_empty());
    assert_eq!(verdict.blockers.len(), 1, "{:?}", verdict.blockers);
    assert!(verdict.blockers[0].contains("import_session_summary"));
    let err = contract(&db, forced).await.unwrap_err();
    assert!(err.contains("import_session_summary"), "{err}");
    assert!(has_column(&db, "data_imports", "session_id").await);
    assert!(scalar(&db, "SELECT count(*) FROM import_session_summary").await > 0);
    db.close().await;

    // Below head the gate has nothing to read: one clear refusal, nothing changed.
    let fresh = TestDb::fresh(engine).await;
    let db = fresh.connect().await;
    seed(&db, &SeedConfig::default()).await.expect("seed");
    upgrade_to(&db, "flow_constraints").await;
    let err = gate(&db, quiet("0s")).await.unwrap_err().to_string();
    assert_eq!(
        err,
        "the database is at flow_constraints, and the contract's gate reads what head adds \
         (the flag, the legacy-write log): run `flowkey upgrade head` first; nothing was changed"
    );
    let (status, stderr) = run_to_end(&fresh.url, &["contract", "--dry-run"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("run `flowkey upgrade head` first"),
        "{stderr}"
    );
    assert_eq!(current(&db).await, Some("flow_constraints"));

    // At head without the legacy-write log (dropped by hand), writes cannot be ruled out.
    upgrade_to(&db, "head").await;
    set_flag(&db, FlagScope::Global, FlowIdPrimary::On, "test")
        .await
        .unwrap();
    db.execute_plain("DROP TABLE flowkey_legacy_writes")
        .await
        .unwrap();
    let verdict = gate(&db, quiet("0s")).await.unwrap();
    assert_eq!(
        verdict.reasons,
        [
            "the legacy-write log is missing (revision legacy_write_signal made it): \
          legacy writes cannot be ruled out"
        ]
    );
}
both_engines!(the_gate_refuses_for_each_reason_alone, gate_reasons);

/// `--force` runs the contract past the gate, and the audit log says so, with the reasons.
async fn forced(test_db: TestDb) {
    let (db, _) = ready(&test_db).await;
    set_flag(&db, FlagScope::Global, FlowIdPrimary::Shadow, "test")
        .await
        .unwrap();
    let options = GateOptions {
        quiet_period: QuietPeriod::DEFAULT,
        force: true,
    };
    contract(&db, options).await.unwrap();
    let events = audit_events(&db, "contract_forced").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["forced"], true);
    let reasons = events[0]["reasons"].as_array().unwrap();
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().unwrap().contains("`shadow` globally")),
        "{reasons:?}"
    );
}
both_engines!(a_forced_contract_is_audited, forced);

/// Rows written by flow only after the contract: the downgrade gives them the smallest
/// session mapped to their flow (in their tenant), or NULL when the flow has none.
async fn writes_after(test_db: TestDb) {
    let engine = test_db.engine;
    let (db, _) = ready(&test_db).await;
    contract(&db, quiet("0s")).await.unwrap();
    let new_id = match engine {
        Engine::Postgres => "gen_random_uuid()",
        Engine::Sqlite => {
            "lower(hex(randomblob(4))) || '-0000-4000-8000-' || lower(hex(randomblob(6)))"
        }
    };
    // A flow with mapped sessions in its tenant, and a new flow without any.
    db.execute_plain(&format!(
        "INSERT INTO assets (id, client_account_id, engagement_id, flow_id, name, asset_type) \
         SELECT {new_id}, m.client_account_id, m.engagement_id, m.flow_id, 'mapped', 'server' \
         FROM session_flow_mapping m JOIN data_import_sessions s ON s.id = m.session_id \
         ORDER BY m.session_id DESC LIMIT 1"
    ))
    .await
    .unwrap();
    db.execute_plain(&format!(
        "INSERT INTO discovery_flows (id, flow_id, client_account_id, engagement_id, flow_name) \
         SELECT {new_id}, {new_id}, client_account_id, engagement_id, 'new after contract' \
         FROM data_import_sessions ORDER BY id LIMIT 1"
    ))
    .await
    .unwrap();
    db.execute_plain(
        "INSERT INTO assets (id, client_account_id, engagement_id, flow_id, name, asset_type) \
         SELECT f.id, f.client_account_id, f.engagement_id, f.flow_id, 'unmapped', 'server' \
         FROM discovery_flows f WHERE f.flow_name = 'new after contract'",
    )
    .await
    .unwrap();
    downgrade_to(&db, "-1").await;
    let expected = text(
        &db,
        &format!(
            "SELECT {} FROM session_flow_mapping m JOIN assets a ON a.flow_id = m.flow_id \
             AND a.client_account_id = m.client_account_id AND a.engagement_id = m.engagement_id \
             WHERE a.name = 'mapped' \
             AND EXISTS (SELECT 1 FROM data_import_sessions s WHERE s.id = m.session_id) \
             ORDER BY m.session_id LIMIT 1",
            id_text(engine, "m.session_id")
        ),
    )
    .await;
    assert!(expected.is_some());
    let got = text(
        &db,
        &format!(
            "SELECT {} FROM assets WHERE name = 'mapped'",
            id_text(engine, "session_id")
        ),
    )
    .await;
    assert_eq!(got, expected);
    let unmapped = text(
        &db,
        &format!(
            "SELECT {} FROM assets WHERE name = 'unmapped'",
            id_text(engine, "session_id")
        ),
    )
    .await;
    assert_eq!(unmapped, None);
}
both_engines!(
    rows_written_after_the_contract_get_their_flows_session,
    writes_after
);

/// `flowkey contract --dry-run` prints the verdict and the SQL and changes nothing; without
/// --dry-run a refusing gate changes nothing either.
async fn dry_run(test_db: TestDb) {
    let (db, _) = ready(&test_db).await;
    let url = test_db.url.as_str();
    let output = crate::support::reliability_support::flowkey(
        url,
        &["contract", "--dry-run", "--quiet-period", "0s"],
    )
    .stdout(std::process::Stdio::piped())
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("gate: passes"), "{stdout}");
    assert!(stdout.contains("flowkey_contract_archive"), "{stdout}");
    assert_eq!(current(&db).await, Some(revisions::head().id));
    assert!(has_column(&db, "assets", "session_id").await);

    set_flag(&db, FlagScope::Global, FlowIdPrimary::Shadow, "test")
        .await
        .unwrap();
    let (status, stderr) = run_to_end(url, &["contract", "--dry-run"]);
    assert!(!status.success());
    assert!(stderr.contains("dry run"), "{stderr}");
    let (status, stderr) = run_to_end(url, &["contract", "--quiet-period", "0s"]);
    assert!(!status.success());
    assert!(stderr.contains("`shadow` globally"), "{stderr}");
    assert_eq!(current(&db).await, Some(revisions::head().id));
    let history = Migrator::new(db.clone(), RunOptions::default())
        .history()
        .await
        .unwrap();
    assert!(history.iter().all(|entry| entry.dirty.is_none()));
    assert!(has_column(&db, "assets", "session_id").await);
}
both_engines!(a_dry_run_changes_nothing, dry_run);

/// A contract killed in its archive, and a downgrade killed in its restore, each rerun: the
/// same archive as an uninterrupted run on the same seed, and the legacy rows exact.
#[cfg(feature = "failpoints")]
async fn killed(test_db: TestDb) {
    use crate::support::reliability_support::run_with_faults;
    let (db, before) = ready(&test_db).await;
    let url = test_db.url.as_str();
    let args = [
        "contract",
        "--quiet-period",
        "0s",
        "--initial-batch-size",
        "3",
        "--no-progress",
    ];
    let (status, stderr) = run_with_faults(
        url,
        &args,
        "contract::archive_batch=20*off->return(connection_lost)",
    );
    assert!(!status.success(), "{stderr}");
    assert!(has_column(&db, "assets", "session_id").await);
    run_ok(url, &args);
    assert_eq!(current(&db).await, Some(CONTRACT_REVISION));

    let reference_db = TestDb::fresh(test_db.engine).await;
    let (reference, _) = ready(&reference_db).await;
    contract(&reference, quiet("0s")).await.unwrap();
    assert_eq!(archive(&db).await, archive(&reference).await);

    let down = [
        "downgrade",
        "-1",
        "--initial-batch-size",
        "3",
        "--no-progress",
    ];
    let (status, stderr) = run_with_faults(
        url,
        &down,
        "contract::restore_batch=10*off->return(connection_lost)",
    );
    assert!(!status.success(), "{stderr}");
    run_ok(url, &down);
    assert_eq!(current(&db).await, Some(revisions::head().id));
    downgrade_to(&db, "legacy").await;
    let after = fingerprint_database(&db, FingerprintScope::AllRows)
        .await
        .unwrap();
    assert_eq!(after, before);
}
#[cfg(feature = "failpoints")]
both_engines!(a_killed_contract_and_downgrade_end_the_same, killed);

/// The same archive and schema as an uninterrupted contract of the same seed, on a fresh
/// database of `engine`.
#[cfg(feature = "failpoints")]
async fn ends_like_an_uninterrupted_contract(db: &Db, engine: Engine) {
    let reference_db = TestDb::fresh(engine).await;
    let (reference, _) = ready(&reference_db).await;
    contract(&reference, quiet("0s")).await.unwrap();
    assert_eq!(archive(db).await, archive(&reference).await);
    let differences = introspect(db)
        .await
        .unwrap()
        .diff(&introspect(&reference).await.unwrap());
    assert!(differences.is_empty(), "{differences:#?}");
}

/// SQLite: the contract's table rebuild failing just before its commit (every table rebuilt
/// in the transaction) rolls all of it back: the session columns are still there, the
/// revision is dirty with the rebuild not done, the error line names the failure, and the
/// rerun ends with the same schema and archive as an uninterrupted contract.
#[cfg(feature = "failpoints")]
#[tokio::test]
async fn a_sqlite_rebuild_that_fails_before_its_commit_rolls_back_and_resumes() {
    use crate::support::flow_support::{error_line, history_of};
    use crate::support::reliability_support::run_with_faults;
    let test_db = TestDb::fresh(Engine::Sqlite).await;
    let (db, _) = ready(&test_db).await;
    let url = test_db.url.as_str();
    let args = ["contract", "--quiet-period", "0s", "--no-progress"];
    let (status, stderr) =
        run_with_faults(url, &args, "contract::rebuild_commit=1*return(disk_full)");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        error_line(&stderr).contains("injected at contract::rebuild_commit"),
        "{stderr}"
    );
    assert!(
        has_column(&db, "assets", "session_id").await,
        "the rebuild was rolled back"
    );
    let entry = history_of(&db, CONTRACT_REVISION).await;
    let dirty = entry.dirty.expect("the contract is dirty");
    assert_eq!((dirty.direction.as_str(), dirty.steps_done), ("up", 3));

    run_ok(url, &args);
    assert_eq!(current(&db).await, Some(CONTRACT_REVISION));
    assert!(!has_column(&db, "assets", "session_id").await);
    ends_like_an_uninterrupted_contract(&db, Engine::Sqlite).await;
}

/// The contract's last step (the SQLite rebuild; nothing on PostgreSQL, whose columns went
/// in the step before) done and committed, then the run lost its connection before the step
/// was recorded done. `flowkey contract` run again resumes without asking the gate (which
/// reads the session columns now gone: it stopped with "no such column: r.session_id"),
/// runs the step again, finds every session column gone and ends like an uninterrupted
/// contract.
#[cfg(feature = "failpoints")]
async fn rebuilt_not_recorded(test_db: TestDb) {
    use crate::support::flow_support::{error_line, history_of};
    use crate::support::reliability_support::run_with_faults;
    let engine = test_db.engine;
    let (db, _) = ready(&test_db).await;
    let url = test_db.url.as_str();
    let args = ["contract", "--quiet-period", "0s", "--no-progress"];
    // The gate, the archive, then the rebuild: the third step that runs a function.
    let (status, stderr) = run_with_faults(
        url,
        &args,
        "runner::after_code_step=2*off->return(connection_lost)",
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        error_line(&stderr).contains("injected at runner::after_code_step"),
        "{stderr}"
    );
    assert!(
        !has_column(&db, "assets", "session_id").await,
        "the rebuild was committed"
    );
    let entry = history_of(&db, CONTRACT_REVISION).await;
    let dirty = entry.dirty.expect("the contract is dirty");
    assert_eq!((dirty.direction.as_str(), dirty.steps_done), ("up", 3));

    let output = crate::support::reliability_support::flowkey(url, &args)
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("gate: passed when this contract started; resuming after step 3 of 4"),
        "{stdout}"
    );
    assert_eq!(current(&db).await, Some(CONTRACT_REVISION));
    ends_like_an_uninterrupted_contract(&db, engine).await;

    // Once more, applied: nothing to ask or do (the gate read the dropped columns too, so a
    // run killed after its last step but before it exited could not be run again).
    let output = crate::support::reliability_support::flowkey(url, &args)
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("gate: not asked, the contract is applied already"),
        "{output:?}"
    );
    ends_like_an_uninterrupted_contract(&db, engine).await;
}
#[cfg(feature = "failpoints")]
both_engines!(
    a_last_step_committed_but_not_recorded_is_resumed_without_the_gate,
    rebuilt_not_recorded
);

/// SQLite: a platform whose `assets` was created by another tool than the legacy script, its
/// definitions on one line with other spacing, and whose `raw_import_records` ends with the
/// session column on the line that closes the list, after a comment holding a comma and a
/// parenthesis. The contract's rebuild stopped half way on each ("no column definition of
/// session_id to drop"): it cut the session column by its line, and read the comment's
/// parenthesis as the list's; it now cuts the definition wherever it sits, comments skipped,
/// and the downgrade gives every legacy value back.
#[tokio::test]
async fn a_sqlite_table_written_on_one_line_is_contracted_and_given_back() {
    let test_db = TestDb::fresh(Engine::Sqlite).await;
    let db = test_db.connect().await;
    let script = flowkey::migrate::revisions::legacy::LEGACY_SQL.sqlite;
    let start = script.find("CREATE TABLE assets (").unwrap();
    let end = start + script[start..].find("\n);").unwrap() + 3;
    let one_line = script[start..end]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("( ", "(")
        .replace(" )", ")")
        .replace("session_id TEXT REFERENCES", "session_id  TEXT  REFERENCES");
    assert!(!one_line.contains('\n') && one_line.contains("session_id  TEXT"));
    let mut legacy = format!("{}{}{}", &script[..start], one_line, &script[end..]);
    let session_line = "    session_id         TEXT REFERENCES data_import_sessions(id) ON DELETE CASCADE,\n    row_number";
    let last_line = "    processed_at       TEXT\n);";
    let raw = legacy.find("CREATE TABLE raw_import_records (").unwrap();
    let raw_end = raw + legacy[raw..].find(last_line).unwrap() + last_line.len();
    let raw_text = legacy[raw..raw_end]
        .replacen(session_line, "    row_number", 1)
        .replacen(
            last_line,
            "    processed_at       TEXT, -- when (if ever, processed\n    \
             session_id TEXT REFERENCES data_import_sessions(id) ON DELETE CASCADE);",
            1,
        );
    assert!(
        raw_text.ends_with("ON DELETE CASCADE);") && raw_text.matches("session_id").count() == 1
    );
    legacy.replace_range(raw..raw_end, &raw_text);
    db.execute_plain(&legacy).await.unwrap();
    seed(&db, &SeedConfig::default()).await.expect("seed");
    let before = fingerprint_database(&db, FingerprintScope::AllRows)
        .await
        .unwrap();
    let schema_before = introspect(&db).await.unwrap();
    upgrade_to(&db, "head").await;
    set_flag(&db, FlagScope::Global, FlowIdPrimary::On, "test")
        .await
        .unwrap();
    contract(&db, quiet("0s")).await.unwrap();
    assert!(!has_column(&db, "assets", "session_id").await);
    assert!(!has_column(&db, "raw_import_records", "session_id").await);
    downgrade_to(&db, "legacy").await;
    let after = fingerprint_database(&db, FingerprintScope::AllRows)
        .await
        .unwrap();
    assert_eq!(after, before);
    let differences = introspect(&db).await.unwrap().diff(&schema_before);
    assert!(differences.is_empty(), "{differences:#?}");
}

/// Random mixes of odd session values (free text in any form, an uppercase or prefixed id,
/// blanks, other scripts, NULL) in `llm_usage_logs`, beside the seed's own oddities (dangling
/// ids, other tenants, ...): contract, then downgrade legacy, gives every row back exactly.
mod odd_values {
    use proptest::prelude::*;

    use super::*;
    use crate::support::flow_fixtures::Fx;

    fn odd_value() -> impl Strategy<Value = Option<String>> {
        let uuid = "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}";
        prop_oneof![
            Just(None),
            Just(Some(String::new())),
            "[ -~]{0,24}".prop_map(Some),
            "\\PC{0,12}".prop_map(Some),
            uuid.prop_map(|u| Some(u.to_uppercase())),
            uuid.prop_map(|u| Some(format!("disc_session_{u}"))),
            uuid.prop_map(|u| Some(format!("  Session-{u} "))),
        ]
    }

    fn round_trip(engine: Engine, values: Vec<Option<String>>) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let test_db = TestDb::fresh(engine).await;
            let db = test_db.connect().await;
            seed(&db, &SeedConfig::default()).await.unwrap();
            let fx = Fx::new(db.clone()).await;
            let tenant = fx.tenant().await;
            for (index, value) in values.iter().enumerate() {
                let own = (index % 2 == 0).then_some(tenant);
                fx.llm(own, value.as_deref()).await;
            }
            let before = fingerprint_database(&db, FingerprintScope::AllRows)
                .await
                .unwrap();
            upgrade_to(&db, "head").await;
            set_flag(&db, FlagScope::Global, FlowIdPrimary::On, "test")
                .await
                .unwrap();
            contract(&db, quiet("0s")).await.unwrap();
            downgrade_to(&db, "legacy").await;
            let after = fingerprint_database(&db, FingerprintScope::AllRows)
                .await
                .unwrap();
            assert_eq!(after, before, "{values:?}");
            db.close().await;
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3, ..ProptestConfig::default() })]

        #[test]
        fn odd_session_values_round_trip_exactly(
            values in proptest::collection::vec(odd_value(), 1..16),
        ) {
            for engine in [Engine::Sqlite, Engine::Postgres] {
                round_trip(engine, values.clone());
            }
        }
    }
}

/// A SQLite database whose application never turned foreign keys on, with dangling
/// references in migrated tables (an asset of an engagement that is gone, a raw record of a
/// deleted import, a field mapping of none): they are the platform's. The whole way — head,
/// the contract and back, legacy — runs, leaves them as they were, and gives back every
/// legacy row byte for byte; the rebuilds still refuse violations of their own (runner test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangling_references_the_application_left_survive_every_sqlite_rebuild() {
    let test_db = TestDb::fresh(Engine::Sqlite).await;
    let db = test_db.connect().await;
    seed(&db, &SeedConfig::default()).await.expect("seed");
    db.execute_plain(
        "PRAGMA foreign_keys = OFF;
         INSERT INTO assets (id, client_account_id, engagement_id, name, asset_type, session_id)
         SELECT 'dangling-asset', client_account_id, 'no-such-engagement', 'gone', 'server', id
         FROM data_import_sessions ORDER BY id LIMIT 1;
         UPDATE raw_import_records SET data_import_id = 'no-such-import'
         WHERE id = (SELECT min(id) FROM raw_import_records);
         UPDATE import_field_mappings SET data_import_id = 'no-such-import'
         WHERE id = (SELECT min(id) FROM import_field_mappings);
         PRAGMA foreign_keys = ON;",
    )
    .await
    .unwrap();
    let dangling = |db: &Db| {
        let db = db.clone();
        async move { scalar(&db, "SELECT count(*) FROM pragma_foreign_key_check").await }
    };
    let found = dangling(&db).await;
    assert!(found >= 3, "{found}");
    let before = fingerprint_database(&db, FingerprintScope::AllRows)
        .await
        .unwrap();

    upgrade_to(&db, "head").await;
    let verified = flowkey::migrate::flow::verify(&db).await.unwrap();
    assert!(verified.is_ok(), "{}", verified.summary());
    set_flag(&db, FlagScope::Global, FlowIdPrimary::On, "test")
        .await
        .unwrap();
    contract(&db, quiet("0s")).await.unwrap();
    assert_eq!(dangling(&db).await, found);
    downgrade_to(&db, "-1").await;
    downgrade_to(&db, "legacy").await;
    assert_eq!(dangling(&db).await, found);
    let after = fingerprint_database(&db, FingerprintScope::AllRows)
        .await
        .unwrap();
    assert_eq!(after, before, "every legacy row byte-identical");
}
