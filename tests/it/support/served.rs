//! `flowkey serve` as a child process on a free loopback port, and calls to it with the
//! tenant headers.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::reliability_support::flowkey_binary;

pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    /// SIGTERM, as a deploy stops it: the server writes its last legacy traffic and exits.
    pub fn stop_gracefully(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let started = Instant::now();
        while self.child.try_wait().expect("status").is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "serve did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

pub async fn serve(url: &str, extra: &[&str]) -> Server {
    serve_with_env(url, extra, &[]).await
}

/// [`serve`] with more environment (poll intervals, the flag listener).
pub async fn serve_with_env(url: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let port = free_port();
    let child = Command::new(flowkey_binary())
        .args(["--database-url", url, "serve", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .args(extra)
        .env_remove("DATABASE_URL")
        .env("FLOWKEY_SCHEMA_POLL_MS", "100")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    loop {
        if let Ok(answer) = reqwest::get(format!("{}/health", server.base)).await {
            if answer.status().is_success() {
                return server;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "serve never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn call(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    tenant: &(String, String),
) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .request(method, format!("{}{path}", server.base))
        .header("x-client-account-id", &tenant.0)
        .header("x-engagement-id", &tenant.1)
        .header("content-type", "application/json")
        .body(r#"{"import_type":"cmdb","rows":[{"name":"a"}]}"#)
        .send()
        .await
        .expect("answer");
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}
