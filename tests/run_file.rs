//! Run resolution from a file of records (`LOGS_RUNS_FILE`): the records of
//! `fixtures/runs.json`, directly and through the server with the local store.

use std::time::Duration;

use tekton_results_logs::run::{FileResolver, LogName, ResolveError, RunKind, RunResolver};
use tekton_results_logs::timestamp::parse_rfc3339_ns;

use crate::support::{http, TestServer, BIN};

const FIXTURE: &str = crate::support::RUNS_FIXTURE;

const SOLO: (&str, &str) = (
    "a0a0a0a0-0000-4000-8000-000000000001",
    "a0a0a0a0-0000-4000-8000-000000000002",
);
const LOG_RECORD: &str = "a0a0a0a0-0000-4000-8000-000000000003";
const PIPELINE: (&str, &str) = (
    "5e1f0000-0000-4000-8000-000000000001",
    "5e1f0000-0000-4000-8000-000000000001",
);
const TEST_TASK: &str = "5e1f0000-0000-4000-8000-000000000002";
const BUILD_TASK: &str = "5e1f0000-0000-4000-8000-000000000003";

fn name(result: &str, record: &str) -> LogName {
    LogName::parse(&format!("demo/results/{result}/logs/{record}")).unwrap()
}

#[tokio::test]
async fn declared_runs_resolve_and_others_fall_back_to_their_names() {
    let resolver = FileResolver::load(FIXTURE).unwrap();
    resolver.check().await.unwrap();

    let run = resolver.resolve(&name(SOLO.0, SOLO.1)).await.unwrap();
    assert_eq!((run.kind, run.uid.as_str()), (RunKind::TaskRun, SOLO.1));
    assert_eq!(run.start_ns, parse_rfc3339_ns("2026-11-25T09:00:00Z"));
    assert_eq!(run.completion_ns, parse_rfc3339_ns("2026-11-25T09:05:00Z"));

    // A Log record leads to its TaskRun, whose record keeps the log.
    let via_log = resolver.resolve(&name(SOLO.0, LOG_RECORD)).await.unwrap();
    assert_eq!(via_log.uid, SOLO.1);
    assert_eq!(via_log.record, name(SOLO.0, SOLO.1));

    // The PipelineRun's TaskRuns: by label or owner reference, in start
    // order, the one that never started left out; base64 values decoded.
    let pipeline = resolver
        .resolve(&name(PIPELINE.0, PIPELINE.1))
        .await
        .unwrap();
    assert_eq!(pipeline.kind, RunKind::PipelineRun);
    let children = resolver.children(&pipeline).await.unwrap();
    let found: Vec<_> = children
        .iter()
        .map(|c| (c.uid.as_str(), c.task.as_deref().unwrap()))
        .collect();
    assert_eq!(found, [(BUILD_TASK, "build"), (TEST_TASK, "test")]);

    // Undeclared: resolved from the name, as without a database.
    let other = name("r", "some-log");
    let run = resolver.resolve(&other).await.unwrap();
    assert_eq!(
        (run.kind, run.uid.as_str(), run.start_ns),
        (RunKind::TaskRun, "some-log", None)
    );
}

#[tokio::test]
async fn a_changed_file_is_read_again_and_a_broken_change_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.json");
    std::fs::copy(FIXTURE, &path).unwrap();
    let resolver = FileResolver::load(&path).unwrap();
    let solo = name(SOLO.0, SOLO.1);
    assert!(resolver.resolve(&solo).await.unwrap().is_complete());

    // The same run, now running (another length, so the change is seen
    // even within the file system's timestamp granularity).
    let text = std::fs::read_to_string(FIXTURE).unwrap().replacen(
        "\"completionTime\": \"2026-11-25T09:05:00Z\"",
        "\"podName\": \"lint-pod\"",
        1,
    );
    std::fs::write(&path, &text).unwrap();
    let run = resolver.resolve(&solo).await.unwrap();
    assert_eq!(run.completion_ns, None);

    // A broken change: the last good contents stay in use.
    std::fs::write(&path, "{\"records\": [ oops").unwrap();
    let run = resolver.resolve(&solo).await.unwrap();
    assert_eq!((run.kind, run.completion_ns), (RunKind::TaskRun, None));
    assert!(run.start_ns.is_some());
    assert!(matches!(
        resolver.check().await.unwrap_err(),
        ResolveError::Unavailable { .. }
    ));
}

#[test]
fn bad_files_are_refused_with_the_file_the_record_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[]", "not a {\"records\": [...]} list of records"),
        (
            r#"{"records": [{"name": "ns/results/r/logs/x", "data": {"type": "t", "value": {}}}]}"#,
            "record 0: name \"ns/results/r/logs/x\" is not <parent>/results/<result>/records/<record>",
        ),
        (
            r#"{"records": [{"name": "NS/results/r/records/x", "data": {"type": "t", "value": {}}}]}"#,
            "record 0: name \"NS/results/r/records/x\"",
        ),
        (
            r#"{"records": [{"name": "ns/results/r/records/x", "data": {"type": "t", "value": "%%%"}}]}"#,
            "record 0: data.value is not base64",
        ),
        (
            r#"{"records": [{"name": "ns/results/r/records/x", "data": {"type": "t", "value": 7}}]}"#,
            "record 0: data.value must be an object or base64 of one, not 7",
        ),
        (
            r#"{"records": [
                {"name": "ns/results/r/records/x", "data": {"type": "t", "value": {}}},
                {"name": "ns/results/r/records/x", "data": {"type": "t", "value": {}}}]}"#,
            "record 1: \"ns/results/r/records/x\" is declared twice",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("case-{i}.json"));
        std::fs::write(&path, text).unwrap();
        let err = FileResolver::load(&path).unwrap_err();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains(expected), "case {i}: {err}");
    }
    let missing = FileResolver::load(dir.path().join("absent.json")).unwrap_err();
    assert!(missing.contains("absent.json"), "{missing}");
}

#[tokio::test]
async fn the_server_serves_declared_runs_from_the_local_store() {
    let server = TestServer::start_with([("LOGS_RUNS_FILE", FIXTURE)]).await;

    // The watcher's upload to the Log record is the TaskRun's log.
    let text = "[lint] all good\n";
    server
        .upload(&name(SOLO.0, LOG_RECORD).to_string(), text.as_bytes(), 5)
        .await
        .unwrap();
    let url = server.rest_url("v1alpha3", &name(SOLO.0, SOLO.1).to_string());
    let body = http().get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(body, text);

    // The PipelineRun: its TaskRuns' uploads, in the order they started.
    for (task, log) in [(TEST_TASK, "passed\n"), (BUILD_TASK, "compiled\n")] {
        server
            .upload(&name(PIPELINE.0, task).to_string(), log.as_bytes(), 3)
            .await
            .unwrap();
    }
    let pipeline = name(PIPELINE.0, PIPELINE.1).to_string();
    let chunks = server.get_chunks(&pipeline).await.unwrap();
    assert_eq!(chunks.concat(), b"[build] compiled\n[test] passed\n");
}

async fn run_command(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let child = tokio::process::Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output();
    tokio::time::timeout(Duration::from_secs(30), child)
        .await
        .expect("the command did not end within 30 s")
        .unwrap()
}

#[tokio::test]
async fn a_bad_runs_file_stops_start_up_and_check_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("runs.json");
    std::fs::write(&bad, "{\"records\": 5}").unwrap();
    let data = dir.path().join("data");
    let env = [
        ("LOGS_PATH", data.to_str().unwrap()),
        ("LOGS_RUNS_FILE", bad.to_str().unwrap()),
        ("SERVER_PORT", "0"),
    ];
    for command in ["serve", "check"] {
        let out = run_command(&[command], &env).await;
        assert!(!out.status.success(), "{command} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("runs file") && stderr.contains("runs.json"),
            "{command}: {stderr}"
        );
    }

    // With a database as well: which one is meant is unclear.
    let out = run_command(
        &["check"],
        &[
            ("LOGS_RUNS_FILE", FIXTURE),
            ("DB_HOST", "127.0.0.1"),
            ("DB_USER", "results"),
        ],
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("LOGS_RUNS_FILE") && stderr.contains("DB_HOST"),
        "{stderr}"
    );

    // A good file: check reports it.
    let out = run_command(
        &["check", "--runs-file", FIXTURE],
        &[("LOGS_PATH", data.to_str().unwrap())],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("runs declared in") && stdout.contains("ok: the runs file is readable"),
        "{stdout}"
    );
}

#[tokio::test]
async fn get_follow_waits_for_a_running_runs_upload_and_prints_it() {
    // The lint TaskRun, still running.
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::server_with_a_running_run(dir.path()).await;
    let url = server.url();
    let solo = name(SOLO.0, SOLO.1).to_string();
    let follower = crate::support::spawn_cli(&["get", "--follow", &solo, "--server", &url]);
    // The follower is waiting for the upload; the watcher uploads it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut follower = follower;
    assert!(
        follower.try_wait().unwrap().is_none(),
        "get --follow ended before the log was uploaded"
    );
    server
        .upload(&name(SOLO.0, LOG_RECORD).to_string(), b"linted\n", 4)
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), follower.wait_with_output())
        .await
        .expect("get --follow did not end within 30 s")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"linted\n");

    // A log nobody will upload (no run behind it): an error, at once.
    let missing = name("r", "nothing-here").to_string();
    let out = run_command(&["get", "-f", &missing, "--server", &url], &[]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("404") && stderr.contains("nothing-here"),
        "{stderr}"
    );
}

#[tokio::test]
async fn get_prints_records_as_asked_and_tail_follows_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    // The lint TaskRun runs; the PipelineRun's tasks have finished.
    let server = crate::support::server_with_a_running_run(dir.path()).await;
    let url = server.url();
    for (task, log) in [(TEST_TASK, "passed\n"), (BUILD_TASK, "compiled\nlinked\n")] {
        server
            .upload(&name(PIPELINE.0, task).to_string(), log.as_bytes(), 3)
            .await
            .unwrap();
    }
    let pipeline = name(PIPELINE.0, PIPELINE.1).to_string();
    let get = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_command(&args, &[]).await
    };
    let base = |extra: &[&str]| {
        let mut args = vec!["get".to_owned(), pipeline.clone()];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args.extend(["--server".to_owned(), url.clone()]);
        args
    };

    let out = get(base(&["--output", "ndjson"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["task"], "build");

    let out = get(base(&["-o", "json", "--tail", "2"])).await;
    let array: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let messages: Vec<_> = array
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(messages, ["linked", "passed"]);

    // Text through the structured read, into a file: as the text route.
    let file = dir.path().join("out.log");
    let out = get(base(&["--tail", "3", "--out", file.to_str().unwrap()])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "[build] compiled\n[build] linked\n[test] passed\n"
    );

    // A filter the store cannot apply: the server's reason, and a failure.
    let out = get(base(&["--steps", "build"])).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not say which step"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // tail follows the running TaskRun until its log is complete.
    let solo = name(SOLO.0, SOLO.1).to_string();
    let mut tail = crate::support::spawn_cli(&["tail", &solo, "--server", &url]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        tail.try_wait().unwrap().is_none(),
        "tail ended before the log came"
    );
    server
        .upload(&name(SOLO.0, LOG_RECORD).to_string(), b"one\ntwo\n", 4)
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), tail.wait_with_output())
        .await
        .expect("tail did not end within 30 s")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"one\ntwo\n");

    // tail of a log nobody has: the server's 404, at once.
    let out = run_command(
        &["tail", "demo/results/r/logs/nothing", "--server", &url],
        &[],
    )
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
}
