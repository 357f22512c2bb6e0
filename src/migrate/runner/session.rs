//! A run of a command that changes the database: it holds the deploy lock from start to end
//! and has an open `run` row in the audit log, closed with the run's outcome.

use std::time::Instant;

use crate::db::Db;
use crate::migrate::audit::{ensure_table as ensure_audit_table, AuditLog, Identity, OpenSpan};
use crate::migrate::audit::{Outcome, Scope};
use crate::migrate::faults;
use crate::migrate::lock::DeployLock;
use crate::migrate::runner::versions::ensure_versions_table;
use crate::migrate::runner::{millis, RunSummary};
use crate::migrate::{MigrateError, RunOptions};

/// A run holding the deploy lock, with its audit row open.
pub(super) struct Session {
    command: &'static str,
    target: String,
    lock: DeployLock,
    pub audit: AuditLog,
    run_span: OpenSpan,
    started: Instant,
}

impl Session {
    /// Takes the deploy lock (waiting up to `options.lock_wait`), makes sure flowkey's tables
    /// exist and opens the run's audit row; gives the lock back if anything after taking it
    /// fails.
    pub async fn open(
        db: &Db,
        options: &RunOptions,
        command: &'static str,
        target: &str,
    ) -> Result<Session, MigrateError> {
        let started = Instant::now();
        let identity = Identity::of_this_process();
        let run_id = uuid::Uuid::new_v4().to_string();
        faults::check("runner::before_lock_acquire")?;
        let lock = DeployLock::acquire(db, &run_id, &identity, options.lock_wait).await?;
        let prepared = async {
            faults::check("runner::after_lock_acquire")?;
            ensure_versions_table(db).await?;
            ensure_audit_table(db).await?;
            let audit = AuditLog::new(db.clone(), run_id.clone(), identity);
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

    /// Fails when the deploy lock is no longer held (see [`DeployLock::ensure_held`]): a step
    /// starts, and a revision is recorded, only under the lock.
    pub async fn ensure_lock_held(&self) -> Result<(), MigrateError> {
        self.lock.ensure_held().await
    }

    /// Records how the run ended and gives the lock back.
    pub async fn close(
        self,
        result: Result<RunSummary, MigrateError>,
    ) -> Result<RunSummary, MigrateError> {
        let (outcome, error) = match &result {
            Ok(_) => (Outcome::Ok, None),
            Err(
                err @ (MigrateError::ForeignSchema { .. }
                | MigrateError::DependentObjects { .. }
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
