//! Whether `enable_flow_id_primary` may be turned `on`: the backfill is complete and the
//! links are sound. One function, so the migration's own `verify` can take its place later.

use serde::Serialize;

use crate::db::Db;
use crate::flags::{store, FlagError};

/// One check and how many rows fail it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadinessCount {
    pub check: &'static str,
    pub rows: i64,
}

/// What stands between the database and flag `on`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Readiness {
    /// Rows the backfill has not linked to their flow yet, per table.
    pub backfill_pending: Vec<ReadinessCount>,
    /// Broken links, per check.
    pub integrity_problems: Vec<ReadinessCount>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.backfill_pending.is_empty() && self.integrity_problems.is_empty()
    }

    /// One sentence per failing check.
    pub fn reasons(&self) -> Vec<String> {
        let pending = self.backfill_pending.iter().map(|c| {
            format!(
                "backfill incomplete: {} rows of {} have no flow_id",
                c.rows, c.check
            )
        });
        let broken = self
            .integrity_problems
            .iter()
            .map(|c| format!("integrity: {} {}", c.rows, c.check));
        pending.chain(broken).collect()
    }
}

/// Counts what is not yet linked and what is linked wrongly. Reads only.
pub async fn readiness(db: &Db) -> Result<Readiness, FlagError> {
    let mut tx = db.begin().await?;
    let mut result = Readiness::default();
    for (table, sql) in store::BACKFILL_PENDING {
        let rows = store::count(&mut tx, sql).await?;
        if rows > 0 {
            result
                .backfill_pending
                .push(ReadinessCount { check: table, rows });
        }
    }
    for (check, sql) in store::INTEGRITY_PROBLEMS {
        let rows = store::count(&mut tx, sql).await?;
        if rows > 0 {
            result
                .integrity_problems
                .push(ReadinessCount { check, rows });
        }
    }
    tx.rollback().await?;
    Ok(result)
}
