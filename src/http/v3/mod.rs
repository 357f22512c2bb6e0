//! v3: every resource by its own id, flows by `flow_id`.

mod flows;
mod imports;
mod mappings;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::http::{ApiError, AppState};
use crate::paging::PageRequest;

pub(crate) use flows::*;
pub(crate) use imports::*;
pub(crate) use mappings::*;

/// The v3 routes; the CSV upload has its own body limit (`upload_limit`), which replaces the
/// app-wide one for that route only.
pub(crate) fn routes(upload_limit: usize) -> Router<AppState> {
    Router::new()
        .route(
            "/api/v3/data-import/imports",
            post(create_import).get(list_imports),
        )
        .route(
            "/api/v3/data-import/imports/upload",
            post(upload_csv).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route(
            "/api/v3/data-import/imports/{import_id}",
            get(get_import).delete(delete_import),
        )
        .route(
            "/api/v3/data-import/imports/{import_id}/records",
            get(list_records),
        )
        .route("/api/v3/discovery-flow/flows", get(list_flows))
        .route(
            "/api/v3/discovery-flow/flows/{flow_id}",
            get(get_flow).delete(delete_flow),
        )
        .route(
            "/api/v3/discovery-flow/flows/{flow_id}/status",
            get(flow_status),
        )
        .route(
            "/api/v3/discovery-flow/flows/{flow_id}/pause",
            post(pause_flow),
        )
        .route(
            "/api/v3/discovery-flow/flows/{flow_id}/resume",
            post(resume_flow),
        )
        .route(
            "/api/v3/field-mapping/mappings/{id}",
            get(list_mappings).put(update_mapping),
        )
        .route(
            "/api/v3/field-mapping/mappings/{id}/approve",
            post(approve_mapping),
        )
        .route(
            "/api/v3/field-mapping/mappings/{id}/reject",
            post(reject_mapping),
        )
}

/// `cursor` and `limit`, taken as text so a bad value gets our own 400.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// The `next_cursor` of the previous page; the first page when absent.
    #[param(
        pattern = "^-?[0-9]{1,18}_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    )]
    pub cursor: Option<String>,
    /// Rows on the page, 1 to 500 (50 when absent).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

impl PageQuery {
    pub(crate) fn page(&self) -> Result<PageRequest, ApiError> {
        let limit = match self.limit.as_deref() {
            None => None,
            Some(text) => Some(text.trim().parse::<u64>().map_err(|_| {
                ApiError::bad_request(
                    "bad_pagination",
                    format!("limit {text:?} is not a whole number"),
                )
            })?),
        };
        Ok(PageRequest::parse(self.cursor.as_deref(), limit)?)
    }
}
