//! The admin bearer token: `/api/admin/*` act on the whole database, so they answer only a
//! caller that presents the token the server was started with (`flowkey serve
//! --admin-token`, or `FLOWKEY_ADMIN_TOKEN`). Without a configured token they are disabled
//! (403), so an operator cannot expose them by forgetting a setting.

use std::fmt;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::{ApiError, AppState};

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
