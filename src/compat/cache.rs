//! Remembers resolved ids so a repeated resolve costs no database round trip.
//!
//! Entries are dropped when the service deletes or changes a flow or an import, and expire
//! after a short time to live: another server may delete a flow, and this one learns of it
//! at the latest one TTL later (a stale entry then leads to a flow-keyed read that finds
//! nothing, a 404, never another tenant's data, because every read names the tenant).
//! Only found flows are cached, so a flow created a moment ago resolves at once.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::ids::{AnyId, FlowId, TenantId};

/// How an id was written: a bare UUID is looked up as a flow, a session and an import; a
/// prefixed one only as a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum IdForm {
    Bare,
    Session,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey {
    tenant: TenantId,
    form: IdForm,
    id: Uuid,
}

impl CacheKey {
    pub(crate) fn new(tenant: TenantId, id: AnyId) -> Self {
        let (form, id) = match id {
            AnyId::Bare(uuid) => (IdForm::Bare, uuid),
            AnyId::Session(session) => (IdForm::Session, session.as_uuid()),
        };
        Self { tenant, form, id }
    }
}

/// Counts for `/metrics` and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
}

#[derive(Debug)]
pub(crate) struct ResolveCache {
    entries: RwLock<HashMap<CacheKey, (FlowId, Instant)>>,
    ttl: Duration,
    max_entries: usize,
}

impl ResolveCache {
    pub(crate) fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            ttl,
            max_entries,
        }
    }

    pub(crate) fn get(&self, key: &CacheKey) -> Option<FlowId> {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(flow, _)| *flow)
    }

    pub(crate) fn insert(&self, key: CacheKey, flow: FlowId) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        if entries.len() >= self.max_entries {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if entries.len() >= self.max_entries {
                entries.clear();
            }
        }
        entries.insert(key, (flow, Instant::now()));
    }

    /// Forgets every id that resolved to `flow`.
    pub(crate) fn invalidate_flow(&self, flow: FlowId) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        entries.retain(|key, (cached, _)| *cached != flow && key.id != flow.as_uuid());
    }

    /// Forgets every entry for this id text (an import id that was deleted).
    pub(crate) fn invalidate_id(&self, id: Uuid) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        entries.retain(|key, _| key.id != id);
    }

    pub(crate) fn clear(&self) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        entries.clear();
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        CacheStats {
            entries: entries.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ClientAccountId, EngagementId};

    fn tenant() -> TenantId {
        TenantId::new(
            ClientAccountId::from_stored(Uuid::new_v4()),
            EngagementId::from_stored(Uuid::new_v4()),
        )
    }

    #[test]
    fn entries_expire_and_invalidate_by_flow() {
        let cache = ResolveCache::new(Duration::from_secs(60), 10);
        let flow = FlowId::new_v4();
        let key = CacheKey::new(tenant(), AnyId::Bare(Uuid::new_v4()));
        cache.insert(key, flow);
        assert_eq!(cache.get(&key), Some(flow));
        cache.invalidate_flow(flow);
        assert_eq!(cache.get(&key), None);

        let expired = ResolveCache::new(Duration::ZERO, 10);
        expired.insert(key, flow);
        assert_eq!(expired.get(&key), None);
    }

    #[test]
    fn a_full_cache_makes_room() {
        let cache = ResolveCache::new(Duration::from_secs(60), 2);
        for _ in 0..5 {
            cache.insert(
                CacheKey::new(tenant(), AnyId::Bare(Uuid::new_v4())),
                FlowId::new_v4(),
            );
        }
        assert!(cache.stats().entries <= 2);
    }
}
