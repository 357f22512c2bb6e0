use crate::ids::FlowId;

/// Why a flow could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum FlowsError {
    #[error("flow {flow_id} not found")]
    NotFound { flow_id: FlowId },
    #[error("flow {flow_id} is {status}; it cannot {action}")]
    InvalidTransition {
        flow_id: FlowId,
        status: String,
        action: &'static str,
    },
    #[error("flow {flow_id} still has rows that reference it")]
    StillReferenced { flow_id: FlowId },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
