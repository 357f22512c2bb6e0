//! `flowkey serve`: the flow-keyed HTTP API. Refuses to start on a database that is not at
//! head; once running, answers 503 `schema_not_at_head` on the /api routes while the schema
//! is taken below head, and serves again when it is back (`http::schema_gate`). On SIGTERM
//! or Ctrl-C stops accepting, finishes the requests in flight, writes the last legacy
//! traffic counts and exits.

use std::net::SocketAddr;

use anyhow::Context;
use flowkey::db::Db;
use flowkey::http::{app, AdminToken, AppState, ServiceConfig};

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,
    /// Bearer token that `/api/admin/*` demand (`Authorization: Bearer <TOKEN>`, at least
    /// 16 bytes). Without one the admin routes answer 403.
    #[arg(long, env = "FLOWKEY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Serve reads only: writes answer 503 `read_only`, nothing is written (legacy traffic
    /// stays in /metrics). Implied on a PostgreSQL hot standby (pg_is_in_recovery()).
    #[arg(long)]
    pub read_only: bool,
    /// PostgreSQL: where the flag listener (LISTEN) connects, when the database URL goes
    /// through a transaction pooler where LISTEN cannot work: a direct URL of the same
    /// database. Default: the database URL.
    #[arg(long, env = "FLOWKEY_LISTEN_URL", hide_env_values = true)]
    pub listen_url: Option<String>,
}

pub async fn run(db: Db, args: &ServeArgs) -> anyhow::Result<()> {
    // Configuration mistakes first: they need no database to be reported.
    let mut config = ServiceConfig::from_env()?;
    config.admin_token = match args.admin_token.as_deref() {
        None => None,
        Some(text) => Some(
            AdminToken::parse(text).context("--admin-token / FLOWKEY_ADMIN_TOKEN is refused")?,
        ),
    };
    let admin_disabled = config.admin_token.is_none();
    if !db
        .prepared_statements_survive()
        .await
        .context("cannot check the connection for a transaction pooler")?
    {
        anyhow::bail!(
            "refusing to serve: the database is reached through a transaction pooler that \
             does not keep prepared statements per client (PgBouncer before 1.21, or \
             max_prepared_statements = 0); use pool_mode = session for flowkey serve, or \
             PgBouncer 1.21+ with max_prepared_statements > 0"
        );
    }
    let standby = db
        .is_hot_standby()
        .await
        .context("cannot ask the database whether it is a standby")?;
    config.read_only = args.read_only || standby;
    if args.listen_url.is_some() {
        config.listen_url = args.listen_url.clone();
    }
    if config.read_only {
        eprintln!(
            "flowkey: serving reads only ({}): writes answer 503 read_only",
            if standby {
                "the database is a hot standby"
            } else {
                "--read-only"
            }
        );
    }
    let state = AppState::new(db.clone(), config)?;
    let schema = state
        .schema
        .check()
        .await
        .context("cannot read the database schema")?;
    if !schema.at_head() {
        anyhow::bail!("refusing to serve: {}", schema.describe());
    }
    let default = state.config.flag_default;
    if let Err(err) = flowkey::flags::check_default(&db, default).await {
        anyhow::bail!(
            "refusing to serve with {}={default}: {err}",
            flowkey::flags::ENV_VAR
        );
    }
    if admin_disabled {
        eprintln!("flowkey: admin routes disabled (no --admin-token / FLOWKEY_ADMIN_TOKEN)");
    }
    state
        .refresh_flags()
        .await
        .context("cannot read flowkey_flags")?;
    let background = state.spawn_background();
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "serving");
    eprintln!("flowkey: serving on http://{address} (Ctrl-C or SIGTERM to stop)");
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await;
    background.shutdown().await;
    db.close().await;
    served.context("server failed")?;
    eprintln!("flowkey: stopped");
    Ok(())
}

/// Resolves on Ctrl-C, or SIGTERM where there are signals.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
