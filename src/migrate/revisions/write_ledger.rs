//! `write_ledger` (issue 12): the go/no-go that works while the application writes. Triggers
//! on every legacy table record the rows the application writes, and the baseline stores
//! every legacy row's hash once; `flowkey verify --online` compares row by row and names any
//! change the application did not make (see [`crate::migrate::flow::write_ledger`]).

use crate::migrate::flow::write_ledger;
use crate::migrate::{Action, Revision, Step};

pub static WRITE_LEDGER: Revision = Revision {
    id: write_ledger::REVISION,
    description:
        "write ledger: the rows the application writes, and every legacy row's hash at the start",
    up: &[
        Step {
            name: "create the write ledger and its triggers",
            action: Action::OnlineDdl(write_ledger::INSTALL),
        },
        Step {
            name: "store every legacy row's hash (the ledger's baseline)",
            action: Action::Check {
                run: write_ledger::take_baseline_step,
                sql: write_ledger::BASELINE,
                offline: Some(write_ledger::BASELINE_OFFLINE),
            },
        },
    ],
    down: &[Step {
        name: "drop the write ledger, its triggers and its baseline",
        action: Action::OnlineDdl(write_ledger::REMOVE),
    }],
    earlier_checksums: &[],
};
