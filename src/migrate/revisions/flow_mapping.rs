//! `flow_mapping`: flowkey's own tables, the pre-migration fingerprint, and the persistent
//! `session_flow_mapping` computed by the rules of issue 3.

use crate::migrate::flow::{downgrade, fingerprint, mapping};
use crate::migrate::{Action, EngineSql, Revision, Step, StepSql};

pub static FLOW_MAPPING: Revision = Revision {
    id: "flow_mapping",
    description: "fingerprint legacy data; persistent session_flow_mapping by the mapping rules",
    up: &[
        Step {
            name: "create flowkey tables",
            action: Action::Sql(StepSql::Fixed(EngineSql {
                sqlite: include_str!("../sql/flow_owned_tables.sqlite.sql"),
                postgres: include_str!("../sql/flow_owned_tables.postgres.sql"),
            })),
        },
        Step {
            name: "fingerprint legacy tables",
            action: Action::Check {
                run: fingerprint::fingerprint_step,
                sql: StepSql::Generated(fingerprint::fingerprint_sql),
            },
        },
        Step {
            name: "create session_flow_mapping",
            action: Action::Sql(StepSql::Fixed(EngineSql {
                sqlite: include_str!("../sql/flow_mapping_table.sqlite.sql"),
                postgres: include_str!("../sql/flow_mapping_table.postgres.sql"),
            })),
        },
        Step {
            name: "index discovery_flows.data_import_id",
            action: Action::OnlineDdl(StepSql::Fixed(EngineSql {
                sqlite: "SELECT count(*) FROM sqlite_master;\nCREATE INDEX IF NOT EXISTS ix_discovery_flows_data_import_id ON discovery_flows (data_import_id);\n",
                postgres: "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_discovery_flows_data_import_id ON discovery_flows (data_import_id);\n",
            })),
        },
        Step {
            name: "compute session flow mapping",
            action: Action::Code {
                run: mapping::compute_mapping_step,
                sql: mapping::COMPUTE_MAPPING,
            },
        },
    ],
    down: &[
        Step {
            name: "delete unreferenced flows created by the migration",
            action: Action::Code {
                run: downgrade::delete_created_flows_step,
                sql: downgrade::DELETE_CREATED_FLOWS,
            },
        },
        Step {
            name: "drop session_flow_mapping",
            action: Action::OnlineDdl(StepSql::Fixed(EngineSql {
                sqlite: "SELECT count(*) FROM sqlite_master;\nDROP INDEX IF EXISTS ix_discovery_flows_data_import_id;\nDROP TABLE IF EXISTS session_flow_mapping;\n",
                postgres: "DROP INDEX CONCURRENTLY IF EXISTS ix_discovery_flows_data_import_id;\nDROP TABLE IF EXISTS session_flow_mapping;\n",
            })),
        },
    ],
    earlier_checksums: &["a13bd67fdd2f3a2e4ce011bcc978688ec9008fc099cc633bdb483a7f6a490d53"],
};
