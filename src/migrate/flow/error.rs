//! What can stop the session→flow migration, each variant named for its diagnosis.

#[derive(Debug, thiserror::Error)]
pub enum FlowMigrationError {
    #[error("step {step:?} works on a linked table but names none it knows")]
    StepWithoutLinkedTable { step: String },
    #[error("the legacy schema text has no CREATE TABLE for {table}")]
    LegacyTableTextMissing { table: String },
    #[error("rebuilding {table} on sqlite would add {violations} foreign key violations")]
    RebuildBreaksForeignKeys { table: String, violations: i64 },
    #[error("the database is at {at}: a catch-up needs the live mapping (revision live_mapping); run `flowkey upgrade head`")]
    LiveMappingNotInstalled { at: String },
    #[error(
        "the database is at {at}: `flowkey bench readiness` needs the write ledger's revision \
         (write_ledger); run `flowkey upgrade head` on the copy first"
    )]
    BenchNeedsLedger { at: String },
    #[error("no pre-migration fingerprint is stored; upgrade from legacy first")]
    NoFingerprint,
    #[error(
        "{table} has no flow_id yet (the database is below flow_expand): there is no link to \
         verify or report; run `flowkey upgrade head` first"
    )]
    NoLinksYet { table: String },
    #[error(
        "the write ledger has no baseline: revision write_ledger did not finish; run `flowkey upgrade head`"
    )]
    LedgerNotStarted,
    #[error("verification failed: {summary}")]
    VerificationFailed { summary: String },
    #[error("a session with the id of flow {flow_id} exists but maps to another flow")]
    RestoredSessionClash { flow_id: String },
    #[error("cannot copy the database for a rehearsal: {reason}")]
    RehearsalCopy { reason: String },
    #[error("cannot fingerprint {table}: {reason}")]
    FingerprintRead { table: String, reason: String },
    #[error("{table} changed while its fingerprint was measured ({counted} rows counted, {fingerprinted} fingerprinted)")]
    FingerprintChangedWhileMeasured {
        table: String,
        counted: i64,
        fingerprinted: i64,
    },
    #[error("{rows} rows of {table} that the backfill could link stayed locked by other transactions for {seconds} s; the run can be resumed once they end")]
    SweepBlocked {
        table: String,
        rows: i64,
        seconds: u64,
    },
}
