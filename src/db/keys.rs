//! Which key columns the served schema has: the session columns and `flow_id` side by side
//! (every revision up to head, `Expanded`), or `flow_id` alone (after the contract,
//! `Contracted`). The schema gate decides it from the recorded revision and re-decides it on
//! every check; the stores choose their statements by it, so one build serves both states
//! (docs: ARCHITECTURE.md, "After the contract").

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// The key columns of the schema being served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyColumns {
    /// The session columns exist (up to head): read and written as they are.
    #[default]
    Expanded,
    /// The contract dropped them: a row's session is derived from its flow through
    /// `session_flow_mapping` (or the contract's archive), and never written to the row.
    Contracted,
}

/// The [`KeyColumns`] a server last decided, shared by its schema gate (which sets it) and
/// everything that reads through the stores (which read it). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ServedKeys(Arc<AtomicU8>);

impl ServedKeys {
    pub fn new(keys: KeyColumns) -> Self {
        let served = Self::default();
        served.set(keys);
        served
    }

    pub fn get(&self) -> KeyColumns {
        match self.0.load(Ordering::Acquire) {
            1 => KeyColumns::Contracted,
            _ => KeyColumns::Expanded,
        }
    }

    pub fn set(&self, keys: KeyColumns) {
        let value = match keys {
            KeyColumns::Expanded => 0,
            KeyColumns::Contracted => 1,
        };
        self.0.store(value, Ordering::Release);
    }
}
