//! Creating an import: in one transaction, the `data_imports` row, one raw record per row,
//! one suggested field mapping per column and the discovery flow that owns them all (and,
//! for the legacy v1 API, the upload session and its session→flow mapping).

use serde::Serialize;
use serde_json::Value;

use crate::db::text;
use crate::db::types::JsonText;
use crate::db::{Db, KeyColumns, Tx};
use crate::field_mappings::{self, suggest_mappings, SuggestedMapping};
use crate::flows::{self, NewFlow};
use crate::ids::{FlowId, ImportId, SessionId, TenantId};
use crate::imports::store::{self, NewImportRow};
use crate::imports::{ImportsError, Rows};
use crate::sessions;

/// Where the rows came from, recorded in `import_config.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportSource {
    JsonRows,
    CsvUpload,
    LegacyStoreImport,
}

impl ImportSource {
    fn as_str(&self) -> &'static str {
        match self {
            ImportSource::JsonRows => "v3_json",
            ImportSource::CsvUpload => "v3_csv_upload",
            ImportSource::LegacyStoreImport => "v1_store_import",
        }
    }
}

/// Everything needed to store one file.
#[derive(Debug, Clone)]
pub struct NewImportRequest {
    pub tenant: TenantId,
    pub rows: Rows,
    pub source: ImportSource,
    pub source_filename: String,
    pub file_size_bytes: Option<i64>,
    pub file_type: Option<String>,
    pub import_type: String,
    pub import_name: Option<String>,
    pub description: Option<String>,
    /// The importing user; flowkey's service user when `None`.
    pub user_id: Option<uuid::Uuid>,
    /// v1 only: the legacy session the upload belongs to. An unknown id becomes a new
    /// session (legacy clients made their own ids); a session of another tenant is refused.
    pub legacy_session: Option<SessionId>,
}

/// What a stored import answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImportCreated {
    pub import_id: ImportId,
    pub flow_id: FlowId,
    /// The legacy session, for v1 clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import_session_id: Option<SessionId>,
    pub record_count: u64,
    pub field_mapping_count: u64,
    pub flow_created: bool,
}

/// Longest file name: the flow is named "Discovery of " + the file name, in a
/// `varchar(255)` column (the v1 session's "upload " + file name is shorter).
pub const MAX_FILENAME_CHARS: usize = 255 - "Discovery of ".len();
/// `data_imports.import_type` is `varchar(50)`.
pub const MAX_IMPORT_TYPE_CHARS: usize = 50;
/// `data_imports.import_name` is `varchar(255)`.
pub const MAX_IMPORT_NAME_CHARS: usize = 255;
/// `data_imports.file_type` is `varchar(100)`.
pub const MAX_FILE_TYPE_CHARS: usize = 100;
/// A column header becomes `import_field_mappings.source_field`, `varchar(255)`.
pub const MAX_HEADER_CHARS: usize = 255;

/// Rows encoded and written at a time on the JSON paths (one multi-row statement each).
const JSON_ROWS_PER_BATCH: usize = 500;

/// Stores a file in one transaction; nothing is left behind when any part fails.
pub async fn create_import(
    db: &Db,
    keys: KeyColumns,
    request: NewImportRequest,
) -> Result<ImportCreated, ImportsError> {
    check_rows(&request.rows)?;
    let start = ImportStart {
        tenant: request.tenant,
        source: request.source,
        source_filename: request.source_filename,
        file_type: request.file_type,
        headers: request.rows.headers.clone(),
        description: request.description,
        user_id: request.user_id,
        legacy_session: request.legacy_session,
        details: ImportDetails {
            import_type: request.import_type,
            import_name: request.import_name,
            file_size_bytes: request.file_size_bytes,
        },
    };
    let details = start.details.clone();
    let mut writer = ImportWriter::begin(db, keys, start).await?;
    let mut batch = Vec::with_capacity(JSON_ROWS_PER_BATCH);
    for (chunk_index, chunk) in request.rows.rows.chunks(JSON_ROWS_PER_BATCH).enumerate() {
        batch.clear();
        for (offset, row) in chunk.iter().enumerate() {
            let text = serde_json::to_string(row).map_err(|err| ImportsError::RowNotEncodable {
                row_number: chunk_index * JSON_ROWS_PER_BATCH + offset + 1,
                message: err.to_string(),
            })?;
            batch.push(JsonText(text));
        }
        writer.write_rows(&batch).await?;
    }
    writer
        .write_suggestions(&suggest_mappings(&request.rows.headers, &request.rows.rows))
        .await?;
    writer.finish(details).await
}

/// Everything about an import known before its first row.
#[derive(Debug, Clone)]
pub struct ImportStart {
    pub tenant: TenantId,
    pub source: ImportSource,
    pub source_filename: String,
    pub file_type: Option<String>,
    /// Column headers in file order (kept in `import_config.columns`).
    pub headers: Vec<String>,
    pub description: Option<String>,
    /// The importing user; flowkey's service user when `None`.
    pub user_id: Option<uuid::Uuid>,
    /// v1 only: the legacy session (see [`NewImportRequest::legacy_session`]).
    pub legacy_session: Option<SessionId>,
    /// The values as known at the start; [`ImportWriter::finish`] writes the final ones.
    pub details: ImportDetails,
}

/// What may still be learnt after the rows (multipart fields may follow the file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportDetails {
    pub import_type: String,
    /// The file name when `None`.
    pub import_name: Option<String>,
    pub file_size_bytes: Option<i64>,
}

/// One import being written inside one write transaction: [`ImportWriter::begin`] creates
/// the flow (and legacy session) and the `data_imports` row, rows are written in batches as
/// they come, [`ImportWriter::finish`] records the totals and commits. Dropping a writer
/// unfinished rolls everything back.
#[derive(Debug)]
pub struct ImportWriter {
    tx: Tx<'static>,
    keys: KeyColumns,
    row: NewImportRow,
    created: ImportCreated,
    /// The size recorded when [`ImportWriter::finish`] is told none.
    pub(crate) file_size_bytes: Option<i64>,
}

impl ImportWriter {
    pub async fn begin(
        db: &Db,
        keys: KeyColumns,
        start: ImportStart,
    ) -> Result<Self, ImportsError> {
        check_headers(&start.headers)?;
        check_start(&start)?;
        let tenant = start.tenant;
        let mut tx = db.begin_write().await?;
        store::ensure_tenant_exists(&mut tx, tenant).await?;
        let user = store::importing_user(&mut tx, start.user_id).await?;
        let import_id = ImportId::new_v4();

        let (flow_id, flow_created) = match start.legacy_session {
            None => (FlowId::new_v4(), true),
            Some(session_id) => {
                if sessions::store::exists(&mut tx, tenant, session_id).await? {
                    match sessions::store::mapped_flow(&mut tx, tenant, session_id).await? {
                        Some(flow_id) => (flow_id, false),
                        None => (FlowId::new_v4(), true),
                    }
                } else if sessions::store::id_taken(&mut tx, session_id).await? {
                    return Err(ImportsError::SessionNotFound { session_id });
                } else {
                    sessions::store::insert(
                        &mut tx,
                        tenant,
                        session_id,
                        &start.source_filename,
                        user,
                    )
                    .await?;
                    (FlowId::new_v4(), true)
                }
            }
        };
        if flow_created {
            let flow = NewFlow {
                flow_id,
                tenant,
                user_id: Some(user.to_string()),
                import_session_id: start.legacy_session,
                data_import_id: Some(import_id),
                flow_name: format!("Discovery of {}", start.source_filename),
            };
            flows::store::insert(&mut tx, keys, &flow).await?;
            if let Some(session_id) = start.legacy_session {
                sessions::store::insert_mapping(
                    &mut tx,
                    tenant,
                    session_id,
                    flow_id,
                    "written_at_head",
                )
                .await?;
            }
        }

        let row = NewImportRow {
            id: import_id,
            tenant,
            flow_id,
            session_id: start.legacy_session,
            import_name: start
                .details
                .import_name
                .clone()
                .unwrap_or_else(|| start.source_filename.clone()),
            import_type: start.details.import_type.clone(),
            description: start.description.clone(),
            source_filename: start.source_filename.clone(),
            file_size_bytes: start.details.file_size_bytes,
            file_type: start.file_type.clone(),
            total_records: 0,
            import_config: import_config(&start),
            imported_by: user,
        };
        store::insert_import(&mut tx, keys, &row).await?;
        Ok(Self {
            tx,
            keys,
            file_size_bytes: row.file_size_bytes,
            row,
            created: ImportCreated {
                import_id,
                flow_id,
                import_session_id: start.legacy_session,
                record_count: 0,
                field_mapping_count: 0,
                flow_created,
            },
        })
    }

    /// Writes the next rows (each a JSON object's text), numbered on from the last batch.
    pub async fn write_rows(&mut self, rows: &[JsonText]) -> Result<(), ImportsError> {
        let first_row = self.created.record_count + 1;
        self.created.record_count +=
            store::insert_records(&mut self.tx, self.keys, &self.row, first_row, rows).await?;
        Ok(())
    }

    /// Writes one suggested field mapping per column.
    pub async fn write_suggestions(
        &mut self,
        suggestions: &[SuggestedMapping],
    ) -> Result<(), ImportsError> {
        self.created.field_mapping_count += field_mappings::store::insert_suggestions(
            &mut self.tx,
            self.row.id,
            self.row.flow_id,
            suggestions,
        )
        .await?;
        Ok(())
    }

    /// Rows written so far.
    pub fn record_count(&self) -> u64 {
        self.created.record_count
    }

    /// Records the final details (the size read, when `details` has none) and the row count,
    /// and commits.
    pub async fn finish(mut self, details: ImportDetails) -> Result<ImportCreated, ImportsError> {
        check_details(&details)?;
        if self.created.record_count == 0 {
            return Err(ImportsError::NoRows);
        }
        let totals = store::ImportTotals {
            import_name: details
                .import_name
                .unwrap_or_else(|| self.row.source_filename.clone()),
            import_type: details.import_type,
            file_size_bytes: details.file_size_bytes.or(self.file_size_bytes),
            total_records: i32::try_from(self.created.record_count).unwrap_or(i32::MAX),
        };
        store::complete_import(&mut self.tx, self.row.tenant, self.row.id, &totals).await?;
        self.tx.commit().await?;
        Ok(self.created)
    }
}

/// Turns a client's `file_data` (a list of `{header: value}` objects) into rows; headers are
/// the keys in first-seen order.
pub fn rows_from_json(file_data: &[Value]) -> Result<Rows, ImportsError> {
    let mut rows = Rows::default();
    for (index, value) in file_data.iter().enumerate() {
        let Value::Object(object) = value else {
            return Err(ImportsError::RowNotAnObject {
                row_number: index + 1,
            });
        };
        if object.is_empty() {
            return Err(ImportsError::EmptyRow {
                row_number: index + 1,
            });
        }
        for key in object.keys() {
            if !rows.headers.contains(key) {
                rows.headers.push(key.clone());
            }
        }
        rows.rows.push(object.clone());
    }
    check_rows(&rows)?;
    Ok(rows)
}

fn check_rows(rows: &Rows) -> Result<(), ImportsError> {
    if rows.rows.is_empty() {
        return Err(ImportsError::NoRows);
    }
    check_headers(&rows.headers)
}

fn check_headers(headers: &[String]) -> Result<(), ImportsError> {
    if headers.is_empty() {
        return Err(ImportsError::NoColumns);
    }
    for (index, header) in headers.iter().enumerate() {
        text::check(
            &format!("column header {}", index + 1),
            header,
            Some(MAX_HEADER_CHARS),
        )?;
        if headers[..index].contains(header) {
            return Err(ImportsError::DuplicateHeader {
                header: header.clone(),
            });
        }
    }
    Ok(())
}

/// Every text of an import fits its column (see [`text::check`]).
fn check_start(start: &ImportStart) -> Result<(), ImportsError> {
    text::check(
        "source_filename",
        &start.source_filename,
        Some(MAX_FILENAME_CHARS),
    )?;
    if let Some(file_type) = &start.file_type {
        text::check("file_type", file_type, Some(MAX_FILE_TYPE_CHARS))?;
    }
    if let Some(description) = &start.description {
        text::check("description", description, None)?;
    }
    check_details(&start.details)
}

fn check_details(details: &ImportDetails) -> Result<(), ImportsError> {
    text::check(
        "import_type",
        &details.import_type,
        Some(MAX_IMPORT_TYPE_CHARS),
    )?;
    if let Some(name) = &details.import_name {
        text::check("import_name", name, Some(MAX_IMPORT_NAME_CHARS))?;
    }
    Ok(())
}

fn import_config(start: &ImportStart) -> Value {
    let mut config = serde_json::json!({
        "source": start.source.as_str(),
        "columns": start.headers,
    });
    if let Some(session_id) = start.legacy_session {
        config["validation_session_id"] = Value::String(session_id.to_string());
    }
    config
}
