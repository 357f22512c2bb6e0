//! Schema changes: the revision runner, the revisions themselves, and the session→flow
//! migration they carry out. Only this module issues DDL.

mod error;
pub mod flow;
pub mod revision;
pub mod revisions;

pub use error::MigrateError;
pub use revision::{
    Action, AuditSink, CodeFn, Direction, EngineSql, ProgressDisplay, Revision, RunOptions, Step,
    StepContext,
};
