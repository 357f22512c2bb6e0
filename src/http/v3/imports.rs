use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::db::text as db_text;
use crate::http::extract::{flow_id_param, ApiJson, ApiPath, ApiQuery, Tenant, UserHeader};
use crate::http::v3::PageQuery;
use crate::http::{envelope, ok, ApiError, AppState, Envelope, ErrorEnvelope};
use crate::ids::ImportId;
use crate::imports::store::DeletedRows;
use crate::imports::{
    self, rows_from_json, DataImport, ImportCreated, ImportDetails, ImportFilter, ImportSource,
    ImportStart, ImportWriter, NewImportRequest, RawImportRecord, UploadError, MAX_FILENAME_CHARS,
    MAX_FILE_TYPE_CHARS, MAX_IMPORT_NAME_CHARS, MAX_IMPORT_TYPE_CHARS,
};
use crate::paging::Page;

#[derive(Debug, Default, Deserialize, ToSchema)]
pub(crate) struct FileMetadata {
    /// The file's name (the flow is named "Discovery of " + it, in 255 characters).
    #[schema(max_length = 242, pattern = "^[^\\u0000]*$")]
    pub filename: Option<String>,
    /// The file's size in bytes (a whole number; `1.0` is taken as `1`, as JSON Schema does).
    #[serde(default, deserialize_with = "whole_number")]
    pub size: Option<i64>,
    /// The file's media type.
    #[serde(rename = "type")]
    #[schema(max_length = 100, pattern = "^[^\\u0000]*$")]
    pub file_type: Option<String>,
}

/// A whole number, also when written with a zero fraction (`30930.0`): JSON Schema's
/// `integer` counts it as one, so a client the document allows is not refused.
fn whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Some(whole) = number.as_i64() {
        return Ok(Some(whole));
    }
    match number.as_f64() {
        // The bounds are exact in f64; a value between them with no fraction converts exactly.
        Some(value)
            if value.fract() == 0.0
                && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&value) =>
        {
            Ok(Some(value as i64))
        }
        _ => Err(serde::de::Error::custom(format!(
            "{number} is not a whole number of bytes"
        ))),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct CreateImportBody {
    /// The rows, each an object `{header: value}`.
    #[schema(schema_with = crate::http::schemas::file_data)]
    pub file_data: Vec<Value>,
    #[serde(default)]
    pub metadata: FileMetadata,
    /// `cmdb` when absent or blank.
    #[schema(max_length = 50, pattern = "^[^\\u0000]*$")]
    pub import_type: Option<String>,
    /// The file name when absent.
    #[schema(max_length = 255, pattern = "^[^\\u0000]*$")]
    pub import_name: Option<String>,
    #[schema(pattern = "^[^\\u0000]*$")]
    pub description: Option<String>,
}

/// Stores JSON rows: import, records, suggested mappings and a discovery flow, at once.
#[utoipa::path(post, path = "/api/v3/data-import/imports", tag = "v3 data import",
    params(Tenant, UserHeader),
    request_body = CreateImportBody,
    responses(
        (status = 201, description = "import, records, mappings and flow created", body = Envelope<ImportCreated>),
        (status = 400, description = "`malformed_body` (not JSON) or malformed tenant headers", body = ErrorEnvelope),
        (status = 404, description = "`tenant_not_found`: no such engagement under this client account; `user_not_found`: no user with the `X-User-Id` given", body = ErrorEnvelope),
        (status = 413, description = "body too large", body = ErrorEnvelope),
        (status = 422, description = "`invalid_file_data` (rows unusable), `invalid_text` (a text too long for its column or holding NUL; `details.field` names it), `invalid_body` (JSON of the wrong shape)", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn create_import(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    UserHeader(user): UserHeader,
    ApiJson(body): ApiJson<CreateImportBody>,
) -> Result<Response, ApiError> {
    let rows = rows_from_json(&body.file_data)?;
    let request = NewImportRequest {
        tenant,
        rows,
        source: ImportSource::JsonRows,
        source_filename: bounded(
            "metadata.filename",
            body.metadata.filename,
            "upload.json",
            MAX_FILENAME_CHARS,
        )?,
        file_size_bytes: body.metadata.size,
        file_type: Some(bounded(
            "metadata.type",
            body.metadata.file_type,
            "application/json",
            MAX_FILE_TYPE_CHARS,
        )?),
        import_type: bounded(
            "import_type",
            body.import_type,
            "cmdb",
            MAX_IMPORT_TYPE_CHARS,
        )?,
        import_name: optional_text("import_name", body.import_name, Some(MAX_IMPORT_NAME_CHARS))?,
        description: optional_text("description", body.description, None)?,
        user_id: user,
        legacy_session: None,
    };
    let created = imports::create_import(&state.db, state.keys(), request).await?;
    Ok(envelope(StatusCode::CREATED, created))
}

/// Stores an uploaded CSV file (multipart field `file`; optional fields `import_type`,
/// `import_name`, before or after the file). The file is streamed: rows are read and written
/// as they arrive, in one transaction, so memory does not grow with the file.
#[utoipa::path(post, path = "/api/v3/data-import/imports/upload", tag = "v3 data import",
    params(Tenant, UserHeader),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "import created from the CSV", body = Envelope<ImportCreated>),
        (status = 400, description = "not a multipart upload, or no `file` field", body = ErrorEnvelope),
        (status = 404, description = "`tenant_not_found`: no such engagement under this client account; `user_not_found`: no user with the `X-User-Id` given", body = ErrorEnvelope),
        (status = 413, description = "file too large", body = ErrorEnvelope),
        (status = 422, description = "`invalid_csv` (bad rows, listed with their line numbers in `details.bad_rows`), `invalid_file_data`, `invalid_text` (a file name, type, name or column header too long or holding NUL)", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn upload_csv(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    UserHeader(user): UserHeader,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    refuse_declared_oversize(&headers, state.config.max_upload_bytes)?;
    let mut multipart = multipart
        .map_err(|rejection| ApiError::bad_request("malformed_upload", rejection.body_text()))?;
    let mut written: Option<ImportWriter> = None;
    let mut import_type = None;
    let mut import_name = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            "file" => {
                if written.is_some() {
                    return Err(ApiError::bad_request(
                        "malformed_upload",
                        "multipart field `file` appears twice",
                    ));
                }
                let filename = bounded(
                    "file name",
                    field.file_name().map(str::to_owned),
                    "upload.csv",
                    MAX_FILENAME_CHARS,
                )?;
                let start = ImportStart {
                    tenant,
                    source: ImportSource::CsvUpload,
                    source_filename: filename,
                    file_type: Some("text/csv".to_owned()),
                    headers: Vec::new(),
                    description: None,
                    user_id: user,
                    legacy_session: None,
                    details: ImportDetails {
                        import_type: bounded(
                            "import_type",
                            import_type.clone(),
                            "cmdb",
                            MAX_IMPORT_TYPE_CHARS,
                        )?,
                        import_name: import_name.clone(),
                        file_size_bytes: None,
                    },
                };
                let writer = imports::stream_csv(&state.db, state.keys(), start, field)
                    .await
                    .map_err(|err| match err {
                        UploadError::Body(err) => multipart_error(err),
                        UploadError::Csv(err) => err.into(),
                        UploadError::Imports(err) => err.into(),
                        UploadError::ReaderFailed(cause) => ApiError::internal(cause),
                    })?;
                written = Some(writer);
            }
            "import_type" => {
                let text = small_text(field).await?;
                optional_text(
                    "import_type",
                    Some(text.clone()),
                    Some(MAX_IMPORT_TYPE_CHARS),
                )?;
                import_type = Some(text);
            }
            "import_name" => {
                let text = small_text(field).await?;
                import_name =
                    optional_text("import_name", Some(text), Some(MAX_IMPORT_NAME_CHARS))?;
            }
            _ => {}
        }
    }
    let writer = written.ok_or_else(|| {
        ApiError::bad_request("malformed_upload", "multipart field `file` is required")
    })?;
    let details = ImportDetails {
        import_type: bounded("import_type", import_type, "cmdb", MAX_IMPORT_TYPE_CHARS)?,
        import_name,
        file_size_bytes: None,
    };
    let created = writer.finish(details).await?;
    Ok(envelope(StatusCode::CREATED, created))
}

/// A body that says in advance it is larger than the limit is refused before any of it is
/// read (a body without a length is cut at the limit while it streams).
fn refuse_declared_oversize(headers: &HeaderMap, limit: usize) -> Result<(), ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the upload is {length} bytes; at most {limit} are accepted"),
        )),
        _ => Ok(()),
    }
}

/// Longest text field of an upload read (longer ones are refused without reading them all).
const MAX_TEXT_FIELD: usize = 4 * 1024;

/// A small text field of a multipart upload (a name or a type).
async fn small_text(mut field: axum::extract::multipart::Field<'_>) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if bytes.len() + chunk.len() > MAX_TEXT_FIELD {
            return Err(too_long());
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "a name or type is not valid UTF-8",
        )
    })
}

fn too_long() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_text",
        format!("a multipart text field is longer than {MAX_TEXT_FIELD} bytes"),
    )
}

fn multipart_error(err: axum::extract::multipart::MultipartError) -> ApiError {
    let status = err.status();
    let status = if status.is_server_error() {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "payload_too_large"
    } else {
        "malformed_upload"
    };
    ApiError::new(status, code, err.body_text())
}

/// A client's text (trimmed) or, when absent or blank, a default; refused with 422
/// `invalid_text` naming `field` when it holds a NUL or more than `max_chars` characters.
pub(crate) fn bounded(
    field: &str,
    text: Option<String>,
    default: &str,
    max_chars: usize,
) -> Result<String, ApiError> {
    Ok(optional_text(field, text, Some(max_chars))?
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| default.to_owned()))
}

/// A client's optional text, refused with 422 `invalid_text` naming `field` when it does not
/// fit its column (see `db::text`).
pub(crate) fn optional_text(
    field: &str,
    text: Option<String>,
    max_chars: Option<usize>,
) -> Result<Option<String>, ApiError> {
    if let Some(text) = &text {
        db_text::check(field, text, max_chars)?;
    }
    Ok(text)
}

/// `status` columns are `varchar(20)`: a longer filter can match nothing, and is refused.
pub(crate) const MAX_STATUS_CHARS: usize = 20;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListImportsQuery {
    /// Only the imports of this flow.
    #[param(value_type = Option<uuid::Uuid>)]
    pub flow_id: Option<String>,
    /// Only imports with this status.
    #[param(max_length = 20, pattern = "^[^\\u0000]*$")]
    pub status: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    pub page: PageQuery,
}

#[utoipa::path(get, path = "/api/v3/data-import/imports", tag = "v3 data import",
    params(Tenant, ListImportsQuery, PageQuery),
    responses(
        (status = 200, description = "one page of the tenant's imports", body = Envelope<Page<DataImport>>),
        (status = 400, description = "missing or malformed tenant headers, `flow_id`, `cursor` or `limit`", body = ErrorEnvelope),
        (status = 422, description = "`invalid_text`: `status` longer than 20 characters or holding NUL", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn list_imports(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(query): ApiQuery<ListImportsQuery>,
) -> Result<Response, ApiError> {
    let page = query.page.page()?;
    let filter = ImportFilter {
        flow_id: query.flow_id.as_deref().map(flow_id_param).transpose()?,
        status: optional_text("status", query.status, Some(MAX_STATUS_CHARS))?,
    };
    Ok(ok(imports::list_imports(
        &state.db,
        state.keys(),
        tenant,
        &filter,
        &page,
    )
    .await?))
}

#[utoipa::path(get, path = "/api/v3/data-import/imports/{import_id}", tag = "v3 data import",
    params(Tenant, ("import_id" = uuid::Uuid, Path, description = "The import's id.")),
    responses(
        (status = 200, description = "the import", body = Envelope<DataImport>),
        (status = 400, description = "missing or malformed tenant headers or import id", body = ErrorEnvelope),
        (status = 404, description = "no such import in this tenant", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn get_import(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(import_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let import_id = ImportId::parse(&import_id)?;
    Ok(ok(imports::get_import(
        &state.db,
        state.keys(),
        tenant,
        import_id,
    )
    .await?))
}

#[utoipa::path(get, path = "/api/v3/data-import/imports/{import_id}/records", tag = "v3 data import",
    params(Tenant, ("import_id" = uuid::Uuid, Path, description = "The import's id."), PageQuery),
    responses(
        (status = 200, description = "one page of raw records in row order", body = Envelope<Page<RawImportRecord>>),
        (status = 400, description = "missing or malformed tenant headers or import id", body = ErrorEnvelope),
        (status = 404, description = "no such import in this tenant", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn list_records(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(import_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let import_id = ImportId::parse(&import_id)?;
    let page = query.page()?;
    Ok(ok(imports::list_records(
        &state.db,
        state.keys(),
        tenant,
        import_id,
        &page,
    )
    .await?))
}

#[utoipa::path(delete, path = "/api/v3/data-import/imports/{import_id}", tag = "v3 data import",
    params(Tenant, ("import_id" = uuid::Uuid, Path, description = "The import's id.")),
    responses(
        (status = 200, description = "import, records and mappings deleted", body = Envelope<ImportDeleted>),
        (status = 400, description = "missing or malformed tenant headers or import id", body = ErrorEnvelope),
        (status = 404, description = "no such import in this tenant", body = ErrorEnvelope),
        (status = 409, description = "`still_referenced`: other rows still name the import", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn delete_import(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(import_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let import_id = ImportId::parse(&import_id)?;
    let deleted = state.compat.delete_import(tenant, import_id).await?;
    Ok(ok(ImportDeleted { import_id, deleted }))
}

/// What `DELETE …/imports/{import_id}` answers.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ImportDeleted {
    pub import_id: ImportId,
    pub deleted: DeletedRows,
}

/// The multipart form of `POST …/imports/upload` (documentation only: the handler reads the
/// fields as they stream in).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct UploadForm {
    /// The CSV file: a header line, then one row per line. Its file name is at most 242
    /// characters; each column header at most 255.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Recorded as `import_type` (`cmdb` when absent or blank).
    #[schema(max_length = 50, pattern = "^[^\\u0000]*$")]
    import_type: Option<String>,
    #[schema(max_length = 255, pattern = "^[^\\u0000]*$")]
    import_name: Option<String>,
}
