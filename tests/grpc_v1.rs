//! The product's own gRPC API, `tekton.resultslogs.v1.Logs/StreamLog`:
//! structured records with cursors, resume, filters, follow, and precise
//! statuses for bad requests.

use std::time::Duration;

use tekton_results_logs::proto::tekton::resultslogs::v1;
use tekton_results_logs::timestamp::parse_rfc3339_ns;
use tonic::Code;

use crate::fakes::loki::{FakeLoki, FakeLokiConfig};
use crate::support::{loki_runs_server, push_lint_lines, TestServer};

const FIXTURE: &str = crate::support::RUNS_FIXTURE;
const SOLO: &str =
    "demo/results/a0a0a0a0-0000-4000-8000-000000000001/logs/a0a0a0a0-0000-4000-8000-000000000002";
const PIPELINE: &str =
    "demo/results/5e1f0000-0000-4000-8000-000000000001/logs/5e1f0000-0000-4000-8000-000000000001";
const TEST_TASK: &str =
    "demo/results/5e1f0000-0000-4000-8000-000000000001/logs/5e1f0000-0000-4000-8000-000000000002";
const BUILD_TASK: &str =
    "demo/results/5e1f0000-0000-4000-8000-000000000001/logs/5e1f0000-0000-4000-8000-000000000003";

async fn client(server: &TestServer) -> v1::logs_client::LogsClient<tonic::transport::Channel> {
    v1::logs_client::LogsClient::new(server.channel().await)
}

fn request(name: &str) -> v1::StreamLogRequest {
    v1::StreamLogRequest {
        name: name.to_owned(),
        ..Default::default()
    }
}

async fn stream(
    server: &TestServer,
    request: v1::StreamLogRequest,
) -> Result<Vec<v1::Record>, tonic::Status> {
    let mut stream = client(server).await.stream_log(request).await?.into_inner();
    let mut records = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(batch) = stream.message().await? {
            assert!(!batch.records.is_empty(), "an empty batch");
            records.extend(batch.records);
        }
        Ok::<_, tonic::Status>(())
    })
    .await
    .expect("the stream did not end within 30 s");
    outcome.map(|()| records)
}

fn texts(records: &[v1::Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.message).into_owned())
        .collect()
}

#[tokio::test]
async fn records_with_tasks_and_cursors_resume_exactly() {
    let server = TestServer::start_with([("LOGS_RUNS_FILE", FIXTURE)]).await;
    server.upload(BUILD_TASK, b"compiled\n", 3).await.unwrap();
    server
        .upload(TEST_TASK, b"ok 1\nok 2\n\xff", 3)
        .await
        .unwrap();
    let records = stream(&server, request(PIPELINE)).await.unwrap();
    assert_eq!(texts(&records), ["compiled", "ok 1", "ok 2", "\u{fffd}"]);
    assert_eq!(records[3].message.as_ref(), b"\xff");
    assert_eq!(records[0].task, "build");
    assert_eq!(records[1].task_run, "5e1f0000-0000-4000-8000-000000000002");
    for (k, record) in records.iter().enumerate() {
        let rest = stream(
            &server,
            v1::StreamLogRequest {
                cursor: record.cursor.clone(),
                ..request(PIPELINE)
            },
        )
        .await
        .unwrap();
        assert_eq!(rest, records[k + 1..], "after record {k}");
    }
    let last = stream(
        &server,
        v1::StreamLogRequest {
            tail: 1,
            ..request(TEST_TASK)
        },
    )
    .await
    .unwrap();
    assert_eq!(last.len(), 1);
    assert!(last[0].unterminated);
}

#[tokio::test]
async fn bad_requests_get_precise_statuses_before_any_record() {
    let server = TestServer::start_with([("LOGS_RUNS_FILE", FIXTURE)]).await;
    server.upload(SOLO, b"x\n", 2).await.unwrap();
    let cursor = stream(&server, request(SOLO)).await.unwrap()[0]
        .cursor
        .clone();
    let time = |s: &str| {
        let ns = parse_rfc3339_ns(s).unwrap();
        Some(prost_types::Timestamp {
            seconds: ns / 1_000_000_000,
            nanos: 0,
        })
    };
    let cases = [
        (
            request("not a name"),
            Code::InvalidArgument,
            "invalid log name",
        ),
        (
            request("demo/results/r/logs/missing"),
            Code::NotFound,
            "not found",
        ),
        (
            v1::StreamLogRequest {
                cursor: cursor.clone(),
                ..request(PIPELINE)
            },
            Code::InvalidArgument,
            "another log",
        ),
        (
            v1::StreamLogRequest {
                cursor: "xyz".into(),
                ..request(SOLO)
            },
            Code::InvalidArgument,
            "cursor",
        ),
        (
            v1::StreamLogRequest {
                since: time("2026-11-25T10:00:00Z"),
                until: time("2026-11-25T09:00:00Z"),
                ..request(SOLO)
            },
            Code::InvalidArgument,
            "is not before until",
        ),
        (
            v1::StreamLogRequest {
                since: Some(prost_types::Timestamp {
                    seconds: 1,
                    nanos: -5,
                }),
                ..request(SOLO)
            },
            Code::InvalidArgument,
            "out of range",
        ),
        (
            v1::StreamLogRequest {
                steps: vec!["lint".into()],
                ..request(SOLO)
            },
            Code::InvalidArgument,
            "does not say which step",
        ),
        (
            v1::StreamLogRequest {
                tail: 1,
                cursor,
                ..request(SOLO)
            },
            Code::InvalidArgument,
            "do not go together",
        ),
        (
            v1::StreamLogRequest {
                tail: 20_000,
                ..request(SOLO)
            },
            Code::InvalidArgument,
            "1 to 10000",
        ),
    ];
    for (request, code, expected) in cases {
        let name = request.name.clone();
        let status = client(&server).await.stream_log(request).await.unwrap_err();
        assert_eq!(status.code(), code, "{name}: {status:?}");
        assert!(status.message().contains(expected), "{name}: {status:?}");
    }
}

#[tokio::test]
async fn loki_records_have_times_and_steps_and_follow_ends_with_the_run() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    push_lint_lines(
        &loki,
        &[
            (
                parse_rfc3339_ns("2026-11-25T09:01:00.5Z").unwrap(),
                "lint",
                "a".into(),
            ),
            (
                parse_rfc3339_ns("2026-11-25T09:02:00Z").unwrap(),
                "report",
                "b".into(),
            ),
        ],
    );
    let server = loki_runs_server(&loki, &[("LOGGING_PLUGIN_FORWARDER_DELAY_DURATION", "0")]).await;
    let records = stream(
        &server,
        v1::StreamLogRequest {
            steps: vec!["report".into()],
            ..request(SOLO)
        },
    )
    .await
    .unwrap();
    assert_eq!(texts(&records), ["container-step-report: message=b"]);
    assert_eq!(records[0].container, "step-report");
    // A completed run, followed: its history, then the end.
    let records = stream(
        &server,
        v1::StreamLogRequest {
            follow: true,
            ..request(SOLO)
        },
    )
    .await
    .unwrap();
    assert_eq!(records.len(), 2);
    let time = records[0].time.unwrap();
    assert_eq!((time.seconds % 60, time.nanos), (0, 500_000_000));
}

#[tokio::test]
async fn a_running_run_is_followed_until_its_log_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let runs = crate::support::running_runs_file(dir.path());
    let server = TestServer::start_with([("LOGS_RUNS_FILE", runs.to_str().unwrap())]).await;
    let upload = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.upload(SOLO, b"linted\nclean\n", 4).await.unwrap();
    };
    let (records, ()) = tokio::join!(
        stream(
            &server,
            v1::StreamLogRequest {
                follow: true,
                ..request(SOLO)
            }
        ),
        upload
    );
    assert_eq!(texts(&records.unwrap()), ["linted", "clean"]);
}

#[tokio::test]
async fn tail_resumes_where_it_was_when_the_server_restarts() {
    use tokio::io::AsyncBufReadExt;

    let dir = tempfile::tempdir().unwrap();
    let runs = crate::support::running_runs_file(dir.path());
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let uid = "a0a0a0a0-0000-4000-8000-000000000002";
    let push = |message: &str, ts: i64| {
        let line = serde_json::json!({"message": message, "kubernetes": {"container_name": "step-lint", "namespace_name": "demo", "labels": {"tekton_dev_taskRunUID": uid}}}).to_string();
        loki.push_lines(
            &[
                ("log_type", "application"),
                ("kubernetes_namespace_name", "demo"),
            ],
            &[(ts, line.as_str())],
        );
    };
    let now = tekton_results_logs::timestamp::now_ns;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let data = dir.path().join("data");
    let loki_url = loki.url();
    let env = [
        ("LOGS_RUNS_FILE", runs.to_str().unwrap()),
        ("LOGS_PATH", data.to_str().unwrap()),
        ("LOGS_TYPE", "Loki"),
        ("LOGGING_PLUGIN_API_URL", loki_url.as_str()),
        ("LOGGING_PLUGIN_PROXY_PATH", ""),
        ("LOGGING_PLUGIN_FORWARDER_DELAY_DURATION", "0"),
        ("SERVER_PORT", port.as_str()),
    ];
    push("one", now() - 3_000_000_000);
    let first = TestServer::start_with(env).await;
    let url = first.url();
    let mut tail = crate::support::spawn_cli(&["tail", SOLO, "--server", &url]);
    let mut lines = tokio::io::BufReader::new(tail.stdout.take().unwrap()).lines();
    async fn next_line(
        lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    ) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("no line within 30 s")
            .unwrap()
    }
    assert_eq!(
        next_line(&mut lines).await.as_deref(),
        Some("container-step-lint: message=one")
    );

    // The server goes away; a line comes meanwhile; a new server starts.
    drop(first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    push("two", now());
    let _second = TestServer::start_with(env).await;
    assert_eq!(
        next_line(&mut lines).await.as_deref(),
        Some("container-step-lint: message=two")
    );

    // The run completes: tail ends, and printed nothing twice.
    let done = tekton_results_logs::timestamp::format_rfc3339_ns(now() + 1_000_000_000);
    let text = std::fs::read_to_string(FIXTURE).unwrap().replacen(
        "\"completionTime\": \"2026-11-25T09:05:00Z\"",
        &format!("\"completionTime\": \"{done}\""),
        1,
    );
    std::fs::write(&runs, text).unwrap();
    assert_eq!(next_line(&mut lines).await, None);
    let status = tokio::time::timeout(Duration::from_secs(30), tail.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}
