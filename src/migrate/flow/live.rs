//! The live mapping (issue 12, item 1): the mapping stays live from the revision
//! `live_mapping` until the contract, so sessions the old application keeps creating after the
//! mapping step get their flow, and their rows their `flow_id`, without a downgrade.
//!
//! The old application creates a session, then its flow (`discovery_flows.import_session_id`
//! = the session), in either order (the column has no foreign key). Triggers on both tables
//! (one template per engine: a PL/pgSQL function on PostgreSQL, inlined trigger statements on
//! SQLite) run [`map_session_statements`] for the session:
//!
//! - **The choice**: the session's flow is its *claiming* flow: the earliest (by `created_at`,
//!   then the smallest `flow_id`) flow of the session's own tenant whose `import_session_id`
//!   names it, stand-in flows excluded — rule 1 of the mapping step with its tie-break, the
//!   choice the legacy read under `off` makes too (`flows::store::claiming_flow_for_session`).
//! - **The mapping follows the choice**: a session without a mapping gets one to its claiming
//!   flow as soon as that flow exists; a mapped session whose claiming flow becomes another
//!   flow (a flow written later at the same instant with a smaller id, a real flow arriving
//!   for a session mapped by rule `data_import`/`flow_id`, or a stand-in's real flow) is moved
//!   to it: the session's rows linked to the old flow are relinked, the mapping row changes to
//!   rule `import_session_id`. So `on`, `off`, verify and a re-upgrade never disagree.
//! - **A stand-in gives way**: a session given a stand-in flow (rule `created`, by the mapping
//!   step or a catch-up) whose real flow the old code writes later is moved as above, every
//!   row linked to the stand-in with it, and the stand-in is deleted unless something outside
//!   the migration's bookkeeping refers to it (the rule of the downgrade's created-flow
//!   cleanup). A stand-in kept so is ordered after every real flow by the legacy read.
//! - **Rows**: the session's rows still without a flow are linked by the backfill's rules
//!   (`LinkedTable::expected_flow_sql`): by session, and through their import where the table
//!   falls back to it; free-text sessions (`llm_usage_logs`) in the three spellings the
//!   application writes (bare, `disc_session_`, `session-`), through the `session_id` index —
//!   any other spelling is linked at the next catch-up. Each set of rows is its own statement
//!   driven by one index (an OR made PostgreSQL visit every session-less row: 1.1 s per
//!   session on 100k records). A flow naming an import (`data_import_id`, or `import_session_id`
//!   holding an import id) links that import's unlinked rows the same way.
//!
//! **When a session that never gets a flow gets a stand-in**: at a catch-up ([`catch_up`]),
//! never by a trigger. The old application writes the flow right after the session; a
//! stand-in made at the session's insert would nearly always give way a moment later. A
//! catch-up runs in the revision's up step (which also maps the sessions created between the
//! mapping step and the revision) and on `flowkey catch-up`, which the runbook runs before
//! `flag set … on`; `verify` and the `on` gate report sessions still without a mapping.

use std::fmt::Write as _;

use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::Row;

use crate::db::{Db, Engine, Tx};
use crate::migrate::flow::error::FlowMigrationError;
use crate::migrate::flow::linked::{linked_up_to, Fallback, LinkedTable, SessionKey};
use crate::migrate::flow::mapping::{compute_mapping, MappingSummary};
use crate::migrate::flow::tables::{begin_batch, commit_batch, refresh_statistics};
use crate::migrate::{MigrateError, StepContext, StepSql};

/// The revision that installs the live mapping. Its statements cover the tables linked up
/// to it; a later revision that links another table re-creates the functions (they are
/// `CREATE OR REPLACE` / `DROP … IF EXISTS`).
pub const REVISION: &str = "live_mapping";

/// Rows linked per statement by a catch-up.
const CATCH_UP_BATCH: i64 = 1000;

fn tables() -> Vec<&'static LinkedTable> {
    linked_up_to(REVISION).collect()
}

/// The stand-in flow session `s` is mapped to, if it is mapped to one.
fn stand_in(s: &str) -> String {
    format!(
        "(SELECT m.flow_id FROM session_flow_mapping m WHERE m.session_id = {s} AND m.rule = 'created')"
    )
}

/// The claiming flow of session `s` (NULL when it has none). Driven by `import_session_id`
/// alone: written as a join, PostgreSQL drove it from the tenant indexes (8 ms a statement).
fn claiming_flow(s: &str) -> String {
    format!(
        "(SELECT f.flow_id FROM discovery_flows f WHERE f.import_session_id = {s} \
         AND EXISTS (SELECT 1 FROM data_import_sessions cs WHERE cs.id = {s} \
         AND cs.client_account_id = f.client_account_id AND cs.engagement_id = f.engagement_id) \
         AND NOT EXISTS (SELECT 1 FROM flowkey_remembered_flows rf WHERE rf.flow_id = f.flow_id) \
         ORDER BY f.created_at, f.flow_id LIMIT 1)"
    )
}

/// The sets of `table`'s rows that belong to session `s`, each a predicate one index can
/// drive (a statement per set: an OR of them makes PostgreSQL scan every session-less row).
/// Free text (`llm_usage_logs`) in the three spellings the application writes (bare,
/// `disc_session_`, `session-`, lowercase), through the `session_id` index; other spellings
/// are linked by the next catch-up.
fn session_row_sets(engine: Engine, table: &LinkedTable, s: &str) -> Vec<String> {
    let t = table.name;
    let rule = table.rule();
    let of_imports = format!(
        "{t}.data_import_id IN (SELECT si.id FROM data_imports si WHERE si.session_id = {s})"
    );
    let mut sets = Vec::new();
    match rule.session {
        Some(SessionKey::Uuid) => sets.push(format!("{t}.session_id = {s}")),
        Some(SessionKey::FreeText) => {
            let text = match engine {
                Engine::Postgres => format!("{s}::text"),
                Engine::Sqlite => s.to_owned(),
            };
            sets.push(format!(
                "{t}.session_id IN ({text}, 'disc_session_' || {text}, 'session-' || {text})"
            ));
        }
        None => {}
    }
    match (rule.session, rule.fallback) {
        (Some(_), Some(Fallback::Import)) => {
            sets.push(format!("{t}.session_id IS NULL AND {of_imports}"));
        }
        (None, Some(Fallback::Import)) => sets.push(of_imports),
        _ => {}
    }
    sets
}

/// `table`'s rows that import `i` reaches a flow for (its own row, or rows through it).
fn rows_of_import(table: &LinkedTable, i: &str) -> Option<String> {
    let t = table.name;
    match table.rule().fallback? {
        Fallback::NamingFlow => Some(format!("{t}.id = {i}")),
        Fallback::Import => Some(format!("{t}.data_import_id = {i}")),
    }
}

/// Links `table`'s unlinked rows matching `rows` by the backfill's rules.
fn link_rows(engine: Engine, table: &LinkedTable, rows: &str) -> String {
    let t = table.name;
    let expected = table.expected_flow_sql(engine, t);
    format!(
        "UPDATE {t} SET flow_id = {expected} WHERE {t}.flow_id IS NULL AND {rows} AND {expected} IS NOT NULL"
    )
}

/// The flow session `s` is mapped to, if any.
fn mapped(s: &str) -> String {
    format!("(SELECT m.flow_id FROM session_flow_mapping m WHERE m.session_id = {s})")
}

/// What mapping session `s` (an SQL expression) runs, in order. Idempotent: a second run
/// changes nothing.
pub fn map_session_statements(engine: Engine, s: &str) -> Vec<String> {
    let claimant = claiming_flow(s);
    let mapped = mapped(s);
    let stand_in = stand_in(s);
    let moves = format!("{claimant} IS NOT NULL AND {claimant} <> {mapped}");
    let mut out = Vec::new();
    // The mapping moves to the claiming flow: the session's rows first (while the mapping
    // still names the old flow; all of a stand-in's rows, it was the session's alone), then
    // the stand-in itself, then the mapping row.
    for table in tables() {
        let t = table.name;
        for rows in session_row_sets(engine, table, s) {
            out.push(format!(
                "UPDATE {t} SET flow_id = {claimant} WHERE {rows} AND {t}.flow_id = {mapped} AND {moves}"
            ));
        }
        out.push(format!(
            "UPDATE {t} SET flow_id = {claimant} WHERE {t}.flow_id = {stand_in} AND {moves}"
        ));
    }
    out.push(format!(
        "DELETE FROM discovery_flows WHERE id IN (SELECT d.id FROM discovery_flows d \
         WHERE d.flow_id = {stand_in} AND {moves} AND {untouched})",
        untouched = crate::migrate::flow::downgrade::UNTOUCHED_CREATED_FLOW
    ));
    out.push(format!(
        "UPDATE session_flow_mapping SET flow_id = {claimant}, rule = 'import_session_id', \
         flow_created_by_migration = FALSE \
         WHERE session_id = {s} AND {claimant} IS NOT NULL AND flow_id <> {claimant}"
    ));
    let conflict = match engine {
        Engine::Postgres => " ON CONFLICT (session_id) DO NOTHING",
        Engine::Sqlite => "",
    };
    out.push(format!(
        "INSERT INTO session_flow_mapping \
         (session_id, flow_id, client_account_id, engagement_id, rule, flow_created_by_migration) \
         SELECT ns.id, {claimant}, ns.client_account_id, ns.engagement_id, 'import_session_id', FALSE \
         FROM data_import_sessions ns WHERE ns.id = {s} AND {claimant} IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM session_flow_mapping em WHERE em.session_id = ns.id){conflict}"
    ));
    for table in tables() {
        for rows in session_row_sets(engine, table, s) {
            out.push(link_rows(engine, table, &rows));
        }
    }
    out
}

/// What a flow naming import `i` (an SQL expression) runs: that import's unlinked rows.
pub fn link_import_statements(engine: Engine, i: &str) -> Vec<String> {
    tables()
        .into_iter()
        .filter_map(|table| rows_of_import(table, i).map(|rows| link_rows(engine, table, &rows)))
        .collect()
}

/// The revision's up step: the functions and triggers of the live mapping.
pub const INSTALL: StepSql = StepSql::Generated(install_sql);

/// The way down: the triggers and functions go (mapping rows stay: `session_flow_mapping`
/// is the mapping's own table).
pub const UNINSTALL: StepSql = StepSql::Generated(uninstall_sql);

fn body(statements: &[String]) -> String {
    statements.iter().fold(String::new(), |mut out, statement| {
        let _ = writeln!(out, "    {statement};");
        out
    })
}

pub fn install_sql(engine: Engine) -> String {
    match engine {
        Engine::Postgres => format!(
            "CREATE OR REPLACE FUNCTION flowkey_live_map_session(p_session uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
{map}END
$$;
CREATE OR REPLACE FUNCTION flowkey_live_link_import(p_import uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
{link}END
$$;
CREATE OR REPLACE FUNCTION flowkey_live_mapping_on_flow() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.import_session_id IS NOT NULL THEN
        PERFORM flowkey_live_map_session(NEW.import_session_id);
        PERFORM flowkey_live_link_import(NEW.import_session_id);
    END IF;
    IF NEW.data_import_id IS NOT NULL THEN
        PERFORM flowkey_live_link_import(NEW.data_import_id);
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION flowkey_live_mapping_on_session() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM flowkey_live_map_session(NEW.id);
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS flowkey_live_mapping ON discovery_flows;
CREATE TRIGGER flowkey_live_mapping AFTER INSERT OR UPDATE OF import_session_id, data_import_id
    ON discovery_flows FOR EACH ROW EXECUTE FUNCTION flowkey_live_mapping_on_flow();
DROP TRIGGER IF EXISTS flowkey_live_mapping ON data_import_sessions;
CREATE TRIGGER flowkey_live_mapping AFTER INSERT
    ON data_import_sessions FOR EACH ROW EXECUTE FUNCTION flowkey_live_mapping_on_session();
",
            map = body(&map_session_statements(engine, "p_session")),
            link = body(&link_import_statements(engine, "p_import")),
        ),
        Engine::Sqlite => {
            let on_flow: Vec<String> = map_session_statements(engine, "NEW.import_session_id")
                .into_iter()
                .chain(link_import_statements(engine, "NEW.import_session_id"))
                .chain(link_import_statements(engine, "NEW.data_import_id"))
                .collect();
            let on_flow = body(&on_flow);
            let on_session = body(&map_session_statements(engine, "NEW.id"));
            format!(
                "SELECT count(*) FROM sqlite_master;
DROP TRIGGER IF EXISTS flowkey_live_mapping_flow_insert;
CREATE TRIGGER flowkey_live_mapping_flow_insert AFTER INSERT ON discovery_flows
BEGIN
{on_flow}END;
DROP TRIGGER IF EXISTS flowkey_live_mapping_flow_update;
CREATE TRIGGER flowkey_live_mapping_flow_update AFTER UPDATE OF import_session_id, data_import_id ON discovery_flows
BEGIN
{on_flow}END;
DROP TRIGGER IF EXISTS flowkey_live_mapping_session_insert;
CREATE TRIGGER flowkey_live_mapping_session_insert AFTER INSERT ON data_import_sessions
BEGIN
{on_session}END;
"
            )
        }
    }
}

pub fn uninstall_sql(engine: Engine) -> String {
    match engine {
        Engine::Postgres => "DROP TRIGGER IF EXISTS flowkey_live_mapping ON discovery_flows;
DROP TRIGGER IF EXISTS flowkey_live_mapping ON data_import_sessions;
DROP FUNCTION IF EXISTS flowkey_live_mapping_on_flow();
DROP FUNCTION IF EXISTS flowkey_live_mapping_on_session();
DROP FUNCTION IF EXISTS flowkey_live_map_session(uuid);
DROP FUNCTION IF EXISTS flowkey_live_link_import(uuid);
"
        .to_owned(),
        Engine::Sqlite => "SELECT count(*) FROM sqlite_master;
DROP TRIGGER IF EXISTS flowkey_live_mapping_flow_insert;
DROP TRIGGER IF EXISTS flowkey_live_mapping_flow_update;
DROP TRIGGER IF EXISTS flowkey_live_mapping_session_insert;
"
        .to_owned(),
    }
}

/// What a catch-up did (audit event `catch_up`, `flowkey catch-up`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CatchUpSummary {
    /// The mapping rules and stand-ins for sessions without a mapping (the mapping step's
    /// own code, which leaves mapped sessions alone).
    pub mapping: MappingSummary,
    /// Mapped sessions moved to their claiming flow (stand-ins that gave way, mostly).
    pub sessions_moved: i64,
    /// Rows that got their flow, per table.
    pub rows_linked: Vec<(String, u64)>,
    /// Sessions still without a mapping afterwards (created while the catch-up ran).
    pub sessions_unmapped: i64,
}

/// Mapped sessions whose claiming flow is another flow than their mapping's (a stand-in
/// whose real flow arrived, or a flow written before the live mapping existed). One lookup
/// of the claiming flow per mapped session, which must go through
/// `ix_discovery_flows_import_session_id` (see [`catch_up`]'s statistics).
pub fn sessions_to_move_sql() -> String {
    let claimant = claiming_flow("m.session_id");
    format!(
        "SELECT m.session_id FROM session_flow_mapping m \
         WHERE {claimant} IS NOT NULL AND {claimant} <> m.flow_id ORDER BY m.session_id"
    )
}

/// Brings the mapping up to date with what the old application wrote: the mapping rules for
/// sessions without a mapping, stand-ins giving way to real flows, stand-ins for sessions
/// that have no flow, then every row still unlinked that the rules now link. Each part is
/// short transactions; safe to rerun at any time while the application writes.
pub async fn catch_up(db: &Db) -> Result<CatchUpSummary, MigrateError> {
    let engine = db.engine();
    let mut summary = CatchUpSummary::default();
    // The claiming flow of each mapped session is a lookup per session; without statistics
    // (a mapping filled earlier in the same run, flows bulk-loaded with autovacuum off)
    // PostgreSQL drove it through the tenant indexes instead of `import_session_id`: 7.5 min
    // instead of seconds at 100k sessions. ANALYZE samples a bounded number of rows and
    // takes no lock that blocks reads or writes (as the backfill's).
    refresh_statistics(
        db,
        "session_flow_mapping, discovery_flows, data_import_sessions",
    )
    .await?;
    // Mappings move to their claiming flows before new stand-ins are made.
    let sessions: Vec<crate::db::types::DbUuid> = crate::on_pool!(db, pool => {
        sqlx::query_scalar(&sessions_to_move_sql()).fetch_all(pool).await?
    });
    let statements = map_session_statements(engine, "$1");
    for session in sessions {
        let mut tx = begin_batch(db).await?;
        match &mut tx {
            Tx::Postgres(conn) => {
                sqlx::query("SELECT flowkey_live_map_session($1)")
                    .bind(session)
                    .execute(&mut **conn)
                    .await?;
            }
            Tx::Sqlite(conn) => {
                for statement in &statements {
                    sqlx::query(statement)
                        .bind(session)
                        .execute(&mut **conn)
                        .await?;
                }
            }
        }
        commit_batch(tx).await?;
        summary.sessions_moved += 1;
    }
    summary.mapping = compute_mapping(db).await?;
    for table in tables() {
        let t = table.name;
        let expected_r = table.expected_flow_sql(engine, "r");
        let expected = table.expected_flow_sql(engine, t);
        let sql = format!(
            "UPDATE {t} SET flow_id = {expected} WHERE id IN \
             (SELECT r.id FROM {t} r WHERE r.flow_id IS NULL AND {expected_r} IS NOT NULL LIMIT $1)"
        );
        let mut linked = 0u64;
        loop {
            let mut tx = begin_batch(db).await?;
            let rows = crate::on_tx!(&mut tx, conn => {
                sqlx::query(&sql).bind(CATCH_UP_BATCH).execute(&mut **conn).await?.rows_affected()
            });
            commit_batch(tx).await?;
            linked += rows;
            if rows == 0 {
                break;
            }
        }
        summary.rows_linked.push((t.to_owned(), linked));
    }
    summary.sessions_unmapped = sessions_unmapped(db).await?;
    Ok(summary)
}

/// [`catch_up`] as a command (`flowkey catch-up`): refused, changing nothing, unless the
/// database is at or above the revision that installs the live mapping.
pub async fn catch_up_command(db: &Db) -> Result<CatchUpSummary, MigrateError> {
    let current = crate::migrate::Migrator::new(db.clone(), crate::migrate::RunOptions::default())
        .current()
        .await?;
    let chain = crate::migrate::revisions::all();
    let position = |id: &str| chain.iter().position(|revision| revision.id == id);
    let installed = current
        .and_then(position)
        .zip(position(REVISION))
        .is_some_and(|(at, live)| at >= live);
    if !installed {
        return Err(FlowMigrationError::LiveMappingNotInstalled {
            at: current.unwrap_or("base").to_owned(),
        }
        .into());
    }
    catch_up(db).await
}

/// Sessions without a mapping.
pub async fn sessions_unmapped(db: &Db) -> Result<i64, MigrateError> {
    Ok(crate::on_pool!(db, pool => {
        let row = sqlx::query(
            "SELECT count(*) FROM data_import_sessions s \
             WHERE NOT EXISTS (SELECT 1 FROM session_flow_mapping m WHERE m.session_id = s.id)",
        )
        .fetch_one(pool)
        .await?;
        row.try_get::<i64, _>(0)?
    }))
}

/// What the catch-up step runs, set-based (`--sql`; the revision's checksum covers it).
pub const CATCH_UP: StepSql = StepSql::Generated(catch_up_sql);

fn catch_up_sql(engine: Engine) -> String {
    let mut out = format!("-- for each session of: {};\n", sessions_to_move_sql());
    match engine {
        Engine::Postgres => out.push_str("SELECT flowkey_live_map_session($1);\n"),
        Engine::Sqlite => out.push_str(&body(&map_session_statements(engine, "$1"))),
    }
    out.push_str(
        "-- then the mapping step (rules and stand-ins for sessions without a mapping):\n",
    );
    out.push_str(&crate::migrate::flow::mapping::compute_mapping_sql(engine));
    out.push_str("-- then, per linked table, until no row changes ($1 = 1000):\n");
    for table in tables() {
        let t = table.name;
        let _ = writeln!(
            out,
            "UPDATE {t} SET flow_id = {expected} WHERE id IN (SELECT r.id FROM {t} r WHERE r.flow_id IS NULL AND {expected_r} IS NOT NULL LIMIT $1);",
            expected = table.expected_flow_sql(engine, t),
            expected_r = table.expected_flow_sql(engine, "r"),
        );
    }
    out
}

/// The catch-up step as SQL that runs as is (the runnable `--sql` script), PostgreSQL only
/// (SQLite moves a session by several statements bound to it): the sessions to move, each
/// through the same function the triggers use, then the mapping step in one pass, then each
/// linked table's unlinked rows in one statement instead of batches of 1000 (each batch
/// takes rows the rules link until none is left).
pub const CATCH_UP_OFFLINE: StepSql = StepSql::Generated(catch_up_offline_sql);

fn catch_up_offline_sql(engine: Engine) -> String {
    if engine != Engine::Postgres {
        return String::new();
    }
    let mut out = format!(
        "SELECT flowkey_live_map_session(moving.session_id) FROM ({}) AS moving;\n",
        sessions_to_move_sql()
    );
    out.push_str(&crate::migrate::flow::mapping::compute_mapping_offline_sql(
        engine,
    ));
    for table in tables() {
        let t = table.name;
        let _ = writeln!(
            out,
            "UPDATE {t} SET flow_id = {expected} WHERE id IN (SELECT r.id FROM {t} r WHERE r.flow_id IS NULL AND {expected_r} IS NOT NULL);",
            expected = table.expected_flow_sql(engine, t),
            expected_r = table.expected_flow_sql(engine, "r"),
        );
    }
    out
}

/// The `Action::Code` body of `live_mapping`'s catch-up step.
pub fn catch_up_step<'a, 'b>(
    ctx: &'a mut StepContext<'b>,
) -> BoxFuture<'a, Result<(), MigrateError>> {
    Box::pin(async move {
        let summary = catch_up(ctx.db).await?;
        ctx.audit
            .record(
                "catch_up",
                serde_json::to_value(&summary).unwrap_or_default(),
            )
            .await
    })
}
