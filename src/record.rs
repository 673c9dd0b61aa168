//! The normalized log record every backend yields and every encoder consumes,
//! and its position in a log (ordering and resume).

use std::sync::Arc;

use bytes::Bytes;

/// Where a record stands in its log. Positions are totally ordered and strictly
/// increase along a log; reading "after" a position yields exactly the records
/// that follow it.
///
/// `ts_ns` is the record's time in nanoseconds since the Unix epoch where the
/// provider has one; `seq` orders records within one `ts_ns`. A store without
/// line times (the local store) uses `ts_ns` for the stored version of the log
/// (the file's modification time) and `seq` for the byte offset just past the
/// record, so a position also says which version of a log it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// Nanoseconds since the Unix epoch (see above for stores without times).
    pub ts_ns: i64,
    /// Order among records of the same `ts_ns`.
    pub seq: u64,
}

/// Which output stream of a container a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputStream {
    /// The provider does not say.
    #[default]
    Unknown,
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line (or one piece of an over-long line) of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Where the record stands in its log.
    pub position: Position,
    /// The time the provider gave the line, in nanoseconds since the epoch.
    pub ts_ns: Option<i64>,
    /// The pipeline task the line belongs to, where known.
    pub task: Option<Arc<str>>,
    /// In a PipelineRun's merged log: the record name of the TaskRun whose
    /// log the line is from (positions are that log's).
    pub task_run: Option<Arc<str>>,
    /// The step or container the line came from, where known.
    pub container: Option<Arc<str>>,
    /// stdout or stderr, where known.
    pub stream: OutputStream,
    /// The line's bytes, without its line end.
    pub message: Bytes,
    /// Whether the line ended with `\n` in the source. Only the last record of
    /// a log, or a piece of a line longer than the backend's record limit,
    /// has it false; text encoders write the `\n` back, so a log reads back
    /// byte for byte.
    pub terminated: bool,
}

impl LogRecord {
    /// A record with only a position and a message: what a store of raw text
    /// (the local store) knows about a line.
    pub fn text(position: Position, message: Bytes, terminated: bool) -> Self {
        Self {
            position,
            ts_ns: None,
            task: None,
            task_run: None,
            container: None,
            stream: OutputStream::Unknown,
            message,
            terminated,
        }
    }

    /// How many bytes the record takes as text, line end included.
    pub fn text_len(&self) -> usize {
        self.message.len() + usize::from(self.terminated)
    }
}

/// A batch of consecutive records, in log order: the unit a backend yields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The records, in increasing position order.
    pub records: Vec<LogRecord>,
}
