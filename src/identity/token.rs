//! Bearer JWT verification. The algorithm is pinned by configuration and never read from the
//! token: a token whose header names another algorithm (`none`, or HS256 against an RS256
//! key, the classic confusion) is refused before its signature is looked at.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::identity::{Identity, TenantClaims, UserId};
use crate::ids::{ClientAccountId, EngagementId};

/// Shortest HS256 secret accepted: RFC 7518 §3.2 asks for a key at least as long as the hash.
pub const MIN_SECRET_BYTES: usize = 32;

/// The algorithms a configuration may pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    Hs256,
    Rs256,
    Es256,
}

impl JwtAlgorithm {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        match text.trim().to_ascii_uppercase().as_str() {
            "HS256" => Ok(Self::Hs256),
            "RS256" => Ok(Self::Rs256),
            "ES256" => Ok(Self::Es256),
            _ => Err(ConfigError::UnknownAlgorithm(text.to_owned())),
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            Self::Hs256 => Algorithm::HS256,
            Self::Rs256 => Algorithm::RS256,
            Self::Es256 => Algorithm::ES256,
        }
    }
}

/// Where the verification key comes from.
#[derive(Clone)]
pub enum KeySource {
    /// HS256's shared secret (`FLOWKEY_JWT_SECRET`).
    Secret(Vec<u8>),
    /// A PEM public key (RS256 or ES256).
    PublicKeyFile(PathBuf),
    /// A JWKS document (RS256 or ES256); the token's `kid` picks the key.
    JwksFile(PathBuf),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(<redacted>)"),
            Self::PublicKeyFile(path) => write!(f, "PublicKeyFile({})", path.display()),
            Self::JwksFile(path) => write!(f, "JwksFile({})", path.display()),
        }
    }
}

/// What a token must be to be accepted.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub algorithm: JwtAlgorithm,
    pub key: KeySource,
    /// Required `iss` when set.
    pub issuer: Option<String>,
    /// Required `aud` when set.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
}

/// Why an authentication configuration was refused at startup.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("JWT algorithm {0:?} is not supported; use HS256, RS256 or ES256")]
    UnknownAlgorithm(String),
    #[error("the HS256 secret is {length} bytes long; use at least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)")]
    SecretTooShort { length: usize },
    #[error("{algorithm:?} verifies with a public key or JWKS file, not a shared secret")]
    SecretForAsymmetric { algorithm: JwtAlgorithm },
    #[error("HS256 verifies with a shared secret (FLOWKEY_JWT_SECRET), not a public key")]
    KeyForSymmetric,
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a {algorithm:?} public key in PEM form: {reason}")]
    BadPublicKey {
        path: PathBuf,
        algorithm: JwtAlgorithm,
        reason: String,
    },
    #[error("{path} is not a usable JWKS document: {reason}")]
    BadJwks { path: PathBuf, reason: String },
}

/// Why a presented token was refused. Every variant is a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is signed with an algorithm this server does not accept")]
    WrongAlgorithm,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token's key id names no key of this server")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's issuer is not accepted")]
    WrongIssuer,
    #[error("the token's audience is not accepted")]
    WrongAudience,
    #[error("the token has no `{0}` claim")]
    MissingClaim(String),
    #[error("the token's `sub` is not a user id (a UUID)")]
    SubjectNotUser,
    #[error("the token's `{0}` claim is not a UUID (or list of UUIDs)")]
    BadTenantClaim(&'static str),
}

/// Checks bearer tokens against one pinned algorithm and its key(s).
pub struct Verifier {
    validation: Validation,
    keys: Keys,
}

enum Keys {
    One(Box<DecodingKey>),
    /// From a JWKS file: by `kid`; a token without `kid` is accepted only when there is one key.
    Set(Vec<(Option<String>, DecodingKey)>),
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    #[serde(default)]
    client_account_id: Option<serde_json::Value>,
    #[serde(default)]
    engagement_ids: Option<serde_json::Value>,
}

impl Verifier {
    pub fn new(config: &JwtConfig) -> Result<Self, ConfigError> {
        let algorithm = config.algorithm;
        let keys = match (&config.key, algorithm) {
            (KeySource::Secret(secret), JwtAlgorithm::Hs256) => {
                if secret.len() < MIN_SECRET_BYTES {
                    return Err(ConfigError::SecretTooShort {
                        length: secret.len(),
                    });
                }
                Keys::One(Box::new(DecodingKey::from_secret(secret)))
            }
            (KeySource::Secret(_), algorithm) => {
                return Err(ConfigError::SecretForAsymmetric { algorithm })
            }
            (_, JwtAlgorithm::Hs256) => return Err(ConfigError::KeyForSymmetric),
            (KeySource::PublicKeyFile(path), algorithm) => {
                let pem = read(path)?;
                let key = match algorithm {
                    JwtAlgorithm::Rs256 => DecodingKey::from_rsa_pem(&pem),
                    _ => DecodingKey::from_ec_pem(&pem),
                }
                .map_err(|err| ConfigError::BadPublicKey {
                    path: path.clone(),
                    algorithm,
                    reason: err.to_string(),
                })?;
                Keys::One(Box::new(key))
            }
            (KeySource::JwksFile(path), algorithm) => Keys::Set(jwks(path, algorithm)?),
        };
        let mut validation = Validation::new(algorithm.jwt());
        validation.leeway = config.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &config.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(Self { validation, keys })
    }

    /// The identity a token proves. `tenant_claims` says whether its `client_account_id` /
    /// `engagement_ids` claims are read (they are refused when present but malformed).
    pub fn verify(&self, token: &str, tenant_claims: bool) -> Result<Identity, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|err| match err.kind() {
            // `alg: none` and any name the library does not know end here.
            ErrorKind::Json(_) | ErrorKind::InvalidAlgorithmName => TokenError::WrongAlgorithm,
            _ => TokenError::Malformed,
        })?;
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(TokenError::WrongAlgorithm);
        }
        let key = match &self.keys {
            Keys::One(key) => key.as_ref(),
            Keys::Set(keys) => match (&header.kid, keys.as_slice()) {
                (None, [(_, key)]) => key,
                (Some(kid), keys) => keys
                    .iter()
                    .find(|(id, _)| id.as_deref() == Some(kid.as_str()))
                    .map(|(_, key)| key)
                    .ok_or(TokenError::UnknownKey)?,
                (None, _) => return Err(TokenError::UnknownKey),
            },
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|err| token_error(err.kind()))?;
        let claims = data.claims;
        let sub = claims
            .sub
            .ok_or_else(|| TokenError::MissingClaim("sub".to_owned()))?;
        let user = uuid::Uuid::try_parse(sub.trim())
            .map(UserId)
            .map_err(|_| TokenError::SubjectNotUser)?;
        let tenants = if tenant_claims {
            Some(tenant_claims_of(
                claims.client_account_id,
                claims.engagement_ids,
            )?)
        } else {
            None
        };
        Ok(Identity { user, tenants })
    }
}

fn tenant_claims_of(
    client: Option<serde_json::Value>,
    engagements: Option<serde_json::Value>,
) -> Result<TenantClaims, TokenError> {
    let client_account_id = match client {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(text)) => Some(
            ClientAccountId::parse(&text)
                .map_err(|_| TokenError::BadTenantClaim("client_account_id"))?,
        ),
        Some(_) => return Err(TokenError::BadTenantClaim("client_account_id")),
    };
    let engagement_ids = match engagements {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .and_then(|text| EngagementId::parse(text).ok())
                    .ok_or(TokenError::BadTenantClaim("engagement_ids"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(TokenError::BadTenantClaim("engagement_ids")),
    };
    Ok(TenantClaims {
        client_account_id,
        engagement_ids,
    })
}

fn token_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim(claim.clone()),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => TokenError::WrongAlgorithm,
        _ => TokenError::Malformed,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The keys of a JWKS file usable with `algorithm`: a key whose `alg` names another
/// algorithm is left out, and a file left with none is refused.
fn jwks(
    path: &Path,
    algorithm: JwtAlgorithm,
) -> Result<Vec<(Option<String>, DecodingKey)>, ConfigError> {
    let bad = |reason: String| ConfigError::BadJwks {
        path: path.to_owned(),
        reason,
    };
    let set: JwkSet = serde_json::from_slice(&read(path)?).map_err(|err| bad(err.to_string()))?;
    let wanted = format!("{:?}", algorithm.jwt());
    let mut keys = Vec::new();
    for jwk in &set.keys {
        if let Some(alg) = jwk.common.key_algorithm {
            if format!("{alg:?}") != wanted {
                continue;
            }
        }
        let fits = matches!(
            (&jwk.algorithm, algorithm),
            (
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_),
                JwtAlgorithm::Rs256
            ) | (
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_),
                JwtAlgorithm::Es256
            )
        );
        if !fits {
            continue;
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|err| bad(err.to_string()))?;
        keys.push((jwk.common.key_id.clone(), key));
    }
    if keys.is_empty() {
        return Err(bad(format!("it holds no {algorithm:?} key")));
    }
    let ids: HashSet<_> = keys.iter().map(|(id, _)| id.clone()).collect();
    if ids.len() != keys.len() {
        return Err(bad("two keys share a `kid`".to_owned()));
    }
    Ok(keys)
}
