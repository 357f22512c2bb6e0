//! Applies revisions step by step until the real runner lands (swap these helpers for
//! `flowkey::migrate::runner::Migrator` then). Also: an audit sink that keeps events in
//! memory, and a schema dump for comparing a downgraded database with a fresh legacy one.

#![allow(dead_code)]

use std::sync::Mutex;

use flowkey::db::{Db, Engine};
use flowkey::migrate::revisions;
use flowkey::migrate::{
    Action, AuditSink, Direction, MigrateError, Revision, RunOptions, StepContext,
};
use futures::future::BoxFuture;
use sqlx::Row;

/// Keeps audit events in memory.
#[derive(Default)]
pub struct MemoryAudit {
    pub events: Mutex<Vec<(String, serde_json::Value)>>,
}

impl MemoryAudit {
    pub fn events_named(&self, name: &str) -> Vec<serde_json::Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(event, _)| event == name)
            .map(|(_, details)| details.clone())
            .collect()
    }
}

impl AuditSink for MemoryAudit {
    fn record<'a>(
        &'a self,
        event: &'a str,
        details: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), MigrateError>> {
        self.events
            .lock()
            .unwrap()
            .push((event.to_owned(), details));
        Box::pin(async { Ok(()) })
    }
}

pub fn revision(id: &str) -> &'static Revision {
    revisions::all()
        .iter()
        .find(|revision| revision.id == id)
        .copied()
        .unwrap_or_else(|| panic!("no revision {id}"))
}

/// Splits a script into statements: `;` at the end of a line ends one, except inside `$$`.
pub fn split_statements(script: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut in_dollar = false;
    for line in script.lines() {
        current.push_str(line);
        current.push('\n');
        if line.matches("$$").count() % 2 == 1 {
            in_dollar = !in_dollar;
        }
        if !in_dollar && line.trim_end().ends_with(';') {
            let statement = current.trim().to_owned();
            if !statement.is_empty() {
                statements.push(statement);
            }
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        statements.push(current.trim().to_owned());
    }
    statements
}

async fn run_sql(db: &Db, script: &str) -> Result<(), MigrateError> {
    match db.engine() {
        Engine::Sqlite => {
            db.execute_plain(&format!("BEGIN;\n{script}\nCOMMIT;"))
                .await?;
        }
        Engine::Postgres => {
            for statement in split_statements(script) {
                db.execute_plain(&statement).await?;
            }
        }
    }
    Ok(())
}

pub async fn apply(
    db: &Db,
    revision: &'static Revision,
    direction: Direction,
    options: &RunOptions,
    audit: &MemoryAudit,
) -> Result<(), MigrateError> {
    let steps = match direction {
        Direction::Up => revision.up,
        Direction::Down => revision.down,
    };
    for step in steps {
        match &step.action {
            Action::Sql(sql) | Action::OnlineDdl(sql) => {
                run_sql(db, &sql.for_engine(db.engine())).await?
            }
            Action::Code { run, sql } | Action::Check { run, sql } => {
                let mut ctx = StepContext {
                    db,
                    options,
                    revision: revision.id,
                    step: step.name,
                    table: sql.table(),
                    direction,
                    audit,
                };
                run(&mut ctx).await?;
            }
        }
    }
    Ok(())
}

pub const FLOW_REVISIONS: [&str; 4] = [
    "flow_mapping",
    "flow_expand",
    "flow_backfill",
    "flow_constraints",
];

/// Creates the legacy schema.
pub async fn create_legacy(db: &Db) {
    apply(
        db,
        revision("legacy"),
        Direction::Up,
        &RunOptions::default(),
        &MemoryAudit::default(),
    )
    .await
    .expect("legacy schema");
}

/// Applies every flow revision up to `until` (inclusive).
pub async fn upgrade_until(db: &Db, until: &str, audit: &MemoryAudit) {
    for id in FLOW_REVISIONS {
        apply(
            db,
            revision(id),
            Direction::Up,
            &RunOptions::default(),
            audit,
        )
        .await
        .unwrap_or_else(|err| panic!("upgrade {id}: {err}"));
        if id == until {
            break;
        }
    }
}

pub async fn upgrade_head(db: &Db, audit: &MemoryAudit) {
    upgrade_until(db, "flow_constraints", audit).await;
}

pub async fn downgrade_legacy(db: &Db, audit: &MemoryAudit) {
    for id in FLOW_REVISIONS.iter().rev() {
        apply(
            db,
            revision(id),
            Direction::Down,
            &RunOptions::default(),
            audit,
        )
        .await
        .unwrap_or_else(|err| panic!("downgrade {id}: {err}"));
    }
}

/// A comparable description of the schema, flowkey's own tables left out.
pub async fn schema_dump(db: &Db) -> Vec<String> {
    let rows: Vec<String> = match db {
        Db::Sqlite(pool) => sqlx::query(
            "SELECT type || ' ' || name || ' ON ' || tbl_name || ': ' || coalesce(sql, '') FROM sqlite_master \
             WHERE name NOT LIKE 'flowkey_%' AND tbl_name NOT LIKE 'flowkey_%' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.get::<String, _>(0))
        .collect(),
        Db::Postgres(pool) => {
            let mut all: Vec<String> = sqlx::query(
                "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' \
                 || coalesce(column_default, '') || ' #' || ordinal_position \
                 FROM information_schema.columns WHERE table_schema = 'public' AND table_name NOT LIKE 'flowkey_%' \
                 ORDER BY table_name, ordinal_position",
            )
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .map(|row| row.get::<String, _>(0))
            .collect();
            let more: Vec<String> = sqlx::query(
                "SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename NOT LIKE 'flowkey_%' \
                 UNION ALL SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) \
                 FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text NOT LIKE 'flowkey_%' \
                 UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal \
                 UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace \
                 ORDER BY 1",
            )
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .map(|row| row.get::<String, _>(0))
            .collect();
            all.extend(more);
            all
        }
    };
    rows
}
