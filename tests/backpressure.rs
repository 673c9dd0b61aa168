//! A client that stops reading holds the upstream paging back: the server
//! asks Loki for the next page only as the client takes the log, so what it
//! holds for a slow client is bounded by pages in flight, not by the log.
//! Measured by the server's buffer gauge and by how many pages the fake Loki
//! was asked for, not by timings.

use std::time::Duration;

use futures::StreamExt;

use crate::fakes::loki::{FakeLoki, FakeLokiConfig};
use crate::support::{http, loki_runs_server, push_lint_lines};

const SOLO: &str =
    "demo/results/a0a0a0a0-0000-4000-8000-000000000001/logs/a0a0a0a0-0000-4000-8000-000000000002";

/// Lines of the log, and lines per page.
const LINES: usize = 60_000;
const PAGE: usize = 1_000;

#[tokio::test]
async fn a_reader_that_stops_stops_the_paging_and_loses_nothing() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let start = tekton_results_logs::timestamp::parse_rfc3339_ns("2026-11-25T09:00:01Z").unwrap();
    let filler = "x".repeat(900);
    let lines: Vec<(i64, &str, String)> = (0..LINES)
        .map(|i| {
            (
                start + i as i64 * 1_000_000,
                "lint",
                format!("{i:06} {filler}"),
            )
        })
        .collect();
    push_lint_lines(&loki, &lines);
    drop(lines);
    let page = PAGE.to_string();
    let server = loki_runs_server(&loki, &[("LOGGING_PLUGIN_QUERY_LIMIT", &page)]).await;
    let pages_asked = || loki.requests_to("/loki/api/v1/query_range").len();

    for accept in ["text/plain", "application/x-ndjson"] {
        let before = pages_asked();
        let response = http()
            .get(server.rest_url("v1alpha3", SOLO))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.bytes_stream();
        // Take about one page, then stop reading for a while.
        let mut all = Vec::new();
        while all.len() < PAGE * 900 {
            all.extend_from_slice(&body.next().await.unwrap().unwrap());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let while_stopped = pages_asked() - before;
        eprintln!("backpressure: {accept}: {while_stopped} pages fetched while stopped");
        let total_pages = LINES / PAGE;
        // The server holds at most the page it is on for the stopped reader
        // (its buffer gauge), whatever the log's size (60 pages).
        let api = if accept == "text/plain" {
            "text"
        } else {
            "records"
        };
        let held = server
            .metric("tekton_results_logs_stream_buffered_bytes")
            .await;
        // A page of rendered lines: "container-step-lint: message=NNNNNN xxx…".
        let page_bytes = (PAGE * (filler.len() + 64)) as f64;
        eprintln!("backpressure: {accept}: {held} bytes held for the stopped reader");
        assert!(held > 0.0, "{accept}: the gauge says nothing is held");
        assert!(
            held <= page_bytes,
            "{accept}: {held} bytes held, more than a page"
        );
        assert_eq!(
            server
                .metric(&format!("tekton_results_logs_streams{{api=\"{api}\"}}"))
                .await,
            1.0
        );
        // What socket buffers and one page in hand allow: far from all.
        assert!(
            while_stopped <= total_pages / 3,
            "{accept}: {while_stopped} of {total_pages} pages fetched for a reader that stopped"
        );
        // Reading on gets every line, once, in order.
        while let Some(chunk) = body.next().await {
            all.extend_from_slice(&chunk.unwrap());
        }
        let text = String::from_utf8(all).unwrap();
        let numbers: Vec<usize> = text
            .match_indices(&format!(" {filler}"))
            .map(|(at, _)| text[at - 6..at].parse().unwrap())
            .collect();
        assert_eq!(numbers.len(), LINES, "{accept}");
        assert!(
            numbers.iter().enumerate().all(|(i, n)| i == *n),
            "{accept}: the lines are not 0..{LINES} in order"
        );
        assert!(
            pages_asked() - before >= total_pages,
            "{accept}: the log was not read to its end"
        );
        // The stream is gone: nothing held, and every record counted.
        let mut left = f64::MAX;
        for _ in 0..50 {
            left = server
                .metric(&format!("tekton_results_logs_streams{{api=\"{api}\"}}"))
                .await;
            if left == 0.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(left, 0.0, "{accept}: the stream is still counted");
        assert_eq!(
            server
                .metric("tekton_results_logs_stream_buffered_bytes")
                .await,
            0.0
        );
        assert_eq!(
            server
                .metric(&format!(
                    "tekton_results_logs_records_served_total{{api=\"{api}\"}}"
                ))
                .await,
            LINES as f64
        );
    }
}
