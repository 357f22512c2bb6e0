//! Data imports: one uploaded file (`DataImport`) and its rows (`RawImportRecord`), keyed by
//! `flow_id` with the legacy `session_id` kept as a deprecated field. Creating an import also
//! creates its discovery flow and suggested field mappings, in one transaction; a CSV upload is
//! streamed (`upload`) in bounded memory.

mod create;
mod csv_rows;
mod delete;
mod error;
mod model;
mod read;
pub mod store;
mod upload;

pub use create::{
    create_import, rows_from_json, ImportCreated, ImportDetails, ImportSource, ImportStart,
    ImportWriter, NewImportRequest, MAX_FILENAME_CHARS, MAX_FILE_TYPE_CHARS, MAX_HEADER_CHARS,
    MAX_IMPORT_NAME_CHARS, MAX_IMPORT_TYPE_CHARS,
};
pub use csv_rows::{read_csv, BadRow, CsvError, CsvRows, CsvTotals, RowEncoder};
pub use delete::{delete_flow, delete_import, DeletedFlow, FlowDeletion};
pub use error::ImportsError;
pub use model::{DataImport, ImportFilter, RawImportRecord, Rows};
pub use read::{get_import, list_imports, list_records};
pub use upload::{
    read_csv_batches, stream_csv, CsvPiece, CsvRead, UploadError, BATCHES_IN_FLIGHT, BATCH_BYTES,
    BATCH_ROWS,
};
