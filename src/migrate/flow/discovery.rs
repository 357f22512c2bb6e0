//! Session ids flowkey does not migrate, found so that nothing is left behind silently: columns
//! outside the migrated tables that look like session keys (named `*session_id*`, or text/JSON
//! values holding `disc_session_` ids in a bounded sample), and the JSON keys inside migrated
//! tables that embed session ids. A read: `flowkey report` lists them, and `upgrade` warns
//! about them in its pre-flight.

use std::collections::BTreeSet;
use std::fmt;
use std::fmt::Write as _;

use serde::Serialize;

use crate::db::Db;
use crate::migrate::MigrateError;

/// Rows read per table when looking for `disc_session_` values: enough to see a column that
/// holds them, while the cost stays independent of the table's size.
pub const SAMPLE_ROWS: i64 = 1000;

/// JSON keys inside migrated tables that embed session ids; flowkey does not rewrite them.
pub const EMBEDDED_JSON_KEYS: &[(&str, &str, &str)] = &[
    ("discovery_flows", "crewai_state_data", "session_id"),
    (
        "discovery_flows",
        "crewai_state_data",
        "original_session_id",
    ),
    ("data_imports", "import_config", "validation_session_id"),
];

#[derive(Debug, Clone, Default, Serialize)]
pub struct NotMigrated {
    /// Columns outside the migrated tables that look like session keys.
    pub columns: Vec<SessionLikeColumn>,
    /// JSON keys in migrated tables that hold session ids.
    pub json_keys: Vec<EmbeddedKey>,
    /// Rows sampled per table for values.
    pub sample_rows: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionLikeColumn {
    pub table: String,
    pub column: String,
    pub data_type: String,
    /// `named like a session key` or `holds disc_session_ ids`.
    pub why: &'static str,
    /// False for a view: views are not read (one may be costly to compute).
    pub sampled: bool,
    /// Rows of the sample whose value is set (a column named like a session key) or holds a
    /// `disc_session_` id.
    pub sampled_matches: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EmbeddedKey {
    pub table: String,
    pub column: String,
    pub key: String,
    /// Rows whose JSON has the key.
    pub rows: i64,
}

impl NotMigrated {
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty() && self.json_keys.iter().all(|key| key.rows == 0)
    }
}

impl fmt::Display for NotMigrated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "not migrated: nothing else looks like a session id");
        }
        // Written to a String, which never fails, then to the formatter once.
        let mut out = String::new();
        let _ =
            writeln!(out,
            "not migrated (session ids flowkey leaves as they are; sample of {} rows per table):",
            self.sample_rows
        );
        for column in &self.columns {
            let sample = if column.sampled {
                format!("{} of the sampled rows", column.sampled_matches)
            } else {
                "a view, not read".to_owned()
            };
            let _ = writeln!(
                out,
                "  {}.{} ({}): {}; {sample}",
                column.table, column.column, column.data_type, column.why
            );
        }
        for key in self.json_keys.iter().filter(|key| key.rows > 0) {
            let _ = writeln!(
                out,
                "  {}.{} -> '{}': {} rows embed a session id in JSON (not rewritten)",
                key.table, key.column, key.key, key.rows
            );
        }
        f.write_str(&out)
    }
}

/// [`discover`] with the tables of every revision flowkey knows as the migrated set.
pub async fn discover_outside_migrated(db: &Db) -> Result<NotMigrated, MigrateError> {
    let migrated = crate::migrate::adopt::table_names(crate::migrate::revisions::all()).await?;
    discover(db, &migrated).await
}

/// Looks for session ids outside what flowkey migrates. `migrated` are the tables flowkey
/// migrates or creates (their own `session_id` columns are its business).
pub async fn discover(db: &Db, migrated: &BTreeSet<String>) -> Result<NotMigrated, MigrateError> {
    let columns: Vec<(String, String, String, bool)> = match db {
        Db::Postgres(pool) => {
            sqlx::query_as(
                "SELECT c.table_name::text, c.column_name::text, c.data_type::text, \
                        t.table_type = 'BASE TABLE' \
                 FROM information_schema.columns c JOIN information_schema.tables t \
                   ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
                 WHERE c.table_schema = current_schema() ORDER BY 1, c.ordinal_position",
            )
            .fetch_all(pool)
            .await?
        }
        Db::Sqlite(pool) => {
            sqlx::query_as(
                "SELECT m.name, p.name, lower(p.type), m.type = 'table' \
                 FROM sqlite_master m, pragma_table_info(m.name) p \
                 WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%' \
                 ORDER BY m.name, p.cid",
            )
            .fetch_all(pool)
            .await?
        }
    };
    let mut found = Vec::new();
    for (table, column, data_type, is_table) in columns {
        if table.starts_with("flowkey_") || migrated.contains(&table) {
            continue;
        }
        let named = column.to_ascii_lowercase().contains("session_id");
        let textual = ["text", "char", "json"]
            .iter()
            .any(|kind| data_type.contains(kind));
        if !named && !textual {
            continue;
        }
        let sampled_matches = if is_table {
            sample(db, &table, &column, named).await?
        } else {
            0
        };
        if named || sampled_matches > 0 {
            found.push(SessionLikeColumn {
                table,
                column,
                data_type,
                sampled: is_table,
                why: if named {
                    "named like a session key"
                } else {
                    "holds disc_session_ ids"
                },
                sampled_matches,
            });
        }
    }
    let mut json_keys = Vec::new();
    for (table, column, key) in EMBEDDED_JSON_KEYS {
        let sql = match db {
            Db::Postgres(_) => format!(
                "SELECT count(*) FROM {table} WHERE {column} IS NOT NULL AND {column}::jsonb ? $1"
            ),
            Db::Sqlite(_) => format!(
                "SELECT count(*) FROM {table} WHERE json_valid({column}) \
                 AND json_type({column}, '$.' || $1) IS NOT NULL"
            ),
        };
        let rows: i64 = crate::on_pool!(db, pool => {
            sqlx::query_scalar(&sql).bind(*key).fetch_one(pool).await?
        });
        json_keys.push(EmbeddedKey {
            table: (*table).into(),
            column: (*column).into(),
            key: (*key).into(),
            rows,
        });
    }
    Ok(NotMigrated {
        columns: found,
        json_keys,
        sample_rows: SAMPLE_ROWS,
    })
}

/// In the first [`SAMPLE_ROWS`] rows of `table`: how many set `column` (a column named like a
/// session key) or hold a `disc_session_` id in it.
async fn sample(db: &Db, table: &str, column: &str, named: bool) -> Result<i64, MigrateError> {
    let text = match db {
        Db::Postgres(_) => format!("\"{column}\"::text"),
        Db::Sqlite(_) => format!("CAST(\"{column}\" AS TEXT)"),
    };
    let condition = if named {
        format!("{text} IS NOT NULL")
    } else {
        format!("lower({text}) LIKE '%disc\\_session\\_%' ESCAPE '\\'")
    };
    let sql = format!(
        "SELECT count(*) FROM (SELECT \"{column}\" FROM \"{table}\" LIMIT {SAMPLE_ROWS}) s \
         WHERE {}",
        condition.replace(&format!("\"{column}\""), &format!("s.\"{column}\""))
    );
    Ok(crate::on_pool!(db, pool => {
        sqlx::query_scalar::<_, i64>(&sql).fetch_one(pool).await?
    }))
}
