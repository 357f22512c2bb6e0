//! Whether a client's text fits the column it lands in, the same on both engines: at most
//! so many characters (Unicode scalar values, as PostgreSQL's `varchar(n)` counts them; SQLite
//! would store any length) and no NUL character (PostgreSQL cannot store one in text; SQLite
//! would). Checked at the boundary, so a bad value is a 422 naming its field, never a
//! database error.

/// Why a text cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("{field} contains a NUL character, which cannot be stored")]
    Nul { field: String },
    #[error("{field} is {chars} characters long; at most {max} fit")]
    TooLong {
        field: String,
        chars: usize,
        max: usize,
    },
}

impl TextError {
    /// The field the error names.
    pub fn field(&self) -> &str {
        match self {
            TextError::Nul { field } | TextError::TooLong { field, .. } => field,
        }
    }
}

/// `text` fits a column of at most `max_chars` characters (`None`: unbounded `text`).
pub fn check(field: &str, text: &str, max_chars: Option<usize>) -> Result<(), TextError> {
    if text.contains('\0') {
        return Err(TextError::Nul {
            field: field.to_owned(),
        });
    }
    if let Some(max) = max_chars {
        let chars = text.chars().count();
        if chars > max {
            return Err(TextError::TooLong {
                field: field.to_owned(),
                chars,
                max,
            });
        }
    }
    Ok(())
}

/// The JSON Schema `pattern` of a text without NUL characters (for the OpenAPI document).
pub const NO_NUL_PATTERN: &str = "^[^\\u0000]*$";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_not_bytes_are_counted_and_nul_is_refused() {
        assert_eq!(check("f", "ééé", Some(3)), Ok(()));
        assert!(matches!(
            check("f", "éééé", Some(3)),
            Err(TextError::TooLong {
                chars: 4,
                max: 3,
                ..
            })
        ));
        assert_eq!(check("name", "a\0b", None).unwrap_err().field(), "name");
        assert_eq!(check("f", "", Some(0)), Ok(()));
    }
}
