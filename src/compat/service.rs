use std::time::Duration;

use crate::compat::cache::{CacheKey, ResolveCache};
use crate::compat::legacy::{self, LegacyCall, LegacyQuery, ShadowCategory};
use crate::compat::traffic::LegacyTraffic;
use crate::compat::{
    store, CacheStats, CompatError, CompatMetrics, LegacyTrafficRow, MappingStatistics,
};
use crate::db::{Db, KeyColumns, ServedKeys};
use crate::field_mappings::ImportFieldMapping;
use crate::flags::FlowIdPrimary;
use crate::flows::DiscoveryFlow;
use crate::ids::{AnyId, FlowId, ImportId, TenantId};
use crate::imports::RawImportRecord;
use crate::imports::{self, store::DeletedRows, DataImport, DeletedFlow, FlowDeletion};
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

/// Resolves legacy ids to flows within a tenant, reads through either key, and accounts for
/// every use of a legacy id. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct SessionFlowCompatibilityService {
    db: Db,
    /// The key columns of the served schema (set by the server's schema gate).
    keys: ServedKeys,
    cache: ResolveCache,
    traffic: LegacyTraffic,
    metrics: CompatMetrics,
}

impl SessionFlowCompatibilityService {
    pub fn new(db: Db, config: &CompatConfig, metrics: CompatMetrics, keys: ServedKeys) -> Self {
        Self {
            db,
            keys,
            cache: ResolveCache::new(config.cache_ttl, config.cache_max_entries),
            traffic: LegacyTraffic::new(config.log_interval),
            metrics,
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The key columns the stores follow now.
    pub fn keys(&self) -> KeyColumns {
        self.keys.get()
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
        let candidates = store::resolve_candidates(&mut tx, self.keys(), tenant, id).await;
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
        let records = legacy::Records(page, self.keys())
            .by_flow(&mut tx, tenant, flow_id)
            .await;
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
        let result: Result<(), CompatError> = async {
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
            Ok(tx.commit().await?)
        }
        .await;
        match result {
            Ok(()) => Ok(written),
            Err(err) => {
                self.traffic.restore(pending);
                Err(err)
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
        rows
    }

    pub async fn mapping_statistics(
        &self,
        tenant: Option<TenantId>,
    ) -> Result<MappingStatistics, CompatError> {
        let mut tx = self.db.begin().await?;
        let stats = store::mapping_statistics(&mut tx, tenant).await;
        tx.rollback().await?;
        stats
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

    /// Deletes a flow of the tenant and every row keyed by it (`imports::delete_flow`) and
    /// forgets every id that resolved to it.
    pub async fn delete_flow(
        &self,
        tenant: TenantId,
        flow_id: FlowId,
        deletion: FlowDeletion,
    ) -> Result<DeletedFlow, CompatError> {
        let deleted =
            imports::delete_flow(&self.db, self.keys(), tenant, flow_id, deletion).await?;
        self.cache.invalidate_flow(flow_id);
        Ok(deleted)
    }

    /// Deletes one import of the tenant with its records and mappings
    /// (`imports::delete_import`); ids that resolved through it are forgotten.
    pub async fn delete_import(
        &self,
        tenant: TenantId,
        import_id: ImportId,
    ) -> Result<DeletedRows, CompatError> {
        let deleted = imports::delete_import(&self.db, self.keys(), tenant, import_id).await?;
        self.cache.invalidate_id(import_id.as_uuid());
        Ok(deleted)
    }

    /// `GET /api/v1/data-import/import/{session_id}`: the session's newest import.
    pub async fn legacy_import(&self, call: LegacyCall) -> Result<DataImport, CompatError> {
        self.legacy_read(call, &legacy::NewestImport(self.keys()))
            .await
    }

    /// The session's flow (processing status and flow status routes).
    pub async fn legacy_flow(&self, call: LegacyCall) -> Result<DiscoveryFlow, CompatError> {
        self.legacy_read(call, &legacy::SessionFlow(self.keys()))
            .await
    }

    /// One page of the session's field mappings (validation session route).
    pub async fn legacy_mappings(
        &self,
        call: LegacyCall,
        page: &PageRequest,
    ) -> Result<Page<ImportFieldMapping>, CompatError> {
        self.legacy_read(call, &legacy::Mappings(page, self.keys()))
            .await
    }

    /// One page of the raw records of the session's newest import.
    pub async fn legacy_records(
        &self,
        call: LegacyCall,
        page: &PageRequest,
    ) -> Result<Page<RawImportRecord>, CompatError> {
        self.legacy_read(call, &legacy::Records(page, self.keys()))
            .await
    }

    /// A legacy read keyed as the flag says: `Off` reads through the `session_id` columns,
    /// `On` resolves the session to its flow and reads through `flow_id`, `Shadow` does both,
    /// serves the session-keyed answer and counts and logs every difference.
    async fn legacy_read<Q: LegacyQuery>(
        &self,
        call: LegacyCall,
        query: &Q,
    ) -> Result<Q::Answer, CompatError> {
        let LegacyCall { session, mode, .. } = call;
        // After the contract the session key is gone: whatever the flag says (`flag set`
        // refuses `off` and `shadow` there, but a tenant's stored value or the server's
        // default may predate it), legacy ids are answered from the mapping, as under `on`.
        let mode = match self.keys() {
            KeyColumns::Contracted => FlowIdPrimary::On,
            KeyColumns::Expanded => mode,
        };
        let call = LegacyCall { mode, ..call };
        let answer = match mode {
            FlowIdPrimary::Off => self.read_by_session(call, query).await?,
            FlowIdPrimary::On => self.read_by_flow(call, query).await?,
            FlowIdPrimary::Shadow => self.shadow_read(call, query).await?,
        };
        answer.ok_or_else(|| CompatError::NotFound {
            id: format!("session {session}"),
        })
    }

    /// `Shadow`: the session-keyed answer, served, and the flow-keyed one, compared. Both
    /// (and the explanation of a difference) read one snapshot: read one after the other,
    /// an old-code write landing between them showed as a mismatch that was none (the
    /// drill saw one in 1,420 reads while its writers added imports).
    async fn shadow_read<Q: LegacyQuery>(
        &self,
        call: LegacyCall,
        query: &Q,
    ) -> Result<Option<Q::Answer>, CompatError> {
        let route = call.route;
        let mut tx = self.db.begin_read_snapshot().await?;
        let compared = self.compare_in(&mut tx, call, query).await;
        tx.rollback().await?;
        let (by_session, difference) = compared?;
        self.metrics.shadow_reads.with_label_values(&[route]).inc();
        match difference {
            Difference::None => {}
            Difference::Recovered => {
                self.metrics
                    .shadow_recovered
                    .with_label_values(&[route])
                    .inc();
                tracing::info!(route, tenant = %call.tenant, session = %call.session, "shadow read: only the flow key finds an answer (legacy answered 404)");
            }
            Difference::Explained(categories) => {
                for category in categories {
                    self.metrics
                        .shadow_explained
                        .with_label_values(&[route, category.as_str()])
                        .inc();
                }
            }
            Difference::Mismatch(what) => self.mismatch(call, &what).await,
        }
        Ok(by_session)
    }

    /// Both answers in `tx`, and how they differ.
    async fn compare_in<Q: LegacyQuery>(
        &self,
        tx: &mut crate::db::Tx<'static>,
        call: LegacyCall,
        query: &Q,
    ) -> Result<(Option<Q::Answer>, Difference), CompatError> {
        let by_session = query.by_session(tx, call.tenant, call.session).await?;
        let flow_id = match self
            .resolve(AnyId::Session(call.session), call.tenant)
            .await
        {
            Ok(flow_id) => Some(flow_id),
            Err(CompatError::NotFound { .. }) => None,
            Err(err) => {
                let what = format!("flow-keyed read failed: {err}");
                return Ok((by_session, Difference::Mismatch(what)));
            }
        };
        let by_flow = match flow_id {
            Some(flow_id) => query.by_flow(tx, call.tenant, flow_id).await,
            None => Ok(None),
        };
        let difference = match (flow_id, by_flow) {
            (_, Ok(by_flow)) if by_flow == by_session => Difference::None,
            // The legacy key finds nothing where the mapping finds the session's flow: a
            // session linked by rule `data_import` or `flow_id`, whose flow the legacy
            // platform never found either (its flow's `import_session_id` holds an import
            // id, or nothing). `on` will answer 200 where legacy answered 404; that is the
            // migration working, not a disagreement to fix, so it is counted apart from the
            // mismatches that gate `on`.
            (_, Ok(Some(_))) if by_session.is_none() => Difference::Recovered,
            (Some(flow_id), Ok(Some(_))) => {
                match query.explain(tx, call.tenant, call.session, flow_id).await {
                    Ok(Some(categories)) => Difference::Explained(categories),
                    Ok(None) => Difference::Mismatch(
                        "flow-keyed answer differs from session-keyed answer".into(),
                    ),
                    Err(err) => {
                        Difference::Mismatch(format!("cannot explain the difference: {err}"))
                    }
                }
            }
            (_, Ok(_)) => Difference::Mismatch(
                "flow key finds nothing where the session key finds an answer".into(),
            ),
            (_, Err(err)) => Difference::Mismatch(format!("flow-keyed read failed: {err}")),
        };
        Ok((by_session, difference))
    }

    async fn read_by_session<Q: LegacyQuery>(
        &self,
        call: LegacyCall,
        query: &Q,
    ) -> Result<Option<Q::Answer>, CompatError> {
        let mut tx = self.db.begin().await?;
        let answer = query.by_session(&mut tx, call.tenant, call.session).await;
        tx.rollback().await?;
        answer
    }

    async fn read_by_flow<Q: LegacyQuery>(
        &self,
        call: LegacyCall,
        query: &Q,
    ) -> Result<Option<Q::Answer>, CompatError> {
        let flow_id = match self
            .resolve(AnyId::Session(call.session), call.tenant)
            .await
        {
            Ok(flow_id) => flow_id,
            Err(CompatError::NotFound { .. }) => return Ok(None),
            Err(err) => return Err(err),
        };
        let mut tx = self.db.begin().await?;
        let answer = query.by_flow(&mut tx, call.tenant, flow_id).await;
        tx.rollback().await?;
        answer
    }

    /// Counts a shadow mismatch: the metric, a warning naming the call, and the tenant's
    /// persisted count that `flag set … on` reads. The legacy answer is served whatever
    /// happens here; a count that cannot be stored is logged as an error.
    async fn mismatch(&self, call: LegacyCall, what: &str) {
        let LegacyCall {
            route,
            tenant,
            session,
            ..
        } = call;
        self.metrics
            .shadow_mismatches
            .with_label_values(&[route])
            .inc();
        tracing::warn!(route, %tenant, %session, "shadow read: {what}");
        let stored = async {
            let mut tx = self.db.begin_write().await?;
            crate::flags::store::record_shadow_mismatch(&mut tx, tenant, route).await?;
            tx.commit().await?;
            Ok::<(), crate::flags::FlagError>(())
        };
        if let Err(err) = stored.await {
            tracing::error!(route, %tenant, %session, error = %err, "shadow mismatch not stored: the on gate will not see it");
        }
    }
}

fn describe(id: AnyId) -> String {
    match id {
        AnyId::Bare(uuid) => format!("id {uuid}"),
        AnyId::Session(session) => format!("session {session}"),
    }
}

/// How a shadow read's two answers differ.
enum Difference {
    None,
    /// Only the flow key finds an answer (legacy answered 404).
    Recovered,
    /// They differ by the named, documented categories only.
    Explained(Vec<ShadowCategory>),
    /// Something is wrong: counted, logged and stored for the `on` gate.
    Mismatch(String),
}
