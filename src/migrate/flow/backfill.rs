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
use crate::migrate::flow::error::FlowMigrationError;
use crate::migrate::flow::linked::{linked_table, Applies, LinkedTable};
use crate::migrate::flow::tables::{begin_batch, commit_batch, execute_keyed, refresh_statistics};
use crate::migrate::flow::walk::Walk;
use crate::migrate::throttle::{wait_while_throttled, ThrottleReason};
use crate::migrate::{AuditSink, MigrateError, ProgressDisplay, RunOptions, StepContext};

const MIN_BATCH: i64 = 1;
const MAX_BATCH: i64 = 50_000;
/// How often a `progress` event goes to the audit log while a table is being backfilled.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize)]
pub struct TableBackfill {
    pub table: String,
    /// Rows walked over, including batches of earlier (interrupted) runs.
    pub rows_done: i64,
    pub batches_this_run: u32,
    pub rows_per_second: f64,
}

/// How a backfill step's name starts ("backfill assets"): the revisions that UPDATE
/// `flow_id` in existing rows are those with such a step (see
/// [`updates_flow_ids`]).
pub const STEP_NAME_PREFIX: &str = "backfill ";

/// Whether `revision` UPDATEs `flow_id` in existing rows (it has a backfill step).
pub fn updates_flow_ids(revision: &crate::migrate::Revision) -> bool {
    revision
        .up
        .iter()
        .any(|step| step.name.starts_with(STEP_NAME_PREFIX))
}

/// The `Action::Code` body of `flow_backfill`'s step for one linked table (the runner gives
/// the step's table in [`StepContext::table`]).
pub fn backfill_step<'a, 'b>(
    ctx: &'a mut StepContext<'b>,
) -> BoxFuture<'a, Result<(), MigrateError>> {
    Box::pin(async move {
        let table = step_table(ctx)?;
        backfill_table(ctx.db, table, ctx.options, ctx.audit)
            .await
            .map(|_| ())
    })
}

/// Forgets one table's backfill cursor (the way down from a revision that linked it).
pub fn reset_progress_sql(_: Engine, table: &'static str) -> String {
    // The name comes from the linked tables' descriptions, never from input.
    format!("DELETE FROM flowkey_backfill_progress WHERE table_name = '{table}';\n")
}

/// The linked table a per-table step works on.
pub fn step_table(ctx: &StepContext<'_>) -> Result<&'static LinkedTable, MigrateError> {
    ctx.table.and_then(linked_table).ok_or_else(|| {
        FlowMigrationError::StepWithoutLinkedTable {
            step: ctx.step.to_owned(),
        }
        .into()
    })
}

/// What one table's backfill amounts to, set-based: each batch statement over the whole
/// table (what `--sql` prints, and what the revision's checksum covers).
pub fn whole_table_sql(engine: Engine, table: &'static str) -> String {
    let Some(table) = linked_table(table) else {
        return format!("-- {table} is not a linked table\n");
    };
    let mut out = String::new();
    for statement in batch_statements(engine, table) {
        out.push_str(&statement.replace("{range}", "TRUE"));
        out.push_str(";\n");
    }
    out
}

/// One table's backfill as SQL that runs as is (the runnable `--sql` script): the
/// set-based statements of [`whole_table_sql`] (every path over the whole table, in the
/// order the batches run them), then on PostgreSQL the table analyzed as the online walk
/// leaves it analyzed, then the table recorded finished in `flowkey_backfill_progress` as
/// the runner records it (no cursor: nothing to resume).
pub fn whole_table_offline_sql(engine: Engine, table: &'static str) -> String {
    let now = now_sql(engine);
    // As the online walk does before it records a table finished.
    let analyze = match engine {
        Engine::Postgres => format!("ANALYZE {table};\n"),
        Engine::Sqlite => String::new(),
    };
    format!(
        "{}{analyze}INSERT INTO flowkey_backfill_progress (table_name, rows_done, finished_at) \
         SELECT '{table}', count(*), {now} FROM {table} \
         ON CONFLICT (table_name) DO UPDATE SET finished_at = {now}, updated_at = {now};\n",
        whole_table_sql(engine, table)
    )
}

/// Backfills one table from its stored cursor until done.
pub async fn backfill_table(
    db: &Db,
    linked: &'static LinkedTable,
    options: &RunOptions,
    audit: &dyn AuditSink,
) -> Result<TableBackfill, MigrateError> {
    let engine = db.engine();
    let table = linked.name;
    let (stored_cursor, mut rows_done, already_finished) = load_progress(db, table).await?;
    if already_finished {
        return Ok(TableBackfill {
            table: table.to_owned(),
            rows_done,
            batches_this_run: 0,
            rows_per_second: 0.0,
        });
    }
    // Fresh statistics let the planner join each batch to the small lookup tables
    // (mapping, imports, flows) by hash instead of guessing from a freshly loaded or
    // restored table's empty statistics. ANALYZE samples a bounded number of rows and
    // takes no lock that blocks reads or writes.
    refresh_statistics(db, table).await?;
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
    let show_reason = |reason: Option<&ThrottleReason>| {
        bar.set_message(reason.map_or_else(
            || table.to_owned(),
            |reason| format!("{table} throttled: {reason}"),
        ));
    };
    loop {
        // Between committed batches: nothing is held while the cluster catches up.
        wait_while_throttled(db, &options.throttle, audit, &show_reason).await?;
        let batch_started = Instant::now();
        let Some(batch) = walk.next_batch(batch_size) else {
            fail::fail_point!("backfill::before_sweep", |kind| Err(
                crate::migrate::faults::injected("backfill::before_sweep", kind)
            ));
            sweep(db, linked, options.long_transaction_wait, audit).await?;
            // Statistics of the table as the walk left it. The ANALYZE before the walk saw
            // every `flow_id` NULL, and the next revision is planned from statistics:
            // `VALIDATE CONSTRAINT`'s search for flows that do not exist (`flow_id IS NOT
            // NULL` anti-joined to `discovery_flows`) was estimated at one row and run as a
            // nested loop reading the flows once per row: 13.9 s for raw_import_records' 1M
            // rows (156 flows), 0.38 s as the hash anti-join it is after this ANALYZE.
            // Taken before the table is recorded finished, so a run killed in between
            // analyzes on its resume.
            refresh_statistics(db, table).await?;
            let mut tx = begin_batch(db).await?;
            // Batches count rows by estimate; a finished walk has seen them all.
            rows_done = total;
            mark_finished(&mut tx, table, rows_done).await?;
            commit_batch(tx).await?;
            break;
        };
        let mut tx = begin_batch(db).await?;
        for statement in keyed_batch_statements(engine, linked) {
            let sql = statement.replace("{range}", &batch.predicate);
            execute_keyed(&mut tx, &sql, &batch.binds).await?;
        }
        rows_done = (rows_done + batch.rows).min(total);
        save_progress(&mut tx, table, &batch.cursor, rows_done).await?;
        fail::fail_point!("backfill::before_batch_commit", |kind| Err(
            crate::migrate::faults::injected("backfill::before_batch_commit", kind)
        ));
        commit_batch(tx).await?;
        fail::fail_point!("backfill::batch_committed", |kind| Err(
            crate::migrate::faults::injected("backfill::batch_committed", kind)
        ));
        walk.advance(&batch);
        batches += 1;
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
    }
    bar.finish_and_clear();
    let done = TableBackfill {
        table: table.to_owned(),
        rows_done,
        batches_this_run: batches,
        rows_per_second: rate(rows_done - rows_at_start, started.elapsed()),
    };
    audit
        .record("progress", serde_json::to_value(&done).unwrap_or_default())
        .await?;
    Ok(done)
}

/// How long the closing sweep waits between passes while rows it could link are held by
/// other transactions. It gives up after the run's `long_transaction_wait`, the same wait
/// online DDL gives the application's long transactions.
const SWEEP_PAUSE: Duration = Duration::from_millis(100);

/// The closing sweep of a page walk: the batch statement once over the whole table, in one
/// short transaction, repeated while rows it could link remain. It links nothing when the
/// walk saw every row (the normal case); what it links is recorded, so that a table
/// rewritten under the walk shows in the audit log. On PostgreSQL the statement skips rows
/// the application holds (`SKIP LOCKED`), so it never waits on the application; the
/// dual-write trigger links a row the application writes, and a row it only locked is
/// linked by the next pass.
async fn sweep(
    db: &Db,
    linked: &LinkedTable,
    wait: Duration,
    audit: &dyn AuditSink,
) -> Result<(), MigrateError> {
    let table = linked.name;
    let started = Instant::now();
    let mut rows_linked = 0;
    let mut passes = 0u32;
    let left = loop {
        passes += 1;
        let mut tx = begin_batch(db).await?;
        for statement in keyed_batch_statements(db.engine(), linked) {
            let sql = statement.replace("{range}", "1 = 1");
            rows_linked += execute_keyed(&mut tx, &sql, &[]).await?;
        }
        commit_batch(tx).await?;
        let left = linkable_left(db, linked).await?;
        if left == 0 || started.elapsed() >= wait {
            break left;
        }
        tokio::time::sleep(SWEEP_PAUSE).await;
    };
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
                "passes": passes,
                "rows_left_locked": left,
                "seconds": started.elapsed().as_secs_f64(),
            }),
        )
        .await?;
    if left > 0 {
        return Err(FlowMigrationError::SweepBlocked {
            table: table.to_owned(),
            rows: left,
            seconds: started.elapsed().as_secs(),
        }
        .into());
    }
    Ok(())
}

/// Rows of `linked` without a flow that the rules would give one: after a sweep pass, the
/// rows other transactions held (or wrote after the pass began).
async fn linkable_left(db: &Db, linked: &LinkedTable) -> Result<i64, MigrateError> {
    let engine = db.engine();
    let sql = format!(
        "SELECT count(*) FROM {t} r WHERE r.flow_id IS NULL AND {expected} IS NOT NULL",
        t = linked.name,
        expected = linked.expected_flow_sql(engine, "r"),
    );
    Ok(crate::on_pool!(db, pool => {
        sqlx::query_scalar(&sql).fetch_one(pool).await?
    }))
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
    crate::measure::per_second(rows as f64, elapsed)
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

/// The set-based UPDATEs of one batch, in order, with `{range}` standing for the batch's
/// position range over alias `r`: one statement per path of the table's rule
/// ([`LinkedTable::paths`]). Only rows whose `flow_id` is NULL are written.
pub fn batch_statements(engine: Engine, table: &LinkedTable) -> Vec<String> {
    let t = table.name;
    let no_flow = not_indexed(engine, "r.flow_id");
    table
        .paths(engine, "r")
        .into_iter()
        .map(|path| {
            let applies = match path.applies {
                Applies::WithSession => {
                    format!(" AND {} IS NOT NULL", not_indexed(engine, "r.session_id"))
                }
                Applies::WithoutSession => {
                    format!(" AND {} IS NULL", not_indexed(engine, "r.session_id"))
                }
                Applies::Always => String::new(),
            };
            match path.order {
                // At most one candidate: a join, which the planner can hash.
                None => format!(
                    "UPDATE {t} AS r SET flow_id = {flow} FROM {source} \
                     WHERE {{range}} AND {no_flow} IS NULL{applies} AND {matches}",
                    flow = path.flow,
                    source = path.source,
                    matches = path.matches(),
                ),
                // The first of several candidates: a subquery per row that has one.
                Some(_) => format!(
                    "UPDATE {t} AS r SET flow_id = {first} \
                     WHERE {{range}} AND {no_flow} IS NULL{applies} \
                       AND EXISTS (SELECT 1 FROM {source} WHERE {matches})",
                    first = path.flow_subquery(),
                    source = path.source,
                    matches = path.matches(),
                ),
            }
        })
        .collect()
}

/// The statements of one batch of the online backfill, `{range}` as in [`batch_statements`].
///
/// On PostgreSQL one statement: the rows of the range without a flow that no other
/// transaction holds (`FOR UPDATE SKIP LOCKED`), each given its flow by a scalar subquery
/// per path ([`LinkedTable::expected_flow_sql`]). One statement takes its row locks in one
/// pass and never waits for a row the application holds, so a batch can neither wait on nor
/// deadlock with the application (two UPDATEs per batch did deadlock with an application
/// UPDATE of the same import's rows). And the plan cannot go wrong with the statistics: the
/// range is a TID range scan and every lookup an index probe by primary key, where the join
/// form let a misleading ANALYZE of `data_imports` (every `flow_id` NULL before its own
/// backfill) pick a nested loop that made `import_field_mappings` crawl at 845 rows/s.
///
/// SQLite keeps the per-path set-based statements: it has no row locks (a batch holds the
/// database's write lock, which writers wait for on their busy timeout) and those plans are
/// driven by the range already (see [`not_indexed`]).
pub fn keyed_batch_statements(engine: Engine, table: &LinkedTable) -> Vec<String> {
    match engine {
        Engine::Sqlite => batch_statements(engine, table),
        Engine::Postgres => vec![format!(
            // `OFFSET 0` keeps the planner from pushing `l.flow IS NOT NULL` into the
            // subquery, which evaluated every lookup twice per row.
            // The range bounds both sides (the subquery's `r` is its own alias): joined on
            // `id` alone, the planner hashed the locked rows against a scan of the whole
            // table, per batch.
            "UPDATE {t} AS r SET flow_id = l.flow \
             FROM (SELECT r.id, {expected} AS flow FROM {t} AS r \
                   WHERE {{range}} AND r.flow_id IS NULL \
                   OFFSET 0 FOR UPDATE OF r SKIP LOCKED) AS l \
             WHERE {{range}} AND r.id = l.id AND l.flow IS NOT NULL",
            t = table.name,
            expected = table.expected_flow_sql(engine, "r"),
        )],
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

fn now_sql(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "now()",
        Engine::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    }
}

/// The tables of `linked` whose backfill is not recorded finished in
/// `flowkey_backfill_progress` (which `flow_mapping` creates, below every revision that adds
/// a `flow_id`). Reads only.
pub async fn unfinished_tables(
    db: &Db,
    linked: &[&LinkedTable],
) -> Result<Vec<String>, MigrateError> {
    let finished: Vec<String> = crate::on_pool!(db, pool => {
        sqlx::query_scalar(
            "SELECT table_name FROM flowkey_backfill_progress WHERE finished_at IS NOT NULL",
        )
        .fetch_all(pool)
        .await?
    });
    Ok(linked
        .iter()
        .filter(|table| !finished.iter().any(|name| name == table.name))
        .map(|table| table.name.to_owned())
        .collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::flow::linked::LINKED_TABLES;

    /// The bar a run shows (stderr) starts at the rows a resumed run had done, out of the
    /// table's rows, named by the table; the hidden one (`--no-progress`) keeps the position.
    #[test]
    fn a_resumed_backfill_shows_its_progress_from_where_it_stopped() {
        let bar = progress_bar(ProgressDisplay::Bar, "raw_import_records", 1_000, 400);
        assert_eq!(
            (bar.position(), bar.length(), bar.message().as_str()),
            (400, Some(1_000), "raw_import_records")
        );
        bar.finish_and_clear();
        let hidden = progress_bar(ProgressDisplay::Hidden, "raw_import_records", 1_000, 400);
        assert_eq!(hidden.position(), 400);
    }

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
            for table in LINKED_TABLES {
                let statements = batch_statements(engine, table);
                assert_eq!(statements.len(), table.paths(engine, "r").len());
                assert!(
                    statements.iter().all(|sql| sql.contains("{range}")),
                    "{}",
                    table.name
                );
            }
        }
    }

    /// A per-table generator given a table that gets no flow_id prints a comment saying so
    /// (what `--sql` shows) instead of SQL about a table it knows nothing of.
    #[test]
    fn per_table_sql_for_a_table_that_is_not_linked_says_so() {
        use crate::migrate::flow::expand::{link_table_sql, unlink_table_sql};
        let generators: [fn(Engine, &'static str) -> String; 3] =
            [whole_table_sql, link_table_sql, unlink_table_sql];
        for engine in [Engine::Sqlite, Engine::Postgres] {
            for generate in generators {
                assert_eq!(
                    generate(engine, "engagements"),
                    "-- engagements is not a linked table\n"
                );
            }
        }
    }
}
