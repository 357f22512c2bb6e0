//! Every revision flowkey knows, oldest first. Append only: a revision, once released, is
//! never edited (the runner refuses a changed checksum), and a new change is a new revision.

pub mod flow_backfill;
pub mod flow_constraints;
pub mod flow_expand;
pub mod flow_mapping;
pub mod legacy;
pub mod service_state;

use crate::migrate::Revision;

/// The ordered chain of revisions; the first is `legacy`, the last is `head`.
pub fn all() -> &'static [&'static Revision] {
    static ALL: [&Revision; 6] = [
        &legacy::LEGACY,
        &flow_mapping::FLOW_MAPPING,
        &flow_expand::FLOW_EXPAND,
        &flow_backfill::FLOW_BACKFILL,
        &flow_constraints::FLOW_CONSTRAINTS,
        &service_state::SERVICE_STATE,
    ];
    &ALL
}
