//! LogQL for a run's log, built from the `LOGGING_PLUGIN_*` keys. The Loki
//! plan's text is exactly what upstream Tekton Results sends (so existing
//! Vector and Fluentd set-ups keep working), e.g.
//!
//! ```text
//! { log_type="application",kubernetes_namespace_name="ns" }| json container="kubernetes.container_name", message="message", uid="kubernetes.labels.tekton_dev_taskRunUID" |uid="U"| line_format "container-{{.container}}: message={{.message}}"
//! ```
//!
//! The connector plan (`LOGGING_PLUGIN_QUERY_PLAN=connector`, `plan.rs`) sends the selector and a line
//! filter on the UID, `{ ... }|= "U"`, and does the rest itself.
//!
//! Unlike upstream, every value is written as an escaped LogQL string, so no
//! configuration value or name can change the query's structure.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::plan::{Extraction, Pipeline};
use crate::run::RunKind;

/// The label the run UID is extracted into.
const UID_LABEL: &str = "uid";

/// How to query a run's lines, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTemplate {
    /// `LOGGING_PLUGIN_STATIC_LABELS`.
    pub static_labels: Vec<(String, String)>,
    /// `LOGGING_PLUGIN_NAMESPACE_KEY`: the stream label holding the namespace.
    pub namespace_key: String,
    /// `LOGGING_PLUGIN_CONTAINER_KEY`: JSON path of the container name.
    pub container_key: Option<String>,
    /// `LOGGING_PLUGIN_JSON_MAP`: extra (or overriding) extracted fields.
    pub json_map: Vec<(String, String)>,
    /// `LOGGING_PLUGIN_LINE_FORMAT`.
    pub line_format: Option<String>,
    /// JSON path of the TaskRun UID.
    pub taskrun_uid_key: String,
    /// JSON path of the PipelineRun UID.
    pub pipelinerun_uid_key: String,
}

impl QueryTemplate {
    /// The query for the lines of the run `uid` of `kind` in `namespace`,
    /// with Loki doing the whole pipeline (upstream's query).
    pub fn for_run(&self, namespace: &str, kind: RunKind, uid: &str) -> String {
        let selector = self.selector(namespace);
        let (fields, template) = self.pipeline(kind);
        let extract = fields
            .iter()
            .map(|(name, path)| format!("{name}={}", logql_string(path)))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{selector}| json {extract} |{UID_LABEL}={}| line_format {}",
            logql_string(uid),
            logql_string(template)
        )
    }

    /// The fields the pipeline extracts (label, path; in the order its
    /// `json` stage lists them) and its `line_format` template.
    fn pipeline(&self, kind: RunKind) -> (Vec<(String, String)>, &str) {
        let uid_key = match kind {
            RunKind::TaskRun => &self.taskrun_uid_key,
            RunKind::PipelineRun => &self.pipelinerun_uid_key,
        };
        let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
        fields.insert(UID_LABEL, uid_key);
        fields.insert("message", "message");
        if let Some(container) = &self.container_key {
            fields.insert("container", container);
        }
        for (name, path) in &self.json_map {
            fields.insert(name, path);
        }
        let template = match (&self.line_format, &self.container_key) {
            (Some(format), _) => format.as_str(),
            (None, Some(_)) => "container-{{.container}}: message={{.message}}",
            (None, None) => "{{.message}}",
        };
        let fields = fields
            .into_iter()
            .map(|(name, path)| (name.to_owned(), path.to_owned()))
            .collect();
        (fields, template)
    }

    /// What the connector does to the lines of runs of `kind` in the
    /// connector plan (see `plan.rs`). `Err` says why this configuration
    /// needs the Loki plan.
    pub fn connector_pipeline(&self, kind: RunKind) -> Result<Pipeline, String> {
        let (fields, template) = self.pipeline(kind);
        Pipeline::new(&fields, UID_LABEL, template)
    }

    /// The connector plan's query for the run `uid` in `namespace`: the
    /// lines containing the UID.
    pub fn connector_query(&self, namespace: &str, uid: &str) -> String {
        format!("{}|= {}", self.selector(namespace), logql_string(uid))
    }

    /// The connector plan for one run: its query and what the connector does
    /// to its lines (the backend prepares the pipeline once instead).
    pub fn connector_plan(
        &self,
        namespace: &str,
        kind: RunKind,
        uid: &str,
    ) -> Result<(String, Extraction), String> {
        let pipeline = Arc::new(self.connector_pipeline(kind)?);
        Ok((
            self.connector_query(namespace, uid),
            Extraction::new(pipeline, uid),
        ))
    }
}

/// JSON path of the pod name in forwarded lines (ViaQ and Vector's
/// `kubernetes_logs` both write it there).
pub const POD_KEY: &str = "kubernetes.pod_name";

/// JSON path of the container name when `LOGGING_PLUGIN_CONTAINER_KEY` is
/// empty.
pub const DEFAULT_CONTAINER_KEY: &str = "kubernetes.container_name";

impl QueryTemplate {
    /// The stream selector: the static labels and the namespace.
    fn selector(&self, namespace: &str) -> String {
        let mut selector = String::from("{ ");
        for (name, value) in &self.static_labels {
            selector.push_str(name);
            selector.push('=');
            selector.push_str(&logql_string(value));
            selector.push(',');
        }
        selector.push_str(&self.namespace_key);
        selector.push('=');
        selector.push_str(&logql_string(namespace));
        selector.push_str(" }");
        selector
    }

    /// The query for one container's lines, by pod: the bare message of
    /// each line (the message path of `LOGGING_PLUGIN_JSON_MAP` when it maps
    /// `message`).
    pub fn for_container(&self, namespace: &str, pod: &str, container: &str) -> String {
        let selector = self.selector(namespace);
        let message = self
            .json_map
            .iter()
            .find(|(name, _)| name == "message")
            .map_or("message", |(_, path)| path.as_str());
        let container_key = self
            .container_key
            .as_deref()
            .unwrap_or(DEFAULT_CONTAINER_KEY);
        format!(
            "{selector}| json pod={}, container={}, message={} |pod={}|container={}| line_format {}",
            logql_string(POD_KEY),
            logql_string(container_key),
            logql_string(message),
            logql_string(pod),
            logql_string(container),
            logql_string("{{.message}}")
        )
    }
}

/// `value` as a double-quoted LogQL string: `\` and `"` escaped, control
/// characters as Go escapes, everything else (UTF-8 included) as is.
pub fn logql_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    pub(crate) fn upstream_template() -> QueryTemplate {
        QueryTemplate {
            static_labels: vec![("log_type".into(), "application".into())],
            namespace_key: "kubernetes_namespace_name".into(),
            container_key: Some("kubernetes.container_name".into()),
            json_map: vec![],
            line_format: None,
            taskrun_uid_key: "kubernetes.labels.tekton_dev_taskRunUID".into(),
            pipelinerun_uid_key: "kubernetes.labels.tekton_dev_pipelineRunUID".into(),
        }
    }

    #[test]
    fn a_containers_query_filters_on_pod_and_container_and_escapes_them() {
        let q = upstream_template().for_container("ns", "pod\"}|x", "step-\\a");
        assert_eq!(
            q,
            r#"{ log_type="application",kubernetes_namespace_name="ns" }| json pod="kubernetes.pod_name", container="kubernetes.container_name", message="message" |pod="pod\"}|x"|container="step-\\a"| line_format "{{.message}}""#
        );
    }

    #[test]
    fn the_default_query_is_byte_for_byte_upstreams() {
        // From the query log of a real Loki queried by upstream Results
        // (results-captures/01-taskrun-getlog.md).
        let expected = r#"{ log_type="application",kubernetes_namespace_name="results-cap" }| json container="kubernetes.container_name", message="message", uid="kubernetes.labels.tekton_dev_taskRunUID" |uid="00267d8d-3638-4ee0-ba4b-585665422ee1"| line_format "container-{{.container}}: message={{.message}}""#;
        let query = upstream_template().for_run(
            "results-cap",
            RunKind::TaskRun,
            "00267d8d-3638-4ee0-ba4b-585665422ee1",
        );
        assert_eq!(query, expected);
    }

    #[test]
    fn pipeline_runs_use_the_pipeline_run_uid_path() {
        let query = upstream_template().for_run("ns", RunKind::PipelineRun, "p");
        assert!(
            query.contains(r#"uid="kubernetes.labels.tekton_dev_pipelineRunUID""#),
            "{query}"
        );
    }

    #[test]
    fn without_a_container_key_lines_are_the_message() {
        let mut template = upstream_template();
        template.container_key = None;
        template.static_labels.clear();
        let query = template.for_run("ns", RunKind::TaskRun, "u");
        assert_eq!(
            query,
            r#"{ kubernetes_namespace_name="ns" }| json message="message", uid="kubernetes.labels.tekton_dev_taskRunUID" |uid="u"| line_format "{{.message}}""#
        );
    }

    #[test]
    fn json_map_and_line_format_override() {
        let mut template = upstream_template();
        template.json_map = vec![
            ("message".into(), "log".into()),
            ("pod".into(), "kubernetes.pod_name".into()),
        ];
        template.line_format = Some("{{.pod}} {{.message}}".into());
        let query = template.for_run("ns", RunKind::TaskRun, "u");
        assert!(
            query.contains(r#"message="log", pod="kubernetes.pod_name", uid="#),
            "{query}"
        );
        assert!(
            query.ends_with(r#"| line_format "{{.pod}} {{.message}}""#),
            "{query}"
        );
    }

    #[test]
    fn hostile_values_stay_inside_their_strings() {
        let mut template = upstream_template();
        template.static_labels = vec![("env".into(), "a\"}|b`\\".into())];
        template.line_format = Some("x\" | drop message \"".into());
        let query = template.for_run("ns\"}", RunKind::TaskRun, "u\n|= \"x\"");
        assert!(query.contains(r#"env="a\"}|b`\\","#), "{query}");
        assert!(
            query.contains(r#"kubernetes_namespace_name="ns\"}" }"#),
            "{query}"
        );
        assert!(query.contains(r#"|uid="u\n|= \"x\""|"#), "{query}");
        assert!(
            query.ends_with(r#"line_format "x\" | drop message \"""#),
            "{query}"
        );
    }

    /// Reads back a double-quoted LogQL string the way Loki's lexer does
    /// (Go escapes); returns the value and the rest of the input.
    fn unquote(input: &str) -> Option<(String, &str)> {
        let mut chars = input.strip_prefix('"')?.char_indices();
        let mut out = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Some((out, &input[i + 2..])),
                '\\' => match chars.next()?.1 {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    'u' => {
                        let hex: String = (0..4)
                            .filter_map(|_| chars.next().map(|(_, c)| c))
                            .collect();
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    _ => return None,
                },
                c => out.push(c),
            }
        }
        None
    }

    proptest! {
        #[test]
        fn any_value_round_trips_through_a_logql_string(value in "\\PC*|[\\x00-\\x1f\"\\\\`{}|]*") {
            let quoted = logql_string(&value);
            let (back, rest) = unquote(&quoted).expect("a well-formed string");
            prop_assert_eq!(back, value);
            prop_assert_eq!(rest, "");
        }
    }
}
