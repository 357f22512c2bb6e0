//! `contract`: the gate's verdict, then the contract revision (`flow_contract`), which `upgrade
//! head` never runs. `--dry-run` prints the verdict and the SQL and changes nothing.

use clap::Args;
use flowkey::migrate::flow::contract::{
    contract_progress, gate, ContractProgress, GateOptions, GateVerdict, QuietPeriod,
    CONTRACT_REVISION,
};
use flowkey::migrate::{Direction, Migrator};

use crate::cli::migrate::{print_summary, TuningArgs};
use crate::cli::{connect, print_json, GlobalArgs};

#[derive(Debug, Clone, Args)]
pub struct ContractArgs {
    /// Print the gate's verdict and the SQL of the contract; change nothing. Exits non-zero
    /// when the gate refuses.
    #[arg(long)]
    pub dry_run: bool,
    /// How long no legacy write (a session key without flow_id) may have been seen: 0s, 30m,
    /// 12h, 7d.
    #[arg(long, default_value = "7d")]
    pub quiet_period: QuietPeriod,
    /// Contract even though the gate refuses (the audit log records it, with the gate's
    /// reasons). Never past an object that depends on a dropped column.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub tuning: TuningArgs,
}

pub async fn run(args: ContractArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let db = connect(global).await?;
    let options = GateOptions {
        quiet_period: args.quiet_period,
        force: args.force,
    };
    let mut run_options = args.tuning.options(global);
    run_options.contract = options;
    let migrator = Migrator::new(db.clone(), run_options);
    let progress = match contract_progress(&migrator).await {
        Ok(progress) => progress,
        Err(err) => {
            db.close().await;
            return Err(err.into());
        }
    };
    let verdict = match progress {
        // The gate reads the session columns, which the steps done may have dropped.
        ContractProgress::Resuming { done, steps } => Gate::PassedAtStart { done, steps },
        ContractProgress::Applied => Gate::NotNeeded,
        ContractProgress::NotPastTheGate => match gate(&db, options).await {
            Ok(verdict) => Gate::Asked(verdict),
            Err(err) => {
                db.close().await;
                return Err(err.into());
            }
        },
    };
    if args.dry_run {
        let current = migrator.current().await;
        db.close().await;
        let sql = migrator.offline_sql(db.engine(), current?, CONTRACT_REVISION, Direction::Up)?;
        if global.json {
            print_json(&serde_json::json!({ "gate": verdict.asked(), "sql": sql }))?;
        } else {
            verdict.print();
            println!("-- the SQL the contract would run:");
            print!("{sql}");
        }
        if verdict.asked().is_some_and(|verdict| !verdict.allows()) {
            anyhow::bail!("the gate refuses the contract (dry run: nothing was changed)");
        }
        return Ok(());
    }
    if !global.json {
        verdict.print();
    }
    if let Some(Err(err)) = verdict.asked().map(|verdict| verdict.clone().into_result()) {
        db.close().await;
        return Err(err.into());
    }
    let summary = migrator.upgrade(CONTRACT_REVISION).await;
    db.close().await;
    print_summary(&summary?, global)
}

/// The gate's verdict for this run: asked now, passed when a contract that stopped half way
/// started, or not needed (applied already).
enum Gate {
    Asked(GateVerdict),
    PassedAtStart {
        done: i64,
        steps: usize,
    },
    /// The contract is applied already.
    NotNeeded,
}

impl Gate {
    fn asked(&self) -> Option<&GateVerdict> {
        match self {
            Gate::Asked(verdict) => Some(verdict),
            Gate::PassedAtStart { .. } | Gate::NotNeeded => None,
        }
    }

    fn print(&self) {
        match self {
            Gate::Asked(verdict) => print_verdict(verdict),
            Gate::PassedAtStart { done, steps } => println!(
                "gate: passed when this contract started; resuming after step {done} of {steps}"
            ),
            Gate::NotNeeded => println!("gate: not asked, the contract is applied already"),
        }
    }
}

fn print_verdict(verdict: &GateVerdict) {
    if verdict.reasons.is_empty() && verdict.blockers.is_empty() {
        println!(
            "gate: passes (quiet period {} s, no legacy write within it, flag on everywhere, verify clean)",
            verdict.quiet_period_secs
        );
    } else {
        let state = if !verdict.blockers.is_empty() {
            "blocked"
        } else if verdict.forced {
            "refuses, FORCED"
        } else {
            "refuses"
        };
        println!("gate: {state}");
        for reason in verdict.blockers.iter().chain(&verdict.reasons) {
            println!("  - {reason}");
        }
    }
}
