use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use crate::compat::legacy::{ShadowCategory, SHADOW_ROUTES};

/// The compatibility service's counters, registered in the server's registry.
#[derive(Debug, Clone)]
pub struct CompatMetrics {
    /// Requests that named something by a legacy id, by route and tenant.
    pub legacy_id_hits: IntCounterVec,
    pub cache_hits: IntCounter,
    pub cache_misses: IntCounter,
    pub resolve_conflicts: IntCounter,
    /// Shadow-mode reads whose session-keyed and flow-keyed answers differed, by route: the
    /// flow key found something else, or nothing where the session key found an answer.
    pub shadow_mismatches: IntCounterVec,
    /// Shadow-mode reads where only the flow key found an answer (legacy answered 404), by
    /// route: what `on` will newly answer; not a mismatch.
    pub shadow_recovered: IntCounterVec,
    /// Shadow-mode reads whose answers differed only by named categories, by route and
    /// category (`ShadowCategory`); not mismatches.
    pub shadow_explained: IntCounterVec,
    /// Shadow-mode reads compared, by route.
    pub shadow_reads: IntCounterVec,
}

impl CompatMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            legacy_id_hits: IntCounterVec::new(
                Opts::new(
                    "flowkey_legacy_id_hits_total",
                    "requests that named a resource by a legacy session id",
                ),
                &["route", "client_account_id", "engagement_id"],
            )?,
            cache_hits: IntCounter::new(
                "flowkey_resolve_cache_hits_total",
                "id resolutions answered from the cache",
            )?,
            cache_misses: IntCounter::new(
                "flowkey_resolve_cache_misses_total",
                "id resolutions that read the database",
            )?,
            resolve_conflicts: IntCounter::new(
                "flowkey_resolve_conflicts_total",
                "ids that named more than one flow",
            )?,
            shadow_mismatches: IntCounterVec::new(
                Opts::new(
                    "flowkey_shadow_mismatches_total",
                    "shadow reads whose session-keyed and flow-keyed answers differed",
                ),
                &["route"],
            )?,
            shadow_recovered: IntCounterVec::new(
                Opts::new(
                    "flowkey_shadow_recovered_total",
                    "shadow reads that only the flow key answered (the session key found nothing)",
                ),
                &["route"],
            )?,
            shadow_explained: IntCounterVec::new(
                Opts::new(
                    "flowkey_shadow_explained_total",
                    "shadow reads whose answers differed only by a named category (docs/rollout.md, Shadow)",
                ),
                &["route", "category"],
            )?,
            shadow_reads: IntCounterVec::new(
                Opts::new(
                    "flowkey_shadow_reads_total",
                    "shadow reads compared (session key and flow key)",
                ),
                &["route"],
            )?,
        };
        // Every shadow series exists from the start, at 0: a dashboard or an alert on
        // `flowkey_shadow_mismatches_total` sees 0 rather than no data before the first event.
        for route in SHADOW_ROUTES {
            metrics.shadow_mismatches.with_label_values(&[route]);
            metrics.shadow_recovered.with_label_values(&[route]);
            metrics.shadow_reads.with_label_values(&[route]);
            for category in ShadowCategory::ALL {
                metrics
                    .shadow_explained
                    .with_label_values(&[route, category.as_str()]);
            }
        }
        registry.register(Box::new(metrics.legacy_id_hits.clone()))?;
        registry.register(Box::new(metrics.cache_hits.clone()))?;
        registry.register(Box::new(metrics.cache_misses.clone()))?;
        registry.register(Box::new(metrics.resolve_conflicts.clone()))?;
        registry.register(Box::new(metrics.shadow_mismatches.clone()))?;
        registry.register(Box::new(metrics.shadow_recovered.clone()))?;
        registry.register(Box::new(metrics.shadow_explained.clone()))?;
        registry.register(Box::new(metrics.shadow_reads.clone()))?;
        Ok(metrics)
    }
}
