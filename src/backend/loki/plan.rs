//! The query plan: what Loki evaluates and what the connector does itself.
//!
//! Upstream's query makes Loki parse every line of the run's streams as JSON
//! (`| json ...`), filter on the extracted UID and render `line_format`:
//! on a real Loki that costs about four times a plain line filter. With the
//! connector plan (the default, `LOGGING_PLUGIN_QUERY_PLAN=connector`) Loki
//! only selects the streams and keeps the lines that contain the UID (`|= "<uid>"`, answered with the index labels
//! apart from structured metadata); the connector then does what the
//! pipeline would have done, with the same result, byte for byte:
//!
//! 1. the `json` stage with parameters, as Loki's lenient reader runs it
//!    (`json.rs`: the first occurrence of each path, values unescaped with
//!    U+FFFD as a space, objects as written, `null` and missing fields
//!    empty, `__error__` and `__error_details__` where Loki notes an error),
//!    the field named `<name>_extracted` when an index label has its name;
//! 2. the label filter: the UID label must equal the run's (a line that
//!    merely mentions the UID is not part of the log);
//! 3. `line_format`, for the template subset upstream configurations use:
//!    text, `{{.label}}` (empty when the label is missing), `{{__line__}}`,
//!    comments and `{{-` / `-}}` trimming (of ASCII white space, as Go);
//! 4. each line's labels (index labels, structured metadata, which Loki
//!    has already named `<name>_extracted` where it clashes with an index
//!    label, then the extracted fields and error labels, each hiding a label
//!    of its name; empty ones left out, as Loki leaves them out of its
//!    answer) become its stream, so the order and positions of equal-time
//!    lines are those of the Loki plan; an entry whose time, labels and text
//!    repeat an earlier one's is dropped, as Loki drops it.
//!
//! A template or a field path outside what the connector renders exactly
//! makes the backend use the Loki plan, and say so once in the service log.
//! `LOGGING_PLUGIN_QUERY_PLAN=loki` forces the Loki plan (for set-ups that
//! rely on other LogQL stages).
//!
//! The rules were read from Loki's v3 source (the 3.7 and 3.8 releases);
//! older releases read some lines differently (see docs/providers.md). The
//! tests check them against the fake Loki (`tests/fakes/loki.rs`), which
//! models the same stage independently. Known differences from a real Loki:
//! Loki fixes whether a field is `<name>` or `<name>_extracted` by the
//! stream of the first line its stage (one per query shard) finds the field
//! in, where both plans here decide per stream; structured metadata named
//! `__error__` is not modelled; a line whose run UID is only in structured
//! metadata or an index label, not in its text, is missed by the `|=`
//! filter.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::wire::{Entry, QueryResponse, StreamResult};
use crate::config::is_identifier;

mod json;

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

/// What the connector does to the raw lines of a run kind (steps 1 to 4
/// above), prepared once per configuration; [`Extraction`] applies it to one
/// run.
#[derive(Debug)]
pub struct Pipeline {
    /// The labels the `json` stage sets, in the order it lists them.
    labels: Vec<String>,
    /// Their paths.
    paths: json::Paths,
    /// The label holding the run UID.
    uid_label: String,
    template: Vec<Part>,
}

/// A field path the connector reads: dot-separated keys as Loki's path
/// lexer reads them unquoted (a letter or `_`, then letters, digits and
/// `_`). Anything else (brackets, other characters, white space Loki would
/// skip) is left to Loki, which reads it or refuses it itself.
fn parse_path(path: &str) -> Option<Vec<String>> {
    path.split('.')
        .all(is_identifier)
        .then(|| path.split('.').map(str::to_owned).collect())
}

impl Pipeline {
    /// The pipeline of `fields` (label, path; in the Loki plan's order),
    /// keeping the lines whose `uid_label` is the run's, rendered by
    /// `template`; `Err` says what the connector cannot do exactly.
    pub fn new(
        fields: &[(String, String)],
        uid_label: &str,
        template: &str,
    ) -> Result<Self, String> {
        let template = parse_template(template).map_err(|action| {
            format!("the line format's action {action} is not one the connector renders")
        })?;
        if fields.len() > json::MAX_PATHS {
            return Err(format!(
                "the connector reads at most {} fields, not {}",
                json::MAX_PATHS,
                fields.len()
            ));
        }
        let mut labels = Vec::with_capacity(fields.len());
        let mut paths = Vec::with_capacity(fields.len());
        for (label, path) in fields {
            let keys = parse_path(path).ok_or_else(|| {
                format!(
                    "the field path {path:?} is not one the connector reads (Loki reads it \
                     with the Loki plan, or refuses the query if its syntax is wrong)"
                )
            })?;
            labels.push(label.clone());
            paths.push(keys);
        }
        Ok(Self {
            labels,
            paths: json::Paths::new(paths),
            uid_label: uid_label.to_owned(),
            template,
        })
    }
}

/// A [`Pipeline`] applied to the lines of the run with one UID.
#[derive(Debug)]
pub struct Extraction {
    pipeline: Arc<Pipeline>,
    uid: String,
}

impl Extraction {
    /// `pipeline` keeping the lines of the run whose UID is `uid`.
    pub fn new(pipeline: Arc<Pipeline>, uid: &str) -> Self {
        Self {
            pipeline,
            uid: uid.to_owned(),
        }
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
            let names = self.field_names(&stream.stream);
            for entry in stream.values {
                if let Some((labels, line)) = self.line(&stream.stream, &names, &entry) {
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

    /// The label name each field gets on a stream with the `index` labels:
    /// an index label of its name makes it `<name>_extracted`.
    fn field_names(&self, index: &BTreeMap<String, String>) -> Vec<String> {
        self.pipeline
            .labels
            .iter()
            .map(|label| {
                if index.contains_key(label) {
                    format!("{label}_extracted")
                } else {
                    label.clone()
                }
            })
            .collect()
    }

    /// One raw line of a stream with the `index` labels, whose fields get
    /// `names`: its labels and rendered text, or `None` when it is not the
    /// run's.
    fn line(
        &self,
        index: &BTreeMap<String, String>,
        names: &[String],
        entry: &Entry,
    ) -> Option<(BTreeMap<String, String>, String)> {
        let pipeline = &*self.pipeline;
        let raw = entry.line.as_str();
        let mut labels = index.clone();
        // Loki has already named metadata that clashes with an index label
        // `<name>_extracted`; metadata hides an index label of its name.
        for (key, value) in &entry.metadata {
            labels.insert(key.clone(), value.clone());
        }
        if let Some(fields) = pipeline.paths.read(raw) {
            // In the order found: of two fields that get one name, the one
            // found last wins, as in Loki. An extracted field hides metadata
            // of its name.
            for (p, value) in fields.found {
                labels.insert(names[p].clone(), value);
            }
            // Loki also gives each field not read an empty label unless one
            // of its name exists; that is the same as no label here, as
            // empty labels are left out and render as nothing (the UID is
            // never empty).
            if let Some(details) = fields.error {
                labels.insert(ERROR_LABEL.to_owned(), JSON_ERROR.to_owned());
                if let Some(details) = details {
                    labels.insert(ERROR_DETAILS_LABEL.to_owned(), details.to_owned());
                }
            }
        }
        if labels.get(&pipeline.uid_label).map(String::as_str) != Some(self.uid.as_str()) {
            return None;
        }
        let line = render(&pipeline.template, raw, &labels);
        // An empty label is no label in Loki's answer.
        labels.retain(|_, value| !value.is_empty());
        Some((labels, line))
    }
}

/// The label Loki notes a stage's error in, its value for the `json` stage,
/// and the label of its details.
const ERROR_LABEL: &str = "__error__";
const JSON_ERROR: &str = "JSONParserErr";
const ERROR_DETAILS_LABEL: &str = "__error_details__";

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

    /// The extraction of `fields` rendered by `template`, for the run `U`.
    fn extraction_of(fields: &[(String, String)], template: &str) -> Result<Extraction, String> {
        Pipeline::new(fields, "uid", template).map(|p| Extraction::new(Arc::new(p), "U"))
    }

    /// One line of a stream with the `index` labels.
    fn line_of(
        extraction: &Extraction,
        index: &BTreeMap<String, String>,
        entry: &Entry,
    ) -> Option<(BTreeMap<String, String>, String)> {
        extraction.line(index, &extraction.field_names(index), entry)
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
        extraction_of(&fields, "{{.container}} {{.message}}").unwrap()
    }

    fn one(line: &str, index: &[(&str, &str)]) -> Option<(BTreeMap<String, String>, String)> {
        let entry = Entry {
            ts_ns: 1,
            line: line.to_owned(),
            metadata: vec![("detected_level".to_owned(), "info".to_owned())],
        };
        line_of(&extraction(), &labels(index), &entry)
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
        // The first of duplicate keys; text after the fields ignored.
        let (_, text) = one(
            &format!(r#"{{"message":"a",{k8s},"message":"b"}} tail"#),
            &[],
        )
        .unwrap();
        assert_eq!(text, "c a");
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
            r#"{"kubernetes":{"labels":"U"}}"#,
            r#"["U"]"#,
            r#""U""#,
            r#"{"kubernetes":{"labels":{"uid":"U"#,
        ] {
            assert!(one(line, &[]).is_none(), "{line:?}");
        }
    }

    #[test]
    fn broken_lines_keep_what_loki_reads_of_them() {
        // Cut after the UID: Loki's reader has what it needs and no error.
        let (l, text) = one(r#"{"message":"m","kubernetes":{"labels":{"uid":"U"}}"#, &[]).unwrap();
        assert_eq!(text, " m");
        assert!(!l.contains_key("__error__"));
        // A found value it cannot read: an error, and the field empty.
        let (l, text) = one(
            r#"{"kubernetes":{"labels":{"uid":"U"}},"message":tru}"#,
            &[("container", "idx")],
        )
        .unwrap();
        assert_eq!(text, "idx ");
        assert_eq!(l["__error__"], "JSONParserErr");
        assert_eq!(l["__error_details__"], "Unknown value type");
        assert!(!l.contains_key("message"));
    }

    #[test]
    fn paths_outside_lokis_unquoted_keys_are_left_to_loki() {
        let plan = |path: &str| {
            let fields = [
                ("message".to_owned(), path.to_owned()),
                ("uid".to_owned(), "k.uid".to_owned()),
            ];
            extraction_of(&fields, "{{.message}}")
        };
        for path in [
            "message",
            "_m.a_1",
            "Kubernetes.labels.tekton_dev_taskRunUID",
        ] {
            assert!(plan(path).is_ok(), "{path}");
        }
        for path in [
            "a-b", "a/b", "a@b", "1a", "a.2", "é", "a..b", ".a", "a b", "a[0]", r#"["a"]"#,
        ] {
            let refusal = plan(path).unwrap_err();
            assert!(refusal.contains("is not one the connector reads"), "{path}");
        }
    }

    #[test]
    fn of_two_fields_named_alike_the_one_later_in_the_line_wins() {
        // `container` is an index label, so the `container` field is named
        // `container_extracted`, like the mapped `shadow` field.
        let fields = [
            (
                "container".to_owned(),
                "kubernetes.container_name".to_owned(),
            ),
            ("container_extracted".to_owned(), "shadow".to_owned()),
            ("uid".to_owned(), "kubernetes.labels.uid".to_owned()),
        ];
        let extraction = extraction_of(&fields, "{{.container_extracted}}").unwrap();
        let index = labels(&[("container", "idx")]);
        let k8s = r#""kubernetes":{"container_name":"c","labels":{"uid":"U"}}"#;
        for (line, want) in [
            (format!(r#"{{"shadow":"s",{k8s}}}"#), "c"),
            (format!(r#"{{{k8s},"shadow":"s"}}"#), "s"),
        ] {
            let entry = Entry {
                ts_ns: 1,
                line,
                metadata: Vec::new(),
            };
            let (l, text) = line_of(&extraction, &index, &entry).unwrap();
            assert_eq!(
                (l["container_extracted"].as_str(), text.as_str()),
                (want, want)
            );
        }
    }

    #[test]
    fn metadata_and_fields_hide_labels_of_their_name() {
        let entry = Entry {
            ts_ns: 1,
            line: r#"{"kubernetes":{"labels":{"uid":"U"}},"message":"m"}"#.to_owned(),
            metadata: vec![
                ("message".to_owned(), "from metadata".to_owned()),
                ("container_extracted".to_owned(), "meta".to_owned()),
                ("pod".to_owned(), "p".to_owned()),
            ],
        };
        let index = labels(&[("pod", "index"), ("container", "idx")]);
        let (l, text) = line_of(&extraction(), &index, &entry).unwrap();
        assert_eq!(text, "idx m");
        assert_eq!(
            (
                l["message"].as_str(),
                l["pod"].as_str(),
                l["container_extracted"].as_str()
            ),
            ("m", "p", "meta")
        );
    }
}
