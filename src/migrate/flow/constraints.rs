//! The constraints of `head`, generated from the linked tables: an index on every `flow_id`
//! column (plus each table's extra indexes) and a foreign key to `discovery_flows(flow_id)`
//! where the table's description asks for one. On PostgreSQL the indexes are built
//! `CONCURRENTLY` and the foreign keys added `NOT VALID`, then validated in a separate
//! statement (a `SHARE UPDATE EXCLUSIVE` lock only), each statement under the runner's
//! `lock_timeout`. On SQLite the foreign keys were declared with the columns.

use std::fmt::Write as _;

use crate::db::Engine;
use crate::migrate::flow::linked::{linked_since, LinkedTable};
use crate::migrate::StepSql;

/// The revision whose constraints these are (the tables `flow_expand` linked).
const LINKED_BY: &str = "flow_expand";

pub const CREATE_INDEXES: StepSql = StepSql::Generated(create_indexes_sql);
pub const ADD_FOREIGN_KEYS: StepSql = StepSql::Generated(add_foreign_keys_sql);
pub const VALIDATE_FOREIGN_KEYS: StepSql = StepSql::Generated(validate_foreign_keys_sql);
pub const DROP_CONSTRAINTS: StepSql = StepSql::Generated(drop_constraints_sql);

fn tables() -> impl Iterator<Item = &'static LinkedTable> {
    linked_since(LINKED_BY)
}

/// Every index of the linked tables: (name, table, columns), `flow_id` ones first.
fn indexes() -> Vec<(String, &'static str, &'static str)> {
    let mut all: Vec<(String, &'static str, &'static str)> = tables()
        .map(|table| (table.flow_index_name(), table.name, "flow_id"))
        .collect();
    for table in tables() {
        for (name, columns) in table.extra_indexes {
            all.push(((*name).to_owned(), table.name, columns));
        }
    }
    all
}

fn create_indexes_sql(engine: Engine) -> String {
    let mut out = String::new();
    let concurrently = match engine {
        Engine::Sqlite => {
            out.push_str("SELECT count(*) FROM sqlite_master;\n");
            ""
        }
        Engine::Postgres => " CONCURRENTLY",
    };
    for (name, table, columns) in indexes() {
        let _ = writeln!(
            out,
            "CREATE INDEX{concurrently} IF NOT EXISTS {name} ON {table} ({columns});"
        );
    }
    out
}

fn add_foreign_keys_sql(engine: Engine) -> String {
    match engine {
        Engine::Sqlite => {
            "-- sqlite: the foreign keys were declared with the columns (flow_expand)\nSELECT 1;\n"
                .to_owned()
        }
        Engine::Postgres => tables()
            .filter_map(|table| {
                let constraint = table.flow_foreign_key_name()?;
                let t = table.name;
                // The table is named through the search path (regclass), so the check looks
                // in the schema the ALTER would change, not in any schema that has such a
                // constraint.
                Some(format!(
                    "DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = '{constraint}' AND conrelid = '{t}'::regclass) THEN
        ALTER TABLE {t} ADD CONSTRAINT {constraint}
            FOREIGN KEY (flow_id) REFERENCES discovery_flows (flow_id) NOT VALID;
    END IF;
END $$;
"
                ))
            })
            .collect(),
    }
}

fn validate_foreign_keys_sql(engine: Engine) -> String {
    match engine {
        Engine::Sqlite => "-- sqlite: nothing to validate separately\nSELECT 1;\n".to_owned(),
        Engine::Postgres => tables()
            .filter_map(|table| {
                let constraint = table.flow_foreign_key_name()?;
                Some(format!(
                    "ALTER TABLE {} VALIDATE CONSTRAINT {constraint};\n",
                    table.name
                ))
            })
            .collect(),
    }
}

fn drop_constraints_sql(engine: Engine) -> String {
    let mut out = String::new();
    let concurrently = match engine {
        Engine::Sqlite => {
            out.push_str("SELECT count(*) FROM sqlite_master;\n");
            ""
        }
        Engine::Postgres => {
            for table in tables() {
                if let Some(constraint) = table.flow_foreign_key_name() {
                    let _ = writeln!(
                        out,
                        "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {constraint};",
                        table.name
                    );
                }
            }
            " CONCURRENTLY"
        }
    };
    for (name, _, _) in indexes() {
        let _ = writeln!(out, "DROP INDEX{concurrently} IF EXISTS {name};");
    }
    out
}
