//! The generator: realistic legacy rows, reproducible from a seed, with every oddity of
//! shared/legacy/README.md placed by quota.
//!
//! All ids and timestamps come from the random stream and a fixed epoch, never from the
//! clock. Each import gets its own key, and each CSV row its own ChaCha stream under that key,
//! so a row can be produced on its own: raw records are streamed in batches while assets and
//! field mapping samples, made earlier, still agree with them.

mod cmdb;
mod quota;
mod rows;
mod slot;
mod tables;
mod vocabulary;

use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::types::DbTime;
use crate::seed::write::Cell;
use crate::seed::SeedConfig;
use quota::{ChildTable, Quotas};
pub(crate) use tables::*;
pub use vocabulary::{CMDB_COLUMNS, PHASE_NAMES, PLACEHOLDER_TENANT};
use vocabulary::{COMPANIES, FIRST_NAMES, LAST_NAMES};

/// 2024-01-01T00:00:00Z: every generated timestamp is this plus an offset from the seed.
const EPOCH_MILLIS: i64 = 1_704_067_200_000;
const HOUR_MILLIS: i64 = 3_600_000;
const DAY_MILLIS: i64 = 24 * HOUR_MILLIS;
const USERS_PER_TENANT: usize = 3;
/// One asset per this many CSV rows (the rows the platform has processed so far).
const ROWS_PER_ASSET: u32 = 10;
/// Field mappings carry this many sample values per column.
const SAMPLE_ROWS: u32 = 3;

/// Rows waiting to be written, in no particular table order; the writer orders tables so that
/// every foreign key finds its target. Raw records are plans, produced batch by batch.
#[derive(Debug, Default)]
pub(crate) struct PendingRows {
    pub sessions: Vec<Vec<Cell>>,
    pub imports: Vec<Vec<Cell>>,
    pub assets: Vec<Vec<Cell>>,
    pub field_mappings: Vec<Vec<Cell>>,
    pub flows: Vec<Vec<Cell>>,
    pub access_log: Vec<Vec<Cell>>,
    pub deletion_audit: Vec<Vec<Cell>>,
    pub llm_log: Vec<Vec<Cell>>,
    pub raw_records: Vec<RawRecordPlan>,
    /// Raw records the plans will produce, together.
    pub raw_record_count: u64,
}

/// The raw records of one import, still to be produced.
#[derive(Debug)]
pub(crate) struct RawRecordPlan {
    import_id: Uuid,
    session_id: Option<Uuid>,
    tenant_index: usize,
    import_key: [u8; 32],
    rows: u32,
    /// 1-based row number of the next record to produce.
    next_row: u32,
    created_millis: i64,
}

impl RawRecordPlan {
    pub fn is_done(&self) -> bool {
        self.next_row > self.rows
    }
}

/// The client accounts, engagements and users of every tenant of a run.
#[derive(Debug, Default)]
pub(crate) struct TenantRows {
    pub client_accounts: Vec<Vec<Cell>>,
    pub engagements: Vec<Vec<Cell>>,
    pub users: Vec<Vec<Cell>>,
}

/// Produces a run's rows in a fixed order from one random stream.
pub(crate) struct Generator {
    rng: ChaCha8Rng,
    rows_per_import: u32,
    field_mappings_per_import: u32,
    access_logs_per_import: u32,
    llm_logs_per_import: u32,
    /// Time between two imports of a tenant: a few hours, less when a tenant has so many
    /// imports that they would otherwise spread over decades.
    slot_spacing_millis: i64,
    tenants: Vec<Tenant>,
    quotas: Quotas,
    /// Cycles through the odd forms of `llm_usage_logs.session_id`.
    next_llm_form: usize,
    /// Cycles through the session keys embedded in `crewai_state_data`.
    next_state_keys: usize,
}

#[derive(Debug, Clone)]
struct Tenant {
    client_account_id: Uuid,
    engagement_id: Uuid,
    users: Vec<Uuid>,
    base_millis: i64,
}

impl Generator {
    /// A generator for `config` on a database that already holds `existing_sessions`
    /// sessions. Mixing that count into the key keeps a second run on the same database from
    /// producing the same ids as the first.
    pub fn new(config: &SeedConfig, existing_sessions: u64) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"flowkey seed v1");
        hasher.update(config.seed.to_le_bytes());
        hasher.update(existing_sessions.to_le_bytes());
        let mut rng = ChaCha8Rng::from_seed(hasher.finalize().into());
        let tenants = (0..config.tenants)
            .map(|_| Tenant {
                client_account_id: random_uuid(&mut rng),
                engagement_id: random_uuid(&mut rng),
                users: (0..USERS_PER_TENANT)
                    .map(|_| random_uuid(&mut rng))
                    .collect(),
                base_millis: EPOCH_MILLIS
                    + rng.gen_range(0..365) * DAY_MILLIS
                    + rng.gen_range(0..DAY_MILLIS),
            })
            .collect();
        Self {
            rng,
            rows_per_import: config.rows_per_import,
            field_mappings_per_import: config.field_mappings_per_import,
            access_logs_per_import: config.access_logs_per_import,
            llm_logs_per_import: config.llm_logs_per_import,
            slot_spacing_millis: (365 * DAY_MILLIS / i64::from(config.imports_per_tenant.max(1)))
                .clamp(60_000, 6 * HOUR_MILLIS),
            tenants,
            quotas: Quotas::new(&config.oddities),
            next_llm_form: 0,
            next_state_keys: 0,
        }
    }

    /// The rows of every tenant's account, engagement and users.
    pub fn tenant_rows(&mut self) -> TenantRows {
        let mut rows = TenantRows::default();
        for tenant in self.tenants.clone() {
            let created = tenant.base_millis - 30 * DAY_MILLIS;
            let company = *pick(&mut self.rng, COMPANIES);
            let suffix = short_hex(tenant.client_account_id);
            rows.client_accounts.push(vec![
                Cell::Uuid(Some(tenant.client_account_id)),
                text(format!("{company} ({suffix})")),
                time(created),
            ]);
            let wave = self.rng.gen_range(1..6);
            rows.engagements.push(vec![
                Cell::Uuid(Some(tenant.engagement_id)),
                Cell::Uuid(Some(tenant.client_account_id)),
                text(format!("{company} cloud migration, wave {wave}")),
                time(created + HOUR_MILLIS),
            ]);
            let domain = company.to_lowercase().replace([' ', '&', ','], "");
            for (index, user) in tenant.users.iter().enumerate() {
                let first = *pick(&mut self.rng, FIRST_NAMES);
                let last = *pick(&mut self.rng, LAST_NAMES);
                rows.users.push(vec![
                    Cell::Uuid(Some(*user)),
                    text(format!(
                        "{}.{}.{}@{domain}.example.com",
                        first.to_lowercase(),
                        last.to_lowercase(),
                        short_hex(*user)
                    )),
                    time(created + 2 * HOUR_MILLIS + i64::try_from(index).unwrap_or(0)),
                ]);
            }
        }
        rows
    }

    fn uuid(&mut self) -> Uuid {
        random_uuid(&mut self.rng)
    }

    fn other_tenant(&self, tenant_index: usize) -> Option<Tenant> {
        if self.tenants.len() < 2 {
            return None;
        }
        self.tenants
            .get((tenant_index + 1) % self.tenants.len())
            .cloned()
    }

    /// Tenant columns of a child row: its own tenant's, another tenant's or NULL, by quota.
    /// A mismatch is only placed on a row that names a session (`named_session`), since that
    /// is what it disagrees with.
    fn child_tenant(
        &mut self,
        tenant_index: usize,
        table: ChildTable,
        named_session: Option<Uuid>,
    ) -> (Option<Uuid>, Option<Uuid>) {
        let other = named_session.and_then(|_| self.other_tenant(tenant_index));
        let (mismatch, null) = self.quotas.child(table);
        if let Some(other) = other {
            if mismatch.take() {
                return (Some(other.client_account_id), Some(other.engagement_id));
            }
        }
        if null.take() {
            return (None, None);
        }
        match self.tenants.get(tenant_index) {
            Some(own) => (Some(own.client_account_id), Some(own.engagement_id)),
            None => (None, None),
        }
    }
}

/// A UUID v4 from the random stream (never from the operating system).
fn random_uuid(rng: &mut ChaCha8Rng) -> Uuid {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, choices: &'a [T]) -> &'a T {
    // Every list here is a non-empty constant; the fallback only keeps this panic-free.
    choices.choose(rng).unwrap_or_else(|| &choices[0])
}

fn short_hex(uuid: Uuid) -> String {
    uuid.simple().to_string().chars().take(12).collect()
}

fn text(value: String) -> Cell {
    Cell::Text(Some(value))
}

fn millis_time(millis: i64) -> DbTime {
    DbTime(chrono::DateTime::from_timestamp_millis(millis).unwrap_or_default())
}

fn time(millis: i64) -> Cell {
    Cell::Time(Some(millis_time(millis)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_and_history_give_the_same_rows() {
        let config = SeedConfig::default();
        let mut one = Generator::new(&config, 0);
        let mut two = Generator::new(&config, 0);
        let mut three = Generator::new(&config, 16);
        let (mut a, mut b, mut c) = (
            PendingRows::default(),
            PendingRows::default(),
            PendingRows::default(),
        );
        one.import_slot(0, 0, &mut a);
        two.import_slot(0, 0, &mut b);
        three.import_slot(0, 0, &mut c);
        assert_eq!(a.imports, b.imports);
        assert_ne!(a.imports, c.imports);
    }
}
