//! What to generate: how much, from which seed, and how often each legacy oddity appears.

use crate::migrate::ProgressDisplay;
use crate::seed::SeedError;

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

/// How often each oddity of shared/legacy/README.md appears, as a proportion in `[0, 1]` of
/// the candidates it applies to (named per field). Placement is a deterministic quota, not a
/// coin toss: with a rate above zero the first candidate is always odd, so even a tiny run
/// shows every oddity, and over many candidates the proportion is the rate.
///
/// Oddities of one import slot that exclude each other (what a flow's `import_session_id`
/// holds) are tried in field order; a candidate taken by an earlier one is not offered to the
/// later ones.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Oddities {
    /// Import slots where the import has a NULL `session_id` (and no session is created); its
    /// flow reaches it only through `discovery_flows.data_import_id`.
    pub import_without_session: f64,
    /// Import slots whose session has data but no flow at all.
    pub session_without_flow: f64,
    /// Import slots whose flow's `import_session_id` holds the `data_imports.id`.
    pub flow_import_session_is_import_id: f64,
    /// Import slots whose flow's `import_session_id` points nowhere.
    pub flow_import_session_dangling: f64,
    /// Flows of a real tenant's data created under the placeholder tenant
    /// `11111111-1111-1111-1111-111111111111`.
    pub flow_under_placeholder_tenant: f64,
    /// Flows whose `flow_id` is their own session's id.
    pub flow_id_is_session_id: f64,
    /// Sessions whose id is also the `flow_id` of a flow of ANOTHER tenant (needs 2 tenants).
    pub session_id_is_foreign_flow_id: f64,
    /// Sessions claimed by one more flow of the same tenant, created later.
    pub session_claimed_twice: f64,
    /// Sessions claimed by one more flow of the same tenant with the SAME `created_at` (the
    /// tie-break by smallest flow id decides).
    pub session_claimed_twice_same_time: f64,
    /// Sessions claimed by a flow of ANOTHER tenant (needs 2 tenants).
    pub session_claimed_by_foreign_flow: f64,
    /// Import slots with one more flow that has neither session nor import.
    pub flow_without_session: f64,
    /// Flows whose `status` holds a phase name instead of a status.
    pub flow_status_is_phase: f64,
    /// Flows whose `crewai_state_data` embeds `session_id` and/or `original_session_id`.
    pub flow_state_names_session: f64,
    /// Imports whose `import_config` embeds `validation_session_id`.
    pub import_config_names_session: f64,
    /// Raw records with a NULL `session_id` whose import has one.
    pub raw_record_without_session: f64,
    /// Child rows (raw records, imports, access log, LLM log) whose tenant columns name
    /// another tenant than their session's (needs 2 tenants).
    pub child_tenant_mismatch: f64,
    /// Child rows (raw records, imports, access log, LLM log) with NULL tenant columns.
    pub child_tenant_null: f64,
    /// `flow_deletion_audit` rows whose `session_id` names no session.
    pub deletion_audit_dangling_session: f64,
    /// `llm_usage_logs.session_id` in a form other than the bare id of an existing session:
    /// in turn `disc_session_<uuid>`, `session-<uuid>` in mixed case, an empty string,
    /// garbage, NULL, and a bare UUID that names no session.
    pub llm_session_id_odd: f64,
}

impl Default for Oddities {
    fn default() -> Self {
        Self {
            import_without_session: 0.05,
            session_without_flow: 0.05,
            flow_import_session_is_import_id: 0.2,
            flow_import_session_dangling: 0.05,
            flow_under_placeholder_tenant: 0.05,
            flow_id_is_session_id: 0.05,
            session_id_is_foreign_flow_id: 0.02,
            session_claimed_twice: 0.1,
            session_claimed_twice_same_time: 0.05,
            session_claimed_by_foreign_flow: 0.02,
            flow_without_session: 0.1,
            flow_status_is_phase: 0.1,
            flow_state_names_session: 0.3,
            import_config_names_session: 0.3,
            raw_record_without_session: 0.05,
            child_tenant_mismatch: 0.02,
            child_tenant_null: 0.05,
            deletion_audit_dangling_session: 0.5,
            llm_session_id_odd: 0.4,
        }
    }
}

impl Oddities {
    /// Clean data: no oddity at all.
    pub fn none() -> Self {
        Self {
            import_without_session: 0.0,
            session_without_flow: 0.0,
            flow_import_session_is_import_id: 0.0,
            flow_import_session_dangling: 0.0,
            flow_under_placeholder_tenant: 0.0,
            flow_id_is_session_id: 0.0,
            session_id_is_foreign_flow_id: 0.0,
            session_claimed_twice: 0.0,
            session_claimed_twice_same_time: 0.0,
            session_claimed_by_foreign_flow: 0.0,
            flow_without_session: 0.0,
            flow_status_is_phase: 0.0,
            flow_state_names_session: 0.0,
            import_config_names_session: 0.0,
            raw_record_without_session: 0.0,
            child_tenant_mismatch: 0.0,
            child_tenant_null: 0.0,
            deletion_audit_dangling_session: 0.0,
            llm_session_id_odd: 0.0,
        }
    }

    /// Every rate with its field name, for validation and display.
    pub fn rates(&self) -> [(&'static str, f64); 19] {
        [
            ("import_without_session", self.import_without_session),
            ("session_without_flow", self.session_without_flow),
            (
                "flow_import_session_is_import_id",
                self.flow_import_session_is_import_id,
            ),
            (
                "flow_import_session_dangling",
                self.flow_import_session_dangling,
            ),
            (
                "flow_under_placeholder_tenant",
                self.flow_under_placeholder_tenant,
            ),
            ("flow_id_is_session_id", self.flow_id_is_session_id),
            (
                "session_id_is_foreign_flow_id",
                self.session_id_is_foreign_flow_id,
            ),
            ("session_claimed_twice", self.session_claimed_twice),
            (
                "session_claimed_twice_same_time",
                self.session_claimed_twice_same_time,
            ),
            (
                "session_claimed_by_foreign_flow",
                self.session_claimed_by_foreign_flow,
            ),
            ("flow_without_session", self.flow_without_session),
            ("flow_status_is_phase", self.flow_status_is_phase),
            ("flow_state_names_session", self.flow_state_names_session),
            (
                "import_config_names_session",
                self.import_config_names_session,
            ),
            (
                "raw_record_without_session",
                self.raw_record_without_session,
            ),
            ("child_tenant_mismatch", self.child_tenant_mismatch),
            ("child_tenant_null", self.child_tenant_null),
            (
                "deletion_audit_dangling_session",
                self.deletion_audit_dangling_session,
            ),
            ("llm_session_id_odd", self.llm_session_id_odd),
        ]
    }
}
