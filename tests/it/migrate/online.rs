//! The migration next to a live legacy application (issue 12 item 5, issue 13 item 2): batch
//! plans that cannot go wrong with the statistics, backfill batches that never wait on the
//! application's row locks, and old-code writers that never fail while flowkey works.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowkey::db::{Db, Engine};
use flowkey::migrate::flow::backfill::{batch_statements, keyed_batch_statements};
use flowkey::migrate::flow::linked::LINKED_TABLES;
use flowkey::migrate::{Migrator, RunOptions};
use flowkey::seed::{seed, Oddities, SeedConfig};
use sqlx::Connection;

use crate::both_engines;
use crate::support::flow_support::{audit_events, history_of, upgrade_to};
use crate::support::harness::TestDb;
use crate::support::reliability_support::flowkey;

fn small_seed() -> SeedConfig {
    SeedConfig {
        seed: 12,
        tenants: 3,
        imports_per_tenant: 40,
        rows_per_import: 20,
        field_mappings_per_import: 10,
        // Clean data: every row with a mapped session is linkable (no tenant mismatches),
        // so "linked" can be counted by a join.
        oddities: Oddities::none(),
        ..SeedConfig::default()
    }
}

/// Many small imports: lookup tables large enough (thousands of sessions, imports and flows)
/// that a planner reading them whole per row or per batch is a choice, not a tie.
fn many_imports_seed() -> SeedConfig {
    SeedConfig {
        seed: 13,
        tenants: 4,
        imports_per_tenant: 500,
        rows_per_import: 2,
        field_mappings_per_import: 10,
        access_logs_per_import: 1,
        llm_logs_per_import: 1,
        ..SeedConfig::default()
    }
}

/// The lookup tables a batch reaches a row's flow through.
const LOOKUPS: [&str; 3] = ["session_flow_mapping", "data_imports", "discovery_flows"];

/// What in a plan means the batch is no longer driven by its range: a scan of a whole lookup
/// table (per batch, or worse per row) or a join that reads one whole.
fn plan_defects(table: &str, plan: &str) -> Vec<String> {
    let mut defects = Vec::new();
    for line in plan.lines() {
        for scanned in LOOKUPS.iter().copied().chain([table]) {
            // data_imports' own fallback looks for the flow naming the import, by
            // discovery_flows.data_import_id, which the legacy schema does not index: a
            // known per-row scan of the flows, for imports without a session only.
            let known = table == "data_imports" && scanned == "discovery_flows";
            if line.contains(&format!("Seq Scan on {scanned} ")) && !known {
                defects.push(line.trim().to_owned());
            }
        }
    }
    defects
}

async fn explain(db: &Db, sql: &str) -> String {
    let Db::Postgres(pool) = db else {
        unreachable!("postgres only")
    };
    let rows: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {sql}"))
        .fetch_all(pool)
        .await
        .unwrap_or_else(|err| panic!("EXPLAIN {sql}: {err}"));
    rows.join("\n")
}

/// Issue 13 item 2: `import_field_mappings` crawled at 845 rows/s because `data_imports` was
/// analyzed before its own backfill (every `flow_id` NULL), and the join form of the batch
/// then took a plan that read the lookup tables whole. Every table's batch statement is
/// explained here after exactly that misleading ANALYZE (and once more with the lookup
/// tables' statistics claiming they are empty): each must stay a range scan with index
/// probes. The join form of the same statements (still what `--sql` prints) fails this.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_batch_plan_stays_on_index_lookups_after_a_misleading_analyze() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    let db = test_db.connect().await;
    seed(&db, &many_imports_seed()).await.unwrap();
    upgrade_to(&db, "flow_expand").await;
    let range = "r.ctid >= '(0,0)'::tid AND r.ctid < '(4,0)'::tid";
    // What the backfill itself did before each table: ANALYZE while every flow_id is NULL.
    for misleading in ["ANALYZE"] {
        db.execute_plain(misleading).await.unwrap();
        let mut found = Vec::new();
        let mut join_form_defects = 0;
        for table in LINKED_TABLES {
            for statement in keyed_batch_statements(Engine::Postgres, table) {
                let plan = explain(&db, &statement.replace("{range}", range)).await;
                assert!(plan.contains("Tid Range Scan"), "{}:\n{plan}", table.name);
                for defect in plan_defects(table.name, &plan) {
                    found.push(format!("{}: {defect}\n{plan}", table.name));
                }
            }
            for statement in batch_statements(Engine::Postgres, table) {
                let plan = explain(&db, &statement.replace("{range}", range)).await;
                let defects = plan_defects(table.name, &plan);
                if !defects.is_empty() {
                    eprintln!("join form, {}:\n{plan}", table.name);
                }
                join_form_defects += defects.len();
            }
        }
        assert!(found.is_empty(), "after {misleading}: {found:#?}");
        // The check can fail: the join form it replaced does not pass it.
        assert!(join_form_defects > 0, "after {misleading}");
    }
    db.close().await;
}

/// Issue 13: on a server without autovacuum, `upgrade head` on 100k small imports took
/// 7.5 min instead of 86 s, because the live mapping's catch-up looked up each session's
/// claiming flow through a bitmap AND of the two tenant indexes (thousands of flows per
/// session) instead of `import_session_id`: neither the mapping (filled earlier in the same
/// run) nor the flows had statistics. The catch-up now analyzes them first. After the
/// revision's catch-up, the lookup must be an index probe by `import_session_id`; before it,
/// on the same data, the plan is the one that crawled (the check can fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catch_ups_claiming_flow_lookup_probes_import_session_id_after_its_analyze() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    let db = test_db.connect().await;
    let config = SeedConfig {
        seed: 42,
        tenants: 8,
        imports_per_tenant: 2500,
        rows_per_import: 2,
        field_mappings_per_import: 2,
        access_logs_per_import: 0,
        llm_logs_per_import: 0,
        ..SeedConfig::default()
    };
    seed(&db, &config).await.unwrap();
    upgrade_to(&db, "service_state").await;
    let lookup = flowkey::migrate::flow::live::sessions_to_move_sql();
    let tenant_indexes_anded = |plan: &str| plan.contains("BitmapAnd");
    let probes_session = |plan: &str| {
        plan.contains("Index Scan using ix_discovery_flows_import_session_id")
            || plan.contains("Bitmap Index Scan on ix_discovery_flows_import_session_id")
    };

    let before = explain(&db, &lookup).await;
    assert!(
        tenant_indexes_anded(&before),
        "without statistics:\n{before}"
    );

    upgrade_to(&db, "live_mapping").await;
    let after = explain(&db, &lookup).await;
    assert!(
        probes_session(&after) && !tenant_indexes_anded(&after),
        "after the catch-up:\n{after}"
    );
    db.close().await;
}

/// Issue 13 item 2, found on the placeholder shape at 1M raw records: `VALIDATE CONSTRAINT`
/// plans its search for flows that do not exist (`flow_id IS NOT NULL` anti-joined to
/// `discovery_flows`) from the table's statistics. The backfill's only ANALYZE ran before its
/// walk, when every `flow_id` was NULL, so that search was estimated at one row and run as
/// a nested loop reading the flows once per row: 13.9 s for raw_import_records instead of
/// 0.38 s. After `flow_backfill`, the planner's estimate of the rows that search reads must
/// be at least half the real count on every table with a foreign key. Statistics taken only
/// before the walk estimate one row (checked by removing the ANALYZE after the walk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_foreign_keys_check_is_planned_from_statistics_taken_after_the_backfill() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    let db = test_db.connect().await;
    seed(&db, &many_imports_seed()).await.unwrap();
    upgrade_to(&db, "flow_backfill").await;
    let Db::Postgres(pool) = &db else {
        unreachable!("postgres only")
    };
    let mut checked = Vec::new();
    let mut misplanned = Vec::new();
    for table in LINKED_TABLES {
        if table.flow_foreign_key_name().is_none() {
            continue;
        }
        let t = table.name;
        let linked: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {t} WHERE flow_id IS NOT NULL"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        if linked < 100 {
            continue;
        }
        // The statement PostgreSQL's own validation runs (RI_Initial_Check).
        let search = format!(
            "SELECT fk.flow_id FROM ONLY {t} fk LEFT OUTER JOIN ONLY discovery_flows pk \
             ON pk.flow_id = fk.flow_id WHERE pk.flow_id IS NULL AND fk.flow_id IS NOT NULL"
        );
        let plan: serde_json::Value =
            sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) {search}"))
                .fetch_one(pool)
                .await
                .unwrap();
        let estimated = planned_rows_of(&plan, t)
            .unwrap_or_else(|| panic!("{t} is not scanned in its check:\n{plan:#}"));
        checked.push(t);
        if estimated * 2.0 < linked as f64 {
            misplanned.push(format!(
                "{t}: {estimated} rows planned, {linked} linked: {plan}"
            ));
        }
    }
    assert!(checked.len() >= 4, "tables with linked rows: {checked:?}");
    assert!(misplanned.is_empty(), "{misplanned:#?}");
    db.close().await;
}

/// A table that maintenance holds (a VACUUM an operator started, an autovacuum against
/// wraparound: neither gives way to an ANALYZE) does not stop the backfill at its ANALYZE,
/// before or after the walk: each waits `ANALYZE_LOCK_WAIT`, says the statistics were not
/// refreshed, and the run links every row. Without the wait the run hung until the holder
/// let go (here: never, until the test's own limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_held_by_maintenance_is_backfilled_with_the_statistics_it_had() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    let db = test_db.connect().await;
    seed(&db, &small_seed()).await.unwrap();
    upgrade_to(&db, "flow_expand").await;
    let mut maintenance = sqlx::PgConnection::connect(&test_db.url).await.unwrap();
    sqlx::query("BEGIN")
        .execute(&mut maintenance)
        .await
        .unwrap();
    // The lock VACUUM and ANALYZE take; the application's reads and writes never conflict
    // with it, and neither do the backfill's batches.
    sqlx::query("LOCK TABLE raw_import_records IN SHARE UPDATE EXCLUSIVE MODE")
        .execute(&mut maintenance)
        .await
        .unwrap();
    let url = test_db.url.clone();
    let output = tokio::task::spawn_blocking(move || {
        let mut run = flowkey(&url, &["upgrade", "flow_backfill", "--no-progress"])
            .spawn()
            .unwrap();
        let started = Instant::now();
        while run.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(120) {
                run.kill().unwrap();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        run.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let not_refreshed = stderr
        .matches("statistics of raw_import_records not refreshed")
        .count();
    assert_eq!(not_refreshed, 2, "before and after the walk:\n{stderr}");
    sqlx::query("ROLLBACK")
        .execute(&mut maintenance)
        .await
        .unwrap();
    let Db::Postgres(pool) = &db else {
        unreachable!("postgres only")
    };
    let unlinked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM raw_import_records r JOIN session_flow_mapping m \
         ON m.session_id = r.session_id WHERE r.flow_id IS DISTINCT FROM m.flow_id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(unlinked, 0);
    assert!(history_of(&db, "flow_backfill").await.is_current);
    db.close().await;
}

/// The rows the planner expects to read from `table`, in an `EXPLAIN (FORMAT JSON)` plan.
fn planned_rows_of(plan: &serde_json::Value, table: &str) -> Option<f64> {
    match plan {
        serde_json::Value::Object(node) => {
            if node.get("Relation Name").and_then(|name| name.as_str()) == Some(table) {
                return node.get("Plan Rows").and_then(|rows| rows.as_f64());
            }
            node.values()
                .find_map(|child| planned_rows_of(child, table))
        }
        serde_json::Value::Array(nodes) => {
            nodes.iter().find_map(|child| planned_rows_of(child, table))
        }
        _ => None,
    }
}

/// Issue 12 item 5: a backfill batch never waits for a row the application holds. The
/// application keeps one raw record locked (an open transaction, as a slow request does);
/// the backfill links every other row meanwhile, and the row itself once the application
/// writes it (the dual-write trigger) and commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backfill_skips_rows_the_application_holds() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    let (db, mut app_tx, held) = at_expand_with_a_raw_record_held(&test_db).await;
    let Db::Postgres(pool) = &db else {
        unreachable!()
    };
    let linkable: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM raw_import_records r JOIN session_flow_mapping m \
         ON m.session_id = r.session_id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let application = async {
        let started = Instant::now();
        loop {
            let linked: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM raw_import_records r JOIN session_flow_mapping m \
                 ON m.session_id = r.session_id WHERE r.flow_id IS NOT NULL",
            )
            .fetch_one(pool)
            .await
            .unwrap();
            if linked >= linkable - 1 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the backfill waits on the application's row lock: {linked} of {linkable} linked"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Old code writes the row it held: the trigger gives it its flow.
        sqlx::query("UPDATE raw_import_records SET processing_notes = 'app' WHERE id = $1")
            .bind(held)
            .execute(&mut *app_tx)
            .await
            .unwrap();
        app_tx.commit().await.unwrap();
    };
    let migrator = Migrator::new(db.clone(), RunOptions::default());
    let (upgraded, ()) = tokio::join!(migrator.upgrade("flow_backfill"), application);
    upgraded.expect("the backfill ends once the row is free");
    let unlinked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM raw_import_records r JOIN session_flow_mapping m \
         ON m.session_id = r.session_id WHERE r.flow_id IS DISTINCT FROM m.flow_id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(unlinked, 0);
    db.close().await;
}

/// A row the application holds for longer than the run waits: the closing sweep passes over
/// it until `long_transaction_wait`, then stops with one error that names the table and the
/// rows, leaving `flow_backfill` dirty; once the application's transaction ends, the rerun
/// links the row and finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_behind_a_row_held_past_the_wait_stops_and_resumes() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    let (db, app_tx, held) = at_expand_with_a_raw_record_held(&test_db).await;
    let options = RunOptions {
        long_transaction_wait: Duration::from_secs(1),
        ..RunOptions::default()
    };
    let migrator = Migrator::new(db.clone(), options);
    let err = migrator
        .upgrade("flow_backfill")
        .await
        .expect_err("the sweep cannot link the held row")
        .to_string();
    assert!(
        err.contains("1 rows of raw_import_records that the backfill could link stayed locked by other transactions for 1 s"),
        "{err}"
    );
    let dirty = history_of(&db, "flow_backfill").await.dirty.expect("dirty");
    assert_eq!(dirty.direction, "up");
    let sweeps = audit_events(&db, "sweep").await;
    let blocked = sweeps.last().unwrap();
    assert_eq!(blocked["table"], "raw_import_records");
    assert_eq!(blocked["rows_left_locked"], 1);

    app_tx.rollback().await.unwrap();
    migrator.upgrade("flow_backfill").await.unwrap();
    let Db::Postgres(pool) = &db else {
        unreachable!()
    };
    let flow: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT flow_id FROM raw_import_records WHERE id = $1")
            .bind(held)
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(flow.is_some());
    db.close().await;
}

/// One old-code writer, as the legacy application writes: per transaction, an UPDATE of an
/// import's first rows by `data_import_id` and an INSERT with `session_id` only (the same
/// statements as the deadlock of issue 12 item 5). SQLite with a 5 s busy timeout.
enum Writer {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Writer {
    async fn open(test_db: &TestDb) -> Writer {
        match test_db.engine {
            Engine::Sqlite => {
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(&test_db.url)
                    .unwrap()
                    .busy_timeout(Duration::from_secs(5));
                Writer::Sqlite(
                    sqlx::SqliteConnection::connect_with(&options)
                        .await
                        .unwrap(),
                )
            }
            Engine::Postgres => {
                Writer::Postgres(sqlx::PgConnection::connect(&test_db.url).await.unwrap())
            }
        }
    }

    /// One application transaction; `Err` is what the application would see.
    async fn write(&mut self, import: &(String, String, String), n: u64) -> Result<(), String> {
        let (import_id, session, tenant) = import;
        let id = uuid::Uuid::new_v4().to_string();
        let update = "UPDATE raw_import_records SET processing_notes = 'old code' \
                      WHERE data_import_id = $1 AND row_number <= 3";
        macro_rules! run {
            ($conn:expr, $cast:literal) => {{
                let mut tx = $conn.begin().await.map_err(|e| e.to_string())?;
                sqlx::query(&update.replace("$1", concat!("$1", $cast)))
                    .bind(import_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(concat!(
                    "INSERT INTO raw_import_records (id, data_import_id, client_account_id, \
                     session_id, row_number, raw_data) \
                     VALUES ($1",
                    $cast,
                    ", $2",
                    $cast,
                    ", $3",
                    $cast,
                    ", $4",
                    $cast,
                    ", $5, '{}')"
                ))
                .bind(&id)
                .bind(import_id)
                .bind(tenant)
                .bind(session)
                .bind(100_000 + n as i32)
                .execute(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
                tx.commit().await.map_err(|e| e.to_string())
            }};
        }
        match self {
            Writer::Sqlite(conn) => run!(conn, ""),
            Writer::Postgres(conn) => run!(conn, "::uuid"),
        }
    }
}

/// Issue 12 item 5: two old-code writers run through the whole upgrade (mapping, expand,
/// backfill, constraints and the verify inside it) and a `verify` after it: not one of their
/// transactions fails (no `database is locked`, no deadlock, no lock timeout), and every row
/// they wrote ends linked.
async fn old_code_writers_never_fail_during_the_upgrade(test_db: TestDb) {
    let db = test_db.connect().await;
    seed(&db, &small_seed()).await.unwrap();
    let imports: Vec<(String, String, String)> = {
        let sql = match test_db.engine {
            Engine::Sqlite => {
                "SELECT id, session_id, client_account_id FROM data_imports \
                 WHERE session_id IS NOT NULL AND client_account_id IS NOT NULL ORDER BY id"
            }
            Engine::Postgres => {
                "SELECT id::text, session_id::text, client_account_id::text FROM data_imports \
                 WHERE session_id IS NOT NULL AND client_account_id IS NOT NULL ORDER BY id"
            }
        };
        flowkey::on_pool!(&db, pool => {
            sqlx::query_as(sql).fetch_all(pool).await.unwrap()
        })
    };
    assert!(imports.len() > 10);
    let imports = Arc::new(imports);
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..2u64 {
        let mut writer = Writer::open(&test_db).await;
        let (imports, stop, written) = (imports.clone(), stop.clone(), written.clone());
        writers.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            let mut n = w;
            while !stop.load(Ordering::Relaxed) {
                let import = &imports[(n as usize * 7) % imports.len()];
                match writer.write(import, n).await {
                    Ok(()) => {
                        written.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(err) => errors.push(err),
                }
                n += 2;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            errors
        }));
    }
    let options = RunOptions {
        initial_batch_size: 50,
        target_batch_time: Duration::from_millis(20),
        ..RunOptions::default()
    };
    // Small batches: many batches, each a chance to collide with a writer.
    let upgraded = Migrator::new(db.clone(), options)
        .upgrade("flow_backfill")
        .await;
    let verified = flowkey::migrate::flow::verify(&db).await;
    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for writer in writers {
        errors.extend(writer.await.unwrap());
    }
    upgraded.expect("upgrade");
    verified.expect("verify runs");
    let verified = flowkey::migrate::flow::verify(&db).await.unwrap();
    assert!(verified.links_are_sound(), "{verified}");
    assert!(written.load(Ordering::Relaxed) > 20, "the writers wrote");
    assert_eq!(errors, Vec::<String>::new(), "old-code writer errors");
    let unlinked: i64 = flowkey::on_pool!(&db, pool => {
        sqlx::query_scalar(
            "SELECT count(*) FROM raw_import_records r JOIN session_flow_mapping m \
             ON m.session_id = r.session_id WHERE r.flow_id IS NULL",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    });
    assert_eq!(unlinked, 0);
    db.close().await;
}
both_engines!(
    old_code_writers_never_fail_during_the_upgrade,
    old_code_writers_never_fail_during_the_upgrade
);

/// Issue 12 item 6: a transaction left open (an idle session inside BEGIN) blocks `CREATE
/// INDEX CONCURRENTLY`. The run names it (pid, age, start of its query) in the audit log,
/// waits for it up to `long_transaction_wait`, and then stops with its name instead of
/// retrying blind; once it ends, the same command completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_ddl_names_and_waits_for_long_transactions() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    let db = test_db.connect().await;
    seed(&db, &small_seed()).await.unwrap();
    upgrade_to(&db, "flow_backfill").await;
    let mut app = sqlx::PgConnection::connect(&test_db.url).await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut app)
        .await
        .unwrap();
    let mut app_tx = app.begin().await.unwrap();
    sqlx::query("SELECT count(*) FROM assets")
        .execute(&mut *app_tx)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let impatient = RunOptions {
        long_transaction_threshold: Duration::from_secs(1),
        long_transaction_wait: Duration::from_secs(1),
        ..RunOptions::default()
    };
    let started = Instant::now();
    let err = Migrator::new(db.clone(), impatient.clone())
        .upgrade("flow_constraints")
        .await
        .expect_err("a long transaction stops the online DDL");
    let message = err.to_string();
    assert!(
        message.contains(&format!("pid {pid} open")) && message.contains("last query started"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "no blind retries"
    );
    let named = crate::support::flow_support::audit_events(&db, "long_transactions").await;
    assert!(
        named.iter().any(|event| event["transactions"]
            .as_array()
            .is_some_and(|found| found.iter().any(|t| t["pid"] == pid))),
        "{named:?}"
    );
    // The application ends its transaction while the run waits: the run completes.
    let patient = RunOptions {
        long_transaction_wait: Duration::from_secs(60),
        ..impatient
    };
    let application = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        app_tx.commit().await.unwrap();
    };
    let migrator = Migrator::new(db.clone(), patient);
    let (upgraded, ()) = tokio::join!(migrator.upgrade("flow_constraints"), application);
    upgraded.expect("the run completes once the transaction ended");
    db.close().await;
}

/// Issue 12 item 7: the downgrade makes `flow_deletion_audit.session_id` NOT NULL again
/// without scanning the table under an exclusive lock: a CHECK added NOT VALID, validated
/// (reads and writes go on), then SET NOT NULL (no scan) and the check dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_downgrade_sets_not_null_through_a_validated_check() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    let db = test_db.connect().await;
    seed(&db, &small_seed()).await.unwrap();
    upgrade_to(&db, "flow_expand").await;
    crate::support::flow_support::downgrade_to(&db, "legacy").await;
    let statements: Vec<String> = crate::support::flow_support::audit_events(&db, "statement")
        .await
        .into_iter()
        .map(|event| event.to_string())
        .filter(|event| event.contains("flow_deletion_audit"))
        .collect();
    let position = |needle: &str| {
        statements
            .iter()
            .position(|statement| statement.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in {statements:#?}"))
    };
    let validate = position("VALIDATE CONSTRAINT flowkey_deletion_audit_session_not_null");
    let set_not_null = position("SET NOT NULL");
    assert!(validate < set_not_null, "{statements:#?}");
    let Db::Postgres(pool) = &db else {
        unreachable!()
    };
    let (nullable, checks): (String, i64) = sqlx::query_as(
        "SELECT (SELECT is_nullable::text FROM information_schema.columns \
                 WHERE table_name = 'flow_deletion_audit' AND column_name = 'session_id'), \
                (SELECT count(*) FROM pg_constraint \
                 WHERE conname = 'flowkey_deletion_audit_session_not_null')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((nullable.as_str(), checks), ("NO", 0));
    db.close().await;
}

/// A PostgreSQL database at `flow_expand` where the application holds one raw record with a
/// session (an open transaction with the row locked, as a slow request does): the
/// transaction and the row's id.
async fn at_expand_with_a_raw_record_held(
    test_db: &TestDb,
) -> (Db, sqlx::Transaction<'static, sqlx::Postgres>, uuid::Uuid) {
    let db = test_db.connect().await;
    seed(&db, &small_seed()).await.unwrap();
    upgrade_to(&db, "flow_expand").await;
    let app = sqlx::PgPool::connect(&test_db.url).await.unwrap();
    let mut app_tx = app.begin().await.unwrap();
    let held: uuid::Uuid = sqlx::query_scalar(
        "SELECT id FROM raw_import_records WHERE session_id IS NOT NULL \
         ORDER BY id LIMIT 1 FOR UPDATE",
    )
    .fetch_one(&mut *app_tx)
    .await
    .unwrap();
    (db, app_tx, held)
}
