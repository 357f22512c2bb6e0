//! Legacy upload sessions: the `data_import_sessions` rows the v1 API still writes, and the
//! `session_flow_mapping` rows that link a session to its flow. Both `imports` (a v1 upload
//! creates a session and its mapping) and `compat` (a legacy id resolves through the
//! mapping) stand on this module; it depends on neither.

mod error;
pub mod store;

pub use error::SessionsError;
pub use store::MappedSession;

use crate::db::Db;

/// One mapped session per mapping rule (the smallest session id of each), for showing how
/// each kind of legacy id resolves. Reads only.
pub async fn one_session_per_rule(db: &Db) -> Result<Vec<MappedSession>, SessionsError> {
    let mut tx = db.begin().await?;
    let sessions = store::one_session_per_rule(&mut tx).await;
    tx.rollback().await?;
    sessions
}
