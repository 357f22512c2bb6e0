//! The admin bearer token: `/api/admin/*` act on the whole database, so they answer only a
//! caller that presents the token the server was started with (`flowkey serve
//! --admin-token`, or `FLOWKEY_ADMIN_TOKEN`). Without a configured token they are disabled
//! (403), so an operator cannot expose them by forgetting a setting.
//!
//! The tenant routes (v3 and v1) answer only a caller with a bearer JWT that verifies
//! (`identity::Verifier`) and whose user is granted the tenant the headers name
//! (`identity::Grants`): a missing or bad token is a 401 with `WWW-Authenticate: Bearer`, a
//! tenant not granted a 403 `tenant_forbidden`, whether or not the tenant exists. A server
//! started with `--auth none` (loopback only, see `flowkey serve`) skips both.

use std::fmt;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::extract::{single_header, CLIENT_ACCOUNT_HEADER, ENGAGEMENT_HEADER};
use crate::http::{ApiError, AppState};
use crate::identity::{AccessError, GrantSource, Grants, Identity, Verifier};
use crate::ids::{ClientAccountId, EngagementId, TenantId};

/// The shared secret of the admin routes. Only its SHA-256 digest is kept, and `Debug`
/// never prints it, so it cannot leak through a logged config.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
}

/// Why a configured admin token was refused at startup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminTokenError {
    #[error("the admin token is empty")]
    Empty,
    #[error("the admin token is {length} bytes long; use at least {MIN_TOKEN_BYTES} (e.g. `openssl rand -hex 32`)")]
    TooShort { length: usize },
}

/// Shortest token accepted: a guessable token would make the check pointless.
pub const MIN_TOKEN_BYTES: usize = 16;

impl AdminToken {
    pub fn parse(text: &str) -> Result<Self, AdminTokenError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AdminTokenError::Empty);
        }
        if text.len() < MIN_TOKEN_BYTES {
            return Err(AdminTokenError::TooShort { length: text.len() });
        }
        Ok(Self {
            digest: Sha256::digest(text.as_bytes()).into(),
        })
    }

    /// Whether `presented` is the token. Both sides are compared as SHA-256 digests with
    /// `subtle`'s constant-time equality: the time taken does not depend on how many leading
    /// bytes match (so the token cannot be guessed byte by byte from response times), and
    /// hashing first makes both sides the same length, so the token's length leaks neither
    /// (`ct_eq` on slices of different lengths returns at once).
    pub fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.digest.ct_eq(&presented).into()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// The `WWW-Authenticate` challenge of a 401 (RFC 6750).
const CHALLENGE: &str = "Bearer realm=\"flowkey-admin\"";
const CHALLENGE_INVALID: &str = "Bearer realm=\"flowkey-admin\", error=\"invalid_token\"";

/// Lets a request through only with `Authorization: Bearer <admin token>`.
pub(crate) async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = state.config.admin_token.as_ref() else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "admin routes are disabled on this server: start `flowkey serve` with \
             --admin-token <TOKEN> or FLOWKEY_ADMIN_TOKEN=<TOKEN> to enable them",
        )
        .into_response();
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer);
    match presented {
        Some(presented) if token.matches(presented) => next.run(request).await,
        Some(_) => unauthorized("the admin token is wrong", CHALLENGE_INVALID),
        None => unauthorized(
            "admin routes need the header `Authorization: Bearer <admin token>`",
            CHALLENGE,
        ),
    }
}

/// How the tenant routes authenticate: the verifier and the grant source.
#[derive(Debug)]
pub struct Authenticator {
    pub verifier: std::sync::Arc<Verifier>,
    pub grants: Grants,
}

const CHALLENGE_API: &str = "Bearer realm=\"flowkey\"";
const CHALLENGE_API_INVALID: &str = "Bearer realm=\"flowkey\", error=\"invalid_token\"";

/// Lets a tenant request through only with a verified token whose user is granted the tenant
/// its headers name; the verified [`Identity`] goes to the request's extensions, where the
/// `UserHeader` and `Caller` extractors read it. Missing or malformed tenant headers are left
/// to the handler's extractor (its 400), after authentication.
pub(crate) async fn require_user(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(auth) = state.auth.as_ref() else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer);
    let Some(presented) = presented else {
        return unauthorized_owned(
            "this route needs the header `Authorization: Bearer <JWT>`".to_owned(),
            CHALLENGE_API,
        );
    };
    let claims = auth.grants.source() == GrantSource::Claims;
    let identity = match auth.verifier.verify(presented, claims) {
        Ok(identity) => identity,
        Err(err) => return unauthorized_owned(err.to_string(), CHALLENGE_API_INVALID),
    };
    if let Some(tenant) = named_tenant(request.headers()) {
        match auth.grants.authorize(&identity, tenant).await {
            Ok(()) => {}
            Err(AccessError::Forbidden) => return tenant_forbidden().into_response(),
            Err(err @ (AccessError::UnknownUser | AccessError::InactiveUser)) => {
                return unauthorized_owned(err.to_string(), CHALLENGE_API_INVALID)
            }
            Err(AccessError::Db(err)) => return ApiError::from(err).into_response(),
        }
    }
    request.extensions_mut().insert::<Identity>(identity);
    next.run(request).await
}

/// The tenant the headers name, when they name one well (else the handler answers 400).
fn named_tenant(headers: &axum::http::HeaderMap) -> Option<TenantId> {
    let client = single_header(headers, CLIENT_ACCOUNT_HEADER).ok()??;
    let engagement = single_header(headers, ENGAGEMENT_HEADER).ok()??;
    Some(TenantId::new(
        ClientAccountId::parse(&client).ok()?,
        EngagementId::parse(&engagement).ok()?,
    ))
}

/// One body for every tenant the caller may not reach, existing or not.
pub(crate) fn tenant_forbidden() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "tenant_forbidden",
        "the tenant named by X-Client-Account-Id and X-Engagement-Id is not granted to this caller",
    )
}

fn unauthorized_owned(message: String, challenge: &'static str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// The credentials of `Bearer <token>` (the scheme in any case, as RFC 9110 says).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
        .filter(|credentials| !credentials.is_empty())
}

fn unauthorized(message: &'static str, challenge: &'static str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_matches_only_itself() {
        let token = AdminToken::parse("  0123456789abcdef-secret ").expect("token");
        assert!(token.matches("0123456789abcdef-secret"));
        assert!(!token.matches("0123456789abcdef-secreT"));
        assert!(!token.matches("0123456789abcdef-secret "));
        assert!(!token.matches(""));
        assert!(!format!("{token:?}").contains("secret"));
    }

    #[test]
    fn short_or_empty_tokens_are_refused() {
        assert_eq!(AdminToken::parse(" ").err(), Some(AdminTokenError::Empty));
        assert_eq!(
            AdminToken::parse("short").err(),
            Some(AdminTokenError::TooShort { length: 5 })
        );
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
