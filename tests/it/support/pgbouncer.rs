//! A PgBouncer of one test, in front of the shared PostgreSQL server: the distribution's
//! `pgbouncer` binary (`.ci/run` installs it) on a free loopback port, in the pool mode the
//! test asks for, every database of the server reachable by name. Stopped when dropped.
//!
//! `auth_type = any` with `user=postgres` in the database line: the shared server trusts
//! loopback, so the pooler needs no password file. As root (PgBouncer refuses root) it runs
//! as the `postgres` user.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::harness::pg_admin_url;

pub struct PgBouncer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

#[derive(Debug, Clone, Copy)]
pub enum PoolMode {
    Session,
    Transaction,
}

impl PgBouncer {
    pub fn start(mode: PoolMode) -> PgBouncer {
        let binary = find_pgbouncer();
        let server = url::Url::parse(&pg_admin_url()).expect("FLOWKEY_TEST_PG_URL is a URL");
        let dir = tempfile::Builder::new()
            .prefix("flowkey-pgbouncer.")
            .tempdir()
            .expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("address")
            .port();
        let config = dir.path().join("pgbouncer.ini");
        std::fs::write(
            &config,
            format!(
                "[databases]\n\
                 * = host={host} port={server_port} user={user}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = any\n\
                 pool_mode = {mode}\n\
                 default_pool_size = {pool_size}\n\
                 max_client_conn = 200\n\
                 ignore_startup_parameters = extra_float_digits,options,search_path\n\
                 logfile = {dir}/pgbouncer.log\n",
                host = server.host_str().unwrap_or("127.0.0.1"),
                server_port = server.port().unwrap_or(5432),
                user = if server.username().is_empty() {
                    "postgres"
                } else {
                    server.username()
                },
                mode = match mode {
                    PoolMode::Session => "session",
                    PoolMode::Transaction => "transaction",
                },
                dir = dir.path().display(),
                // Session mode gives each client a server session of its own for as long
                // as it stays connected: room for a runner's or a server's whole pool.
                pool_size = match mode {
                    PoolMode::Session => 24,
                    PoolMode::Transaction => 4,
                },
            ),
        )
        .expect("write pgbouncer.ini");
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
            .unwrap_or(false);
        let mut command = if as_root {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(
                chown.success(),
                "cannot give the pgbouncer directory to postgres"
            );
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&binary);
            command
        } else {
            Command::new(&binary)
        };
        let child = command
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pgbouncer starts");
        let bouncer = PgBouncer {
            child,
            port,
            _dir: dir,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "pgbouncer did not listen on {port}: {}",
                std::fs::read_to_string(bouncer._dir.path().join("pgbouncer.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        bouncer
    }

    /// `url` (a database on the shared server) reached through this pooler instead.
    pub fn url_for(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).expect("a URL");
        url.set_port(Some(self.port)).expect("a port");
        url.to_string()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // Through runuser the pooler is a grandchild: stop it by its configuration's port.
        let _ = Command::new("pkill")
            .args([
                "-f",
                &format!("{}/pgbouncer.ini", self._dir.path().display()),
            ])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_pgbouncer() -> PathBuf {
    for candidate in ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"] {
        if std::path::Path::new(candidate).is_file() {
            return PathBuf::from(candidate);
        }
    }
    if let Some(dir) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| dir.join("pgbouncer").is_file())
    {
        return dir.join("pgbouncer");
    }
    panic!(
        "this test runs PgBouncer and needs its binary: install the distribution's package \
         (`apt-get install pgbouncer`, as .ci/run does)"
    );
}
