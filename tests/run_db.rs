//! Run resolution from a real PostgreSQL holding the upstream schema and
//! Tekton records shaped as the watcher stores them (`fixtures/results.sql`),
//! directly and through the server with the fake Loki.

use std::collections::HashMap;

use tekton_results_logs::config::{Config, RawConfig};
use tekton_results_logs::run::{DbResolver, LogName, ResolveError, RunKind, RunResolver};
use tekton_results_logs::timestamp::parse_rfc3339_ns;

use crate::fakes::loki::{FakeLoki, FakeLokiConfig};
use crate::support::{http, TestServer};
use crate::support_db::{db_env, fresh_database};

const NS: &str = "results-cap";

fn name(result: &str, record: &str) -> LogName {
    LogName::parse(&format!("{NS}/results/{result}/logs/{record}")).unwrap()
}

fn ns(time: &str) -> i64 {
    parse_rfc3339_ns(time).unwrap()
}

fn resolver(url: &str) -> DbResolver {
    let config = Config::from_raw(&RawConfig::from_env(db_env(url))).unwrap();
    DbResolver::new(config.db.as_ref().unwrap()).unwrap()
}

const TASKRUN: (&str, &str) = (
    "632c7746-5b0d-45ed-ad1d-08540d75fd83",
    "00267d8d-3638-4ee0-ba4b-585665422ee1",
);
const PIPELINERUN: (&str, &str) = (
    "1f350658-5a83-4d98-8c80-4d45ccb98004",
    "7ed7ef0f-d24c-4319-8caa-c658a93e7bc3",
);
const RUNNING: (&str, &str) = (
    "715034e9-2735-4481-81e9-c003c770a30d",
    "69918a7c-a94e-4662-ad69-0cb0a9ee3185",
);

#[tokio::test]
async fn task_and_pipeline_runs_resolve_with_their_times() {
    let db = fresh_database().await;
    let resolver = resolver(&db.url);
    resolver.check().await.unwrap();

    let run = resolver.resolve(&name(TASKRUN.0, TASKRUN.1)).await.unwrap();
    assert_eq!(run.kind, RunKind::TaskRun);
    assert_eq!(run.uid, TASKRUN.1);
    assert_eq!(run.start_ns, Some(ns("2026-11-25T10:04:38Z")));
    assert_eq!(run.completion_ns, Some(ns("2026-11-25T10:34:33Z")));

    let run = resolver
        .resolve(&name(PIPELINERUN.0, PIPELINERUN.1))
        .await
        .unwrap();
    assert_eq!(
        (run.kind, run.uid.as_str()),
        (RunKind::PipelineRun, PIPELINERUN.1)
    );

    // A running TaskRun is served (upstream refuses it): no completion yet.
    let run = resolver.resolve(&name(RUNNING.0, RUNNING.1)).await.unwrap();
    assert_eq!((run.kind, run.completion_ns), (RunKind::TaskRun, None));
    assert!(run.start_ns.is_some());

    // v1beta1 runs, and the children of the PipelineRun.
    let run = resolver
        .resolve(&name(
            "4b7e39c2-0d8b-498f-ab08-f3f3d9044491",
            "058bc59b-d747-4382-a1ad-aa982468b067",
        ))
        .await
        .unwrap();
    assert_eq!(run.kind, RunKind::TaskRun);
    let run = resolver
        .resolve(&name(
            "5f0c1f4e-8d2b-4c61-9a51-3f0e2c7d9b10",
            "5f0c1f4e-8d2b-4c61-9a51-3f0e2c7d9b10",
        ))
        .await
        .unwrap();
    assert_eq!(run.kind, RunKind::PipelineRun);
    let child = resolver
        .resolve(&name(PIPELINERUN.0, "199b33a4-ffa1-40f7-95c1-e8a4c01e4825"))
        .await
        .unwrap();
    assert_eq!(child.kind, RunKind::TaskRun);

    // A Log record leads to its TaskRun.
    let via_log = resolver
        .resolve(&name(TASKRUN.0, "882263e6-ae58-4bef-bfd8-fbbbf825701f"))
        .await
        .unwrap();
    assert_eq!(
        (via_log.kind, via_log.uid.as_str()),
        (RunKind::TaskRun, TASKRUN.1)
    );
}

#[tokio::test]
async fn unknown_other_and_broken_records_are_precise_errors() {
    let db = fresh_database().await;
    let resolver = resolver(&db.url);
    for missing in [
        name(TASKRUN.0, "00000000-0000-0000-0000-000000000000"),
        name("00000000-0000-0000-0000-000000000000", TASKRUN.1),
        LogName::parse(&format!(
            "no-such-ns/results/{}/logs/{}",
            TASKRUN.0, TASKRUN.1
        ))
        .unwrap(),
    ] {
        let err = resolver.resolve(&missing).await.unwrap_err();
        assert!(
            matches!(err, ResolveError::NotFound { .. }),
            "{missing}: {err:?}"
        );
    }
    let invalid = |err: ResolveError| match err {
        ResolveError::InvalidRecord { reason, .. } => reason,
        other => panic!("{other:?}"),
    };
    let event_list = name(TASKRUN.0, "e1e2e3e4-0000-4000-8000-000000000001");
    assert!(invalid(resolver.resolve(&event_list).await.unwrap_err())
        .contains("results.tekton.dev/v1.EventList"));
    let bad = "badbadba-0000-4000-8000-000000000000";
    for (record, expected) in [
        (
            "0b0b0b0b-0000-4000-8000-000000000001",
            "no status.startTime",
        ),
        ("0b0b0b0b-0000-4000-8000-000000000002", "\"yesterday\""),
        ("0b0b0b0b-0000-4000-8000-000000000003", "not a JSON object"),
    ] {
        let reason = invalid(resolver.resolve(&name(bad, record)).await.unwrap_err());
        assert!(reason.contains(expected), "{record}: {reason}");
    }
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_after_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let raw = RawConfig::from_env(vec![
        ("DB_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("DB_PORT".to_owned(), port.to_string()),
        ("DB_USER".to_owned(), "postgres".to_owned()),
    ]);
    let config = Config::from_raw(&raw).unwrap();
    let resolver = DbResolver::new(config.db.as_ref().unwrap()).unwrap();
    let err = resolver
        .resolve(&name(TASKRUN.0, TASKRUN.1))
        .await
        .unwrap_err();
    match err {
        ResolveError::Unavailable { message } => {
            assert!(message.contains("5 attempts"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

/// The real server, resolving runs through the database at `url` and reading
/// them from `loki`, with `extra` keys.
async fn server_on(url: &str, loki: &FakeLoki, extra: &[(&str, &str)]) -> TestServer {
    let mut env: HashMap<String, String> = db_env(url).into_iter().collect();
    env.insert("LOGS_TYPE".into(), "Loki".into());
    env.insert("LOGGING_PLUGIN_API_URL".into(), loki.url());
    env.insert("LOGGING_PLUGIN_PROXY_PATH".into(), String::new());
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    TestServer::start_with(env).await
}

/// A forwarded line of a run (ViaQ JSON).
fn viaq(message: &str, container: &str, taskrun: &str, pipelinerun: Option<&str>) -> String {
    let mut labels = serde_json::json!({"tekton_dev_taskRunUID": taskrun});
    if let Some(uid) = pipelinerun {
        labels["tekton_dev_pipelineRunUID"] = uid.into();
    }
    serde_json::json!({"message": message, "kubernetes": {"container_name": container, "labels": labels}}).to_string()
}

#[tokio::test]
async fn the_server_resolves_runs_and_queries_loki_in_their_time_range() {
    let db = fresh_database().await;
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let labels = [
        ("log_type", "application"),
        ("kubernetes_namespace_name", NS),
    ];
    let t = |s: &str| ns(s);
    let lines = [
        (
            t("2026-11-25T10:05:00Z"),
            viaq("build started", "step-build", TASKRUN.1, None),
        ),
        (
            t("2026-11-25T10:06:00Z"),
            viaq(
                "clone a",
                "step-clone",
                "199b33a4-ffa1-40f7-95c1-e8a4c01e4825",
                Some(PIPELINERUN.1),
            ),
        ),
        (
            t("2026-11-25T10:11:00Z"),
            viaq(
                "test b",
                "step-test",
                "2b935dc2-761d-48d7-834e-5e695367214c",
                Some(PIPELINERUN.1),
            ),
        ),
        // Outside the TaskRun's range (completion + 10 min): not its log.
        (
            t("2026-11-25T11:30:00Z"),
            viaq("much later", "step-build", TASKRUN.1, None),
        ),
    ];
    let entries: Vec<(i64, &str)> = lines.iter().map(|(ts, l)| (*ts, l.as_str())).collect();
    loki.push_lines(&labels, &entries);

    let server = server_on(&db.url, &loki, &[]).await;

    let taskrun = name(TASKRUN.0, TASKRUN.1).to_string();
    let body = http()
        .get(server.rest_url("v1alpha3", &taskrun))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "container-step-build: message=build started\n");
    let request = loki.requests_to("/loki/api/v1/query_range").pop().unwrap();
    assert_eq!(
        request.param("start"),
        Some(t("2026-11-25T10:04:38Z").to_string().as_str())
    );
    assert_eq!(
        request.param("end"),
        Some(t("2026-11-25T10:44:33Z").to_string().as_str())
    );

    // The PipelineRun's log is its children's lines, merged in time order.
    let pipelinerun = name(PIPELINERUN.0, PIPELINERUN.1).to_string();
    let body = http()
        .get(server.rest_url("v1alpha2", &pipelinerun))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        body,
        "container-step-clone: message=clone a\ncontainer-step-test: message=test b\n"
    );
    let query = loki.requests_to("/loki/api/v1/query_range").pop().unwrap();
    assert!(query
        .param("query")
        .unwrap()
        .contains("tekton_dev_pipelineRunUID"));

    // Unknown record: 404; not a run: 400; both before any byte.
    let unknown = name(TASKRUN.0, "00000000-0000-0000-0000-000000000000").to_string();
    assert_eq!(
        http()
            .get(server.rest_url("v1alpha3", &unknown))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let status = server.get_chunks(&unknown).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    let event_list = name(TASKRUN.0, "e1e2e3e4-0000-4000-8000-000000000001").to_string();
    let response = http()
        .get(server.rest_url("v1alpha3", &event_list))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("EventList"));
}

#[tokio::test]
async fn uploads_into_loki_land_in_the_runs_range_and_read_back_once() {
    let db = fresh_database().await;
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let server = server_on(&db.url, &loki, &[("LOGGING_PLUGIN_CONTAINER_KEY", "")]).await;

    // The watcher uploads to the Log record's name; the lines must carry
    // the TaskRun's UID and fall in its time range.
    let log_record = name(TASKRUN.0, "882263e6-ae58-4bef-bfd8-fbbbf825701f").to_string();
    let text = "[prepare] fetching\n[build] compiling\n[build] done\n";
    for _ in 0..2 {
        // Uploading the same log twice stores its lines once.
        let summary = server
            .upload(&log_record, text.as_bytes(), 16)
            .await
            .unwrap();
        assert_eq!(summary.bytes_received, text.len() as i64);
    }
    let push = loki.requests_to("/loki/api/v1/push");
    assert!(!push.is_empty());
    let taskrun = name(TASKRUN.0, TASKRUN.1).to_string();
    for log in [&taskrun, &log_record] {
        let body = http()
            .get(server.rest_url("v1alpha3", log))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, text, "{log}");
    }
    // An upload for a record that does not exist is refused.
    let unknown = name(TASKRUN.0, "00000000-0000-0000-0000-000000000000").to_string();
    let status = server.upload(&unknown, b"x\n", 10).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
}
