//! Readiness's cheap delta: which rows could the link checks now judge differently from the
//! stored verification, and do those rows pass? (Issue 12, item 4.)
//!
//! A row's link checks read the row itself and three kinds of other rows: its session's
//! mapping row (`session_flow_mapping`), its import (`data_imports`, by `data_import_id`),
//! and flows (`discovery_flows`: the row's own flow for the tenant and existence checks, its
//! import's flow, and, for an import without a session, the flows naming it). A mapping
//! row's checks read its flow and its session. So a check can answer differently from the
//! stored verification only if
//! - the row itself was written: the write ledger names every row of a legacy table the
//!   application inserted, updated or deleted since its start (flowkey's own row writes are
//!   its batches: a migration, which changes the revision, or a catch-up, which links only
//!   rows a mapping change or an earlier failure reaches);
//! - its import or its session was written (the ledger again);
//! - a flow it reads was written: the ledger names the flow, and the *basis* (every flow's
//!   keys, read by the full check in the snapshot of its checks and stored beside its
//!   result, `verification_basis`) gives the keys it had then, so that the rows of its old
//!   and of its new `flow_id`, import and session are reached. flowkey's own flow writes
//!   (a catch-up's stand-ins, made and given up) come with a change of a mapping row;
//! - its session's mapping row changed: the mapping has no ledger, so the delta diffs it
//!   with the basis (one pass over the mapping), and adds the old and new flows and the
//!   session of every changed row.
//!
//! The delta checks those rows with the full check's own statement, restricted to them (and
//! the mapping rows they reach), in one read snapshot. It stands in for the full check only
//! when the stored result was sound (every count zero): a stored failure stays a failure
//! until the full check runs again. It is not used when the revision is not the write
//! ledger's (no ledger, or the contract's archive), when the stored verification has no
//! basis (stored by an older build, or where it could not be stored), or when the ledger
//! and the changes reach more than [`DELTA_ROWS_CAP`] keys: then the full check is cheaper
//! than the delta's lookups.

use serde::Serialize;
use sqlx::Row;

use crate::db::{on_pool, on_tx, Db, Engine, Tx};
use crate::migrate::audit::table_exists;
use crate::migrate::flow::linked::{
    Fallback, LinkedTable, SessionKey, TenantColumns, LINKED_TABLES,
};
use crate::migrate::flow::verification_basis::{as_text, mapping_select, BASIS_MAPPING};
use crate::migrate::flow::verify::link_counts_sql;
use crate::migrate::MigrateError;

/// Keys (ledger rows, changed flows and mapping rows) above which the delta gives way to the
/// full check: its lookups by key then cost about what a scan does.
pub const DELTA_ROWS_CAP: i64 = 50_000;

const NO_BASIS: &str = "no delta basis for the stored verification (stored before this build, \
                        or by a check that could not store one)";

/// What the delta found.
#[derive(Debug, Clone)]
pub enum Delta {
    /// Every row it reached passes: the stored result stands, with the mapping checked now.
    Clean(DeltaChecked),
    /// Rows it reached fail a check (which, per table): the full check must run and name them.
    Failed(String),
    /// It cannot stand in for the full check, and why.
    Unavailable(String),
}

/// A delta that passed.
#[derive(Debug, Clone, Serialize)]
pub struct DeltaChecked {
    /// Rows of the linked tables checked again.
    pub rows_checked: i64,
    /// Rows the write ledger names (written by the application since its start).
    pub ledger_rows: i64,
    /// Flows the application wrote (the ledger names them), and mapping rows that differ
    /// from the basis.
    pub changed_flows: i64,
    pub changed_mapping_rows: i64,
}

impl DeltaChecked {
    /// Whether anything was written or changed since the stored verification.
    pub fn reached_anything(&self) -> bool {
        self.ledger_rows + self.changed_flows + self.changed_mapping_rows > 0
    }

    /// What the delta checked, in a sentence.
    pub fn describe(&self) -> String {
        format!(
            "{} rows checked again by the delta: {} rows written by the application since the \
             write ledger's start ({} of them flows), {} mapping rows changed since the last \
             verification",
            self.rows_checked, self.ledger_rows, self.changed_flows, self.changed_mapping_rows
        )
    }
}

/// The keys a delta reaches.
#[derive(Debug, Default)]
struct Reach {
    /// Per linked table, the ids of its rows the ledger names.
    written: Vec<(String, Vec<String>)>,
    ledger_rows: i64,
    /// Sessions whose mapping row differs from the basis.
    sessions: Vec<String>,
    /// Flows that differ from the basis (old and new `flow_id`).
    flows: Vec<String>,
    /// Ids named by a changed flow's `data_import_id` or `import_session_id` (old and new).
    named: Vec<String>,
    /// Imports written, or whose flow changed.
    imports: Vec<String>,
    /// Sessions whose mapping row's checks may answer differently: a changed mapping row,
    /// or a written session (its tenant).
    session_rows: Vec<String>,
    changed_flows: i64,
    changed_mapping_rows: i64,
}

/// Checks the rows that changed since the stored verification `verification_id` could
/// affect; unavailable when they are more than `max_keys` keys ([`DELTA_ROWS_CAP`] for
/// readiness). Reads only.
pub async fn check_delta(
    db: &Db,
    verification_id: i64,
    max_keys: i64,
) -> Result<Delta, MigrateError> {
    if !table_exists(db, "flowkey_delta_basis").await? {
        return Ok(Delta::Unavailable(NO_BASIS.into()));
    }
    let engine = db.engine();
    // One snapshot, with the planner's own choices (a handful of keys: index lookups and
    // nested loops are right).
    let mut tx = db.begin_read_snapshot().await?;
    let basis_of: Option<i64> = on_tx!(&mut tx, conn => {
        sqlx::query_scalar("SELECT verification_id FROM flowkey_delta_basis")
            .fetch_optional(&mut **conn)
            .await?
    });
    if basis_of != Some(verification_id) {
        tx.rollback().await?;
        return Ok(Delta::Unavailable(NO_BASIS.into()));
    }
    let reach = match reach(&mut tx, engine, max_keys).await? {
        Ok(reach) => reach,
        Err(why) => {
            tx.rollback().await?;
            return Ok(Delta::Unavailable(why));
        }
    };
    let mut rows_checked = 0;
    let mut failing = Vec::new();
    for table in LINKED_TABLES {
        let Some((only, binds)) = restriction(engine, table, &reach) else {
            continue;
        };
        let sql = link_counts_sql(engine, table, Some(&only));
        let (rows, wrong, crosses, orphan): (i64, i64, i64, i64) = on_tx!(&mut tx, conn => {
            let mut query = sqlx::query_as(&sql);
            for list in &binds {
                query = query.bind(json_list(list));
            }
            query.fetch_one(&mut **conn).await?
        });
        rows_checked += rows;
        if wrong + crosses + orphan > 0 {
            failing.push(format!(
                "{} ({wrong} wrong, {crosses} crossing tenants, {orphan} naming no flow)",
                table.name
            ));
        }
    }
    if let Some((only, binds)) = mapping_restriction(engine, &reach) {
        let sql = format!(
            "SELECT count(*) FROM session_flow_mapping m \
             LEFT JOIN discovery_flows f ON f.flow_id = m.flow_id \
             LEFT JOIN data_import_sessions s ON s.id = m.session_id \
             WHERE ({only}) AND (f.flow_id IS NULL \
                OR f.client_account_id <> m.client_account_id OR f.engagement_id <> m.engagement_id \
                OR (s.id IS NOT NULL AND (s.client_account_id <> m.client_account_id \
                    OR s.engagement_id <> m.engagement_id)))"
        );
        let bad: i64 = on_tx!(&mut tx, conn => {
            let mut query = sqlx::query_scalar(&sql);
            for list in &binds {
                query = query.bind(json_list(list));
            }
            query.fetch_one(&mut **conn).await?
        });
        if bad > 0 {
            failing.push(format!(
                "session_flow_mapping ({bad} rows naming no flow or of another tenant than their flow or session)"
            ));
        }
    }
    tx.rollback().await?;
    if !failing.is_empty() {
        return Ok(Delta::Failed(format!(
            "rows written or reached since the last verification fail a check: {}",
            failing.join(", ")
        )));
    }
    Ok(Delta::Clean(DeltaChecked {
        rows_checked,
        ledger_rows: reach.ledger_rows,
        changed_flows: reach.changed_flows,
        changed_mapping_rows: reach.changed_mapping_rows,
    }))
}

/// The mapping rows whose checks may answer differently (their row, their flow or their
/// session changed), as [`restriction`] gives rows of a linked table.
fn mapping_restriction<'r>(
    engine: Engine,
    reach: &'r Reach,
) -> Option<(String, Vec<&'r Vec<String>>)> {
    let arms: Vec<(&str, &'r Vec<String>)> = [
        ("m.session_id", &reach.session_rows),
        ("m.flow_id", &reach.flows),
    ]
    .into_iter()
    .filter(|(_, keys)| !keys.is_empty())
    .collect();
    if arms.is_empty() {
        return None;
    }
    let condition = arms
        .iter()
        .enumerate()
        .map(|(i, (column, _))| match engine {
            Engine::Postgres => format!("{column} = {}", any_of(engine, i + 1)),
            Engine::Sqlite => format!("{column} IN {}", any_of(engine, i + 1)),
        })
        .collect::<Vec<_>>()
        .join(" OR ");
    Some((condition, arms.into_iter().map(|(_, keys)| keys).collect()))
}

/// Reads the ledger and diffs the basis; `Err(why)` when the delta would not pay.
async fn reach(
    tx: &mut Tx<'static>,
    engine: Engine,
    cap: i64,
) -> Result<Result<Reach, String>, MigrateError> {
    let ledger_rows: i64 = on_tx!(&mut *tx, conn => {
        sqlx::query_scalar(&format!(
            "SELECT count(*) FROM (SELECT 1 FROM flowkey_write_ledger LIMIT {}) AS ledger",
            cap + 1
        ))
        .fetch_one(&mut **conn)
        .await?
    });
    if ledger_rows > cap {
        return Ok(Err(format!(
            "the write ledger names more than {cap} rows: the full check costs less"
        )));
    }
    // Flows: every write by the application is in the ledger (old and new ids), so the old
    // and new keys of the flows it names are all that can have changed; flowkey's own flow
    // writes (stand-ins made and given up by a catch-up) come with a mapping row's change,
    // whose old and new flows and session the mapping's diff below adds.
    let ledger: Vec<(String, String)> = on_tx!(&mut *tx, conn => {
        sqlx::query_as("SELECT table_name, row_id FROM flowkey_write_ledger")
            .fetch_all(&mut **conn)
            .await?
    });
    let written = |table: &str| {
        dedup(
            ledger
                .iter()
                .filter(|(name, _)| name == table)
                .map(|(_, id)| id.clone()),
        )
    };
    let written_flows = written("discovery_flows");
    let flow_keys = format!(
        "SELECT flow_id, data_import_id, import_session_id FROM flowkey_delta_flows \
         WHERE id IN {basis_ids} \
         UNION ALL SELECT {flow}, {import}, {session} FROM discovery_flows WHERE id {now_ids}",
        basis_ids = text_list(engine, 1),
        flow = as_text(engine, "flow_id"),
        import = as_text(engine, "data_import_id"),
        session = as_text(engine, "import_session_id"),
        now_ids = match engine {
            Engine::Postgres => format!("= {}", any_of(engine, 2)),
            Engine::Sqlite => format!("IN {}", any_of(engine, 2)),
        },
    );
    let mapping_diff = format!(
        "SELECT * FROM ({now} EXCEPT {BASIS_MAPPING}) AS appeared \
         UNION ALL SELECT * FROM ({BASIS_MAPPING} EXCEPT {now}) AS vanished",
        now = mapping_select(engine)
    );
    let (flows, mapping) = on_tx!(&mut *tx, conn => {
        let flows: Vec<(Option<String>, Option<String>, Option<String>)> = if written_flows.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(&flow_keys)
                .bind(json_list(&written_flows))
                .bind(json_list(&written_flows))
                .fetch_all(&mut **conn)
                .await?
        };
        let mapping = sqlx::query(&mapping_diff)
            .fetch_all(&mut **conn)
            .await?
            .into_iter()
            .map(|row| Ok((row.try_get::<Option<String>, _>(0)?, row.try_get::<Option<String>, _>(1)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        (flows, mapping)
    });
    let changed = ledger.len() + mapping.len();
    if changed as i64 > cap {
        return Ok(Err(format!(
            "{changed} rows written or changed since the stored verification, more than {cap}: the full check costs less"
        )));
    }
    let mapping_sessions: Vec<String> = mapping.iter().filter_map(|(s, _)| s.clone()).collect();
    let mut reach = Reach {
        ledger_rows: ledger.len() as i64,
        changed_flows: written_flows.len() as i64,
        changed_mapping_rows: mapping.len() as i64,
        sessions: dedup(mapping_sessions.iter().cloned()),
        flows: dedup(
            flows
                .iter()
                .filter_map(|(flow, _, _)| flow.clone())
                .chain(mapping.iter().filter_map(|(_, flow)| flow.clone())),
        ),
        named: dedup(
            flows
                .iter()
                .flat_map(|(_, import, session)| [import.clone(), session.clone()])
                .flatten()
                .chain(mapping_sessions.iter().cloned()),
        ),
        ..Reach::default()
    };
    reach.session_rows = dedup(
        mapping_sessions
            .into_iter()
            .chain(written("data_import_sessions")),
    );
    for table in LINKED_TABLES {
        let ids = dedup(
            ledger
                .iter()
                .filter(|(name, _)| name == table.name)
                .map(|(_, id)| id.clone()),
        );
        reach.written.push((table.name.to_owned(), ids));
    }
    // Imports whose rows read them: written ones, and those whose flow changed.
    let mut imports = reach
        .written
        .iter()
        .find(|(name, _)| name == "data_imports")
        .map(|(_, ids)| ids.clone())
        .unwrap_or_default();
    if !reach.flows.is_empty() {
        let sql = match engine {
            Engine::Postgres => "SELECT id::text FROM data_imports WHERE flow_id = ",
            Engine::Sqlite => "SELECT CAST(id AS TEXT) FROM data_imports WHERE flow_id IN ",
        };
        let sql = format!("{sql}{}", any_of(engine, 1));
        let of_changed_flows: Vec<String> = on_tx!(&mut *tx, conn => {
            sqlx::query_scalar(&sql)
                .bind(json_list(&reach.flows))
                .fetch_all(&mut **conn)
                .await?
        });
        imports.extend(of_changed_flows);
    }
    reach.imports = dedup(imports.into_iter());
    Ok(Ok(reach))
}

/// The session key a free-text `session_id` names, as lowercase text: the trimming, prefix
/// stripping and lowercasing of the parse (`flowkey_parse_session_id`, SQLite's inline
/// template) without its UUID check, which only turns text no session has into NULL: every
/// row whose parsed session is in a list has this text in it, so the rows kept are the parsed
/// ones and no fewer. The check is most of the parse's cost over a whole table (a function
/// call per row on PostgreSQL, a long GLOB on SQLite).
fn free_text_session_key(engine: Engine, column: &str) -> String {
    let t = match engine {
        Engine::Postgres => format!("btrim({column}, E' \\t\\n\\r\\f' || chr(11))"),
        Engine::Sqlite => format!(
            "trim({column}, ' ' || char(9) || char(10) || char(11) || char(12) || char(13))"
        ),
    };
    format!(
        "lower(CASE WHEN lower(substr({t}, 1, 13)) = 'disc_session_' THEN substr({t}, 14) \
         WHEN lower(substr({t}, 1, 8)) = 'session-' THEN substr({t}, 9) ELSE {t} END)"
    )
}

/// The keys of parameter `$n` as text, for `IN` over a text column.
fn text_list(engine: Engine, n: usize) -> String {
    match engine {
        Engine::Postgres => format!("(SELECT json_array_elements_text(CAST(${n} AS json)))"),
        Engine::Sqlite => format!("(SELECT value FROM json_each(${n}))"),
    }
}

/// A list of keys as the one text parameter both engines read it from.
fn json_list(list: &[String]) -> String {
    serde_json::Value::from(list.to_vec()).to_string()
}

/// The keys of parameter `$n` (a JSON array of UUID texts): on PostgreSQL an array computed
/// once, which an index scan takes as `= ANY(...)`; on SQLite a table-valued list for `IN`.
fn any_of(engine: Engine, n: usize) -> String {
    match engine {
        // The cast inside the array's subquery: outside it, a filter casts the whole array
        // again for every row it tests (2.4 s over 50k rows with 200 keys).
        Engine::Postgres => {
            format!("ANY(ARRAY(SELECT CAST(json_array_elements_text(CAST(${n} AS json)) AS uuid)))")
        }
        Engine::Sqlite => format!("(SELECT value FROM json_each(${n}))"),
    }
}

fn dedup(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut values: Vec<String> = values.collect();
    values.sort_unstable();
    values.dedup();
    values
}

/// The condition keeping the rows of `table` the delta reaches, and the lists it binds in
/// order; `None` when it reaches none.
fn restriction<'r>(
    engine: Engine,
    table: &LinkedTable,
    reach: &'r Reach,
) -> Option<(String, Vec<&'r Vec<String>>)> {
    let rule = table.rule();
    let written = reach
        .written
        .iter()
        .find(|(name, _)| name == table.name)
        .map(|(_, ids)| ids);
    // Each arm: what is compared, whether it is a plain column (an index serves it), the keys.
    let mut arms: Vec<(String, bool, &'r Vec<String>)> = Vec::new();
    if let Some(ids) = written {
        arms.push(("r.id".to_owned(), true, ids));
    }
    match rule.session {
        Some(SessionKey::Uuid) => arms.push(("r.session_id".to_owned(), true, &reach.sessions)),
        Some(SessionKey::FreeText) => arms.push((
            free_text_session_key(engine, "r.session_id"),
            false,
            &reach.sessions,
        )),
        None => {}
    }
    if rule.fallback == Some(Fallback::Import) || table.tenant == TenantColumns::ThroughItsImport {
        arms.push(("r.data_import_id".to_owned(), true, &reach.imports));
    }
    if rule.fallback == Some(Fallback::NamingFlow) {
        arms.push(("r.id".to_owned(), true, &reach.named));
    }
    arms.push(("r.flow_id".to_owned(), true, &reach.flows));
    arms.retain(|(_, _, keys)| !keys.is_empty());
    if arms.is_empty() {
        return None;
    }
    let condition = arms
        .iter()
        .enumerate()
        .map(|(i, (compared, column, _))| {
            let n = i + 1;
            match (engine, column) {
                (Engine::Postgres, true) => format!("{compared} = {}", any_of(engine, n)),
                // An expression no index serves: a hashed set, built once.
                (Engine::Postgres, false) => {
                    format!("{compared} IN (SELECT json_array_elements_text(CAST(${n} AS json)))")
                }
                (Engine::Sqlite, _) => format!("{compared} IN {}", any_of(engine, n)),
            }
        })
        .collect::<Vec<_>>()
        .join(" OR ");
    Some((
        format!("({condition})"),
        arms.into_iter().map(|(_, _, keys)| keys).collect(),
    ))
}

/// `SELECT count(*)` of every linked table: the cost of touching every row once, the
/// baseline `flowkey bench readiness` measures against.
pub async fn count_linked_rows(db: &Db) -> Result<i64, MigrateError> {
    let mut rows = 0;
    for table in LINKED_TABLES {
        let sql = format!("SELECT count(*) FROM {}", table.name);
        let n: i64 = on_pool!(db, pool => sqlx::query_scalar(&sql).fetch_one(pool).await)?;
        rows += n;
    }
    Ok(rows)
}

/// `sessions` sessions as the old application writes them, one transaction each: the
/// session, its flow (`import_session_id`), an import and `records` raw records, all by
/// session key, in the tenant of an existing session.
/// For `flowkey bench readiness`; the rows stay.
pub async fn write_like_old_code(db: &Db, sessions: u32, records: u32) -> Result<(), MigrateError> {
    let engine = db.engine();
    let uuid = |n: usize| match engine {
        Engine::Postgres => format!("CAST(${n} AS uuid)"),
        Engine::Sqlite => format!("${n}"),
    };
    let now = match engine {
        Engine::Postgres => "now()",
        Engine::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    };
    let template = format!(
        "SELECT {}, {}, {} FROM data_import_sessions ORDER BY id LIMIT 1",
        as_text(engine, "client_account_id"),
        as_text(engine, "engagement_id"),
        as_text(engine, "created_by")
    );
    let (client, engagement, user): (String, String, String) =
        on_pool!(db, pool => sqlx::query_as(&template).fetch_optional(pool).await)?
            .ok_or(crate::migrate::flow::contract::ContractError::NothingToMeasure)?;
    let session_sql = format!(
        "INSERT INTO data_import_sessions (id, client_account_id, engagement_id, session_name, created_by, created_at) \
         VALUES ({}, {}, {}, 'bench old code', {}, {now})",
        uuid(1), uuid(2), uuid(3), uuid(4)
    );
    let flow_sql = format!(
        "INSERT INTO discovery_flows (id, flow_id, client_account_id, engagement_id, import_session_id, flow_name, created_at) \
         VALUES ({}, {}, {}, {}, {}, 'bench old code', {now})",
        uuid(1), uuid(2), uuid(3), uuid(4), uuid(5)
    );
    let import_sql = format!(
        "INSERT INTO data_imports (id, client_account_id, engagement_id, session_id, import_name, import_type, source_filename, imported_by) \
         VALUES ({}, {}, {}, {}, 'bench old code', 'cmdb', 'bench.csv', {})",
        uuid(1), uuid(2), uuid(3), uuid(4), uuid(5)
    );
    let raw_sql = format!(
        "INSERT INTO raw_import_records (id, data_import_id, client_account_id, engagement_id, session_id, row_number, raw_data) \
         VALUES ({}, {}, {}, {}, {}, $6, '{{\"hostname\": \"bench\"}}')",
        uuid(1), uuid(2), uuid(3), uuid(4), uuid(5)
    );
    for _ in 0..sessions {
        let session = uuid::Uuid::new_v4().to_string();
        let import = uuid::Uuid::new_v4().to_string();
        on_pool!(db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(&session_sql)
                .bind(&session).bind(&client).bind(&engagement).bind(&user)
                .execute(&mut *tx).await?;
            sqlx::query(&flow_sql)
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(&client).bind(&engagement).bind(&session)
                .execute(&mut *tx).await?;
            sqlx::query(&import_sql)
                .bind(&import).bind(&client).bind(&engagement).bind(&session).bind(&user)
                .execute(&mut *tx).await?;
            for row in 0..records {
                sqlx::query(&raw_sql)
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(&import).bind(&client).bind(&engagement).bind(&session)
                    .bind(i64::from(row) + 1)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
    }
    Ok(())
}
