//! The Loki connector against the fake Loki (`fakes/loki.rs`): the contract
//! suite, complete paging past the per-query limit, identical timestamps at
//! page boundaries, retries, errors, push, follow; and the real binary
//! serving a Loki-backed log over gRPC and REST.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use proptest::prelude::*;
use tekton_results_logs::backend::loki::LokiBackend;
use tekton_results_logs::backend::{self, LogBackend, LogQuery};
use tekton_results_logs::config::{Config, RawConfig};
use tekton_results_logs::run::{LogName, Run};
use tekton_results_logs::timestamp::now_ns;

use crate::backend_conformance::{self, records, text, Capabilities};
use crate::fakes::loki::{FakeLoki, FakeLokiConfig};
use crate::support::{http, TestServer};

const NS: &str = "results-cap";
const UID: &str = "00267d8d-3638-4ee0-ba4b-585665422ee1";
const SECOND: i64 = 1_000_000_000;

fn log_name() -> LogName {
    LogName::parse(&format!(
        "{NS}/results/632c7746-5b0d-45ed-ad1d-08540d75fd83/logs/{UID}"
    ))
    .unwrap()
}

/// A forwarded line as OpenShift logging / Vector ViaQ writes it.
fn viaq(message: &str, container: &str, uid: &str) -> String {
    serde_json::json!({
        "message": message,
        "level": "default",
        "log_type": "application",
        "kubernetes": {
            "namespace_name": NS,
            "pod_name": "bars-taskrun-pod",
            "container_name": container,
            "labels": {"tekton_dev_taskRunUID": uid, "tekton_dev_task": "bars-task"}
        }
    })
    .to_string()
}

/// Seeds `(ts, container, message)` lines of the run into the fake, one
/// stream per container, as a forwarder would.
fn seed(loki: &FakeLoki, lines: &[(i64, &str, String)]) {
    let mut by_container: HashMap<&str, Vec<(i64, String)>> = HashMap::new();
    for (ts, container, message) in lines {
        by_container
            .entry(container)
            .or_default()
            .push((*ts, viaq(message, container, UID)));
    }
    for (container, entries) in by_container {
        let entries: Vec<(i64, &str)> = entries.iter().map(|(ts, l)| (*ts, l.as_str())).collect();
        loki.push_lines(
            &[
                ("log_type", "application"),
                ("kubernetes_namespace_name", NS),
                ("kubernetes_pod_name", "bars-taskrun-pod"),
                ("kubernetes_container_name", container),
            ],
            &entries,
        );
    }
}

/// The config keys pointing at `loki`, plus `extra`.
pub(crate) fn loki_env(loki: &FakeLoki, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("LOGS_TYPE".to_owned(), "Loki".to_owned()),
        ("LOGGING_PLUGIN_API_URL".to_owned(), loki.url()),
        ("LOGGING_PLUGIN_PROXY_PATH".to_owned(), String::new()),
        (
            "LOGGING_PLUGIN_TOKEN_PATH".to_owned(),
            "/nonexistent/token".to_owned(),
        ),
    ];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

pub(crate) fn backend(loki: &FakeLoki, extra: &[(&str, &str)]) -> Arc<dyn LogBackend> {
    let raw = RawConfig::from_env(loki_env(loki, extra));
    let config = Config::from_raw(&raw).unwrap();
    Arc::new(LokiBackend::from_config(&config).unwrap())
}

/// What the default query renders for a seeded line.
fn rendered(container: &str, message: &str) -> String {
    format!("container-{container}: message={message}")
}

fn sample(count: usize, base: i64) -> Vec<(i64, &'static str, String)> {
    (0..count)
        .map(|i| {
            let container = if i < count * 2 / 5 {
                "step-prepare"
            } else {
                "step-build"
            };
            (
                base + i as i64 * 1_000_000,
                container,
                format!("{container} line {i:07} lorem ipsum"),
            )
        })
        .collect()
}

#[tokio::test]
async fn loki_passes_the_contract() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let backend = backend(
        &loki,
        &[
            ("LOGGING_PLUGIN_CONTAINER_KEY", ""),
            ("LOGGING_PLUGIN_FORWARDER_DELAY_DURATION", "0"),
        ],
    );
    // Loki keeps lines, not bytes; it cannot replace, delete, or tell a
    // log nobody wrote from an empty one.
    let can = Capabilities {
        exact_bytes: false,
        not_found: false,
        replace: false,
        delete: false,
    };
    backend_conformance::run_suite(backend, can).await;
}

#[tokio::test]
async fn every_line_is_served_past_the_query_limit_in_order() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let lines = sample(5_000, now_ns() - 3600 * SECOND);
    seed(&loki, &lines);
    for plan in ["loki", "connector"] {
        loki.clear_requests();
        every_line_with_plan(&loki, &lines, plan).await;
    }
}

async fn every_line_with_plan(loki: &FakeLoki, lines: &[(i64, &str, String)], plan: &str) {
    let backend = backend(
        loki,
        &[
            ("LOGGING_PLUGIN_QUERY_LIMIT", "1700"),
            ("LOGGING_PLUGIN_QUERY_PLAN", plan),
        ],
    );
    let got = records(&*backend, LogQuery::new(log_name())).await.unwrap();
    let expected: Vec<String> = lines.iter().map(|(_, c, m)| rendered(c, m)).collect();
    let got_text: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8(r.message.to_vec()).unwrap())
        .collect();
    assert_eq!(got_text.len(), 5_000, "upstream stopped at 1700");
    assert_eq!(got_text, expected);
    assert_eq!(got[0].container.as_deref(), Some("step-prepare"));

    // Every request: forward, the configured page size, the plan's query:
    // upstream's, or a line filter on the UID answered with categorized
    // labels.
    let requests = loki.requests_to("/loki/api/v1/query_range");
    assert_eq!(requests.len(), 3, "5000 lines in pages of 1700");
    let query = if plan == "loki" {
        format!(
            r#"{{ log_type="application",kubernetes_namespace_name="{NS}" }}| json container="kubernetes.container_name", message="message", uid="kubernetes.labels.tekton_dev_taskRunUID" |uid="{UID}"| line_format "container-{{{{.container}}}}: message={{{{.message}}}}""#
        )
    } else {
        format!(r#"{{ log_type="application",kubernetes_namespace_name="{NS}" }}|= "{UID}""#)
    };
    for request in &requests {
        assert_eq!(request.param("direction"), Some("forward"));
        assert_eq!(request.param("limit"), Some("1700"));
        assert_eq!(request.param("query"), Some(query.as_str()));
        assert_eq!(
            request.header("x-loki-response-encoding-flags"),
            (plan == "connector").then_some("categorize-labels")
        );
        assert!(
            request.header("authorization").is_none(),
            "no token file, no token"
        );
    }
}

#[tokio::test]
async fn identical_timestamps_across_page_boundaries_are_delivered_once() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let base = now_ns() - 600 * SECOND;
    // Groups of lines sharing a timestamp, larger than the page size (3).
    let mut lines = Vec::new();
    for group in 0..6i64 {
        for k in 0..(group % 4 + 1) {
            let container = if k % 2 == 0 { "step-a" } else { "step-b" };
            lines.push((base + group * SECOND, container, format!("g{group} k{k}")));
        }
    }
    // Five lines at one timestamp: more than a page, fewer than Loki's max.
    for k in 0..5 {
        lines.push((base + 10 * SECOND, "step-a", format!("crowd {k}")));
    }
    seed(&loki, &lines);
    let backend = backend(&loki, &[("LOGGING_PLUGIN_QUERY_LIMIT", "3")]);
    let got = records(&*backend, LogQuery::new(log_name())).await.unwrap();
    let mut got_lines: Vec<(i64, String)> = got
        .iter()
        .map(|r| {
            (
                r.ts_ns.unwrap(),
                String::from_utf8(r.message.to_vec()).unwrap(),
            )
        })
        .collect();
    assert!(
        got_lines.windows(2).all(|w| w[0].0 <= w[1].0),
        "in time order"
    );
    let mut expected: Vec<(i64, String)> = lines
        .iter()
        .map(|(ts, c, m)| (*ts, rendered(c, m)))
        .collect();
    got_lines.sort();
    expected.sort();
    assert_eq!(got_lines, expected);
}

#[tokio::test]
async fn a_timestamp_with_more_lines_than_loki_returns_is_an_error_not_a_gap() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    loki.set_max_entries_limit_per_query(4);
    let ts = now_ns() - 60 * SECOND;
    let lines: Vec<_> = (0..6)
        .map(|k| (ts, "step-a", format!("same {k}")))
        .collect();
    seed(&loki, &lines);
    let backend = backend(&loki, &[("LOGGING_PLUGIN_QUERY_LIMIT", "3")]);
    // The connector raises the page to 5000, which this Loki refuses: 400.
    let err = records(&*backend, LogQuery::new(log_name()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, backend::Error::InvalidArgument { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("max entries limit"), "{err}");
}

#[tokio::test]
async fn throttling_is_retried_with_retry_after_and_outages_are_unavailable() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    seed(&loki, &sample(10, now_ns() - 60 * SECOND));
    let backend = backend(&loki, &[]);
    loki.fail_next(2, 429, "too many outstanding requests", Some("1".into()));
    let got = records(&*backend, LogQuery::new(log_name())).await.unwrap();
    assert_eq!(got.len(), 10);
    assert_eq!(loki.requests_to("/loki/api/v1/query_range").len(), 3);

    loki.fail_next(50, 503, "upstream connect error", None);
    let err = records(&*backend, LogQuery::new(log_name()))
        .await
        .unwrap_err();
    match err {
        backend::Error::Unavailable { message, .. } => {
            assert!(
                message.contains("HTTP 503: upstream connect error"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    loki.clear_failures();

    // A 400 is not retried and carries Loki's text.
    loki.clear_requests();
    let bad = backend_with_line_format(&loki, "{{.message");
    let err = records(&*bad, LogQuery::new(log_name())).await.unwrap_err();
    assert!(
        matches!(err, backend::Error::InvalidArgument { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("parse error"), "{err}");
    assert_eq!(loki.requests_to("/loki/api/v1/query_range").len(), 1);
}

fn backend_with_line_format(loki: &FakeLoki, format: &str) -> Arc<dyn LogBackend> {
    backend(loki, &[("LOGGING_PLUGIN_LINE_FORMAT", format)])
}

#[tokio::test]
async fn an_unreachable_loki_is_unavailable() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let url = loki.url();
    drop(loki);
    let raw = RawConfig::from_env(vec![
        ("LOGS_TYPE".to_owned(), "Loki".to_owned()),
        ("LOGGING_PLUGIN_API_URL".to_owned(), url),
        ("LOGGING_PLUGIN_PROXY_PATH".to_owned(), String::new()),
    ]);
    let backend = LokiBackend::from_config(&Config::from_raw(&raw).unwrap()).unwrap();
    let err = records(&backend, LogQuery::new(log_name()))
        .await
        .unwrap_err();
    assert!(matches!(err, backend::Error::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn token_tenant_and_proxy_path_reach_loki() {
    let loki = FakeLoki::start(FakeLokiConfig {
        path_prefix: "/api/logs/v1/application".into(),
        require_tenant: true,
        ..FakeLokiConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "secret-token\n").unwrap();
    let backend = backend(
        &loki,
        &[
            ("LOGGING_PLUGIN_PROXY_PATH", "/api/logs/v1/application"),
            ("LOGGING_PLUGIN_TENANT", "team-a"),
            ("LOGGING_PLUGIN_TOKEN_PATH", token.to_str().unwrap()),
        ],
    );
    loki.push_lines_for_tenant(
        "team-a",
        &[
            ("log_type", "application"),
            ("kubernetes_namespace_name", NS),
        ],
        &[(now_ns() - SECOND, viaq("hello", "step-a", UID).as_str())],
    );
    let got = records(&*backend, LogQuery::new(log_name())).await.unwrap();
    assert_eq!(text(&got), b"container-step-a: message=hello\n");
    let request = &loki.requests_to("/loki/api/v1/query_range")[0];
    assert!(request.path.starts_with("/api/logs/v1/application/"));
    assert_eq!(request.header("authorization"), Some("Bearer secret-token"));
    assert_eq!(request.header("x-scope-orgid"), Some("team-a"));
    // A rotated token is used from the next request once the file has been
    // looked at again (at most a second after the last look).
    std::fs::write(&token, "rotated-token-longer\n").unwrap();
    tokio::time::sleep(tekton_results_logs::watched::RECHECK).await;
    records(&*backend, LogQuery::new(log_name())).await.unwrap();
    let last = loki.requests_to("/loki/api/v1/query_range").pop().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some("Bearer rotated-token-longer")
    );
}

#[tokio::test]
async fn hostile_configuration_values_cannot_change_the_query() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    seed(&loki, &sample(3, now_ns() - 60 * SECOND));
    // A static label whose value would close the selector if inserted raw.
    let backend = backend(
        &loki,
        &[(
            "LOGGING_PLUGIN_STATIC_LABELS",
            "log_type=application\"} |~ \".*",
        )],
    );
    let got = records(&*backend, LogQuery::new(log_name())).await.unwrap();
    assert!(
        got.is_empty(),
        "the value is one label value that matches nothing"
    );
    let query = loki.requests_to("/loki/api/v1/query_range")[0]
        .param("query")
        .unwrap()
        .to_owned();
    assert!(
        query.starts_with(r#"{ log_type="application\"} |~ \".*",kubernetes_namespace_name="#),
        "{query}"
    );
}

#[tokio::test]
async fn uploads_are_pushed_and_read_back() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let backend = backend(&loki, &[("LOGGING_PLUGIN_CONTAINER_KEY", "")]);
    let text_in = "first line\nsecond \"quoted\" {{.line}}\n\nlast\n";
    let written =
        backend_conformance::push(&*backend, &log_name(), vec![text_in.as_bytes().to_vec()])
            .await
            .unwrap();
    assert_eq!(written, text_in.len() as u64);
    let push = &loki.requests_to("/loki/api/v1/push")[0];
    assert_eq!(push.header("content-type"), Some("application/x-protobuf"));
    let got = records(&*backend, LogQuery::new(log_name())).await.unwrap();
    assert_eq!(String::from_utf8(text(&got)).unwrap(), text_in);
}

#[tokio::test]
async fn rejected_pushes_are_reported_to_the_uploader() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    loki.set_max_line_size(50);
    let backend = backend(&loki, &[]);
    let long = "x".repeat(200);
    let err = backend_conformance::push(
        &*backend,
        &log_name(),
        vec![format!("ok\n{long}\n").into_bytes()],
    )
    .await
    .unwrap_err();
    match err {
        backend::Error::InvalidArgument { message } => {
            assert!(message.contains("loki rejected"), "{message}");
            assert!(message.contains("max entry size"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn following_a_running_run_delivers_new_lines_in_order_then_ends() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let start = now_ns() - 60 * SECOND;
    seed(&loki, &[(start + SECOND, "step-a", "before".to_owned())]);
    let backend = backend(&loki, &[("LOGGING_PLUGIN_FORWARDER_DELAY_DURATION", "0")]);
    // The run completes 8 s from now; following ends once that has passed.
    let run = Run {
        start_ns: Some(start),
        completion_ns: Some(now_ns() + 8 * SECOND),
        ..Run::from_name(log_name())
    };
    let mut stream = backend.read(LogQuery::for_run(run).follow(true));
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(text(&first.records), b"container-step-a: message=before\n");
    seed(&loki, &[(now_ns(), "step-b", "live one".to_owned())]);
    seed(&loki, &[(now_ns(), "step-a", "live two".to_owned())]);
    let mut rest = Vec::new();
    let collected = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(page) = stream.next().await {
            rest.extend(page.unwrap().records);
        }
    })
    .await;
    assert!(
        collected.is_ok(),
        "following did not end after the run's range"
    );
    assert_eq!(
        String::from_utf8(text(&rest)).unwrap(),
        "container-step-b: message=live one\ncontainer-step-a: message=live two\n"
    );
}

#[tokio::test]
async fn following_survives_tail_closes_and_a_stalled_tail_without_gap_or_duplicate() {
    let loki = Arc::new(FakeLoki::start(FakeLokiConfig::default()));
    // Loki ends every tail after 1 s and stops reading it: the follower must
    // reconnect and must not depend on what the tail delivers.
    loki.set_tail_max_duration(Duration::from_secs(1));
    loki.stall_tails_after(1);
    let start = now_ns() - 10 * SECOND;
    let backend = backend(&loki, &[("LOGGING_PLUGIN_FORWARDER_DELAY_DURATION", "0")]);
    let run = Run {
        start_ns: Some(start),
        completion_ns: Some(now_ns() + 12 * SECOND),
        ..Run::from_name(log_name())
    };
    let writer = {
        let loki = loki.clone();
        tokio::spawn(async move {
            for i in 0..10 {
                let step = if i % 2 == 0 { "step-a" } else { "step-b" };
                seed(&loki, &[(now_ns(), step, format!("live {i}"))]);
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        })
    };
    let mut got = Vec::new();
    let mut stream = backend.read(LogQuery::for_run(run).follow(true));
    let ended = tokio::time::timeout(Duration::from_secs(40), async {
        while let Some(page) = stream.next().await {
            got.extend(page.unwrap().records);
        }
    })
    .await;
    writer.await.unwrap();
    assert!(ended.is_ok(), "following did not end");
    let messages: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8(r.message.to_vec()).unwrap())
        .collect();
    let expected: Vec<String> = (0..10)
        .map(|i| {
            rendered(
                if i % 2 == 0 { "step-a" } else { "step-b" },
                &format!("live {i}"),
            )
        })
        .collect();
    assert_eq!(messages, expected);
    assert!(
        loki.requests_to("/loki/api/v1/tail").len() >= 2,
        "the follower reconnected its tail"
    );
}

#[tokio::test]
async fn a_throttled_push_is_retried() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let backend = backend(&loki, &[("LOGGING_PLUGIN_CONTAINER_KEY", "")]);
    loki.fail_next_on(
        "/loki/api/v1/push",
        2,
        429,
        "Ingestion rate limit exceeded",
        None,
    );
    backend_conformance::push(&*backend, &log_name(), vec![b"one\ntwo\n".to_vec()])
        .await
        .unwrap();
    assert_eq!(loki.requests_to("/loki/api/v1/push").len(), 3);
    let got = records(&*backend, LogQuery::new(log_name())).await.unwrap();
    assert_eq!(text(&got), b"one\ntwo\n");
}

#[tokio::test]
async fn the_server_serves_a_loki_log_over_grpc_and_rest() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let lines = sample(5_000, now_ns() - 3600 * SECOND);
    seed(&loki, &lines);
    let server = TestServer::start_with(loki_env(&loki, &[])).await;
    let name = log_name().to_string();
    let expected: String = lines
        .iter()
        .map(|(_, c, m)| rendered(c, m) + "\n")
        .collect();
    let chunks = server.get_chunks(&name).await.unwrap();
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c.len() == 32_768));
    assert_eq!(String::from_utf8(chunks.concat()).unwrap(), expected);
    for version in ["v1alpha3", "v1alpha2"] {
        let response = http()
            .get(server.rest_url(version, &name))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), expected);
    }
    // Loki down: an honest 503 / UNAVAILABLE, not an empty 200.
    loki.fail_next(100, 503, "overloaded", None);
    let response = http()
        .get(server.rest_url("v1alpha3", &name))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let status = server.get_chunks(&name).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
}

/// Lines of random streams and timestamps (many shared) for the property.
fn random_log() -> impl Strategy<Value = Vec<(i64, u8, u16)>> {
    proptest::collection::vec((0i64..40, 0u8..3, any::<u16>()), 0..120)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the streams, shared timestamps and page size, every line is
    /// delivered once, in time order, and resuming after any record yields
    /// exactly the rest.
    #[test]
    fn paging_is_exactly_once_in_order(log in random_log(), limit in 1u32..8, resume in any::<prop::sample::Index>()) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        runtime.block_on(async {
            let loki = FakeLoki::start(FakeLokiConfig::default());
            let base = now_ns() - 3600 * SECOND;
            let mut lines: Vec<(i64, &str, String)> = log
                .iter()
                .map(|(t, s, m)| (base + t * 1000, ["step-a", "step-b", "step-c"][usize::from(*s)], format!("m{m}")))
                .collect();
            // Loki itself collapses exact duplicates within a stream.
            lines.sort();
            lines.dedup();
            seed(&loki, &lines);
            let backend = backend(&loki, &[("LOGGING_PLUGIN_QUERY_LIMIT", &limit.to_string())]);
            let got = records(&*backend, LogQuery::new(log_name())).await.unwrap();
            let got_lines: Vec<(i64, String)> = got
                .iter()
                .map(|r| (r.ts_ns.unwrap(), String::from_utf8(r.message.to_vec()).unwrap()))
                .collect();
            prop_assert!(got_lines.windows(2).all(|w| w[0].0 <= w[1].0));
            let mut sorted = got_lines.clone();
            sorted.sort();
            let mut expected: Vec<(i64, String)> = lines.iter().map(|(ts, c, m)| (*ts, rendered(c, m))).collect();
            expected.sort();
            prop_assert_eq!(sorted, expected);
            if !got.is_empty() {
                let i = resume.index(got.len());
                let rest = records(&*backend, LogQuery::new(log_name()).after(Some(got[i].position))).await.unwrap();
                prop_assert_eq!(&rest[..], &got[i + 1..]);
            }
            Ok(())
        })?;
    }
}
