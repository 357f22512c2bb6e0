//! The benchmark baseline for the backfill: the same set-based UPDATEs the online backfill
//! runs per batch, run once over each whole table in one transaction, with no keyset walk,
//! no cursor and no progress rows. That is the engine's speed limit for the same work, the
//! figure the online backfill is measured against (`bench/run.sh`). It takes every lock the
//! UPDATEs need for as long as they run: never run it on a database in use.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::db::{Db, Engine};
use crate::migrate::flow::backfill::batch_statements;
use crate::migrate::flow::linked::LINKED_TABLES;
use crate::migrate::flow::tables::execute_keyed;
use crate::migrate::MigrateError;

/// What one offline UPDATE pass did to one table.
#[derive(Debug, Clone, Serialize)]
pub struct OfflineTableUpdate {
    pub table: String,
    /// Rows in the table (the figure the online backfill walks over).
    pub rows: i64,
    /// Rows the UPDATEs wrote.
    pub rows_updated: u64,
    pub seconds: f64,
}

/// The whole offline pass: every linked table, in backfill order.
#[derive(Debug, Clone, Serialize)]
pub struct OfflineBackfill {
    pub tables: Vec<OfflineTableUpdate>,
    pub rows: i64,
    pub rows_updated: u64,
    pub seconds: f64,
}

/// Runs the backfill's UPDATEs over whole tables in one transaction (the database must be at
/// `flow_expand`, as it is before `flow_backfill`).
pub async fn offline_backfill(db: &Db) -> Result<OfflineBackfill, MigrateError> {
    let engine = db.engine();
    let started = Instant::now();
    let mut tables = Vec::new();
    let mut tx = db.begin_write().await?;
    for linked in LINKED_TABLES {
        let table = linked.name;
        let table_started = Instant::now();
        let rows: i64 = crate::on_tx!(&mut tx, conn => {
            sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&mut **conn)
                .await?
        });
        let mut rows_updated = 0;
        for statement in batch_statements(engine, linked) {
            let sql = statement.replace("{range}", "1 = 1");
            rows_updated += execute_keyed(&mut tx, &sql, &[]).await?;
        }
        tables.push(OfflineTableUpdate {
            table: table.to_owned(),
            rows,
            rows_updated,
            seconds: seconds(table_started.elapsed()),
        });
    }
    tx.commit().await?;
    Ok(OfflineBackfill {
        rows: tables.iter().map(|t| t.rows).sum(),
        rows_updated: tables.iter().map(|t| t.rows_updated).sum(),
        tables,
        seconds: seconds(started.elapsed()),
    })
}

fn seconds(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64()
}

/// One phase of the naive offline migration.
#[derive(Debug, Clone, Serialize)]
pub struct NaivePhase {
    pub phase: String,
    pub seconds: f64,
}

/// The naive offline migration: what an Alembic user would write for the same change, on a
/// legacy database, in one transaction (no batches, no fingerprints, no verification, every
/// table locked until the end).
#[derive(Debug, Clone, Serialize)]
pub struct NaiveMigration {
    pub phases: Vec<NaivePhase>,
    pub seconds: f64,
}

/// The tables the naive migration gives a `flow_id`, in the order their updates need (an
/// import's flow before its field mappings'), and those of them whose `flow_id` gets a
/// foreign key. Listed here as the migration's author would write them.
const NAIVE_TABLES: [&str; 6] = [
    "data_imports",
    "raw_import_records",
    "import_field_mappings",
    "assets",
    "access_audit_log",
    "llm_usage_logs",
];
const NAIVE_FOREIGN_KEY_TABLES: [&str; 4] = [
    "data_imports",
    "raw_import_records",
    "import_field_mappings",
    "assets",
];

/// The naive offline migration's statements for `engine`, in order, each with its phase:
/// the mapping (each session's earliest flow of its tenant), `ADD COLUMN flow_id` on the six
/// tables, one `UPDATE ... FROM` per table, an index per table, and foreign keys to
/// `discovery_flows` on the core tables (declared with the column on SQLite, which cannot add
/// a constraint later).
pub fn naive_migration_sql(engine: Engine) -> Vec<(&'static str, String)> {
    let uuid = match engine {
        Engine::Postgres => "uuid",
        Engine::Sqlite => "TEXT",
    };
    let mut statements = vec![
        (
            "mapping",
            format!(
                "CREATE TABLE session_flow_mapping (session_id {uuid} PRIMARY KEY, flow_id {uuid} NOT NULL, \
                 client_account_id {uuid} NOT NULL, engagement_id {uuid} NOT NULL)"
            ),
        ),
        (
            "mapping",
            "INSERT INTO session_flow_mapping (session_id, flow_id, client_account_id, engagement_id) \
             SELECT session_id, flow_id, client_account_id, engagement_id FROM ( \
               SELECT s.id AS session_id, f.flow_id, s.client_account_id, s.engagement_id, \
                      row_number() OVER (PARTITION BY s.id ORDER BY f.created_at, f.flow_id) AS n \
               FROM data_import_sessions s JOIN discovery_flows f ON f.import_session_id = s.id \
                AND f.client_account_id = s.client_account_id AND f.engagement_id = s.engagement_id) x \
             WHERE n = 1"
                .to_owned(),
        ),
    ];
    for table in NAIVE_TABLES {
        let references = match engine {
            Engine::Sqlite if NAIVE_FOREIGN_KEY_TABLES.contains(&table) => {
                " REFERENCES discovery_flows(flow_id)"
            }
            _ => "",
        };
        statements.push((
            "add column",
            format!("ALTER TABLE {table} ADD COLUMN flow_id {uuid}{references}"),
        ));
    }
    for table in NAIVE_TABLES {
        let update = match table {
            "import_field_mappings" => "UPDATE import_field_mappings SET flow_id = d.flow_id \
                 FROM data_imports AS d WHERE d.id = import_field_mappings.data_import_id"
                .to_owned(),
            // The column is free text: the bare id of a session matches, other forms do not.
            "llm_usage_logs" => "UPDATE llm_usage_logs SET flow_id = m.flow_id \
                 FROM session_flow_mapping AS m \
                 WHERE CAST(m.session_id AS TEXT) = llm_usage_logs.session_id"
                .to_owned(),
            _ => format!(
                "UPDATE {table} SET flow_id = m.flow_id FROM session_flow_mapping AS m \
                 WHERE m.session_id = {table}.session_id"
            ),
        };
        statements.push(("update", update));
    }
    for table in NAIVE_TABLES {
        statements.push((
            "index",
            format!("CREATE INDEX ix_{table}_flow_id ON {table} (flow_id)"),
        ));
    }
    if engine == Engine::Postgres {
        for table in NAIVE_FOREIGN_KEY_TABLES {
            statements.push((
                "foreign key",
                format!(
                    "ALTER TABLE {table} ADD CONSTRAINT fk_{table}_flow_id FOREIGN KEY (flow_id) \
                     REFERENCES discovery_flows(flow_id)"
                ),
            ));
        }
    }
    statements
}

/// Runs [`naive_migration_sql`] on a legacy database in one transaction and times each phase.
/// For the benchmark only: it takes every table's write lock until it commits, and leaves a
/// schema flowkey does not manage.
pub async fn naive_offline_migration(db: &Db) -> Result<NaiveMigration, MigrateError> {
    let started = Instant::now();
    let mut phases: Vec<NaivePhase> = Vec::new();
    let mut tx = db.begin_write().await?;
    for (phase, sql) in naive_migration_sql(db.engine()) {
        let phase_started = Instant::now();
        execute_keyed(&mut tx, &sql, &[]).await?;
        let took = seconds(phase_started.elapsed());
        match phases.last_mut() {
            Some(last) if last.phase == phase => last.seconds += took,
            _ => phases.push(NaivePhase {
                phase: phase.to_owned(),
                seconds: took,
            }),
        }
    }
    let commit_started = Instant::now();
    tx.commit().await?;
    phases.push(NaivePhase {
        phase: "commit".to_owned(),
        seconds: seconds(commit_started.elapsed()),
    });
    Ok(NaiveMigration {
        phases,
        seconds: seconds(started.elapsed()),
    })
}
