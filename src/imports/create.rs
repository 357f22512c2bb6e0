//! Creating an import: in one transaction, the `data_imports` row, one raw record per row,
//! one suggested field mapping per column and the discovery flow that owns them all (and,
//! for the legacy v1 API, the upload session and its session→flow mapping).

use serde::Serialize;
use serde_json::Value;

use crate::compat;
use crate::db::Db;
use crate::field_mappings::{self, suggest_mappings};
use crate::flows::{self, NewFlow};
use crate::ids::{FlowId, ImportId, SessionId, TenantId};
use crate::imports::store::{self, NewImportRow};
use crate::imports::{ImportsError, Rows};

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

/// Stores a file in one transaction; nothing is left behind when any part fails.
pub async fn create_import(
    db: &Db,
    request: NewImportRequest,
) -> Result<ImportCreated, ImportsError> {
    check_rows(&request.rows)?;
    let tenant = request.tenant;
    let mut tx = db.begin_write().await?;
    store::ensure_tenant_exists(&mut tx, tenant).await?;
    let user = store::importing_user(&mut tx, request.user_id).await?;
    let import_id = ImportId::new_v4();

    let (flow_id, flow_created) = match request.legacy_session {
        None => (FlowId::new_v4(), true),
        Some(session_id) => {
            if store::session_exists(&mut tx, tenant, session_id).await? {
                match compat::store::mapped_flow(&mut tx, tenant, session_id).await? {
                    Some(flow_id) => (flow_id, false),
                    None => (FlowId::new_v4(), true),
                }
            } else if store::session_id_taken(&mut tx, session_id).await? {
                return Err(ImportsError::SessionNotFound { session_id });
            } else {
                store::insert_session(&mut tx, tenant, session_id, &request.source_filename, user)
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
            import_session_id: request.legacy_session,
            data_import_id: Some(import_id),
            flow_name: format!("Discovery of {}", request.source_filename),
        };
        flows::store::insert(&mut tx, &flow).await?;
        if let Some(session_id) = request.legacy_session {
            compat::store::insert_mapping(&mut tx, session_id, flow_id, tenant, "written_at_head")
                .await?;
        }
    }

    let total_records = i32::try_from(request.rows.rows.len()).unwrap_or(i32::MAX);
    let row = NewImportRow {
        id: import_id,
        tenant,
        flow_id,
        session_id: request.legacy_session,
        import_name: request
            .import_name
            .clone()
            .unwrap_or_else(|| request.source_filename.clone()),
        import_type: request.import_type.clone(),
        description: request.description.clone(),
        source_filename: request.source_filename.clone(),
        file_size_bytes: request.file_size_bytes,
        file_type: request.file_type.clone(),
        total_records,
        import_config: import_config(&request),
        imported_by: user,
    };
    store::insert_import(&mut tx, &row).await?;
    let record_count = store::insert_records(&mut tx, &row, &request.rows.rows).await?;
    let suggestions = suggest_mappings(&request.rows);
    let field_mapping_count =
        field_mappings::store::insert_suggestions(&mut tx, import_id, flow_id, &suggestions)
            .await?;
    tx.commit().await?;
    Ok(ImportCreated {
        import_id,
        flow_id,
        import_session_id: request.legacy_session,
        record_count,
        field_mapping_count,
        flow_created,
    })
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
    if rows.headers.is_empty() {
        return Err(ImportsError::NoColumns);
    }
    for (index, header) in rows.headers.iter().enumerate() {
        if rows.headers[..index].contains(header) {
            return Err(ImportsError::DuplicateHeader {
                header: header.clone(),
            });
        }
    }
    Ok(())
}

fn import_config(request: &NewImportRequest) -> Value {
    let mut config = serde_json::json!({
        "source": request.source.as_str(),
        "columns": request.rows.headers,
    });
    if let Some(session_id) = request.legacy_session {
        config["validation_session_id"] = Value::String(session_id.to_string());
    }
    config
}
