use std::time::Duration;

use serde::Serialize;

use crate::compat::cache::{CacheKey, ResolveCache};
use crate::compat::traffic::LegacyTraffic;
use crate::compat::{
    store, CacheStats, CompatError, CompatMetrics, LegacyTrafficRow, MappingStatistics,
};
use crate::db::{Db, Tx};
use crate::field_mappings::{self, ImportFieldMapping};
use crate::flags::FlowIdPrimary;
use crate::flows::{self, DiscoveryFlow, FlowsError};
use crate::ids::{AnyId, FlowId, ImportId, SessionId, TenantId};
use crate::imports::{self, store::DeletedRows, DataImport, RawImportRecord};
use crate::paging::{Page, PageRequest};

/// Knobs of the compatibility service.
#[derive(Debug, Clone)]
pub struct CompatConfig {
    /// How long a resolved id is trusted without asking the database again; bounds how long
    /// a deletion made by another server can go unnoticed here.
    pub cache_ttl: Duration,
    pub cache_max_entries: usize,
    /// A caller using legacy ids on a route is logged at most once per this interval.
    pub log_interval: Duration,
}

impl Default for CompatConfig {
    fn default() -> Self {
        Self {
            cache_ttl: Duration::from_secs(30),
            cache_max_entries: 100_000,
            log_interval: Duration::from_secs(300),
        }
    }
}

/// What a flow deletion removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeletedFlow {
    pub flow_id: FlowId,
    pub imports: u64,
    pub records: u64,
    pub field_mappings: u64,
    pub assets: u64,
    pub session_mappings: u64,
}

/// What a legacy (v1) route reads for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyRead {
    /// The session's newest import.
    Import,
    /// The session's flow.
    Flow,
    /// One page of the session's field mappings.
    Mappings(PageRequest),
    /// One page of the raw records of the session's newest import.
    Records(PageRequest),
}

/// The answer to a [`LegacyRead`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum LegacyAnswer {
    Import(Box<DataImport>),
    Flow(Box<DiscoveryFlow>),
    Mappings(Page<ImportFieldMapping>),
    Records(Page<RawImportRecord>),
}

/// Resolves legacy ids to flows within a tenant, reads through either key, and accounts for
/// every use of a legacy id. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct SessionFlowCompatibilityService {
    db: Db,
    cache: ResolveCache,
    traffic: LegacyTraffic,
    metrics: CompatMetrics,
}

impl SessionFlowCompatibilityService {
    pub fn new(db: Db, config: &CompatConfig, metrics: CompatMetrics) -> Self {
        Self {
            db,
            cache: ResolveCache::new(config.cache_ttl, config.cache_max_entries),
            traffic: LegacyTraffic::new(config.log_interval),
            metrics,
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn metrics(&self) -> &CompatMetrics {
        &self.metrics
    }

    /// The flow that `id` names within `tenant`: a flow id, a legacy session id (any client
    /// form) or a data import id. Reads only; answers from the cache when it can.
    pub async fn resolve(&self, id: AnyId, tenant: TenantId) -> Result<FlowId, CompatError> {
        let key = CacheKey::new(tenant, id);
        if let Some(flow) = self.cache.get(&key) {
            self.metrics.cache_hits.inc();
            return Ok(flow);
        }
        self.metrics.cache_misses.inc();
        let mut tx = self.db.begin().await?;
        let candidates = store::resolve_candidates(&mut tx, tenant, id).await;
        tx.rollback().await?;
        let mut candidates = candidates?;
        candidates.sort();
        candidates.dedup();
        match candidates.as_slice() {
            [] => Err(CompatError::NotFound { id: describe(id) }),
            [flow] => {
                self.cache.insert(key, *flow);
                Ok(*flow)
            }
            _ => {
                self.metrics.resolve_conflicts.inc();
                Err(CompatError::Conflict {
                    id: describe(id),
                    flows: candidates,
                })
            }
        }
    }

    /// One page of the raw records of the newest import of the flow `id` names: a flow id,
    /// a legacy session id in any client form, or an import id (resolved as
    /// [`Self::resolve`] does, so a session of another tenant is not found). Reads only.
    pub async fn records(
        &self,
        tenant: TenantId,
        id: AnyId,
        page: &PageRequest,
    ) -> Result<Page<RawImportRecord>, CompatError> {
        let flow_id = self.resolve(id, tenant).await?;
        let mut tx = self.db.begin().await?;
        let records = imports::store::list_records_for_flow(&mut tx, tenant, flow_id, page).await;
        tx.rollback().await?;
        records?.ok_or_else(|| CompatError::NotFound { id: describe(id) })
    }

    /// Parses `text` as any id form and resolves it.
    pub async fn resolve_text(&self, text: &str, tenant: TenantId) -> Result<FlowId, CompatError> {
        self.resolve(AnyId::parse(text)?, tenant).await
    }

    /// Counts a request that named something by a legacy id (metrics now, the persisted
    /// summary at the next flush) and logs it once per caller and route per interval.
    pub fn record_legacy_use(&self, route: &str, tenant: TenantId, caller: &str) {
        self.metrics
            .legacy_id_hits
            .with_label_values(&[
                route,
                &tenant.client_account_id.to_string(),
                &tenant.engagement_id.to_string(),
            ])
            .inc();
        if self.traffic.record(route, tenant, caller) {
            tracing::warn!(route, %tenant, caller, "legacy session id used; clients should move to the v3 API by flow id");
        }
    }

    /// Writes the legacy hits counted since the last flush; answers how many route/tenant
    /// rows it wrote. Hits whose write failed are kept for the next flush.
    pub async fn flush_legacy_traffic(&self) -> Result<usize, CompatError> {
        let pending = self.traffic.take_pending();
        if pending.is_empty() {
            return Ok(0);
        }
        let written = pending.len();
        let result: Result<(), sqlx::Error> = async {
            let mut tx = self.db.begin_write().await?;
            for ((route, tenant), hits) in &pending {
                store::add_legacy_hits(
                    &mut tx,
                    route,
                    *tenant,
                    hits.hits,
                    hits.first_seen,
                    hits.last_seen,
                )
                .await?;
            }
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => Ok(written),
            Err(err) => {
                self.traffic.restore(pending);
                Err(err.into())
            }
        }
    }

    /// The persisted legacy traffic summary (last seen and count per route), all tenants or
    /// one.
    pub async fn legacy_traffic(
        &self,
        tenant: Option<TenantId>,
    ) -> Result<Vec<LegacyTrafficRow>, CompatError> {
        let mut tx = self.db.begin().await?;
        let rows = store::legacy_traffic(&mut tx, tenant).await;
        tx.rollback().await?;
        Ok(rows?)
    }

    pub async fn mapping_statistics(
        &self,
        tenant: Option<TenantId>,
    ) -> Result<MappingStatistics, CompatError> {
        let mut tx = self.db.begin().await?;
        let stats = store::mapping_statistics(&mut tx, tenant).await;
        tx.rollback().await?;
        Ok(stats?)
    }

    /// The integrity and backfill checks that gate flag `on`, callable at runtime (the same
    /// function `flowkey flag set` consults).
    pub async fn integrity_check(
        &self,
    ) -> Result<crate::flags::Readiness, crate::flags::FlagError> {
        crate::flags::readiness(&self.db).await
    }

    /// Forgets every cached id that resolved to `flow` (after a change made elsewhere).
    pub fn invalidate_flow(&self, flow: FlowId) {
        self.cache.invalidate_flow(flow);
    }

    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Deletes a flow of the tenant and every row keyed by it, in one transaction (the
    /// foreign keys are NO ACTION: nothing goes silently), records the deletion in
    /// `flow_deletion_audit` and drops the flow from the cache.
    pub async fn delete_flow(
        &self,
        tenant: TenantId,
        flow_id: FlowId,
        deleted_by: &str,
        reason: Option<String>,
    ) -> Result<DeletedFlow, CompatError> {
        let mut tx = self.db.begin_write().await?;
        let outcome = delete_flow_rows(&mut tx, tenant, flow_id, deleted_by, reason).await;
        let deleted = match outcome {
            Ok(deleted) => deleted,
            Err(err) => {
                tx.rollback().await?;
                return Err(err);
            }
        };
        tx.commit().await?;
        self.cache.invalidate_flow(flow_id);
        Ok(deleted)
    }

    /// Deletes one import of the tenant with its records and mappings; ids that resolved
    /// through it are forgotten.
    pub async fn delete_import(
        &self,
        tenant: TenantId,
        import_id: ImportId,
    ) -> Result<DeletedRows, CompatError> {
        let mut tx = self.db.begin_write().await?;
        let outcome = imports::store::delete(&mut tx, tenant, import_id).await;
        let (_, deleted) = match outcome {
            Ok(done) => done,
            Err(err) => {
                tx.rollback().await?;
                return Err(err.into());
            }
        };
        tx.commit().await?;
        self.cache.invalidate_id(import_id.as_uuid());
        Ok(deleted)
    }

    /// A legacy route's read for a session, keyed as the flag says: `Off` reads through the
    /// `session_id` columns, `On` resolves the session to its flow and reads through
    /// `flow_id`, `Shadow` does both, serves the session-keyed answer and counts and logs
    /// every difference.
    pub async fn legacy_read(
        &self,
        route: &str,
        tenant: TenantId,
        session: SessionId,
        what: LegacyRead,
        mode: FlowIdPrimary,
    ) -> Result<LegacyAnswer, CompatError> {
        let answer = match mode {
            FlowIdPrimary::Off => self.read_by_session(tenant, session, what).await?,
            FlowIdPrimary::On => self.read_by_flow(tenant, session, what).await?,
            FlowIdPrimary::Shadow => {
                let by_session = self.read_by_session(tenant, session, what).await?;
                match self.read_by_flow(tenant, session, what).await {
                    Ok(by_flow) if by_flow == by_session => {}
                    // The legacy key finds nothing where the mapping finds the session's
                    // flow: a session linked by rule `data_import` or `flow_id`, whose flow
                    // the legacy platform never found either (its flow's `import_session_id`
                    // holds an import id, or nothing). `on` will answer 200 where legacy
                    // answered 404; that is the migration working, not a disagreement to
                    // fix, so it is counted apart from the mismatches that gate `on`.
                    Ok(Some(_)) if by_session.is_none() => {
                        self.metrics
                            .shadow_recovered
                            .with_label_values(&[route])
                            .inc();
                        tracing::info!(route, %tenant, %session, "shadow read: only the flow key finds an answer (legacy answered 404)");
                    }
                    Ok(_) => {
                        self.metrics
                            .shadow_mismatches
                            .with_label_values(&[route])
                            .inc();
                        tracing::warn!(route, %tenant, %session, "shadow read: flow-keyed answer differs from session-keyed answer");
                    }
                    Err(err) => {
                        self.metrics
                            .shadow_mismatches
                            .with_label_values(&[route])
                            .inc();
                        tracing::warn!(route, %tenant, %session, error = %err, "shadow read: flow-keyed read failed");
                    }
                }
                by_session
            }
        };
        answer.ok_or_else(|| CompatError::NotFound {
            id: format!("session {session}"),
        })
    }

    async fn read_by_session(
        &self,
        tenant: TenantId,
        session: SessionId,
        what: LegacyRead,
    ) -> Result<Option<LegacyAnswer>, CompatError> {
        let mut tx = self.db.begin().await?;
        let answer = read_session_keyed(&mut tx, tenant, session, what).await;
        tx.rollback().await?;
        answer
    }

    async fn read_by_flow(
        &self,
        tenant: TenantId,
        session: SessionId,
        what: LegacyRead,
    ) -> Result<Option<LegacyAnswer>, CompatError> {
        let flow_id = match self.resolve(AnyId::Session(session), tenant).await {
            Ok(flow_id) => flow_id,
            Err(CompatError::NotFound { .. }) => return Ok(None),
            Err(err) => return Err(err),
        };
        let mut tx = self.db.begin().await?;
        let answer = read_flow_keyed(&mut tx, tenant, flow_id, what).await;
        tx.rollback().await?;
        answer
    }
}

async fn read_session_keyed(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    session: SessionId,
    what: LegacyRead,
) -> Result<Option<LegacyAnswer>, CompatError> {
    Ok(match what {
        LegacyRead::Import => imports::store::latest_for_session(tx, tenant, session)
            .await?
            .map(|import| LegacyAnswer::Import(Box::new(import))),
        LegacyRead::Flow => flows::store::latest_for_session(tx, tenant, session)
            .await?
            .map(|flow| LegacyAnswer::Flow(Box::new(flow))),
        LegacyRead::Mappings(page) => {
            if imports::store::latest_for_session(tx, tenant, session)
                .await?
                .is_none()
            {
                return Ok(None);
            }
            let mappings =
                field_mappings::store::list_for_session(tx, tenant, session, &page).await?;
            Some(LegacyAnswer::Mappings(mappings))
        }
        LegacyRead::Records(page) => {
            imports::store::list_records_for_session(tx, tenant, session, &page)
                .await?
                .map(LegacyAnswer::Records)
        }
    })
}

async fn read_flow_keyed(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    flow_id: FlowId,
    what: LegacyRead,
) -> Result<Option<LegacyAnswer>, CompatError> {
    Ok(match what {
        LegacyRead::Import => imports::store::latest_for_flow(tx, tenant, flow_id)
            .await?
            .map(|import| LegacyAnswer::Import(Box::new(import))),
        LegacyRead::Flow => flows::store::find(tx, tenant, flow_id)
            .await?
            .map(|flow| LegacyAnswer::Flow(Box::new(flow))),
        LegacyRead::Mappings(page) => {
            if imports::store::latest_for_flow(tx, tenant, flow_id)
                .await?
                .is_none()
            {
                return Ok(None);
            }
            let mappings = field_mappings::store::list_for_flow(tx, tenant, flow_id, &page).await?;
            Some(LegacyAnswer::Mappings(mappings))
        }
        LegacyRead::Records(page) => {
            imports::store::list_records_for_flow(tx, tenant, flow_id, &page)
                .await?
                .map(LegacyAnswer::Records)
        }
    })
}

async fn delete_flow_rows(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    flow_id: FlowId,
    deleted_by: &str,
    reason: Option<String>,
) -> Result<DeletedFlow, CompatError> {
    flows::store::get(tx, tenant, flow_id).await?;
    let session_id = store::first_session_of_flow(tx, flow_id).await?;
    let rows = imports::store::delete_for_flow(tx, flow_id).await?;
    let assets = flows::store::delete_assets(tx, flow_id).await?;
    let session_mappings = store::delete_mappings_of_flow(tx, flow_id).await?;
    let deleted = DeletedFlow {
        flow_id,
        imports: rows.imports,
        records: rows.records,
        field_mappings: rows.field_mappings,
        assets,
        session_mappings,
    };
    let audit = flows::store::DeletionAudit {
        flow_id,
        session_id,
        tenant,
        user_id: deleted_by.to_owned(),
        reason,
        data_deleted: serde_json::to_value(&deleted).unwrap_or_default(),
    };
    flows::store::insert_deletion_audit(tx, &audit).await?;
    if flows::store::delete(tx, tenant, flow_id).await? == 0 {
        return Err(FlowsError::NotFound { flow_id }.into());
    }
    Ok(deleted)
}

fn describe(id: AnyId) -> String {
    match id {
        AnyId::Bare(uuid) => format!("id {uuid}"),
        AnyId::Session(session) => format!("session {session}"),
    }
}
