//! Import field mappings: one column of an uploaded file mapped to a platform attribute,
//! keyed by `flow_id` (legacy rows reach their flow through their import). Suggestions for a
//! new file come from `suggest`.

mod error;
mod model;
mod operations;
pub mod store;
mod suggest;

pub use error::MappingsError;
pub use model::{ImportFieldMapping, MappingDecision, MappingId};
pub use operations::{decide, list_for_flow, set_target, ListMappingsError};
pub use suggest::{snake_case, suggest_mappings, SampleCollector, SuggestedMapping, SAMPLE_VALUES};
