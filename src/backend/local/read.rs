//! Reading a stored log file as a stream of record pages: bounded reads,
//! lines cut at `\n`, lines longer than `MAX_RECORD_BYTES` cut into pieces,
//! pages of at most `MAX_PAGE_RECORDS` records.
//!
//! A position in a local log is (the stored file's modification time in
//! nanoseconds, the byte offset just past the record). The time identifies
//! the stored version: a position from before the log was uploaded again is
//! refused rather than read against the new text.

use std::io::{self, SeekFrom};
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use bytes::BytesMut;
use futures::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::timestamp::now_ns;

use super::{io_error, Error, Result, UPLOAD_POLL, UPLOAD_WAIT};
use crate::backend::LogQuery;
use crate::record::{LogRecord, Page, Position};

/// Bytes read from the file at a time.
pub const READ_BYTES: usize = 64 * 1024;

/// The longest record; a longer line is yielded as several unterminated
/// pieces, so no record (and no buffer) grows with the line.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// The most records in one page, so that a log of very short lines does not
/// make pages of tens of thousands of records.
pub const MAX_PAGE_RECORDS: usize = 1024;

/// The pages of the log file at `path` (or, when there is none, at
/// `legacy`), from `query.after`. A local log is complete once stored, so
/// `follow` ends with the history; a follower of a run whose log has not been
/// uploaded yet waits for it (see `open`).
pub fn pages(
    path: PathBuf,
    legacy: Option<PathBuf>,
    query: LogQuery,
) -> impl Stream<Item = Result<Page>> {
    async_stream::try_stream! {
        let (mut file, path) = open(path, legacy, &query).await?;
        let metadata = file
            .metadata()
            .await
            .map_err(|e| io_error("reading metadata of", &path, e))?;
        let len = metadata.len();
        let version = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_nanos()).ok())
            .unwrap_or(0);
        let mut offset = match query.after {
            None => 0,
            Some(Position { ts_ns, seq }) if ts_ns == version && seq <= len => seq,
            Some(p) if p.ts_ns == version => Err(Error::InvalidArgument {
                message: format!(
                    "position {} is past the end of log {:?} ({len} bytes)",
                    p.seq, query.name().to_string()
                ),
            })?,
            Some(_) => Err(Error::InvalidArgument {
                message: format!(
                    "the position is not from the stored version of log {:?} (it was stored again, or the position is from another log)",
                    query.name().to_string()
                ),
            })?,
        };
        file.seek(SeekFrom::Start(offset))
            .await
            .map_err(|e| io_error("seeking in", &path, e))?;
        let mut buf = BytesMut::with_capacity(READ_BYTES);
        loop {
            if buf.capacity() - buf.len() < READ_BYTES {
                buf.reserve(READ_BYTES);
            }
            let read = (&mut file)
                .take(READ_BYTES as u64)
                .read_buf(&mut buf)
                .await
                .map_err(|e| io_error("reading", &path, e))?;
            let eof = read == 0;
            let mut records = Vec::new();
            loop {
                let (take, terminated) = match memchr::memchr(b'\n', &buf) {
                    Some(i) if i < MAX_RECORD_BYTES => (i + 1, true),
                    _ if buf.len() >= MAX_RECORD_BYTES => (MAX_RECORD_BYTES, false),
                    None if eof && !buf.is_empty() => (buf.len(), false),
                    _ => break,
                };
                let mut piece = buf.split_to(take).freeze();
                offset += take as u64;
                if terminated {
                    piece.truncate(take - 1);
                }
                let position = Position { ts_ns: version, seq: offset };
                records.push(LogRecord::text(position, piece, terminated));
                if records.len() == MAX_PAGE_RECORDS {
                    yield Page { records: std::mem::take(&mut records) };
                }
            }
            if !records.is_empty() {
                yield Page { records };
            }
            if eof {
                break;
            }
        }
    }
}

/// Opens the log file. A follower of a run known to have started waits for
/// it while the run has not completed, and until `UPLOAD_WAIT` after it has.
async fn open(
    path: PathBuf,
    legacy: Option<PathBuf>,
    query: &LogQuery,
) -> Result<(tokio::fs::File, PathBuf)> {
    let mut completion = query.completion.clone();
    loop {
        for candidate in std::iter::once(&path).chain(legacy.as_ref()) {
            match tokio::fs::File::open(candidate).await {
                Ok(file) => return Ok((file, candidate.clone())),
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_error("opening", candidate, e))
                }
                Err(_) => {}
            }
        }
        let waited_out = query.completion_ns().is_some_and(|done| {
            let wait = i64::try_from(UPLOAD_WAIT.as_nanos()).unwrap_or(i64::MAX);
            now_ns() >= done.saturating_add(wait)
        });
        // Without a known start (no run database), nothing says a run is
        // still coming: a missing log is missing.
        if !query.follow || query.run.start_ns.is_none() || waited_out {
            return Err(Error::NotFound {
                name: query.name().to_string(),
            });
        }
        tokio::select! {
            () = tokio::time::sleep(UPLOAD_POLL) => {}
            () = completion.changed() => {}
        }
    }
}
