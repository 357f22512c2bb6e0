//! Reading an uploaded CSV: quoted fields, a UTF-8 byte order mark, and every bad row
//! reported with its line number (not only the first). [`CsvRows`] reads any `io::Read` one
//! record at a time, so a file of any size is read in bounded memory; [`read_csv`] is the
//! whole-file form on top of it.

use std::io::{self, Read};

use serde_json::Value;

use crate::imports::Rows;

/// Most bad rows listed in one error; past that the count still says how many there were.
const MAX_REPORTED_BAD_ROWS: usize = 50;

/// Bytes the csv reader asks its input for at a time.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// The UTF-8 byte order mark some spreadsheet programs write first.
const BOM: &[u8; 3] = b"\xEF\xBB\xBF";

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
    #[error("the file could not be read to its end: {message}")]
    Unreadable { message: String },
}

/// What was read once the whole file has been seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvTotals {
    /// Good rows (blank rows are not counted).
    pub rows: u64,
    /// Bytes of the file, byte order mark included.
    pub bytes: u64,
}

/// A CSV file read one good row at a time. Bad rows are remembered (the first
/// [`MAX_REPORTED_BAD_ROWS`] with their lines, all counted) and reported by
/// [`CsvRows::finish`], so a caller sees every good row but must not keep any of them unless
/// `finish` says the file is sound.
#[derive(Debug)]
pub struct CsvRows<R> {
    reader: csv::Reader<Input<R>>,
    headers: Vec<String>,
    record: csv::ByteRecord,
    bad: Vec<BadRow>,
    bad_count: usize,
    rows: u64,
    unreadable: Option<String>,
}

impl<R: Read> CsvRows<R> {
    /// Reads the header line (after an optional byte order mark).
    pub fn open(input: R) -> Result<Self, CsvError> {
        let input = Input::new(input).map_err(|err| CsvError::Unreadable {
            message: err.to_string(),
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .buffer_capacity(READ_BUFFER_BYTES)
            .from_reader(input);
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
        Ok(Self {
            reader,
            headers,
            record: csv::ByteRecord::new(),
            bad: Vec::new(),
            bad_count: 0,
            rows: 0,
            unreadable: None,
        })
    }

    /// Column headers in file order, trimmed.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// Whether a bad row has been seen (the file will be refused).
    pub fn has_bad_rows(&self) -> bool {
        self.bad_count > 0
    }

    /// The next good row: one valid UTF-8 field per header. Blank rows are skipped; bad rows
    /// are remembered and skipped. `None` at the end of the file.
    pub fn next_row(&mut self) -> Option<&csv::ByteRecord> {
        loop {
            if self.unreadable.is_some() {
                return None;
            }
            let line = self.reader.position().line();
            let problem = match self.reader.read_byte_record(&mut self.record) {
                Ok(false) => return None,
                Ok(true) => check_record(&self.record, self.headers.len()),
                Err(err) if matches!(err.kind(), csv::ErrorKind::Io(_)) => {
                    // The input failed: reading again would fail again.
                    self.unreadable = Some(err.to_string());
                    return None;
                }
                Err(err) => Some(err.to_string()),
            };
            match problem {
                Some(message) => {
                    self.bad_count += 1;
                    if self.bad.len() < MAX_REPORTED_BAD_ROWS {
                        let line = self.record.position().map(|p| p.line()).unwrap_or(line);
                        self.bad.push(BadRow { line, message });
                    }
                }
                None if self.record.iter().all(|field| field.is_empty()) => {}
                None => {
                    self.rows += 1;
                    return Some(&self.record);
                }
            }
        }
    }

    /// Reads what is left and says whether the file is sound: empty (or only whitespace),
    /// unreadable, bad rows, or no rows at all refuse it.
    pub fn finish(mut self) -> Result<CsvTotals, CsvError> {
        while self.next_row().is_some() {}
        let input = self.reader.get_ref();
        if !input.seen_content {
            return Err(CsvError::Empty);
        }
        if let Some(message) = self.unreadable {
            return Err(CsvError::Unreadable { message });
        }
        if self.bad_count > 0 {
            return Err(CsvError::BadRows {
                count: self.bad_count,
                rows: self.bad,
            });
        }
        if self.rows == 0 {
            return Err(CsvError::NoRows);
        }
        Ok(CsvTotals {
            rows: self.rows,
            bytes: input.bytes,
        })
    }
}

/// Reads a whole CSV file (header line first) into rows of `{header: value}`.
pub fn read_csv(bytes: &[u8]) -> Result<Rows, CsvError> {
    let mut reader = CsvRows::open(bytes)?;
    let headers = reader.headers().to_vec();
    let mut rows = Vec::new();
    while let Some(record) = reader.next_row() {
        rows.push(to_object(&headers, record));
    }
    reader.finish()?;
    Ok(Rows { headers, rows })
}

/// Writes rows as JSON objects text (`{"header":"value",…}`, keys in header order), escaping
/// each header once rather than once per row.
#[derive(Debug, Clone)]
pub struct RowEncoder {
    /// `{"h1":`, `,"h2":`, …
    keys: Vec<String>,
}

impl RowEncoder {
    pub fn new(headers: &[String]) -> Self {
        let keys = headers
            .iter()
            .enumerate()
            .map(|(index, header)| {
                let mut key = String::from(if index == 0 { "{" } else { "," });
                push_json_string(&mut key, header);
                key.push(':');
                key
            })
            .collect();
        Self { keys }
    }

    /// The JSON text of one row whose fields are `fields`, in header order.
    pub fn encode<'f>(&self, fields: impl IntoIterator<Item = &'f str>) -> String {
        let mut out = String::with_capacity(self.keys.iter().map(String::len).sum::<usize>() + 64);
        for (key, field) in self.keys.iter().zip(fields) {
            out.push_str(key);
            push_json_string(&mut out, field);
        }
        if self.keys.is_empty() {
            out.push('{');
        }
        out.push('}');
        out
    }
}

/// Appends `text` as a JSON string, escaped as serde_json escapes it.
pub(crate) fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    if !text
        .bytes()
        .any(|byte| byte < 0x20 || byte == b'"' || byte == b'\\')
    {
        out.push_str(text);
        out.push('"');
        return;
    }
    let mut start = 0;
    for (index, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[start..index]);
        if escape.is_empty() {
            out.push_str(&format!("\\u{byte:04x}"));
        } else {
            out.push_str(escape);
        }
        start = index + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}

/// The input under the csv reader: skips one leading byte order mark, counts bytes and notes
/// whether anything but ASCII whitespace was seen (a file of only whitespace is empty).
#[derive(Debug)]
struct Input<R> {
    inner: R,
    /// Bytes read ahead to look for the byte order mark, still to be served.
    ahead: Vec<u8>,
    bytes: u64,
    seen_content: bool,
}

impl<R: Read> Input<R> {
    /// Reads the first bytes ahead: one byte order mark is dropped, and the next three bytes
    /// are kept to be served in one piece, so the csv reader's own check for a (second) mark
    /// sees them together however the body was cut into chunks, exactly as it does when it
    /// reads a whole file.
    fn new(mut inner: R) -> io::Result<Self> {
        let mut bytes = 0;
        let mut ahead = read_up_to(&mut inner, BOM.len(), &mut bytes)?;
        if ahead == BOM {
            ahead = read_up_to(&mut inner, BOM.len(), &mut bytes)?;
        }
        let seen_content = ahead.iter().any(|byte| !byte.is_ascii_whitespace());
        Ok(Self {
            inner,
            ahead,
            bytes,
            seen_content,
        })
    }
}

/// Up to `wanted` bytes, fewer only at the end of the input.
fn read_up_to(inner: &mut impl Read, wanted: usize, counted: &mut u64) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; wanted];
    let mut filled = 0;
    while filled < wanted {
        match inner.read(&mut out[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    out.truncate(filled);
    *counted += filled as u64;
    Ok(out)
}

impl<R: Read> Read for Input<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = if self.ahead.is_empty() {
            let read = self.inner.read(buf)?;
            self.bytes += read as u64;
            read
        } else {
            let read = self.ahead.len().min(buf.len());
            buf[..read].copy_from_slice(&self.ahead[..read]);
            self.ahead.drain(..read);
            read
        };
        if !self.seen_content {
            self.seen_content = buf[..read].iter().any(|byte| !byte.is_ascii_whitespace());
        }
        Ok(read)
    }
}

fn check_record(record: &csv::ByteRecord, columns: usize) -> Option<String> {
    if record.len() != columns && !(record.len() == 1 && record.as_slice().is_empty()) {
        return Some(format!(
            "expected {columns} fields like the header, found {}",
            record.len()
        ));
    }
    // One pass over the whole record; each field is valid exactly when the whole is and no
    // field boundary falls inside a character. Only a bad record is looked at field by field.
    let whole_is_valid = std::str::from_utf8(record.as_slice()).is_ok_and(|text| {
        (0..record.len()).all(|index| {
            record.range(index).is_some_and(|range| {
                text.is_char_boundary(range.start) && text.is_char_boundary(range.end)
            })
        })
    });
    if whole_is_valid {
        return None;
    }
    Some(
        match record
            .iter()
            .position(|field| std::str::from_utf8(field).is_err())
        {
            Some(index) => format!("field {} is not valid UTF-8", index + 1),
            None => "the row is not valid UTF-8".to_owned(),
        },
    )
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
