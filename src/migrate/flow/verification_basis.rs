//! The delta's basis: the rows other rows' link checks read and whose old values no table
//! keeps (every flow's keys, every mapping row), as a full check saw them in the snapshot of
//! its link checks, stored beside its result (`verification_record`). The delta
//! (`verification_delta`) diffs it with the tables now to find the flows and sessions that
//! changed since, with their old and their new values.

use sqlx::Row;

use crate::db::{on_pool, on_tx, Db, Engine, Tx};
use crate::migrate::flow::tables::text_of;
use crate::migrate::flow::write_ledger;
use crate::migrate::MigrateError;

/// Flows and mapping rows above which no basis is stored (the delta is then never used).
const BASIS_ROWS_CAP: i64 = 250_000;
/// Rows per INSERT when the basis is stored (7 values each: within both engines' limits).
const BASIS_INSERT_CHUNK: usize = 500;

const CREATE: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS flowkey_delta_basis (verification_id bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS flowkey_delta_flows (id text PRIMARY KEY, flow_id text, \
     client_account_id text, engagement_id text, data_import_id text, import_session_id text, \
     created_at text)",
    "CREATE TABLE IF NOT EXISTS flowkey_delta_mapping (session_id text PRIMARY KEY, flow_id text, \
     client_account_id text, engagement_id text)",
];

/// The rows other rows' links depend on, as the full check saw them (all values as text).
#[derive(Debug, Clone, Default)]
pub struct Basis {
    flows: Vec<Vec<Option<String>>>,
    mapping: Vec<Vec<Option<String>>>,
}

/// A column as text, the same on both sides of the diff (SQLite may hold any type).
pub(crate) fn as_text(engine: Engine, column: &str) -> String {
    match engine {
        Engine::Postgres => text_of(engine, column),
        Engine::Sqlite => format!("CAST({column} AS TEXT)"),
    }
}

/// Every flow's keys, as text the same on both sides of the diff.
pub(crate) fn flows_select(engine: Engine) -> String {
    let created = match engine {
        Engine::Postgres => "CAST(extract(epoch FROM created_at) AS text)",
        Engine::Sqlite => "CAST(created_at AS TEXT)",
    };
    format!(
        "SELECT {id}, {flow}, {client}, {engagement}, {import}, {session}, {created} \
         FROM discovery_flows",
        id = as_text(engine, "id"),
        flow = as_text(engine, "flow_id"),
        client = as_text(engine, "client_account_id"),
        engagement = as_text(engine, "engagement_id"),
        import = as_text(engine, "data_import_id"),
        session = as_text(engine, "import_session_id"),
    )
}

pub(crate) fn mapping_select(engine: Engine) -> String {
    format!(
        "SELECT {session}, {flow}, {client}, {engagement} FROM session_flow_mapping",
        session = as_text(engine, "session_id"),
        flow = as_text(engine, "flow_id"),
        client = as_text(engine, "client_account_id"),
        engagement = as_text(engine, "engagement_id"),
    )
}

pub(crate) const BASIS_MAPPING: &str =
    "SELECT session_id, flow_id, client_account_id, engagement_id FROM flowkey_delta_mapping";

/// Whether readiness can use a delta at `revision` (the watermark's text: the revision, then
/// the book's stamp): only while the write ledger records.
pub fn ledger_records_at(revision: Option<&str>) -> bool {
    revision.and_then(|r| r.split(' ').next()) == Some(write_ledger::REVISION)
}

/// The basis, read in the caller's snapshot; `None` when the tables are too large for one to
/// pay (counted first, so a large table is never read whole).
pub(crate) async fn read_basis(tx: &mut Tx<'static>) -> Result<Option<Basis>, sqlx::Error> {
    read_basis_within(tx, BASIS_ROWS_CAP).await
}

/// [`read_basis`] with the cap given (tests give a small one).
async fn read_basis_within(
    tx: &mut Tx<'static>,
    rows_cap: i64,
) -> Result<Option<Basis>, sqlx::Error> {
    let engine = tx.engine();
    let rows: i64 = on_tx!(&mut *tx, conn => {
        sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM discovery_flows) + (SELECT count(*) FROM session_flow_mapping)",
        )
        .fetch_one(&mut **conn)
        .await?
    });
    if rows > rows_cap {
        return Ok(None);
    }
    let flows = read_text_rows(tx, &flows_select(engine), 7).await?;
    let mapping = read_text_rows(tx, &mapping_select(engine), 4).await?;
    Ok(Some(Basis { flows, mapping }))
}

async fn read_text_rows(
    tx: &mut Tx<'static>,
    sql: &str,
    width: usize,
) -> Result<Vec<Vec<Option<String>>>, sqlx::Error> {
    Ok(on_tx!(tx, conn => {
        sqlx::query(sql)
            .fetch_all(&mut **conn)
            .await?
            .into_iter()
            .map(|row| (0..width).map(|i| row.try_get::<Option<String>, _>(i)).collect())
            .collect::<Result<Vec<Vec<Option<String>>>, sqlx::Error>>()?
    }))
}

/// Stores `basis` as the one belonging to the stored verification `verification_id`,
/// replacing the last one (one transaction; on PostgreSQL one storer at a time).
pub async fn store_basis(db: &Db, verification_id: i64, basis: &Basis) -> Result<(), MigrateError> {
    on_pool!(db, pool => {
        for create in CREATE {
            sqlx::query(create).execute(pool).await?;
        }
    });
    let mut tx = db.begin_write().await?;
    // SQLite's write transaction excludes every other writer already.
    if let Tx::Postgres(conn) = &mut tx {
        sqlx::query("LOCK TABLE flowkey_delta_basis IN EXCLUSIVE MODE")
            .execute(&mut **conn)
            .await?;
    }
    on_tx!(&mut tx, conn => {
        for table in ["flowkey_delta_basis", "flowkey_delta_flows", "flowkey_delta_mapping"] {
            sqlx::query(&format!("DELETE FROM {table}")).execute(&mut **conn).await?;
        }
        for (table, columns, rows) in [
            (
                "flowkey_delta_flows",
                "id, flow_id, client_account_id, engagement_id, data_import_id, import_session_id, created_at",
                &basis.flows,
            ),
            (
                "flowkey_delta_mapping",
                "session_id, flow_id, client_account_id, engagement_id",
                &basis.mapping,
            ),
        ] {
            for chunk in rows.chunks(BASIS_INSERT_CHUNK) {
                let width = chunk[0].len();
                let values = (0..chunk.len())
                    .map(|row| {
                        let cells = (1..=width)
                            .map(|col| format!("${}", row * width + col))
                            .collect::<Vec<_>>()
                            .join(", ");
                        format!("({cells})")
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!("INSERT INTO {table} ({columns}) VALUES {values}");
                let mut insert = sqlx::query(&sql);
                for cell in chunk.iter().flatten() {
                    insert = insert.bind(cell.as_deref());
                }
                insert.execute(&mut **conn).await?;
            }
        }
        sqlx::query("INSERT INTO flowkey_delta_basis (verification_id) VALUES ($1)")
            .bind(verification_id)
            .execute(&mut **conn)
            .await?;
    });
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Above the cap the basis is not read at all (the count alone decides): a large
    /// database stores no basis, and its readiness checks in full.
    #[tokio::test]
    async fn above_the_cap_no_basis_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/basis.db", dir.path().display());
        let db = Db::connect(&url).await.unwrap();
        db.execute_plain(
            "CREATE TABLE discovery_flows (id TEXT); CREATE TABLE session_flow_mapping (id TEXT); \
             INSERT INTO discovery_flows VALUES ('a'), ('b'); INSERT INTO session_flow_mapping VALUES ('c');",
        )
        .await
        .unwrap();
        let mut tx = db.begin_read_snapshot().await.unwrap();
        assert!(read_basis_within(&mut tx, 2).await.unwrap().is_none());
        db.close().await;
    }
}
