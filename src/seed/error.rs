//! Everything that can stop a seed run.

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(
        "the database has part of the legacy schema (has {present}; misses {missing}): \
         refusing to add to it"
    )]
    PartialLegacySchema { present: String, missing: String },
    #[error("oddity rate {name} is {value}, but a rate must be between 0 and 1")]
    InvalidRate { name: &'static str, value: String },
    #[error("cannot create the legacy schema: {0}")]
    Schema(#[from] crate::migrate::MigrateError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}
