//! `SessionFlowCompatibilityService`: old clients keep naming things by legacy session id
//! (or by a data import id) while every table is keyed by `flow_id`. The service resolves any
//! such id to a flow within a tenant, caches the answer, reads through either key as the
//! `ENABLE_FLOW_ID_PRIMARY` flag says, and counts every legacy-id use so an operator knows
//! when the old clients are gone. Resolving never writes.

mod cache;
mod error;
mod legacy;
mod metrics;
mod service;
pub mod store;
mod traffic;

pub use cache::CacheStats;
pub use error::CompatError;
pub use legacy::{LegacyCall, ShadowCategory, SHADOW_ROUTES};
pub use metrics::CompatMetrics;
pub use service::{CompatConfig, SessionFlowCompatibilityService};
pub use store::{LegacyTrafficRow, MappingStatistics, RuleCount};
