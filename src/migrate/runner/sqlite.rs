//! How a SQL step runs on SQLite: `Sql` and `OnlineDdl` alike, the whole script in one
//! transaction with the step recorded done in it.

use crate::db::foreign_keys::{describe, ForeignKeyViolations};
use crate::migrate::faults;
use crate::migrate::runner::steps::end_transaction;
use crate::migrate::runner::versions::set_steps_done;
use crate::migrate::{MigrateError, Revision, Step};

/// Runs a SQLite script in one transaction, recording the step done in it. A script with a
/// `PRAGMA foreign_keys = OFF` statement (a table rebuild: SQLite ignores that pragma inside
/// a transaction, and with foreign keys on, `DROP TABLE` would fire the children's `ON DELETE`
/// actions) gets it applied before the transaction, `PRAGMA foreign_key_check` before the
/// commit, and foreign keys back on afterwards.
pub(super) async fn run_sqlite_script(
    pool: &sqlx::SqlitePool,
    script: &str,
    revision: &'static Revision,
    step: &'static Step,
    steps_done: usize,
) -> Result<(), MigrateError> {
    let foreign_keys_off = disables_foreign_keys(script);
    let mut conn = pool.acquire().await?;
    if foreign_keys_off {
        sqlx::query("PRAGMA foreign_keys = OFF")
            .execute(&mut *conn)
            .await?;
    }
    let result = async {
        // IMMEDIATE: this transaction reads the catalog and then writes; see Db::begin_write.
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
        let work = async {
            // SQLite compiles DDL against the connection's cached schema; reading the catalog
            // first reloads it if another pooled connection changed the schema (a stale cache
            // turns `IF [NOT] EXISTS` into silent no-ops).
            sqlx::query("SELECT count(*) FROM sqlite_master")
                .execute(&mut *tx)
                .await?;
            // Dangling references the application left (it may never have turned foreign
            // keys on) are the platform's: only violations the script adds stop it.
            let before = if foreign_keys_off {
                ForeignKeyViolations::read(&mut tx).await?
            } else {
                ForeignKeyViolations::default()
            };
            faults::check("runner::before_sqlite_script")?;
            sqlx::raw_sql(script).execute(&mut *tx).await?;
            faults::check("runner::after_sqlite_script")?;
            if foreign_keys_off {
                let added = ForeignKeyViolations::read(&mut tx)
                    .await?
                    .added_since(&before);
                if !added.is_empty() {
                    let (rows, first) = describe(&added);
                    return Err(MigrateError::StepFailed {
                        revision: revision.id.into(),
                        step: step.name.into(),
                        message: format!(
                            "the step would leave {rows} more rows violating foreign keys \
                             (first: {first}); rolled back"
                        ),
                    });
                }
            }
            set_steps_done(&mut *tx, revision, steps_done).await
        }
        .await;
        end_transaction(tx, work).await
    }
    .await;
    if foreign_keys_off {
        let restored = async {
            faults::check_sql("runner::before_foreign_keys_on")?;
            sqlx::query("PRAGMA foreign_keys = ON")
                .execute(&mut *conn)
                .await
        }
        .await;
        if let Err(err) = restored {
            // Never hand a connection without foreign keys back to the pool. The step's own
            // result stands: its transaction has ended either way.
            tracing::warn!(
                "foreign keys could not be switched back on after step {:?} ({err}): \
                 that connection is closed, not reused",
                step.name
            );
            conn.close_on_drop();
        }
    }
    result
}

/// Whether a SQLite script turns foreign keys off (`PRAGMA foreign_keys = OFF` or `= 0`) in
/// one of its statements.
fn disables_foreign_keys(script: &str) -> bool {
    let code: String = script
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("--"))
        .collect::<Vec<_>>()
        .join(" ");
    code.split(';').any(|statement| {
        let compact: String = statement
            .chars()
            .filter(|ch| !ch.is_whitespace())
            .collect::<String>()
            .to_lowercase();
        matches!(
            compact.as_str(),
            "pragmaforeign_keys=off" | "pragmaforeign_keys=0" | "pragmaforeign_keys=false"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rebuilds_are_recognised() {
        assert!(disables_foreign_keys(
            "-- rebuild\nSELECT count(*) FROM sqlite_master;\nPRAGMA foreign_keys = OFF;\nCREATE TABLE t (x);"
        ));
        assert!(disables_foreign_keys("pragma FOREIGN_KEYS=0;"));
        assert!(!disables_foreign_keys(
            "PRAGMA foreign_keys = ON;\nDROP TABLE t;"
        ));
    }
}
