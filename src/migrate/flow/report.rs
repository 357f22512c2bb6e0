//! `report`: what the migration linked, what it left unlinked and why. A read: it writes
//! nothing. One aggregate pass per table.

use serde::Serialize;
use sqlx::Row;

use crate::db::{Db, Engine};
use crate::migrate::flow::backfill::parse_session_sql;
use crate::migrate::flow::tables::FLOW_COLUMN_TABLES;
use crate::migrate::MigrateError;

#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    pub engine: Engine,
    pub tables: Vec<TableReport>,
    pub sessions_mapped: i64,
    /// Sessions with more than one candidate flow under their winning rule.
    pub ambiguous_sessions: i64,
    /// (session, flow) pairs refused because the flow belongs to another tenant.
    pub cross_tenant_conflicts: i64,
    /// Flows the migration created for sessions without a candidate.
    pub flows_created: i64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TableReport {
    pub table: String,
    pub rows: i64,
    pub linked: i64,
    pub unlinked: UnlinkedReasons,
}

/// Why rows are left without a flow.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct UnlinkedReasons {
    /// No session, and no other path (import, flow naming the import) leads to a flow.
    pub no_session: i64,
    /// The session id names no mapped session.
    pub dangling_session: i64,
    /// A flow was found but belongs to another tenant than the row's own tenant columns.
    pub tenant_mismatch: i64,
    /// Free text that is not a session id in any client form (`llm_usage_logs`).
    pub unparseable_id: i64,
}

/// Computes the report.
pub async fn report(db: &Db) -> Result<MigrationReport, MigrateError> {
    let engine = db.engine();
    let mut tables = Vec::with_capacity(FLOW_COLUMN_TABLES.len());
    for table in FLOW_COLUMN_TABLES {
        let sql = report_sql(engine, table);
        let row = crate::on_pool!(db, pool => {
            let row = sqlx::query(&sql).fetch_one(pool).await?;
            [
                row.try_get::<i64, _>(0)?,
                row.try_get::<i64, _>(1)?,
                row.try_get::<i64, _>(2)?,
                row.try_get::<i64, _>(3)?,
                row.try_get::<i64, _>(4)?,
                row.try_get::<i64, _>(5)?,
            ]
        });
        tables.push(TableReport {
            table: (*table).to_owned(),
            rows: row[0],
            linked: row[1],
            unlinked: UnlinkedReasons {
                no_session: row[2],
                dangling_session: row[3],
                tenant_mismatch: row[4],
                unparseable_id: row[5],
            },
        });
    }
    let counts = crate::on_pool!(db, pool => {
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM session_flow_mapping),
                    (SELECT count(DISTINCT session_id) FROM flowkey_mapping_findings WHERE kind = 'ambiguous'),
                    (SELECT count(*) FROM flowkey_mapping_findings WHERE kind = 'cross_tenant'),
                    (SELECT count(*) FROM session_flow_mapping WHERE flow_created_by_migration)",
        )
        .fetch_one(pool)
        .await?;
        [
            row.try_get::<i64, _>(0)?,
            row.try_get::<i64, _>(1)?,
            row.try_get::<i64, _>(2)?,
            row.try_get::<i64, _>(3)?,
        ]
    });
    Ok(MigrationReport {
        engine,
        tables,
        sessions_mapped: counts[0],
        ambiguous_sessions: counts[1],
        cross_tenant_conflicts: counts[2],
        flows_created: counts[3],
    })
}

/// One row: rows, linked, no session, dangling session, tenant mismatch, unparseable.
fn report_sql(engine: Engine, table: &str) -> String {
    let mapped = |key: &str| {
        format!("EXISTS (SELECT 1 FROM session_flow_mapping m WHERE m.session_id = {key})")
    };
    // Per table: (no session, dangling, tenant mismatch, unparseable) among unlinked rows.
    let (no_session, dangling, mismatch, unparseable) = match table {
        "data_imports" => (
            "r.session_id IS NULL AND NOT EXISTS (SELECT 1 FROM discovery_flows f \
             WHERE f.data_import_id = r.id OR f.import_session_id = r.id)"
                .to_owned(),
            format!("r.session_id IS NOT NULL AND NOT {}", mapped("r.session_id")),
            format!(
                "(r.session_id IS NOT NULL AND {}) OR (r.session_id IS NULL AND EXISTS (SELECT 1 \
                 FROM discovery_flows f WHERE f.data_import_id = r.id OR f.import_session_id = r.id))",
                mapped("r.session_id")
            ),
            "1 = 0".to_owned(),
        ),
        "raw_import_records" => (
            "r.session_id IS NULL AND NOT EXISTS (SELECT 1 FROM data_imports d \
             WHERE d.id = r.data_import_id AND d.flow_id IS NOT NULL)"
                .to_owned(),
            format!("r.session_id IS NOT NULL AND NOT {}", mapped("r.session_id")),
            format!(
                "(r.session_id IS NOT NULL AND {}) OR (r.session_id IS NULL AND EXISTS (SELECT 1 \
                 FROM data_imports d WHERE d.id = r.data_import_id AND d.flow_id IS NOT NULL))",
                mapped("r.session_id")
            ),
            "1 = 0".to_owned(),
        ),
        "import_field_mappings" => ("1 = 1".to_owned(), "1 = 0".to_owned(), "1 = 0".to_owned(), "1 = 0".to_owned()),
        "llm_usage_logs" => {
            let parsed = parse_session_sql(engine, "r.session_id");
            (
                "r.session_id IS NULL".to_owned(),
                format!("r.session_id IS NOT NULL AND {parsed} IS NOT NULL AND NOT {}", mapped(&parsed)),
                format!("r.session_id IS NOT NULL AND {}", mapped(&parsed)),
                format!("r.session_id IS NOT NULL AND {parsed} IS NULL"),
            )
        }
        _ => (
            "r.session_id IS NULL".to_owned(),
            format!("r.session_id IS NOT NULL AND NOT {}", mapped("r.session_id")),
            format!("r.session_id IS NOT NULL AND {}", mapped("r.session_id")),
            "1 = 0".to_owned(),
        ),
    };
    let count_when = |condition: &str| {
        format!("COALESCE(SUM(CASE WHEN r.flow_id IS NULL AND ({condition}) THEN 1 ELSE 0 END), 0)")
    };
    let cast = if engine == Engine::Postgres {
        "::bigint"
    } else {
        ""
    };
    format!(
        "SELECT count(*), count(r.flow_id), {}{cast}, {}{cast}, {}{cast}, {}{cast} FROM {table} r",
        count_when(&no_session),
        count_when(&dangling),
        count_when(&mismatch),
        count_when(&unparseable),
    )
}

impl std::fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<22} {:>9} {:>9} {:>11} {:>9} {:>9} {:>12}",
            "table", "rows", "linked", "no session", "dangling", "tenant", "unparseable"
        )?;
        for t in &self.tables {
            writeln!(
                f,
                "{:<22} {:>9} {:>9} {:>11} {:>9} {:>9} {:>12}",
                t.table,
                t.rows,
                t.linked,
                t.unlinked.no_session,
                t.unlinked.dangling_session,
                t.unlinked.tenant_mismatch,
                t.unlinked.unparseable_id
            )?;
        }
        writeln!(
            f,
            "sessions mapped: {}  ambiguous sessions: {}  cross-tenant conflicts: {}  flows created: {}",
            self.sessions_mapped, self.ambiguous_sessions, self.cross_tenant_conflicts, self.flows_created
        )
    }
}
