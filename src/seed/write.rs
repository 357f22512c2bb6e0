//! The seed's store: the only SQL of `seed`. Schema checks, row counts, multi-row INSERTs on
//! both engines and COPY on PostgreSQL.
//!
//! Rows arrive as [`Cell`]s in the column order of a [`Table`]; each engine binds them in its
//! own types (`uuid`, `json`, `timestamptz` on PostgreSQL; lowercase TEXT, JSON text and 0/1
//! on SQLite), so the generator does not branch on the engine.

use std::fmt::Write as _;

use chrono::SecondsFormat;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Postgres, Sqlite};
use uuid::Uuid;

use crate::db::types::{uuid_text, DbTime};
use crate::db::{Db, Engine, Tx};
use crate::migrate::revisions::legacy::LEGACY_TABLES;
use crate::seed::SeedError;

/// One value of a row, typed so that a NULL still binds as its column's type on PostgreSQL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Uuid(Option<Uuid>),
    Text(Option<String>),
    Int(Option<i64>),
    Float(Option<f64>),
    Bool(bool),
    Time(Option<DbTime>),
    /// `json`/`jsonb` on PostgreSQL, JSON text on SQLite.
    Json(Option<serde_json::Value>),
    /// JSON already serialized (the hot path of raw records), same columns as [`Cell::Json`].
    JsonText(String),
}

/// A legacy table and the columns the seed writes, in the order of its rows' cells.
#[derive(Debug)]
pub(crate) struct Table {
    pub name: &'static str,
    pub columns: &'static [&'static str],
}

/// Largest number of bind parameters in one statement.
fn bind_limit(engine: Engine) -> usize {
    match engine {
        Engine::Sqlite => 32_766,
        Engine::Postgres => 65_535,
    }
}

/// Rows per multi-row INSERT: bounded by the bind limit, and by a size past which longer
/// statements stop paying off.
pub(crate) fn rows_per_statement(engine: Engine, table: &Table) -> usize {
    (bind_limit(engine) / table.columns.len().max(1)).clamp(1, 1_000)
}

/// Which legacy tables exist in the current schema.
pub(crate) async fn existing_legacy_tables(db: &Db) -> Result<Vec<&'static str>, SeedError> {
    let names: Vec<String> = match db {
        Db::Sqlite(pool) => {
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(pool)
                .await?
        }
        Db::Postgres(pool) => {
            sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema()",
            )
            .fetch_all(pool)
            .await?
        }
    };
    Ok(LEGACY_TABLES
        .iter()
        .copied()
        .filter(|table| names.iter().any(|name| name == table))
        .collect())
}

/// Rows in `data_import_sessions`, which the seed mixes into its random seed.
pub(crate) async fn count_sessions(db: &Db) -> Result<u64, SeedError> {
    let count: i64 = crate::on_pool!(db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM data_import_sessions")
            .fetch_one(pool)
            .await?
    });
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Inserts `rows` with multi-row INSERTs, each as large as the engine's bind limit allows.
pub(crate) async fn insert_rows(
    tx: &mut Tx<'_>,
    table: &Table,
    rows: &[Vec<Cell>],
) -> Result<(), SeedError> {
    let per_statement = rows_per_statement(tx.engine(), table);
    for batch in rows.chunks(per_statement) {
        let sql = insert_sql(tx.engine(), table, batch.len());
        match tx {
            Tx::Sqlite(conn) => {
                let mut query = sqlx::query::<Sqlite>(&sql);
                for cell in batch.iter().flatten() {
                    query = bind_sqlite(query, cell);
                }
                query.execute(&mut **conn).await?;
            }
            Tx::Postgres(conn) => {
                let mut query = sqlx::query::<Postgres>(&sql);
                for cell in batch.iter().flatten() {
                    query = bind_postgres(query, cell);
                }
                query.execute(&mut **conn).await?;
            }
        }
    }
    Ok(())
}

/// Inserts rows the fastest way the engine offers: COPY on PostgreSQL, multi-row INSERTs
/// (prepared once, reused) on SQLite.
pub(crate) async fn bulk_insert_rows(
    tx: &mut Tx<'_>,
    table: &Table,
    rows: &[Vec<Cell>],
) -> Result<(), SeedError> {
    let Tx::Postgres(conn) = tx else {
        return insert_rows(tx, table, rows).await;
    };
    if rows.is_empty() {
        return Ok(());
    }
    let mut buffer = String::with_capacity(rows.len() * 512);
    for row in rows {
        copy_text_row(&mut buffer, row);
    }
    let statement = format!(
        "COPY {} ({}) FROM STDIN",
        table.name,
        table.columns.join(", ")
    );
    let mut copy = conn.copy_in_raw(&statement).await?;
    if let Err(err) = copy.send(buffer.into_bytes()).await {
        // Leaving the COPY open would poison the connection; abort it before failing.
        let _ = copy.abort(err.to_string()).await;
        return Err(err.into());
    }
    copy.finish().await?;
    Ok(())
}

/// A multi-row INSERT. SQLite gets anonymous `?` placeholders: it looks a named one (`$N`) up
/// by a linear scan on every bind, which makes a statement of thousands of binds quadratic.
fn insert_sql(engine: Engine, table: &Table, row_count: usize) -> String {
    let width = table.columns.len();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        table.name,
        table.columns.join(", ")
    );
    sql.reserve(row_count * width * 6);
    for row in 0..row_count {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..width {
            if column > 0 {
                sql.push_str(", ");
            }
            match engine {
                Engine::Sqlite => sql.push('?'),
                Engine::Postgres => {
                    let _ = write!(sql, "${}", row * width + column + 1);
                }
            }
        }
        sql.push(')');
    }
    sql
}

fn bind_sqlite<'q>(
    query: Query<'q, Sqlite, SqliteArguments<'q>>,
    cell: &'q Cell,
) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    match cell {
        Cell::Uuid(value) => query.bind(value.map(uuid_text)),
        Cell::Text(value) => query.bind(value.as_deref()),
        Cell::Int(value) => query.bind(*value),
        Cell::Float(value) => query.bind(*value),
        Cell::Bool(value) => query.bind(i64::from(*value)),
        Cell::Time(value) => query.bind(value.map(|time| time.to_sqlite_text())),
        Cell::Json(value) => query.bind(value.as_ref().map(|json| json.to_string())),
        Cell::JsonText(text) => query.bind(text.as_str()),
    }
}

fn bind_postgres<'q>(
    query: Query<'q, Postgres, PgArguments>,
    cell: &'q Cell,
) -> Query<'q, Postgres, PgArguments> {
    match cell {
        Cell::Uuid(value) => query.bind(*value),
        Cell::Text(value) => query.bind(value.as_deref()),
        Cell::Int(value) => query.bind(*value),
        Cell::Float(value) => query.bind(*value),
        Cell::Bool(value) => query.bind(*value),
        Cell::Time(value) => query.bind(value.map(|time| time.0)),
        Cell::Json(value) => query.bind(value.as_ref().map(sqlx::types::Json)),
        Cell::JsonText(text) => {
            // PostgreSQL will not take a text parameter into a json column, so the text goes
            // back to a value. Only a fallback: raw records reach PostgreSQL through COPY.
            let value = serde_json::from_str::<serde_json::Value>(text)
                .unwrap_or_else(|_| serde_json::Value::String(text.clone()));
            query.bind(sqlx::types::Json(value))
        }
    }
}

/// Appends one row in COPY's text format: tab-separated, `\N` for NULL, backslash escapes.
fn copy_text_row(buffer: &mut String, row: &[Cell]) {
    for (index, cell) in row.iter().enumerate() {
        if index > 0 {
            buffer.push('\t');
        }
        match cell {
            Cell::Uuid(Some(value)) => {
                let _ = write!(buffer, "{}", value.hyphenated());
            }
            Cell::Text(Some(value)) => copy_escape(buffer, value),
            Cell::Int(Some(value)) => {
                let _ = write!(buffer, "{value}");
            }
            Cell::Float(Some(value)) => {
                let _ = write!(buffer, "{value}");
            }
            Cell::Bool(value) => buffer.push(if *value { 't' } else { 'f' }),
            Cell::Time(Some(value)) => {
                buffer.push_str(&value.0.to_rfc3339_opts(SecondsFormat::Millis, true));
            }
            Cell::Json(Some(value)) => copy_escape(buffer, &value.to_string()),
            Cell::JsonText(text) => copy_escape(buffer, text),
            Cell::Uuid(None)
            | Cell::Text(None)
            | Cell::Int(None)
            | Cell::Float(None)
            | Cell::Time(None)
            | Cell::Json(None) => buffer.push_str("\\N"),
        }
    }
    buffer.push('\n');
}

fn copy_escape(buffer: &mut String, text: &str) {
    for character in text.chars() {
        match character {
            '\\' => buffer.push_str("\\\\"),
            '\t' => buffer.push_str("\\t"),
            '\n' => buffer.push_str("\\n"),
            '\r' => buffer.push_str("\\r"),
            other => buffer.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAIR: Table = Table {
        name: "t",
        columns: &["a", "b"],
    };

    #[test]
    fn insert_sql_numbers_every_placeholder() {
        assert_eq!(
            insert_sql(Engine::Postgres, &PAIR, 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(
            insert_sql(Engine::Sqlite, &PAIR, 2),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"
        );
    }

    #[test]
    fn statements_stay_under_the_bind_limit() {
        let wide = Table {
            name: "w",
            columns: &["c"; 40],
        };
        assert!(rows_per_statement(Engine::Sqlite, &wide) * 40 <= 32_766);
        assert!(rows_per_statement(Engine::Postgres, &wide) * 40 <= 65_535);
    }

    #[test]
    fn copy_text_escapes_separators_and_marks_nulls() {
        let mut buffer = String::new();
        copy_text_row(
            &mut buffer,
            &[
                Cell::Text(Some("a\tb\\c\nd".into())),
                Cell::Text(None),
                Cell::Bool(true),
                Cell::Int(Some(7)),
            ],
        );
        assert_eq!(buffer, "a\\tb\\\\c\\nd\t\\N\tt\t7\n");
    }
}
