//! SQL for `session_flow_mapping`, `flowkey_legacy_traffic` and the schema check. Reads only,
//! except the mapping rows written with a new v1 upload and removed with their flow, and the
//! legacy traffic summary.

use serde::Serialize;

use crate::db::errors::{database_unavailable, schema_object_missing};
use crate::db::types::DbTime;
use crate::db::{on_pool, on_tx, Db, Tx};
use crate::ids::{AnyId, ClientAccountId, EngagementId, FlowId, SessionId, TenantId};
use crate::migrate::{revisions, MigrateError, Migrator, RunOptions};

/// Every flow of the tenant that `id` may name. A bare UUID may be a flow id, a mapped
/// session id or a data import id; a prefixed id only a session. A mapping or an import only
/// counts when its flow exists in the same tenant.
pub async fn resolve_candidates(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    id: AnyId,
) -> Result<Vec<FlowId>, sqlx::Error> {
    const BARE: &str = "\
        SELECT f.flow_id FROM discovery_flows f \
         WHERE f.flow_id = $1 AND f.client_account_id = $2 AND f.engagement_id = $3 \
        UNION \
        SELECT m.flow_id FROM session_flow_mapping m \
          JOIN discovery_flows f ON f.flow_id = m.flow_id \
           AND f.client_account_id = $2 AND f.engagement_id = $3 \
         WHERE m.session_id = $1 AND m.client_account_id = $2 AND m.engagement_id = $3 \
        UNION \
        SELECT di.flow_id FROM data_imports di \
          JOIN discovery_flows f ON f.flow_id = di.flow_id \
           AND f.client_account_id = $2 AND f.engagement_id = $3 \
         WHERE di.id = $1 \
           AND (di.client_account_id IS NULL OR di.client_account_id = $2) \
           AND (di.engagement_id IS NULL OR di.engagement_id = $3)";
    const SESSION: &str = "\
        SELECT m.flow_id FROM session_flow_mapping m \
          JOIN discovery_flows f ON f.flow_id = m.flow_id \
           AND f.client_account_id = $2 AND f.engagement_id = $3 \
         WHERE m.session_id = $1 AND m.client_account_id = $2 AND m.engagement_id = $3";
    let (sql, uuid) = match id {
        AnyId::Bare(uuid) => (BARE, uuid),
        AnyId::Session(session) => (SESSION, session.as_uuid()),
    };
    let id = crate::db::types::DbUuid(uuid);
    Ok(on_tx!(tx, conn => {
        sqlx::query_scalar(sql)
            .bind(id)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .fetch_all(&mut **conn)
            .await?
    }))
}

/// The flow a session is mapped to, within the tenant.
pub async fn mapped_flow(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    session_id: SessionId,
) -> Result<Option<FlowId>, sqlx::Error> {
    Ok(on_tx!(tx, conn => {
        sqlx::query_scalar(
            "SELECT flow_id FROM session_flow_mapping \
             WHERE session_id = $1 AND client_account_id = $2 AND engagement_id = $3",
        )
        .bind(session_id)
        .bind(tenant.client_account_id)
        .bind(tenant.engagement_id)
        .fetch_optional(&mut **conn)
        .await?
    }))
}

/// The smallest session mapped to a flow (the one a deletion audit names).
pub async fn first_session_of_flow(
    tx: &mut Tx<'_>,
    flow_id: FlowId,
) -> Result<Option<SessionId>, sqlx::Error> {
    Ok(on_tx!(tx, conn => {
        sqlx::query_scalar(
            "SELECT session_id FROM session_flow_mapping WHERE flow_id = $1 \
             ORDER BY session_id LIMIT 1",
        )
        .bind(flow_id)
        .fetch_optional(&mut **conn)
        .await?
    }))
}

pub async fn insert_mapping(
    tx: &mut Tx<'_>,
    session_id: SessionId,
    flow_id: FlowId,
    tenant: TenantId,
    rule: &str,
) -> Result<(), sqlx::Error> {
    on_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO session_flow_mapping (session_id, flow_id, client_account_id, \
             engagement_id, rule, flow_created_by_migration, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(session_id)
        .bind(flow_id)
        .bind(tenant.client_account_id)
        .bind(tenant.engagement_id)
        .bind(rule)
        .bind(false)
        .bind(DbTime::now())
        .execute(&mut **conn)
        .await?
        .rows_affected()
    });
    Ok(())
}

/// Removes the mapping rows of a flow being deleted.
pub async fn delete_mappings_of_flow(tx: &mut Tx<'_>, flow_id: FlowId) -> Result<u64, sqlx::Error> {
    Ok(on_tx!(tx, conn => {
        sqlx::query("DELETE FROM session_flow_mapping WHERE flow_id = $1")
            .bind(flow_id)
            .execute(&mut **conn)
            .await?
            .rows_affected()
    }))
}

/// One route's legacy use by one tenant, as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct LegacyTrafficRow {
    pub route: String,
    pub client_account_id: ClientAccountId,
    pub engagement_id: EngagementId,
    pub hits: i64,
    pub first_seen: DbTime,
    pub last_seen: DbTime,
}

/// Adds hits to the persisted summary (one upsert per route and tenant).
pub async fn add_legacy_hits(
    tx: &mut Tx<'_>,
    route: &str,
    tenant: TenantId,
    hits: i64,
    first_seen: DbTime,
    last_seen: DbTime,
) -> Result<(), sqlx::Error> {
    on_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO flowkey_legacy_traffic (route, client_account_id, engagement_id, hits, \
             first_seen, last_seen) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (route, client_account_id, engagement_id) DO UPDATE SET \
             hits = flowkey_legacy_traffic.hits + excluded.hits, \
             last_seen = CASE WHEN excluded.last_seen > flowkey_legacy_traffic.last_seen \
                         THEN excluded.last_seen ELSE flowkey_legacy_traffic.last_seen END",
        )
        .bind(route)
        .bind(tenant.client_account_id)
        .bind(tenant.engagement_id)
        .bind(hits)
        .bind(first_seen)
        .bind(last_seen)
        .execute(&mut **conn)
        .await?
        .rows_affected()
    });
    Ok(())
}

/// The persisted summary, every tenant or one.
pub async fn legacy_traffic(
    tx: &mut Tx<'_>,
    tenant: Option<TenantId>,
) -> Result<Vec<LegacyTrafficRow>, sqlx::Error> {
    Ok(on_tx!(tx, conn => {
        sqlx::query_as(
            "SELECT route, client_account_id, engagement_id, hits, first_seen, last_seen \
             FROM flowkey_legacy_traffic \
             WHERE ($1 IS NULL OR client_account_id = $1) AND ($2 IS NULL OR engagement_id = $2) \
             ORDER BY route, client_account_id, engagement_id",
        )
        .bind(tenant.map(|t| t.client_account_id))
        .bind(tenant.map(|t| t.engagement_id))
        .fetch_all(&mut **conn)
        .await?
    }))
}

/// How many sessions each mapping rule linked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RuleCount {
    pub rule: String,
    pub sessions: i64,
    pub flows: i64,
}

/// The shape of the session→flow mapping, for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MappingStatistics {
    pub sessions_mapped: i64,
    pub flows_with_sessions: i64,
    pub flows_without_sessions: i64,
    pub flows_created_by_migration: i64,
    pub by_rule: Vec<RuleCount>,
}

pub async fn mapping_statistics(
    tx: &mut Tx<'_>,
    tenant: Option<TenantId>,
) -> Result<MappingStatistics, sqlx::Error> {
    let client = tenant.map(|t| t.client_account_id);
    let engagement = tenant.map(|t| t.engagement_id);
    const IN_TENANT: &str =
        "($1 IS NULL OR client_account_id = $1) AND ($2 IS NULL OR engagement_id = $2)";
    let by_rule_sql = format!(
        "SELECT rule, COUNT(*) AS sessions, COUNT(DISTINCT flow_id) AS flows \
         FROM session_flow_mapping WHERE {IN_TENANT} GROUP BY rule ORDER BY rule"
    );
    let totals_sql = format!(
        "SELECT COUNT(*), COUNT(DISTINCT flow_id), \
         COALESCE(SUM(CASE WHEN flow_created_by_migration THEN 1 ELSE 0 END), 0) \
         FROM session_flow_mapping WHERE {IN_TENANT}"
    );
    let without_sql = format!(
        "SELECT COUNT(*) FROM discovery_flows f WHERE {IN_TENANT} AND NOT EXISTS \
         (SELECT 1 FROM session_flow_mapping m WHERE m.flow_id = f.flow_id)"
    );
    on_tx!(tx, conn => {
        let by_rule: Vec<RuleCount> = sqlx::query_as(&by_rule_sql)
            .bind(client)
            .bind(engagement)
            .fetch_all(&mut **conn)
            .await?;
        let (sessions_mapped, flows_with_sessions, flows_created_by_migration): (i64, i64, i64) =
            sqlx::query_as(&totals_sql)
                .bind(client)
                .bind(engagement)
                .fetch_one(&mut **conn)
                .await?;
        let flows_without_sessions: i64 = sqlx::query_scalar(&without_sql)
            .bind(client)
            .bind(engagement)
            .fetch_one(&mut **conn)
            .await?;
        Ok(MappingStatistics {
            sessions_mapped,
            flows_with_sessions,
            flows_without_sessions,
            flows_created_by_migration,
            by_rule,
        })
    })
}

/// What the service needs of the schema, and what is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaCheck {
    /// The revision `flowkey_versions` records, when the runner has recorded one.
    pub recorded_revision: Option<String>,
    /// The last revision this flowkey knows (`head`).
    pub head: &'static str,
    /// Head tables and columns the database lacks.
    pub missing: Vec<&'static str>,
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
    const PROBES: &[(&str, &str)] = &[
        (
            "data_imports.flow_id",
            "SELECT flow_id FROM data_imports WHERE 1 = 0",
        ),
        (
            "raw_import_records.flow_id",
            "SELECT flow_id FROM raw_import_records WHERE 1 = 0",
        ),
        (
            "import_field_mappings.flow_id",
            "SELECT flow_id FROM import_field_mappings WHERE 1 = 0",
        ),
        ("assets.flow_id", "SELECT flow_id FROM assets WHERE 1 = 0"),
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
    ];
    db.execute_plain("SELECT 1").await?;
    let head = revisions::all()
        .last()
        .map(|revision| revision.id)
        .unwrap_or("head");
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
    for (name, probe) in PROBES {
        match db.execute_plain(probe).await {
            Ok(_) => {}
            Err(err) if schema_object_missing(&err) => missing.push(*name),
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

/// A mapped legacy session, as `session_flow_mapping` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappedSession {
    pub session_id: SessionId,
    pub flow_id: FlowId,
    pub tenant: TenantId,
    pub rule: String,
}

/// One mapped session per mapping rule (the smallest session id of each), for showing how
/// each kind of legacy id resolves.
pub async fn one_session_per_rule(db: &Db) -> Result<Vec<MappedSession>, sqlx::Error> {
    let rows: Vec<(SessionId, FlowId, ClientAccountId, EngagementId, String)> = on_pool!(db, pool => {
        sqlx::query_as(
            "SELECT session_id, flow_id, client_account_id, engagement_id, rule FROM \
             (SELECT session_id, flow_id, client_account_id, engagement_id, rule, \
                     ROW_NUMBER() OVER (PARTITION BY rule ORDER BY session_id) AS n \
              FROM session_flow_mapping) ranked \
             WHERE n = 1 ORDER BY rule",
        )
        .fetch_all(pool)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(
            |(session_id, flow_id, client, engagement, rule)| MappedSession {
                session_id,
                flow_id,
                tenant: TenantId::new(client, engagement),
                rule,
            },
        )
        .collect())
}
