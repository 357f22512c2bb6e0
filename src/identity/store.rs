//! SQL of the platform's RBAC tables (`users`, `user_profiles`, `client_access`,
//! `engagement_access`, `user_account_associations`; their shape is the platform's models',
//! see `../shared/platform/`). Reads only.

use crate::db::types::{DbTime, DbUuid};
use crate::db::{on_pool, Db, Engine};
use crate::identity::UserId;
use crate::ids::TenantId;

/// The tables the RBAC grant source reads.
pub const RBAC_TABLES: [&str; 5] = [
    "users",
    "user_profiles",
    "client_access",
    "engagement_access",
    "user_account_associations",
];

/// What the RBAC tables say of one user and one tenant, read in one statement so that a
/// tenant that exists and one that does not cost the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RbacAnswer {
    pub user_exists: bool,
    /// `user_profiles.status = 'active'`.
    pub user_active: bool,
    pub granted: bool,
}

/// The RBAC tables among [`RBAC_TABLES`] that the database lacks (looked up through the
/// `search_path` on PostgreSQL).
pub async fn missing_rbac_tables(db: &Db) -> Result<Vec<&'static str>, sqlx::Error> {
    let mut missing = Vec::new();
    for table in RBAC_TABLES {
        let found: bool = match db.engine() {
            Engine::Postgres => on_pool!(db, pool => {
                sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                    .bind(table)
                    .fetch_one(pool)
                    .await?
            }),
            Engine::Sqlite => on_pool!(db, pool => {
                sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1)",
                )
                .bind(table)
                .fetch_one(pool)
                .await?
            }),
        };
        if !found {
            missing.push(table);
        }
    }
    Ok(missing)
}

/// One statement: does the user exist, is their profile active, and is the tenant granted.
/// A tenant is granted when its engagement belongs to its client account and the user has an
/// active, unexpired `client_access` row for the client account (which covers its
/// engagements), or a (non-mock) `user_account_associations` row for the client account
/// together with an active, unexpired `engagement_access` row for the engagement. `is_active`
/// must be true: a NULL is not taken as a grant.
pub async fn rbac_answer(
    db: &Db,
    user: UserId,
    tenant: TenantId,
) -> Result<RbacAnswer, sqlx::Error> {
    const SQL: &str = "SELECT \
        EXISTS (SELECT 1 FROM users u WHERE u.id = $1) AS user_exists, \
        EXISTS (SELECT 1 FROM user_profiles p WHERE p.user_id = $1 AND p.status = 'active') \
            AS user_active, \
        EXISTS (SELECT 1 FROM engagements e WHERE e.id = $3 AND e.client_account_id = $2 AND ( \
            EXISTS (SELECT 1 FROM client_access ca WHERE ca.user_profile_id = $1 \
                AND ca.client_account_id = $2 AND ca.is_active = TRUE \
                AND (ca.expires_at IS NULL OR ca.expires_at > $4)) \
            OR (EXISTS (SELECT 1 FROM user_account_associations a WHERE a.user_id = $1 \
                    AND a.client_account_id = $2 AND a.is_mock = FALSE) \
                AND EXISTS (SELECT 1 FROM engagement_access ea WHERE ea.user_profile_id = $1 \
                    AND ea.engagement_id = $3 AND ea.is_active = TRUE \
                    AND (ea.expires_at IS NULL OR ea.expires_at > $4))))) AS granted";
    let (user_exists, user_active, granted): (bool, bool, bool) = on_pool!(db, pool => {
        sqlx::query_as(SQL)
            .bind(DbUuid(user.0))
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(DbTime::now())
            .fetch_one(pool)
            .await?
    });
    Ok(RbacAnswer {
        user_exists,
        user_active,
        granted,
    })
}
