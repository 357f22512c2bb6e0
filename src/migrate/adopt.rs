//! The schema a database must have: the one the revisions up to a target create, built on a
//! scratch database (SQLite: in memory; PostgreSQL: a temporary schema of the same database,
//! dropped afterwards), and the one comparison the runner makes with it, whether it adopts a
//! database flowkey did not create, stamps one, or refuses to build on a drifted one.
//!
//! Code steps are not run on the scratch database: they move data, and only SQL steps change
//! the schema.

use std::str::FromStr;

use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::Connection;

use crate::db::introspect::{introspect_postgres, introspect_sqlite, Schema, SchemaDifference};
use crate::db::{Db, Engine};
use crate::migrate::offline::split_statements;
use crate::migrate::{Action, MigrateError, Revision};

/// Refuses a database whose migrated tables (`actual`) are not what `revisions` create from
/// an empty database, naming every incompatible item and `at`, the revision it was expected
/// to be at. `chain` is every revision flowkey knows: the tables it creates are the ones
/// flowkey migrates, and only those are compared (see [`Schema::incompatibilities`]); the
/// platform's other objects are tolerated.
pub async fn refuse_foreign_schema(
    db: &Db,
    actual: &Schema,
    revisions: &[&'static Revision],
    chain: &[&'static Revision],
    at: &str,
) -> Result<(), MigrateError> {
    let expected = reference_schema(db, revisions).await?;
    let scope = if revisions.len() == chain.len() {
        expected.clone()
    } else {
        reference_schema(db, chain).await?
    };
    let mut differences = actual.incompatibilities(&expected, &scope);
    differences.extend(rebuilt_with_extra_columns(actual, &expected));
    if differences.is_empty() {
        return Ok(());
    }
    Err(MigrateError::ForeignSchema {
        revision: at.into(),
        count: differences.len(),
        differences,
    })
}

/// On SQLite, `flow_deletion_audit` is rebuilt from its contract text by `flow_expand` (its
/// `session_id` loses `NOT NULL`, which SQLite cannot change in place) and on the way down:
/// a column the platform added to it would not survive, so it is refused up front instead.
fn rebuilt_with_extra_columns(actual: &Schema, expected: &Schema) -> Vec<SchemaDifference> {
    let table = crate::migrate::flow::linked::DELETION_AUDIT_TABLE;
    if actual.engine != Engine::Sqlite {
        return Vec::new();
    }
    let (Some(have), Some(want)) = (actual.tables.get(table), expected.tables.get(table)) else {
        return Vec::new();
    };
    let reason = "on SQLite flowkey rebuilds this table from its contract text; move it to a \
                  table of its own";
    let mut out: Vec<SchemaDifference> = have
        .columns
        .keys()
        .filter(|column| !want.columns.contains_key(*column) && *column != "flow_id")
        .map(|column| SchemaDifference::CannotKeep {
            table: table.into(),
            column: column.clone(),
            reason: reason.into(),
        })
        .collect();
    for (kind, name) in have
        .indexes
        .keys()
        .filter(|index| !want.indexes.contains_key(*index))
        .map(|index| ("index", index))
        .chain(
            have.triggers
                .iter()
                .filter(|trigger| {
                    !want.triggers.contains(*trigger) && !trigger.starts_with("flowkey_")
                })
                .map(|trigger| ("trigger", trigger)),
        )
    {
        out.push(SchemaDifference::CannotKeep {
            table: table.into(),
            column: format!("({kind} {name})"),
            reason: reason.into(),
        });
    }
    out
}

/// The names of the tables `revisions` create, read from a build on an in-memory SQLite
/// database whatever the engine: the set of tables flowkey migrates, known without writing
/// anything to the database at hand (a read such as `report` needs it).
pub async fn table_names(
    revisions: &[&'static Revision],
) -> Result<std::collections::BTreeSet<String>, MigrateError> {
    let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
    let mut conn = SqliteConnection::connect_with(&options).await?;
    let result = build_sqlite(&mut conn, revisions).await;
    let _ = conn.close().await;
    Ok(result?.tables.into_keys().collect())
}

/// The schema that applying `revisions` in order, from an empty database, produces.
pub async fn reference_schema(
    db: &Db,
    revisions: &[&'static Revision],
) -> Result<Schema, MigrateError> {
    match db {
        Db::Sqlite(_) => {
            let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
            let mut conn = SqliteConnection::connect_with(&options).await?;
            let result = build_sqlite(&mut conn, revisions).await;
            let _ = conn.close().await;
            result
        }
        Db::Postgres(pool) => {
            // Built inside one transaction that is always rolled back: a run killed while
            // it builds leaves no scratch schema behind (a DROP at the end would not run).
            let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
            let scratch = format!("flowkey_scratch_{}", uuid::Uuid::new_v4().simple());
            sqlx::raw_sql(&format!("BEGIN; CREATE SCHEMA {scratch}"))
                .execute(&mut conn)
                .await?;
            let result = build_postgres(&mut conn, &scratch, revisions).await;
            let rolled_back = sqlx::raw_sql("ROLLBACK").execute(&mut conn).await;
            let _ = conn.close().await;
            let schema = result?;
            rolled_back?;
            Ok(schema)
        }
    }
}

async fn build_sqlite(
    conn: &mut SqliteConnection,
    revisions: &[&'static Revision],
) -> Result<Schema, MigrateError> {
    for revision in revisions {
        for step in revision.up {
            match &step.action {
                Action::Sql(sql) | Action::OnlineDdl(sql) => {
                    sqlx::raw_sql(&sql.for_engine(Engine::Sqlite))
                        .execute(&mut *conn)
                        .await?;
                }
                Action::Code { .. } | Action::Check { .. } => {}
            }
        }
    }
    Ok(introspect_sqlite(conn).await?)
}

async fn build_postgres(
    conn: &mut PgConnection,
    scratch: &str,
    revisions: &[&'static Revision],
) -> Result<Schema, MigrateError> {
    sqlx::query("SELECT set_config('search_path', $1, false)")
        .bind(scratch)
        .execute(&mut *conn)
        .await?;
    for revision in revisions {
        for step in revision.up {
            match &step.action {
                Action::Sql(sql) => {
                    sqlx::raw_sql(&sql.for_engine(Engine::Postgres))
                        .execute(&mut *conn)
                        .await?;
                }
                Action::OnlineDdl(sql) => {
                    // Inside the build's transaction: the same objects, built plainly
                    // (CONCURRENTLY cannot run in a transaction, and nobody else sees them).
                    for statement in split_statements(&sql.for_engine(Engine::Postgres)) {
                        sqlx::raw_sql(&statement.replace(" CONCURRENTLY", ""))
                            .execute(&mut *conn)
                            .await?;
                    }
                }
                Action::Code { .. } | Action::Check { .. } => {}
            }
        }
    }
    Ok(introspect_postgres(conn).await?)
}
