//! SQL for `data_imports` and `raw_import_records`. Every query names the tenant: a row of
//! another tenant is not found (the rule is `db::tenancy`'s). In every query of this file
//! `$1` is the client account and `$2` the engagement.

use serde_json::Value;
use sqlx::types::Json;

use crate::db::tenancy;
use crate::db::types::{DbTime, DbUuid, JsonText};
use crate::db::{on_tx, KeyColumns, Tx};
use crate::ids::{FlowId, ImportId, SessionId, TenantId};
use crate::imports::{DataImport, ImportFilter, ImportsError, RawImportRecord};
use crate::migrate::flow::contract;
use crate::paging::{Cursor, Page, PageRequest};

const IMPORT_COLUMNS: &str = "di.id, di.flow_id, di.session_id, di.client_account_id, \
     di.engagement_id, di.import_name, di.import_type, di.description, di.source_filename, \
     di.file_size_bytes, di.file_type, di.status, di.progress_percentage, di.total_records, \
     di.processed_records, di.failed_records, di.import_config, di.created_at, di.updated_at, \
     di.completed_at";

/// The visibility rule for `data_imports di`, the tenant bound as `$1`, `$2`.
fn import_in_tenant() -> String {
    tenancy::import_visible("di", "$1", "$2")
}

/// `data_imports` as read with `keys` (after the contract, with its session computed:
/// `contract::served_table`).
fn imports_table(tx: &Tx<'_>, keys: KeyColumns) -> String {
    contract::served_table(keys, tx.engine(), "data_imports")
}

/// `raw_import_records` as read with `keys`.
fn records_table(tx: &Tx<'_>, keys: KeyColumns) -> String {
    contract::served_table(keys, tx.engine(), "raw_import_records")
}

const RECORD_COLUMNS: &str = "r.id, r.data_import_id, r.flow_id, r.session_id, r.row_number, \
     r.raw_data, r.is_processed, r.is_valid, r.created_at";

/// Rows written per INSERT statement: 8 binds a row stays far below both engines' limits.
const RECORDS_PER_STATEMENT: usize = 500;

/// The user flowkey records as `imported_by` when a request names none.
pub const SERVICE_USER_ID: uuid::Uuid =
    uuid::Uuid::from_u128(0xf10e_0000_0000_4000_8000_0000_0000_0001);
const SERVICE_USER_EMAIL: &str = "flowkey-service@flowkey.invalid";

/// What a new `data_imports` row holds.
#[derive(Debug, Clone)]
pub struct NewImportRow {
    pub id: ImportId,
    pub tenant: TenantId,
    pub flow_id: FlowId,
    pub session_id: Option<SessionId>,
    pub import_name: String,
    pub import_type: String,
    pub description: Option<String>,
    pub source_filename: String,
    pub file_size_bytes: Option<i64>,
    pub file_type: Option<String>,
    pub total_records: i32,
    pub import_config: Value,
    pub imported_by: uuid::Uuid,
}

/// How many rows a deletion removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct DeletedRows {
    pub imports: u64,
    pub records: u64,
    pub field_mappings: u64,
}

/// Fails with [`ImportsError::TenantNotFound`] unless the engagement exists and belongs to
/// the client account.
pub async fn ensure_tenant_exists(tx: &mut Tx<'_>, tenant: TenantId) -> Result<(), ImportsError> {
    let found: Option<i32> = on_tx!(tx, conn => {
        sqlx::query_scalar("SELECT 1 FROM engagements WHERE id = $1 AND client_account_id = $2")
            .bind(tenant.engagement_id)
            .bind(tenant.client_account_id)
            .fetch_optional(&mut **conn)
            .await?
    });
    found.map(|_| ()).ok_or(ImportsError::TenantNotFound)
}

/// The user to record as `imported_by`: the one named (which must exist), or flowkey's own
/// service user, created on first use.
pub async fn importing_user(
    tx: &mut Tx<'_>,
    named: Option<uuid::Uuid>,
) -> Result<uuid::Uuid, ImportsError> {
    if let Some(user_id) = named {
        let found: Option<i32> = on_tx!(tx, conn => {
            sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1")
                .bind(DbUuid(user_id))
                .fetch_optional(&mut **conn)
                .await?
        });
        return found
            .map(|_| user_id)
            .ok_or(ImportsError::UserNotFound { user_id });
    }
    on_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO users (id, email, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(DbUuid(SERVICE_USER_ID))
        .bind(SERVICE_USER_EMAIL)
        .bind(DbTime::now())
        .execute(&mut **conn)
        .await?
        .rows_affected()
    });
    Ok(SERVICE_USER_ID)
}

/// Writes the import's row. After the contract the row has no session column: its session
/// is its flow's by the mapping, and one the mapping does not give back is archived.
pub async fn insert_import(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    row: &NewImportRow,
) -> Result<(), ImportsError> {
    let now = DbTime::now();
    let sql = match keys {
        KeyColumns::Expanded => {
            "INSERT INTO data_imports (id, client_account_id, engagement_id, session_id, flow_id, \
             import_name, import_type, description, source_filename, file_size_bytes, file_type, \
             status, progress_percentage, total_records, processed_records, failed_records, \
             import_config, imported_by, started_at, completed_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'completed', 100.0, $12, $12, 0, \
             $13, $14, $15, $15, $15, $15)"
        }
        KeyColumns::Contracted => {
            "INSERT INTO data_imports (id, client_account_id, engagement_id, flow_id, \
             import_name, import_type, description, source_filename, file_size_bytes, file_type, \
             status, progress_percentage, total_records, processed_records, failed_records, \
             import_config, imported_by, started_at, completed_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'completed', 100.0, $11, $11, 0, \
             $12, $13, $14, $14, $14, $14)"
        }
    };
    on_tx!(tx, conn => {
        let query = sqlx::query(sql)
            .bind(row.id)
            .bind(row.tenant.client_account_id)
            .bind(row.tenant.engagement_id);
        let query = match keys {
            KeyColumns::Expanded => query.bind(row.session_id),
            KeyColumns::Contracted => query,
        };
        query
        .bind(row.flow_id)
        .bind(&row.import_name)
        .bind(&row.import_type)
        .bind(&row.description)
        .bind(&row.source_filename)
        .bind(row.file_size_bytes)
        .bind(&row.file_type)
        .bind(row.total_records)
        .bind(Json(&row.import_config))
        .bind(DbUuid(row.imported_by))
        .bind(now)
        .execute(&mut **conn)
        .await?
        .rows_affected()
    });
    if let Some(session) = row.session_id {
        let rows = ArchivedRows::Import(row.id);
        archive_session(tx, keys, "data_imports", rows, session).await?;
    }
    Ok(())
}

/// Rows written by one statement whose session the contract's archive may have to keep.
#[derive(Debug, Clone, Copy)]
enum ArchivedRows {
    /// The import's own row.
    Import(ImportId),
    /// The import's records numbered `first..end`.
    Records(ImportId, i32, i32),
}

/// After the contract, archives `session` for `rows` of `table` where the mapping would not
/// give it back (a v1 import into a flow that has a smaller session); nothing before.
async fn archive_session(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    table: &'static str,
    rows: ArchivedRows,
    session: SessionId,
) -> Result<(), ImportsError> {
    let (predicate, import, first, end) = match rows {
        ArchivedRows::Import(id) => ("r.id = $2 AND $3 = $4", id, 0, 0),
        ArchivedRows::Records(id, first, end) => (
            "r.data_import_id = $2 AND r.row_number >= $3 AND r.row_number < $4",
            id,
            first,
            end,
        ),
    };
    let Some(sql) = contract::archive_written_session(keys, tx.engine(), table, predicate) else {
        return Ok(());
    };
    on_tx!(tx, conn => {
        sqlx::query(&sql)
            .bind(session)
            .bind(import)
            .bind(first)
            .bind(end)
            .execute(&mut **conn)
            .await?
            .rows_affected()
    });
    Ok(())
}

/// Writes one raw record per row, numbered from `first_row` (1-based), in multi-row
/// statements. Each row is already its JSON object's text, bound as it is.
pub async fn insert_records(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    import: &NewImportRow,
    first_row: u64,
    rows: &[JsonText],
) -> Result<u64, ImportsError> {
    let now = DbTime::now();
    let mut written = 0;
    for (chunk_index, chunk) in rows.chunks(RECORDS_PER_STATEMENT).enumerate() {
        let chunk_first = first_row + (chunk_index * RECORDS_PER_STATEMENT) as u64;
        written += on_tx!(tx, conn => {
            let mut builder = sqlx::QueryBuilder::new(match keys {
                KeyColumns::Expanded => {
                    "INSERT INTO raw_import_records (id, data_import_id, client_account_id, \
                     engagement_id, session_id, flow_id, row_number, raw_data, is_processed, \
                     is_valid, created_at) "
                }
                KeyColumns::Contracted => {
                    "INSERT INTO raw_import_records (id, data_import_id, client_account_id, \
                     engagement_id, flow_id, row_number, raw_data, is_processed, is_valid, \
                     created_at) "
                }
            });
            builder.push_values(chunk.iter().enumerate(), |mut values, (offset, row)| {
                let row_number = i32::try_from(chunk_first + offset as u64).unwrap_or(i32::MAX);
                values
                    .push_bind(DbUuid::new_v4())
                    .push_bind(import.id)
                    .push_bind(import.tenant.client_account_id)
                    .push_bind(import.tenant.engagement_id);
                if keys == KeyColumns::Expanded {
                    values.push_bind(import.session_id);
                }
                values
                    .push_bind(import.flow_id)
                    .push_bind(row_number)
                    .push_bind(row)
                    .push_bind(false)
                    .push_bind(true)
                    .push_bind(now);
            });
            builder.build().execute(&mut **conn).await?.rows_affected()
        });
    }
    if let Some(session) = import.session_id {
        // One statement for the batch: its rows are the import's numbered from `first_row`.
        let first = i32::try_from(first_row).unwrap_or(i32::MAX);
        let end = i32::try_from(first_row + rows.len() as u64).unwrap_or(i32::MAX);
        let rows = ArchivedRows::Records(import.id, first, end);
        archive_session(tx, keys, "raw_import_records", rows, session).await?;
    }
    Ok(written)
}

/// What an import's row says once all its rows are written.
#[derive(Debug, Clone)]
pub struct ImportTotals {
    pub import_name: String,
    pub import_type: String,
    pub file_size_bytes: Option<i64>,
    pub total_records: i32,
}

/// Records the final name, type, size and row count of an import of the tenant written by
/// this transaction.
pub async fn complete_import(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    import_id: ImportId,
    totals: &ImportTotals,
) -> Result<(), ImportsError> {
    on_tx!(tx, conn => {
        sqlx::query(
            "UPDATE data_imports SET import_name = $2, import_type = $3, file_size_bytes = $4, \
             total_records = $5, processed_records = $5 \
             WHERE id = $1 AND client_account_id = $6 AND engagement_id = $7",
        )
        .bind(import_id)
        .bind(&totals.import_name)
        .bind(&totals.import_type)
        .bind(totals.file_size_bytes)
        .bind(totals.total_records)
        .bind(tenant.client_account_id)
        .bind(tenant.engagement_id)
        .execute(&mut **conn)
        .await?
        .rows_affected()
    });
    Ok(())
}

pub async fn get(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    import_id: ImportId,
) -> Result<DataImport, ImportsError> {
    let in_tenant = import_in_tenant();
    let imports = imports_table(tx, keys);
    let sql = format!("SELECT {IMPORT_COLUMNS} FROM {imports} di WHERE di.id = $3 AND {in_tenant}");
    let found: Option<DataImport> = on_tx!(tx, conn => {
        sqlx::query_as(&sql)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(import_id)
            .fetch_optional(&mut **conn)
            .await?
    });
    found.ok_or(ImportsError::NotFound { import_id })
}

/// The tenant's imports, by id, filtered by flow and status.
pub async fn list(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    filter: &ImportFilter,
    page: &PageRequest,
) -> Result<Page<DataImport>, ImportsError> {
    let in_tenant = import_in_tenant();
    let imports = imports_table(tx, keys);
    let sql = format!(
        "SELECT {IMPORT_COLUMNS} FROM {imports} di WHERE {in_tenant} \
         AND ($3 IS NULL OR di.flow_id = $3) AND ($4 IS NULL OR di.status = $4) \
         AND di.id > $5 ORDER BY di.id LIMIT $6"
    );
    let (_, after) = page.after_key();
    let rows: Vec<DataImport> = on_tx!(tx, conn => {
        sqlx::query_as(&sql)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(filter.flow_id)
            .bind(&filter.status)
            .bind(DbUuid(after))
            .bind(page.fetch_limit())
            .fetch_all(&mut **conn)
            .await?
    });
    Ok(Page::from_rows(rows, page, |row| Cursor {
        rank: 0,
        id: row.id.as_uuid(),
    }))
}

/// The newest import of a flow (read through `flow_id`).
pub async fn latest_for_flow(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    flow_id: FlowId,
) -> Result<Option<DataImport>, ImportsError> {
    latest_by_key(tx, keys, tenant, "flow_id", flow_id.as_uuid()).await
}

/// The newest import of a legacy session (read through `session_id`, as before flow ids).
pub async fn latest_for_session(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    session_id: SessionId,
) -> Result<Option<DataImport>, ImportsError> {
    latest_by_key(tx, keys, tenant, "session_id", session_id.as_uuid()).await
}

/// The tenant's newest import whose `key_column` (`flow_id` or `session_id`, never a client's
/// text) equals `key`.
async fn latest_by_key(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    key_column: &'static str,
    key: uuid::Uuid,
) -> Result<Option<DataImport>, ImportsError> {
    let in_tenant = import_in_tenant();
    let imports = imports_table(tx, keys);
    let sql = format!(
        "SELECT {IMPORT_COLUMNS} FROM {imports} di WHERE di.{key_column} = $3 AND {in_tenant} \
         ORDER BY di.created_at DESC, di.id DESC LIMIT 1"
    );
    Ok(on_tx!(tx, conn => {
        sqlx::query_as(&sql)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(DbUuid(key))
            .fetch_optional(&mut **conn)
            .await?
    }))
}

/// An import's records in row order. Fails with `NotFound` when the import is not the
/// tenant's.
pub async fn list_records(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    import_id: ImportId,
    page: &PageRequest,
) -> Result<Page<RawImportRecord>, ImportsError> {
    get(tx, keys, tenant, import_id).await?;
    records_of_import(tx, keys, tenant, import_id, None, page).await
}

/// The records of a legacy session's newest import, read through the legacy key (`session_id`
/// on the records), in row order; `None` when the session has no import in the tenant.
pub async fn list_records_for_session(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    session_id: SessionId,
    page: &PageRequest,
) -> Result<Option<Page<RawImportRecord>>, ImportsError> {
    let Some(import) = latest_for_session(tx, keys, tenant, session_id).await? else {
        return Ok(None);
    };
    let key = Some(("session_id", session_id.as_uuid()));
    let rows = records_of_import(tx, keys, tenant, import.id, key, page).await?;
    Ok(Some(rows))
}

/// The records of a flow's newest import, read through `flow_id`, in row order; `None` when
/// the flow has no import in the tenant.
pub async fn list_records_for_flow(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    flow_id: FlowId,
    page: &PageRequest,
) -> Result<Option<Page<RawImportRecord>>, ImportsError> {
    let Some(import) = latest_for_flow(tx, keys, tenant, flow_id).await? else {
        return Ok(None);
    };
    let key = Some(("flow_id", flow_id.as_uuid()));
    let rows = records_of_import(tx, keys, tenant, import.id, key, page).await?;
    Ok(Some(rows))
}

/// How the records of a session's newest import read through `session_id` differ from
/// those of its flow's newest import read through `flow_id`, counted over the whole import
/// (a shadow read's pages shift when one side has more rows): the categories of
/// docs/rollout.md, "Shadow", and what none explains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordDifference {
    /// Both keys lead to the same newest import.
    pub same_import: bool,
    /// Records with no session that the flow key reaches through their import.
    pub without_session: i64,
    /// Any other record on one side only.
    pub unexplained: i64,
}

/// [`RecordDifference`] of a session and the flow it resolves to, within the tenant.
pub async fn record_difference(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    session_id: SessionId,
    flow_id: FlowId,
) -> Result<RecordDifference, ImportsError> {
    let by_session = latest_for_session(tx, keys, tenant, session_id).await?;
    let by_flow = latest_for_flow(tx, keys, tenant, flow_id).await?;
    let import = match (by_session, by_flow) {
        (Some(a), Some(b)) if a.id == b.id => a.id,
        _ => return Ok(RecordDifference::default()),
    };
    let visible = tenancy::record_visible("r", "$1", "$2");
    let records = records_table(tx, keys);
    // Both reads apply the same visibility rule, and the migration links a visible record of
    // the session to the session's flow (the tenant rule is the visibility rule): a record
    // of the session missing from the flow side is never explained.
    let sql = format!(
        "SELECT \
           CAST(COALESCE(SUM(CASE WHEN r.session_id IS NULL AND r.flow_id = $4 THEN 1 ELSE 0 END), 0) AS BIGINT), \
           CAST(COALESCE(SUM(CASE WHEN (r.session_id = $3 AND (r.flow_id IS NULL OR r.flow_id <> $4)) \
                OR (r.flow_id = $4 AND r.session_id IS NOT NULL AND r.session_id <> $3) \
                THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM {records} r WHERE r.data_import_id = $5 AND {visible}"
    );
    let (without_session, unexplained): (i64, i64) = on_tx!(tx, conn => {
        sqlx::query_as(&sql)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(session_id)
            .bind(flow_id)
            .bind(import)
            .fetch_one(&mut **conn)
            .await?
    });
    Ok(RecordDifference {
        same_import: true,
        without_session,
        unexplained,
    })
}

/// One page of the records of a visible import that the tenant may see, in row order; with
/// `key`, only those whose `key.0` column (`session_id` or `flow_id`, never a client's text)
/// equals `key.1`.
async fn records_of_import(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    import_id: ImportId,
    key: Option<(&'static str, uuid::Uuid)>,
    page: &PageRequest,
) -> Result<Page<RawImportRecord>, ImportsError> {
    let visible = tenancy::record_visible("r", "$1", "$2");
    let (key_column, key) = match key {
        Some((column, value)) => (column, Some(DbUuid(value))),
        None => ("data_import_id", None),
    };
    let records = records_table(tx, keys);
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM {records} r WHERE r.data_import_id = $3 \
         AND ($4 IS NULL OR r.{key_column} = $4) AND {visible} \
         AND (r.row_number > $5 OR (r.row_number = $5 AND r.id > $6)) \
         ORDER BY r.row_number, r.id LIMIT $7"
    );
    let (after_row, after_id) = page.after_key();
    let rows: Vec<RawImportRecord> = on_tx!(tx, conn => {
        sqlx::query_as(&sql)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(import_id)
            .bind(key)
            .bind(after_row)
            .bind(DbUuid(after_id))
            .bind(page.fetch_limit())
            .fetch_all(&mut **conn)
            .await?
    });
    Ok(record_page(rows, page))
}

fn record_page(rows: Vec<RawImportRecord>, page: &PageRequest) -> Page<RawImportRecord> {
    Page::from_rows(rows, page, |row| Cursor {
        rank: i64::from(row.row_number),
        id: row.id,
    })
}

/// Deletes one import of the tenant with its records and field mappings.
pub async fn delete(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    import_id: ImportId,
) -> Result<(DataImport, DeletedRows), ImportsError> {
    let import = get(tx, keys, tenant, import_id).await?;
    let mut deleted = DeletedRows::default();
    on_tx!(tx, conn => {
        deleted.records = sqlx::query("DELETE FROM raw_import_records WHERE data_import_id = $1")
            .bind(import_id)
            .execute(&mut **conn)
            .await?
            .rows_affected();
        deleted.field_mappings =
            sqlx::query("DELETE FROM import_field_mappings WHERE data_import_id = $1")
                .bind(import_id)
                .execute(&mut **conn)
                .await?
                .rows_affected();
        deleted.imports = sqlx::query("DELETE FROM data_imports WHERE id = $1")
            .bind(import_id)
            .execute(&mut **conn)
            .await
            .map_err(|err| still_referenced(err, import_id))?
            .rows_affected();
    });
    Ok((import, deleted))
}

/// Deletes the tenant's imports of a flow (the caller checked the flow is the tenant's) with
/// their records and mappings, and the tenant's records that name the flow directly. A row
/// of another tenant naming the flow stays, so the flow's own deletion fails on its foreign
/// key instead of removing it.
pub async fn delete_for_flow(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    flow_id: FlowId,
) -> Result<DeletedRows, ImportsError> {
    let in_tenant = import_in_tenant();
    let imports_read = imports_table(tx, keys);
    let records = match keys {
        KeyColumns::Expanded => {
            let own_record = tenancy::record_visible("raw_import_records", "$1", "$2");
            format!(
                "DELETE FROM raw_import_records WHERE ({own_record}) AND (flow_id = $3 \
                 OR data_import_id IN (SELECT di.id FROM data_imports di WHERE di.flow_id = $3 \
                 AND {in_tenant}))"
            )
        }
        // The visibility rule reads the record's session, which only the table as served
        // has: the same rule, through its key.
        KeyColumns::Contracted => {
            let own_record = tenancy::record_visible("r", "$1", "$2");
            let records_read = records_table(tx, keys);
            format!(
                "DELETE FROM raw_import_records WHERE id IN (SELECT r.id FROM {records_read} r \
                 WHERE ({own_record}) AND (r.flow_id = $3 \
                 OR r.data_import_id IN (SELECT di.id FROM {imports_read} di \
                 WHERE di.flow_id = $3 AND {in_tenant})))"
            )
        }
    };
    let mappings = format!(
        "DELETE FROM import_field_mappings WHERE flow_id = $3 \
         OR data_import_id IN (SELECT di.id FROM {imports_read} di WHERE di.flow_id = $3 \
         AND {in_tenant})"
    );
    let imports = format!(
        "DELETE FROM data_imports WHERE id IN (SELECT di.id FROM {imports_read} di \
         WHERE di.flow_id = $3 AND {in_tenant})"
    );
    let mut deleted = DeletedRows::default();
    on_tx!(tx, conn => {
        deleted.records = sqlx::query(&records)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(flow_id)
            .execute(&mut **conn)
            .await?
            .rows_affected();
        deleted.field_mappings = sqlx::query(&mappings)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(flow_id)
            .execute(&mut **conn)
            .await?
            .rows_affected();
        deleted.imports = sqlx::query(&imports)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(flow_id)
            .execute(&mut **conn)
            .await?
            .rows_affected();
    });
    Ok(deleted)
}

fn still_referenced(err: sqlx::Error, import_id: ImportId) -> ImportsError {
    match &err {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            ImportsError::StillReferenced { import_id }
        }
        _ => ImportsError::Database(err),
    }
}
