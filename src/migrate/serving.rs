//! Whether a database can be served: the runner's recorded revision is head and every head
//! table and column the service reads and writes is there. `flowkey serve` refuses to start
//! otherwise, and a running server's schema gate answers 503 while it is not.

use serde::Serialize;

use crate::db::errors::{database_unavailable, schema_object_missing};
use crate::db::Db;
use crate::migrate::flow::linked::LINKED_TABLES;
use crate::migrate::{revisions, MigrateError, Migrator, RunOptions};

/// The head tables and columns the service needs, each with a statement that fails with
/// "no such table or column" when it is missing (named as the check reports it): the
/// `flow_id` of every linked table, and the tables the service owns or reads.
pub fn probes() -> Vec<(String, String)> {
    let mut probes: Vec<(String, String)> = LINKED_TABLES
        .iter()
        .map(|table| {
            (
                format!("{}.flow_id", table.name),
                format!("SELECT flow_id FROM {} WHERE 1 = 0", table.name),
            )
        })
        .collect();
    for (name, probe) in [
        (
            "session_flow_mapping",
            "SELECT session_id, rule FROM session_flow_mapping WHERE 1 = 0",
        ),
        (
            "flowkey_flags",
            "SELECT name, scope, value FROM flowkey_flags WHERE 1 = 0",
        ),
        (
            "flowkey_legacy_traffic",
            "SELECT route, hits FROM flowkey_legacy_traffic WHERE 1 = 0",
        ),
    ] {
        probes.push((name.to_owned(), probe.to_owned()));
    }
    probes
}

/// What the service needs of the schema, and what is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaCheck {
    /// The revision `flowkey_versions` records, when the runner has recorded one.
    pub recorded_revision: Option<String>,
    /// The last revision this flowkey knows (`head`).
    pub head: &'static str,
    /// Head tables and columns the database lacks.
    pub missing: Vec<String>,
}

impl SchemaCheck {
    /// At head: every table and column present and, where the runner recorded a revision,
    /// that revision is head.
    pub fn at_head(&self) -> bool {
        self.missing.is_empty()
            && self
                .recorded_revision
                .as_deref()
                .is_none_or(|revision| revision == self.head)
    }

    /// One line for an operator.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(revision) = self
            .recorded_revision
            .as_deref()
            .filter(|r| revisions::is_after_head(r))
        {
            // The models of this build still read and write the session columns the contract
            // dropped: serving would fail on every route that touches them, so the gate says
            // why instead (the models' change is issue 14, item 5).
            return format!(
                "the database is contracted ({revision}): this flowkey's service still reads the \
                 session columns the contract dropped; run `flowkey downgrade -1` to serve it"
            );
        }
        if let Some(revision) = self
            .recorded_revision
            .as_deref()
            .filter(|r| *r != self.head)
        {
            parts.push(format!(
                "the database is at revision {revision}, head is {}",
                self.head
            ));
        }
        if !self.missing.is_empty() {
            parts.push(format!("missing {}", self.missing.join(", ")));
        }
        if parts.is_empty() {
            return format!("the database is at head ({})", self.head);
        }
        format!("{}; run `flowkey upgrade head`", parts.join("; "))
    }
}

/// Reads the runner's record of the applied revision and probes for the head tables and
/// columns the service reads and writes. Each probe is its own statement outside a
/// transaction, so a missing table (an error on PostgreSQL) does not spoil the others. Only
/// "no such table or column" counts as missing; any other error (the database going away in
/// the middle of the check) is returned. Reads only.
pub async fn check_schema(db: &Db) -> Result<SchemaCheck, sqlx::Error> {
    db.execute_plain("SELECT 1").await?;
    let head = revisions::head().id;
    let recorded_revision = match Migrator::new(db.clone(), RunOptions::default())
        .current()
        .await
    {
        Ok(revision) => revision.map(str::to_owned),
        // The database went away in the middle of the check: that says nothing of the schema.
        Err(MigrateError::Sql(err)) if database_unavailable(&err) => return Err(err),
        // An unreadable or unknown record: leave the verdict to the probes, but say so.
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the recorded revision");
            None
        }
    };
    let mut missing = Vec::new();
    for (name, probe) in probes() {
        match db.execute_plain(&probe).await {
            Ok(_) => {}
            Err(err) if schema_object_missing(&err) => missing.push(name),
            // Any other failure (the connection cut by a restart, above all) is not a missing
            // table: a check that counted it so would close a healthy server.
            Err(err) => return Err(err),
        }
    }
    Ok(SchemaCheck {
        recorded_revision,
        head,
        missing,
    })
}
