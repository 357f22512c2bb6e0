//! Who is calling, and which tenants they may reach (issue 19). `token` verifies a bearer
//! JWT against a pinned algorithm and key; `grants` decides whether the token's user may
//! reach a tenant, from the platform's RBAC tables or from the token's own claims; `store`
//! holds the SQL of the RBAC read. Nothing here falls back: a token that does not verify, or
//! a user the platform does not know, is refused, never replaced by some default user.

pub mod grants;
pub mod store;
pub mod token;

pub use grants::{AccessError, GrantSource, Grants, DEFAULT_GRANT_CACHE_TTL};
pub use token::{ConfigError, JwtAlgorithm, JwtConfig, KeySource, TokenError, Verifier};

use crate::ids::{ClientAccountId, EngagementId};

/// The platform user a token names (`sub`): a UUID, the id of a `users` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserId(pub uuid::Uuid);

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// The tenants a token grants itself (read only when the server takes grants from claims).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TenantClaims {
    pub client_account_id: Option<ClientAccountId>,
    pub engagement_ids: Vec<EngagementId>,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: UserId,
    /// `Some` when the server reads tenant claims.
    pub tenants: Option<TenantClaims>,
}
