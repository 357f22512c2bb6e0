//! The one error type of the HTTP layer: every domain error maps to a status and a stable
//! code here, client mistakes are 4xx with a useful message, and internal failures are
//! logged once and answered with a generic 500 that reveals nothing.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use crate::compat::CompatError;
use crate::db::errors::{classify, DbFailure};
use crate::db::text::TextError;
use crate::field_mappings::{ListMappingsError, MappingsError};
use crate::flags::FlagError;
use crate::flows::FlowsError;
use crate::ids::IdError;
use crate::imports::{CsvError, ImportsError};
use crate::paging::PagingError;
use crate::sessions::SessionsError;

/// An error answered in the envelope `{"success": false, "error": {code, message, details}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    /// What went wrong inside, logged and never sent.
    internal: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Value::Null,
            internal: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A failure that is not the client's: the cause is logged, the client learns nothing.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal_error",
            message: "internal error".to_owned(),
            details: Value::Null,
            internal: Some(cause.to_string()),
        }
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
}

/// `{"success": false, "error": {…}}`: every error answer of the API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    /// Always `false`.
    #[schema(example = false)]
    pub success: bool,
    pub error: ErrorBody,
}

/// What went wrong, for a client to act on.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable and machine-readable (`missing_tenant`, `malformed_id`, `not_found`,
    /// `invalid_csv`, `ambiguous_id`, `payload_too_large`, `unauthorized`, …): branch on it.
    #[schema(example = "not_found")]
    pub code: &'static str,
    /// For people; may change between releases.
    pub message: String,
    /// More about the error (`bad_rows`, `flow_ids`, `reasons`, …), or `null`.
    #[schema(value_type = Value)]
    pub details: Value,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.internal {
            tracing::error!(code = self.code, cause = %cause, "request failed");
        }
        let body = ErrorEnvelope {
            success: false,
            error: ErrorBody {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<IdError> for ApiError {
    fn from(err: IdError) -> Self {
        ApiError::bad_request("malformed_id", err.to_string())
    }
}

impl From<PagingError> for ApiError {
    fn from(err: PagingError) -> Self {
        ApiError::bad_request("bad_pagination", err.to_string())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match classify(&err) {
            DbFailure::Unavailable => {
                // Not logged above debug: during an outage every request would log it.
                tracing::debug!(error = %err, "database unavailable");
                ApiError::unavailable("database_unavailable", "the database is not answering")
            }
            DbFailure::SchemaObjectMissing => {
                // The schema was taken below head under a running server (between two checks
                // of its schema gate): the operator's doing, not a bug and not the client's.
                tracing::warn!(error = %err, "a head table or column is missing");
                ApiError::unavailable(
                    "schema_not_at_head",
                    "the database schema is not at head (a table or column is missing); \
                     run `flowkey upgrade head`",
                )
            }
            DbFailure::ClientData => {
                // Validation at the boundary should have caught it: worth a look, not a page.
                tracing::info!(error = %err, "the database refused a value of a request");
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_value",
                    "a value of the request does not fit the database",
                )
            }
            DbFailure::Misconfigured => ApiError::internal(format!(
                "the database refuses flowkey (permissions or login): {err}; \
                 grant the service's database user what it needs"
            )),
            DbFailure::Other => ApiError::internal(err),
        }
    }
}

impl From<TextError> for ApiError {
    fn from(err: TextError) -> Self {
        let field = err.field().to_owned();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_text",
            err.to_string(),
        )
        .with_details(json!({ "field": field }))
    }
}

impl From<CsvError> for ApiError {
    fn from(err: CsvError) -> Self {
        let message = err.to_string();
        let base = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_csv", message);
        match err {
            CsvError::BadRows { count, rows } => base.with_details(json!({
                "bad_row_count": count,
                "bad_rows": rows,
            })),
            _ => base,
        }
    }
}

impl From<ImportsError> for ApiError {
    fn from(err: ImportsError) -> Self {
        let message = err.to_string();
        match err {
            ImportsError::NotFound { .. }
            | ImportsError::SessionHasNoImport { .. }
            | ImportsError::SessionNotFound { .. } => ApiError::not_found(message),
            ImportsError::TenantNotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "tenant_not_found", message)
            }
            ImportsError::UserNotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "user_not_found", message)
            }
            ImportsError::NoRows
            | ImportsError::RowNotAnObject { .. }
            | ImportsError::EmptyRow { .. }
            | ImportsError::RowNotEncodable { .. }
            | ImportsError::NoColumns
            | ImportsError::DuplicateHeader { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_file_data",
                message,
            ),
            ImportsError::StillReferenced { .. } => {
                ApiError::new(StatusCode::CONFLICT, "still_referenced", message)
            }
            ImportsError::Text(inner) => inner.into(),
            ImportsError::Session(inner) => inner.into(),
            ImportsError::Flow(inner) => inner.into(),
            ImportsError::Mapping(inner) => inner.into(),
            ImportsError::Database(inner) => inner.into(),
        }
    }
}

impl From<SessionsError> for ApiError {
    fn from(err: SessionsError) -> Self {
        let message = err.to_string();
        match err {
            SessionsError::SessionTaken { .. } => {
                ApiError::new(StatusCode::CONFLICT, "session_taken", message)
            }
            SessionsError::Database(inner) => inner.into(),
        }
    }
}

impl From<ListMappingsError> for ApiError {
    fn from(err: ListMappingsError) -> Self {
        match err {
            ListMappingsError::Flow(inner) => inner.into(),
            ListMappingsError::Mappings(inner) => inner.into(),
        }
    }
}

impl From<FlowsError> for ApiError {
    fn from(err: FlowsError) -> Self {
        let message = err.to_string();
        match err {
            FlowsError::NotFound { .. } => ApiError::not_found(message),
            FlowsError::InvalidTransition { .. } => {
                ApiError::new(StatusCode::CONFLICT, "invalid_transition", message)
            }
            FlowsError::StillReferenced { .. } => {
                ApiError::new(StatusCode::CONFLICT, "still_referenced", message)
            }
            FlowsError::Database(inner) => inner.into(),
        }
    }
}

impl From<MappingsError> for ApiError {
    fn from(err: MappingsError) -> Self {
        let message = err.to_string();
        match err {
            MappingsError::NotFound { .. } => ApiError::not_found(message),
            MappingsError::InvalidTarget { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_target", message)
            }
            MappingsError::MalformedId { .. } => ApiError::bad_request("malformed_id", message),
            MappingsError::Database(inner) => inner.into(),
        }
    }
}

impl From<CompatError> for ApiError {
    fn from(err: CompatError) -> Self {
        let message = err.to_string();
        match err {
            CompatError::NotFound { .. } => ApiError::not_found(message),
            CompatError::Conflict { flows, .. } => {
                ApiError::new(StatusCode::CONFLICT, "ambiguous_id", message)
                    .with_details(json!({ "flow_ids": flows }))
            }
            CompatError::MalformedId(inner) => inner.into(),
            CompatError::Imports(inner) => inner.into(),
            CompatError::Flows(inner) => inner.into(),
            CompatError::Mappings(inner) => inner.into(),
            CompatError::Metrics(inner) => ApiError::internal(inner),
            CompatError::Database(inner) => inner.into(),
        }
    }
}

impl From<FlagError> for ApiError {
    fn from(err: FlagError) -> Self {
        let message = err.to_string();
        match err {
            FlagError::UnknownFlag { .. } => ApiError::not_found(message),
            FlagError::UnknownValue { .. } | FlagError::BadScope { .. } => {
                ApiError::bad_request("invalid_flag", message)
            }
            FlagError::NotReady { reasons } => {
                ApiError::new(StatusCode::CONFLICT, "not_ready", message)
                    .with_details(json!({ "reasons": reasons }))
            }
            FlagError::Contracted { .. } => {
                ApiError::new(StatusCode::CONFLICT, "contracted", message)
            }
            FlagError::ShadowMismatches { mismatches, .. } => {
                ApiError::new(StatusCode::CONFLICT, "shadow_mismatches", message)
                    .with_details(json!({ "mismatches": mismatches }))
            }
            // The database lost its flag table under a running server (a downgrade).
            FlagError::NotInstalled => ApiError::unavailable("schema_not_at_head", message),
            FlagError::Migration(crate::migrate::MigrateError::Sql(inner)) => inner.into(),
            FlagError::Migration(inner) => ApiError::internal(inner),
            FlagError::Database(inner) => inner.into(),
        }
    }
}
