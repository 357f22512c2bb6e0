//! The legacy-write signal: a row written with a session key and no `flow_id`, which only old
//! code does (new code writes `flow_id`; the dual-write triggers fill the session). The
//! contract's gate waits until no such write has been seen for a quiet period, since after the
//! contract old code writing `session_id` fails.
//!
//! Its own small triggers, beside the dual-write triggers (whose templates are released and
//! stay as they are), one pair per linked table with a session path. Each legacy write appends
//! one narrow row to `flowkey_legacy_writes` (table, instant): an append, not a per-table
//! counter, because a counter row would be updated by every legacy writer and its row lock,
//! held to commit, would serialize them all. The count and the last instant are aggregates
//! over the log (`legacy_writes`). The trigger's `WHEN` clause keeps it free for new code: the
//! function runs only for a legacy write.
//!
//! PostgreSQL: `BEFORE` row triggers fire in name order, so `flowkey_a_legacy_write_*` sees the
//! row as the client wrote it, before `flowkey_dual_write` fills `flow_id`. SQLite: an `AFTER`
//! trigger's `NEW` is the row as inserted, before the dual-write trigger's `UPDATE`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::Row;

use crate::db::{on_pool, Db, Engine};
use crate::migrate::flow::contract::ContractError;
use crate::migrate::flow::linked::{LinkedTable, LINKED_TABLES};
use crate::migrate::{MigrateError, StepSql};

/// The linked tables whose rows carry a session key (the signal's tables).
pub fn session_tables() -> impl Iterator<Item = &'static LinkedTable> + Clone {
    LINKED_TABLES
        .iter()
        .filter(|table| table.rule().session.is_some())
}

pub const INSTALL: StepSql = StepSql::Generated(install_sql);
pub const REMOVE: StepSql = StepSql::Generated(remove_sql);

const LOG_TABLE_POSTGRES: &str = "\
CREATE TABLE IF NOT EXISTS flowkey_legacy_writes (
    table_name  varchar(63) NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE OR REPLACE FUNCTION flowkey_legacy_write_signal() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO flowkey_legacy_writes (table_name) VALUES (TG_TABLE_NAME);
    RETURN NEW;
END
$$;
";

const LOG_TABLE_SQLITE: &str = "\
SELECT count(*) FROM sqlite_master;
CREATE TABLE IF NOT EXISTS flowkey_legacy_writes (
    table_name  TEXT NOT NULL,
    seen_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
";

/// The log table, the function and every table's signal triggers.
pub fn install_sql(engine: Engine) -> String {
    let mut out = String::from(match engine {
        Engine::Postgres => LOG_TABLE_POSTGRES,
        Engine::Sqlite => LOG_TABLE_SQLITE,
    });
    for table in session_tables() {
        out.push_str(&triggers_sql(engine, table));
    }
    out
}

/// The signal triggers of one table (the log table and function exist already).
pub fn triggers_sql(engine: Engine, table: &LinkedTable) -> String {
    let t = table.name;
    let insert_when = "NEW.session_id IS NOT NULL AND NEW.flow_id IS NULL";
    let mut out = String::new();
    match engine {
        Engine::Postgres => {
            let update_when = "NEW.session_id IS NOT NULL \
                AND NEW.session_id IS DISTINCT FROM OLD.session_id \
                AND NEW.flow_id IS NOT DISTINCT FROM OLD.flow_id";
            for (suffix, event, when) in [
                ("insert", "INSERT", insert_when),
                ("update", "UPDATE", update_when),
            ] {
                let _ = write!(
                    out,
                    "DROP TRIGGER IF EXISTS flowkey_a_legacy_write_{suffix} ON {t};
CREATE TRIGGER flowkey_a_legacy_write_{suffix} BEFORE {event} ON {t}
    FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION flowkey_legacy_write_signal();
"
                );
            }
        }
        Engine::Sqlite => {
            let update_when = "NEW.session_id IS NOT NULL \
                AND NEW.session_id IS NOT OLD.session_id \
                AND NEW.flow_id IS OLD.flow_id";
            for (suffix, event, when) in [
                ("insert", "INSERT", insert_when),
                ("update", "UPDATE", update_when),
            ] {
                let _ = write!(
                    out,
                    "DROP TRIGGER IF EXISTS flowkey_lw_{t}_{suffix};
CREATE TRIGGER flowkey_lw_{t}_{suffix} AFTER {event} ON {t}
WHEN {when}
BEGIN
    INSERT INTO flowkey_legacy_writes (table_name) VALUES ('{t}'); END;
"
                );
            }
        }
    }
    out
}

/// Drops one table's signal triggers.
pub fn drop_triggers_sql(engine: Engine, table: &LinkedTable) -> String {
    let t = table.name;
    ["insert", "update"]
        .iter()
        .map(|suffix| match engine {
            Engine::Postgres => {
                format!("DROP TRIGGER IF EXISTS flowkey_a_legacy_write_{suffix} ON {t};\n")
            }
            Engine::Sqlite => format!("DROP TRIGGER IF EXISTS flowkey_lw_{t}_{suffix};\n"),
        })
        .collect()
}

/// The way back: the triggers and the function go; the log is flowkey's own and stays.
pub fn remove_sql(engine: Engine) -> String {
    let mut out = String::new();
    if engine == Engine::Sqlite {
        out.push_str("SELECT count(*) FROM sqlite_master;\n");
    }
    for table in session_tables() {
        out.push_str(&drop_triggers_sql(engine, table));
    }
    if engine == Engine::Postgres {
        out.push_str("DROP FUNCTION IF EXISTS flowkey_legacy_write_signal();\n");
    }
    out
}

/// Legacy writes seen on one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LegacyWrites {
    pub table: String,
    pub writes: i64,
    /// The last one, as stored (UTC, ISO-8601).
    pub last_seen: Option<String>,
    /// Whole seconds since the last one, by the database's clock.
    pub seconds_since_last: Option<i64>,
}

/// Legacy writes per table with a session key (every such table listed, zero included).
/// Reads only; a database without the log (before `legacy_write_signal`) answers `None`.
pub async fn legacy_writes(db: &Db) -> Result<Option<Vec<LegacyWrites>>, MigrateError> {
    let exists_sql = match db.engine() {
        Engine::Postgres => "SELECT count(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'flowkey_legacy_writes'",
        Engine::Sqlite => {
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'flowkey_legacy_writes'"
        }
    };
    let exists: i64 = on_pool!(db, pool => sqlx::query_scalar(exists_sql).fetch_one(pool).await)?;
    if exists == 0 {
        return Ok(None);
    }
    let sql = match db.engine() {
        Engine::Postgres => {
            "SELECT table_name::text, count(*), \
             to_char(max(seen_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
             floor(extract(epoch FROM clock_timestamp() - max(seen_at)))::bigint \
             FROM flowkey_legacy_writes GROUP BY table_name"
        }
        Engine::Sqlite => {
            "SELECT table_name, count(*), max(seen_at), \
             CAST((julianday('now') - julianday(max(seen_at))) * 86400 AS INTEGER) \
             FROM flowkey_legacy_writes GROUP BY table_name"
        }
    };
    let rows: Vec<(String, i64, Option<String>, Option<i64>)> = on_pool!(db, pool => {
        sqlx::query(sql)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    Ok(Some(
        session_tables()
            .map(|table| {
                let seen = rows.iter().find(|row| row.0 == table.name);
                LegacyWrites {
                    table: table.name.to_owned(),
                    writes: seen.map_or(0, |row| row.1),
                    last_seen: seen.and_then(|row| row.2.clone()),
                    seconds_since_last: seen.and_then(|row| row.3),
                }
            })
            .collect(),
    ))
}

/// What the signal costs an old-code write: the same single-row INSERTs (session key, no
/// flow) timed with the dual-write trigger alone and with the signal added, interleaved in
/// rounds, each round in a transaction that is rolled back (nothing is kept).
#[derive(Debug, Clone, Serialize)]
pub struct SignalCost {
    pub table: &'static str,
    pub rows_per_round: u32,
    pub rounds: u32,
    /// Best round, microseconds per INSERT.
    pub dual_write_only_us: f64,
    pub with_signal_us: f64,
    /// `with_signal_us / dual_write_only_us`.
    pub ratio: f64,
}

/// Measures [`SignalCost`] on `assets` of a database at `legacy_write_signal` or later with at
/// least one mapped session. Everything runs in transactions that are rolled back.
pub async fn measure_signal_cost(
    db: &Db,
    rows_per_round: u32,
    rounds: u32,
) -> Result<SignalCost, MigrateError> {
    let table = "assets";
    let without_signal = match db.engine() {
        Engine::Postgres => {
            "ALTER TABLE assets DISABLE TRIGGER flowkey_a_legacy_write_insert".to_owned()
        }
        Engine::Sqlite => "DROP TRIGGER flowkey_lw_assets_insert".to_owned(),
    };
    let best = old_code_insert_cost(db, rows_per_round, rounds, &without_signal).await?;
    Ok(SignalCost {
        table,
        rows_per_round,
        rounds,
        dual_write_only_us: best[0],
        with_signal_us: best[1],
        ratio: crate::measure::ratio(best[1], best[0]),
    })
}

/// The best round's microseconds per old-code INSERT into `assets` (session key, no flow)
/// `[without, with]` a trigger, which `without_trigger` (a statement in the round's
/// transaction, rolled back with it) disables or drops: interleaved rounds, every round
/// rolled back. Needs a mapped session. The legacy-write signal's and the write ledger's cost.
pub(crate) async fn old_code_insert_cost(
    db: &Db,
    rows_per_round: u32,
    rounds: u32,
    without_trigger: &str,
) -> Result<[f64; 2], MigrateError> {
    let pick = "SELECT CAST(s.id AS TEXT), CAST(s.client_account_id AS TEXT), \
                CAST(s.engagement_id AS TEXT) FROM data_import_sessions s \
                JOIN session_flow_mapping m ON m.session_id = s.id \
                ORDER BY s.id LIMIT 1";
    let (session, client, engagement): (String, String, String) =
        on_pool!(db, pool => sqlx::query_as(pick).fetch_optional(pool).await)?
            .ok_or(ContractError::NothingToMeasure)?;
    let insert = match db.engine() {
        Engine::Postgres => "INSERT INTO assets (id, client_account_id, engagement_id, session_id, name, asset_type) \
             VALUES (gen_random_uuid(), CAST($1 AS uuid), CAST($2 AS uuid), CAST($3 AS uuid), 'bench', 'server')",
        Engine::Sqlite => "INSERT INTO assets (id, client_account_id, engagement_id, session_id, name, asset_type) \
             VALUES (lower(hex(randomblob(16))), $1, $2, $3, 'bench', 'server')",
    };
    let mut best = [f64::MAX, f64::MAX];
    for _ in 0..rounds {
        for (variant, slot) in best.iter_mut().enumerate() {
            let elapsed: Duration = on_pool!(db, pool => {
                let mut tx = pool.begin().await?;
                if variant == 0 {
                    sqlx::query(without_trigger).execute(&mut *tx).await?;
                }
                let started = Instant::now();
                for _ in 0..rows_per_round {
                    sqlx::query(insert)
                        .bind(&client)
                        .bind(&engagement)
                        .bind(&session)
                        .execute(&mut *tx)
                        .await?;
                }
                let elapsed = started.elapsed();
                tx.rollback().await?;
                elapsed
            });
            let per_row = elapsed.as_secs_f64() * 1e6 / f64::from(rows_per_round.max(1));
            *slot = slot.min(per_row);
        }
    }
    Ok(best)
}
