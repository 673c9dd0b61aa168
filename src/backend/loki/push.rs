//! Loki push path: turns uploaded log text into Loki push requests (snappy-compressed protobuf)
//! with the labels and JSON line shape the query side reads back.
//!
//! The pieces, in the order an upload goes through them:
//!
//! 1. [`LineSplitter`] cuts the uploaded bytes into lines (bounded memory, any chunk sizes,
//!    invalid UTF-8 replaced, over-long lines cut so that Loki's `max_line_size` is not hit);
//! 2. the caller gives every line a strictly larger timestamp than the one before, so Loki keeps
//!    the upload order (it orders by timestamp only);
//! 3. [`render_line`] wraps each line in the JSON record that the query side's
//!    `| json message="…", uid="…"` extracts from, following a validated [`LineShape`];
//! 4. [`Batcher`] groups the records into bounded batches;
//! 5. [`labels_text`] and [`encode_request`] build the body of `POST /loki/api/v1/push`, to be sent
//!    with `Content-Type: application/x-protobuf` (without it Loki answers 400
//!    `mime: no media type`);
//! 6. [`parse_rejection`] reads any answer other than 204 (Loki's plain-text error bodies).

use prost::Message;

use crate::config::is_identifier;

/// `logproto.PushRequest`; field 2 (`format`) is never sent and is skipped when decoding.
#[derive(Clone, PartialEq, Message)]
struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`; field 3 (`hash`) is never sent and is skipped when decoding.
#[derive(Clone, PartialEq, Message)]
struct StreamAdapter {
    #[prost(string, tag = "1")]
    labels: String,
    #[prost(message, repeated, tag = "2")]
    entries: Vec<EntryAdapter>,
}

/// `logproto.EntryAdapter`; structured metadata (field 3) is never sent and is skipped when
/// decoding.
#[derive(Clone, PartialEq, Message)]
struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    timestamp: Option<prost_types::Timestamp>,
    #[prost(string, tag = "2")]
    line: String,
}

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Largest decompressed body [`decode_request`] accepts, so that a forged snappy length header
/// cannot make it allocate gigabytes. Far above what Loki accepts (4 MiB per push by default).
const MAX_DECODED_BYTES: usize = 256 << 20;

/// What replaces invalid UTF-8.
const REPLACEMENT: &str = "\u{FFFD}";

/// The smallest piece size [`LineSplitter`] works with: one UTF-8 character always fits.
const MIN_PIECE_BYTES: usize = 4;

/// Where the query side finds things in a pushed line (mirrors the config keys).
///
/// A path is dotted: parts made of `A-Z a-z 0-9 _ -` joined by `.`, each part one level of
/// nesting, as in the `LOGGING_PLUGIN_*` configuration and LogQL's `| json name="a.b.c"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineShape {
    /// JSON path of the message text, e.g. "message".
    pub message_path: String,
    /// JSON path of the run UID, e.g. "kubernetes.labels.tekton_dev_taskRunUID".
    pub uid_path: String,
    /// JSON path of the container name, e.g. Some("kubernetes.container_name").
    pub container_path: Option<String>,
}

impl LineShape {
    /// Checks that every path is a dotted path (see [`LineShape`]) and that no path equals
    /// another or lies inside another (`a` and `a.b` cannot both hold a string). The error names
    /// the offending field and path.
    pub fn validate(&self) -> Result<(), String> {
        let paths = self.named_paths();
        for (name, path) in &paths {
            check_path(path).map_err(|e| format!("{name} {path:?}: {e}"))?;
        }
        for (i, (name_a, a)) in paths.iter().enumerate() {
            for (name_b, b) in paths.iter().skip(i + 1) {
                if paths_overlap(a, b) {
                    return Err(format!(
                        "{name_a} {a:?} and {name_b} {b:?} overlap: \
                         one is the same as or inside the other"
                    ));
                }
            }
        }
        Ok(())
    }

    fn named_paths(&self) -> Vec<(&'static str, &str)> {
        let mut paths = vec![
            ("message_path", self.message_path.as_str()),
            ("uid_path", self.uid_path.as_str()),
        ];
        if let Some(container) = &self.container_path {
            paths.push(("container_path", container.as_str()));
        }
        paths
    }
}

fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".to_owned());
    }
    let part_ok = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if path.split('.').all(part_ok) {
        Ok(())
    } else {
        Err("not a dotted JSON path (parts of A-Z, a-z, 0-9, _ or - joined by dots)".to_owned())
    }
}

/// True when the two dotted paths are equal or one is a whole-part prefix of the other.
fn paths_overlap(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    match long.strip_prefix(short) {
        Some(rest) => rest.is_empty() || rest.starts_with('.'),
        None => false,
    }
}

/// One line to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushLine {
    /// Timestamp in nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// The line as stored in Loki (for uploads: the output of [`render_line`]).
    pub message: String,
}

/// Renders a line as the JSON object the default query parses: nested objects built from the
/// dotted paths, e.g.
/// `{"message":"...","kubernetes":{"container_name":"step-x","labels":{"tekton_dev_taskRunUID":"U"}}}`.
/// Paths that share prefixes merge into one object; conflicting paths (one a prefix of another)
/// are an error at [`LineShape::validate`].
///
/// Keys come in the order message, container, UID. Every string is JSON-escaped (quotes,
/// backslashes and all control characters), so any text gives one valid JSON line. The container
/// is left out when `container` or `shape.container_path` is `None`. For a shape that fails
/// [`LineShape::validate`] the output is still valid JSON: a value whose path collides with a
/// higher-priority one is left out (priority: message, then UID, then container).
pub fn render_line(shape: &LineShape, message: &str, uid: &str, container: Option<&str>) -> String {
    let message_path = shape.message_path.as_str();
    let uid_path = Some(shape.uid_path.as_str()).filter(|p| !paths_overlap(p, message_path));
    let container_path = match (shape.container_path.as_deref(), container) {
        (Some(path), Some(_))
            if !paths_overlap(path, message_path)
                && !uid_path.is_some_and(|u| paths_overlap(path, u)) =>
        {
            Some(path)
        }
        _ => None,
    };
    let mut root: Vec<(&str, Node<'_>)> = Vec::new();
    insert_path(&mut root, message_path, message);
    if let (Some(path), Some(value)) = (container_path, container) {
        insert_path(&mut root, path, value);
    }
    if let Some(path) = uid_path {
        insert_path(&mut root, path, uid);
    }
    let mut out = String::with_capacity(message.len() + uid.len() + 64);
    write_object(&mut out, &root);
    out
}

/// A JSON value under construction: a string or an object whose keys keep insertion order.
enum Node<'a> {
    Text(&'a str),
    Object(Vec<(&'a str, Node<'a>)>),
}

fn insert_path<'a>(object: &mut Vec<(&'a str, Node<'a>)>, path: &'a str, value: &'a str) {
    let (key, rest) = match path.split_once('.') {
        Some((key, rest)) => (key, Some(rest)),
        None => (path, None),
    };
    let existing = object.iter_mut().find(|(k, _)| *k == key);
    match (existing, rest) {
        (None, None) => object.push((key, Node::Text(value))),
        (None, Some(rest)) => {
            let mut children = Vec::new();
            insert_path(&mut children, rest, value);
            object.push((key, Node::Object(children)));
        }
        (Some((_, Node::Object(children))), Some(rest)) => insert_path(children, rest, value),
        // Overlapping paths; render_line filters them out before inserting.
        (Some(_), _) => {}
    }
}

fn write_object(out: &mut String, object: &[(&str, Node<'_>)]) {
    out.push('{');
    for (i, (key, node)) in object.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(out, key);
        out.push(':');
        match node {
            Node::Text(text) => write_json_string(out, text),
            Node::Object(children) => write_object(out, children),
        }
    }
    out.push('}');
}

/// Appends `s` as a JSON string literal: `"` and `\` escaped, control characters as short
/// escapes or `\u00XX`; everything else (including non-ASCII) is copied as is.
fn write_json_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut copied = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
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
        // `b` is ASCII, so `i` and `i + 1` are character boundaries.
        out.push_str(&s[copied..i]);
        if short.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        } else {
            out.push_str(short);
        }
        copied = i + 1;
    }
    out.push_str(&s[copied..]);
    out.push('"');
}

/// Prometheus text form of a label set, as Loki's push `labels` field wants: `{a="b", c="d"}`,
/// sorted by name, values escaped (backslash, double quote, newline). Names must match
/// `[a-zA-Z_][a-zA-Z0-9_]*`.
///
/// Also an error: a name given twice (Loki answers 400 `has duplicate label name`) and an empty
/// value (in Prometheus label semantics an empty value means the label is absent, so the stream
/// could not be selected by it). An empty set gives `{}`, which Loki accepts.
pub fn labels_text(labels: &[(String, String)]) -> Result<String, String> {
    let mut sorted: Vec<&(String, String)> = labels.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, value) in &sorted {
        if !is_identifier(name) {
            return Err(format!(
                "label name {name:?} does not match [a-zA-Z_][a-zA-Z0-9_]*"
            ));
        }
        if value.is_empty() {
            return Err(format!("label {name:?} has an empty value"));
        }
    }
    if let Some(pair) = sorted.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(format!("label name {:?} given more than once", pair[0].0));
    }
    let mut out = String::from("{");
    for (i, (name, value)) in sorted.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    Ok(out)
}

/// Encodes a `logproto.PushRequest` (one stream per label set) as protobuf, then compresses it in
/// snappy block format (NOT the framed format, which Loki refuses).
///
/// Entries keep the given order (Loki accepts unordered writes within its window). The only
/// error: a protobuf message too large for the snappy block format (about 4 GiB; Loki takes
/// 4 MiB per push by default, see [`Batcher`]).
pub fn encode_request(streams: &[(String, Vec<PushLine>)]) -> Result<Vec<u8>, String> {
    let request = PushRequest {
        streams: streams
            .iter()
            .map(|(labels, lines)| StreamAdapter {
                labels: labels.clone(),
                entries: lines
                    .iter()
                    .map(|line| EntryAdapter {
                        timestamp: Some(timestamp_of(line.ts_ns)),
                        line: line.message.clone(),
                    })
                    .collect(),
            })
            .collect(),
    };
    let raw = request.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .map_err(|e| format!("snappy: {e}"))
}

/// Decodes what encode_request produced (for tests and the fake).
///
/// Fields this module never sends (structured metadata, `hash`, `format`) are skipped. Errors:
/// not snappy block format, a decompressed size over 256 MiB, not a `PushRequest`, an entry
/// without a timestamp or with one outside the `i64` nanosecond range.
pub fn decode_request(body: &[u8]) -> Result<Vec<(String, Vec<PushLine>)>, String> {
    let len = snap::raw::decompress_len(body).map_err(|e| format!("snappy: {e}"))?;
    if len > MAX_DECODED_BYTES {
        return Err(format!(
            "snappy: decompressed size {len} is over the limit of {MAX_DECODED_BYTES} bytes"
        ));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))?;
    let request = PushRequest::decode(raw.as_slice()).map_err(|e| format!("protobuf: {e}"))?;
    request
        .streams
        .into_iter()
        .enumerate()
        .map(|(s, stream)| {
            let lines = stream
                .entries
                .into_iter()
                .enumerate()
                .map(|(e, entry)| {
                    let ts_ns = match entry.timestamp {
                        Some(ts) => nanos_of(&ts),
                        None => Err("no timestamp".to_owned()),
                    }
                    .map_err(|err| format!("stream {s} entry {e}: {err}"))?;
                    Ok(PushLine {
                        ts_ns,
                        message: entry.line,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok((stream.labels, lines))
        })
        .collect()
}

fn timestamp_of(ts_ns: i64) -> prost_types::Timestamp {
    // rem_euclid keeps nanos in 0..1e9 for times before 1970 too, as Timestamp requires.
    let nanos = ts_ns.rem_euclid(NANOS_PER_SECOND);
    prost_types::Timestamp {
        seconds: ts_ns.div_euclid(NANOS_PER_SECOND),
        nanos: i32::try_from(nanos).unwrap_or_default(),
    }
}

fn nanos_of(ts: &prost_types::Timestamp) -> Result<i64, String> {
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(format!("timestamp nanos {} out of range", ts.nanos));
    }
    // i128: near i64::MIN the seconds alone overflow i64 although seconds + nanos fit.
    let ns = i128::from(ts.seconds) * i128::from(NANOS_PER_SECOND) + i128::from(ts.nanos);
    i64::try_from(ns).map_err(|_| {
        format!(
            "timestamp {}s {}ns does not fit in i64 nanoseconds",
            ts.seconds, ts.nanos
        )
    })
}

/// Protobuf bytes one line takes inside a `StreamAdapter`: the `entries` key and length prefix
/// plus the `EntryAdapter` (timestamp message and line string).
fn entry_wire_len(line: &PushLine) -> usize {
    use prost::encoding::encoded_len_varint;
    let ts_len = timestamp_of(line.ts_ns).encoded_len();
    let mut body = 1 + encoded_len_varint(ts_len as u64) + ts_len;
    let text = line.message.len();
    if text > 0 {
        body += 1 + encoded_len_varint(text as u64) + text;
    }
    1 + encoded_len_varint(body as u64) + body
}

/// Splits uploaded bytes into lines for pushing: a stateful splitter fed chunks of arbitrary size.
///
/// Lines end at `\n` only (a `\r` stays in the line). The output does not depend on how the
/// input is cut into chunks: each line is what `String::from_utf8_lossy` makes of its bytes (one
/// U+FFFD per maximal invalid sequence, as Vector does; a character split across chunks is kept
/// whole), then cut greedily at character boundaries into pieces of at most `max_line_bytes`
/// bytes of UTF-8. State between calls is bounded: the current piece plus at most 3 bytes of an
/// unfinished character.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    max: usize,
    piece: String,
    pending: Vec<u8>,
}

impl LineSplitter {
    /// A splitter whose pieces hold at most `max_line_bytes` bytes; values below 4 are raised
    /// to 4 so that every character fits in a piece. For Loki, use at most its `max_line_size`
    /// (256 KiB by default) minus the bytes [`render_line`] adds, bearing in mind that JSON
    /// escaping can make the message up to 6 times longer.
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            max: max_line_bytes.max(MIN_PIECE_BYTES),
            piece: String::new(),
            pending: Vec::with_capacity(MIN_PIECE_BYTES),
        }
    }

    /// Feeds bytes; returns complete lines (without `\n`). A line longer than `max_line_bytes`
    /// is cut into pieces of at most `max_line_bytes`, each returned as a line. Invalid UTF-8 is
    /// replaced with U+FFFD (Loki stores strings).
    ///
    /// The last piece of a line is returned when its `\n` arrives; the earlier pieces as soon as
    /// the next character does not fit.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.decode(&rest[..end], &mut out);
            self.end_line(&mut out);
            rest = &rest[end + 1..];
        }
        self.decode(rest, &mut out);
        out
    }

    /// The final unterminated line, if any, as pieces like [`LineSplitter::push`] returns them:
    /// none or one, except two when the input ends inside a multi-byte character whose U+FFFD
    /// no longer fits in the last piece.
    pub fn finish(mut self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.piece.is_empty() || !self.pending.is_empty() {
            self.end_line(&mut out);
        }
        out
    }

    fn end_line(&mut self, out: &mut Vec<String>) {
        if !self.pending.is_empty() {
            // An unfinished character at the end of a line is one invalid sequence.
            self.pending.clear();
            self.append(REPLACEMENT, out);
        }
        out.push(std::mem::take(&mut self.piece));
    }

    /// Decodes bytes of the current line (no `\n` in them).
    fn decode(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        let mut input = bytes;
        // Finish or reject the character left unfinished by the previous chunk, byte by byte.
        while !self.pending.is_empty() {
            let Some((&next, tail)) = input.split_first() else {
                return;
            };
            self.pending.push(next);
            match std::str::from_utf8(&self.pending) {
                Ok(complete) => {
                    let done = complete.to_owned();
                    self.pending.clear();
                    self.append(&done, out);
                    input = tail;
                }
                Err(e) if e.error_len().is_none() => input = tail,
                Err(_) => {
                    // `next` cannot continue the character: what came before it is one invalid
                    // sequence, and `next` is decoded afresh below.
                    self.pending.clear();
                    self.append(REPLACEMENT, out);
                }
            }
        }
        let mut chunks = input.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            self.append(chunk.valid(), out);
            let invalid = chunk.invalid();
            if invalid.is_empty() {
                continue;
            }
            let unfinished = chunks.peek().is_none()
                && matches!(std::str::from_utf8(invalid), Err(e) if e.error_len().is_none());
            if unfinished {
                self.pending.extend_from_slice(invalid);
            } else {
                self.append(REPLACEMENT, out);
            }
        }
    }

    /// Adds decoded text to the current piece, emitting full pieces.
    fn append(&mut self, text: &str, out: &mut Vec<String>) {
        let mut rest = text;
        while !rest.is_empty() {
            let room = self.max.saturating_sub(self.piece.len());
            if rest.len() <= room {
                self.piece.push_str(rest);
                return;
            }
            let mut cut = room;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            if cut == 0 && self.piece.is_empty() {
                // Cannot happen with max >= 4; kept so that a piece is never empty.
                cut = rest.chars().next().map_or(rest.len(), char::len_utf8);
            }
            let (head, tail) = rest.split_at(cut);
            self.piece.push_str(head);
            out.push(std::mem::take(&mut self.piece));
            rest = tail;
        }
    }
}

/// Accumulates lines into batches bounded by bytes and count. A batch should also be sent when
/// it has waited long enough; time is the caller's job, helped by [`Batcher::is_empty`] and
/// [`Batcher::len_bytes`].
///
/// Bytes are counted as the exact protobuf size the lines take in a stream (each line's length
/// plus 10 to 27 bytes of framing); the labels and the snappy compression are not counted. Keep
/// a whole request under Loki's 4 MiB gRPC limit (a larger push fails with 500
/// `ResourceExhausted`) and under its per-tenant burst (6 MB by default, else 429 forever).
/// Vector's loki sink batches at 1 MB / 100 000 lines / 1 s by default.
#[derive(Debug, Clone)]
pub struct Batcher {
    max_bytes: usize,
    max_lines: usize,
    lines: Vec<PushLine>,
    bytes: usize,
}

impl Batcher {
    /// An empty batcher; `max_lines` below 1 is raised to 1. A single line larger than
    /// `max_bytes` still makes a batch of its own.
    pub fn new(max_bytes: usize, max_lines: usize) -> Self {
        Self {
            max_bytes,
            max_lines: max_lines.max(1),
            lines: Vec::new(),
            bytes: 0,
        }
    }

    /// Adds a line. When the current batch is not empty and adding the line would exceed
    /// `max_bytes` or `max_lines`, the current batch is returned (to be sent) and the line
    /// starts the next one.
    pub fn add(&mut self, line: PushLine) -> Option<Vec<PushLine>> {
        let size = entry_wire_len(&line);
        let full = !self.lines.is_empty()
            && (self.lines.len() >= self.max_lines
                || self.bytes.saturating_add(size) > self.max_bytes);
        let ready = if full { Some(self.take()) } else { None };
        self.bytes = self.bytes.saturating_add(size);
        self.lines.push(line);
        ready
    }

    /// Takes the current batch (possibly empty), leaving the batcher empty.
    pub fn take(&mut self) -> Vec<PushLine> {
        self.bytes = 0;
        std::mem::take(&mut self.lines)
    }

    /// True when no line is waiting.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Protobuf bytes of the waiting lines (see [`Batcher`]).
    pub fn len_bytes(&self) -> usize {
        self.bytes
    }
}

/// A push answer that is not 204, parsed. Loki's 400/429 bodies are plain text listing the
/// rejected entries (Loki captures 18-21): `entry with timestamp … ignored, reason: '…',` lines
/// ended by `user 'x', total ignored: N out of M for stream: {…}` (from the ingester),
/// `N errors like: …; N errors like: …` (several distributor errors), or a single message such
/// as `entry for stream '{…}' has timestamp too old: …`.
///
/// A 400 does not mean nothing was stored: the valid entries of a partly rejected push are kept,
/// and the body may leave out some rejected entries (distributor rejections vanish when the
/// ingester rejects too, and the ingester lists at most 10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRejection {
    /// The HTTP status.
    pub status: u16,
    /// Whether sending the same request again later may succeed: 429 and 5xx, except the 500
    /// `grpc: received message larger than max`, which the same request always gets again.
    pub retryable: bool,
    /// One per rejected entry or error group, verbatim (an ingester entry without the `,` that
    /// ends it in the list); the whole body when it has no list form; empty for an empty body.
    pub reasons: Vec<String>,
    /// Total ignored N out of M, if stated (summed when several streams state it).
    pub ignored: Option<(u64, u64)>,
}

const ENTRY_PREFIX: &str = "entry with timestamp ";
const GROUP_MARK: &str = " errors like: ";
const GROUP_SEPARATOR: &str = "; ";
const MESSAGE_TOO_LARGE: &str = "grpc: received message larger than max";

/// Parses the status and plain-text body of a push answer other than 204 (see [`PushRejection`]).
pub fn parse_rejection(status: u16, body: &str) -> PushRejection {
    let text = body.trim_end_matches(['\n', '\r']);
    let retryable =
        (status == 429 || (500..=599).contains(&status)) && !text.contains(MESSAGE_TOO_LARGE);
    let ingester_list = text
        .split('\n')
        .any(|line| line.starts_with(ENTRY_PREFIX) || total_ignored(line).is_some());
    let (reasons, ignored) = if ingester_list {
        parse_ingester_list(text)
    } else if starts_with_group(text) {
        (split_groups(text), None)
    } else if text.trim().is_empty() {
        (Vec::new(), None)
    } else {
        (vec![text.to_owned()], None)
    };
    PushRejection {
        status,
        retryable,
        reasons,
        ignored,
    }
}

/// The ingester's list: `entry with timestamp … ignored, reason: '…',` lines (a reason may span
/// lines) and `user '…', total ignored: N out of M for stream: {…}` lines.
fn parse_ingester_list(text: &str) -> (Vec<String>, Option<(u64, u64)>) {
    fn flush(current: &mut Option<String>, reasons: &mut Vec<String>) {
        if let Some(entry) = current.take() {
            reasons.push(match entry.strip_suffix(',') {
                Some(stripped) => stripped.to_owned(),
                None => entry,
            });
        }
    }
    let mut reasons = Vec::new();
    let mut ignored: Option<(u64, u64)> = None;
    let mut current: Option<String> = None;
    for line in text.split('\n') {
        if let Some((n, m)) = total_ignored(line) {
            flush(&mut current, &mut reasons);
            ignored = Some(match ignored {
                Some((sum_n, sum_m)) => (sum_n.saturating_add(n), sum_m.saturating_add(m)),
                None => (n, m),
            });
        } else if line.starts_with(ENTRY_PREFIX) {
            flush(&mut current, &mut reasons);
            current = Some(line.to_owned());
        } else if let Some(entry) = current.as_mut() {
            entry.push('\n');
            entry.push_str(line);
        } else if !line.trim().is_empty() {
            reasons.push(line.to_owned());
        }
    }
    flush(&mut current, &mut reasons);
    (reasons, ignored)
}

/// `user '<tenant>', total ignored: N out of M for stream: {…}` → (N, M).
fn total_ignored(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("user '")?;
    let (_, rest) = rest.split_once("', total ignored: ")?;
    let (n, rest) = rest.split_once(" out of ")?;
    let (m, _) = rest.split_once(" for stream: ")?;
    Some((n.parse().ok()?, m.parse().ok()?))
}

/// True when `s` starts with `<digits> errors like: `.
fn starts_with_group(s: &str) -> bool {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0
        && s.get(digits..)
            .is_some_and(|rest| rest.starts_with(GROUP_MARK))
}

/// Splits `N errors like: …; N errors like: …` at each `; ` that starts a new group.
fn split_groups(text: &str) -> Vec<String> {
    let mut groups = Vec::new();
    let mut start = 0;
    for (at, _) in text.match_indices(GROUP_SEPARATOR) {
        let next = at + GROUP_SEPARATOR.len();
        if at >= start && text.get(next..).is_some_and(starts_with_group) {
            groups.push(text[start..at].to_owned());
            start = next;
        }
    }
    groups.push(text[start..].to_owned());
    groups
}

#[cfg(test)]
mod tests;
