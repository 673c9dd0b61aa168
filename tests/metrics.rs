//! The Prometheus endpoint: requests to the log provider, their retries and
//! the ones given up, as a Loki outage comes and goes.

use crate::fakes::loki::{FakeLoki, FakeLokiConfig};
use crate::support::{http, loki_runs_server};

const SOLO: &str =
    "demo/results/a0a0a0a0-0000-4000-8000-000000000001/logs/a0a0a0a0-0000-4000-8000-000000000002";

fn series(name: &str, request: &str, outcome: Option<&str>) -> String {
    match outcome {
        Some(outcome) => {
            format!("{name}{{provider=\"loki\",request=\"{request}\",outcome=\"{outcome}\"}}")
        }
        None => format!("{name}{{provider=\"loki\",request=\"{request}\"}}"),
    }
}

#[tokio::test]
async fn provider_requests_retries_and_failures_are_counted() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let server = loki_runs_server(&loki, &[]).await;
    let read = || async {
        http()
            .get(server.rest_url("v1alpha3", SOLO))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let requests = |outcome: &'static str| {
        let name = series(
            "tekton_results_logs_upstream_requests_total",
            "query_range",
            Some(outcome),
        );
        let server = &server;
        async move { server.metric(&name).await }
    };

    // Two 503s, then an answer: two retries, the read succeeds.
    loki.fail_next_on("/loki/api/v1/query_range", 2, 503, "busy", None);
    assert_eq!(read().await, 200);
    assert_eq!(requests("5xx").await, 2.0);
    assert!(requests("2xx").await >= 1.0);
    let retries = series(
        "tekton_results_logs_upstream_retries_total",
        "query_range",
        None,
    );
    assert_eq!(server.metric(&retries).await, 2.0);

    // An outage longer than the retries: Unavailable, counted as a failure.
    loki.fail_next_on("/loki/api/v1/query_range", 5, 503, "down", None);
    assert_eq!(read().await, 503);
    let failures = series(
        "tekton_results_logs_upstream_failures_total",
        "query_range",
        None,
    );
    assert_eq!(server.metric(&failures).await, 1.0);
    assert_eq!(requests("5xx").await, 7.0);
    assert_eq!(server.metric(&retries).await, 6.0);

    // The endpoint describes what it counts.
    let text = server.metrics().await;
    assert!(
        text.contains(
            "# HELP tekton_results_logs_upstream_requests_total Requests to a log provider."
        ),
        "{text}"
    );
}
