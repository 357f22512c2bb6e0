//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::OpenApi;

use crate::http::{admin, ops, v1, v3};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "flowkey",
        description = "Flow-keyed discovery/data-import API with legacy v1 compatibility"
    ),
    paths(
        ops::health,
        ops::ready,
        ops::metrics,
        ops::openapi,
        v3::create_import,
        v3::upload_csv,
        v3::list_imports,
        v3::get_import,
        v3::list_records,
        v3::delete_import,
        v3::list_flows,
        v3::get_flow,
        v3::flow_status,
        v3::pause_flow,
        v3::resume_flow,
        v3::delete_flow,
        v3::list_mappings,
        v3::update_mapping,
        v3::approve_mapping,
        v3::reject_mapping,
        v1::store_import,
        v1::get_import,
        v1::import_records,
        v1::processing_status,
        v1::validation_session,
        v1::flow_status,
        admin::get_flags,
        admin::set_flag,
        admin::readiness,
        admin::legacy_traffic,
        admin::mapping_statistics,
    )
)]
struct ApiDoc;

/// The document as JSON text.
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_json()
        .unwrap_or_else(|_| "{}".to_owned())
}
