use crate::ids::SessionId;

/// Why a legacy session or its mapping could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    #[error("session {session_id} was created by another upload at the same moment; retry")]
    SessionTaken { session_id: SessionId },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
