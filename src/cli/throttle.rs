//! `throttle pause|resume|status`: the operator's control over every batched run on a
//! database, stored in it (so it works from another shell or host while a run waits).

use clap::{Args, Subcommand};
use flowkey::db::Db;
use flowkey::migrate::throttle::{operator_switch, reason_to_wait, set_paused, ThrottleLimits};

use crate::cli::{print_json, GlobalArgs};

#[derive(Debug, Clone, Args)]
pub struct ThrottleArgs {
    #[command(subcommand)]
    pub action: ThrottleAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ThrottleAction {
    /// Make every batched run wait between batches until `throttle resume`.
    Pause {
        /// Why, shown on the waiting run's progress and in its audit log.
        #[arg(long, default_value = "paused by an operator")]
        note: String,
    },
    /// Let waiting runs go on.
    Resume,
    /// The operator's switch and, on PostgreSQL, whether a run would wait now (with the
    /// default limits).
    Status,
}

pub async fn run(db: Db, args: &ThrottleArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let by = format!(
        "{}@{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned()),
        gethostname::gethostname().to_string_lossy()
    );
    match &args.action {
        ThrottleAction::Pause { note } => {
            set_paused(&db, true, note, &by).await?;
            println!("paused: batched runs wait between batches until `flowkey throttle resume`");
        }
        ThrottleAction::Resume => {
            set_paused(&db, false, "resumed", &by).await?;
            println!("resumed");
        }
        ThrottleAction::Status => {
            let switch = operator_switch(&db).await?;
            let reason = reason_to_wait(&db, &ThrottleLimits::default()).await?;
            if global.json {
                print_json(&serde_json::json!({ "operator": switch, "would_wait": reason }))?;
            } else {
                match &switch {
                    Some(switch) if switch.paused => println!(
                        "paused by {} at {}: {}",
                        switch.changed_by, switch.changed_at, switch.note
                    ),
                    _ => println!("not paused"),
                }
                match reason {
                    Some(reason) => println!("a run would wait now: {reason}"),
                    None => println!("a run would go on now"),
                }
            }
        }
    }
    Ok(())
}
