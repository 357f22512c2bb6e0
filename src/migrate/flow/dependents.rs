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

/// The platform's triggers on linked tables that fire when a row's `flow_id` is updated
/// (on UPDATE of any column, or of a list naming `flow_id`; on PostgreSQL row and statement
/// triggers alike), described as "trigger t on assets"; flowkey's own (`flowkey_*`) are
/// not. The backfill and the catch-up UPDATE `flow_id` in every row they link. Read-only.
pub async fn platform_update_triggers(db: &Db) -> Result<Vec<String>, MigrateError> {
    let tables: Vec<String> = crate::migrate::flow::linked::LINKED_TABLES
        .iter()
        .map(|table| table.name.to_owned())
        .collect();
    let found: Vec<(String, String)> = match db {
        Db::Postgres(pool) => {
            // tgtype bit 16: UPDATE. tgattr: the UPDATE OF columns, empty for any column.
            sqlx::query_as(
                "SELECT t.tgname::text, c.relname::text FROM pg_trigger t \
                 JOIN pg_class c ON c.oid = t.tgrelid \
                 WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) \
                   AND c.relname = ANY($1) AND NOT t.tgisinternal AND (t.tgtype & 16) <> 0 \
                   AND t.tgname NOT LIKE 'flowkey\\_%' \
                   AND (cardinality(t.tgattr::int2[]) = 0 OR EXISTS ( \
                        SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
                        AND a.attname = 'flow_id' AND a.attnum = ANY (t.tgattr::int2[]))) \
                 ORDER BY 2, 1",
            )
            .bind(&tables)
            .fetch_all(pool)
            .await?
        }
        Db::Sqlite(pool) => {
            let rows: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger' \
                 AND sql IS NOT NULL AND name NOT LIKE 'flowkey\\_%' ESCAPE '\\' \
                 ORDER BY tbl_name, name",
            )
            .fetch_all(pool)
            .await?;
            rows.into_iter()
                .filter(|(_, table, sql)| {
                    tables.contains(table) && sqlite_fires_on_flow_id_update(sql)
                })
                .map(|(name, table, _)| (name, table))
                .collect()
        }
    };
    Ok(found
        .into_iter()
        .map(|(name, table)| format!("trigger {name} on {table}"))
        .collect())
}

/// Whether a SQLite `CREATE TRIGGER` text fires on an UPDATE of `flow_id`: `UPDATE ON`
/// (any column) or `UPDATE OF` a list naming it.
fn sqlite_fires_on_flow_id_update(sql: &str) -> bool {
    let words: Vec<String> = sql
        .split(|c: char| {
            c.is_whitespace() || c == ',' || c == '"' || c == '`' || c == '[' || c == ']'
        })
        .filter(|word| !word.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    // The event is in the header, before the body's BEGIN (the body's own UPDATEs do not
    // count; a trigger may be named `update`).
    let header = words
        .iter()
        .position(|word| word == "begin")
        .map_or(&words[..], |begin| &words[..begin]);
    header.iter().enumerate().any(|(at, word)| {
        word == "update"
            && match header.get(at + 1).map(String::as_str) {
                Some("on") => true,
                Some("of") => header[at + 2..]
                    .iter()
                    .take_while(|word| *word != "on")
                    .any(|word| word == "flow_id"),
                _ => false,
            }
    })
}

#[cfg(test)]
mod tests {
    use super::{names_word, sqlite_fires_on_flow_id_update};

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

    #[test]
    fn a_sqlite_trigger_fires_on_flow_id_updates_when_its_columns_allow() {
        for (sql, fires) in [
            ("CREATE TRIGGER t AFTER UPDATE ON assets BEGIN SELECT 1; END", true),
            ("create trigger t before update\non assets begin select 1; end", true),
            ("CREATE TRIGGER t AFTER UPDATE OF name, flow_id ON assets BEGIN SELECT 1; END", true),
            ("CREATE TRIGGER t AFTER UPDATE OF \"flow_id\" ON assets BEGIN SELECT 1; END", true),
            ("CREATE TRIGGER t AFTER UPDATE OF name ON assets BEGIN UPDATE x SET flow_id = 1; END", false),
            ("CREATE TRIGGER t AFTER INSERT ON assets BEGIN UPDATE assets SET name = 1; END", false),
            ("CREATE TRIGGER t AFTER DELETE ON assets BEGIN SELECT 1; END", false),
            ("CREATE TRIGGER update BEFORE UPDATE ON assets BEGIN SELECT 1; END", true),
            ("CREATE TRIGGER update AFTER INSERT ON assets BEGIN SELECT 1; END", false),
        ] {
            assert_eq!(sqlite_fires_on_flow_id_update(sql), fires, "{sql}");
        }
    }
}
