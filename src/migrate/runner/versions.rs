//! The book of revisions, `flowkey_versions`: one row per revision that is applied or being
//! applied/reverted. `revision` (id, primary key), `position` (index in the chain), `checksum`
//! (see [`checksum`]), `dirty` (true while its steps run), `direction` (`up`/`down` of the run
//! that marked it), `steps_done` (steps of that direction completed), `recorded_by`
//! (`applied`, `adopted`, `stamped`, `forced`), `run_id`, `started_at`, `applied_at`. A
//! revision reverted completely loses its row. The current revision is the last clean row in
//! chain order; at most one row is dirty.
//!
//! Every write passes a fault injection point before and after it (`runner::before_mark_dirty`,
//! ..., see [`crate::migrate::faults`]).

use sqlx::Row;

use crate::db::types::DbTime;
use crate::db::{on_pool, on_tx, Db, Engine};
use crate::migrate::audit::table_exists;
use crate::migrate::checksum::checksum;
use crate::migrate::faults;
use crate::migrate::runner::plan::Chain;
use crate::migrate::{Direction, MigrateError, Revision};

/// The table of applied revisions; never dropped by a downgrade.
pub const VERSIONS_TABLE: &str = "flowkey_versions";

/// The channel a running server listens on (PostgreSQL) to re-check its schema gate as soon
/// as the book changes, instead of at its next poll.
pub const SCHEMA_CHANNEL: &str = "flowkey_schema";

/// Tells listening servers that the book changed (PostgreSQL; SQLite servers poll). A
/// revision marked dirty already counts as not applied, so a downgrade closes the servers'
/// routes before its first statement drops anything. Best effort by design: a notification
/// that cannot be sent costs a server one poll interval, not the run, so a failure is
/// logged, never returned.
async fn notify_servers(db: &Db, revision: &str) {
    if let Db::Postgres(pool) = db {
        let notified = async {
            faults::check_sql("runner::before_schema_notify")?;
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(SCHEMA_CHANNEL)
                .bind(revision)
                .execute(pool)
                .await
        }
        .await;
        if let Err(err) = notified {
            tracing::warn!(error = %err, "cannot notify servers of the schema change; they see it at their next poll");
        }
    }
}

/// One row of the book, as read.
#[derive(Debug, Clone)]
pub(super) struct VersionRow {
    pub revision: String,
    pub checksum: String,
    pub dirty: bool,
    pub direction: String,
    pub steps_done: i64,
    pub recorded_by: String,
    pub applied_at: Option<DbTime>,
}

impl VersionRow {
    pub fn direction(&self) -> Direction {
        if self.direction == "down" {
            Direction::Down
        } else {
            Direction::Up
        }
    }
}

/// What the book says, resolved against the chain.
pub(super) struct State {
    /// Index of the last fully applied revision.
    pub current: Option<usize>,
    /// The revision that stopped half way, if any.
    pub dirty: Option<DirtyRow>,
    /// Every row with its revision's index in the chain.
    pub rows: Vec<(usize, VersionRow)>,
}

pub(super) struct DirtyRow {
    pub index: usize,
    pub direction: Direction,
    pub steps_done: usize,
}

impl State {
    /// Resolves `rows` on `chain`; a recorded revision the chain does not know is refused.
    pub fn resolve(chain: Chain, rows: &[VersionRow]) -> Result<State, MigrateError> {
        let mut current = None;
        let mut dirty = None;
        let mut resolved = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(index) = chain.index_of(&row.revision) else {
                return Err(MigrateError::UnknownAppliedRevision {
                    revision: row.revision.clone(),
                });
            };
            if row.dirty {
                dirty = Some(DirtyRow {
                    index,
                    direction: row.direction(),
                    steps_done: usize::try_from(row.steps_done).unwrap_or(0),
                });
            } else if current.is_none_or(|at| index > at) {
                current = Some(index);
            }
            resolved.push((index, row.clone()));
        }
        Ok(State {
            current,
            dirty,
            rows: resolved,
        })
    }
}

pub(super) async fn ensure_versions_table(db: &Db) -> Result<(), MigrateError> {
    db.execute_plain(match db.engine() {
        Engine::Sqlite => CREATE_VERSIONS_SQLITE,
        Engine::Postgres => CREATE_VERSIONS_POSTGRES,
    })
    .await?;
    Ok(())
}

/// Every row in chain order; none when the table does not exist (a read never writes).
pub(super) async fn read_versions(db: &Db) -> Result<Vec<VersionRow>, MigrateError> {
    if !table_exists(db, VERSIONS_TABLE).await? {
        return Ok(Vec::new());
    }
    let rows = on_pool!(db, pool => {
        let rows = sqlx::query(
            "SELECT revision, checksum, dirty, direction, steps_done, recorded_by, applied_at \
             FROM flowkey_versions ORDER BY position",
        )
        .fetch_all(pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(VersionRow {
                revision: row.try_get("revision")?,
                checksum: row.try_get("checksum")?,
                dirty: row.try_get("dirty")?,
                direction: row.try_get("direction")?,
                steps_done: row.try_get("steps_done")?,
                recorded_by: row.try_get("recorded_by")?,
                applied_at: row.try_get("applied_at")?,
            });
        }
        out
    });
    Ok(rows)
}

/// Records that `revision` (at `position` in the chain) starts running in `direction`: dirty,
/// no step done.
pub(super) async fn mark_dirty(
    db: &Db,
    revision: &'static Revision,
    position: usize,
    direction: Direction,
    run_id: &str,
) -> Result<(), MigrateError> {
    faults::check("runner::before_mark_dirty")?;
    on_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO flowkey_versions (revision, position, checksum, dirty, direction, \
             steps_done, recorded_by, run_id, started_at, applied_at) \
             VALUES ($1, $2, $3, $4, $5, 0, 'applied', $6, $7, NULL) \
             ON CONFLICT (revision) DO UPDATE SET dirty = excluded.dirty, \
             checksum = excluded.checksum, direction = excluded.direction, steps_done = 0, run_id = excluded.run_id, \
             started_at = excluded.started_at",
        )
        .bind(revision.id)
        .bind(position as i64)
        .bind(checksum(revision))
        .bind(true)
        .bind(direction.to_string())
        .bind(run_id)
        .bind(DbTime::now())
        .execute(pool)
        .await?;
    });
    notify_servers(db, revision.id).await;
    faults::check("runner::after_mark_dirty")
}

/// Records that the first `steps_done` steps of the revision's running direction are done.
/// `executor` is the step's own transaction where the step has one, so that the record
/// commits with the step's work; the pool otherwise.
pub(super) async fn set_steps_done<'e, E>(
    executor: E,
    revision: &'static Revision,
    steps_done: usize,
) -> Result<(), MigrateError>
where
    E: sqlx::Executor<'e>,
    for<'q> i64: sqlx::Encode<'q, E::Database> + sqlx::Type<E::Database>,
    for<'q> String: sqlx::Encode<'q, E::Database> + sqlx::Type<E::Database>,
    for<'q> <E::Database as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, E::Database>,
{
    faults::check("runner::before_set_steps_done")?;
    sqlx::query::<E::Database>("UPDATE flowkey_versions SET steps_done = $1 WHERE revision = $2")
        .bind(steps_done as i64)
        .bind(revision.id.to_owned())
        .execute(executor)
        .await?;
    faults::check("runner::after_set_steps_done")
}

/// Records `revision` as applied: clean, with the time.
pub(super) async fn mark_applied(db: &Db, revision: &'static Revision) -> Result<(), MigrateError> {
    faults::check("runner::before_mark_applied")?;
    on_pool!(db, pool => {
        sqlx::query(
            "UPDATE flowkey_versions SET dirty = $1, applied_at = $2, recorded_by = 'applied' \
             WHERE revision = $3",
        )
        .bind(false)
        .bind(DbTime::now())
        .bind(revision.id)
        .execute(pool)
        .await?;
    });
    notify_servers(db, revision.id).await;
    faults::check("runner::after_mark_applied")
}

/// Forgets `revision`: it was reverted completely.
pub(super) async fn delete_version(
    db: &Db,
    revision: &'static Revision,
) -> Result<(), MigrateError> {
    faults::check("runner::before_delete_version")?;
    on_pool!(db, pool => {
        sqlx::query("DELETE FROM flowkey_versions WHERE revision = $1")
            .bind(revision.id)
            .execute(pool)
            .await?;
    });
    notify_servers(db, revision.id).await;
    faults::check("runner::after_delete_version")
}

/// Replaces every row with the revisions of `chain` up to `target`, clean (`stamp`, adoption).
pub(super) async fn record_prefix(
    db: &Db,
    chain: Chain,
    target: Option<usize>,
    recorded_by: &str,
    run_id: &str,
) -> Result<(), MigrateError> {
    let mut tx = db.begin_write().await?;
    on_tx!(&mut tx, conn => {
        sqlx::query("DELETE FROM flowkey_versions").execute(&mut **conn).await?;
        for (index, revision) in chain.0.iter().enumerate() {
            if target.is_none_or(|target| index > target) {
                break;
            }
            let now = DbTime::now();
            sqlx::query(
                "INSERT INTO flowkey_versions (revision, position, checksum, dirty, direction, \
                 steps_done, recorded_by, run_id, started_at, applied_at) \
                 VALUES ($1, $2, $3, $4, 'up', $5, $6, $7, $8, $9)",
            )
            .bind(revision.id)
            .bind(index as i64)
            .bind(checksum(revision))
            .bind(false)
            .bind(revision.up.len() as i64)
            .bind(recorded_by)
            .bind(run_id)
            .bind(now)
            .bind(now)
            .execute(&mut **conn)
            .await?;
        }
    });
    tx.commit().await?;
    notify_servers(db, "").await;
    Ok(())
}

const CREATE_VERSIONS_SQLITE: &str = "\
CREATE TABLE IF NOT EXISTS flowkey_versions (
    revision     TEXT PRIMARY KEY,
    position     INTEGER NOT NULL,
    checksum     TEXT NOT NULL,
    dirty        INTEGER NOT NULL,
    direction    TEXT NOT NULL,
    steps_done   INTEGER NOT NULL,
    recorded_by  TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    applied_at   TEXT
);
";

pub(crate) const CREATE_VERSIONS_POSTGRES: &str = "\
CREATE TABLE IF NOT EXISTS flowkey_versions (
    revision     text PRIMARY KEY,
    position     bigint NOT NULL,
    checksum     text NOT NULL,
    dirty        boolean NOT NULL,
    direction    text NOT NULL,
    steps_done   bigint NOT NULL,
    recorded_by  text NOT NULL,
    run_id       text NOT NULL,
    started_at   timestamptz NOT NULL,
    applied_at   timestamptz
);
";
