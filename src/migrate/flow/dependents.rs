//! Objects of the platform that depend on a column flowkey added (`flow_id`): a view that
//! reads it, a foreign key from or to it, an index or trigger on it, created after the
//! upgrade. A downgrade drops those columns; it must refuse before changing anything rather
//! than fail half way or (PostgreSQL, an index) drop the platform's object with the column.

use std::collections::BTreeSet;

use sqlx::Row;

use crate::db::Db;
use crate::migrate::flow::linked::LinkedTable;
use crate::migrate::MigrateError;

/// The names flowkey itself gives objects on `table`'s `flow_id`: they go with the
/// downgrade's own steps.
fn flowkey_owned(table: &LinkedTable) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = table
        .extra_indexes
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect();
    names.insert(table.flow_index_name());
    names.extend(table.flow_foreign_key_name());
    names
}

fn is_flowkeys(table: &LinkedTable, name: &str) -> bool {
    name.starts_with("flowkey_") || flowkey_owned(table).contains(name)
}

/// Every object not flowkey's that depends on the `flow_id` column of `tables`, described as "view v reads data_imports.flow_id" and the
/// like, in name order. Read-only.
pub async fn dependents_on_added_columns(
    db: &Db,
    tables: &[&LinkedTable],
) -> Result<Vec<String>, MigrateError> {
    let mut found = BTreeSet::new();
    for &table in tables {
        match db {
            Db::Postgres(pool) => {
                // pg_depend records what a DROP COLUMN would take with it (indexes, foreign
                // keys of both sides, triggers) or refuse for (views).
                let rows = sqlx::query(
                    "SELECT CASE d.classid \
                        WHEN 'pg_rewrite'::regclass THEN 'view' \
                        WHEN 'pg_constraint'::regclass THEN 'constraint' \
                        WHEN 'pg_trigger'::regclass THEN 'trigger' \
                        WHEN 'pg_class'::regclass THEN 'index' ELSE 'object' END, \
                      CASE d.classid \
                        WHEN 'pg_rewrite'::regclass THEN \
                          (SELECT c.relname::text FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class WHERE r.oid = d.objid) \
                        WHEN 'pg_constraint'::regclass THEN \
                          (SELECT conname::text || ' on ' || conrelid::regclass::text FROM pg_constraint WHERE oid = d.objid) \
                        WHEN 'pg_trigger'::regclass THEN \
                          (SELECT tgname::text FROM pg_trigger WHERE oid = d.objid) \
                        WHEN 'pg_class'::regclass THEN \
                          (SELECT relname::text FROM pg_class WHERE oid = d.objid) \
                        ELSE pg_describe_object(d.classid, d.objid, d.objsubid) END \
                     FROM pg_depend d \
                     JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
                     WHERE d.refclassid = 'pg_class'::regclass \
                       AND d.refobjid = to_regclass(quote_ident(current_schema()) || '.' || quote_ident($1)) \
                       AND a.attname = 'flow_id' AND d.deptype IN ('n', 'a')",
                )
                .bind(table.name)
                .fetch_all(pool)
                .await?;
                for row in rows {
                    let kind: String = row.get(0);
                    let object: Option<String> = row.get(1);
                    let Some(object) = object else { continue };
                    let bare = object.split(' ').next().unwrap_or_default();
                    if !is_flowkeys(table, bare) {
                        found.insert(format!("{kind} {object} depends on {}.flow_id", table.name));
                    }
                }
            }
            Db::Sqlite(pool) => {
                let indexes: Vec<String> = sqlx::query_scalar(
                    "SELECT il.name FROM pragma_index_list($1) il WHERE EXISTS \
                     (SELECT 1 FROM pragma_index_info(il.name) ii WHERE ii.name = 'flow_id')",
                )
                .bind(table.name)
                .fetch_all(pool)
                .await?;
                // An index on an expression of flow_id, or partial on it, lists no column
                // named flow_id: its text does (and DROP COLUMN refuses it all the same).
                let written: Vec<(String, String)> = sqlx::query_as(
                    "SELECT name, lower(coalesce(sql, '')) FROM sqlite_master \
                     WHERE type = 'index' AND tbl_name = $1",
                )
                .bind(table.name)
                .fetch_all(pool)
                .await?;
                let by_text = written
                    .into_iter()
                    .filter(|(_, sql)| names_word(sql, "flow_id"))
                    .map(|(name, _)| name);
                for index in indexes
                    .into_iter()
                    .chain(by_text)
                    .filter(|i| !is_flowkeys(table, i))
                {
                    found.insert(format!("index {index} depends on {}.flow_id", table.name));
                }
                let referencing: Vec<String> = sqlx::query_scalar(
                    "SELECT m.name FROM sqlite_master m, pragma_foreign_key_list(m.name) f \
                     WHERE m.type = 'table' AND f.\"table\" = $1 AND f.\"to\" = 'flow_id'",
                )
                .bind(table.name)
                .fetch_all(pool)
                .await?;
                for other in referencing {
                    found.insert(format!(
                        "foreign key of {other} depends on {}.flow_id",
                        table.name
                    ));
                }
                // SQLite records no dependencies: a view or trigger that names both the table
                // and flow_id is taken to read the column (the safe side: a refusal).
                let objects: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT type, name, lower(coalesce(sql, '')) FROM sqlite_master \
                     WHERE type IN ('view', 'trigger') AND name NOT LIKE 'flowkey%'",
                )
                .fetch_all(pool)
                .await?;
                for (kind, name, sql) in objects {
                    if names_word(&sql, "flow_id") && names_word(&sql, table.name) {
                        found.insert(format!("{kind} {name} depends on {}.flow_id", table.name));
                    }
                }
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// Whether `word` occurs in `text` as an identifier of its own.
fn names_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

#[cfg(test)]
mod tests {
    use super::names_word;

    #[test]
    fn words_are_found_whole() {
        assert!(names_word(
            "select d.flow_id from data_imports d",
            "flow_id"
        ));
        assert!(!names_word("select master_flow_id from x", "flow_id"));
        assert!(!names_word("select flow_ids from x", "flow_id"));
        assert!(names_word("\"data_imports\".flow_id", "data_imports"));
    }
}
