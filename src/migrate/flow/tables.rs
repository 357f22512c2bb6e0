//! The keyset and batch helpers every batched loop of the migration uses, and the one way it
//! refreshes the planner's statistics (`refresh_statistics`).

use crate::db::Engine;

/// The last primary key of a batch, as text (lowercase hyphenated UUID on both engines).
pub type Key = String;

/// A half-open keyset range `(lo, hi]` over a table's `id`.
#[derive(Debug, Clone)]
pub struct KeyRange {
    pub lo: Option<Key>,
    pub hi: Key,
}

impl KeyRange {
    /// The SQL predicate `alias.id > $1 AND alias.id <= $2` for the engine (PostgreSQL
    /// compares uuids, SQLite text) and the values to bind in order.
    pub fn predicate(&self, engine: Engine, alias: &str) -> (String, Vec<String>) {
        let cast = match engine {
            Engine::Postgres => "::uuid",
            Engine::Sqlite => "",
        };
        match &self.lo {
            Some(lo) => (
                format!("{alias}.id > $1{cast} AND {alias}.id <= $2{cast}"),
                vec![lo.clone(), self.hi.clone()],
            ),
            None => (format!("{alias}.id <= $1{cast}"), vec![self.hi.clone()]),
        }
    }
}

/// The text form of a uuid column in a select list: `id::text` on PostgreSQL, `id` on SQLite.
pub fn text_of(engine: Engine, column: &str) -> String {
    match engine {
        Engine::Postgres => format!("{column}::text"),
        Engine::Sqlite => column.to_owned(),
    }
}

/// `SELECT` of the next batch's upper key and the batch's size: `(hi, n)` where `hi` is the
/// largest of the next `limit` keys after `after`. Walks the primary key index only.
pub fn next_bound_sql(engine: Engine, table: &str, after: Option<&Key>) -> String {
    let cast = match engine {
        Engine::Postgres => "::uuid",
        Engine::Sqlite => "",
    };
    let (lower, limit) = match after {
        Some(_) => (format!("WHERE id > $1{cast}"), "$2"),
        None => (String::new(), "$1"),
    };
    format!(
        "SELECT {id}, count(*) OVER () FROM (SELECT id FROM {table} {lower} ORDER BY id LIMIT {limit}) AS s \
         ORDER BY s.id DESC LIMIT 1",
        id = text_of(engine, "s.id"),
    )
}

/// Begins the transaction of one batch. On PostgreSQL it asks for custom plans: a batch query
/// is prepared once and run many times, and a generic plan (which cannot see the batch's
/// `LIMIT` or key bounds) may choose a full scan and sort per batch, so throughput would fall
/// as the table grows.
///
/// The transaction is marked as flowkey's own write, which the write ledger leaves out
/// ([`crate::migrate::flow::write_ledger`]); end it with [`commit_batch`].
pub async fn begin_batch(db: &crate::db::Db) -> Result<crate::db::Tx<'static>, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    if let crate::db::Tx::Postgres(conn) = &mut tx {
        sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
            .execute(&mut **conn)
            .await?;
    }
    crate::migrate::flow::write_ledger::mark_migration_write(&mut tx).await?;
    Ok(tx)
}

/// Commits a batch begun by [`begin_batch`], its mark taken off first (on SQLite the mark is
/// a row that must never be committed).
pub async fn commit_batch(mut tx: crate::db::Tx<'static>) -> Result<(), sqlx::Error> {
    crate::migrate::flow::write_ledger::unmark_migration_write(&mut tx).await?;
    tx.commit().await
}

/// Runs a statement whose only binds are keys (text), in the caller's transaction.
pub async fn execute_keyed(
    tx: &mut crate::db::Tx<'_>,
    sql: &str,
    keys: &[String],
) -> Result<u64, sqlx::Error> {
    crate::on_tx!(tx, conn => {
        let mut query = sqlx::query(sql);
        for key in keys {
            query = query.bind(key.clone());
        }
        Ok(query.execute(&mut **conn).await?.rows_affected())
    })
}

/// The next batch after `after`: its last key and its size, or `None` when the table is done.
pub async fn next_bound(
    tx: &mut crate::db::Tx<'_>,
    table: &str,
    after: Option<&Key>,
    limit: i64,
) -> Result<Option<(Key, i64)>, sqlx::Error> {
    use sqlx::Row;
    let sql = next_bound_sql(tx.engine(), table, after);
    crate::on_tx!(tx, conn => {
        let mut query = sqlx::query(&sql);
        if let Some(after) = after {
            query = query.bind(after.clone());
        }
        let row = query.bind(limit).fetch_optional(&mut **conn).await?;
        match row {
            Some(row) => Ok(Some((row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?))),
            None => Ok(None),
        }
    })
}

/// Legacy columns of a table in their declared order (columns the migration added left out).
pub async fn legacy_columns(db: &crate::db::Db, table: &str) -> Result<Vec<String>, sqlx::Error> {
    let columns: Vec<String> = match db {
        crate::db::Db::Sqlite(pool) => {
            sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid")
                .bind(table)
                .fetch_all(pool)
                .await?
        }
        crate::db::Db::Postgres(pool) => {
            sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(pool)
            .await?
        }
    };
    Ok(columns
        .into_iter()
        .filter(|column| !crate::migrate::flow::linked::is_added_column(table, column))
        .collect())
}

/// How long an ANALYZE of flowkey's waits for its tables' lock (SHARE UPDATE EXCLUSIVE, which
/// the application's reads and writes never take; only maintenance and schema changes do).
/// An ordinary autovacuum gives way after the server's `deadlock_timeout` (1 s by default);
/// an autovacuum against wraparound or a VACUUM an operator started does not, and can hold a
/// large table for hours.
pub const ANALYZE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// PostgreSQL: ANALYZE `tables` (one table or a comma-separated list) so that the next plans
/// see the rows as they are, waiting at most [`ANALYZE_LOCK_WAIT`] for the lock. Statistics
/// steer plans, never results: when maintenance holds a table the run goes on with the
/// statistics it has and says so in a warning. Returns whether the statistics were
/// refreshed. SQLite: nothing to do (`true`).
pub async fn refresh_statistics(db: &crate::db::Db, tables: &str) -> Result<bool, sqlx::Error> {
    let crate::db::Db::Postgres(pool) = db else {
        return Ok(true);
    };
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('lock_timeout', $1, true)")
        .bind(format!("{}ms", ANALYZE_LOCK_WAIT.as_millis()))
        .execute(&mut *tx)
        .await?;
    let analyzed = sqlx::query(&format!("ANALYZE {tables}"))
        .execute(&mut *tx)
        .await;
    if let Err(sqlx::Error::Database(err)) = &analyzed {
        if err.code().as_deref() == Some("55P03") {
            tx.rollback().await?;
            let waited = ANALYZE_LOCK_WAIT;
            tracing::warn!(
                "statistics of {tables} not refreshed: maintenance (a VACUUM, or an \
                 autovacuum against wraparound) held the table for {waited:?}; the next \
                 plans use the statistics it had"
            );
            return Ok(false);
        }
    }
    analyzed?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_bind_their_bounds_in_order() {
        let range = KeyRange {
            lo: Some("a".into()),
            hi: "b".into(),
        };
        let (sql, binds) = range.predicate(Engine::Postgres, "t");
        assert_eq!(sql, "t.id > $1::uuid AND t.id <= $2::uuid");
        assert_eq!(binds, vec!["a".to_owned(), "b".to_owned()]);
        let first = KeyRange {
            lo: None,
            hi: "b".into(),
        };
        assert_eq!(first.predicate(Engine::Sqlite, "t").0, "t.id <= $1");
    }
}
