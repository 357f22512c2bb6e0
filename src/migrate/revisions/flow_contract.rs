//! `flow_contract`: the contract, after head. Not run by `upgrade head` (head is the last
//! expand revision, see [`super::head`]): `flowkey contract`, or `flowkey upgrade
//! flow_contract`, runs it, and its first step is the gate
//! ([`crate::migrate::flow::contract`]). `flowkey downgrade -1` undoes it, restoring every
//! session value.

use crate::migrate::flow::contract;
use crate::migrate::{Action, Revision, Step};

pub static FLOW_CONTRACT: Revision = Revision {
    id: contract::CONTRACT_REVISION,
    description:
        "contract: archive session values, drop session-key columns and dual-write triggers",
    up: &[
        Step {
            name: "gate",
            action: Action::Check {
                run: contract::gate_step,
                sql: contract::GATE,
                // Runner only: the gate decides from the application's recent legacy
                // writes, the flag and the links; the script stops here.
                offline: None,
            },
        },
        Step {
            name: "archive session values the mapping cannot give back",
            action: Action::Code {
                run: contract::archive_step,
                sql: contract::ARCHIVE,
                // Runner only (the gate before it is).
                offline: None,
            },
        },
        Step {
            name: "drop triggers and session-key columns",
            action: Action::OnlineDdl(contract::DROP),
        },
        Step {
            name: "rebuild tables without session-key columns (sqlite)",
            action: Action::Code {
                run: contract::rebuild_step,
                sql: contract::REBUILD_WITHOUT,
                // Runner only (the gate before it is).
                offline: None,
            },
        },
    ],
    down: &[
        Step {
            name: "add session-key columns back",
            action: Action::OnlineDdl(contract::ADD_BACK),
        },
        Step {
            name: "restore session values from the mapping and the archive",
            action: Action::Code {
                run: contract::restore_step,
                sql: contract::RESTORE,
                offline: Some(contract::RESTORE_OFFLINE),
            },
        },
        Step {
            name: "session indexes and foreign keys not valid",
            action: Action::OnlineDdl(contract::INDEXES_BACK),
        },
        Step {
            name: "validate session foreign keys",
            action: Action::OnlineDdl(contract::VALIDATE_BACK),
        },
        Step {
            name: "dual-write and legacy-write signal triggers",
            action: Action::OnlineDdl(contract::TRIGGERS_BACK),
        },
        Step {
            name: "clear the archive",
            action: Action::Sql(contract::CLEAR_ARCHIVE),
        },
    ],
    earlier_checksums: &[],
};
