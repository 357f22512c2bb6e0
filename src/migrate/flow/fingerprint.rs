//! Fingerprints of the legacy tables: the proof that the migration lost and changed nothing.
//!
//! A table's fingerprint is its row count and an order-independent hash: the wrapping sum of
//! each row's SHA-256 (first 8 bytes, little endian) over a canonical text of every legacy
//! column. The canonical text is computed by the database (`quote_nullable(col)` on
//! PostgreSQL; `quote(col)`, or `%.17g` for REAL values, on SQLite), so fingerprints are
//! comparable within one engine, not across engines. Rows are streamed in keyset batches.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::{Db, Engine};
use crate::migrate::flow::tables::{begin_batch, legacy_columns, text_of, Key};
use crate::migrate::revisions::legacy::LEGACY_TABLES;
use crate::migrate::MigrateError;

/// Rows read per fingerprint batch.
const FINGERPRINT_BATCH: i64 = 5_000;

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFingerprint {
    pub table: String,
    pub rows: i64,
    /// The order-independent hash, 16 hex digits.
    pub hash: String,
}

/// Fingerprints every legacy table.
pub async fn fingerprint_database(
    db: &Db,
    scope: FingerprintScope,
) -> Result<Vec<TableFingerprint>, MigrateError> {
    let mut all = Vec::with_capacity(LEGACY_TABLES.len());
    for table in LEGACY_TABLES {
        all.push(fingerprint_table(db, table, scope).await?);
    }
    Ok(all)
}

/// Fingerprints one legacy table.
pub async fn fingerprint_table(
    db: &Db,
    table: &str,
    scope: FingerprintScope,
) -> Result<TableFingerprint, MigrateError> {
    let engine = db.engine();
    let columns = legacy_columns(db, table).await?;
    let row_text = canonical_row_expression(engine, &columns);
    let exclusion =
        if scope == FingerprintScope::WithoutMigrationFlows && table == "discovery_flows" {
            " AND flow_id NOT IN (SELECT flow_id FROM flowkey_remembered_flows)"
        } else {
            ""
        };
    let cast = if engine == Engine::Postgres {
        "::uuid"
    } else {
        ""
    };
    let first_sql = format!(
        "SELECT {id} AS key_text, {row_text} FROM {table} WHERE 1 = 1{exclusion} ORDER BY {table}.id LIMIT $1",
        id = text_of(engine, "id")
    );
    let next_sql = format!(
        "SELECT {id} AS key_text, {row_text} FROM {table} WHERE id > $1{cast}{exclusion} ORDER BY {table}.id LIMIT $2",
        id = text_of(engine, "id")
    );
    let mut cursor: Option<Key> = None;
    let mut rows = 0i64;
    let mut hash = 0u64;
    loop {
        let mut tx = begin_batch(db).await?;
        let batch: Vec<(String, String)> = crate::on_tx!(&mut tx, conn => {
            let query = match &cursor {
                Some(after) => sqlx::query(&next_sql).bind(after.clone()).bind(FINGERPRINT_BATCH),
                None => sqlx::query(&first_sql).bind(FINGERPRINT_BATCH),
            };
            let fetched = query.fetch_all(&mut **conn).await?;
            let mut out = Vec::with_capacity(fetched.len());
            for row in fetched {
                out.push((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?));
            }
            out
        });
        tx.rollback().await?;
        let Some((last, _)) = batch.last() else { break };
        cursor = Some(last.clone());
        for (_, text) in &batch {
            hash = hash.wrapping_add(row_hash(text));
            rows += 1;
        }
        if (batch.len() as i64) < FINGERPRINT_BATCH {
            break;
        }
    }
    Ok(TableFingerprint {
        table: table.to_owned(),
        rows,
        hash: format!("{hash:016x}"),
    })
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

/// The SQL expression giving a row's canonical text: each column quoted as a literal (NULL
/// as the bare word), separated by commas.
fn canonical_row_expression(engine: Engine, columns: &[String]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|column| match engine {
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

fn row_hash(text: &str) -> u64 {
    let digest = Sha256::digest(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// The `Action::Code` body of `flow_mapping`'s "fingerprint legacy tables" step: runs before
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
                serde_json::json!({ "engine": ctx.db.engine(), "tables": fingerprints }),
            )
            .await
    })
}

pub const FINGERPRINT_DESCRIBE: &str = "\
-- for every legacy table, in keyset batches of 5000 rows:
--   SELECT id, quote_nullable(c1) || ',' || ... FROM <table> WHERE id > $cursor ORDER BY id LIMIT 5000
-- row count + wrapping sum of sha256(row text)[..8] -> flowkey_fingerprints and audit event `fingerprint`";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_hash_is_stable_and_spreads() {
        assert_eq!(row_hash("a"), row_hash("a"));
        assert_ne!(row_hash("a"), row_hash("b"));
    }

    #[test]
    fn canonical_text_quotes_every_column() {
        let sql = canonical_row_expression(Engine::Postgres, &["a".into(), "b".into()]);
        assert_eq!(
            sql,
            "coalesce(quote_nullable(a), 'NULL') || ',' || coalesce(quote_nullable(b), 'NULL')"
        );
    }
}
