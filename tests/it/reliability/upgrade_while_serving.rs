//! Two of everything, the service side: two `flowkey serve` at head under a steady load of v3
//! and v1 reads while an operator runs a no-op `flowkey upgrade head`, then `flowkey
//! downgrade -1` (head = `live_mapping` down to `service_state`) and `flowkey upgrade
//! head` again. No answer is ever a 500 or a dropped connection; the no-op upgrade changes
//! nothing the clients see; once a server has seen the schema below head, it answers 503
//! `schema_not_at_head` on every data route and `/ready` until the upgrade; once it has
//! seen head again it serves 2xx, without a restart. Both commands complete while the
//! servers hold their connections.

use std::time::{Duration, Instant};

use crate::both_engines;
use crate::reliability::service::{two_tenants, Server};
use crate::support::harness::TestDb;
use crate::support::reliability_support::{run_ok, run_within, seeded, small_seed, UPGRADE_HEAD};
use crate::support::service_probe::{tally, Answer, Probe, ReadyProbe, Route};

/// The servers re-check their schema this often (the default is 2 s).
const SCHEMA_POLL_MS: &str = "200";
/// Time enough for the servers to check their schema a few times, and for the probe to see
/// what they answer then.
const SETTLE: Duration = Duration::from_millis(600);
/// A command that takes longer than this hangs.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

const DOWNGRADE_ONE: &[&str] = &[
    "downgrade",
    "-1",
    "--no-progress",
    "--lock-wait-secs",
    "120",
];

async fn downgrade_and_upgrade_while_two_servers_serve(test_db: TestDb) {
    seeded(&test_db, &small_seed()).await;
    run_ok(&test_db.url, UPGRADE_HEAD);
    let env = [("FLOWKEY_SCHEMA_POLL_MS", SCHEMA_POLL_MS)];
    let servers = [
        Server::start(&test_db.url, &env).await,
        Server::start(&test_db.url, &env).await,
    ];
    let db = test_db.connect().await;
    let (mine, _) = two_tenants(&db).await;
    db.close().await;
    // The first server is probed on /ready (as by a load balancer), and its gate takes each
    // of those checks; the second is not, and follows the schema by its own poll only.
    let targets = [
        (servers[0].base.clone(), ReadyProbe::Probed),
        (servers[1].base.clone(), ReadyProbe::NotProbed),
    ];
    let origin = Instant::now();
    let probe = Probe::start(&targets, &mine, 2);
    for server in 0..servers.len() {
        probe
            .wait_for(Duration::from_secs(60), |a| {
                a.server == server && a.is_data() && a.status == 200
            })
            .await
            .expect("the servers answer before anything happens");
    }

    // A no-op upgrade while serving: nothing to do, nothing the clients notice.
    let noop_start = Instant::now();
    let (status, stderr, noop_time) = run_within(&test_db.url, UPGRADE_HEAD, COMMAND_LIMIT).await;
    assert!(status.success(), "no-op upgrade head: {stderr}");
    tokio::time::sleep(SETTLE).await;

    // Below head while serving.
    let down_start = Instant::now();
    let (status, stderr, down_time) = run_within(&test_db.url, DOWNGRADE_ONE, COMMAND_LIMIT).await;
    assert!(status.success(), "downgrade -1 while serving: {stderr}");
    let down_end = Instant::now();
    let mut first_refusals = Vec::new();
    for server in 0..servers.len() {
        let refused = |a: &Answer| {
            a.server == server && a.is_data() && a.sent > down_start && a.status == 503
        };
        let first = probe
            .wait_for(Duration::from_secs(30), refused)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "server {server} kept serving below head: {}",
                    tally(probe.answers().iter().filter(|a| a.sent > down_end))
                )
            });
        first_refusals.push(first);
    }
    // The server nobody probes says "not ready" too when asked.
    let ready = reqwest::get(format!("{}/ready", servers[1].base))
        .await
        .unwrap();
    let status = ready.status();
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(
        status, 503,
        "/ready of the second server below head: {body}"
    );
    assert_eq!(body["error"]["code"], "schema_not_at_head", "{body}");
    assert_eq!(
        body["error"]["details"]["recorded_revision"],
        below_head(),
        "{body}"
    );
    tokio::time::sleep(SETTLE).await;

    // Back to head while serving.
    let up_start = Instant::now();
    let (status, stderr, up_time) = run_within(&test_db.url, UPGRADE_HEAD, COMMAND_LIMIT).await;
    assert!(status.success(), "upgrade head while serving: {stderr}");
    let up_end = Instant::now();
    let mut first_served = Vec::new();
    for server in 0..servers.len() {
        let served =
            |a: &Answer| a.server == server && a.is_data() && a.sent > up_start && a.status == 200;
        let first = probe
            .wait_for(Duration::from_secs(30), served)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "server {server} never served again after the upgrade: {}",
                    tally(probe.answers().iter().filter(|a| a.sent > up_end))
                )
            });
        first_served.push(first);
    }
    tokio::time::sleep(SETTLE).await;
    let answers = probe.stop().await;

    let mut wrong: Vec<String> = Vec::new();
    let mut flag = |answer: &Answer, why: &str| {
        if wrong.len() < 20 {
            wrong.push(format!("{why}: {}", answer.describe(origin)));
        }
    };
    for answer in &answers {
        let server = answer.server;
        match (answer.status, answer.route) {
            (200, _) => {}
            (503, Route::Data(_) | Route::Ready) if answer.code == "schema_not_at_head" => {}
            _ => flag(answer, "neither 200 nor 503 schema_not_at_head"),
        }
        if answer.route == Route::Health && answer.status != 200 {
            flag(answer, "/health must stay 200");
        }
        if answer.received < down_start && answer.status != 200 {
            flag(
                answer,
                "refused before the downgrade (the no-op upgrade is invisible)",
            );
        }
        let below_head =
            answer.sent > first_refusals[server].received && answer.received < up_start;
        if below_head && answer.route != Route::Health && answer.status != 503 {
            flag(answer, "served after this server had refused below head");
        }
        if answer.sent > first_served[server].received && answer.status != 200 {
            flag(answer, "refused after this server served at head again");
        }
    }
    // /ready said "not ready" below head (the probed server, all along).
    let ready_refused = answers.iter().any(|a| {
        a.route == Route::Ready && a.sent > down_end && a.received < up_start && a.status == 503
    });
    assert!(ready_refused, "/ready never said 503 below head");
    for (index, server) in servers.iter().enumerate() {
        let log = server.log_text();
        assert!(!log.contains("panicked"), "server {index} panicked: {log}");
        assert!(
            !log.contains("request failed"),
            "server {index} logged an internal error: {log}"
        );
    }
    let refused = answers.iter().filter(|a| a.status == 503).count();
    let lag: Vec<u128> = first_refusals
        .iter()
        .map(|a| a.received.saturating_duration_since(down_end).as_millis())
        .collect();
    let recovery: Vec<u128> = first_served
        .iter()
        .map(|a| a.received.saturating_duration_since(up_end).as_millis())
        .collect();
    eprintln!(
        "RELIABILITY upgrade-while-serving engine={:?} requests={} refused_503={refused} \
         noop_upgrade_ms={} downgrade_ms={} upgrade_ms={} refusing_after_downgrade_ms={lag:?} \
         serving_after_upgrade_ms={recovery:?} answers: {}",
        test_db.engine,
        answers.len(),
        noop_time.as_millis(),
        down_time.as_millis(),
        up_time.as_millis(),
        tally(&answers),
    );
    assert!(
        wrong.is_empty(),
        "{} (noop upgrade at +{}ms, downgrade +{}..+{}ms, upgrade +{}..+{}ms)",
        wrong.join("\n"),
        noop_start.duration_since(origin).as_millis(),
        down_start.duration_since(origin).as_millis(),
        down_end.duration_since(origin).as_millis(),
        up_start.duration_since(origin).as_millis(),
        up_end.duration_since(origin).as_millis(),
    );
}
both_engines!(
    a_downgrade_and_upgrade_under_two_serving_servers_give_503_below_head_and_2xx_again_without_restart,
    downgrade_and_upgrade_while_two_servers_serve
);

/// The revision `downgrade -1` from head leaves (head is not the chain's last revision: the
/// contract follows it).
fn below_head() -> &'static str {
    let chain = flowkey::migrate::revisions::all();
    let head_at = chain
        .iter()
        .position(|revision| revision.id == flowkey::migrate::revisions::head().id)
        .expect("head is in the chain");
    chain[head_at - 1].id
}
