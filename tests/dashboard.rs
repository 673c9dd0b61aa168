//! The Tekton Dashboard's external-logs contract: `GET
//! /dashboard/logs/<namespace>/<pod>/<container>?startTime=&completionTime=`
//! answers one step container's log as `text/plain`.

use tekton_results_logs::timestamp::parse_rfc3339_ns;

use crate::fakes::loki::{FakeLoki, FakeLokiConfig};
use crate::support::{http, TestServer};

const POD: &str = "build-and-test-build-pod";

fn line(message: &str, pod: &str, container: &str) -> String {
    serde_json::json!({
        "message": message,
        "kubernetes": {"namespace_name": "demo", "pod_name": pod, "container_name": container,
                       "labels": {"tekton_dev_taskRunUID": "u1"}}
    })
    .to_string()
}

async fn loki_server() -> (FakeLoki, TestServer) {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let t = |s: &str| parse_rfc3339_ns(s).unwrap();
    let lines = [
        (
            t("2026-11-25T10:01:00Z"),
            line("go build ./...", POD, "step-build"),
        ),
        (t("2026-11-25T10:01:01Z"), line("testing", POD, "step-test")),
        (
            t("2026-11-25T10:01:02Z"),
            line("another pod", "other-pod", "step-build"),
        ),
        (t("2026-11-25T10:01:03Z"), line("built", POD, "step-build")),
        (
            t("2026-11-25T12:00:00Z"),
            line("much later", POD, "step-build"),
        ),
    ];
    let entries: Vec<(i64, &str)> = lines.iter().map(|(ts, l)| (*ts, l.as_str())).collect();
    loki.push_lines(
        &[
            ("log_type", "application"),
            ("kubernetes_namespace_name", "demo"),
        ],
        &entries,
    );
    let server = TestServer::start_with([
        ("LOGS_TYPE", "Loki"),
        ("LOGGING_PLUGIN_API_URL", loki.url().as_str()),
        ("LOGGING_PLUGIN_PROXY_PATH", ""),
        ("LOGGING_PLUGIN_FORWARDER_DELAY_DURATION", "1"),
        // The lines are from 2026-11-25: a look-back that reaches them.
        ("LOGGING_PLUGIN_LOOKBACK_DURATION", "5256000"),
    ])
    .await;
    (loki, server)
}

async fn get(server: &TestServer, path: &str) -> (u16, String, String) {
    let response = http()
        .get(format!("{}{path}", server.url()))
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

#[tokio::test]
async fn one_step_containers_log_by_pod_in_the_runs_time_range() {
    let (loki, server) = loki_server().await;
    let (status, content_type, body) = get(
        &server,
        &format!(
            "/dashboard/logs/demo/{POD}/step-build?startTime=2026-11-25T10%3A00%3A00Z&completionTime=2026-11-25T10%3A30%3A00Z"
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    // The bare messages, as the pod log API gives them: this pod, this
    // container, this time range (completion plus the forwarder delay).
    assert_eq!(body, "go build ./...\nbuilt\n");
    let query = loki.requests_to("/loki/api/v1/query_range").pop().unwrap();
    let logql = query.param("query").unwrap().to_owned();
    assert!(
        logql.contains(&format!("|pod=\"{POD}\"|container=\"step-build\"|")),
        "{logql}"
    );
    assert_eq!(
        query.param("start"),
        Some(
            parse_rfc3339_ns("2026-11-25T10:00:00Z")
                .unwrap()
                .to_string()
                .as_str()
        )
    );
    assert_eq!(
        query.param("end"),
        Some(
            parse_rfc3339_ns("2026-11-25T10:31:00Z")
                .unwrap()
                .to_string()
                .as_str()
        )
    );

    // No times (the Dashboard omits unknown ones): the look-back window.
    let (status, _, body) = get(&server, &format!("/dashboard/logs/demo/{POD}/step-test")).await;
    assert_eq!((status, body.as_str()), (200, "testing\n"));
}

#[tokio::test]
async fn bad_requests_are_400_and_stores_without_pods_say_so() {
    let (_loki, server) = loki_server().await;
    for (path, expected) in [
        ("/dashboard/logs/Demo/p/step-build", "namespace \"Demo\""),
        (
            "/dashboard/logs/demo/p/step%22build",
            "container \"step\\\"build\"",
        ),
        ("/dashboard/logs/demo/-p/step-build", "pod \"-p\""),
        (
            "/dashboard/logs/demo/p/step-build?startTime=noon",
            "startTime=\"noon\"",
        ),
    ] {
        let (status, _, body) = get(&server, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(expected), "{path}: {message}");
    }

    // The local store keeps logs by run, not by pod and container.
    let local = TestServer::start().await;
    let (status, _, body) = get(&local, "/dashboard/logs/demo/p/step-build").await;
    assert_eq!(status, 501, "{body}");
    assert!(body.contains("by its pod"), "{body}");
}
