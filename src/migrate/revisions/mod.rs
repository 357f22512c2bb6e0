//! Every revision flowkey knows, oldest first. Append only: a revision, once released, is
//! never edited (the runner refuses a changed checksum), and a new change is a new revision.

pub mod legacy;
pub mod service_state;

use crate::migrate::Revision;

/// The ordered chain of revisions; the first is `legacy`, the last is `head`.
pub fn all() -> &'static [&'static Revision] {
    static ALL: [&Revision; 2] = [&legacy::LEGACY, &service_state::SERVICE_STATE];
    &ALL
}
