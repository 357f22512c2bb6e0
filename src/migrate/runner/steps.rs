//! Running a plan: each revision marked dirty, its steps run in order (each checked against
//! the deploy lock first, each written to the audit log, each recorded done), then the
//! revision recorded applied or forgotten. Each step runs by its kind:
//! - SQLite, `Sql` and `OnlineDdl`: the script in one transaction ([`super::sqlite`]).
//! - PostgreSQL, `Sql` in one transaction, `OnlineDdl` statement by statement
//!   ([`super::postgres`]).
//! - `Code` and `Check`: the function, with an audit sink; the step is recorded done after it
//!   returns.

use crate::db::{on_pool, Db, Engine};
use crate::migrate::audit::{AuditLog, Outcome, Scope, StepAudit};
use crate::migrate::checksum::checksum;
use crate::migrate::faults;
use crate::migrate::offline::PlannedRevision;
use crate::migrate::runner::plan::steps_of;
use crate::migrate::runner::postgres::{run_online_ddl, run_postgres_transaction, Retried};
use crate::migrate::runner::session::Session;
use crate::migrate::runner::sqlite::run_sqlite_script;
use crate::migrate::runner::versions::{delete_version, mark_applied, mark_dirty, set_steps_done};
use crate::migrate::runner::{millis, Migrator, RevisionRun, StepRun};
use crate::migrate::{Action, Direction, MigrateError, Revision, Step, StepContext};

impl Migrator {
    pub(super) async fn run_plan(
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
            let (step_number, step_count) = (planned.first_step + 1, steps.len());
            tracing::warn!(
                "resuming revision {} ({direction}) at step {step_number} of {step_count}",
                revision.id
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
            let position = self.chain().index_of(revision.id).unwrap_or_default();
            mark_dirty(&self.db, revision, position, direction, &audit.run_id).await?;
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
            session.ensure_lock_held().await?;
            faults::check("runner::before_step")?;
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
                    // The step is done and recorded; what fails now fails between steps.
                    faults::check("runner::after_step")?;
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
                    let recorded = async {
                        faults::check("runner::before_failure_recorded")?;
                        audit
                            .finish(&step_span, Outcome::Failed, Some(&message), None)
                            .await
                    }
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
        session.ensure_lock_held().await?;
        match direction {
            Direction::Up => mark_applied(&self.db, revision).await?,
            Direction::Down => delete_version(&self.db, revision).await?,
        }
        audit.finish(&span, Outcome::Ok, None, None).await?;
        Ok(run)
    }

    /// Runs one step and records it done (in the step's own transaction where it has one).
    async fn run_step(
        &self,
        audit: &AuditLog,
        revision: &'static Revision,
        step: &'static Step,
        direction: Direction,
        steps_done: usize,
    ) -> Result<Option<Retried>, MigrateError> {
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
            (Action::Code { run, sql, .. } | Action::Check { run, sql, .. }, _) => {
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
                faults::check("runner::before_code_step")?;
                run(&mut context).await?;
                faults::check("runner::after_code_step")?;
            }
        }
        on_pool!(&self.db, pool => set_steps_done(pool, revision, steps_done).await?);
        Ok(None)
    }
}

/// Ends a step's transaction: commits it when `work` succeeded, rolls it back when it failed.
/// A failed rollback does not replace the step's error (the server rolls back a transaction
/// whose connection is gone); it is logged at debug level, so the operator still reads one
/// line.
pub(super) async fn end_transaction<DB: sqlx::Database>(
    tx: sqlx::Transaction<'_, DB>,
    work: Result<(), MigrateError>,
) -> Result<(), MigrateError> {
    match work {
        Ok(()) => {
            faults::check("runner::before_commit")?;
            tx.commit().await?;
            faults::check("runner::after_commit")
        }
        Err(err) => {
            let rolled_back = async {
                faults::check("runner::before_rollback")?;
                tx.rollback().await?;
                faults::check("runner::after_rollback")
            }
            .await;
            if let Err(rollback) = rolled_back {
                tracing::debug!(error = %rollback, "the failed step's transaction did not roll back cleanly");
            }
            Err(err)
        }
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
