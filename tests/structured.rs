//! Structured reads over REST: NDJSON (`Accept: application/x-ndjson`) and
//! Server-Sent Events (`Accept: text/event-stream`), each record with the
//! cursor that resumes after it; `cursor=` and `Last-Event-ID` resume.

use std::time::Duration;

use futures::StreamExt;
use reqwest_eventsource::{Event, EventSource};
use serde_json::Value;
use tekton_results_logs::timestamp::parse_rfc3339_ns;

use crate::fakes::loki::{FakeLoki, FakeLokiConfig};
use crate::support::{http, loki_runs_server, push_lint_lines, TestServer};

const FIXTURE: &str = crate::support::RUNS_FIXTURE;
const SOLO: &str =
    "demo/results/a0a0a0a0-0000-4000-8000-000000000001/logs/a0a0a0a0-0000-4000-8000-000000000002";
const PIPELINE: &str =
    "demo/results/5e1f0000-0000-4000-8000-000000000001/logs/5e1f0000-0000-4000-8000-000000000001";
const TEST_TASK: &str =
    "demo/results/5e1f0000-0000-4000-8000-000000000001/logs/5e1f0000-0000-4000-8000-000000000002";
const BUILD_TASK: &str =
    "demo/results/5e1f0000-0000-4000-8000-000000000001/logs/5e1f0000-0000-4000-8000-000000000003";

async fn ndjson(server: &TestServer, log: &str, query: &str) -> (u16, String, Vec<Value>) {
    let response = http()
        .get(format!("{}{query}", server.rest_url("v1alpha3", log)))
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    if status != 200 {
        return (status, body, Vec::new());
    }
    assert_eq!(content_type, "application/x-ndjson");
    assert!(body.is_empty() || body.ends_with('\n'));
    let records = body
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    (status, content_type, records)
}

#[tokio::test]
async fn ndjson_records_carry_task_and_cursor_and_resume_exactly() {
    let server = TestServer::start_with([("LOGS_RUNS_FILE", FIXTURE)]).await;
    server
        .upload(BUILD_TASK, b"compiled\nlinked\n", 4)
        .await
        .unwrap();
    server
        .upload(TEST_TASK, b"passed\n\xff\xfe raw\nlast", 5)
        .await
        .unwrap();

    let (_, _, records) = ndjson(&server, PIPELINE, "").await;
    let messages: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r["task"].as_str().unwrap(),
                r.get("message").and_then(Value::as_str),
            )
        })
        .collect();
    assert_eq!(
        messages,
        [
            ("build", Some("compiled")),
            ("build", Some("linked")),
            ("test", Some("passed")),
            ("test", None),
            ("test", Some("last")),
        ]
    );
    // Bytes that are not UTF-8 come as base64; records name their TaskRun.
    assert_eq!(records[3]["message_base64"], "//4gcmF3");
    assert_eq!(
        records[0]["task_run"],
        "5e1f0000-0000-4000-8000-000000000003"
    );
    // In the merged log every TaskRun's last line ends; a TaskRun's own log
    // says that its last line has no line end.
    assert!(records[4].get("unterminated").is_none());
    let (_, _, own) = ndjson(&server, TEST_TASK, "").await;
    assert_eq!(own.last().unwrap()["unterminated"], true);

    // Resuming after each record gives exactly the rest.
    for (k, record) in records.iter().enumerate() {
        let cursor = record["cursor"].as_str().unwrap();
        assert!(cursor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let (status, _, rest) = ndjson(&server, PIPELINE, &format!("?cursor={cursor}")).await;
        assert_eq!(status, 200);
        assert_eq!(rest, records[k + 1..], "after record {k}");
    }

    // Bad cursors: 400 with the reason, before any record.
    let cursor = records[0]["cursor"].as_str().unwrap();
    let (status, body, _) = ndjson(&server, TEST_TASK, &format!("?cursor={cursor}")).await;
    assert_eq!(status, 400);
    assert!(body.contains("another log"), "{body}");
    let mut altered = cursor.to_owned();
    altered.replace_range(10..11, if &cursor[10..11] == "A" { "B" } else { "A" });
    let (status, body, _) = ndjson(&server, PIPELINE, &format!("?cursor={altered}")).await;
    assert_eq!(status, 400);
    assert!(body.contains("malformed"), "{body}");
    // Text has no cursors to give out, so it takes none.
    let response = http()
        .get(format!(
            "{}?cursor={cursor}",
            server.rest_url("v1alpha3", PIPELINE)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // A log that does not exist: 404, not an empty stream.
    let (status, _, _) = ndjson(&server, "demo/results/r/logs/nothing", "").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn ndjson_from_loki_has_times_and_containers() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let uid = "a0a0a0a0-0000-4000-8000-000000000002";
    let line = |message: &str, container: &str| {
        serde_json::json!({"message": message, "kubernetes": {"container_name": container, "namespace_name": "demo", "labels": {"tekton_dev_taskRunUID": uid}}}).to_string()
    };
    let t1 = parse_rfc3339_ns("2026-11-25T09:01:00.000000001Z").unwrap();
    let t2 = parse_rfc3339_ns("2026-11-25T09:02:00Z").unwrap();
    let lines = [
        (t1, line("lint start", "step-lint")),
        (t2, line("lint done", "step-lint")),
    ];
    let entries: Vec<(i64, &str)> = lines.iter().map(|(t, l)| (*t, l.as_str())).collect();
    loki.push_lines(
        &[
            ("log_type", "application"),
            ("kubernetes_namespace_name", "demo"),
        ],
        &entries,
    );
    let server = TestServer::start_with([
        ("LOGS_RUNS_FILE", FIXTURE),
        ("LOGS_TYPE", "Loki"),
        ("LOGGING_PLUGIN_API_URL", loki.url().as_str()),
        ("LOGGING_PLUGIN_PROXY_PATH", ""),
    ])
    .await;
    let (_, _, records) = ndjson(&server, SOLO, "").await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["time"], "2026-11-25T09:01:00.000000001Z");
    assert_eq!(records[0]["container"], "step-lint");
    assert_eq!(
        records[1]["message"],
        "container-step-lint: message=lint done"
    );
    let cursor = records[0]["cursor"].as_str().unwrap();
    let (_, _, rest) = ndjson(&server, SOLO, &format!("?cursor={cursor}")).await;
    assert_eq!(rest, records[1..]);
}

/// Collects `record` events until `end` (or an error).
async fn events(mut source: EventSource) -> (Vec<(String, Value)>, String) {
    let mut records = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = source.next().await {
            match event {
                Ok(Event::Open) => {}
                Ok(Event::Message(m)) if m.event == "record" => {
                    records.push((m.id.clone(), serde_json::from_str(&m.data).unwrap()));
                }
                Ok(Event::Message(m)) => return format!("{}: {}", m.event, m.data),
                Err(e) => return format!("error: {e}"),
            }
        }
        "closed".to_owned()
    })
    .await
    .expect("no end event within 30 s");
    source.close();
    (records, outcome)
}

#[tokio::test]
async fn an_event_stream_follows_a_running_run_and_resumes_from_last_event_id() {
    // The lint TaskRun, still running: its log comes when it is uploaded.
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::server_with_a_running_run(dir.path()).await;
    let url = server.rest_url("v1alpha3", SOLO);

    let source = EventSource::new(http().get(&url)).unwrap();
    let upload = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.upload(SOLO, b"one\ntwo\nthree\n", 4).await.unwrap();
    };
    let ((records, end), ()) = tokio::join!(events(source), upload);
    assert_eq!(end, "end: {\"reason\":\"the log is complete\"}");
    let messages: Vec<_> = records.iter().map(|(_, r)| r["message"].clone()).collect();
    assert_eq!(messages, ["one", "two", "three"]);
    // Event ids are the cursors.
    assert!(records.iter().all(|(id, r)| r["cursor"] == id.as_str()));

    // A client that reconnects with the last id it saw gets the rest.
    let resumed = http()
        .get(&url)
        .header("last-event-id", records[0].0.as_str());
    let (rest, end) = events(EventSource::new(resumed).unwrap()).await;
    assert_eq!(end, "end: {\"reason\":\"the log is complete\"}");
    assert_eq!(rest, records[1..]);

    // A cursor that is not one: an error status before any event.
    let mut bad = EventSource::new(http().get(&url).header("last-event-id", "nope")).unwrap();
    let first = tokio::time::timeout(Duration::from_secs(30), bad.next())
        .await
        .unwrap()
        .unwrap();
    match first {
        Err(reqwest_eventsource::Error::InvalidStatusCode(status, _)) => {
            assert_eq!(status, 400)
        }
        other => panic!("{other:?}"),
    }
    bad.close();
}

/// A server on the fake Loki and the runs file, and the lint TaskRun's lines:
/// `(time, step, message)`.
async fn loki_server(lines: &[(&str, &str, &str)]) -> (FakeLoki, TestServer) {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    push(&loki, lines);
    let server = loki_runs_server(&loki, &[]).await;
    (loki, server)
}

/// Lines of the lint TaskRun: `(RFC 3339 time, step, message)`.
fn push(loki: &FakeLoki, lines: &[(&str, &str, &str)]) {
    let lines: Vec<_> = lines
        .iter()
        .map(|(time, step, message)| {
            (
                parse_rfc3339_ns(time).unwrap(),
                *step,
                (*message).to_owned(),
            )
        })
        .collect();
    push_lint_lines(loki, &lines);
}

fn messages(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            let m = r["message"].as_str().unwrap();
            m.rsplit_once("message=").map_or(m, |(_, m)| m).to_owned()
        })
        .collect()
}

async fn page(server: &TestServer, log: &str, query: &str) -> (u16, Value) {
    let response = http()
        .get(format!("{}?{query}", server.rest_url("v1alpha3", log)))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn filters_pick_steps_times_and_the_last_lines() {
    let (_loki, server) = loki_server(&[
        ("2026-11-25T09:01:00Z", "lint", "a"),
        ("2026-11-25T09:02:00Z", "report", "b"),
        ("2026-11-25T09:03:00Z", "lint", "c"),
        ("2026-11-25T09:04:00Z", "report", "d"),
    ])
    .await;
    let read = |query: &'static str| {
        let server = &server;
        async move {
            let (status, body, records) = ndjson(server, SOLO, query).await;
            assert_eq!(status, 200, "{query}: {body}");
            messages(&records)
        }
    };
    assert_eq!(read("?steps=lint").await, ["a", "c"]);
    assert_eq!(read("?steps=step-report,lint").await, ["a", "b", "c", "d"]);
    assert_eq!(
        read("?since=2026-11-25T09:02:00Z&until=2026-11-25T09:04:00Z").await,
        ["b", "c"]
    );
    assert_eq!(read("?tail=2").await, ["c", "d"]);
    assert_eq!(read("?tail=1&steps=lint").await, ["c"]);
    assert_eq!(read("?tail=10").await, ["a", "b", "c", "d"]);

    // Bad values: 400 with what was wrong, before any record.
    for (query, expected) in [
        (
            "?steps=nope",
            "has no step \"nope\"; its steps are lint, report",
        ),
        (
            "?since=2026-11-25T09:03:00Z&until=2026-11-25T09:02:00Z",
            "is not before until",
        ),
        (
            "?since=yesterday",
            "since=\"yesterday\": expected an RFC 3339 time",
        ),
        ("?tail=0", "tail=0: expected 1 to 10000 lines"),
        ("?tail=-3", "tail=\"-3\""),
        ("?tail=2&cursor=abc", "tail and cursor do not go together"),
        ("?follow=sometimes", "follow=\"sometimes\""),
    ] {
        let (status, body, _) = ndjson(&server, SOLO, query).await;
        assert_eq!(status, 400, "{query}");
        let body: Value = serde_json::from_str(&body).unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(expected), "{query}: {message}");
    }
    // Text reads take no filters.
    let response = http()
        .get(format!("{}?steps=lint", server.rest_url("v1alpha3", SOLO)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // Text with timestamps: each line starts with its time.
    let text = |query: &'static str| {
        let url = format!("{}{query}", server.rest_url("v1alpha3", SOLO));
        async move {
            let response = http().get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, body) = text("?timestamps=true").await;
    assert_eq!(status, 200);
    assert_eq!(
        body.lines().next(),
        Some("2026-11-25T09:01:00.000000000Z container-step-lint: message=a")
    );
    assert_eq!(body.lines().count(), 4);
    assert_eq!(text("?timestamps=maybe").await.0, 400);

    // tail with paging: later pages carry on after the first.
    let (status, first) = page(&server, SOLO, "tail=3&page_size=2").await;
    assert_eq!(status, 200);
    let token = first["next_page_token"].as_str().unwrap();
    let (status, second) = page(
        &server,
        SOLO,
        &format!("tail=3&page_size=2&page_token={token}"),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    let mut all = first["records"].as_array().unwrap().clone();
    all.extend(second["records"].as_array().unwrap().iter().cloned());
    assert_eq!(messages(&all), ["b", "c", "d"]);
    assert_eq!(second["next_page_token"], "");

    // An event stream with tail that reconnects resumes where it was.
    let first_cursor = all[0]["cursor"].as_str().unwrap();
    let resumed = http()
        .get(format!(
            "{}?tail=3&follow=false",
            server.rest_url("v1alpha3", SOLO)
        ))
        .header("last-event-id", first_cursor);
    let (rest, end) = events(EventSource::new(resumed).unwrap()).await;
    assert_eq!(end, "end: {\"reason\":\"the log is complete\"}");
    let rest: Vec<Value> = rest.into_iter().map(|(_, r)| r).collect();
    assert_eq!(messages(&rest), ["c", "d"]);
}

#[tokio::test]
async fn the_local_store_refuses_filters_it_cannot_apply() {
    let server = TestServer::start_with([("LOGS_RUNS_FILE", FIXTURE)]).await;
    server.upload(SOLO, b"x\n", 2).await.unwrap();
    for (query, expected) in [
        ("?steps=lint", "does not say which step"),
        ("?since=2026-11-25T09:02:00Z", "keeps no line times"),
    ] {
        let (status, body, _) = ndjson(&server, SOLO, query).await;
        assert_eq!(status, 400, "{query}");
        assert!(body.contains(expected), "{query}: {body}");
    }
    let (status, body, records) = ndjson(&server, SOLO, "?tail=1").await;
    assert_eq!(
        (status, messages(&records)),
        (200, vec!["x".to_owned()]),
        "{body}"
    );
}

#[tokio::test]
async fn paged_json_walks_the_log_and_stays_stable_while_it_grows() {
    let (loki, server) = loki_server(&[
        ("2026-11-25T09:01:00Z", "lint", "a"),
        ("2026-11-25T09:01:00Z", "report", "b"),
        ("2026-11-25T09:01:00Z", "lint", "c"),
        ("2026-11-25T09:02:00Z", "lint", "d"),
        ("2026-11-25T09:03:00Z", "lint", "e"),
    ])
    .await;
    let (status, first) = page(&server, SOLO, "page_size=2").await;
    assert_eq!(status, 200);
    let token = first["next_page_token"].as_str().unwrap().to_owned();
    assert!(!token.is_empty());
    let first_records = first["records"].as_array().unwrap().clone();
    assert_eq!(first_records.len(), 2);

    // The log grows; the next pages carry on after the first, exactly.
    push(&loki, &[("2026-11-25T09:04:00Z", "lint", "f")]);
    let mut all = first_records;
    let mut token = token;
    while !token.is_empty() {
        let (status, body) = page(&server, SOLO, &format!("page_size=2&page_token={token}")).await;
        assert_eq!(status, 200, "{body}");
        all.extend(body["records"].as_array().unwrap().iter().cloned());
        token = body["next_page_token"].as_str().unwrap().to_owned();
    }
    let mut sorted = messages(&all);
    assert_eq!(sorted.len(), 6, "{sorted:?}");
    sorted.sort();
    assert_eq!(sorted, ["a", "b", "c", "d", "e", "f"]);
    // The same as one NDJSON read.
    let (_, _, whole) = ndjson(&server, SOLO, "").await;
    assert_eq!(all, whole);

    for (query, expected) in [
        ("page_size=0", "page_size=\"0\""),
        ("page_size=1001", "1 to 1000"),
        ("page_size=-1", "page_size=\"-1\""),
        ("page_size=2&follow=true", "do not follow"),
        ("page_size=2&cursor=a&page_token=b", "give one"),
        ("page_size=2&page_token=garbage", "malformed"),
    ] {
        let (status, body) = page(&server, SOLO, query).await;
        assert_eq!(status, 400, "{query}");
        assert!(
            body["message"].as_str().unwrap().contains(expected),
            "{query}: {body}"
        );
    }
}

#[tokio::test]
async fn a_tail_of_a_running_run_waits_for_its_log_and_a_reconnect_id_wins() {
    // The lint TaskRun, still running, its log not uploaded yet.
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::server_with_a_running_run(dir.path()).await;
    let url = server.rest_url("v1alpha3", SOLO);
    let tail = EventSource::new(http().get(format!("{url}?tail=2"))).unwrap();
    let upload = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.upload(SOLO, b"one\ntwo\nthree\n", 4).await.unwrap();
    };
    let ((records, end), ()) = tokio::join!(events(tail), upload);
    assert_eq!(end, "end: {\"reason\":\"the log is complete\"}");
    let messages: Vec<_> = records.iter().map(|(_, r)| r["message"].clone()).collect();
    assert_eq!(messages, ["one", "two", "three"]);

    // A reconnect's Last-Event-ID wins over the URL's cursor, which an
    // EventSource sends again unchanged.
    let both = http()
        .get(format!("{url}?cursor={}", records[0].0))
        .header("last-event-id", records[1].0.as_str());
    let (rest, end) = events(EventSource::new(both).unwrap()).await;
    assert_eq!(end, "end: {\"reason\":\"the log is complete\"}");
    assert_eq!(rest, records[2..]);
}

#[tokio::test]
async fn an_idle_event_stream_gets_heartbeats() {
    // A running run with no log yet: nothing to send for a while.
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::server_with_a_running_run(dir.path()).await;
    let response = http()
        .get(server.rest_url("v1alpha3", SOLO))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    // The heartbeat is a comment (a line starting with ':'), every 15 s.
    let first = tokio::time::timeout(Duration::from_secs(25), body.next())
        .await
        .expect("no heartbeat within 25 s")
        .unwrap()
        .unwrap();
    assert!(first.starts_with(b":"), "{first:?}");
}
