use crate::ids::{ImportId, SessionId};

/// Why an import could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ImportsError {
    #[error("import {import_id} not found")]
    NotFound { import_id: ImportId },
    #[error("no import found for session {session_id}")]
    SessionHasNoImport { session_id: SessionId },
    #[error("session {session_id} not found")]
    SessionNotFound { session_id: SessionId },
    #[error("tenant not found: no engagement with this id belongs to this client account")]
    TenantNotFound,
    #[error("user {user_id} not found")]
    UserNotFound { user_id: uuid::Uuid },
    #[error("file_data has no rows")]
    NoRows,
    #[error("row {row_number} is not an object of header to value")]
    RowNotAnObject { row_number: usize },
    #[error("row {row_number} has no fields")]
    EmptyRow { row_number: usize },
    #[error("row {row_number} cannot be written as JSON: {message}")]
    RowNotEncodable { row_number: usize, message: String },
    #[error("the file has no columns")]
    NoColumns,
    #[error("column header {header:?} appears twice")]
    DuplicateHeader { header: String },
    #[error("import {import_id} still has rows that reference it")]
    StillReferenced { import_id: ImportId },
    #[error(transparent)]
    Flow(#[from] crate::flows::FlowsError),
    #[error(transparent)]
    Text(#[from] crate::db::text::TextError),
    #[error(transparent)]
    Session(#[from] crate::sessions::SessionsError),
    #[error(transparent)]
    Mapping(#[from] crate::field_mappings::MappingsError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
