//! `verify`, `report`, `rehearse`: the proof, the account and the dress rehearsal of the
//! session→flow migration.

use flowkey::migrate::flow::live::catch_up_command;
use flowkey::migrate::flow::verification_record::{verify_and_record, verify_and_record_online};
use flowkey::migrate::flow::{rehearse, report};

use crate::cli::migrate::TuningArgs;
use crate::cli::{connect, print_json, GlobalArgs};

/// Recompute the legacy fingerprints and check every link; exits non-zero on any mismatch.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The go/no-go while the application writes: legacy values are compared row by row with
    /// the write ledger's baseline (rows the application wrote since the ledger's start are
    /// its own), instead of requiring the fingerprints taken before the upgrade to match.
    #[arg(long)]
    pub online: bool,
}

/// Per table: rows, rows linked, rows left unlinked and why; ambiguous sessions, cross-tenant
/// conflicts, flows created.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {}

/// Copy the database, then upgrade, verify, downgrade and compare on the copy.
#[derive(Debug, Clone, clap::Args)]
pub struct RehearseArgs {
    #[command(flatten)]
    pub tuning: TuningArgs,
}

pub async fn run_verify(args: VerifyArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let db = connect(global).await?;
    let outcome = if args.online {
        verify_and_record_online(&db).await
    } else {
        verify_and_record(&db).await
    };
    db.close().await;
    let verified = outcome?;
    if global.json {
        print_json(&verified)?;
    } else {
        print!("{verified}");
    }
    if verified.is_ok() {
        Ok(())
    } else {
        anyhow::bail!("verify failed: {}", verified.summary())
    }
}

/// Map the sessions the old application wrote since the last catch-up: the mapping rules,
/// stand-ins giving way to real flows, stand-ins for sessions without a flow, and the rows
/// these now link. Safe while the application writes; run before `flag set … on`.
#[derive(Debug, Clone, clap::Args)]
pub struct CatchUpArgs {}

pub async fn run_catch_up(_args: CatchUpArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let db = connect(global).await?;
    let outcome = catch_up_command(&db).await;
    db.close().await;
    let summary = outcome?;
    if global.json {
        print_json(&summary)
    } else {
        let linked: u64 = summary.rows_linked.iter().map(|(_, rows)| rows).sum();
        println!(
            "sessions mapped by the rules or given a stand-in: {} (stand-ins created: {}); \
             sessions moved to their claiming flow: {}; rows linked: {linked}; \
             sessions still without a mapping: {}",
            summary.mapping.sessions_mapped,
            summary.mapping.flows_created,
            summary.sessions_moved,
            summary.sessions_unmapped
        );
        Ok(())
    }
}

pub async fn run_report(_args: ReportArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let db = connect(global).await?;
    let outcome = report(&db).await;
    let legacy_writes = flowkey::migrate::flow::legacy_signal::legacy_writes(&db).await;
    db.close().await;
    let migration_report = outcome?;
    let legacy_writes = legacy_writes?;
    if global.json {
        let mut value = serde_json::to_value(&migration_report)?;
        if let Some(object) = value.as_object_mut() {
            object.insert(
                "legacy_writes".into(),
                serde_json::to_value(&legacy_writes)?,
            );
        }
        print_json(&value)
    } else {
        print!("{migration_report}");
        print_legacy_writes(legacy_writes.as_deref());
        Ok(())
    }
}

pub async fn run_rehearse(args: RehearseArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let rehearsal = rehearse(&global.database_url, &args.tuning.options(global)).await?;
    if global.json {
        print_json(&rehearsal)?;
    } else {
        print!("{rehearsal}");
    }
    if rehearsal.is_ok() {
        Ok(())
    } else {
        anyhow::bail!("the rehearsal found differences: see above")
    }
}

/// The legacy-write signal (what the contract's quiet period waits on).
fn print_legacy_writes(writes: Option<&[flowkey::migrate::flow::legacy_signal::LegacyWrites]>) {
    let Some(writes) = writes else {
        println!("legacy writes: not watched (revision legacy_write_signal not applied)");
        return;
    };
    println!("legacy writes (a session key and no flow_id, as only old code writes):");
    for table in writes {
        match &table.last_seen {
            Some(last) => println!(
                "  {:<20} {:>10} writes, last {last} ({} s ago)",
                table.table,
                table.writes,
                table.seconds_since_last.unwrap_or_default()
            ),
            None => println!("  {:<20} {:>10} writes", table.table, 0),
        }
    }
}
