//! Shared by the reliability scenarios: the built `flowkey` binary as a child process, a
//! seeded random source for kill moments, and a snapshot of everything a migration must
//! preserve (introspected schema, raw schema text, fingerprints of the legacy tables, every
//! `flow_id` of every table) so that two databases can be compared after different histories.

#![allow(dead_code)] // not every scenario uses every helper

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flowkey::db::introspect::{introspect, Schema};
use flowkey::db::{Db, Engine};
use flowkey::migrate::flow::{self, FingerprintScope, TableFingerprint};
use flowkey::migrate::{Migrator, RunOptions};
use flowkey::seed::SeedConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::Row;

use crate::support::flow_support::schema_dump;
use crate::support::harness::TestDb;

/// The binary under test, built by cargo for this test run.
pub fn flowkey_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_flowkey"))
}

/// `flowkey --database-url URL ARGS...` with stdout discarded and stderr captured.
pub fn flowkey(url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(flowkey_binary());
    command
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Upgrade arguments that make many small backfill batches and no progress bar.
pub const UPGRADE_HEAD: &[&str] = &[
    "upgrade",
    "head",
    "--batch-target-ms",
    "1",
    "--no-progress",
    "--lock-wait-secs",
    "120",
];

pub const DOWNGRADE_LEGACY: &[&str] = &[
    "downgrade",
    "legacy",
    "--batch-target-ms",
    "1",
    "--no-progress",
    "--lock-wait-secs",
    "120",
];

/// Runs a command to its end and returns its exit status and stderr.
pub fn run_to_end(url: &str, args: &[&str]) -> (std::process::ExitStatus, String) {
    let output = flowkey(url, args).output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs a command to its end with the fault injection points `failpoints` armed
/// (`FAILPOINTS`, see `flowkey::migrate::faults`); returns its exit status and stderr.
pub fn run_with_faults(
    url: &str,
    args: &[&str],
    failpoints: &str,
) -> (std::process::ExitStatus, String) {
    let output = flowkey(url, args)
        .env("FAILPOINTS", failpoints)
        .output()
        .unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs a command that must succeed and returns how long it took.
pub fn run_ok(url: &str, args: &[&str]) -> Duration {
    let started = Instant::now();
    let (status, stderr) = run_to_end(url, args);
    assert!(status.success(), "flowkey {args:?} failed: {stderr}");
    started.elapsed()
}

/// Runs a command to its end, but no longer than `limit` (a hang is killed and fails the
/// test); returns its exit status, stderr and duration.
pub async fn run_within(
    url: &str,
    args: &[&str],
    limit: Duration,
) -> (std::process::ExitStatus, String, Duration) {
    let started = Instant::now();
    let mut child = flowkey(url, args).spawn().unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "flowkey {args:?} still runs after {limit:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
        started.elapsed(),
    )
}

/// The random source of a scenario: seeded from `FLOWKEY_RELIABILITY_SEED` (default `seed`) so
/// that a failure can be replayed; the seed is printed in every failure message.
pub fn scenario_rng(default_seed: u64) -> (ChaCha8Rng, u64) {
    let seed = std::env::var("FLOWKEY_RELIABILITY_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default_seed);
    (ChaCha8Rng::seed_from_u64(seed), seed)
}

/// How many kill points per engine a crash scenario aims for: `FLOWKEY_KILL_POINTS`, default
/// the CI handful.
pub fn kill_points_wanted(ci_default: usize) -> usize {
    std::env::var("FLOWKEY_KILL_POINTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(ci_default)
}

/// Where one SIGKILL landed, read from the runner's own bookkeeping after the kill.
#[derive(Debug, Clone)]
pub struct KillPoint {
    pub delay_ms: u64,
    pub landed_in: String,
}

/// Runs `args` repeatedly, killing each run with SIGKILL after a random delay in
/// `0..max_delay`, until `kills_wanted` runs were killed or a run completes on its own; then
/// runs once more without killing until it completes. Every run that was not killed must
/// succeed. Returns the kill points.
pub async fn run_with_kills(
    url: &str,
    args: &[&str],
    rng: &mut ChaCha8Rng,
    max_delay: Duration,
    kills_wanted: usize,
) -> Vec<KillPoint> {
    let mut kills = Vec::new();
    let max_ms = u64::try_from(max_delay.as_millis()).unwrap().max(20);
    while kills.len() < kills_wanted {
        let delay_ms = rng.gen_range(0..max_ms);
        let mut child = flowkey(url, args).spawn().unwrap();
        let killed = kill_after(&mut child, Duration::from_millis(delay_ms)).await;
        let output = child.wait_with_output().unwrap();
        if !killed {
            assert!(
                output.status.success(),
                "a run that was not killed failed after {} kills: {}",
                kills.len(),
                String::from_utf8_lossy(&output.stderr)
            );
            // It completed before the kill: this cycle is over.
            return kills;
        }
        let landed_in = where_the_runner_stopped(url).await;
        kills.push(KillPoint {
            delay_ms,
            landed_in,
        });
    }
    let (status, stderr) = run_to_end(url, args);
    assert!(
        status.success(),
        "the run after {} kills failed: {stderr}",
        kills.len()
    );
    kills
}

/// Waits `delay` then sends SIGKILL if the child is still running; true when it was killed.
async fn kill_after(child: &mut Child, delay: Duration) -> bool {
    tokio::time::sleep(delay).await;
    if child.try_wait().unwrap().is_some() {
        return false;
    }
    // std's Child::kill is SIGKILL on Unix: no handler, no cleanup.
    child.kill().unwrap();
    true
}

/// "flow_backfill up 1/3", "between revisions at flow_expand", ...: the revision and step a
/// killed runner left behind.
pub async fn where_the_runner_stopped(url: &str) -> String {
    let db = Db::connect(url).await.unwrap();
    let history = Migrator::new(db.clone(), RunOptions::default())
        .history()
        .await;
    db.close().await;
    let Ok(history) = history else {
        return "before the runner's tables existed".to_owned();
    };
    if let Some(entry) = history.iter().find(|entry| entry.dirty.is_some()) {
        let dirty = entry.dirty.as_ref().unwrap();
        if usize::try_from(dirty.steps_done).unwrap_or(0) >= dirty.steps {
            return format!(
                "{} {} after its last step, before it was recorded",
                entry.id, dirty.direction
            );
        }
        return format!(
            "{} {} step {}/{}",
            entry.id,
            dirty.direction,
            dirty.steps_done + 1,
            dirty.steps
        );
    }
    match history.iter().find(|entry| entry.is_current) {
        Some(entry) => format!("between revisions at {}", entry.id),
        None => "before any revision".to_owned(),
    }
}

/// Counts kill points per place, for messages and docs/reliability.md.
pub fn landing_summary(kills: &[KillPoint]) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for kill in kills {
        *counts.entry(kill.landed_in.as_str()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(place, count)| format!("{count}x {place}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Everything a migration must preserve, in comparable form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub schema: Schema,
    pub schema_text: Vec<String>,
    pub fingerprints: Vec<TableFingerprint>,
    pub links: Vec<String>,
}

/// Takes a snapshot. At `head`, `FingerprintScope::WithoutMigrationFlows` leaves out the
/// flows the migration created (their ids are random per database); `links` names those
/// flows by the session they were created for, for the same reason.
pub async fn snapshot(db: &Db, scope: FingerprintScope) -> Snapshot {
    Snapshot {
        schema: introspect(db).await.unwrap(),
        schema_text: schema_dump(db)
            .await
            .into_iter()
            .map(without_ordinal_position)
            .collect(),
        fingerprints: flow::fingerprint_database(db, scope).await.unwrap(),
        links: every_flow_id(db).await,
    }
}

/// PostgreSQL never reuses the attribute number of a dropped column: after a downgrade
/// dropped `flow_id` and an upgrade added it again, its ordinal position is one higher. The
/// column order is unchanged, so the number itself is left out of the comparison.
fn without_ordinal_position(line: String) -> String {
    match line.rsplit_once(" #") {
        Some((head, position)) if position.chars().all(|c| c.is_ascii_digit()) => head.to_owned(),
        _ => line,
    }
}

/// Asserts two snapshots are equal, naming the first difference.
pub fn assert_same(actual: &Snapshot, expected: &Snapshot, context: &str) {
    let differences = actual.schema.diff(&expected.schema);
    assert!(
        differences.is_empty(),
        "{context}: schema differs: {differences:#?}"
    );
    assert_eq!(
        actual.schema_text, expected.schema_text,
        "{context}: schema text differs"
    );
    assert_eq!(
        actual.fingerprints, expected.fingerprints,
        "{context}: fingerprints differ"
    );
    assert_eq!(
        actual.links.len(),
        expected.links.len(),
        "{context}: not the same number of flow_id values"
    );
    if let Some((a, e)) = actual
        .links
        .iter()
        .zip(&expected.links)
        .find(|(a, e)| a != e)
    {
        panic!("{context}: first differing flow_id: {a} (expected {e})");
    }
}

/// Every `flow_id` of every table that has one (ordered by table then primary key), and the
/// whole `session_flow_mapping`, with flows created by the migration named by their session.
/// Empty on a legacy database.
pub async fn every_flow_id(db: &Db) -> Vec<String> {
    let has_mapping = table_exists(db, "session_flow_mapping").await;
    if !has_mapping {
        return Vec::new();
    }
    let text = |column: &str| match db.engine() {
        Engine::Postgres => format!("{column}::text"),
        Engine::Sqlite => column.to_owned(),
    };
    let mut all = Vec::new();
    for table in flow::linked::LINKED_TABLES.iter().map(|t| t.name) {
        let sql = format!(
            "SELECT {id}, COALESCE('created:' || {created}, {flow_id}) FROM {table} r \
             LEFT JOIN flowkey_remembered_flows c ON c.flow_id = r.flow_id ORDER BY r.id",
            id = text("r.id"),
            created = text("c.session_id"),
            flow_id = text("r.flow_id"),
        );
        all.extend(text_rows(db, &sql, table).await);
    }
    let sql = format!(
        "SELECT {session}, COALESCE('created:' || {created}, {flow_id}) || ' ' || m.rule \
         FROM session_flow_mapping m \
         LEFT JOIN flowkey_remembered_flows c ON c.flow_id = m.flow_id ORDER BY m.session_id",
        session = text("m.session_id"),
        created = text("c.session_id"),
        flow_id = text("m.flow_id"),
    );
    all.extend(text_rows(db, &sql, "session_flow_mapping").await);
    all
}

async fn text_rows(db: &Db, sql: &str, label: &str) -> Vec<String> {
    flowkey::on_pool!(db, pool => {
        sqlx::query(sql).fetch_all(pool).await.unwrap().into_iter()
            .map(|row| format!("{label} {} {:?}", row.get::<String, _>(0), row.get::<Option<String>, _>(1)))
            .collect()
    })
}

pub async fn table_exists(db: &Db, table: &str) -> bool {
    let sql = match db.engine() {
        Engine::Postgres => {
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = $1"
        }
        Engine::Sqlite => "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
    };
    let count: i64 = flowkey::on_pool!(db, pool => {
        sqlx::query_scalar(sql).bind(table).fetch_one(pool).await.unwrap()
    });
    count > 0
}

/// Seeds a fresh database with `config` (the library function `flowkey seed` calls).
pub async fn seeded(test_db: &TestDb, config: &SeedConfig) {
    let db = test_db.connect().await;
    flowkey::seed::seed(&db, config).await.unwrap();
    db.close().await;
}

/// A seed small enough for CI with enough raw records for many 1 ms backfill batches.
pub fn small_seed() -> SeedConfig {
    SeedConfig {
        seed: 2026,
        tenants: 3,
        imports_per_tenant: 10,
        rows_per_import: 60,
        ..SeedConfig::default()
    }
}

/// Reads one value from the runner's audit log as seen by the library.
pub async fn audit_log(db: &Db) -> Vec<flowkey::migrate::AuditEntry> {
    Migrator::new(db.clone(), RunOptions::default())
        .audit_log(100_000)
        .await
        .unwrap()
}
