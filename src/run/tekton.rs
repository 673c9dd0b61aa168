//! What a Tekton Results record says about a run: the record type
//! (`<apiVersion>.<Kind>`), and in `data` (the whole TaskRun or PipelineRun
//! object as JSON) `metadata.uid`, `status.startTime` and
//! `status.completionTime`. A Log record (`results.tekton.dev/v1alpha3.Log`)
//! points at its run through `spec.resource.uid`.

use serde_json::Value;

use super::{LogName, ResolveError, Run, RunKind};
use crate::timestamp::parse_rfc3339_ns;

/// What one record resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordTarget {
    /// A run record.
    Run(Run),
    /// A Log record: the log of the run whose record name is this.
    LogOf(String),
}

/// Reads the record `record_type`/`data` that `log` names; `record_name` is
/// the record's own name (the run UID when `metadata.uid` is missing).
pub fn target(
    log: &LogName,
    record_name: &str,
    record_type: &str,
    data: &Value,
) -> Result<RecordTarget, ResolveError> {
    let invalid = |reason: String| ResolveError::InvalidRecord {
        name: log.to_string(),
        reason,
    };
    let kind = match record_type {
        "tekton.dev/v1.TaskRun" | "tekton.dev/v1beta1.TaskRun" => RunKind::TaskRun,
        "tekton.dev/v1.PipelineRun" | "tekton.dev/v1beta1.PipelineRun" => RunKind::PipelineRun,
        "results.tekton.dev/v1alpha3.Log" | "results.tekton.dev/v1alpha2.Log" => {
            let uid = data
                .pointer("/spec/resource/uid")
                .and_then(Value::as_str)
                .filter(|uid| !uid.is_empty())
                .ok_or_else(|| invalid("the Log record has no spec.resource.uid".to_owned()))?;
            return Ok(RecordTarget::LogOf(uid.to_owned()));
        }
        other => {
            return Err(invalid(format!(
                "its type {other:?} is not a TaskRun or PipelineRun"
            )))
        }
    };
    if !data.is_object() {
        return Err(invalid("its data is not a JSON object".to_owned()));
    }
    let uid = match data.pointer("/metadata/uid") {
        Some(Value::String(uid)) if !uid.is_empty() => uid.clone(),
        None | Some(Value::Null) => record_name.to_owned(),
        Some(other) => return Err(invalid(format!("metadata.uid {other} is not a string"))),
    };
    let time = |field: &str| -> Result<Option<i64>, ResolveError> {
        match data.pointer(&format!("/status/{field}")) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => parse_rfc3339_ns(text)
                .map(Some)
                .ok_or_else(|| invalid(format!("status.{field} {text:?} is not an RFC 3339 time"))),
            Some(other) => Err(invalid(format!(
                "status.{field} {other} is not an RFC 3339 time"
            ))),
        }
    };
    let start_ns = time("startTime")?;
    let completion_ns = time("completionTime")?;
    if start_ns.is_none() {
        return Err(invalid(format!(
            "the {} has no status.startTime (it has not started)",
            kind.as_str()
        )));
    }
    if let (Some(start), Some(done)) = (start_ns, completion_ns) {
        if done < start {
            return Err(invalid(
                "status.completionTime is before status.startTime".to_owned(),
            ));
        }
    }
    Ok(RecordTarget::Run(Run {
        log: log.clone(),
        kind,
        uid,
        start_ns,
        completion_ns,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn log() -> LogName {
        LogName::parse("ns/results/r/logs/00267d8d").unwrap()
    }

    fn taskrun(status: Value) -> Value {
        json!({"apiVersion": "tekton.dev/v1", "kind": "TaskRun",
               "metadata": {"name": "t", "namespace": "ns", "uid": "uid-1"}, "status": status})
    }

    #[test]
    fn reads_kind_uid_and_times() {
        let data = taskrun(
            json!({"startTime": "2026-11-25T10:04:38Z", "completionTime": "2026-11-25T10:34:33Z"}),
        );
        let RecordTarget::Run(run) =
            target(&log(), "00267d8d", "tekton.dev/v1.TaskRun", &data).unwrap()
        else {
            panic!("not a run")
        };
        assert_eq!(run.kind, RunKind::TaskRun);
        assert_eq!(run.uid, "uid-1");
        assert_eq!(run.start_ns, Some(1_795_601_078_000_000_000));
        assert_eq!(run.completion_ns, Some(1_795_602_873_000_000_000));
        let running = taskrun(json!({"startTime": "2026-11-25T10:04:38Z"}));
        let RecordTarget::Run(run) = target(
            &log(),
            "00267d8d",
            "tekton.dev/v1beta1.PipelineRun",
            &running,
        )
        .unwrap() else {
            panic!("not a run")
        };
        assert_eq!((run.kind, run.completion_ns), (RunKind::PipelineRun, None));
    }

    #[test]
    fn a_log_record_points_at_its_run() {
        let data = json!({"spec": {"resource": {"kind": "TaskRun", "uid": "00267d8d"}}});
        assert_eq!(
            target(&log(), "00267d8d", "results.tekton.dev/v1alpha3.Log", &data).unwrap(),
            RecordTarget::LogOf("00267d8d".into())
        );
    }

    #[test]
    fn bad_records_name_the_record_and_the_problem() {
        let reason = |t: &str, d: Value| match target(&log(), "00267d8d", t, &d).unwrap_err() {
            ResolveError::InvalidRecord { name, reason } => {
                assert_eq!(name, "ns/results/r/logs/00267d8d");
                reason
            }
            other => panic!("{other:?}"),
        };
        assert!(reason("results.tekton.dev/v1.EventList", json!({}))
            .contains("not a TaskRun or PipelineRun"));
        assert!(reason("tekton.dev/v1.TaskRun", json!([1, 2])).contains("not a JSON object"));
        assert!(reason("tekton.dev/v1.TaskRun", taskrun(json!({}))).contains("no status.startTime"));
        assert!(reason(
            "tekton.dev/v1.TaskRun",
            taskrun(json!({"startTime": "yesterday"}))
        )
        .contains("\"yesterday\" is not an RFC 3339 time"));
        assert!(
            reason("tekton.dev/v1.TaskRun", taskrun(json!({"startTime": 5})))
                .contains("not an RFC 3339 time")
        );
        assert!(reason(
            "tekton.dev/v1.TaskRun",
            taskrun(json!({"startTime": "2026-11-25T10:04:38Z", "completionTime": "2026-11-25T10:00:00Z"}))
        )
        .contains("before"));
        assert!(
            reason("results.tekton.dev/v1alpha3.Log", json!({"spec": {}}))
                .contains("spec.resource.uid")
        );
    }
}
