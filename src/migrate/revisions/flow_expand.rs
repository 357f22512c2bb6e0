//! `flow_expand`: nullable `flow_id` columns, `flow_deletion_audit.session_id` nullable, and
//! the dual-write triggers. Online on PostgreSQL: every statement is short and runs under the
//! runner's `lock_timeout`.

use crate::migrate::flow::expand;
use crate::migrate::{Action, Revision, Step};

pub static FLOW_EXPAND: Revision = Revision {
    id: "flow_expand",
    description: "nullable flow_id columns and dual-write triggers",
    up: &[Step {
        name: "add flow_id columns and dual-write triggers",
        action: Action::OnlineDdl(expand::EXPAND),
    }],
    down: &[
        Step {
            name: "drop dual-write triggers and flow_id columns",
            action: Action::OnlineDdl(expand::CONTRACT),
        },
        Step {
            name: "rebuild legacy tables (sqlite)",
            action: Action::Code {
                run: expand::rebuild_legacy_tables_step,
                sql: expand::REBUILD,
                offline: Some(expand::REBUILD_OFFLINE),
            },
        },
    ],
    // The second: before its SQLite down step dropped flow_id in place instead of rebuilding
    // and its PostgreSQL trigger functions pinned the search_path of the schema they serve
    // and its SQLite deletion-audit rebuild kept the other tables' foreign keys, and its
    // PostgreSQL down step set the deletion audit NOT NULL through a validated check (same
    // steps, same end state).
    earlier_checksums: &[
        "f847f883fad66d0c19fc598c284eb7d21f5bd8eb327a36e46b7b350d9effb2b0",
        "bfb208037ec8b809e66d522b1e3499a8c2a65be7b7561b832a2daa5a9dfeb9ca",
    ],
};
