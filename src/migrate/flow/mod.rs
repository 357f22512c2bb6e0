//! The session→flow migration (issue 3): the mapping rules, the expand phase with its
//! dual-write triggers, the resumable backfill, the constraints, the fingerprints that prove
//! nothing was lost, verify, report, and what a downgrade must restore. The revisions in
//! `migrate::revisions::flow_*` are thin lists of steps over these functions.

pub mod backfill;
pub mod baseline;
pub mod constraints;
pub mod contract;
pub mod dependents;
pub mod discovery;
pub mod downgrade;
pub mod error;
pub mod expand;
pub mod fingerprint;
pub mod legacy_signal;
pub mod linked;
pub mod live;
pub mod mapping;
pub mod rehearse;
pub mod report;
pub mod sqlite_rebuild;
pub mod tables;
pub mod triggers;
pub mod verification_basis;
pub mod verification_delta;
pub mod verification_record;
pub mod verify;
pub mod walk;
pub mod write_ledger;

pub use backfill::TableBackfill;
pub use downgrade::{restored_sessions, RestoreSummary, RestoredSession, UnrestorableFlow};
pub use error::FlowMigrationError;
pub use fingerprint::{fingerprint_database, FingerprintScope, TableFingerprint};
pub use live::{catch_up, CatchUpSummary};
pub use mapping::{compute_mapping, MappingSummary};
pub use rehearse::{rehearse, RehearsalReport, RehearsalTimings};
pub use report::{report, MigrationReport, TableReport, UnlinkedReasons};
pub use verify::{verify, OffendingRow, VerifyReport};
