//! The benchmark baseline for the backfill: the same set-based UPDATEs the online backfill
//! runs per batch, run once over each whole table in one transaction, with no keyset walk,
//! no cursor and no progress rows. That is the engine's speed limit for the same work, the
//! figure the online backfill is measured against (`bench/run.sh`). It takes every lock the
//! UPDATEs need for as long as they run: never run it on a database in use.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::db::Db;
use crate::migrate::flow::backfill::batch_statements;
use crate::migrate::flow::linked::LINKED_TABLES;
use crate::migrate::flow::tables::execute_keyed;
use crate::migrate::MigrateError;

/// What one offline UPDATE pass did to one table.
#[derive(Debug, Clone, Serialize)]
pub struct OfflineTableUpdate {
    pub table: String,
    /// Rows in the table (the figure the online backfill walks over).
    pub rows: i64,
    /// Rows the UPDATEs wrote.
    pub rows_updated: u64,
    pub seconds: f64,
}

/// The whole offline pass: every linked table, in backfill order.
#[derive(Debug, Clone, Serialize)]
pub struct OfflineBackfill {
    pub tables: Vec<OfflineTableUpdate>,
    pub rows: i64,
    pub rows_updated: u64,
    pub seconds: f64,
}

/// Runs the backfill's UPDATEs over whole tables in one transaction (the database must be at
/// `flow_expand`, as it is before `flow_backfill`).
pub async fn offline_backfill(db: &Db) -> Result<OfflineBackfill, MigrateError> {
    let engine = db.engine();
    let started = Instant::now();
    let mut tables = Vec::new();
    let mut tx = db.begin_write().await?;
    for linked in LINKED_TABLES {
        let table = linked.name;
        let table_started = Instant::now();
        let rows: i64 = crate::on_tx!(&mut tx, conn => {
            sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&mut **conn)
                .await?
        });
        let mut rows_updated = 0;
        for statement in batch_statements(engine, linked) {
            let sql = statement.replace("{range}", "1 = 1");
            rows_updated += execute_keyed(&mut tx, &sql, &[]).await?;
        }
        tables.push(OfflineTableUpdate {
            table: table.to_owned(),
            rows,
            rows_updated,
            seconds: seconds(table_started.elapsed()),
        });
    }
    tx.commit().await?;
    Ok(OfflineBackfill {
        rows: tables.iter().map(|t| t.rows).sum(),
        rows_updated: tables.iter().map(|t| t.rows_updated).sum(),
        tables,
        seconds: seconds(started.elapsed()),
    })
}

fn seconds(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64()
}
