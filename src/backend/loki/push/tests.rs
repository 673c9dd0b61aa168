//! Tests of the Loki push path: wire encoding against hand-computed bytes and real captures,
//! label text, JSON line shape, line splitting, timestamps, batching and rejection bodies.

use super::*;
use proptest::prelude::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn snappy_decompress(body: &[u8]) -> Vec<u8> {
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .expect("snappy block format")
}

fn line(ts_ns: i64, message: &str) -> PushLine {
    PushLine {
        ts_ns,
        message: message.to_owned(),
    }
}

fn pairs(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// A small independent reader of the Prometheus text form, to check `labels_text` round trips.
fn parse_labels_text(text: &str) -> Vec<(String, String)> {
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .expect("braces");
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    while chars.peek().is_some() {
        let name: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "value must be quoted");
        let mut value = String::new();
        loop {
            match chars.next().expect("unterminated value") {
                '"' => break,
                '\\' => match chars.next().expect("escape") {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    other => panic!("unexpected escape \\{other}"),
                },
                '\n' => panic!("raw newline inside a value"),
                c => value.push(c),
            }
        }
        out.push((name, value));
        match (chars.next(), chars.next()) {
            (None, _) => break,
            (Some(','), Some(' ')) => {}
            other => panic!("bad separator {other:?}"),
        }
    }
    out
}

/// Follows a dotted path through nested JSON objects to a string.
fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a str> {
    path.split('.')
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
}

fn shape(message: &str, uid: &str, container: Option<&str>) -> LineShape {
    LineShape {
        message_path: message.to_owned(),
        uid_path: uid.to_owned(),
        container_path: container.map(str::to_owned),
    }
}

fn default_shape() -> LineShape {
    shape(
        "message",
        "kubernetes.labels.tekton_dev_taskRunUID",
        Some("kubernetes.container_name"),
    )
}

/// What `LineSplitter` must return, computed the slow obvious way from the whole input.
fn oracle_lines(input: &[u8], max_line_bytes: usize) -> Vec<String> {
    let max = max_line_bytes.max(4);
    let mut segments: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    if segments.last().is_some_and(|last| last.is_empty()) {
        segments.pop();
    }
    let mut out = Vec::new();
    for segment in segments {
        let text = String::from_utf8_lossy(segment);
        if text.is_empty() {
            out.push(String::new());
            continue;
        }
        let mut piece = String::new();
        for c in text.chars() {
            if piece.len() + c.len_utf8() > max {
                out.push(std::mem::take(&mut piece));
            }
            piece.push(c);
        }
        out.push(piece);
    }
    out
}

fn split_chunks(max_line_bytes: usize, chunks: &[&[u8]]) -> Vec<String> {
    let mut splitter = LineSplitter::new(max_line_bytes);
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(splitter.push(chunk));
        assert!(splitter.pending.len() <= 3, "pending holds at most 3 bytes");
        assert!(
            splitter.piece.len() <= max_line_bytes.max(4),
            "piece bounded"
        );
    }
    out.extend(splitter.finish());
    out
}

// ---------------------------------------------------------------------------------------------
// Proptest strategies
// ---------------------------------------------------------------------------------------------

/// Strings rich in what breaks escaping: quotes, backslashes, newlines, control characters,
/// braces, and non-ASCII of every UTF-8 length.
fn tricky_text() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '"', '\\', '\n', '\r', '\t', '\u{0}', '\u{8}', '\u{c}', '\u{1b}', '\u{1f}', '\u{7f}', '{',
        '}', '=', ',', ' ', '\'', 'é', '€', '🚀', '\u{2028}', '\u{fffd}',
    ]);
    prop::collection::vec(prop_oneof![any::<char>(), special], 0..24)
        .prop_map(|chars| chars.into_iter().collect())
}

fn label_set() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::btree_map(
        "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
        tricky_text().prop_filter("non-empty value", |v| !v.is_empty()),
        0..5,
    )
    .prop_map(|map| map.into_iter().collect())
}

fn push_line() -> impl Strategy<Value = PushLine> {
    (any::<i64>(), tricky_text()).prop_map(|(ts_ns, message)| PushLine { ts_ns, message })
}

/// Bytes built from pieces that stress the splitter: newlines, CR LF, multi-byte characters,
/// truncated and invalid sequences, surrogates, arbitrary bytes.
fn upload_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        any::<u8>().prop_map(|b| vec![b]),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        prop::sample::select(vec!['a', 'Z', ' ', '\r', 'é', '€', '🚀', '\u{10ffff}'])
            .prop_map(|c| c.to_string().into_bytes()),
        prop::sample::select(vec![
            vec![0xC3],
            vec![0xE2, 0x82],
            vec![0xF0, 0x9F, 0x9A],
            vec![0xFF],
            vec![0x80],
            vec![0xED, 0xA0, 0x80],
            vec![0xF4, 0x90, 0x80, 0x80],
            vec![0xC0, 0xAF],
        ]),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

// ---------------------------------------------------------------------------------------------
// Wire encoding
// ---------------------------------------------------------------------------------------------

#[test]
fn encoding_matches_hand_computed_protobuf() {
    let streams = vec![
        (
            r#"{a="b"}"#.to_owned(),
            vec![line(1_000_000_002, "hi"), line(0, "")],
        ),
        ("{}".to_owned(), Vec::new()),
    ];
    let body = encode_request(&streams).expect("encode");
    // Block format, not the framed format's stream identifier chunk.
    assert_ne!(body.first(), Some(&0xff));
    let protobuf = snappy_decompress(&body);
    #[rustfmt::skip]
    let expected: Vec<u8> = vec![
        0x0a, 0x19,                                     // PushRequest.streams (1), 25 bytes
          0x0a, 0x07, b'{', b'a', b'=', b'"', b'b', b'"', b'}', // StreamAdapter.labels (1)
          0x12, 0x0a,                                   // StreamAdapter.entries (2), 10 bytes
            0x0a, 0x04,                                 // EntryAdapter.timestamp (1), 4 bytes
              0x08, 0x01,                               // Timestamp.seconds (1) = 1
              0x10, 0x02,                               // Timestamp.nanos (2) = 2
            0x12, 0x02, b'h', b'i',                     // EntryAdapter.line (2) = "hi"
          0x12, 0x02,                                   // entries (2): epoch, empty line
            0x0a, 0x00,                                 // timestamp present, all zero
        0x0a, 0x04,                                     // second stream, 4 bytes
          0x0a, 0x02, b'{', b'}',                       // labels "{}", no entries
    ];
    assert_eq!(protobuf, expected);
    assert_eq!(decode_request(&body).expect("decode"), streams);
}

#[test]
fn timestamps_before_1970_and_extremes_round_trip() {
    for ts in [-1, -1_000_000_000, -1_500_000_000, i64::MIN, i64::MAX, 0, 1] {
        let streams = vec![("{}".to_owned(), vec![line(ts, "x")])];
        let body = encode_request(&streams).expect("encode");
        assert_eq!(decode_request(&body).expect("decode"), streams, "ts {ts}");
    }
    let ts = timestamp_of(-1);
    assert_eq!((ts.seconds, ts.nanos), (-1, 999_999_999));
}

#[test]
fn decodes_the_captured_loki_push_and_skips_structured_metadata() {
    let body = hex(CAPTURE_17_EX1_SNAPPY);
    assert_eq!(snappy_decompress(&body), hex(CAPTURE_17_EX1_PROTOBUF));
    let streams = decode_request(&body).expect("decode capture");
    let record = |message: &str| {
        format!(
            concat!(
                r#"{{"message":"{}","kubernetes":{{"container_name":"step-proto","#,
                r#""namespace_name":"tekton-ci","pod_name":"build-app-run-x7k2p-pb-pod","#,
                r#""labels":{{"tekton_dev_taskRunUID":"3f7a9c1e-5b2d-4e8f-9a6b-1c2d3e4f5a6b","#,
                r#""tekton_dev_taskRun":"build-app-run-x7k2p-build"}}}},"log_type":"application"}}"#
            ),
            message
        )
    };
    assert_eq!(
        streams,
        vec![(
            concat!(
                r#"{log_type="application", kubernetes_namespace_name="tekton-ci", "#,
                r#"kubernetes_pod_name="build-app-run-x7k2p-pb-pod", "#,
                r#"kubernetes_container_name="step-proto"}"#
            )
            .to_owned(),
            vec![
                line(
                    1_795_601_413_000_000_000,
                    &record("pushed as snappy protobuf")
                ),
                line(
                    1_795_601_413_000_000_007,
                    &record("with structured metadata")
                ),
            ],
        )]
    );
}

#[test]
fn re_encoding_a_captured_push_gives_the_same_protobuf_bytes() {
    let captured = hex(CAPTURE_17_EX3_SNAPPY);
    let streams = decode_request(&captured).expect("decode capture");
    let ours = encode_request(&streams).expect("encode");
    assert_eq!(snappy_decompress(&ours), snappy_decompress(&captured));
}

#[test]
fn decode_rejects_what_loki_rejects_and_malformed_entries() {
    // Loki answered `snappy: corrupt input` to both.
    assert!(decode_request(&hex(CAPTURE_17_EX5_FRAMED)).is_err());
    assert!(decode_request(&hex(CAPTURE_17_EX1_PROTOBUF)).is_err());
    assert!(decode_request(b"").is_err());

    let compress = |request: PushRequest| {
        snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .expect("compress")
    };
    let with_entry = |timestamp| PushRequest {
        streams: vec![StreamAdapter {
            labels: "{}".to_owned(),
            entries: vec![EntryAdapter {
                timestamp,
                line: "x".to_owned(),
            }],
        }],
    };
    let err = decode_request(&compress(with_entry(None))).expect_err("no timestamp");
    assert!(err.contains("no timestamp"), "{err}");
    for bad in [
        prost_types::Timestamp {
            seconds: 0,
            nanos: 1_000_000_000,
        },
        prost_types::Timestamp {
            seconds: 0,
            nanos: -1,
        },
        prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        },
        prost_types::Timestamp {
            seconds: i64::MIN,
            nanos: 0,
        },
    ] {
        assert!(
            decode_request(&compress(with_entry(Some(bad)))).is_err(),
            "{bad:?}"
        );
    }
    // Not protobuf at all, but valid snappy.
    let garbage = snap::raw::Encoder::new()
        .compress_vec(b"\xff\xff\xff")
        .expect("compress");
    assert!(decode_request(&garbage).is_err());
    // A forged header announcing 1 GiB is refused before allocating.
    let err = decode_request(&[0x80, 0x80, 0x80, 0x80, 0x04, 0x00]).expect_err("too big");
    assert!(err.contains("over the limit"), "{err}");
}

proptest! {
    #[test]
    fn encode_decode_round_trip(
        streams in prop::collection::vec(
            (label_set(), prop::collection::vec(push_line(), 0..6)),
            0..4,
        )
    ) {
        let streams: Vec<(String, Vec<PushLine>)> = streams
            .into_iter()
            .map(|(labels, lines)| (labels_text(&labels).expect("valid labels"), lines))
            .collect();
        let body = encode_request(&streams).expect("encode");
        prop_assert_eq!(decode_request(&body).expect("decode"), streams);
    }

    #[test]
    fn entry_wire_len_is_the_exact_protobuf_size(line in push_line()) {
        let stream = StreamAdapter {
            labels: String::new(),
            entries: vec![EntryAdapter {
                timestamp: Some(timestamp_of(line.ts_ns)),
                line: line.message.clone(),
            }],
        };
        prop_assert_eq!(entry_wire_len(&line), stream.encoded_len());
    }
}

// ---------------------------------------------------------------------------------------------
// Labels
// ---------------------------------------------------------------------------------------------

#[test]
fn labels_text_sorts_and_escapes() {
    let text = labels_text(&pairs(&[
        ("namespace", "ci"),
        ("container", "step-\"build\"\\x\nnext\ttab"),
        ("_a", "é🚀"),
        ("B", "upper sorts first"),
    ]))
    .expect("valid");
    assert_eq!(
        text,
        concat!(
            r#"{B="upper sorts first", _a="é🚀", container="step-\"build\"\\x\nnext"#,
            "\t",
            r#"tab", namespace="ci"}"#
        )
    );
    assert_eq!(labels_text(&[]).expect("empty set"), "{}");
}

#[test]
fn labels_text_rejects_bad_names_duplicates_and_empty_values() {
    for name in ["", "1a", "a.b", "a-b", "tekton.dev/taskRunUID", "é", "a b"] {
        let err = labels_text(&pairs(&[(name, "v")])).expect_err(name);
        assert!(err.contains("[a-zA-Z_][a-zA-Z0-9_]*"), "{err}");
    }
    let err = labels_text(&pairs(&[("a", "1"), ("b", "x"), ("a", "2")])).expect_err("dup");
    assert!(err.contains("more than once"), "{err}");
    let err = labels_text(&pairs(&[("a", "")])).expect_err("empty value");
    assert!(err.contains("empty value"), "{err}");
}

proptest! {
    #[test]
    fn labels_text_round_trips(labels in label_set()) {
        let text = labels_text(&labels).expect("valid");
        prop_assert!(!text.contains('\n'));
        let mut sorted = labels.clone();
        sorted.sort();
        prop_assert_eq!(parse_labels_text(&text), sorted);
    }
}

// ---------------------------------------------------------------------------------------------
// Line shape
// ---------------------------------------------------------------------------------------------

#[test]
fn render_line_builds_the_documented_shape() {
    assert_eq!(
        render_line(&default_shape(), "...", "U", Some("step-x")),
        concat!(
            r#"{"message":"...","kubernetes":{"container_name":"step-x","#,
            r#""labels":{"tekton_dev_taskRunUID":"U"}}}"#
        )
    );
    assert_eq!(
        render_line(&default_shape(), "m", "U", None),
        r#"{"message":"m","kubernetes":{"labels":{"tekton_dev_taskRunUID":"U"}}}"#
    );
    let no_container = shape("log.msg", "uid", None);
    assert_eq!(
        render_line(&no_container, "m", "U", Some("ignored")),
        r#"{"log":{"msg":"m"},"uid":"U"}"#
    );
}

#[test]
fn render_line_escapes_every_control_character() {
    let message: String = (0u8..0x20)
        .map(char::from)
        .chain("\"\\\u{7f}é".chars())
        .collect();
    let rendered = render_line(&default_shape(), &message, "u\"id", Some("c\\n"));
    assert!(!rendered.contains('\n') && !rendered.contains('\r'));
    assert!(rendered.contains(r#"\u0000\u0001"#) && rendered.contains(r#"\b\t\n\u000b\f\r"#));
    let parsed: Value = serde_json::from_str(&rendered).expect("valid JSON");
    assert_eq!(lookup(&parsed, "message"), Some(message.as_str()));
    assert_eq!(
        lookup(&parsed, "kubernetes.labels.tekton_dev_taskRunUID"),
        Some("u\"id")
    );
    assert_eq!(lookup(&parsed, "kubernetes.container_name"), Some("c\\n"));
}

#[test]
fn render_line_with_an_invalid_shape_still_gives_valid_json() {
    // UID inside the message path: the message wins, the UID is left out.
    let bad = shape("kubernetes", "kubernetes.uid", Some("c"));
    assert_eq!(bad.validate().map_err(|_| ()), Err(()));
    let parsed: Value =
        serde_json::from_str(&render_line(&bad, "m", "U", Some("C"))).expect("JSON");
    assert_eq!(lookup(&parsed, "kubernetes"), Some("m"));
    assert_eq!(lookup(&parsed, "c"), Some("C"));
    // Container equal to the UID path: the UID wins.
    let bad = shape("message", "a.b", Some("a.b"));
    let parsed: Value =
        serde_json::from_str(&render_line(&bad, "m", "U", Some("C"))).expect("JSON");
    assert_eq!(lookup(&parsed, "a.b"), Some("U"));
}

#[test]
fn validate_accepts_config_style_paths() {
    for s in [
        default_shape(),
        shape("message", "kubernetes.labels.tekton_dev_taskRunUID", None),
        shape(
            "msg",
            "kubernetes.pod_labels.tekton_dev_taskrunuid",
            Some("kube"),
        ),
        shape("a-b.c_d", "a-b.e", Some("a-bc")),
    ] {
        assert_eq!(s.validate(), Ok(()), "{s:?}");
    }
}

#[test]
fn validate_rejects_bad_and_overlapping_paths() {
    let cases = [
        (shape("", "uid", None), "message_path \"\": empty path"),
        (shape("message", "a..b", None), "uid_path"),
        (shape("message", ".a", None), "not a dotted JSON path"),
        (shape("message", "a.", None), "not a dotted JSON path"),
        (shape("a b", "uid", None), "not a dotted JSON path"),
        (
            shape("m", r#"kubernetes.labels["tekton.dev/taskRunUID"]"#, None),
            "not a dotted JSON path",
        ),
        (shape("m", "uid", Some("")), "container_path"),
        (shape("m", "m", None), "overlap"),
        (
            shape("kubernetes", "kubernetes.labels.uid", None),
            "overlap",
        ),
        (shape("m", "k.labels.uid", Some("k.labels")), "overlap"),
        (shape("m", "k.uid", Some("m.c")), "overlap"),
    ];
    for (s, wanted) in cases {
        let err = s.validate().expect_err(&format!("{s:?}"));
        assert!(err.contains(wanted), "{s:?}: {err}");
    }
}

proptest! {
    #[test]
    fn rendered_lines_parse_and_the_paths_resolve(
        message in tricky_text(),
        uid in tricky_text(),
        container in prop::option::of(tricky_text()),
        which in 0usize..4,
    ) {
        let s = match which {
            0 => default_shape(),
            1 => shape("message", "kubernetes.labels.tekton_dev_taskRunUID", None),
            2 => shape("log.text", "log.meta.uid", Some("log.meta.container")),
            _ => shape("m", "u", Some("c")),
        };
        prop_assert_eq!(s.validate(), Ok(()));
        let rendered = render_line(&s, &message, &uid, container.as_deref());
        prop_assert!(!rendered.contains('\n'), "one physical line");
        let parsed: Value = serde_json::from_str(&rendered).expect("valid JSON");
        prop_assert_eq!(lookup(&parsed, &s.message_path), Some(message.as_str()));
        prop_assert_eq!(lookup(&parsed, &s.uid_path), Some(uid.as_str()));
        match &s.container_path {
            Some(path) => prop_assert_eq!(lookup(&parsed, path), container.as_deref()),
            None => prop_assert_eq!(parsed.as_object().map(|o| o.len()), Some(2)),
        }
    }

    #[test]
    fn json_string_escaping_matches_serde_json(text in tricky_text()) {
        let mut ours = String::new();
        write_json_string(&mut ours, &text);
        prop_assert_eq!(serde_json::from_str::<String>(&ours).expect("valid"), text.clone());
        prop_assert_eq!(ours, serde_json::to_string(&text).expect("serialize"));
    }
}

// ---------------------------------------------------------------------------------------------
// Line splitting
// ---------------------------------------------------------------------------------------------

#[test]
fn splitter_keeps_cr_and_empty_lines() {
    assert_eq!(
        split_chunks(100, &[b"a\r\nb\r\n\n\r\n\nlast"]),
        vec!["a\r", "b\r", "", "\r", "", "last"]
    );
    assert_eq!(split_chunks(100, &[b"\n"]), vec![""]);
    assert_eq!(split_chunks(100, &[b""]), Vec::<String>::new());
    assert_eq!(split_chunks(100, &[]), Vec::<String>::new());
}

#[test]
fn splitter_returns_lines_as_they_complete_and_the_rest_at_finish() {
    let mut splitter = LineSplitter::new(100);
    assert_eq!(splitter.push(b"one\ntw"), vec!["one"]);
    assert_eq!(splitter.push(b"o"), Vec::<String>::new());
    assert_eq!(splitter.push(b"\nthree"), vec!["two"]);
    assert_eq!(splitter.finish(), vec!["three"]);

    let mut splitter = LineSplitter::new(100);
    assert_eq!(
        splitter.push(b"ends with newline\n"),
        vec!["ends with newline"]
    );
    assert_eq!(splitter.finish(), Vec::<String>::new());
}

#[test]
fn splitter_cuts_over_long_lines_at_character_boundaries() {
    assert_eq!(
        split_chunks(4, &[b"abcdefghij\nabcd\nabcde"]),
        vec!["abcd", "efgh", "ij", "abcd", "abcd", "e"]
    );
    // Two-byte characters are never cut: 5 bytes of room hold two of them.
    assert_eq!(split_chunks(5, &["ééé\n".as_bytes()]), vec!["éé", "é"]);
    assert_eq!(split_chunks(6, &["a🚀🚀".as_bytes()]), vec!["a🚀", "🚀"]);
    assert_eq!(
        split_chunks(4, &["a🚀🚀".as_bytes()]),
        vec!["a", "🚀", "🚀"]
    );
    // A limit below one character is raised to 4 bytes.
    assert_eq!(
        split_chunks(0, &["abcdef🚀\n".as_bytes()]),
        vec!["abcd", "ef", "🚀"]
    );
    let mut splitter = LineSplitter::new(4);
    assert_eq!(splitter.push(b"abcdefgh"), vec!["abcd"]);
    assert_eq!(splitter.finish(), vec!["efgh"]);
}

#[test]
fn splitter_keeps_a_character_split_across_chunks_whole() {
    let rocket = "🚀".as_bytes();
    let mut splitter = LineSplitter::new(100);
    for byte in rocket {
        assert_eq!(
            splitter.push(std::slice::from_ref(byte)),
            Vec::<String>::new()
        );
    }
    assert_eq!(splitter.push(b"\n"), vec!["🚀"]);
    assert_eq!(split_chunks(100, &[&[0xC3], &[0xA9, b'\n']]), vec!["é"]);
    assert_eq!(
        split_chunks(100, &[b"x\xE2", b"\x82", b"\xAC!"]),
        vec!["x€!"]
    );
}

#[test]
fn splitter_replaces_invalid_utf8_like_from_utf8_lossy() {
    assert_eq!(split_chunks(100, &[b"a\xffb\n"]), vec!["a\u{fffd}b"]);
    // A truncated sequence followed by ASCII is one U+FFFD, also across chunks.
    assert_eq!(split_chunks(100, &[b"\xE2\x82", b"A\n"]), vec!["\u{fffd}A"]);
    assert_eq!(
        split_chunks(100, &[b"\xE2", b"\x82", b"A"]),
        vec!["\u{fffd}A"]
    );
    // A truncated sequence followed by the start of another.
    assert_eq!(
        split_chunks(100, &[b"\xF0\x9F", b"\xC3\xA9"]),
        vec!["\u{fffd}é"]
    );
    // Truncated at a line end and at the end of the input.
    assert_eq!(
        split_chunks(100, &[b"\xE2\x82", b"\nz"]),
        vec!["\u{fffd}", "z"]
    );
    assert_eq!(split_chunks(100, &[b"x\xF0\x9F\x9A"]), vec!["x\u{fffd}"]);
    // Surrogates and overlong forms are invalid byte by byte, as std decides.
    assert_eq!(
        split_chunks(100, &[b"\xED\xA0", b"\x80|\xC0\xAF"]),
        vec![String::from_utf8_lossy(b"\xED\xA0\x80|\xC0\xAF").into_owned()]
    );
}

#[test]
fn splitter_finish_can_return_two_pieces() {
    // "abc" fills 3 of 4 bytes; the unfinished character becomes a 3-byte U+FFFD.
    let mut splitter = LineSplitter::new(4);
    assert_eq!(splitter.push(b"abc\xE2"), Vec::<String>::new());
    assert_eq!(splitter.finish(), vec!["abc", "\u{fffd}"]);
    assert_eq!(oracle_lines(b"abc\xE2", 4), vec!["abc", "\u{fffd}"]);
}

#[test]
fn splitter_state_stays_bounded() {
    let mut splitter = LineSplitter::new(100);
    let big = vec![b'x'; 1 << 20];
    let pieces = splitter.push(&big);
    assert_eq!(pieces.len(), (1 << 20) / 100);
    assert!(pieces.iter().all(|p| p.len() == 100));
    assert!(splitter.piece.len() <= 100 && splitter.piece.capacity() <= 1 << 10);
    assert!(splitter.pending.is_empty());
}

proptest! {
    #[test]
    fn splitter_output_does_not_depend_on_chunking(
        input in upload_bytes(),
        max in 0usize..12,
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let expected = oracle_lines(&input, max);
        let limit = max.max(4);
        prop_assert!(expected.iter().all(|l| l.len() <= limit && !l.contains('\n')));

        prop_assert_eq!(&split_chunks(max, &[&input]), &expected);
        // Every single cut position.
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            prop_assert_eq!(&split_chunks(max, &[a, b]), &expected, "cut at {}", at);
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        prop_assert_eq!(&split_chunks(max, &bytes), &expected);
        // Several random cuts, empty chunks included.
        let mut positions: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
        positions.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for p in positions {
            chunks.push(&input[start..p]);
            start = p;
        }
        chunks.push(&input[start..]);
        prop_assert_eq!(&split_chunks(max, &chunks), &expected);
    }

    #[test]
    fn splitter_reconstructs_valid_text(
        lines in prop::collection::vec("[^\n]{0,30}", 0..8),
        terminated in any::<bool>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut text = lines.join("\n");
        if terminated && !lines.is_empty() {
            text.push('\n');
        }
        let bytes = text.as_bytes();
        let (a, b) = bytes.split_at(cut.index(bytes.len() + 1));
        let out = split_chunks(1 << 20, &[a, b]);
        let mut wanted = lines.clone();
        if !terminated && wanted.last().is_some_and(String::is_empty) {
            wanted.pop();
        }
        prop_assert_eq!(out, wanted);
    }
}

// ---------------------------------------------------------------------------------------------
// Batcher
// ---------------------------------------------------------------------------------------------

#[test]
fn batcher_bounds_line_count() {
    let mut batcher = Batcher::new(usize::MAX, 3);
    assert!(batcher.is_empty());
    assert_eq!(batcher.add(line(1, "a")), None);
    assert_eq!(batcher.add(line(2, "b")), None);
    assert_eq!(batcher.add(line(3, "c")), None);
    assert_eq!(
        batcher.add(line(4, "d")),
        Some(vec![line(1, "a"), line(2, "b"), line(3, "c")])
    );
    assert_eq!(batcher.take(), vec![line(4, "d")]);
    assert!(batcher.is_empty());
    assert_eq!(batcher.len_bytes(), 0);
    assert_eq!(batcher.take(), Vec::new());

    // max_lines 0 acts as 1.
    let mut batcher = Batcher::new(usize::MAX, 0);
    assert_eq!(batcher.add(line(1, "a")), None);
    assert_eq!(batcher.add(line(2, "b")), Some(vec![line(1, "a")]));
}

#[test]
fn batcher_bounds_bytes_and_counts_protobuf_size() {
    let one = line(1_795_601_401_000_000_000, &"x".repeat(100));
    let size = entry_wire_len(&one);
    // key + length + [timestamp: key + length + (seconds: key + 5-byte varint)]
    // + [line: key + length + 100] = 1 + 1 + (1 + 1 + 6) + (1 + 1 + 100) = 112
    assert_eq!(size, 112);
    let mut batcher = Batcher::new(2 * size, 1000);
    assert_eq!(batcher.add(one.clone()), None);
    assert_eq!(batcher.len_bytes(), size);
    assert_eq!(batcher.add(one.clone()), None);
    assert_eq!(batcher.len_bytes(), 2 * size);
    assert_eq!(
        batcher.add(one.clone()),
        Some(vec![one.clone(), one.clone()])
    );
    assert_eq!(batcher.len_bytes(), size);

    // A line over the bound alone still forms a batch.
    let mut batcher = Batcher::new(10, 1000);
    assert_eq!(batcher.add(one.clone()), None);
    assert!(!batcher.is_empty());
    assert_eq!(batcher.add(line(2, "y")), Some(vec![one]));
}

proptest! {
    #[test]
    fn batches_keep_order_and_respect_bounds(
        lines in prop::collection::vec(push_line(), 0..60),
        max_bytes in 0usize..400,
        max_lines in 1usize..8,
    ) {
        let mut batcher = Batcher::new(max_bytes, max_lines);
        let mut batches = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if let Some(batch) = batcher.add(l.clone()) {
                // A batch is handed out only when the next line would not fit.
                let bytes: usize = batch.iter().map(entry_wire_len).sum();
                prop_assert!(
                    batch.len() == max_lines || bytes + entry_wire_len(&lines[i]) > max_bytes
                );
                batches.push(batch);
            }
            let stream = StreamAdapter {
                labels: String::new(),
                entries: batcher
                    .lines
                    .iter()
                    .map(|l| EntryAdapter {
                        timestamp: Some(timestamp_of(l.ts_ns)),
                        line: l.message.clone(),
                    })
                    .collect(),
            };
            prop_assert_eq!(batcher.len_bytes(), stream.encoded_len());
        }
        if !batcher.is_empty() {
            batches.push(batcher.take());
        }
        for batch in &batches {
            prop_assert!(!batch.is_empty() && batch.len() <= max_lines);
            let bytes: usize = batch.iter().map(entry_wire_len).sum();
            prop_assert!(batch.len() == 1 || bytes <= max_bytes);
        }
        prop_assert_eq!(batches.concat(), lines);
    }
}

// ---------------------------------------------------------------------------------------------
// Rejections (bodies copied from the captures)
// ---------------------------------------------------------------------------------------------

#[test]
fn rejection_too_old_and_too_new_are_single_reasons() {
    for (status, body) in [
        (BODY_18_TOO_OLD_STATUS, BODY_18_TOO_OLD),
        (BODY_18_TOO_NEW_STATUS, BODY_18_TOO_NEW),
    ] {
        let r = parse_rejection(status, body);
        assert_eq!(
            r,
            PushRejection {
                status: 400,
                retryable: false,
                reasons: vec![body.trim_end().to_owned()],
                ignored: None,
            }
        );
    }
    assert!(parse_rejection(400, BODY_18_TOO_OLD).reasons[0].ends_with(
        "has timestamp too old: 2026-11-17T10:20:37Z, \
         oldest acceptable timestamp is: 2026-11-18T10:20:37Z"
    ));
}

#[test]
fn rejection_ingester_list_gives_entries_and_totals() {
    let r = parse_rejection(BODY_18_TOO_FAR_BEHIND_STATUS, BODY_18_TOO_FAR_BEHIND);
    assert_eq!(
        r,
        PushRejection {
            status: 400,
            retryable: false,
            reasons: vec![
                "entry with timestamp 2026-11-25 08:10:00 +0000 UTC ignored, reason: \
                 'entry too far behind, entry timestamp is: 2026-11-25T08:10:00Z, \
                 oldest acceptable timestamp is: 2026-11-25T09:10:08Z'"
                    .to_owned()
            ],
            ignored: Some((1, 1)),
        }
    );
    let r = parse_rejection(BODY_19_PARTIAL_STATUS, BODY_19_PARTIAL);
    assert_eq!(r.ignored, Some((1, 2)));
    assert_eq!(r.reasons.len(), 1);
    assert!(r.reasons[0].starts_with("entry with timestamp 2026-11-25 08:10:00 +0000 UTC"));
    assert!(r.reasons[0].ends_with("oldest acceptable timestamp is: 2026-11-25T09:10:22Z'"));
}

#[test]
fn rejection_ingester_list_with_several_entries_and_multi_line_reasons() {
    let body = "entry with timestamp A ignored, reason: 'one',\n\
                entry with timestamp B ignored, reason: 'two\nlines',\n\
                user 'fake', total ignored: 12 out of 40 for stream: {a=\"1\"}\n\
                user 'fake', total ignored: 1 out of 2 for stream: {a=\"2\"}\n";
    let r = parse_rejection(429, body);
    assert!(r.retryable);
    assert_eq!(
        r.reasons,
        vec![
            "entry with timestamp A ignored, reason: 'one'",
            "entry with timestamp B ignored, reason: 'two\nlines'",
        ]
    );
    assert_eq!(r.ignored, Some((13, 42)));
}

#[test]
fn rejection_groups_split_into_one_reason_each() {
    let r = parse_rejection(BODY_19_GROUPS_STATUS, BODY_19_GROUPS);
    assert_eq!(r.status, 400);
    assert!(!r.retryable);
    assert_eq!(r.ignored, None);
    assert_eq!(r.reasons.len(), 4, "{:#?}", r.reasons);
    assert!(r.reasons.iter().all(|g| g.starts_with("1 errors like: ")));
    assert!(r.reasons[0].contains("max entry size '262144' bytes exceeded"));
    assert!(r.reasons[0].ends_with("while adding an entry with length '262145' bytes"));
    assert!(r.reasons[1].ends_with("oldest acceptable timestamp is: 2026-11-18T10:28:13Z"));
    assert!(r.reasons[2].contains("too old: 2026-11-16T10:28:13Z"));
    assert!(r.reasons[3].ends_with("has timestamp too new: 2026-11-25T12:28:13Z"));
    assert_eq!(r.reasons.join("; "), BODY_19_GROUPS.trim_end());
    // A "; " inside a message does not start a group.
    let r = parse_rejection(400, "2 errors like: a; b; 1 errors like: c\n");
    assert_eq!(r.reasons, vec!["2 errors like: a; b", "1 errors like: c"]);
}

#[test]
fn rejection_invalid_requests_are_single_reasons() {
    let value_too_long =
        BODY_20_VALUE_TOO_LONG_ABBREVIATED.replace("<2049 x 'v'>", &"v".repeat(2049));
    assert_eq!(value_too_long.len(), 4214, "the captured body size");
    let cases: [(u16, &str); 9] = [
        (BODY_20_NUMERIC_TS_STATUS, BODY_20_NUMERIC_TS),
        (BODY_20_DOT_LABEL_STATUS, BODY_20_DOT_LABEL),
        (BODY_20_NO_STREAMS_STATUS, BODY_20_NO_STREAMS),
        (BODY_20_EOF_STATUS, BODY_20_EOF),
        (BODY_20_TOO_MANY_LABELS_STATUS, BODY_20_TOO_MANY_LABELS),
        (BODY_20_VALUE_TOO_LONG_ABBREVIATED_STATUS, &value_too_long),
        (BODY_20_LINE_TOO_LONG_STATUS, BODY_20_LINE_TOO_LONG),
        (BODY_20_DUPLICATE_LABEL_STATUS, BODY_20_DUPLICATE_LABEL),
        (BODY_21_RATE_LIMIT_STATUS, BODY_21_RATE_LIMIT),
    ];
    for (status, body) in cases {
        let r = parse_rejection(status, body);
        assert_eq!(r.reasons, vec![body.trim_end_matches('\n')], "{body}");
        assert_eq!(r.ignored, None);
        assert_eq!(r.retryable, status == 429, "{status} {body}");
    }
    assert_eq!(parse_rejection(422, BODY_20_NO_STREAMS).status, 422);
    // 405 with an empty body.
    let r = parse_rejection(405, "");
    assert_eq!((r.retryable, r.reasons.len(), r.ignored), (false, 0, None));
}

#[test]
fn rejection_retryable_for_429_and_5xx_but_not_for_oversized_pushes() {
    let r = parse_rejection(BODY_21_RATE_LIMIT_STATUS, BODY_21_RATE_LIMIT);
    assert_eq!(r.status, 429);
    assert!(r.retryable);
    assert!(r.reasons[0].starts_with(
        "ingestion rate limit exceeded for user fake (limit: 4194304 bytes/sec) \
         while attempting to ingest '35' lines totaling '7167790' bytes"
    ));
    let r = parse_rejection(BODY_21_MESSAGE_TOO_LARGE_STATUS, BODY_21_MESSAGE_TOO_LARGE);
    assert_eq!(r.status, 500);
    assert!(!r.retryable, "the same push gets the same 500");
    assert_eq!(r.reasons, vec![BODY_21_MESSAGE_TOO_LARGE.trim_end()]);
    for status in [500, 502, 503, 504] {
        assert!(parse_rejection(status, "upstream connect error\n").retryable);
    }
    for status in [400, 401, 404, 413, 422] {
        assert!(!parse_rejection(status, "x").retryable);
    }
}

// ---------------------------------------------------------------------------------------------
// Captured bytes and bodies
// ---------------------------------------------------------------------------------------------

/// Capture 17, exchange 1: the snappy block body Loki accepted (204).
const CAPTURE_17_EX1_SNAPPY: &str = concat!(
    "ae06c80aab060a99017b6c6f675f747970653d226170706c69636174696f6e222c206b756265726e65746573",
    "5f6e616d657370616365050a283d2274656b746f6e2d636936270008706f640d21646275696c642d6170702d",
    "72756e2d78376b32702d70622d706f6436320020636f6e7461696e65720d38d8737465702d70726f746f227d",
    "12b8020a060885e89ad80612ad027b226d657373616765223a2270757368656420617320736e617070792005",
    "3214627566222c2219b60c223a7b2236600004223a2e6100082c226e32d70004223a2ed800002211cd04223a",
    "72ce0014226c6162656c056d2916e05f6465765f7461736b52756e554944223a2233663761396331652d3562",
    "32642d346538662d396136622d316332643365346635613662222c22463f005a7b000062215d10227d7d2c22",
    "31bb04223a32bc01147d12d1020a08293b0c100712ac323d0160776974682073747275637475726564206d65",
    "74616461746122fe3c01fe3c01fe3c01fe3c012d3c5c1a160a0874726163655f6964120a70622d7472616365",
    "2d31",
);

/// Capture 17, exchange 1: the same body before compression.
const CAPTURE_17_EX1_PROTOBUF: &str = concat!(
    "0aab060a99017b6c6f675f747970653d226170706c69636174696f6e222c206b756265726e657465735f6e61",
    "6d6573706163655f6e616d653d2274656b746f6e2d6369222c206b756265726e657465735f706f645f6e616d",
    "653d226275696c642d6170702d72756e2d78376b32702d70622d706f64222c206b756265726e657465735f63",
    "6f6e7461696e65725f6e616d653d22737465702d70726f746f227d12b8020a060885e89ad80612ad027b226d",
    "657373616765223a2270757368656420617320736e617070792070726f746f627566222c226b756265726e65",
    "746573223a7b22636f6e7461696e65725f6e616d65223a22737465702d70726f746f222c226e616d65737061",
    "63655f6e616d65223a2274656b746f6e2d6369222c22706f645f6e616d65223a226275696c642d6170702d72",
    "756e2d78376b32702d70622d706f64222c226c6162656c73223a7b2274656b746f6e5f6465765f7461736b52",
    "756e554944223a2233663761396331652d356232642d346538662d396136622d316332643365346635613662",
    "222c2274656b746f6e5f6465765f7461736b52756e223a226275696c642d6170702d72756e2d78376b32702d",
    "6275696c64227d7d2c226c6f675f74797065223a226170706c69636174696f6e227d12d1020a080885e89ad8",
    "06100712ac027b226d657373616765223a22776974682073747275637475726564206d65746164617461222c",
    "226b756265726e65746573223a7b22636f6e7461696e65725f6e616d65223a22737465702d70726f746f222c",
    "226e616d6573706163655f6e616d65223a2274656b746f6e2d6369222c22706f645f6e616d65223a22627569",
    "6c642d6170702d72756e2d78376b32702d70622d706f64222c226c6162656c73223a7b2274656b746f6e5f64",
    "65765f7461736b52756e554944223a2233663761396331652d356232642d346538662d396136622d31633264",
    "3365346635613662222c2274656b746f6e5f6465765f7461736b52756e223a226275696c642d6170702d7275",
    "6e2d78376b32702d6275696c64227d7d2c226c6f675f74797065223a226170706c69636174696f6e227d1a16",
    "0a0874726163655f6964120a70622d74726163652d31",
);

/// Capture 17, exchange 3: one entry, no structured metadata (204).
const CAPTURE_17_EX3_SNAPPY: &str = concat!(
    "df03c80adc030a99017b6c6f675f747970653d226170706c69636174696f6e222c206b756265726e65746573",
    "5f6e616d657370616365050a283d2274656b746f6e2d636936270008706f640d21646275696c642d6170702d",
    "72756e2d78376b32702d70622d706f6436320020636f6e7461696e65720d38f046737465702d70726f746f22",
    "7d12bd020a060887e89ad80612b2027b226d657373616765223a22636f6e74656e742d656e636f64696e6720",
    "736e6170707920686561646572222c2219bb08223a7b052f196504223a2e6600082c226e32dc0004223a2edd",
    "00002211d204223a72d30014226c6162656c056d291be05f6465765f7461736b52756e554944223a22336637",
    "61396331652d356232642d346538662d396136622d316332643365346635613662222c22463f005a7b002562",
    "10227d7d2c2231c03c223a226170706c69636174696f6e227d",
);

/// Capture 17, exchange 5: snappy *framed* format, which Loki refused (400).
const CAPTURE_17_EX5_FRAMED: &str = concat!(
    "ff060000734e6150705900920100fa054f27ae06c80aab060a99017b6c6f675f747970653d226170706c6963",
    "6174696f6e222c206b756265726e657465735f6e616d657370616365050a283d2274656b746f6e2d63693627",
    "0008706f640d21646275696c642d6170702d72756e2d78376b32702d70622d706f6436320020636f6e746169",
    "6e65720d38d8737465702d70726f746f227d12b8020a060885e89ad80612ad027b226d657373616765223a22",
    "70757368656420617320736e6170707920053214627566222c2219b60c223a7b2236600004223a2e6100082c",
    "226e32d70004223a2ed800002211cd04223a72ce0014226c6162656c056d2916e05f6465765f7461736b5275",
    "6e554944223a2233663761396331652d356232642d346538662d396136622d31633264336534663561366222",
    "2c22463f005a7b000062215d10227d7d2c2231bb04223a32bc01147d12d1020a08293b0c100712ac323d0160",
    "776974682073747275637475726564206d6574616461746122fe3c01fe3c01fe3c01fe3c012d3c5c1a160a08",
    "74726163655f6964120a70622d74726163652d31",
);

/// Capture 18, exchange 1 (400): too old. Verbatim, with its final newline.
const BODY_18_TOO_OLD: &str = concat!(
    r#"entry for stream '{kubernetes_container_name="step-build", kubernetes_namespace_name="tekton-ci", kubernetes_pod_name="build-app-run-x7k2p-build-pod", log_type="application", service_name="unknown_service"}' has timestamp too old: 2026-11-17T10:20:37Z, oldest acceptable timestamp is: 2026-11-18T10:20:37Z"#,
    "\n"
);
const BODY_18_TOO_OLD_STATUS: u16 = 400;

/// Capture 18, exchange 2 (400): too new. Verbatim, with its final newline.
const BODY_18_TOO_NEW: &str = concat!(
    r#"entry for stream '{kubernetes_container_name="step-build", kubernetes_namespace_name="tekton-ci", kubernetes_pod_name="build-app-run-x7k2p-build-pod", log_type="application", service_name="unknown_service"}' has timestamp too new: 2026-11-25T11:20:37Z"#,
    "\n"
);
const BODY_18_TOO_NEW_STATUS: u16 = 400;

/// Capture 18, exchange 3 (400): too far behind (ingester list). Verbatim, with its final newline.
const BODY_18_TOO_FAR_BEHIND: &str = concat!(
    r#"entry with timestamp 2026-11-25 08:10:00 +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2026-11-25T08:10:00Z, oldest acceptable timestamp is: 2026-11-25T09:10:08Z',
user 'fake', total ignored: 1 out of 1 for stream: {kubernetes_container_name="step-build", kubernetes_namespace_name="tekton-ci", kubernetes_pod_name="build-app-run-x7k2p-build-pod", log_type="application", service_name="unknown_service"}"#,
    "\n"
);
const BODY_18_TOO_FAR_BEHIND_STATUS: u16 = 400;

/// Capture 19, exchange 1 (400): partial acceptance, ingester list. Verbatim, with its final newline.
const BODY_19_PARTIAL: &str = concat!(
    r#"entry with timestamp 2026-11-25 08:10:00 +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2026-11-25T08:10:00Z, oldest acceptable timestamp is: 2026-11-25T09:10:22Z',
user 'fake', total ignored: 1 out of 2 for stream: {kubernetes_container_name="step-clone", kubernetes_namespace_name="tekton-ci", kubernetes_pod_name="build-app-run-x7k2p-build-pod", log_type="application", service_name="unknown_service"}"#,
    "\n"
);
const BODY_19_PARTIAL_STATUS: u16 = 400;

/// Capture 19, exchange 4 (400): distributor-only rejections, grouped. Verbatim, with its final newline.
const BODY_19_GROUPS: &str = concat!(
    r#"1 errors like: max entry size '262144' bytes exceeded for stream '{kubernetes_container_name="step-test", kubernetes_namespace_name="tekton-ci", kubernetes_pod_name="build-app-run-x7k2p-test-pod", log_type="application", service_name="unknown_service"}' while adding an entry with length '262145' bytes; 1 errors like: entry for stream '{kubernetes_container_name="step-test", kubernetes_namespace_name="tekton-ci", kubernetes_pod_name="build-app-run-x7k2p-test-pod", log_type="application", service_name="unknown_service"}' has timestamp too old: 2026-11-17T10:28:13Z, oldest acceptable timestamp is: 2026-11-18T10:28:13Z; 1 errors like: entry for stream '{kubernetes_container_name="step-test", kubernetes_namespace_name="tekton-ci", kubernetes_pod_name="build-app-run-x7k2p-test-pod", log_type="application", service_name="unknown_service"}' has timestamp too old: 2026-11-16T10:28:13Z, oldest acceptable timestamp is: 2026-11-18T10:28:13Z; 1 errors like: entry for stream '{kubernetes_container_name="step-test", kubernetes_namespace_name="tekton-ci", kubernetes_pod_name="build-app-run-x7k2p-test-pod", log_type="application", service_name="unknown_service"}' has timestamp too new: 2026-11-25T12:28:13Z"#,
    "\n"
);
const BODY_19_GROUPS_STATUS: u16 = 400;

/// Capture 20, exchange 1 (400): numeric JSON timestamp. Verbatim, with its final newline.
const BODY_20_NUMERIC_TS: &str = concat!(
    r#"loghttp.PushRequest.Streams: []loghttp.LogProtoStream: unmarshalerDecoder: Value looks like Number/Boolean/None, but can't find its end: ',' or '}' symbol, error found in #10 byte of ...|ric ts"]]}]}|..., bigger context ...|i"},"values":[[1795601430000000000,"numeric ts"]]}]}|..."#,
    "\n"
);
const BODY_20_NUMERIC_TS_STATUS: u16 = 400;

/// Capture 20, exchange 2 (400): dot in a label name. Verbatim, with its final newline.
const BODY_20_DOT_LABEL: &str = concat!(
    r#"couldn't parse labels: 1:12: parse error: unexpected character inside braces: '.'"#,
    "\n"
);
const BODY_20_DOT_LABEL_STATUS: u16 = 400;

/// Capture 20, exchange 5 (422): empty stream list. Verbatim, with its final newline.
const BODY_20_NO_STREAMS: &str = concat!(
    r#"error at least one valid stream is required for ingestion"#,
    "\n"
);
const BODY_20_NO_STREAMS_STATUS: u16 = 422;

/// Capture 20, exchange 8 (400): empty body. Verbatim, with its final newline.
const BODY_20_EOF: &str = concat!(r#"EOF"#, "\n");
const BODY_20_EOF_STATUS: u16 = 400;

/// Capture 20, exchange 10 (400): 16 label names. Verbatim, with its final newline.
const BODY_20_TOO_MANY_LABELS: &str = concat!(
    r#"entry for stream '{l00="v", l01="v", l02="v", l03="v", l04="v", l05="v", l06="v", l07="v", l08="v", l09="v", l10="v", l11="v", l12="v", l13="v", l14="v", l15="v", service_name="unknown_service"}' has 16 label names; limit 15"#,
    "\n"
);
const BODY_20_TOO_MANY_LABELS_STATUS: u16 = 400;

/// Capture 20, exchange 11 (400): label value too long; the capture abbreviates 2049 'v' as <2049 x 'v'>. Verbatim, with its final newline.
const BODY_20_VALUE_TOO_LONG_ABBREVIATED: &str = concat!(
    r#"stream '{kubernetes_namespace_name="tekton-ci", service_name="unknown_service", x="<2049 x 'v'>"}' has label value too long: '<2049 x 'v'>'"#,
    "\n"
);
const BODY_20_VALUE_TOO_LONG_ABBREVIATED_STATUS: u16 = 400;

/// Capture 20, exchange 12 (400): line over 256 KiB. Verbatim, with its final newline.
const BODY_20_LINE_TOO_LONG: &str = concat!(
    r#"max entry size '262144' bytes exceeded for stream '{kubernetes_container_name="step-build", kubernetes_namespace_name="tekton-ci", kubernetes_pod_name="build-app-run-x7k2p-build-pod", log_type="application", service_name="unknown_service"}' while adding an entry with length '262145' bytes"#,
    "\n"
);
const BODY_20_LINE_TOO_LONG_STATUS: u16 = 400;

/// Capture 20, exchange 14 (400): duplicate label name. Verbatim, with its final newline.
const BODY_20_DUPLICATE_LABEL: &str = concat!(
    r#"stream '{a="1", a="2", service_name="unknown_service"}' has duplicate label name: 'a'"#,
    "\n"
);
const BODY_20_DUPLICATE_LABEL_STATUS: u16 = 400;

/// Capture 21, exchange 1 (429): ingestion rate limit. Verbatim, with its final newline.
const BODY_21_RATE_LIMIT: &str = concat!(
    r#"ingestion rate limit exceeded for user fake (limit: 4194304 bytes/sec) while attempting to ingest '35' lines totaling '7167790' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased"#,
    "\n"
);
const BODY_21_RATE_LIMIT_STATUS: u16 = 429;

/// Capture 21, exchange 2 (500): push over the 4 MiB gRPC limit. Verbatim, with its final newline.
const BODY_21_MESSAGE_TOO_LARGE: &str = concat!(
    r#"rpc error: code = ResourceExhausted desc = grpc: received message larger than max (5121282 vs. 4194304)"#,
    "\n"
);
const BODY_21_MESSAGE_TOO_LARGE_STATUS: u16 = 500;
