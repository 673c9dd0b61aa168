//! Resume cursors: any text either decodes to a cursor that encodes back to
//! that very text, or is refused with a message; an encoded cursor decodes
//! to the same position, only for its own log, and any one changed
//! character makes it refused.
//!
//! Input: the text of a cursor; its bytes also make a cursor to encode
//! (`ts_ns`, `seq`, then the TaskRun part).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tekton_results_logs::api::cursor::{Cursor, CursorError, CursorWriter, MAX_CURSOR_CHARS};
use tekton_results_logs::record::Position;
use tekton_results_logs::run::LogName;

/// The longest TaskRun part a cursor holds (a record name).
const MAX_TASK_RUN_BYTES: usize = 63;

fuzz_target!(|data: &[u8]| {
    let name = name("l");
    if let Ok(text) = std::str::from_utf8(data) {
        decode_any(text, &name);
    }
    if data.len() >= 16 {
        round_trip(data, &name);
    }
});

fn name(log: &str) -> LogName {
    LogName::parse(&format!("ns/results/r/logs/{log}")).unwrap()
}

fn decode_any(text: &str, name: &LogName) {
    match Cursor::decode(text, name) {
        Ok(cursor) => {
            // The encoding is canonical: nothing else decodes to this cursor.
            assert_eq!(cursor.encode(name), text);
            assert!(cursor
                .task_run
                .as_deref()
                .is_none_or(|t| !t.is_empty() && t.len() <= MAX_TASK_RUN_BYTES));
        }
        Err(error) => {
            let message = error.to_string();
            assert!(message.starts_with("the cursor "), "{message}");
            if let CursorError::Malformed(reason) = error {
                assert!(!reason.is_empty());
            }
        }
    }
}

fn round_trip(data: &[u8], name: &LogName) {
    let (ts, rest) = data.split_at(8);
    let (seq, rest) = rest.split_at(8);
    let position = Position {
        ts_ns: i64::from_be_bytes(ts.try_into().unwrap()),
        seq: u64::from_be_bytes(seq.try_into().unwrap()),
    };
    let mut task_run = String::from_utf8_lossy(rest).into_owned();
    while task_run.len() > MAX_TASK_RUN_BYTES {
        task_run.pop();
    }
    let cursor = Cursor::new(Some(task_run).filter(|t| !t.is_empty()), position);
    let text = cursor.encode(name);
    assert_eq!(CursorWriter::new(name).write(&cursor), text);
    assert!(text.len() <= MAX_CURSOR_CHARS);
    assert!(text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(Cursor::decode(&text, name).as_ref(), Ok(&cursor));
    let other = self::name("other");
    assert_eq!(
        Cursor::decode(&text, &other),
        Err(CursorError::OtherLog(other.to_string()))
    );
    // One changed character: a cut, altered or forged cursor.
    let at = usize::from(rest.first().copied().unwrap_or(0)) % text.len();
    let mut altered = text.clone().into_bytes();
    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    assert!(Cursor::decode(&altered, name).is_err(), "{altered}");
    assert!(Cursor::decode(&text[..text.len() - 1], name).is_err());
}
