//! Followers of one run share one upstream tail: the fake Loki sees one tail
//! websocket however many clients follow, and a client that stops reading is
//! overtaken by the shared ring, reads what it missed from history, and loses
//! nothing, while the others are not held back. Asserted on delivered content,
//! the fake's request log and the server's metrics, not on timings.

use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fakes::loki::{FakeLoki, FakeLokiConfig};
use crate::support::{
    loki_runs_server, ndjson_200, push_lint_lines, running_runs_file, TestServer, RUNS_FIXTURE,
};
use tekton_results_logs::timestamp::{format_rfc3339_ns, now_ns, parse_rfc3339_ns};

const SOLO: &str =
    "demo/results/a0a0a0a0-0000-4000-8000-000000000001/logs/a0a0a0a0-0000-4000-8000-000000000002";

/// Live lines pushed while the clients follow, and the padding of each.
const LIVE: usize = 600;
const PADDING: usize = 20_000;

/// Fast followers, each on its own connection.
const FAST: usize = 8;

fn live_line(i: usize) -> String {
    format!("live {i:04} {}", "p".repeat(PADDING))
}

fn expected() -> Vec<String> {
    std::iter::once("container-step-lint: message=history".to_owned())
        .chain((0..LIVE).map(|i| format!("container-step-lint: message={}", live_line(i))))
        .collect()
}

/// The messages of an NDJSON body.
fn messages(body: &str) -> Vec<String> {
    body.lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            record["message"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// A follower that reads the whole NDJSON body as it comes.
fn fast_follower(url: String) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let response = ndjson_200(&url, None).await;
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk.unwrap());
        }
        messages(&String::from_utf8(body).unwrap())
    })
}

/// A follower on a socket with a small receive buffer, which reads the
/// response head and first line and then stops reading. HTTP/1.0, so the
/// body ends with the connection.
async fn slow_follower(server: &TestServer, path: &str) -> (tokio::net::TcpStream, Vec<u8>) {
    let addr = server.url().trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/x-ndjson\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("message=history") {
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the slow follower's response ended early");
        got.extend_from_slice(&buf[..n]);
    }
    (stream, got)
}

async fn wait_for_metric(server: &TestServer, series: &str, value: f64) {
    for _ in 0..200 {
        if server.metric(series).await == value {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{series} never became {value}");
}

#[tokio::test]
async fn followers_share_one_tail_and_a_slow_one_loses_nothing() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let start = parse_rfc3339_ns("2026-11-25T09:00:01Z").unwrap();
    push_lint_lines(&loki, &[(start, "lint", "history".to_owned())]);
    let dir = tempfile::tempdir().unwrap();
    let runs = running_runs_file(dir.path());
    let server = loki_runs_server(
        &loki,
        &[
            ("LOGS_RUNS_FILE", runs.to_str().unwrap()),
            ("LOGS_FOLLOW_BUFFER_PAGES", "2"),
            ("LOGGING_PLUGIN_QUERY_LIMIT", "10"),
            ("LOGGING_PLUGIN_FORWARDER_DELAY_DURATION", "0"),
        ],
    )
    .await;
    let url = format!("{}?follow=true", server.rest_url("v1alpha3", SOLO));
    let path = url.trim_start_matches(&server.url()).to_owned();

    let (mut slow, mut slow_body) = slow_follower(&server, &path).await;
    let fast: Vec<_> = (0..FAST).map(|_| fast_follower(url.clone())).collect();
    let followers = "tekton_results_logs_followers{provider=\"loki\"}";
    let tails = "tekton_results_logs_upstream_tails{provider=\"loki\"}";
    wait_for_metric(&server, followers, (FAST + 1) as f64).await;
    assert_eq!(server.metric(tails).await, 1.0, "one shared tail");

    // Lines arrive while everyone follows: many more pages than the ring of 2.
    for batch in 0..LIVE / 10 {
        let now = now_ns();
        let lines: Vec<_> = (batch * 10..batch * 10 + 10)
            .map(|i| (now + i as i64, "lint", live_line(i)))
            .collect();
        push_lint_lines(&loki, &lines);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The run completes: followers end once its range has passed.
    let done = format_rfc3339_ns(now_ns() + 1_000_000_000);
    let text = std::fs::read_to_string(RUNS_FIXTURE).unwrap().replacen(
        "\"completionTime\": \"2026-11-25T09:05:00Z\"",
        &format!("\"completionTime\": \"{done}\""),
        1,
    );
    std::fs::write(&runs, text).unwrap();

    // The fast followers finish while the slow one still reads nothing: it
    // does not hold them back.
    for follower in fast {
        let got = tokio::time::timeout(Duration::from_secs(60), follower)
            .await
            .expect("a fast follower did not finish while the slow one stalled")
            .unwrap();
        assert_eq!(got, expected());
    }
    assert_eq!(
        loki.requests_to("/loki/api/v1/tail").len(),
        1,
        "{} followers opened one tail to Loki",
        FAST + 1
    );

    // Now the slow follower reads on: it lost nothing, repeated nothing.
    tokio::time::timeout(Duration::from_secs(60), slow.read_to_end(&mut slow_body))
        .await
        .expect("the slow follower did not finish")
        .unwrap();
    let text = String::from_utf8(slow_body).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert_eq!(messages(body), expected());
    let fallbacks = server
        .metric("tekton_results_logs_follower_fallbacks_total{provider=\"loki\"}")
        .await;
    assert!(
        fallbacks >= 1.0,
        "the slow follower was never overtaken: make the test push more"
    );
    // Everyone has gone: the shared tail is closed.
    wait_for_metric(&server, followers, 0.0).await;
    wait_for_metric(&server, tails, 0.0).await;
}
