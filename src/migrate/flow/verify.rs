//! `verify`: the proof that the migration lost nothing and linked nothing wrongly.
//!
//! 1. The legacy columns of every legacy table are fingerprinted again and compared with the
//!    baseline taken before the upgrade changed anything. Flows the migration created are
//!    left out on both sides. Any difference is a failure that names the table and the row
//!    count delta: rows written after the upgrade (the service running at `head`, old code
//!    during an online migration) show up here too, by design, since the fingerprint cannot
//!    tell a legitimate write from a loss; run `verify` right after `upgrade` for the proof,
//!    and read the other checks for a database that has been written to since.
//! 2. Every row's `flow_id` is recomputed by the rules of issue 3 (through
//!    `session_flow_mapping`) and compared; rows written at head without a session may carry
//!    any flow of their tenant.
//! 3. No row is linked to a flow of another tenant (its own tenant columns where set; a field
//!    mapping's import's).
//! 4. Every `flow_id` of a core table names an existing flow; every mapping row names an
//!    existing flow of the mapping's tenant, and the session's tenant where the session exists.
//!
//! Each table is checked by one statement over the whole table (every lookup a join on a
//! key); offending rows are named (capped list).

use std::fmt::Write as _;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::db::tenancy;
use crate::db::{Db, Engine, Tx};
use crate::migrate::flow::error::FlowMigrationError;
use crate::migrate::flow::fingerprint::{
    fingerprint_like_baseline, load_baseline, FingerprintScope,
};
use crate::migrate::flow::linked::{
    linked_up_to, FlowForeignKey, JoinedFlow, LinkedTable, TenantColumns, LINKED_TABLES,
};
use crate::migrate::flow::tables::text_of;
use crate::migrate::flow::verification_basis::{read_basis, Basis};
use crate::migrate::flow::write_ledger::{self, LedgerComparison};
use crate::migrate::{MigrateError, StepContext, StepSql};

/// A row id with three 0/1 flags, as the checking queries return them.
type Flags = (String, i32, i32, i32);

/// Offending rows named in a report, at most.
pub const OFFENDING_ROWS_CAP: usize = 100;

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub engine: Engine,
    pub fingerprints: Vec<FingerprintComparison>,
    pub tables: Vec<TableVerification>,
    pub mapping: MappingVerification,
    /// The first offending rows found, at most [`OFFENDING_ROWS_CAP`].
    pub offending_rows: Vec<OffendingRow>,
    pub rows_checked: i64,
    pub elapsed_ms: u128,
    pub rows_per_second: f64,
    /// The row-by-row comparison with the write ledger's baseline, where the database has a
    /// ledger ([`write_ledger`]).
    pub ledger: Option<LedgerComparison>,
    /// Asked as the online go/no-go (`verify --online`): the ledger may stand in for the
    /// fingerprints even when it started after them.
    pub online: bool,
    /// Linked tables whose backfill has not finished (an upgrade stopped or still running
    /// in `flow_backfill`): their rows without a flow are work not done yet, not damage.
    pub backfill_unfinished: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FingerprintComparison {
    pub table: String,
    pub baseline_rows: i64,
    pub current_rows: i64,
    pub baseline_hash: String,
    pub current_hash: String,
    pub same: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TableVerification {
    pub table: String,
    pub rows_checked: i64,
    /// Linked to another flow than the rules give, or left unlinked where they give one.
    pub wrong_flow: i64,
    pub crosses_tenant: i64,
    /// `flow_id` names no flow (core tables only; audit rows outlive flows).
    pub orphan_flow: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MappingVerification {
    pub rows: i64,
    pub orphan_flow: i64,
    pub tenant_differs_from_flow: i64,
    pub tenant_differs_from_session: i64,
    /// Sessions created after the mapping was computed (not an error: their rows stay
    /// unlinked and are reported as dangling).
    pub sessions_without_mapping: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OffendingRow {
    pub table: String,
    pub id: String,
    pub problem: String,
}

impl VerifyReport {
    /// No legacy value changed except by the application, and nothing is linked wrongly.
    ///
    /// Online, a session without a mapping is reported but does not fail it: old code
    /// creates a session a moment before its flow, and the `on` gate counts them anyway.
    pub fn is_ok(&self) -> bool {
        self.legacy_values_hold()
            && self.links_are_sound()
            && (self.online || self.mapping_is_complete())
    }

    /// No legacy row changed, lost or added except by the application. Exact (`verify`):
    /// the fingerprints taken before the upgrade match, nothing changed at all. Online
    /// (`verify --online`): the write ledger explains every difference since its start. A
    /// ledger that finds a row the application did not write fails either.
    pub fn legacy_values_hold(&self) -> bool {
        let ledger_passes = self.ledger.as_ref().is_none_or(LedgerComparison::passes);
        let ledger_stands_in = self.online && self.ledger.is_some();
        ledger_passes && (self.fingerprints_match() || ledger_stands_in)
    }

    /// Every session has a mapping. Not part of [`Self::links_are_sound`]: while the old
    /// application writes, a session exists for a moment before its flow, so a revision's
    /// verify step must not fail on it; `verify` and the `on` gate report it.
    pub fn mapping_is_complete(&self) -> bool {
        self.mapping.sessions_without_mapping == 0
    }

    pub fn fingerprints_match(&self) -> bool {
        self.fingerprints.iter().all(|comparison| comparison.same)
    }

    /// Every link follows the rules, stays in its tenant and names an existing flow.
    pub fn links_are_sound(&self) -> bool {
        links_are_sound(&self.tables, &self.mapping)
    }

    /// One line naming what failed.
    pub fn summary(&self) -> String {
        let mut problems = Vec::new();
        if !self.legacy_values_hold() {
            for comparison in self.fingerprints.iter().filter(|c| !c.same) {
                problems.push(format!(
                    "{} changed since the fingerprint ({} rows then, {} now)",
                    comparison.table, comparison.baseline_rows, comparison.current_rows
                ));
            }
            match &self.ledger {
                Some(ledger) if !ledger.passes() => problems.push(ledger.summary()),
                Some(_) => problems.push(
                    "while the application writes, `verify --online` tells its writes from \
                     any other change (the write ledger)"
                        .to_owned(),
                ),
                None if self.online => problems.push(
                    "no write ledger (revision write_ledger not applied, or after the contract): \
                     the online check has nothing to compare"
                        .to_owned(),
                ),
                None => {}
            }
        }
        for table in &self.tables {
            if table.wrong_flow > 0 && self.backfill_unfinished.contains(&table.table) {
                // Counted by the same rule, but these rows are the backfill's work still to
                // do, not links gone wrong.
                problems.push(format!(
                    "{}: {} rows not backfilled yet (its backfill has not finished: run \
                     `flowkey upgrade head`)",
                    table.table, table.wrong_flow
                ));
            } else if table.wrong_flow > 0 {
                problems.push(format!(
                    "{}: {} rows with wrong flow",
                    table.table, table.wrong_flow
                ));
            }
            for (count, what) in [
                (table.crosses_tenant, "crossing tenants"),
                (table.orphan_flow, "orphan flow"),
            ] {
                if count > 0 {
                    problems.push(format!("{}: {count} rows with {what}", table.table));
                }
            }
        }
        let m = &self.mapping;
        for (count, what) in [
            (m.orphan_flow, "naming no flow"),
            (
                m.tenant_differs_from_flow,
                "in another tenant than their flow",
            ),
            (
                m.tenant_differs_from_session,
                "in another tenant than their session",
            ),
        ] {
            if count > 0 {
                problems.push(format!("session_flow_mapping: {count} rows {what}"));
            }
        }
        if m.sessions_without_mapping > 0 {
            // A session without a mapping answers 404 under `on` (issue 12): the live
            // mapping maps it when its flow arrives, a catch-up gives it a stand-in.
            problems.push(format!(
                "{} sessions without a mapping (run `flowkey catch-up`)",
                m.sessions_without_mapping
            ));
        }
        if problems.is_empty() {
            "ok".to_owned()
        } else {
            problems.join("; ")
        }
    }
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Written to a String, which never fails, then to the formatter once.
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<24} {:>10} {:>10} {:>8} {:>8} {:>11}",
            "table", "rows", "wrong flow", "tenant", "orphan", "fingerprint"
        );
        for comparison in &self.fingerprints {
            let links = self.tables.iter().find(|t| t.table == comparison.table);
            let _ = writeln!(
                out,
                "{:<24} {:>10} {:>10} {:>8} {:>8} {:>11}",
                comparison.table,
                comparison.current_rows,
                links.map_or("-".to_owned(), |t| t.wrong_flow.to_string()),
                links.map_or("-".to_owned(), |t| t.crosses_tenant.to_string()),
                links.map_or("-".to_owned(), |t| t.orphan_flow.to_string()),
                if comparison.same { "same" } else { "CHANGED" },
            );
        }
        for row in &self.offending_rows {
            let _ = writeln!(out, "  {} {}: {}", row.table, row.id, row.problem);
        }
        if let Some(ledger) = &self.ledger {
            let _ = writeln!(out, "write ledger: {}", ledger.summary());
            for row in &ledger.unexplained_rows {
                let _ = writeln!(
                    out,
                    "  {} {}: {} without an application write",
                    row.table, row.id, row.what
                );
            }
        }
        let _ = writeln!(
            out,
            "{} rows checked in {} ms ({:.0} rows/s): {}",
            self.rows_checked,
            self.elapsed_ms,
            self.rows_per_second,
            self.summary()
        );
        f.write_str(&out)
    }
}

/// The `Action::Code` body of `flow_constraints`' "verify" step. The revision fails when a
/// link is unsound; a changed fingerprint is recorded in the audit log but does not fail it,
/// because an online migration lets old code write while it runs.
pub fn verify_step<'a, 'b>(
    ctx: &'a mut StepContext<'b>,
) -> futures::future::BoxFuture<'a, Result<(), MigrateError>> {
    Box::pin(async move {
        let linked: Vec<&LinkedTable> = linked_up_to(ctx.revision).collect();
        let report = verify_tables(ctx.db, &linked).await?;
        ctx.audit
            .record("verify", serde_json::to_value(&report).unwrap_or_default())
            .await?;
        if report.links_are_sound() {
            Ok(())
        } else {
            Err(FlowMigrationError::VerificationFailed {
                summary: report.summary(),
            }
            .into())
        }
    })
}

/// What `--sql` prints for the verify step (a check: reads only).
pub const VERIFY: StepSql = StepSql::Generated(verify_sql);

fn verify_sql(engine: Engine) -> String {
    let mut out = String::from(
        "-- verify (reads only): recompute the legacy fingerprints and compare them with\n\
         -- flowkey_fingerprints; then, per linked table, the rows whose flow_id is not the one\n\
         -- the rules give (checked by one statement per table, lookups as joins):\n",
    );
    let differs = match engine {
        Engine::Postgres => "IS DISTINCT FROM",
        Engine::Sqlite => "IS NOT",
    };
    for table in LINKED_TABLES {
        out.push_str(&format!(
            "SELECT r.id FROM {} r WHERE r.flow_id {differs} {};\n",
            table.name,
            table.expected_flow_sql(engine, "r")
        ));
    }
    out
}

/// Runs every check over every linked table; never writes.
/// Sessions without a mapping row (one anti-join over `data_import_sessions`, a small table).
const SESSIONS_WITHOUT_MAPPING: &str = "SELECT count(*) FROM data_import_sessions s \
     WHERE NOT EXISTS (SELECT 1 FROM session_flow_mapping m WHERE m.session_id = s.id)";

/// How many sessions have no mapping now (the count `verify` reports). Reads only.
pub async fn sessions_without_mapping(db: &Db) -> Result<i64, MigrateError> {
    Ok(crate::on_pool!(db, pool => {
        sqlx::query_scalar(SESSIONS_WITHOUT_MAPPING).fetch_one(pool).await?
    }))
}

pub async fn verify(db: &Db) -> Result<VerifyReport, MigrateError> {
    let tables: Vec<&LinkedTable> = LINKED_TABLES.iter().collect();
    verify_tables(db, &tables).await
}

/// [`verify`] as the online go/no-go: the write ledger stands in for the fingerprints (see
/// [`VerifyReport::legacy_values_hold`]).
pub async fn verify_online(db: &Db) -> Result<VerifyReport, MigrateError> {
    let tables: Vec<&LinkedTable> = LINKED_TABLES.iter().collect();
    Ok(verify_with(db, &tables, true, false).await?.0)
}

/// [`verify`] (or, `online`, [`verify_online`]) and the delta's basis, read in the snapshot
/// of the link checks (`verification_basis`), for a result that readiness will store.
pub(crate) async fn verify_with_basis(
    db: &Db,
    online: bool,
) -> Result<(VerifyReport, Option<Basis>), MigrateError> {
    let tables: Vec<&LinkedTable> = LINKED_TABLES.iter().collect();
    verify_with(db, &tables, online, true).await
}

/// Runs every check, the link checks over `tables` (those a database at some revision
/// has); never writes.
pub async fn verify_tables(db: &Db, linked: &[&LinkedTable]) -> Result<VerifyReport, MigrateError> {
    Ok(verify_with(db, linked, false, false).await?.0)
}

/// The stored baseline, or the refusal of a database `verify` cannot check: no baseline
/// (below `flow_mapping`), or a linked table without its `flow_id` ([`require_flow_ids`]).
/// Reads only.
pub(crate) async fn require_verifiable(
    db: &Db,
    linked: &[&LinkedTable],
) -> Result<Vec<crate::migrate::flow::fingerprint::TableFingerprint>, MigrateError> {
    let baseline = load_baseline(db).await?;
    if baseline.is_empty() {
        return Err(FlowMigrationError::NoFingerprint.into());
    }
    require_flow_ids(db, linked).await?;
    Ok(baseline)
}

/// Refuses, naming the first table, where a linked table has no `flow_id` yet (below
/// `flow_expand`): the link checks and the report would fail on the missing column, in
/// SQL's words. Reads only.
pub(crate) async fn require_flow_ids(db: &Db, tables: &[&LinkedTable]) -> Result<(), MigrateError> {
    for table in tables {
        if !crate::migrate::audit::column_exists(db, table.name, "flow_id").await? {
            return Err(FlowMigrationError::NoLinksYet {
                table: table.name.to_owned(),
            }
            .into());
        }
    }
    Ok(())
}

/// Every check; the write ledger is compared online always, and exactly only when the
/// fingerprints differ (to name the rows: when they match nothing changed at all).
async fn verify_with(
    db: &Db,
    linked: &[&LinkedTable],
    online: bool,
    with_basis: bool,
) -> Result<(VerifyReport, Option<Basis>), MigrateError> {
    let started = Instant::now();
    let engine = db.engine();
    let baseline = require_verifiable(db, linked).await?;
    let backfill_unfinished = crate::migrate::flow::backfill::unfinished_tables(db, linked).await?;
    // Each table is recomputed in the format its baseline was stored in (an upgrade started
    // by an earlier build is verified by this one).
    let current =
        fingerprint_like_baseline(db, FingerprintScope::WithoutMigrationFlows, &baseline).await?;
    let fingerprints: Vec<FingerprintComparison> = baseline
        .iter()
        .map(|then| {
            let now = current.iter().find(|now| now.table == then.table);
            FingerprintComparison {
                table: then.table.clone(),
                baseline_rows: then.rows,
                current_rows: now.map_or(0, |now| now.rows),
                baseline_hash: then.hash.clone(),
                current_hash: now.map_or_else(String::new, |now| now.hash.clone()),
                same: now.is_some_and(|now| now == then),
            }
        })
        .collect();

    let (
        LinkReport {
            tables,
            mapping,
            offending_rows: offending,
            rows_checked,
        },
        basis,
    ) = check_links_with(db, linked, with_basis).await?;
    let fingerprints_match = fingerprints.iter().all(|comparison| comparison.same);
    let ledger = if online || !fingerprints_match {
        write_ledger::compare(db).await?
    } else {
        None
    };
    let elapsed = started.elapsed();
    let report = VerifyReport {
        engine,
        fingerprints,
        tables,
        mapping,
        offending_rows: offending,
        rows_checked,
        elapsed_ms: elapsed.as_millis(),
        rows_per_second: crate::measure::per_second(rows_checked as f64, elapsed),
        ledger,
        online,
        backfill_unfinished,
    };
    Ok((report, basis))
}

/// The link checks alone: every linked table's links and the mapping, without the
/// fingerprints or the write ledger (which prove legacy values, not links).
#[derive(Debug, Clone, Serialize)]
pub struct LinkReport {
    pub tables: Vec<TableVerification>,
    pub mapping: MappingVerification,
    pub offending_rows: Vec<OffendingRow>,
    pub rows_checked: i64,
}

/// Every link follows the rules, stays in its tenant and names an existing flow.
pub fn links_are_sound(tables: &[TableVerification], mapping: &MappingVerification) -> bool {
    tables
        .iter()
        .all(|t| t.wrong_flow == 0 && t.crosses_tenant == 0 && t.orphan_flow == 0)
        && mapping.orphan_flow == 0
        && mapping.tenant_differs_from_flow == 0
        && mapping.tenant_differs_from_session == 0
}

/// Runs the link checks over `linked` and the mapping's checks, every linked table in one
/// read snapshot ([`begin_read_check`]); never writes. With `with_basis`, the delta's basis
/// is read in that same snapshot (`verification_basis`). What readiness needs: while the
/// application writes, the fingerprints differ as they must and comparing the ledger row by
/// row would cost several times the link checks (see
/// `verification_record::check_links_and_record`).
pub(crate) async fn check_links_with(
    db: &Db,
    linked: &[&LinkedTable],
    with_basis: bool,
) -> Result<(LinkReport, Option<Basis>), MigrateError> {
    let mut offending_rows = Vec::new();
    let mut tx = begin_read_check(db).await?;
    let mut tables = Vec::new();
    for table in linked {
        tables.push(verify_table(&mut tx, table, &mut offending_rows).await?);
    }
    let basis = if with_basis {
        read_basis(&mut tx).await?
    } else {
        None
    };
    tx.rollback().await?;
    let mapping = verify_mapping(db, db.engine(), &mut offending_rows).await?;
    let report = LinkReport {
        rows_checked: tables.iter().map(|t| t.rows_checked).sum(),
        tables,
        mapping,
        offending_rows,
    };
    Ok((report, basis))
}

/// The link checks of one linked table as one derived table `x` over the whole table: each
/// row's id, flow and session, the flow the rules give (`expected`) and 0/1 flags for a flow
/// of another tenant (`crosses`) and a flow that does not exist (`orphan`); `wrong` is the
/// condition over `x` for a flow other than the rules give. Every lookup is a `LEFT JOIN` on
/// a key (the table's paths, its flow, its import), so one statement checks the whole table.
struct LinkChecks {
    rows: String,
    wrong: &'static str,
}

/// Aliases of the joins the checks add beside the paths' (`m`, `d`, `f`): the row's own flow
/// and, for a table without tenant columns, the row's import.
const ROW_FLOW: &str = "rf";
const ROW_IMPORT: &str = "ri";

fn link_checks(engine: Engine, linked: &LinkedTable, only: Option<&str>) -> LinkChecks {
    // Over the whole table each path is a join; over the few rows `only` keeps, a lookup per
    // row (SQLite would otherwise materialize a join source such as the import path's whole).
    let JoinedFlow {
        joins,
        expected,
        per_row_lookup,
    } = match only {
        None => linked.joined_expected_flow(engine, "r"),
        Some(_) => JoinedFlow {
            joins: String::new(),
            expected: linked.expected_flow_sql(engine, "r"),
            per_row_lookup: true,
        },
    };
    // Where the rules give a flow, the row must carry that one. A row may carry a flow the
    // rules do not give only when it has no session of its own (written at head by new
    // code); a table without a session column has no such rows.
    let (wrong, session) = match linked.rule().session {
        Some(_) => (
            "(x.expected IS NOT NULL AND (x.flow_id IS NULL OR x.flow_id <> x.expected)) \
             OR (x.expected IS NULL AND x.flow_id IS NOT NULL AND x.session_id IS NOT NULL)",
            "r.session_id",
        ),
        None => (
            "x.expected IS NOT NULL AND (x.flow_id IS NULL OR x.flow_id <> x.expected)",
            "NULL",
        ),
    };
    // The row's tenant is its own columns, or its import's when it has none.
    let (import_join, crosses) = match linked.tenant {
        TenantColumns::OnTheRow => (
            String::new(),
            format!("NOT ({})", tenancy::agrees_with("r", ROW_FLOW)),
        ),
        TenantColumns::ThroughItsImport => (
            format!(" LEFT JOIN data_imports {ROW_IMPORT} ON {ROW_IMPORT}.id = r.data_import_id"),
            format!(
                "{ROW_IMPORT}.id IS NOT NULL AND NOT ({})",
                tenancy::agrees_with(ROW_IMPORT, ROW_FLOW)
            ),
        ),
    };
    // Audit and log rows outlive their flows: only a foreign-keyed flow_id must exist.
    let orphan = match linked.flow_foreign_key {
        FlowForeignKey::References => format!("{ROW_FLOW}.flow_id IS NULL"),
        FlowForeignKey::None => "1 = 0".to_owned(),
    };
    let rows = format!(
        "SELECT {id} AS id_text, r.flow_id AS flow_id, {session} AS session_id, \
                {expected} AS expected, \
                CASE WHEN {ROW_FLOW}.flow_id IS NOT NULL AND {crosses} THEN 1 ELSE 0 END AS crosses, \
                CASE WHEN r.flow_id IS NOT NULL AND {orphan} THEN 1 ELSE 0 END AS orphan \
         FROM {table} r{joins} \
         LEFT JOIN discovery_flows {ROW_FLOW} ON {ROW_FLOW}.flow_id = r.flow_id{import_join}{only}{fence}",
        id = text_of(engine, "r.id"),
        table = linked.name,
        only = only.map_or_else(String::new, |only| format!(" WHERE {only}")),
        // Keeps PostgreSQL from inlining the derived table, which would evaluate a path's
        // scalar subquery once per reference to `expected` instead of once per row. Only
        // then: the fence also keeps the server from splitting the checks over parallel
        // workers, and an `expected` made of joined columns costs nothing to repeat.
        fence = if engine == Engine::Postgres && per_row_lookup {
            " OFFSET 0"
        } else {
            ""
        },
    );
    LinkChecks { rows, wrong }
}

/// One table's counts: rows, then rows with a wrong, cross-tenant or orphan flow; over the
/// rows `only` (a condition over the row `r`) keeps, or the whole table.
pub(crate) fn link_counts_sql(engine: Engine, linked: &LinkedTable, only: Option<&str>) -> String {
    let LinkChecks { rows, wrong } = link_checks(engine, linked, only);
    format!(
        "SELECT count(*), \
                coalesce(sum(CASE WHEN {wrong} THEN 1 ELSE 0 END), 0), \
                coalesce(sum(x.crosses), 0), \
                coalesce(sum(x.orphan), 0) \
         FROM ({rows}) x"
    )
}

/// The first offending rows of a table by id (at most `$1`), each with its three flags.
fn offending_rows_named_sql(engine: Engine, linked: &LinkedTable) -> String {
    let LinkChecks { rows, wrong } = link_checks(engine, linked, None);
    format!(
        "SELECT x.id_text, CASE WHEN {wrong} THEN 1 ELSE 0 END, x.crosses, x.orphan \
         FROM ({rows}) x \
         WHERE ({wrong}) OR x.crosses = 1 OR x.orphan = 1 \
         ORDER BY x.id_text LIMIT $1"
    )
}

/// How many rows of `linked` fail a link check, as one statement over the whole table (the
/// offline verify).
fn offending_rows_sql(engine: Engine, linked: &LinkedTable) -> String {
    let LinkChecks { rows, wrong } = link_checks(engine, linked, None);
    format!(
        "SELECT count(*) FROM ({rows}) x \
         WHERE ({wrong}) OR x.crosses = 1 OR x.orphan = 1"
    )
}

/// The verify step as SQL that runs as is (the runnable `--sql` script), PostgreSQL only:
/// one DO block that raises, naming what failed, when a row of a linked table has a wrong,
/// cross-tenant or orphan flow, and warns when a legacy table's fingerprint differs from
/// the stored baseline (format V2, as the script stores it): like the runner's step, which
/// fails on links only, since the application may write meanwhile. The mapping's own
/// checks stay with `flowkey verify`.
pub fn verify_offline_sql(engine: Engine, tables: &[&LinkedTable]) -> String {
    if engine != Engine::Postgres {
        return String::new();
    }
    let mut out = String::from(
        "DO $verify$\nDECLARE\n    failed text;\n    bad bigint;\nBEGIN\n\
         SELECT string_agg(coalesce(now.table_name, then_.table_name), ', ' ORDER BY coalesce(now.table_name, then_.table_name)) INTO failed\n\
         FROM (",
    );
    out.push_str(&crate::migrate::flow::fingerprint::offline_fingerprints_select());
    out.push_str(
        ") AS now\n\
         FULL JOIN flowkey_fingerprints AS then_ ON then_.table_name = now.table_name\n\
         WHERE now.row_count IS DISTINCT FROM then_.row_count OR now.hash IS DISTINCT FROM then_.hash;\n\
         IF failed IS NOT NULL THEN\n\
         RAISE WARNING 'changed since the fingerprint: %', failed;\n\
         END IF;\n",
    );
    for table in tables {
        out.push_str(&format!(
            "{sql} INTO bad;\nIF bad > 0 THEN\n\
             RAISE EXCEPTION 'verification failed: {t}: % rows with a wrong, cross-tenant or orphan flow', bad;\n\
             END IF;\n",
            sql = offending_rows_sql(engine, table),
            t = table.name,
        ));
    }
    out.push_str("END\n$verify$;\n");
    out
}

/// [`verify_offline_sql`] over every linked table (the `flow_constraints` step's form).
pub fn verify_all_offline_sql(engine: Engine) -> String {
    let tables: Vec<&LinkedTable> = LINKED_TABLES.iter().collect();
    verify_offline_sql(engine, &tables)
}

/// What the runnable `--sql` script runs for a verify step.
pub const VERIFY_OFFLINE: StepSql = StepSql::Generated(verify_all_offline_sql);

/// Checks one table with one statement over the whole table, then, only when it found
/// something and the list has room, names the first offending rows; both read the caller's
/// read-only transaction (a deferred `BEGIN` on SQLite: a read lock, no write lock).
async fn verify_table(
    tx: &mut Tx<'static>,
    linked: &LinkedTable,
    offending: &mut Vec<OffendingRow>,
) -> Result<TableVerification, MigrateError> {
    let engine = tx.engine();
    let table = linked.name;
    let counts_sql = link_counts_sql(engine, linked, None);
    let (rows_checked, wrong_flow, crosses_tenant, orphan_flow): (i64, i64, i64, i64) = crate::on_tx!(tx, conn => {
        sqlx::query_as(&counts_sql).fetch_one(&mut **conn).await?
    });
    let room = OFFENDING_ROWS_CAP.saturating_sub(offending.len());
    let found: Vec<Flags> = if wrong_flow + crosses_tenant + orphan_flow > 0 && room > 0 {
        let names_sql = offending_rows_named_sql(engine, linked);
        crate::on_tx!(tx, conn => {
            sqlx::query(&names_sql)
                .bind(room as i64)
                .fetch_all(&mut **conn)
                .await?
                .into_iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        })
    } else {
        Vec::new()
    };
    for (id, wrong, crosses, orphan) in found {
        for (flag, problem) in [
            (wrong, "flow_id differs from the rules"),
            (crosses, "linked to a flow of another tenant"),
            (orphan, "flow_id names no flow"),
        ] {
            if flag == 1 && offending.len() < OFFENDING_ROWS_CAP {
                offending.push(OffendingRow {
                    table: table.to_owned(),
                    id: id.clone(),
                    problem: problem.to_owned(),
                });
            }
        }
    }
    Ok(TableVerification {
        table: table.to_owned(),
        rows_checked,
        wrong_flow,
        crosses_tenant,
        orphan_flow,
    })
}

/// Begins the read-only transaction of one table's checks. On SQLite a deferred `BEGIN`,
/// which takes no write lock: with `BEGIN IMMEDIATE` a verify held the database's one write
/// lock and the application's writers failed with `database is locked` once their busy
/// timeout ran out. On PostgreSQL one snapshot, and
/// no nested loops: over a whole table a hash join per lookup is right, and a planner misled
/// by a lookup table's stale statistics (the mapping is never analyzed before verify runs)
/// would otherwise probe it once per row.
pub(crate) async fn begin_read_check(db: &Db) -> Result<Tx<'static>, sqlx::Error> {
    let mut tx = db.begin_read_snapshot().await?;
    if let crate::db::Tx::Postgres(conn) = &mut tx {
        sqlx::query("SET LOCAL enable_nestloop = off")
            .execute(&mut **conn)
            .await?;
    }
    Ok(tx)
}

pub(crate) async fn verify_mapping(
    db: &Db,
    engine: Engine,
    offending: &mut Vec<OffendingRow>,
) -> Result<MappingVerification, MigrateError> {
    let sql = format!(
        "SELECT {sid},
            CASE WHEN f.flow_id IS NULL THEN 1 ELSE 0 END,
            CASE WHEN f.flow_id IS NOT NULL AND (f.client_account_id <> m.client_account_id
                 OR f.engagement_id <> m.engagement_id) THEN 1 ELSE 0 END,
            CASE WHEN s.id IS NOT NULL AND (s.client_account_id <> m.client_account_id
                 OR s.engagement_id <> m.engagement_id) THEN 1 ELSE 0 END
         FROM session_flow_mapping m
         LEFT JOIN discovery_flows f ON f.flow_id = m.flow_id
         LEFT JOIN data_import_sessions s ON s.id = m.session_id
         WHERE f.flow_id IS NULL
            OR f.client_account_id <> m.client_account_id OR f.engagement_id <> m.engagement_id
            OR (s.id IS NOT NULL AND (s.client_account_id <> m.client_account_id
                OR s.engagement_id <> m.engagement_id))",
        sid = text_of(engine, "m.session_id")
    );
    let (rows, unmapped, bad): (i64, i64, Vec<Flags>) = crate::on_pool!(db, pool => {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM session_flow_mapping").fetch_one(pool).await?;
        let unmapped: i64 = sqlx::query_scalar(SESSIONS_WITHOUT_MAPPING).fetch_one(pool).await?;
        let bad = sqlx::query(&sql)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        (rows, unmapped, bad)
    });
    let mut result = MappingVerification {
        rows,
        sessions_without_mapping: unmapped,
        ..MappingVerification::default()
    };
    for (session_id, orphan, flow_tenant, session_tenant) in bad {
        for (flag, counter, problem) in [
            (
                orphan,
                &mut result.orphan_flow,
                "maps to a flow that does not exist",
            ),
            (
                flow_tenant,
                &mut result.tenant_differs_from_flow,
                "tenant differs from its flow's",
            ),
            (
                session_tenant,
                &mut result.tenant_differs_from_session,
                "tenant differs from its session's",
            ),
        ] {
            if flag == 1 {
                *counter += 1;
                if offending.len() < OFFENDING_ROWS_CAP {
                    offending.push(OffendingRow {
                        table: "session_flow_mapping".to_owned(),
                        id: session_id.clone(),
                        problem: problem.to_owned(),
                    });
                }
            }
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fence that keeps PostgreSQL from inlining the checks' derived table also keeps
    /// the server from splitting them over parallel workers (raw_import_records' checks at
    /// 1M rows: 0.85-1.26 s fenced, 0.53-0.75 s not). Only checks whose expected flow is
    /// looked up per row (a scalar subquery) carry it.
    #[test]
    fn only_checks_with_a_per_row_lookup_are_fenced() {
        let mut unfenced = Vec::new();
        for table in LINKED_TABLES {
            let per_row = table
                .joined_expected_flow(Engine::Postgres, "r")
                .per_row_lookup;
            let whole = link_counts_sql(Engine::Postgres, table, None);
            assert_eq!(whole.contains(" OFFSET 0"), per_row, "{}", table.name);
            let few = link_counts_sql(Engine::Postgres, table, Some("r.id = $1"));
            assert!(few.contains(" OFFSET 0"), "{}", table.name);
            let sqlite = link_counts_sql(Engine::Sqlite, table, None);
            assert!(!sqlite.contains("OFFSET"), "{}", table.name);
            if !per_row {
                unfenced.push(table.name);
            }
        }
        assert!(unfenced.contains(&"raw_import_records"), "{unfenced:?}");
    }
}
