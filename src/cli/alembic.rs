//! `alembic-revision`: writes the Alembic revision that runs flowkey (see `flowkey::alembic`).

use std::path::PathBuf;

use clap::Args;
use flowkey::alembic::{write_revision, RevisionRequest};
use flowkey::migrate::revisions;

use crate::cli::{print_json, GlobalArgs};

#[derive(Debug, Clone, Args)]
pub struct AlembicRevisionArgs {
    /// The Alembic project's versions/ folder; the revision file is written into it.
    #[arg(long)]
    pub versions_dir: PathBuf,
    /// The Alembic revision to chain after (default: the folder's only head).
    #[arg(long)]
    pub down_revision: Option<String>,
    /// The new revision's id (default: 12 random hex digits, as Alembic makes them).
    #[arg(long)]
    pub rev_id: Option<String>,
    /// The revision's message, also the tail of its file name.
    #[arg(short, long, default_value = "migrate_session_to_flow_id")]
    pub message: String,
    /// The flowkey binary the revision runs when FLOWKEY_BIN is not set (default: `flowkey`
    /// on PATH).
    #[arg(long)]
    pub flowkey_bin: Option<String>,
}

pub fn run(args: &AlembicRevisionArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let head = revisions::head();
    let created = write_revision(&RevisionRequest {
        versions_dir: &args.versions_dir,
        down_revision: args.down_revision.as_deref(),
        revision_id: args.rev_id.as_deref(),
        message: &args.message,
        flowkey_bin: args.flowkey_bin.as_deref(),
        flowkey_revision: head.id,
        create_date: &chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string(),
    })?;
    if global.json {
        print_json(&serde_json::json!({
            "path": created.path,
            "revision": created.revision,
            "down_revision": created.down_revision,
            "flowkey_revision": head.id,
        }))
    } else {
        println!(
            "wrote {} (revision {}, after {}): its upgrade() runs `flowkey upgrade {}`, its \
             downgrade() `flowkey downgrade legacy`",
            created.path.display(),
            created.revision,
            created.down_revision.as_deref().unwrap_or("nothing"),
            head.id
        );
        Ok(())
    }
}
