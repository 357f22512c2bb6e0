use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::types::DbTime;
use crate::db::types::DbUuid;
use crate::field_mappings::MappingsError;
use crate::ids::{FlowId, ImportId};

/// The id of an `import_field_mappings` row, parsed at the boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct MappingId(pub Uuid);

impl MappingId {
    pub fn parse(input: &str) -> Result<Self, MappingsError> {
        let trimmed = input.trim();
        if trimmed.len() != 36 {
            return Err(MappingsError::MalformedId {
                input: trimmed.chars().take(80).collect(),
            });
        }
        Uuid::try_parse(trimmed)
            .map(Self)
            .map_err(|_| MappingsError::MalformedId {
                input: trimmed.to_owned(),
            })
    }

    pub fn db(&self) -> DbUuid {
        DbUuid(self.0)
    }
}

impl std::fmt::Display for MappingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// One column of a file mapped to a platform attribute.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ImportFieldMapping {
    #[serde(rename = "mapping_id")]
    #[sqlx(try_from = "DbUuid")]
    pub id: Uuid,
    pub data_import_id: ImportId,
    pub flow_id: Option<FlowId>,
    pub source_field: String,
    pub target_field: String,
    pub mapping_type: String,
    pub confidence_score: Option<f64>,
    pub is_user_defined: bool,
    pub is_validated: bool,
    pub status: String,
    pub original_ai_suggestion: Option<String>,
    /// Sample values of the column (an array of strings for rows flowkey wrote).
    #[schema(value_type = Option<Value>)]
    pub sample_values: Option<Json<Value>>,
    pub suggested_by: Option<String>,
    pub created_at: DbTime,
    pub validated_at: Option<DbTime>,
}

/// A reviewer's verdict on a suggested mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappingDecision {
    Approve,
    Reject,
}

impl MappingDecision {
    /// The `status` the mapping takes.
    pub fn status(&self) -> &'static str {
        match self {
            MappingDecision::Approve => "approved",
            MappingDecision::Reject => "rejected",
        }
    }
}
