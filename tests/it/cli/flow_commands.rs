//! `demo`, `verify`, `report`, `rehearse` through the real binary, on SQLite and PostgreSQL.

use assert_cmd::Command;

use crate::both_engines;
use crate::support::harness::TestDb;

fn flowkey(url: &str) -> Command {
    let mut command = Command::cargo_bin("flowkey").expect("binary");
    command
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .args(["--database-url", url]);
    command
}

fn run_ok(url: &str, args: &[&str]) -> String {
    let output = flowkey(url).args(args).output().expect("runs");
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

async fn demo_migrates_verifies_and_leaves_a_database_at_head(test_db: TestDb) {
    let out = run_ok(
        &test_db.url,
        &[
            "demo",
            "--tenants",
            "2",
            "--imports",
            "3",
            "--rows-per-import",
            "10",
        ],
    );
    for expected in [
        "downgrade gave back the legacy schema and every legacy row",
        "applied flow_backfill",
        ": ok",
        "sessions mapped:",
        "disc_session_",
        "-> flow",
        "names no flow of this tenant",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
    let current = run_ok(&test_db.url, &["current"]);
    assert!(current.contains("(head)"), "{current}");
    // A second demo on the same database refuses, naming the way out, and changes nothing.
    let output = flowkey(&test_db.url).arg("demo").output().expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("needs an empty database"), "{stderr}");
    assert!(run_ok(&test_db.url, &["verify"]).contains(": ok"));
}
both_engines!(
    demo_migrates_verifies_and_leaves_a_database_at_head,
    demo_migrates_verifies_and_leaves_a_database_at_head
);

async fn verify_exits_non_zero_and_names_the_table_after_a_legacy_row_changes(test_db: TestDb) {
    run_ok(&test_db.url, &["seed", "--no-progress"]);
    run_ok(&test_db.url, &["upgrade", "--no-progress"]);
    let json: serde_json::Value =
        serde_json::from_str(&run_ok(&test_db.url, &["--json", "report"])).expect("json");
    assert!(json["sessions_mapped"].as_i64().unwrap_or(0) > 0, "{json}");
    // Change one legacy byte behind flowkey's back.
    let db = test_db.connect().await;
    db.execute_plain(
        "UPDATE users SET email = email || 'x' WHERE email = (SELECT min(email) FROM users)",
    )
    .await
    .expect("update");
    db.close().await;
    let output = flowkey(&test_db.url).arg("verify").output().expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("verify failed") && stderr.contains("users"),
        "{stderr}"
    );
}
both_engines!(
    verify_exits_non_zero_and_names_the_table_after_a_legacy_row_changes,
    verify_exits_non_zero_and_names_the_table_after_a_legacy_row_changes
);

#[tokio::test]
async fn rehearse_leaves_the_original_untouched() {
    let test_db = TestDb::fresh(flowkey::db::Engine::Sqlite).await;
    run_ok(&test_db.url, &["seed", "--no-progress"]);
    let out = run_ok(&test_db.url, &["rehearse", "--no-progress"]);
    assert!(out.contains("legacy schema and data identical"), "{out}");
    assert_eq!(run_ok(&test_db.url, &["current"]).trim(), "legacy");
}
