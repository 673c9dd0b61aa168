//! Run resolution from a real PostgreSQL holding the upstream schema and
//! Tekton records shaped as the watcher stores them (`fixtures/results.sql`),
//! directly and through the server with the fake Loki.

use std::collections::HashMap;
use std::time::Duration;

use tekton_results_logs::config::{Config, RawConfig};
use tekton_results_logs::run::{DbResolver, LogName, ResolveError, RunKind, RunResolver};
use tekton_results_logs::timestamp::{format_rfc3339_ns, now_ns, parse_rfc3339_ns};

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
        // clone-build runs on after test started: it still comes first.
        (
            t("2026-11-25T10:12:00Z"),
            viaq(
                "clone done",
                "step-clone",
                "199b33a4-ffa1-40f7-95c1-e8a4c01e4825",
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

    // The PipelineRun's log is its TaskRuns' logs in the order they started,
    // each line marked with its task, over REST (both versions) and gRPC.
    let pipelinerun = name(PIPELINERUN.0, PIPELINERUN.1).to_string();
    let merged = "[clone-build] container-step-clone: message=clone a\n\
                  [clone-build] container-step-clone: message=clone done\n\
                  [test] container-step-test: message=test b\n";
    for version in ["v1alpha2", "v1alpha3"] {
        let body = http()
            .get(server.rest_url(version, &pipelinerun))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, merged, "{version}");
    }
    let chunks = server.get_chunks(&pipelinerun).await.unwrap();
    assert_eq!(chunks.concat(), merged.as_bytes());
    // Each TaskRun is read by its own UID, in its own time range.
    let queries: Vec<_> = loki
        .requests_to("/loki/api/v1/query_range")
        .into_iter()
        .rev()
        .take(2)
        .collect();
    assert!(
        queries[1]
            .param("query")
            .unwrap()
            .ends_with("|= \"199b33a4-ffa1-40f7-95c1-e8a4c01e4825\""),
        "{:?}",
        queries[1].param("query")
    );
    assert_eq!(
        queries[0].param("start"),
        Some(t("2026-11-25T10:10:38Z").to_string().as_str())
    );

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
    // The fixture's runs are from 2026-11-25: a Loki that keeps old samples.
    let loki = FakeLoki::start(FakeLokiConfig {
        reject_old_samples_max_age: Duration::from_secs(100 * 365 * 24 * 3600),
        ..FakeLokiConfig::default()
    });
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

    // A Loki that refuses lines as old as the run's: the upload fails with
    // Loki's reason; its lines are not stamped outside the run's range,
    // where a read of the run would never find them.
    loki.set_reject_old_samples_max_age(Duration::from_secs(3600));
    let status = server
        .upload(&log_record, b"[build] again\n", 16)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("too old"), "{status:?}");
}

const CHILDREN: [(&str, &str); 2] = [
    ("199b33a4-ffa1-40f7-95c1-e8a4c01e4825", "clone-build"),
    ("2b935dc2-761d-48d7-834e-5e695367214c", "test"),
];

#[tokio::test]
async fn pipeline_runs_list_their_task_runs_in_start_order() {
    let db = fresh_database().await;
    let resolver = resolver(&db.url);
    let pipeline = resolver
        .resolve(&name(PIPELINERUN.0, PIPELINERUN.1))
        .await
        .unwrap();
    let children = resolver.children(&pipeline).await.unwrap();
    let found: Vec<_> = children
        .iter()
        .map(|c| (c.uid.as_str(), c.task.as_deref().unwrap(), c.kind))
        .collect();
    assert_eq!(
        found,
        [
            (CHILDREN[0].0, CHILDREN[0].1, RunKind::TaskRun),
            (CHILDREN[1].0, CHILDREN[1].1, RunKind::TaskRun)
        ]
    );
    assert_eq!(children[1].start_ns, Some(ns("2026-11-25T10:10:38Z")));
    assert_eq!(
        children[1].log.to_string(),
        name(PIPELINERUN.0, CHILDREN[1].0).to_string()
    );

    // v1beta1: the child is found by its owner reference alone (it has no
    // tekton.dev/pipelineRunUID label).
    let v1beta1 = "5f0c1f4e-8d2b-4c61-9a51-3f0e2c7d9b10";
    let pipeline = resolver.resolve(&name(v1beta1, v1beta1)).await.unwrap();
    let children = resolver.children(&pipeline).await.unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].task.as_deref(), Some("hello"));

    // A TaskRun has none; one that has not started is left out; started
    // TaskRuns come in start order, whatever their names.
    let taskrun = resolver.resolve(&name(TASKRUN.0, TASKRUN.1)).await.unwrap();
    assert!(resolver.children(&taskrun).await.unwrap().is_empty());
    unset(&db, CHILDREN[1].0, &["startTime"]).await;
    set_status(&db, CHILDREN[0].0, "startTime", "2026-11-25T10:05:00Z").await;
    // (A new resolver: a completed PipelineRun's TaskRuns are cached.)
    let resolver = self::resolver(&db.url);
    let pipeline = resolver
        .resolve(&name(PIPELINERUN.0, PIPELINERUN.1))
        .await
        .unwrap();
    let children = resolver.children(&pipeline).await.unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].start_ns, Some(ns("2026-11-25T10:05:00Z")));

    // A child whose record is broken is an error naming it, not a gap.
    set_status(&db, CHILDREN[1].0, "startTime", "soon").await;
    let resolver = self::resolver(&db.url);
    match resolver.children(&pipeline).await.unwrap_err() {
        ResolveError::InvalidRecord { reason, .. } => {
            assert!(reason.contains(CHILDREN[1].0), "{reason}");
            assert!(reason.contains("\"soon\""), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

/// The real server over the database at `url` and the embedded local store.
async fn local_server_on(url: &str) -> TestServer {
    TestServer::start_with(db_env(url)).await
}

async fn get_text(server: &TestServer, version: &str, log: &str) -> (u16, String) {
    let response = http()
        .get(server.rest_url(version, log))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn the_local_store_keeps_a_runs_log_under_its_own_record() {
    let db = fresh_database().await;
    let server = local_server_on(&db.url).await;

    // Uploaded under the Log record's name (as the watcher does), read under
    // either name; deleted under one, gone under both.
    let log_record = name(TASKRUN.0, "882263e6-ae58-4bef-bfd8-fbbbf825701f").to_string();
    let taskrun = name(TASKRUN.0, TASKRUN.1).to_string();
    let text = "[prepare] fetching\n[build] done\n";
    server
        .upload(&log_record, text.as_bytes(), 7)
        .await
        .unwrap();
    for log in [&taskrun, &log_record] {
        assert_eq!(get_text(&server, "v1alpha3", log).await, (200, text.into()));
    }
    let deleted = http()
        .delete(server.rest_url("v1alpha2", &taskrun))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    for log in [&taskrun, &log_record] {
        assert_eq!(get_text(&server, "v1alpha3", log).await.0, 404, "{log}");
    }
}

#[tokio::test]
async fn a_pipeline_runs_log_is_its_task_runs_logs_from_the_local_store() {
    let db = fresh_database().await;
    let server = local_server_on(&db.url).await;
    let pipeline = name(PIPELINERUN.0, PIPELINERUN.1).to_string();

    // No TaskRun has a log yet, nor has the PipelineRun: 404.
    assert_eq!(get_text(&server, "v1alpha3", &pipeline).await.0, 404);

    // The second task's log is uploaded first; the order is the tasks'.
    let child = |i: usize| name(PIPELINERUN.0, CHILDREN[i].0).to_string();
    server
        .upload(&child(1), b"[run-tests] ok 1\n[run-tests] ok 2\n", 5)
        .await
        .unwrap();
    assert_eq!(
        get_text(&server, "v1alpha3", &pipeline).await,
        (
            200,
            "[test] [run-tests] ok 1\n[test] [run-tests] ok 2\n".into()
        )
    );
    // A last line without a line end stays so; the next task starts a line.
    server
        .upload(&child(0), b"[clone] cloned\n[build] built", 4)
        .await
        .unwrap();
    let merged = "[clone-build] [clone] cloned\n[clone-build] [build] built\n\
                  [test] [run-tests] ok 1\n[test] [run-tests] ok 2\n";
    for version in ["v1alpha2", "v1alpha3"] {
        assert_eq!(
            get_text(&server, version, &pipeline).await,
            (200, merged.into())
        );
    }
    assert_eq!(
        server.get_chunks(&pipeline).await.unwrap().concat(),
        merged.as_bytes()
    );
    // Each TaskRun's own log is unmarked.
    assert_eq!(
        get_text(&server, "v1alpha3", &child(0)).await.1,
        "[clone] cloned\n[build] built"
    );

    // Without TaskRun logs, the PipelineRun's own upload is served.
    let v1beta1 = "5f0c1f4e-8d2b-4c61-9a51-3f0e2c7d9b10";
    let own = name(v1beta1, v1beta1).to_string();
    server
        .upload(&own, b"[hello : echo] hello\n", 8)
        .await
        .unwrap();
    assert_eq!(
        get_text(&server, "v1alpha3", &own).await,
        (200, "[hello : echo] hello\n".into())
    );
}

/// Reads the lines of a streamed response as they arrive.
struct LineReader {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    pending: Vec<u8>,
    ended: bool,
}

impl LineReader {
    fn new(response: reqwest::Response) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            pending: Vec::new(),
            ended: false,
        }
    }

    /// The next whole line; `None` when the body ended cleanly. Fails after
    /// 60 s without one.
    async fn next(&mut self) -> Option<String> {
        use futures::StreamExt;
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                if let Some(at) = self.pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = self.pending.drain(..=at).collect();
                    return Some(String::from_utf8(line[..at].to_vec()).unwrap());
                }
                if self.ended {
                    assert!(self.pending.is_empty(), "a cut line: {:?}", self.pending);
                    return None;
                }
                match self.body.next().await {
                    Some(chunk) => self.pending.extend_from_slice(&chunk.unwrap()),
                    None => self.ended = true,
                }
            }
        })
        .await
        .expect("no line and no end within 60 s")
    }
}

async fn follow(server: &TestServer, log: &str) -> LineReader {
    let request = http()
        .get(format!("{}?follow=true", server.rest_url("v1alpha3", log)))
        .send();
    let response = tokio::time::timeout(Duration::from_secs(60), request)
        .await
        .expect("no response within 60 s")
        .unwrap();
    assert_eq!(response.status(), 200);
    LineReader::new(response)
}

/// Removes `status.<field>` for each of `fields` from record `record`: a run
/// that has not started, or not completed.
async fn unset(db: &crate::support_db::TestDb, record: &str, fields: &[&str]) {
    for field in fields {
        db.client
            .execute(
                "UPDATE records SET data = data #- ARRAY['status', $2::text] WHERE name = $1",
                &[&record, field],
            )
            .await
            .unwrap();
    }
}

/// Sets `status.<field>` of record `record` to the JSON string `value`.
async fn set_status(db: &crate::support_db::TestDb, record: &str, field: &str, value: &str) {
    db.client
        .execute(
            "UPDATE records SET data = jsonb_set(data, ARRAY['status', $2::text], to_jsonb($3::text)) \
             WHERE name = $1",
            &[&record, &field, &value],
        )
        .await
        .unwrap();
}

/// Sets `status.<field>` of record `record` to `at` (ns since the epoch),
/// in whole seconds as Kubernetes writes times; returns the time written.
async fn stamp(db: &crate::support_db::TestDb, record: &str, field: &str, at: i64) -> i64 {
    let seconds = at.div_euclid(1_000_000_000);
    set_status(
        db,
        record,
        field,
        &format_rfc3339_ns(seconds * 1_000_000_000),
    )
    .await;
    seconds * 1_000_000_000
}

/// Sets `status.<field>` of record `record` to now.
async fn stamp_now(db: &crate::support_db::TestDb, record: &str, field: &str) -> i64 {
    stamp(db, record, field, now_ns()).await
}

#[tokio::test]
async fn a_running_task_run_is_followed_until_its_record_shows_completion() {
    let db = fresh_database().await;
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let labels = [
        ("log_type", "application"),
        ("kubernetes_namespace_name", NS),
    ];
    let line = |text: &str| viaq(text, "step-run", RUNNING.1, None);
    loki.push_lines(&labels, &[(now_ns() - 5_000_000_000, line("one").as_str())]);
    let server = server_on(
        &db.url,
        &loki,
        &[("LOGGING_PLUGIN_FORWARDER_DELAY_DURATION", "0")],
    )
    .await;
    let running = name(RUNNING.0, RUNNING.1).to_string();

    // Without follow, the lines so far, and the response ends.
    assert_eq!(
        get_text(&server, "v1alpha3", &running).await,
        (200, "container-step-run: message=one\n".into())
    );

    let mut lines = follow(&server, &running).await;
    assert_eq!(
        lines.next().await.as_deref(),
        Some("container-step-run: message=one")
    );
    loki.push_lines(&labels, &[(now_ns(), line("two").as_str())]);
    assert_eq!(
        lines.next().await.as_deref(),
        Some("container-step-run: message=two")
    );
    // The run completes (a second from now, in whole seconds): the follower
    // gets what came before, then the end.
    let three = now_ns();
    loki.push_lines(&labels, &[(three, line("three").as_str())]);
    let done = stamp(&db, RUNNING.1, "completionTime", three + 1_000_000_000).await;
    assert!(done > three);
    assert_eq!(
        lines.next().await.as_deref(),
        Some("container-step-run: message=three")
    );
    assert_eq!(lines.next().await, None);
}

#[tokio::test]
async fn a_running_pipeline_run_is_followed_task_by_task_until_it_completes() {
    let db = fresh_database().await;
    // The PipelineRun runs; its second task has not started.
    unset(&db, PIPELINERUN.1, &["completionTime"]).await;
    unset(&db, CHILDREN[1].0, &["startTime", "completionTime"]).await;
    let server = local_server_on(&db.url).await;
    let child = |i: usize| name(PIPELINERUN.0, CHILDREN[i].0).to_string();
    server.upload(&child(0), b"cloned\n", 4).await.unwrap();

    let mut lines = follow(&server, &name(PIPELINERUN.0, PIPELINERUN.1).to_string()).await;
    assert_eq!(lines.next().await.as_deref(), Some("[clone-build] cloned"));

    // The second task starts; its log arrives when the watcher uploads it.
    stamp_now(&db, CHILDREN[1].0, "startTime").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.upload(&child(1), b"ok 1\nok 2\n", 3).await.unwrap();
    assert_eq!(lines.next().await.as_deref(), Some("[test] ok 1"));
    assert_eq!(lines.next().await.as_deref(), Some("[test] ok 2"));

    // Both complete: the response ends.
    stamp_now(&db, CHILDREN[1].0, "completionTime").await;
    stamp_now(&db, PIPELINERUN.1, "completionTime").await;
    assert_eq!(lines.next().await, None);
}

#[tokio::test]
async fn a_bad_follow_parameter_is_invalid() {
    let db = fresh_database().await;
    let server = local_server_on(&db.url).await;
    let url = server.rest_url("v1alpha3", &name(TASKRUN.0, TASKRUN.1).to_string());
    let response = http()
        .get(format!("{url}?follow=maybe"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("follow"));
}

#[tokio::test]
async fn a_running_pipeline_run_is_followed_on_loki_without_waiting_out_the_forwarder_delay() {
    let db = fresh_database().await;
    // The PipelineRun and its first task run; the second has not started.
    unset(&db, PIPELINERUN.1, &["completionTime"]).await;
    unset(&db, CHILDREN[0].0, &["completionTime"]).await;
    unset(&db, CHILDREN[1].0, &["startTime", "completionTime"]).await;
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let labels = [
        ("log_type", "application"),
        ("kubernetes_namespace_name", NS),
    ];
    let line = |text: &str, child: usize, step: &str| {
        viaq(text, step, CHILDREN[child].0, Some(PIPELINERUN.1))
    };
    loki.push_lines(
        &labels,
        &[(
            now_ns() - 3_000_000_000,
            line("cloning", 0, "step-clone").as_str(),
        )],
    );
    // The default forwarder delay, 10 minutes: a task's follow must not wait
    // it out before the next task's lines.
    let server = server_on(&db.url, &loki, &[]).await;
    let mut lines = follow(&server, &name(PIPELINERUN.0, PIPELINERUN.1).to_string()).await;
    assert_eq!(
        lines.next().await.as_deref(),
        Some("[clone-build] container-step-clone: message=cloning")
    );

    // The second task starts and prints while the first still runs; then
    // the first completes.
    stamp_now(&db, CHILDREN[1].0, "startTime").await;
    let now = now_ns();
    loki.push_lines(&labels, &[(now, line("testing", 1, "step-test").as_str())]);
    loki.push_lines(&labels, &[(now, line("cloned", 0, "step-clone").as_str())]);
    stamp(&db, CHILDREN[0].0, "completionTime", now + 1_000_000_000).await;
    assert_eq!(
        lines.next().await.as_deref(),
        Some("[clone-build] container-step-clone: message=cloned")
    );
    assert_eq!(
        lines.next().await.as_deref(),
        Some("[test] container-step-test: message=testing")
    );

    // Both complete: the end, without waiting for the forwarder delay of the
    // PipelineRun's own range either.
    let now = now_ns();
    loki.push_lines(&labels, &[(now, line("passed", 1, "step-test").as_str())]);
    stamp(&db, CHILDREN[1].0, "completionTime", now + 1_000_000_000).await;
    stamp(&db, PIPELINERUN.1, "completionTime", now + 1_000_000_000).await;
    assert_eq!(
        lines.next().await.as_deref(),
        Some("[test] container-step-test: message=passed")
    );
    assert_eq!(lines.next().await, None);
}
