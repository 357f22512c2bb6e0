//! Writing the bridge revision: `bridge.py` with this flowkey's version and revision filled in,
//! chained after the folder's head.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::versions::revisions;
use super::AlembicError;

/// The Python template; `{name}` placeholders are replaced one by one (the template's own
/// Python braces are left alone).
const TEMPLATE: &str = include_str!("bridge.py");

/// What the caller asks for.
#[derive(Debug, Clone)]
pub struct RevisionRequest<'a> {
    /// The Alembic `versions/` folder the file goes into.
    pub versions_dir: &'a Path,
    /// The Alembic revision to chain after; `None`: the folder's single head (or none, for an
    /// empty folder).
    pub down_revision: Option<&'a str>,
    /// The new revision's id; `None`: 12 hex digits, as Alembic makes them.
    pub revision_id: Option<&'a str>,
    /// The revision message (also the file name's tail).
    pub message: &'a str,
    /// The flowkey binary the file runs when `FLOWKEY_BIN` is not set; `None`: `flowkey` on
    /// PATH.
    pub flowkey_bin: Option<&'a str>,
    /// The flowkey revision `upgrade()` reaches.
    pub flowkey_revision: &'a str,
    /// Written into the file's docstring.
    pub create_date: &'a str,
}

/// The file written.
#[derive(Debug, Clone)]
pub struct BridgeRevision {
    pub path: PathBuf,
    pub revision: String,
    pub down_revision: Option<String>,
}

/// Writes the bridge revision into the versions folder; refuses, writing nothing, when the
/// chain point is ambiguous or unknown or the id is taken.
pub fn write_revision(request: &RevisionRequest<'_>) -> Result<BridgeRevision, AlembicError> {
    let existing = revisions(request.versions_dir)?;
    let down_revision = match request.down_revision {
        Some(named) => {
            if !existing.iter().any(|revision| revision.id == named) {
                let known: Vec<&str> = existing.iter().map(|r| r.id.as_str()).collect();
                return Err(AlembicError::UnknownDownRevision(
                    named.to_owned(),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    },
                ));
            }
            Some(named.to_owned())
        }
        None => {
            let heads = super::heads(request.versions_dir)?;
            match heads.as_slice() {
                [] => None,
                [head] => Some(head.clone()),
                _ => return Err(AlembicError::SeveralHeads(heads)),
            }
        }
    };
    let revision = match request.revision_id {
        Some(id) => checked_name("revision id", id)?.to_owned(),
        None => uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
    };
    if let Some(taken) = existing.iter().find(|r| r.id == revision) {
        return Err(AlembicError::RevisionIdTaken(revision, taken.path.clone()));
    }
    let slug: String = request
        .message
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let path = request
        .versions_dir
        .join(format!("{revision}_{}.py", slug.trim_matches('_')));
    let text = render(request, &revision, down_revision.as_deref());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => AlembicError::Exists { path: path.clone() },
            _ => AlembicError::Write {
                path: path.clone(),
                source,
            },
        })?;
    file.write_all(text.as_bytes())
        .map_err(|source| AlembicError::Write {
            path: path.clone(),
            source,
        })?;
    Ok(BridgeRevision {
        path,
        revision,
        down_revision,
    })
}

fn checked_name<'a>(what: &'static str, value: &'a str) -> Result<&'a str, AlembicError> {
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(value)
    } else {
        Err(AlembicError::InvalidName {
            what,
            value: value.to_owned(),
        })
    }
}

/// A Python string literal for any text (JSON's escapes are valid Python ones).
fn python_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

fn render(request: &RevisionRequest<'_>, revision: &str, down_revision: Option<&str>) -> String {
    // The message goes into a docstring: no quotes that could end it.
    let message: String = request
        .message
        .replace('"', "'")
        .replace('\\', "/")
        .chars()
        .filter(|c| !matches!(c, '{' | '}'))
        .collect();
    [
        ("{message}", message.as_str()),
        ("{revision}", revision),
        ("{down_revision_doc}", down_revision.unwrap_or("")),
        (
            "{down_revision}",
            &down_revision.map_or_else(|| "None".to_owned(), python_string),
        ),
        ("{create_date}", request.create_date),
        ("{flowkey_version}", env!("CARGO_PKG_VERSION")),
        ("{flowkey_revision}", request.flowkey_revision),
        (
            "{flowkey_bin}",
            &request
                .flowkey_bin
                .map_or_else(|| "None".to_owned(), python_string),
        ),
    ]
    .iter()
    .fold(TEMPLATE.to_owned(), |text, (placeholder, value)| {
        text.replace(placeholder, value)
    })
}

/// The `include_object` filter module for the Alembic project's env.py, from flowkey's own
/// description of what it adds (the linked tables' `flow_id`, its tables, the columns it
/// changes). Its own tables are `flowkey_*` and `session_flow_mapping`.
pub fn include_object_module() -> String {
    use crate::migrate::flow::linked::{DELETION_AUDIT_TABLE, LINKED_TABLES};
    let added: Vec<String> = LINKED_TABLES
        .iter()
        .map(|table| format!("{}: (\"flow_id\",)", python_string(table.name)))
        .collect();
    include_str!("include_object.py")
        .replace("{flowkey_version}", env!("CARGO_PKG_VERSION"))
        .replace(
            "{owned_tables}",
            &format!("{{{}}}", python_string("session_flow_mapping")),
        )
        .replace("{added_columns}", &format!("{{{}}}", added.join(", ")))
        .replace(
            "{owned_indexes}",
            &format!(
                "{{{}}}",
                python_string(crate::migrate::revisions::flow_mapping::DATA_IMPORT_LOOKUP_INDEX)
            ),
        )
        .replace(
            "{changed_columns}",
            &format!(
                "{{({}, \"session_id\")}}",
                python_string(DELETION_AUDIT_TABLE)
            ),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
        let request = RevisionRequest {
            versions_dir: Path::new("."),
            down_revision: None,
            revision_id: None,
            message: "migrate \"session\" to flow_id",
            flowkey_bin: Some("/opt/flowkey \"bin\""),
            flowkey_revision: "service_state",
            create_date: "2026-12-04",
        };
        let text = render(&request, "abc", Some("base1"));
        for placeholder in [
            "{message}",
            "{revision}",
            "{down_revision",
            "{create_date}",
            "{flowkey_version}",
            "{flowkey_revision}",
            "{flowkey_bin}",
        ] {
            assert!(
                !text.contains(placeholder),
                "{placeholder} left in the file"
            );
        }
        assert!(text.contains("down_revision = \"base1\""));
        assert!(text.contains("FLOWKEY_BIN = \"/opt/flowkey \\\"bin\\\"\""));
        assert!(text.contains("migrate 'session' to flow_id"));
    }
}
