use std::path::PathBuf;

/// Why a bridge revision could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AlembicError {
    #[error("cannot read the Alembic versions folder {path}: {source}")]
    ReadFolder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the Alembic revision file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the Alembic versions folder has {} heads ({}): name the one to chain after with \
         --down-revision",
        .0.len(),
        .0.join(", ")
    )]
    SeveralHeads(Vec<String>),
    #[error("revision {0} is not in the Alembic versions folder; its revisions: {1}")]
    UnknownDownRevision(String, String),
    #[error("revision id {0} is taken by {1}")]
    RevisionIdTaken(String, PathBuf),
    #[error(
        "invalid {what} {value:?}: use letters, digits and underscores (Alembic writes it into \
         Python source and a file name)"
    )]
    InvalidName { what: &'static str, value: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} exists already: nothing was written")]
    Exists { path: PathBuf },
}
