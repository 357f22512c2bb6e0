//! The Alembic bridge: a platform that deploys its schema changes with `alembic upgrade head`
//! gets a generated Alembic revision whose `upgrade()` runs flowkey on Alembic's own database
//! connection (see `bridge.py`, the template). Here: finding the Alembic head in a `versions/`
//! folder and writing the revision file. No database is touched: the file runs flowkey later.

mod bridge;
mod error;
mod versions;

pub use bridge::{include_object_module, write_revision, BridgeRevision, RevisionRequest};
pub use error::AlembicError;
pub use versions::{heads, AlembicRevision};
