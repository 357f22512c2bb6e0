//! `report`: what the migration linked, what it left unlinked and why. A read: it writes
//! nothing. One aggregate pass per table.

use serde::Serialize;
use sqlx::Row;
use std::fmt::Write as _;

use crate::db::{Db, Engine};
use crate::migrate::flow::linked::{Applies, LinkedTable, SessionKey, Unlinked, LINKED_TABLES};
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
    /// Session ids outside what flowkey migrates, left as they are.
    pub not_migrated: crate::migrate::flow::discovery::NotMigrated,
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
    let all: Vec<&LinkedTable> = LINKED_TABLES.iter().collect();
    crate::migrate::flow::verify::require_flow_ids(db, &all).await?;
    let engine = db.engine();
    let mut tables = Vec::with_capacity(LINKED_TABLES.len());
    for table in LINKED_TABLES {
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
            table: table.name.to_owned(),
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
        not_migrated: crate::migrate::flow::discovery::discover_outside_migrated(db).await?,
    })
}

/// One row: rows, linked, no session, dangling session, tenant mismatch, unparseable, each
/// reason derived from the table's paths: an unlinked row of a path whose source has no row
/// for its keys is "no session" (or "dangling" for a session path); one whose source has a
/// row that the tenant rule refused is a tenant mismatch; a free-text session that names no
/// session id is unparseable.
fn report_sql(engine: Engine, table: &LinkedTable) -> String {
    let mut no_session = Vec::new();
    let mut dangling = Vec::new();
    let mut mismatch = Vec::new();
    let mut unparseable = Vec::new();
    let paths = table.paths(engine, "r");
    if !paths
        .iter()
        .any(|path| path.applies != Applies::WithSession)
    {
        // Only a session path: a row without a session has nothing to follow.
        no_session.push("r.session_id IS NULL".to_owned());
    }
    for path in &paths {
        let mut applies: Vec<String> = path.applies_sql("r").into_iter().collect();
        if path.applies == Applies::WithSession {
            if let Some(SessionKey::FreeText) = table.rule().session {
                let parsed = table.session_key_sql(engine, "r").unwrap_or_default();
                unparseable.push(join_and(&applies, &format!("{parsed} IS NULL")));
                applies.push(format!("{parsed} IS NOT NULL"));
            }
        }
        let source = format!("EXISTS (SELECT 1 FROM {} WHERE {})", path.source, path.keys);
        let absent = join_and(&applies, &format!("NOT {source}"));
        match path.without_source {
            Unlinked::NoSession => no_session.push(absent),
            Unlinked::DanglingSession => dangling.push(absent),
        }
        let present = join_and(&applies, &source);
        // Found but not linked: the tenant rule refused it. A path without a tenant rule
        // links whatever it finds, so such a row simply has nothing to follow yet.
        match path.tenant {
            Some(_) => mismatch.push(present),
            None => no_session.push(present),
        }
    }
    let count_when = |conditions: &[String]| {
        let condition = if conditions.is_empty() {
            "1 = 0".to_owned()
        } else {
            conditions
                .iter()
                .map(|condition| format!("({condition})"))
                .collect::<Vec<_>>()
                .join(" OR ")
        };
        format!("COALESCE(SUM(CASE WHEN r.flow_id IS NULL AND ({condition}) THEN 1 ELSE 0 END), 0)")
    };
    let cast = if engine == Engine::Postgres {
        "::bigint"
    } else {
        ""
    };
    format!(
        "SELECT count(*), count(r.flow_id), {}{cast}, {}{cast}, {}{cast}, {}{cast} FROM {} r",
        count_when(&no_session),
        count_when(&dangling),
        count_when(&mismatch),
        count_when(&unparseable),
        table.name,
    )
}

fn join_and(conditions: &[String], last: &str) -> String {
    conditions
        .iter()
        .map(String::as_str)
        .chain([last])
        .collect::<Vec<_>>()
        .join(" AND ")
}

impl std::fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Written to a String, which never fails, then to the formatter once.
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<22} {:>9} {:>9} {:>11} {:>9} {:>9} {:>12}",
            "table", "rows", "linked", "no session", "dangling", "tenant", "unparseable"
        );
        for t in &self.tables {
            let _ = writeln!(
                out,
                "{:<22} {:>9} {:>9} {:>11} {:>9} {:>9} {:>12}",
                t.table,
                t.rows,
                t.linked,
                t.unlinked.no_session,
                t.unlinked.dangling_session,
                t.unlinked.tenant_mismatch,
                t.unlinked.unparseable_id
            );
        }
        let _ = writeln!(out,
            "sessions mapped: {}  ambiguous sessions: {}  cross-tenant conflicts: {}  flows created: {}",
            self.sessions_mapped, self.ambiguous_sessions, self.cross_tenant_conflicts, self.flows_created
        );
        let _ = write!(out, "{}", self.not_migrated);
        f.write_str(&out)
    }
}
