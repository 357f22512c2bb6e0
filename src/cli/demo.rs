//! `flowkey demo`: the whole transition on the embedded SQLite default, in one command.
//!
//! Seeds a legacy database with every oddity of real data, proves on a copy that upgrade and
//! downgrade give the legacy data back identical, upgrades the database itself online with
//! progress, verifies, prints the linking report, and resolves a legacy id of each client form
//! to its flow. The migrated database stays in place for `flowkey serve`.

use std::path::PathBuf;

use anyhow::Context;
use flowkey::compat::{CompatConfig, CompatMetrics, SessionFlowCompatibilityService};
use flowkey::db::{Db, DbUrl};
use flowkey::ids::AnyId;
use flowkey::migrate::flow::{rehearse, report, verify};
use flowkey::migrate::{Migrator, ProgressDisplay};
use flowkey::seed::{Oddities, SeedConfig};
use flowkey::sessions::one_session_per_rule;

use crate::cli::migrate::TuningArgs;
use crate::cli::GlobalArgs;

/// Seed a legacy database with every oddity, rehearse on a copy, upgrade online, verify,
/// report, and resolve legacy ids of each client form.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Tenants to seed.
    #[arg(long, default_value_t = 3)]
    pub tenants: u32,
    /// Data imports (CSV files) per tenant.
    #[arg(long, default_value_t = 12)]
    pub imports: u32,
    /// Rows per CSV file.
    #[arg(long, default_value_t = 200)]
    pub rows_per_import: u32,
    /// Random seed of the generated data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Delete the SQLite file first if it exists (the demo needs an empty database).
    #[arg(long)]
    pub reset: bool,
    #[command(flatten)]
    pub tuning: TuningArgs,
}

pub async fn run(args: DemoArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    if args.reset {
        reset_sqlite_file(&global.database_url)?;
    }
    let db = crate::cli::connect(global).await?;
    let seeded = seed_legacy(&db, &args, global).await;
    // The rehearsal copies the database; on PostgreSQL a template copy needs every other
    // connection closed, ours included.
    db.close().await;
    seeded?;
    rehearse_on_a_copy(&args, global).await?;
    let db = crate::cli::connect(global).await?;
    let outcome = migrate_in_place(&db, &args, global).await;
    db.close().await;
    outcome
}

async fn seed_legacy(db: &Db, args: &DemoArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let schema = flowkey::db::introspect::introspect(db).await?;
    if !schema.tables.is_empty() {
        anyhow::bail!(
            "the demo needs an empty database, and {} has {} tables: pass --reset to start over \
             (SQLite only) or --database-url to use another database",
            DbUrl::parse(&global.database_url)?,
            schema.tables.len()
        );
    }
    let options = args.tuning.options(global);
    heading("1. a legacy database, with every oddity real data has");
    let config = SeedConfig {
        seed: args.seed,
        tenants: args.tenants,
        imports_per_tenant: args.imports,
        rows_per_import: args.rows_per_import,
        oddities: Oddities::default(),
        progress: options.progress,
        ..SeedConfig::default()
    };
    let seeded = flowkey::seed::seed(db, &config).await?;
    println!(
        "seeded {} rows ({} raw import records) in {:.2}s",
        seeded.total_rows(),
        config.total_raw_records(),
        seeded.elapsed.as_secs_f64()
    );
    Ok(())
}

async fn rehearse_on_a_copy(args: &DemoArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let options = args.tuning.options(global);
    heading("2. rehearsal on a copy: upgrade, verify, downgrade, compare with the original");
    let rehearsal = rehearse(
        &global.database_url,
        &flowkey::migrate::RunOptions {
            progress: ProgressDisplay::Hidden,
            ..options.clone()
        },
    )
    .await?;
    let t = &rehearsal.timings_ms;
    println!(
        "copy {} ms, upgrade {} ms, verify {} ms, downgrade {} ms, comparison {} ms",
        t.copy, t.upgrade, t.verify, t.downgrade, t.final_check
    );
    if !rehearsal.is_ok() {
        anyhow::bail!(
            "the rehearsal found differences: {}",
            rehearsal.downgrade_differences.join("; ")
        );
    }
    println!("downgrade gave back the legacy schema and every legacy row, byte for byte");
    Ok(())
}

async fn migrate_in_place(db: &Db, args: &DemoArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let options = args.tuning.options(global);
    heading("3. upgrade head, online, on the database itself");
    let migrator = Migrator::new(db.clone(), options);
    let summary = migrator.upgrade("head").await?;
    for run in &summary.revisions {
        let total: u64 = run.steps.iter().map(|step| step.duration_ms).sum();
        println!("applied {:<18} {:>6} ms", run.id, total);
    }

    heading("4. verify: fingerprints of every legacy table, every link, every foreign key");
    let verified = verify(db).await?;
    print!("{verified}");
    if !verified.is_ok() {
        anyhow::bail!("verify failed: {}", verified.summary());
    }

    heading("5. what was linked, what was not, and why");
    print!("{}", report(db).await?);

    heading("6. legacy ids, in every form clients send, resolve to their flow");
    resolve_each_client_form(db).await?;

    println!();
    println!(
        "the migrated database stays at {}: try `flowkey serve` (on loopback without \
         authentication unless a JWT key is configured; see docs/rollout.md), `flowkey report`, \
         `flowkey downgrade legacy`",
        DbUrl::parse(&global.database_url)?
    );
    Ok(())
}

/// Resolves one mapped session per mapping rule, in each client form, through the same
/// compatibility service the legacy v1 API uses; also shows that another tenant gets nothing.
async fn resolve_each_client_form(db: &Db) -> anyhow::Result<()> {
    let metrics = CompatMetrics::register(&prometheus::Registry::new())?;
    let service = SessionFlowCompatibilityService::new(
        db.clone(),
        &CompatConfig::default(),
        metrics,
        flowkey::db::ServedKeys::default(),
    );
    let samples = one_session_per_rule(db).await?;
    for sample in &samples {
        let uuid = sample.session_id.to_string();
        for form in [
            uuid.clone(),
            format!("disc_session_{}", uuid.to_uppercase()),
            format!("session-{uuid}"),
        ] {
            let flow = service.resolve_text(&form, sample.tenant).await?;
            println!("{form:<50} -> flow {flow}  (rule {})", sample.rule);
        }
    }
    if let Some(sample) = samples.first() {
        let stranger = flowkey::ids::TenantId::new(
            flowkey::ids::ClientAccountId::from_stored(uuid::Uuid::nil()),
            flowkey::ids::EngagementId::from_stored(uuid::Uuid::nil()),
        );
        match service
            .resolve(AnyId::Session(sample.session_id), stranger)
            .await
        {
            Err(err) => println!("the same id from another tenant: {err}"),
            Ok(flow) => anyhow::bail!("a session resolved across tenants to {flow}"),
        }
    }
    Ok(())
}

fn heading(text: &str) {
    println!();
    println!("== {text}");
}

/// Removes a SQLite database file and its WAL companions; refuses any other URL.
fn reset_sqlite_file(url: &str) -> anyhow::Result<()> {
    let DbUrl::Sqlite { path, memory, .. } = DbUrl::parse(url)? else {
        anyhow::bail!("--reset only deletes SQLite files; drop a PostgreSQL database yourself");
    };
    if memory {
        return Ok(());
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let file = PathBuf::from(file);
        if file.exists() {
            std::fs::remove_file(&file)
                .with_context(|| format!("cannot delete {}", file.display()))?;
        }
    }
    Ok(())
}
