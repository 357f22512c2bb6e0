//! Whether a database can be served: the runner's recorded revision is head, or the contract
//! after it (`flow_contract`), and every table and column the service reads and writes is
//! there. `flowkey serve` refuses to start otherwise, and a running server's schema gate
//! answers 503 while it is not. The check also says which key columns the schema has
//! ([`KeyColumns`]), which the stores follow.

use serde::Serialize;

use crate::db::errors::{database_unavailable, schema_object_missing};
use crate::db::{Db, KeyColumns};
use crate::migrate::flow::contract::CONTRACT_REVISION;
use crate::migrate::flow::linked::LINKED_TABLES;
use crate::migrate::{faults, revisions, MigrateError, Migrator, RunOptions};

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
    /// Why the runner's record could not be read, when it could not (a revision recorded by a
    /// newer build, which this one does not know). Not servable then: the probes see only
    /// the tables and columns, not what a revision this build does not know changed.
    pub unreadable_record: Option<String>,
}

impl SchemaCheck {
    /// Servable: every table and column present and, where the runner's record names a
    /// revision this build knows, that revision is head or the contract after it (the stores
    /// then read the session columns from the mapping, [`KeyColumns::Contracted`]). Any other
    /// revision (below head, or one this build does not know: [`Self::unreadable_record`]) is
    /// refused.
    pub fn servable(&self) -> bool {
        self.missing.is_empty()
            && self.unreadable_record.is_none()
            && self
                .recorded_revision
                .as_deref()
                .is_none_or(|revision| revision == self.head || revision == CONTRACT_REVISION)
    }

    /// The key columns of the recorded revision: contracted at the contract, expanded
    /// otherwise (at head, or before a revision was recorded).
    pub fn key_columns(&self) -> KeyColumns {
        match self.recorded_revision.as_deref() {
            Some(CONTRACT_REVISION) => KeyColumns::Contracted,
            _ => KeyColumns::Expanded,
        }
    }

    /// One line for an operator.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(revision) = self
            .recorded_revision
            .as_deref()
            .filter(|r| *r != self.head && *r != CONTRACT_REVISION)
        {
            parts.push(format!(
                "the database is at revision {revision}, head is {}",
                self.head
            ));
        }
        if !self.missing.is_empty() {
            parts.push(format!("missing {}", self.missing.join(", ")));
        }
        if let Some(why) = &self.unreadable_record {
            return format!(
                "this build (head {}) cannot read the runner's record ({why}): serve the \
                 database with the flowkey that migrated it",
                self.head
            );
        }
        if parts.is_empty() {
            return match self.key_columns() {
                KeyColumns::Contracted => format!(
                    "the database is contracted ({CONTRACT_REVISION}, after head {}): served by \
                     flow id, legacy ids answered through session_flow_mapping",
                    self.head
                ),
                KeyColumns::Expanded => format!("the database is at head ({})", self.head),
            };
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
    let recorded = async {
        faults::check("serving::before_revision_read")?;
        Migrator::new(db.clone(), RunOptions::default())
            .current()
            .await
    };
    let (recorded_revision, unreadable_record) = match recorded.await {
        Ok(revision) => (revision.map(str::to_owned), None),
        // The database went away in the middle of the check: that says nothing of the schema.
        Err(MigrateError::Sql(err)) if database_unavailable(&err) => return Err(err),
        // An unreadable or unknown record (a newer build's): not servable, and said.
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the recorded revision");
            (None, Some(err.to_string()))
        }
    };
    let mut probes = probes();
    if recorded_revision.as_deref() == Some(CONTRACT_REVISION) {
        // Contracted, the stores read the sessions the mapping cannot give back from here.
        probes.push((
            "flowkey_contract_archive".to_owned(),
            "SELECT table_name, column_name, row_id, session_value \
             FROM flowkey_contract_archive WHERE 1 = 0"
                .to_owned(),
        ));
    }
    let mut missing = Vec::new();
    for (name, probe) in probes {
        let probed = async {
            faults::check_sql("serving::before_probe")?;
            db.execute_plain(&probe).await
        };
        match probed.await {
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
        unreadable_record,
    })
}
