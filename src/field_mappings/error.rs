use crate::field_mappings::MappingId;

/// Why a field mapping could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum MappingsError {
    #[error("field mapping {mapping_id} not found")]
    NotFound { mapping_id: MappingId },
    #[error("target field {target:?} is invalid: {reason}")]
    InvalidTarget {
        target: String,
        reason: &'static str,
    },
    #[error("field mapping id {input:?} is not a UUID")]
    MalformedId { input: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
