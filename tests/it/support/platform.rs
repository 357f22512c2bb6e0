//! Platform-shaped databases: `../shared/legacy/` + `../shared/platform/` loaded into a fresh
//! test database (PostgreSQL: in `public` or in a schema `migration` reached through the
//! URL's search_path), and snapshots of every object flowkey does not own, schema and data,
//! to compare before and after a command.

#![allow(dead_code)]

use std::collections::BTreeSet;

use flowkey::db::{Db, Engine};
use sqlx::Row;

use crate::support::harness::TestDb;

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared");

pub fn shared(path: &str) -> String {
    let candidates = [format!("{SHARED}/{path}"), format!("/work/shared/{path}")];
    for candidate in &candidates {
        if let Ok(text) = std::fs::read_to_string(candidate) {
            return text;
        }
    }
    panic!("shared fixture {path} not found in {candidates:?}");
}

/// Where the platform lives in a PostgreSQL database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Public,
    /// A schema `migration`, first and only on the search_path.
    Migration,
}

/// A fresh database holding the legacy tables, the rest of the platform and its data.
pub async fn platform_db(engine: Engine, placement: Placement) -> TestDb {
    let mut test_db = TestDb::fresh(engine).await;
    if placement == Placement::Migration {
        assert_eq!(engine, Engine::Postgres, "schemas are PostgreSQL's");
        let db = test_db.connect().await;
        db.execute_plain("CREATE SCHEMA migration").await.unwrap();
        db.close().await;
        test_db.url = flowkey::db::url_in_schema(&test_db.url, "migration").unwrap();
    }
    let (legacy, platform, data) = match engine {
        Engine::Sqlite => (
            "legacy/sqlite.sql",
            "platform/sqlite.sql",
            "platform/data.sqlite.sql",
        ),
        Engine::Postgres => (
            "legacy/postgres.sql",
            "platform/postgres.sql",
            "platform/data.postgres.sql",
        ),
    };
    for script in [legacy, platform, data] {
        test_db.run_script(&shared(script)).await;
    }
    test_db
}

/// Names of what flowkey migrates or creates: the tables of its head schema.
pub async fn migrated_tables(db: &Db) -> BTreeSet<String> {
    let head = flowkey::migrate::adopt::reference_schema(db, flowkey::migrate::revisions::all())
        .await
        .unwrap();
    head.tables.keys().cloned().collect()
}

/// Every object of the database's schema that flowkey does not own (`flowkey_*` and
/// `excluded` tables left out, with what hangs on them), its definition and its rows
/// (views' rows included), as sorted text lines.
pub async fn snapshot(url: &str, excluded: &BTreeSet<String>) -> Vec<String> {
    let db = Db::connect(url).await.unwrap();
    let lines = match &db {
        Db::Sqlite(pool) => sqlite_snapshot(pool, excluded).await,
        Db::Postgres(pool) => postgres_snapshot(url, pool, excluded).await,
    };
    db.close().await;
    lines
}

fn ours(name: &str, excluded: &BTreeSet<String>) -> bool {
    name.starts_with("flowkey_") || excluded.contains(name)
}

async fn sqlite_snapshot(pool: &sqlx::SqlitePool, excluded: &BTreeSet<String>) -> Vec<String> {
    let objects = sqlx::query(
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master \
         WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut lines = Vec::new();
    let mut readable = Vec::new();
    for row in objects {
        let (kind, name, table, sql): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if ours(&name, excluded) || ours(&table, excluded) {
            continue;
        }
        lines.push(format!("{kind} {name} on {table}: {sql}"));
        if kind == "table" || kind == "view" {
            readable.push(name);
        }
    }
    for name in readable {
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid")
                .bind(&name)
                .fetch_all(pool)
                .await
                .unwrap();
        let row_text = columns
            .iter()
            .map(|c| format!("quote(\"{c}\")"))
            .collect::<Vec<_>>()
            .join(" || ',' || ");
        let mut rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT {row_text} FROM \"{name}\""))
                .fetch_all(pool)
                .await
                .unwrap();
        rows.sort();
        lines.extend(rows.into_iter().map(|row| format!("row {name}: {row}")));
    }
    lines
}

async fn postgres_snapshot(
    url: &str,
    pool: &sqlx::PgPool,
    excluded: &BTreeSet<String>,
) -> Vec<String> {
    let schema: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(pool)
        .await
        .unwrap();
    // The schema as pg_dump writes it, flowkey's and the excluded tables left out, under the
    // database's own search_path (definitions are qualified relative to it).
    let url = url::Url::parse(url).unwrap();
    let database = url.path().trim_start_matches('/').to_owned();
    let mut command = std::process::Command::new("pg_dump");
    command
        .arg("--schema-only")
        .arg("--no-owner")
        .arg(format!("--schema={schema}"))
        .arg(format!("--exclude-table={schema}.flowkey_*"))
        .arg(format!("--host={}", url.host_str().unwrap()))
        .arg(format!("--port={}", url.port().unwrap_or(5432)))
        .arg(format!("--username={}", url.username()))
        .arg(&database);
    for table in excluded {
        command.arg(format!("--exclude-table={schema}.{table}"));
    }
    let output = command.output().expect("pg_dump runs");
    assert!(
        output.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dump = String::from_utf8(output.stdout).unwrap();
    let mut lines = Vec::new();
    // Blocks are separated by `-- Name: ...; Type: ...` headers; flowkey's functions (and
    // with the excluded tables the comments on them) are left out.
    for block in dump.split("\n--\n-- Name: ") {
        let header = block.lines().next().unwrap_or_default();
        let name = header.split(';').next().unwrap_or_default();
        let first_word = name.split(['(', ' ']).next().unwrap_or_default();
        if first_word.starts_with("flowkey_")
            || excluded
                .iter()
                .any(|t| name == format!("TABLE {t}") || name.starts_with(&format!("COLUMN {t}.")))
        {
            continue;
        }
        // `\restrict KEY` lines carry a random key per dump.
        lines.extend(
            block
                .lines()
                .filter(|line| !line.starts_with("\\restrict") && !line.starts_with("\\unrestrict"))
                .map(str::to_owned),
        );
    }
    let readable: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c \
         WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) \
           AND c.relkind IN ('r', 'v', 'm', 'p') ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for name in readable.into_iter().filter(|name| !ours(name, excluded)) {
        let mut rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT t::text FROM \"{name}\" t"))
                .fetch_all(pool)
                .await
                .unwrap();
        rows.sort();
        lines.extend(rows.into_iter().map(|row| format!("row {name}: {row}")));
    }
    let sequences: Vec<(String, i64)> = sqlx::query_as(
        "SELECT sequencename::text, coalesce(last_value, 0) FROM pg_sequences \
         WHERE schemaname = current_schema() ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (name, value) in sequences
        .into_iter()
        .filter(|(name, _)| !ours(name, excluded))
    {
        lines.push(format!("sequence {name} at {value}"));
    }
    lines
}

/// Every object of every schema but `schema` in the database, as text (PostgreSQL): what a
/// run in `schema` must never touch.
pub async fn other_schemas(db: &Db, schema: &str) -> Vec<String> {
    let Db::Postgres(pool) = db else {
        return Vec::new();
    };
    sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname || ' ' || c.relkind::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
           AND n.nspname <> $1 ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Asserts two snapshots are equal, showing only the lines that differ.
pub fn assert_same(before: &[String], after: &[String], what: &str) {
    if before == after {
        return;
    }
    let b: BTreeSet<&String> = before.iter().collect();
    let a: BTreeSet<&String> = after.iter().collect();
    let gone: Vec<_> = b.difference(&a).take(20).collect();
    let new: Vec<_> = a.difference(&b).take(20).collect();
    panic!("{what}: objects not flowkey's changed\n gone: {gone:#?}\n new: {new:#?}");
}
