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
                offline: Some(StepSql::Generated(fingerprint::fingerprint_offline_sql)),
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
                offline: Some(mapping::COMPUTE_MAPPING_OFFLINE),
            },
        },
    ],
    down: &[
        Step {
            name: "delete unreferenced flows created by the migration",
            action: Action::Code {
                run: downgrade::delete_created_flows_step,
                sql: downgrade::DELETE_CREATED_FLOWS,
                offline: Some(downgrade::DELETE_CREATED_FLOWS),
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

/// The index `flow_mapping` adds on a legacy column (`discovery_flows.data_import_id`, how the
/// mapping and the live mapping find an import's flows): the one object of flowkey's on a
/// platform table that no `flow_id` column names (see `alembic::include_object_module`).
pub const DATA_IMPORT_LOOKUP_INDEX: &str = "ix_discovery_flows_data_import_id";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lookup_index_is_the_one_the_revision_creates_and_drops() {
        for step in FLOW_MAPPING.up.iter().chain(FLOW_MAPPING.down.iter()) {
            let (Action::Sql(StepSql::Fixed(sql)) | Action::OnlineDdl(StepSql::Fixed(sql))) =
                &step.action
            else {
                continue;
            };
            for text in [sql.sqlite, sql.postgres] {
                if text.contains("INDEX") && text.contains("discovery_flows") {
                    assert!(text.contains(DATA_IMPORT_LOOKUP_INDEX), "{text}");
                }
            }
        }
    }
}
