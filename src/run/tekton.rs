//! What a Tekton Results record says about a run: the record type
//! (`<apiVersion>.<Kind>`), and in `data` (the whole TaskRun or PipelineRun
//! object as JSON) `metadata.uid`, `status.startTime` and
//! `status.completionTime`. A Log record (`results.tekton.dev/v1alpha3.Log`)
//! points at its run through `spec.resource.uid`.

use std::sync::Arc;

use serde_json::Value;

use super::{LogName, ResolveError, Run, RunKind};
use crate::timestamp::parse_rfc3339_ns;

/// What one record resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordTarget {
    /// A run record.
    Run(Box<Run>),
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
    let record = LogName::from_parts(log.parent(), log.result(), record_name)
        .map_err(|e| invalid(format!("the run's record name is not a log name: {e}")))?;
    Ok(RecordTarget::Run(Box::new(Run {
        log: log.clone(),
        record,
        kind,
        uid,
        start_ns,
        completion_ns,
        task: task_of(data),
        steps: steps_of(data),
    })))
}

/// The step containers a run object's status lists.
fn steps_of(data: &Value) -> Vec<String> {
    data.pointer("/status/steps")
        .and_then(Value::as_array)
        .map(|steps| {
            steps
                .iter()
                .filter_map(|step| step.get("container").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The pipeline task of a TaskRun object: its `tekton.dev/pipelineTask`
/// label, else its name; `None` for neither.
fn task_of(data: &Value) -> Option<Arc<str>> {
    [
        "/metadata/labels/tekton.dev~1pipelineTask",
        "/metadata/name",
    ]
    .iter()
    .find_map(|path| {
        data.pointer(path)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    })
    .map(Arc::from)
}

/// Whether `record_type` is a TaskRun's record type.
pub fn is_task_run_type(record_type: &str) -> bool {
    matches!(
        record_type,
        "tekton.dev/v1.TaskRun" | "tekton.dev/v1beta1.TaskRun"
    )
}

/// Whether the run object `data` belongs to the PipelineRun with UID
/// `pipeline_uid`: its `tekton.dev/pipelineRunUID` label or one of its owner
/// references names it (as the database resolver's query checks).
pub fn is_child_of(data: &Value, pipeline_uid: &str) -> bool {
    let labelled = data
        .pointer("/metadata/labels/tekton.dev~1pipelineRunUID")
        .and_then(Value::as_str)
        == Some(pipeline_uid);
    let owned = data
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|owners| {
            owners
                .iter()
                .any(|o| o.get("uid").and_then(Value::as_str) == Some(pipeline_uid))
        });
    labelled || owned
}

/// Reads the record of a child TaskRun of a PipelineRun (whose log name is
/// `pipeline`): the record `record_name` of result `result`. `Ok(None)` for a
/// TaskRun that has not started (it has no pod, so no log yet); an error
/// naming the child record for anything else it cannot read.
pub fn child(
    pipeline: &LogName,
    result: &str,
    record_name: &str,
    record_type: &str,
    data: &Value,
) -> Result<Option<Run>, ResolveError> {
    let invalid = |reason: String| ResolveError::InvalidRecord {
        name: pipeline.to_string(),
        reason: format!("its TaskRun record {record_name:?} {reason}"),
    };
    let log = LogName::from_parts(pipeline.parent(), result, record_name)
        .map_err(|e| invalid(format!("has a name that is not a log name: {e}")))?;
    if data.pointer("/status/startTime").is_none_or(Value::is_null) {
        return Ok(None);
    }
    match target(&log, record_name, record_type, data) {
        Ok(RecordTarget::Run(run)) if run.kind == RunKind::TaskRun => Ok(Some(*run)),
        Ok(_) => Err(invalid(format!("has type {record_type:?}, not a TaskRun"))),
        Err(ResolveError::InvalidRecord { reason, .. }) => {
            Err(invalid(format!("is broken: {reason}")))
        }
        Err(other) => Err(other),
    }
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
    fn a_run_knows_its_own_record_and_task() {
        let mut data = taskrun(json!({"startTime": "2026-11-25T10:04:38Z"}));
        let run = |data: &Value| match target(&log(), "00267d8d", "tekton.dev/v1.TaskRun", data)
            .unwrap()
        {
            RecordTarget::Run(run) => run,
            other => panic!("{other:?}"),
        };
        let found = run(&data);
        assert_eq!(found.record.to_string(), "ns/results/r/logs/00267d8d");
        assert_eq!(found.task.as_deref(), Some("t"));
        data["metadata"]["labels"] = json!({"tekton.dev/pipelineTask": "build"});
        assert_eq!(run(&data).task.as_deref(), Some("build"));
        // A Log record's run: the run's own record, not the name requested.
        let named = target(&log(), "0a0b", "tekton.dev/v1.TaskRun", &data).unwrap();
        let RecordTarget::Run(named) = named else {
            panic!("not a run")
        };
        assert_eq!(named.log, log());
        assert_eq!(named.record.to_string(), "ns/results/r/logs/0a0b");
    }

    #[test]
    fn children_that_have_not_started_are_skipped_and_broken_ones_named() {
        let pipeline = LogName::parse("ns/results/r/logs/p1").unwrap();
        let ok = taskrun(json!({"startTime": "2026-11-25T10:04:38Z"}));
        let child = child(&pipeline, "r", "c1", "tekton.dev/v1beta1.TaskRun", &ok)
            .unwrap()
            .unwrap();
        assert_eq!(child.log.to_string(), "ns/results/r/logs/c1");
        assert_eq!(child.kind, RunKind::TaskRun);
        let pending = taskrun(json!({"podName": "x"}));
        assert_eq!(
            super::child(&pipeline, "r", "c2", "tekton.dev/v1.TaskRun", &pending).unwrap(),
            None
        );
        let broken = taskrun(json!({"startTime": "soon"}));
        let err = super::child(&pipeline, "r", "c3", "tekton.dev/v1.TaskRun", &broken)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ns/results/r/logs/p1") && err.contains("\"c3\""),
            "{err}"
        );
        let err = super::child(&pipeline, "r", "c4", "tekton.dev/v1.PipelineRun", &ok)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a TaskRun"), "{err}");
        let err = super::child(&pipeline, "r", "Bad Name", "tekton.dev/v1.TaskRun", &ok)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a log name"), "{err}");
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
