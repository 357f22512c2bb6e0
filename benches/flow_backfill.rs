//! Whole-migration figures (a benchmark, not a test): on a seeded database, the backfill's
//! rows/s against one set-based `UPDATE … FROM` over the same rows, at two sizes, the longest
//! lock wait of any online DDL statement, and the same on SQLite.
//!
//! `cargo bench --bench flow_backfill` (env: FLOWKEY_BENCH_PG_URL, default
//! postgres://postgres@127.0.0.1:5432/test; FLOWKEY_BENCH_SIZES, default "100000,400000" raw
//! records; FLOWKEY_BENCH_ENGINES, default "postgres,sqlite").

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use flowkey::db::{Db, Engine};
use flowkey::migrate::flow::backfill::backfill_table;
use flowkey::migrate::flow::linked::{linked_table, LinkedTable};
use flowkey::migrate::{AuditSink, MigrateError, Migrator, RunOptions};
use flowkey::seed::{seed, SeedConfig};
use futures::future::BoxFuture;

struct NoAudit;

impl AuditSink for NoAudit {
    fn record<'a>(
        &'a self,
        _: &'a str,
        _: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), MigrateError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The description of a table the bench backfills.
fn linked(name: &str) -> &'static LinkedTable {
    linked_table(name).expect("a linked table")
}

fn options() -> RunOptions {
    RunOptions {
        lock_wait: Duration::from_secs(30),
        ..RunOptions::default()
    }
}

const RESET_RAW_PG: &str = "BEGIN; SET LOCAL session_replication_role = replica; \
    UPDATE raw_import_records SET flow_id = NULL; COMMIT;";

const BASELINE_PG: &str = "\
UPDATE raw_import_records AS r SET flow_id = m.flow_id FROM session_flow_mapping AS m
WHERE r.flow_id IS NULL AND m.session_id = r.session_id
  AND (r.client_account_id IS NULL OR r.client_account_id = m.client_account_id)
  AND (r.engagement_id IS NULL OR r.engagement_id = m.engagement_id);
UPDATE raw_import_records AS r SET flow_id = f.flow_id
FROM data_imports AS d JOIN discovery_flows AS f ON f.flow_id = d.flow_id
WHERE r.flow_id IS NULL AND r.session_id IS NULL AND d.id = r.data_import_id
  AND (r.client_account_id IS NULL OR r.client_account_id = f.client_account_id)
  AND (r.engagement_id IS NULL OR r.engagement_id = f.engagement_id);";

async fn fresh(engine: Engine, name: &str) -> (Db, String) {
    match engine {
        Engine::Postgres => {
            let admin_url = std::env::var("FLOWKEY_BENCH_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let admin = Db::connect(&admin_url).await.unwrap();
            admin
                .execute_plain(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .unwrap();
            admin
                .execute_plain(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            admin.close().await;
            let mut url = url::Url::parse(&admin_url).unwrap();
            url.set_path(&format!("/{name}"));
            (Db::connect(url.as_str()).await.unwrap(), url.to_string())
        }
        Engine::Sqlite => {
            let path = std::env::temp_dir().join(format!("{name}.db"));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            let url = format!("sqlite://{}", path.display());
            (Db::connect(&url).await.unwrap(), url)
        }
    }
}

/// Backfill and baseline on an already seeded and migrated PostgreSQL database (flow_id
/// columns present): both start from `raw_import_records.flow_id` all NULL.
async fn measure_existing(url: &str) {
    let db = Db::connect(url).await.unwrap();
    let audit = NoAudit;
    let opts = options();
    db.execute_plain(RESET_RAW_PG).await.unwrap();
    db.execute_plain(
        "DELETE FROM flowkey_backfill_progress WHERE table_name = 'raw_import_records'",
    )
    .await
    .unwrap();
    db.execute_plain("VACUUM ANALYZE raw_import_records")
        .await
        .unwrap();
    let clock = Instant::now();
    let raw = backfill_table(&db, linked("raw_import_records"), &opts, &audit)
        .await
        .unwrap();
    let backfill_rate = raw.rows_done as f64 / clock.elapsed().as_secs_f64();
    println!(
        "existing db: backfill {} rows at {backfill_rate:.0} rows/s",
        raw.rows_done
    );
    db.execute_plain(RESET_RAW_PG).await.unwrap();
    db.execute_plain("VACUUM ANALYZE raw_import_records")
        .await
        .unwrap();
    let clock = Instant::now();
    db.execute_plain(&format!("BEGIN; {BASELINE_PG} COMMIT;"))
        .await
        .unwrap();
    let baseline = raw.rows_done as f64 / clock.elapsed().as_secs_f64();
    println!(
        "existing db: one UPDATE … FROM {baseline:.0} rows/s, ratio {:.2}",
        backfill_rate / baseline
    );
    let log = Migrator::new(db.clone(), options())
        .audit_log(100_000)
        .await
        .unwrap();
    let longest_lock_wait = log
        .iter()
        .filter_map(|entry| entry.details.as_ref()?.get("lock_wait_ms")?.as_f64())
        .fold(0.0f64, f64::max);
    println!("existing db: longest DDL lock wait recorded {longest_lock_wait:.0} ms");
}

async fn measure(engine: Engine, raw_rows: u32) {
    let name = format!("flowkey_bench_{engine}_{raw_rows}");
    let (db, _url) = fresh(engine, &name).await;
    let rows_per_import = 200;
    let tenants = 4;
    let imports = (raw_rows / rows_per_import / tenants).max(1);
    let clock = Instant::now();
    seed(
        &db,
        &SeedConfig {
            seed: 9,
            tenants,
            imports_per_tenant: imports,
            rows_per_import,
            ..SeedConfig::default()
        },
    )
    .await
    .unwrap();
    let seeded = clock.elapsed();
    let migrator = Migrator::new(db.clone(), options());
    migrator.upgrade("flow_expand").await.unwrap();
    let audit = NoAudit;
    let opts = options();
    let data_imports = backfill_table(&db, linked("data_imports"), &opts, &audit)
        .await
        .unwrap();
    let clock = Instant::now();
    let raw = backfill_table(&db, linked("raw_import_records"), &opts, &audit)
        .await
        .unwrap();
    let backfill_time = clock.elapsed();
    let backfill_rate = raw.rows_done as f64 / backfill_time.as_secs_f64();
    println!(
        "{engine} raw={}: backfill {backfill_rate:.0} rows/s",
        raw.rows_done
    );
    let baseline_rate = if engine == Engine::Postgres {
        db.execute_plain(RESET_RAW_PG).await.unwrap();
        db.execute_plain("VACUUM ANALYZE raw_import_records")
            .await
            .unwrap();
        let clock = Instant::now();
        db.execute_plain(&format!("BEGIN; {BASELINE_PG} COMMIT;"))
            .await
            .unwrap();
        Some(raw.rows_done as f64 / clock.elapsed().as_secs_f64())
    } else {
        None
    };
    migrator.upgrade("head").await.unwrap();
    let log = migrator.audit_log(100_000).await.unwrap();
    let longest_lock_wait = log
        .iter()
        .filter_map(|entry| entry.details.as_ref()?.get("lock_wait_ms")?.as_f64())
        .fold(0.0f64, f64::max);
    println!(
        "{engine} raw={} (seeded in {:.1}s, imports {}): backfill {:.0} rows/s{}; longest DDL lock wait {:.0} ms",
        raw.rows_done,
        seeded.as_secs_f64(),
        data_imports.rows_done,
        backfill_rate,
        baseline_rate.map_or(String::new(), |baseline| format!(
            ", one UPDATE … FROM {baseline:.0} rows/s, ratio {:.2}",
            backfill_rate / baseline
        )),
        longest_lock_wait
    );
    db.close().await;
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this once without it,
    // as a smoke test: then a tiny size keeps the test suite fast.
    let benchmarking = std::env::args().any(|arg| arg == "--bench");
    let default_sizes = if benchmarking {
        "100000,400000"
    } else {
        "2000"
    };
    let sizes: Vec<u32> = std::env::var("FLOWKEY_BENCH_SIZES")
        .unwrap_or_else(|_| default_sizes.into())
        .split(',')
        .filter_map(|size| size.trim().parse().ok())
        .collect();
    let engines =
        std::env::var("FLOWKEY_BENCH_ENGINES").unwrap_or_else(|_| "postgres,sqlite".into());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if let Ok(url) = std::env::var("FLOWKEY_BENCH_EXISTING_URL") {
        runtime.block_on(measure_existing(&url));
        return;
    }
    for engine in [Engine::Postgres, Engine::Sqlite] {
        if !engines.contains(&engine.to_string()) {
            continue;
        }
        for size in &sizes {
            runtime.block_on(measure(engine, *size));
        }
    }
}
