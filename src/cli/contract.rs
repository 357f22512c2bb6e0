//! `contract`: the gate's verdict, then the contract revision (`flow_contract`), which `upgrade
//! head` never runs. `--dry-run` prints the verdict and the SQL and changes nothing.

use clap::Args;
use flowkey::migrate::flow::contract::{
    gate, resuming_past_the_gate, GateOptions, GateVerdict, QuietPeriod, CONTRACT_REVISION,
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
    let resuming = match resuming_past_the_gate(&migrator).await {
        Ok(resuming) => resuming,
        Err(err) => {
            db.close().await;
            return Err(err.into());
        }
    };
    let verdict = match resuming {
        // The gate passed when this contract started; it reads the session columns, which
        // the steps done may have dropped already.
        Some((done, steps)) => Gate::PassedAtStart { done, steps },
        None => match gate(&db, options).await {
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

/// The gate's verdict for this run: asked now, or passed when a contract that stopped half
/// way started.
enum Gate {
    Asked(GateVerdict),
    PassedAtStart { done: i64, steps: usize },
}

impl Gate {
    fn asked(&self) -> Option<&GateVerdict> {
        match self {
            Gate::Asked(verdict) => Some(verdict),
            Gate::PassedAtStart { .. } => None,
        }
    }

    fn print(&self) {
        match self {
            Gate::Asked(verdict) => print_verdict(verdict),
            Gate::PassedAtStart { done, steps } => println!(
                "gate: passed when this contract started; resuming after step {done} of {steps}"
            ),
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
