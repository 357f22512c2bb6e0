//! `flowkey flag set|unset|get enable_flow_id_primary`: the runtime flag every server polls.

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
    /// one poll interval. `on` is refused while the backfill is incomplete, links are
    /// broken, a session has no mapping, or the scope had shadow mismatches since its last
    /// flag change (`--force` overrides only the last).
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
        /// Turn `on` although the scope has shadow mismatches since its last flag change
        /// (recorded in flowkey_flag_changes); never past the readiness check.
        #[arg(long)]
        force: bool,
    },
    /// Remove a stored value: a tenant's override (`--tenant`), after which the tenant follows
    /// the global value again, or the global value, after which servers use their default.
    Unset {
        #[arg(value_parser = [FLAG_NAME])]
        name: String,
        /// CLIENT_ACCOUNT_ID:ENGAGEMENT_ID; the global value when absent.
        #[arg(long)]
        tenant: Option<String>,
        /// Named in the log line.
        #[arg(long, default_value = "cli")]
        updated_by: String,
    },
    /// Show the environment default, the global value, every per-tenant override and whether
    /// `on` is allowed.
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
            force,
            ..
        } => {
            let value: FlowIdPrimary = value.parse()?;
            let scope = match tenant {
                None => FlagScope::Global,
                Some(text) => FlagScope::parse(text)?,
            };
            let overridden = flags::set_flag_forcing(&db, scope, value, updated_by, *force).await?;
            println!("{FLAG_NAME} = {value} ({scope})");
            if let Some(mismatches) = overridden {
                println!("  forced past {mismatches} shadow mismatches (recorded in flowkey_flag_changes)");
            }
        }
        FlagCommand::Unset {
            tenant, updated_by, ..
        } => {
            let scope = match tenant {
                None => FlagScope::Global,
                Some(text) => FlagScope::Tenant(flowkey::ids::TenantId::parse_pair(text)?),
            };
            if flags::unset_flag(&db, scope, updated_by).await? {
                println!("{FLAG_NAME}: removed the value of {scope}");
            } else {
                println!("{FLAG_NAME}: no value was stored for {scope}");
            }
        }
        FlagCommand::Get { .. } => {
            let default = flags::default_from_env()?;
            let stored = flags::stored_flags(&db)
                .await
                .context("cannot read flowkey_flags")?;
            let readiness = flags::readiness(&db).await?;
            println!("{FLAG_NAME}: default {default} (from {})", flags::ENV_VAR);
            let (global, overrides): (Vec<_>, Vec<_>) =
                stored.iter().partition(|flag| flag.scope == "global");
            match global.first() {
                Some(flag) => println!(
                    "  global = {} (set by {} at {})",
                    flag.value,
                    flag.updated_by,
                    flag.updated_at.0.to_rfc3339()
                ),
                None => println!("  global: not stored (servers use their default)"),
            }
            println!("  per-tenant overrides: {}", overrides.len());
            for flag in &overrides {
                println!(
                    "    {} = {} (set by {} at {}; `flowkey flag unset {FLAG_NAME} --tenant {}` removes it)",
                    flag.scope,
                    flag.value,
                    flag.updated_by,
                    flag.updated_at.0.to_rfc3339(),
                    flag.scope
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
            let checks = &readiness.checks;
            match (
                &checks.verified_at,
                &checks.reason,
                checks.delta_rows_checked,
            ) {
                (Some(at), Some(delta), Some(_)) => {
                    println!("  (link checks: the verification stored at {at}, and {delta})")
                }
                (Some(at), _, _) => println!("  (link checks: the verification stored at {at})"),
                (None, Some(why), _) => println!("  (link checks: run now, since {why})"),
                (None, None, _) => {}
            }
        }
    }
    Ok(())
}
