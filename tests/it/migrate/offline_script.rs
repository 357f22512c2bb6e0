//! The runnable `--sql` script on PostgreSQL: fed to the real `psql` on a seeded legacy
//! database that flowkey never touched, it ends where the runner ends — the same schema, the
//! same links, the same book — and its downgrade gives back the legacy schema and data
//! exactly, rows written at head included. PostgreSQL only: the SQLite script still describes
//! its code steps (see `migrate::offline`).

use std::process::Command;

use flowkey::db::{Db, Engine};
use flowkey::migrate::flow::fingerprint::FingerprintScope;
use flowkey::migrate::flow::verify::verify;
use flowkey::migrate::{offline_sql, revisions, Direction, Migrator, RunOptions};
use flowkey::seed::{seed, SeedConfig};
use sqlx::Row;

use crate::support::flow_support::{downgrade_to, upgrade_to};
use crate::support::harness::TestDb;
use crate::support::reliability_support::{assert_same, snapshot};

/// Runs `script` as a DBA would, `psql -v ON_ERROR_STOP=1 -f <file>` on `url`:
/// (success, stderr).
pub fn psql(url: &str, script: &str) -> (bool, String) {
    psql_with(url, script, &["-v", "ON_ERROR_STOP=1"])
}

fn psql_with(url: &str, script: &str, options: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.sql");
    std::fs::write(&path, script).unwrap();
    let output = Command::new("psql")
        .args(["-X", "-q"])
        .args(options)
        .args(["-d", url, "-f"])
        .arg(&path)
        .output()
        .expect("psql is installed");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn script(from: &str, target: &str, direction: Direction) -> String {
    offline_sql(
        revisions::all(),
        Engine::Postgres,
        Some(from),
        target,
        direction,
    )
    .unwrap()
}

async fn current(db: &Db) -> Option<String> {
    Migrator::new(db.clone(), RunOptions::default())
        .current()
        .await
        .unwrap()
        .map(str::to_owned)
}

/// The book as the runner reads it: revision, position, checksum, dirty, direction, steps.
async fn book(db: &Db) -> Vec<String> {
    let Db::Postgres(pool) = db else {
        unreachable!("PostgreSQL only")
    };
    sqlx::query(
        "SELECT revision || ' ' || position || ' ' || checksum || ' ' || dirty || ' ' \
         || direction || ' ' || steps_done FROM flowkey_versions ORDER BY position",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|row| row.get::<String, _>(0))
    .collect()
}

/// A seeded legacy database; `unmanaged` forgets flowkey's record of it, as on a platform
/// database flowkey never touched (the script then adopts it, as the runner would).
async fn seeded(unmanaged: bool) -> (TestDb, Db) {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    let db = test_db.connect().await;
    seed(&db, &SeedConfig::default()).await.expect("seed");
    if unmanaged {
        test_db
            .run_script("DROP TABLE flowkey_versions;\nDROP TABLE flowkey_audit_log;\n")
            .await;
    }
    (test_db, db)
}

/// What new code writes at head: a flow no session names, and an asset that carries it
/// without a session (the downgrade must create the flow's session and give it to the asset).
const WRITTEN_AT_HEAD: &str = "\
INSERT INTO discovery_flows (id, flow_id, client_account_id, engagement_id, flow_name, created_at)
SELECT '0ff1e000-0000-4000-8000-000000000001', '0ff1e000-0000-4000-8000-000000000002',
       client_account_id, engagement_id, 'written at head', '2025-01-01T00:00:00Z'
FROM data_import_sessions ORDER BY id LIMIT 1;
INSERT INTO assets (id, client_account_id, engagement_id, name, asset_type, flow_id, created_at)
SELECT '0ff1e000-0000-4000-8000-000000000003', client_account_id, engagement_id,
       'asset at head', 'server', flow_id, '2025-01-01T00:00:01Z'
FROM discovery_flows WHERE flow_id = '0ff1e000-0000-4000-8000-000000000002';
";

async fn the_postgres_script_upgrades_and_downgrades_as_the_runner_does() {
    let head = revisions::head().id;
    let (script_db, on_script) = seeded(true).await;
    let (runner_db, on_runner) = seeded(false).await;
    let legacy = snapshot(&on_script, FingerprintScope::AllRows).await;

    let up = script("legacy", "head", Direction::Up);
    let (ok, stderr) = psql(&script_db.url, &up);
    assert!(ok, "the upgrade script failed in psql: {stderr}");
    upgrade_to(&on_runner, "head").await;

    assert_eq!(current(&on_script).await.as_deref(), Some(head));
    assert_same(
        &snapshot(&on_script, FingerprintScope::WithoutMigrationFlows).await,
        &snapshot(&on_runner, FingerprintScope::WithoutMigrationFlows).await,
        "script and runner at head",
    );
    assert_eq!(book(&on_script).await, book(&on_runner).await);
    let report = verify(&on_script).await.unwrap();
    assert!(report.is_ok(), "{report}");

    // The guard: the same script again stops before changing anything, even when psql is
    // not told to stop on errors (the script tells it).
    let (again, stderr) = psql_with(&script_db.url, &up, &[]);
    assert!(!again, "a second run must stop");
    assert!(
        stderr.contains(&format!(
            "this script starts at revision legacy; the database is at {head}"
        )),
        "{stderr}"
    );

    for db in [&script_db, &runner_db] {
        db.run_script(WRITTEN_AT_HEAD).await;
    }
    let down = script(head, "legacy", Direction::Down);
    let (ok, stderr) = psql(&script_db.url, &down);
    assert!(ok, "the downgrade script failed in psql: {stderr}");
    downgrade_to(&on_runner, "legacy").await;
    assert_eq!(current(&on_script).await.as_deref(), Some("legacy"));
    assert_same(
        &snapshot(&on_script, FingerprintScope::AllRows).await,
        &snapshot(&on_runner, FingerprintScope::AllRows).await,
        "script and runner back at legacy after writes at head",
    );
    let restored: i64 = match &on_script {
        Db::Postgres(pool) => sqlx::query_scalar(
            "SELECT count(*) FROM assets a JOIN data_import_sessions s ON s.id = a.session_id \
             WHERE a.id = '0ff1e000-0000-4000-8000-000000000003' \
               AND s.id = '0ff1e000-0000-4000-8000-000000000002'",
        )
        .fetch_one(pool)
        .await
        .unwrap(),
        Db::Sqlite(_) => unreachable!(),
    };
    assert_eq!(
        restored, 1,
        "the asset written at head has its flow's session"
    );

    // Without the writes at head, the downgraded script database is the legacy one.
    let (clean_db, clean) = seeded(true).await;
    let (ok, stderr) = psql(&clean_db.url, &up);
    assert!(ok, "{stderr}");
    let (ok, stderr) = psql(&clean_db.url, &down);
    assert!(ok, "{stderr}");
    assert_same(
        &snapshot(&clean, FingerprintScope::AllRows).await,
        &legacy,
        "legacy → head → legacy by the scripts",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_script_upgrades_and_downgrades_as_the_runner_does_in_psql() {
    the_postgres_script_upgrades_and_downgrades_as_the_runner_does().await;
}

/// A step with no plain-SQL form (the contract's gate) stops the script there with a clear
/// error, leaving the revision recorded half done for the runner to take up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_runs_only_in_flowkey_stops_the_script_there() {
    let (test_db, db) = seeded(false).await;
    upgrade_to(&db, "head").await;
    let contract = script(
        revisions::head().id,
        flowkey::migrate::flow::contract::CONTRACT_REVISION,
        Direction::Up,
    );
    let (ok, stderr) = psql(&test_db.url, &contract);
    assert!(!ok);
    assert!(
        stderr.contains("step \"gate\" of revision flow_contract runs only in flowkey"),
        "{stderr}"
    );
    assert_eq!(
        current(&db).await.as_deref(),
        Some(revisions::head().id),
        "the contract is not recorded applied"
    );
}

/// The contract's way down (`downgrade -1 --sql` from `flow_contract`) in `psql` ends where the
/// runner's ends: every session value back, the same schema, links and book.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contracts_way_down_in_psql_ends_where_the_runners_does() {
    use flowkey::flags::{set_flag, FlagScope, FlowIdPrimary};
    use flowkey::migrate::flow::contract::{GateOptions, QuietPeriod, CONTRACT_REVISION};

    let head = revisions::head().id;
    let mut sides = Vec::new();
    for _ in 0..2 {
        let (test_db, db) = seeded(false).await;
        upgrade_to(&db, "head").await;
        set_flag(&db, FlagScope::Global, FlowIdPrimary::On, "test")
            .await
            .unwrap();
        let options = RunOptions {
            contract: GateOptions {
                quiet_period: QuietPeriod::parse("0s").unwrap(),
                force: false,
            },
            ..RunOptions::default()
        };
        Migrator::new(db.clone(), options)
            .upgrade(CONTRACT_REVISION)
            .await
            .unwrap();
        sides.push((test_db, db));
    }
    let down = script(CONTRACT_REVISION, "-1", Direction::Down);
    let (ok, stderr) = psql(&sides[0].0.url, &down);
    assert!(
        ok,
        "the contract's downgrade script failed in psql: {stderr}"
    );
    downgrade_to(&sides[1].1, head).await;
    assert_eq!(current(&sides[0].1).await.as_deref(), Some(head));
    assert_same(
        &snapshot(&sides[0].1, FingerprintScope::WithoutMigrationFlows).await,
        &snapshot(&sides[1].1, FingerprintScope::WithoutMigrationFlows).await,
        "script and runner back from the contract",
    );
    assert_eq!(book(&sides[0].1).await, book(&sides[1].1).await);
}
