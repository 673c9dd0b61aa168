//! Uploaded log text on its way to Loki (`backend/loki/push.rs`):
//!
//! - `LineSplitter` gives the same lines however the upload is cut into
//!   chunks, and they are what `String::from_utf8_lossy` makes of each
//!   line, cut greedily at character boundaries into pieces of at most
//!   the limit;
//! - `render_line` wraps any piece in one line of valid JSON whose paths
//!   hold the message, the UID and the container, even for a shape that
//!   fails validation.
//!
//! Input: the piece limit (first byte), a seed for the chunk sizes (second
//! byte), then the uploaded bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tekton_results_logs::backend::loki::push::{render_line, LineShape, LineSplitter};

const UID: &str = "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b";

/// Pieces rendered per input: enough to see every kind of piece.
const RENDERED: usize = 16;

fuzz_target!(|data: &[u8]| {
    let [limit, seed, upload @ ..] = data else {
        return;
    };
    let limit = usize::from(*limit);
    let whole = split(upload, limit, &mut std::iter::once(upload.len().max(1)));
    let mut sizes = chunk_sizes(*seed);
    assert_eq!(
        split(upload, limit, &mut sizes),
        whole,
        "chunked differently"
    );
    assert_eq!(whole, reference(upload, limit.max(4)));
    let shapes = [
        LineShape {
            message_path: "message".to_owned(),
            uid_path: "kubernetes.labels.tekton_dev_taskRunUID".to_owned(),
            container_path: Some("kubernetes.container_name".to_owned()),
        },
        // Overlapping paths: refused by `validate`, rendered all the same.
        LineShape {
            message_path: "log".to_owned(),
            uid_path: "log.uid".to_owned(),
            container_path: Some("log".to_owned()),
        },
    ];
    assert!(shapes[0].validate().is_ok());
    assert!(shapes[1].validate().is_err());
    for piece in whole.iter().take(RENDERED) {
        check_render(&shapes[0], piece, true);
        check_render(&shapes[1], piece, false);
    }
});

fn split(upload: &[u8], limit: usize, sizes: &mut dyn Iterator<Item = usize>) -> Vec<String> {
    let mut splitter = LineSplitter::new(limit);
    let mut lines = Vec::new();
    let mut rest = upload;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(sizes.next().unwrap().min(rest.len()));
        lines.extend(splitter.push(chunk));
        rest = tail;
    }
    lines.extend(splitter.finish());
    lines
}

/// Chunk sizes from 1 to 8 bytes, drawn from `seed`.
fn chunk_sizes(seed: u8) -> impl Iterator<Item = usize> {
    let mut state = u32::from(seed) | 0x100;
    std::iter::repeat_with(move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 8) as usize + 1
    })
}

/// The lines of `upload` as `from_utf8_lossy` reads them, cut greedily.
fn reference(upload: &[u8], limit: usize) -> Vec<String> {
    let mut lines: Vec<&[u8]> = upload.split(|&b| b == b'\n').collect();
    let last = lines.pop().unwrap_or_default();
    if !last.is_empty() {
        lines.push(last);
    }
    let mut pieces = Vec::new();
    for line in lines {
        let text = String::from_utf8_lossy(line);
        let mut piece = String::new();
        for c in text.chars() {
            if piece.len() + c.len_utf8() > limit {
                pieces.push(std::mem::take(&mut piece));
            }
            piece.push(c);
        }
        pieces.push(piece);
    }
    pieces
}

fn check_render(shape: &LineShape, message: &str, valid: bool) {
    let line = render_line(shape, message, UID, Some("step-build"));
    assert!(!line.contains('\n'), "{line:?}");
    let json: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    let at = |path: &str| {
        let pointer = format!("/{}", path.replace('.', "/"));
        json.pointer(&pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    assert_eq!(at(&shape.message_path).as_deref(), Some(message));
    if valid {
        assert_eq!(at(&shape.uid_path).as_deref(), Some(UID));
        let container = shape.container_path.as_deref().unwrap();
        assert_eq!(at(container).as_deref(), Some("step-build"));
    }
}
