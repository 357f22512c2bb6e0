//! `flowkey seed`: fills a database with realistic legacy data, oddities included.

use std::io::Write as _;

use flowkey::db::Db;
use flowkey::migrate::ProgressDisplay;
use flowkey::seed::{Oddities, SeedConfig, SeedSummary};

/// Generate legacy data (the platform's session-keyed schema) with every known oddity.
///
/// On an empty database the legacy schema is created first; on a legacy database rows are
/// added. The same --seed on an empty database always gives the same rows.
#[derive(Debug, Clone, clap::Args)]
pub struct SeedArgs {
    /// Random seed; the rows already in data_import_sessions are mixed in, so a second run on
    /// the same database adds new rows instead of colliding.
    #[arg(long, default_value_t = SeedConfig::default().seed)]
    pub seed: u64,
    /// Tenants (client account + engagement + users) to create.
    #[arg(long, default_value_t = SeedConfig::default().tenants)]
    pub tenants: u32,
    /// Data imports (CSV files) per tenant.
    #[arg(long, default_value_t = SeedConfig::default().imports_per_tenant)]
    pub imports: u32,
    /// CMDB rows per CSV file (raw import records per import).
    #[arg(long, default_value_t = SeedConfig::default().rows_per_import)]
    pub rows_per_import: u32,
    /// Clean data: every oddity rate 0 (explicit --rate-* flags still apply on top).
    #[arg(long)]
    pub no_oddities: bool,
    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub rates: OddityRates,
}

/// One flag per oddity, each a proportion in [0, 1] of the rows it applies to.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Oddity rates (proportion 0..1 of candidates)")]
pub struct OddityRates {
    /// Imports with a NULL session, reached only by discovery_flows.data_import_id.
    #[arg(long = "rate-import-without-session", value_name = "RATE")]
    pub import_without_session: Option<f64>,
    /// Sessions with data but no flow.
    #[arg(long = "rate-session-without-flow", value_name = "RATE")]
    pub session_without_flow: Option<f64>,
    /// Flows whose import_session_id holds a data_imports.id.
    #[arg(long = "rate-flow-import-session-is-import-id", value_name = "RATE")]
    pub flow_import_session_is_import_id: Option<f64>,
    /// Flows whose import_session_id points nowhere.
    #[arg(long = "rate-flow-import-session-dangling", value_name = "RATE")]
    pub flow_import_session_dangling: Option<f64>,
    /// Flows under the placeholder tenant 11111111-1111-1111-1111-111111111111.
    #[arg(long = "rate-flow-under-placeholder-tenant", value_name = "RATE")]
    pub flow_under_placeholder_tenant: Option<f64>,
    /// Flows whose flow_id is their session's id.
    #[arg(long = "rate-flow-id-is-session-id", value_name = "RATE")]
    pub flow_id_is_session_id: Option<f64>,
    /// Sessions whose id is the flow_id of another tenant's flow.
    #[arg(long = "rate-session-id-is-foreign-flow-id", value_name = "RATE")]
    pub session_id_is_foreign_flow_id: Option<f64>,
    /// Sessions claimed by a second, later flow.
    #[arg(long = "rate-session-claimed-twice", value_name = "RATE")]
    pub session_claimed_twice: Option<f64>,
    /// Sessions claimed by a second flow with the same created_at.
    #[arg(long = "rate-session-claimed-twice-same-time", value_name = "RATE")]
    pub session_claimed_twice_same_time: Option<f64>,
    /// Sessions claimed by a flow of another tenant.
    #[arg(long = "rate-session-claimed-by-foreign-flow", value_name = "RATE")]
    pub session_claimed_by_foreign_flow: Option<f64>,
    /// Extra flows with neither session nor import.
    #[arg(long = "rate-flow-without-session", value_name = "RATE")]
    pub flow_without_session: Option<f64>,
    /// Flows whose status is a phase name.
    #[arg(long = "rate-flow-status-is-phase", value_name = "RATE")]
    pub flow_status_is_phase: Option<f64>,
    /// Flows whose crewai_state_data holds session_id / original_session_id.
    #[arg(long = "rate-flow-state-names-session", value_name = "RATE")]
    pub flow_state_names_session: Option<f64>,
    /// Imports whose import_config holds validation_session_id.
    #[arg(long = "rate-import-config-names-session", value_name = "RATE")]
    pub import_config_names_session: Option<f64>,
    /// Raw records with a NULL session whose import has one.
    #[arg(long = "rate-raw-record-without-session", value_name = "RATE")]
    pub raw_record_without_session: Option<f64>,
    /// Child rows whose tenant columns name another tenant.
    #[arg(long = "rate-child-tenant-mismatch", value_name = "RATE")]
    pub child_tenant_mismatch: Option<f64>,
    /// Child rows with NULL tenant columns.
    #[arg(long = "rate-child-tenant-null", value_name = "RATE")]
    pub child_tenant_null: Option<f64>,
    /// flow_deletion_audit rows naming a session that does not exist.
    #[arg(long = "rate-deletion-audit-dangling-session", value_name = "RATE")]
    pub deletion_audit_dangling_session: Option<f64>,
    /// llm_usage_logs.session_id prefixed, mixed case, empty, garbage, NULL or dangling.
    #[arg(long = "rate-llm-session-id-odd", value_name = "RATE")]
    pub llm_session_id_odd: Option<f64>,
}

impl OddityRates {
    fn apply(&self, oddities: &mut Oddities) {
        let pairs: [(Option<f64>, &mut f64); 19] = [
            (
                self.import_without_session,
                &mut oddities.import_without_session,
            ),
            (
                self.session_without_flow,
                &mut oddities.session_without_flow,
            ),
            (
                self.flow_import_session_is_import_id,
                &mut oddities.flow_import_session_is_import_id,
            ),
            (
                self.flow_import_session_dangling,
                &mut oddities.flow_import_session_dangling,
            ),
            (
                self.flow_under_placeholder_tenant,
                &mut oddities.flow_under_placeholder_tenant,
            ),
            (
                self.flow_id_is_session_id,
                &mut oddities.flow_id_is_session_id,
            ),
            (
                self.session_id_is_foreign_flow_id,
                &mut oddities.session_id_is_foreign_flow_id,
            ),
            (
                self.session_claimed_twice,
                &mut oddities.session_claimed_twice,
            ),
            (
                self.session_claimed_twice_same_time,
                &mut oddities.session_claimed_twice_same_time,
            ),
            (
                self.session_claimed_by_foreign_flow,
                &mut oddities.session_claimed_by_foreign_flow,
            ),
            (
                self.flow_without_session,
                &mut oddities.flow_without_session,
            ),
            (
                self.flow_status_is_phase,
                &mut oddities.flow_status_is_phase,
            ),
            (
                self.flow_state_names_session,
                &mut oddities.flow_state_names_session,
            ),
            (
                self.import_config_names_session,
                &mut oddities.import_config_names_session,
            ),
            (
                self.raw_record_without_session,
                &mut oddities.raw_record_without_session,
            ),
            (
                self.child_tenant_mismatch,
                &mut oddities.child_tenant_mismatch,
            ),
            (self.child_tenant_null, &mut oddities.child_tenant_null),
            (
                self.deletion_audit_dangling_session,
                &mut oddities.deletion_audit_dangling_session,
            ),
            (self.llm_session_id_odd, &mut oddities.llm_session_id_odd),
        ];
        for (given, rate) in pairs {
            if let Some(value) = given {
                *rate = value;
            }
        }
    }
}

impl SeedArgs {
    pub fn config(&self) -> SeedConfig {
        let mut oddities = if self.no_oddities {
            Oddities::none()
        } else {
            Oddities::default()
        };
        self.rates.apply(&mut oddities);
        SeedConfig {
            seed: self.seed,
            tenants: self.tenants,
            imports_per_tenant: self.imports,
            rows_per_import: self.rows_per_import,
            oddities,
            progress: if self.no_progress {
                ProgressDisplay::Hidden
            } else {
                ProgressDisplay::Bar
            },
        }
    }
}

pub async fn run(db: &Db, args: &SeedArgs, json: bool) -> anyhow::Result<()> {
    let summary = flowkey::seed::seed(db, &args.config()).await?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &summary)?;
        writeln!(out)?;
    } else {
        print_table(&mut out, &summary)?;
    }
    Ok(())
}

fn print_table(out: &mut impl std::io::Write, summary: &SeedSummary) -> std::io::Result<()> {
    if summary.created_schema {
        writeln!(out, "created the legacy schema")?;
    }
    writeln!(
        out,
        "seed {} ({} sessions were already present)",
        summary.seed, summary.existing_sessions
    )?;
    writeln!(out, "{:<24} {:>12}", "table", "rows")?;
    for entry in &summary.tables {
        writeln!(out, "{:<24} {:>12}", entry.table, entry.rows)?;
    }
    writeln!(out, "{:<24} {:>12}", "total", summary.total_rows())?;
    writeln!(
        out,
        "elapsed {:.2}s, {:.0} rows/s",
        summary.elapsed.as_secs_f64(),
        summary.rows_per_second()
    )
}
