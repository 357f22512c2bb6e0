//! Data imports: one uploaded file (`DataImport`) and its rows (`RawImportRecord`), keyed by
//! `flow_id` with the legacy `session_id` kept as a deprecated field. Creating an import also
//! creates its discovery flow and suggested field mappings, in one transaction.

mod create;
mod csv_rows;
mod error;
mod model;
pub mod store;

pub use create::{create_import, rows_from_json, ImportCreated, ImportSource, NewImportRequest};
pub use csv_rows::{read_csv, BadRow, CsvError};
pub use error::ImportsError;
pub use model::{DataImport, ImportFilter, RawImportRecord, Rows};
