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
            name: leak_name(format!("{}{t}", backfill::STEP_NAME_PREFIX)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Engine;
    use crate::migrate::flow::linked::LinkedTable;

    /// The SQL a step runs (or, for code and checks, the SQL it stands for).
    fn step_sql(step: &Step) -> &StepSql {
        match &step.action {
            Action::Sql(sql)
            | Action::OnlineDdl(sql)
            | Action::Code { sql, .. }
            | Action::Check { sql, .. } => sql,
        }
    }

    /// No released revision calls `link_revision` yet (every table is linked by
    /// `flow_expand`'s own steps), so the tables of `flow_expand` stand in: each gets its
    /// four steps up, in backfill order, then one verify; down undoes them table by table in
    /// reverse order, and every step's SQL is generated for its own table on both engines.
    #[test]
    fn a_link_revision_links_each_table_since_it_and_undoes_them_in_reverse() {
        let tables: Vec<&LinkedTable> = linked_since("flow_expand").collect();
        assert!(tables.len() > 1, "the test needs several tables");
        let revision = link_revision("flow_expand", "link the expand tables again");
        assert_eq!(revision.up.len(), 4 * tables.len() + 1);
        assert_eq!(revision.down.len(), 5 * tables.len());
        assert_eq!(revision.up.last().map(|step| step.name), Some("verify"));

        for (table, steps) in tables.iter().zip(revision.up.chunks(4)) {
            let names: Vec<&str> = steps.iter().map(|step| step.name).collect();
            assert_eq!(
                names,
                [
                    format!("link {}: flow_id column and dual-write trigger", table.name),
                    format!("backfill {}", table.name),
                    format!("index {} and add its foreign key not valid", table.name),
                    format!("validate the foreign key of {}", table.name),
                ]
            );
        }
        for (table, steps) in tables.iter().rev().zip(revision.down.chunks(5)) {
            assert_eq!(
                steps[0].name,
                format!("drop the index and foreign key of {}", table.name)
            );
            assert_eq!(steps[4].name, format!("rebuild {} (sqlite)", table.name));
            for step in steps {
                assert!(step.name.contains(table.name), "{}", step.name);
            }
        }
        let per_table = revision.up.iter().take(4 * tables.len());
        for step in per_table.chain(revision.down.iter()) {
            let sql = step_sql(step);
            let table = sql.table().expect("a per-table step works on one table");
            assert!(step.name.contains(table), "{} works on {table}", step.name);
            // A step may do nothing on an engine (SQLite validates no foreign key separately,
            // PostgreSQL rebuilds no table, a table without a foreign key validates none);
            // where it does something, it is about its own table.
            for engine in [Engine::Postgres, Engine::Sqlite] {
                let text = sql.for_engine(engine);
                let does_nothing = text
                    .lines()
                    .map(str::trim)
                    .all(|line| line.is_empty() || line.starts_with("--") || line == "SELECT 1;");
                assert!(
                    does_nothing || text.contains(table),
                    "{} on {engine:?}: {text}",
                    step.name
                );
            }
        }
    }
}
