//! Fingerprints of the legacy tables: the proof that the migration lost and changed nothing.
//!
//! A table's fingerprint is its row count and an order-independent hash: the wrapping sum,
//! modulo 2^64, of a 64-bit hash of each row's values, which covers every legacy column. A
//! changed value changes its row's hash; a missing or an extra row changes the count.
//! Fingerprints are comparable within one engine, not across engines.
//!
//! # Where the work happens
//! - PostgreSQL: one aggregate statement per table, computed by the server (parallel scans
//!   allowed); only the count and the sum travel.
//! - SQLite: one streaming read per table in the process, in table order (no sort, no
//!   keyset walk), through a read-only rusqlite connection of the fingerprint's own, whose
//!   rows lend their values in place (the pool's driver copies every value of every row,
//!   which cost more than the reading itself); an in-memory database, which no other
//!   connection can open, is read through the pool.
//!
//! Every table is read in one read-only transaction: one consistent snapshot of the whole
//! database (`REPEATABLE READ READ ONLY` on PostgreSQL; a deferred `BEGIN` on SQLite, which
//! in WAL mode never blocks the application's writers). Nothing is locked for writing.
//!
//! # Formats
//! The stored hash text carries the format it was computed with, so a baseline stored by an
//! earlier build is compared with a fingerprint computed the same way
//! ([`fingerprint_like_baseline`]):
//! - [`FingerprintFormat::V1`] (no prefix, the first builds): the canonical text is each
//!   column quoted as a literal (`quote_nullable` on PostgreSQL; `quote`, or `%.17g` for REAL
//!   values, on SQLite), comma-separated; the row hash is the first 8 bytes of its SHA-256,
//!   little endian. Earlier builds computed it in the client; this one computes the same
//!   value where the data is.
//! - [`FingerprintFormat::V2`] (`v2:` prefix, written by this build): on PostgreSQL the row
//!   hash is the server's own 64-bit hash of the row's values (`hash_record_extended`, the
//!   hash behind hash partitioning, PostgreSQL 14+), without turning any value into text:
//!   converting values to text was most of V1's cost. Types whose hash would miss a change or
//!   which have none are hashed as exact bytes or text instead: `float4`/`float8`/`numeric`
//!   by their binary form (their hashes equate -0 with 0 and 1.0 with 1.00), `json` and any
//!   type not known to hash exactly by its text. On SQLite the row hash is the first 8 bytes
//!   (little endian) of the SHA-256 of each value's storage class and exact bytes (integers
//!   and reals as their 8 bytes, text and blobs length-prefixed): nothing is formatted, where
//!   V1 had SQLite quote and concatenate every value. On a PostgreSQL older than 14 new
//!   fingerprints are written in V1.
//!
//! Text forms that depend on session settings (time zone, date style, float digits) are
//! pinned for the transaction, so the fingerprint does not depend on who connects.

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::{Db, Engine};
use crate::migrate::flow::error::FlowMigrationError;
use crate::migrate::flow::tables::legacy_columns;
use crate::migrate::revisions::legacy::{LEGACY_SQL, LEGACY_TABLES};
use crate::migrate::MigrateError;

/// Which rows a fingerprint covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FingerprintScope {
    /// Every row of every legacy table (what a byte-for-byte comparison needs).
    AllRows,
    /// Leaves out `discovery_flows` rows of flows the migration created (remembered in
    /// `flowkey_remembered_flows`), so the fingerprint taken before an upgrade compares
    /// with one taken at `head`.
    WithoutMigrationFlows,
}

/// How a fingerprint's hash was computed; stored as a prefix of the hash text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FingerprintFormat {
    /// The first builds' format: no prefix. See the module documentation.
    V1,
    /// This build's format: `v2:` prefix. See the module documentation.
    V2,
}

impl FingerprintFormat {
    /// The format new fingerprints are written in (on PostgreSQL 14 and later; see
    /// [`FingerprintFormat::for_new`]).
    pub const CURRENT: FingerprintFormat = FingerprintFormat::V2;

    /// The format new fingerprints of `db` are written in: [`FingerprintFormat::CURRENT`],
    /// or V1 on a PostgreSQL without `hash_record_extended` (before 14).
    pub async fn for_new(db: &Db) -> Result<FingerprintFormat, MigrateError> {
        match db {
            Db::Sqlite(_) => Ok(FingerprintFormat::CURRENT),
            Db::Postgres(pool) => {
                let version: String = sqlx::query_scalar("SHOW server_version_num")
                    .fetch_one(pool)
                    .await?;
                Ok(match version.trim().parse::<u32>() {
                    Ok(number) if number < 140_000 => FingerprintFormat::V1,
                    _ => FingerprintFormat::CURRENT,
                })
            }
        }
    }

    /// The format of a stored hash text: `v2:` prefix, or none for the first builds'.
    pub fn of_hash(hash: &str) -> FingerprintFormat {
        if hash.starts_with(V2_PREFIX) {
            FingerprintFormat::V2
        } else {
            FingerprintFormat::V1
        }
    }

    /// The hash text of a sum in this format. The stored column holds 16 characters
    /// (`varchar(16)` on PostgreSQL, and changing it would take a migration step), so V2
    /// writes the sum in radix 32 (13 digits) after its 3-character prefix.
    fn hash_text(self, sum: u64) -> String {
        match self {
            FingerprintFormat::V1 => format!("{sum:016x}"),
            FingerprintFormat::V2 => {
                let mut text = String::with_capacity(16);
                text.push_str(V2_PREFIX);
                for position in (0..13).rev() {
                    let digit = (sum >> (position * 5)) & 0x1f;
                    text.push(char::from(RADIX_32_DIGITS[digit as usize]));
                }
                text
            }
        }
    }
}

const V2_PREFIX: &str = "v2:";
const RADIX_32_DIGITS: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFingerprint {
    pub table: String,
    pub rows: i64,
    /// The order-independent hash in at most 16 characters: 16 hex digits in the first
    /// format, `v2:` and 13 radix-32 digits in the second.
    pub hash: String,
}

/// Fingerprints every legacy table in the current format, in one snapshot.
pub async fn fingerprint_database(
    db: &Db,
    scope: FingerprintScope,
) -> Result<Vec<TableFingerprint>, MigrateError> {
    let format = FingerprintFormat::for_new(db).await?;
    let plan: Vec<(&str, FingerprintFormat)> =
        LEGACY_TABLES.iter().map(|table| (*table, format)).collect();
    fingerprint_tables(db, scope, &plan).await
}

/// Fingerprints the tables of a stored baseline, each in the format its baseline was stored
/// in, in one snapshot: what `verify` compares with the baseline, so that an upgrade started
/// by an earlier build (V1 baselines) and finished by this one still verifies. A legacy table
/// the baseline lacks is fingerprinted in the format new fingerprints get.
pub async fn fingerprint_like_baseline(
    db: &Db,
    scope: FingerprintScope,
    baseline: &[TableFingerprint],
) -> Result<Vec<TableFingerprint>, MigrateError> {
    let new = FingerprintFormat::for_new(db).await?;
    let plan: Vec<(&str, FingerprintFormat)> = LEGACY_TABLES
        .iter()
        .map(|table| {
            let format = baseline
                .iter()
                .find(|then| then.table == *table)
                .map_or(new, |then| FingerprintFormat::of_hash(&then.hash));
            (*table, format)
        })
        .collect();
    fingerprint_tables(db, scope, &plan).await
}

/// Fingerprints one legacy table in the given format.
pub async fn fingerprint_table_as(
    db: &Db,
    table: &str,
    scope: FingerprintScope,
    format: FingerprintFormat,
) -> Result<TableFingerprint, MigrateError> {
    let mut all = fingerprint_tables(db, scope, &[(table, format)]).await?;
    Ok(all.remove(0))
}

/// Fingerprints `tables`, each in its format, in one read-only transaction.
async fn fingerprint_tables(
    db: &Db,
    scope: FingerprintScope,
    tables: &[(&str, FingerprintFormat)],
) -> Result<Vec<TableFingerprint>, MigrateError> {
    let engine = db.engine();
    let mut statements = Vec::with_capacity(tables.len());
    for (table, format) in tables {
        let columns = typed_legacy_columns(db, table).await?;
        statements.push((
            *table,
            *format,
            table_sql(engine, *format, table, &columns, scope),
        ));
    }
    let sums = match db {
        Db::Postgres(pool) => postgres_sums(pool, &statements).await?,
        Db::Sqlite(pool) => {
            let path: String =
                sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                    .fetch_one(pool)
                    .await?;
            if path.is_empty() {
                // An in-memory database lives in the pool's one connection only.
                sqlite_sums_in_pool(pool, &statements).await?
            } else {
                let owned: Vec<(String, FingerprintFormat, String)> = statements
                    .iter()
                    .map(|(table, format, sql)| ((*table).to_owned(), *format, sql.clone()))
                    .collect();
                run_blocking(move || sqlite_sums_in_file(&path, &owned)).await?
            }
        }
    };
    Ok(statements
        .iter()
        .zip(sums)
        .map(|((table, format, _), (rows, sum))| TableFingerprint {
            table: (*table).to_owned(),
            rows,
            hash: format.hash_text(sum),
        })
        .collect())
}

/// Each statement's `(rows, sum)` on PostgreSQL, in one read-only snapshot.
async fn postgres_sums(
    pool: &sqlx::PgPool,
    statements: &[(&str, FingerprintFormat, String)],
) -> Result<Vec<(i64, u64)>, MigrateError> {
    let mut tx = begin_postgres_read(pool).await?;
    let mut sums = Vec::with_capacity(statements.len());
    for (table, _, sql) in statements {
        let row = sqlx::query(sql).fetch_one(&mut *tx).await?;
        let rows: i64 = row.try_get(0)?;
        let sum: String = row.try_get(1)?;
        sums.push((rows, wrap_decimal_sum(&sum, table)?));
    }
    tx.rollback().await?;
    Ok(sums)
}

/// Each statement's `(rows, sum)` on a SQLite file, read through a connection of its own in
/// one deferred (read) transaction: values are borrowed where SQLite holds them, where the
/// pool's driver would copy every value of every row. A failed read names the table it was
/// reading.
fn sqlite_sums_in_file(
    path: &str,
    statements: &[(String, FingerprintFormat, String)],
) -> Result<Vec<(i64, u64)>, MigrateError> {
    let mut reading = "the database";
    read_sqlite_sums(path, statements, &mut reading).map_err(|err| {
        MigrateError::from(FlowMigrationError::FingerprintRead {
            table: reading.to_owned(),
            reason: err.to_string(),
        })
    })
}

/// [`sqlite_sums_in_file`]'s reads; `reading` is left at the table being read.
fn read_sqlite_sums<'s>(
    path: &str,
    statements: &'s [(String, FingerprintFormat, String)],
    reading: &mut &'s str,
) -> rusqlite::Result<Vec<(i64, u64)>> {
    use rusqlite::OpenFlags;
    let conn = open_own_connection(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    // Deferred: a read lock at the first read, which in WAL mode never blocks writers.
    conn.execute_batch("BEGIN")?;
    let mut sums = Vec::with_capacity(statements.len());
    for (table, format, sql) in statements {
        *reading = table;
        let mut statement = conn.prepare(sql)?;
        let columns = statement.column_count();
        let mut rows = statement.query([])?;
        let (mut count, mut sum) = (0i64, 0u64);
        while let Some(row) = rows.next()? {
            crate::migrate::faults::check_own_sqlite("fingerprint::sqlite_row")?;
            let hash = match format {
                FingerprintFormat::V1 => sha256_le64(row.get_ref(0)?.as_str()?),
                FingerprintFormat::V2 => rusqlite_row_hash(row, 0, columns)?,
            };
            sum = sum.wrapping_add(hash);
            count += 1;
        }
        sums.push((count, sum));
    }
    *reading = "the database";
    conn.execute_batch("ROLLBACK")?;
    Ok(sums)
}

/// The same as [`sqlite_sums_in_file`] through the pool (an in-memory database, which no
/// other connection can open), slower: the driver copies every value.
async fn sqlite_sums_in_pool(
    pool: &sqlx::SqlitePool,
    statements: &[(&str, FingerprintFormat, String)],
) -> Result<Vec<(i64, u64)>, MigrateError> {
    // A deferred BEGIN takes no lock until the first read, and then only a read lock, which
    // in WAL mode never blocks writers.
    let mut tx = pool.begin().await?;
    let mut sums = Vec::with_capacity(statements.len());
    for (_, format, sql) in statements {
        let mut stream = sqlx::query(sql).fetch(&mut *tx);
        let (mut rows, mut sum) = (0i64, 0u64);
        while let Some(row) = stream.try_next().await? {
            let hash = match format {
                FingerprintFormat::V1 => sha256_le64(row.try_get::<&str, _>(0)?),
                FingerprintFormat::V2 => sqlite_row_hash(&row)?,
            };
            sum = sum.wrapping_add(hash);
            rows += 1;
        }
        sums.push((rows, sum));
    }
    tx.rollback().await?;
    Ok(sums)
}

/// Runs `work` (reads through a connection of flowkey's own, which block) on tokio's
/// blocking threads. A panic inside it is the caller's panic, as if it ran inline; nothing
/// aborts the task, so it is never cancelled.
pub(crate) async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

/// A connection of flowkey's own to a SQLite file (`flags` say read-only or read-write),
/// waiting for a lock as the pool's connections do; for reads that hash rows where SQLite
/// holds their values (the fingerprints, the write ledger's baseline and comparison).
pub(crate) fn open_own_connection(
    path: &str,
    flags: rusqlite::OpenFlags,
) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        flags | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// V2's row hash of the columns `first..columns` of a row read through a rusqlite
/// connection, its values borrowed where SQLite holds them (the columns before `first` are
/// the row's key, read beside its hash).
pub(crate) fn rusqlite_row_hash(
    row: &rusqlite::Row<'_>,
    first: usize,
    columns: usize,
) -> rusqlite::Result<u64> {
    let mut hasher = Sha256::new();
    for index in first..columns {
        hash_sqlite_value(&mut hasher, row.get_ref(index)?);
    }
    Ok(first_8_le(&hasher.finalize()))
}

/// One value of V2's row on SQLite: its storage class and its exact bytes (integers and reals
/// as their 8 bytes, text and blobs length-prefixed), so no value is formatted and no two
/// rows share an encoding.
fn hash_sqlite_value(hasher: &mut Sha256, value: rusqlite::types::ValueRef<'_>) {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => hasher.update([0u8]),
        ValueRef::Integer(integer) => {
            hasher.update([1u8]);
            hasher.update(integer.to_le_bytes());
        }
        ValueRef::Real(real) => {
            hasher.update([2u8]);
            hasher.update(real.to_bits().to_le_bytes());
        }
        ValueRef::Text(bytes) => {
            hasher.update([3u8]);
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        }
        ValueRef::Blob(bytes) => {
            hasher.update([4u8]);
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        }
    }
}

/// Per-row hashes, for the write ledger's baseline and its comparison
/// ([`crate::migrate::flow::write_ledger`]): the same row hash as the table's fingerprint in
/// the format new fingerprints get, per row instead of summed, so the sum of a table's row
/// hashes is its fingerprint.
pub(crate) struct RowHashes {
    /// The legacy table.
    pub table: &'static str,
    /// PostgreSQL: `(id::text, row hash as int8)` per row of the table, in the fingerprint's
    /// scope; alias `r`. SQLite: `id` followed by the legacy columns (hashed in the process
    /// by [`RowHashes::sqlite_hash`]); alias `r`. Ends with the scope's `WHERE` clause (or
    /// `WHERE true`), so callers may add `AND` conditions.
    pub select: String,
}

impl RowHashes {
    /// The per-row hash statement of `table` as `db` holds it, leaving out flows the
    /// migration created.
    pub(crate) async fn of(db: &Db, table: &'static str) -> Result<RowHashes, MigrateError> {
        let columns = typed_legacy_columns(db, table).await?;
        let filter = if table == "discovery_flows" {
            "WHERE r.flow_id NOT IN (SELECT flow_id FROM flowkey_remembered_flows)"
        } else {
            "WHERE true"
        };
        let select = match db.engine() {
            Engine::Postgres => {
                let format = FingerprintFormat::for_new(db).await?;
                let qualified: Vec<Column> = columns
                    .iter()
                    .map(|column| Column {
                        name: format!("r.{}", column.name),
                        udt: column.udt.clone(),
                    })
                    .collect();
                format!(
                    "SELECT r.id::text AS row_id, {hash} AS row_hash FROM {table} AS r {filter}",
                    hash = pg_row_hash(format, &qualified)
                )
            }
            Engine::Sqlite => {
                let names: Vec<String> = columns.iter().map(|c| format!("r.{}", c.name)).collect();
                format!(
                    "SELECT r.id, {} FROM {table} AS r {filter}",
                    names.join(", ")
                )
            }
        };
        Ok(RowHashes { table, select })
    }

    /// SQLite: the row hash of a row of [`RowHashes::select`] (its columns after the id), as
    /// the signed 64-bit value stored.
    pub(crate) fn sqlite_hash(row: &sqlx::sqlite::SqliteRow) -> Result<i64, sqlx::Error> {
        // The stored value is the same 64 bits, signed.
        Ok(sqlite_row_hash_from(row, 1)? as i64)
    }
}

/// The settings the text form of a value depends on, pinned in a transaction that hashes
/// rows on PostgreSQL (see [`PG_PINNED_SETTINGS`]).
pub(crate) async fn pin_text_settings(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    for setting in PG_PINNED_SETTINGS {
        sqlx::query(setting).execute(&mut *conn).await?;
    }
    Ok(())
}

/// The wrapping sum of row hashes as a fingerprint's hash text in the format new fingerprints
/// of `db` get: what a table's fingerprint would be.
pub(crate) async fn hash_text_of_sum(db: &Db, sum: u64) -> Result<String, MigrateError> {
    Ok(FingerprintFormat::for_new(db).await?.hash_text(sum))
}

/// One table's fingerprint time against a plain scan of it, measured back to back.
#[derive(Debug, Clone, Serialize)]
pub struct ScanComparison {
    pub table: String,
    pub rows: i64,
    /// `SELECT count(*) FROM <table>`, as the engine plans it (an index-only count where an
    /// index is smaller than the table).
    pub count_seconds: f64,
    /// The same count made to read the whole table (no index): what a scan of every page
    /// costs before any value is looked at.
    pub table_scan_seconds: f64,
    pub fingerprint_seconds: f64,
}

/// Every legacy table's fingerprint time against a count of its rows, for the benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct FingerprintSpeed {
    pub format: FingerprintFormat,
    pub tables: Vec<ScanComparison>,
    pub count_seconds: f64,
    pub table_scan_seconds: f64,
    pub fingerprint_seconds: f64,
    /// `fingerprint_seconds / count_seconds`: the target is at most 3.
    pub ratio: f64,
    /// `fingerprint_seconds / table_scan_seconds`.
    pub ratio_to_table_scan: f64,
}

/// Times, per legacy table, the fingerprint against `SELECT count(*)` of the same table, each
/// the better of `repeats` runs (so neither pays for a cold cache alone). Read-only.
pub async fn fingerprint_against_scan(
    db: &Db,
    repeats: u32,
) -> Result<FingerprintSpeed, MigrateError> {
    let format = FingerprintFormat::for_new(db).await?;
    let mut tables = Vec::with_capacity(LEGACY_TABLES.len());
    for table in LEGACY_TABLES {
        let (mut count_seconds, mut fingerprint_seconds, mut rows) = (f64::MAX, f64::MAX, 0);
        let mut table_scan_seconds = f64::MAX;
        for _ in 0..repeats.max(1) {
            let started = std::time::Instant::now();
            table_scan_count(db, table).await?;
            table_scan_seconds = table_scan_seconds.min(started.elapsed().as_secs_f64());
            let started = std::time::Instant::now();
            let counted: i64 = crate::on_pool!(db, pool => {
                sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                    .fetch_one(pool)
                    .await?
            });
            count_seconds = count_seconds.min(started.elapsed().as_secs_f64());
            tracing::debug!("{table}: {counted} rows counted, now fingerprinted");
            crate::migrate::faults::check("bench::between_count_and_fingerprint")?;
            let started = std::time::Instant::now();
            let fingerprint =
                fingerprint_table_as(db, table, FingerprintScope::AllRows, format).await?;
            fingerprint_seconds = fingerprint_seconds.min(started.elapsed().as_secs_f64());
            if fingerprint.rows != counted {
                return Err(FlowMigrationError::FingerprintChangedWhileMeasured {
                    table: (*table).to_owned(),
                    counted,
                    fingerprinted: fingerprint.rows,
                }
                .into());
            }
            rows = counted;
        }
        tables.push(ScanComparison {
            table: (*table).to_owned(),
            rows,
            count_seconds,
            table_scan_seconds,
            fingerprint_seconds,
        });
    }
    let count_seconds: f64 = tables.iter().map(|t| t.count_seconds).sum();
    let table_scan_seconds: f64 = tables.iter().map(|t| t.table_scan_seconds).sum();
    let fingerprint_seconds: f64 = tables.iter().map(|t| t.fingerprint_seconds).sum();
    let ratio = |base: f64| crate::measure::ratio(fingerprint_seconds, base);
    Ok(FingerprintSpeed {
        format,
        tables,
        count_seconds,
        table_scan_seconds,
        fingerprint_seconds,
        ratio: ratio(count_seconds),
        ratio_to_table_scan: ratio(table_scan_seconds),
    })
}

/// `count(*)` of `table` read from the table itself, not an index.
async fn table_scan_count(db: &Db, table: &str) -> Result<i64, MigrateError> {
    match db {
        Db::Sqlite(pool) => Ok(sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table} NOT INDEXED"
        ))
        .fetch_one(pool)
        .await?),
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            for setting in [
                "SET LOCAL enable_indexonlyscan = off",
                "SET LOCAL enable_indexscan = off",
                "SET LOCAL enable_bitmapscan = off",
            ] {
                sqlx::query(setting).execute(&mut *tx).await?;
            }
            // A text of its own, never prepared: a statement prepared on a connection keeps
            // the plan it was first given whatever the settings are now, and sqlx reuses a
            // prepared statement of the same text even when asked not to prepare. Sharing
            // the planned count's text below, this "table scan" timed the index-only count
            // (0.036-0.047 s for 1M raw records, against 0.10-0.12 s for the table scan).
            let rows = sqlx::query_scalar(&format!("SELECT count(*) FROM {table} AS scanned"))
                .persistent(false)
                .fetch_one(&mut *tx)
                .await?;
            tx.rollback().await?;
            Ok(rows)
        }
    }
}

/// Stores a fingerprint as the pre-migration baseline (replacing an older one).
pub async fn store_baseline(
    db: &Db,
    fingerprints: &[TableFingerprint],
) -> Result<(), MigrateError> {
    let mut tx = db.begin().await?;
    crate::on_tx!(&mut tx, conn => {
        sqlx::query("DELETE FROM flowkey_fingerprints").execute(&mut **conn).await?;
        for fingerprint in fingerprints {
            sqlx::query("INSERT INTO flowkey_fingerprints (table_name, row_count, hash) VALUES ($1, $2, $3)")
                .bind(&fingerprint.table)
                .bind(fingerprint.rows)
                .bind(&fingerprint.hash)
                .execute(&mut **conn)
                .await?;
        }
    });
    tx.commit().await?;
    Ok(())
}

/// The stored pre-migration baseline, table by table.
pub async fn load_baseline(db: &Db) -> Result<Vec<TableFingerprint>, MigrateError> {
    // Below flow_mapping there is no table yet, so no baseline (a read never creates it).
    if !crate::migrate::audit::table_exists(db, "flowkey_fingerprints").await? {
        return Ok(Vec::new());
    }
    let rows = crate::on_pool!(db, pool => {
        sqlx::query("SELECT table_name, row_count, hash FROM flowkey_fingerprints ORDER BY table_name")
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|row| {
                Ok(TableFingerprint {
                    table: row.try_get(0)?,
                    rows: row.try_get(1)?,
                    hash: row.try_get(2)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    Ok(rows)
}

/// The `Action::Check` body of `flow_mapping`'s "fingerprint legacy tables" step: runs before
/// anything changes, stores the baseline in `flowkey_fingerprints` and in the audit log.
pub fn fingerprint_step<'a, 'b>(
    ctx: &'a mut crate::migrate::StepContext<'b>,
) -> futures::future::BoxFuture<'a, Result<(), MigrateError>> {
    Box::pin(async move {
        let fingerprints =
            fingerprint_database(ctx.db, FingerprintScope::WithoutMigrationFlows).await?;
        store_baseline(ctx.db, &fingerprints).await?;
        ctx.audit
            .record(
                "fingerprint",
                serde_json::json!({
                    "engine": ctx.db.engine(),
                    "format": FingerprintFormat::for_new(ctx.db).await?,
                    "tables": fingerprints,
                }),
            )
            .await
    })
}

/// The statements the fingerprint step runs on `engine` (what `--sql` prints): the read-only
/// transaction and one statement per legacy table, with the columns of the legacy schema as
/// this build declares it (at run time they are read from the catalog, so a database with
/// more legacy columns has them fingerprinted too).
pub fn fingerprint_sql(engine: Engine) -> String {
    let mut out = String::from(
        "-- fingerprint legacy tables (format v2), read-only, one snapshot; each table's row\n\
         -- count and the sum mod 2^64 of a 64-bit hash per row go to flowkey_fingerprints\n\
         -- and the audit event `fingerprint`.\n",
    );
    let declared = declared_legacy_columns(LEGACY_SQL.for_engine(engine));
    match engine {
        Engine::Postgres => {
            out.push_str(PG_BEGIN_READ);
            out.push_str(";\n");
            for setting in PG_PINNED_SETTINGS {
                out.push_str(setting);
                out.push_str(";\n");
            }
        }
        Engine::Sqlite => out.push_str(
            "BEGIN;\n-- each table's rows are streamed; the sum of the first 8 bytes (little \
             endian) of each row text's SHA-256 is taken in the process\n",
        ),
    }
    for table in LEGACY_TABLES {
        let columns = declared
            .iter()
            .find(|(name, _)| name == table)
            .map(|(_, columns)| columns.clone())
            .unwrap_or_default();
        out.push_str(&table_sql(
            engine,
            FingerprintFormat::CURRENT,
            table,
            &columns,
            FingerprintScope::WithoutMigrationFlows,
        ));
        out.push_str(";\n");
    }
    out.push_str("ROLLBACK;\n");
    out
}

/// The fingerprint step as SQL that runs as is (the runnable `--sql` script): each legacy
/// table's count and hash computed by the same aggregate statement as [`fingerprint_sql`]
/// in format V2 (PostgreSQL 14 and later), the sum taken modulo 2^64 and written in the
/// stored text form (`v2:` and 13 radix-32 digits) by the server, stored as the baseline in
/// `flowkey_fingerprints`. One snapshot: the step's transaction is REPEATABLE READ.
/// Empty on SQLite, whose V2 row hash is a SHA-256 the engine cannot compute.
pub fn fingerprint_offline_sql(engine: Engine) -> String {
    if engine != Engine::Postgres {
        return String::new();
    }
    let mut out = String::from(
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ;
",
    );
    for setting in PG_PINNED_SETTINGS {
        out.push_str(setting);
        out.push_str(
            ";
",
        );
    }
    out.push_str(
        "DELETE FROM flowkey_fingerprints;
",
    );
    out.push_str(&format!(
        "INSERT INTO flowkey_fingerprints (table_name, row_count, hash)
{};
",
        offline_fingerprints_select()
    ));
    out
}

/// `(table_name, row_count, hash)` of every legacy table, computed by the server in the
/// stored V2 form (see [`fingerprint_offline_sql`]).
pub(crate) fn offline_fingerprints_select() -> String {
    let declared = declared_legacy_columns(LEGACY_SQL.for_engine(Engine::Postgres));
    let digits = std::str::from_utf8(RADIX_32_DIGITS).unwrap_or_default();
    let parts: Vec<String> = LEGACY_TABLES
        .iter()
        .map(|table| {
            let columns = declared
                .iter()
                .find(|(name, _)| name == table)
                .map(|(_, columns)| columns.clone())
                .unwrap_or_default();
            let aggregate = table_sql(
                Engine::Postgres,
                FingerprintFormat::V2,
                table,
                &columns,
                FingerprintScope::WithoutMigrationFlows,
            );
            format!(
                "SELECT '{table}'::text AS table_name, f.n AS row_count, \
                 '{V2_PREFIX}' || (SELECT string_agg(substr('{digits}', \
                 mod(div(w.u, power(32::numeric, p)), 32)::int + 1, 1), '' ORDER BY p DESC) \
                 FROM generate_series(0, 12) AS p) AS hash \
                 FROM ({aggregate}) AS f(n, s) \
                 CROSS JOIN LATERAL (SELECT mod(mod(f.s::numeric, {two_64}) + {two_64}, {two_64}) AS u) AS w",
                two_64 = "18446744073709551616::numeric",
            )
        })
        .collect();
    parts.join("\nUNION ALL\n")
}

/// The per-row form of [`offline_fingerprints_select`] for one table: `SELECT '<table>',
/// id::text, <V2 row hash>` over the legacy columns as the legacy script declares them, in
/// the fingerprint's scope (the write ledger's baseline in the offline script).
pub(crate) fn offline_row_hashes_select(table: &str) -> String {
    let declared = declared_legacy_columns(LEGACY_SQL.for_engine(Engine::Postgres));
    let columns: Vec<Column> = declared
        .iter()
        .find(|(name, _)| name == table)
        .map(|(_, columns)| columns.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|column| Column {
            name: format!("r.{}", column.name),
            udt: column.udt,
        })
        .collect();
    let filter = if table == "discovery_flows" {
        "WHERE r.flow_id NOT IN (SELECT flow_id FROM flowkey_remembered_flows)"
    } else {
        "WHERE true"
    };
    format!(
        "SELECT '{table}', r.id::text, {hash} FROM {table} AS r {filter}",
        hash = pg_row_hash(FingerprintFormat::V2, &columns)
    )
}

/// How the read-only transaction begins on PostgreSQL: one snapshot for every table.
const PG_BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// The settings a value's text form depends on, pinned to what the first builds' connections
/// used (sqlx's defaults and the server's), so V1 values stay reproducible.
const PG_PINNED_SETTINGS: [&str; 5] = [
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL DateStyle = 'ISO, MDY'",
    "SET LOCAL extra_float_digits = 2",
    "SET LOCAL IntervalStyle = 'postgres'",
    "SET LOCAL bytea_output = 'hex'",
];

async fn begin_postgres_read(
    pool: &sqlx::PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin_with(PG_BEGIN_READ).await?;
    for setting in PG_PINNED_SETTINGS {
        sqlx::query(setting).execute(&mut *tx).await?;
    }
    Ok(tx)
}

/// The statement that fingerprints one table: on PostgreSQL `(count, sum)` as `(int8, text)`;
/// on SQLite one row text per row.
fn table_sql(
    engine: Engine,
    format: FingerprintFormat,
    table: &str,
    columns: &[Column],
    scope: FingerprintScope,
) -> String {
    let filter = if scope == FingerprintScope::WithoutMigrationFlows && table == "discovery_flows" {
        " WHERE flow_id NOT IN (SELECT flow_id FROM flowkey_remembered_flows)"
    } else {
        ""
    };
    match engine {
        Engine::Postgres => format!(
            "SELECT count(*), coalesce(sum({hash}), 0)::text FROM {table}{filter}",
            hash = pg_row_hash(format, columns)
        ),
        Engine::Sqlite => match format {
            FingerprintFormat::V1 => format!(
                "SELECT {text} FROM {table}{filter}",
                text = v1_row_text(engine, columns)
            ),
            FingerprintFormat::V2 => {
                let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                format!("SELECT {} FROM {table}{filter}", names.join(", "))
            }
        },
    }
}

/// A row's 64-bit hash as a signed `int8` (the sum modulo 2^64 is the same as unsigned).
fn pg_row_hash(format: FingerprintFormat, columns: &[Column]) -> String {
    match format {
        // The first 8 bytes of the SHA-256, read little endian: the bytes' hex digits are put
        // in reverse byte order before being read as a 64-bit number.
        FingerprintFormat::V1 => format!(
            "('x' || regexp_replace(encode(substr(sha256(convert_to({text}, 'UTF8')), 1, 8), 'hex'), \
             '(..)(..)(..)(..)(..)(..)(..)(..)', '\\8\\7\\6\\5\\4\\3\\2\\1'))::bit(64)::int8",
            text = v1_row_text(Engine::Postgres, columns)
        ),
        FingerprintFormat::V2 => {
            let values: Vec<String> = columns.iter().map(v2_pg_value).collect();
            format!("hash_record_extended(ROW({}), 0)", values.join(", "))
        }
    }
}

/// V1's canonical text: each column quoted as a literal (NULL as the bare word), separated by
/// commas.
fn v1_row_text(engine: Engine, columns: &[Column]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|Column { name: column, .. }| match engine {
            Engine::Postgres => format!("coalesce(quote_nullable({column}), 'NULL')"),
            // quote() of a REAL keeps only 15 significant digits; %.17g round-trips exactly.
            Engine::Sqlite => format!(
                "(CASE typeof({column}) WHEN 'real' THEN printf('R%.17g', {column}) ELSE quote({column}) END)"
            ),
        })
        .collect();
    if parts.is_empty() {
        "''".to_owned()
    } else {
        parts.join(" || ',' || ")
    }
}

/// One value of V2's row on PostgreSQL: the column itself where its type's hash changes
/// whenever its value does, else its exact bytes or text.
fn v2_pg_value(column: &Column) -> String {
    let name = &column.name;
    match column.udt.as_str() {
        // Hashed exactly by their own hash functions.
        "uuid" | "text" | "varchar" | "int2" | "int4" | "int8" | "bool" | "timestamptz"
        | "timestamp" | "date" | "jsonb" | "bytea" => name.clone(),
        // Their hashes equate values that differ (-0 and 0; 1.0 and 1.00): the binary form.
        "float4" => format!("float4send({name})"),
        "float8" => format!("float8send({name})"),
        "numeric" => format!("numeric_send({name})"),
        // json has no hash function; text is exact for json and any other type.
        _ => format!("{name}::text"),
    }
}

/// V2's row hash on SQLite for a row read through the pool: the same encoding as
/// [`hash_sqlite_value`].
fn sqlite_row_hash(row: &sqlx::sqlite::SqliteRow) -> Result<u64, sqlx::Error> {
    sqlite_row_hash_from(row, 0)
}

/// V2's row hash on SQLite of the columns of `row` from index `first` on (the columns before
/// it are the row's key, read beside its hash).
fn sqlite_row_hash_from(row: &sqlx::sqlite::SqliteRow, first: usize) -> Result<u64, sqlx::Error> {
    use rusqlite::types::ValueRef;
    use sqlx::{TypeInfo, ValueRef as _};
    let mut hasher = Sha256::new();
    for index in first..row.len() {
        let raw = row.try_get_raw(index)?;
        if raw.is_null() {
            hash_sqlite_value(&mut hasher, ValueRef::Null);
            continue;
        }
        let class = raw.type_info().name().to_owned();
        match class.as_str() {
            "INTEGER" => hash_sqlite_value(
                &mut hasher,
                ValueRef::Integer(row.try_get_unchecked::<i64, _>(index)?),
            ),
            "REAL" => hash_sqlite_value(
                &mut hasher,
                ValueRef::Real(row.try_get_unchecked::<f64, _>(index)?),
            ),
            "TEXT" => {
                let text: &str = row.try_get_unchecked(index)?;
                hash_sqlite_value(&mut hasher, ValueRef::Text(text.as_bytes()));
            }
            _ => {
                let bytes: &[u8] = row.try_get_unchecked(index)?;
                hash_sqlite_value(&mut hasher, ValueRef::Blob(bytes));
            }
        }
    }
    Ok(first_8_le(&hasher.finalize()))
}

fn first_8_le(digest: &[u8]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// The first 8 bytes of the SHA-256 of `text`, little endian.
fn sha256_le64(text: &str) -> u64 {
    first_8_le(&Sha256::digest(text.as_bytes()))
}

/// A PostgreSQL `numeric` sum of signed 64-bit values, as text, modulo 2^64.
fn wrap_decimal_sum(sum: &str, table: &str) -> Result<u64, MigrateError> {
    let value: i128 = sum.trim().parse().map_err(|_| {
        MigrateError::from(FlowMigrationError::FingerprintRead {
            table: table.to_owned(),
            reason: format!("the server's sum {sum:?} is not an integer"),
        })
    })?;
    // Truncation is the point: the sum is taken modulo 2^64.
    Ok(value as u64)
}

/// A legacy column: its name and its type as the catalog names it (`udt_name` on
/// PostgreSQL: `uuid`, `float8`, `json`...; the declared type on SQLite, where it matters
/// to no format).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    udt: String,
}

/// The legacy columns of `table` with their types, in declared order (the migration's own
/// columns left out). Written here rather than in `tables.rs` because only the fingerprint
/// needs the types.
async fn typed_legacy_columns(db: &Db, table: &str) -> Result<Vec<Column>, sqlx::Error> {
    // Which columns are legacy is `legacy_columns`' answer; the types come from the catalog.
    let legacy = legacy_columns(db, table).await?;
    let rows: Vec<(String, String)> = match db {
        Db::Sqlite(pool) => {
            sqlx::query_as("SELECT name, lower(type) FROM pragma_table_info($1) ORDER BY cid")
                .bind(table)
                .fetch_all(pool)
                .await?
        }
        Db::Postgres(pool) => {
            sqlx::query_as(
                "SELECT column_name::text, udt_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(pool)
            .await?
        }
    };
    let mut columns: Vec<Column> = rows
        .into_iter()
        .filter(|(name, _)| legacy.contains(name))
        .map(|(name, udt)| Column { name, udt })
        .collect();
    // In the legacy script's order, not the catalog's: a column the contract dropped and its
    // downgrade added back comes last in the catalog (PostgreSQL cannot move it), and the same
    // values must give the same fingerprint. Wherever the catalog keeps the legacy order this
    // changes nothing.
    let declared = declared_legacy_columns(LEGACY_SQL.for_engine(db.engine()));
    let order: &[Column] = declared
        .iter()
        .find(|(name, _)| name == table)
        .map_or(&[], |(_, order)| order.as_slice());
    columns.sort_by_key(|column| {
        order
            .iter()
            .position(|c| c.name == column.name)
            .unwrap_or(usize::MAX)
    });
    Ok(columns)
}

/// The catalog's name (`udt_name`) of a type as a PostgreSQL script declares it.
fn udt_of_declared(declared: &str) -> String {
    let base = declared
        .split('(')
        .next()
        .unwrap_or(declared)
        .trim()
        .to_ascii_lowercase();
    match base.as_str() {
        "double precision" => "float8",
        "real" => "float4",
        "integer" | "int" => "int4",
        "bigint" => "int8",
        "smallint" => "int2",
        "boolean" => "bool",
        "varchar" | "character varying" => "varchar",
        "timestamp with time zone" => "timestamptz",
        other => other,
    }
    .to_owned()
}

/// The columns of each table in a legacy schema script, in declared order.
fn declared_legacy_columns(script: &str) -> Vec<(String, Vec<Column>)> {
    let mut tables: Vec<(String, Vec<Column>)> = Vec::new();
    let mut current: Option<(String, Vec<Column>)> = None;
    for line in script.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("CREATE TABLE ") {
            let name = rest.trim_end_matches('(').trim().to_owned();
            current = Some((name, Vec::new()));
        } else if trimmed.starts_with(");") {
            if let Some(done) = current.take() {
                tables.push(done);
            }
        } else if let Some((_, columns)) = &mut current {
            let word = trimmed.split_whitespace().next().unwrap_or("");
            let is_column = !word.is_empty()
                && !word.starts_with("--")
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            columns.extend(is_column.then(|| {
                // The type runs to the first constraint keyword or the line's end.
                let rest = trimmed[word.len()..].trim().trim_end_matches(',');
                let declared = [
                    " NOT NULL",
                    " PRIMARY KEY",
                    " REFERENCES",
                    " DEFAULT",
                    " UNIQUE",
                ]
                .iter()
                .fold(rest, |text, keyword| {
                    text.split(keyword).next().unwrap_or(text)
                });
                Column {
                    name: word.to_owned(),
                    udt: udt_of_declared(declared),
                }
            }));
        }
    }
    tables
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic in blocking work is the caller's panic, with its message: a defect, never
    /// turned into "cannot fingerprint".
    #[tokio::test]
    #[should_panic(expected = "the blocking work's own panic")]
    async fn a_panic_in_blocking_work_is_the_callers() {
        run_blocking(|| panic!("the blocking work's own panic")).await
    }

    /// A file flowkey cannot open for its own reads is the engine's error, returned.
    #[test]
    fn an_own_connection_to_a_missing_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.db");
        let err = open_own_connection(
            missing.to_str().unwrap(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect_err("read-only open of a missing file");
        assert!(err.to_string().contains("unable to open"), "{err}");
        assert!(!missing.exists());
    }

    /// V1's row text of a table whose legacy columns are all gone is still a value (the
    /// empty string literal), so that each row still counts and hashes.
    #[test]
    fn a_v1_row_without_columns_is_the_empty_text() {
        for engine in [Engine::Sqlite, Engine::Postgres] {
            assert_eq!(v1_row_text(engine, &[]), "''");
        }
        assert!(
            v1_row_text(Engine::Postgres, &[column("id", "uuid")]).contains("quote_nullable(id)")
        );
    }

    #[test]
    fn the_row_hash_is_stable_and_spreads() {
        assert_eq!(sha256_le64("a"), sha256_le64("a"));
        assert_ne!(sha256_le64("a"), sha256_le64("b"));
    }

    /// A SQLite file is fingerprinted through a connection of its own (rusqlite), an
    /// in-memory database through the pool (sqlx): both must hash every storage class alike,
    /// or the same data would fingerprint two ways. The same bytes as text and as a blob (which
    /// SQLite keeps apart in any column) differ.
    #[tokio::test]
    async fn both_sqlite_readers_hash_every_storage_class_alike() {
        let values = "SELECT NULL, 7, 0.5, 'ab', X'6162'";
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let own = conn
            .query_row(values, [], |row| rusqlite_row_hash(row, 0, 5))
            .unwrap();
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let row = sqlx::query(values).fetch_one(&pool).await.unwrap();
        assert_eq!(sqlite_row_hash(&row).unwrap(), own);
        let one = |sql: &str| conn.query_row(sql, [], |row| rusqlite_row_hash(row, 0, 1));
        assert_ne!(one("SELECT 'ab'").unwrap(), one("SELECT X'6162'").unwrap());
    }

    fn column(name: &str, udt: &str) -> Column {
        Column {
            name: name.into(),
            udt: udt.into(),
        }
    }

    #[test]
    fn v2_hashes_lossy_and_unhashable_types_exactly() {
        let sql = pg_row_hash(
            FingerprintFormat::V2,
            &[
                column("id", "uuid"),
                column("cost", "numeric"),
                column("memory", "float8"),
                column("raw", "json"),
                column("state", "jsonb"),
                column("spot", "point"),
            ],
        );
        assert_eq!(
            sql,
            "hash_record_extended(ROW(id, numeric_send(cost), float8send(memory), raw::text, \
             state, spot::text), 0)"
        );
    }

    #[test]
    fn declared_types_map_to_catalog_names() {
        assert_eq!(udt_of_declared("double precision"), "float8");
        assert_eq!(udt_of_declared("numeric(12, 6)"), "numeric");
        assert_eq!(udt_of_declared("varchar(255)"), "varchar");
        assert_eq!(udt_of_declared("json"), "json");
    }

    #[test]
    fn v1_text_quotes_every_column() {
        let sql = v1_row_text(
            Engine::Postgres,
            &[column("a", "text"), column("b", "text")],
        );
        assert_eq!(
            sql,
            "coalesce(quote_nullable(a), 'NULL') || ',' || coalesce(quote_nullable(b), 'NULL')"
        );
    }

    #[test]
    fn the_format_is_read_from_the_stored_text() {
        assert_eq!(
            FingerprintFormat::of_hash("00ff00ff00ff00ff"),
            FingerprintFormat::V1
        );
        let v2 = FingerprintFormat::V2.hash_text(255);
        assert_eq!(v2, "v2:000000000007v");
        assert_eq!(
            FingerprintFormat::V2.hash_text(u64::MAX),
            "v2:fvvvvvvvvvvvv"
        );
        assert_eq!(v2.len(), 16);
        assert_eq!(FingerprintFormat::of_hash(&v2), FingerprintFormat::V2);
    }

    #[test]
    fn a_server_sum_wraps_modulo_two_to_the_64() {
        assert_eq!(wrap_decimal_sum("-1", "t").ok(), Some(u64::MAX));
        assert_eq!(
            wrap_decimal_sum("18446744073709551617", "t").ok(),
            Some(1),
            "2^64 + 1"
        );
        assert!(wrap_decimal_sum("1.5", "t").is_err());
    }

    #[test]
    fn the_declared_legacy_columns_cover_every_legacy_table() {
        for engine in [Engine::Sqlite, Engine::Postgres] {
            let declared = declared_legacy_columns(LEGACY_SQL.for_engine(engine));
            let names: Vec<&str> = declared.iter().map(|(name, _)| name.as_str()).collect();
            assert_eq!(names, LEGACY_TABLES, "{engine:?}");
            let raw = &declared[6].1;
            assert_eq!(raw.first().map(|c| c.name.as_str()), Some("id"));
            assert_eq!(raw.last().map(|c| c.name.as_str()), Some("processed_at"));
            assert_eq!(raw.len(), 16);
            if engine == Engine::Postgres {
                let raw_data = raw.iter().find(|c| c.name == "raw_data");
                assert_eq!(raw_data.map(|c| c.udt.as_str()), Some("json"));
                assert_eq!(raw[0].udt, "uuid");
            }
        }
    }

    #[test]
    fn the_step_sql_names_every_table() {
        for engine in [Engine::Sqlite, Engine::Postgres] {
            let sql = fingerprint_sql(engine);
            for table in LEGACY_TABLES {
                assert!(sql.contains(&format!("FROM {table}")), "{table}");
            }
            assert!(!sql.contains("IMMEDIATE"));
        }
        assert!(fingerprint_sql(Engine::Postgres).contains("READ ONLY"));
    }
}
