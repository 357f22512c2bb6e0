//! `live_mapping` (issue 12): the mapping stays live until the contract. Triggers on
//! `discovery_flows` and `data_import_sessions` map every session the old application creates
//! as soon as its flow exists, and link its rows; a catch-up maps the sessions created since
//! the mapping step (see [`crate::migrate::flow::live`]). It also creates the tables of the
//! shadow gate of `flag set … on` (`flowkey_shadow_mismatches`, `flowkey_flag_changes`).

use crate::migrate::flow::live;
use crate::migrate::{Action, EngineSql, Revision, Step, StepSql};

/// flowkey's own tables for the `on` gate: shadow mismatches per tenant and route since the
/// tenant's (or the global) last flag change, and every flag change with whether it was
/// forced past the gate. Created `IF NOT EXISTS` and never dropped, like `service_state`'s.
/// (SQLite: a plain rowid key, not AUTOINCREMENT, which would create `sqlite_sequence`, an
/// object the platform's database did not have.)
pub const SHADOW_GATE_SQL: EngineSql = EngineSql {
    sqlite: "\
CREATE TABLE IF NOT EXISTS flowkey_shadow_mismatches (
    client_account_id  TEXT NOT NULL,
    engagement_id      TEXT NOT NULL,
    route              TEXT NOT NULL,
    mismatches         INTEGER NOT NULL DEFAULT 0,
    first_seen         TEXT NOT NULL,
    last_seen          TEXT NOT NULL,
    PRIMARY KEY (client_account_id, engagement_id, route)
);
CREATE TABLE IF NOT EXISTS flowkey_flag_changes (
    id                     INTEGER PRIMARY KEY,
    name                   TEXT NOT NULL,
    scope                  TEXT NOT NULL,
    value                  TEXT,
    changed_at             TEXT NOT NULL,
    changed_by             TEXT NOT NULL,
    forced                 INTEGER NOT NULL DEFAULT 0,
    mismatches_overridden  INTEGER NOT NULL DEFAULT 0
);
",
    postgres: "\
CREATE TABLE IF NOT EXISTS flowkey_shadow_mismatches (
    client_account_id  uuid NOT NULL,
    engagement_id      uuid NOT NULL,
    route              varchar(255) NOT NULL,
    mismatches         bigint NOT NULL DEFAULT 0,
    first_seen         timestamptz NOT NULL,
    last_seen          timestamptz NOT NULL,
    PRIMARY KEY (client_account_id, engagement_id, route)
);
CREATE TABLE IF NOT EXISTS flowkey_flag_changes (
    id                     bigserial PRIMARY KEY,
    name                   varchar(64) NOT NULL,
    scope                  varchar(100) NOT NULL,
    value                  varchar(16),
    changed_at             timestamptz NOT NULL,
    changed_by             varchar(255) NOT NULL,
    forced                 boolean NOT NULL DEFAULT false,
    mismatches_overridden  bigint NOT NULL DEFAULT 0
);
",
};

/// Nothing to undo: flowkey's own tables outlive every downgrade.
const KEEP_SHADOW_GATE: EngineSql = EngineSql {
    sqlite: "SELECT 1;",
    postgres: "SELECT 1;",
};

pub static LIVE_MAPPING: Revision = Revision {
    id: live::REVISION,
    description: "live mapping (sessions the old application creates get their flow and links); shadow gate tables",
    up: &[
        Step {
            name: "create the shadow gate tables",
            action: Action::Sql(StepSql::Fixed(SHADOW_GATE_SQL)),
        },
        Step {
            name: "install the live mapping triggers",
            action: Action::Sql(live::INSTALL),
        },
        Step {
            name: "catch up sessions created since the mapping step",
            action: Action::Code {
                run: live::catch_up_step,
                sql: live::CATCH_UP,
                offline: Some(live::CATCH_UP_OFFLINE),
            },
        },
    ],
    down: &[
        Step {
            name: "drop the live mapping triggers",
            action: Action::Sql(live::UNINSTALL),
        },
        Step {
            name: "keep the shadow gate tables (flowkey's own)",
            action: Action::Sql(StepSql::Fixed(KEEP_SHADOW_GATE)),
        },
    ],
    earlier_checksums: &[],
};
