//! Everything that can stop a migration run, each variant named for its diagnosis.

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("unknown revision {target:?}; known: {known}")]
    UnknownTarget { target: String, known: String },
    #[error("step {step:?} of revision {revision:?} failed: {message}")]
    StepFailed {
        revision: String,
        step: String,
        message: String,
    },
    #[error(transparent)]
    Flow(#[from] crate::migrate::flow::FlowMigrationError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}
