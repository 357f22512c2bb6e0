//! The revision runner: takes the deploy lock, knows which revisions a database has
//! (`flowkey_versions`), refuses edited revisions and half-applied states it cannot resume,
//! adopts legacy databases, runs steps and writes every one of them to the audit log.
//!
//! `flowkey_versions` holds one row per revision that is applied or being applied/reverted:
//! `revision` (id, primary key), `position` (index in the chain), `checksum` (see
//! [`checksum`]), `dirty` (true while its steps run), `direction` (`up`/`down` of the run
//! that marked it), `steps_done` (steps of that direction completed), `recorded_by`
//! (`applied`, `adopted`, `stamped`, `forced`), `run_id`, `started_at`, `applied_at`. A
//! revision reverted completely loses its row. The current revision is the last clean row
//! in chain order; at most one row is dirty.
//!
//! How each step runs:
//! - SQLite, `Sql` and `OnlineDdl`: the whole script in one transaction, with `steps_done`
//!   updated in it, after a catalog read that refreshes a stale schema cache. A script with
//!   a `PRAGMA foreign_keys = OFF` statement (a table rebuild) runs with foreign keys off
//!   and `PRAGMA foreign_key_check` before the commit.
//! - PostgreSQL `Sql`: the script in one transaction under `SET LOCAL lock_timeout`, retried
//!   whole after a lock timeout.
//! - PostgreSQL `OnlineDdl`: statement by statement outside any transaction (see
//!   [`run_online_ddl`]).
//! - `Code`: the function, with an audit sink; `steps_done` is updated after it returns.

use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::{PgConnection, Row};

use crate::db::introspect::introspect;
use crate::db::types::DbTime;
use crate::db::{on_pool, on_tx, Db, Engine};
use crate::migrate::adopt::reference_schema;
use crate::migrate::audit::{
    ensure_table as ensure_audit_table, read_log, table_exists, AuditEntry, AuditLog, Identity,
    OpenSpan, Outcome, Scope, StepAudit,
};
use crate::migrate::checksum::{checksum, matches as checksum_matches, short};
use crate::migrate::lock::DeployLock;
use crate::migrate::offline::{render, split_statements, PlannedRevision};
use crate::migrate::{
    revisions, Action, Direction, MigrateError, Revision, RunOptions, StepContext,
};

/// The table of applied revisions; never dropped by a downgrade.
pub const VERSIONS_TABLE: &str = "flowkey_versions";

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
        let session = self
            .open_session("upgrade", target)
            .await
            .map_err(connection_lost)?;
        let result = self.upgrade_locked(&session, target).await;
        session.close(result).await.map_err(connection_lost)
    }

    /// Reverts revisions down to `target`: `-N`, `base`, or a revision id (which stays
    /// applied).
    pub async fn downgrade(&self, target: &str) -> Result<RunSummary, MigrateError> {
        let session = self
            .open_session("downgrade", target)
            .await
            .map_err(connection_lost)?;
        let result = self.downgrade_locked(&session, target).await;
        session.close(result).await.map_err(connection_lost)
    }

    /// The last fully applied revision; `None` at base (nothing recorded).
    pub async fn current(&self) -> Result<Option<&'static str>, MigrateError> {
        let state = self.read_state().await?;
        Ok(state.current.map(|index| self.revisions[index].id))
    }

    /// Every revision this flowkey knows, oldest first, with what the database records about
    /// it; then any recorded revision this flowkey does not know.
    pub async fn history(&self) -> Result<Vec<HistoryEntry>, MigrateError> {
        let rows = read_versions(&self.db).await?;
        // Unknown records are listed, not refused: history is how one finds them.
        let known: Vec<VersionRow> = rows
            .iter()
            .filter(|row| self.index_of(&row.revision).is_some())
            .cloned()
            .collect();
        let state = self.state_of(&known)?;
        let head = self.revisions.len().checked_sub(1);
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
                    steps: steps_of(revision, parse_direction(&row.direction)).len(),
                }),
                is_current: state.current == Some(index),
                is_head: head == Some(index),
            });
        }
        for row in rows
            .iter()
            .filter(|row| self.index_of(&row.revision).is_none())
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
        let session = self.open_session("stamp", target).await?;
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
        None | Some("base") => None,
        Some("head") => Some(chain.head()?),
        Some(id) => Some(chain.index_of(id).ok_or_else(|| chain.unknown(id))?),
    };
    let target_index = match direction {
        Direction::Up => chain.resolve_up(target, current)?,
        Direction::Down => chain.resolve_down(target, current)?,
    };
    let plan = plan_path(revisions, current, target_index, direction, None);
    Ok(render(
        engine,
        current.map(|index| revisions[index].id),
        target_index.map(|index| revisions[index].id),
        &plan,
    ))
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

/// A run holding the deploy lock, with its audit row open.
struct Session {
    command: &'static str,
    target: String,
    lock: DeployLock,
    audit: AuditLog,
    run_span: OpenSpan,
    started: Instant,
}

impl Session {
    /// Records how the run ended and gives the lock back.
    async fn close(
        self,
        result: Result<RunSummary, MigrateError>,
    ) -> Result<RunSummary, MigrateError> {
        let (outcome, error) = match &result {
            Ok(_) => (Outcome::Ok, None),
            Err(
                err @ (MigrateError::ForeignSchema { .. }
                | MigrateError::Dirty { .. }
                | MigrateError::ChecksumMismatch { .. }
                | MigrateError::UnknownAppliedRevision { .. }
                | MigrateError::UnreachableTarget { .. }
                | MigrateError::UnknownTarget { .. }),
            ) => (Outcome::Refused, Some(err.to_string())),
            Err(err) => (Outcome::Failed, Some(err.to_string())),
        };
        let details = result.as_ref().ok().map(|summary| {
            serde_json::json!({
                "command": self.command,
                "target": self.target,
                "from": summary.from,
                "to": summary.to,
                "adopted": summary.adopted,
                "revisions": summary.revisions.iter().map(|run| run.id).collect::<Vec<_>>(),
            })
        });
        let recorded = self
            .audit
            .finish(&self.run_span, outcome, error.as_deref(), details)
            .await;
        let released = self.lock.release().await;
        let mut summary = result?;
        recorded?;
        released?;
        summary.duration_ms = millis(self.started.elapsed());
        Ok(summary)
    }
}

/// What `flowkey_versions` says, resolved against the chain.
struct State {
    /// Index of the last fully applied revision.
    current: Option<usize>,
    /// The revision that stopped half way, if any.
    dirty: Option<DirtyRow>,
    rows: Vec<VersionRow>,
}

struct DirtyRow {
    index: usize,
    direction: Direction,
    steps_done: usize,
}

#[derive(Debug, Clone)]
struct VersionRow {
    revision: String,
    checksum: String,
    dirty: bool,
    direction: String,
    steps_done: i64,
    recorded_by: String,
    applied_at: Option<DbTime>,
}

impl Migrator {
    async fn open_session(
        &self,
        command: &'static str,
        target: &str,
    ) -> Result<Session, MigrateError> {
        let started = Instant::now();
        let identity = Identity::of_this_process();
        let run_id = uuid::Uuid::new_v4().to_string();
        let lock =
            DeployLock::acquire(&self.db, &run_id, &identity, self.options.lock_wait).await?;
        let prepared = async {
            ensure_versions_table(&self.db).await?;
            ensure_audit_table(&self.db).await?;
            let audit = AuditLog::new(self.db.clone(), run_id.clone(), identity);
            let run_span = audit
                .start(
                    Scope::default(),
                    "run",
                    serde_json::json!({ "command": command, "target": target }),
                )
                .await?;
            if let Some(stale) = &lock.taken_over_from {
                audit
                    .event(
                        Scope::default(),
                        "lock_taken_over",
                        Outcome::Info,
                        None,
                        None,
                        serde_json::json!({ "previous_holder": stale }),
                    )
                    .await?;
            }
            Ok::<_, MigrateError>((audit, run_span))
        }
        .await;
        match prepared {
            Ok((audit, run_span)) => Ok(Session {
                command,
                target: target.to_owned(),
                lock,
                audit,
                run_span,
                started,
            }),
            Err(err) => {
                let _ = lock.release().await;
                Err(err)
            }
        }
    }

    async fn read_state(&self) -> Result<State, MigrateError> {
        let rows = read_versions(&self.db).await?;
        self.state_of(&rows)
    }

    fn state_of(&self, rows: &[VersionRow]) -> Result<State, MigrateError> {
        let mut current = None;
        let mut dirty = None;
        for row in rows {
            let Some(index) = self.index_of(&row.revision) else {
                return Err(MigrateError::UnknownAppliedRevision {
                    revision: row.revision.clone(),
                });
            };
            if row.dirty {
                dirty = Some(DirtyRow {
                    index,
                    direction: parse_direction(&row.direction),
                    steps_done: usize::try_from(row.steps_done).unwrap_or(0),
                });
            } else if current.is_none_or(|at| index > at) {
                current = Some(index);
            }
        }
        Ok(State {
            current,
            dirty,
            rows: rows.to_vec(),
        })
    }

    /// Refuses any recorded revision whose definition changed since it was recorded.
    fn check_checksums(&self, state: &State) -> Result<(), MigrateError> {
        for row in &state.rows {
            let Some(index) = self.index_of(&row.revision) else {
                continue;
            };
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

    async fn upgrade_locked(
        &self,
        session: &Session,
        target: &str,
    ) -> Result<RunSummary, MigrateError> {
        let mut state = self.read_state().await?;
        self.check_checksums(&state)?;
        let mut adopted = None;
        if state.rows.is_empty() {
            adopted = self.adopt_if_legacy(session).await?;
            if adopted.is_some() {
                state = self.read_state().await?;
            }
        }
        let target_index = self.resolve_up(target, state.current)?;
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
        let plan = plan_path(
            self.revisions,
            state.current,
            target_index,
            Direction::Up,
            resume,
        );
        if !plan.is_empty() && resume.is_none() && adopted.is_none() {
            if let Some(current) = state.current {
                self.refuse_drift(current).await?;
            }
        }
        let revisions = self.run_plan(session, &plan).await?;
        Ok(RunSummary {
            run_id: session.audit.run_id.clone(),
            command: "upgrade",
            from: state.current.map(|index| self.revisions[index].id),
            to: target_index.map(|index| self.revisions[index].id),
            adopted,
            revisions,
            duration_ms: 0,
        })
    }

    async fn downgrade_locked(
        &self,
        session: &Session,
        target: &str,
    ) -> Result<RunSummary, MigrateError> {
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
        let target_index = self.resolve_down(target, position)?;
        if let Some(dirty) = &state.dirty {
            if target_index.is_some_and(|target| target >= dirty.index) {
                return Err(
                    self.dirty_error(dirty, format!("the target {target} does not revert it"))
                );
            }
        }
        let plan = plan_path(
            self.revisions,
            position,
            target_index,
            Direction::Down,
            resume,
        );
        let revisions = self.run_plan(session, &plan).await?;
        Ok(RunSummary {
            run_id: session.audit.run_id.clone(),
            command: "downgrade",
            from: position.map(|index| self.revisions[index].id),
            to: target_index.map(|index| self.revisions[index].id),
            adopted: None,
            revisions,
            duration_ms: 0,
        })
    }

    async fn stamp_locked(
        &self,
        session: &Session,
        target: &str,
        mode: StampMode,
    ) -> Result<RunSummary, MigrateError> {
        let rows = read_versions(&self.db).await?;
        let from = match mode {
            StampMode::Checked => self.state_of(&rows)?.current,
            // Forcing is the way out of unknown or edited records: do not interpret them.
            StampMode::Force => self.state_of(&rows).ok().and_then(|state| state.current),
        };
        let target_index = match target {
            "base" => None,
            "head" => Some(self.head()?),
            id => Some(self.index_of(id).ok_or_else(|| self.unknown(id))?),
        };
        let target_id = target_index.map(|index| self.revisions[index].id);
        if mode == StampMode::Checked {
            let expected = reference_schema(
                &self.db,
                &self.revisions[..target_index.map_or(0, |i| i + 1)],
            )
            .await?;
            let actual = introspect(&self.db).await?;
            let differences = actual.diff(&expected);
            if !differences.is_empty() {
                return Err(MigrateError::ForeignSchema {
                    revision: target_id.unwrap_or("base").into(),
                    count: differences.len(),
                    differences,
                });
            }
        }
        let recorded_by = match (mode, from, target_index) {
            (StampMode::Force, ..) => "forced",
            (StampMode::Checked, None, Some(0)) => "adopted",
            (StampMode::Checked, ..) => "stamped",
        };
        self.record_prefix(target_index, recorded_by, &session.audit.run_id)
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

    /// Refuses to build on a schema that is not what the recorded revision created (a column
    /// added or dropped by hand since): the next revision's SQL assumes that schema, and a
    /// foreign shape must be looked at by a person, not migrated over.
    async fn refuse_drift(&self, current: usize) -> Result<(), MigrateError> {
        let expected = reference_schema(&self.db, &self.revisions[..=current]).await?;
        let mut actual = introspect(&self.db).await?;
        // An INVALID index is the leftover of an interrupted `CREATE INDEX CONCURRENTLY`, not
        // schema: the online DDL step that builds it drops and rebuilds it.
        for table in actual.tables.values_mut() {
            table.indexes.retain(|_, index| index.valid);
        }
        let differences = actual.diff(&expected);
        if differences.is_empty() {
            return Ok(());
        }
        Err(MigrateError::ForeignSchema {
            revision: self.revisions[current].id.into(),
            count: differences.len(),
            differences,
        })
    }

    /// With no revision recorded: a database without user tables starts from base; one whose
    /// schema is exactly the first revision's is recorded at it; anything else is refused.
    async fn adopt_if_legacy(
        &self,
        session: &Session,
    ) -> Result<Option<&'static str>, MigrateError> {
        let actual = introspect(&self.db).await?;
        if actual.is_empty() {
            return Ok(None);
        }
        let Some(first) = self.revisions.first() else {
            return Ok(None);
        };
        let expected = reference_schema(&self.db, &self.revisions[..1]).await?;
        let differences = actual.diff(&expected);
        if !differences.is_empty() {
            return Err(MigrateError::ForeignSchema {
                revision: first.id.into(),
                count: differences.len(),
                differences,
            });
        }
        self.record_prefix(Some(0), "adopted", &session.audit.run_id)
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
                serde_json::json!({ "reason": "schema identical to the revision's" }),
            )
            .await?;
        tracing::info!("adopted the existing database at revision {}", first.id);
        Ok(Some(first.id))
    }

    /// Replaces every version row with the revisions up to `target`, clean.
    async fn record_prefix(
        &self,
        target: Option<usize>,
        recorded_by: &str,
        run_id: &str,
    ) -> Result<(), MigrateError> {
        let mut tx = self.db.begin_write().await?;
        on_tx!(&mut tx, conn => {
            sqlx::query("DELETE FROM flowkey_versions").execute(&mut **conn).await?;
            for (index, revision) in self.revisions.iter().enumerate() {
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
        Ok(())
    }

    async fn run_plan(
        &self,
        session: &Session,
        plan: &[PlannedRevision],
    ) -> Result<Vec<RevisionRun>, MigrateError> {
        let mut runs = Vec::with_capacity(plan.len());
        for planned in plan {
            runs.push(self.run_revision(session, planned).await?);
        }
        Ok(runs)
    }

    async fn run_revision(
        &self,
        session: &Session,
        planned: &PlannedRevision,
    ) -> Result<RevisionRun, MigrateError> {
        let revision = planned.revision;
        let direction = planned.direction;
        let steps = steps_of(revision, direction);
        let audit = &session.audit;
        let scope = Scope {
            revision: Some(revision.id),
            direction: Some(direction),
            step: None,
        };
        let resumed = planned.resuming;
        if resumed {
            tracing::warn!(
                "resuming revision {} ({direction}) at step {} of {}",
                revision.id,
                planned.first_step + 1,
                steps.len()
            );
            audit
                .event(
                    scope,
                    "resumed",
                    Outcome::Info,
                    None,
                    None,
                    serde_json::json!({
                        "steps_done": planned.first_step,
                        "next_step": steps.get(planned.first_step).map(|step| step.name),
                    }),
                )
                .await?;
        }
        if planned.first_step == 0 {
            self.mark_dirty(revision, direction, &audit.run_id).await?;
        }
        tracing::info!("{direction} {}: {}", revision.id, revision.description);
        let span = audit
            .start(
                scope,
                "revision",
                serde_json::json!({ "description": revision.description, "checksum": checksum(revision) }),
            )
            .await?;
        let mut run = RevisionRun {
            id: revision.id,
            direction,
            resumed_at_step: resumed.then_some(planned.first_step),
            steps: Vec::new(),
        };
        for (index, step) in steps.iter().enumerate().skip(planned.first_step) {
            session.lock.ensure_held().await?;
            let step_scope = Scope {
                step: Some(step.name),
                ..scope
            };
            let step_span = audit
                .start(
                    step_scope,
                    "step",
                    serde_json::json!({ "number": index + 1, "of": steps.len(), "kind": kind(&step.action) }),
                )
                .await?;
            tracing::info!("  step {}/{}: {}", index + 1, steps.len(), step.name);
            match self
                .run_step(audit, revision, step, direction, index + 1)
                .await
            {
                Ok(retried) => {
                    let details = retried.map(|retried| {
                        serde_json::json!({
                            "number": index + 1,
                            "of": steps.len(),
                            "kind": kind(&step.action),
                            "attempts": retried.attempts,
                            "lock_wait_ms": millis(retried.lock_wait),
                        })
                    });
                    audit.finish(&step_span, Outcome::Ok, None, details).await?;
                    run.steps.push(StepRun {
                        name: step.name,
                        duration_ms: millis(step_span.elapsed()),
                    });
                }
                Err(err) => {
                    let err = match err {
                        MigrateError::StepFailed { .. } => err,
                        other => MigrateError::StepFailed {
                            revision: revision.id.into(),
                            step: step.name.into(),
                            message: other.to_string(),
                        },
                    };
                    let message = err.to_string();
                    // The step's error is what the operator needs: when the database itself
                    // is gone, recording the failure fails too, and that second error must
                    // not replace the first.
                    let recorded = audit
                        .finish(&step_span, Outcome::Failed, Some(&message), None)
                        .await;
                    if recorded.is_ok() {
                        let _ = audit
                            .finish(&span, Outcome::Failed, Some(&message), None)
                            .await;
                    }
                    return Err(err);
                }
            }
        }
        session.lock.ensure_held().await?;
        match direction {
            Direction::Up => self.mark_applied(revision).await?,
            Direction::Down => self.delete_version(revision).await?,
        }
        audit.finish(&span, Outcome::Ok, None, None).await?;
        Ok(run)
    }

    /// Runs one step and records it done (in the step's own transaction where it has one).
    async fn run_step(
        &self,
        audit: &AuditLog,
        revision: &'static Revision,
        step: &'static crate::migrate::Step,
        direction: Direction,
        steps_done: usize,
    ) -> Result<Option<Retried>, MigrateError> {
        let steps_done = steps_done as i64;
        match (&step.action, &self.db) {
            (Action::Sql(sql) | Action::OnlineDdl(sql), Db::Sqlite(pool)) => {
                let script = sql.for_engine(Engine::Sqlite);
                run_sqlite_script(pool, &script, revision, step, steps_done).await?;
                return Ok(None);
            }
            (Action::Sql(sql), Db::Postgres(pool)) => {
                let script = sql.for_engine(Engine::Postgres);
                let retried =
                    run_postgres_transaction(pool, &script, &self.options, revision, steps_done)
                        .await?;
                return Ok(Some(retried));
            }
            (Action::OnlineDdl(sql), Db::Postgres(pool)) => {
                let mut conn = pool.acquire().await?;
                let scope = Scope {
                    revision: Some(revision.id),
                    direction: Some(direction),
                    step: Some(step.name),
                };
                let script = sql.for_engine(Engine::Postgres);
                let result = run_online_ddl(&mut conn, &script, &self.options, audit, scope).await;
                if result.is_err() {
                    // Its session may still carry our lock_timeout: do not reuse it.
                    conn.close_on_drop();
                }
                result?;
            }
            (Action::Code { run, sql } | Action::Check { run, sql }, _) => {
                let sink = StepAudit {
                    log: audit,
                    revision: revision.id,
                    step: step.name,
                    direction,
                };
                let mut context = StepContext {
                    db: &self.db,
                    options: &self.options,
                    revision: revision.id,
                    step: step.name,
                    table: sql.table(),
                    direction,
                    audit: &sink,
                };
                run(&mut context).await?;
            }
        }
        on_pool!(&self.db, pool => {
            sqlx::query("UPDATE flowkey_versions SET steps_done = $1 WHERE revision = $2")
                .bind(steps_done)
                .bind(revision.id)
                .execute(pool)
                .await?;
        });
        Ok(None)
    }

    async fn mark_dirty(
        &self,
        revision: &'static Revision,
        direction: Direction,
        run_id: &str,
    ) -> Result<(), MigrateError> {
        let position = self.index_of(revision.id).unwrap_or_default() as i64;
        on_pool!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO flowkey_versions (revision, position, checksum, dirty, direction, \
                 steps_done, recorded_by, run_id, started_at, applied_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, 'applied', $6, $7, NULL) \
                 ON CONFLICT (revision) DO UPDATE SET dirty = excluded.dirty, \
                 checksum = excluded.checksum, direction = excluded.direction, steps_done = 0, run_id = excluded.run_id, \
                 started_at = excluded.started_at",
            )
            .bind(revision.id)
            .bind(position)
            .bind(checksum(revision))
            .bind(true)
            .bind(direction.to_string())
            .bind(run_id)
            .bind(DbTime::now())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn mark_applied(&self, revision: &'static Revision) -> Result<(), MigrateError> {
        on_pool!(&self.db, pool => {
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
        Ok(())
    }

    async fn delete_version(&self, revision: &'static Revision) -> Result<(), MigrateError> {
        on_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM flowkey_versions WHERE revision = $1")
                .bind(revision.id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    fn chain(&self) -> Chain {
        Chain(self.revisions)
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        self.chain().index_of(id)
    }

    fn head(&self) -> Result<usize, MigrateError> {
        self.chain().head()
    }

    fn unknown(&self, target: &str) -> MigrateError {
        self.chain().unknown(target)
    }

    fn resolve_up(
        &self,
        target: &str,
        current: Option<usize>,
    ) -> Result<Option<usize>, MigrateError> {
        self.chain().resolve_up(target, current)
    }

    fn resolve_down(
        &self,
        target: &str,
        current: Option<usize>,
    ) -> Result<Option<usize>, MigrateError> {
        self.chain().resolve_down(target, current)
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

/// A revision chain, oldest first, and how targets resolve on it.
#[derive(Clone, Copy)]
struct Chain(&'static [&'static Revision]);

impl Chain {
    fn index_of(&self, id: &str) -> Option<usize> {
        self.0.iter().position(|revision| revision.id == id)
    }

    fn head(&self) -> Result<usize, MigrateError> {
        self.0
            .len()
            .checked_sub(1)
            .ok_or_else(|| self.unknown("head"))
    }

    fn unknown(&self, target: &str) -> MigrateError {
        let mut known: Vec<&str> = vec!["base", "head"];
        known.extend(self.0.iter().map(|revision| revision.id));
        MigrateError::UnknownTarget {
            target: target.into(),
            known: known.join(", "),
        }
    }

    /// The revision an upgrade to `target` ends at.
    fn resolve_up(
        &self,
        target: &str,
        current: Option<usize>,
    ) -> Result<Option<usize>, MigrateError> {
        let unreachable = |reason: String| MigrateError::UnreachableTarget {
            target: target.into(),
            direction: "upgrade",
            reason,
        };
        if target == "base" {
            return Err(unreachable("use `flowkey downgrade base`".into()));
        }
        if target == "head" {
            return self.head().map(Some);
        }
        if let Some(count) = target.strip_prefix('+') {
            let count: usize = count.parse().map_err(|_| self.unknown(target))?;
            let index = current.map_or(count.checked_sub(1), |at| Some(at + count));
            return match index {
                Some(index) if index < self.0.len() => Ok(Some(index)),
                Some(_) => Err(unreachable(format!(
                    "only {} revisions are left before head",
                    self.0.len() - current.map_or(0, |at| at + 1)
                ))),
                None => Ok(current),
            };
        }
        self.index_of(target)
            .map(Some)
            .ok_or_else(|| self.unknown(target))
    }

    /// The revision a downgrade to `target` ends at (`None`: base).
    fn resolve_down(
        &self,
        target: &str,
        current: Option<usize>,
    ) -> Result<Option<usize>, MigrateError> {
        let unreachable = |reason: String| MigrateError::UnreachableTarget {
            target: target.into(),
            direction: "downgrade",
            reason,
        };
        if target == "base" {
            return Ok(None);
        }
        if target == "head" {
            return Err(unreachable("use `flowkey upgrade head`".into()));
        }
        if let Some(count) = target.strip_prefix('-') {
            let count: usize = count.parse().map_err(|_| self.unknown(target))?;
            let Some(at) = current else {
                return Err(unreachable("the database is at base already".into()));
            };
            return match (at + 1).checked_sub(count) {
                Some(0) => Ok(None),
                Some(remaining) => Ok(Some(remaining - 1)),
                None => Err(unreachable(format!(
                    "only {} revisions are applied",
                    at + 1
                ))),
            };
        }
        let index = self.index_of(target).ok_or_else(|| self.unknown(target))?;
        if current.is_none_or(|at| index > at) {
            return Err(unreachable(format!(
                "it is not applied (the database is at {}); use `flowkey upgrade {target}`",
                current.map_or("base", |at| self.0[at].id)
            )));
        }
        Ok(Some(index))
    }
}

/// The revisions between `current` and `target` in the order they run.
fn plan_path(
    revisions: &'static [&'static Revision],
    current: Option<usize>,
    target: Option<usize>,
    direction: Direction,
    resume: Option<usize>,
) -> Vec<PlannedRevision> {
    let start = current.map_or(0, |at| at + 1);
    let indexes: Vec<usize> = match direction {
        Direction::Up => match target {
            Some(target) if target >= start => (start..=target).collect(),
            _ => Vec::new(),
        },
        Direction::Down => {
            let stop = target.map_or(0, |at| at + 1);
            match current {
                Some(at) if at >= stop => (stop..=at).rev().collect(),
                _ => Vec::new(),
            }
        }
    };
    indexes
        .into_iter()
        .enumerate()
        .map(|(order, index)| PlannedRevision {
            revision: revisions[index],
            direction,
            first_step: if order == 0 { resume.unwrap_or(0) } else { 0 },
            resuming: order == 0 && resume.is_some(),
        })
        .collect()
}

fn steps_of(revision: &Revision, direction: Direction) -> &'static [crate::migrate::Step] {
    match direction {
        Direction::Up => revision.up,
        Direction::Down => revision.down,
    }
}

fn parse_direction(text: &str) -> Direction {
    if text == "down" {
        Direction::Down
    } else {
        Direction::Up
    }
}

fn kind(action: &Action) -> &'static str {
    match action {
        Action::Sql(_) => "sql",
        Action::OnlineDdl(_) => "online_ddl",
        Action::Code { .. } => "code",
        Action::Check { .. } => "check",
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
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

const CREATE_VERSIONS_POSTGRES: &str = "\
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

async fn ensure_versions_table(db: &Db) -> Result<(), MigrateError> {
    db.execute_plain(match db.engine() {
        Engine::Sqlite => CREATE_VERSIONS_SQLITE,
        Engine::Postgres => CREATE_VERSIONS_POSTGRES,
    })
    .await?;
    Ok(())
}

async fn read_versions(db: &Db) -> Result<Vec<VersionRow>, MigrateError> {
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

/// How many attempts a PostgreSQL step needed, and how long it waited for locks.
#[derive(Debug, Clone, Copy)]
struct Retried {
    attempts: u32,
    lock_wait: Duration,
}

/// Runs a SQLite script in one transaction, recording the step done in it. A script with a
/// `PRAGMA foreign_keys = OFF` statement (a table rebuild: SQLite ignores that pragma inside
/// a transaction, and with foreign keys on, `DROP TABLE` would fire the children's `ON DELETE`
/// actions) gets it applied before the transaction, `PRAGMA foreign_key_check` before the
/// commit, and foreign keys back on afterwards.
async fn run_sqlite_script(
    pool: &sqlx::SqlitePool,
    script: &str,
    revision: &'static Revision,
    step: &'static crate::migrate::Step,
    steps_done: i64,
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
        // SQLite compiles DDL against the connection's cached schema; reading the catalog
        // first reloads it if another pooled connection changed the schema (a stale cache
        // turns `IF [NOT] EXISTS` into silent no-ops).
        sqlx::query("SELECT count(*) FROM sqlite_master")
            .execute(&mut *tx)
            .await?;
        sqlx::raw_sql(script).execute(&mut *tx).await?;
        if foreign_keys_off {
            let violations: Vec<(String, Option<i64>, String, i64)> =
                sqlx::query_as("PRAGMA foreign_key_check")
                    .fetch_all(&mut *tx)
                    .await?;
            if let Some((table, rowid, parent, _)) = violations.first() {
                return Err(MigrateError::StepFailed {
                    revision: revision.id.into(),
                    step: step.name.into(),
                    message: format!(
                        "the step would leave {} rows violating foreign keys (first: {table} row {} \
                         references a missing {parent} row); rolled back",
                        violations.len(),
                        rowid.map_or("?".to_owned(), |rowid| rowid.to_string())
                    ),
                });
            }
        }
        sqlx::query("UPDATE flowkey_versions SET steps_done = $1 WHERE revision = $2")
            .bind(steps_done)
            .bind(revision.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok::<_, MigrateError>(())
    }
    .await;
    if foreign_keys_off
        && sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&mut *conn)
            .await
            .is_err()
    {
        // Never hand a connection without foreign keys back to the pool.
        conn.close_on_drop();
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

/// Runs a PostgreSQL script in one transaction under `SET LOCAL lock_timeout`, so a DDL
/// statement never queues (and blocks the application) behind a long transaction; the whole
/// transaction is retried with backoff after a lock timeout.
async fn run_postgres_transaction(
    pool: &sqlx::PgPool,
    script: &str,
    options: &RunOptions,
    revision: &'static Revision,
    steps_done: i64,
) -> Result<Retried, MigrateError> {
    let lock_timeout = lock_timeout_setting(options);
    let mut retried = Retried {
        attempts: 0,
        lock_wait: Duration::ZERO,
    };
    let mut backoff = FIRST_BACKOFF;
    loop {
        retried.attempts += 1;
        let attempt_started = Instant::now();
        let attempt = async {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT set_config('lock_timeout', $1, true)")
                .bind(&lock_timeout)
                .execute(&mut *tx)
                .await?;
            sqlx::raw_sql(script).execute(&mut *tx).await?;
            sqlx::query("UPDATE flowkey_versions SET steps_done = $1 WHERE revision = $2")
                .bind(steps_done)
                .bind(revision.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, MigrateError>(())
        }
        .await;
        match attempt {
            Ok(()) => return Ok(retried),
            Err(err) if is_lock_timeout(&err) && retried.attempts <= options.ddl_retries => {
                retried.lock_wait += attempt_started.elapsed() + backoff;
                tracing::warn!(
                    "lock timeout in revision {} (attempt {}), retrying in {backoff:?}",
                    revision.id,
                    retried.attempts
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(err) => return Err(err),
        }
    }
}

fn lock_timeout_setting(options: &RunOptions) -> String {
    format!("{}ms", options.lock_timeout.as_millis().max(1))
}

/// Runs an online DDL script on PostgreSQL: each statement alone (outside a transaction
/// block) under `lock_timeout`, retried with exponential backoff when it times out waiting
/// for a lock, an invalid leftover of a concurrent index build dropped before rebuilding.
async fn run_online_ddl(
    conn: &mut PgConnection,
    script: &str,
    options: &RunOptions,
    audit: &AuditLog,
    scope: Scope<'_>,
) -> Result<(), MigrateError> {
    let lock_timeout = lock_timeout_setting(options);
    sqlx::query("SELECT set_config('lock_timeout', $1, false)")
        .bind(&lock_timeout)
        .execute(&mut *conn)
        .await?;
    let result = run_statements(conn, script, options, audit, scope).await;
    let reset = sqlx::raw_sql("RESET lock_timeout")
        .execute(&mut *conn)
        .await;
    result?;
    reset?;
    Ok(())
}

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

async fn run_statements(
    conn: &mut PgConnection,
    script: &str,
    options: &RunOptions,
    audit: &AuditLog,
    scope: Scope<'_>,
) -> Result<(), MigrateError> {
    for statement in split_statements(script) {
        let index_name = concurrent_index_name(&statement);
        let started = Instant::now();
        let mut lock_wait = Duration::ZERO;
        let mut attempts: u32 = 0;
        let mut backoff = FIRST_BACKOFF;
        loop {
            attempts += 1;
            let attempt_started = Instant::now();
            let attempt = async {
                if let Some(name) = &index_name {
                    if drop_invalid_index(conn, name).await? {
                        audit
                            .event(
                                scope,
                                "invalid_index_dropped",
                                Outcome::Info,
                                None,
                                None,
                                serde_json::json!({ "index": name }),
                            )
                            .await?;
                    }
                }
                sqlx::raw_sql(&statement).execute(&mut *conn).await?;
                Ok::<_, MigrateError>(())
            }
            .await;
            match attempt {
                Ok(()) => break,
                Err(err) if is_lock_timeout(&err) && attempts <= options.ddl_retries => {
                    lock_wait += attempt_started.elapsed() + backoff;
                    tracing::warn!(
                        "lock timeout (attempt {attempts}), retrying in {backoff:?}: {}",
                        first_line(&statement)
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(err) => {
                    if is_lock_timeout(&err) {
                        lock_wait += attempt_started.elapsed();
                    }
                    let message = err.to_string();
                    audit
                        .event(
                            scope,
                            "statement",
                            Outcome::Failed,
                            Some(started.elapsed()),
                            Some(&message),
                            statement_details(&statement, attempts, lock_wait),
                        )
                        .await?;
                    return Err(err);
                }
            }
        }
        audit
            .event(
                scope,
                "statement",
                Outcome::Ok,
                Some(started.elapsed()),
                None,
                statement_details(&statement, attempts, lock_wait),
            )
            .await?;
    }
    Ok(())
}

fn statement_details(statement: &str, attempts: u32, lock_wait: Duration) -> serde_json::Value {
    const MAX_SHOWN: usize = 500;
    let mut shown = statement.to_owned();
    if shown.len() > MAX_SHOWN {
        let mut end = MAX_SHOWN;
        while !shown.is_char_boundary(end) {
            end -= 1;
        }
        shown.truncate(end);
        shown.push('…');
    }
    serde_json::json!({
        "statement": shown,
        "attempts": attempts,
        "lock_wait_ms": millis(lock_wait),
    })
}

fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with("--"))
        .unwrap_or_default()
}

fn is_lock_timeout(err: &MigrateError) -> bool {
    let MigrateError::Sql(sqlx::Error::Database(db)) = err else {
        return false;
    };
    db.code().as_deref() == Some("55P03")
}

/// The index a `CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS <name>` statement builds.
fn concurrent_index_name(statement: &str) -> Option<String> {
    let code: String = statement
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join(" ");
    let words: Vec<&str> = code.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|word| word.to_uppercase()).collect();
    let mut at = 0;
    let mut expect = |word: &str| {
        if upper.get(at).map(String::as_str) == Some(word) {
            at += 1;
            true
        } else {
            false
        }
    };
    if !expect("CREATE") {
        return None;
    }
    expect("UNIQUE");
    if !(expect("INDEX")
        && expect("CONCURRENTLY")
        && expect("IF")
        && expect("NOT")
        && expect("EXISTS"))
    {
        return None;
    }
    let name = words.get(at)?;
    let name = name.split('(').next().unwrap_or(name).trim_matches('"');
    (!name.is_empty() && !name.eq_ignore_ascii_case("ON")).then(|| name.to_owned())
}

/// Drops `name` if it is an index left invalid by an interrupted concurrent build.
async fn drop_invalid_index(conn: &mut PgConnection, name: &str) -> Result<bool, MigrateError> {
    let invalid: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE c.relname = $1 AND NOT i.indisvalid \
           AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()))",
    )
    .bind(name)
    .fetch_one(&mut *conn)
    .await?;
    if invalid {
        tracing::warn!("dropping invalid index {name} left by an interrupted build");
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        sqlx::raw_sql(&format!("DROP INDEX CONCURRENTLY IF EXISTS {quoted}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(invalid)
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

    #[test]
    fn concurrent_index_names_are_found() {
        assert_eq!(
            concurrent_index_name(
                "-- why\nCREATE INDEX CONCURRENTLY IF NOT EXISTS ix_a_flow_id ON a (flow_id);"
            )
            .as_deref(),
            Some("ix_a_flow_id")
        );
        assert_eq!(
            concurrent_index_name("create unique index concurrently if not exists \"ix\" on a(x);")
                .as_deref(),
            Some("ix")
        );
        assert_eq!(concurrent_index_name("CREATE INDEX ix ON a (x);"), None);
        assert_eq!(
            concurrent_index_name("ALTER TABLE a VALIDATE CONSTRAINT c;"),
            None
        );
    }
}
