//! The contract (revision `flow_contract`): `flow_id` becomes the only key. The session-key
//! columns go, with their indexes, foreign keys and the dual-write triggers; what the mapping
//! alone cannot give back is archived first, and the downgrade gives every value back.
//!
//! The one rule both directions share is [`SessionColumn::recomputed_sql`]: the session a row
//! gets from its `flow_id` through `session_flow_mapping` (the smallest session mapped to the
//! flow in the row's tenant, for a UUID key one that exists: the choice the dual-write trigger
//! makes for a row written with a flow only). Before the drop, every row whose stored value is
//! not exactly that (NULL against a value included, byte for byte: an uppercase id, a free-text
//! form, a dangling id, another tenant's session, a session another than its flow's) is copied
//! to `flowkey_contract_archive` (table, column, primary key, value). The downgrade sets every
//! row to the rule's value, then every archived row to its archived value. So rows that
//! existed before the contract come back exactly, and rows written after it (a flow, no
//! session) get their flow's session by the rule, or NULL.
//!
//! `data_import_sessions` stays, as history: the mapping answers legacy ids from it, and it
//! keeps every legacy session row for the downgrade. It loses its incoming foreign keys (the
//! `ON DELETE CASCADE` of the dropped columns).
//!
//! `flow_id` stays nullable on every table: each linked table may hold rows no rule links
//! (a dangling session, no session and no naming flow, an import without a flow), and a
//! `NOT NULL` decided by the data of the day would make the schema depend on the database,
//! which the runner's drift check forbids. See docs/rollout.md.

use std::fmt::Write as _;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;

use crate::db::foreign_keys::ForeignKeyViolations;
use crate::db::{on_pool, Db, Engine, KeyColumns};
use crate::migrate::flow::legacy_signal::{self, legacy_writes};
use crate::migrate::flow::linked::{linked_table, SessionKey};
use crate::migrate::flow::live;
use crate::migrate::flow::sqlite_rebuild::on_rebuild_connection;
use crate::migrate::flow::sqlite_rebuild::refuse_added_violations;
use crate::migrate::flow::tables::{
    begin_batch, commit_batch, execute_keyed, next_bound, KeyRange,
};
use crate::migrate::flow::triggers;
use crate::migrate::{MigrateError, StepContext, StepSql};

/// The revision id of the contract.
pub const CONTRACT_REVISION: &str = "flow_contract";

/// The flag the gate reads (`flags::FLAG_NAME`; `migrate` sits below `flags`).
const FLAG_NAME: &str = "enable_flow_id_primary";

#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("the contract's gate refuses: {}; see `flowkey contract --dry-run`, or override with --force (audited)", reasons.join("; "))]
    GateRefused { reasons: Vec<String> },
    #[error("the contract would break what depends on the session columns: {}; nothing was changed (drop or change these first; --force does not override this)", blockers.join("; "))]
    Blocked { blockers: Vec<String> },
    #[error(
        "invalid duration {text:?}: give a number and a unit, one of s, m, h, d (e.g. 0s, 12h, 7d)"
    )]
    InvalidDuration { text: String },
    #[error("no mapped session to write legacy rows for: seed the database first")]
    NothingToMeasure,
    #[error("the database is at {at}, and the contract's gate reads what head adds (the flag, the legacy-write log): run `flowkey upgrade head` first; nothing was changed")]
    NotAtHead { at: String },
    #[error("the SQLite table {table} has no column definition of {column} to drop")]
    ColumnTextMissing { table: String, column: String },
}

/// A quiet period: how long no legacy write may have been seen (`7d`, `0s`, `12h`, `30m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuietPeriod(pub Duration);

impl QuietPeriod {
    pub const DEFAULT: QuietPeriod = QuietPeriod(Duration::from_secs(7 * 24 * 3600));

    pub fn parse(text: &str) -> Result<Self, ContractError> {
        let invalid = || ContractError::InvalidDuration {
            text: text.to_owned(),
        };
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let (number, unit) = trimmed.split_at(split);
        let number: u64 = number.parse().map_err(|_| invalid())?;
        let seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(invalid()),
        };
        number
            .checked_mul(seconds)
            .map(|total| QuietPeriod(Duration::from_secs(total)))
            .ok_or_else(invalid)
    }
}

impl std::str::FromStr for QuietPeriod {
    type Err = ContractError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// The gate's knobs, from `flowkey contract`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateOptions {
    pub quiet_period: QuietPeriod,
    /// Run even if the gate refuses (audited with what it said). Never past a blocker.
    pub force: bool,
}

impl Default for GateOptions {
    fn default() -> Self {
        Self {
            quiet_period: QuietPeriod::DEFAULT,
            force: false,
        }
    }
}

/// What the gate says.
#[derive(Debug, Clone, Serialize)]
pub struct GateVerdict {
    /// Why the contract should not run now (each one alone refuses; `--force` overrides).
    pub reasons: Vec<String>,
    /// Why it cannot run at all: objects that depend on the columns it drops.
    pub blockers: Vec<String>,
    pub quiet_period_secs: u64,
    pub forced: bool,
    /// Legacy writes seen, per table (empty without the signal).
    pub legacy_writes: Vec<legacy_signal::LegacyWrites>,
}

impl GateVerdict {
    /// Whether the contract may run (forced or not).
    pub fn allows(&self) -> bool {
        self.blockers.is_empty() && (self.reasons.is_empty() || self.forced)
    }

    pub fn into_result(self) -> Result<GateVerdict, ContractError> {
        if !self.blockers.is_empty() {
            return Err(ContractError::Blocked {
                blockers: self.blockers,
            });
        }
        if !self.reasons.is_empty() && !self.forced {
            return Err(ContractError::GateRefused {
                reasons: self.reasons,
            });
        }
        Ok(self)
    }
}

/// Where the contract stands before `flowkey contract` runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractProgress {
    /// Not started, or stopped before its gate was recorded done: the gate is asked.
    NotPastTheGate,
    /// Stopped half way past its gate (its revision dirty going up): `done` of `steps`
    /// steps done. The gate is not asked again, as the runner does not: it passed when the
    /// run started, and the session columns it reads may be gone already.
    Resuming { done: i64, steps: usize },
    /// Applied: the session columns are gone and there is nothing to ask or do.
    Applied,
}

/// Where the contract stands, from the runner's book. Reads only.
pub async fn contract_progress(
    migrator: &crate::migrate::Migrator,
) -> Result<ContractProgress, MigrateError> {
    let history = migrator.history().await?;
    let entry = history
        .into_iter()
        .find(|entry| entry.id == CONTRACT_REVISION);
    Ok(match entry {
        Some(entry) if entry.applied => ContractProgress::Applied,
        Some(crate::migrate::HistoryEntry {
            dirty: Some(dirty), ..
        }) if dirty.direction == "up" && dirty.steps_done >= 1 => ContractProgress::Resuming {
            done: dirty.steps_done,
            steps: dirty.steps,
        },
        _ => ContractProgress::NotPastTheGate,
    })
}

/// Evaluates the gate. Reads only.
pub async fn gate(db: &Db, options: GateOptions) -> Result<GateVerdict, MigrateError> {
    let at = crate::migrate::Migrator::new(db.clone(), crate::migrate::RunOptions::default())
        .current()
        .await?;
    if at != Some(crate::migrate::revisions::head().id) && at != Some(CONTRACT_REVISION) {
        return Err(ContractError::NotAtHead {
            at: at.unwrap_or("base").to_owned(),
        }
        .into());
    }
    let mut reasons = Vec::new();
    reasons.extend(link_check_reasons(db).await?);
    reasons.extend(flag_reasons(db).await?);
    let seen = legacy_writes(db).await?;
    let quiet = options.quiet_period.0.as_secs();
    match &seen {
        // At head the log exists; gone, it was dropped by hand.
        None => reasons.push(
            "the legacy-write log is missing (revision legacy_write_signal made it): \
             legacy writes cannot be ruled out"
                .to_owned(),
        ),
        Some(tables) => {
            for table in tables {
                if let Some(since) = table.seconds_since_last {
                    if u64::try_from(since.max(0)).unwrap_or(0) < quiet {
                        reasons.push(format!(
                            "a legacy write (session key, no flow_id) was seen on {} at {} \
                             ({} s ago, {} in all), within the quiet period of {} s",
                            table.table,
                            table.last_seen.as_deref().unwrap_or("?"),
                            since,
                            table.writes,
                            quiet
                        ));
                    }
                }
            }
        }
    }
    let blockers = dependents(db).await?;
    Ok(GateVerdict {
        reasons,
        blockers,
        quiet_period_secs: quiet,
        forced: options.force,
        legacy_writes: seen.unwrap_or_default(),
    })
}

/// The link checks of `verify` (the same as `flags::readiness`): no wrong flow, no row across
/// tenants, none naming no flow, a consistent mapping.
async fn link_check_reasons(db: &Db) -> Result<Vec<String>, MigrateError> {
    let verified = crate::migrate::flow::verify(db).await?;
    let mut reasons = Vec::new();
    for table in &verified.tables {
        for (rows, what) in [
            (table.wrong_flow, "without the flow_id the rules give"),
            (table.crosses_tenant, "linked across tenants"),
            (table.orphan_flow, "naming no flow"),
        ] {
            if rows > 0 {
                reasons.push(format!("verify: {rows} rows of {} {what}", table.table));
            }
        }
    }
    let mapping = &verified.mapping;
    for (rows, what) in [
        (mapping.orphan_flow, "naming no flow"),
        (
            mapping.tenant_differs_from_flow,
            "of another tenant than their flow",
        ),
        (
            mapping.tenant_differs_from_session,
            "of another tenant than their session",
        ),
    ] {
        if rows > 0 {
            reasons.push(format!("verify: {rows} session_flow_mapping rows {what}"));
        }
    }
    Ok(reasons)
}

/// The flag must be stored `on` globally and for every tenant set apart.
async fn flag_reasons(db: &Db) -> Result<Vec<String>, MigrateError> {
    let sql = "SELECT scope, value FROM flowkey_flags WHERE name = $1 ORDER BY scope";
    let rows: Vec<(String, String)> =
        on_pool!(db, pool => sqlx::query_as(sql).bind(FLAG_NAME).fetch_all(pool).await)?;
    let mut reasons = Vec::new();
    match rows.iter().find(|(scope, _)| scope == "global") {
        None => reasons.push(
            "the flag enable_flow_id_primary has no stored global value: set it `on` \
             (`flowkey flag set on`)"
                .to_owned(),
        ),
        Some((_, value)) if value != "on" => reasons.push(format!(
            "the flag enable_flow_id_primary is `{value}` globally, not `on`"
        )),
        Some(_) => {}
    }
    for (scope, value) in rows.iter().filter(|(scope, _)| scope != "global") {
        if value != "on" {
            reasons.push(format!(
                "the flag enable_flow_id_primary is `{value}` for tenant {scope}, not `on`"
            ));
        }
    }
    Ok(reasons)
}

/// Views (and triggers not flowkey's) that use a column the contract drops: dropping it would
/// fail (PostgreSQL) or break them (SQLite), so the contract refuses before changing anything.
pub async fn dependents(db: &Db) -> Result<Vec<String>, MigrateError> {
    let mut found = Vec::new();
    for column in SESSION_COLUMNS {
        let names: Vec<String> = match db {
            Db::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT DISTINCT v.relname::text FROM pg_depend d \
                     JOIN pg_rewrite w ON w.oid = d.objid \
                     JOIN pg_class v ON v.oid = w.ev_class \
                     JOIN pg_class t ON t.oid = d.refobjid \
                     JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid \
                     WHERE d.classid = 'pg_rewrite'::regclass AND v.oid <> t.oid \
                       AND t.oid = to_regclass($1) AND a.attname = $2 ORDER BY 1",
                )
                .bind(column.table)
                .bind(column.column)
                .fetch_all(pool)
                .await?
            }
            Db::Sqlite(pool) => {
                let candidates: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT type, name, sql FROM sqlite_master \
                     WHERE type IN ('view', 'trigger') AND sql IS NOT NULL \
                       AND name NOT LIKE 'flowkey_%' ORDER BY name",
                )
                .fetch_all(pool)
                .await?;
                candidates
                    .into_iter()
                    .filter(|(_, _, sql)| {
                        let sql = sql.to_lowercase();
                        sql.contains(column.table) && sql.contains(column.column)
                    })
                    .map(|(kind, name, _)| format!("{kind} {name}"))
                    .collect()
            }
        };
        for name in names {
            found.push(format!(
                "{name} uses {}.{} (the contract drops it)",
                column.table, column.column
            ));
        }
    }
    Ok(found)
}

/// One session-key column the contract drops.
#[derive(Debug, Clone, Copy)]
pub struct SessionColumn {
    pub table: &'static str,
    pub column: &'static str,
    /// Its PostgreSQL type at head.
    pub postgres_type: &'static str,
    /// It references `data_import_sessions(id) ON DELETE CASCADE`.
    pub references_session: bool,
    /// Its index, if it has one.
    pub index: Option<&'static str>,
}

/// The columns the contract drops, and the downgrade gives back.
pub const SESSION_COLUMNS: &[SessionColumn] = &[
    SessionColumn {
        table: "data_imports",
        column: "session_id",
        postgres_type: "uuid",
        references_session: true,
        index: Some("ix_data_imports_session_id"),
    },
    SessionColumn {
        table: "raw_import_records",
        column: "session_id",
        postgres_type: "uuid",
        references_session: true,
        index: Some("ix_raw_import_records_session_id"),
    },
    SessionColumn {
        table: "assets",
        column: "session_id",
        postgres_type: "uuid",
        references_session: true,
        index: Some("ix_assets_session_id"),
    },
    SessionColumn {
        table: "access_audit_log",
        column: "session_id",
        postgres_type: "uuid",
        references_session: true,
        index: Some("ix_access_audit_log_session_id"),
    },
    SessionColumn {
        table: "llm_usage_logs",
        column: "session_id",
        postgres_type: "varchar(255)",
        references_session: false,
        index: Some("ix_llm_usage_logs_session_id"),
    },
    SessionColumn {
        table: "flow_deletion_audit",
        column: "session_id",
        postgres_type: "uuid",
        references_session: false,
        index: None,
    },
    SessionColumn {
        table: "discovery_flows",
        column: "import_session_id",
        postgres_type: "uuid",
        references_session: false,
        index: Some("ix_discovery_flows_import_session_id"),
    },
];

/// The session column the contract drops from `table`, if it drops one.
fn session_column(table: &str) -> Option<&'static SessionColumn> {
    SESSION_COLUMNS.iter().find(|column| column.table == table)
}

/// `table` as the service reads it with `keys`: the table itself before the contract; after
/// it, the table with its dropped session column computed as
/// [`SessionColumn::served_sql`] says, so that a row reads as it did before the contract.
/// Used as `FROM {served} alias`.
pub fn served_table(keys: KeyColumns, engine: Engine, table: &'static str) -> String {
    match (keys, session_column(table)) {
        (KeyColumns::Contracted, Some(column)) => column.served_sql(engine),
        _ => table.to_owned(),
    }
}

/// After the contract, the statement that keeps a session the service wrote with rows of
/// `table` (those `rows`, a predicate over `r`, selects; `$1` the session) where the rule
/// would not give it back: in the archive, where reads and the downgrade find it. `None`
/// before the contract (the column itself holds it) or for a table without one.
pub fn archive_written_session(
    keys: KeyColumns,
    engine: Engine,
    table: &'static str,
    rows: &str,
) -> Option<String> {
    match (keys, session_column(table)) {
        (KeyColumns::Contracted, Some(column)) => Some(column.archive_written_sql(engine, rows)),
        _ => None,
    }
}

impl SessionColumn {
    /// The value the rule gives row `r` from its flow, as the column stores it (NULL when
    /// none): see the module documentation.
    pub fn recomputed_sql(&self, engine: Engine) -> String {
        let (stored, condition) = match linked_table(self.table) {
            Some(table) => {
                let existing = match table.rule().session {
                    Some(SessionKey::Uuid) => {
                        " AND EXISTS (SELECT 1 FROM data_import_sessions s WHERE s.id = m.session_id)"
                    }
                    _ => "",
                };
                (
                    table.mapped_session_as_stored(engine),
                    format!("{}{existing}", table.and_tenant_agrees("r", "m")),
                )
            }
            None if self.table == "discovery_flows" => (
                "m.session_id".to_owned(),
                " AND m.client_account_id = r.client_account_id \
                 AND m.engagement_id = r.engagement_id"
                    .to_owned(),
            ),
            None => ("m.session_id".to_owned(), String::new()),
        };
        format!(
            "(SELECT {stored} FROM session_flow_mapping m WHERE m.flow_id = r.flow_id{condition} \
             ORDER BY m.session_id LIMIT 1)"
        )
    }

    /// The column as the archive stores it (text on PostgreSQL; as is on SQLite, whose
    /// archive column has no type, so a value keeps its storage class).
    fn as_archived(&self, engine: Engine) -> String {
        match engine {
            Engine::Postgres => format!("r.{}::text", self.column),
            Engine::Sqlite => format!("r.{}", self.column),
        }
    }

    fn archived_value(&self, engine: Engine) -> String {
        match engine {
            Engine::Postgres => format!("CAST(a.session_value AS {})", self.postgres_type),
            Engine::Sqlite => "a.session_value".to_owned(),
        }
    }

    fn differs(engine: Engine) -> &'static str {
        match engine {
            Engine::Postgres => "IS DISTINCT FROM",
            Engine::Sqlite => "IS NOT",
        }
    }

    /// Archives the rows of one key range whose value the rule does not give back.
    pub fn archive_sql(&self, engine: Engine, range: &str) -> String {
        let (t, c) = (self.table, self.column);
        let conflict = match engine {
            Engine::Postgres => " ON CONFLICT DO NOTHING",
            Engine::Sqlite => " ON CONFLICT DO NOTHING",
        };
        format!(
            "INSERT INTO flowkey_contract_archive (table_name, column_name, row_id, session_value) \
             SELECT '{t}', '{c}', {id}, {value} FROM {t} r \
             WHERE {range} AND r.{c} {differs} {rule}{conflict}",
            id = crate::migrate::flow::tables::text_of(engine, "r.id"),
            value = self.as_archived(engine),
            differs = Self::differs(engine),
            rule = self.recomputed_sql(engine),
        )
    }

    /// Gives one key range back its values: the archived value where there is one, the
    /// rule's otherwise. One correlated UPDATE, so each batch walks its key range and looks
    /// every row up in the archive's primary key (a join or `EXISTS` filter would let
    /// PostgreSQL's planner, misled by the archive's fresh statistics, loop over the whole
    /// archive for each batch), and writes each row once.
    pub fn restore_sql(&self, engine: Engine, range: &str) -> String {
        let (t, c) = (self.table, self.column);
        format!(
            "UPDATE {t} AS r SET {c} = {value} WHERE {range}",
            value = self.stored_value_sql(engine),
        )
    }

    /// The value row `r` had before the contract (and gets back from the downgrade): its
    /// archived value where the archive holds one, the rule's otherwise.
    fn stored_value_sql(&self, engine: Engine) -> String {
        let (t, c) = (self.table, self.column);
        let id = crate::migrate::flow::tables::text_of(engine, "r.id");
        let archived = format!(
            "FROM flowkey_contract_archive a WHERE a.table_name = '{t}' \
             AND a.column_name = '{c}' AND a.row_id = {id}"
        );
        format!(
            "CASE WHEN EXISTS (SELECT 1 {archived}) \
             THEN (SELECT {value} {archived}) ELSE {rule} END",
            value = self.archived_value(engine),
            rule = self.recomputed_sql(engine),
        )
    }

    /// The table as the service reads it once contracted: every column it has, and the
    /// dropped column again, computed by [`Self::stored_value_sql`] — the value the row had
    /// before the contract (or, written after it by flow, its flow's session by the rule). A
    /// derived table, so the statements that read the column read it unchanged.
    fn served_sql(&self, engine: Engine) -> String {
        let (t, c) = (self.table, self.column);
        let value = self.stored_value_sql(engine);
        match engine {
            // Folded into the outer query, the value would be copied to every place that
            // names the column (the visibility rule names it twice) and computed at each; a
            // lateral subquery that is not folded (`OFFSET 0`) computes it once per row, while
            // the outer query's conditions still reach the table's indexes.
            Engine::Postgres => format!(
                "(SELECT r.*, k.{c} FROM {t} r CROSS JOIN LATERAL (SELECT {value} AS {c} OFFSET 0) k)"
            ),
            Engine::Sqlite => format!("(SELECT r.*, {value} AS {c} FROM {t} r)"),
        }
    }

    /// Archives the values of the rows of `table` that `rows` (a predicate over `r`, the
    /// table as served) selects whose column is not `value` as the rule computes it: the
    /// service's write after the contract of a session the rule does not give back (a v1
    /// import into a flow that has a smaller session). The bind `$1` is the value.
    fn archive_written_sql(&self, engine: Engine, rows: &str) -> String {
        let (t, c) = (self.table, self.column);
        let value = match engine {
            Engine::Postgres => "CAST($1 AS text)",
            Engine::Sqlite => "$1",
        };
        format!(
            "INSERT INTO flowkey_contract_archive (table_name, column_name, row_id, session_value) \
             SELECT '{t}', '{c}', {id}, {value} FROM {t} r \
             WHERE {rows} AND {rule} {differs} {cast} ON CONFLICT DO NOTHING",
            id = crate::migrate::flow::tables::text_of(engine, "r.id"),
            rule = self.recomputed_sql(engine),
            differs = Self::differs(engine),
            cast = match engine {
                Engine::Postgres => format!("CAST($1 AS {})", self.postgres_type),
                Engine::Sqlite => "$1".to_owned(),
            },
        )
    }

    fn sqlite_declaration(&self) -> &'static str {
        if self.references_session {
            "TEXT REFERENCES data_import_sessions(id) ON DELETE CASCADE"
        } else {
            "TEXT"
        }
    }

    fn foreign_key_name(&self) -> String {
        format!("{}_{}_fkey", self.table, self.column)
    }
}

const ARCHIVE_TABLES_POSTGRES: &str = "\
CREATE TABLE IF NOT EXISTS flowkey_contract_archive (
    table_name     varchar(63) NOT NULL,
    column_name    varchar(63) NOT NULL,
    row_id         text NOT NULL,
    session_value  text,
    PRIMARY KEY (table_name, column_name, row_id)
);
CREATE TABLE IF NOT EXISTS flowkey_contract_progress (
    table_name   varchar(63) NOT NULL,
    column_name  varchar(63) NOT NULL,
    last_id      text,
    done         boolean NOT NULL DEFAULT false,
    PRIMARY KEY (table_name, column_name)
);
";

// `session_value` has no type on purpose: a value keeps its storage class (TEXT, BLOB, ...),
// so the downgrade writes back the very bytes.
const ARCHIVE_TABLES_SQLITE: &str = "\
CREATE TABLE IF NOT EXISTS flowkey_contract_archive (
    table_name     TEXT NOT NULL,
    column_name    TEXT NOT NULL,
    row_id         TEXT NOT NULL,
    session_value,
    PRIMARY KEY (table_name, column_name, row_id)
);
CREATE TABLE IF NOT EXISTS flowkey_contract_progress (
    table_name   TEXT NOT NULL,
    column_name  TEXT NOT NULL,
    last_id      TEXT,
    done         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (table_name, column_name)
);
";

fn archive_tables_sql(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => ARCHIVE_TABLES_POSTGRES,
        Engine::Sqlite => ARCHIVE_TABLES_SQLITE,
    }
}

/// The range predicate text printed for `--sql` (the bounds are bound per batch).
const RANGE_PLACEHOLDER: &str = "r.id > $1 AND r.id <= $2";

pub const GATE: StepSql = StepSql::Generated(gate_sql);
pub const ARCHIVE: StepSql = StepSql::Generated(archive_step_sql);
pub const DROP: StepSql = StepSql::Generated(drop_sql);
pub const REBUILD_WITHOUT: StepSql = StepSql::Generated(rebuild_sql);
pub const ADD_BACK: StepSql = StepSql::Generated(add_back_sql);
pub const RESTORE: StepSql = StepSql::Generated(restore_step_sql);
pub const INDEXES_BACK: StepSql = StepSql::Generated(indexes_back_sql);
pub const VALIDATE_BACK: StepSql = StepSql::Generated(validate_back_sql);
pub const TRIGGERS_BACK: StepSql = StepSql::Generated(triggers_back_sql);
pub const CLEAR_ARCHIVE: StepSql = StepSql::Generated(clear_archive_sql);

fn gate_sql(_engine: Engine) -> String {
    "-- the gate: verify's link checks, flowkey_flags, flowkey_legacy_writes, dependent views\n\
     SELECT scope, value FROM flowkey_flags WHERE name = 'enable_flow_id_primary';\n\
     SELECT table_name, count(*), max(seen_at) FROM flowkey_legacy_writes GROUP BY table_name;\n"
        .to_owned()
}

fn archive_step_sql(engine: Engine) -> String {
    let mut out = String::from(archive_tables_sql(engine));
    for column in SESSION_COLUMNS {
        let _ = writeln!(out, "{};", column.archive_sql(engine, RANGE_PLACEHOLDER));
    }
    out
}

/// Tables whose session column the contract drops.
fn session_tables() -> impl Iterator<Item = &'static crate::migrate::flow::linked::LinkedTable> {
    legacy_signal::session_tables()
}

fn drop_sql(engine: Engine) -> String {
    // The live mapping's triggers read the session columns (`import_session_id` among them):
    // they go first, and the downgrade puts them back with the columns. After the contract
    // old code can no longer write a session, so there is nothing left for them to map.
    let mut out = live::uninstall_sql(engine);
    match engine {
        Engine::Postgres => {
            for table in session_tables() {
                out.push_str(&legacy_signal::drop_triggers_sql(engine, table));
                out.push_str(&triggers::postgres_drop_trigger(table));
            }
            out.push_str("DROP FUNCTION IF EXISTS flowkey_legacy_write_signal();\n");
            // Indexes and foreign keys on a column go with it.
            for column in SESSION_COLUMNS {
                let _ = writeln!(
                    out,
                    "ALTER TABLE {} DROP COLUMN IF EXISTS {};",
                    column.table, column.column
                );
            }
        }
        Engine::Sqlite => {
            out.push_str("SELECT count(*) FROM sqlite_master;\n");
            for table in session_tables() {
                out.push_str(&legacy_signal::drop_triggers_sql(engine, table));
                out.push_str(&triggers::sqlite_drop_trigger(table));
            }
            for column in SESSION_COLUMNS {
                if let Some(index) = column.index {
                    let _ = writeln!(out, "DROP INDEX IF EXISTS {index};");
                }
            }
        }
    }
    out
}

fn rebuild_sql(engine: Engine) -> String {
    match engine {
        Engine::Postgres => {
            "-- postgres: the columns were dropped in place\nSELECT 1;\n".to_owned()
        }
        Engine::Sqlite => {
            let mut out = String::from(
                "-- sqlite: each table rebuilt without its session column (foreign keys off, \
                 legacy_alter_table on, one transaction, foreign_key_check before commit)\n",
            );
            for column in SESSION_COLUMNS {
                let _ = writeln!(
                    out,
                    "-- {t}: ALTER TABLE {t} RENAME TO flowkey_old_{t}; CREATE TABLE {t} (... without {c} ...); \
                     INSERT INTO {t} SELECT ... FROM flowkey_old_{t}; DROP TABLE flowkey_old_{t}; indexes and triggers again",
                    t = column.table,
                    c = column.column
                );
            }
            out
        }
    }
}

fn add_back_sql(engine: Engine) -> String {
    let mut out = String::new();
    match engine {
        Engine::Postgres => {
            for column in SESSION_COLUMNS {
                let _ = writeln!(
                    out,
                    "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {};",
                    column.table, column.column, column.postgres_type
                );
            }
        }
        Engine::Sqlite => {
            out.push_str("SELECT count(*) FROM sqlite_master;\n");
            for column in SESSION_COLUMNS {
                let _ = writeln!(
                    out,
                    "ALTER TABLE {} ADD COLUMN {} {};",
                    column.table,
                    column.column,
                    column.sqlite_declaration()
                );
            }
        }
    }
    out
}

/// The restore as SQL that runs as is (the runnable `--sql` script): each column's restore
/// over its whole table in one statement (the runner's batches run the same statement over
/// consecutive key ranges).
pub const RESTORE_OFFLINE: StepSql = StepSql::Generated(restore_offline_sql);

fn restore_offline_sql(engine: Engine) -> String {
    let mut out = String::new();
    for column in SESSION_COLUMNS {
        let _ = writeln!(out, "{};", column.restore_sql(engine, "TRUE"));
    }
    out
}

fn restore_step_sql(engine: Engine) -> String {
    let mut out = String::new();
    for column in SESSION_COLUMNS {
        let _ = writeln!(out, "{};", column.restore_sql(engine, RANGE_PLACEHOLDER));
    }
    out
}

fn indexes_back_sql(engine: Engine) -> String {
    let concurrently = match engine {
        Engine::Postgres => " CONCURRENTLY",
        Engine::Sqlite => "",
    };
    let mut out = String::new();
    for column in SESSION_COLUMNS {
        if let Some(index) = column.index {
            let _ = writeln!(
                out,
                "CREATE INDEX{concurrently} IF NOT EXISTS {index} ON {}({});",
                column.table, column.column
            );
        }
    }
    if engine == Engine::Postgres {
        for column in SESSION_COLUMNS.iter().filter(|c| c.references_session) {
            let (t, c, name) = (column.table, column.column, column.foreign_key_name());
            let _ = write!(
                out,
                "DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = '{name}' AND conrelid = '{t}'::regclass) THEN
        ALTER TABLE {t} ADD CONSTRAINT {name}
            FOREIGN KEY ({c}) REFERENCES data_import_sessions(id) ON DELETE CASCADE NOT VALID;
    END IF;
END $$;
"
            );
        }
    }
    out
}

fn validate_back_sql(engine: Engine) -> String {
    match engine {
        Engine::Sqlite => {
            "-- sqlite: the foreign keys came back with the columns\nSELECT 1;\n".to_owned()
        }
        Engine::Postgres => SESSION_COLUMNS
            .iter()
            .filter(|c| c.references_session)
            .map(|column| {
                format!(
                    "ALTER TABLE {} VALIDATE CONSTRAINT {};\n",
                    column.table,
                    column.foreign_key_name()
                )
            })
            .collect(),
    }
}

fn triggers_back_sql(engine: Engine) -> String {
    let mut out = String::new();
    match engine {
        Engine::Postgres => {
            out.push_str(
                "CREATE OR REPLACE FUNCTION flowkey_legacy_write_signal() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO flowkey_legacy_writes (table_name) VALUES (TG_TABLE_NAME);
    RETURN NEW;
END
$$;
",
            );
            for table in session_tables() {
                out.push_str(&triggers::postgres_trigger(table));
                out.push_str(&legacy_signal::triggers_sql(engine, table));
            }
        }
        Engine::Sqlite => {
            out.push_str("SELECT count(*) FROM sqlite_master;\n");
            for table in session_tables() {
                out.push_str(&triggers::sqlite_drop_trigger(table));
                out.push_str(&triggers::sqlite_trigger(table));
                out.push_str(&legacy_signal::triggers_sql(engine, table));
            }
        }
    }
    out.push_str(&live::install_sql(engine));
    out
}

fn clear_archive_sql(_engine: Engine) -> String {
    "DELETE FROM flowkey_contract_archive;\nDELETE FROM flowkey_contract_progress;\n".to_owned()
}

/// The gate as the revision's first step: refuses the run (before anything changed) unless
/// the gate passes or the run is forced; writes the verdict to the audit log either way.
pub fn gate_step<'a, 'b>(ctx: &'a mut StepContext<'b>) -> BoxFuture<'a, Result<(), MigrateError>> {
    Box::pin(async move {
        let verdict = gate(ctx.db, ctx.options.contract).await?;
        let event = if verdict.reasons.is_empty() {
            "contract_gate_passed"
        } else if verdict.forced && verdict.blockers.is_empty() {
            "contract_forced"
        } else {
            "contract_gate_refused"
        };
        ctx.audit
            .record(
                event,
                serde_json::json!({
                    "forced": verdict.forced,
                    "reasons": verdict.reasons,
                    "blockers": verdict.blockers,
                    "quiet_period_secs": verdict.quiet_period_secs,
                }),
            )
            .await?;
        verdict.into_result()?;
        Ok(())
    })
}

/// What the archive holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArchiveSummary {
    pub rows: i64,
    /// The bytes of the archived values and keys (not the table's storage).
    pub bytes: i64,
    pub per_column: Vec<(String, i64)>,
}

/// Reads the archive's size. Reads only.
pub async fn archive_summary(db: &Db) -> Result<ArchiveSummary, MigrateError> {
    let sql = match db.engine() {
        Engine::Postgres => "SELECT table_name || '.' || column_name, count(*), \
             COALESCE(sum(octet_length(row_id) + COALESCE(octet_length(session_value), 0)), 0)::bigint \
             FROM flowkey_contract_archive GROUP BY 1 ORDER BY 1",
        Engine::Sqlite => "SELECT table_name || '.' || column_name, count(*), \
             COALESCE(sum(length(CAST(row_id AS BLOB)) + COALESCE(length(CAST(session_value AS BLOB)), 0)), 0) \
             FROM flowkey_contract_archive GROUP BY 1 ORDER BY 1",
    };
    let rows: Vec<(String, i64, i64)> =
        on_pool!(db, pool => sqlx::query_as(sql).fetch_all(pool).await)?;
    Ok(ArchiveSummary {
        rows: rows.iter().map(|r| r.1).sum(),
        bytes: rows.iter().map(|r| r.2).sum(),
        per_column: rows.into_iter().map(|r| (r.0, r.1)).collect(),
    })
}

/// Archives, in batches by primary key, every value the rule does not give back. The cursor
/// of each column is committed with its batch, so a killed run resumes after its last batch.
pub fn archive_step<'a, 'b>(
    ctx: &'a mut StepContext<'b>,
) -> BoxFuture<'a, Result<(), MigrateError>> {
    Box::pin(async move {
        let db = ctx.db;
        let engine = db.engine();
        db.execute_plain(archive_tables_sql(engine)).await?;
        let batch = i64::from(ctx.options.initial_batch_size.max(1));
        for column in SESSION_COLUMNS {
            let (mut after, done) = progress(db, column).await?;
            if done {
                continue;
            }
            let mut archived = 0u64;
            loop {
                let mut tx = begin_batch(db).await?;
                let Some((hi, _)) =
                    next_bound(&mut tx, column.table, after.as_ref(), batch).await?
                else {
                    set_progress(&mut tx, column, after.as_deref(), true).await?;
                    commit_batch(tx).await?;
                    break;
                };
                let range = KeyRange {
                    lo: after.clone(),
                    hi: hi.clone(),
                };
                let (predicate, keys) = range.predicate(engine, "r");
                archived +=
                    execute_keyed(&mut tx, &column.archive_sql(engine, &predicate), &keys).await?;
                set_progress(&mut tx, column, Some(&hi), false).await?;
                crate::migrate::faults::check("contract::archive_batch")?;
                commit_batch(tx).await?;
                after = Some(hi);
            }
            ctx.audit
                .record(
                    "contract_archived",
                    serde_json::json!({ "table": column.table, "column": column.column, "rows": archived }),
                )
                .await?;
        }
        let summary = archive_summary(db).await?;
        ctx.audit
            .record(
                "contract_archive",
                serde_json::to_value(&summary).unwrap_or_default(),
            )
            .await?;
        Ok(())
    })
}

async fn progress(db: &Db, column: &SessionColumn) -> Result<(Option<String>, bool), MigrateError> {
    let sql = "SELECT last_id, CAST(done AS INTEGER) FROM flowkey_contract_progress \
               WHERE table_name = $1 AND column_name = $2";
    let row: Option<(Option<String>, i32)> = on_pool!(db, pool => sqlx::query_as(sql)
        .bind(column.table)
        .bind(column.column)
        .fetch_optional(pool)
        .await)?;
    Ok(row.map_or((None, false), |(last, done)| (last, done != 0)))
}

async fn set_progress(
    tx: &mut crate::db::Tx<'_>,
    column: &SessionColumn,
    last_id: Option<&str>,
    done: bool,
) -> Result<(), MigrateError> {
    let done_value = match tx.engine() {
        Engine::Postgres => {
            if done {
                "true"
            } else {
                "false"
            }
        }
        Engine::Sqlite => {
            if done {
                "1"
            } else {
                "0"
            }
        }
    };
    let sql = format!(
        "INSERT INTO flowkey_contract_progress (table_name, column_name, last_id, done) \
         VALUES ($1, $2, $3, {done_value}) ON CONFLICT (table_name, column_name) \
         DO UPDATE SET last_id = excluded.last_id, done = excluded.done"
    );
    crate::on_tx!(tx, conn => {
        sqlx::query(&sql)
            .bind(column.table)
            .bind(column.column)
            .bind(last_id)
            .execute(&mut **conn)
            .await?;
    });
    Ok(())
}

/// Gives every row its value back, in batches by primary key: first the rule's value for
/// rows not archived, then the archived value. Each batch is idempotent, so a rerun after a
/// kill gives the same end state.
pub fn restore_step<'a, 'b>(
    ctx: &'a mut StepContext<'b>,
) -> BoxFuture<'a, Result<(), MigrateError>> {
    Box::pin(async move {
        let db = ctx.db;
        let engine = db.engine();
        let batch = i64::from(ctx.options.initial_batch_size.max(1));
        for column in SESSION_COLUMNS {
            let mut after: Option<String> = None;
            let mut restored = 0u64;
            loop {
                let mut tx = begin_batch(db).await?;
                let Some((hi, _)) =
                    next_bound(&mut tx, column.table, after.as_ref(), batch).await?
                else {
                    commit_batch(tx).await?;
                    break;
                };
                let range = KeyRange {
                    lo: after.clone(),
                    hi: hi.clone(),
                };
                let (predicate, keys) = range.predicate(engine, "r");
                restored +=
                    execute_keyed(&mut tx, &column.restore_sql(engine, &predicate), &keys).await?;
                crate::migrate::faults::check("contract::restore_batch")?;
                commit_batch(tx).await?;
                after = Some(hi);
            }
            ctx.audit
                .record(
                    "contract_restored",
                    serde_json::json!({
                        "table": column.table,
                        "column": column.column,
                        "rows": restored,
                    }),
                )
                .await?;
        }
        Ok(())
    })
}

/// SQLite: rebuilds each table without its session column (SQLite cannot drop a column
/// with a `REFERENCES` clause in place). The table's `CREATE TABLE` text loses the column's
/// line and nothing else; its other indexes and triggers are created again from their text.
/// PostgreSQL dropped the columns in place in the step before.
pub fn rebuild_step<'a, 'b>(
    ctx: &'a mut StepContext<'b>,
) -> BoxFuture<'a, Result<(), MigrateError>> {
    Box::pin(async move {
        let Db::Sqlite(pool) = ctx.db else {
            return Ok(());
        };
        on_rebuild_connection(pool, |conn| Box::pin(rebuild_all(conn))).await
    })
}

async fn rebuild_all(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>,
) -> Result<(), MigrateError> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut **conn).await?;
    // Only violations the rebuilds add count (see `db::foreign_keys`).
    let before = ForeignKeyViolations::read(conn).await?;
    for column in SESSION_COLUMNS {
        let (t, c) = (column.table, column.column);
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid")
                .bind(t)
                .fetch_all(&mut **conn)
                .await?;
        if !columns.iter().any(|name| name == c) {
            continue;
        }
        let create: String =
            sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = $1")
                .bind(t)
                .fetch_one(&mut **conn)
                .await?;
        let create = without_column(&create, column)?;
        let dependents: Vec<String> = sqlx::query_scalar(
            "SELECT sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND tbl_name = $1 \
             AND sql IS NOT NULL ORDER BY type, name",
        )
        .bind(t)
        .fetch_all(&mut **conn)
        .await?;
        let kept: Vec<&String> = columns.iter().filter(|name| *name != c).collect();
        let list = kept
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let old = format!("flowkey_old_{t}");
        let statements = [
            format!("ALTER TABLE {t} RENAME TO {old}"),
            create,
            format!("INSERT INTO {t} ({list}) SELECT {list} FROM {old}"),
            format!("DROP TABLE {old}"),
        ];
        for statement in statements.iter().chain(dependents.iter()) {
            sqlx::query(statement).execute(&mut **conn).await?;
        }
        refuse_added_violations(conn, &before, &format!("{t} without {c}")).await?;
    }
    crate::migrate::faults::check("contract::rebuild_commit")?;
    sqlx::query("COMMIT").execute(&mut **conn).await?;
    Ok(())
}

/// `CREATE TABLE` text without the definition of `column`, or `None` if it has none.
fn without_column(create: &str, column: &SessionColumn) -> Result<String, ContractError> {
    // Added back by a downgrade: `ADD COLUMN` appended `, <column> <declaration>`.
    let appended = format!(", {} {}", column.column, column.sqlite_declaration());
    if create.contains(&appended) {
        return Ok(create.replacen(&appended, "", 1));
    }
    cut_line(create, column.column)
        .or_else(|| cut_definition(create, column.column))
        .ok_or_else(|| ContractError::ColumnTextMissing {
            table: column.table.to_owned(),
            column: column.column.to_owned(),
        })
}

/// The text without the line that holds `column`'s definition alone (as the legacy script
/// writes it, one definition per line), keeping the other lines as they are.
fn cut_line(create: &str, column: &str) -> Option<String> {
    let lines: Vec<&str> = create.lines().collect();
    let at = lines.iter().position(|line| {
        let trimmed = line.trim_start();
        let definition = trimmed.trim_end().trim_end_matches(',');
        // Alone on its line: no other definition, and not the list's closing parenthesis
        // (`session_id TEXT)` on the last line).
        let alone = !definition.contains(',')
            && definition.matches('(').count() == definition.matches(')').count();
        alone
            && trimmed
                .strip_prefix(column)
                .is_some_and(|rest| rest.starts_with(char::is_whitespace))
    })?;
    let mut kept: Vec<String> = lines.iter().map(|line| (*line).to_owned()).collect();
    let removed = kept.remove(at);
    if !removed.trim_end().ends_with(',') && at > 0 {
        // It was the last definition: the one before loses its comma.
        let previous = kept[at - 1].trim_end().trim_end_matches(',').to_owned();
        kept[at - 1] = previous;
    }
    Some(kept.join("\n"))
}

/// The text without `column`'s definition wherever it sits (several definitions on a line,
/// any spacing, written by another tool than the legacy script): the column list is split at
/// its top-level commas, outside parentheses and quotes, and the definition goes with one
/// of the commas beside it.
fn cut_definition(create: &str, column: &str) -> Option<String> {
    let open = create.find('(')?;
    let bytes = create.as_bytes();
    let mut depth = 0usize;
    let mut commas = Vec::new();
    let mut close = None;
    // Byte offsets: every character this looks for is ASCII, and no byte of a multi-byte
    // UTF-8 character equals an ASCII one.
    let mut at = open;
    while at < bytes.len() {
        let skip_to = |from: usize, end: &str| {
            create[from..]
                .find(end)
                .map_or(bytes.len(), |found| from + found + end.len())
        };
        match bytes[at] {
            // A quoted name or text ends at the same quote; a bracketed name at `]`.
            b'\'' | b'"' | b'`' | b'[' => {
                let end = match bytes[at] {
                    b'[' => "]",
                    _ => &create[at..=at],
                };
                at = skip_to(at + 1, end);
                continue;
            }
            // Comments may hold commas and parentheses of their own.
            b'-' if bytes.get(at + 1) == Some(&b'-') => {
                at = skip_to(at + 2, "\n");
                continue;
            }
            b'/' if bytes.get(at + 1) == Some(&b'*') => {
                at = skip_to(at + 2, "*/");
                continue;
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(at);
                    break;
                }
            }
            b',' if depth == 1 => commas.push(at),
            _ => {}
        }
        at += 1;
    }
    let close = close?;
    let starts: Vec<usize> = std::iter::once(open + 1)
        .chain(commas.iter().map(|comma| comma + 1))
        .collect();
    let ends: Vec<usize> = commas
        .iter()
        .copied()
        .chain(std::iter::once(close))
        .collect();
    let index = starts.iter().zip(&ends).position(|(&start, &end)| {
        let first = without_comments(&create[start..end])
            .split_whitespace()
            .next()
            .map(str::to_owned)
            .unwrap_or_default();
        first
            .trim_matches(|c| matches!(c, '"' | '`' | '[' | ']'))
            .eq_ignore_ascii_case(column)
    })?;
    let (from, to) = match index {
        0 => (starts[0], *commas.first()? + 1),
        _ => (commas[index - 1], ends[index]),
    };
    Some(format!("{}{}", &create[..from], &create[to..]))
}

/// `text` with its SQL comments (`-- …` to the end of the line, `/* … */`) replaced by a
/// space. Only for reading a definition's first word: quotes are not looked at, and a
/// definition's first word comes before any quoted text in it.
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let line = rest.find("--");
        let block = rest.find("/*");
        let (at, end) = match (line, block) {
            (Some(l), Some(b)) if b < l => (b, "*/"),
            (Some(l), _) => (l, "\n"),
            (None, Some(b)) => (b, "*/"),
            (None, None) => break,
        };
        out.push_str(&rest[..at]);
        out.push(' ');
        rest = rest[at + 2..]
            .find(end)
            .map_or("", |found| &rest[at + 2 + found + end.len()..]);
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_periods_parse() {
        assert_eq!(QuietPeriod::parse("0s").unwrap().0, Duration::ZERO);
        assert_eq!(QuietPeriod::parse("7d").unwrap(), QuietPeriod::DEFAULT);
        assert_eq!(QuietPeriod::parse("12h").unwrap().0.as_secs(), 43_200);
        for bad in ["", "7", "d", "7w", "-1s", "1.5h"] {
            assert!(QuietPeriod::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_column_line_is_cut_alone() {
        let assets = SESSION_COLUMNS[2];
        let create = "CREATE TABLE t (\n    id TEXT PRIMARY KEY,\n    session_id TEXT REFERENCES s(id),\n    session_idx TEXT\n, flow_id TEXT)";
        let cut = without_column(create, &assets).unwrap();
        assert_eq!(
            cut,
            "CREATE TABLE t (\n    id TEXT PRIMARY KEY,\n    session_idx TEXT\n, flow_id TEXT)"
        );
        let added_back = "CREATE TABLE t (\n    id TEXT\n, flow_id TEXT, session_id TEXT REFERENCES data_import_sessions(id) ON DELETE CASCADE)";
        assert_eq!(
            without_column(added_back, &assets).unwrap(),
            "CREATE TABLE t (\n    id TEXT\n, flow_id TEXT)"
        );
        assert!(without_column("CREATE TABLE t (\n    id TEXT\n)", &assets).is_err());
        // Written by another tool: several definitions on a line, other spacing, quotes, a
        // comma inside a type.
        let one_line = "CREATE TABLE t (id TEXT, size NUMERIC(10, 2), session_id  TEXT  REFERENCES s(id), name TEXT)";
        assert_eq!(
            without_column(one_line, &assets).unwrap(),
            "CREATE TABLE t (id TEXT, size NUMERIC(10, 2), name TEXT)"
        );
        let first = "CREATE TABLE t (\"session_id\" TEXT, id TEXT)";
        assert_eq!(
            without_column(first, &assets).unwrap(),
            "CREATE TABLE t ( id TEXT)"
        );
        let two_on_a_line =
            "CREATE TABLE t (\n    id TEXT,\n    session_id TEXT, name TEXT DEFAULT 'a,b'\n)";
        assert_eq!(
            without_column(two_on_a_line, &assets).unwrap(),
            "CREATE TABLE t (\n    id TEXT, name TEXT DEFAULT 'a,b'\n)"
        );
        // Alone in the list: nothing to keep, refused with the table and the column named.
        let alone = without_column("CREATE TABLE t (session_id TEXT)", &assets).unwrap_err();
        assert_eq!(
            alone.to_string(),
            "the SQLite table assets has no column definition of session_id to drop"
        );
        // Comments hold commas and parentheses of their own, and may come before a name.
        let commented = "CREATE TABLE t (\n    id TEXT, -- the key (a uuid, lowercase\n    session_id TEXT, /* legacy, (kept) */ name TEXT\n)";
        assert_eq!(
            without_column(commented, &assets).unwrap(),
            "CREATE TABLE t (\n    id TEXT, /* legacy, (kept) */ name TEXT\n)"
        );
        // The last definition on the line that closes the list: the parenthesis stays.
        let closing = "CREATE TABLE t (\n    id TEXT,\n    session_id TEXT REFERENCES s(id))";
        assert_eq!(
            without_column(closing, &assets).unwrap(),
            "CREATE TABLE t (\n    id TEXT)"
        );
        let bracketed = "CREATE TABLE t ([id] TEXT, [session_id] TEXT, name TEXT)";
        assert_eq!(
            without_column(bracketed, &assets).unwrap(),
            "CREATE TABLE t ([id] TEXT, name TEXT)"
        );
        let both_comments =
            "CREATE TABLE t (id TEXT, /* a */ -- b, c\n session_id TEXT, name TEXT)";
        assert_eq!(
            without_column(both_comments, &assets).unwrap(),
            "CREATE TABLE t (id TEXT, name TEXT)"
        );
        let comment_first = "CREATE TABLE t (id TEXT, /* old key */ session_id TEXT, name TEXT)";
        assert_eq!(
            without_column(comment_first, &assets).unwrap(),
            "CREATE TABLE t (id TEXT, name TEXT)"
        );
        // The last definition: the one before it loses its comma.
        let last = "CREATE TABLE t (\n    id TEXT PRIMARY KEY,\n    session_id TEXT\n)";
        assert_eq!(
            without_column(last, &assets).unwrap(),
            "CREATE TABLE t (\n    id TEXT PRIMARY KEY\n)"
        );
    }
}
