//! What a database's schema is, as a normalized value that two databases of the same engine
//! can be compared with: the runner adopts a legacy database only when its schema equals what
//! the `legacy` revision creates, and the migration proves a downgrade exact by comparing the
//! schema before `upgrade` with the schema after `downgrade`.
//!
//! Every collection is a `BTreeMap`/`BTreeSet`, so the order in which catalogs return rows
//! (and the position of a column or an index in its table) is not part of the comparison;
//! what a column, key or index *is* is. flowkey's own tables (`flowkey_*`) and SQLite's
//! internal ones (`sqlite_*`) are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use sqlx::{PgConnection, Row, SqliteConnection};

use crate::db::{Db, Engine};

/// Prefix of the tables flowkey owns; they are never part of a compared schema.
pub const FLOWKEY_TABLE_PREFIX: &str = "flowkey_";

/// The user-visible schema of one database (PostgreSQL: its current schema).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schema {
    pub engine: Engine,
    pub tables: BTreeMap<String, Table>,
    /// Views (and materialized views on PostgreSQL), by name.
    pub views: BTreeSet<String>,
    /// PostgreSQL functions with their argument types (`name(uuid, text)`); empty on SQLite.
    pub functions: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Table {
    pub columns: BTreeMap<String, Column>,
    /// Primary key columns in key order; empty when the table has none.
    pub primary_key: Vec<String>,
    /// Each unique constraint's columns, in constraint order.
    pub unique_constraints: BTreeSet<Vec<String>>,
    pub foreign_keys: BTreeSet<ForeignKey>,
    /// Indexes that back no primary key or unique constraint, by name.
    pub indexes: BTreeMap<String, Index>,
    /// PostgreSQL check constraints by name; empty on SQLite.
    pub checks: BTreeMap<String, Check>,
    /// Trigger names.
    pub triggers: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    /// Lowercase declared type (SQLite) or `format_type` (PostgreSQL), e.g. `character
    /// varying(255)`.
    pub data_type: String,
    pub not_null: bool,
    /// The default expression, whitespace collapsed and outer parentheses removed.
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ForeignKey {
    pub columns: Vec<String>,
    pub references_table: String,
    pub references_columns: Vec<String>,
    /// `NO ACTION`, `RESTRICT`, `CASCADE`, `SET NULL` or `SET DEFAULT`.
    pub on_delete: String,
    pub on_update: String,
    /// False for a PostgreSQL constraint added `NOT VALID` and not validated yet.
    pub validated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Index {
    /// Column names, or expressions, in index order.
    pub columns: Vec<String>,
    pub unique: bool,
    /// The `WHERE` of a partial index.
    pub predicate: Option<String>,
    /// False for a PostgreSQL index left invalid by a failed `CREATE INDEX CONCURRENTLY`.
    pub valid: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub definition: String,
    pub validated: bool,
}

/// Which of the two compared schemas holds something the other lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// `self` in [`Schema::diff`]: the database being inspected.
    Database,
    /// `other` in [`Schema::diff`]: the schema it is expected to have.
    Expected,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Database => "the database",
            Side::Expected => "the expected schema",
        })
    }
}

/// One way two schemas differ; displayed as one readable line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SchemaDifference {
    TableOnlyIn {
        table: String,
        side: Side,
    },
    ViewOnlyIn {
        view: String,
        side: Side,
    },
    FunctionOnlyIn {
        function: String,
        side: Side,
    },
    ColumnOnlyIn {
        table: String,
        column: String,
        side: Side,
    },
    /// A column property (`type`, `not null`, `default`) that differs.
    ColumnDiffers {
        table: String,
        column: String,
        property: &'static str,
        database: String,
        expected: String,
    },
    PrimaryKeyDiffers {
        table: String,
        database: Vec<String>,
        expected: Vec<String>,
    },
    UniqueOnlyIn {
        table: String,
        columns: Vec<String>,
        side: Side,
    },
    ForeignKeyOnlyIn {
        table: String,
        foreign_key: ForeignKey,
        side: Side,
    },
    IndexOnlyIn {
        table: String,
        index: String,
        side: Side,
    },
    IndexDiffers {
        table: String,
        index: String,
        database: Index,
        expected: Index,
    },
    CheckOnlyIn {
        table: String,
        check: String,
        side: Side,
    },
    CheckDiffers {
        table: String,
        check: String,
        database: Check,
        expected: Check,
    },
    TriggerOnlyIn {
        table: String,
        trigger: String,
        side: Side,
    },
    /// Something of the platform's that flowkey tolerates elsewhere but cannot keep here
    /// (`reason` says why).
    CannotKeep {
        table: String,
        column: String,
        reason: String,
    },
}

impl fmt::Display for SchemaDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SchemaDifference::*;
        match self {
            TableOnlyIn { table, side } => write!(f, "table {table} exists only in {side}"),
            ViewOnlyIn { view, side } => write!(f, "view {view} exists only in {side}"),
            FunctionOnlyIn { function, side } => {
                write!(f, "function {function} exists only in {side}")
            }
            ColumnOnlyIn {
                table,
                column,
                side,
            } => write!(f, "table {table}: column {column} exists only in {side}"),
            ColumnDiffers {
                table,
                column,
                property,
                database,
                expected,
            } => write!(
                f,
                "table {table}: column {column} {property} is {database} in the database, {expected} expected"
            ),
            PrimaryKeyDiffers {
                table,
                database,
                expected,
            } => write!(
                f,
                "table {table}: primary key is ({}) in the database, ({}) expected",
                database.join(", "),
                expected.join(", ")
            ),
            UniqueOnlyIn {
                table,
                columns,
                side,
            } => write!(
                f,
                "table {table}: unique constraint on ({}) exists only in {side}",
                columns.join(", ")
            ),
            ForeignKeyOnlyIn {
                table,
                foreign_key: fk,
                side,
            } => write!(
                f,
                "table {table}: foreign key ({}) references {}({}) on delete {}{} exists only in {side}",
                fk.columns.join(", "),
                fk.references_table,
                fk.references_columns.join(", "),
                fk.on_delete.to_lowercase(),
                if fk.validated { "" } else { " not valid" },
            ),
            IndexOnlyIn { table, index, side } => {
                write!(f, "table {table}: index {index} exists only in {side}")
            }
            IndexDiffers {
                table,
                index,
                database,
                expected,
            } => write!(
                f,
                "table {table}: index {index} is {} in the database, {} expected",
                describe_index(database),
                describe_index(expected)
            ),
            CheckOnlyIn { table, check, side } => {
                write!(f, "table {table}: check constraint {check} exists only in {side}")
            }
            CheckDiffers {
                table,
                check,
                database,
                expected,
            } => write!(
                f,
                "table {table}: check constraint {check} is {}{} in the database, {}{} expected",
                database.definition,
                if database.validated { "" } else { " not valid" },
                expected.definition,
                if expected.validated { "" } else { " not valid" },
            ),
            TriggerOnlyIn {
                table,
                trigger,
                side,
            } => write!(f, "table {table}: trigger {trigger} exists only in {side}"),
            CannotKeep {
                table,
                column,
                reason,
            } => write!(f, "table {table}: column {column} cannot be kept: {reason}"),
        }
    }
}

fn describe_index(index: &Index) -> String {
    let mut text = format!(
        "{}({})",
        if index.unique { "unique " } else { "" },
        index.columns.join(", ")
    );
    if let Some(predicate) = &index.predicate {
        text.push_str(" where ");
        text.push_str(predicate);
    }
    if !index.valid {
        text.push_str(" invalid");
    }
    text
}

impl Schema {
    /// True when the schema has no user table, view or function.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.views.is_empty() && self.functions.is_empty()
    }

    /// Every difference between this schema (the database) and `expected`, tables in name
    /// order. Empty when the two are the same.
    pub fn diff(&self, expected: &Schema) -> Vec<SchemaDifference> {
        let mut out = Vec::new();
        only_in(&self.tables, &expected.tables, |table, side| {
            out.push(SchemaDifference::TableOnlyIn { table, side })
        });
        for (name, table) in &self.tables {
            if let Some(other) = expected.tables.get(name) {
                diff_table(name, table, other, &mut out);
            }
        }
        set_only_in(&self.views, &expected.views, |view, side| {
            out.push(SchemaDifference::ViewOnlyIn { view, side })
        });
        set_only_in(&self.functions, &expected.functions, |function, side| {
            out.push(SchemaDifference::FunctionOnlyIn { function, side })
        });
        out
    }
}

impl Schema {
    /// What in this schema (the database) stops flowkey from building on it as if it were
    /// `expected`, the schema the revisions up to a target create. Only the tables flowkey
    /// migrates count (`scope`: the schema its whole chain creates), and within them only
    /// what flowkey's SQL relies on: every expected table, column (type and nullability),
    /// key, unique constraint, foreign key, index, check, trigger, view and function must be
    /// there as expected, and nothing flowkey would create later may be there already.
    /// Everything else is the platform's and is tolerated: other tables, views, functions,
    /// extra columns, indexes, constraints and triggers on the migrated tables, and column
    /// defaults (flowkey always writes its values).
    pub fn incompatibilities(&self, expected: &Schema, scope: &Schema) -> Vec<SchemaDifference> {
        let in_scope = |table: &str| scope.tables.contains_key(table);
        let scoped = |table: &str| scope.tables.get(table);
        self.diff(expected)
            .into_iter()
            .filter(|difference| {
                use SchemaDifference::*;
                match difference {
                    TableOnlyIn { table, side } => *side == Side::Expected || in_scope(table),
                    ViewOnlyIn { view, side } => {
                        *side == Side::Expected || scope.views.contains(view)
                    }
                    FunctionOnlyIn { function, side } => {
                        *side == Side::Expected || scope.functions.contains(function)
                    }
                    ColumnOnlyIn {
                        table,
                        column,
                        side,
                    } => {
                        *side == Side::Expected
                            || scoped(table).is_some_and(|t| t.columns.contains_key(column))
                    }
                    ColumnDiffers { property, .. } => *property != "default",
                    PrimaryKeyDiffers { .. }
                    | IndexDiffers { .. }
                    | CheckDiffers { .. }
                    | CannotKeep { .. } => true,
                    UniqueOnlyIn {
                        table,
                        columns,
                        side,
                    } => {
                        *side == Side::Expected
                            || scoped(table).is_some_and(|t| t.unique_constraints.contains(columns))
                    }
                    ForeignKeyOnlyIn {
                        table,
                        foreign_key,
                        side,
                    } => {
                        *side == Side::Expected
                            || scoped(table).is_some_and(|t| {
                                t.foreign_keys
                                    .iter()
                                    .any(|fk| fk.columns == foreign_key.columns)
                            })
                    }
                    IndexOnlyIn { table, index, side } => {
                        *side == Side::Expected
                            || scoped(table).is_some_and(|t| t.indexes.contains_key(index))
                    }
                    CheckOnlyIn { table, check, side } => {
                        *side == Side::Expected
                            || scoped(table).is_some_and(|t| t.checks.contains_key(check))
                    }
                    TriggerOnlyIn {
                        table,
                        trigger,
                        side,
                    } => {
                        *side == Side::Expected
                            || scoped(table).is_some_and(|t| t.triggers.contains(trigger))
                    }
                }
            })
            .collect()
    }
}

impl SchemaDifference {
    /// The difference read as what flowkey needs: an item missing from the database is one
    /// its SQL relies on, an item only in the database is one it would create itself.
    pub fn as_requirement(&self) -> String {
        use SchemaDifference::*;
        let side_text = |side: &Side| match side {
            Side::Expected => "is missing; flowkey needs it",
            Side::Database => "already exists; flowkey creates it itself",
        };
        match self {
            TableOnlyIn { table, side } => format!("table {table} {}", side_text(side)),
            ViewOnlyIn { view, side } => format!("view {view} {}", side_text(side)),
            FunctionOnlyIn { function, side } => {
                format!("function {function} {}", side_text(side))
            }
            ColumnOnlyIn {
                table,
                column,
                side,
            } => format!("column {table}.{column} {}", side_text(side)),
            ColumnDiffers {
                table,
                column,
                property,
                database,
                expected,
            } => format!(
                "column {table}.{column}: {property} is {database}, flowkey needs {expected}"
            ),
            PrimaryKeyDiffers {
                table,
                database,
                expected,
            } => format!(
                "table {table}: primary key is ({}), flowkey needs ({})",
                database.join(", "),
                expected.join(", ")
            ),
            UniqueOnlyIn {
                table,
                columns,
                side,
            } => format!(
                "table {table}: unique ({}) {}",
                columns.join(", "),
                side_text(side)
            ),
            ForeignKeyOnlyIn {
                table,
                foreign_key,
                side,
            } => format!(
                "table {table}: foreign key ({}) -> {}({}) {}",
                foreign_key.columns.join(", "),
                foreign_key.references_table,
                foreign_key.references_columns.join(", "),
                side_text(side)
            ),
            IndexOnlyIn { table, index, side } => {
                format!("table {table}: index {index} {}", side_text(side))
            }
            CheckOnlyIn { table, check, side } => {
                format!("table {table}: check {check} {}", side_text(side))
            }
            TriggerOnlyIn {
                table,
                trigger,
                side,
            } => format!("table {table}: trigger {trigger} {}", side_text(side)),
            IndexDiffers { .. } | CheckDiffers { .. } => {
                format!("{self} (flowkey needs the expected one)")
            }
            CannotKeep { .. } => self.to_string(),
        }
    }
}

fn only_in<V>(
    database: &BTreeMap<String, V>,
    expected: &BTreeMap<String, V>,
    mut push: impl FnMut(String, Side),
) {
    for key in database.keys().filter(|key| !expected.contains_key(*key)) {
        push(key.clone(), Side::Database);
    }
    for key in expected.keys().filter(|key| !database.contains_key(*key)) {
        push(key.clone(), Side::Expected);
    }
}

fn set_only_in<T: Ord + Clone>(
    database: &BTreeSet<T>,
    expected: &BTreeSet<T>,
    mut push: impl FnMut(T, Side),
) {
    for item in database.difference(expected) {
        push(item.clone(), Side::Database);
    }
    for item in expected.difference(database) {
        push(item.clone(), Side::Expected);
    }
}

fn diff_table(name: &str, table: &Table, expected: &Table, out: &mut Vec<SchemaDifference>) {
    let t = || name.to_owned();
    only_in(&table.columns, &expected.columns, |column, side| {
        out.push(SchemaDifference::ColumnOnlyIn {
            table: t(),
            column,
            side,
        })
    });
    for (column, have) in &table.columns {
        let Some(want) = expected.columns.get(column) else {
            continue;
        };
        let mut property = |property: &'static str, database: String, expected: String| {
            if database != expected {
                out.push(SchemaDifference::ColumnDiffers {
                    table: t(),
                    column: column.clone(),
                    property,
                    database,
                    expected,
                });
            }
        };
        property("type", have.data_type.clone(), want.data_type.clone());
        property(
            "not null",
            have.not_null.to_string(),
            want.not_null.to_string(),
        );
        let show = |default: &Option<String>| default.clone().unwrap_or_else(|| "none".into());
        property("default", show(&have.default), show(&want.default));
    }
    if table.primary_key != expected.primary_key {
        out.push(SchemaDifference::PrimaryKeyDiffers {
            table: t(),
            database: table.primary_key.clone(),
            expected: expected.primary_key.clone(),
        });
    }
    set_only_in(
        &table.unique_constraints,
        &expected.unique_constraints,
        |columns, side| {
            out.push(SchemaDifference::UniqueOnlyIn {
                table: t(),
                columns,
                side,
            })
        },
    );
    set_only_in(
        &table.foreign_keys,
        &expected.foreign_keys,
        |foreign_key, side| {
            out.push(SchemaDifference::ForeignKeyOnlyIn {
                table: t(),
                foreign_key,
                side,
            })
        },
    );
    only_in(&table.indexes, &expected.indexes, |index, side| {
        out.push(SchemaDifference::IndexOnlyIn {
            table: t(),
            index,
            side,
        })
    });
    for (index, have) in &table.indexes {
        if let Some(want) = expected.indexes.get(index) {
            if have != want {
                out.push(SchemaDifference::IndexDiffers {
                    table: t(),
                    index: index.clone(),
                    database: have.clone(),
                    expected: want.clone(),
                });
            }
        }
    }
    only_in(&table.checks, &expected.checks, |check, side| {
        out.push(SchemaDifference::CheckOnlyIn {
            table: t(),
            check,
            side,
        })
    });
    for (check, have) in &table.checks {
        if let Some(want) = expected.checks.get(check) {
            if have != want {
                out.push(SchemaDifference::CheckDiffers {
                    table: t(),
                    check: check.clone(),
                    database: have.clone(),
                    expected: want.clone(),
                });
            }
        }
    }
    set_only_in(&table.triggers, &expected.triggers, |trigger, side| {
        out.push(SchemaDifference::TriggerOnlyIn {
            table: t(),
            trigger,
            side,
        })
    });
}

/// Reads the schema of `db` (PostgreSQL: the connection's current schema, normally `public`).
pub async fn introspect(db: &Db) -> Result<Schema, sqlx::Error> {
    match db {
        Db::Sqlite(pool) => {
            let mut conn = pool.acquire().await?;
            introspect_sqlite(&mut conn).await
        }
        Db::Postgres(pool) => {
            let mut conn = pool.acquire().await?;
            introspect_postgres(&mut conn).await
        }
    }
}

fn is_user_table(name: &str) -> bool {
    !name.starts_with(FLOWKEY_TABLE_PREFIX) && !name.starts_with("sqlite_")
}

/// Collapses runs of whitespace to one space and removes parentheses that wrap the whole
/// expression, so `DEFAULT (now())` written two ways compares equal.
fn normalize_expression(text: &str) -> String {
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    while text.starts_with('(') && text.ends_with(')') && wraps_whole(&text) {
        text = text[1..text.len() - 1].trim().to_owned();
    }
    text
}

/// Whether the opening parenthesis at the start closes at the very end.
fn wraps_whole(text: &str) -> bool {
    let mut depth = 0usize;
    let mut quoted = false;
    for (position, ch) in text.char_indices() {
        match ch {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return position == text.len() - 1;
                }
            }
            _ => {}
        }
    }
    false
}

/// Reads a SQLite schema on one connection.
pub async fn introspect_sqlite(conn: &mut SqliteConnection) -> Result<Schema, sqlx::Error> {
    let objects = sqlx::query(
        "SELECT type, name, tbl_name, sql FROM sqlite_master \
         WHERE type IN ('table', 'view', 'trigger', 'index')",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut schema = Schema {
        engine: Engine::Sqlite,
        tables: BTreeMap::new(),
        views: BTreeSet::new(),
        functions: BTreeSet::new(),
    };
    let mut index_sql = BTreeMap::new();
    let mut triggers = Vec::new();
    for row in &objects {
        let kind: String = row.try_get(0)?;
        let name: String = row.try_get(1)?;
        let table: String = row.try_get(2)?;
        let sql: Option<String> = row.try_get(3)?;
        match kind.as_str() {
            "table" if is_user_table(&name) => {
                schema.tables.insert(name, Table::default());
            }
            "view" if is_user_table(&name) => {
                schema.views.insert(name);
            }
            "trigger" => triggers.push((table, name)),
            "index" => {
                index_sql.insert(name, sql.unwrap_or_default());
            }
            _ => {}
        }
    }
    for (table_name, trigger) in triggers {
        if let Some(table) = schema.tables.get_mut(&table_name) {
            table.triggers.insert(trigger);
        }
    }
    let names: Vec<String> = schema.tables.keys().cloned().collect();
    for name in names {
        let table = read_sqlite_table(conn, &name, &index_sql).await?;
        let entry = schema.tables.entry(name).or_default();
        let triggers = std::mem::take(&mut entry.triggers);
        *entry = Table { triggers, ..table };
    }
    Ok(schema)
}

async fn read_sqlite_table(
    conn: &mut SqliteConnection,
    name: &str,
    index_sql: &BTreeMap<String, String>,
) -> Result<Table, sqlx::Error> {
    let mut table = Table::default();
    let mut primary_key: Vec<(i64, String)> = Vec::new();
    let columns =
        sqlx::query("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info($1)")
            .bind(name)
            .fetch_all(&mut *conn)
            .await?;
    for row in columns {
        let column: String = row.try_get(0)?;
        let data_type: String = row.try_get(1)?;
        let not_null: i64 = row.try_get(2)?;
        let default: Option<String> = row.try_get(3)?;
        let pk: i64 = row.try_get(4)?;
        if pk > 0 {
            primary_key.push((pk, column.clone()));
        }
        table.columns.insert(
            column,
            Column {
                data_type: normalize_expression(&data_type.to_lowercase()),
                not_null: not_null != 0,
                default: default.as_deref().map(normalize_expression),
            },
        );
    }
    primary_key.sort();
    table.primary_key = primary_key.into_iter().map(|(_, column)| column).collect();

    let foreign_keys = sqlx::query(
        "SELECT id, seq, \"table\", \"from\", \"to\", on_update, on_delete \
         FROM pragma_foreign_key_list($1) ORDER BY id, seq",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await?;
    let mut grouped: BTreeMap<i64, ForeignKey> = BTreeMap::new();
    for row in foreign_keys {
        let id: i64 = row.try_get(0)?;
        let references_table: String = row.try_get(2)?;
        let from: String = row.try_get(3)?;
        let to: Option<String> = row.try_get(4)?;
        let on_update: String = row.try_get(5)?;
        let on_delete: String = row.try_get(6)?;
        let fk = grouped.entry(id).or_insert_with(|| ForeignKey {
            columns: Vec::new(),
            references_table,
            references_columns: Vec::new(),
            on_delete: on_delete.to_uppercase(),
            on_update: on_update.to_uppercase(),
            validated: true,
        });
        fk.columns.push(from);
        if let Some(to) = to {
            fk.references_columns.push(to);
        }
    }
    for mut fk in grouped.into_values() {
        // `REFERENCES t` without columns means t's primary key.
        if fk.references_columns.is_empty() {
            fk.references_columns = sqlx::query_scalar(
                "SELECT name FROM pragma_table_info($1) WHERE pk > 0 ORDER BY pk",
            )
            .bind(&fk.references_table)
            .fetch_all(&mut *conn)
            .await?;
        }
        table.foreign_keys.insert(fk);
    }

    let indexes = sqlx::query("SELECT name, \"unique\", origin FROM pragma_index_list($1)")
        .bind(name)
        .fetch_all(&mut *conn)
        .await?;
    for row in indexes {
        let index: String = row.try_get(0)?;
        let unique: i64 = row.try_get(1)?;
        let origin: String = row.try_get(2)?;
        let columns: Vec<Option<String>> = sqlx::query_scalar(
            "SELECT name FROM pragma_index_xinfo($1) WHERE key = 1 ORDER BY seqno",
        )
        .bind(&index)
        .fetch_all(&mut *conn)
        .await?;
        let columns: Vec<String> = columns
            .into_iter()
            .map(|column| column.unwrap_or_else(|| "<expression>".into()))
            .collect();
        match origin.as_str() {
            "pk" => {}
            "u" => {
                table.unique_constraints.insert(columns);
            }
            _ => {
                let predicate = index_sql.get(&index).and_then(|sql| partial_predicate(sql));
                table.indexes.insert(
                    index,
                    Index {
                        columns,
                        unique: unique != 0,
                        predicate,
                        valid: true,
                    },
                );
            }
        }
    }
    Ok(table)
}

/// The `WHERE` clause of a partial index's `CREATE INDEX` text: what follows the column list.
fn partial_predicate(sql: &str) -> Option<String> {
    let open = sql.find('(')?;
    // The column list ends at the parenthesis that closes the first one.
    let mut depth = 0usize;
    let end = sql[open..].char_indices().find_map(|(position, ch)| {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ => return None,
        }
        (depth == 0).then_some(open + position + 1)
    });
    let rest = sql[end?..].trim();
    let upper = rest.to_uppercase();
    upper
        .starts_with("WHERE")
        .then(|| normalize_expression(&rest["WHERE".len()..]))
}

/// table, index, unique, valid, key columns or expressions, partial predicate.
type PgIndexRow = (String, String, bool, bool, Vec<String>, Option<String>);

const PG_SCHEMA: &str = "(SELECT oid FROM pg_namespace WHERE nspname = current_schema())";

/// Reads the connection's current PostgreSQL schema.
pub async fn introspect_postgres(conn: &mut PgConnection) -> Result<Schema, sqlx::Error> {
    let mut schema = Schema {
        engine: Engine::Postgres,
        tables: BTreeMap::new(),
        views: BTreeSet::new(),
        functions: BTreeSet::new(),
    };
    let relations: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT relname::text, relkind::text FROM pg_class \
         WHERE relnamespace = {PG_SCHEMA} AND relkind IN ('r', 'p', 'v', 'm')"
    ))
    .fetch_all(&mut *conn)
    .await?;
    for (name, kind) in relations {
        if !is_user_table(&name) {
            continue;
        }
        if kind == "r" || kind == "p" {
            schema.tables.insert(name, Table::default());
        } else {
            schema.views.insert(name);
        }
    }

    let columns: Vec<(String, String, String, bool, Option<String>)> = sqlx::query_as(&format!(
        "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), \
                a.attnotnull, pg_get_expr(d.adbin, d.adrelid) \
         FROM pg_attribute a \
         JOIN pg_class c ON c.oid = a.attrelid \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE c.relnamespace = {PG_SCHEMA} AND c.relkind IN ('r', 'p') \
           AND a.attnum > 0 AND NOT a.attisdropped"
    ))
    .fetch_all(&mut *conn)
    .await?;
    for (table, column, data_type, not_null, default) in columns {
        if let Some(table) = schema.tables.get_mut(&table) {
            table.columns.insert(
                column,
                Column {
                    data_type,
                    not_null,
                    default: default.as_deref().map(normalize_expression),
                },
            );
        }
    }

    let constraints = sqlx::query(&format!(
        "SELECT c.relname::text, con.conname::text, con.contype::text, con.convalidated, \
            ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord) \
                  JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum \
                  ORDER BY k.ord) AS columns, \
            rc.relname::text AS references_table, \
            ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord) \
                  JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum \
                  ORDER BY k.ord) AS references_columns, \
            con.confdeltype::text, con.confupdtype::text, pg_get_constraintdef(con.oid) \
         FROM pg_constraint con \
         JOIN pg_class c ON c.oid = con.conrelid \
         LEFT JOIN pg_class rc ON rc.oid = con.confrelid \
         WHERE c.relnamespace = {PG_SCHEMA} AND con.contype IN ('p', 'u', 'f', 'c')"
    ))
    .fetch_all(&mut *conn)
    .await?;
    for row in constraints {
        let table_name: String = row.try_get(0)?;
        let Some(table) = schema.tables.get_mut(&table_name) else {
            continue;
        };
        let name: String = row.try_get(1)?;
        let kind: String = row.try_get(2)?;
        let validated: bool = row.try_get(3)?;
        let columns: Vec<String> = row.try_get(4)?;
        match kind.as_str() {
            "p" => table.primary_key = columns,
            "u" => {
                table.unique_constraints.insert(columns);
            }
            "f" => {
                let references_table: Option<String> = row.try_get(5)?;
                let references_columns: Vec<String> = row.try_get(6)?;
                let on_delete: String = row.try_get(7)?;
                let on_update: String = row.try_get(8)?;
                table.foreign_keys.insert(ForeignKey {
                    columns,
                    references_table: references_table.unwrap_or_default(),
                    references_columns,
                    on_delete: pg_fk_action(&on_delete).into(),
                    on_update: pg_fk_action(&on_update).into(),
                    validated,
                });
            }
            _ => {
                let definition: String = row.try_get(9)?;
                table.checks.insert(
                    name,
                    Check {
                        definition,
                        validated,
                    },
                );
            }
        }
    }

    let indexes: Vec<PgIndexRow> = sqlx::query_as(&format!(
        "SELECT t.relname::text, i.relname::text, ix.indisunique, ix.indisvalid, \
                ARRAY(SELECT pg_get_indexdef(ix.indexrelid, k, true) \
                      FROM generate_series(1, ix.indnkeyatts) k ORDER BY k), \
                pg_get_expr(ix.indpred, ix.indrelid) \
             FROM pg_index ix \
             JOIN pg_class i ON i.oid = ix.indexrelid \
             JOIN pg_class t ON t.oid = ix.indrelid \
             WHERE t.relnamespace = {PG_SCHEMA} \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint con \
                               WHERE con.conindid = ix.indexrelid AND con.conrelid = ix.indrelid \
                                 AND con.contype IN ('p', 'u', 'x'))"
    ))
    .fetch_all(&mut *conn)
    .await?;
    for (table, index, unique, valid, columns, predicate) in indexes {
        if let Some(table) = schema.tables.get_mut(&table) {
            table.indexes.insert(
                index,
                Index {
                    columns,
                    unique,
                    predicate: predicate.as_deref().map(normalize_expression),
                    valid,
                },
            );
        }
    }

    let triggers: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT c.relname::text, tg.tgname::text FROM pg_trigger tg \
         JOIN pg_class c ON c.oid = tg.tgrelid \
         WHERE NOT tg.tgisinternal AND c.relnamespace = {PG_SCHEMA}"
    ))
    .fetch_all(&mut *conn)
    .await?;
    for (table, trigger) in triggers {
        if let Some(table) = schema.tables.get_mut(&table) {
            table.triggers.insert(trigger);
        }
    }

    let functions: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ')' \
         FROM pg_proc p WHERE p.pronamespace = {PG_SCHEMA} \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')"
    ))
    .fetch_all(&mut *conn)
    .await?;
    schema.functions = functions.into_iter().collect();
    Ok(schema)
}

fn pg_fk_action(code: &str) -> &'static str {
    match code {
        "r" => "RESTRICT",
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        _ => "NO ACTION",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_compare_without_outer_parentheses_or_spacing() {
        assert_eq!(
            normalize_expression("(strftime('%Y', 'now'))"),
            "strftime('%Y', 'now')"
        );
        assert_eq!(normalize_expression("(a) + (b)"), "(a) + (b)");
        assert_eq!(normalize_expression("  now( )  "), "now( )");
        assert_eq!(normalize_expression("')('"), "')('");
        // A quote left open (text SQLite would not store, but the comparison must not guess):
        // the parentheses are kept.
        assert_eq!(normalize_expression("('a)"), "('a)");
    }

    #[test]
    fn partial_index_predicates_are_found() {
        assert_eq!(
            partial_predicate("CREATE INDEX ix ON t(a) WHERE a IS NOT NULL").as_deref(),
            Some("a IS NOT NULL")
        );
        assert_eq!(partial_predicate("CREATE INDEX ix ON t(a)"), None);
        assert_eq!(partial_predicate("CREATE INDEX ix ON t(a"), None);
    }

    #[test]
    fn differences_read_as_sentences() {
        let difference = SchemaDifference::ColumnOnlyIn {
            table: "data_imports".into(),
            column: "flow_id".into(),
            side: Side::Database,
        };
        assert_eq!(
            difference.to_string(),
            "table data_imports: column flow_id exists only in the database"
        );
    }

    /// What flowkey tolerates on a migrated table and what it refuses, for the kinds of
    /// object a platform adds most: unique constraints, checks, keys and views. The
    /// platform's own additions stay; what flowkey relies on or creates itself is named.
    #[test]
    fn incompatibilities_name_what_flowkey_needs_and_tolerate_the_platforms_own() {
        let columns = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect();
        let check = |definition: &str| Check {
            definition: definition.to_owned(),
            validated: true,
        };
        let schema = |table: Table, views: &[&str]| Schema {
            engine: Engine::Postgres,
            tables: BTreeMap::from([("data_imports".to_owned(), table)]),
            views: views.iter().map(|view| (*view).to_owned()).collect(),
            functions: BTreeSet::new(),
        };
        let expected_table = Table {
            primary_key: columns(&["id"]),
            unique_constraints: BTreeSet::from([columns(&["import_name"])]),
            checks: BTreeMap::from([("ck_rows".to_owned(), check("total_rows >= 0"))]),
            ..Table::default()
        };
        let expected = schema(expected_table.clone(), &[]);
        let scope = schema(expected_table.clone(), &["flowkey_imports_by_flow"]);

        // The platform's own unique constraint, check and view: tolerated.
        let mut platform = expected_table.clone();
        platform
            .unique_constraints
            .insert(columns(&["source_filename"]));
        platform
            .checks
            .insert("ck_platform".to_owned(), check("import_type <> ''"));
        let database = schema(platform, &["platform_report"]);
        assert_eq!(database.incompatibilities(&expected, &scope), vec![]);

        // What flowkey relies on, missing; a key it does not know; a view it creates itself.
        let broken = Table {
            primary_key: columns(&["id", "import_name"]),
            ..Table::default()
        };
        let database = schema(broken, &["flowkey_imports_by_flow"]);
        let refused: Vec<String> = database
            .incompatibilities(&expected, &scope)
            .iter()
            .map(SchemaDifference::as_requirement)
            .collect();
        assert_eq!(
            refused,
            [
                "table data_imports: primary key is (id, import_name), flowkey needs (id)",
                "table data_imports: unique (import_name) is missing; flowkey needs it",
                "table data_imports: check ck_rows is missing; flowkey needs it",
                "view flowkey_imports_by_flow already exists; flowkey creates it itself",
            ]
        );
    }
}
