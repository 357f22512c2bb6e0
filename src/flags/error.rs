use crate::ids::IdError;

/// Why a flag could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("unknown flag {name:?}; the only flag is enable_flow_id_primary")]
    UnknownFlag { name: String },
    #[error("{input:?} is not a value of enable_flow_id_primary; expected off, shadow or on")]
    UnknownValue { input: String },
    #[error("scope {input:?} is neither `global` nor CLIENT_ACCOUNT_ID:ENGAGEMENT_ID")]
    BadScope { input: String, source: IdError },
    #[error("refusing to turn enable_flow_id_primary on: {}", reasons.join("; "))]
    NotReady { reasons: Vec<String> },
    #[error(
        "refusing to set enable_flow_id_primary {value}: the database is contracted (revision \
         flow_contract), the session columns that {value} reads are gone; to go back, run \
         `flowkey downgrade -1` first (it restores every session value)"
    )]
    Contracted { value: String },
    #[error(
        "refusing to turn enable_flow_id_primary on for {scope}: {mismatches} shadow mismatches \
         since its last flag change (see the `shadow read` warnings in the servers' logs and \
         docs/rollout.md, \"Shadow\"); fix them and set shadow again to start a new count, \
         or pass --force (recorded in flowkey_flag_changes)"
    )]
    ShadowMismatches { scope: String, mismatches: i64 },
    #[error(
        "this database has no flag table yet (revision service_state creates flowkey_flags): \
         run `flowkey upgrade head`"
    )]
    NotInstalled,
    #[error("cannot check readiness: {0}")]
    Migration(#[from] crate::migrate::MigrateError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
