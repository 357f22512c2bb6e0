//! The OpenAPI document, generated from the handlers' annotations: every operation names its
//! parameters (tenant headers, path ids, queries) and the schema of each answer, and every
//! schema is derived from the type the handler really serializes.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi};

use crate::http::{admin, ops, v1, v3, ErrorEnvelope};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "flowkey",
        description = "Flow-keyed discovery/data-import API with legacy v1 compatibility. \
            Every answer is an envelope: `{\"success\": true, \"data\": …}` or \
            `{\"success\": false, \"error\": {\"code\", \"message\", \"details\"}}`. \
            A path answers a method it does not list with 405 `method_not_allowed` (with \
            `Allow`), an unknown path with 404 `no_such_route`, both in the error envelope. \
            A request refused before its body was read is answered with `Connection: close`."
    ),
    modifiers(&AdminSecurity, &V1Deprecated, &CommonAnswers),
    components(schemas(ErrorEnvelope)),
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
        admin::unset_flag,
        admin::readiness,
        admin::legacy_traffic,
        admin::mapping_statistics,
    )
)]
struct ApiDoc;

/// Every v1 operation is marked deprecated, as its `Deprecation` header says.
struct V1Deprecated;

impl Modify for V1Deprecated {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/v1/") {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                operation.deprecated = Some(utoipa::openapi::Deprecated::True);
            }
        }
    }
}

/// Answers every operation of a kind can give, added where its annotation does not say
/// them: every `/api` route 503 (`database_unavailable`, `schema_not_at_head`), every JSON
/// body 400 (`malformed_body`), 413, 415 (`unsupported_media_type`) and 422 (`invalid_body`).
struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let takes_json = operation
                    .request_body
                    .as_ref()
                    .is_some_and(|body| body.content.contains_key("application/json"));
                let mut answers = Vec::new();
                let tenant_route = path.starts_with("/api/v3/") || path.starts_with("/api/v1/");
                if tenant_route {
                    // A server started with `--auth none` (loopback only) ignores the token; the
                    // document describes the server as deployed.
                    operation.security =
                        Some(vec![utoipa::openapi::security::SecurityRequirement::new::<
                            &str,
                            [&str; 0],
                            &str,
                        >("bearer_jwt", [])]);
                    answers.extend([
                        (
                            "401",
                            "`unauthorized`: no bearer token, or one that does not verify \
                             (signature, algorithm, issuer, audience, expiry, not-before, \
                             `sub`), or whose user is unknown or inactive; with \
                             `WWW-Authenticate: Bearer`",
                        ),
                        (
                            "403",
                            "`tenant_forbidden`: the tenant named by the headers is not granted \
                             to the token's user (the same answer whether or not it exists)",
                        ),
                    ]);
                }
                if path.starts_with("/api/") {
                    answers.push((
                        "503",
                        "`database_unavailable`: the database is not answering; \
                         `schema_not_at_head`: the schema was taken below head",
                    ));
                }
                if takes_json {
                    answers.extend([
                        ("400", "`malformed_body`: the body is not JSON"),
                        ("413", "`payload_too_large`: body too large"),
                        (
                            "415",
                            "`unsupported_media_type`: no `Content-Type: application/json`",
                        ),
                        ("422", "`invalid_body`: JSON of the wrong shape"),
                    ]);
                }
                for (status, description) in answers {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error_answer(description));
                }
            }
        }
    }
}

fn error_answer(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                    .build(),
            )
            .build(),
    )
}

/// The bearer token of `/api/admin/*` (`flowkey serve --admin-token`), and the bearer JWT
/// of the tenant routes.
struct AdminSecurity;

impl Modify for AdminSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some(
            "The token given to `flowkey serve --admin-token` (or FLOWKEY_ADMIN_TOKEN). \
             Without one configured, admin routes answer 403."
                .to_owned(),
        );
        components.add_security_scheme("admin_token", SecurityScheme::Http(scheme));
        let mut jwt = Http::new(HttpAuthScheme::Bearer);
        jwt.bearer_format = Some("JWT".to_owned());
        jwt.description = Some(
            "A JWT signed with the algorithm the server pins (HS256 with FLOWKEY_JWT_SECRET, or \
             RS256/ES256 with --jwt-public-key / --jwt-jwks); `sub` is the platform user's id. \
             Every v3 and v1 route demands it unless the server runs with `--auth none` \
             (loopback only). See docs/rollout.md."
                .to_owned(),
        );
        components.add_security_scheme("bearer_jwt", SecurityScheme::Http(jwt));
    }
}

/// The document as JSON text.
pub fn openapi_json() -> String {
    let Ok(mut document) = serde_json::to_value(ApiDoc::openapi()) else {
        return "{}".to_owned();
    };
    parameters_are_never_null(&mut document);
    serde_json::to_string(&document).unwrap_or_else(|_| "{}".to_owned())
}

/// A parameter is text or absent: an optional one is not required, never `null` (utoipa
/// types an `Option` as `["string", "null"]`, which would let a client send the text
/// "null" as a session id).
fn parameters_are_never_null(document: &mut serde_json::Value) {
    let Some(paths) = document
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(serde_json::Value::as_array_mut)
            else {
                continue;
            };
            for parameter in parameters {
                // An empty `cursor`, `status` or `reason` is taken as given (the first page,
                // a status no row has, an empty reason).
                if parameter["in"] == "query"
                    && matches!(
                        parameter["name"].as_str(),
                        Some("cursor" | "status" | "reason")
                    )
                {
                    parameter["allowEmptyValue"] = serde_json::Value::Bool(true);
                }
                if let Some(types) = parameter
                    .pointer_mut("/schema/type")
                    .and_then(serde_json::Value::as_array_mut)
                {
                    types.retain(|kind| kind != "null");
                    if types.len() == 1 {
                        let only = types[0].clone();
                        if let Some(schema) = parameter.get_mut("schema") {
                            schema["type"] = only;
                        }
                    }
                }
            }
        }
    }
}
