//! `flowkey seed`: fills a database with realistic legacy data, oddities included.

use std::io::Write as _;

use flowkey::db::Db;
use flowkey::migrate::ProgressDisplay;
use flowkey::seed::{Oddities, PerOddity, SeedConfig, SeedSummary, ODDITIES};

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
    /// Field mappings per import (one per CMDB column; past 13 the columns repeat, numbered).
    #[arg(long, default_value_t = SeedConfig::default().field_mappings_per_import)]
    pub field_mappings_per_import: u32,
    /// access_audit_log rows per import.
    #[arg(long, default_value_t = SeedConfig::default().access_logs_per_import)]
    pub access_logs_per_import: u32,
    /// llm_usage_logs rows per import.
    #[arg(long, default_value_t = SeedConfig::default().llm_logs_per_import)]
    pub llm_logs_per_import: u32,
    #[command(flatten)]
    pub rates: OddityRates,
}

/// One `--rate-*` flag per oddity, each a proportion in [0, 1] of the rows it applies to. The
/// flags, their help and defaults come from [`ODDITIES`], where each oddity is declared.
#[derive(Debug, Clone)]
pub struct OddityRates {
    /// The rates given on the command line (`None`: keep the base rate).
    given: PerOddity<Option<f64>>,
}

impl Default for OddityRates {
    fn default() -> Self {
        Self {
            given: PerOddity::splat(None),
        }
    }
}

/// The heading the `--rate-*` flags are listed under in `--help`.
const RATES_HEADING: &str = "Oddity rates (proportion 0..1 of candidates)";

impl clap::FromArgMatches for OddityRates {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut rates = Self::default();
        rates.update_from_arg_matches(matches)?;
        Ok(rates)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        for (spec, given) in self.given.iter_mut() {
            if let Some(rate) = matches.get_one::<f64>(spec.name) {
                *given = Some(*rate);
            }
        }
        Ok(())
    }
}

impl clap::Args for OddityRates {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let cmd = cmd.next_help_heading(RATES_HEADING);
        ODDITIES.iter().fold(cmd, |cmd, spec| {
            cmd.arg(
                clap::Arg::new(spec.name)
                    .long(spec.flag)
                    .value_name("RATE")
                    .value_parser(clap::value_parser!(f64))
                    .help(format!("{} [default: {}]", spec.help, spec.default_rate)),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl OddityRates {
    fn apply(&self, oddities: &mut Oddities) {
        for ((_, rate), (_, given)) in oddities.iter_mut().zip(self.given.iter()) {
            if let Some(value) = given {
                *rate = *value;
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
            field_mappings_per_import: self.field_mappings_per_import,
            access_logs_per_import: self.access_logs_per_import,
            llm_logs_per_import: self.llm_logs_per_import,
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
    writeln!(out, "{:<40} {:>6}", "oddity", "rate")?;
    for (spec, rate) in summary.oddities.iter() {
        writeln!(out, "{:<40} {:>6}", spec.name, rate)?;
    }
    writeln!(
        out,
        "elapsed {:.2}s, {:.0} rows/s ({:.0} raw records/s)",
        summary.elapsed.as_secs_f64(),
        summary.rows_per_second(),
        summary.raw_records_per_second()
    )
}
