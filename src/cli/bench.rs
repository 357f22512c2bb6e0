//! `bench`: the pieces of the whole-system benchmark (`bench/run.sh`) that need flowkey's
//! own code. The script does the timing, copying and load; these commands run the baselines.

use clap::{Args, Subcommand};
use flowkey::migrate::flow::baseline::offline_backfill;

use crate::cli::{connect, print_json, GlobalArgs};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The backfill's speed limit: the same UPDATEs as the online backfill, run once over each
    /// whole table in one transaction (database at flow_expand; locks the tables; never on a
    /// database in use).
    OfflineBackfill,
}

pub async fn run(args: BenchArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::OfflineBackfill => {
            let db = connect(global).await?;
            let outcome = offline_backfill(&db).await?;
            if global.json {
                print_json(&outcome)
            } else {
                for table in &outcome.tables {
                    println!(
                        "{:<24} {:>10} rows {:>10} updated {:>9.3} s",
                        table.table, table.rows, table.rows_updated, table.seconds
                    );
                }
                println!(
                    "{:<24} {:>10} rows {:>10} updated {:>9.3} s",
                    "total", outcome.rows, outcome.rows_updated, outcome.seconds
                );
                Ok(())
            }
        }
    }
}
