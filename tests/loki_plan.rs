//! The two Loki query plans give the same log: random logs are seeded into
//! the fake Loki, which runs upstream's pipeline (`| json`, the UID filter,
//! `line_format`) for the Loki plan and only the `|=` line filter for the
//! connector plan, and both reads must return the same records (text,
//! container, time, position), byte for byte, whatever the page size.
//!
//! The logs mix the run's JSON lines with other runs' lines, lines that
//! merely mention the run's UID, lines that are not JSON, missing and
//! non-string fields, duplicate keys, escaped quotes, backslashes, `\u`
//! escapes, unicode and U+FFFD (what Loki stores for bytes that are not
//! UTF-8), structured metadata, equal times across streams, and a stream
//! with an index label named like an extracted field. The templates are
//! drawn from a reference set of upstream-style line formats.

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
];

/// A message: text with the characters that test escaping.
fn message() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("plain".to_owned()),
        Just("say \"hi\"".to_owned()),
        Just("back\\slash".to_owned()),
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
    /// A forwarded JSON line; `uid` is whose it is (or none).
    Json {
        uid: Option<&'static str>,
        message: Option<serde_json::Value>,
        container: Option<String>,
        level: Option<String>,
        /// Written with a duplicate `message` key whose first value is this.
        shadowed: Option<String>,
        /// The message escaped as `\u` sequences.
        escaped: bool,
    },
    /// Text that is not JSON.
    Text(String),
}

fn line() -> impl Strategy<Value = Line> {
    let value = prop_oneof![
        4 => message().prop_map(serde_json::Value::from),
        1 => Just(serde_json::json!(42.50)),
        1 => Just(serde_json::json!(true)),
        1 => Just(serde_json::Value::Null),
        1 => Just(serde_json::json!({"nested": [1, "two"]})),
    ];
    let json = (
        prop_oneof![6 => Just(Some(UID)), 2 => Just(Some(OTHER)), 1 => Just(None)],
        prop::option::weighted(0.9, value),
        prop::option::weighted(0.8, "step-[a-c]"),
        prop::option::of("(info|warn)"),
        prop::option::weighted(0.1, message()),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(uid, message, container, level, shadowed, escaped)| Line::Json {
                uid,
                message,
                container,
                level,
                shadowed,
                escaped,
            },
        );
    prop_oneof![
        8 => json,
        1 => message().prop_map(|m| Line::Text(format!("not json {UID} {m}"))),
    ]
}

impl Line {
    fn text(&self) -> String {
        match self {
            Line::Text(text) => text.clone(),
            Line::Json {
                uid,
                message,
                container,
                level,
                shadowed,
                escaped,
            } => {
                let mut labels = serde_json::Map::new();
                if let Some(uid) = uid {
                    labels.insert("tekton_dev_taskRunUID".into(), (*uid).into());
                }
                let mut kubernetes = serde_json::Map::new();
                if let Some(container) = container {
                    kubernetes.insert("container_name".into(), container.clone().into());
                }
                kubernetes.insert("labels".into(), labels.into());
                let mut object = serde_json::Map::new();
                if let Some(level) = level {
                    object.insert("level".into(), level.clone().into());
                }
                object.insert("kubernetes".into(), kubernetes.into());
                let mut text = serde_json::Value::Object(object).to_string();
                text.pop(); // the closing brace: the message goes last
                if let Some(first) = shadowed {
                    text.push_str(&format!(
                        ",\"message\":{}",
                        serde_json::Value::from(first.clone())
                    ));
                }
                if let Some(message) = message {
                    let written = match (message, escaped) {
                        (serde_json::Value::String(s), true) => {
                            let units: String =
                                s.encode_utf16().map(|u| format!("\\u{u:04x}")).collect();
                            format!("\"{units}\"")
                        }
                        (value, _) => value.to_string(),
                    };
                    text.push_str(&format!(",\"message\":{written}"));
                }
                text.push('}');
                text
            }
        }
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

/// `(stream, time step, line, with structured metadata)`.
type Seeded = Vec<(usize, u8, Line, bool)>;

fn log() -> impl Strategy<Value = Seeded> {
    prop::collection::vec(
        (0..STREAMS.len(), 0u8..3, line(), prop::bool::weighted(0.2)),
        1..60,
    )
}

fn seed(loki: &FakeLoki, log: &Seeded) {
    let mut ts = now_ns() - 600 * 1_000_000_000;
    for (stream, step, line, metadata) in log {
        ts += i64::from(*step) * 1_000_000;
        let text = line.text();
        let meta: &[(&str, &str)] = if *metadata {
            &[("trace_id", "abc"), ("container", "meta")]
        } else {
            &[]
        };
        loki.push_lines_with_metadata(STREAMS[*stream], &[(ts, text.as_str(), meta)]);
    }
}

fn backend(
    loki: &FakeLoki,
    plan: &str,
    limit: u32,
    template: &str,
    level: bool,
) -> Arc<dyn LogBackend> {
    let limit = limit.to_string();
    let mut extra = vec![
        ("LOGGING_PLUGIN_QUERY_LIMIT", limit.as_str()),
        ("LOGGING_PLUGIN_QUERY_PLAN", plan),
    ];
    if !template.is_empty() {
        extra.push(("LOGGING_PLUGIN_LINE_FORMAT", template));
    }
    if level {
        extra.push(("LOGGING_PLUGIN_JSON_MAP", r#"{"level":"level"}"#));
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

async fn both_plans(log: Seeded, limit: u32, template: &str, level: bool) {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    seed(&loki, &log);
    let name = LogName::parse(&format!("{NS}/results/r/logs/{UID}")).unwrap();
    let run = Run::from_name(name);
    let by_loki = records(
        &*backend(&loki, "loki", limit, template, level),
        LogQuery::for_run(run.clone()),
    )
    .await
    .unwrap();
    let by_connector = records(
        &*backend(&loki, "connector", limit, template, level),
        LogQuery::for_run(run),
    )
    .await
    .unwrap();
    assert_eq!(
        shape(&by_connector),
        shape(&by_loki),
        "template {template:?}, page size {limit}"
    );
    // The connector plan asked Loki for the lines with the UID only.
    let asked = loki.requests_to("/loki/api/v1/query_range");
    assert!(asked.iter().any(|r| r
        .param("query")
        .is_some_and(|q| q.ends_with(&format!("|= \"{UID}\"")))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn the_connector_plan_reads_what_the_loki_plan_reads(
        log in log(),
        limit in 2u32..25,
        template in prop::sample::select(TEMPLATES),
        level in any::<bool>(),
    ) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(both_plans(log, limit, template, level));
    }
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
        false,
    );
    let run = Run::from_name(LogName::parse(&format!("{NS}/results/r/logs/{UID}")).unwrap());
    // The fake does not run template functions (501), which shows the query
    // was Loki's: the pipeline with the line format, not a line filter.
    let _ = records(&*backend, LogQuery::for_run(run)).await;
    let asked = loki.requests_to("/loki/api/v1/query_range");
    let query = asked[0].param("query").unwrap();
    assert!(query.contains("| line_format \"{{ printf"), "{query}");
}
