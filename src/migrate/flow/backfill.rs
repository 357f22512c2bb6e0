//! The backfill: gives every existing row its `flow_id`, table by table, in batches.
//!
//! Each batch is one short transaction: take the next range of the table's walk (physical
//! positions: pages on PostgreSQL, rowids on SQLite, see [`crate::migrate::flow::walk`];
//! never an OFFSET from the start), run the table's set-based UPDATEs over it, and store the new cursor in
//! `flowkey_backfill_progress` in the same transaction. A run killed at any moment therefore
//! resumes at the first batch not committed, and only rows whose `flow_id` is still NULL are
//! touched, so a resumed run ends exactly like an uninterrupted one. The batch size adapts to
//! `RunOptions::target_batch_time`.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sqlx::Row;

use crate::db::{Db, Engine};
use crate::migrate::flow::tables::{begin_batch, execute_keyed, tenant_agrees, FLOW_COLUMN_TABLES};
use crate::migrate::flow::walk::Walk;
use crate::migrate::{AuditSink, MigrateError, ProgressDisplay, RunOptions, StepContext};

const MIN_BATCH: i64 = 1;
const MAX_BATCH: i64 = 50_000;
/// How often a `progress` event goes to the audit log while a table is being backfilled.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// The SQLite text of [`crate::ids::SessionId::parse`] over a column (`$COL`): trim, strip a
/// `disc_session_` or `session-` prefix in any case, lowercase, require a hyphenated UUID.
/// On PostgreSQL the same is the function `flowkey_parse_session_id(text)`.
pub const SQLITE_PARSE_SESSION_TEMPLATE: &str =
    include_str!("../sql/flow_parse_session.sqlite.sql");

/// How far a backfill run may go (tests interrupt it to prove that resuming is exact).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchLimit {
    Unlimited,
    /// Stop (as a kill would) after this many committed batches in this run.
    StopAfter(u32),
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BackfillOutcome {
    pub tables: Vec<TableBackfill>,
    /// The run stopped at its batch limit before finishing every table.
    pub stopped_early: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableBackfill {
    pub table: String,
    /// Rows walked over, including batches of earlier (interrupted) runs.
    pub rows_done: i64,
    pub batches_this_run: u32,
    pub rows_per_second: f64,
    pub finished: bool,
}

/// The `Action::Code` body of `flow_backfill`'s step for one table.
macro_rules! table_step {
    ($fn_name:ident, $table:literal) => {
        pub fn $fn_name<'a, 'b>(
            ctx: &'a mut StepContext<'b>,
        ) -> BoxFuture<'a, Result<(), MigrateError>> {
            Box::pin(async move {
                backfill_table(
                    ctx.db,
                    $table,
                    ctx.options,
                    ctx.audit,
                    &mut BatchBudget::new(BatchLimit::Unlimited),
                )
                .await
                .map(|_| ())
            })
        }
    };
}
table_step!(backfill_data_imports_step, "data_imports");
table_step!(backfill_raw_import_records_step, "raw_import_records");
table_step!(backfill_import_field_mappings_step, "import_field_mappings");
table_step!(backfill_assets_step, "assets");
table_step!(backfill_access_audit_log_step, "access_audit_log");
table_step!(backfill_llm_usage_logs_step, "llm_usage_logs");

/// Backfills every table in order, resuming from the stored cursors.
pub async fn backfill(
    db: &Db,
    options: &RunOptions,
    audit: &dyn AuditSink,
    limit: BatchLimit,
) -> Result<BackfillOutcome, MigrateError> {
    let mut budget = BatchBudget::new(limit);
    let mut outcome = BackfillOutcome::default();
    for table in FLOW_COLUMN_TABLES {
        let done = backfill_table(db, table, options, audit, &mut budget).await?;
        let finished = done.finished;
        outcome.tables.push(done);
        if !finished {
            outcome.stopped_early = true;
            break;
        }
    }
    Ok(outcome)
}

/// Batches left in a run.
#[derive(Debug)]
pub struct BatchBudget {
    left: Option<u32>,
}

impl BatchBudget {
    pub fn new(limit: BatchLimit) -> Self {
        Self {
            left: match limit {
                BatchLimit::Unlimited => None,
                BatchLimit::StopAfter(n) => Some(n),
            },
        }
    }

    fn exhausted(&self) -> bool {
        self.left == Some(0)
    }

    fn spend(&mut self) {
        if let Some(left) = &mut self.left {
            *left = left.saturating_sub(1);
        }
    }
}

/// Backfills one table from its stored cursor until done or the budget runs out.
pub async fn backfill_table(
    db: &Db,
    table: &str,
    options: &RunOptions,
    audit: &dyn AuditSink,
    budget: &mut BatchBudget,
) -> Result<TableBackfill, MigrateError> {
    let engine = db.engine();
    let (stored_cursor, mut rows_done, finished) = load_progress(db, table).await?;
    if finished {
        return Ok(TableBackfill {
            table: table.to_owned(),
            rows_done,
            batches_this_run: 0,
            rows_per_second: 0.0,
            finished: true,
        });
    }
    if let Db::Postgres(pool) = db {
        // Fresh statistics let the planner join each batch to the small lookup tables
        // (mapping, imports, flows) by hash instead of guessing from a freshly loaded or
        // restored table's empty statistics. ANALYZE samples a bounded number of rows and
        // takes no lock that blocks reads or writes.
        sqlx::query(&format!("ANALYZE {table}"))
            .execute(pool)
            .await?;
    }
    let total: i64 = crate::on_pool!(db, pool => {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(pool).await?
    });
    let mut walk = Walk::resume(db, table, stored_cursor, total).await?;
    let bar = progress_bar(options.progress, table, total, rows_done);
    let started = Instant::now();
    let rows_at_start = rows_done;
    let mut last_report = Instant::now();
    let mut batch_size = i64::from(options.initial_batch_size).clamp(MIN_BATCH, MAX_BATCH);
    let mut batches = 0u32;
    let finished = loop {
        if budget.exhausted() {
            break false;
        }
        let batch_started = Instant::now();
        let Some(batch) = walk.next_batch(batch_size) else {
            fail::fail_point!("backfill::before_sweep", |kind| Err(
                crate::migrate::faults::injected("backfill::before_sweep", kind)
            ));
            sweep(db, table, audit).await?;
            let mut tx = begin_batch(db).await?;
            // Batches count rows by estimate; a finished walk has seen them all.
            rows_done = total;
            mark_finished(&mut tx, table, rows_done).await?;
            tx.commit().await?;
            break true;
        };
        let mut tx = begin_batch(db).await?;
        for statement in batch_statements(engine, table) {
            let sql = statement.replace("{range}", &batch.predicate);
            execute_keyed(&mut tx, &sql, &batch.binds).await?;
        }
        rows_done = (rows_done + batch.rows).min(total);
        save_progress(&mut tx, table, &batch.cursor, rows_done).await?;
        fail::fail_point!("backfill::before_batch_commit", |kind| Err(
            crate::migrate::faults::injected("backfill::before_batch_commit", kind)
        ));
        tx.commit().await?;
        fail::fail_point!("backfill::batch_committed", |kind| Err(
            crate::migrate::faults::injected("backfill::batch_committed", kind)
        ));
        walk.advance(&batch);
        batches += 1;
        budget.spend();
        bar.set_position(rows_done.max(0) as u64);
        batch_size = next_batch_size(
            batch_size,
            batch_started.elapsed(),
            options.target_batch_time,
        );
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            audit
                .record(
                    "progress",
                    serde_json::json!({
                        "table": table,
                        "rows_done": rows_done,
                        "rows_total": total,
                        "rows_per_second": rate(rows_done - rows_at_start, started.elapsed()),
                        "batch_size": batch_size,
                    }),
                )
                .await?;
        }
    };
    bar.finish_and_clear();
    let done = TableBackfill {
        table: table.to_owned(),
        rows_done,
        batches_this_run: batches,
        rows_per_second: rate(rows_done - rows_at_start, started.elapsed()),
        finished,
    };
    audit
        .record("progress", serde_json::to_value(&done).unwrap_or_default())
        .await?;
    Ok(done)
}

/// The closing sweep of a page walk: each batch statement once over the whole table, in one
/// short transaction. It links nothing when the walk saw every row (the normal case); what it
/// links is recorded, so that a table rewritten under the walk shows in the audit log.
async fn sweep(db: &Db, table: &str, audit: &dyn AuditSink) -> Result<(), MigrateError> {
    let started = Instant::now();
    let mut tx = begin_batch(db).await?;
    if let crate::db::Tx::Postgres(conn) = &mut tx {
        // The statistics were taken before the walk (every flow_id NULL) and the small tables
        // may have grown since: under a legacy load at 5M rows PostgreSQL chose a nested loop
        // over data_imports, one bitmap of the whole `session_id IS NULL` index per import,
        // and the sweep ran for over 13 minutes. Hash joins make it one scan of the table
        // whatever the estimates say.
        sqlx::query("SET LOCAL enable_nestloop = off")
            .execute(&mut **conn)
            .await?;
    }
    let mut rows_linked = 0;
    for statement in batch_statements(db.engine(), table) {
        let sql = statement.replace("{range}", "TRUE");
        rows_linked += execute_keyed(&mut tx, &sql, &[]).await?;
    }
    tx.commit().await?;
    if rows_linked > 0 {
        tracing::warn!(
            table,
            rows_linked,
            "the closing sweep linked rows the page walk did not reach"
        );
    }
    audit
        .record(
            "sweep",
            serde_json::json!({
                "table": table,
                "rows_linked": rows_linked,
                "seconds": started.elapsed().as_secs_f64(),
            }),
        )
        .await?;
    Ok(())
}

/// The next batch size: scaled toward the target time, at most doubled or halved at once.
pub fn next_batch_size(current: i64, took: Duration, target: Duration) -> i64 {
    let took = took.as_secs_f64().max(0.000_1);
    let scaled = (current as f64 * target.as_secs_f64() / took) as i64;
    scaled
        .clamp(current / 2, current.saturating_mul(2))
        .clamp(MIN_BATCH, MAX_BATCH)
}

fn rate(rows: i64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        rows as f64 / seconds
    } else {
        0.0
    }
}

fn progress_bar(display: ProgressDisplay, table: &str, total: i64, done: i64) -> ProgressBar {
    let bar = match display {
        ProgressDisplay::Bar => ProgressBar::new(total.max(0) as u64),
        ProgressDisplay::Hidden => ProgressBar::hidden(),
    };
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>22} [{bar:30}] {pos}/{len} rows  {per_sec}  eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(table.to_owned());
    bar.set_position(done.max(0) as u64);
    bar
}

/// The set-based UPDATEs of one batch, in order, with `{range}` standing for the batch's key
/// range over alias `r`. Only rows whose `flow_id` is NULL are written.
pub fn batch_statements(engine: Engine, table: &str) -> Vec<String> {
    let no_flow = not_indexed(engine, "r.flow_id");
    let no_session = not_indexed(engine, "r.session_id");
    let by_session = |table: &str| {
        format!(
            "UPDATE {table} AS r SET flow_id = m.flow_id FROM session_flow_mapping AS m \
             WHERE {{range}} AND {no_flow} IS NULL AND m.session_id = r.session_id AND {tenant}",
            tenant = tenant_agrees("r", "m")
        )
    };
    match table {
        "data_imports" => vec![
            by_session(table),
            format!(
                "UPDATE data_imports AS r SET flow_id = ( \
                   SELECT f.flow_id FROM discovery_flows AS f \
                   WHERE (f.data_import_id = r.id OR f.import_session_id = r.id) AND {tenant} \
                   ORDER BY f.created_at, f.flow_id LIMIT 1) \
                 WHERE {{range}} AND {no_flow} IS NULL AND {no_session} IS NULL \
                   AND EXISTS (SELECT 1 FROM discovery_flows AS f \
                               WHERE (f.data_import_id = r.id OR f.import_session_id = r.id) AND {tenant})",
                tenant = tenant_agrees("r", "f")
            ),
        ],
        "raw_import_records" => vec![
            by_session(table),
            format!(
                "UPDATE raw_import_records AS r SET flow_id = f.flow_id \
                 FROM data_imports AS d JOIN discovery_flows AS f ON f.flow_id = d.flow_id \
                 WHERE {{range}} AND {no_flow} IS NULL AND {no_session} IS NULL \
                   AND d.id = r.data_import_id AND {tenant}",
                tenant = tenant_agrees("r", "f")
            ),
        ],
        "import_field_mappings" => vec![format!(
            "UPDATE import_field_mappings AS r SET flow_id = d.flow_id FROM data_imports AS d \
             WHERE {{range}} AND {no_flow} IS NULL AND d.id = r.data_import_id AND d.flow_id IS NOT NULL"
        )],
        "llm_usage_logs" => vec![format!(
            "UPDATE llm_usage_logs AS r SET flow_id = m.flow_id FROM session_flow_mapping AS m \
             WHERE {{range}} AND {no_flow} IS NULL AND {no_session} IS NOT NULL \
               AND m.session_id = {parsed} AND {tenant}",
            parsed = parse_session_sql(engine, "r.session_id"),
            tenant = tenant_agrees("r", "m")
        )],
        _ => vec![by_session(table)],
    }
}

/// A column reference SQLite cannot answer from an index on that column, so that each batch
/// stays driven by its position range. Without ANALYZE statistics SQLite walks the
/// `session_id` index for `IS NULL` instead of the key range, every batch visiting every
/// session-less row of the table (1M rows: 0.63 s per batch instead of 0.019 s); the unary
/// plus hides the column from its indexes. PostgreSQL keeps the plain column: hiding it there
/// (a cast to text) made the planner drive the batch from `data_imports` instead, 6x slower.
fn not_indexed(engine: Engine, column: &str) -> String {
    match engine {
        Engine::Sqlite => format!("+{column}"),
        Engine::Postgres => column.to_owned(),
    }
}

/// SQL giving the canonical session id named by a free-text column, or NULL.
pub fn parse_session_sql(engine: Engine, column: &str) -> String {
    match engine {
        Engine::Postgres => format!("flowkey_parse_session_id({column})"),
        Engine::Sqlite => SQLITE_PARSE_SESSION_TEMPLATE.trim().replace("$COL", column),
    }
}

fn now_sql(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "now()",
        Engine::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    }
}

async fn load_progress(db: &Db, table: &str) -> Result<(Option<String>, i64, bool), MigrateError> {
    let row = crate::on_pool!(db, pool => {
        sqlx::query(
            "SELECT last_key, rows_done, CASE WHEN finished_at IS NULL THEN 0 ELSE 1 END \
             FROM flowkey_backfill_progress WHERE table_name = $1",
        )
        .bind(table)
        .fetch_optional(pool)
        .await?
        .map(|row| -> Result<_, sqlx::Error> {
            Ok((
                row.try_get::<Option<String>, _>(0)?,
                row.try_get::<i64, _>(1)?,
                row.try_get::<i32, _>(2)? == 1,
            ))
        })
        .transpose()?
    });
    Ok(row.unwrap_or((None, 0, false)))
}

async fn save_progress(
    tx: &mut crate::db::Tx<'_>,
    table: &str,
    last_key: &str,
    rows_done: i64,
) -> Result<(), MigrateError> {
    let sql = format!(
        "INSERT INTO flowkey_backfill_progress (table_name, last_key, rows_done) VALUES ($1, $2, $3) \
         ON CONFLICT (table_name) DO UPDATE SET last_key = excluded.last_key, \
         rows_done = excluded.rows_done, updated_at = {now}",
        now = now_sql(tx.engine())
    );
    crate::on_tx!(tx, conn => {
        sqlx::query(&sql).bind(table).bind(last_key).bind(rows_done).execute(&mut **conn).await?;
    });
    Ok(())
}

async fn mark_finished(
    tx: &mut crate::db::Tx<'_>,
    table: &str,
    rows_done: i64,
) -> Result<(), MigrateError> {
    let now = now_sql(tx.engine());
    let sql = format!(
        "INSERT INTO flowkey_backfill_progress (table_name, rows_done, finished_at) VALUES ($1, $2, {now}) \
         ON CONFLICT (table_name) DO UPDATE SET finished_at = {now}, updated_at = {now}"
    );
    crate::on_tx!(tx, conn => {
        sqlx::query(&sql).bind(table).bind(rows_done).execute(&mut **conn).await?;
    });
    Ok(())
}

/// What `--sql` prints for a backfill step.
pub const BACKFILL_DESCRIBE: &str = "\
-- batches of physical positions of the table as it was when the run started, one transaction
-- per batch: PostgreSQL pages [p, p + n) (r.ctid >= '(p,0)' AND r.ctid < '(p+n,0)', a TID
-- range scan), SQLite rowids [p, p + n); then one closing sweep of each statement over the
-- whole table (links nothing unless the table was rewritten under the walk):
--   UPDATE <table> AS r SET flow_id = m.flow_id FROM session_flow_mapping AS m
--     WHERE <batch range> AND r.flow_id IS NULL AND m.session_id = r.session_id
--       AND tenant columns of r, where set, equal m's;
--   (data_imports without session: the earliest flow naming it in data_import_id/import_session_id;
--    raw_import_records without session and import_field_mappings: their import's flow;
--    llm_usage_logs: the session named by its free text, parsed like a client's id)
--   INSERT INTO flowkey_backfill_progress ... ON CONFLICT DO UPDATE (same transaction);
-- N adapts to the target batch time.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_size_moves_toward_the_target_within_bounds() {
        let target = Duration::from_millis(200);
        assert_eq!(
            next_batch_size(1_000, Duration::from_millis(200), target),
            1_000
        );
        assert_eq!(
            next_batch_size(1_000, Duration::from_millis(10), target),
            2_000
        );
        assert_eq!(next_batch_size(1_000, Duration::from_secs(10), target), 500);
        assert_eq!(
            next_batch_size(MAX_BATCH, Duration::from_millis(1), target),
            MAX_BATCH
        );
        assert_eq!(
            next_batch_size(MIN_BATCH, Duration::from_secs(60), target),
            MIN_BATCH
        );
    }

    #[test]
    fn every_table_has_statements_with_a_range() {
        for engine in [Engine::Sqlite, Engine::Postgres] {
            for table in FLOW_COLUMN_TABLES {
                let statements = batch_statements(engine, table);
                assert!(!statements.is_empty());
                assert!(
                    statements.iter().all(|sql| sql.contains("{range}")),
                    "{table}"
                );
            }
        }
    }
}
