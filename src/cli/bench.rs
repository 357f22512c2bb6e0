//! `bench`: the pieces of the whole-system benchmark (`bench/run.sh`) that need flowkey's
//! own code. The script does the timing, copying and load; these commands run the baselines.

use clap::{Args, Subcommand};
use flowkey::measure::ratio;
use flowkey::migrate::flow::baseline::{naive_offline_migration, offline_backfill};
use flowkey::migrate::flow::fingerprint::fingerprint_against_scan;

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
    /// The naive offline migration an Alembic user would write, on a legacy database, in one
    /// transaction: mapping, ADD COLUMN, UPDATE ... FROM per table, indexes, foreign keys
    /// (locks every table until it commits; never on a database in use).
    NaiveOffline,
    /// Fingerprint speed: each legacy table's fingerprint against `SELECT count(*)` of the
    /// same table, back to back, the better of --repeats runs each (read-only).
    Fingerprint {
        #[arg(long, default_value_t = 3)]
        repeats: u32,
    },
    /// The legacy-write signal's cost on an old-code INSERT (session key, no flow_id) into
    /// `assets`: the dual-write trigger alone against the trigger and the signal, in the same
    /// run, interleaved rounds, best round each; every round is rolled back (database at
    /// legacy_write_signal).
    LegacySignal {
        #[arg(long, default_value_t = 2_000)]
        rows: u32,
        #[arg(long, default_value_t = 5)]
        rounds: u32,
    },
    /// The write ledger's cost on an old-code INSERT into `assets`: every trigger against
    /// every trigger but the ledger's, same run, interleaved rounds, best round each; every
    /// round is rolled back (database at write_ledger).
    LedgerWrite {
        #[arg(long, default_value_t = 2_000)]
        rows: u32,
        #[arg(long, default_value_t = 5)]
        rounds: u32,
    },
    /// Readiness while the old application writes: the full link checks and a `count(*)` of
    /// the linked tables, then `--sessions` sessions written the old application's way (each
    /// with its flow, an import and `--records` raw records; they stay: run it on a copy),
    /// then readiness, which answers from the stored checks and the delta (database at
    /// write_ledger). Best of --repeats runs each.
    Readiness {
        #[arg(long, default_value_t = 20)]
        sessions: u32,
        #[arg(long, default_value_t = 10)]
        records: u32,
        #[arg(long, default_value_t = 3)]
        repeats: u32,
    },
}

pub async fn run(args: BenchArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::LegacySignal { rows, rounds } => {
            let db = connect(global).await?;
            let cost =
                flowkey::migrate::flow::legacy_signal::measure_signal_cost(&db, rows, rounds).await;
            db.close().await;
            let cost = cost?;
            if global.json {
                return print_json(&cost);
            }
            println!(
                "{}: old-code INSERT {:.1} us with the dual-write trigger, {:.1} us with the signal too: {:.2}x ({} rows x {} rounds, best round)",
                cost.table, cost.dual_write_only_us, cost.with_signal_us, cost.ratio, cost.rows_per_round, cost.rounds
            );
            Ok(())
        }
        BenchCommand::LedgerWrite { rows, rounds } => {
            let db = connect(global).await?;
            let cost =
                flowkey::migrate::flow::write_ledger::measure_ledger_cost(&db, rows, rounds).await;
            db.close().await;
            let cost = cost?;
            if global.json {
                return print_json(&cost);
            }
            println!(
                "assets: old-code INSERT {:.1} us without the ledger, {:.1} us with it: {:.2}x ({} rows x {} rounds, best round)",
                cost.without_ledger_us, cost.with_ledger_us, cost.ratio, cost.rows_per_round, cost.rounds
            );
            Ok(())
        }
        BenchCommand::Readiness {
            sessions,
            records,
            repeats,
        } => {
            let db = connect(global).await?;
            let cost = flowkey::flags::measure_readiness(&db, sessions, records, repeats).await;
            db.close().await;
            let cost = cost?;
            if global.json {
                return print_json(&cost);
            }
            println!(
                "{} rows in the linked tables: count(*) {:.3} s, full link checks {:.3} s; after \
                 {} old-code sessions ({} raw records each), readiness {:.3} s from {:?} ({} rows \
                 checked again): {:.3}x the full checks, {:.2}x the count (best of {})",
                cost.rows,
                cost.count_seconds,
                cost.full_check_seconds,
                cost.sessions_written,
                cost.records_per_session,
                cost.readiness_seconds,
                cost.readiness_from,
                cost.delta_rows_checked.unwrap_or(0),
                cost.readiness_vs_full_check,
                cost.readiness_vs_count,
                cost.repeats
            );
            Ok(())
        }
        BenchCommand::NaiveOffline => {
            let db = connect(global).await?;
            let outcome = naive_offline_migration(&db).await?;
            if global.json {
                return print_json(&outcome);
            }
            for phase in &outcome.phases {
                println!("{:<16} {:>9.3} s", phase.phase, phase.seconds);
            }
            println!("{:<16} {:>9.3} s", "total", outcome.seconds);
            Ok(())
        }
        BenchCommand::Fingerprint { repeats } => {
            let db = connect(global).await?;
            let speed = fingerprint_against_scan(&db, repeats).await?;
            if global.json {
                return print_json(&speed);
            }
            println!(
                "{:<24} {:>10} {:>9} {:>9} {:>13} {:>7} {:>7}",
                "table", "rows", "count s", "scan s", "fingerprint s", "/count", "/scan"
            );
            let line = |name: &str, rows: i64, count: f64, scan: f64, fingerprint: f64| {
                println!(
                    "{name:<24} {rows:>10} {count:>9.3} {scan:>9.3} {fingerprint:>13.3} {:>7.1} {:>7.1}",
                    ratio(fingerprint, count),
                    ratio(fingerprint, scan)
                );
            };
            for table in &speed.tables {
                line(
                    &table.table,
                    table.rows,
                    table.count_seconds,
                    table.table_scan_seconds,
                    table.fingerprint_seconds,
                );
            }
            line(
                "total",
                speed.tables.iter().map(|t| t.rows).sum::<i64>(),
                speed.count_seconds,
                speed.table_scan_seconds,
                speed.fingerprint_seconds,
            );
            println!("format {:?}", speed.format);
            Ok(())
        }
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
