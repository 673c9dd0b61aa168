//! The connector plan (`backend/loki/plan.rs`): `line_format` templates and
//! the extraction of a run's lines from the raw lines Loki returns.
//!
//! - A template is refused by naming the action, or parsed into parts that,
//!   written back, parse to the same parts.
//! - The extraction keeps exactly the lines whose JSON holds the run's UID
//!   at its path (checked against `serde_json::Value` for lines that are one
//!   JSON value without duplicate keys), labels each with the UID, and reads
//!   string and boolean fields as the Loki plan does; kept lines stay in
//!   time order.
//!
//! Input: a template on the first line, then one raw log line per line.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tekton_results_logs::backend::loki::plan::{parse_template, render, Part};
use tekton_results_logs::backend::loki::query::QueryTemplate;
use tekton_results_logs::backend::loki::wire::{Entry, QueryData, QueryResponse, StreamResult};
use tekton_results_logs::run::RunKind;

const UID: &str = "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b";
const UID_POINTER: &str = "/kubernetes/labels/tekton_dev_taskRunUID";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (template, lines) = text.split_once('\n').unwrap_or((text, ""));
    check_template(template);
    check_extraction(Some(template), lines);
    check_extraction(None, lines);
});

fn check_template(template: &str) {
    let parts = match parse_template(template) {
        Ok(parts) => parts,
        Err(action) => {
            assert!(
                (action.starts_with("{{") && action.ends_with("}}"))
                    || action == "an action is not closed with }}",
                "{template:?}: {action}"
            );
            return;
        }
    };
    let labels: BTreeMap<String, String> = [("message", "m"), ("container", "c")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let rendered = render(&parts, "LINE", &labels);
    let expected: usize = parts
        .iter()
        .map(|part| match part {
            Part::Text(text) => text.len(),
            Part::Line => 4,
            Part::Label(name) => labels.get(name).map_or(0, String::len),
        })
        .sum();
    assert_eq!(rendered.len(), expected);
    // Go's lexer takes the first `{{` as an action, so text holding `{{`
    // (two texts that a comment kept apart) or ending in `{` right before
    // an action cannot be written back; the rest writes back as it parsed.
    let parts = merge_text(parts);
    // After merging, what follows a text is an action.
    let ambiguous = parts.iter().enumerate().any(|(i, part)| match part {
        Part::Text(text) => text.contains("{{") || (text.ends_with('{') && i + 1 < parts.len()),
        _ => false,
    });
    if !ambiguous {
        let written = write_template(&parts);
        let again = parse_template(&written).unwrap_or_else(|e| panic!("{written:?}: {e}"));
        assert_eq!(merge_text(again), parts, "{template:?} as {written:?}");
    }
}

fn write_template(parts: &[Part]) -> String {
    parts
        .iter()
        .map(|part| match part {
            Part::Text(text) => text.clone(),
            Part::Label(name) => format!("{{{{.{name}}}}}"),
            Part::Line => "{{__line__}}".to_owned(),
        })
        .collect()
}

/// Adjacent text parts as one (a comment between them leaves two).
fn merge_text(parts: Vec<Part>) -> Vec<Part> {
    let mut merged: Vec<Part> = Vec::new();
    for part in parts {
        match (merged.last_mut(), part) {
            (Some(Part::Text(before)), Part::Text(text)) => before.push_str(&text),
            (_, part) => merged.push(part),
        }
    }
    merged
}

fn query_template(line_format: Option<&str>) -> QueryTemplate {
    QueryTemplate {
        static_labels: vec![("log_type".to_owned(), "application".to_owned())],
        namespace_key: "kubernetes_namespace_name".to_owned(),
        container_key: Some("kubernetes.container_name".to_owned()),
        json_map: Vec::new(),
        line_format: line_format.map(str::to_owned),
        taskrun_uid_key: "kubernetes.labels.tekton_dev_taskRunUID".to_owned(),
        pipelinerun_uid_key: "kubernetes.labels.tekton_dev_pipelineRunUID".to_owned(),
    }
}

fn check_extraction(line_format: Option<&str>, lines: &str) {
    let plan = query_template(line_format).connector_plan("ns", RunKind::TaskRun, UID);
    let extraction = match plan {
        Ok((logql, extraction)) => {
            assert!(logql.ends_with(&format!("|= \"{UID}\"")), "{logql}");
            extraction
        }
        Err(reason) => {
            assert!(reason.contains("line format"), "{reason}");
            return;
        }
    };
    let raw: Vec<&str> = lines.split('\n').collect();
    let index: BTreeMap<String, String> = [
        ("kubernetes_container_name", "step-build"),
        ("kubernetes_namespace_name", "ns"),
        ("kubernetes_pod_name", "build-pod"),
        ("log_type", "application"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let values = raw
        .iter()
        .zip(1..)
        .map(|(line, ts_ns)| Entry {
            ts_ns,
            line: (*line).to_owned(),
            metadata: vec![("detected_level".to_owned(), "unknown".to_owned())],
        })
        .collect();
    let answer = extraction.apply(QueryResponse {
        status: "success".to_owned(),
        data: QueryData {
            result_type: "streams".to_owned(),
            result: vec![StreamResult {
                stream: index.clone(),
                values,
            }],
        },
    });
    let mut kept = answer.data.result.iter().peekable();
    for (line, ts_ns) in raw.iter().zip(1..) {
        let out = kept.next_if(|s| s.values[0].ts_ns == ts_ns);
        if let Some(stream) = out {
            assert_eq!(stream.values.len(), 1);
            assert_eq!(stream.stream.get("uid").map(String::as_str), Some(UID));
            for (key, value) in &index {
                assert_eq!(stream.stream.get(key), Some(value));
            }
            assert!(stream.stream.values().all(|v| !v.is_empty()));
        }
        let Some(json) = oracle(line) else {
            continue;
        };
        let of_run = json.pointer(UID_POINTER) == Some(&Value::String(UID.to_owned()));
        assert_eq!(out.is_some(), of_run, "{line:?}");
        let Some(stream) = out else {
            continue;
        };
        let message = field(&json, "/message");
        let container = field(&json, "/kubernetes/container_name");
        if let Some(message) = &message {
            assert_eq!(
                stream.stream.get("message").map(String::as_str),
                message.as_deref()
            );
        }
        if let Some(container) = &container {
            assert_eq!(
                stream.stream.get("container").map(String::as_str),
                container.as_deref()
            );
        }
        if line_format.is_none() {
            // The default template with a container key.
            if let (Some(message), Some(container)) = (message, container) {
                let expected = format!(
                    "container-{}: message={}",
                    container.unwrap_or_default(),
                    message.unwrap_or_default()
                );
                assert_eq!(stream.values[0].line, expected, "{line:?}");
            }
        }
    }
    assert!(kept.next().is_none(), "a kept line out of order");
}

/// What Loki's `json` stage reads of a line, where `serde_json` agrees on it:
/// a line that is one JSON value (white space after it allowed) with no
/// duplicate keys. (Loki's reader takes the first of duplicates path by
/// path, and scans on past the end of the value while a path is missing.)
fn oracle(line: &str) -> Option<Value> {
    if !line.starts_with(['"', '{', '[']) {
        return None;
    }
    serde_json::from_str::<Unique>(line).ok()?;
    serde_json::from_str(line).ok()
}

/// A JSON value without duplicate keys at any depth (deserializing fails
/// otherwise).
struct Unique;

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut keys = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !keys.insert(key) {
                return Err(serde::de::Error::custom("a duplicate key"));
            }
            map.next_value::<Unique>()?;
        }
        Ok(Unique)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }

    fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique)
    }
}

/// A field's label value as the `json` stage writes it, where that does not
/// depend on the text of a number or an object: `Some(None)` for no label
/// (missing, `null` or empty), `None` when not checked.
fn field(json: &Value, pointer: &str) -> Option<Option<String>> {
    match json.pointer(pointer) {
        None | Some(Value::Null) => Some(None),
        // U+FFFD is not allowed in a label value: Loki writes a space.
        Some(Value::String(s)) => Some(Some(s.replace('\u{FFFD}', " ")).filter(|s| !s.is_empty())),
        Some(Value::Bool(b)) => Some(Some(b.to_string())),
        Some(_) => None,
    }
}
