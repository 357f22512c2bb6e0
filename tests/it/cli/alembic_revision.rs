//! `flowkey alembic-revision` and `alembic-filter` on real folders: where the bridge chains,
//! what it refuses (writing nothing), and that what it writes is valid Python. The bridge's
//! run under real Alembic is scripts/alembic-bridge-test.sh.

use std::path::Path;
use std::process::Command as Process;

use assert_cmd::Command;

fn flowkey() -> Command {
    let mut command = Command::cargo_bin("flowkey").expect("binary");
    command.env_remove("DATABASE_URL").env_remove("RUST_LOG");
    command
}

fn revision_file(folder: &Path, id: &str, down: &str) {
    std::fs::write(
        folder.join(format!("{id}_step.py")),
        format!("\"\"\"Revision ID: {id}\n\"\"\"\nrevision = '{id}'\ndown_revision = {down}\n"),
    )
    .expect("write revision");
}

fn files(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .expect("read folder")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn compiles_as_python(path: &Path) {
    let status = Process::new("python3")
        .args(["-m", "py_compile"])
        .arg(path)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "{} is not valid Python", path.display());
}

#[test]
fn chains_after_the_single_head_and_writes_valid_python() {
    let dir = tempfile::tempdir().expect("temp dir");
    revision_file(dir.path(), "base1", "None");
    revision_file(dir.path(), "next2", "'base1'");
    let output = flowkey()
        .args([
            "--json",
            "alembic-revision",
            "--rev-id",
            "bridge3",
            "--versions-dir",
        ])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(answer["down_revision"], "next2");
    assert_eq!(answer["revision"], "bridge3");
    let head = flowkey::migrate::revisions::head().id;
    assert_eq!(answer["flowkey_revision"], head);
    let path = dir.path().join("bridge3_migrate_session_to_flow_id.py");
    let text = std::fs::read_to_string(&path).expect("bridge written");
    assert!(text.contains("down_revision = \"next2\""), "{text}");
    assert!(
        text.contains(&format!("FLOWKEY_REVISION = \"{head}\"")),
        "{text}"
    );
    compiles_as_python(&path);
}

#[test]
fn an_empty_folder_gives_a_first_revision() {
    let dir = tempfile::tempdir().expect("temp dir");
    flowkey()
        .args(["alembic-revision", "--rev-id", "first", "--versions-dir"])
        .arg(dir.path())
        .assert()
        .success();
    let text = std::fs::read_to_string(dir.path().join("first_migrate_session_to_flow_id.py"))
        .expect("written");
    assert!(text.contains("down_revision = None"), "{text}");
}

#[test]
fn refusals_write_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    revision_file(dir.path(), "base1", "None");
    revision_file(dir.path(), "left", "'base1'");
    revision_file(dir.path(), "right", "'base1'");
    let before = files(dir.path());
    let refused = |args: &[&str], expected: &str| {
        let output = flowkey()
            .arg("alembic-revision")
            .args(args)
            .arg("--versions-dir")
            .arg(dir.path())
            .output()
            .expect("runs");
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert_eq!(files(dir.path()), before, "{args:?} wrote a file");
    };
    refused(&[], "2 heads (left, right)");
    refused(
        &["--down-revision", "nowhere"],
        "revision nowhere is not in the Alembic versions folder",
    );
    refused(
        &["--down-revision", "left", "--rev-id", "right"],
        "revision id right is taken",
    );
    refused(
        &["--down-revision", "left", "--rev-id", "a-b"],
        "invalid revision id",
    );
    // Naming one of the heads chains after it.
    flowkey()
        .args([
            "alembic-revision",
            "--down-revision",
            "left",
            "--versions-dir",
        ])
        .arg(dir.path())
        .assert()
        .success();
    assert_eq!(files(dir.path()).len(), before.len() + 1);

    let missing = dir.path().join("no-such-folder");
    let output = flowkey()
        .args(["alembic-revision", "--versions-dir"])
        .arg(&missing)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot read the Alembic versions folder")
    );
}

#[test]
fn the_filter_is_valid_python_naming_every_linked_table() {
    let output = flowkey().arg("alembic-filter").output().expect("runs");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).expect("utf-8");
    for table in flowkey::migrate::flow::linked::LINKED_TABLES {
        assert!(
            text.contains(&format!("\"{}\": (\"flow_id\",)", table.name)),
            "{}",
            table.name
        );
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("flowkey_alembic_filter.py");
    std::fs::write(&path, &text).expect("write");
    compiles_as_python(&path);
}
