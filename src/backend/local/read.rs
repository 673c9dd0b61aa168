//! Reading a stored log file as a stream of record pages: bounded reads,
//! lines cut at `\n`, lines longer than `MAX_RECORD_BYTES` cut into pieces.

use std::io::{self, SeekFrom};
use std::path::PathBuf;

use bytes::BytesMut;
use futures::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{io_error, Error, Result};
use crate::backend::LogQuery;
use crate::record::{LogRecord, Page, Position};

/// Bytes read from the file per page.
pub const READ_BYTES: usize = 64 * 1024;

/// The longest record; a longer line is yielded as several unterminated
/// pieces, so no record (and no buffer) grows with the line.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// The pages of the log file at `path`, from `query.after`. A local log is
/// complete once stored, so `follow` ends with the history.
pub fn pages(path: PathBuf, query: LogQuery) -> impl Stream<Item = Result<Page>> {
    async_stream::try_stream! {
        let mut file = tokio::fs::File::open(&path).await.map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NotFound { name: query.name.to_string() }
            } else {
                io_error("opening", &path, e)
            }
        })?;
        let len = file
            .metadata()
            .await
            .map_err(|e| io_error("reading metadata of", &path, e))?
            .len();
        let mut offset = match query.after {
            None => 0,
            Some(Position { ts_ns: 0, seq }) if seq <= len => seq,
            Some(p) => Err(Error::InvalidArgument {
                message: format!(
                    "position {}:{} is not in log {:?} ({len} bytes)",
                    p.ts_ns, p.seq, query.name.to_string()
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
                records.push(LogRecord::text(Position { ts_ns: 0, seq: offset }, piece, terminated));
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
