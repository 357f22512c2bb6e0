//! `flowkey serve`: the flow-keyed HTTP API. Refuses to start on a database that is not at
//! head; once running, answers 503 `schema_not_at_head` on the /api routes while the schema
//! is taken below head, and serves again when it is back (`http::schema_gate`). On SIGTERM
//! or Ctrl-C stops accepting, finishes the requests in flight, writes the last legacy
//! traffic counts and exits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use flowkey::db::Db;
use flowkey::http::{app, AdminToken, AppState, AuthMode, ServiceConfig};
use flowkey::identity::{
    GrantSource, JwtAlgorithm, JwtConfig, KeySource, Verifier, DEFAULT_GRANT_CACHE_TTL,
};

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
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// How the tenant routes (v3, v1) authenticate callers.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthArgs {
    /// `jwt`: every tenant route demands `Authorization: Bearer <JWT>`. `none`: the tenant
    /// headers are trusted, allowed only on a loopback address (local use). `auto`: `jwt`
    /// when a key is configured, else `none` on loopback and a refusal on any other address.
    #[arg(long, env = "FLOWKEY_AUTH", default_value = "auto", value_parser = ["auto", "jwt", "none"])]
    pub auth: String,
    /// The algorithm tokens must be signed with (HS256, RS256 or ES256); never read from the
    /// token. Defaults to HS256 with a secret, RS256 with a key or JWKS file.
    #[arg(long, env = "FLOWKEY_JWT_ALGORITHM")]
    pub jwt_algorithm: Option<String>,
    /// HS256's shared secret (at least 32 bytes).
    #[arg(long, env = "FLOWKEY_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// A PEM public key (RS256 or ES256).
    #[arg(long, env = "FLOWKEY_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,
    /// A JWKS file (RS256 or ES256); the token's `kid` picks the key.
    #[arg(long, env = "FLOWKEY_JWT_JWKS")]
    pub jwt_jwks: Option<PathBuf>,
    /// The `iss` tokens must carry.
    #[arg(long, env = "FLOWKEY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// The `aud` tokens must carry.
    #[arg(long, env = "FLOWKEY_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[arg(long, env = "FLOWKEY_JWT_LEEWAY_SECS", default_value_t = 30)]
    pub jwt_leeway_secs: u64,
    /// Where tenant grants come from: `rbac` (the platform's users, user_profiles,
    /// client_access, engagement_access and user_account_associations tables, which must
    /// exist) or `claims` (the token's `client_account_id` and `engagement_ids`).
    #[arg(long, env = "FLOWKEY_GRANTS", default_value = "rbac", value_parser = ["rbac", "claims"])]
    pub grants: String,
    /// How long a grant read from the RBAC tables is trusted, in milliseconds.
    #[arg(long, env = "FLOWKEY_GRANT_CACHE_TTL_MS", default_value_t = DEFAULT_GRANT_CACHE_TTL.as_millis() as u64)]
    pub grant_cache_ttl_ms: u64,
}

impl AuthArgs {
    fn key(&self) -> anyhow::Result<Option<KeySource>> {
        let given = [
            self.jwt_secret.is_some(),
            self.jwt_public_key.is_some(),
            self.jwt_jwks.is_some(),
        ];
        if given.iter().filter(|given| **given).count() > 1 {
            anyhow::bail!(
                "give one of --jwt-secret, --jwt-public-key, --jwt-jwks (FLOWKEY_JWT_SECRET, \
                 FLOWKEY_JWT_PUBLIC_KEY, FLOWKEY_JWT_JWKS), not several"
            );
        }
        Ok(if let Some(secret) = &self.jwt_secret {
            Some(KeySource::Secret(secret.trim().as_bytes().to_vec()))
        } else if let Some(path) = &self.jwt_public_key {
            Some(KeySource::PublicKeyFile(path.clone()))
        } else {
            self.jwt_jwks.clone().map(KeySource::JwksFile)
        })
    }

    /// The server's authentication, or why it may not start with what it was given.
    pub fn mode(&self, bind: SocketAddr) -> anyhow::Result<AuthMode> {
        let key = self.key()?;
        let loopback = bind.ip().is_loopback();
        let none_allowed = |why: &str| -> anyhow::Result<AuthMode> {
            if loopback {
                Ok(AuthMode::None)
            } else {
                anyhow::bail!(
                    "refusing to serve on {bind} without authentication ({why}): configure \
                     FLOWKEY_JWT_SECRET (HS256), --jwt-public-key or --jwt-jwks; `--auth none` \
                     is allowed only on a loopback address such as 127.0.0.1"
                )
            }
        };
        let key = match (self.auth.as_str(), key) {
            ("none", _) => return none_allowed("--auth none"),
            ("auto", None) => return none_allowed("no JWT key configured"),
            (_, None) => anyhow::bail!(
                "--auth jwt needs a key: FLOWKEY_JWT_SECRET (HS256), --jwt-public-key or --jwt-jwks"
            ),
            (_, Some(key)) => key,
        };
        let algorithm = match &self.jwt_algorithm {
            Some(text) => JwtAlgorithm::parse(text)?,
            None if matches!(key, KeySource::Secret(_)) => JwtAlgorithm::Hs256,
            None => JwtAlgorithm::Rs256,
        };
        let config = JwtConfig {
            algorithm,
            key,
            issuer: self
                .jwt_issuer
                .clone()
                .filter(|text| !text.trim().is_empty()),
            audience: self
                .jwt_audience
                .clone()
                .filter(|text| !text.trim().is_empty()),
            leeway: Duration::from_secs(self.jwt_leeway_secs),
        };
        let verifier = Verifier::new(&config).context("the JWT configuration is refused")?;
        let grants = GrantSource::parse(&self.grants)
            .with_context(|| format!("--grants {:?} is neither rbac nor claims", self.grants))?;
        Ok(AuthMode::Jwt {
            verifier: Arc::new(verifier),
            grants,
            grant_cache_ttl: Duration::from_millis(self.grant_cache_ttl_ms),
        })
    }
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
    config.auth = args.auth.mode(args.bind)?;
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
    match &state.auth {
        None => {
            tracing::warn!(
                "authentication is off (--auth none): any caller on this host reaches every tenant"
            );
            eprintln!(
                "flowkey: WARNING: authentication is off (--auth none, loopback only): any \
                 caller on this host reaches every tenant"
            );
        }
        Some(auth) => {
            let missing = auth
                .grants
                .check_source()
                .await
                .context("cannot look for the RBAC tables")?;
            if !missing.is_empty() {
                anyhow::bail!(
                    "refusing to serve: --grants rbac reads the platform's RBAC tables, and this \
                     database lacks {}; use --grants claims to take grants from the tokens",
                    missing.join(", ")
                );
            }
        }
    }
    let schema = state
        .schema
        .check()
        .await
        .context("cannot read the database schema")?;
    if !schema.servable() {
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
