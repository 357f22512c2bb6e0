//! Faults injected into the runner at chosen points (`FAILPOINTS`, see
//! `flowkey::migrate::faults`), through the real binary: a lost connection between steps, a
//! commit that fails or whose answer is lost, a deploy lock that cannot be given back or is
//! lost, lock timeouts in a step's transaction. Each ends in one `error:` line (or in success
//! where the runner absorbs the fault), leaves the state the runner's book says, and a rerun
//! ends like an uninterrupted run.

use flowkey::db::introspect::introspect;
use flowkey::db::Engine;
use flowkey::migrate::flow::{self, FingerprintScope};
use flowkey::migrate::{revisions, Direction, Migrator, RunOptions};

use crate::both_engines;
use crate::support::flow_support::{audit_events, error_line, history_of};
use crate::support::harness::TestDb;
use crate::support::reliability_support::{
    assert_same, audit_log, flowkey, run_ok, run_with_faults, seeded, small_seed, snapshot,
    where_the_runner_stopped, DOWNGRADE_LEGACY, UPGRADE_HEAD,
};

/// How many steps run in `direction` over the revisions named, in the order they run.
fn steps_of(ids: &[&str], direction: Direction) -> usize {
    ids.iter()
        .map(|id| {
            let revision = revisions::all()
                .iter()
                .find(|revision| revision.id == *id)
                .unwrap_or_else(|| panic!("no revision {id}"));
            match direction {
                Direction::Up => revision.up.len(),
                Direction::Down => revision.down.len(),
            }
        })
        .sum()
}

/// A lost connection right after a step was done and recorded: the run stops with the one
/// line that says to rerun, the revision stays dirty with exactly the steps done, and the
/// rerun resumes there and ends like an uninterrupted run, upgrading and downgrading.
async fn a_connection_lost_between_steps_leaves_the_revision_dirty_and_a_rerun_finishes_it(
    test_db: TestDb,
) {
    let clean_db = TestDb::fresh(test_db.engine).await;
    let config = small_seed();
    seeded(&test_db, &config).await;
    seeded(&clean_db, &config).await;
    let db = test_db.connect().await;
    let clean = clean_db.connect().await;
    let legacy = snapshot(&db, FingerprintScope::AllRows).await;
    run_ok(&clean_db.url, UPGRADE_HEAD);
    let head = snapshot(&clean, FingerprintScope::WithoutMigrationFlows).await;

    // Up: the connection goes right after the second backfill step.
    let before_backfill = steps_of(&["flow_mapping", "flow_expand"], Direction::Up);
    let (status, stderr) = run_with_faults(
        &test_db.url,
        UPGRADE_HEAD,
        &format!(
            "runner::after_step={}*off->return(connection_lost)",
            before_backfill + 1
        ),
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    let error = error_line(&stderr);
    for words in [
        "error: lost the connection to the database",
        "injected at runner::after_step",
        "rerun the same command to resume",
    ] {
        assert!(error.contains(words), "{error}");
    }
    let backfill = history_of(&db, "flow_backfill").await;
    let dirty = backfill.dirty.expect("flow_backfill is dirty");
    assert_eq!(
        (dirty.direction.as_str(), dirty.steps_done, dirty.steps),
        ("up", 2, 6)
    );
    assert!(history_of(&db, "flow_expand").await.is_current);

    run_ok(&test_db.url, UPGRADE_HEAD);
    let resumed = audit_events(&db, "resumed").await;
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert_eq!(resumed[0]["steps_done"], 2);
    assert_eq!(resumed[0]["next_step"], "backfill import_field_mappings");
    assert_same(
        &snapshot(&db, FingerprintScope::WithoutMigrationFlows).await,
        &head,
        "upgrade after a lost connection",
    );
    assert!(flow::verify(&db).await.unwrap().is_ok());

    // Down: the connection goes between flow_expand's two steps down.
    let before_expand = steps_of(
        &[
            "write_ledger",
            "legacy_write_signal",
            "live_mapping",
            "service_state",
            "flow_constraints",
            "flow_backfill",
        ],
        Direction::Down,
    );
    let (status, stderr) = run_with_faults(
        &test_db.url,
        DOWNGRADE_LEGACY,
        &format!(
            "runner::after_step={}*off->return(connection_lost)",
            before_expand
        ),
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        error_line(&stderr).contains("injected at runner::after_step"),
        "{stderr}"
    );
    let dirty = history_of(&db, "flow_expand")
        .await
        .dirty
        .expect("flow_expand is dirty");
    assert_eq!((dirty.direction.as_str(), dirty.steps_done), ("down", 1));
    run_ok(&test_db.url, DOWNGRADE_LEGACY);
    assert_same(
        &snapshot(&db, FingerprintScope::AllRows).await,
        &legacy,
        "downgrade after a lost connection",
    );
}
both_engines!(
    a_connection_lost_between_steps_leaves_the_revision_dirty_and_a_rerun_finishes_it,
    a_connection_lost_between_steps_leaves_the_revision_dirty_and_a_rerun_finishes_it
);

/// A `downgrade -1` killed after it recorded its revision reverted (held there by a fault
/// point that sleeps, so the kill lands in that window every time) leaves the database
/// exactly at the revision `-1` resolved to, and its log (`-v`) names that revision before
/// anything ran. Naming it resumes with nothing to do, and the database is what an uninterrupted
/// `downgrade -1` gives; running `-1` again would revert one revision more, which is why the
/// runner logs the revision and the crash tests resume by naming it.
async fn a_downgrade_killed_after_recording_its_target_is_resumed_by_naming_it(test_db: TestDb) {
    let engine = test_db.engine;
    let clean_db = TestDb::fresh(engine).await;
    for copy in [&test_db, &clean_db] {
        seeded(copy, &small_seed()).await;
        run_ok(&copy.url, UPGRADE_HEAD);
    }
    run_ok(&clean_db.url, &["downgrade", "-1", "--no-progress"]);
    let clean = clean_db.connect().await;
    let reference = snapshot(&clean, FingerprintScope::WithoutMigrationFlows).await;
    let below_head = revisions::all()
        .iter()
        .rev()
        .skip_while(|revision| revisions::is_after_head(revision.id))
        .nth(1)
        .expect("a revision before head")
        .id;

    let mut child = flowkey(&test_db.url, &["downgrade", "-1", "--no-progress", "-v"])
        .env("FAILPOINTS", "runner::after_delete_version=sleep(60000)")
        .spawn()
        .unwrap();
    let settled = format!("between revisions at {below_head}");
    let waited = std::time::Instant::now();
    while where_the_runner_stopped(&test_db.url).await != settled {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the downgrade ended before it reached {below_head}"
        );
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(60),
            "the downgrade did not reach {below_head} in 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    let killed = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&killed.stderr);
    assert!(
        log.contains(&format!(
            "downgrade -1 resolves to {below_head}; to resume an interrupted run, name it"
        )),
        "the killed run did not log its target: {log}"
    );

    let (status, stdout) = {
        let output = flowkey(&test_db.url, &["downgrade", below_head, "--no-progress"])
            .stdout(std::process::Stdio::piped())
            .output()
            .unwrap();
        (
            output.status,
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    assert!(status.success(), "resuming by name failed");
    assert!(
        stdout.contains(&format!("nothing to do: the database is at {below_head}")),
        "resuming by name did something: {stdout}"
    );
    let db = test_db.connect().await;
    assert_same(
        &snapshot(&db, FingerprintScope::WithoutMigrationFlows).await,
        &reference,
        "a downgrade killed after recording its target, resumed by naming it",
    );

    // The same window, failing instead of killed: the error names the revision to resume
    // with, not "rerun the same command".
    run_ok(&test_db.url, UPGRADE_HEAD);
    let (status, stderr) = run_with_faults(
        &test_db.url,
        &["downgrade", "-1", "--no-progress"],
        "runner::after_delete_version=return(connection_lost)",
    );
    assert!(!status.success(), "the injected fault did not stop the run");
    let error = error_line(&stderr);
    assert!(
        error.contains(&format!(
            "`downgrade -1` resolved to {below_head} when it started: to resume, run \
             `flowkey downgrade {below_head}`"
        )),
        "the error does not name the revision to resume with: {error}"
    );
    assert!(history_of(&db, below_head).await.is_current);
    db.close().await;
    clean.close().await;
}
both_engines!(
    a_downgrade_killed_after_recording_its_target_is_resumed_by_naming_it,
    a_downgrade_killed_after_recording_its_target_is_resumed_by_naming_it
);

/// A step's commit that fails: its transaction is rolled back (no table of it exists), the
/// revision is dirty with no step done, and the rerun runs the step again.
async fn a_failed_commit_rolls_the_step_back_and_a_rerun_runs_it_again(test_db: TestDb) {
    let (status, stderr) = run_with_faults(
        &test_db.url,
        &["upgrade", "legacy"],
        "runner::before_commit=return(connection_lost)",
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    let error = error_line(&stderr);
    assert!(
        error.contains("step \"create legacy schema\" of revision \"legacy\" failed")
            && error.contains("injected at runner::before_commit"),
        "{error}"
    );
    let db = test_db.connect().await;
    assert!(introspect(&db).await.unwrap().is_empty(), "rolled back");
    let dirty = history_of(&db, "legacy").await.dirty.expect("dirty");
    assert_eq!((dirty.direction.as_str(), dirty.steps_done), ("up", 0));

    run_ok(&test_db.url, &["upgrade", "legacy"]);
    assert_eq!(
        introspect(&db).await.unwrap(),
        legacy_schema(test_db.engine).await
    );
    assert!(history_of(&db, "legacy").await.is_current);
}
both_engines!(
    a_failed_commit_rolls_the_step_back_and_a_rerun_runs_it_again,
    a_failed_commit_rolls_the_step_back_and_a_rerun_runs_it_again
);

/// A commit whose answer is lost: the step is done (its record committed with it), so the
/// rerun does not run it again; it only records the revision applied.
async fn a_commit_whose_answer_is_lost_keeps_the_step_done(test_db: TestDb) {
    let (status, stderr) = run_with_faults(
        &test_db.url,
        &["upgrade", "legacy"],
        "runner::after_commit=return(connection_lost)",
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        error_line(&stderr).contains("injected at runner::after_commit"),
        "{stderr}"
    );
    let db = test_db.connect().await;
    let dirty = history_of(&db, "legacy").await.dirty.expect("dirty");
    assert_eq!((dirty.steps_done, dirty.steps), (1, 1));
    assert_eq!(
        introspect(&db).await.unwrap(),
        legacy_schema(test_db.engine).await
    );

    // Rerunning the step would fail: its CREATE TABLEs have no IF NOT EXISTS.
    run_ok(&test_db.url, &["upgrade", "legacy"]);
    assert!(history_of(&db, "legacy").await.is_current);
    let steps_run = audit_log(&db)
        .await
        .iter()
        .filter(|entry| entry.event == "step" && entry.outcome == "ok")
        .count();
    assert_eq!(steps_run, 0, "the step ran again");
}
both_engines!(
    a_commit_whose_answer_is_lost_keeps_the_step_done,
    a_commit_whose_answer_is_lost_keeps_the_step_done
);

/// A deploy lock that cannot be given back: on PostgreSQL it went with its connection and the
/// run's result stands; on SQLite the run says so, and the next run takes the lock over from
/// the dead process. Either way the next run does not wait.
async fn a_deploy_lock_that_cannot_be_given_back_does_not_block_the_next_run(test_db: TestDb) {
    let (status, stderr) = run_with_faults(
        &test_db.url,
        &["upgrade", "legacy", "--lock-wait-secs", "0"],
        "runner::before_lock_release=return(connection_lost)",
    );
    match test_db.engine {
        Engine::Postgres => assert!(status.success(), "{stderr}"),
        Engine::Sqlite => {
            assert_eq!(status.code(), Some(1), "{stderr}");
            assert!(
                error_line(&stderr).contains("injected at runner::before_lock_release"),
                "{stderr}"
            );
        }
    }
    let db = test_db.connect().await;
    assert!(history_of(&db, "legacy").await.is_current);

    run_ok(
        &test_db.url,
        &["upgrade", "flow_mapping", "--lock-wait-secs", "0"],
    );
    assert!(history_of(&db, "flow_mapping").await.is_current);
    let taken_over = audit_events(&db, "lock_taken_over").await;
    match test_db.engine {
        Engine::Postgres => assert!(taken_over.is_empty(), "{taken_over:?}"),
        Engine::Sqlite => assert_eq!(taken_over.len(), 1, "{taken_over:?}"),
    }
}
both_engines!(
    a_deploy_lock_that_cannot_be_given_back_does_not_block_the_next_run,
    a_deploy_lock_that_cannot_be_given_back_does_not_block_the_next_run
);

/// PostgreSQL only: the deploy lock lives with its session. A session that stops answering
/// when the lock is checked before a step stops the run with "lock lost" before that step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_lock_lost_before_a_step_stops_the_run_before_it() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    // Checked before legacy's one step and before legacy is recorded; the third check is
    // before flow_mapping's first step.
    let (status, stderr) = run_with_faults(
        &test_db.url,
        &["upgrade", "flow_mapping"],
        "runner::lock_check=2*off->return(connection_lost)",
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    let error = error_line(&stderr);
    assert!(
        error.contains("the deploy lock was lost") && error.contains("rerun the same command"),
        "{error}"
    );
    let db = test_db.connect().await;
    assert!(history_of(&db, "legacy").await.is_current);
    let dirty = history_of(&db, "flow_mapping").await.dirty.expect("dirty");
    assert_eq!(dirty.steps_done, 0);
    run_ok(&test_db.url, &["upgrade", "flow_mapping"]);
    assert!(history_of(&db, "flow_mapping").await.is_current);
}

/// PostgreSQL only (SQLite waits on its busy timeout instead): a step transaction that times
/// out on a lock is retried whole, and the attempts are in the audit log; when the retries
/// run out, the step fails with the lock timeout and nothing of it stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_timeouts_in_a_step_transaction_are_retried_until_the_retries_run_out() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    let (status, stderr) = run_with_faults(
        &test_db.url,
        &["upgrade", "legacy", "--ddl-retries", "1"],
        "runner::before_postgres_script=2*return(lock_timeout)",
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        error_line(&stderr).contains("canceling statement due to lock timeout"),
        "{stderr}"
    );
    let db = test_db.connect().await;
    assert!(introspect(&db).await.unwrap().is_empty());

    run_ok(&test_db.url, &["upgrade", "legacy"]);
    let (status, stderr) = run_with_faults(
        &test_db.url,
        &["upgrade", "flow_mapping"],
        "runner::before_postgres_script=2*return(lock_timeout)",
    );
    assert!(status.success(), "{stderr}");
    let step = audit_log(&db)
        .await
        .into_iter()
        .find(|entry| {
            entry.event == "step" && entry.step.as_deref() == Some("create flowkey tables")
        })
        .expect("the step's audit row");
    let details = step.details.expect("details");
    assert_eq!(details["attempts"], 3, "{details}");
    assert!(history_of(&db, "flow_mapping").await.is_current);
}

/// The schema the legacy revision creates, on a database of its own.
async fn legacy_schema(engine: Engine) -> flowkey::db::introspect::Schema {
    let reference = TestDb::fresh(engine).await;
    let db = reference.connect().await;
    Migrator::new(db.clone(), RunOptions::default())
        .upgrade("legacy")
        .await
        .unwrap();
    let schema = introspect(&db).await.unwrap();
    db.close().await;
    schema
}
