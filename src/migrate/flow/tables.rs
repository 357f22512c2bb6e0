//! The legacy tables the migration touches, and the keyset helpers every batched loop uses.

use crate::db::Engine;

/// Tables that get a `flow_id` column, in backfill order: an import's flow is known before
/// its raw records and field mappings look it up.
pub const FLOW_COLUMN_TABLES: &[&str] = &[
    "data_imports",
    "raw_import_records",
    "import_field_mappings",
    "assets",
    "access_audit_log",
    "llm_usage_logs",
];

/// Tables whose `flow_id` references `discovery_flows(flow_id)`. Audit and log tables get no
/// foreign key: their rows outlive flows.
pub const CORE_TABLES: &[&str] = &[
    "data_imports",
    "raw_import_records",
    "import_field_mappings",
    "assets",
];

/// Tables whose `session_id` is a UUID with a foreign key to `data_import_sessions`.
pub const SESSION_FK_TABLES: &[&str] = &[
    "data_imports",
    "raw_import_records",
    "assets",
    "access_audit_log",
];

/// The placeholder tenant under which some legacy flows were created.
pub const PLACEHOLDER_CLIENT_ACCOUNT_ID: &str = "11111111-1111-1111-1111-111111111111";

/// Whether `table.column` was added by the migration (and is therefore not a legacy column).
pub fn is_added_column(table: &str, column: &str) -> bool {
    column == "flow_id" && FLOW_COLUMN_TABLES.contains(&table)
}

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

/// Tenant agreement of a row `r` with a tenant-carrying row `x` (a flow or a mapping): the
/// tenant rule of [`crate::db::tenancy`].
pub fn tenant_agrees(r: &str, x: &str) -> String {
    crate::db::tenancy::agrees_with(r, x)
}

/// Begins the transaction of one batch. On PostgreSQL it asks for custom plans: a batch query
/// is prepared once and run many times, and a generic plan (which cannot see the batch's
/// `LIMIT` or key bounds) may choose a full scan and sort per batch, so throughput would fall
/// as the table grows.
pub async fn begin_batch(db: &crate::db::Db) -> Result<crate::db::Tx<'static>, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    if let crate::db::Tx::Postgres(conn) = &mut tx {
        sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
            .execute(&mut **conn)
            .await?;
    }
    Ok(tx)
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
        .filter(|column| !is_added_column(table, column))
        .collect())
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

    #[test]
    fn only_flow_id_of_the_six_tables_is_added() {
        assert!(is_added_column("assets", "flow_id"));
        assert!(!is_added_column("flow_deletion_audit", "flow_id"));
        assert!(!is_added_column("assets", "session_id"));
    }
}
