//! Whether `enable_flow_id_primary` may be turned `on`: the backfill has been applied and
//! every link is what the migration's rules give. The link checks are the migration's own
//! `verify` (the same checks as `flowkey verify`), so the service and the CLI can never
//! disagree on what "ready" means. They come from the last stored verification while nothing
//! it could have missed happened since (`migrate::flow::verification_record`), or while the
//! rows written since, and the rows those writes reach, pass the same checks
//! (`migrate::flow::verification_delta`); else they run now over every row and are stored.
//! Readiness answers in milliseconds on a quiet database, in about the time of the delta's
//! lookups while the application writes, and is never older than [`MAX_STORED_AGE`].

use std::time::Duration;

use serde::Serialize;

use crate::db::Db;
use crate::flags::FlagError;
use crate::migrate::flow::verification_delta::{
    count_linked_rows, write_like_old_code, DELTA_ROWS_CAP,
};
use crate::migrate::flow::verification_record::{check_links_and_record, last_standing, Stored};
use crate::migrate::flow::verify::sessions_without_mapping;
use crate::migrate::flow::{write_ledger, FlowMigrationError};
use crate::migrate::{revisions, Migrator, RunOptions};

/// A stored verification older than this is checked again, whatever the delta says: the
/// bound on what the delta cannot see (a `flow_id` written wrong by foreign SQL).
pub const MAX_STORED_AGE: Duration = Duration::from_secs(15 * 60);

/// Where the link checks' counts come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default, utoipa::ToSchema)]
pub struct ChecksSource {
    /// `stored`: the last stored verification still stands; `delta`: it stands because
    /// every row a write since could have changed the checks of was checked now; `checked`:
    /// the checks ran now over every row (and were stored); empty before the backfill.
    pub from: String,
    /// Why the stored verification alone did not stand (`checked`), or what the delta
    /// checked (`delta`).
    pub reason: Option<String>,
    /// When the stored verification's checks started (database clock; `stored` and `delta`).
    pub verified_at: Option<String>,
    /// Rows of the linked tables the delta checked (`delta` only).
    pub delta_rows_checked: Option<i64>,
}

/// One check and how many rows fail it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReadinessCount {
    pub check: String,
    pub rows: i64,
}

/// What stands between the database and flag `on`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default, utoipa::ToSchema)]
pub struct Readiness {
    /// The revision the database is at, when the backfill revision is not applied yet.
    pub backfill_not_applied: Option<String>,
    /// Rows whose `flow_id` is not what the rules give (still unlinked, or linked to another
    /// flow), per table.
    pub backfill_pending: Vec<ReadinessCount>,
    /// Broken links: crossing tenants, naming no flow, inconsistent mapping rows.
    pub integrity_problems: Vec<ReadinessCount>,
    /// Sessions without a mapping: under `on` their v1 routes would answer 404 (issue 12).
    pub sessions_unmapped: i64,
    /// Where the link checks' counts come from.
    pub checks: ChecksSource,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.backfill_not_applied.is_none()
            && self.backfill_pending.is_empty()
            && self.integrity_problems.is_empty()
            && self.sessions_unmapped == 0
    }

    /// One sentence per failing check.
    pub fn reasons(&self) -> Vec<String> {
        let not_applied = self.backfill_not_applied.iter().map(|at| {
            format!("backfill not applied: the database is at {at}, run `flowkey upgrade head`")
        });
        let pending = self.backfill_pending.iter().map(|c| {
            format!(
                "backfill incomplete: {} rows of {} do not have the flow_id the rules give",
                c.rows, c.check
            )
        });
        let broken = self
            .integrity_problems
            .iter()
            .map(|c| format!("integrity: {} rows with {}", c.rows, c.check));
        let unmapped = (self.sessions_unmapped > 0).then(|| {
            format!(
                "{} sessions without a mapping: run `flowkey catch-up` (a session the old \
                 application writes is mapped when its flow arrives; one without a flow gets a \
                 stand-in at a catch-up)",
                self.sessions_unmapped
            )
        });
        not_applied
            .chain(pending)
            .chain(broken)
            .chain(unmapped)
            .collect()
    }
}

/// Runs the migration's link checks. Reads only.
pub async fn readiness(db: &Db) -> Result<Readiness, FlagError> {
    let mut result = Readiness::default();
    let current = Migrator::new(db.clone(), RunOptions::default())
        .current()
        .await?;
    let position = |id: &str| revisions::all().iter().position(|r| r.id == id);
    let backfilled = current
        .and_then(position)
        .zip(position("flow_backfill"))
        .is_some_and(|(at, backfill)| at >= backfill);
    if !backfilled {
        result.backfill_not_applied = Some(current.unwrap_or("base").to_owned());
        return Ok(result);
    }
    let (tables, mut mapping) = match last_standing(db, MAX_STORED_AGE, DELTA_ROWS_CAP).await? {
        Stored::Fresh(stored) => {
            result.checks = match &stored.delta {
                None => ChecksSource {
                    from: "stored".into(),
                    verified_at: Some(stored.verified_at),
                    ..ChecksSource::default()
                },
                Some(checked) => ChecksSource {
                    from: "delta".into(),
                    reason: Some(checked.describe()),
                    verified_at: Some(stored.verified_at),
                    delta_rows_checked: Some(checked.rows_checked),
                },
            };
            (stored.tables, stored.mapping)
        }
        Stored::Stale(reason) => {
            let verified = check_links_and_record(db).await?;
            result.checks = ChecksSource {
                from: "checked".into(),
                reason: Some(reason),
                ..ChecksSource::default()
            };
            (verified.tables, verified.mapping)
        }
    };
    // Always live: one anti-join over the sessions.
    mapping.sessions_without_mapping = sessions_without_mapping(db).await?;
    let mut problem = |check: String, rows: i64| {
        if rows > 0 {
            result
                .integrity_problems
                .push(ReadinessCount { check, rows });
        }
    };
    for table in &tables {
        problem(
            format!("{} crossing tenants", table.table),
            table.crosses_tenant,
        );
        problem(format!("{} naming no flow", table.table), table.orphan_flow);
    }
    result.sessions_unmapped = mapping.sessions_without_mapping;
    problem(
        "session_flow_mapping rows naming no flow".into(),
        mapping.orphan_flow,
    );
    problem(
        "session_flow_mapping rows of another tenant than their flow".into(),
        mapping.tenant_differs_from_flow,
    );
    problem(
        "session_flow_mapping rows of another tenant than their session".into(),
        mapping.tenant_differs_from_session,
    );
    for table in &tables {
        if table.wrong_flow > 0 {
            result.backfill_pending.push(ReadinessCount {
                check: table.table.clone(),
                rows: table.wrong_flow,
            });
        }
    }
    Ok(result)
}

/// Readiness while the old application writes, against the full check it replaces, same run
/// (`flowkey bench readiness`).
#[derive(Debug, Clone, Serialize)]
pub struct ReadinessCost {
    /// Sessions the old application wrote, each with its flow, an import and
    /// `records_per_session` raw records.
    pub sessions_written: u32,
    pub records_per_session: u32,
    pub repeats: u32,
    /// Rows of the linked tables.
    pub rows: i64,
    /// `SELECT count(*)` of every linked table (touching every row once), best run.
    pub count_seconds: f64,
    /// The full link checks, run and stored as readiness does when nothing stands (best run).
    pub full_check_seconds: f64,
    /// Readiness after the writes (best run).
    pub readiness_seconds: f64,
    /// Where that answer came from (`delta` expected) and the rows the delta checked.
    pub readiness_from: String,
    pub delta_rows_checked: Option<i64>,
    pub readiness_vs_full_check: f64,
    pub readiness_vs_count: f64,
}

/// Measures [`ReadinessCost`] on a database at the write ledger's revision: the count and
/// the full check `repeats` times each, then `sessions` sessions written the old
/// application's way (committed: they stay), then readiness `repeats` times. Writes to the
/// database: run it on a copy.
pub async fn measure_readiness(
    db: &Db,
    sessions: u32,
    records_per_session: u32,
    repeats: u32,
) -> Result<ReadinessCost, FlagError> {
    use std::time::Instant;
    let repeats = repeats.max(1);
    let current = Migrator::new(db.clone(), RunOptions::default())
        .current()
        .await?;
    if current != Some(write_ledger::REVISION) {
        return Err(FlagError::Migration(
            FlowMigrationError::BenchNeedsLedger {
                at: current.unwrap_or("base").to_owned(),
            }
            .into(),
        ));
    }
    let (mut count_seconds, mut full_check_seconds, mut rows) = (f64::MAX, f64::MAX, 0);
    for _ in 0..repeats {
        let started = Instant::now();
        rows = count_linked_rows(db).await?;
        count_seconds = count_seconds.min(started.elapsed().as_secs_f64());
        let started = Instant::now();
        check_links_and_record(db).await?;
        full_check_seconds = full_check_seconds.min(started.elapsed().as_secs_f64());
    }
    write_like_old_code(db, sessions, records_per_session).await?;
    let mut readiness_seconds = f64::MAX;
    let mut checks = ChecksSource::default();
    for _ in 0..repeats {
        let started = Instant::now();
        checks = readiness(db).await?.checks;
        readiness_seconds = readiness_seconds.min(started.elapsed().as_secs_f64());
    }
    Ok(ReadinessCost {
        sessions_written: sessions,
        records_per_session,
        repeats,
        rows,
        count_seconds,
        full_check_seconds,
        readiness_seconds,
        readiness_from: checks.from,
        delta_rows_checked: checks.delta_rows_checked,
        readiness_vs_full_check: crate::measure::ratio(readiness_seconds, full_check_seconds),
        readiness_vs_count: crate::measure::ratio(readiness_seconds, count_seconds),
    })
}
