//! Request extractors that answer in the envelope: the tenant headers, JSON bodies, query
//! strings and path segments, each refused with a 4xx that says what was wrong.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use utoipa::openapi::Required;

use crate::http::ApiError;
use crate::identity::Identity;
use crate::ids::{ClientAccountId, EngagementId, FlowId, IdError, TenantId};

pub const CLIENT_ACCOUNT_HEADER: &str = "x-client-account-id";
pub const ENGAGEMENT_HEADER: &str = "x-engagement-id";
pub const SESSION_HEADER: &str = "x-session-id";
pub const USER_HEADER: &str = "x-user-id";
pub const CALLER_HEADER: &str = "x-client-name";

/// The tenant named by `X-Client-Account-Id` and `X-Engagement-Id`, each exactly once.
#[derive(Debug, Clone, Copy)]
pub struct Tenant(pub TenantId);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let client = single_header(&parts.headers, CLIENT_ACCOUNT_HEADER)?
            .ok_or_else(|| missing(CLIENT_ACCOUNT_HEADER))?;
        let engagement = single_header(&parts.headers, ENGAGEMENT_HEADER)?
            .ok_or_else(|| missing(ENGAGEMENT_HEADER))?;
        let client = ClientAccountId::parse(&client).map_err(bad_tenant)?;
        let engagement = EngagementId::parse(&engagement).map_err(bad_tenant)?;
        Ok(Tenant(TenantId::new(client, engagement)))
    }
}

/// In the OpenAPI document: the two required tenant headers.
impl utoipa::IntoParams for Tenant {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![
            header_param(
                "X-Client-Account-Id",
                Required::True,
                crate::ids::uuid_schema("the tenant's client account"),
                "The tenant's client account id (a UUID), exactly once; with X-Engagement-Id it \
                 names the tenant. Missing or malformed: 400 `missing_tenant` / \
                 `malformed_tenant`.",
            ),
            header_param(
                "X-Engagement-Id",
                Required::True,
                crate::ids::uuid_schema("the tenant's engagement"),
                "The tenant's engagement id (a UUID), exactly once. A resource of another tenant \
                 is a 404. A tenant not granted to the token's user is a 403 `tenant_forbidden`, \
                 whether or not it exists.",
            ),
        ]
    }
}

/// One header parameter of the OpenAPI document.
pub(crate) fn header_param(
    name: &str,
    required: Required,
    schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    description: &str,
) -> utoipa::openapi::path::Parameter {
    utoipa::openapi::path::ParameterBuilder::new()
        .name(name)
        .parameter_in(utoipa::openapi::path::ParameterIn::Header)
        .required(required)
        .schema(Some(schema))
        .description(Some(description))
        .build()
}

/// In the OpenAPI document: the optional `X-User-Id` header of uploads.
impl utoipa::IntoParams for UserHeader {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![header_param(
            "X-User-Id",
            Required::False,
            crate::ids::uuid_schema("the importing user"),
            "Only on a server started with `--auth none`: the importing user (a UUID of an existing \
             user); flowkey's service user when absent. A server that authenticates records the \
             token's user and ignores this header.",
        )]
    }
}

/// In the OpenAPI document: the optional `X-Client-Name` header of legacy routes.
impl utoipa::IntoParams for Caller {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::PartialSchema;
        vec![header_param(
            "X-Client-Name",
            Required::False,
            String::schema(),
            "Who is calling, counted in the legacy traffic summary (the user agent when absent); \
             a server that authenticates counts the token's user instead.",
        )]
    }
}

/// Who is calling, for deprecation logs: `X-Client-Name`, else the user agent.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        // An authenticated caller is who the token says, not what a header claims.
        if let Some(identity) = parts.extensions.get::<Identity>() {
            return Ok(Caller(format!("user {}", identity.user)));
        }
        let name = [CALLER_HEADER, "user-agent"]
            .iter()
            .find_map(|header| parts.headers.get(*header)?.to_str().ok())
            .map(|name| name.chars().take(100).collect())
            .unwrap_or_else(|| "unknown".to_owned());
        Ok(Caller(name))
    }
}

/// The user to record: the authenticated one, else (`--auth none`) the optional `X-User-Id`
/// header, a UUID when present.
#[derive(Debug, Clone, Copy)]
pub struct UserHeader(pub Option<uuid::Uuid>);

impl<S: Send + Sync> FromRequestParts<S> for UserHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        // On a server that authenticates, the token's user is recorded and the header is
        // ignored: a client cannot write in someone else's name.
        if let Some(identity) = parts.extensions.get::<Identity>() {
            return Ok(UserHeader(Some(identity.user.0)));
        }
        match single_header(&parts.headers, USER_HEADER)? {
            None => Ok(UserHeader(None)),
            Some(text) => uuid::Uuid::try_parse(text.trim())
                .map(|id| UserHeader(Some(id)))
                .map_err(|_| ApiError::bad_request("malformed_header", "X-User-Id is not a UUID")),
        }
    }
}

/// The header's value when it appears once; an error when it appears twice or is not text.
pub fn single_header(headers: &HeaderMap, name: &'static str) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::bad_request(
            "duplicate_header",
            format!("header {name} appears more than once"),
        ));
    }
    first
        .to_str()
        .map(|text| Some(text.to_owned()))
        .map_err(|_| {
            ApiError::bad_request("malformed_header", format!("header {name} is not text"))
        })
}

fn missing(name: &str) -> ApiError {
    ApiError::bad_request("missing_tenant", format!("header {name} is required"))
}

fn bad_tenant(err: IdError) -> ApiError {
    ApiError::bad_request("malformed_tenant", err.to_string())
}

/// A JSON body; a malformed, mistyped or oversized body is a 4xx in the envelope.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        _ => "malformed_body",
    };
    let status = if status.is_server_error() {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    ApiError::new(status, code, rejection.body_text())
}

/// A query string.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| ApiQuery(value))
            .map_err(|rejection: QueryRejection| {
                ApiError::bad_request("malformed_query", rejection.body_text())
            })
    }
}

/// Path segments.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ApiPath(value))
            .map_err(|rejection: PathRejection| {
                ApiError::bad_request("malformed_path", rejection.body_text())
            })
    }
}

/// A flow id in a path or query. Creation demands a v4 UUID, but a lookup accepts any UUID:
/// legacy flows sometimes reused a session id of another version as their flow id.
pub fn flow_id_param(text: &str) -> Result<FlowId, ApiError> {
    match FlowId::parse(text) {
        Ok(flow_id) => Ok(flow_id),
        Err(IdError::WrongVersion { .. }) => uuid::Uuid::try_parse(text.trim())
            .map(FlowId::from_stored)
            .map_err(|_| ApiError::bad_request("malformed_id", "flow id is not a UUID")),
        Err(err) => Err(err.into()),
    }
}
