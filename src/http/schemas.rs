//! Request schemas as strict as the validation behind them, for the OpenAPI document: a
//! request the document allows is one the server accepts (ids in the forms they parse from,
//! texts as long as their columns, the rows of a file as the import takes them).

use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;

/// The flag's value as the admin API takes it.
pub(crate) fn flag_value() -> impl Into<RefOr<Schema>> {
    let schema = serde_json::json!({
        "type": "string",
        "enum": ["off", "shadow", "on"],
        "example": "shadow",
    });
    serde_json::from_value::<Schema>(schema).unwrap_or_default()
}

/// `file_data`: at least one row, each an object with at least one field, whose names fit
/// `import_field_mappings.source_field` (255 characters, no NUL).
pub(crate) fn file_data() -> impl Into<RefOr<Schema>> {
    let max_header = crate::imports::MAX_HEADER_CHARS;
    let schema = serde_json::json!({
        "type": "array",
        "minItems": 1,
        "description": "The rows, each an object `{header: value}` with at least one field; \
            the headers (every key of every row, in first-seen order) are the columns, each \
            at most 255 characters and without NUL.",
        "items": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {
                "type": "string",
                "maxLength": max_header,
                "pattern": crate::db::text::NO_NUL_PATTERN,
            },
            "additionalProperties": true,
        },
    });
    serde_json::from_value::<Schema>(schema).unwrap_or_default()
}
