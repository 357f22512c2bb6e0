//! Gives SQLite tables back their legacy definition, text for text, by rebuilding them.
//!
//! SQLite cannot `DROP COLUMN` a column with a `REFERENCES` clause, nor put `NOT NULL` back on
//! a column. The rebuild follows SQLite's own recipe with two twists so that
//! `sqlite_master` ends up holding the legacy `CREATE TABLE` text exactly: the old table is
//! renamed away under `PRAGMA legacy_alter_table = ON` (so the foreign keys of other tables
//! keep naming the legacy table), and the new table is created under its own name from the
//! legacy script. `PRAGMA foreign_keys` cannot change inside a transaction, so it is switched
//! off on one connection before the transaction and on again after; the transaction ends
//! with `PRAGMA foreign_key_check` and rolls back if the rebuild broke any reference.

use futures::future::BoxFuture;

use crate::db::foreign_keys::{describe, ForeignKeyViolations};

use crate::migrate::flow::error::FlowMigrationError;
use crate::migrate::revisions::legacy::LEGACY_SQL;
use crate::migrate::MigrateError;

/// Gives `tables` back their legacy definition, keeping every legacy column's values. A table
/// whose only change is the added `flow_id` loses it in place (`ALTER TABLE … DROP COLUMN`:
/// no copy, and whatever the platform put on the table — extra columns, indexes, triggers,
/// views over it — stays as it is); a table that needs more (a `NOT NULL` put back) is
/// rebuilt from the legacy script.
pub async fn rebuild_as_legacy(
    pool: sqlx::SqlitePool,
    tables: &[&str],
) -> Result<(), MigrateError> {
    let mut plans = Vec::with_capacity(tables.len());
    let mut in_place = Vec::new();
    for table in tables {
        if drops_in_place(table) {
            in_place.push(*table);
        } else {
            plans.push(plan(table)?);
        }
    }
    drop_added_columns(&pool, &in_place).await?;
    if plans.is_empty() {
        return Ok(());
    }
    on_rebuild_connection(&pool, |conn| Box::pin(rebuild_in_transaction(conn, plans))).await
}

/// Runs `work` (which opens and commits its own transaction) on one connection set up for
/// table rebuilds: foreign keys off, legacy `ALTER TABLE` on. An open transaction is rolled
/// back if `work` fails, and the connection goes back the way the pool opened it, whatever
/// happened. The contract's SQLite rebuild uses it too.
pub(crate) async fn on_rebuild_connection<F>(
    pool: &sqlx::SqlitePool,
    work: F,
) -> Result<(), MigrateError>
where
    F: for<'c> FnOnce(
        &'c mut sqlx::pool::PoolConnection<sqlx::Sqlite>,
    ) -> BoxFuture<'c, Result<(), MigrateError>>,
{
    let mut conn = pool.acquire().await?;
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut *conn)
        .await?;
    sqlx::query("PRAGMA legacy_alter_table = ON")
        .execute(&mut *conn)
        .await?;
    let outcome = work(&mut conn).await;
    if outcome.is_err() {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    let restore_alter = sqlx::query("PRAGMA legacy_alter_table = OFF")
        .execute(&mut *conn)
        .await;
    let restore_keys = sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut *conn)
        .await;
    outcome?;
    restore_alter?;
    restore_keys?;
    Ok(())
}

/// Whether `table` goes back to legacy by dropping its added columns alone: every table
/// but the deletion audit, whose `session_id` must be `NOT NULL` again (SQLite cannot add
/// that to a column in place).
fn drops_in_place(table: &str) -> bool {
    table != crate::migrate::flow::linked::DELETION_AUDIT_TABLE
}

/// Drops the columns flowkey added to `tables`, in one transaction. flowkey's own indexes and
/// triggers on them are gone by then (earlier down steps); an index, view or trigger of the
/// platform that names one is refused before the downgrade starts, and SQLite itself refuses
/// (the transaction rolls back) if one appeared since. Dropping a column rewrites no other
/// table and fires no foreign key action.
async fn drop_added_columns(pool: &sqlx::SqlitePool, tables: &[&str]) -> Result<(), MigrateError> {
    let mut conn = pool.acquire().await?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let outcome = async {
        for table in tables {
            let columns: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid")
                    .bind(*table)
                    .fetch_all(&mut *conn)
                    .await?;
            for column in columns {
                if !crate::migrate::flow::linked::is_added_column(table, &column) {
                    continue;
                }
                crate::migrate::faults::check("downgrade::before_drop_column")?;
                sqlx::query(&format!("ALTER TABLE {table} DROP COLUMN {column}"))
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Ok::<_, MigrateError>(())
    }
    .await;
    match outcome {
        Ok(()) => {
            sqlx::query("COMMIT").execute(&mut *conn).await?;
            Ok(())
        }
        Err(err) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            Err(err)
        }
    }
}

struct Plan {
    table: String,
    create_table: String,
    create_indexes: Vec<String>,
}

fn plan(table: &str) -> Result<Plan, FlowMigrationError> {
    Ok(Plan {
        table: table.to_owned(),
        create_table: legacy_create_table(table)?,
        create_indexes: legacy_indexes(table),
    })
}

async fn rebuild_in_transaction(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>,
    plans: Vec<Plan>,
) -> Result<(), MigrateError> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut **conn).await?;
    let before = ForeignKeyViolations::read(conn).await?;
    let mut rebuilt = Vec::new();
    for plan in plans {
        let table = plan.table;
        let old = format!("flowkey_old_{table}");
        let all: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid")
                .bind(table.clone())
                .fetch_all(&mut **conn)
                .await?;
        let mut legacy = Vec::with_capacity(all.len());
        for column in all {
            if !crate::migrate::flow::linked::is_added_column(&table, &column) {
                legacy.push(column);
            }
        }
        let list = legacy.join(", ");
        let statements = [
            format!("ALTER TABLE {table} RENAME TO {old}"),
            plan.create_table,
            format!("INSERT INTO {table} ({list}) SELECT {list} FROM {old}"),
            format!("DROP TABLE {old}"),
        ];
        for statement in statements.into_iter().chain(plan.create_indexes) {
            sqlx::query(&statement).execute(&mut **conn).await?;
        }
        rebuilt.push(table);
    }
    refuse_added_violations(conn, &before, &rebuilt.join(", ")).await?;
    sqlx::query("COMMIT").execute(&mut **conn).await?;
    Ok(())
}

/// Refuses, naming `rebuilt`, when the database has more foreign key violations than
/// `before`: what both SQLite rebuilds (the downgrade's and the contract's) check before they
/// commit; the caller's transaction is then rolled back. Only violations the rebuild adds
/// count: dangling references the application left (SQLite enforces foreign keys only where a
/// connection asks) are the platform's.
pub(crate) async fn refuse_added_violations(
    conn: &mut sqlx::SqliteConnection,
    before: &ForeignKeyViolations,
    rebuilt: &str,
) -> Result<(), MigrateError> {
    let added = ForeignKeyViolations::read(conn).await?.added_since(before);
    if added.is_empty() {
        return Ok(());
    }
    Err(FlowMigrationError::RebuildBreaksForeignKeys {
        table: rebuilt.to_owned(),
        violations: describe(&added).0,
    }
    .into())
}

/// The legacy `CREATE TABLE` statement of `table`, as SQLite stores it (no semicolon).
pub fn legacy_create_table(table: &str) -> Result<String, FlowMigrationError> {
    let script = LEGACY_SQL.sqlite;
    let missing = || FlowMigrationError::LegacyTableTextMissing {
        table: table.to_owned(),
    };
    let head = format!("CREATE TABLE {table} (");
    let start = script.find(&head).ok_or_else(missing)?;
    let length = script[start..].find("\n);").ok_or_else(missing)?;
    Ok(script[start..start + length + 2].to_owned())
}

/// The legacy `CREATE INDEX` statements on `table`.
pub fn legacy_indexes(table: &str) -> Vec<String> {
    let on = format!(" ON {table}(");
    LEGACY_SQL
        .sqlite
        .lines()
        .filter(|line| line.starts_with("CREATE INDEX") && line.contains(&on))
        .map(|line| line.trim_end_matches(';').to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_text_is_found_whole() {
        let text = legacy_create_table("data_imports").expect("present");
        assert!(text.starts_with("CREATE TABLE data_imports ("));
        assert!(text.ends_with("\n)"));
        assert!(text.contains("updated_at           TEXT"));
        assert_eq!(
            legacy_indexes("data_imports"),
            vec![
                "CREATE INDEX ix_data_imports_session_id ON data_imports(session_id)".to_owned(),
                "CREATE INDEX ix_data_imports_client_account_id ON data_imports(client_account_id)"
                    .to_owned()
            ]
        );
        assert!(legacy_create_table("nope").is_err());
    }

    /// The guard both rebuilds commit behind: a row the rebuild left dangling refuses it,
    /// naming the tables and counting the rows; dangling rows that were there before do not.
    #[tokio::test]
    async fn a_rebuild_that_leaves_a_row_dangling_is_refused_and_old_ones_are_not() {
        use sqlx::Connection as _;
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        for statement in [
            "PRAGMA foreign_keys = OFF",
            "CREATE TABLE parent (id INTEGER PRIMARY KEY)",
            "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id))",
            "INSERT INTO parent (id) VALUES (1), (2)",
            // Dangling before the rebuild: the platform's, never counted against it.
            "INSERT INTO child (id, parent_id) VALUES (1, 1), (2, 2), (3, 9)",
        ] {
            sqlx::query(statement).execute(&mut conn).await.unwrap();
        }
        let before = ForeignKeyViolations::read(&mut conn).await.unwrap();
        refuse_added_violations(&mut conn, &before, "parent")
            .await
            .expect("nothing added");
        sqlx::query("DELETE FROM parent")
            .execute(&mut conn)
            .await
            .unwrap();
        let err = refuse_added_violations(&mut conn, &before, "parent, child")
            .await
            .expect_err("two rows left dangling");
        assert_eq!(
            err.to_string(),
            "rebuilding parent, child on sqlite would add 2 foreign key violations"
        );
    }
}
