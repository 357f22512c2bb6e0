//! `live_mapping` (issue 12): the mapping stays live until the contract. Triggers on
//! `discovery_flows` and `data_import_sessions` map every session the old application creates
//! as soon as its flow exists, and link its rows; a catch-up maps the sessions created since
//! the mapping step (see [`crate::migrate::flow::live`]).

use crate::migrate::flow::live;
use crate::migrate::{Action, Revision, Step};

pub static LIVE_MAPPING: Revision = Revision {
    id: live::REVISION,
    description: "live mapping: sessions the old application creates get their flow and links",
    up: &[
        Step {
            name: "install the live mapping triggers",
            action: Action::Sql(live::INSTALL),
        },
        Step {
            name: "catch up sessions created since the mapping step",
            action: Action::Code {
                run: live::catch_up_step,
                sql: live::CATCH_UP,
            },
        },
    ],
    down: &[Step {
        name: "drop the live mapping triggers",
        action: Action::Sql(live::UNINSTALL),
    }],
    earlier_checksums: &[],
};
