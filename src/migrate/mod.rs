//! Schema changes: the revision runner, the revisions themselves, and the session→flow
//! migration they carry out. Only this module issues DDL.

pub mod adopt;
pub mod audit;
pub mod checksum;
mod dollar_quotes;
mod error;
pub mod faults;
pub mod flow;
mod lint;
pub mod lock;
mod offline;
pub mod revision;
pub mod revisions;
pub mod runner;
pub mod serving;
pub mod throttle;

pub use audit::AuditEntry;
pub use error::MigrateError;
pub use offline::split_statements;
pub use revision::{
    Action, AuditSink, CodeFn, Direction, EngineSql, ProgressDisplay, Revision, RunOptions, Step,
    StepContext, StepSql,
};
pub use runner::{
    offline_sql, upgrade, DirtyState, HistoryEntry, Migrator, RevisionRun, RunSummary, StampMode,
    StepRun, SCHEMA_CHANNEL, VERSIONS_TABLE,
};
