//! `flow_backfill`: every existing row gets its `flow_id`, one step per linked table (in the
//! linked tables' backfill order), in resumable batches.

use std::sync::LazyLock;

use crate::migrate::flow::linked::linked_since;
use crate::migrate::flow::{backfill, downgrade};
use crate::migrate::revision::leak_steps;
use crate::migrate::{Action, EngineSql, Revision, Step, StepSql};

/// The revision is generated from the linked tables `flow_expand` added (one step each).
pub static FLOW_BACKFILL: LazyLock<Revision> = LazyLock::new(|| Revision {
    id: "flow_backfill",
    description: "backfill flow_id in resumable batches",
    up: leak_steps(
        linked_since("flow_expand")
            .map(|table| Step {
                name: crate::migrate::revision::leak_name(format!(
                    "{}{}",
                    backfill::STEP_NAME_PREFIX,
                    table.name
                )),
                action: Action::Code {
                    run: backfill::backfill_step,
                    sql: StepSql::ForTable {
                        generate: backfill::whole_table_sql,
                        table: table.name,
                    },
                    offline: Some(StepSql::ForTable {
                        generate: backfill::whole_table_offline_sql,
                        table: table.name,
                    }),
                },
            })
            .collect(),
    ),
    down: &[
        Step {
            name: "give rows written at head a legacy session",
            action: Action::Code {
                run: downgrade::restore_sessions_step,
                sql: downgrade::RESTORE_SESSIONS,
                offline: Some(downgrade::RESTORE_SESSIONS_OFFLINE),
            },
        },
        Step {
            name: "reset backfill progress",
            action: Action::Sql(StepSql::Fixed(EngineSql {
                sqlite: "DELETE FROM flowkey_backfill_progress;\n",
                postgres: "DELETE FROM flowkey_backfill_progress;\n",
            })),
        },
    ],
    earlier_checksums: &["db40a30819d506ba3f4b2d6338983fc771b7c663bdc1e91cbd6f9e54debb55fb"],
});
