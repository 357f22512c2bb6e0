//! Database gone for real: the PostgreSQL server itself is stopped and started again (`pg_ctl
//! stop -m fast`, and `-m immediate` for a crash-like restart with crash recovery) in the
//! middle of `flowkey upgrade head` and under a running `flowkey serve`. The shared server is
//! never touched: each test builds a private cluster (`private_postgres`).
//!
//! - The upgrade either resumes by itself or stops with one clear `error:` line; a run started
//!   while the server is down stops the same way; the rerun completes and the result equals an
//!   uninterrupted run on an identical copy (schema, fingerprints, every `flow_id`).
//! - The server answers 503 (`/health` 200) while the database is down and 2xx again once it
//!   is back, by itself, without a restart; no answer is ever a 500.
//!
//! CI restarts twice per test; `FLOWKEY_PG_RESTARTS=N` (reliability/pg-restart.sh) runs the
//! long version.

use std::time::{Duration, Instant};

use flowkey::db::Db;
use flowkey::migrate::flow::{self, FingerprintScope};
use rand::Rng;
use sqlx::Connection;

use crate::reliability::service::{two_tenants, Server};
use crate::support::private_postgres::{PrivateCluster, StopMode};
use crate::support::reliability_support::{
    assert_same, flowkey, run_ok, run_to_end, scenario_rng, snapshot, where_the_runner_stopped,
    DOWNGRADE_LEGACY, UPGRADE_HEAD,
};
use crate::support::service_probe::{tally, Answer, Probe, ReadyProbe, Route};

/// Restarts per test in CI; `FLOWKEY_PG_RESTARTS` overrides.
const CI_RESTARTS: usize = 2;
/// At most this many restarts per upgrade run to completion in the long version.
const RESTARTS_PER_RUN: usize = 4;

fn restarts_wanted() -> usize {
    std::env::var("FLOWKEY_PG_RESTARTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(CI_RESTARTS)
        .max(CI_RESTARTS)
}

/// `flowkey seed` through the binary: enough raw records for many 1 ms backfill batches.
fn seed(url: &str) {
    run_ok(
        url,
        &[
            "seed",
            "--seed",
            "2026",
            "--tenants",
            "3",
            "--imports",
            "10",
            "--rows-per-import",
            "60",
            "--no-progress",
        ],
    );
}

/// The stderr of a run that stopped: one `error: …` line, last; before it at most
/// flowkey's own warnings (such as "resuming revision flow_backfill (up) at step 2 of 6"),
/// never a driver's log line. Returns the error line.
fn one_line_error(stderr: &str, context: &str) -> String {
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    let errors = lines
        .iter()
        .filter(|line| line.starts_with("error: "))
        .count();
    let last = lines.last().copied().unwrap_or_default();
    let others_are_warnings = lines[..lines.len().saturating_sub(1)]
        .iter()
        .all(|line| line.contains(" WARN ") && !line.contains("sqlx"));
    assert!(
        errors == 1 && last.starts_with("error: ") && others_are_warnings,
        "{context}: a stopped run must end with one `error:` line:\n{stderr}"
    );
    last.to_owned()
}

/// Waits until `probe` (a count over the runner's bookkeeping) is positive; false when the
/// run ended first.
async fn wait_for_phase(url: &str, child: &mut std::process::Child, probe: &str) -> bool {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(Instant::now() < deadline, "never reached: {probe}");
        // Before the runner created its tables the probe fails: not there yet.
        let seen: i64 = sqlx::query_scalar(probe)
            .fetch_one(&mut conn)
            .await
            .unwrap_or(0);
        if seen > 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// When a restart comes: once the runner is in a phase, or after a delay.
enum When {
    Phase(&'static str, &'static str),
    After(Duration),
}

/// How one restart went, for figures.
#[derive(Debug)]
struct Restart {
    when: String,
    mode: StopMode,
    outcome: String,
}

/// Runs `upgrade head` and restarts the server as `when` says, holding it down for `down`;
/// with `probe_while_down`, a second upgrade is started while the server is down (it must
/// stop in one line). None when the run completed before the restart.
async fn upgrade_with_restart(
    cluster: &PrivateCluster,
    url: &str,
    when: When,
    mode: StopMode,
    down: Duration,
    probe_while_down: bool,
) -> Option<Restart> {
    let from = where_the_runner_stopped(url).await;
    let mut child = flowkey(url, UPGRADE_HEAD).spawn().unwrap();
    let label = match when {
        When::Phase(label, probe) => {
            if !wait_for_phase(url, &mut child, probe).await {
                let output = child.wait_with_output().unwrap();
                assert!(
                    output.status.success(),
                    "{}",
                    String::from_utf8_lossy(&output.stderr)
                );
                eprintln!("RELIABILITY pg-restart: the run got past the {label} first");
                return None;
            }
            label.to_owned()
        }
        When::After(delay) => {
            tokio::time::sleep(delay).await;
            if child.try_wait().unwrap().is_some() {
                let output = child.wait_with_output().unwrap();
                assert!(
                    output.status.success(),
                    "{}",
                    String::from_utf8_lossy(&output.stderr)
                );
                return None;
            }
            format!("after {} ms", delay.as_millis())
        }
    };
    cluster.stop(mode);
    let held = Instant::now();
    if probe_while_down {
        let (status, stderr) = run_to_end(url, UPGRADE_HEAD);
        assert!(
            !status.success(),
            "an upgrade succeeded with the server down"
        );
        let message = one_line_error(&stderr, "upgrade started while the server is down");
        eprintln!("RELIABILITY pg-restart: started while down: {message}");
    }
    tokio::time::sleep(down.saturating_sub(held.elapsed())).await;
    cluster.start_again();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the upgrade hangs after the server restarted ({label})");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let outcome = if output.status.success() {
        format!("resumed and completed (from {from})")
    } else {
        let message = one_line_error(&stderr, &format!("restart {label}"));
        format!(
            "stopped (from {from} to {}): {message}",
            where_the_runner_stopped(url).await
        )
    };
    Some(Restart {
        when: label,
        mode,
        outcome,
    })
}

const BACKFILL: (&str, &str) = (
    "backfill of raw_import_records",
    "SELECT count(*) FROM flowkey_versions WHERE revision = 'flow_backfill' AND dirty \
     AND steps_done >= 1",
);
const CONSTRAINTS: (&str, &str) = (
    "flow_constraints (index builds, validation)",
    "SELECT count(*) FROM flowkey_versions WHERE revision = 'flow_constraints' AND dirty",
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_during_the_upgrade_stops_it_in_one_line_and_a_rerun_ends_like_an_uninterrupted_one(
) {
    let cluster = PrivateCluster::start();
    let clean_url = cluster.create_database("clean").await;
    let url = cluster.create_database("restarted").await;
    seed(&clean_url);
    seed(&url);
    let upgrade_time = run_ok(&clean_url, UPGRADE_HEAD);
    let clean = Db::connect(&clean_url).await.unwrap();
    let expected = snapshot(&clean, FingerprintScope::WithoutMigrationFlows).await;
    clean.close().await;
    let legacy = {
        let db = Db::connect(&url).await.unwrap();
        let legacy = snapshot(&db, FingerprintScope::AllRows).await;
        db.close().await;
        legacy
    };

    // CI: a clean stop in the middle of the backfill, held down while another upgrade tries
    // to start; then a crash-like stop in flow_constraints.
    let mut restarts = Vec::new();
    restarts.extend(
        upgrade_with_restart(
            &cluster,
            &url,
            When::Phase(BACKFILL.0, BACKFILL.1),
            StopMode::Fast,
            Duration::from_millis(500),
            true,
        )
        .await,
    );
    assert!(
        !restarts.is_empty(),
        "the backfill ended before the server could be stopped"
    );
    restarts.extend(
        upgrade_with_restart(
            &cluster,
            &url,
            When::Phase(CONSTRAINTS.0, CONSTRAINTS.1),
            StopMode::Immediate,
            Duration::ZERO,
            false,
        )
        .await,
    );
    run_ok(&url, UPGRADE_HEAD);
    let check = |context: String| {
        let url = url.clone();
        let expected = expected.clone();
        async move {
            let db = Db::connect(&url).await.unwrap();
            assert_same(
                &snapshot(&db, FingerprintScope::WithoutMigrationFlows).await,
                &expected,
                &context,
            );
            let verified = flow::verify(&db).await.unwrap();
            assert!(verified.is_ok(), "{context}: {verified}");
            db.close().await;
        }
    };
    check(format!("rerun after the restarts {restarts:?}")).await;

    // Long version: down to legacy, then up again with restarts at random moments, until
    // enough restarts were made.
    let wanted = restarts_wanted();
    let (mut rng, seed) = scenario_rng(0x5EED_0006);
    let mut cycles = 0;
    while restarts.len() < wanted {
        cycles += 1;
        run_ok(&url, DOWNGRADE_LEGACY);
        let db = Db::connect(&url).await.unwrap();
        assert_same(
            &snapshot(&db, FingerprintScope::AllRows).await,
            &legacy,
            &format!("seed {seed} cycle {cycles}: downgrade"),
        );
        db.close().await;
        let mut in_cycle = 0;
        while in_cycle < RESTARTS_PER_RUN && restarts.len() < wanted {
            let delay = Duration::from_millis(
                rng.gen_range(0..u64::try_from(upgrade_time.as_millis()).unwrap().max(20)),
            );
            let mode = if rng.gen_bool(0.5) {
                StopMode::Fast
            } else {
                StopMode::Immediate
            };
            let down = Duration::from_millis(rng.gen_range(0..800));
            match upgrade_with_restart(&cluster, &url, When::After(delay), mode, down, false).await
            {
                Some(restart) => {
                    restarts.push(restart);
                    in_cycle += 1;
                }
                None => break,
            }
        }
        run_ok(&url, UPGRADE_HEAD);
        check(format!(
            "seed {seed} cycle {cycles}: upgrade after {in_cycle} restarts"
        ))
        .await;
        assert!(
            cycles < 10 * wanted,
            "runs keep completing before any restart"
        );
    }
    let stopped = restarts
        .iter()
        .filter(|restart| restart.outcome.starts_with("stopped"))
        .count();
    eprintln!(
        "RELIABILITY pg-restart upgrade restarts={} stopped={stopped} resumed={} cycles={cycles} \
         uninterrupted_upgrade_ms={}",
        restarts.len(),
        restarts.len() - stopped,
        upgrade_time.as_millis()
    );
    for restart in &restarts {
        eprintln!(
            "RELIABILITY pg-restart   {} ({:?}): {}",
            restart.when, restart.mode, restart.outcome
        );
    }
}

/// How long the database stays down in a long outage: longer than the pool's wait for a
/// connection (`connect_timeout`, 5 s), so requests sent while it is down are refused.
const LONG_OUTAGE: Duration = Duration::from_millis(6500);
/// A short, crash-like restart: back before the pool gives up waiting.
const SHORT_OUTAGE: Duration = Duration::from_millis(500);

/// What one restart under the server showed.
#[derive(Debug)]
struct Outage {
    mode: StopMode,
    /// When `pg_ctl stop` was called, when it returned (the server is gone) and when `pg_ctl
    /// start` was called.
    stop_begins: Instant,
    stopped: Instant,
    start_begins: Instant,
    /// From the stop command's start to the start command's end.
    away: Duration,
    /// The first data answer 2xx of a request sent after the database was back.
    serving_again: Instant,
    /// From the start command's end to `serving_again`.
    recovery: Duration,
}

impl Outage {
    /// Sent once the server was gone and answered before it was started again: nothing can
    /// have served it.
    fn while_down(&self, answer: &Answer) -> bool {
        answer.sent > self.stopped && answer.received < self.start_begins
    }

    /// A data request of this outage that was refused: sent after the stop began, answered
    /// 503 before the start began.
    fn refused(&self, answer: &Answer) -> bool {
        answer.is_data()
            && answer.status == 503
            && answer.sent >= self.stop_begins
            && answer.received < self.start_begins
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_answers_503_while_postgres_restarts_and_serves_again_without_a_restart() {
    let cluster = PrivateCluster::start();
    let url = cluster.create_database("served").await;
    seed(&url);
    run_ok(&url, UPGRADE_HEAD);
    let server = Server::start(&url, &[("RUST_LOG", "warn,flowkey=debug,sqlx=info")]).await;
    let db = Db::connect(&url).await.unwrap();
    let (mine, _) = two_tenants(&db).await;
    db.close().await;
    let origin = Instant::now();
    let probe = Probe::start(&[(server.base.clone(), ReadyProbe::Probed)], &mine, 3);
    probe
        .wait_for(Duration::from_secs(60), |a| a.is_data() && a.status == 200)
        .await
        .expect("the server answers before the restarts");

    let mut outages: Vec<Outage> = Vec::new();
    for round in 0..restarts_wanted() {
        // Even rounds: a clean stop held longer than the pool waits for a connection, so
        // requests are refused while it is down. Odd rounds: a crash-like stop, back within
        // half a second, which requests waiting for a connection ride out.
        let (mode, down_for) = if round % 2 == 0 {
            (StopMode::Fast, LONG_OUTAGE)
        } else {
            (StopMode::Immediate, SHORT_OUTAGE)
        };
        let stop_begins = Instant::now();
        cluster.stop(mode);
        let stopped = Instant::now();
        tokio::time::sleep(down_for).await;
        let start_begins = Instant::now();
        cluster.start_again();
        let started = Instant::now();
        let first = probe
            .wait_for(Duration::from_secs(60), |a| {
                a.is_data() && a.sent > started && a.status == 200
            })
            .await
            .unwrap_or_else(|| {
                panic!(
                    "round {round}: the server did not serve again after the restart: {}\n{}",
                    tally(probe.answers().iter().filter(|a| a.sent > started)),
                    server.log_text()
                )
            });
        outages.push(Outage {
            mode,
            stop_begins,
            stopped,
            start_begins,
            away: started - stop_begins,
            serving_again: first.received,
            recovery: first.received.saturating_duration_since(started),
        });
        // Serve a while before the next restart.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let answers = probe.stop().await;

    let mut wrong: Vec<String> = Vec::new();
    let mut flag = |answer: &Answer, why: &str| {
        if wrong.len() < 20 {
            wrong.push(format!("{why}: {}", answer.describe(origin)));
        }
    };
    for answer in &answers {
        match answer.route {
            Route::Health if answer.status != 200 => flag(answer, "/health must stay 200"),
            Route::Health => {}
            _ if answer.status == 200 => {}
            _ if answer.status == 503 && answer.code == "database_unavailable" => {}
            _ => flag(answer, "neither 200 nor 503 database_unavailable"),
        }
        if answer.route != Route::Health
            && answer.status == 200
            && outages.iter().any(|outage| outage.while_down(answer))
        {
            flag(answer, "served while the database was down");
        }
        // Once serving again after a restart, only 2xx until the next stop.
        let serving = outages.iter().enumerate().any(|(round, outage)| {
            let next_stop = outages
                .get(round + 1)
                .map_or(answer.received, |next| next.stop_begins);
            answer.sent > outage.serving_again && answer.received < next_stop
        });
        if serving && answer.status != 200 {
            flag(answer, "refused after the server was serving again");
        }
    }
    let refused = answers.iter().filter(|a| a.status == 503).count();
    eprintln!(
        "RELIABILITY pg-restart serve restarts={} requests={} refused_503={refused} answers: {}",
        outages.len(),
        answers.len(),
        tally(&answers)
    );
    for outage in &outages {
        let mut waits: Vec<u128> = answers
            .iter()
            .filter(|a| outage.refused(a))
            .map(|a| (a.received - a.sent).as_millis())
            .collect();
        waits.sort_unstable();
        eprintln!(
            "RELIABILITY pg-restart   {:?}: database away {} ms; data requests refused {} \
             (after waiting {} to {} ms); serving again {} ms after it was back",
            outage.mode,
            outage.away.as_millis(),
            waits.len(),
            waits.first().copied().unwrap_or(0),
            waits.last().copied().unwrap_or(0),
            outage.recovery.as_millis()
        );
    }
    assert!(
        wrong.is_empty(),
        "{}\nserver log:\n{}",
        wrong.join("\n"),
        server.log_text()
    );
    assert!(
        answers
            .iter()
            .any(|a| outages.iter().any(|outage| outage.refused(a))),
        "no data request was refused while the database was down: the scenario proves nothing"
    );
    let log = server.log_text();
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains("request failed"), "an internal error: {log}");
}
