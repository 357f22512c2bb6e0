//! flowkey moves a multi-tenant platform's data from the legacy `session_id` key to `flow_id`,
//! online and reversibly, while old clients keep working. See ARCHITECTURE.md for the map.

pub mod alembic;
pub mod compat;
pub mod db;
pub mod field_mappings;
pub mod flags;
pub mod flows;
pub mod http;
pub mod identity;
pub mod ids;
pub mod imports;
pub mod measure;
pub mod migrate;
pub mod paging;
pub mod seed;
pub mod sessions;
