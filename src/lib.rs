//! flowkey moves a multi-tenant platform's data from the legacy `session_id` key to `flow_id`,
//! online and reversibly, while old clients keep working. See ARCHITECTURE.md for the map.

pub mod db;
pub mod ids;
pub mod migrate;
pub mod seed;
