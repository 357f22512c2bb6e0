//! The revision runner: takes the deploy lock, knows which revisions a database has
//! (`flowkey_versions`), refuses edited revisions and half-applied states it cannot resume,
//! adopts legacy databases, runs steps and writes every one of them to the audit log.
//!
//! This file holds [`Migrator`] and its commands. The rest, one concern per file:
//! - `session`: a run's deploy lock and its `run` row in the audit log;
//! - `versions`: the book of revisions, `flowkey_versions` (read, mark dirty, set steps done,
//!   mark applied, delete, record a prefix);
//! - `plan`: the chain, the target grammar (`head`, `base`, `+N`, `-N`, ids) and the path;
//! - `steps`: running a plan, revision by revision and step by step;
//! - `sqlite`, `postgres`: how a SQL step runs on each engine (PostgreSQL's one
//!   `retry_on_lock_timeout` serves its transactions and its online DDL statements).
//!
//! The schema a database must have before the runner builds on it is compared in one place,
//! [`crate::migrate::adopt::refuse_foreign_schema`].

mod plan;
mod postgres;
mod session;
mod sqlite;
mod steps;
pub(crate) mod versions;

use std::time::Duration;

use serde::Serialize;

use crate::db::introspect::introspect;
use crate::db::types::DbTime;
use crate::db::{Db, Engine};
use crate::migrate::adopt::refuse_foreign_schema;
use crate::migrate::audit::{read_log, table_exists, AuditEntry, Outcome, Scope, AUDIT_TABLE};
use crate::migrate::checksum::{checksum, matches as checksum_matches, short};
use crate::migrate::offline::render;
use crate::migrate::{revisions, Direction, MigrateError, Revision, RunOptions};

use crate::migrate::offline::PlannedRevision;
use plan::{steps_of, Chain};
use session::Session;
use versions::{read_versions, record_prefix, DirtyRow, State, VersionRow};

pub use versions::{SCHEMA_CHANNEL, VERSIONS_TABLE};

/// Whether `stamp` checks the schema before recording a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StampMode {
    /// Record the revision only if the database's schema is the one the revisions up to it
    /// create (`base`: no user table at all).
    Checked,
    /// Record it without looking (`--force`): the way out of a dirty or edited state after
    /// a human inspected the database. Audit-logged.
    Force,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    /// `upgrade`, `downgrade` or `stamp`.
    pub command: &'static str,
    /// The revision the database was at before the run (`None`: base).
    pub from: Option<&'static str>,
    /// The revision it is at after the run.
    pub to: Option<&'static str>,
    /// Set when the run adopted an existing legacy database at this revision.
    pub adopted: Option<&'static str>,
    pub revisions: Vec<RevisionRun>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RevisionRun {
    pub id: &'static str,
    pub direction: Direction,
    /// Set when the revision was dirty and resumed at this (0-based) step.
    pub resumed_at_step: Option<usize>,
    pub steps: Vec<StepRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepRun {
    pub name: &'static str,
    pub duration_ms: u64,
}

/// One revision as `history` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub id: String,
    pub description: String,
    /// False for a revision recorded in the database that this flowkey does not know.
    pub known: bool,
    pub applied: bool,
    pub applied_at: Option<DbTime>,
    /// How it was recorded: `applied`, `adopted`, `stamped` or `forced`.
    pub recorded_by: Option<String>,
    /// `Some(false)` when the revision was changed after it was applied.
    pub checksum_ok: Option<bool>,
    pub dirty: Option<DirtyState>,
    pub is_current: bool,
    pub is_head: bool,
}

/// A revision that stopped half way.
#[derive(Debug, Clone, Serialize)]
pub struct DirtyState {
    pub direction: String,
    pub steps_done: i64,
    pub steps: usize,
}

/// What an upgrade will do, decided before it writes.
struct UpgradePlan {
    /// Where the database is (the first revision when it is adopted).
    from: Option<usize>,
    adopt: bool,
    target_index: Option<usize>,
    plan: Vec<PlannedRevision>,
}

/// What a downgrade will do, decided before it writes.
struct DowngradePlan {
    position: Option<usize>,
    target_index: Option<usize>,
    plan: Vec<PlannedRevision>,
}

/// Runs revisions on one database.
pub struct Migrator {
    db: Db,
    options: RunOptions,
    revisions: &'static [&'static Revision],
}

/// Upgrades `db` to `target` with every revision flowkey knows.
pub async fn upgrade(
    db: &Db,
    target: &str,
    options: &RunOptions,
) -> Result<RunSummary, MigrateError> {
    Migrator::new(db.clone(), options.clone())
        .upgrade(target)
        .await
}

impl Migrator {
    pub fn new(db: Db, options: RunOptions) -> Self {
        Self::with_revisions(db, options, revisions::all())
    }

    /// A runner over another revision chain (tests).
    pub fn with_revisions(
        db: Db,
        options: RunOptions,
        revisions: &'static [&'static Revision],
    ) -> Self {
        Self {
            db,
            options,
            revisions,
        }
    }

    /// Applies revisions up to `target`: `head`, `+N`, or a revision id. A database with the
    /// legacy schema and no record of revisions is adopted at the first revision first.
    pub async fn upgrade(&self, target: &str) -> Result<RunSummary, MigrateError> {
        refuse_transaction_pooler(&self.db).await?;
        if !self.has_bookkeeping().await? {
            self.plan_upgrade(target).await?;
        }
        let session = Session::open(&self.db, &self.options, "upgrade", target)
            .await
            .map_err(connection_lost)?;
        let mut relative = None;
        let result = self.upgrade_locked(&session, target, &mut relative).await;
        RelativeTarget::name_in_error(session.close(result).await, relative)
    }

    /// Reverts revisions down to `target`: `-N`, `base`, or a revision id (which stays
    /// applied).
    pub async fn downgrade(&self, target: &str) -> Result<RunSummary, MigrateError> {
        refuse_transaction_pooler(&self.db).await?;
        if !self.has_bookkeeping().await? {
            self.plan_downgrade(target).await?;
        }
        let session = Session::open(&self.db, &self.options, "downgrade", target)
            .await
            .map_err(connection_lost)?;
        let mut relative = None;
        let result = self.downgrade_locked(&session, target, &mut relative).await;
        RelativeTarget::name_in_error(session.close(result).await, relative)
    }

    /// The last fully applied revision; `None` at base (nothing recorded).
    pub async fn current(&self) -> Result<Option<&'static str>, MigrateError> {
        let state = self.read_state().await?;
        Ok(state.current.map(|index| self.revisions[index].id))
    }

    /// The platform's own Alembic revisions (`alembic_version`, one row per head), when that
    /// table exists in the database's schema; flowkey only reads it, never writes it.
    pub async fn alembic_revisions(&self) -> Result<Option<Vec<String>>, MigrateError> {
        if !table_exists(&self.db, "alembic_version").await? {
            return Ok(None);
        }
        let rows: Vec<String> = match &self.db {
            Db::Sqlite(pool) => {
                sqlx::query_scalar(
                    "SELECT CAST(version_num AS TEXT) FROM alembic_version ORDER BY 1",
                )
                .fetch_all(pool)
                .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_scalar("SELECT version_num::text FROM alembic_version ORDER BY 1")
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(Some(rows))
    }

    /// Every revision this flowkey knows, oldest first, with what the database records about
    /// it; then any recorded revision this flowkey does not know.
    pub async fn history(&self) -> Result<Vec<HistoryEntry>, MigrateError> {
        let rows = read_versions(&self.db).await?;
        // Unknown records are listed, not refused: history is how one finds them.
        let known: Vec<VersionRow> = rows
            .iter()
            .filter(|row| self.chain().index_of(&row.revision).is_some())
            .cloned()
            .collect();
        let state = State::resolve(self.chain(), &known)?;
        let head = self.chain().head().ok();
        let mut entries = Vec::new();
        for (index, revision) in self.revisions.iter().enumerate() {
            let row = rows.iter().find(|row| row.revision == revision.id);
            entries.push(HistoryEntry {
                id: revision.id.into(),
                description: revision.description.into(),
                known: true,
                applied: row.is_some_and(|row| !row.dirty),
                applied_at: row.and_then(|row| row.applied_at),
                recorded_by: row.map(|row| row.recorded_by.clone()),
                checksum_ok: row.map(|row| checksum_matches(revision, &row.checksum)),
                dirty: row.filter(|row| row.dirty).map(|row| DirtyState {
                    direction: row.direction.clone(),
                    steps_done: row.steps_done,
                    steps: steps_of(revision, row.direction()).len(),
                }),
                is_current: state.current == Some(index),
                is_head: head == Some(index),
            });
        }
        for row in rows
            .iter()
            .filter(|row| self.chain().index_of(&row.revision).is_none())
        {
            entries.push(HistoryEntry {
                id: row.revision.clone(),
                description: String::new(),
                known: false,
                applied: !row.dirty,
                applied_at: row.applied_at,
                recorded_by: Some(row.recorded_by.clone()),
                checksum_ok: None,
                dirty: None,
                is_current: false,
                is_head: false,
            });
        }
        Ok(entries)
    }

    /// Records the database as being at `target` (`base`, `head` or an id) without running
    /// any step. [`StampMode::Checked`] first proves the schema is the one the revisions up
    /// to `target` create; [`StampMode::Force`] does not look.
    pub async fn stamp(&self, target: &str, mode: StampMode) -> Result<RunSummary, MigrateError> {
        refuse_transaction_pooler(&self.db).await?;
        if !self.has_bookkeeping().await? {
            self.plan_stamp(target, mode).await?;
        }
        let session = Session::open(&self.db, &self.options, "stamp", target).await?;
        let result = self.stamp_locked(&session, target, mode).await;
        session.close(result).await
    }

    /// The SQL a run from `from` (`None`: base) to `target` would issue, as a script with
    /// comments; runs nothing (see [`offline_sql`]).
    pub fn offline_sql(
        &self,
        engine: Engine,
        from: Option<&str>,
        target: &str,
        direction: Direction,
    ) -> Result<String, MigrateError> {
        offline_sql(self.revisions, engine, from, target, direction)
    }

    /// The last `limit` audit log rows, oldest first.
    pub async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, MigrateError> {
        read_log(&self.db, limit).await
    }
}

/// The SQL a run over `revisions` from `from` (`None` or `base`: an empty database) to
/// `target` would issue on `engine`, as a commented script. Needs no database: `upgrade --sql
/// --engine postgres` prints it anywhere.
pub fn offline_sql(
    revisions: &'static [&'static Revision],
    engine: Engine,
    from: Option<&str>,
    target: &str,
    direction: Direction,
) -> Result<String, MigrateError> {
    let chain = Chain(revisions);
    let current = match from {
        None => None,
        Some(from) => chain.resolve_exact(from)?,
    };
    let target_index = match direction {
        Direction::Up => chain.resolve_up(target, current)?,
        Direction::Down => chain.resolve_down(target, current)?,
    };
    let plan = chain.plan_path(current, target_index, direction, None);
    Ok(render(
        engine,
        revisions,
        current.map(|index| revisions[index].id),
        target_index.map(|index| revisions[index].id),
        &plan,
    ))
}

/// A relative target (`-1`, `+2`) counts from wherever the database is when the run starts,
/// so running the same command again after an interruption that came once the run had
/// recorded a revision goes further than asked. The revision it resolved to is logged before
/// anything runs and returned, so that an error can name the target to resume with; `None`
/// for a target that names a revision.
fn resolve_relative(
    revisions: &'static [&'static Revision],
    command: &'static str,
    target: &str,
    resolved: Option<usize>,
) -> Option<RelativeTarget> {
    if !target.starts_with(['-', '+']) {
        return None;
    }
    let resolved = resolved.map_or("base", |index| revisions[index].id);
    tracing::info!(
        "{command} {target} resolves to {resolved}; to resume an interrupted run, name it: \
         `flowkey {command} {resolved}`"
    );
    Some(RelativeTarget {
        command,
        target: target.to_owned(),
        resolved,
    })
}

/// What a run with a relative target resolved it to (see [`resolve_relative`]).
struct RelativeTarget {
    command: &'static str,
    target: String,
    resolved: &'static str,
}

impl RelativeTarget {
    /// A closed run's outcome; its error, when the target was relative, with the revision to
    /// resume with: "rerun the same command" would count the target again from where the run
    /// stopped.
    fn name_in_error(
        closed: Result<RunSummary, MigrateError>,
        relative: Option<RelativeTarget>,
    ) -> Result<RunSummary, MigrateError> {
        closed
            .map_err(connection_lost)
            .map_err(|err| match relative {
                Some(relative) => MigrateError::RelativeTargetInterrupted {
                    source: Box::new(err),
                    command: relative.command,
                    target: relative.target,
                    resolved: relative.resolved,
                },
                None => err,
            })
    }
}

/// Every command that takes the deploy lock refuses a transaction pooler first, before its
/// read-only plan: through one, even the plan's named statements collide, and the lock's
/// session would not be the runner's (see `db::pooler`).
async fn refuse_transaction_pooler(db: &Db) -> Result<(), MigrateError> {
    if db.behind_transaction_pooler().await? {
        return Err(MigrateError::BehindTransactionPooler);
    }
    Ok(())
}

/// A bare driver error that means the database went away (a restart, a cut connection)
/// says so and says what to do; outside a step it would otherwise name nothing the operator
/// can act on. Errors of a step already name the step.
fn connection_lost(err: MigrateError) -> MigrateError {
    match err {
        MigrateError::Sql(inner) if crate::db::errors::database_unavailable(&inner) => {
            MigrateError::ConnectionLost {
                reason: inner.to_string(),
            }
        }
        other => other,
    }
}

impl Migrator {
    fn chain(&self) -> Chain {
        Chain(self.revisions)
    }

    async fn read_state(&self) -> Result<State, MigrateError> {
        let rows = read_versions(&self.db).await?;
        State::resolve(self.chain(), &rows)
    }

    /// Refuses any recorded revision whose definition changed since it was recorded.
    fn check_checksums(&self, state: &State) -> Result<(), MigrateError> {
        for &(index, ref row) in &state.rows {
            // A revision that stopped before finishing its first step up changed nothing
            // (steps are re-runnable), so it may be fixed before the rerun.
            if row.dirty && row.direction == "up" && row.steps_done == 0 {
                continue;
            }
            let expected = checksum(self.revisions[index]);
            if !checksum_matches(self.revisions[index], &row.checksum) {
                return Err(MigrateError::ChecksumMismatch {
                    revision: row.revision.clone(),
                    in_database: short(&row.checksum).into(),
                    in_flowkey: short(&expected).into(),
                });
            }
        }
        Ok(())
    }

    /// Everything an upgrade decides before it writes: the state, whether it adopts a legacy
    /// database, the target and the path. Read-only, so that a refusal changes nothing; run
    /// again under the deploy lock before anything is written.
    async fn plan_upgrade(&self, target: &str) -> Result<UpgradePlan, MigrateError> {
        let chain = self.chain();
        let mut state = self.read_state().await?;
        self.check_checksums(&state)?;
        let from = state.current;
        let adopt = state.rows.is_empty() && self.adoptable().await?;
        if adopt {
            // What recording the adoption will make of the book.
            state.current = Some(0);
        }
        let target_index = chain.resolve_up(target, state.current)?;
        let mut resume = None;
        if let Some(dirty) = &state.dirty {
            let revision = self.revisions[dirty.index];
            if Some(dirty.index) != state.current.map_or(Some(0), |at| Some(at + 1)) {
                return Err(
                    self.dirty_error(dirty, "it does not follow the last applied revision".into())
                );
            }
            let reachable = target_index.is_some_and(|target| target >= dirty.index);
            if dirty.direction != Direction::Up || !reachable {
                return Err(self.dirty_error(
                    dirty,
                    if dirty.direction != Direction::Up {
                        "cannot be resumed by an upgrade".into()
                    } else {
                        format!("the target {target} comes before it")
                    },
                ));
            }
            resume = Some(dirty.steps_done.min(revision.up.len()));
        }
        if state.current.is_some() && target_index < state.current {
            let current = state.current.map(|index| self.revisions[index].id);
            return Err(MigrateError::UnreachableTarget {
                target: target.into(),
                direction: "upgrade",
                reason: format!(
                    "the database is already at {}; use `flowkey downgrade {target}`",
                    current.unwrap_or("base")
                ),
            });
        }
        let plan = chain.plan_path(state.current, target_index, Direction::Up, resume);
        if !plan.is_empty() && resume.is_none() && !adopt {
            if let Some(current) = state.current {
                self.refuse_drift(current).await?;
            }
        }
        let backfills = plan
            .iter()
            .any(|planned| crate::migrate::flow::backfill::updates_flow_ids(planned.revision));
        if backfills && !self.options.allow_update_triggers {
            let triggers =
                crate::migrate::flow::dependents::platform_update_triggers(&self.db).await?;
            if !triggers.is_empty() {
                return Err(MigrateError::PlatformUpdateTriggers {
                    triggers: triggers.join(", "),
                });
            }
        }
        Ok(UpgradePlan {
            from: if adopt { Some(0) } else { from },
            adopt,
            target_index,
            plan,
        })
    }

    async fn upgrade_locked(
        &self,
        session: &Session,
        target: &str,
        relative: &mut Option<RelativeTarget>,
    ) -> Result<RunSummary, MigrateError> {
        let planned = self.plan_upgrade(target).await?;
        if !planned.plan.is_empty() {
            *relative = resolve_relative(self.revisions, "upgrade", target, planned.target_index);
        }
        let adopted = if planned.adopt {
            Some(self.record_adoption(session).await?)
        } else {
            None
        };
        let revisions = self.run_plan(session, &planned.plan).await?;
        Ok(RunSummary {
            run_id: session.audit.run_id.clone(),
            command: "upgrade",
            from: planned.from.map(|index| self.revisions[index].id),
            to: planned.target_index.map(|index| self.revisions[index].id),
            adopted,
            revisions,
            duration_ms: 0,
        })
    }

    /// What a downgrade decides before it writes (read-only, see [`Self::plan_upgrade`]):
    /// the position, the target and the path.
    async fn plan_downgrade(&self, target: &str) -> Result<DowngradePlan, MigrateError> {
        let state = self.read_state().await?;
        self.check_checksums(&state)?;
        // A revision whose downgrade stopped half way still counts as (partly) there.
        let mut position = state.current;
        let mut resume = None;
        if let Some(dirty) = &state.dirty {
            if dirty.direction != Direction::Down {
                return Err(self.dirty_error(dirty, "cannot be resumed by a downgrade".into()));
            }
            position = Some(dirty.index);
            resume = Some(dirty.steps_done.min(self.revisions[dirty.index].down.len()));
        }
        let target_index = self.chain().resolve_down(target, position)?;
        if let Some(dirty) = &state.dirty {
            if target_index.is_some_and(|target| target >= dirty.index) {
                return Err(
                    self.dirty_error(dirty, format!("the target {target} does not revert it"))
                );
            }
        }
        let plan = self
            .chain()
            .plan_path(position, target_index, Direction::Down, resume);
        // The flow_id columns the reverted revisions added go with them: anything of the
        // platform's that depends on one stops the downgrade here, before its first step.
        let dropped: Vec<&crate::migrate::flow::linked::LinkedTable> = plan
            .iter()
            .flat_map(|planned| crate::migrate::flow::linked::linked_since(planned.revision.id))
            .collect();
        if !dropped.is_empty() {
            let objects =
                crate::migrate::flow::dependents::dependents_on_added_columns(&self.db, &dropped)
                    .await?;
            if !objects.is_empty() {
                return Err(MigrateError::DependentObjects { objects });
            }
        }
        let legacy = revisions::legacy::LEGACY.id;
        if plan.iter().any(|planned| planned.revision.id == legacy) {
            self.refuse_dropping_the_platforms_tables(legacy).await?;
        }
        Ok(DowngradePlan {
            position,
            target_index,
            plan,
        })
    }

    async fn downgrade_locked(
        &self,
        session: &Session,
        target: &str,
        relative: &mut Option<RelativeTarget>,
    ) -> Result<RunSummary, MigrateError> {
        let planned = self.plan_downgrade(target).await?;
        if !planned.plan.is_empty() {
            *relative = resolve_relative(self.revisions, "downgrade", target, planned.target_index);
        }
        let revisions = self.run_plan(session, &planned.plan).await?;
        Ok(RunSummary {
            run_id: session.audit.run_id.clone(),
            command: "downgrade",
            from: planned.position.map(|index| self.revisions[index].id),
            to: planned.target_index.map(|index| self.revisions[index].id),
            adopted: None,
            revisions,
            duration_ms: 0,
        })
    }

    /// Reverting `legacy` drops the platform's tables: refused when flowkey adopted them (the
    /// platform made them) or when they hold a row. `downgrade legacy` is as far down as a
    /// migration goes; below it only empty tables flowkey created itself (a seeded test
    /// database, `upgrade legacy` on an empty one) are dropped. Reads only.
    async fn refuse_dropping_the_platforms_tables(
        &self,
        legacy: &'static str,
    ) -> Result<(), MigrateError> {
        let adopted = read_versions(&self.db)
            .await?
            .iter()
            .any(|row| row.revision == legacy && row.recorded_by == "adopted");
        if adopted {
            return Err(MigrateError::WouldDropPlatformTables {
                why: "flowkey adopted them: the platform created them".to_owned(),
            });
        }
        let mut rows = 0i64;
        for table in revisions::legacy::LEGACY_TABLES {
            let count: i64 = crate::on_pool!(&self.db, pool => {
                sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                    .fetch_one(pool)
                    .await?
            });
            rows += count;
        }
        if rows > 0 {
            return Err(MigrateError::WouldDropPlatformTables {
                why: format!("they hold {rows} rows"),
            });
        }
        Ok(())
    }

    async fn stamp_locked(
        &self,
        session: &Session,
        target: &str,
        mode: StampMode,
    ) -> Result<RunSummary, MigrateError> {
        let (rows, from, target_index) = self.plan_stamp(target, mode).await?;
        let target_id = target_index.map(|index| self.revisions[index].id);
        let recorded_by = match (mode, from, target_index) {
            (StampMode::Force, ..) => "forced",
            (StampMode::Checked, None, Some(0)) => "adopted",
            (StampMode::Checked, ..) => "stamped",
        };
        record_prefix(
            &self.db,
            self.chain(),
            target_index,
            recorded_by,
            &session.audit.run_id,
        )
        .await?;
        session
            .audit
            .event(
                Scope {
                    revision: target_id,
                    ..Scope::default()
                },
                if recorded_by == "adopted" {
                    "adopted"
                } else {
                    "stamped"
                },
                Outcome::Ok,
                None,
                None,
                serde_json::json!({
                    "target": target_id.unwrap_or("base"),
                    "mode": match mode { StampMode::Checked => "checked", StampMode::Force => "force" },
                    "previous": rows.iter().map(|row| serde_json::json!({
                        "revision": row.revision,
                        "dirty": row.dirty,
                        "direction": row.direction,
                        "steps_done": row.steps_done,
                        "checksum": row.checksum,
                    })).collect::<Vec<_>>(),
                }),
            )
            .await?;
        Ok(RunSummary {
            run_id: session.audit.run_id.clone(),
            command: "stamp",
            from: from.map(|index| self.revisions[index].id),
            to: target_id,
            adopted: (recorded_by == "adopted").then_some(target_id).flatten(),
            revisions: Vec::new(),
            duration_ms: 0,
        })
    }

    /// What a stamp decides before it writes (read-only, see [`Self::plan_upgrade`]): the
    /// book as it is, the revision it is at and the target, checked in [`StampMode::Checked`].
    async fn plan_stamp(
        &self,
        target: &str,
        mode: StampMode,
    ) -> Result<(Vec<VersionRow>, Option<usize>, Option<usize>), MigrateError> {
        let rows = read_versions(&self.db).await?;
        let from = match mode {
            StampMode::Checked => State::resolve(self.chain(), &rows)?.current,
            // Forcing is the way out of unknown or edited records: do not interpret them.
            StampMode::Force => State::resolve(self.chain(), &rows)
                .ok()
                .and_then(|state| state.current),
        };
        let target_index = self.chain().resolve_exact(target)?;
        let target_id = target_index.map(|index| self.revisions[index].id);
        if mode == StampMode::Checked {
            let actual = introspect(&self.db).await?;
            refuse_foreign_schema(
                &self.db,
                &actual,
                &self.revisions[..target_index.map_or(0, |i| i + 1)],
                self.revisions,
                target_id.unwrap_or("base"),
            )
            .await?;
        }
        Ok((rows, from, target_index))
    }

    /// Refuses to build on a schema that is not what the recorded revision created (a column
    /// added or dropped by hand since): the next revision's SQL assumes that schema, and a
    /// foreign shape must be looked at by a person, not migrated over.
    async fn refuse_drift(&self, current: usize) -> Result<(), MigrateError> {
        let mut actual = introspect(&self.db).await?;
        // An INVALID index is the leftover of an interrupted `CREATE INDEX CONCURRENTLY`, not
        // schema: the online DDL step that builds it drops and rebuilds it.
        for table in actual.tables.values_mut() {
            table.indexes.retain(|_, index| index.valid);
        }
        refuse_foreign_schema(
            &self.db,
            &actual,
            &self.revisions[..=current],
            self.revisions,
            self.revisions[current].id,
        )
        .await
    }

    /// With no revision recorded: a database without user tables starts from base (false);
    /// one whose migrated tables are what the first revision creates is to be recorded at it
    /// (true); anything else is refused, naming what is incompatible. Read-only.
    async fn adoptable(&self) -> Result<bool, MigrateError> {
        let actual = introspect(&self.db).await?;
        if actual.is_empty() {
            return Ok(false);
        }
        let Some(first) = self.revisions.first() else {
            return Ok(false);
        };
        refuse_foreign_schema(
            &self.db,
            &actual,
            &self.revisions[..1],
            self.revisions,
            first.id,
        )
        .await?;
        Ok(true)
    }

    /// Records the adoption that [`Self::adoptable`] allowed.
    async fn record_adoption(&self, session: &Session) -> Result<&'static str, MigrateError> {
        let first = self.revisions[0];
        record_prefix(
            &self.db,
            self.chain(),
            Some(0),
            "adopted",
            &session.audit.run_id,
        )
        .await?;
        session
            .audit
            .event(
                Scope {
                    revision: Some(first.id),
                    ..Scope::default()
                },
                "adopted",
                Outcome::Ok,
                None,
                None,
                serde_json::json!({ "reason": "migrated tables compatible with the revision's" }),
            )
            .await?;
        tracing::info!("adopted the existing database at revision {}", first.id);
        Ok(first.id)
    }

    /// Whether flowkey's audit log exists: then a refusal is recorded in it (under the
    /// deploy lock, as every run); before, a command first decides read-only, so that a
    /// refused one leaves no table, sequence or row behind.
    async fn has_bookkeeping(&self) -> Result<bool, MigrateError> {
        Ok(table_exists(&self.db, AUDIT_TABLE).await?)
    }

    fn dirty_error(&self, dirty: &DirtyRow, reason: String) -> MigrateError {
        let revision = self.revisions[dirty.index];
        MigrateError::Dirty {
            revision: revision.id.into(),
            before: dirty
                .index
                .checked_sub(1)
                .map_or("base", |index| self.revisions[index].id)
                .into(),
            direction: dirty.direction.to_string(),
            steps_done: dirty.steps_done as i64,
            steps: steps_of(revision, dirty.direction).len(),
            reason,
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
