//! `service_state`: the tables the flow-keyed service owns, `flowkey_flags` (the runtime
//! `ENABLE_FLOW_ID_PRIMARY` flag, global and per tenant) and `flowkey_legacy_traffic` (who
//! still calls with legacy ids). Both are flowkey's own tables: created with `IF NOT EXISTS`
//! and never dropped, so the way down changes nothing.

use crate::migrate::{Action, EngineSql, Revision, Step, StepSql};

pub const SERVICE_STATE_SQL: EngineSql = EngineSql {
    sqlite: "\
CREATE TABLE IF NOT EXISTS flowkey_flags (
    name        TEXT NOT NULL,
    scope       TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (name, scope)
);
CREATE TABLE IF NOT EXISTS flowkey_legacy_traffic (
    route              TEXT NOT NULL,
    client_account_id  TEXT NOT NULL,
    engagement_id      TEXT NOT NULL,
    hits               INTEGER NOT NULL DEFAULT 0,
    first_seen         TEXT NOT NULL,
    last_seen          TEXT NOT NULL,
    PRIMARY KEY (route, client_account_id, engagement_id)
);
",
    postgres: "\
CREATE TABLE IF NOT EXISTS flowkey_flags (
    name        varchar(64) NOT NULL,
    scope       varchar(100) NOT NULL,
    value       varchar(16) NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  varchar(255) NOT NULL,
    PRIMARY KEY (name, scope)
);
CREATE TABLE IF NOT EXISTS flowkey_legacy_traffic (
    route              varchar(255) NOT NULL,
    client_account_id  uuid NOT NULL,
    engagement_id      uuid NOT NULL,
    hits               bigint NOT NULL DEFAULT 0,
    first_seen         timestamptz NOT NULL,
    last_seen          timestamptz NOT NULL,
    PRIMARY KEY (route, client_account_id, engagement_id)
);
",
};

/// Nothing to undo: flowkey's own tables outlive every downgrade.
const KEEP_SERVICE_STATE: EngineSql = EngineSql {
    sqlite: "SELECT 1;",
    postgres: "SELECT 1;",
};

pub static SERVICE_STATE: Revision = Revision {
    id: "service_state",
    description: "service-owned state: runtime flags and legacy traffic summary",
    up: &[Step {
        name: "create service state tables",
        action: Action::Sql(StepSql::Fixed(SERVICE_STATE_SQL)),
    }],
    down: &[Step {
        name: "keep service state tables (flowkey's own)",
        action: Action::Sql(StepSql::Fixed(KEEP_SERVICE_STATE)),
    }],
    earlier_checksums: &[],
};
