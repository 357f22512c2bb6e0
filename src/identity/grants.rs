//! Per-tenant authorization: may this user reach this tenant? From the platform's RBAC tables
//! (`GrantSource::Rbac`, read through `store`) or from the token's own claims
//! (`GrantSource::Claims`). RBAC answers are cached briefly per (user, tenant), refused ones
//! too, so that a tenant that does not exist costs what a forbidden one costs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::db::Db;
use crate::identity::store::{self, RbacAnswer};
use crate::identity::{Identity, UserId};
use crate::ids::TenantId;

/// How long an RBAC answer is trusted: a revoked grant stops working within it.
pub const DEFAULT_GRANT_CACHE_TTL: Duration = Duration::from_secs(30);
/// Entries kept at most; the cache is emptied when full (simple, and bounded).
const MAX_ENTRIES: usize = 100_000;

/// Where grants come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantSource {
    /// The platform's RBAC tables, which must exist (checked at startup).
    Rbac,
    /// The token's `client_account_id` and `engagement_ids` claims.
    Claims,
}

impl GrantSource {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "rbac" => Some(Self::Rbac),
            "claims" => Some(Self::Claims),
            _ => None,
        }
    }
}

/// Why a request may not go on.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// Not granted, whether the tenant exists or not (the two are not told apart).
    #[error("this tenant is not granted to the caller")]
    Forbidden,
    #[error("the token's user is not a user of the platform")]
    UnknownUser,
    #[error("the token's user is not active")]
    InactiveUser,
    #[error("cannot read the grants: {0}")]
    Db(#[from] sqlx::Error),
}

/// Decides grants; cheap to share.
#[derive(Debug)]
pub struct Grants {
    db: Db,
    source: GrantSource,
    ttl: Duration,
    cache: Mutex<HashMap<(UserId, TenantId), (Instant, RbacAnswer)>>,
}

impl Grants {
    pub fn new(db: Db, source: GrantSource, ttl: Duration) -> Self {
        Self {
            db,
            source,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn source(&self) -> GrantSource {
        self.source
    }

    /// Refuses an RBAC source on a database without the RBAC tables, naming those missing.
    pub async fn check_source(&self) -> Result<Vec<&'static str>, sqlx::Error> {
        match self.source {
            GrantSource::Claims => Ok(Vec::new()),
            GrantSource::Rbac => store::missing_rbac_tables(&self.db).await,
        }
    }

    /// Whether `identity` may reach `tenant`.
    pub async fn authorize(
        &self,
        identity: &Identity,
        tenant: TenantId,
    ) -> Result<(), AccessError> {
        match self.source {
            GrantSource::Claims => {
                let claims = identity.tenants.as_ref().ok_or(AccessError::Forbidden)?;
                let granted = claims.client_account_id == Some(tenant.client_account_id)
                    && claims.engagement_ids.contains(&tenant.engagement_id);
                granted.then_some(()).ok_or(AccessError::Forbidden)
            }
            GrantSource::Rbac => {
                let answer = match self.cached(identity.user, tenant) {
                    Some(answer) => answer,
                    None => {
                        let answer = store::rbac_answer(&self.db, identity.user, tenant).await?;
                        self.remember(identity.user, tenant, answer);
                        answer
                    }
                };
                match answer {
                    RbacAnswer {
                        user_exists: false, ..
                    } => Err(AccessError::UnknownUser),
                    RbacAnswer {
                        user_active: false, ..
                    } => Err(AccessError::InactiveUser),
                    RbacAnswer { granted: false, .. } => Err(AccessError::Forbidden),
                    RbacAnswer { granted: true, .. } => Ok(()),
                }
            }
        }
    }

    /// Forgets every cached answer (after grants changed elsewhere, like the resolve cache's
    /// `clear_cache`).
    pub fn clear_cache(&self) {
        self.lock().clear();
    }

    /// Forgets the cached answers about one user (a grant given or revoked).
    pub fn invalidate_user(&self, user: UserId) {
        self.lock().retain(|(cached, _), _| *cached != user);
    }

    fn cached(&self, user: UserId, tenant: TenantId) -> Option<RbacAnswer> {
        let cache = self.lock();
        let (at, answer) = cache.get(&(user, tenant))?;
        (at.elapsed() < self.ttl).then_some(*answer)
    }

    fn remember(&self, user: UserId, tenant: TenantId, answer: RbacAnswer) {
        if self.ttl.is_zero() {
            return;
        }
        let mut cache = self.lock();
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        cache.insert((user, tenant), (Instant::now(), answer));
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(UserId, TenantId), (Instant, RbacAnswer)>> {
        // A panic while holding the lock leaves only a cache behind: keep using it.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
