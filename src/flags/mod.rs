//! `ENABLE_FLOW_ID_PRIMARY`: whether legacy (v1) routes read through the `session_id`
//! columns (`off`), through `flow_id` after resolving the session (`on`), or both, serving
//! the session-keyed answer and counting differences (`shadow`). The environment gives the
//! default; `flowkey_flags` holds a global value and per-tenant overrides; every server
//! polls the table, so a change applies within seconds without a restart.

mod error;
mod model;
mod readiness;
pub mod store;
mod watcher;

pub use error::FlagError;
pub use model::{default_from_env, FlagScope, FlowIdPrimary, StoredFlag, ENV_VAR, FLAG_NAME};
pub use readiness::{measure_readiness, readiness, Readiness, ReadinessCost, ReadinessCount};
pub use watcher::{
    check_default, set_flag, set_flag_forcing, stored_flags, unset_flag, FlagWatcher,
    DEFAULT_POLL_INTERVAL,
};
