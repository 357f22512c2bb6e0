//! The expand phase: nullable `flow_id` columns (no default, so no table rewrite),
//! `flow_deletion_audit.session_id` made nullable, and the dual-write triggers of
//! docs/schema-head.md ("Dual write") so old code writing only `session_id` and new code
//! writing only `flow_id` both leave rows with both keys.

use futures::future::BoxFuture;

use crate::db::Db;
use crate::migrate::flow::sqlite_rebuild::rebuild_as_legacy;
use crate::migrate::{EngineSql, MigrateError, StepContext};

pub const EXPAND: EngineSql = EngineSql {
    sqlite: include_str!("../sql/flow_expand.sqlite.sql"),
    postgres: include_str!("../sql/flow_expand.postgres.sql"),
};

/// Down, first half: triggers and functions go; on PostgreSQL the columns go too and
/// `flow_deletion_audit.session_id` is `NOT NULL` again.
pub const CONTRACT: EngineSql = EngineSql {
    sqlite: include_str!("../sql/flow_drop_triggers.sqlite.sql"),
    postgres: include_str!("../sql/flow_expand_down.postgres.sql"),
};

/// Tables SQLite rebuilds from their legacy text on the way down.
pub const SQLITE_REBUILT_TABLES: &[&str] = &[
    "data_imports",
    "raw_import_records",
    "import_field_mappings",
    "assets",
    "access_audit_log",
    "llm_usage_logs",
    "flow_deletion_audit",
];

pub const REBUILD_DESCRIBE: &str = "\
-- sqlite only (postgres: nothing): with PRAGMA foreign_keys = OFF and legacy_alter_table = ON,
-- for each table: ALTER TABLE t RENAME TO flowkey_old_t; CREATE TABLE t (<legacy text>);
-- INSERT INTO t (<legacy columns>) SELECT <legacy columns> FROM flowkey_old_t;
-- DROP TABLE flowkey_old_t; <legacy indexes>; then PRAGMA foreign_key_check must be empty.";

pub fn rebuild_legacy_tables_step<'a, 'b>(
    ctx: &'a mut StepContext<'b>,
) -> BoxFuture<'a, Result<(), MigrateError>> {
    Box::pin(async move {
        match ctx.db {
            Db::Sqlite(pool) => rebuild_as_legacy(pool.clone(), SQLITE_REBUILT_TABLES).await,
            Db::Postgres(_) => Ok(()),
        }
    })
}
