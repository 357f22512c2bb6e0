//! `legacy`: the platform's session-keyed schema exactly as in shared/legacy/, the baseline
//! every other revision builds on. Adopting an existing legacy database means checking its
//! schema against what this revision creates.

use crate::migrate::{Action, EngineSql, Revision, Step, StepSql};

pub const LEGACY_SQL: EngineSql = EngineSql {
    sqlite: include_str!("../sql/legacy.sqlite.sql"),
    postgres: include_str!("../sql/legacy.postgres.sql"),
};

/// Tables of the legacy schema, in an order where each table comes after the ones it
/// references (creation order; drop in reverse).
pub const LEGACY_TABLES: &[&str] = &[
    "client_accounts",
    "engagements",
    "users",
    "data_import_sessions",
    "data_imports",
    "assets",
    "raw_import_records",
    "import_field_mappings",
    "discovery_flows",
    "access_audit_log",
    "flow_deletion_audit",
    "llm_usage_logs",
];

const DROP_LEGACY: &str = "\
DROP TABLE llm_usage_logs;
DROP TABLE flow_deletion_audit;
DROP TABLE access_audit_log;
DROP TABLE discovery_flows;
DROP TABLE import_field_mappings;
DROP TABLE raw_import_records;
DROP TABLE assets;
DROP TABLE data_imports;
DROP TABLE data_import_sessions;
DROP TABLE users;
DROP TABLE engagements;
DROP TABLE client_accounts;
";

pub static LEGACY: Revision = Revision {
    id: "legacy",
    description: "the platform's session-keyed schema (shared/legacy)",
    up: &[Step {
        name: "create legacy schema",
        action: Action::Sql(StepSql::Fixed(LEGACY_SQL)),
    }],
    down: &[Step {
        name: "drop legacy schema",
        action: Action::Sql(StepSql::Fixed(EngineSql {
            sqlite: DROP_LEGACY,
            postgres: DROP_LEGACY,
        })),
    }],
    earlier_checksums: &[],
};
