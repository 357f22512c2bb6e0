//! Discovery flows: the persisted `UnifiedDiscoveryFlowState` (phases, status, progress,
//! CrewAI state), keyed by `flow_id`; the legacy `import_session_id` stays as a deprecated
//! field.

mod error;
mod model;
mod operations;
pub mod store;

pub use error::FlowsError;
pub use model::{DiscoveryFlow, FlowAction, FlowStatus, NewFlow, PhaseState, PHASES};
pub use operations::{change_status, get, list};
