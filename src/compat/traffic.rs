//! Deprecation accounting: every request that names something by a legacy id is counted by
//! route and tenant, logged once per caller and route per interval (not once per request),
//! and added to `flowkey_legacy_traffic` in batches by `flush`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::db::types::DbTime;
use crate::ids::TenantId;

/// Callers remembered for log throttling before old entries are swept.
const MAX_REMEMBERED_CALLERS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingHits {
    pub hits: i64,
    pub first_seen: DbTime,
    pub last_seen: DbTime,
}

#[derive(Debug, Default)]
struct State {
    pending: HashMap<(String, TenantId), PendingHits>,
    last_logged: HashMap<(String, String), Instant>,
}

#[derive(Debug)]
pub(crate) struct LegacyTraffic {
    state: Mutex<State>,
    log_interval: Duration,
}

impl LegacyTraffic {
    pub(crate) fn new(log_interval: Duration) -> Self {
        Self {
            state: Mutex::new(State::default()),
            log_interval,
        }
    }

    /// Counts one use; answers whether this caller and route should be logged now.
    pub(crate) fn record(&self, route: &str, tenant: TenantId, caller: &str) -> bool {
        let now = DbTime::now();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        state
            .pending
            .entry((route.to_owned(), tenant))
            .and_modify(|pending| {
                pending.hits += 1;
                pending.last_seen = now;
            })
            .or_insert(PendingHits {
                hits: 1,
                first_seen: now,
                last_seen: now,
            });
        let interval = self.log_interval;
        if state.last_logged.len() >= MAX_REMEMBERED_CALLERS {
            state.last_logged.retain(|_, at| at.elapsed() < interval);
        }
        let key = (caller.to_owned(), route.to_owned());
        match state.last_logged.get(&key) {
            Some(at) if at.elapsed() < interval => false,
            _ => {
                state.last_logged.insert(key, Instant::now());
                true
            }
        }
    }

    /// Takes the hits not yet persisted.
    pub(crate) fn take_pending(&self) -> HashMap<(String, TenantId), PendingHits> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        std::mem::take(&mut state.pending)
    }

    /// Puts back hits whose write failed, so the next flush tries again.
    pub(crate) fn restore(&self, failed: HashMap<(String, TenantId), PendingHits>) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        for (key, hits) in failed {
            state
                .pending
                .entry(key)
                .and_modify(|pending| {
                    pending.hits += hits.hits;
                    pending.first_seen = pending.first_seen.min(hits.first_seen);
                    pending.last_seen = pending.last_seen.max(hits.last_seen);
                })
                .or_insert(hits);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ClientAccountId, EngagementId};

    #[test]
    fn a_caller_is_logged_once_per_interval_but_every_hit_counts() {
        let traffic = LegacyTraffic::new(Duration::from_secs(3600));
        let tenant = TenantId::new(
            ClientAccountId::from_stored(uuid::Uuid::new_v4()),
            EngagementId::from_stored(uuid::Uuid::new_v4()),
        );
        assert!(traffic.record("/r", tenant, "client-a"));
        assert!(!traffic.record("/r", tenant, "client-a"));
        assert!(traffic.record("/r", tenant, "client-b"));
        assert!(traffic.record("/other", tenant, "client-a"));
        let pending = traffic.take_pending();
        assert_eq!(pending[&("/r".to_owned(), tenant)].hits, 3);
        assert!(traffic.take_pending().is_empty());
    }
}
