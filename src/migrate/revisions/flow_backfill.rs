//! `flow_backfill`: every existing row gets its `flow_id`, one table per step, in resumable
//! keyset batches.

use crate::migrate::flow::{backfill, downgrade};
use crate::migrate::{Action, EngineSql, Revision, Step, StepSql};

macro_rules! backfill_step {
    ($name:literal, $run:path) => {
        Step {
            name: $name,
            action: Action::Code {
                run: $run,
                sql: StepSql::Fixed(EngineSql {
                    sqlite: backfill::BACKFILL_DESCRIBE,
                    postgres: backfill::BACKFILL_DESCRIBE,
                }),
            },
        }
    };
}

pub static FLOW_BACKFILL: Revision = Revision {
    id: "flow_backfill",
    description: "backfill flow_id in resumable keyset batches",
    up: &[
        backfill_step!(
            "backfill data_imports",
            backfill::backfill_data_imports_step
        ),
        backfill_step!(
            "backfill raw_import_records",
            backfill::backfill_raw_import_records_step
        ),
        backfill_step!(
            "backfill import_field_mappings",
            backfill::backfill_import_field_mappings_step
        ),
        backfill_step!("backfill assets", backfill::backfill_assets_step),
        backfill_step!(
            "backfill access_audit_log",
            backfill::backfill_access_audit_log_step
        ),
        backfill_step!(
            "backfill llm_usage_logs",
            backfill::backfill_llm_usage_logs_step
        ),
    ],
    down: &[
        Step {
            name: "give rows written at head a legacy session",
            action: Action::Code {
                run: downgrade::restore_sessions_step,
                sql: StepSql::Fixed(EngineSql {
                    sqlite: downgrade::RESTORE_SESSIONS_DESCRIBE,
                    postgres: downgrade::RESTORE_SESSIONS_DESCRIBE,
                }),
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
};
