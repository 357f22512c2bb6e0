//! SQL of the compatibility service: resolving an id to its flow, the persisted legacy traffic
//! summary, and the mapping statistics operators read. Reads only, except the traffic summary.

use serde::Serialize;

use crate::compat::CompatError;
use crate::db::tenancy;
use crate::db::types::{DbTime, DbUuid};
use crate::db::{on_tx, KeyColumns, Tx};
use crate::ids::{AnyId, ClientAccountId, EngagementId, FlowId, TenantId};
use crate::migrate::flow::contract;

/// Every flow of the tenant that `id` may name. A bare UUID may be a flow id, a mapped
/// session id or a data import id; a prefixed id only a session. A mapping or an import only
/// counts when its flow exists in the same tenant.
pub async fn resolve_candidates(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    id: AnyId,
) -> Result<Vec<FlowId>, CompatError> {
    let flow = tenancy::names_binds("f", "$2", "$3");
    let mapping = tenancy::names_binds("m", "$2", "$3");
    let import = tenancy::import_visible("di", "$2", "$3");
    let session = tenancy::parent_agrees("data_import_sessions", "id", "m.session_id", "$2", "$3");
    let imports = contract::served_table(keys, tx.engine(), "data_imports");
    let by_session = format!(
        "SELECT m.flow_id FROM session_flow_mapping m \
          JOIN discovery_flows f ON f.flow_id = m.flow_id AND {flow} \
         WHERE m.session_id = $1 AND {mapping} AND {session}"
    );
    let sql = match id {
        AnyId::Bare(_) => format!(
            "SELECT f.flow_id FROM discovery_flows f WHERE f.flow_id = $1 AND {flow} \
             UNION {by_session} \
             UNION SELECT di.flow_id FROM {imports} di \
               JOIN discovery_flows f ON f.flow_id = di.flow_id AND {flow} \
             WHERE di.id = $1 AND {import}"
        ),
        AnyId::Session(_) => by_session,
    };
    let uuid = match id {
        AnyId::Bare(uuid) => uuid,
        AnyId::Session(session) => session.as_uuid(),
    };
    Ok(on_tx!(tx, conn => {
        sqlx::query_scalar(&sql)
            .bind(DbUuid(uuid))
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .fetch_all(&mut **conn)
            .await?
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
) -> Result<(), CompatError> {
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

/// The persisted summary, of one tenant or (for an operator) of every tenant.
pub async fn legacy_traffic(
    tx: &mut Tx<'_>,
    tenant: Option<TenantId>,
) -> Result<Vec<LegacyTrafficRow>, CompatError> {
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

/// The mapping's statistics, of one tenant or (for an operator) of every tenant.
pub async fn mapping_statistics(
    tx: &mut Tx<'_>,
    tenant: Option<TenantId>,
) -> Result<MappingStatistics, CompatError> {
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
