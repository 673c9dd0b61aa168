//! Resume cursors: where a reader stopped in a log, as an opaque token a
//! client hands back to get exactly the lines after it.
//!
//! A cursor is URL-safe base64 (no padding) of:
//!
//! | bytes | what |
//! | --- | --- |
//! | 1 | format version, `1` |
//! | 8 | tag of the log name the cursor belongs to |
//! | 8 | position `ts_ns`, big-endian two's complement |
//! | 8 | position `seq`, big-endian |
//! | 1 | length `n` of the TaskRun part, 0 for none |
//! | n | the TaskRun's record name, in a PipelineRun's merged log |
//! | 8 | check: the start of SHA-256 over everything before it |
//!
//! The check catches a cursor that was cut, altered or made up; the tag, one
//! taken from another log. A forged cursor gains nothing: it can only name a
//! position in a log its bearer may already read.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::record::Position;
use crate::run::LogName;

/// The format written.
const VERSION: u8 = 1;

/// Bytes of the name tag and of the check.
const TAG_BYTES: usize = 8;

/// The longest TaskRun part (a record name is at most 63 bytes).
const MAX_TASK_RUN_BYTES: usize = 63;

/// The longest cursor text accepted, well above the longest written.
pub const MAX_CURSOR_CHARS: usize = 256;

/// Where a reader stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// In a PipelineRun's merged log: the record name of the TaskRun whose
    /// log holds the position.
    pub task_run: Option<String>,
    /// The last record delivered.
    pub position: Position,
}

/// Why a cursor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not a cursor this service wrote (bad characters, cut, altered).
    #[error("the cursor is malformed: {0}")]
    Malformed(&'static str),
    /// Written by a newer or unknown format.
    #[error("the cursor has format version {0}, which this service does not read")]
    Version(u8),
    /// A cursor of another log.
    #[error("the cursor belongs to another log than {0:?}")]
    OtherLog(String),
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part);
    }
    hash.finalize().into()
}

fn name_tag(name: &LogName) -> [u8; TAG_BYTES] {
    let full = digest(&[
        b"tekton-results-logs cursor name\0",
        name.to_string().as_bytes(),
    ]);
    let mut tag = [0; TAG_BYTES];
    tag.copy_from_slice(&full[..TAG_BYTES]);
    tag
}

impl Cursor {
    /// The cursor after the record at `position` (of the TaskRun
    /// `task_run`, in a merged log).
    pub fn new(task_run: Option<String>, position: Position) -> Self {
        Self { task_run, position }
    }

    /// The token for this cursor in the log `name`.
    ///
    /// # Panics
    ///
    /// If the TaskRun part is longer than a record name can be (63 bytes).
    pub fn encode(&self, name: &LogName) -> String {
        CursorWriter::new(name).write(self)
    }

    /// Reads a token that must belong to the log `name`.
    pub fn decode(text: &str, name: &LogName) -> Result<Self, CursorError> {
        if text.len() > MAX_CURSOR_CHARS {
            return Err(CursorError::Malformed("it is too long"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text.as_bytes())
            .map_err(|_| CursorError::Malformed("it is not URL-safe base64"))?;
        // Too short for any cursor (a stray word is not a cursor of
        // another version).
        let fixed = 1 + TAG_BYTES + 16 + 1;
        if bytes.len() < fixed + TAG_BYTES {
            return Err(CursorError::Malformed("it is too short"));
        }
        if bytes[0] != VERSION {
            return Err(CursorError::Version(bytes[0]));
        }
        let (body, check) = bytes.split_at(bytes.len() - TAG_BYTES);
        if digest(&[body])[..TAG_BYTES] != *check {
            return Err(CursorError::Malformed(
                "its check does not match (altered or cut)",
            ));
        }
        let task_run_len = usize::from(body[fixed - 1]);
        if body.len() != fixed + task_run_len || task_run_len > MAX_TASK_RUN_BYTES {
            return Err(CursorError::Malformed("its length does not match"));
        }
        if body[1..1 + TAG_BYTES] != name_tag(name) {
            return Err(CursorError::OtherLog(name.to_string()));
        }
        let number = |at: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&body[at..at + 8]);
            b
        };
        let position = Position {
            ts_ns: i64::from_be_bytes(number(1 + TAG_BYTES)),
            seq: u64::from_be_bytes(number(1 + TAG_BYTES + 8)),
        };
        let task_run = match &body[fixed..] {
            [] => None,
            raw => Some(
                std::str::from_utf8(raw)
                    .map_err(|_| CursorError::Malformed("its TaskRun part is not text"))?
                    .to_owned(),
            ),
        };
        Ok(Self { task_run, position })
    }
}

/// Writes the cursors of one log: its name's tag is worked out once, not
/// for every record.
#[derive(Debug, Clone, Copy)]
pub struct CursorWriter {
    tag: [u8; TAG_BYTES],
}

impl CursorWriter {
    /// The writer for the log `name`.
    pub fn new(name: &LogName) -> Self {
        Self {
            tag: name_tag(name),
        }
    }

    /// The token for `cursor`.
    ///
    /// # Panics
    ///
    /// If the TaskRun part is longer than a record name can be (63 bytes).
    pub fn write(&self, cursor: &Cursor) -> String {
        let task_run = cursor.task_run.as_deref().unwrap_or("").as_bytes();
        assert!(
            task_run.len() <= MAX_TASK_RUN_BYTES,
            "a TaskRun record name is at most {MAX_TASK_RUN_BYTES} bytes"
        );
        let mut bytes = Vec::with_capacity(1 + 3 * 8 + 1 + task_run.len() + TAG_BYTES);
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.tag);
        bytes.extend_from_slice(&cursor.position.ts_ns.to_be_bytes());
        bytes.extend_from_slice(&cursor.position.seq.to_be_bytes());
        bytes.push(task_run.len() as u8);
        bytes.extend_from_slice(task_run);
        let check = digest(&[&bytes]);
        bytes.extend_from_slice(&check[..TAG_BYTES]);
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn name(log: &str) -> LogName {
        LogName::parse(&format!("ns/results/r/logs/{log}")).unwrap()
    }

    #[test]
    fn a_cursor_reads_back_and_is_url_safe() {
        let cursor = Cursor::new(
            Some("5e1f0000-0000-4000-8000-000000000002".into()),
            Position {
                ts_ns: -5,
                seq: u64::MAX,
            },
        );
        let text = cursor.encode(&name("a"));
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert!(text.len() <= MAX_CURSOR_CHARS);
        assert_eq!(Cursor::decode(&text, &name("a")), Ok(cursor));
    }

    #[test]
    fn foreign_altered_and_malformed_cursors_are_refused() {
        let text = Cursor::new(None, Position { ts_ns: 7, seq: 3 }).encode(&name("a"));
        assert_eq!(
            Cursor::decode(&text, &name("b")),
            Err(CursorError::OtherLog("ns/results/r/logs/b".into()))
        );
        for bad in [
            "",
            "!!",
            "AQ",
            "abc",
            "nope",
            &text[..text.len() - 2],
            &"A".repeat(300),
        ] {
            assert!(
                matches!(
                    Cursor::decode(bad, &name("a")),
                    Err(CursorError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(&text).unwrap();
        bytes[0] = 9;
        assert_eq!(
            Cursor::decode(&URL_SAFE_NO_PAD.encode(&bytes), &name("a")),
            Err(CursorError::Version(9))
        );
    }

    proptest! {
        #[test]
        fn every_cursor_round_trips(
            ts_ns in any::<i64>(),
            seq in any::<u64>(),
            task_run in proptest::option::of("[a-z0-9-]{1,63}"),
            log in "[a-z0-9_-]{1,63}",
        ) {
            let cursor = Cursor::new(task_run, Position { ts_ns, seq });
            let text = cursor.encode(&name(&log));
            prop_assert_eq!(Cursor::decode(&text, &name(&log)), Ok(cursor));
        }

        #[test]
        fn any_changed_byte_is_caught(
            ts_ns in any::<i64>(),
            seq in any::<u64>(),
            task_run in proptest::option::of("[a-z0-9-]{1,63}"),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let text = Cursor::new(task_run, Position { ts_ns, seq }).encode(&name("l"));
            let mut bytes = URL_SAFE_NO_PAD.decode(&text).unwrap();
            let i = at.index(bytes.len());
            bytes[i] ^= flip;
            prop_assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode(&bytes), &name("l")).is_err());
        }
    }
}
