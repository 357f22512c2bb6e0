//! What the migration tests share besides the fixtures: the real runner bringing a database to
//! a revision (in this process, or as the `flowkey` binary with a fault armed), the events it
//! wrote to its audit log, and a schema dump for comparing a downgraded database with a fresh
//! legacy one.

#![allow(dead_code)]

use std::process::ExitStatus;
use std::time::Duration;

use flowkey::db::Db;
use flowkey::migrate::{HistoryEntry, Migrator, RunOptions};
use sqlx::Row;

use crate::support::reliability_support::run_with_faults;

/// Upgrades `db` to `target` with the real runner.
pub async fn upgrade_to(db: &Db, target: &str) {
    upgrade_with(db, target, RunOptions::default()).await;
}

/// Upgrades `db` to `target` with the real runner and `options`.
pub async fn upgrade_with(db: &Db, target: &str, options: RunOptions) {
    Migrator::new(db.clone(), options)
        .upgrade(target)
        .await
        .unwrap_or_else(|err| panic!("upgrade {target}: {err}"));
}

/// Downgrades `db` to `target` with the real runner.
pub async fn downgrade_to(db: &Db, target: &str) {
    Migrator::new(db.clone(), RunOptions::default())
        .downgrade(target)
        .await
        .unwrap_or_else(|err| panic!("downgrade {target}: {err}"));
}

/// The details of every audit log event named `event`, oldest first.
pub async fn audit_events(db: &Db, event: &str) -> Vec<serde_json::Value> {
    Migrator::new(db.clone(), RunOptions::default())
        .audit_log(100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|entry| entry.event == event)
        .map(|entry| entry.details.unwrap_or_default())
        .collect()
}

/// What the runner's history says about one revision.
pub async fn history_of(db: &Db, revision: &str) -> HistoryEntry {
    Migrator::new(db.clone(), RunOptions::default())
        .history()
        .await
        .unwrap()
        .into_iter()
        .find(|entry| entry.id == revision)
        .unwrap_or_else(|| panic!("no revision {revision}"))
}

/// Batches of one row (one page on PostgreSQL), whatever the batches take.
pub fn one_row_batches() -> RunOptions {
    RunOptions {
        initial_batch_size: 1,
        target_batch_time: Duration::ZERO,
        ..RunOptions::default()
    }
}

/// `flowkey upgrade <target>` as a child process with the fault injection points `failpoints`
/// armed (`FAILPOINTS`), backfilling one row (page) per batch; its exit status and stderr.
pub fn upgrade_binary_with_faults(
    url: &str,
    target: &str,
    failpoints: &str,
) -> (ExitStatus, String) {
    run_with_faults(
        url,
        &[
            "upgrade",
            target,
            "--initial-batch-size",
            "1",
            "--batch-target-ms",
            "0",
            "--no-progress",
        ],
        failpoints,
    )
}

/// The one `error: …` line a failed command printed (warnings such as "resuming revision …"
/// may come before it).
pub fn error_line(stderr: &str) -> &str {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "not one error line: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().last(),
        Some(errors[0]),
        "the error is not the last line: {stderr}"
    );
    errors[0]
}

/// A comparable description of the schema, flowkey's own tables left out.
pub async fn schema_dump(db: &Db) -> Vec<String> {
    let rows: Vec<String> = match db {
        Db::Sqlite(pool) => sqlx::query(
            "SELECT type || ' ' || name || ' ON ' || tbl_name || ': ' || coalesce(sql, '') FROM sqlite_master \
             WHERE name NOT LIKE 'flowkey_%' AND tbl_name NOT LIKE 'flowkey_%' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.get::<String, _>(0))
        .collect(),
        Db::Postgres(pool) => {
            let mut all: Vec<String> = sqlx::query(
                "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' \
                 || coalesce(column_default, '') || ' #' || ordinal_position \
                 FROM information_schema.columns WHERE table_schema = 'public' AND table_name NOT LIKE 'flowkey_%' \
                 ORDER BY table_name, ordinal_position",
            )
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .map(|row| row.get::<String, _>(0))
            .collect();
            let more: Vec<String> = sqlx::query(
                "SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename NOT LIKE 'flowkey_%' \
                 UNION ALL SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) \
                 FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text NOT LIKE 'flowkey_%' \
                 UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal \
                 UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace \
                 ORDER BY 1",
            )
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .map(|row| row.get::<String, _>(0))
            .collect();
            all.extend(more);
            all
        }
    };
    rows
}
