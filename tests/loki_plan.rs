//! The two Loki query plans give the same log: random logs are seeded into
//! the fake Loki, which runs upstream's pipeline (`| json`, the UID filter,
//! `line_format`) for the Loki plan and only the `|=` line filter for the
//! connector plan, and both reads must return the same records (text,
//! container, time, position), byte for byte, whatever the page size.
//!
//! The logs mix the run's JSON lines with other runs' lines, lines that
//! merely mention the run's UID, lines that are not JSON, missing and
//! non-string fields, duplicate keys and duplicate parent objects, escaped
//! quotes, backslashes, `\u` escapes (surrogate pairs, lone and malformed
//! ones, escaped keys), unicode and U+FFFD (what Loki stores for bytes that
//! are not UTF-8), arrays and objects as values, tokens that are not JSON
//! values, white space, lines cut anywhere or with text around them,
//! messages before or after the `kubernetes` object, strings ending in a
//! backslash, structured metadata (named like an index label, like an
//! extracted field, or like the UID label), equal times across streams, a
//! stream with an index label named like an extracted field, and a JSON map
//! whose field gets the same name as the container field there. The
//! templates are drawn from a reference set of upstream-style line formats.

use std::sync::Arc;

use proptest::prelude::*;
use tekton_results_logs::backend::{LogBackend, LogQuery};
use tekton_results_logs::record::LogRecord;
use tekton_results_logs::run::{LogName, Run};
use tekton_results_logs::timestamp::now_ns;

use crate::backend_conformance::records;
use crate::fakes::loki::{FakeLoki, FakeLokiConfig};

const NS: &str = "plans";
const UID: &str = "7d3c2b1a-0f9e-4d8c-b7a6-958473625140";
const OTHER: &str = "11111111-2222-4333-8444-555555555555";

/// Line formats as upstream configurations write them, and the connector's
/// subset at its edges.
const TEMPLATES: &[&str] = &[
    "",
    "{{.message}}",
    "[{{ .container }}] {{.message}}",
    "{{- .message -}}",
    "  {{- .container }}:\t{{ .message -}}  ",
    "{{.message}} {{.missing}}|{{.uid}}",
    "{{__line__}}",
    "{{/* raw */}}{{ __line__ }}",
    "{{.level}} {{.message}}",
    "{{.message}}\u{a0} {{- .container -}} \u{3000}x",
    "{{.message}}|{{.__error__}}|{{.__error_details__}}|{{.container_extracted}}",
];

/// A message: text with the characters that test escaping.
fn message() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("plain".to_owned()),
        Just("say \"hi\"".to_owned()),
        Just("back\\slash".to_owned()),
        Just("ends with \\".to_owned()),
        Just("\\".to_owned()),
        Just("tab\there".to_owned()),
        Just("é 日本 🚀".to_owned()),
        Just("\u{FFFD}\u{FFFD}".to_owned()),
        Just(format!("mentions {UID}")),
        Just(" ".to_owned()),
        "[a-z0-9 ]{0,12}",
    ];
    prop::collection::vec(piece, 0..4).prop_map(|p| p.concat())
}

/// One stored line.
#[derive(Debug, Clone)]
enum Line {
    Json(JsonLine),
    /// Text that is not JSON.
    Text(String),
}

/// A forwarded JSON line.
#[derive(Debug, Clone)]
struct JsonLine {
    /// Whose line it is (or none).
    uid: Option<&'static str>,
    message: Option<Value>,
    container: Option<String>,
    level: Option<String>,
    /// Written with a duplicate `message` key whose first value is this.
    shadowed: Option<String>,
    /// The message written first rather than last.
    message_first: bool,
    /// A `shadow` field (which a JSON map may name `container_extracted`,
    /// like the container field on a stream with a `container` label), and
    /// whether it comes before the `kubernetes` object.
    shadow: Option<(String, bool)>,
    /// A first `kubernetes` object, before the real one: its fields win.
    decoy: Option<(Option<&'static str>, Option<&'static str>)>,
    /// Written with white space around keys and values.
    pretty: bool,
    /// The `message` key written with an escape.
    escaped_key: bool,
    damage: Option<Damage>,
}

/// A message value.
#[derive(Debug, Clone)]
enum Value {
    Json(serde_json::Value),
    /// A string written as `\u` escapes.
    Escaped(String),
    /// JSON text as written, valid or not.
    Raw(&'static str),
}

/// What a forwarder or a cut may do to a line.
#[derive(Debug, Clone)]
enum Damage {
    /// Cut after this share (of 256) of its bytes.
    Cut(u8),
    /// Text after the object.
    Tail(&'static str),
    /// A space before it.
    Lead,
}

/// Value texts Loki's reader treats in its own way.
const RAW_VALUES: &[&str] = &[
    r#""bad \x escape""#,
    r#""lone \ud83d""#,
    r#""pair \ud83d\ude80 and \ud83dxxde80""#,
    r#""past \udbff\udfff and \udc00\udc00""#,
    r#""marked \ufffd and \u00e9""#,
    r#"["a\"b", "\u00e9", {"k": "\n"}]"#,
    r#"{"a": [1, "\u0041"], "b": "\"q\""}"#,
    "12abc",
    "-",
    "tru",
    "nul",
    "[1, 2",
    "{\"open\": 1",
    "\"open",
];

fn line() -> impl Strategy<Value = Line> {
    let value = prop_oneof![
        8 => message().prop_map(|m| Value::Json(m.into())),
        1 => message().prop_map(Value::Escaped),
        1 => Just(Value::Json(serde_json::json!(42.50))),
        1 => Just(Value::Json(serde_json::json!(true))),
        1 => Just(Value::Json(serde_json::Value::Null)),
        1 => Just(Value::Json(serde_json::json!({"nested": [1, "two"]}))),
        3 => prop::sample::select(RAW_VALUES).prop_map(Value::Raw),
    ];
    let uid = || prop_oneof![6 => Just(Some(UID)), 2 => Just(Some(OTHER)), 1 => Just(None)];
    let decoy = (
        uid(),
        prop::option::of(prop::sample::select(&["step-z", "step-a"][..])),
    );
    let damage = prop_oneof![
        any::<u8>().prop_map(Damage::Cut),
        prop::sample::select(&[" tail", "}\"message\":\"after\"}", "}}[", "\u{1}"][..])
            .prop_map(Damage::Tail),
        Just(Damage::Lead),
    ];
    let json = (
        (
            uid(),
            prop::option::weighted(0.9, value),
            prop::option::weighted(0.8, "step-[a-c]"),
            prop::option::of("(info|warn)"),
            prop::option::weighted(0.1, message()),
            prop::bool::weighted(0.2),
            prop::option::weighted(0.3, ("[a-z]{0,3}", any::<bool>())),
        ),
        (
            prop::option::weighted(0.1, decoy),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.1),
            prop::option::weighted(0.1, damage),
        ),
    )
        .prop_map(
            |(
                (uid, message, container, level, shadowed, message_first, shadow),
                (decoy, pretty, escaped_key, damage),
            )| {
                Line::Json(JsonLine {
                    uid,
                    message,
                    container,
                    level,
                    shadowed,
                    message_first,
                    shadow,
                    decoy,
                    pretty,
                    escaped_key,
                    damage,
                })
            },
        );
    prop_oneof![
        8 => json,
        1 => message().prop_map(|m| Line::Text(format!("not json {UID} {m}"))),
    ]
}

/// The `kubernetes` object of a line.
fn kubernetes(uid: Option<&str>, container: Option<&str>) -> serde_json::Value {
    let mut labels = serde_json::Map::new();
    if let Some(uid) = uid {
        labels.insert("tekton_dev_taskRunUID".into(), uid.into());
    }
    let mut kubernetes = serde_json::Map::new();
    if let Some(container) = container {
        kubernetes.insert("container_name".into(), container.into());
    }
    kubernetes.insert("labels".into(), labels.into());
    kubernetes.into()
}

impl Line {
    fn text(&self) -> String {
        match self {
            Line::Json(json) => json.text(),
            Line::Text(text) => text.clone(),
        }
    }
}

impl JsonLine {
    fn text(&self) -> String {
        let mut object = serde_json::Map::new();
        if let Some(level) = &self.level {
            object.insert("level".into(), level.clone().into());
        }
        object.insert(
            "kubernetes".into(),
            kubernetes(self.uid, self.container.as_deref()),
        );
        let mut text = if self.pretty {
            serde_json::to_string_pretty(&object).unwrap()
        } else {
            serde_json::Value::Object(object).to_string()
        };
        if let Some((uid, container)) = &self.decoy {
            // Before the real `kubernetes` key: the first of duplicates.
            let first = format!("\"kubernetes\":{},", kubernetes(*uid, *container));
            text.insert_str(1, &first);
        }
        text.pop(); // the closing brace
        let key = if self.escaped_key {
            "\"mess\\u0061ge\""
        } else {
            "\"message\""
        };
        let colon = if self.pretty { " : " } else { ":" };
        // Members written before the rest, and after it.
        let mut before = Vec::new();
        let mut after = Vec::new();
        if let Some((value, first)) = &self.shadow {
            let member = format!(
                "\"shadow\"{colon}{}",
                serde_json::Value::from(value.clone())
            );
            let side = if *first { &mut before } else { &mut after };
            side.push(member);
        }
        let messages = if self.message_first {
            &mut before
        } else {
            &mut after
        };
        if let Some(first) = &self.shadowed {
            let first = serde_json::Value::from(first.clone());
            messages.push(format!("{key}{colon}{first}"));
        }
        if let Some(message) = &self.message {
            let written = match message {
                Value::Json(value) => value.to_string(),
                Value::Escaped(s) => {
                    let units: String = s.encode_utf16().map(|u| format!("\\u{u:04x}")).collect();
                    format!("\"{units}\"")
                }
                Value::Raw(raw) => (*raw).to_owned(),
            };
            messages.push(format!("{key}{colon}{written}"));
        }
        if !before.is_empty() {
            text.insert_str(1, &format!("{},", before.join(",")));
        }
        for member in after {
            text.push(',');
            text.push_str(&member);
        }
        text.push('}');
        match &self.damage {
            None => {}
            Some(Damage::Cut(share)) => {
                let mut at = text.len() * usize::from(*share) / 256;
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                text.truncate(at);
            }
            Some(Damage::Tail(tail)) => text.push_str(tail),
            Some(Damage::Lead) => text.insert(0, ' '),
        }
        text
    }
}

/// The streams lines go to: a Vector-style one, another container's, and a
/// Promtail-style one with an index label named `container`.
const STREAMS: &[&[(&str, &str)]] = &[
    &[
        ("log_type", "application"),
        ("kubernetes_namespace_name", NS),
        ("kubernetes_container_name", "step-a"),
    ],
    &[
        ("log_type", "application"),
        ("kubernetes_namespace_name", NS),
        ("kubernetes_container_name", "step-b"),
    ],
    &[
        ("log_type", "application"),
        ("kubernetes_namespace_name", NS),
        ("container", "promtail"),
    ],
];

/// Structured metadata lines may have: some named like an index label of
/// the third stream, some like extracted fields, and the UID label (given
/// only to lines whose text holds the UID: a UID that is only in metadata
/// is a known limit of the connector plan, which asks Loki for `|= UID`).
const METADATA: &[&[(&str, &str)]] = &[
    &[],
    &[("trace_id", "abc"), ("container", "meta")],
    &[("message", "from metadata"), ("level", "meta-level")],
    &[("uid", UID)],
];

/// A JSON map whose field is named as the container field is named on a
/// stream with a `container` label (of two fields named alike, the one later
/// in the line wins). Loki fixes a field's name by the stream of the first
/// line it finds the field in, where the fake and the connector decide per
/// stream, so with this map every line goes to that stream.
const COLLIDING_MAP: &str = r#"{"level":"level","container_extracted":"shadow"}"#;

/// The stream with an index label named `container`.
const CONTAINER_STREAM: usize = 2;

/// The `LOGGING_PLUGIN_JSON_MAP`s tried: none, an extra field, and the
/// colliding one.
const JSON_MAPS: &[Option<&str>] = &[None, Some(r#"{"level":"level"}"#), Some(COLLIDING_MAP)];

/// `(stream, time step, line, its structured metadata)`.
type Seeded = Vec<(usize, u8, Line, usize)>;

fn log() -> impl Strategy<Value = Seeded> {
    prop::collection::vec(
        (
            0..STREAMS.len(),
            0u8..3,
            line(),
            prop_oneof![8 => Just(0), 1 => Just(1), 1 => Just(2), 1 => Just(3)],
        ),
        1..60,
    )
}

/// Seeds the log, each line to its stream or all to `only`.
fn seed(loki: &FakeLoki, log: &Seeded, only: Option<usize>) {
    let mut ts = now_ns() - 600 * 1_000_000_000;
    for (stream, step, line, metadata) in log {
        ts += i64::from(*step) * 1_000_000;
        let text = line.text();
        let mut metadata = METADATA[*metadata];
        if metadata.iter().any(|(name, _)| *name == "uid") && !text.contains(UID) {
            metadata = &[];
        }
        let stream = only.unwrap_or(*stream);
        loki.push_lines_with_metadata(STREAMS[stream], &[(ts, text.as_str(), metadata)]);
    }
}

fn backend(
    loki: &FakeLoki,
    plan: &str,
    limit: u32,
    template: &str,
    json_map: Option<&str>,
) -> Arc<dyn LogBackend> {
    let limit = limit.to_string();
    let mut extra = vec![
        ("LOGGING_PLUGIN_QUERY_LIMIT", limit.as_str()),
        ("LOGGING_PLUGIN_QUERY_PLAN", plan),
    ];
    if !template.is_empty() {
        extra.push(("LOGGING_PLUGIN_LINE_FORMAT", template));
    }
    if let Some(map) = json_map {
        extra.push(("LOGGING_PLUGIN_JSON_MAP", map));
    }
    crate::loki::backend(loki, &extra)
}

/// A record as comparable values: position, time, container, text.
type Shape = (i64, u64, Option<i64>, Option<String>, Vec<u8>);

/// What a read gives, as comparable values.
fn shape(records: &[LogRecord]) -> Vec<Shape> {
    records
        .iter()
        .map(|r| {
            (
                r.position.ts_ns,
                r.position.seq,
                r.ts_ns,
                r.container.as_deref().map(str::to_owned),
                r.message.to_vec(),
            )
        })
        .collect()
}

/// Reads the log with both plans, checks they agree, and gives the records.
async fn both_plans(
    log: Seeded,
    limit: u32,
    template: &str,
    json_map: Option<&str>,
) -> Vec<LogRecord> {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let only = (json_map == Some(COLLIDING_MAP)).then_some(CONTAINER_STREAM);
    seed(&loki, &log, only);
    let name = LogName::parse(&format!("{NS}/results/r/logs/{UID}")).unwrap();
    let run = Run::from_name(name);
    let by_loki = records(
        &*backend(&loki, "loki", limit, template, json_map),
        LogQuery::for_run(run.clone()),
    )
    .await
    .unwrap();
    let by_connector = records(
        &*backend(&loki, "connector", limit, template, json_map),
        LogQuery::for_run(run),
    )
    .await
    .unwrap();
    assert_eq!(
        shape(&by_connector),
        shape(&by_loki),
        "template {template:?}, JSON map {json_map:?}, page size {limit}"
    );
    // The connector plan asked Loki for the lines with the UID only.
    let asked = loki.requests_to("/loki/api/v1/query_range");
    assert!(asked.iter().any(|r| r
        .param("query")
        .is_some_and(|q| q.ends_with(&format!("|= \"{UID}\"")))));
    by_connector
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn the_connector_plan_reads_what_the_loki_plan_reads(
        log in log(),
        limit in 2u32..25,
        template in prop::sample::select(TEMPLATES),
        json_map in prop::sample::select(JSON_MAPS),
    ) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(both_plans(log, limit, template, json_map));
    }
}

#[tokio::test]
async fn of_two_fields_named_alike_the_later_in_the_line_wins() {
    let k8s = |container: &str| {
        format!(
            r#""kubernetes":{{"container_name":"{container}","labels":{{"tekton_dev_taskRunUID":"{UID}"}}}}"#
        )
    };
    let lines = [
        format!(r#"{{"shadow":"s1",{},"message":"m"}}"#, k8s("step-a")),
        format!(r#"{{{},"shadow":"s2","message":"m"}}"#, k8s("step-b")),
    ];
    let log: Seeded = lines
        .into_iter()
        .map(|text| (CONTAINER_STREAM, 1, Line::Text(text), 0))
        .collect();
    let records = both_plans(log, 10, "{{.container_extracted}}", Some(COLLIDING_MAP)).await;
    let texts: Vec<&[u8]> = records.iter().map(|r| &r.message[..]).collect();
    assert_eq!(texts, [&b"step-a"[..], b"s2"]);
}

#[tokio::test]
async fn a_template_the_connector_cannot_render_is_left_to_loki() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    // `printf` is a template function: only Loki renders it exactly.
    let backend = backend(
        &loki,
        "connector",
        100,
        "{{ printf \"%s\" .message }}",
        None,
    );
    let run = Run::from_name(LogName::parse(&format!("{NS}/results/r/logs/{UID}")).unwrap());
    // The fake does not run template functions (501), which shows the query
    // was Loki's: the pipeline with the line format, not a line filter.
    let _ = records(&*backend, LogQuery::for_run(run)).await;
    let asked = loki.requests_to("/loki/api/v1/query_range");
    let query = asked[0].param("query").unwrap();
    assert!(query.contains("| line_format \"{{ printf"), "{query}");
}

#[tokio::test]
async fn check_says_when_the_connector_plan_falls_back() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let check = |line_format: &'static str| {
        let env = crate::loki::loki_env(&loki, &[("LOGGING_PLUGIN_LINE_FORMAT", line_format)]);
        async move {
            let out = tokio::process::Command::new(crate::support::BIN)
                .arg("check")
                .env_clear()
                .envs(env)
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        }
    };
    let rendered = check("[{{ .container }}] {{.message}}").await;
    assert!(
        rendered.contains("LOGGING_PLUGIN_QUERY_PLAN:"),
        "{rendered}"
    );
    assert!(
        !rendered.contains("LOGGING_PLUGIN_QUERY_PLAN is connector"),
        "{rendered}"
    );
    let refused = check("{{ .message | upper }}").await;
    assert!(
        refused.contains(
            "warning: LOGGING_PLUGIN_QUERY_PLAN is connector, but Loki runs the query's \
             pipeline (the Loki plan): the line format's action {{.message | upper}} is not \
             one the connector renders"
        ),
        "{refused}"
    );
}
