//! Absences the architecture promises, checked on the source text (rust-analyzer's `tidy`
//! tests): `src/http` and `src/cli` issue no SQL, and no DDL is written outside
//! `src/migrate` (the seed creates the schema only through the runner).
//!
//! Only code is read: comments are skipped, and so is a file's `#[cfg(test)]` tail (a unit
//! test may hold DDL text that it parses, as `db::introspect`'s does).

use std::path::{Path, PathBuf};

/// Words that begin a statement that reads or writes data.
const SQL_STARTS: [&str; 5] = [
    "SELECT ",
    "INSERT INTO ",
    "UPDATE ",
    "DELETE FROM ",
    "WITH ",
];
/// What DDL creates, alters or drops.
const DDL_OBJECTS: [&str; 9] = [
    "TABLE", "INDEX", "TRIGGER", "VIEW", "FUNCTION", "SCHEMA", "SEQUENCE", "TYPE", "DATABASE",
];

#[test]
fn http_and_cli_issue_no_sql() {
    let mut found = Vec::new();
    for dir in ["src/http", "src/cli"] {
        for file in rust_files(&source_root().join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap();
            found.extend(
                sql_in_code(&text)
                    .into_iter()
                    .map(|what| format!("{}: {what}", file.display())),
            );
        }
    }
    assert!(
        found.is_empty(),
        "SQL outside the stores:\n{}",
        found.join("\n")
    );
}

#[test]
fn ddl_only_in_migrate() {
    let src = source_root().join("src");
    let mut found = Vec::new();
    for file in rust_files(&src) {
        if file.starts_with(src.join("migrate")) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        found.extend(
            ddl_in_code(&text)
                .into_iter()
                .map(|what| format!("{}: {what}", file.display())),
        );
    }
    assert!(
        found.is_empty(),
        "DDL outside src/migrate:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checks_see_what_they_look_for() {
    let code = r##"
        // SELECT 1 FROM a comment is fine
        /* CREATE TABLE in a block comment too */
        let quote = '"'; let life: &'static str = "plain text";
        let q = sqlx::query("SELECT id FROM t WHERE a = $1");
        let raw = r#"CREATE UNIQUE INDEX ix ON t(a)"#;
        let e: sqlx::Error = todo!();
        #[cfg(test)]
        mod tests { const T: &str = "DROP TABLE t"; }
    "##;
    assert_eq!(
        sql_in_code(code),
        vec![
            "sqlx::query".to_owned(),
            "SQL text \"SELECT id FROM t WHERE a = $1\"".to_owned(),
            "SQL text \"CREATE UNIQUE INDEX ix ON t(a)\"".to_owned(),
        ]
    );
    assert_eq!(
        ddl_in_code(code),
        vec!["DDL text \"CREATE UNIQUE INDEX ix ON t(a)\"".to_owned()]
    );
    assert!(sql_in_code("let text = \"Discovery of {}\";").is_empty());
}

fn source_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// SQL in code: a `sqlx::` item other than its error type, or a string literal that is a
/// statement or DDL.
fn sql_in_code(text: &str) -> Vec<String> {
    let code = code_of(text);
    let mut found = Vec::new();
    let mut rest = code.code.as_str();
    while let Some(at) = rest.find("sqlx::") {
        let item: String = rest[at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        if item != "sqlx::Error" {
            found.push(item);
        }
        rest = &rest[at + 6..];
    }
    for literal in &code.literals {
        let upper = literal.trim_start();
        if SQL_STARTS.iter().any(|start| upper.starts_with(start)) || is_ddl(literal) {
            found.push(format!("SQL text {literal:?}"));
        }
    }
    found
}

fn ddl_in_code(text: &str) -> Vec<String> {
    code_of(text)
        .literals
        .into_iter()
        .filter(|literal| is_ddl(literal))
        .map(|literal| format!("DDL text {literal:?}"))
        .collect()
}

/// `CREATE`/`ALTER`/`DROP` followed (after optional modifiers) by an object kind.
fn is_ddl(literal: &str) -> bool {
    let words: Vec<&str> = literal.split_whitespace().collect();
    words.iter().enumerate().any(|(index, word)| {
        matches!(*word, "CREATE" | "ALTER" | "DROP")
            && words[index + 1..]
                .iter()
                .take(3)
                .any(|next| DDL_OBJECTS.contains(next))
    })
}

/// A file's code without comments, and its string literals, up to its `#[cfg(test)]` tail.
struct Code {
    code: String,
    literals: Vec<String>,
}

fn code_of(text: &str) -> Code {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    let chars: Vec<char> = text.chars().collect();
    let mut code = String::new();
    let mut literals = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == 'r' && (next == Some('#') || next == Some('"')) && !ident_before(&chars, i) {
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            let start = i + 1 + hashes + 1;
            let closing: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let mut end = start;
            while end < chars.len() && !chars[end..].starts_with(&closing) {
                end += 1;
            }
            literals.push(chars[start.min(end)..end].iter().collect());
            i = end + closing.len();
        } else if c == '"' {
            let mut literal = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    // A line continuation joins the next line without its indentation.
                    if chars.get(i + 1) == Some(&'\n') {
                        i += 2;
                        while i < chars.len() && chars[i].is_whitespace() {
                            i += 1;
                        }
                        continue;
                    }
                    i += 1;
                }
                if let Some(ch) = chars.get(i) {
                    literal.push(*ch);
                }
                i += 1;
            }
            literals.push(literal);
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            // A char literal such as '\'' or '\n'.
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
        } else {
            code.push(c);
            i += 1;
        }
    }
    Code { code, literals }
}

fn ident_before(chars: &[char], at: usize) -> bool {
    at > 0 && (chars[at - 1].is_alphanumeric() || chars[at - 1] == '_')
}
