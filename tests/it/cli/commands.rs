//! The `flowkey` binary on a temp SQLite file: exit codes, outputs, errors.

use assert_cmd::Command;

struct Workspace {
    _dir: tempfile::TempDir,
    url: String,
}

fn workspace() -> Workspace {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("cli.db").display());
    Workspace { _dir: dir, url }
}

fn flowkey() -> Command {
    let mut command = Command::cargo_bin("flowkey").expect("binary");
    command
        .env_remove("DATABASE_URL")
        .env_remove("FLOWKEY_AUTH")
        .env_remove("FLOWKEY_JWT_SECRET")
        .env_remove("FLOWKEY_JWT_PUBLIC_KEY")
        .env_remove("FLOWKEY_JWT_JWKS")
        .env_remove("RUST_LOG")
        .env_remove("FLOWKEY_ADMIN_TOKEN");
    command
}

fn stdout_of(args: &[&str]) -> String {
    let output = flowkey().args(args).output().expect("runs");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Runs a command expected to fail and returns its stderr, checked to be one `error:` line.
fn one_line_error(args: &[&str], code: i32) -> String {
    let output = flowkey().args(args).output().expect("runs");
    assert_eq!(output.status.code(), Some(code), "{args:?}");
    let stderr = String::from_utf8(output.stderr).expect("utf-8");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

#[test]
fn upgrade_current_history_and_downgrade_report_what_they_did() {
    let ws = workspace();
    let url = ws.url.as_str();
    let out = stdout_of(&["upgrade", "legacy", "--database-url", url]);
    assert!(out.contains("applied legacy"), "{out}");
    assert!(
        out.contains("the database is at legacy (was base)"),
        "{out}"
    );
    assert!(stdout_of(&["current", "--database-url", url]).starts_with("legacy"));
    let history = stdout_of(&["history", "--database-url", url]);
    assert!(history.contains("[x] legacy"), "{history}");
    assert!(history.contains("current"), "{history}");
    stdout_of(&["upgrade", "--database-url", url]);
    assert!(stdout_of(&["current", "--database-url", url]).contains("(head)"));
    let out = stdout_of(&["upgrade", "--database-url", url]);
    assert!(out.contains("nothing to do"), "{out}");
    let out = stdout_of(&["downgrade", "base", "--database-url", url]);
    assert!(out.contains("reverted legacy"), "{out}");
    assert_eq!(
        stdout_of(&["current", "--database-url", url]).trim(),
        "base"
    );
    let audit = stdout_of(&["audit", "--limit", "1000", "--database-url", url]);
    assert!(audit.contains("create legacy schema"), "{audit}");
    assert!(audit.contains("drop legacy schema"), "{audit}");
}

#[test]
fn json_output_is_one_parseable_document() {
    let ws = workspace();
    let url = ws.url.as_str();
    let parse = |args: &[&str]| -> serde_json::Value {
        serde_json::from_str(&stdout_of(args)).unwrap_or_else(|err| panic!("{args:?}: {err}"))
    };
    let summary = parse(&["--json", "upgrade", "--database-url", url]);
    assert_eq!(summary["revisions"][0]["id"], "legacy");
    let current = parse(&["current", "--json", "--database-url", url]);
    assert_eq!(current["current"], summary["to"]);
    assert_eq!(current["current"], current["head"]);
    assert_eq!(current["is_head"], true);
    let history = parse(&["history", "--json", "--database-url", url]);
    let history = history.as_array().expect("an array");
    // Every revision up to head is applied; the contract after head is not.
    let below_head: Vec<_> = history
        .iter()
        .filter(|entry| !flowkey::migrate::revisions::is_after_head(entry["id"].as_str().unwrap()))
        .collect();
    assert!(below_head.iter().all(|entry| entry["applied"] == true));
    assert!(history.iter().any(|entry| entry["applied"] == false));
    assert_eq!(below_head.last().expect("revisions")["id"], summary["to"]);
    let audit = parse(&["audit", "--json", "--limit", "5", "--database-url", url]);
    assert!(audit
        .as_array()
        .is_some_and(|rows| !rows.is_empty() && rows.len() <= 5));
    let sql = parse(&["upgrade", "--sql", "--engine", "sqlite", "--json"]);
    assert!(sql["sql"]
        .as_str()
        .unwrap()
        .contains("CREATE TABLE client_accounts"));
}

#[test]
fn an_unsupported_scheme_is_a_one_line_error() {
    let stderr = one_line_error(&["current", "--database-url", "mysql://u:secret@h/db"], 1);
    assert!(
        stderr.contains("unsupported database url scheme"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_postgres_is_a_one_line_error() {
    let stderr = one_line_error(
        &[
            "upgrade",
            "--database-url",
            "postgres://nobody:secret@127.0.0.1:1/none",
        ],
        1,
    );
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
}

#[test]
fn a_bad_target_is_refused_and_changes_nothing() {
    let ws = workspace();
    let url = ws.url.as_str();
    stdout_of(&["upgrade", "legacy", "--database-url", url]);
    let stderr = one_line_error(&["downgrade", "nowhere", "--database-url", url], 1);
    assert!(stderr.contains("unknown revision \"nowhere\""), "{stderr}");
    let stderr = one_line_error(&["upgrade", "+99", "--database-url", url], 1);
    assert!(stderr.contains("cannot upgrade"), "{stderr}");
    assert!(stdout_of(&["current", "--database-url", url]).starts_with("legacy"));
    let out = stdout_of(&["downgrade", "-1", "--database-url", url]);
    assert!(
        out.contains("the database is at base (was legacy)"),
        "{out}"
    );
}

#[test]
fn database_url_is_accepted_before_and_after_the_subcommand() {
    let ws = workspace();
    let url = ws.url.as_str();
    stdout_of(&["--database-url", url, "upgrade", "legacy"]);
    assert!(stdout_of(&["current", "--database-url", url]).starts_with("legacy"));
    let from_env = flowkey()
        .env("DATABASE_URL", url)
        .arg("current")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&from_env.stdout).starts_with("legacy"));
}

#[test]
fn upgrade_sql_prints_the_script_and_runs_nothing() {
    let ws = workspace();
    let url = ws.url.as_str();
    let script = stdout_of(&["upgrade", "--sql", "--database-url", url]);
    assert!(script.contains("CREATE TABLE discovery_flows"), "{script}");
    assert_eq!(
        stdout_of(&["current", "--database-url", url]).trim(),
        "base"
    );
    let postgres = stdout_of(&["upgrade", "--sql", "--engine", "postgres"]);
    assert!(postgres.contains("timestamptz"), "{postgres}");
    let down = stdout_of(&["downgrade", "base", "--sql", "--engine", "sqlite"]);
    assert!(down.contains("DROP TABLE client_accounts;"), "{down}");
}

#[test]
fn usage_errors_exit_with_code_2_and_every_command_has_help() {
    flowkey().arg("downgrade").assert().code(2);
    flowkey().arg("frobnicate").assert().code(2);
    for command in [
        "upgrade",
        "downgrade",
        "current",
        "history",
        "stamp",
        "audit",
    ] {
        let output = flowkey().args([command, "--help"]).output().unwrap();
        assert!(output.status.success(), "{command}");
        let help = String::from_utf8(output.stdout).unwrap();
        assert!(help.contains("--database-url"), "{command}: {help}");
    }
}

#[test]
fn stamp_records_a_revision_and_refuses_a_foreign_one() {
    let ws = workspace();
    let url = ws.url.as_str();
    stdout_of(&["stamp", "legacy", "--force", "--database-url", url]);
    assert!(stdout_of(&["current", "--database-url", url]).starts_with("legacy"));
    let stderr = one_line_error(&["stamp", "legacy", "--database-url", url], 1);
    assert!(stderr.contains("flowkey needs it"), "{stderr}");
}

#[test]
fn serve_refuses_a_short_admin_token_and_hides_the_token_in_help() {
    let ws = workspace();
    let stderr = one_line_error(
        &["serve", "--database-url", &ws.url, "--admin-token", "short"],
        1,
    );
    assert!(stderr.contains("at least 16"), "{stderr}");
    let stderr = one_line_error(
        &["serve", "--database-url", &ws.url, "--admin-token", " "],
        1,
    );
    assert!(stderr.contains("empty"), "{stderr}");
    let help = flowkey()
        .args(["serve", "--help"])
        .env("FLOWKEY_ADMIN_TOKEN", "do-not-print-this-secret")
        .output()
        .expect("runs");
    let help = String::from_utf8(help.stdout).expect("utf-8");
    assert!(help.contains("--admin-token"), "{help}");
    assert!(help.contains("FLOWKEY_ADMIN_TOKEN"), "{help}");
    assert!(!help.contains("do-not-print-this-secret"), "{help}");
}

#[test]
fn serve_without_authentication_only_on_loopback() {
    let ws = workspace();
    stdout_of(&["upgrade", "head", "--database-url", &ws.url]);
    for extra in [&[][..], &["--auth", "none"][..]] {
        let mut args = vec!["serve", "--database-url", &ws.url, "--bind", "0.0.0.0:0"];
        args.extend_from_slice(extra);
        let stderr = one_line_error(&args, 1);
        assert!(
            stderr.contains("refusing to serve on 0.0.0.0:0 without authentication"),
            "{stderr}"
        );
    }
    let stderr = one_line_error(&["serve", "--database-url", &ws.url, "--auth", "jwt"], 1);
    assert!(stderr.contains("needs a key"), "{stderr}");
    let stderr = one_line_error(
        &["serve", "--database-url", &ws.url, "--jwt-secret", "short"],
        1,
    );
    assert!(stderr.contains("at least 32"), "{stderr}");
    let stderr = one_line_error(
        &[
            "serve",
            "--database-url",
            &ws.url,
            "--jwt-secret",
            "0123456789abcdef0123456789abcdef",
            "--jwt-algorithm",
            "RS256",
        ],
        1,
    );
    assert!(stderr.contains("public key or JWKS"), "{stderr}");
    // RBAC grants need the platform's RBAC tables, which a bare flowkey database lacks.
    let stderr = one_line_error(
        &[
            "serve",
            "--database-url",
            &ws.url,
            "--bind",
            "0.0.0.0:0",
            "--jwt-secret",
            "0123456789abcdef0123456789abcdef",
        ],
        1,
    );
    assert!(stderr.contains("lacks user_profiles"), "{stderr}");
}
