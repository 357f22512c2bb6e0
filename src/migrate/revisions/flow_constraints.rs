//! `flow_constraints`: indexes and foreign keys of `head`, then verify.

use crate::migrate::flow::{constraints, verify};
use crate::migrate::{Action, Revision, Step};

pub static FLOW_CONSTRAINTS: Revision = Revision {
    id: "flow_constraints",
    description: "flow_id indexes and foreign keys (NOT VALID, then validated); verify",
    up: &[
        Step {
            name: "index flow_id columns",
            action: Action::OnlineDdl(constraints::CREATE_INDEXES),
        },
        Step {
            name: "add foreign keys not valid",
            action: Action::OnlineDdl(constraints::ADD_FOREIGN_KEYS),
        },
        Step {
            name: "validate foreign keys",
            action: Action::OnlineDdl(constraints::VALIDATE_FOREIGN_KEYS),
        },
        Step {
            name: "verify",
            action: Action::Check {
                run: verify::verify_step,
                sql: verify::VERIFY,
                offline: Some(verify::VERIFY_OFFLINE),
            },
        },
    ],
    down: &[Step {
        name: "drop flow_id foreign keys and indexes",
        action: Action::OnlineDdl(constraints::DROP_CONSTRAINTS),
    }],
    earlier_checksums: &["de3d6ceeb4adb36a49008aaa754a76dfb84560046f282a1ed0d355adf791772a"],
};
