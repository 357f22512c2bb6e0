//! The expand phase: nullable `flow_id` columns (no default, so no table rewrite) on the
//! linked tables, `flow_deletion_audit.session_id` made nullable, and the dual-write
//! triggers ([`crate::migrate::flow::triggers`]), all generated from the linked tables'
//! descriptions.

use std::fmt::Write as _;

use futures::future::BoxFuture;

use crate::db::{Db, Engine};
use crate::migrate::flow::linked::{
    linked_since, linked_table, FlowForeignKey, LinkedTable, DELETION_AUDIT_TABLE,
};
use crate::migrate::flow::sqlite_rebuild::rebuild_as_legacy;
use crate::migrate::flow::triggers;
use crate::migrate::{MigrateError, StepContext, StepSql};

/// The revision that adds the first linked tables' columns and triggers.
const REVISION: &str = "flow_expand";

const PARSE_SESSION_FUNCTION: &str = include_str!("../sql/flow_parse_session.postgres.sql");
const DELETION_AUDIT_NULLABLE_SQLITE: &str =
    include_str!("../sql/flow_deletion_audit_nullable.sqlite.sql");

/// SQLite compiles DDL against the connection's cached schema: reading the catalog first
/// reloads a stale one (another connection changed the schema), which would otherwise turn
/// `IF [NOT] EXISTS` into silent no-ops.
const SQLITE_REFRESH_SCHEMA: &str = "\
-- Refreshes this connection's schema cache: SQLite prepares DDL against the cache, and a
-- stale one (another connection changed the schema) turns IF [NOT] EXISTS into no-ops.
SELECT count(*) FROM sqlite_master;
";

pub const EXPAND: StepSql = StepSql::Generated(expand_sql);

/// Down, first half: triggers and functions go; on PostgreSQL the columns go too and
/// `flow_deletion_audit.session_id` is `NOT NULL` again (SQLite rebuilds the tables instead,
/// see [`rebuild_legacy_tables_step`]).
pub const CONTRACT: StepSql = StepSql::Generated(contract_sql);

fn tables() -> impl Iterator<Item = &'static LinkedTable> {
    linked_since(REVISION)
}

/// Columns, the deletion audit's nullable session, the session parser, the triggers.
pub fn expand_sql(engine: Engine) -> String {
    let mut out = String::new();
    match engine {
        Engine::Postgres => {
            for table in tables() {
                let _ = writeln!(
                    out,
                    "ALTER TABLE {} ADD COLUMN IF NOT EXISTS flow_id uuid;",
                    table.name
                );
            }
            let _ = writeln!(
                out,
                "ALTER TABLE {DELETION_AUDIT_TABLE} ALTER COLUMN session_id DROP NOT NULL;"
            );
            out.push_str(PARSE_SESSION_FUNCTION);
            for table in tables() {
                out.push_str(&triggers::postgres_trigger(table));
            }
        }
        Engine::Sqlite => {
            out.push_str(SQLITE_REFRESH_SCHEMA);
            for table in tables() {
                let _ = writeln!(
                    out,
                    "ALTER TABLE {} ADD COLUMN flow_id TEXT{};",
                    table.name,
                    sqlite_reference(table)
                );
            }
            out.push_str(DELETION_AUDIT_NULLABLE_SQLITE);
            for table in tables() {
                out.push_str(&triggers::sqlite_trigger(table));
            }
        }
    }
    out
}

/// The way back from [`expand_sql`], first half (see [`CONTRACT`]).
pub fn contract_sql(engine: Engine) -> String {
    let mut out = String::new();
    match engine {
        Engine::Postgres => {
            for table in tables() {
                out.push_str(&triggers::postgres_drop_trigger(table));
            }
            out.push_str("DROP FUNCTION IF EXISTS flowkey_parse_session_id(text);\n");
            for table in tables() {
                let _ = writeln!(
                    out,
                    "ALTER TABLE {} DROP COLUMN IF EXISTS flow_id;",
                    table.name
                );
            }
            // SET NOT NULL alone scans the table under an ACCESS EXCLUSIVE lock. A validated
            // CHECK lets PostgreSQL (12+) skip that scan; the check is validated under a SHARE
            // UPDATE EXCLUSIVE lock, which lets the application read and write meanwhile, and
            // dropped afterwards so the schema is legacy's exactly. The first DROP makes a
            // rerun after an interruption start clean.
            let check = "flowkey_deletion_audit_session_not_null";
            let _ = write!(
                out,
                "ALTER TABLE {DELETION_AUDIT_TABLE} DROP CONSTRAINT IF EXISTS {check};
ALTER TABLE {DELETION_AUDIT_TABLE} ADD CONSTRAINT {check} CHECK (session_id IS NOT NULL) NOT VALID;
ALTER TABLE {DELETION_AUDIT_TABLE} VALIDATE CONSTRAINT {check};
ALTER TABLE {DELETION_AUDIT_TABLE} ALTER COLUMN session_id SET NOT NULL;
ALTER TABLE {DELETION_AUDIT_TABLE} DROP CONSTRAINT {check};
"
            );
        }
        Engine::Sqlite => {
            out.push_str(SQLITE_REFRESH_SCHEMA);
            for table in tables() {
                out.push_str(&triggers::sqlite_drop_trigger(table));
            }
        }
    }
    out
}

/// A linked table added by a later revision: its `flow_id` column and dual-write trigger
/// (the session parser of `flow_expand` is already there).
pub fn link_table_sql(engine: Engine, table: &'static str) -> String {
    let Some(table) = linked_table(table) else {
        return format!("-- {table} is not a linked table\n");
    };
    let mut out = String::new();
    match engine {
        Engine::Postgres => {
            let _ = writeln!(
                out,
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS flow_id uuid;",
                table.name
            );
            out.push_str(&triggers::postgres_trigger(table));
        }
        Engine::Sqlite => {
            out.push_str(SQLITE_REFRESH_SCHEMA);
            let _ = writeln!(
                out,
                "ALTER TABLE {} ADD COLUMN flow_id TEXT{};",
                table.name,
                sqlite_reference(table)
            );
            out.push_str(&triggers::sqlite_trigger(table));
        }
    }
    out
}

/// The way back from [`link_table_sql`], first half: the trigger, and on PostgreSQL the
/// column (SQLite rebuilds the table instead, see [`rebuild_linked_table_step`]).
pub fn unlink_table_sql(engine: Engine, table: &'static str) -> String {
    let Some(table) = linked_table(table) else {
        return format!("-- {table} is not a linked table\n");
    };
    match engine {
        Engine::Postgres => format!(
            "{}ALTER TABLE {} DROP COLUMN IF EXISTS flow_id;\n",
            triggers::postgres_drop_trigger(table),
            table.name
        ),
        Engine::Sqlite => format!(
            "{SQLITE_REFRESH_SCHEMA}{}",
            triggers::sqlite_drop_trigger(table)
        ),
    }
}

fn sqlite_reference(table: &LinkedTable) -> &'static str {
    match table.flow_foreign_key {
        FlowForeignKey::References => " REFERENCES discovery_flows(flow_id)",
        FlowForeignKey::None => "",
    }
}

/// Rebuilds one linked table from its legacy text on SQLite (nothing on PostgreSQL).
pub fn rebuild_linked_table_step<'a, 'b>(
    ctx: &'a mut StepContext<'b>,
) -> BoxFuture<'a, Result<(), MigrateError>> {
    Box::pin(async move {
        let table = crate::migrate::flow::backfill::step_table(ctx)?;
        match ctx.db {
            Db::Sqlite(pool) => rebuild_as_legacy(pool.clone(), &[table.name]).await,
            Db::Postgres(_) => Ok(()),
        }
    })
}

/// What [`rebuild_linked_table_step`] runs (`--sql`).
pub fn rebuild_table_sql(engine: Engine, table: &'static str) -> String {
    match engine {
        Engine::Postgres => {
            "-- postgres: nothing to rebuild (the column was dropped in place)\nSELECT 1;\n"
                .to_owned()
        }
        Engine::Sqlite => rebuild_statements(&[table]),
    }
}

/// [`rebuild_table_sql`] as SQL that runs as is: nothing to do on PostgreSQL; empty (no
/// offline form) on SQLite, whose rebuild reads the table's columns at run time.
pub fn rebuild_table_offline_sql(engine: Engine, table: &'static str) -> String {
    match engine {
        Engine::Postgres => rebuild_table_sql(engine, table),
        Engine::Sqlite => String::new(),
    }
}

/// [`REBUILD`] as SQL that runs as is (see [`rebuild_table_offline_sql`]).
pub const REBUILD_OFFLINE: StepSql = StepSql::Generated(|engine| match engine {
    Engine::Postgres => rebuild_sql(engine),
    Engine::Sqlite => String::new(),
});

/// Tables SQLite rebuilds from their legacy text on the way down from `flow_expand`: the
/// tables it linked and the deletion audit.
pub fn sqlite_rebuilt_tables() -> Vec<&'static str> {
    tables()
        .map(|table| table.name)
        .chain([DELETION_AUDIT_TABLE])
        .collect()
}

/// What the SQLite rebuild runs, table by table (`--sql` prints it).
pub const REBUILD: StepSql = StepSql::Generated(rebuild_sql);

fn rebuild_sql(engine: Engine) -> String {
    match engine {
        Engine::Postgres => {
            "-- postgres: nothing to rebuild (the columns were dropped in place)\nSELECT 1;\n"
                .to_owned()
        }
        Engine::Sqlite => rebuild_statements(&sqlite_rebuilt_tables()),
    }
}

fn rebuild_statements(tables: &[&str]) -> String {
    let mut out = String::new();
    for table in tables.iter().filter(|t| **t != DELETION_AUDIT_TABLE) {
        let _ = writeln!(
            out,
            "-- in place, in one transaction: the platform's columns, indexes and triggers stay\n\
             ALTER TABLE {table} DROP COLUMN flow_id;"
        );
    }
    if tables.contains(&DELETION_AUDIT_TABLE) {
        let table = DELETION_AUDIT_TABLE;
        out.push_str(
            "-- with PRAGMA foreign_keys = OFF and legacy_alter_table = ON, in one transaction;\n\
             -- <legacy columns> are the table's columns without flow_id\n",
        );
        let _ = writeln!(
            out,
            "ALTER TABLE {table} RENAME TO flowkey_old_{table};\n\
             -- CREATE TABLE {table} (...) as in the legacy schema, then its legacy indexes\n\
             INSERT INTO {table} (<legacy columns>) SELECT <legacy columns> FROM flowkey_old_{table};\n\
             DROP TABLE flowkey_old_{table};"
        );
        out.push_str("PRAGMA foreign_key_check; -- must return no row\n");
    }
    out
}

pub fn rebuild_legacy_tables_step<'a, 'b>(
    ctx: &'a mut StepContext<'b>,
) -> BoxFuture<'a, Result<(), MigrateError>> {
    Box::pin(async move {
        match ctx.db {
            Db::Sqlite(pool) => rebuild_as_legacy(pool.clone(), &sqlite_rebuilt_tables()).await,
            Db::Postgres(_) => Ok(()),
        }
    })
}
