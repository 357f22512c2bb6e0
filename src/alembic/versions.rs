//! Reading an Alembic `versions/` folder the way Alembic does, without Python: each `*.py`
//! file declares `revision = "…"` and `down_revision = None | "…" | ("…", "…")`; the heads are
//! the revisions no other revision names as its down revision.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::AlembicError;

/// One revision file of the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlembicRevision {
    pub id: String,
    pub down_revisions: Vec<String>,
    pub path: PathBuf,
}

/// Every revision declared in the folder (files that declare none, such as `__init__.py`,
/// are passed over, as Alembic passes them over).
pub fn revisions(folder: &Path) -> Result<Vec<AlembicRevision>, AlembicError> {
    let entries = std::fs::read_dir(folder).map_err(|source| AlembicError::ReadFolder {
        path: folder.to_path_buf(),
        source,
    })?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| AlembicError::ReadFolder {
            path: folder.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("py") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|source| AlembicError::ReadFile {
            path: path.clone(),
            source,
        })?;
        if let Some(id) = assigned(&text, "revision").and_then(|value| quoted(value).pop()) {
            let down_revisions = assigned(&text, "down_revision")
                .map(quoted)
                .unwrap_or_default();
            found.push(AlembicRevision {
                id,
                down_revisions,
                path,
            });
        }
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(found)
}

/// The heads of the folder, sorted: revisions that no other revision revises.
pub fn heads(folder: &Path) -> Result<Vec<String>, AlembicError> {
    let all = revisions(folder)?;
    let revised: BTreeSet<&str> = all
        .iter()
        .flat_map(|revision| revision.down_revisions.iter().map(String::as_str))
        .collect();
    Ok(all
        .iter()
        .filter(|revision| !revised.contains(revision.id.as_str()))
        .map(|revision| revision.id.clone())
        .collect())
}

/// The right-hand side of a top-level `name = …` or `name: type = …` assignment, up to the
/// end of the line (or of the parenthesised tuple it opens).
fn assigned<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let rest = rest.trim_start();
        let rest = match rest.strip_prefix(':') {
            // An annotation: `revision: str = "…"`.
            Some(annotated) => match annotated.find('=') {
                Some(equals) => &annotated[equals..],
                None => continue,
            },
            None => rest,
        };
        let Some(value) = rest.strip_prefix('=') else {
            continue;
        };
        let value_start = start + (line.len() - value.len());
        let value = &text[value_start..];
        let end = if value.trim_start().starts_with('(') {
            value.find(')').map_or(value.len(), |close| close + 1)
        } else {
            value.find('\n').unwrap_or(value.len())
        };
        return Some(&value[..end]);
    }
    None
}

/// The string literals of a value: none for `None`, one for `"abc"`, several for a tuple.
fn quoted(value: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find(['"', '\'']) {
        let quote = rest.as_bytes()[open] as char;
        let after = &rest[open + 1..];
        let Some(close) = after.find(quote) else {
            break;
        };
        found.push(after[..close].to_owned());
        rest = &after[close + 1..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_forms_alembic_writes() {
        let plain = "revision = 'abc123'\ndown_revision = None\n";
        assert_eq!(
            assigned(plain, "revision").map(quoted),
            Some(vec!["abc123".into()])
        );
        assert_eq!(assigned(plain, "down_revision").map(quoted), Some(vec![]));
        let typed = "revision: str = \"b2\"\ndown_revision: Union[str, None] = \"a1\"\n";
        assert_eq!(
            assigned(typed, "revision").map(quoted),
            Some(vec!["b2".into()])
        );
        assert_eq!(
            assigned(typed, "down_revision").map(quoted),
            Some(vec!["a1".into()])
        );
        let merge = "revision = 'm'\ndown_revision = (\n    'a',\n    'b',\n)\n";
        assert_eq!(
            assigned(merge, "down_revision").map(quoted),
            Some(vec!["a".into(), "b".into()])
        );
        // A docstring's `Revision ID:` line and other names are not assignments.
        let doc = "\"\"\"Revision ID: x\nRevises: y\n\"\"\"\nrevisions = 'no'\n";
        assert_eq!(assigned(doc, "revision"), None);
    }
}
