//! A throwaway PostgreSQL cluster of one test: `initdb` into a temp directory (trust auth),
//! `pg_ctl start` on a free loopback port, and real stops, starts and crash-like restarts.
//! The shared server on 127.0.0.1:5432 is never restarted (other tests use it); a test that
//! needs the server itself to go away builds one of these.
//!
//! The binaries are found in `FLOWKEY_PG_BINDIR`, else `pg_config --bindir`, else the newest
//! `/usr/lib/postgresql/*/bin`, else `PATH`. Missing binaries fail the test with a message
//! saying how to get them (`scripts/ensure-postgres.sh` installs them); they never skip it.
//! As root (initdb refuses root), every command runs as the `postgres` user (`runuser`),
//! in a directory owned by it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// How `pg_ctl` stops the server: `fast` (clients disconnected, clean shutdown) or
/// `immediate` (no shutdown at all: the next start runs crash recovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    Fast,
    Immediate,
}

impl StopMode {
    fn as_arg(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// A running private cluster; stopped (immediately) and deleted when dropped.
pub struct PrivateCluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    run_as_postgres: bool,
    _dir: tempfile::TempDir,
}

impl PrivateCluster {
    /// `initdb` and start; panics with the reason when that is impossible here.
    pub fn start() -> PrivateCluster {
        let bin = find_binaries();
        let run_as_postgres = running_as_root();
        let dir = owned_temp_dir(run_as_postgres);
        let port = free_port();
        let cluster = PrivateCluster {
            bin,
            data: dir.path().join("data"),
            port,
            run_as_postgres,
            _dir: dir,
        };
        let initdb = cluster.run(
            "initdb",
            &[
                "-D",
                path_str(&cluster.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        assert!(
            initdb.status.success(),
            "initdb of the private cluster failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        cluster.pg_ctl_start();
        cluster
    }

    /// A streaming hot standby of this cluster: `pg_basebackup -R` (streaming replication,
    /// which initdb's trust rules allow from loopback) into a temp directory of its own,
    /// started on its own free port; stopped and deleted when dropped.
    pub fn start_standby(&self) -> PrivateCluster {
        let dir = owned_temp_dir(self.run_as_postgres);
        let standby = PrivateCluster {
            bin: self.bin.clone(),
            data: dir.path().join("data"),
            port: free_port(),
            run_as_postgres: self.run_as_postgres,
            _dir: dir,
        };
        let port = self.port.to_string();
        let backup = standby.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-D",
                path_str(&standby.data),
                "-R",
                "-X",
                "stream",
                "--no-sync",
                "-c",
                "fast",
            ],
        );
        assert!(
            backup.status.success(),
            "pg_basebackup of the private cluster failed: {}",
            String::from_utf8_lossy(&backup.stderr)
        );
        standby.pg_ctl_start();
        standby
    }

    /// A URL on this cluster for `database`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        self.url(name)
    }

    /// Stops the server and waits until it is gone.
    pub fn stop(&self, mode: StopMode) {
        let stop = self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&self.data),
                "-m",
                mode.as_arg(),
                "-w",
                "-t",
                "60",
                "stop",
            ],
        );
        assert!(
            stop.status.success(),
            "pg_ctl stop -m {} failed: {}{}",
            mode.as_arg(),
            String::from_utf8_lossy(&stop.stdout),
            String::from_utf8_lossy(&stop.stderr)
        );
    }

    /// Starts the stopped server again on the same port and waits until it accepts
    /// connections (after crash recovery, when it was stopped immediately).
    pub fn start_again(&self) {
        self.pg_ctl_start();
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.data
            .parent()
            .expect("the data directory is in the temp directory")
            .join("server.log")
    }

    fn pg_ctl_start(&self) {
        let socket_dir = self.data.parent().unwrap();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.port,
            socket_dir.display()
        );
        let log = self.log_path();
        let start = self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&self.data),
                "-o",
                &options,
                "-l",
                path_str(&log),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            start.status.success(),
            "pg_ctl start of the private cluster failed: {}{}\nserver log:\n{}",
            String::from_utf8_lossy(&start.stdout),
            String::from_utf8_lossy(&start.stderr),
            self.log()
        );
    }

    /// Runs one of the cluster's binaries, as the postgres user when this process is root.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut command = if self.run_as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        command.args(args).env_remove("PGDATA");
        command.output().unwrap_or_else(|err| {
            panic!(
                "cannot run {}{}: {err}",
                if self.run_as_postgres {
                    "runuser -u postgres -- "
                } else {
                    ""
                },
                program.display()
            )
        })
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &["-D", path_str(&self.data), "-m", "immediate", "-w", "stop"],
        );
    }
}

/// A temp directory for a cluster, owned by the user postgres when this process is root.
fn owned_temp_dir(run_as_postgres: bool) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("flowkey-private-pg.")
        .tempdir()
        .unwrap();
    if run_as_postgres {
        let chown = Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            chown.status.success(),
            "running as root, the private cluster must belong to the user postgres, \
             but chown failed (is there a postgres user? `id postgres`): {}",
            String::from_utf8_lossy(&chown.stderr)
        );
    }
    dir
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
fn find_binaries() -> PathBuf {
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|name| dir.join(name).is_file())
    };
    let mut tried = Vec::new();
    if let Ok(dir) = std::env::var("FLOWKEY_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        assert!(
            has_all(&dir),
            "FLOWKEY_PG_BINDIR={} lacks initdb, pg_ctl or postgres",
            dir.display()
        );
        return dir;
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if has_all(&dir) {
            return dir;
        }
        tried.push(format!("pg_config --bindir ({})", dir.display()));
    } else {
        tried.push("pg_config (not found)".to_owned());
    }
    let mut versioned: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path().join("bin"))
                .filter(|dir| has_all(dir))
                .collect()
        })
        .unwrap_or_default();
    versioned.sort_by_key(|dir| {
        dir.parent()
            .and_then(|version| version.file_name())
            .and_then(|name| name.to_str())
            .and_then(|name| name.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(dir) = versioned.pop() {
        return dir;
    }
    tried.push("/usr/lib/postgresql/*/bin".to_owned());
    if let Some(dir) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| has_all(dir))
    {
        return dir;
    }
    tried.push("PATH".to_owned());
    panic!(
        "this test restarts a private PostgreSQL server and needs its binaries (initdb, pg_ctl, \
         postgres), found in none of: {}. Install them (bash scripts/ensure-postgres.sh does, \
         as .ci/run) or set FLOWKEY_PG_BINDIR",
        tried.join(", ")
    );
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
