use crate::ids::{FlowId, IdError};

/// Why an id could not be resolved or a dual-key read failed.
#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    #[error("{id} names no flow of this tenant")]
    NotFound { id: String },
    #[error("{id} names more than one flow of this tenant ({})", join(flows))]
    Conflict { id: String, flows: Vec<FlowId> },
    #[error(transparent)]
    MalformedId(#[from] IdError),
    #[error(transparent)]
    Imports(#[from] crate::imports::ImportsError),
    #[error(transparent)]
    Flows(#[from] crate::flows::FlowsError),
    #[error(transparent)]
    Mappings(#[from] crate::field_mappings::MappingsError),
    #[error("metrics registration failed: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn join(flows: &[FlowId]) -> String {
    flows
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
