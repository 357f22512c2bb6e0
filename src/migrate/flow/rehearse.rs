//! `rehearse`: "test on a copy of production data" as one call. The source database is copied
//! without being changed (SQLite: `VACUUM INTO` a temporary file, a consistent online copy;
//! PostgreSQL: `CREATE DATABASE … TEMPLATE`, which needs the source to have no other
//! connection — otherwise a clear error suggests a `pg_dump | pg_restore` copy), then the copy
//! is upgraded to `head`, verified, reported on, downgraded to `legacy`, and compared with
//! its own state before the upgrade (introspected schema and fingerprints of every legacy
//! table). The copy is removed at the end.

use std::fmt::Write as _;
use std::time::Instant;

use serde::Serialize;

use crate::db::introspect::introspect;
use crate::db::{redact, Db, DbUrl, Engine};
use crate::migrate::flow::error::FlowMigrationError;
use crate::migrate::flow::fingerprint::{fingerprint_database, FingerprintScope};
use crate::migrate::flow::report::{report, MigrationReport};
use crate::migrate::flow::verify::{verify, VerifyReport};
use crate::migrate::{faults, MigrateError, Migrator, RunOptions};

#[derive(Debug, Clone, Serialize)]
pub struct RehearsalReport {
    pub engine: Engine,
    /// The source, password hidden.
    pub source: String,
    pub timings_ms: RehearsalTimings,
    pub verify: VerifyReport,
    pub report: MigrationReport,
    /// The downgraded copy has the schema and the legacy bytes it had before the upgrade.
    pub downgrade_exact: bool,
    /// What differs after the downgrade, if anything (schema differences, tables whose
    /// fingerprint changed).
    pub downgrade_differences: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RehearsalTimings {
    pub copy: u128,
    pub upgrade: u128,
    pub verify: u128,
    pub downgrade: u128,
    pub final_check: u128,
}

impl RehearsalReport {
    pub fn is_ok(&self) -> bool {
        self.verify.is_ok() && self.downgrade_exact
    }
}

impl std::fmt::Display for RehearsalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Written to a String, which never fails, then to the formatter once.
        let mut out = String::new();
        let _ = writeln!(
            out,
            "rehearsal on a copy of {} ({})",
            self.source, self.engine
        );
        let _ = write!(out, "{}", self.report);
        let _ = writeln!(out, "verify: {}", self.verify.summary());
        let t = &self.timings_ms;
        let _ =
            writeln!(out,
            "timings: copy {} ms, upgrade {} ms, verify {} ms, downgrade {} ms, final check {} ms",
            t.copy, t.upgrade, t.verify, t.downgrade, t.final_check
        );
        if self.downgrade_exact {
            let _ = writeln!(out, "downgrade: legacy schema and data identical");
        } else {
            let _ = writeln!(
                out,
                "downgrade: DIFFERS: {}",
                self.downgrade_differences.join("; ")
            );
        }
        f.write_str(&out)
    }
}

/// Rehearses the whole migration on a copy of `source_url`; the source is only read.
pub async fn rehearse(
    source_url: &str,
    options: &RunOptions,
) -> Result<RehearsalReport, MigrateError> {
    let started = Instant::now();
    let copy = Copy::make(source_url).await?;
    let copy_ms = started.elapsed().as_millis();
    let outcome = rehearse_on(&copy.url, options).await;
    copy.remove().await;
    let mut rehearsal = outcome?;
    rehearsal.source = redact(source_url);
    rehearsal.timings_ms.copy = copy_ms;
    Ok(rehearsal)
}

async fn rehearse_on(url: &str, options: &RunOptions) -> Result<RehearsalReport, MigrateError> {
    let db = Db::connect(url)
        .await
        .map_err(|err| FlowMigrationError::RehearsalCopy {
            reason: err.to_string(),
        })?;
    let schema_before = introspect(&db).await?;
    let fingerprints_before = fingerprint_database(&db, FingerprintScope::AllRows).await?;
    let migrator = Migrator::new(db.clone(), options.clone());
    let mut timings = RehearsalTimings::default();

    let clock = Instant::now();
    migrator.upgrade("head").await?;
    timings.upgrade = clock.elapsed().as_millis();

    let clock = Instant::now();
    let verified = verify(&db).await?;
    timings.verify = clock.elapsed().as_millis();
    let migration_report = report(&db).await?;

    let clock = Instant::now();
    migrator.downgrade("legacy").await?;
    timings.downgrade = clock.elapsed().as_millis();

    let clock = Instant::now();
    let schema_after = introspect(&db).await?;
    let fingerprints_after = fingerprint_database(&db, FingerprintScope::AllRows).await?;
    let mut differences: Vec<String> = schema_after
        .diff(&schema_before)
        .iter()
        .map(ToString::to_string)
        .collect();
    for before in &fingerprints_before {
        let after = fingerprints_after
            .iter()
            .find(|after| after.table == before.table);
        if after != Some(before) {
            differences.push(format!(
                "{}: {} rows before, {} after, or different bytes",
                before.table,
                before.rows,
                after.map_or(0, |after| after.rows)
            ));
        }
    }
    timings.final_check = clock.elapsed().as_millis();
    db.close().await;
    Ok(RehearsalReport {
        engine: db.engine(),
        source: String::new(),
        timings_ms: timings,
        verify: verified,
        report: migration_report,
        downgrade_exact: differences.is_empty(),
        downgrade_differences: differences,
    })
}

/// A throw-away copy of a database.
struct Copy {
    url: String,
    kind: CopyKind,
}

enum CopyKind {
    SqliteFile(std::path::PathBuf),
    PostgresDatabase { admin_url: String, name: String },
}

impl Copy {
    async fn make(source_url: &str) -> Result<Copy, MigrateError> {
        let copy_error = |reason: String| FlowMigrationError::RehearsalCopy { reason };
        let parsed = DbUrl::parse(source_url).map_err(|err| copy_error(err.to_string()))?;
        match &parsed {
            DbUrl::Sqlite { memory: true, .. } => {
                return Err(copy_error(
                    "an in-memory sqlite database cannot be copied; use a file".into(),
                )
                .into());
            }
            // Connecting would create the file: a mistyped path would rehearse on an empty
            // database instead of saying so.
            DbUrl::Sqlite { path, .. } if !path.exists() => {
                return Err(copy_error(format!("{} does not exist", path.display())).into());
            }
            DbUrl::Sqlite { .. } | DbUrl::Postgres { .. } => {}
        }
        let source = Db::connect(source_url)
            .await
            .map_err(|err| copy_error(err.to_string()))?;
        let name = format!("flowkey_rehearsal_{}", uuid::Uuid::new_v4().simple());
        match &source {
            Db::Sqlite(pool) => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                let target = path.to_string_lossy().into_owned();
                // VACUUM INTO writes a consistent snapshot without blocking writers for long.
                let copied = sqlx::query("VACUUM INTO $1")
                    .bind(&target)
                    .execute(pool)
                    .await;
                source.close().await;
                copied.map_err(|err| copy_error(format!("vacuum into {target}: {err}")))?;
                Ok(Copy {
                    url: format!("sqlite://{target}"),
                    kind: CopyKind::SqliteFile(path),
                })
            }
            Db::Postgres(pool) => {
                let source_name: String = sqlx::query_scalar("SELECT current_database()::text")
                    .fetch_one(pool)
                    .await?;
                source.close().await;
                template_copy(source_url.trim(), &source_name, &name).await
            }
        }
    }

    /// Removes the copy; best effort (a leftover is named in the temp dir / server).
    async fn remove(self) {
        match self.kind {
            CopyKind::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
            CopyKind::PostgresDatabase { admin_url, name } => {
                let drop = format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_identifier(&name)
                );
                let dropped = async {
                    faults::check_sql("rehearse::before_copy_drop")?;
                    let admin = Db::connect(&admin_url).await?;
                    let result = admin.execute_plain(&drop).await;
                    admin.close().await;
                    result?;
                    Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
                }
                .await;
                // The rehearsal's outcome stands; a copy left behind holds a whole
                // database's disk, so its owner is told which one.
                if let Err(reason) = dropped {
                    tracing::warn!(
                        "the rehearsal's copy {name} was left on the server ({reason}); \
                         remove it with: {drop}"
                    );
                }
            }
        }
    }
}

/// `CREATE DATABASE name TEMPLATE source`, once no other session is connected to the source.
async fn template_copy(url: &str, source_name: &str, name: &str) -> Result<Copy, MigrateError> {
    let copy_error = |reason: String| FlowMigrationError::RehearsalCopy { reason };
    let admin_url = with_database(url, "postgres")?;
    let admin = crate::db::unreaped_pool::<sqlx::Postgres>()
        .max_connections(1)
        .connect(&admin_url)
        .await
        .map_err(|err| copy_error(err.to_string()))?;
    // Sessions that just closed (ours included) linger a moment in pg_stat_activity.
    let mut others = 0i64;
    for _ in 0..100 {
        others = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
            .bind(source_name)
            .fetch_one(&admin)
            .await?;
        if others == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if others > 0 {
        admin.close().await;
        return Err(copy_error(format!(
            "{others} other sessions are connected to {source_name}, and a template copy \
             needs none; copy it with `pg_dump -Fc {source_name} | pg_restore -d <new database>` \
             and rehearse on the new database"
        ))
        .into());
    }
    let create = format!(
        "CREATE DATABASE {} TEMPLATE {}",
        quote_identifier(name),
        quote_identifier(source_name)
    );
    let created = sqlx::raw_sql(&create).execute(&admin).await;
    admin.close().await;
    created.map_err(|err| copy_error(format!("create database from template: {err}")))?;
    Ok(Copy {
        url: with_database(url, name)?,
        kind: CopyKind::PostgresDatabase {
            admin_url,
            name: name.to_owned(),
        },
    })
}

fn with_database(url: &str, database: &str) -> Result<String, FlowMigrationError> {
    let mut parsed = url::Url::parse(url).map_err(|err| FlowMigrationError::RehearsalCopy {
        reason: format!("unreadable postgres url: {err}"),
    })?;
    parsed.set_path(&format!("/{database}"));
    Ok(parsed.to_string())
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy that cannot be opened is a copy failure, named as such (not a migration error).
    #[tokio::test]
    async fn a_copy_that_cannot_be_opened_is_a_copy_failure() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/missing-dir/copy.db", dir.path().display());
        let err = rehearse_on(&url, &RunOptions::default())
            .await
            .expect_err("no such directory");
        assert!(
            err.to_string()
                .starts_with("cannot copy the database for a rehearsal: "),
            "{err}"
        );
    }

    #[test]
    fn a_postgres_url_gets_the_copys_database_or_is_refused() {
        assert_eq!(
            with_database("postgres://u@h:5432/platform?sslmode=disable", "copy_1").unwrap(),
            "postgres://u@h:5432/copy_1?sslmode=disable"
        );
        let err = with_database("not a url", "copy_1").expect_err("unreadable");
        assert!(
            err.to_string().contains("unreadable postgres url: "),
            "{err}"
        );
    }
}
