//! Three `flowkey serve` instances over one PostgreSQL: how long a `flag set` takes to reach
//! every instance (as each one's /ready reports the flag it applies), with LISTEN/NOTIFY and
//! with polling alone, and that a lost listener never leaves an instance on the old flag
//! longer than the fallback poll. The figures are printed (p50 and max of the slowest
//! instance per change); the bounds asserted are the design's, with room for a loaded machine.

use std::time::{Duration, Instant};

use flowkey::db::Engine;
use flowkey::seed::SeedConfig;

use crate::support::harness::TestDb;
use crate::support::reliability_support::{run_ok, seeded};
use crate::support::served::{serve_with_env, Server};

async fn flag_of(server: &Server) -> Option<String> {
    let answer = reqwest::get(format!("{}/ready", server.base)).await.ok()?;
    let body: serde_json::Value = answer.json().await.ok()?;
    body["data"]["flag"].as_str().map(str::to_owned)
}

/// Sets the global flag and returns how long until every instance applies it.
async fn propagation(url: &str, servers: &[Server], value: &str, limit: Duration) -> Duration {
    run_ok(url, &["flag", "set", "enable_flow_id_primary", value]);
    let started = Instant::now();
    for server in servers {
        while flag_of(server).await.as_deref() != Some(value) {
            assert!(
                started.elapsed() < limit,
                "an instance still applies the old flag after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    started.elapsed()
}

fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    format!(
        "p50 {:?}, max {:?} over {} changes",
        times[times.len() / 2],
        times[times.len() - 1],
        times.len()
    )
}

async fn three(url: &str, env: &[(&str, &str)]) -> Vec<Server> {
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(serve_with_env(url, &[], env).await);
    }
    servers
}

#[tokio::test]
async fn flag_changes_reach_every_instance_by_notify_and_by_poll_when_the_listener_is_lost() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    seeded(&test_db, &SeedConfig::default()).await;
    run_ok(&test_db.url, &["upgrade", "head", "--no-progress"]);
    let url = test_db.url.as_str();

    // NOTIFY, with a poll so slow that only the notification explains a fast change.
    let servers = three(url, &[("FLOWKEY_FLAG_POLL_MS", "30000")]).await;
    let mut notified = Vec::new();
    for change in 0..10 {
        let value = if change % 2 == 0 { "shadow" } else { "off" };
        notified.push(propagation(url, &servers, value, Duration::from_secs(5)).await);
    }
    eprintln!(
        "flag propagation to 3 instances, NOTIFY: {}",
        summary(notified)
    );

    // The listeners' connections cut on the server side: the next change still arrives,
    // by the reconnected listener or at worst by the poll (3 s here).
    drop(servers);
    let servers = three(url, &[("FLOWKEY_FLAG_POLL_MS", "3000")]).await;
    let db = test_db.connect().await;
    let cut: i64 = flowkey::on_pool!(&db, pool => {
        sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%') AS terminated",
        )
        .fetch_one(pool)
        .await
        .expect("terminate the listeners")
    });
    assert!(cut >= 3, "{cut} listener connections found");
    let after_cut = propagation(url, &servers, "shadow", Duration::from_millis(4_500)).await;
    eprintln!("flag propagation after the listeners were cut: {after_cut:?}");
    drop(servers);

    // Polling alone (the default 2 s), the fallback and SQLite's way.
    let servers = three(url, &[("FLOWKEY_FLAG_LISTEN", "0")]).await;
    let mut polled = Vec::new();
    for change in 0..4 {
        let value = if change % 2 == 0 { "off" } else { "shadow" };
        polled.push(propagation(url, &servers, value, Duration::from_secs(5)).await);
    }
    eprintln!(
        "flag propagation to 3 instances, poll every 2 s: {}",
        summary(polled)
    );
    db.close().await;
}

/// The status an `/api` route answers without a token: 503 while the schema gate is closed
/// (the gate answers before authentication), 401 otherwise.
async fn gate_closed(server: &Server) -> bool {
    let answer = reqwest::get(format!("{}/api/v3/discovery-flow/flows", server.base))
        .await
        .expect("server answers");
    answer.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
}

/// Runs a migration command and returns how long until every instance's gate is `closed`.
async fn schema_propagation(
    url: &str,
    servers: &[Server],
    args: &[&str],
    closed: bool,
    limit: Duration,
) -> Duration {
    run_ok(url, args);
    let started = Instant::now();
    for server in servers {
        while gate_closed(server).await != closed {
            assert!(
                started.elapsed() < limit,
                "an instance's schema gate is still {} after {limit:?}",
                if closed { "open" } else { "closed" }
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    started.elapsed()
}

#[tokio::test]
async fn schema_changes_reach_every_instance_by_notify() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    seeded(&test_db, &SeedConfig::default()).await;
    run_ok(&test_db.url, &["upgrade", "head", "--no-progress"]);
    let url = test_db.url.as_str();
    let down = ["downgrade", "-1", "--no-progress"];
    let up = ["upgrade", "head", "--no-progress"];

    // NOTIFY from the runner's book, with a schema poll so slow that only the notification
    // explains a fast change.
    let servers = three(url, &[("FLOWKEY_SCHEMA_POLL_MS", "30000")]).await;
    for server in &servers {
        assert!(!gate_closed(server).await, "an instance at head refuses");
    }
    let (mut closing, mut opening) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        closing.push(schema_propagation(url, &servers, &down, true, Duration::from_secs(5)).await);
        opening.push(schema_propagation(url, &servers, &up, false, Duration::from_secs(5)).await);
    }
    eprintln!(
        "schema propagation to 3 instances, NOTIFY: downgrade -1 {}; upgrade head {}",
        summary(closing),
        summary(opening)
    );
    drop(servers);

    // Polling alone (the default 2 s), the fallback and SQLite's way.
    let servers = three(
        url,
        &[
            ("FLOWKEY_FLAG_LISTEN", "0"),
            ("FLOWKEY_SCHEMA_POLL_MS", "2000"),
        ],
    )
    .await;
    let (mut closing, mut opening) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        closing.push(schema_propagation(url, &servers, &down, true, Duration::from_secs(5)).await);
        opening.push(schema_propagation(url, &servers, &up, false, Duration::from_secs(5)).await);
    }
    eprintln!(
        "schema propagation to 3 instances, poll every 2 s: downgrade -1 {}; upgrade head {}",
        summary(closing),
        summary(opening)
    );
}
