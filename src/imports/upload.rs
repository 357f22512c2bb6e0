//! A CSV upload streamed into the database: the body's chunks feed a blocking `csv::Reader`
//! on a blocking thread, which hands back bounded batches of rows (each already its JSON
//! text) over a bounded channel, and the rows are written batch by batch in one write
//! transaction ([`ImportWriter`]). However large the file, at most a few chunks and
//! [`BATCHES_IN_FLIGHT`] batches are in memory, and the suggested mappings come from a
//! [`SampleCollector`] fed as rows pass.
//!
//! Why a thread and not `csv_core` on the async side: the `csv` crate's reader is the
//! well-kept way to read records with line positions, flexible lengths and the exact quoting
//! rules `read_csv` has always used, and it wants a blocking `io::Read`. The multipart field
//! borrows the request, so it cannot be moved to the thread itself: its chunks travel over a
//! bounded channel, read on the thread through `tokio_util`'s `StreamReader` and
//! `SyncIoBridge`.

use std::io::Read;
use std::ops::ControlFlow;

use bytes::Bytes;
use futures::{SinkExt, Stream, StreamExt};

use crate::db::types::JsonText;
use crate::db::{Db, KeyColumns};
use crate::field_mappings::{SampleCollector, SuggestedMapping};
use crate::imports::csv_rows::{CsvRows, CsvTotals, RowEncoder};
use crate::imports::{CsvError, ImportStart, ImportWriter, ImportsError};

/// Most rows in one batch.
pub const BATCH_ROWS: usize = 1_000;
/// Most bytes of JSON text in one batch (a batch of very wide rows closes early).
pub const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Batches parsed ahead of the database.
pub const BATCHES_IN_FLIGHT: usize = 2;
/// Body chunks received ahead of the parser.
const CHUNKS_IN_FLIGHT: usize = 4;

/// What the reader hands on: the headers once, then batches of rows.
#[derive(Debug)]
pub enum CsvPiece {
    Headers(Vec<String>),
    Rows(Vec<JsonText>),
}

/// A file read to its end.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvRead {
    pub totals: CsvTotals,
    pub suggestions: Vec<SuggestedMapping>,
}

/// Reads a CSV from `input`, handing its headers and then batches of rows to `sink`, and
/// says at the end whether the file is sound. After the first bad row no more batches are
/// handed on (the file will be refused) but reading goes on, so every bad row is reported.
/// When `sink` breaks, reading stops with [`CsvError::Unreadable`].
pub fn read_csv_batches<R: Read>(
    input: R,
    mut sink: impl FnMut(CsvPiece) -> ControlFlow<()>,
) -> Result<CsvRead, CsvError> {
    let abandoned = || CsvError::Unreadable {
        message: "the upload was abandoned".to_owned(),
    };
    let mut reader = CsvRows::open(input)?;
    let headers = reader.headers().to_vec();
    let encoder = RowEncoder::new(&headers);
    let mut samples = SampleCollector::new(&headers);
    if sink(CsvPiece::Headers(headers)).is_break() {
        return Err(abandoned());
    }
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    let mut batch_bytes = 0;
    loop {
        let bad_before = reader.has_bad_rows();
        let Some(record) = reader.next_row() else {
            break;
        };
        if bad_before {
            continue;
        }
        if samples.wants_more() {
            for (column, bytes) in record.iter().enumerate() {
                samples.observe_text(column, checked_utf8(bytes));
            }
        }
        let text = encoder.encode(record.iter().map(checked_utf8));
        batch_bytes += text.len();
        batch.push(JsonText(text));
        if batch.len() == BATCH_ROWS || batch_bytes >= BATCH_BYTES {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
            batch_bytes = 0;
            if reader.has_bad_rows() {
                continue;
            }
            if sink(CsvPiece::Rows(full)).is_break() {
                return Err(abandoned());
            }
        }
    }
    if !batch.is_empty() && !reader.has_bad_rows() && sink(CsvPiece::Rows(batch)).is_break() {
        return Err(abandoned());
    }
    let totals = reader.finish()?;
    Ok(CsvRead {
        totals,
        suggestions: samples.suggestions(),
    })
}

/// A field the reader has already checked to be UTF-8 (so the fallback is never taken).
fn checked_utf8(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// Why a streamed upload was not stored.
#[derive(Debug, thiserror::Error)]
pub enum UploadError<E> {
    /// The body itself failed (cut, or past its size limit).
    #[error("the upload could not be read")]
    Body(E),
    #[error(transparent)]
    Csv(#[from] CsvError),
    #[error(transparent)]
    Imports(#[from] ImportsError),
    /// The reader thread died (a bug, never the client's doing).
    #[error("the CSV reader failed: {0}")]
    ReaderFailed(String),
}

/// Streams a CSV body into a new import: returns the writer with every row and the suggested
/// mappings written, still uncommitted, so the caller can learn the last details (fields that
/// followed the file) and [`ImportWriter::finish`] it. Rows are written as they come but
/// nothing is committed unless the whole file is sound; `start.headers` is ignored (the file's header line says them) and
/// `start.details.file_size_bytes` is replaced by the bytes read.
pub async fn stream_csv<S, E>(
    db: &Db,
    keys: KeyColumns,
    mut start: ImportStart,
    mut body: S,
) -> Result<ImportWriter, UploadError<E>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let (mut chunk_tx, chunk_rx) = futures::channel::mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    let (piece_tx, mut piece_rx) = tokio::sync::mpsc::channel::<CsvPiece>(BATCHES_IN_FLIGHT);
    let input = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(
        chunk_rx.map(Ok::<Bytes, std::io::Error>),
    ));
    let parser = tokio::task::spawn_blocking(move || {
        read_csv_batches(input, |piece| match piece_tx.blocking_send(piece) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        })
    });

    // The body goes to the parser until it ends (or the parser stops listening: it has
    // refused the file and its answer says why).
    let pump = async move {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(UploadError::Body)?;
            if chunk_tx.send(chunk).await.is_err() {
                break;
            }
        }
        Ok::<(), UploadError<E>>(())
    };
    // The transaction opens with the first batch, so a file refused at its header or within
    // its first batch never takes the write lock.
    let consume = async {
        let mut headers = Vec::new();
        let mut writer: Option<ImportWriter> = None;
        while let Some(piece) = piece_rx.recv().await {
            match piece {
                CsvPiece::Headers(found) => headers = found,
                CsvPiece::Rows(rows) => {
                    let writer = match &mut writer {
                        Some(writer) => writer,
                        None => {
                            start.headers = std::mem::take(&mut headers);
                            writer.insert(ImportWriter::begin(db, keys, start.clone()).await?)
                        }
                    };
                    writer.write_rows(&rows).await?;
                }
            }
        }
        Ok::<Option<ImportWriter>, UploadError<E>>(writer)
    };
    let ((), writer) = tokio::try_join!(pump, consume)?;
    let read = parser
        .await
        .map_err(|err| UploadError::ReaderFailed(err.to_string()))??;
    // A sound file has at least one row, so it had at least one batch and a writer.
    let mut writer = writer.ok_or(CsvError::NoRows)?;
    writer.write_suggestions(&read.suggestions).await?;
    writer.file_size_bytes = i64::try_from(read.totals.bytes).ok();
    Ok(writer)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;
    use crate::field_mappings::suggest_mappings;
    use crate::imports::read_csv;

    /// Serves `bytes` a few at a time, as a body arrives in chunks.
    struct Chunked<'a> {
        bytes: &'a [u8],
        sizes: Vec<usize>,
        turn: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let size = self.sizes[self.turn % self.sizes.len()].max(1);
            self.turn += 1;
            let n = size.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    /// Streams `bytes` in chunks of `sizes` and checks the outcome against the whole-file
    /// reader and the whole-file suggester: same refusal, or the same rows (as JSON), the same
    /// suggestions and the same size.
    fn streamed_equals_whole_file(bytes: &[u8], sizes: Vec<usize>) {
        let mut streamed_rows: Vec<Value> = Vec::new();
        let mut streamed_headers = None;
        let streamed = read_csv_batches(
            Chunked {
                bytes,
                sizes,
                turn: 0,
            },
            |piece| {
                match piece {
                    CsvPiece::Headers(headers) => streamed_headers = Some(headers),
                    CsvPiece::Rows(rows) => {
                        for row in rows {
                            streamed_rows.push(serde_json::from_str(&row.0).expect("JSON text"));
                        }
                    }
                }
                ControlFlow::Continue(())
            },
        );
        match (read_csv(bytes), streamed) {
            (Ok(rows), Ok(read)) => {
                assert_eq!(streamed_headers.as_ref(), Some(&rows.headers));
                let whole: Vec<Value> = rows.rows.iter().cloned().map(Value::Object).collect();
                assert_eq!(streamed_rows, whole);
                assert_eq!(read.totals.rows, rows.rows.len() as u64);
                assert_eq!(read.totals.bytes, bytes.len() as u64);
                assert_eq!(
                    read.suggestions,
                    suggest_mappings(&rows.headers, &rows.rows)
                );
            }
            (Err(whole), Err(streamed)) => assert_eq!(streamed, whole),
            (whole, streamed) => panic!("whole file {whole:?}, streamed {streamed:?}"),
        }
    }

    #[test]
    fn a_streamed_file_gives_the_rows_and_suggestions_of_the_whole_file() {
        let mut file = String::from("\u{feff}Server Name,OS,Notes,memoryGB\n");
        for n in 0..(BATCH_ROWS * 2 + 17) {
            file.push_str(&format!(
                "srv{},{},\"said \"\"hi\"\", {n}\",{}\r\n",
                n % 7,
                ["linux", " linux ", "", "windows"][n % 4],
                n % 3
            ));
            if n % 100 == 0 {
                file.push_str(",,,\n");
            }
        }
        for sizes in [vec![1], vec![2, 3, 5], vec![4096], vec![1 << 20]] {
            streamed_equals_whole_file(file.as_bytes(), sizes);
        }
        streamed_equals_whole_file(b"\xEF\xBB\xBF\xEF\xBB\xBFa,b\n1,2\n", vec![1]);
        streamed_equals_whole_file(b"a,b\n1,2\n3\n4,\xff\n", vec![1]);
        streamed_equals_whole_file(b"  \n\t\n", vec![1]);
        streamed_equals_whole_file(b"", vec![1]);
    }

    #[test]
    fn a_bad_row_stops_the_batches_but_every_bad_row_is_reported() {
        let mut file = String::from("a,b\n");
        for n in 0..(BATCH_ROWS * 3) {
            if n == 10 || n == BATCH_ROWS * 2 {
                file.push_str("only-one-field\n");
            } else {
                file.push_str(&format!("{n},x\n"));
            }
        }
        let mut batches = 0;
        let read = read_csv_batches(file.as_bytes(), |piece| {
            if let CsvPiece::Rows(_) = piece {
                batches += 1;
            }
            ControlFlow::Continue(())
        });
        assert_eq!(batches, 0, "the first batch already held a bad row");
        let Err(CsvError::BadRows { count, rows }) = read else {
            panic!("bad rows expected, got {read:?}");
        };
        assert_eq!(count, 2);
        let lines: Vec<u64> = rows.iter().map(|row| row.line).collect();
        assert_eq!(lines, vec![12, BATCH_ROWS as u64 * 2 + 2]);
    }

    fn csv_like_bytes() -> impl Strategy<Value = Vec<u8>> {
        let alphabet = vec![
            b'a', b'b', b'1', b',', b',', b'"', b'\n', b'\n', b'\r', b' ', b'\t', 0xEF, 0xBB, 0xBF,
            0xff, 0xc3, 0xa9, b'\\', 0x00,
        ];
        prop::collection::vec(prop::sample::select(alphabet), 0..400)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn any_bytes_streamed_in_any_chunks_read_like_the_whole_file(
            bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..300), csv_like_bytes()],
            sizes in prop::collection::vec(1usize..9, 1..4),
        ) {
            streamed_equals_whole_file(&bytes, sizes);
        }
    }
}
