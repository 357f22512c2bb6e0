use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::db::Db;
use crate::flags::{readiness, store, FlagError, FlagScope, FlowIdPrimary, StoredFlag};
use crate::ids::TenantId;

/// How often a server reads `flowkey_flags` unless configured otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, Default, Clone)]
struct Snapshot {
    global: Option<FlowIdPrimary>,
    tenants: HashMap<TenantId, FlowIdPrimary>,
}

/// A server's view of the flag: the stored values as of the last refresh, over the
/// environment's default.
#[derive(Debug)]
pub struct FlagWatcher {
    db: Db,
    default: FlowIdPrimary,
    snapshot: RwLock<Snapshot>,
    /// One refresh at a time, each reading and applying in turn: a poll that read before an
    /// admin change committed could otherwise apply its older values after the admin's
    /// refresh applied the new ones (seen once in CI: `on` set, `off` served).
    refreshing: tokio::sync::Mutex<()>,
}

impl FlagWatcher {
    /// A watcher that knows only the default until its first [`FlagWatcher::refresh`].
    pub fn new(db: Db, default: FlowIdPrimary) -> Self {
        Self {
            db,
            default,
            snapshot: RwLock::new(Snapshot::default()),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The mode for a tenant: its own override, else the global value, else the default.
    pub fn mode_for(&self, tenant: TenantId) -> FlowIdPrimary {
        let snapshot = self
            .snapshot
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        snapshot
            .tenants
            .get(&tenant)
            .copied()
            .or(snapshot.global)
            .unwrap_or(self.default)
    }

    /// Re-reads the stored values. A value that does not parse is skipped and logged, so a
    /// bad row cannot take a server down.
    pub async fn refresh(&self) -> Result<(), FlagError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let rows = stored_flags(&self.db).await?;
        let mut next = Snapshot::default();
        for row in rows {
            let value = match row.value.parse::<FlowIdPrimary>() {
                Ok(value) => value,
                Err(err) => {
                    tracing::warn!(scope = %row.scope, error = %err, "ignoring stored flag value");
                    continue;
                }
            };
            match FlagScope::parse(&row.scope) {
                Ok(FlagScope::Global) => next.global = Some(value),
                Ok(FlagScope::Tenant(tenant)) => {
                    next.tenants.insert(tenant, value);
                }
                Err(err) => {
                    tracing::warn!(scope = %row.scope, error = %err, "ignoring stored flag scope")
                }
            }
        }
        *self
            .snapshot
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = next;
        Ok(())
    }

    /// The global mode (the stored global value, else the default).
    pub fn global_mode(&self) -> FlowIdPrimary {
        let snapshot = self
            .snapshot
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        snapshot.global.unwrap_or(self.default)
    }

    /// [`FlagWatcher::refresh`], a failure logged and the last values kept.
    pub async fn refresh_logged(&self) {
        if let Err(err) = self.refresh().await {
            tracing::warn!(error = %err, "cannot refresh flags; keeping the last values");
        }
    }

    /// Refreshes every `interval` until the task is aborted; a failed read keeps the last
    /// known values and is logged.
    pub fn spawn_polling(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if let Err(err) = self.refresh().await {
                    tracing::warn!(error = %err, "cannot refresh flags; keeping the last values");
                }
            }
        })
    }
}

/// Stores a value for a scope. `on` is refused while [`readiness`] finds the backfill
/// incomplete or a broken link, and while the scope has shadow mismatches since its last
/// flag change.
pub async fn set_flag(
    db: &Db,
    scope: FlagScope,
    value: FlowIdPrimary,
    updated_by: &str,
) -> Result<(), FlagError> {
    set_flag_forcing(db, scope, value, updated_by, false)
        .await
        .map(|_| ())
}

/// [`set_flag`], where `force` lets `on` past the shadow gate (never past readiness). Every
/// change is recorded in `flowkey_flag_changes`, a forced one with the mismatches it
/// overrode (the answer), and starts the scope's mismatch count again.
pub async fn set_flag_forcing(
    db: &Db,
    scope: FlagScope,
    value: FlowIdPrimary,
    updated_by: &str,
    force: bool,
) -> Result<Option<i64>, FlagError> {
    ensure_allowed(db, value).await?;
    let mut tx = db.begin_write().await?;
    let mut overridden = None;
    if value == FlowIdPrimary::On {
        let mismatches = store::shadow_mismatches(&mut tx, scope).await?;
        if mismatches > 0 {
            if !force {
                tx.rollback().await?;
                return Err(FlagError::ShadowMismatches {
                    scope: scope.to_string(),
                    mismatches,
                });
            }
            overridden = Some(mismatches);
        }
    }
    store::upsert(&mut tx, scope, value, updated_by).await?;
    store::reset_shadow_mismatches(&mut tx, scope).await?;
    store::record_change(&mut tx, scope, Some(value), updated_by, overridden).await?;
    tx.commit().await?;
    match overridden {
        Some(mismatches) => {
            tracing::warn!(%scope, %value, updated_by, mismatches, "enable_flow_id_primary forced on past shadow mismatches")
        }
        None => tracing::info!(%scope, %value, updated_by, "enable_flow_id_primary changed"),
    }
    Ok(overridden)
}

/// Removes the stored value of a scope: a tenant then follows the global value again, and
/// the global scope the servers' default (`ENABLE_FLOW_ID_PRIMARY`). Answers whether a value
/// was stored. Never refused: going back to a wider value is how a rollback reaches a tenant
/// that was set apart.
pub async fn unset_flag(db: &Db, scope: FlagScope, updated_by: &str) -> Result<bool, FlagError> {
    let mut tx = db.begin_write().await?;
    let removed = store::delete(&mut tx, scope).await?;
    if removed {
        store::reset_shadow_mismatches(&mut tx, scope).await?;
        store::record_change(&mut tx, scope, None, updated_by, None).await?;
    }
    tx.commit().await?;
    if removed {
        tracing::info!(%scope, updated_by, "enable_flow_id_primary override removed");
    }
    Ok(removed)
}

/// The default a server is started with (`ENABLE_FLOW_ID_PRIMARY`) passes the same gate as
/// a stored value: `on` is refused while [`readiness`] finds the backfill incomplete or a
/// broken link, so the environment is no way around `flag set`'s check.
///
/// After the contract the default is moot (legacy ids are answered from the mapping, as
/// under `on`, whatever a server's flag says), so any default is accepted there: a server
/// started without `ENABLE_FLOW_ID_PRIMARY` (default `off`) serves a contracted database.
pub async fn check_default(db: &Db, default: FlowIdPrimary) -> Result<(), FlagError> {
    if contracted(db).await? {
        if default != FlowIdPrimary::On {
            tracing::info!(%default, "the database is contracted: legacy ids are answered from the mapping whatever ENABLE_FLOW_ID_PRIMARY says");
        }
        return Ok(());
    }
    ensure_allowed(db, default).await
}

/// Whether the recorded revision is the contract (or another after head).
async fn contracted(db: &Db) -> Result<bool, FlagError> {
    Ok(
        crate::migrate::Migrator::new(db.clone(), Default::default())
            .current()
            .await?
            .is_some_and(crate::migrate::revisions::is_after_head),
    )
}

/// `off` and `shadow` are allowed until the contract, which drops the session columns they
/// read; `on` only on a ready database (a contracted one is: its gate ran verify).
async fn ensure_allowed(db: &Db, value: FlowIdPrimary) -> Result<(), FlagError> {
    let contracted = contracted(db).await?;
    if value != FlowIdPrimary::On {
        if contracted {
            return Err(FlagError::Contracted {
                value: value.to_string(),
            });
        }
        return Ok(());
    }
    if contracted {
        return Ok(());
    }
    let readiness = readiness(db).await?;
    if !readiness.is_ready() {
        return Err(FlagError::NotReady {
            reasons: readiness.reasons(),
        });
    }
    Ok(())
}

/// Every stored value of the flag.
pub async fn stored_flags(db: &Db) -> Result<Vec<StoredFlag>, FlagError> {
    // Below service_state: said as such, not as SQL's "no such table".
    if !crate::migrate::audit::table_exists(db, "flowkey_flags").await? {
        return Err(FlagError::NotInstalled);
    }
    let mut tx = db.begin().await?;
    let rows = store::list(&mut tx).await;
    tx.rollback().await?;
    rows
}
