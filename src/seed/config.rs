//! What to generate: how much, from which seed, and how often each legacy oddity appears.

use crate::migrate::ProgressDisplay;
use crate::seed::{Oddities, SeedError};

/// Knobs of one `seed` run.
#[derive(Debug, Clone)]
pub struct SeedConfig {
    /// The random seed. On an empty database the same config always produces the same rows;
    /// on a non-empty one the existing number of sessions is mixed in (see [`crate::seed`]).
    pub seed: u64,
    /// Tenants (client account + engagement + users) created by this run.
    pub tenants: u32,
    /// Data imports (uploaded CSV files) per tenant.
    pub imports_per_tenant: u32,
    /// CMDB rows per CSV file, hence raw import records per import.
    pub rows_per_import: u32,
    /// Field mappings per import: one per CMDB column, the columns taken again (numbered)
    /// when there are more mappings than the export's 13 columns.
    pub field_mappings_per_import: u32,
    /// `access_audit_log` rows per import.
    pub access_logs_per_import: u32,
    /// `llm_usage_logs` rows per import.
    pub llm_logs_per_import: u32,
    pub oddities: Oddities,
    pub progress: ProgressDisplay,
}

impl Default for SeedConfig {
    /// Small and fast, with every oddity present at least once.
    fn default() -> Self {
        Self {
            seed: 42,
            tenants: 2,
            imports_per_tenant: 8,
            rows_per_import: 20,
            field_mappings_per_import: 13,
            access_logs_per_import: 2,
            llm_logs_per_import: 3,
            oddities: Oddities::default(),
            progress: ProgressDisplay::Hidden,
        }
    }
}

impl SeedConfig {
    pub(crate) fn validate(&self) -> Result<(), SeedError> {
        for (name, rate) in self.oddities.rates() {
            if !rate.is_finite() || !(0.0..=1.0).contains(&rate) {
                return Err(SeedError::InvalidRate {
                    name,
                    value: rate.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Raw import records this run will insert.
    pub fn total_raw_records(&self) -> u64 {
        u64::from(self.tenants)
            * u64::from(self.imports_per_tenant)
            * u64::from(self.rows_per_import)
    }
}
