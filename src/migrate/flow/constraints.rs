//! The constraints of `head`, generated from the linked tables: an index on every `flow_id`
//! column (plus each table's extra indexes) and a foreign key to `discovery_flows(flow_id)`
//! where the table's description asks for one. On PostgreSQL the indexes are built
//! `CONCURRENTLY` and the foreign keys added `NOT VALID`, then validated in a separate
//! statement (a `SHARE UPDATE EXCLUSIVE` lock only), each statement under the runner's
//! `lock_timeout`. On SQLite the foreign keys were declared with the columns.

use std::fmt::Write as _;

use crate::db::Engine;
use crate::migrate::flow::linked::{linked_since, linked_table, LinkedTable};
use crate::migrate::StepSql;

/// The revision whose constraints these are (the tables `flow_expand` linked).
const LINKED_BY: &str = "flow_expand";

pub const CREATE_INDEXES: StepSql = StepSql::Generated(create_indexes_sql);
pub const ADD_FOREIGN_KEYS: StepSql = StepSql::Generated(add_foreign_keys_sql);
pub const VALIDATE_FOREIGN_KEYS: StepSql = StepSql::Generated(validate_foreign_keys_sql);
pub const DROP_CONSTRAINTS: StepSql = StepSql::Generated(drop_constraints_sql);

fn tables() -> impl Iterator<Item = &'static LinkedTable> + Clone {
    linked_since(LINKED_BY)
}

/// The indexes of `tables`: (name, table, columns), `flow_id` ones first.
fn indexes<'a>(
    tables: impl Iterator<Item = &'a LinkedTable> + Clone,
) -> Vec<(String, &'static str, &'static str)> {
    let mut all: Vec<(String, &'static str, &'static str)> = tables
        .clone()
        .map(|table| (table.flow_index_name(), table.name, "flow_id"))
        .collect();
    for table in tables {
        for (name, columns) in table.extra_indexes {
            all.push(((*name).to_owned(), table.name, columns));
        }
    }
    all
}

fn create_indexes_sql(engine: Engine) -> String {
    create_indexes_of(engine, tables())
}

fn create_indexes_of<'a>(
    engine: Engine,
    tables: impl Iterator<Item = &'a LinkedTable> + Clone,
) -> String {
    let mut out = String::new();
    let concurrently = match engine {
        Engine::Sqlite => {
            out.push_str("SELECT count(*) FROM sqlite_master;\n");
            ""
        }
        Engine::Postgres => " CONCURRENTLY",
    };
    for (name, table, columns) in indexes(tables) {
        let _ = writeln!(
            out,
            "CREATE INDEX{concurrently} IF NOT EXISTS {name} ON {table} ({columns});"
        );
    }
    out
}

fn add_foreign_keys_sql(engine: Engine) -> String {
    add_foreign_keys_of(engine, tables())
}

fn add_foreign_keys_of<'a>(
    engine: Engine,
    tables: impl Iterator<Item = &'a LinkedTable>,
) -> String {
    match engine {
        Engine::Sqlite => {
            "-- sqlite: the foreign keys were declared with the columns (flow_expand)\nSELECT 1;\n"
                .to_owned()
        }
        Engine::Postgres => tables
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
    validate_foreign_keys_of(engine, tables())
}

fn validate_foreign_keys_of<'a>(
    engine: Engine,
    tables: impl Iterator<Item = &'a LinkedTable>,
) -> String {
    match engine {
        Engine::Sqlite => "-- sqlite: nothing to validate separately\nSELECT 1;\n".to_owned(),
        Engine::Postgres => tables
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
    drop_constraints_of(engine, tables())
}

fn drop_constraints_of<'a>(
    engine: Engine,
    tables: impl Iterator<Item = &'a LinkedTable> + Clone,
) -> String {
    let mut out = String::new();
    let concurrently = match engine {
        Engine::Sqlite => {
            out.push_str("SELECT count(*) FROM sqlite_master;\n");
            ""
        }
        Engine::Postgres => {
            for table in tables.clone() {
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
    for (name, _, _) in indexes(tables) {
        let _ = writeln!(out, "DROP INDEX{concurrently} IF EXISTS {name};");
    }
    out
}

/// One linked table added by a later revision: its indexes and its foreign key `NOT VALID`.
pub fn constrain_table_sql(engine: Engine, table: &'static str) -> String {
    let one = linked_table(table).into_iter();
    format!(
        "{}{}",
        create_indexes_of(engine, one.clone()),
        add_foreign_keys_of(engine, one)
    )
}

/// One linked table added by a later revision: its foreign key validated.
pub fn validate_table_sql(engine: Engine, table: &'static str) -> String {
    validate_foreign_keys_of(engine, linked_table(table).into_iter())
}

/// The way back from [`constrain_table_sql`].
pub fn unconstrain_table_sql(engine: Engine, table: &'static str) -> String {
    drop_constraints_of(engine, linked_table(table).into_iter())
}
