//! Reading an uploaded CSV into rows: quoted fields, a UTF-8 byte order mark, and every bad
//! row reported with its line number (not only the first).

use serde_json::Value;

use crate::imports::Rows;

/// Most bad rows listed in one error; past that the count still says how many there were.
const MAX_REPORTED_BAD_ROWS: usize = 50;

/// One row the reader refused, with its 1-based line in the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BadRow {
    pub line: u64,
    pub message: String,
}

/// Why a CSV file was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CsvError {
    #[error("the file is empty")]
    Empty,
    #[error("the header line is unreadable: {message}")]
    BadHeader { message: String },
    #[error("column header {header:?} appears twice")]
    DuplicateHeader { header: String },
    #[error("the file has a header but no rows")]
    NoRows,
    #[error("{count} bad rows, first on line {}", rows.first().map(|row| row.line).unwrap_or(0))]
    BadRows { count: usize, rows: Vec<BadRow> },
}

/// Reads a whole CSV file (header line first) into rows of `{header: value}`.
pub fn read_csv(bytes: &[u8]) -> Result<Rows, CsvError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(CsvError::Empty);
    }
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(bytes);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|err| CsvError::BadHeader {
            message: err.to_string(),
        })?
        .iter()
        .map(|header| header.trim().to_owned())
        .collect();
    for (index, header) in headers.iter().enumerate() {
        if headers[..index].contains(header) {
            return Err(CsvError::DuplicateHeader {
                header: header.clone(),
            });
        }
    }

    let mut rows = Vec::new();
    let mut bad = Vec::new();
    let mut bad_count = 0;
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line();
        let outcome = reader.read_byte_record(&mut record);
        let problem = match outcome {
            Ok(false) => break,
            Ok(true) => check_record(&record, headers.len()),
            Err(err) => Some(err.to_string()),
        };
        match problem {
            Some(message) => {
                bad_count += 1;
                if bad.len() < MAX_REPORTED_BAD_ROWS {
                    let line = record.position().map(|p| p.line()).unwrap_or(line);
                    bad.push(BadRow { line, message });
                }
            }
            None => {
                if record.iter().all(|field| field.is_empty()) {
                    continue;
                }
                rows.push(to_object(&headers, &record));
            }
        }
    }
    if bad_count > 0 {
        return Err(CsvError::BadRows {
            count: bad_count,
            rows: bad,
        });
    }
    if rows.is_empty() {
        return Err(CsvError::NoRows);
    }
    Ok(Rows { headers, rows })
}

fn check_record(record: &csv::ByteRecord, columns: usize) -> Option<String> {
    if record.len() != columns && !(record.len() == 1 && record.as_slice().is_empty()) {
        return Some(format!(
            "expected {columns} fields like the header, found {}",
            record.len()
        ));
    }
    record
        .iter()
        .position(|field| std::str::from_utf8(field).is_err())
        .map(|index| format!("field {} is not valid UTF-8", index + 1))
}

fn to_object(headers: &[String], record: &csv::ByteRecord) -> serde_json::Map<String, Value> {
    headers
        .iter()
        .zip(record.iter())
        .map(|(header, field)| {
            let text = String::from_utf8_lossy(field).into_owned();
            (header.clone(), Value::String(text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_and_bom_are_read() {
        let file = "\u{feff}name,notes\n\"web, 01\",\"said \"\"hi\"\"\"\nweb02,\"two\nlines\"\n";
        let rows = read_csv(file.as_bytes()).expect("valid csv");
        assert_eq!(rows.headers, vec!["name", "notes"]);
        assert_eq!(rows.rows.len(), 2);
        assert_eq!(rows.rows[0]["name"], "web, 01");
        assert_eq!(rows.rows[0]["notes"], "said \"hi\"");
        assert_eq!(rows.rows[1]["notes"], "two\nlines");
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let file = b"a,b\n1,2\n3\n4,5\n6,7,8\n9,\xff\n";
        let Err(CsvError::BadRows { count, rows }) = read_csv(file) else {
            panic!("expected bad rows");
        };
        assert_eq!(count, 3);
        let lines: Vec<u64> = rows.iter().map(|row| row.line).collect();
        assert_eq!(lines, vec![3, 5, 6]);
    }

    #[test]
    fn empty_and_headless_files_are_refused() {
        assert_eq!(read_csv(b""), Err(CsvError::Empty));
        assert_eq!(read_csv(b"a,b\n"), Err(CsvError::NoRows));
        assert!(matches!(
            read_csv(b"a,a\n1,2\n"),
            Err(CsvError::DuplicateHeader { .. })
        ));
    }
}
