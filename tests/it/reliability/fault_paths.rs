//! The runner's error paths that only a database failing at one precise moment takes, driven
//! through the fault injection points (`FAILPOINTS`, see `flowkey::migrate::faults`) on the
//! real binary: a failure right after the deploy lock was taken, a rollback that fails after
//! a failed step, a backfill batch whose commit or a sweep that fails; and, without a fault point, SQLite reporting busy when the deploy lock is
//! taken. Each ends in the one `error:`
//! line naming the fault, leaves the state the runner's book says, and a rerun ends like an
//! uninterrupted run.

use std::time::{Duration, Instant};

use flowkey::db::introspect::introspect;
use flowkey::db::Engine;
use flowkey::migrate::flow::{self, FingerprintScope};
use sqlx::Connection;

use crate::both_engines;
use crate::support::flow_support::{audit_events, error_line, history_of};
use crate::support::harness::TestDb;
use crate::support::reliability_support::{
    assert_same, flowkey, run_ok, run_with_faults, seeded, small_seed, snapshot, table_exists,
    DOWNGRADE_LEGACY, UPGRADE_HEAD,
};

/// The fault point inside a SQL step's transaction, before its script, on `engine`.
fn before_script(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "runner::before_sqlite_script",
        Engine::Postgres => "runner::before_postgres_script",
    }
}

/// A failure right after the deploy lock was taken (before flowkey's tables exist): the run
/// gives the lock back before it stops, so the next run takes it at once and has no dead
/// holder to take it over from.
async fn a_failure_right_after_taking_the_deploy_lock_gives_the_lock_back(test_db: TestDb) {
    let (status, stderr) = run_with_faults(
        &test_db.url,
        &["upgrade", "legacy", "--lock-wait-secs", "0"],
        "runner::after_lock_acquire=return(connection_lost)",
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    let error = error_line(&stderr);
    assert!(
        error.contains("injected at runner::after_lock_acquire"),
        "{error}"
    );
    let db = test_db.connect().await;
    assert!(introspect(&db).await.unwrap().is_empty(), "nothing ran");

    run_ok(
        &test_db.url,
        &["upgrade", "legacy", "--lock-wait-secs", "0"],
    );
    assert!(history_of(&db, "legacy").await.is_current);
    let taken_over = audit_events(&db, "lock_taken_over").await;
    assert!(taken_over.is_empty(), "{taken_over:?}");
}
both_engines!(
    a_failure_right_after_taking_the_deploy_lock_gives_the_lock_back,
    a_failure_right_after_taking_the_deploy_lock_gives_the_lock_back
);

/// A step that fails and whose rollback fails too (the connection went): the step's own
/// error is the one reported, nothing of the step stays, the revision is dirty with no step
/// done, and the rerun runs the step.
async fn a_failed_rollback_after_a_failed_step_reports_the_step_error(test_db: TestDb) {
    let (status, stderr) = run_with_faults(
        &test_db.url,
        &["upgrade", "legacy"],
        &format!(
            "{}=return(disk_full);runner::before_rollback=return(connection_lost)",
            before_script(test_db.engine)
        ),
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    let error = error_line(&stderr);
    assert!(
        error.contains("step \"create legacy schema\" of revision \"legacy\" failed")
            && error.contains(&format!("injected at {}", before_script(test_db.engine)))
            && !error.contains("before_rollback"),
        "{error}"
    );
    let db = test_db.connect().await;
    assert!(introspect(&db).await.unwrap().is_empty(), "rolled back");
    let dirty = history_of(&db, "legacy").await.dirty.expect("dirty");
    assert_eq!((dirty.direction.as_str(), dirty.steps_done), ("up", 0));

    run_ok(&test_db.url, &["upgrade", "legacy"]);
    assert!(history_of(&db, "legacy").await.is_current);
    assert!(!introspect(&db).await.unwrap().is_empty());
}
both_engines!(
    a_failed_rollback_after_a_failed_step_reports_the_step_error,
    a_failed_rollback_after_a_failed_step_reports_the_step_error
);

/// SQLite only (PostgreSQL's lock is an advisory lock, with no row to write): another
/// connection holds SQLite's write lock, with no deploy lock row, for longer than the busy
/// timeout (10 s) when a run tries to take the deploy lock. The run's insert of the lock row
/// gets SQLITE_BUSY; the run does not fail but waits (within its lock wait, 30 s here; a
/// shorter wait stops it, see `migrate::refusals`), and takes the lock once the write lock is
/// given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_run_that_finds_the_database_busy_waits_for_the_deploy_lock() {
    let test_db = TestDb::fresh(Engine::Sqlite).await;
    // The lock table exists from here on, so taking the lock needs only the row's insert.
    run_ok(&test_db.url, &["upgrade", "legacy"]);
    let mut writer = sqlx::SqliteConnection::connect(&test_db.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut writer)
        .await
        .unwrap();
    let started = Instant::now();
    let run = flowkey(
        &test_db.url,
        &["upgrade", "flow_mapping", "--lock-wait-secs", "30"],
    )
    .spawn()
    .unwrap();
    let held_for = Duration::from_secs(12);
    tokio::time::sleep(held_for).await;
    sqlx::query("ROLLBACK").execute(&mut writer).await.unwrap();
    let output = tokio::task::spawn_blocking(move || run.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(started.elapsed() >= held_for);
    let db = test_db.connect().await;
    assert!(history_of(&db, "flow_mapping").await.is_current);
}

/// A backfill batch that fails before its commit (a serialization failure), then, on the
/// rerun, a sweep that fails before it starts (a lost connection), then a table's step that
/// finishes but is not recorded (a lost connection right after it): each run stops with the
/// one line naming the fault and leaves `flow_backfill` dirty; the last rerun ends like an
/// uninterrupted run.
async fn a_backfill_failing_before_a_batch_commit_or_its_sweep_resumes_to_the_same_end(
    test_db: TestDb,
) {
    let clean_db = TestDb::fresh(test_db.engine).await;
    let config = small_seed();
    seeded(&test_db, &config).await;
    seeded(&clean_db, &config).await;
    let db = test_db.connect().await;
    let clean = clean_db.connect().await;
    run_ok(&clean_db.url, UPGRADE_HEAD);
    let head = snapshot(&clean, FingerprintScope::WithoutMigrationFlows).await;

    for (point, kind) in [
        (
            "backfill::before_batch_commit",
            "2*off->return(serialization_failure)",
        ),
        ("backfill::before_sweep", "return(connection_lost)"),
        // A table finished and its step not recorded: the rerun runs the step again, which
        // finds the table's progress finished and does nothing more.
        ("runner::after_code_step", "1*return(connection_lost)"),
    ] {
        let (status, stderr) =
            run_with_faults(&test_db.url, UPGRADE_HEAD, &format!("{point}={kind}"));
        assert_eq!(status.code(), Some(1), "{point}: {stderr}");
        let error = error_line(&stderr);
        assert!(error.contains(&format!("injected at {point}")), "{error}");
        let dirty = history_of(&db, "flow_backfill")
            .await
            .dirty
            .unwrap_or_else(|| panic!("{point}: flow_backfill is not dirty"));
        assert_eq!(dirty.direction, "up", "{point}");
    }

    run_ok(&test_db.url, UPGRADE_HEAD);
    assert_same(
        &snapshot(&db, FingerprintScope::WithoutMigrationFlows).await,
        &head,
        "upgrade after failed backfill batches and sweep",
    );
    assert!(flow::verify(&db).await.unwrap().is_ok());
}
both_engines!(
    a_backfill_failing_before_a_batch_commit_or_its_sweep_resumes_to_the_same_end,
    a_backfill_failing_before_a_batch_commit_or_its_sweep_resumes_to_the_same_end
);

/// One fault point of the runner armed for a whole `upgrade head` and then a whole
/// `downgrade legacy`.
struct PointCase {
    /// What `FAILPOINTS` arms: each point fires once (`1*`), then stays off. The first
    /// point is the one the error line names.
    failpoints: &'static str,
    /// Where the point is on the path of a run on each engine.
    sqlite: bool,
    postgres: bool,
    /// Which directions pass it (`mark_applied` is the upgrade's, `delete_version` the
    /// downgrade's).
    upgrade: bool,
    downgrade: bool,
}

const fn case(failpoints: &'static str, sqlite: bool, postgres: bool) -> PointCase {
    PointCase {
        failpoints,
        sqlite,
        postgres,
        upgrade: true,
        downgrade: true,
    }
}

/// A point only one direction passes.
const fn one_way(case: PointCase, upgrade: bool) -> PointCase {
    PointCase {
        upgrade,
        downgrade: !upgrade,
        ..case
    }
}

/// Every runner fault point no other test arms, and the rollback's `after_` point, which
/// only a failed step reaches. `disk_full` because no part of the runner retries it: each
/// point's own error handling is what runs.
const RUNNER_POINTS: &[PointCase] = &[
    case("runner::before_lock_acquire=1*return(disk_full)", true, true),
    case("runner::before_step=1*return(disk_full)", true, true),
    case("runner::before_mark_dirty=1*return(disk_full)", true, true),
    case("runner::after_mark_dirty=1*return(disk_full)", true, true),
    case("runner::after_sqlite_script=1*return(disk_full)", true, false),
    case("runner::after_postgres_script=1*return(disk_full)", false, true),
    case("runner::before_online_statement=1*return(disk_full)", false, true),
    case("runner::after_online_statement=1*return(disk_full)", false, true),
    case("runner::before_code_step=1*return(disk_full)", true, true),
    case("runner::after_code_step=1*return(disk_full)", true, true),
    case("runner::before_set_steps_done=1*return(disk_full)", true, true),
    case("runner::after_set_steps_done=1*return(disk_full)", true, true),
    one_way(case("runner::before_mark_applied=1*return(disk_full)", true, true), true),
    one_way(case("runner::after_mark_applied=1*return(disk_full)", true, true), true),
    one_way(case("runner::before_delete_version=1*return(disk_full)", true, true), false),
    case("runner::after_lock_release=1*return(disk_full)", true, true),
    // Not the runner's, but on the same path: a SQLite read failing in the middle of the
    // pre-migration fingerprint (its own connection, which no other point reaches) names the
    // table and leaves `flow_mapping` dirty. Only the upgrade fingerprints.
    one_way(case("fingerprint::sqlite_row=1*return", true, false), true),
    // Likewise the write ledger's baseline, read and hashed through that connection.
    one_way(case("write_ledger::sqlite_baseline_row=1*return", true, false), true),
    // SQLite's way down drops the added columns in one transaction: a failure half way rolls
    // every drop back (the columns an earlier table lost come back), and the rerun drops them.
    one_way(case("downgrade::before_drop_column=3*off->1*return(disk_full)", true, false), false),
    case(
        "runner::before_sqlite_script=1*return(disk_full);runner::after_rollback=1*return(connection_lost)",
        true,
        false,
    ),
    case(
        "runner::before_postgres_script=1*return(disk_full);runner::after_rollback=1*return(connection_lost)",
        false,
        true,
    ),
    // A failed step whose failure cannot be recorded either (the database gone): the error
    // line is the step's, not the audit log's.
    case(
        "runner::before_sqlite_script=1*return(disk_full);runner::before_failure_recorded=1*return(connection_lost)",
        true,
        false,
    ),
    case(
        "runner::before_postgres_script=1*return(disk_full);runner::before_failure_recorded=1*return(connection_lost)",
        false,
        true,
    ),
];

/// Runs `args` with `case` armed: where the point is on the path, the run stops with one
/// `error:` line naming it; then the same command without faults completes.
fn fail_once_then_complete(url: &str, args: &[&str], case: &PointCase, on_path: bool) {
    let (status, stderr) = run_with_faults(url, args, case.failpoints);
    if on_path {
        assert_eq!(status.code(), Some(1), "{}: {stderr}", case.failpoints);
        let error = error_line(&stderr);
        let named = case.failpoints.split('=').next().unwrap();
        assert!(
            error.contains(&format!("injected at {named}")),
            "{}: {error}",
            case.failpoints
        );
    } else {
        assert!(
            status.success(),
            "{} is not on this path, yet the run failed: {stderr}",
            case.failpoints
        );
    }
    run_ok(url, args);
}

/// Every runner fault point, one at a time, on a fresh copy: `upgrade head` stopped by it
/// and rerun ends like an uninterrupted upgrade (schema, schema text, fingerprints, links),
/// and `downgrade legacy` stopped by it and rerun gives back the seeded legacy database
/// exactly. A point's error path that left the book or the data half way (a revision
/// recorded applied that is not, a step recorded done that did not commit, a lock never
/// given back) ends elsewhere or fails the rerun.
async fn every_runner_fault_point_stops_the_run_in_one_line_and_a_rerun_ends_the_same(
    reference_db: TestDb,
) {
    let engine = reference_db.engine;
    let config = small_seed();
    seeded(&reference_db, &config).await;
    let reference = reference_db.connect().await;
    let legacy = snapshot(&reference, FingerprintScope::AllRows).await;
    run_ok(&reference_db.url, UPGRADE_HEAD);
    let head = snapshot(&reference, FingerprintScope::WithoutMigrationFlows).await;
    reference.close().await;

    let mut armed = 0;
    for case in RUNNER_POINTS {
        let on_engine = match engine {
            Engine::Sqlite => case.sqlite,
            Engine::Postgres => case.postgres,
        };
        if !on_engine {
            continue;
        }
        armed += 1;
        let test_db = TestDb::fresh(engine).await;
        seeded(&test_db, &config).await;
        fail_once_then_complete(&test_db.url, UPGRADE_HEAD, case, case.upgrade);
        let db = test_db.connect().await;
        assert_same(
            &snapshot(&db, FingerprintScope::WithoutMigrationFlows).await,
            &head,
            &format!("{engine:?}, upgrade head stopped by {}", case.failpoints),
        );
        fail_once_then_complete(&test_db.url, DOWNGRADE_LEGACY, case, case.downgrade);
        assert_same(
            &snapshot(&db, FingerprintScope::AllRows).await,
            &legacy,
            &format!(
                "{engine:?}, downgrade legacy stopped by {}",
                case.failpoints
            ),
        );
        db.close().await;
    }
    assert!(armed >= 14, "{engine:?}: only {armed} points armed");
}
both_engines!(
    every_runner_fault_point_stops_the_run_in_one_line_and_a_rerun_ends_the_same,
    every_runner_fault_point_stops_the_run_in_one_line_and_a_rerun_ends_the_same
);

/// SQLite, two runners and a dead one's lock: a runner killed while migrating left its lock
/// row behind; runner A reads it and is held (a fault point that sleeps) before taking it over;
/// runner B takes it over meanwhile and holds it past A's wake-up. A's takeover then finds
/// the row no longer the dead runner's, so it waits for B like for any runner and takes the
/// free lock after it: one takeover in the audit log, both runs succeed, the database ends at
/// the target.
#[tokio::test]
async fn two_runners_racing_to_take_over_a_dead_runners_lock_take_it_once() {
    let test_db = TestDb::fresh(Engine::Sqlite).await;
    seeded(&test_db, &small_seed()).await;
    let db = test_db.connect().await;
    let legacy = snapshot(&db, FingerprintScope::AllRows).await;
    run_ok(&test_db.url, UPGRADE_HEAD);
    leave_a_dead_runners_lock(&db).await;

    let first = flowkey(&test_db.url, DOWNGRADE_LEGACY)
        .env("FAILPOINTS", "lock::before_takeover=1*sleep(4000)")
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // B holds the lock it took over past A's wake-up, so that A, had it taken the lock
    // anyway, would run beside B.
    let (status, stderr) = run_with_faults(
        &test_db.url,
        DOWNGRADE_LEGACY,
        "runner::before_step=1*sleep(6000)",
    );
    assert!(
        status.success(),
        "the runner that took over failed: {stderr}"
    );
    let first = first.wait_with_output().unwrap();
    let first_stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        first.status.success(),
        "the runner that lost the race failed: {first_stderr}"
    );
    assert!(
        first_stderr.contains("waiting for the deploy lock held by"),
        "the runner that lost the race did not wait for the one that won: {first_stderr}"
    );
    let taken_over = audit_events(&db, "lock_taken_over").await;
    assert_eq!(taken_over.len(), 1, "{taken_over:?}");
    assert_same(
        &snapshot(&db, FingerprintScope::AllRows).await,
        &legacy,
        "after two runners raced for a dead runner's lock",
    );
    assert_eq!(
        sqlite_lock_holder(&db).await,
        None,
        "the lock was not given back"
    );
}

/// PostgreSQL: the holder lets go of the deploy lock between a runner's failed try and its
/// lookup of who holds it (held there by a fault point that sleeps). With no wait allowed,
/// the runner stops with one line that says another session held it, not a lookup error,
/// and changes nothing; the next run takes the free lock. A runner of another database on
/// the same server holds the same key meanwhile (advisory locks are per database): it is
/// never named (the lookup once named it, which made this test fail whenever another test
/// was migrating its own database at that moment).
#[tokio::test]
async fn a_postgres_holder_that_lets_go_before_it_is_looked_up_is_named_another_session() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    seeded(&test_db, &small_seed()).await;
    let db = test_db.connect().await;
    let legacy = snapshot(&db, FingerprintScope::AllRows).await;
    let mut holder = sqlx::PgConnection::connect(&test_db.url).await.unwrap();
    let key = flowkey::migrate::lock::deploy_lock_key("public");
    let other_db = TestDb::fresh(Engine::Postgres).await;
    let mut other_database_runner = sqlx::PgConnection::connect(&other_db.url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(key)
        .execute(&mut other_database_runner)
        .await
        .unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(key)
        .execute(&mut holder)
        .await
        .unwrap();
    let waiting = flowkey(
        &test_db.url,
        &["upgrade", "head", "--no-progress", "--lock-wait-secs", "0"],
    )
    .env("FAILPOINTS", "lock::before_holder_lookup=1*sleep(3000)")
    .spawn()
    .unwrap();
    // Let go once the runner's try has run (its connection's last statement), so that the
    // release falls inside the pause however long the runner took to start.
    let spawned = Instant::now();
    loop {
        let tried: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND query LIKE 'SELECT pg_try_advisory_lock(%')",
        )
        .fetch_one(&mut holder)
        .await
        .unwrap();
        if tried {
            break;
        }
        assert!(
            spawned.elapsed() < Duration::from_secs(60),
            "the runner never tried"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(key)
        .execute(&mut holder)
        .await
        .unwrap();
    let waiting = waiting.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&waiting.stderr);
    assert_eq!(waiting.status.code(), Some(1), "{stderr}");
    let error = error_line(&stderr);
    assert!(
        error.contains("the deploy lock is held by another session since a moment ago"),
        "{error}"
    );
    assert_same(
        &snapshot(&db, FingerprintScope::AllRows).await,
        &legacy,
        "a runner that found the lock held",
    );
    holder.close().await.unwrap();
    other_database_runner.close().await.unwrap();
    run_ok(&test_db.url, UPGRADE_HEAD);
    assert!(
        history_of(&db, flowkey::migrate::revisions::head().id)
            .await
            .is_current
    );
}

/// SQLite: a row read failing in the middle of the write ledger's comparison (`verify
/// --online`, read through a connection of flowkey's own) stops it with one `error:` line
/// naming the table being read, and changes nothing: run again, it passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_comparison_whose_read_fails_names_the_table_and_passes_when_run_again() {
    let test_db = TestDb::fresh(Engine::Sqlite).await;
    seeded(&test_db, &small_seed()).await;
    run_ok(&test_db.url, UPGRADE_HEAD);
    let db = test_db.connect().await;
    let before = snapshot(&db, FingerprintScope::AllRows).await;
    let (status, stderr) = run_with_faults(
        &test_db.url,
        &["verify", "--online"],
        "write_ledger::sqlite_compare_row=1*return",
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    let error = error_line(&stderr);
    assert!(
        error.contains("cannot fingerprint client_accounts: disk I/O error (injected at write_ledger::sqlite_compare_row)"),
        "{error}"
    );
    assert_same(
        &snapshot(&db, FingerprintScope::AllRows).await,
        &before,
        "a failed comparison",
    );
    run_ok(&test_db.url, &["verify", "--online"]);
    db.close().await;
}

/// A lock row left by a runner whose process is gone, on this host.
async fn leave_a_dead_runners_lock(db: &flowkey::db::Db) {
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    db.execute_plain(&format!(
        "INSERT INTO flowkey_deploy_lock (id, run_id, holder, pid, host, acquired_at) \
         VALUES (1, 'dead-run', 'flowkey upgrade (killed)', {dead_pid}, '{host}', \
         '2026-12-01T00:00:00Z')"
    ))
    .await
    .unwrap();
}

/// The run id in SQLite's lock row, if a row is there.
async fn sqlite_lock_holder(db: &flowkey::db::Db) -> Option<String> {
    let flowkey::db::Db::Sqlite(pool) = db else {
        unreachable!("a SQLite test")
    };
    sqlx::query_scalar("SELECT run_id FROM flowkey_deploy_lock")
        .fetch_optional(pool)
        .await
        .unwrap()
}

/// SQLite keeps its deploy lock in a row. Taking it meets the database busy (another
/// connection's write) or failing (anything else), on the insert of a free lock and on the
/// takeover of a dead runner's: busy is waited out like a holder, and the run completes;
/// any other error stops the run with one line naming it, before any step, leaving the
/// lock as it was (free, or the dead runner's), and the next run takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_deploy_lock_waits_out_a_busy_database_and_stops_on_any_other_error() {
    let test_db = TestDb::fresh(Engine::Sqlite).await;
    seeded(&test_db, &small_seed()).await;
    run_ok(&test_db.url, &["upgrade", "legacy"]);
    let db = test_db.connect().await;
    let legacy = snapshot(&db, FingerprintScope::AllRows).await;
    let head = flowkey::migrate::revisions::head().id;

    let (status, stderr) = run_with_faults(
        &test_db.url,
        UPGRADE_HEAD,
        "lock::before_sqlite_insert=1*return(connection_lost)",
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    let error = error_line(&stderr);
    assert!(
        error.contains("injected at lock::before_sqlite_insert"),
        "{error}"
    );
    assert!(history_of(&db, "legacy").await.is_current, "no step ran");
    assert_eq!(sqlite_lock_holder(&db).await, None, "the lock stays free");
    assert_same(
        &snapshot(&db, FingerprintScope::AllRows).await,
        &legacy,
        "a lock insert that failed",
    );

    let (status, stderr) = run_with_faults(
        &test_db.url,
        UPGRADE_HEAD,
        "lock::before_sqlite_insert=2*return(busy)",
    );
    assert!(status.success(), "busy twice, then free: {stderr}");
    assert!(history_of(&db, head).await.is_current);
    assert_eq!(
        sqlite_lock_holder(&db).await,
        None,
        "the lock was given back"
    );

    leave_a_dead_runners_lock(&db).await;
    let (status, stderr) = run_with_faults(
        &test_db.url,
        DOWNGRADE_LEGACY,
        "lock::before_takeover=1*return(connection_lost)",
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    let error = error_line(&stderr);
    assert!(
        error.contains("injected at lock::before_takeover"),
        "{error}"
    );
    assert!(history_of(&db, head).await.is_current, "no step ran");
    assert_eq!(
        sqlite_lock_holder(&db).await.as_deref(),
        Some("dead-run"),
        "the dead runner's lock is left for the next run"
    );

    let (status, stderr) = run_with_faults(
        &test_db.url,
        DOWNGRADE_LEGACY,
        "lock::before_takeover=1*return(busy)",
    );
    assert!(status.success(), "busy once, then taken over: {stderr}");
    assert_eq!(audit_events(&db, "lock_taken_over").await.len(), 1);
    assert_eq!(
        sqlite_lock_holder(&db).await,
        None,
        "the lock was given back"
    );
    assert_same(
        &snapshot(&db, FingerprintScope::AllRows).await,
        &legacy,
        "after the lock's faults, upgraded and downgraded",
    );
    db.close().await;
}

/// SQLite: a step that turned foreign keys off (a table rebuild, on `upgrade head` the
/// deletion audit's) cannot switch them back on. The step's result stands and the run
/// completes; that connection is closed with a warning, never handed back to the pool
/// without foreign keys; the database ends like an uninterrupted run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_connection_whose_foreign_keys_cannot_be_switched_back_on_is_not_reused() {
    let config = small_seed();
    let reference_db = TestDb::fresh(Engine::Sqlite).await;
    seeded(&reference_db, &config).await;
    run_ok(&reference_db.url, UPGRADE_HEAD);
    let reference = reference_db.connect().await;
    let head = snapshot(&reference, FingerprintScope::WithoutMigrationFlows).await;
    reference.close().await;

    let test_db = TestDb::fresh(Engine::Sqlite).await;
    seeded(&test_db, &config).await;
    let (status, stderr) = run_with_faults(
        &test_db.url,
        UPGRADE_HEAD,
        "runner::before_foreign_keys_on=return(connection_lost)",
    );
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("foreign keys could not be switched back on after step")
            && stderr.contains("that connection is closed, not reused"),
        "{stderr}"
    );
    let db = test_db.connect().await;
    assert_same(
        &snapshot(&db, FingerprintScope::WithoutMigrationFlows).await,
        &head,
        "upgrade head whose foreign keys could not be switched back on",
    );
    db.close().await;
}

/// `flowkey bench fingerprint` on a table the application writes to between the bench's
/// count and its fingerprint (held there by a fault point that sleeps; the row is written
/// once the bench has said it counted): the bench stops with one line naming the table and
/// both figures, rather than report a time for a row count that is not the table's.
async fn a_fingerprint_bench_whose_table_changes_while_measured_says_so(test_db: TestDb) {
    use std::io::{BufRead, BufReader, Read};

    seeded(&test_db, &small_seed()).await;
    let db = test_db.connect().await;
    let accounts: i64 = flowkey::on_pool!(&db, pool => {
        sqlx::query_scalar("SELECT count(*) FROM client_accounts")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    let mut bench = flowkey(&test_db.url, &["bench", "fingerprint", "--repeats", "1"])
        .env("RUST_LOG", "flowkey=debug")
        .env(
            "FAILPOINTS",
            "bench::between_count_and_fingerprint=1*sleep(5000)",
        )
        .spawn()
        .unwrap();
    let stderr = bench.stderr.take().unwrap();
    let (mut reader, mut seen) = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stderr);
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            seen.push_str(&line);
            if line.contains("client_accounts: ") && line.contains("rows counted") {
                break;
            }
        }
        (reader, seen)
    })
    .await
    .unwrap();
    assert!(
        seen.contains("rows counted"),
        "the bench never counted: {seen}"
    );
    db.execute_plain(
        "INSERT INTO client_accounts (id, name) \
         VALUES ('7f1c2a38-0b6e-4c51-9d0e-2f6a1b3c4d5e', 'written while measured')",
    )
    .await
    .unwrap();
    reader.read_to_string(&mut seen).unwrap();
    let status = bench.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{seen}");
    let error = error_line(&seen);
    assert!(
        error.contains(&format!(
            "client_accounts changed while its fingerprint was measured ({accounts} rows counted, {} fingerprinted)",
            accounts + 1
        )),
        "{error}"
    );
    db.close().await;
}
both_engines!(
    a_fingerprint_bench_whose_table_changes_while_measured_says_so,
    a_fingerprint_bench_whose_table_changes_while_measured_says_so
);

/// PostgreSQL: a rehearsal whose copy cannot be dropped afterwards (the connection lost at
/// that moment) still reports its outcome, and says which database it left on the server and
/// how to remove it; the copy is indeed there until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rehearsal_whose_copy_cannot_be_dropped_names_the_copy_left_behind() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    seeded(&test_db, &small_seed()).await;
    let (status, stderr) = run_with_faults(
        &test_db.url,
        &["rehearse", "--no-progress"],
        "rehearse::before_copy_drop=return(connection_lost)",
    );
    assert!(status.success(), "{stderr}");
    let warning = stderr
        .lines()
        .find(|line| line.contains("the rehearsal's copy flowkey_rehearsal_"))
        .unwrap_or_else(|| panic!("no warning naming the copy: {stderr}"));
    assert!(
        warning.contains("injected at rehearse::before_copy_drop")
            && warning.contains("remove it with: DROP DATABASE IF EXISTS"),
        "{warning}"
    );
    let name: String = warning
        .split("the rehearsal's copy ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .to_owned();
    let mut admin = sqlx::PgConnection::connect(&crate::support::harness::pg_admin_url())
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 1, "the copy {name} the warning names is not there");
    sqlx::query(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
}

/// Two things a run does on the side, each best effort by design, failing: the notification
/// that tells PostgreSQL servers the book changed (they see it at their next poll), and the
/// delta's basis `verify` stores for readiness (readiness then checks in full). Neither
/// fails the command; each says what was not done, and the next `verify` stores the basis.
async fn best_effort_side_writes_that_fail_are_logged_and_the_command_completes(test_db: TestDb) {
    seeded(&test_db, &small_seed()).await;
    let (status, stderr) = run_with_faults(
        &test_db.url,
        UPGRADE_HEAD,
        "runner::before_schema_notify=return(connection_lost)",
    );
    assert!(status.success(), "{stderr}");
    let warned = stderr.contains("cannot notify servers of the schema change");
    match test_db.engine {
        Engine::Postgres => assert!(warned, "{stderr}"),
        // SQLite servers poll: nothing to notify.
        Engine::Sqlite => assert!(!warned, "{stderr}"),
    }
    let db = test_db.connect().await;
    assert!(
        history_of(&db, flowkey::migrate::revisions::head().id)
            .await
            .is_current
    );

    let basis_rows = |db: flowkey::db::Db| async move {
        if !table_exists(&db, "flowkey_delta_basis").await {
            return 0;
        }
        let count: i64 = flowkey::on_pool!(&db, pool => {
            sqlx::query_scalar("SELECT count(*) FROM flowkey_delta_basis")
                .fetch_one(pool)
                .await
                .unwrap()
        });
        count
    };
    let (status, stderr) = run_with_faults(
        &test_db.url,
        &["verify"],
        "readiness::before_store_basis=1*return(connection_lost)",
    );
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot store the delta's basis; readiness will check in full"),
        "{stderr}"
    );
    assert_eq!(basis_rows(db.clone()).await, 0, "no basis was stored");
    run_ok(&test_db.url, &["verify"]);
    assert_eq!(basis_rows(db.clone()).await, 1, "the next verify stores it");
    db.close().await;
}
both_engines!(
    best_effort_side_writes_that_fail_are_logged_and_the_command_completes,
    best_effort_side_writes_that_fail_are_logged_and_the_command_completes
);

/// SQLite: runner A finds the lock row there at its insert, and its holder B lets go before
/// A reads who holds it (A held between the two by a fault point that sleeps, B finishing
/// meanwhile). A reads no holder, tries again at once and takes the free lock: it never
/// waits for a holder that is gone, and both runs succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_holder_that_lets_go_before_it_is_read_is_not_waited_for() {
    let test_db = TestDb::fresh(Engine::Sqlite).await;
    seeded(&test_db, &small_seed()).await;
    run_ok(&test_db.url, &["upgrade", "legacy"]);
    let holder = flowkey(&test_db.url, &["upgrade", "flow_mapping", "--no-progress"])
        .env("FAILPOINTS", "runner::before_step=1*sleep(3000)")
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let started = Instant::now();
    let (status, stderr) = run_with_faults(
        &test_db.url,
        &[
            "upgrade",
            "flow_mapping",
            "--no-progress",
            "--lock-wait-secs",
            "60",
        ],
        "lock::before_sqlite_holder_read=1*sleep(8000)",
    );
    let paused = started.elapsed();
    assert!(status.success(), "{stderr}");
    let holder = holder.wait_with_output().unwrap();
    assert!(
        holder.status.success(),
        "{}",
        String::from_utf8_lossy(&holder.stderr)
    );
    assert!(
        paused >= Duration::from_millis(8000),
        "the second runner took the lock at once ({paused:?}): it never found it held"
    );
    assert!(
        !stderr.contains("waiting for the deploy lock held by"),
        "the holder had let go, yet the runner waited for it: {stderr}"
    );
    let db = test_db.connect().await;
    assert!(history_of(&db, "flow_mapping").await.is_current);
    assert_eq!(
        sqlite_lock_holder(&db).await,
        None,
        "the lock was given back"
    );
    db.close().await;
}
