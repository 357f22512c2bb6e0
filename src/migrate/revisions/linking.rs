//! The steps of a revision that links more legacy tables after `flow_expand` was released:
//! each table whose [`LinkedTable::since`] names the revision gets its column and trigger,
//! its backfill, its index and foreign key, and a verify; the way down undoes each and gives
//! rows written at head their session back. So adding a linked table is one entry in
//! `LINKED_TABLES` (with `since` naming a new revision), a revision file calling
//! [`link_revision`], its place in `all()` and its checksum in `RELEASED_CHECKSUMS`.
//!
//! [`LinkedTable::since`]: crate::migrate::flow::linked::LinkedTable::since

use crate::migrate::flow::linked::linked_since;
use crate::migrate::flow::{backfill, constraints, downgrade, expand, verify};
use crate::migrate::revision::{leak_name, leak_steps};
use crate::migrate::{Action, Revision, Step, StepSql};

/// The revision `id`, linking every table whose `since` is `id`.
pub fn link_revision(id: &'static str, description: &'static str) -> Revision {
    let mut up = Vec::new();
    let mut down = Vec::new();
    for table in linked_since(id) {
        let t = table.name;
        let for_table = |generate| StepSql::ForTable { generate, table: t };
        up.push(Step {
            name: leak_name(format!("link {t}: flow_id column and dual-write trigger")),
            action: Action::OnlineDdl(for_table(expand::link_table_sql)),
        });
        up.push(Step {
            name: leak_name(format!("backfill {t}")),
            action: Action::Code {
                run: backfill::backfill_step,
                sql: for_table(backfill::whole_table_sql),
                offline: Some(for_table(backfill::whole_table_offline_sql)),
            },
        });
        up.push(Step {
            name: leak_name(format!("index {t} and add its foreign key not valid")),
            action: Action::OnlineDdl(for_table(constraints::constrain_table_sql)),
        });
        up.push(Step {
            name: leak_name(format!("validate the foreign key of {t}")),
            action: Action::OnlineDdl(for_table(constraints::validate_table_sql)),
        });
    }
    for table in linked_since(id).collect::<Vec<_>>().into_iter().rev() {
        let t = table.name;
        let for_table = |generate| StepSql::ForTable { generate, table: t };
        down.push(Step {
            name: leak_name(format!("drop the index and foreign key of {t}")),
            action: Action::OnlineDdl(for_table(constraints::unconstrain_table_sql)),
        });
        down.push(Step {
            name: leak_name(format!("give rows of {t} written at head a legacy session")),
            action: Action::Code {
                run: downgrade::restore_table_sessions_step,
                sql: for_table(downgrade::restore_table_sessions_sql),
                offline: Some(for_table(downgrade::restore_table_sessions_offline_sql)),
            },
        });
        down.push(Step {
            name: leak_name(format!("reset the backfill progress of {t}")),
            action: Action::Sql(for_table(backfill::reset_progress_sql)),
        });
        down.push(Step {
            name: leak_name(format!("drop the dual-write trigger and flow_id of {t}")),
            action: Action::OnlineDdl(for_table(expand::unlink_table_sql)),
        });
        down.push(Step {
            name: leak_name(format!("rebuild {t} (sqlite)")),
            action: Action::Code {
                run: expand::rebuild_linked_table_step,
                sql: for_table(expand::rebuild_table_sql),
                offline: Some(for_table(expand::rebuild_table_offline_sql)),
            },
        });
    }
    up.push(Step {
        name: "verify",
        action: Action::Check {
            run: verify::verify_step,
            sql: verify::VERIFY,
            offline: Some(verify::VERIFY_OFFLINE),
        },
    });
    Revision {
        id,
        description,
        up: leak_steps(up),
        down: leak_steps(down),
        earlier_checksums: &[],
    }
}
