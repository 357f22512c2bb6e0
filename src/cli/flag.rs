//! `flowkey flag set|get enable_flow_id_primary`: the runtime flag every server polls.

use anyhow::Context;
use flowkey::db::Db;
use flowkey::flags::{self, FlagScope, FlowIdPrimary, FLAG_NAME};

#[derive(Debug, clap::Args)]
pub struct FlagArgs {
    #[command(subcommand)]
    pub command: FlagCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum FlagCommand {
    /// Store a value (off, shadow, on) globally or for one tenant; servers apply it within
    /// one poll interval. `on` is refused while the backfill is incomplete or links are
    /// broken.
    Set {
        #[arg(value_parser = [FLAG_NAME])]
        name: String,
        /// off | shadow | on
        value: String,
        /// CLIENT_ACCOUNT_ID:ENGAGEMENT_ID; the global value when absent.
        #[arg(long)]
        tenant: Option<String>,
        /// Recorded in flowkey_flags.updated_by.
        #[arg(long, default_value = "cli")]
        updated_by: String,
    },
    /// Show the environment default, the stored values and whether `on` is allowed.
    Get {
        #[arg(value_parser = [FLAG_NAME], default_value = FLAG_NAME)]
        name: String,
    },
}

pub async fn run(db: Db, args: &FlagArgs) -> anyhow::Result<()> {
    match &args.command {
        FlagCommand::Set {
            value,
            tenant,
            updated_by,
            ..
        } => {
            let value: FlowIdPrimary = value.parse()?;
            let scope = match tenant {
                None => FlagScope::Global,
                Some(text) => FlagScope::parse(text)?,
            };
            flags::set_flag(&db, scope, value, updated_by).await?;
            println!("{FLAG_NAME} = {value} ({scope})");
        }
        FlagCommand::Get { .. } => {
            let default = flags::default_from_env()?;
            let stored = flags::stored_flags(&db)
                .await
                .context("cannot read flowkey_flags")?;
            let readiness = flags::readiness(&db).await?;
            println!("{FLAG_NAME}: default {default} (from {})", flags::ENV_VAR);
            for flag in &stored {
                println!(
                    "  {} = {} (set by {} at {})",
                    flag.scope,
                    flag.value,
                    flag.updated_by,
                    flag.updated_at.0.to_rfc3339()
                );
            }
            if readiness.is_ready() {
                println!("ready for on: yes");
            } else {
                println!("ready for on: no");
                for reason in readiness.reasons() {
                    println!("  {reason}");
                }
            }
        }
    }
    Ok(())
}
