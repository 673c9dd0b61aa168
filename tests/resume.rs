//! Resume cursors through `api::Logs`: for random logs in the local store, a
//! cursor made at any record resumes with exactly the records after it, in a
//! TaskRun's log and across the TaskRuns of a PipelineRun's merged log.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use proptest::prelude::*;
use tekton_results_logs::api::cursor::Cursor;
use tekton_results_logs::api::{Logs, Settings};
use tekton_results_logs::backend::local::LocalStore;
use tekton_results_logs::backend::LogBackend;
use tekton_results_logs::record::LogRecord;
use tekton_results_logs::run::{FileResolver, LogName, Run, RunResolver};

const NS: &str = "resume";
const RESULT: &str = "r1";
const PIPELINE: &str = "p0";

fn name(record: &str) -> LogName {
    LogName::parse(&format!("{NS}/results/{RESULT}/logs/{record}")).unwrap()
}

/// A runs file: one PipelineRun and `tasks` TaskRuns, started in order.
fn runs_file(tasks: usize) -> String {
    let run = |kind: &str, uid: &str, start: usize, extra: serde_json::Value| {
        let mut value = serde_json::json!({
            "metadata": {"name": uid, "uid": uid},
            "status": {
                "startTime": format!("2026-11-25T10:{start:02}:00Z"),
                "completionTime": "2026-11-25T11:00:00Z"
            }
        });
        if let serde_json::Value::Object(extra) = extra {
            for (k, v) in extra {
                value["metadata"][k] = v;
            }
        }
        serde_json::json!({
            "name": format!("{NS}/results/{RESULT}/records/{uid}"),
            "data": {"type": format!("tekton.dev/v1.{kind}"), "value": value}
        })
    };
    let mut records = vec![run("PipelineRun", PIPELINE, 0, serde_json::json!({}))];
    for i in 0..tasks {
        records.push(run(
            "TaskRun",
            &format!("t{i}"),
            i + 1,
            serde_json::json!({"labels": {
                "tekton.dev/pipelineRunUID": PIPELINE,
                "tekton.dev/pipelineTask": format!("task-{i}")
            }}),
        ));
    }
    serde_json::json!({ "records": records }).to_string()
}

/// What identifies a delivered record.
fn key(record: &LogRecord) -> (Option<String>, i64, u64, Vec<u8>, bool) {
    (
        record.task_run.as_deref().map(str::to_owned),
        record.position.ts_ns,
        record.position.seq,
        record.message.to_vec(),
        record.terminated,
    )
}

async fn read(
    logs: &Logs,
    run: &Run,
    after: Option<Cursor>,
) -> Vec<(Option<String>, i64, u64, Vec<u8>, bool)> {
    let pages: Vec<_> = logs
        .pages(run.clone(), false, after)
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    pages.iter().flat_map(|p| &p.records).map(key).collect()
}

/// Stores the logs, then checks resuming at every record of `log` (the
/// PipelineRun when `log` is `PIPELINE`, else one TaskRun).
fn check_resume(logs_text: &[Option<Vec<u8>>], log: &str) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs.json");
        std::fs::write(&runs, runs_file(logs_text.len())).unwrap();
        let resolver = Arc::new(FileResolver::load(&runs).unwrap());
        let store = Arc::new(LocalStore::new(dir.path().join("data")));
        for (i, text) in logs_text.iter().enumerate() {
            if let Some(text) = text {
                let run = resolver.resolve(&name(&format!("t{i}"))).await.unwrap();
                let data = futures::stream::iter(
                    text.chunks(7)
                        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
                        .collect::<Vec<_>>(),
                )
                .boxed();
                store.write(&run, data).await.unwrap();
            }
        }
        let logs = Logs::new(
            store,
            resolver.clone(),
            Settings {
                chunk_size: 64,
                upload_idle_timeout: Duration::from_secs(5),
            },
        );
        let run = resolver.resolve(&name(log)).await.unwrap();
        if log == PIPELINE && logs_text.iter().all(Option::is_none) {
            // No TaskRun has a log, nor has the PipelineRun: not found.
            let err = logs
                .pages(run, false, None)
                .unwrap()
                .try_collect::<Vec<_>>()
                .await
                .unwrap_err();
            prop_assert_eq!(
                err.code,
                tekton_results_logs::api::status::ErrorCode::NotFound
            );
            return Ok(());
        }
        let all = read(&logs, &run, None).await;
        for (k, record) in all.iter().enumerate() {
            let token = Cursor::new(
                record.0.clone(),
                tekton_results_logs::record::Position {
                    ts_ns: record.1,
                    seq: record.2,
                },
            )
            .encode(&name(log));
            let cursor = Logs::cursor(&name(log), &token).unwrap();
            let rest = read(&logs, &run, Some(cursor)).await;
            prop_assert_eq!(&rest[..], &all[k + 1..], "resuming after record {}", k);
        }
        Ok(())
    })
}

fn log_text() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::weighted(
        0.8,
        proptest::collection::vec(
            prop_oneof![3 => Just(b'\n'), 1 => Just(b'a'), 1 => any::<u8>()],
            0..120,
        ),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn resuming_a_pipeline_runs_log_at_any_record_gives_exactly_the_rest(
        logs in proptest::collection::vec(log_text(), 1..4),
    ) {
        check_resume(&logs, PIPELINE)?;
    }

    #[test]
    fn resuming_a_task_runs_log_at_any_record_gives_exactly_the_rest(
        log in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 1..300),
    ) {
        check_resume(&[Some(log)], "t0")?;
    }
}

#[tokio::test]
async fn a_cursor_for_another_log_or_task_run_is_refused() {
    let token = Cursor::new(
        Some("t9".into()),
        tekton_results_logs::record::Position { ts_ns: 1, seq: 1 },
    )
    .encode(&name(PIPELINE));
    let err = Logs::cursor(&name("t0"), &token).unwrap_err();
    assert!(err.message.contains("another log"), "{}", err.message);
    assert!(Logs::cursor(&name(PIPELINE), "%%").is_err());

    // A TaskRun that is not the PipelineRun's.
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs.json");
    std::fs::write(&runs, runs_file(2)).unwrap();
    let resolver = Arc::new(FileResolver::load(&runs).unwrap());
    let logs = Logs::new(
        Arc::new(LocalStore::new(dir.path().join("data"))),
        resolver.clone(),
        Settings {
            chunk_size: 64,
            upload_idle_timeout: Duration::from_secs(5),
        },
    );
    let run = resolver.resolve(&name(PIPELINE)).await.unwrap();
    let cursor = Logs::cursor(&name(PIPELINE), &token).unwrap();
    let err = logs
        .pages(run, false, Some(cursor))
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(err.message.contains("\"t9\""), "{}", err.message);
    // A merged-log cursor on a TaskRun's log.
    let taskrun = resolver.resolve(&name("t0")).await.unwrap();
    let cursor = Cursor::new(
        Some("t1".into()),
        tekton_results_logs::record::Position { ts_ns: 1, seq: 1 },
    );
    assert!(logs.pages(taskrun, false, Some(cursor)).is_err());
}
