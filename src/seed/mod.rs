//! `seed`: fills a database with realistic legacy data, every oddity of
//! shared/legacy/README.md included, to rehearse and test the migration on.
//!
//! # Reproducibility
//! Every id (UUID v4 built from random bytes) and every timestamp (a fixed epoch plus random
//! offsets) comes from one ChaCha8 stream, never from the clock. The stream's key is the hash
//! of `--seed` and of the number of rows already in `data_import_sessions`, so:
//! - the same config on an empty database always produces the same rows, byte for byte;
//! - a second run on a database that already holds data draws from another stream, so its ids
//!   do not collide with the first run's (and a run that fails half way changes the count too).
//!
//! # Scale
//! Rows are produced one import at a time and written in chunks of about
//! [`CHUNK_RAW_RECORDS`] raw records, one transaction per chunk; raw records are produced in
//! batches even inside one import, so memory stays flat whatever the size. PostgreSQL takes
//! raw records through COPY, every other table through multi-row INSERTs.
//!
//! # Interruption
//! Each chunk commits on its own, so a killed run leaves the chunks it finished: consistent
//! data (every foreign key holds), only fewer imports than asked. Running again adds a
//! complete new set on top (the session count has changed, so the ids are new); it does not
//! resume the interrupted one.

mod config;
mod error;
mod generate;
mod oddities;
mod write;

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

pub use config::SeedConfig;
pub use error::SeedError;
pub use generate::{CMDB_COLUMNS, PHASE_NAMES, PLACEHOLDER_TENANT};
pub use oddities::{Oddities, OdditySpec, PerOddity, ODDITIES};

use crate::db::{Db, Engine};
use crate::migrate::revisions::legacy::LEGACY_TABLES;
use crate::migrate::ProgressDisplay;
use generate::{Generator, PendingRows};
use write::{Cell, Table};

/// Raw records per chunk (one transaction).
pub const CHUNK_RAW_RECORDS: u64 = 50_000;
/// Other rows per chunk, for runs with few raw records per import.
const CHUNK_OTHER_ROWS: usize = 20_000;

/// What a run inserted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeedSummary {
    pub seed: u64,
    /// Rows `data_import_sessions` held before the run (mixed into the random stream).
    pub existing_sessions: u64,
    /// Whether the run created the legacy schema (the database was empty).
    pub created_schema: bool,
    /// Rows inserted per legacy table, in the schema's creation order.
    pub tables: Vec<TableRows>,
    /// The oddity rates the run used.
    pub oddities: Oddities,
    #[serde(rename = "elapsed_seconds", serialize_with = "seconds")]
    pub elapsed: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableRows {
    pub table: &'static str,
    pub rows: u64,
}

impl SeedSummary {
    /// Rows inserted into `table` (0 for a table the seed does not know).
    pub fn rows(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .find(|entry| entry.table == table)
            .map_or(0, |entry| entry.rows)
    }

    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|entry| entry.rows).sum()
    }

    /// Rows per second over the whole run.
    pub fn rows_per_second(&self) -> f64 {
        per_second(self.total_rows(), self.elapsed)
    }

    /// Raw import records per second over the whole run.
    pub fn raw_records_per_second(&self) -> f64 {
        per_second(self.rows(generate::RAW_RECORDS.name), self.elapsed)
    }

    fn add(&mut self, table: &Table, rows: usize) {
        let rows = u64::try_from(rows).unwrap_or(u64::MAX);
        if let Some(entry) = self
            .tables
            .iter_mut()
            .find(|entry| entry.table == table.name)
        {
            entry.rows += rows;
        }
    }
}

fn per_second(rows: u64, elapsed: Duration) -> f64 {
    crate::measure::per_second(rows as f64, elapsed)
}

fn seconds<S: serde::Serializer>(elapsed: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(elapsed.as_secs_f64())
}

/// What [`ensure_legacy_schema`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacySchema {
    /// The database had none of the legacy tables; they were created.
    Created,
    /// The database already had every legacy table.
    Present,
}

/// Makes sure the database has the legacy schema: creates it in an empty database, accepts a
/// database that has every legacy table, refuses one that has some but not all.
///
pub async fn ensure_legacy_schema(db: &Db) -> Result<LegacySchema, SeedError> {
    let present = write::existing_legacy_tables(db).await?;
    if present.is_empty() {
        // Through the revision runner, so the seeded database is recorded at `legacy`.
        crate::migrate::Migrator::new(db.clone(), crate::migrate::RunOptions::default())
            .upgrade("legacy")
            .await?;
        return Ok(LegacySchema::Created);
    }
    if present.len() == LEGACY_TABLES.len() {
        return Ok(LegacySchema::Present);
    }
    let missing: Vec<&str> = LEGACY_TABLES
        .iter()
        .copied()
        .filter(|table| !present.contains(table))
        .collect();
    Err(SeedError::PartialLegacySchema {
        present: present.join(", "),
        missing: missing.join(", "),
    })
}

/// Fills `db` with legacy data as `config` says, creating the legacy schema first if the
/// database is empty. See the module documentation for reproducibility and scale.
pub async fn seed(db: &Db, config: &SeedConfig) -> Result<SeedSummary, SeedError> {
    config.validate()?;
    let started = Instant::now();
    let created_schema = ensure_legacy_schema(db).await? == LegacySchema::Created;
    let existing_sessions = write::count_sessions(db).await?;
    let mut summary = SeedSummary {
        seed: config.seed,
        existing_sessions,
        created_schema,
        tables: LEGACY_TABLES
            .iter()
            .map(|table| TableRows { table, rows: 0 })
            .collect(),
        oddities: config.oddities,
        elapsed: Duration::ZERO,
    };
    let progress = progress_bar(config);
    let mut generator = Generator::new(config, existing_sessions);

    let tenants = generator.tenant_rows();
    let mut tx = db.begin_write().await?;
    for (table, rows) in [
        (&generate::CLIENT_ACCOUNTS, &tenants.client_accounts),
        (&generate::ENGAGEMENTS, &tenants.engagements),
        (&generate::USERS, &tenants.users),
    ] {
        write::insert_rows(&mut tx, table, rows).await?;
        summary.add(table, rows.len());
    }
    tx.commit().await?;

    let mut pending = PendingRows::default();
    for tenant in 0..config.tenants as usize {
        for slot in 0..config.imports_per_tenant {
            generator.import_slot(tenant, slot, &mut pending);
            if pending.raw_record_count >= CHUNK_RAW_RECORDS
                || pending.flows.len() + pending.field_mappings.len() >= CHUNK_OTHER_ROWS
            {
                let chunk = std::mem::take(&mut pending);
                write_chunk(db, &mut generator, chunk, &mut summary, &progress).await?;
            }
        }
    }
    write_chunk(db, &mut generator, pending, &mut summary, &progress).await?;
    progress.finish_and_clear();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Writes one chunk in one transaction, tables ordered so every foreign key finds its row.
async fn write_chunk(
    db: &Db,
    generator: &mut Generator,
    chunk: PendingRows,
    summary: &mut SeedSummary,
    progress: &ProgressBar,
) -> Result<(), SeedError> {
    let mut tx = db.begin_write().await?;
    let PendingRows {
        sessions,
        imports,
        assets,
        field_mappings,
        flows,
        access_log,
        deletion_audit,
        llm_log,
        raw_records,
        raw_record_count: _,
    } = chunk;
    for (table, rows) in [
        (&generate::SESSIONS, &sessions),
        (&generate::IMPORTS, &imports),
        (&generate::ASSETS, &assets),
        (&generate::FIELD_MAPPINGS, &field_mappings),
    ] {
        write::insert_rows(&mut tx, table, rows).await?;
        summary.add(table, rows.len());
    }
    let batch_rows = raw_batch_rows(db.engine());
    let mut batch: Vec<Vec<Cell>> = Vec::with_capacity(batch_rows);
    for mut plan in raw_records {
        while !plan.is_done() {
            batch.extend(generator.raw_record_batch(&mut plan, batch_rows - batch.len()));
            if batch.len() >= batch_rows {
                flush_raw(&mut tx, &mut batch, summary, progress).await?;
            }
        }
    }
    flush_raw(&mut tx, &mut batch, summary, progress).await?;
    for (table, rows) in [
        (&generate::FLOWS, &flows),
        (&generate::ACCESS_LOG, &access_log),
        (&generate::DELETION_AUDIT, &deletion_audit),
        (&generate::LLM_LOG, &llm_log),
    ] {
        write::insert_rows(&mut tx, table, rows).await?;
        summary.add(table, rows.len());
    }
    tx.commit().await?;
    Ok(())
}

async fn flush_raw(
    tx: &mut crate::db::Tx<'_>,
    batch: &mut Vec<Vec<Cell>>,
    summary: &mut SeedSummary,
    progress: &ProgressBar,
) -> Result<(), SeedError> {
    if batch.is_empty() {
        return Ok(());
    }
    write::bulk_insert_rows(tx, &generate::RAW_RECORDS, batch).await?;
    summary.add(&generate::RAW_RECORDS, batch.len());
    progress.inc(u64::try_from(batch.len()).unwrap_or(0));
    batch.clear();
    Ok(())
}

/// Raw records per statement: one COPY on PostgreSQL, one multi-row INSERT on SQLite.
fn raw_batch_rows(engine: Engine) -> usize {
    match engine {
        Engine::Postgres => 10_000,
        Engine::Sqlite => write::rows_per_statement(engine, &generate::RAW_RECORDS),
    }
}

fn progress_bar(config: &SeedConfig) -> ProgressBar {
    if config.progress == ProgressDisplay::Hidden || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(
        Some(config.total_raw_records()),
        ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = ProgressStyle::with_template(
        "seeding [{bar:40}] {human_pos}/{human_len} raw records, {rate}, ETA {eta}",
    ) {
        bar.set_style(
            style
                .with_key(
                    "rate",
                    |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                        let _ = write!(out, "{:.0}/s", state.per_sec());
                    },
                )
                .progress_chars("=> "),
        );
    }
    bar
}
