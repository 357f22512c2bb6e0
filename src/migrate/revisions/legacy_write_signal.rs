//! `legacy_write_signal`: the always-on signal of legacy writes (a row written with a session
//! key and no `flow_id`) that the contract's gate reads; see
//! [`crate::migrate::flow::legacy_signal`]. Small triggers of its own beside the dual-write
//! triggers, and the log `flowkey_legacy_writes`, which (flowkey's own) outlives the downgrade.

use crate::migrate::flow::legacy_signal;
use crate::migrate::{Action, Revision, Step};

pub static LEGACY_WRITE_SIGNAL: Revision = Revision {
    id: "legacy_write_signal",
    description: "legacy-write signal: a log row per write with a session key and no flow_id",
    up: &[Step {
        name: "install legacy-write signal triggers",
        action: Action::OnlineDdl(legacy_signal::INSTALL),
    }],
    down: &[Step {
        name: "drop legacy-write signal triggers",
        action: Action::OnlineDdl(legacy_signal::REMOVE),
    }],
    earlier_checksums: &[],
};
