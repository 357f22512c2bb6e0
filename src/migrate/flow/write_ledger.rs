//! The write ledger: a go/no-go that works while the application writes.
//!
//! The exact proof (`verify` against the fingerprints taken before the upgrade) compares
//! whole-table sums, so any write by the application makes it fail, and it cannot say whether
//! a difference is the application's or flowkey's. The ledger tells them apart, row by row:
//!
//! - **Who wrote**: triggers on the legacy tables append `(table, id)` to
//!   `flowkey_write_ledger` for every row the application inserts, updates or deletes (first
//!   write only). flowkey's own writes are marked and left out: on PostgreSQL its batch
//!   transactions set `flowkey.writer = 'migration'` (transaction-local), on SQLite they hold
//!   a row in `flowkey_migration_writer`, which only their own transaction can see (SQLite
//!   has one writer at a time, and no other connection sees an uncommitted row) and which
//!   they delete before they commit. Marked: every backfill, sweep and catch-up batch and the
//!   contract's archive batches (`tables::begin_batch` / `tables::commit_batch`), which are
//!   all of flowkey's writes to rows of legacy tables from this revision on.
//! - **What was there**: when the ledger starts, the row hash of every legacy row (the
//!   fingerprint's own hash, per row, `flowkey_row_baseline`) is stored once.
//! - **The comparison** ([`compare`]): every row whose hash now differs from its baseline,
//!   every row lost and every row added, that the ledger does not name, is a change the
//!   application did not make: named, and the go/no-go fails.
//!
//! Guarantee: from the ledger's start, a legacy value changed or a row lost or added by
//! anything but the application (flowkey included) is caught and named. What it does not
//! cover: rows the application wrote since the start (theirs, by definition; their links are
//! still checked by `verify`'s link checks), and anything before the start. The start is the
//! `write_ledger` revision; when the database was quiet then, the baseline's per-table sums
//! equal the fingerprints taken before the upgrade and the ledger is *continuous* with them
//! (recorded): the proof then reaches back to before the upgrade. When the application wrote
//! during the upgrade, the window from the fingerprints to the ledger's start is proven by
//! `flowkey rehearse` (same code, a copy of the same data) and by the link checks, not row by
//! row. After the contract the legacy values live in its archive and the comparison stops.

use std::collections::HashSet;

use serde::Serialize;
use sqlx::Row;

use crate::db::{Db, Engine, Tx};
use crate::migrate::flow::error::FlowMigrationError;
use crate::migrate::flow::fingerprint::{
    hash_text_of_sum, load_baseline, open_own_connection, pin_text_settings, run_blocking,
    rusqlite_row_hash, RowHashes,
};
use crate::migrate::flow::verify::OFFENDING_ROWS_CAP;
use crate::migrate::revisions::legacy::LEGACY_TABLES;
use crate::migrate::{faults, MigrateError, StepContext, StepSql};

/// The revision that starts the ledger.
pub const REVISION: &str = "write_ledger";

/// The PostgreSQL setting flowkey's batch transactions carry (transaction-local).
const WRITER_SETTING: &str = "flowkey.writer";
/// SQLite: the table whose uncommitted row marks flowkey's own transaction.
const MARKER_TABLE: &str = "flowkey_migration_writer";
/// Rows read per SQLite chunk (baseline and comparison).
const CHUNK: i64 = 5_000;

pub const INSTALL: StepSql = StepSql::Generated(install_sql);
pub const REMOVE: StepSql = StepSql::Generated(remove_sql);
/// What the baseline step runs, described (a check: it writes only flowkey's own table).
pub const BASELINE: StepSql = StepSql::Generated(baseline_sql);
/// The baseline step as a statement that runs as is (PostgreSQL).
pub const BASELINE_OFFLINE: StepSql = StepSql::Generated(baseline_offline_sql);

const TABLES_POSTGRES: &str = "\
CREATE TABLE IF NOT EXISTS flowkey_write_ledger (
    table_name        varchar(63) NOT NULL,
    row_id            text NOT NULL,
    first_written_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (table_name, row_id)
);
CREATE TABLE IF NOT EXISTS flowkey_row_baseline (
    table_name  varchar(63) NOT NULL,
    row_id      text NOT NULL,
    row_hash    bigint NOT NULL,
    PRIMARY KEY (table_name, row_id)
);
CREATE TABLE IF NOT EXISTS flowkey_write_ledger_start (
    started_at  timestamptz NOT NULL,
    continuous  boolean NOT NULL,
    detail      text NOT NULL
);
CREATE OR REPLACE FUNCTION flowkey_write_ledger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO flowkey_write_ledger (table_name, row_id) VALUES (TG_TABLE_NAME, OLD.id::text)
        ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO flowkey_write_ledger (table_name, row_id) VALUES (TG_TABLE_NAME, NEW.id::text)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
";

const TABLES_SQLITE: &str = "\
SELECT count(*) FROM sqlite_master;
CREATE TABLE IF NOT EXISTS flowkey_write_ledger (
    table_name        TEXT NOT NULL,
    row_id            TEXT NOT NULL,
    first_written_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (table_name, row_id)
);
CREATE TABLE IF NOT EXISTS flowkey_row_baseline (
    table_name  TEXT NOT NULL,
    row_id      TEXT NOT NULL,
    row_hash    INTEGER NOT NULL,
    PRIMARY KEY (table_name, row_id)
);
CREATE TABLE IF NOT EXISTS flowkey_write_ledger_start (
    started_at  TEXT NOT NULL,
    continuous  INTEGER NOT NULL,
    detail      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS flowkey_migration_writer (
    marked  INTEGER NOT NULL
);
";

/// The ledger's tables and a trigger per legacy table. The triggers name only `id`, so the
/// contract can drop and restore any other column under them (and a SQLite table rebuild,
/// which creates a table's triggers again from their text, keeps them working).
pub fn install_sql(engine: Engine) -> String {
    let mut out = String::from(match engine {
        Engine::Postgres => TABLES_POSTGRES,
        Engine::Sqlite => TABLES_SQLITE,
    });
    for table in LEGACY_TABLES {
        out.push_str(&triggers_sql(engine, table));
    }
    out
}

fn triggers_sql(engine: Engine, t: &str) -> String {
    match engine {
        Engine::Postgres => format!(
            "DROP TRIGGER IF EXISTS flowkey_write_ledger ON {t};\n\
             CREATE TRIGGER flowkey_write_ledger AFTER INSERT OR UPDATE OR DELETE ON {t}\n    \
             FOR EACH ROW WHEN (current_setting('{WRITER_SETTING}', true) IS DISTINCT FROM 'migration')\n    \
             EXECUTE FUNCTION flowkey_write_ledger();\n"
        ),
        Engine::Sqlite => {
            let unmarked = format!("NOT EXISTS (SELECT 1 FROM {MARKER_TABLE})");
            let record = |row: &str| {
                format!(
                    "INSERT OR IGNORE INTO flowkey_write_ledger (table_name, row_id) VALUES ('{t}', {row}.id);"
                )
            };
            format!(
                "CREATE TRIGGER IF NOT EXISTS flowkey_ledger_insert_{t} AFTER INSERT ON {t}\n\
                 WHEN {unmarked} BEGIN {new} END;\n\
                 CREATE TRIGGER IF NOT EXISTS flowkey_ledger_update_{t} AFTER UPDATE ON {t}\n\
                 WHEN {unmarked} BEGIN {old} {new} END;\n\
                 CREATE TRIGGER IF NOT EXISTS flowkey_ledger_delete_{t} AFTER DELETE ON {t}\n\
                 WHEN {unmarked} BEGIN {old} END;\n",
                new = record("NEW"),
                old = record("OLD"),
            )
        }
    }
}

/// The way down: the triggers and the function. The ledger's tables are flowkey's own and
/// stay (emptied: they describe one rollout, and a later upgrade starts a new ledger); with no
/// start row, [`compare`] has nothing to compare.
pub fn remove_sql(engine: Engine) -> String {
    let mut out = String::new();
    if engine == Engine::Sqlite {
        out.push_str("SELECT count(*) FROM sqlite_master;\n");
    }
    for t in LEGACY_TABLES {
        match engine {
            Engine::Postgres => out.push_str(&format!(
                "DROP TRIGGER IF EXISTS flowkey_write_ledger ON {t};\n"
            )),
            Engine::Sqlite => {
                for kind in ["insert", "update", "delete"] {
                    out.push_str(&format!(
                        "DROP TRIGGER IF EXISTS flowkey_ledger_{kind}_{t};\n"
                    ));
                }
            }
        }
    }
    if engine == Engine::Postgres {
        out.push_str("DROP FUNCTION IF EXISTS flowkey_write_ledger();\n");
    }
    out.push_str(
        "DELETE FROM flowkey_write_ledger_start;\n\
         DELETE FROM flowkey_row_baseline;\n\
         DELETE FROM flowkey_write_ledger;\n",
    );
    out
}

fn baseline_sql(engine: Engine) -> String {
    let mut out = String::from(
        "-- the ledger's baseline (writes only flowkey_row_baseline and flowkey_write_ledger_start):\n\
         -- each legacy row's hash, the fingerprint's own, per row\n",
    );
    for t in LEGACY_TABLES {
        match engine {
            Engine::Postgres => out.push_str(&format!(
                "INSERT INTO flowkey_row_baseline (table_name, row_id, row_hash) \
                 SELECT '{t}', r.id::text, <row hash> FROM {t} AS r;\n"
            )),
            Engine::Sqlite => out.push_str(&format!(
                "SELECT r.id, <legacy columns> FROM {t} AS r WHERE r.id > $1 ORDER BY r.id LIMIT $2; \
                 -- hashed in flowkey, then INSERT INTO flowkey_row_baseline\n"
            )),
        }
    }
    out
}

/// PostgreSQL: the baseline as plain statements (V2 row hashes of every legacy column, as
/// the legacy script declares them). SQLite hashes in the process and has no plain form.
fn baseline_offline_sql(engine: Engine) -> String {
    match engine {
        Engine::Sqlite => String::new(),
        Engine::Postgres => {
            let mut out = String::from("DELETE FROM flowkey_row_baseline;\n");
            for t in LEGACY_TABLES {
                let select = crate::migrate::flow::fingerprint::offline_row_hashes_select(t);
                out.push_str(&format!(
                    "INSERT INTO flowkey_row_baseline (table_name, row_id, row_hash) {select};\n"
                ));
            }
            out.push_str(
                "INSERT INTO flowkey_write_ledger_start (started_at, continuous, detail) \
                 VALUES (clock_timestamp(), false, 'taken by the offline script; continuity not computed');\n",
            );
            out
        }
    }
}

/// Where the ledger started and whether it is continuous with the fingerprints taken before
/// the upgrade.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerStart {
    pub started_at: String,
    pub continuous: bool,
    /// Why not continuous (the tables whose baseline differs from their fingerprint), or
    /// "every table equals its fingerprint".
    pub detail: String,
}

/// The `Action::Check` body of `write_ledger`'s baseline step.
pub fn take_baseline_step<'a, 'b>(
    ctx: &'a mut StepContext<'b>,
) -> futures::future::BoxFuture<'a, Result<(), MigrateError>> {
    Box::pin(async move {
        let start = take_baseline(ctx.db).await?;
        ctx.audit
            .record(
                "write_ledger_started",
                serde_json::to_value(&start).unwrap_or_default(),
            )
            .await?;
        Ok(())
    })
}

/// Stores every legacy row's hash (replacing any earlier baseline) and the ledger's start.
/// The triggers are in place already, so a row the application writes meanwhile is in the
/// ledger whichever value the baseline caught.
pub async fn take_baseline(db: &Db) -> Result<LedgerStart, MigrateError> {
    let fingerprints = load_baseline(db).await?;
    let mut sums: Vec<(&'static str, i64, u64)> = Vec::new();
    match db {
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            pin_text_settings(&mut tx).await?;
            // Loaded without its primary key, which is built once at the end: inserting 1M
            // rows into the (table_name, row_id) index one by one took 6.4-8.7 s, loading
            // and building it 3.7 s (issue 13). The table is flowkey's own and only the go/
            // no-go reads it; the lock this takes is held until the baseline commits, and a
            // go/no-go run meanwhile waits for the new baseline instead of reading the old.
            for statement in [
                "TRUNCATE flowkey_row_baseline",
                "ALTER TABLE flowkey_row_baseline DROP CONSTRAINT IF EXISTS flowkey_row_baseline_pkey",
                "DELETE FROM flowkey_write_ledger_start",
            ] {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            for table in LEGACY_TABLES {
                let hashes = RowHashes::of(db, table).await?;
                // The count and sum of what was stored, from the rows the INSERT returns:
                // without its index the table would be scanned once per legacy table.
                let row = sqlx::query(&format!(
                    "WITH stored AS (\
                       INSERT INTO flowkey_row_baseline (table_name, row_id, row_hash) \
                       SELECT $1, row_id, row_hash FROM ({}) AS h RETURNING row_hash) \
                     SELECT count(*), coalesce(sum(row_hash), 0)::text FROM stored",
                    hashes.select
                ))
                .bind(*table)
                .fetch_one(&mut *tx)
                .await?;
                let sum: String = row.try_get(1)?;
                let sum: i128 = sum.trim().parse().unwrap_or_default();
                // Truncation is the point: fingerprints are sums modulo 2^64.
                sums.push((table, row.try_get(0)?, sum as u64));
            }
            sqlx::query(
                "ALTER TABLE flowkey_row_baseline \
                 ADD CONSTRAINT flowkey_row_baseline_pkey PRIMARY KEY (table_name, row_id)",
            )
            .execute(&mut *tx)
            .await?;
            let start = continuity(db, &fingerprints, &sums).await?;
            sqlx::query(
                "INSERT INTO flowkey_write_ledger_start (started_at, continuous, detail) \
                 VALUES (clock_timestamp(), $1, $2)",
            )
            .bind(start.continuous)
            .bind(&start.detail)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Db::Sqlite(pool) => {
            sqlx::query("DELETE FROM flowkey_row_baseline")
                .execute(pool)
                .await?;
            sqlx::query("DELETE FROM flowkey_write_ledger_start")
                .execute(pool)
                .await?;
            let path = sqlite_file_of(db).await?;
            for table in LEGACY_TABLES {
                let hashes = RowHashes::of(db, table).await?;
                let (rows, sum) = if path.is_empty() {
                    // An in-memory database lives in the pool's one connection only.
                    sqlite_baseline_table(pool, &hashes).await?
                } else {
                    let (path, select) = (path.clone(), hashes.select.clone());
                    let table = hashes.table;
                    run_blocking(move || sqlite_baseline_table_in_file(&path, table, &select))
                        .await?
                };
                sums.push((table, rows, sum));
            }
            let start = continuity(db, &fingerprints, &sums).await?;
            sqlx::query(
                "INSERT INTO flowkey_write_ledger_start (started_at, continuous, detail) \
                 VALUES (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), $1, $2)",
            )
            .bind(start.continuous)
            .bind(&start.detail)
            .execute(pool)
            .await?;
        }
    }
    load_start(db)
        .await?
        .ok_or_else(|| MigrateError::from(FlowMigrationError::LedgerNotStarted))
}

/// One table's baseline on SQLite, in chunks of the primary key, each read, hashed and
/// written in one short write transaction. Returns the table's row count and hash sum.
async fn sqlite_baseline_table(
    pool: &sqlx::SqlitePool,
    hashes: &RowHashes,
) -> Result<(i64, u64), MigrateError> {
    let read = format!("{} AND r.id > $1 ORDER BY r.id LIMIT $2", hashes.select);
    let (mut rows, mut sum, mut after) = (0i64, 0u64, String::new());
    loop {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut hashed = hashed_chunk(&mut tx, &read, &after).await?;
        for (_, hash) in &hashed {
            sum = sum.wrapping_add(*hash as u64);
        }
        for part in hashed.chunks(300) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO flowkey_row_baseline (table_name, row_id, row_hash) ",
            );
            insert.push_values(part, |mut values, (id, hash)| {
                values
                    .push_bind(hashes.table)
                    .push_bind(id)
                    .push_bind(*hash);
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        rows += hashed.len() as i64;
        match hashed.pop() {
            Some((last, _)) if hashed.len() + 1 == CHUNK as usize => after = last,
            _ => return Ok((rows, sum)),
        }
    }
}

/// [`sqlite_baseline_table`] on a SQLite file, through a connection of its own (rusqlite):
/// each row is hashed where SQLite holds its values, where the pool's driver would copy every
/// value of every row into a message first. Same chunks, each in one short write
/// transaction, so the application's writers wait at most one chunk. Not memory-mapped:
/// mapping the file halved the reads in key order (UUID keys: random page order) but
/// counted the mapped file in the process's memory (860 MB at 1M raw records, against 31 MB).
fn sqlite_baseline_table_in_file(
    path: &str,
    table: &'static str,
    select: &str,
) -> Result<(i64, u64), MigrateError> {
    use rusqlite::OpenFlags;
    let failed = |err: rusqlite::Error| {
        MigrateError::from(FlowMigrationError::FingerprintRead {
            table: table.to_owned(),
            reason: err.to_string(),
        })
    };
    let mut conn = open_own_connection(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(failed)?;
    let read = format!("{select} AND r.id > ?1 ORDER BY r.id LIMIT ?2");
    let (mut rows, mut sum, mut after) = (0i64, 0u64, String::new());
    loop {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(failed)?;
        let mut last = None;
        let mut in_chunk = 0i64;
        {
            let mut read = tx.prepare_cached(&read).map_err(failed)?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO flowkey_row_baseline (table_name, row_id, row_hash)                      VALUES (?1, ?2, ?3)",
                )
                .map_err(failed)?;
            let columns = read.column_count();
            let mut chunk = read
                .query(rusqlite::params![after, CHUNK])
                .map_err(failed)?;
            while let Some(row) = chunk.next().map_err(failed)? {
                faults::check_own_sqlite("write_ledger::sqlite_baseline_row").map_err(failed)?;
                let id: String = row.get(0).map_err(failed)?;
                let hash = rusqlite_row_hash(row, 1, columns).map_err(failed)?;
                // The stored value is the same 64 bits, signed.
                insert
                    .execute(rusqlite::params![table, id, hash as i64])
                    .map_err(failed)?;
                sum = sum.wrapping_add(hash);
                in_chunk += 1;
                last = Some(id);
            }
        }
        tx.commit().map_err(failed)?;
        rows += in_chunk;
        match last {
            Some(last) if in_chunk == CHUNK => after = last,
            _ => return Ok((rows, sum)),
        }
    }
}

/// Whether the baseline's per-table sums equal the fingerprints taken before the upgrade.
async fn continuity(
    db: &Db,
    fingerprints: &[crate::migrate::flow::fingerprint::TableFingerprint],
    sums: &[(&'static str, i64, u64)],
) -> Result<LedgerStart, MigrateError> {
    let mut differing = Vec::new();
    for (table, rows, sum) in sums {
        let hash = hash_text_of_sum(db, *sum).await?;
        let same = fingerprints
            .iter()
            .any(|then| then.table == *table && then.rows == *rows && then.hash == hash);
        if !same {
            differing.push(*table);
        }
    }
    Ok(LedgerStart {
        started_at: String::new(),
        continuous: differing.is_empty(),
        detail: if differing.is_empty() {
            "every table equals its fingerprint taken before the upgrade".to_owned()
        } else {
            format!(
                "written since the fingerprint taken before the upgrade: {}",
                differing.join(", ")
            )
        },
    })
}

/// The ledger's start, if it has one.
pub async fn load_start(db: &Db) -> Result<Option<LedgerStart>, MigrateError> {
    if !crate::migrate::audit::table_exists(db, "flowkey_write_ledger_start").await? {
        return Ok(None);
    }
    // Chosen outside `on_pool!`, whose body is compiled once per engine.
    let started_at = match db.engine() {
        Engine::Postgres => {
            "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        }
        Engine::Sqlite => "started_at",
    };
    let sql = format!("SELECT {started_at}, continuous, detail FROM flowkey_write_ledger_start");
    let row: Option<(String, bool, String)> = crate::on_pool!(db, pool => {
        sqlx::query_as(&sql).fetch_optional(pool).await?
    });
    Ok(row.map(|(started_at, continuous, detail)| LedgerStart {
        started_at,
        continuous,
        detail,
    }))
}

/// A legacy row that differs from its baseline and that the application did not write.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UnexplainedRow {
    pub table: String,
    pub id: String,
    /// `changed` (a legacy value differs), `lost` (in the baseline, gone) or `added`.
    pub what: String,
}

/// One legacy table compared row by row with its baseline.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LedgerTable {
    pub table: String,
    pub baseline_rows: i64,
    /// Rows the application wrote since the ledger's start (theirs: not compared).
    pub written_by_application: i64,
    pub changed: i64,
    pub lost: i64,
    pub added: i64,
}

/// The row-by-row comparison of every legacy table with the ledger's baseline.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerComparison {
    pub start: LedgerStart,
    pub tables: Vec<LedgerTable>,
    /// The first rows found, at most [`OFFENDING_ROWS_CAP`].
    pub unexplained_rows: Vec<UnexplainedRow>,
    /// SQLite: a flowkey transaction's marker row was committed (it would hide the
    /// application's writes from the ledger from then on).
    pub marker_left_committed: bool,
}

impl LedgerComparison {
    /// No legacy row changed, lost or added except by the application, and the ledger saw
    /// every write since its start.
    pub fn passes(&self) -> bool {
        !self.marker_left_committed && self.unexplained() == 0
    }

    /// Rows changed, lost or added that the application did not write.
    pub fn unexplained(&self) -> i64 {
        self.tables
            .iter()
            .map(|table| table.changed + table.lost + table.added)
            .sum()
    }

    pub fn summary(&self) -> String {
        let scope = if self.start.continuous {
            "since before the upgrade (the ledger is continuous with the fingerprints)".to_owned()
        } else {
            format!("since the ledger's start at {}", self.start.started_at)
        };
        if self.passes() {
            let written: i64 = self.tables.iter().map(|t| t.written_by_application).sum();
            format!(
                "no legacy row changed, lost or added except by the application ({written} rows written by it), {scope}"
            )
        } else if self.marker_left_committed {
            "a flowkey transaction's marker row was committed (flowkey_migration_writer is not \
             empty): the ledger has not seen the application's writes since; this is a flowkey \
             defect, report it"
                .to_owned()
        } else {
            let parts: Vec<String> = self
                .tables
                .iter()
                .filter(|t| t.changed + t.lost + t.added > 0)
                .map(|t| {
                    format!(
                        "{}: {} changed, {} lost, {} added",
                        t.table, t.changed, t.lost, t.added
                    )
                })
                .collect();
            format!(
                "{} legacy rows differ from the ledger's baseline without an application write ({}), {scope}",
                self.unexplained(),
                parts.join("; ")
            )
        }
    }
}

/// Compares every legacy table with the ledger's baseline; `None` when the database has no
/// ledger (below `write_ledger`, or after the contract, whose archive holds the legacy values
/// the baseline hashed). Reads only; on SQLite each chunk in a read transaction, which takes
/// no write lock.
pub async fn compare(db: &Db) -> Result<Option<LedgerComparison>, MigrateError> {
    let Some(start) = load_start(db).await? else {
        return Ok(None);
    };
    if contracted(db).await? {
        return Ok(None);
    }
    let mut tables = Vec::new();
    let mut unexplained_rows = Vec::new();
    let sqlite_file = match db {
        Db::Sqlite(_) => sqlite_file_of(db).await?,
        Db::Postgres(_) => String::new(),
    };
    for table in LEGACY_TABLES {
        let hashes = RowHashes::of(db, table).await?;
        let mut counts = LedgerTable {
            table: (*table).to_owned(),
            ..LedgerTable::default()
        };
        match db {
            Db::Postgres(pool) => {
                compare_postgres(pool, &hashes, &mut counts, &mut unexplained_rows).await?
            }
            Db::Sqlite(pool) if sqlite_file.is_empty() => {
                // An in-memory database lives in the pool's one connection only.
                compare_sqlite(pool, &hashes, &mut counts, &mut unexplained_rows).await?
            }
            Db::Sqlite(_) => {
                let (path, select) = (sqlite_file.clone(), hashes.select.clone());
                let table = hashes.table;
                let named = std::mem::take(&mut unexplained_rows);
                (counts, unexplained_rows) = run_blocking(move || {
                    compare_sqlite_in_file(&path, table, &select, counts, named)
                })
                .await?;
            }
        }
        tables.push(counts);
    }
    let marker_left_committed = match db {
        Db::Sqlite(pool) => {
            sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {MARKER_TABLE}"))
                .fetch_one(pool)
                .await?
                > 0
        }
        Db::Postgres(_) => false,
    };
    Ok(Some(LedgerComparison {
        start,
        tables,
        unexplained_rows,
        marker_left_committed,
    }))
}

/// Whether the contract is applied (the book says so).
async fn contracted(db: &Db) -> Result<bool, MigrateError> {
    let applied: i64 = crate::on_pool!(db, pool => {
        sqlx::query_scalar(
            "SELECT count(*) FROM flowkey_versions WHERE revision = $1 AND dirty = $2",
        )
        .bind(crate::migrate::flow::contract::CONTRACT_REVISION)
        .bind(false)
        .fetch_one(pool)
        .await?
    });
    Ok(applied > 0)
}

async fn compare_postgres(
    pool: &sqlx::PgPool,
    hashes: &RowHashes,
    counts: &mut LedgerTable,
    named: &mut Vec<UnexplainedRow>,
) -> Result<(), MigrateError> {
    // One snapshot for the table, its baseline and the ledger.
    let mut tx = pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    pin_text_settings(&mut tx).await?;
    let differences = format!(
        "SELECT coalesce(n.row_id, b.row_id) AS row_id, \
                CASE WHEN b.row_id IS NULL THEN 'added' WHEN n.row_id IS NULL THEN 'lost' ELSE 'changed' END AS what \
         FROM ({now}) AS n \
         FULL JOIN (SELECT row_id, row_hash FROM flowkey_row_baseline WHERE table_name = $1) AS b \
           ON b.row_id = n.row_id \
         WHERE n.row_hash IS DISTINCT FROM b.row_hash \
           AND NOT EXISTS (SELECT 1 FROM flowkey_write_ledger AS l \
                           WHERE l.table_name = $1 AND l.row_id = coalesce(n.row_id, b.row_id))",
        now = hashes.select
    );
    let by_kind: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT what, count(*) FROM ({differences}) AS d GROUP BY what"
    ))
    .bind(hashes.table)
    .fetch_all(&mut *tx)
    .await?;
    for (what, count) in &by_kind {
        count_kind(counts, what, *count);
    }
    if !by_kind.is_empty() && named.len() < OFFENDING_ROWS_CAP {
        let rows: Vec<(String, String)> = sqlx::query_as(&format!(
            "{differences} ORDER BY 1 LIMIT {}",
            OFFENDING_ROWS_CAP - named.len()
        ))
        .bind(hashes.table)
        .fetch_all(&mut *tx)
        .await?;
        named.extend(rows.into_iter().map(|(id, what)| UnexplainedRow {
            table: hashes.table.to_owned(),
            id,
            what,
        }));
    }
    counts.baseline_rows =
        sqlx::query_scalar("SELECT count(*) FROM flowkey_row_baseline WHERE table_name = $1")
            .bind(hashes.table)
            .fetch_one(&mut *tx)
            .await?;
    counts.written_by_application =
        sqlx::query_scalar("SELECT count(*) FROM flowkey_write_ledger WHERE table_name = $1")
            .bind(hashes.table)
            .fetch_one(&mut *tx)
            .await?;
    tx.rollback().await?;
    Ok(())
}

fn count_kind(counts: &mut LedgerTable, what: &str, count: i64) {
    match what {
        "changed" => counts.changed += count,
        "lost" => counts.lost += count,
        _ => counts.added += count,
    }
}

/// SQLite: the table and its baseline walked together in chunks of the primary key, each
/// chunk (table rows, baseline rows and ledger rows in its key range) read in one read
/// transaction, so a row the application writes is either in the chunk's ledger or not yet
/// written when the chunk is read.
async fn compare_sqlite(
    pool: &sqlx::SqlitePool,
    hashes: &RowHashes,
    counts: &mut LedgerTable,
    named: &mut Vec<UnexplainedRow>,
) -> Result<(), MigrateError> {
    let t = hashes.table;
    let read_now = format!("{} AND r.id > $1 ORDER BY r.id LIMIT $2", hashes.select);
    let mut after = String::new();
    loop {
        let mut tx = pool.begin().await?;
        let now_rows = hashed_chunk(&mut tx, &read_now, &after).await?;
        let last_chunk = (now_rows.len() as i64) < CHUNK;
        let upper: Option<String> = if last_chunk {
            None
        } else {
            now_rows.last().map(|(id, _)| id.clone())
        };
        let in_range = if upper.is_some() {
            "table_name = $1 AND row_id > $2 AND row_id <= $3"
        } else {
            "table_name = $1 AND row_id > $2"
        };
        let then: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT row_id, row_hash FROM flowkey_row_baseline WHERE {in_range} ORDER BY row_id"
        ))
        .bind(t)
        .bind(&after)
        .bind(upper.clone().unwrap_or_default())
        .fetch_all(&mut *tx)
        .await?;
        let written: HashSet<String> = sqlx::query_scalar(&format!(
            "SELECT row_id FROM flowkey_write_ledger WHERE {in_range}"
        ))
        .bind(t)
        .bind(&after)
        .bind(upper.clone().unwrap_or_default())
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        tx.rollback().await?;

        merge_chunk(t, &now_rows, &then, &written, counts, named);
        match upper {
            Some(upper) => after = upper,
            None => return Ok(()),
        }
    }
}

/// The file of a SQLite database; empty for an in-memory one.
async fn sqlite_file_of(db: &Db) -> Result<String, MigrateError> {
    Ok(crate::on_pool!(db, pool => {
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(pool)
            .await?
    }))
}

/// [`compare_sqlite`] on a SQLite file, through a read-only connection of its own
/// (rusqlite): each row hashed where SQLite holds its values, where the pool's driver copies
/// every value into a message first. The same chunks, each chunk's three reads in one
/// deferred transaction (a read lock, which in WAL mode never blocks the writers).
fn compare_sqlite_in_file(
    path: &str,
    table: &'static str,
    select: &str,
    mut counts: LedgerTable,
    mut named: Vec<UnexplainedRow>,
) -> Result<(LedgerTable, Vec<UnexplainedRow>), MigrateError> {
    use rusqlite::OpenFlags;
    let failed = |err: rusqlite::Error| {
        MigrateError::from(FlowMigrationError::FingerprintRead {
            table: table.to_owned(),
            reason: err.to_string(),
        })
    };
    let conn = open_own_connection(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(failed)?;
    let read_now = format!("{select} AND r.id > ?1 ORDER BY r.id LIMIT ?2");
    let then_sql = |bounded: bool| {
        format!(
            "SELECT row_id, row_hash FROM flowkey_row_baseline WHERE table_name = ?1 \
             AND row_id > ?2{} ORDER BY row_id",
            if bounded { " AND row_id <= ?3" } else { "" }
        )
    };
    let written_sql = |bounded: bool| {
        format!(
            "SELECT row_id FROM flowkey_write_ledger WHERE table_name = ?1 AND row_id > ?2{}",
            if bounded { " AND row_id <= ?3" } else { "" }
        )
    };
    let mut after = String::new();
    loop {
        conn.execute_batch("BEGIN").map_err(failed)?;
        let read = || -> rusqlite::Result<_> {
            let mut now = conn.prepare_cached(&read_now)?;
            let columns = now.column_count();
            let mut now_rows = Vec::with_capacity(CHUNK as usize);
            let mut rows = now.query(rusqlite::params![after, CHUNK])?;
            while let Some(row) = rows.next()? {
                faults::check_own_sqlite("write_ledger::sqlite_compare_row")?;
                let id: String = row.get(0)?;
                // The stored value is the same 64 bits, signed.
                now_rows.push((id, rusqlite_row_hash(row, 1, columns)? as i64));
            }
            let upper = if (now_rows.len() as i64) < CHUNK {
                None
            } else {
                now_rows.last().map(|(id, _)| id.clone())
            };
            let bounded = upper.is_some();
            let mut then_statement = conn.prepare_cached(&then_sql(bounded))?;
            let mut written_statement = conn.prepare_cached(&written_sql(bounded))?;
            let bounds: Vec<&dyn rusqlite::ToSql> = match &upper {
                Some(upper) => vec![&table, &after, upper],
                None => vec![&table, &after],
            };
            let then = then_statement
                .query_map(&*bounds, |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let written = written_statement
                .query_map(&*bounds, |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<HashSet<_>>>()?;
            Ok((now_rows, then, written, upper))
        };
        let chunk = read();
        conn.execute_batch("ROLLBACK").map_err(failed)?;
        let (now_rows, then, written, upper) = chunk.map_err(failed)?;
        merge_chunk(table, &now_rows, &then, &written, &mut counts, &mut named);
        match upper {
            Some(upper) => after = upper,
            None => return Ok((counts, named)),
        }
    }
}

/// One chunk of the SQLite comparison: the table's rows now and the baseline's in the same
/// key range, both in key order (SQLite's BINARY collation compares bytes, as Rust's string
/// order does), merged; a difference the application did not write is counted and named.
fn merge_chunk(
    t: &str,
    now_rows: &[(String, i64)],
    then: &[(String, i64)],
    written: &HashSet<String>,
    counts: &mut LedgerTable,
    named: &mut Vec<UnexplainedRow>,
) {
    counts.baseline_rows += then.len() as i64;
    counts.written_by_application += written.len() as i64;
    let (mut i, mut j) = (0, 0);
    loop {
        let (id, what) = match (now_rows.get(i), then.get(j)) {
            (Some((now_id, now_hash)), Some((then_id, then_hash))) if now_id == then_id => {
                i += 1;
                j += 1;
                if now_hash == then_hash {
                    continue;
                }
                (now_id, "changed")
            }
            (Some((now_id, _)), Some((then_id, _))) if now_id < then_id => {
                i += 1;
                (now_id, "added")
            }
            (Some(_), Some((then_id, _))) | (None, Some((then_id, _))) => {
                j += 1;
                (then_id, "lost")
            }
            (Some((now_id, _)), None) => {
                i += 1;
                (now_id, "added")
            }
            (None, None) => break,
        };
        if written.contains(id) {
            continue;
        }
        count_kind(counts, what, 1);
        if named.len() < OFFENDING_ROWS_CAP {
            named.push(UnexplainedRow {
                table: t.to_owned(),
                id: id.clone(),
                what: what.to_owned(),
            });
        }
    }
}

/// One chunk of `(id, row hash)` after key `after` (`read` is a [`RowHashes::select`] with
/// the key bound and `LIMIT`), each row hashed as it streams in: only the pairs are kept, never
/// the rows (holding a chunk of whole rows, wide JSON included, took 500 MB at 1M rows).
async fn hashed_chunk(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    read: &str,
    after: &str,
) -> Result<Vec<(String, i64)>, MigrateError> {
    use futures::TryStreamExt;
    let mut rows = sqlx::query(read).bind(after).bind(CHUNK).fetch(&mut **tx);
    let mut hashed = Vec::with_capacity(CHUNK as usize);
    while let Some(row) = rows.try_next().await? {
        hashed.push((row.try_get::<String, _>(0)?, RowHashes::sqlite_hash(&row)?));
    }
    Ok(hashed)
}

/// Marks `tx` as flowkey's own write, which the ledger leaves out (see the module
/// documentation). Before the ledger exists (or after its downgrade) nothing is marked,
/// since nothing is recorded.
pub async fn mark_migration_write(tx: &mut Tx<'_>) -> Result<(), sqlx::Error> {
    match tx {
        Tx::Postgres(conn) => {
            sqlx::query("SELECT set_config($1, 'migration', true)")
                .bind(WRITER_SETTING)
                .execute(&mut **conn)
                .await?;
        }
        Tx::Sqlite(conn) => {
            if marker_table_exists(conn).await? {
                sqlx::query(&format!("INSERT INTO {MARKER_TABLE} (marked) VALUES (1)"))
                    .execute(&mut **conn)
                    .await?;
            }
        }
    }
    Ok(())
}

/// Takes the mark off `tx` before it commits (SQLite: the marker row must never be
/// committed; PostgreSQL's setting ends with the transaction).
pub async fn unmark_migration_write(tx: &mut Tx<'_>) -> Result<(), sqlx::Error> {
    if let Tx::Sqlite(conn) = tx {
        if marker_table_exists(conn).await? {
            sqlx::query(&format!("DELETE FROM {MARKER_TABLE}"))
                .execute(&mut **conn)
                .await?;
        }
    }
    Ok(())
}

/// Whether the SQLite marker table exists (the ledger's tables are created by its revision).
async fn marker_table_exists(conn: &mut sqlx::SqliteConnection) -> Result<bool, sqlx::Error> {
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1")
            .bind(MARKER_TABLE)
            .fetch_one(conn)
            .await?;
    Ok(tables > 0)
}

/// What the ledger costs an old-code write: single-row INSERTs into `assets` with every
/// trigger of the database at `write_ledger` (dual-write, legacy-write signal, ledger) against
/// the same without the ledger's trigger, interleaved rounds, each rolled back.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerCost {
    pub rows_per_round: u32,
    pub rounds: u32,
    /// Best round, microseconds per INSERT.
    pub without_ledger_us: f64,
    pub with_ledger_us: f64,
    /// `with_ledger_us / without_ledger_us`.
    pub ratio: f64,
}

/// Measures [`LedgerCost`] (a database at `write_ledger` with a mapped session). Nothing is
/// kept.
pub async fn measure_ledger_cost(
    db: &Db,
    rows_per_round: u32,
    rounds: u32,
) -> Result<LedgerCost, MigrateError> {
    let without_ledger = match db.engine() {
        Engine::Postgres => "ALTER TABLE assets DISABLE TRIGGER flowkey_write_ledger",
        Engine::Sqlite => "DROP TRIGGER flowkey_ledger_insert_assets",
    };
    let [without, with] = crate::migrate::flow::legacy_signal::old_code_insert_cost(
        db,
        rows_per_round,
        rounds,
        without_ledger,
    )
    .await?;
    Ok(LedgerCost {
        rows_per_round,
        rounds,
        without_ledger_us: without,
        with_ledger_us: with,
        ratio: crate::measure::ratio(with, without),
    })
}
