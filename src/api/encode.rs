//! Structured encodings of log records: for REST, one JSON object per
//! record, as NDJSON lines (`application/x-ndjson`) or Server-Sent Events
//! (`text/event-stream`); for gRPC `StreamLog`, a `RecordBatch` per page.
//! Each record carries the cursor that resumes after it. Both encode a page at a time as the client reads, so what is held
//! for a client is one page, whatever the log's size.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use serde::Serialize;

use super::cursor::{Cursor, CursorWriter};
use super::logs::PageStream;
use super::status::ApiError;
use crate::proto::tekton::resultslogs::v1;
use crate::record::{LogRecord, OutputStream, Page};
use crate::run::LogName;
use crate::timestamp::format_rfc3339_ns;

/// One record as JSON.
#[derive(Debug, Serialize)]
pub struct RecordJson<'a> {
    /// The provider's time of the line, RFC 3339 with nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The pipeline task, in a PipelineRun's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<&'a str>,
    /// The TaskRun's record name, in a PipelineRun's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_run: Option<&'a str>,
    /// The step's container, where the provider says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<&'a str>,
    /// `stdout` or `stderr`, where the provider says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<&'static str>,
    /// The line's text, when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
    /// The line's bytes in base64, when they are not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_base64: Option<String>,
    /// True when the line goes on in the next record (a line longer than a
    /// record, or the log's last line without a line end, for now).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unterminated: bool,
    /// Give this back to resume after this record.
    pub cursor: String,
}

impl<'a> RecordJson<'a> {
    /// The JSON form of `record`, a record of the log `cursors` writes for.
    pub fn new(record: &'a LogRecord, cursors: &CursorWriter) -> Self {
        let (message, message_base64) = match std::str::from_utf8(&record.message) {
            Ok(text) => (Some(text), None),
            Err(_) => (None, Some(STANDARD.encode(&record.message))),
        };
        Self {
            time: record.ts_ns.map(format_rfc3339_ns),
            task: record.task.as_deref(),
            task_run: record.task_run.as_deref(),
            container: record.container.as_deref(),
            stream: match record.stream {
                OutputStream::Unknown => None,
                OutputStream::Stdout => Some("stdout"),
                OutputStream::Stderr => Some("stderr"),
            },
            message,
            message_base64,
            unterminated: !record.terminated,
            cursor: cursor_of(record, cursors),
        }
    }
}

/// The cursor that resumes after `record`.
pub fn cursor_of(record: &LogRecord, cursors: &CursorWriter) -> String {
    cursors.write(&Cursor::new(
        record.task_run.as_deref().map(str::to_owned),
        record.position,
    ))
}

/// NDJSON: a JSON object and `\n` per record, a page per chunk. An error
/// ends the stream after being passed on.
pub fn ndjson(pages: PageStream, name: LogName) -> impl Stream<Item = Result<Bytes, ApiError>> {
    let cursors = CursorWriter::new(&name);
    pages.map(move |page| {
        let page = page?;
        let mut out = BytesMut::with_capacity(page.records.len() * 160);
        for record in &page.records {
            let mut writer = (&mut out).writer();
            serde_json::to_writer(&mut writer, &RecordJson::new(record, &cursors)).map_err(
                |e| {
                    ApiError::new(
                        super::status::ErrorCode::Internal,
                        format!("encoding a record: {e}"),
                    )
                },
            )?;
            out.put_u8(b'\n');
        }
        Ok(out.freeze())
    })
}

fn timestamp(ns: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    }
}

/// One record as the gRPC `Record` message.
pub fn grpc_record(record: &LogRecord, cursors: &CursorWriter) -> v1::Record {
    v1::Record {
        time: record.ts_ns.map(timestamp),
        task: record.task.as_deref().unwrap_or("").to_owned(),
        task_run: record.task_run.as_deref().unwrap_or("").to_owned(),
        container: record.container.as_deref().unwrap_or("").to_owned(),
        stream: match record.stream {
            OutputStream::Unknown => v1::OutputStream::Unspecified,
            OutputStream::Stdout => v1::OutputStream::Stdout,
            OutputStream::Stderr => v1::OutputStream::Stderr,
        } as i32,
        message: record.message.clone(),
        unterminated: !record.terminated,
        cursor: cursor_of(record, cursors),
    }
}

/// A page as the gRPC `RecordBatch` message `StreamLog` sends.
pub fn record_batch(page: &Page, cursors: &CursorWriter) -> v1::RecordBatch {
    v1::RecordBatch {
        records: page
            .records
            .iter()
            .map(|r| grpc_record(r, cursors))
            .collect(),
    }
}
