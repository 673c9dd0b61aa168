//! The query plan: what Loki evaluates and what the connector does itself.
//!
//! Upstream's query makes Loki parse every line of the run's streams as JSON
//! (`| json ...`), filter on the extracted UID and render `line_format`:
//! on a real Loki that costs about four times a plain line filter. With the
//! connector plan (`LOGGING_PLUGIN_QUERY_PLAN=connector`) Loki only selects the streams and keeps the
//! lines that contain the UID (`|= "<uid>"`, answered with the index labels
//! apart from structured metadata); the connector then does what the
//! pipeline would have done, with the same result, byte for byte:
//!
//! 1. the `json` stage with parameters: each field read at its path (a
//!    string unescaped, a number or boolean as written, `null` as empty, an
//!    object or array as its JSON text; the last of duplicate keys), named
//!    `<name>_extracted` when an index label has its name, and empty when
//!    missing; a line that is not JSON (or empty) gets no fields;
//! 2. the label filter: the extracted UID must equal the run's (a line that
//!    merely mentions the UID is not part of the log);
//! 3. `line_format`, for the template subset upstream configurations use:
//!    text, `{{.label}}` (empty when the label is missing), `{{__line__}}`,
//!    comments and `{{-` / `-}}` trimming (of ASCII white space, as Go);
//! 4. each line's labels (index labels, then structured metadata, then the
//!    extracted fields; empty ones left out, as Loki leaves them out of its
//!    answer) become its stream, so the order and positions of equal-time
//!    lines are those of the Loki plan; an entry whose time, labels and text
//!    repeat an earlier one's is dropped, as Loki drops it.
//!
//! A template or a field path outside what the connector renders exactly
//! makes the backend use the Loki plan, and say so once in the service log.
//! The Loki plan is the default (`LOGGING_PLUGIN_QUERY_PLAN=loki`) until the
//! details below are confirmed.
//!
//! The reference is the fake Loki (`tests/fakes/loki.rs`), built from
//! captures of a real Loki. Some `json` details were not captured and may
//! differ in a real Loki (its module doc lists them): duplicate keys, U+FFFD
//! in strings, array values, lines that are not valid JSON after the run's
//! fields, and structured metadata named like an index label.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::wire::{Entry, QueryResponse, StreamResult};

/// One piece of a `line_format` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Literal text.
    Text(String),
    /// `{{.name}}`: a label's value, empty when it is missing.
    Label(String),
    /// `{{__line__}}`: the line itself.
    Line,
}

/// What Go's `text/template` trims next to `{{-` and `-}}`.
const GO_SPACE: [char; 4] = [' ', '\t', '\r', '\n'];

/// Parses the `line_format` subset the connector renders, as Go's
/// `text/template` reads it; `Err` names the first action outside it.
pub fn parse_template(template: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = template;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start_matches(GO_SPACE);
        }
        let after = &rest[open + 2..];
        let trim_left =
            after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_left {
            text = text.trim_end_matches(GO_SPACE);
        }
        if !text.is_empty() {
            parts.push(Part::Text(text.to_owned()));
        }
        let close = after
            .find("}}")
            .ok_or_else(|| "an action is not closed with }}".to_owned())?;
        let mut inner = &after[..close];
        if trim_left {
            inner = &inner[1..];
        }
        trim_next = inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-");
        if trim_next {
            inner = &inner[..inner.len() - 1];
        }
        let action = inner.trim();
        if action.starts_with("/*") && action.ends_with("*/") {
            // A comment.
        } else if action == "__line__" {
            parts.push(Part::Line);
        } else if let Some(name) = action.strip_prefix('.').filter(|name| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }) {
            parts.push(Part::Label(name.to_owned()));
        } else {
            return Err(format!("{{{{{action}}}}}"));
        }
        rest = &after[close + 2..];
    }
    let text = if trim_next {
        rest.trim_start_matches(GO_SPACE)
    } else {
        rest
    };
    if !text.is_empty() {
        parts.push(Part::Text(text.to_owned()));
    }
    Ok(parts)
}

/// Renders parsed `parts` for a line and its labels.
pub fn render(parts: &[Part], line: &str, labels: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Line => out.push_str(line),
            Part::Label(name) => {
                if let Some(value) = labels.get(name) {
                    out.push_str(value);
                }
            }
        }
    }
    out
}

/// The paths to read, as a tree: a field ends at a node, or goes on below.
#[derive(Debug, Default)]
struct Node {
    /// Fields (indexes into `Extraction::fields`) whose path ends here.
    fields: Vec<usize>,
    /// Keys below this object, with their subtrees.
    children: Vec<(String, Node)>,
}

impl Node {
    /// Forgets the values of the fields at and below this node.
    fn clear(&self, values: &mut [Option<String>]) {
        for &field in &self.fields {
            values[field] = None;
        }
        for (_, child) in &self.children {
            child.clear(values);
        }
    }

    fn insert(&mut self, path: &[String], field: usize) {
        match path.split_first() {
            None => self.fields.push(field),
            Some((key, rest)) => {
                let child = match self.children.iter().position(|(k, _)| k == key) {
                    Some(i) => &mut self.children[i].1,
                    None => {
                        self.children.push((key.clone(), Node::default()));
                        &mut self.children.last_mut().expect("just pushed").1
                    }
                };
                child.insert(rest, field);
            }
        }
    }
}

/// What the connector does to a run's raw lines (steps 1 to 4 above).
#[derive(Debug)]
pub struct Extraction {
    /// `(label, path)` in the order the Loki plan's `json` stage lists them.
    fields: Vec<(String, Vec<String>)>,
    paths: Node,
    /// The label holding the run UID, and the UID.
    uid_label: String,
    uid: String,
    template: Vec<Part>,
}

/// A field path the connector reads: dot-separated keys of the characters
/// Loki's path syntax allows unquoted.
fn parse_path(path: &str) -> Option<Vec<String>> {
    let key_ok = |key: &str| {
        !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '/' | '@'))
    };
    let keys: Vec<String> = path.split('.').map(str::to_owned).collect();
    keys.iter().all(|k| key_ok(k)).then_some(keys)
}

impl Extraction {
    /// The extraction of `fields` (label, path; in the Loki plan's order),
    /// keeping the lines whose `uid_label` is `uid`, rendered by `template`;
    /// `Err` says what the connector cannot do exactly.
    pub fn new(
        fields: &[(String, String)],
        uid_label: &str,
        uid: &str,
        template: &str,
    ) -> Result<Self, String> {
        let template = parse_template(template).map_err(|action| {
            format!("the line format's action {action} is not one the connector renders")
        })?;
        let mut paths = Node::default();
        let mut parsed = Vec::with_capacity(fields.len());
        for (i, (label, path)) in fields.iter().enumerate() {
            let keys = parse_path(path)
                .ok_or_else(|| format!("the field path {path:?} is not one the connector reads"))?;
            paths.insert(&keys, i);
            parsed.push((label.clone(), keys));
        }
        Ok(Self {
            fields: parsed,
            paths,
            uid_label: uid_label.to_owned(),
            uid: uid.to_owned(),
            template,
        })
    }

    /// The lines of a raw answer that belong to the run, rendered and
    /// labelled as the Loki plan would have answered them.
    /// Each line is a stream of its own here (as it is in Loki's answer,
    /// whose extracted message differs from line to line); an entry that
    /// repeats another's time, labels and text is dropped when the page is
    /// merged (`history::merge`), as Loki drops it.
    pub fn apply(&self, response: QueryResponse) -> QueryResponse {
        let mut result = Vec::new();
        for stream in response.data.result {
            for entry in stream.values {
                if let Some((labels, line)) = self.line(&stream.stream, &entry) {
                    result.push(StreamResult {
                        stream: labels,
                        values: vec![Entry {
                            ts_ns: entry.ts_ns,
                            line,
                            metadata: Vec::new(),
                        }],
                    });
                }
            }
        }
        QueryResponse {
            status: response.status,
            data: super::wire::QueryData {
                result_type: response.data.result_type,
                result,
            },
        }
    }

    /// One raw line: its labels and rendered text, or `None` when it is not
    /// the run's.
    fn line(
        &self,
        index: &BTreeMap<String, String>,
        entry: &Entry,
    ) -> Option<(BTreeMap<String, String>, String)> {
        let raw = entry.line.as_str();
        // What the `json` stage leaves out: no fields at all.
        if raw.is_empty() || !raw.starts_with(['"', '{', '[']) {
            return None;
        }
        let mut values: Vec<Option<String>> = vec![None; self.fields.len()];
        let mut deserializer = serde_json::Deserializer::from_str(raw);
        // A line Loki cannot parse gets no UID: not the run's.
        Seek {
            node: &self.paths,
            values: &mut values,
        }
        .deserialize(&mut deserializer)
        .ok()?;
        let mut labels = index.clone();
        for (key, value) in &entry.metadata {
            labels.entry(key.clone()).or_insert_with(|| value.clone());
        }
        for ((label, _), value) in self.fields.iter().zip(values.iter_mut()) {
            if let Some(value) = value.take() {
                let name = if index.contains_key(label) {
                    format!("{label}_extracted")
                } else {
                    label.clone()
                };
                labels.insert(name, value);
            }
        }
        for (label, _) in &self.fields {
            labels.entry(label.clone()).or_default();
        }
        if labels.get(&self.uid_label).map(String::as_str) != Some(self.uid.as_str()) {
            return None;
        }
        let line = render(&self.template, raw, &labels);
        // An empty label is no label in Loki's answer.
        labels.retain(|_, value| !value.is_empty());
        Some((labels, line))
    }
}

/// A field's value as the `json` stage writes it, from its JSON text.
fn field_value(raw: &RawValue) -> Option<String> {
    let text = raw.get();
    match text.as_bytes().first()? {
        // Without escapes the text between the quotes is the value.
        b'"' if !text.contains('\\') => Some(text[1..text.len() - 1].to_owned()),
        b'"' => serde_json::from_str::<String>(text).ok(),
        b'n' => Some(String::new()),
        _ => Some(text.to_owned()),
    }
}

/// Which child of a node a key names, without copying the key.
struct KeyOf<'n>(&'n Node);

impl<'de> DeserializeSeed<'de> for KeyOf<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyOf<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.children.iter().position(|(k, _)| k == key))
    }
}

/// Reads the fields of `node` from a JSON value, skipping what no path
/// needs.
struct Seek<'n, 'v> {
    node: &'n Node,
    values: &'v mut Vec<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Seek<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Seek { node, values } = self;
        while let Some(key) = map.next_key_seed(KeyOf(node))? {
            let Some(i) = key else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let child = &node.children[i].1;
            // The last of duplicate keys wins, as in Loki.
            child.clear(values);
            if child.fields.is_empty() {
                // Only keys below: read them in the same pass.
                map.next_value_seed(Seek {
                    node: child,
                    values: &mut *values,
                })?;
                continue;
            }
            let raw = map.next_value::<&'de RawValue>()?;
            for &field in &child.fields {
                values[field] = field_value(raw);
            }
            if !child.children.is_empty() {
                let mut inner = serde_json::Deserializer::from_str(raw.get());
                // Only an object has keys to follow; the text was checked.
                let _ = Seek {
                    node: child,
                    values: &mut *values,
                }
                .deserialize(&mut inner);
            }
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_string<E>(self, _: String) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn templates_render_as_go_templates_do_in_the_subset() {
        let l = labels(&[("container", "step-a"), ("message", "hi")]);
        let cases = [
            (
                "container-{{.container}}: message={{.message}}",
                "container-step-a: message=hi",
            ),
            ("[{{ .container }}] {{.message}}", "[step-a] hi"),
            ("  {{- .container }}:\t{{ .message -}}  ", "step-a:\thi"),
            ("{{.missing}}|{{.message}}", "|hi"),
            ("{{/* note */}}{{ __line__ }}", "RAW"),
            ("no actions", "no actions"),
            ("a {{- /* c */ -}} b", "ab"),
            // Go trims ASCII white space only, not U+00A0 or U+3000.
            ("a\u{a0} {{- .message -}} \u{3000}b", "a\u{a0}hi\u{3000}b"),
        ];
        for (template, want) in cases {
            let parts = parse_template(template).unwrap();
            assert_eq!(render(&parts, "RAW", &l), want, "{template:?}");
        }
    }

    #[test]
    fn templates_outside_the_subset_are_refused_by_name() {
        for template in [
            "{{ printf \"%s\" .message }}",
            "{{ .message | upper }}",
            "{{if .message}}x{{end}}",
            "{{.kubernetes.pod}}",
            "{{ .message ",
        ] {
            assert!(parse_template(template).is_err(), "{template:?}");
        }
        assert_eq!(
            parse_template("{{ .message | upper }}").unwrap_err(),
            "{{.message | upper}}"
        );
    }

    fn extraction() -> Extraction {
        let fields = [
            (
                "container".to_owned(),
                "kubernetes.container_name".to_owned(),
            ),
            ("message".to_owned(), "message".to_owned()),
            ("uid".to_owned(), "kubernetes.labels.uid".to_owned()),
        ];
        Extraction::new(&fields, "uid", "U", "{{.container}} {{.message}}").unwrap()
    }

    fn one(line: &str, index: &[(&str, &str)]) -> Option<(BTreeMap<String, String>, String)> {
        let entry = Entry {
            ts_ns: 1,
            line: line.to_owned(),
            metadata: vec![("detected_level".to_owned(), "info".to_owned())],
        };
        extraction().line(&labels(index), &entry)
    }

    #[test]
    fn fields_are_read_as_loki_reads_them() {
        let k8s = r#""kubernetes":{"container_name":"c","labels":{"uid":"U"}}"#;
        let (l, text) = one(&format!(r#"{{{k8s},"message":"say \"hi\" \u00e9"}}"#), &[]).unwrap();
        assert_eq!(text, "c say \"hi\" é");
        assert_eq!(l["detected_level"], "info");
        for (value, rendered) in [
            ("42.50", "42.50"),
            ("true", "true"),
            ("null", ""),
            (r#"{"a": [1, 2]}"#, r#"{"a": [1, 2]}"#),
        ] {
            let (_, text) = one(&format!(r#"{{{k8s},"message":{value}}}"#), &[]).unwrap();
            assert_eq!(text, format!("c {rendered}"), "{value}");
        }
        // The last of duplicate keys; trailing text after the object ignored.
        let (_, text) = one(
            &format!(r#"{{"message":"a",{k8s},"message":"b"}} tail"#),
            &[],
        )
        .unwrap();
        assert_eq!(text, "c b");
        // An index label of the same name: the field is `container_extracted`
        // and the template reads the index label.
        let (l, text) = one(
            &format!(r#"{{{k8s},"message":"m"}}"#),
            &[("container", "idx")],
        )
        .unwrap();
        assert_eq!(text, "idx m");
        assert_eq!(l["container_extracted"], "c");
        // Missing fields render empty and are not labels.
        let (l, text) = one(r#"{"kubernetes":{"labels":{"uid":"U"}}}"#, &[]).unwrap();
        assert_eq!(text, " ");
        assert!(!l.contains_key("message") && !l.contains_key("container"));
    }

    #[test]
    fn lines_not_of_the_run_are_dropped() {
        for line in [
            "",
            "plain text U",
            r#"{"message":"U","kubernetes":{"labels":{"uid":"V"}}}"#,
            r#"{"kubernetes":{"labels":{"uid":"U"}}"#,
            r#"{"kubernetes":{"labels":"U"}}"#,
            r#"["U"]"#,
            r#""U""#,
        ] {
            assert!(one(line, &[]).is_none(), "{line:?}");
        }
    }
}
