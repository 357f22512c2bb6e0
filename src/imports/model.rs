use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;

use crate::db::types::{DbTime, DbUuid};
use crate::ids::{ClientAccountId, EngagementId, FlowId, ImportId, SessionId};

/// One uploaded file. `flow_id` is its primary reference; `session_id` is the legacy key,
/// kept (and still written by the v1 API) for clients that have not moved to flow ids.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DataImport {
    #[serde(rename = "import_id")]
    pub id: ImportId,
    pub flow_id: Option<FlowId>,
    /// Deprecated: the legacy session key.
    pub session_id: Option<SessionId>,
    pub client_account_id: Option<ClientAccountId>,
    pub engagement_id: Option<EngagementId>,
    pub import_name: String,
    pub import_type: String,
    pub description: Option<String>,
    pub source_filename: String,
    pub file_size_bytes: Option<i64>,
    pub file_type: Option<String>,
    pub status: String,
    pub progress_percentage: Option<f64>,
    pub total_records: Option<i32>,
    pub processed_records: Option<i32>,
    pub failed_records: Option<i32>,
    /// How the import was made (`source`, and for legacy rows `validation_session_id`).
    #[schema(value_type = Option<Object>)]
    pub import_config: Option<Json<Value>>,
    pub created_at: DbTime,
    pub updated_at: Option<DbTime>,
    pub completed_at: Option<DbTime>,
}

/// One row of an uploaded file, kept as it came (`raw_data` is `{header: value}`).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RawImportRecord {
    #[sqlx(try_from = "DbUuid")]
    pub id: uuid::Uuid,
    pub data_import_id: ImportId,
    pub flow_id: Option<FlowId>,
    /// Deprecated: the legacy session key.
    pub session_id: Option<SessionId>,
    pub row_number: i32,
    #[schema(value_type = Object)]
    pub raw_data: Json<Value>,
    pub is_processed: bool,
    pub is_valid: bool,
    pub created_at: DbTime,
}

/// Which imports a list returns, besides the tenant.
#[derive(Debug, Clone, Default)]
pub struct ImportFilter {
    pub flow_id: Option<FlowId>,
    pub status: Option<String>,
}

/// The rows of a file: column headers in file order and one `{header: value}` object per
/// row, in row order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub headers: Vec<String>,
    pub rows: Vec<serde_json::Map<String, Value>>,
}

impl From<DbUuid> for uuid::Uuid {
    fn from(id: DbUuid) -> Self {
        id.0
    }
}
