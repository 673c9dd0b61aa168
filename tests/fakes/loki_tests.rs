//! Replays of real Loki captures against the fake, a paging property test and tail tests.

use super::loki::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Base time of the captures: 2026-11-25T10:10:00Z.
const B: i64 = 1_795_601_400_000_000_000;
const S: i64 = 1_000_000_000;
const MS: i64 = 1_000_000;
/// The capture machine's clock when the seed queries ran (10:20:30Z).
const NOW: i64 = B + 630 * S;

const BUILD_POD: &str = "build-app-run-x7k2p-build-pod";
const TEST_POD: &str = "build-app-run-x7k2p-test-pod";
const UID_BUILD: &str = "3f7a9c1e-5b2d-4e8f-9a6b-1c2d3e4f5a6b";
const UID_TEST: &str = "8d2e4b6a-0c1f-4a3b-9e8d-7f6a5b4c3d2e";
const NS_QUERY: &str = r#"{kubernetes_namespace_name="tekton-ci"}"#;
const BUILD_QUERY: &str =
    r#"{kubernetes_namespace_name="tekton-ci",kubernetes_container_name="step-build"}"#;

/// Capture 01: (container, offset from B in ns, message). Pushed in this order, one stream per
/// container.
const SEED: &[(&str, i64, &str)] = &[
    (
        "step-clone",
        1000 * MS,
        "Cloning into '/workspace/source'...",
    ),
    (
        "step-clone",
        1250 * MS,
        "remote: Enumerating objects: 42, done.",
    ),
    (
        "step-clone",
        1500 * MS,
        "HEAD is now at 1a2b3c4 fix: <html> & \"quotes\" \\ backslash",
    ),
    ("step-build", 2000 * MS, "+ make build"),
    ("step-build", 3000 * MS, "compiling module a"),
    ("step-build", 3000 * MS, "compiling module b"),
    ("step-build", 3000 * MS, "compiling module c"),
    ("step-build", 3000 * MS, "compiling module d"),
    (
        "step-build",
        4000 * MS,
        "multi-line message\n  at frame 1\n  at frame 2",
    ),
    ("step-build", 5000 * MS, "build finished"),
    ("step-build", 5000 * MS + 1, "one nanosecond later"),
    ("step-test", 2500 * MS, "=== RUN   TestAll"),
    ("step-test", 3000 * MS, "--- PASS: TestAll (0.00s)"),
    ("step-test", 6000 * MS, "ok  \texample.com/app\t0.012s"),
];

fn pod_of(container: &str) -> &'static str {
    match container {
        "step-test" => TEST_POD,
        "step-lint" => "build-app-run-x7k2p-lint-pod",
        "step-tail" => "build-app-run-x7k2p-tail-pod",
        "step-proto" => "build-app-run-x7k2p-pb-pod",
        "step-slow" => "build-app-run-x7k2p-slow-pod",
        _ => BUILD_POD,
    }
}

fn uid_of(container: &str) -> (&'static str, &'static str) {
    match container {
        "step-test" => (UID_TEST, "build-app-run-x7k2p-test"),
        "step-lint" => (
            "c4d5e6f7-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
            "build-app-run-x7k2p-lint",
        ),
        "step-tail" => (
            "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b",
            "build-app-run-x7k2p-tail",
        ),
        _ => (UID_BUILD, "build-app-run-x7k2p-build"),
    }
}

/// The Vector/OpenShift-style JSON record the captures pushed as a line.
fn tekton_line(container: &str, msg: &str) -> String {
    let (uid, tr) = uid_of(container);
    format!(
        r#"{{"message":{},"kubernetes":{{"container_name":"{container}","namespace_name":"tekton-ci","pod_name":"{}","labels":{{"tekton_dev_taskRunUID":"{uid}","tekton_dev_taskRun":"{tr}"}}}},"log_type":"application"}}"#,
        serde_json::to_string(msg).unwrap(),
        pod_of(container)
    )
}

fn stream_labels(container: &str) -> Value {
    json!({"log_type":"application","kubernetes_namespace_name":"tekton-ci","kubernetes_pod_name":pod_of(container),"kubernetes_container_name":container})
}

/// A JSON push body: one stream per (container, entries).
fn push_body(streams: &[(&str, Vec<(i64, String)>)]) -> Vec<u8> {
    let streams: Vec<Value> = streams
        .iter()
        .map(|(c, vals)| {
            json!({"stream": stream_labels(c), "values": vals.iter().map(|(ts, l)| json!([ts.to_string(), l])).collect::<Vec<_>>()})
        })
        .collect();
    serde_json::to_vec(&json!({ "streams": streams })).unwrap()
}

fn seed_stream(container: &str) -> Vec<(i64, String)> {
    SEED.iter()
        .filter(|(c, _, _)| *c == container)
        .map(|(c, off, m)| (B + off, tekton_line(c, m)))
        .collect()
}

struct Resp {
    status: u16,
    content_type: String,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn result(&self) -> Value {
        self.json()["data"]["result"].clone()
    }
}

async fn finish(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    Resp {
        status,
        content_type,
        headers,
        body: r.text().await.unwrap(),
    }
}

async fn get(
    loki: &FakeLoki,
    path: &str,
    params: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Resp {
    let mut rb = reqwest::Client::new()
        .get(format!("{}{path}", loki.url()))
        .query(params);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    finish(rb.send().await.unwrap()).await
}

async fn query(loki: &FakeLoki, params: &[(&str, &str)]) -> Resp {
    get(loki, "/loki/api/v1/query_range", params, &[]).await
}

async fn push_raw(loki: &FakeLoki, headers: &[(&str, &str)], body: Vec<u8>) -> Resp {
    let mut rb = reqwest::Client::new()
        .post(format!("{}/loki/api/v1/push", loki.url()))
        .body(body);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    finish(rb.send().await.unwrap()).await
}

async fn push_json(loki: &FakeLoki, body: Vec<u8>) -> Resp {
    push_raw(loki, &[("Content-Type", "application/json")], body).await
}

/// A fake with the capture 01 seed pushed over HTTP (204 checked), clock at the capture time.
async fn seeded() -> FakeLoki {
    let loki = FakeLoki::start(FakeLokiConfig {
        now_ns: Some(NOW),
        ..Default::default()
    });
    let body = push_body(&[
        ("step-clone", seed_stream("step-clone")),
        ("step-build", seed_stream("step-build")),
        ("step-test", seed_stream("step-test")),
    ]);
    let r = push_json(&loki, body).await;
    assert_eq!(
        (r.status, r.body.as_str(), r.content_type.as_str()),
        (204, "", "")
    );
    loki
}

/// Expected `data.result` entry for a physical stream with the labels Loki adds.
fn exp_stream(container: &str, values: &[(i64, &str)]) -> Value {
    json!({
        "stream": {"detected_level":"unknown","kubernetes_container_name":container,"kubernetes_namespace_name":"tekton-ci",
                   "kubernetes_pod_name":pod_of(container),"log_type":"application","service_name":"unknown_service"},
        "values": values.iter().map(|(off, m)| json!([(B + off).to_string(), tekton_line(container, m)])).collect::<Vec<_>>()
    })
}

fn assert_json_ok(r: &Resp) {
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.content_type, "application/json; charset=UTF-8");
    assert!(r.body.ends_with("}}\n"));
    let v = r.json();
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "streams");
    let stats = v["data"]["stats"].as_object().expect("stats");
    for k in ["summary", "querier", "ingester", "cache", "index"] {
        assert!(stats.contains_key(k), "stats.{k}");
    }
}

fn assert_query_error(r: &Resp, status: u16, text: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.content_type, "text/plain; charset=utf-8");
    assert_eq!(r.headers.get("x-content-type-options").unwrap(), "nosniff");
    assert_eq!(r.body, text);
}

const BUILD_ALL_FWD: &[(i64, &str)] = &[
    (2000 * MS, "+ make build"),
    (3000 * MS, "compiling module a"),
    (3000 * MS, "compiling module b"),
    (3000 * MS, "compiling module c"),
    (3000 * MS, "compiling module d"),
    (4000 * MS, "multi-line message\n  at frame 1\n  at frame 2"),
    (5000 * MS, "build finished"),
    (5000 * MS + 1, "one nanosecond later"),
];
const CLONE_ALL_FWD: &[(i64, &str)] = &[
    (1000 * MS, "Cloning into '/workspace/source'..."),
    (1250 * MS, "remote: Enumerating objects: 42, done."),
    (
        1500 * MS,
        "HEAD is now at 1a2b3c4 fix: <html> & \"quotes\" \\ backslash",
    ),
];
const TEST_ALL_FWD: &[(i64, &str)] = &[
    (2500 * MS, "=== RUN   TestAll"),
    (3000 * MS, "--- PASS: TestAll (0.00s)"),
    (6000 * MS, "ok  \texample.com/app\t0.012s"),
];

fn rev(v: &[(i64, &'static str)]) -> Vec<(i64, &'static str)> {
    v.iter().rev().copied().collect()
}

const B_S: &str = "1795601400000000000";
const B60_S: &str = "1795601460000000000";

#[tokio::test]
async fn replay_02_defaults_backward_limit_100() {
    let loki = seeded().await;
    let r = query(
        &loki,
        &[("query", NS_QUERY), ("start", B_S), ("end", B60_S)],
    )
    .await;
    assert_json_ok(&r);
    assert_eq!(
        r.result(),
        json!([
            exp_stream("step-build", &rev(BUILD_ALL_FWD)),
            exp_stream("step-clone", &rev(CLONE_ALL_FWD)),
            exp_stream("step-test", &rev(TEST_ALL_FWD)),
        ])
    );
    // Go/jsoniter escaping of the line, and label keys in sorted order, byte for byte.
    assert!(r
        .body
        .contains(r#"fix: \u003chtml\u003e \u0026 \\\"quotes\\\" \\\\ backslash\","#));
    assert!(r.body.starts_with(r#"{"status":"success","data":{"resultType":"streams","result":[{"stream":{"detected_level":"unknown","kubernetes_container_name":"step-build","kubernetes_namespace_name":"tekton-ci","kubernetes_pod_name":"build-app-run-x7k2p-build-pod","log_type":"application","service_name":"unknown_service"},"values":[["1795601405000000001","{\"message\":\"one nanosecond later\","#));
    assert_eq!(
        r.json()["data"]["stats"]["summary"]["totalEntriesReturned"],
        14
    );
}

#[tokio::test]
async fn replay_03_forward() {
    let loki = seeded().await;
    let r = query(
        &loki,
        &[
            ("query", NS_QUERY),
            ("start", B_S),
            ("end", B60_S),
            ("direction", "forward"),
        ],
    )
    .await;
    assert_json_ok(&r);
    assert_eq!(
        r.result(),
        json!([
            exp_stream("step-build", BUILD_ALL_FWD),
            exp_stream("step-clone", CLONE_ALL_FWD),
            exp_stream("step-test", TEST_ALL_FWD)
        ])
    );
}

#[tokio::test]
async fn replay_04_limit_and_direction_validation() {
    let loki = seeded().await;
    let base = [("query", NS_QUERY), ("start", B_S), ("end", B60_S)];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        v
    };
    let r = query(&loki, &with(&[("direction", "forward"), ("limit", "5000")])).await;
    assert_json_ok(&r);
    assert_eq!(r.result().as_array().unwrap().len(), 3);
    let r = query(&loki, &with(&[("direction", "forward"), ("limit", "5001")])).await;
    assert_query_error(
        &r,
        400,
        "max entries limit per query exceeded, limit > max_entries_limit_per_query (5001 > 5000)",
    );
    assert_query_error(
        &query(&loki, &with(&[("limit", "0")])).await,
        400,
        "limit must be a positive value",
    );
    assert_query_error(
        &query(&loki, &with(&[("limit", "abc")])).await,
        400,
        r#"strconv.Atoi: parsing "abc": invalid syntax"#,
    );
    assert_query_error(
        &query(&loki, &with(&[("direction", "sideways")])).await,
        400,
        "invalid direction 'sideways'",
    );
    let r = query(&loki, &with(&[("direction", "FORWARD"), ("limit", "2")])).await;
    assert_json_ok(&r);
    assert_eq!(
        r.result(),
        json!([exp_stream("step-clone", &CLONE_ALL_FWD[..2])])
    );
}

#[tokio::test]
async fn replay_05_timestamp_forms() {
    let loki = seeded().await;
    let q = |start: &'static str, end: &'static str| {
        vec![
            ("query", BUILD_QUERY),
            ("start", start),
            ("end", end),
            ("direction", "forward"),
        ]
    };
    let all = json!([exp_stream("step-build", BUILD_ALL_FWD)]);
    for (start, end) in [
        (B_S, B60_S),
        ("2026-11-25T10:10:00Z", "2026-11-25T10:11:00Z"),
        ("1795601400", "1795601460"),
    ] {
        let r = query(&loki, &q(start, end)).await;
        assert_json_ok(&r);
        assert_eq!(r.result(), all, "{start}..{end}");
    }
    let r = query(
        &loki,
        &q(
            "2026-11-25T10:10:00.000000000Z",
            "2026-11-25T10:10:03.000000001+00:00",
        ),
    )
    .await;
    assert_eq!(
        r.result(),
        json!([exp_stream("step-build", &BUILD_ALL_FWD[..5])])
    );
    // 1795601403.0000004 is rounded to ms: exactly B+3s, excluded.
    let r = query(&loki, &q("1795601400.0", "1795601403.0000004")).await;
    assert_eq!(
        r.result(),
        json!([exp_stream("step-build", &BUILD_ALL_FWD[..1])])
    );
    let r = query(&loki, &q("1795601403000000000", "1795601403000000000")).await;
    assert_json_ok(&r);
    assert_eq!(r.result(), json!([]));
    let r = query(
        &loki,
        &[
            ("query", BUILD_QUERY),
            ("start", "1795601404000000000"),
            ("end", "1795601403000000000"),
        ],
    )
    .await;
    assert_query_error(
        &r,
        400,
        "end timestamp must not be before or equal to start time",
    );
    let r = query(
        &loki,
        &[
            ("query", BUILD_QUERY),
            ("start", "1795601400000"),
            ("end", "1795601460000"),
        ],
    )
    .await;
    assert_json_ok(&r);
    assert_eq!(r.result(), json!([]));
    let r = query(
        &loki,
        &[
            ("query", BUILD_QUERY),
            ("start", "yesterday"),
            ("end", B60_S),
        ],
    )
    .await;
    assert_query_error(
        &r,
        400,
        r#"could not parse 'start' parameter: strconv.ParseInt: parsing "yesterday": invalid syntax"#,
    );
}

#[tokio::test]
async fn replay_06_forward_paging_shared_timestamp() {
    let loki = seeded().await;
    let page = |start: &'static str| {
        vec![
            ("query", NS_QUERY),
            ("start", start),
            ("end", B60_S),
            ("direction", "forward"),
            ("limit", "3"),
        ]
    };
    let r = query(&loki, &page(B_S)).await;
    assert_eq!(r.result(), json!([exp_stream("step-clone", CLONE_ALL_FWD)]));
    let r = query(&loki, &page("1795601401500000000")).await;
    assert_eq!(
        r.result(),
        json!([
            exp_stream("step-build", &BUILD_ALL_FWD[..1]),
            exp_stream("step-clone", &CLONE_ALL_FWD[2..]),
            exp_stream("step-test", &TEST_ALL_FWD[..1])
        ])
    );
    let r = query(&loki, &page("1795601402500000000")).await;
    assert_eq!(
        r.result(),
        json!([
            exp_stream("step-build", &BUILD_ALL_FWD[1..3]),
            exp_stream("step-test", &TEST_ALL_FWD[..1])
        ])
    );
    // A page made of one timestamp: the same 3 entries again and again.
    for _ in 0..2 {
        let r = query(&loki, &page("1795601403000000000")).await;
        assert_eq!(
            r.result(),
            json!([exp_stream("step-build", &BUILD_ALL_FWD[1..4])])
        );
    }
}

#[tokio::test]
async fn replay_07_end_exclusive_start_inclusive_and_push_order() {
    let loki = seeded().await;
    let r = query(
        &loki,
        &[
            ("query", BUILD_QUERY),
            ("start", B_S),
            ("end", "1795601403000000000"),
            ("limit", "100"),
        ],
    )
    .await;
    assert_eq!(
        r.result(),
        json!([exp_stream("step-build", &BUILD_ALL_FWD[..1])])
    );
    let r = query(
        &loki,
        &[
            ("query", BUILD_QUERY),
            ("start", B_S),
            ("end", "1795601403000000001"),
            ("limit", "100"),
        ],
    )
    .await;
    assert_eq!(
        r.result(),
        json!([exp_stream("step-build", &rev(&BUILD_ALL_FWD[..5]))])
    );
    let r = query(
        &loki,
        &[
            ("query", BUILD_QUERY),
            ("start", "1795601403000000000"),
            ("end", "1795601404000000000"),
            ("direction", "forward"),
        ],
    )
    .await;
    assert_eq!(
        r.result(),
        json!([exp_stream("step-build", &BUILD_ALL_FWD[1..5])])
    );
    let msgs = [
        "zeta (pushed 1st)",
        "alpha (pushed 2nd)",
        "mid (pushed 3rd)",
    ];
    let vals = msgs
        .iter()
        .map(|m| (B + 9 * S, tekton_line("step-build", m)))
        .collect();
    assert_eq!(
        push_json(&loki, push_body(&[("step-build", vals)]))
            .await
            .status,
        204
    );
    let q = [
        ("query", r#"{kubernetes_container_name="step-build"}"#),
        ("start", "1795601409000000000"),
        ("end", "1795601409000000001"),
    ];
    let mut fwd = q.to_vec();
    fwd.push(("direction", "forward"));
    let at9: Vec<(i64, &str)> = msgs.iter().map(|m| (9 * S, *m)).collect();
    assert_eq!(
        query(&loki, &fwd).await.result(),
        json!([exp_stream("step-build", &at9)])
    );
    assert_eq!(
        query(&loki, &q).await.result(),
        json!([exp_stream("step-build", &rev(&at9))])
    );
}

/// Capture 08: the query upstream Tekton Results sends, `| json ... | line_format`.
#[tokio::test]
async fn replay_08_upstream_results_query() {
    let loki = seeded().await;
    let q = r#"{log_type="application",kubernetes_namespace_name="tekton-ci"}| json message="message", uid="kubernetes.labels.tekton_dev_taskRunUID" |uid="3f7a9c1e-5b2d-4e8f-9a6b-1c2d3e4f5a6b"| line_format "{{.message}}""#;
    let r = query(
        &loki,
        &[
            ("query", q),
            ("start", "1795601400"),
            ("end", "1795601460"),
            ("limit", "1700"),
            ("direction", "forward"),
        ],
    )
    .await;
    assert_json_ok(&r);
    let mut expected: Vec<(&str, i64, &str)> = SEED
        .iter()
        .filter(|(c, _, _)| *c != "step-test")
        .map(|(c, off, m)| (*c, *off, *m))
        .collect();
    // Result streams are sorted by label string: container, then the extracted message.
    expected.sort_by(|a, b| (a.0, a.2).cmp(&(b.0, b.2)));
    let want: Vec<Value> = expected
        .iter()
        .map(|(c, off, m)| {
            json!({"stream": {"detected_level":"unknown","kubernetes_container_name":c,"kubernetes_namespace_name":"tekton-ci",
                              "kubernetes_pod_name":BUILD_POD,"log_type":"application","message":m,"service_name":"unknown_service","uid":UID_BUILD},
                   "values": [[(B + off).to_string(), m]]})
        })
        .collect();
    assert_eq!(r.result(), Value::Array(want));
    assert!(r.body.starts_with(r#"{"status":"success","data":{"resultType":"streams","result":[{"stream":{"detected_level":"unknown","kubernetes_container_name":"step-build","kubernetes_namespace_name":"tekton-ci","kubernetes_pod_name":"build-app-run-x7k2p-build-pod","log_type":"application","message":"+ make build","service_name":"unknown_service","uid":"3f7a9c1e-5b2d-4e8f-9a6b-1c2d3e4f5a6b"},"values":[["1795601402000000000","+ make build"]]},"#));
    assert!(r.body.contains(r#""values":[["1795601401500000000","HEAD is now at 1a2b3c4 fix: \u003chtml\u003e \u0026 \"quotes\" \\ backslash"]]}"#));

    // The default query of the service (container + message in line_format).
    let q = r#"{ log_type="application",kubernetes_namespace_name="tekton-ci" }| json container="kubernetes.container_name", message="message", uid="kubernetes.labels.tekton_dev_taskRunUID" |uid="8d2e4b6a-0c1f-4a3b-9e8d-7f6a5b4c3d2e"| line_format "container-{{.container}}: message={{.message}}""#;
    let r = query(
        &loki,
        &[
            ("query", q),
            ("start", "1795601400"),
            ("end", "1795601460"),
            ("limit", "1700"),
            ("direction", "forward"),
        ],
    )
    .await;
    assert_json_ok(&r);
    let mut lines: Vec<(String, String)> = r
        .result()
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().clone())
        .map(|v| {
            (
                v[0].as_str().unwrap().to_string(),
                v[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            (
                "1795601402500000000".to_string(),
                "container-step-test: message==== RUN   TestAll".to_string()
            ),
            (
                "1795601403000000000".to_string(),
                "container-step-test: message=--- PASS: TestAll (0.00s)".to_string()
            ),
            (
                "1795601406000000000".to_string(),
                "container-step-test: message=ok  \texample.com/app\t0.012s".to_string()
            ),
        ]
    );
    assert_eq!(
        r.result().as_array().unwrap().len(),
        3,
        "one result stream per line"
    );
}

#[tokio::test]
async fn replay_09_line_filter() {
    let loki = seeded().await;
    let q = r#"{log_type="application",kubernetes_namespace_name="tekton-ci"} |= "3f7a9c1e-5b2d-4e8f-9a6b-1c2d3e4f5a6b""#;
    let r = query(
        &loki,
        &[
            ("query", q),
            ("start", B_S),
            ("end", B60_S),
            ("direction", "forward"),
        ],
    )
    .await;
    assert_json_ok(&r);
    assert_eq!(
        r.result(),
        json!([
            exp_stream("step-build", BUILD_ALL_FWD),
            exp_stream("step-clone", CLONE_ALL_FWD)
        ])
    );
}

#[tokio::test]
async fn replay_10_invalid_logql() {
    let loki = seeded().await;
    let cases = [
        (r#"{kubernetes_namespace_name="tekton-ci""#, "parse error at line 1, col 39: syntax error: unexpected $end, expecting } or ,"),
        (
            r#"{kubernetes_namespace_name="tekton-ci"} | json | line_format "{{.message""#,
            r#"parse error : stage '| line_format "{{.message"' : invalid line template: template: line:1: unclosed action"#,
        ),
        (
            r#"{kubernetes_namespace_name=~".*"}"#,
            r#"parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~".*" does not meet this requirement, but app=~".+" will"#,
        ),
        (r#"{kubernetes.namespace_name="tekton-ci"}"#, "parse error at line 1, col 12: syntax error: unexpected ., expecting = or =~ or !~ or !="),
    ];
    for (q, text) in cases {
        assert_query_error(
            &query(&loki, &[("query", q), ("start", B_S), ("end", B60_S)]).await,
            400,
            text,
        );
    }
    let r = query(&loki, &[("start", B_S), ("end", B60_S)]).await;
    assert_query_error(&r, 400, "parse error : syntax error: unexpected $end");
    // Valid LogQL the fake does not implement is a 501, never a silent wrong answer.
    let r = query(
        &loki,
        &[
            (
                "query",
                r#"{kubernetes_namespace_name="tekton-ci"} | logfmt"#,
            ),
            ("start", B_S),
            ("end", B60_S),
        ],
    )
    .await;
    assert_eq!(r.status, 501);
}

#[tokio::test]
async fn replay_11_and_34_max_query_length() {
    let loki = seeded().await;
    let r = query(
        &loki,
        &[
            ("query", NS_QUERY),
            ("start", "1792923000000000000"),
            ("end", B60_S),
        ],
    )
    .await;
    assert_query_error(
        &r,
        400,
        "the query time range exceeds the limit (query length: 744h1m0s, limit: 30d1h)",
    );
    let r = query(
        &loki,
        &[
            ("query", NS_QUERY),
            ("start", "1793005800000000000"),
            ("end", B_S),
        ],
    )
    .await;
    assert_json_ok(&r);
    let r = query(
        &loki,
        &[
            ("query", NS_QUERY),
            ("start", "1793005799000000000"),
            ("end", B_S),
        ],
    )
    .await;
    assert_query_error(
        &r,
        400,
        "the query time range exceeds the limit (query length: 721h0m1s, limit: 30d1h)",
    );
    // Capture 34: max_query_length 0 turns the check off; the entries limit stays.
    loki.set_max_query_length(Duration::ZERO);
    let r = query(
        &loki,
        &[
            ("query", NS_QUERY),
            ("start", "1792923000000000000"),
            ("end", B60_S),
        ],
    )
    .await;
    assert_json_ok(&r);
    let r = query(
        &loki,
        &[
            ("query", NS_QUERY),
            ("start", B_S),
            ("end", B60_S),
            ("limit", "5001"),
        ],
    )
    .await;
    assert_query_error(
        &r,
        400,
        "max entries limit per query exceeded, limit > max_entries_limit_per_query (5001 > 5000)",
    );
}

#[tokio::test]
async fn replay_12_empty_result() {
    let loki = seeded().await;
    for q in [
        r#"{kubernetes_namespace_name="no-such-namespace"}"#,
        r#"{kubernetes_namespace_name="tekton-ci"} |= "no such text""#,
    ] {
        let r = query(&loki, &[("query", q), ("start", B_S), ("end", B60_S)]).await;
        assert_json_ok(&r);
        assert!(r.body.starts_with(
            r#"{"status":"success","data":{"resultType":"streams","result":[],"stats":{"summary":{"#
        ));
    }
}

#[tokio::test]
async fn replay_13_step_and_interval() {
    let loki = seeded().await;
    let r = query(
        &loki,
        &[
            ("query", BUILD_QUERY),
            ("start", B_S),
            ("end", B60_S),
            ("step", "1"),
        ],
    )
    .await;
    assert_eq!(
        r.result(),
        json!([exp_stream("step-build", &rev(BUILD_ALL_FWD))])
    );
    let r = query(
        &loki,
        &[
            ("query", BUILD_QUERY),
            ("start", "1795515000000000000"),
            ("end", B60_S),
            ("step", "1"),
        ],
    )
    .await;
    assert_query_error(
        &r,
        400,
        "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter",
    );
    let r = query(
        &loki,
        &[
            ("query", BUILD_QUERY),
            ("start", B_S),
            ("end", B60_S),
            ("interval", "2s"),
            ("direction", "forward"),
        ],
    )
    .await;
    assert_eq!(
        r.result(),
        json!([exp_stream(
            "step-build",
            &[BUILD_ALL_FWD[0], BUILD_ALL_FWD[5]]
        )])
    );
}

#[tokio::test]
async fn replay_14_post_form() {
    let loki = seeded().await;
    let r = reqwest::Client::new()
        .post(format!("{}/loki/api/v1/query_range", loki.url()))
        .form(&[
            ("query", BUILD_QUERY),
            ("start", B_S),
            ("end", B60_S),
            ("direction", "forward"),
            ("limit", "2"),
        ])
        .send()
        .await
        .unwrap();
    let r = finish(r).await;
    assert_json_ok(&r);
    assert_eq!(
        r.result(),
        json!([exp_stream("step-build", &BUILD_ALL_FWD[..2])])
    );
    let rec = loki.requests_to("/loki/api/v1/query_range").pop().unwrap();
    assert_eq!(rec.method, "POST");
    assert_eq!(rec.param("limit"), Some("2"));
    assert!(rec.query.is_empty());
}

#[tokio::test]
async fn replay_15_duplicates() {
    let loki = seeded().await;
    let line = tekton_line("step-build", "identical line");
    let body = push_body(&[
        (
            "step-build",
            vec![(B + 8 * S, line.clone()), (B + 8 * S, line.clone())],
        ),
        ("step-test", vec![(B + 8 * S, line.clone())]),
    ]);
    assert_eq!(push_json(&loki, body.clone()).await.status, 204);
    assert_eq!(push_json(&loki, body).await.status, 204);
    let r = query(
        &loki,
        &[
            ("query", NS_QUERY),
            ("start", "1795601408000000000"),
            ("end", "1795601408000000001"),
            ("direction", "forward"),
        ],
    )
    .await;
    let mut test_stream = exp_stream("step-test", &[]);
    test_stream["values"] = json!([[(B + 8 * S).to_string(), line]]);
    assert_eq!(
        r.result(),
        json!([
            exp_stream("step-build", &[(8 * S, "identical line")]),
            test_stream
        ])
    );
}

fn lint_push_body() -> Vec<u8> {
    let uid = "c4d5e6f7-1a2b-4c3d-8e9f-0a1b2c3d4e5f";
    serde_json::to_vec(&json!({"streams":[{"stream": stream_labels("step-lint"), "values": [
        [(B + 10 * S).to_string(), tekton_line("step-lint", "lint started"), {"trace_id":"0af7651916cd43dd","tekton_dev_taskRunUID":uid}],
        [(B + 11 * S).to_string(), tekton_line("step-lint", "lint warning: unused variable"), {"trace_id":"0af7651916cd43dd"}],
        [(B + 12 * S).to_string(), tekton_line("step-lint", "lint done, no structured metadata on this entry")],
    ]}]}))
    .unwrap()
}

#[tokio::test]
async fn replay_16_structured_metadata_and_categorize_labels() {
    let loki = seeded().await;
    assert_eq!(push_json(&loki, lint_push_body()).await.status, 204);
    let uid = "c4d5e6f7-1a2b-4c3d-8e9f-0a1b2c3d4e5f";
    let pod = "build-app-run-x7k2p-lint-pod";
    let q = r#"{kubernetes_namespace_name="tekton-ci",kubernetes_pod_name="build-app-run-x7k2p-lint-pod"}"#;
    let params = [
        ("query", q),
        ("start", B_S),
        ("end", B60_S),
        ("direction", "forward"),
    ];
    let base = json!({"kubernetes_container_name":"step-lint","kubernetes_namespace_name":"tekton-ci","kubernetes_pod_name":pod,"log_type":"application","service_name":"unknown_service"});
    let with = |extra: Value| {
        let mut m = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        m
    };
    let val = |off: i64, m: &str| json!([(B + off).to_string(), tekton_line("step-lint", m)]);
    let r = query(&loki, &params).await;
    assert_json_ok(&r);
    assert_eq!(
        r.result(),
        json!([
            {"stream": with(json!({"detected_level":"unknown","tekton_dev_taskRunUID":uid,"trace_id":"0af7651916cd43dd"})), "values":[val(10 * S, "lint started")]},
            {"stream": with(json!({"detected_level":"unknown"})), "values":[val(12 * S, "lint done, no structured metadata on this entry")]},
            {"stream": with(json!({"detected_level":"warn","trace_id":"0af7651916cd43dd"})), "values":[val(11 * S, "lint warning: unused variable")]},
        ])
    );
    let cat = [("X-Loki-Response-Encoding-Flags", "categorize-labels")];
    let r = get(&loki, "/loki/api/v1/query_range", &params, &cat).await;
    assert_json_ok(&r);
    assert!(r.body.starts_with(r#"{"status":"success","data":{"resultType":"streams","encodingFlags":["categorize-labels"],"result":["#));
    let with_meta = |off: i64, m: &str, meta: Value| {
        let mut v = val(off, m);
        v.as_array_mut().unwrap().push(meta);
        v
    };
    assert_eq!(
        r.result(),
        json!([{"stream": base, "values": [
            with_meta(10 * S, "lint started", json!({"structuredMetadata":{"detected_level":"unknown","tekton_dev_taskRunUID":uid,"trace_id":"0af7651916cd43dd"}})),
            with_meta(11 * S, "lint warning: unused variable", json!({"structuredMetadata":{"detected_level":"warn","trace_id":"0af7651916cd43dd"}})),
            with_meta(12 * S, "lint done, no structured metadata on this entry", json!({"structuredMetadata":{"detected_level":"unknown"}})),
        ]}])
    );
    let q_json = format!("{q} | json message=\"message\"");
    let r = get(
        &loki,
        "/loki/api/v1/query_range",
        &[
            ("query", &q_json),
            ("start", B_S),
            ("end", B60_S),
            ("direction", "forward"),
        ],
        &cat,
    )
    .await;
    let values = r.result()[0]["values"].clone();
    assert_eq!(
        values[1][2],
        json!({"structuredMetadata":{"detected_level":"warn","trace_id":"0af7651916cd43dd"},"parsed":{"message":"lint warning: unused variable"}})
    );
    // Structured metadata as a label filter without a parser.
    let q5 = format!("{q} | trace_id=\"0af7651916cd43dd\"");
    let r = query(
        &loki,
        &[
            ("query", &q5),
            ("start", B_S),
            ("end", B60_S),
            ("direction", "forward"),
        ],
    )
    .await;
    assert_eq!(r.result().as_array().unwrap().len(), 2);
    let q6 = r#"{kubernetes_namespace_name="tekton-ci"} | tekton_dev_taskRunUID="c4d5e6f7-1a2b-4c3d-8e9f-0a1b2c3d4e5f""#;
    let r = query(
        &loki,
        &[
            ("query", q6),
            ("start", B_S),
            ("end", B60_S),
            ("direction", "forward"),
        ],
    )
    .await;
    assert_eq!(r.result().as_array().unwrap().len(), 1);
    assert_eq!(r.result()[0]["values"][0][0], (B + 10 * S).to_string());
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn proto_push(labels: &str, entries: &[SeedEntry<'_>]) -> PushRequest {
    PushRequest {
        streams: vec![StreamAdapter {
            labels: labels.to_string(),
            entries: entries
                .iter()
                .map(|(ts, line, sm)| EntryAdapter {
                    timestamp: Some(prost_types::Timestamp {
                        seconds: ts / S,
                        nanos: (ts % S) as i32,
                    }),
                    line: line.to_string(),
                    structured_metadata: sm
                        .iter()
                        .map(|(k, v)| LabelPairAdapter {
                            name: k.to_string(),
                            value: v.to_string(),
                        })
                        .collect(),
                    parsed: vec![],
                })
                .collect(),
            hash: 0,
        }],
        format: String::new(),
    }
}

fn assert_push_error(r: &Resp, status: u16, text: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.content_type, "text/plain; charset=utf-8");
    assert_eq!(r.body, format!("{text}\n"));
}

#[tokio::test]
async fn replay_17_protobuf_snappy_push() {
    let loki = seeded().await;
    let labels = r#"{log_type="application", kubernetes_namespace_name="tekton-ci", kubernetes_pod_name="build-app-run-x7k2p-pb-pod", kubernetes_container_name="step-proto"}"#;
    let l1 = tekton_line("step-proto", "pushed as snappy protobuf");
    let l2 = tekton_line("step-proto", "with structured metadata");
    let req = proto_push(
        labels,
        &[
            (B + 13 * S, &l1, &[]),
            (B + 13 * S + 7, &l2, &[("trace_id", "pb-trace-1")]),
        ],
    );
    let pb = [("Content-Type", "application/x-protobuf")];
    let r = push_raw(&loki, &pb, req.to_snappy_body()).await;
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    let l3 = tekton_line("step-proto", "no content-type header");
    let r = push_raw(
        &loki,
        &[],
        proto_push(labels, &[(B + 14 * S, &l3, &[])]).to_snappy_body(),
    )
    .await;
    assert_push_error(&r, 400, "mime: no media type");
    let l4 = tekton_line("step-proto", "content-encoding snappy header");
    let body = proto_push(labels, &[(B + 15 * S, &l4, &[])]).to_snappy_body();
    let r = push_raw(
        &loki,
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
        ],
        body,
    )
    .await;
    assert_eq!(r.status, 204);
    // Uncompressed protobuf, and snappy *framed* format: both corrupt for the block decoder.
    assert_push_error(
        &push_raw(&loki, &pb, prost::Message::encode_to_vec(&req)).await,
        400,
        "snappy: corrupt input",
    );
    let mut framed = unhex("ff060000734e61507059");
    framed.extend(unhex("00920100fa054f27"));
    framed.extend(req.to_snappy_body());
    assert_push_error(
        &push_raw(&loki, &pb, framed).await,
        400,
        "snappy: corrupt input",
    );
    // The captured bodies with unparseable labels.
    let r = push_raw(&loki, &pb, unhex("36600a340a257b6b756265726e657465735f6e616d657370616365050a5c3d74656b746f6e2d63697d120b0a060888e89ad806120178")).await;
    assert_push_error(
        &r,
        400,
        r#"couldn't parse labels: 1:28: parse error: unexpected identifier "tekton" in label set, expected string"#,
    );
    let r = push_raw(&loki, &pb, unhex("38640a360a277b6b756265726e657465732e6e616d6573706163655f010a643d2274656b746f6e2d6369227d120b0a060888e89ad806120178")).await;
    assert_push_error(
        &r,
        400,
        "couldn't parse labels: 1:12: parse error: unexpected character inside braces: '.'",
    );
    let r = push_raw(
        &loki,
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "br"),
        ],
        b"{}".to_vec(),
    )
    .await;
    assert_push_error(&r, 400, r#"Content-Encoding "br" not supported"#);
    let r = get(
        &loki,
        "/loki/api/v1/query_range",
        &[
            (
                "query",
                r#"{kubernetes_pod_name="build-app-run-x7k2p-pb-pod"}"#,
            ),
            ("start", B_S),
            ("end", B60_S),
            ("direction", "forward"),
        ],
        &[("X-Loki-Response-Encoding-Flags", "categorize-labels")],
    )
    .await;
    let values = r.result()[0]["values"].clone();
    assert_eq!(
        values,
        json!([
            [(B + 13 * S).to_string(), l1, {"structuredMetadata":{"detected_level":"unknown"}}],
            [(B + 13 * S + 7).to_string(), l2, {"structuredMetadata":{"detected_level":"unknown","trace_id":"pb-trace-1"}}],
            [(B + 15 * S).to_string(), l4, {"structuredMetadata":{"detected_level":"unknown"}}],
        ])
    );
}

const STEP_BUILD_LS: &str = r#"{kubernetes_container_name="step-build", kubernetes_namespace_name="tekton-ci", kubernetes_pod_name="build-app-run-x7k2p-build-pod", log_type="application", service_name="unknown_service"}"#;

#[tokio::test]
async fn replay_18_rejected_timestamps() {
    let loki = seeded().await;
    // Capture 15 left step-build's newest entry at B+8s.
    loki.push_lines(
        &[
            ("log_type", "application"),
            ("kubernetes_namespace_name", "tekton-ci"),
            ("kubernetes_pod_name", BUILD_POD),
            ("kubernetes_container_name", "step-build"),
        ],
        &[(B + 8 * S, &tekton_line("step-build", "identical line"))],
    );
    let now = 1_795_602_037_914_867_460;
    loki.set_now(now);
    let one = |ts: i64, msg: &str| {
        push_body(&[("step-build", vec![(ts, tekton_line("step-build", msg))])])
    };
    let r = push_json(&loki, one(now - 8 * 86_400 * S, "eight days old")).await;
    assert_push_error(&r, 400, &format!("entry for stream '{STEP_BUILD_LS}' has timestamp too old: 2026-11-17T10:20:37Z, oldest acceptable timestamp is: 2026-11-18T10:20:37Z"));
    let r = push_json(&loki, one(now + 3600 * S, "one hour in the future")).await;
    assert_push_error(
        &r,
        400,
        &format!("entry for stream '{STEP_BUILD_LS}' has timestamp too new: 2026-11-25T11:20:37Z"),
    );
    let r = push_json(
        &loki,
        one(
            1_795_594_200_000_000_000,
            "two hours behind the stream's newest entry",
        ),
    )
    .await;
    assert_push_error(&r, 400, &format!("entry with timestamp 2026-11-25 08:10:00 +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2026-11-25T08:10:00Z, oldest acceptable timestamp is: 2026-11-25T09:10:08Z',\nuser 'fake', total ignored: 1 out of 1 for stream: {STEP_BUILD_LS}"));
    let late = "late entry, 1.5s before step-build's first entry";
    assert_eq!(push_json(&loki, one(B + 500 * MS, late)).await.status, 204);
    let r = query(
        &loki,
        &[
            ("query", r#"{kubernetes_container_name="step-build"}"#),
            ("start", "1795590600000000000"),
            ("end", "1795601403000000000"),
            ("direction", "forward"),
        ],
    )
    .await;
    assert_eq!(
        r.result(),
        json!([exp_stream(
            "step-build",
            &[(500 * MS, late), BUILD_ALL_FWD[0]]
        )])
    );
}

#[tokio::test]
async fn replay_19_partial_acceptance() {
    let loki = seeded().await;
    let now = 1_795_602_039_433_031_865;
    loki.set_now(now);
    let t = |m: &str| tekton_line("step-test", m);
    let c = |m: &str| tekton_line("step-clone", m);
    let body = push_body(&[
        (
            "step-test",
            vec![
                (B + 20 * S, t("partial batch: accepted 1")),
                (now - 8 * 86_400 * S, t("partial batch: too old")),
                (B + 21 * S, t("partial batch: accepted 2")),
                (now + 7200 * S, t("partial batch: too new")),
            ],
        ),
        (
            "step-clone",
            vec![
                (B + 22 * S, c("partial batch: other stream accepted")),
                (
                    1_795_594_200_000_000_000,
                    c("partial batch: other stream too far behind"),
                ),
            ],
        ),
    ]);
    let expected = "entry with timestamp 2026-11-25 08:10:00 +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2026-11-25T08:10:00Z, oldest acceptable timestamp is: 2026-11-25T09:10:22Z',\nuser 'fake', total ignored: 1 out of 2 for stream: {kubernetes_container_name=\"step-clone\", kubernetes_namespace_name=\"tekton-ci\", kubernetes_pod_name=\"build-app-run-x7k2p-build-pod\", log_type=\"application\", service_name=\"unknown_service\"}";
    assert_push_error(&push_json(&loki, body.clone()).await, 400, expected);
    assert_push_error(&push_json(&loki, body).await, 400, expected);
    let r = query(
        &loki,
        &[
            (
                "query",
                r#"{kubernetes_namespace_name="tekton-ci"} |= "partial batch""#,
            ),
            ("start", "1794997239433031865"),
            ("end", "1795612839433031865"),
            ("direction", "forward"),
        ],
    )
    .await;
    assert_eq!(
        r.result(),
        json!([
            exp_stream(
                "step-clone",
                &[(22 * S, "partial batch: other stream accepted")]
            ),
            exp_stream(
                "step-test",
                &[
                    (20 * S, "partial batch: accepted 1"),
                    (21 * S, "partial batch: accepted 2")
                ]
            ),
        ])
    );
    // Batch 2: only distributor-side rejections, joined as `1 errors like: ...`.
    let now = 1_795_602_493_097_559_608;
    loki.set_now(now);
    let long = "x".repeat(262_145);
    let body = push_body(&[(
        "step-test",
        vec![
            (B + 23 * S, t("partial batch 2: accepted")),
            (now - 8 * 86_400 * S, t("partial batch 2: too old A")),
            (now - 9 * 86_400 * S, t("partial batch 2: too old B")),
            (now + 7200 * S, t("partial batch 2: too new")),
            (B + 24 * S, long),
        ],
    )]);
    let r = push_json(&loki, body).await;
    assert_eq!(r.status, 400);
    let ls = r#"{kubernetes_container_name="step-test", kubernetes_namespace_name="tekton-ci", kubernetes_pod_name="build-app-run-x7k2p-test-pod", log_type="application", service_name="unknown_service"}"#;
    let mut got: Vec<&str> = r.body.trim_end_matches('\n').split("; ").collect();
    got.sort();
    let mut want = vec![
        format!("1 errors like: max entry size '262144' bytes exceeded for stream '{ls}' while adding an entry with length '262145' bytes"),
        format!("1 errors like: entry for stream '{ls}' has timestamp too old: 2026-11-17T10:28:13Z, oldest acceptable timestamp is: 2026-11-18T10:28:13Z"),
        format!("1 errors like: entry for stream '{ls}' has timestamp too old: 2026-11-16T10:28:13Z, oldest acceptable timestamp is: 2026-11-18T10:28:13Z"),
        format!("1 errors like: entry for stream '{ls}' has timestamp too new: 2026-11-25T12:28:13Z"),
    ];
    want.sort();
    assert_eq!(got, want);
    let r = query(
        &loki,
        &[
            (
                "query",
                r#"{kubernetes_container_name="step-test"} |= "partial batch 2""#,
            ),
            ("start", "1794997693097559608"),
            ("end", "1795613293097559608"),
            ("direction", "forward"),
        ],
    )
    .await;
    assert_eq!(
        r.result(),
        json!([exp_stream(
            "step-test",
            &[(23 * S, "partial batch 2: accepted")]
        )])
    );
}

#[tokio::test]
async fn replay_20_invalid_push_requests() {
    let loki = seeded().await;
    let r = push_json(&loki, br#"{"streams":[{"stream":{"kubernetes_namespace_name":"tekton-ci"},"values":[[1795601430000000000,"numeric ts"]]}]}"#.to_vec()).await;
    assert_push_error(
        &r,
        400,
        r#"loghttp.PushRequest.Streams: []loghttp.LogProtoStream: unmarshalerDecoder: Value looks like Number/Boolean/None, but can't find its end: ',' or '}' symbol, error found in #10 byte of ...|ric ts"]]}]}|..., bigger context ...|i"},"values":[[1795601430000000000,"numeric ts"]]}]}|..."#,
    );
    let r = push_json(&loki, br#"{"streams":[{"stream":{"kubernetes.namespace_name":"tekton-ci"},"values":[["1795601430000000000","dot in label name"]]}]}"#.to_vec()).await;
    assert_push_error(
        &r,
        400,
        "couldn't parse labels: 1:12: parse error: unexpected character inside braces: '.'",
    );
    let r = push_json(&loki, br#"{"streams":[{"stream":{"tekton.dev/taskRunUID":"3f7a9c1e-5b2d-4e8f-9a6b-1c2d3e4f5a6b"},"values":[["1795601430000000000","slash in label name"]]}]}"#.to_vec()).await;
    assert_push_error(
        &r,
        400,
        "couldn't parse labels: 1:8: parse error: unexpected character inside braces: '.'",
    );
    let r = push_json(
        &loki,
        br#"{"streams":[{"stream":{},"values":[["1795601430000000000","no labels"]]}]}"#.to_vec(),
    )
    .await;
    assert_eq!(r.status, 204);
    let r = query(
        &loki,
        &[
            (
                "query",
                r#"{service_name="unknown_service"} |= "no labels""#,
            ),
            ("start", B_S),
            ("end", B60_S),
        ],
    )
    .await;
    assert_eq!(
        r.result()[0]["stream"],
        json!({"detected_level":"unknown","service_name":"unknown_service"})
    );
    for body in [&br#"{"streams":[]}"#[..], &b"{}"[..]] {
        assert_push_error(
            &push_json(&loki, body.to_vec()).await,
            422,
            "error at least one valid stream is required for ingestion",
        );
    }
    let r = push_json(
        &loki,
        br#"{"streams":[{"stream":{"kubernetes_namespace_name":"tekton-ci"},"values":[]}]}"#
            .to_vec(),
    )
    .await;
    assert_eq!(r.status, 204);
    assert_push_error(&push_json(&loki, Vec::new()).await, 400, "EOF");
    let r = push_json(&loki, br#"{"streams":[{"stream":"#.to_vec()).await;
    assert_push_error(
        &r,
        400,
        r#"loghttp.PushRequest.Streams: []loghttp.LogProtoStream: Skip: do not know how to skip: 0, error found in #10 byte of ...|{"stream":|..., bigger context ...|{"streams":[{"stream":|..."#,
    );
    let labels16: serde_json::Map<String, Value> =
        (0..16).map(|i| (format!("l{i:02}"), json!("v"))).collect();
    let r = push_json(&loki, serde_json::to_vec(&json!({"streams":[{"stream":labels16,"values":[["1795601430000000000","16 labels"]]}]})).unwrap()).await;
    assert_push_error(
        &r,
        400,
        r#"entry for stream '{l00="v", l01="v", l02="v", l03="v", l04="v", l05="v", l06="v", l07="v", l08="v", l09="v", l10="v", l11="v", l12="v", l13="v", l14="v", l15="v", service_name="unknown_service"}' has 16 label names; limit 15"#,
    );
    let v = "v".repeat(2049);
    let r = push_json(&loki, serde_json::to_vec(&json!({"streams":[{"stream":{"kubernetes_namespace_name":"tekton-ci","x":v},"values":[["1795601430000000000","long label value"]]}]})).unwrap()).await;
    assert_push_error(
        &r,
        400,
        &format!(
            r#"stream '{{kubernetes_namespace_name="tekton-ci", service_name="unknown_service", x="{v}"}}' has label value too long: '{v}'"#
        ),
    );
    let r = push_json(
        &loki,
        push_body(&[("step-build", vec![(B + 30 * S, "x".repeat(262_145))])]),
    )
    .await;
    assert_push_error(&r, 400, &format!("max entry size '262144' bytes exceeded for stream '{STEP_BUILD_LS}' while adding an entry with length '262145' bytes"));
    let r = push_json(&loki, serde_json::to_vec(&json!({"streams":[{"stream":{"log_type":"application","kubernetes_namespace_name":"tekton-ci","kubernetes_pod_name":TEST_POD,"kubernetes_container_name":"step-empty"},"values":[["1795601431000000000",""]]}]})).unwrap()).await;
    assert_eq!(r.status, 204);
    let r = push_raw(
        &loki,
        &[("Content-Type", "application/x-protobuf")],
        unhex("27980a250a0e7b613d2231222c20613d2232227d12130a060896e89ad8061209647570206c6162656c"),
    )
    .await;
    assert_push_error(
        &r,
        400,
        r#"stream '{a="1", a="2", service_name="unknown_service"}' has duplicate label name: 'a'"#,
    );
    let r = get(&loki, "/loki/api/v1/push", &[], &[]).await;
    assert_eq!((r.status, r.body.as_str()), (405, ""));
    let r = query(
        &loki,
        &[
            ("query", r#"{kubernetes_container_name="step-empty"}"#),
            ("start", B_S),
            ("end", B60_S),
        ],
    )
    .await;
    assert_eq!(
        r.result()[0]["values"],
        json!([["1795601431000000000", ""]])
    );
}

#[tokio::test]
async fn replay_28_auth_enabled() {
    let loki = FakeLoki::start(FakeLokiConfig {
        require_tenant: true,
        now_ns: Some(NOW),
        ..Default::default()
    });
    let params = [
        ("query", NS_QUERY),
        ("start", B_S),
        ("end", B60_S),
        ("direction", "forward"),
    ];
    assert_push_error(&query(&loki, &params).await, 401, "no org id");
    let body = push_body(&[(
        "step-build",
        vec![(B + 50 * S, tekton_line("step-build", "tenant team-a line"))],
    )]);
    assert_push_error(&push_json(&loki, body.clone()).await, 401, "no org id");
    assert_push_error(
        &get(&loki, "/loki/api/v1/labels", &[], &[]).await,
        401,
        "no org id",
    );
    let ws = tokio_tungstenite::connect_async(format!(
        "ws://{}/loki/api/v1/tail?query=%7Ba%3D%22b%22%7D",
        loki.addr()
    ))
    .await;
    match ws {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected a 401 handshake, got {other:?}"),
    }
    let r = push_raw(
        &loki,
        &[
            ("Content-Type", "application/json"),
            ("X-Scope-OrgID", "team-a"),
        ],
        body,
    )
    .await;
    assert_eq!(r.status, 204);
    let r = get(
        &loki,
        "/loki/api/v1/query_range",
        &params,
        &[("X-Scope-OrgID", "team-a")],
    )
    .await;
    assert_eq!(
        r.result(),
        json!([exp_stream("step-build", &[(50 * S, "tenant team-a line")])])
    );
    let r = get(
        &loki,
        "/loki/api/v1/query_range",
        &params,
        &[("X-Scope-OrgID", "team-b")],
    )
    .await;
    assert_eq!(r.result(), json!([]));
    let cases = [
        ("team-a|team-b", 500, "multiple org IDs present"),
        (
            "team/a",
            400,
            "tenant ID 'team/a' contains unsupported character '/'",
        ),
        ("..", 400, "tenant ID is '.' or '..'"),
    ];
    for (id, status, text) in cases {
        assert_query_error(
            &get(
                &loki,
                "/loki/api/v1/query_range",
                &params,
                &[("X-Scope-OrgID", id)],
            )
            .await,
            status,
            text,
        );
    }
    let long = "a".repeat(151);
    let r = get(
        &loki,
        "/loki/api/v1/query_range",
        &params,
        &[("X-Scope-OrgID", &long)],
    )
    .await;
    assert_query_error(&r, 400, "tenant ID is too long: max 150 characters");
    assert_eq!(get(&loki, "/ready", &[], &[]).await.status, 200);
    assert_eq!(
        get(&loki, "/loki/api/v1/status/buildinfo", &[], &[])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn replay_29_to_33_other_endpoints() {
    let loki = seeded().await;
    let r = get(&loki, "/ready", &[], &[]).await;
    assert_push_error(&r, 200, "ready");
    let r = get(&loki, "/loki/api/v1/status/buildinfo", &[], &[]).await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (200, "application/json")
    );
    assert_eq!(r.body, format!("{BUILDINFO_JSON}\n"));
    let r = get(&loki, "/loki/api/v1/nope", &[], &[]).await;
    assert_push_error(&r, 404, "404 page not found");
    let r = get(
        &loki,
        "/loki/api/v1/labels",
        &[("start", B_S), ("end", "1795602417382926548")],
        &[],
    )
    .await;
    assert_eq!(r.body, "{\"status\":\"success\",\"data\":[\"kubernetes_container_name\",\"kubernetes_namespace_name\",\"kubernetes_pod_name\",\"log_type\",\"service_name\"]}\n");
    let r = get(
        &loki,
        "/loki/api/v1/label/kubernetes_pod_name/values",
        &[
            ("start", B_S),
            ("end", "1795602417382926548"),
            (
                "query",
                r#"{kubernetes_container_name=~"step-(build|test)"}"#,
            ),
        ],
        &[],
    )
    .await;
    assert_eq!(r.body, "{\"status\":\"success\",\"data\":[\"build-app-run-x7k2p-build-pod\",\"build-app-run-x7k2p-test-pod\"]}\n");
    let r = get(
        &loki,
        "/loki/api/v1/label/trace_id/values",
        &[("start", B_S), ("end", "1795602417382926548")],
        &[],
    )
    .await;
    assert_eq!(r.body, "{\"status\":\"success\"}\n");
    let r = get(
        &loki,
        "/loki/api/v1/series",
        &[
            (
                "match[]",
                r#"{kubernetes_pod_name="build-app-run-x7k2p-build-pod"}"#,
            ),
            ("start", B_S),
            ("end", "1795602417382926548"),
        ],
        &[],
    )
    .await;
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 2);
    let r = get(
        &loki,
        "/loki/api/v1/query",
        &[
            ("query", r#"{kubernetes_container_name="step-clone"}"#),
            ("time", "1795601402000000000"),
            ("limit", "2"),
        ],
        &[],
    )
    .await;
    assert_query_error(&r, 400, "log queries are not supported as an instant query type, please change your query to a range query type");
}

#[tokio::test]
async fn replay_35_line_content_escaping() {
    #[derive(Clone, PartialEq, prost::Message)]
    struct RawPush {
        #[prost(message, repeated, tag = "1")]
        streams: Vec<RawStream>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct RawStream {
        #[prost(string, tag = "1")]
        labels: String,
        #[prost(message, repeated, tag = "2")]
        entries: Vec<RawEntry>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct RawEntry {
        #[prost(message, optional, tag = "1")]
        timestamp: Option<prost_types::Timestamp>,
        #[prost(bytes = "vec", tag = "2")]
        line: Vec<u8>,
    }
    let loki = seeded().await;
    let lines: [&[u8]; 8] = [
        b"\x1b[31mred ANSI\x1b[0m text",
        b"progress 10%\rprogress 100%",
        b"tab\there, NUL\x00here",
        b"invalid utf-8: \xff\xfe end",
        b"template hazards {{.message}} `backtick` \"quote\" \\ backslash <tag> & amp",
        b"unicode: \xc3\xa9\xe2\x82\xac\xf0\x9f\x9a\x80 and U+2028:\xe2\x80\xa8.",
        b"",
        b"trailing newline\n",
    ];
    let req = RawPush {
        streams: vec![RawStream {
            labels: r#"{log_type="application", kubernetes_namespace_name="tekton-ci", kubernetes_pod_name="build-app-run-x7k2p-chars-pod", kubernetes_container_name="step-chars"}"#.into(),
            entries: lines
                .iter()
                .enumerate()
                .map(|(i, l)| RawEntry { timestamp: Some(prost_types::Timestamp { seconds: 1_795_601_450, nanos: i as i32 }), line: l.to_vec() })
                .collect(),
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&prost::Message::encode_to_vec(&req))
        .unwrap();
    assert_eq!(
        push_raw(&loki, &[("Content-Type", "application/x-protobuf")], body)
            .await
            .status,
        204
    );
    let r = get(
        &loki,
        "/loki/api/v1/query_range",
        &[
            (
                "query",
                r#"{kubernetes_pod_name="build-app-run-x7k2p-chars-pod"}"#,
            ),
            ("start", "1795601450000000000"),
            ("end", "1795601451000000000"),
            ("direction", "forward"),
        ],
        &[("X-Loki-Response-Encoding-Flags", "categorize-labels")],
    )
    .await;
    let sm = r#",{"structuredMetadata":{"detected_level":"unknown"}}]"#;
    let expected = [
        r#"["1795601450000000000","\u001b[31mred ANSI\u001b[0m text""#,
        r#"["1795601450000000001","progress 10%\rprogress 100%""#,
        r#"["1795601450000000002","tab\there, NUL\u0000here""#,
        r#"["1795601450000000003","invalid utf-8: \ufffd\ufffd end""#,
        r#"["1795601450000000004","template hazards {{.message}} `backtick` \"quote\" \\ backslash \u003ctag\u003e \u0026 amp""#,
        "[\"1795601450000000005\",\"unicode: é€🚀 and U+2028:\\u2028.\"",
        r#"["1795601450000000006","""#,
        r#"["1795601450000000007","trailing newline\n""#,
    ]
    .map(|v| format!("{v}{sm}"))
    .join(",");
    assert!(
        r.body.contains(&format!(r#""values":[{expected}]}}]"#)),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn knobs_fail_next_request_log_and_prefix() {
    let loki = FakeLoki::start(FakeLokiConfig {
        path_prefix: "/api/logs/v1/application".into(),
        now_ns: Some(NOW),
        ..Default::default()
    });
    let line = tekton_line("step-build", "+ make build");
    loki.push_lines(
        &[
            ("kubernetes_namespace_name", "tekton-ci"),
            ("kubernetes_container_name", "step-build"),
        ],
        &[(B + 2 * S, &line)],
    );
    let path = "/api/logs/v1/application/loki/api/v1/query_range";
    let params = [("query", NS_QUERY), ("start", B_S), ("end", B60_S)];
    assert_eq!(
        get(&loki, "/loki/api/v1/query_range", &params, &[])
            .await
            .status,
        404
    );
    loki.fail_next_on(
        "/loki/api/v1/query_range",
        1,
        429,
        "too many outstanding requests",
        Some("2".into()),
    );
    loki.fail_next(1, 503, "upstream connect error", None);
    let r = get(&loki, path, &params, &[("Authorization", "Bearer t0k")]).await;
    assert_query_error(&r, 429, "too many outstanding requests");
    assert_eq!(r.headers.get("retry-after").unwrap(), "2");
    let r = get(&loki, path, &params, &[]).await;
    assert_eq!(r.status, 503);
    assert!(r.headers.get("retry-after").is_none());
    let r = get(&loki, path, &params, &[]).await;
    assert_json_ok(&r);
    assert_eq!(r.result()[0]["values"][0][1], line);
    let reqs = loki.requests_to("/query_range");
    assert_eq!(reqs.len(), 4);
    assert_eq!(reqs[1].path, path);
    assert_eq!(reqs[1].header("authorization"), Some("Bearer t0k"));
    assert_eq!(reqs[1].param("query"), Some(NS_QUERY));
    assert_eq!(
        loki.prefixed_url(),
        format!("{}/api/logs/v1/application", loki.url())
    );
    // Partial page of the service's own query through the gateway prefix.
    assert_eq!(loki.entry_count(), 1);
}

#[tokio::test]
async fn injected_faults_apply_at_their_request_and_spoil_the_real_answer() {
    let loki = seeded().await;
    let params = [("query", NS_QUERY), ("start", B_S), ("end", B60_S)];
    let whole = query(&loki, &params).await.body;
    let qr = "/loki/api/v1/query_range";
    // One request let through, then a cut body: the head is the real one, the body breaks.
    loki.inject(qr, 1, 1, Fault::CutBody { keep: 0.5 });
    loki.inject(qr, 0, 1, Fault::TruncatedBody { keep: 0.5 });
    loki.inject(
        qr,
        0,
        1,
        Fault::ForeignBody {
            content_type: "text/html".into(),
            body: "<html>sign in</html>".into(),
        },
    );
    loki.inject(qr, 0, 1, Fault::Delay(Duration::from_millis(50)));
    assert_eq!(loki.pending_faults(), 5);
    assert_eq!(query(&loki, &params).await.body, whole);
    let url = format!("{}{qr}", loki.url());
    let cut = reqwest::Client::new()
        .get(&url)
        .query(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(cut.status(), 200);
    assert!(cut.headers().get("content-length").is_none(), "chunked");
    assert!(cut.bytes().await.is_err(), "the body breaks off");
    let truncated = query(&loki, &params).await;
    assert_eq!(
        (truncated.status, truncated.body.len()),
        (200, whole.trim_end().len() / 2)
    );
    assert!(whole.starts_with(&truncated.body));
    let foreign = query(&loki, &params).await;
    assert_eq!(
        (
            foreign.status,
            foreign.content_type.as_str(),
            foreign.body.as_str()
        ),
        (200, "text/html", "<html>sign in</html>")
    );
    assert_eq!(query(&loki, &params).await.body, whole, "late, not changed");
    assert_eq!(loki.pending_faults(), 0);
    // Other paths do not count towards a rule of one path.
    loki.inject(qr, 0, 1, Fault::TruncatedBody { keep: 0.0 });
    assert_eq!(
        get(&loki, "/loki/api/v1/labels", &params, &[]).await.status,
        200
    );
    assert_eq!(query(&loki, &params).await.body, "");
}

// ---------------------------------------------------------------------------------------------
// Tail
// ---------------------------------------------------------------------------------------------

use futures::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMsg;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const TAIL_POD_QUERY: &str = r#"{kubernetes_pod_name="build-app-run-x7k2p-tail-pod"}"#;

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn tail_url(loki: &FakeLoki, query: &str, extra: &str) -> String {
    format!(
        "ws://{}/loki/api/v1/tail?query={}{extra}",
        loki.addr(),
        enc(query)
    )
}

async fn open_tail(url: &str, headers: &[(&str, &str)]) -> Ws {
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            reqwest::header::HeaderValue::from_str(v).unwrap(),
        );
    }
    tokio_tungstenite::connect_async(req)
        .await
        .expect("tail handshake")
        .0
}

/// Next text frame (pings are skipped and counted).
async fn next_text(ws: &mut Ws, pings: &mut usize) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("frame in time");
        match msg.expect("open").expect("frame") {
            WsMsg::Text(t) => {
                assert!(!t.ends_with('\n'));
                return serde_json::from_str(&t).unwrap();
            }
            WsMsg::Ping(p) => {
                assert!(p.is_empty());
                *pings += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads until the server's close frame; returns (code, reason).
async fn close_of(ws: &mut Ws) -> (CloseCode, String) {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("close in time");
        match msg {
            Some(Ok(WsMsg::Close(Some(f)))) => return (f.code, f.reason.to_string()),
            Some(Ok(WsMsg::Close(None))) | None => panic!("closed without a close frame"),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("{e}"),
        }
    }
}

fn tail_labels(with_level: bool) -> Value {
    let mut v = json!({"kubernetes_container_name":"step-tail","kubernetes_namespace_name":"tekton-ci","kubernetes_pod_name":"build-app-run-x7k2p-tail-pod","log_type":"application","service_name":"unknown_service"});
    if with_level {
        v["detected_level"] = json!("unknown");
    }
    v
}

fn one_per_entry(labels: &Value, values: &[(i64, String)]) -> Value {
    json!({"streams": values.iter().map(|(ts, l)| json!({"stream": labels, "values": [[ts.to_string(), l]]})).collect::<Vec<_>>()})
}

#[tokio::test]
async fn replay_23_tail_replay_live_and_max_duration() {
    let now = B + 750 * S;
    let loki = FakeLoki::start(FakeLokiConfig {
        now_ns: Some(now),
        tail_max_duration: Duration::from_millis(2500),
        ..Default::default()
    });
    let hist: Vec<(i64, String)> = (0..8)
        .map(|i| {
            (
                B + (40 + i) * S,
                tekton_line("step-tail", &format!("history line {i}")),
            )
        })
        .collect();
    assert_eq!(
        push_json(&loki, push_body(&[("step-tail", hist.clone())]))
            .await
            .status,
        204
    );
    let mut ws = open_tail(
        &tail_url(&loki, TAIL_POD_QUERY, &format!("&start={B}&limit=5")),
        &[],
    )
    .await;
    let mut pings = 0;
    // Replay: only the last 5 lines since start, ascending, one stream object per entry.
    assert_eq!(
        next_text(&mut ws, &mut pings).await,
        one_per_entry(&tail_labels(true), &hist[3..])
    );
    let live: Vec<(i64, String)> = (1..=2)
        .map(|i| {
            (
                now - 10 * S + i,
                tekton_line("step-tail", &format!("live line {i}")),
            )
        })
        .collect();
    assert_eq!(
        push_json(&loki, push_body(&[("step-tail", live.clone())]))
            .await
            .status,
        204
    );
    // Live frames carry the index labels only (no detected_level).
    assert_eq!(
        next_text(&mut ws, &mut pings).await,
        one_per_entry(&tail_labels(false), &live)
    );
    let late = vec![(
        B + 30 * S,
        tekton_line("step-tail", "late line with an old timestamp (B+30s)"),
    )];
    assert_eq!(
        push_json(&loki, push_body(&[("step-tail", late.clone())]))
            .await
            .status,
        204
    );
    assert_eq!(
        next_text(&mut ws, &mut pings).await,
        one_per_entry(&tail_labels(false), &late)
    );
    let sm_line = tekton_line("step-tail", "live line with structured metadata");
    let body = json!({"streams":[{"stream": stream_labels("step-tail"), "values":[[(now - 5 * S).to_string(), sm_line, {"trace_id":"tail-trace-1"}]]}]});
    assert_eq!(
        push_json(&loki, serde_json::to_vec(&body).unwrap())
            .await
            .status,
        204
    );
    assert_eq!(
        next_text(&mut ws, &mut pings).await,
        one_per_entry(&tail_labels(false), &[(now - 5 * S, sm_line)])
    );
    assert_eq!(loki.active_tails(), 1);
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!(
        (code, reason.as_str()),
        (CloseCode::Error, "reached tail max duration limit")
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(loki.active_tails(), 0);
}

#[tokio::test]
async fn tail_pings_every_second() {
    let loki = FakeLoki::start(FakeLokiConfig {
        now_ns: Some(NOW),
        tail_max_duration: Duration::from_millis(3300),
        ..Default::default()
    });
    let mut ws = open_tail(&tail_url(&loki, TAIL_POD_QUERY, ""), &[]).await;
    let mut pings = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WsMsg::Ping(_) => pings += 1,
            WsMsg::Close(Some(f)) => {
                assert_eq!(f.code, CloseCode::Error);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(pings, 3);
}

#[tokio::test]
async fn replay_24_tail_categorize_labels_and_pipeline() {
    let now = B + 800 * S;
    let loki = FakeLoki::start(FakeLokiConfig {
        now_ns: Some(now),
        ..Default::default()
    });
    let l1 = tekton_line("step-tail", "live line with structured metadata");
    let body = json!({"streams":[{"stream": stream_labels("step-tail"), "values":[[(B + 60 * S).to_string(), l1, {"trace_id":"tail-trace-1"}]]}]});
    assert_eq!(
        push_json(&loki, serde_json::to_vec(&body).unwrap())
            .await
            .status,
        204
    );
    let cat = [("X-Loki-Response-Encoding-Flags", "categorize-labels")];
    let mut ws = open_tail(
        &tail_url(&loki, TAIL_POD_QUERY, &format!("&start={B}&limit=2")),
        &cat,
    )
    .await;
    let mut pings = 0;
    let first = next_text(&mut ws, &mut pings).await;
    assert_eq!(
        first,
        json!({"streams":[{"stream": tail_labels(false), "values":[[(B + 60 * S).to_string(), l1, {"structuredMetadata":{"detected_level":"unknown","trace_id":"tail-trace-1"}}]]}],
               "encodingFlags":["categorize-labels"]})
    );
    let l2 = tekton_line("step-tail", "categorized live line");
    let body = json!({"streams":[{"stream": stream_labels("step-tail"), "values":[[(now - S).to_string(), l2, {"trace_id":"tail-trace-2"}]]}]});
    assert_eq!(
        push_json(&loki, serde_json::to_vec(&body).unwrap())
            .await
            .status,
        204
    );
    let msg = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Ok(WsMsg::Text(t))) = ws.next().await {
                return t.to_string();
            }
        }
    })
    .await
    .unwrap();
    // Live structured metadata keeps push order, detected_level last.
    assert!(msg.ends_with(r#",{"structuredMetadata":{"trace_id":"tail-trace-2","detected_level":"unknown"}}]]}],"encodingFlags":["categorize-labels"]}"#), "{msg}");
    // A pipeline: rewritten lines, parsed labels and structured metadata in the stream labels.
    let q =
        format!(r#"{TAIL_POD_QUERY} | json message="message" | line_format "{{{{.message}}}}""#);
    let mut ws = open_tail(&tail_url(&loki, &q, &format!("&start={B}&limit=2")), &[]).await;
    let first = next_text(&mut ws, &mut pings).await;
    let mut labels1 = tail_labels(true);
    labels1["message"] = json!("live line with structured metadata");
    labels1["trace_id"] = json!("tail-trace-1");
    let mut labels2 = tail_labels(true);
    labels2["message"] = json!("categorized live line");
    labels2["trace_id"] = json!("tail-trace-2");
    assert_eq!(
        first,
        json!({"streams":[
            {"stream": labels1, "values":[[(B + 60 * S).to_string(), "live line with structured metadata"]]},
            {"stream": labels2, "values":[[(now - S).to_string(), "categorized live line"]]}]})
    );
}

#[tokio::test]
async fn replay_26_tail_slow_reader_dropped_entries() {
    let loki = FakeLoki::start(FakeLokiConfig {
        now_ns: Some(NOW),
        ..Default::default()
    });
    let labels = [
        ("log_type", "application"),
        ("kubernetes_namespace_name", "tekton-ci"),
        ("kubernetes_pod_name", "build-app-run-x7k2p-slow-pod"),
        ("kubernetes_container_name", "step-slow"),
    ];
    let q = r#"{kubernetes_pod_name="build-app-run-x7k2p-slow-pod"}"#;
    let mut ws = open_tail(&tail_url(&loki, q, &format!("&start={NOW}")), &[]).await;
    while loki.active_tails() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    loki.stall_tails_after(0);
    for p in 0..14 {
        let lines: Vec<String> = (0..250)
            .map(|i| format!("slow reader line {p:02}-{i:04}"))
            .collect();
        let entries: Vec<(i64, &str)> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| (NOW - 60 * S + (p * 250 + i as i64) * 1000, l.as_str()))
            .collect();
        loki.push_lines(&labels, &entries);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    loki.resume_tails();
    let mut pings = 0;
    let mut frames = Vec::new();
    for _ in 0..10 {
        let f = next_text(&mut ws, &mut pings).await;
        assert!(f.get("dropped_entries").is_none());
        frames.push(f["streams"].as_array().unwrap().len());
    }
    assert!(frames.iter().all(|n| (1..=100).contains(n)), "{frames:?}");
    // Nothing more until a new entry arrives; then the drops (capped at 1000) come with it.
    assert!(tokio::time::timeout(Duration::from_millis(300), ws.next())
        .await
        .is_err());
    loki.push_lines(&labels, &[(NOW - S, "pushed after the reader caught up")]);
    let f = next_text(&mut ws, &mut pings).await;
    assert_eq!(f["streams"].as_array().unwrap().len(), 1);
    assert_eq!(
        f["streams"][0]["values"][0][1],
        "pushed after the reader caught up"
    );
    let dropped = f["dropped_entries"].as_array().unwrap();
    assert_eq!(dropped.len(), 1000);
    assert_eq!(
        dropped[0]["labels"]["kubernetes_container_name"],
        "step-slow"
    );
    assert!(dropped[0]["timestamp"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .is_ok());
}

#[tokio::test]
async fn replay_27_tail_errors() {
    let now = B + 1000 * S;
    let loki = FakeLoki::start(FakeLokiConfig {
        now_ns: Some(now),
        ..Default::default()
    });
    let refused = |url: String| async move {
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => (
                resp.status().as_u16(),
                String::from_utf8(resp.body().clone().unwrap_or_default()).unwrap(),
            ),
            other => panic!("expected a refused handshake, got {other:?}"),
        }
    };
    let bad = r#"{kubernetes_pod_name="build-app-run-x7k2p-tail-pod""#;
    assert_eq!(
        refused(tail_url(&loki, bad, "")).await,
        (
            400,
            "parse error at line 1, col 52: syntax error: unexpected $end, expecting } or ,"
                .to_string()
        )
    );
    assert_eq!(
        refused(tail_url(&loki, TAIL_POD_QUERY, "&delay_for=6")).await,
        (400, "delay_for can't be greater than 5".to_string())
    );
    assert_eq!(
        refused(tail_url(&loki, r#"{kubernetes_pod_name=~".*"}"#, "")).await,
        (400, r#"parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~".*" does not meet this requirement, but app=~".+" will"#.to_string())
    );
    // limit > max_entries_limit_per_query is fine on tail.
    let mut ws = open_tail(&tail_url(&loki, TAIL_POD_QUERY, "&limit=5001"), &[]).await;
    drop(ws.close(None).await);
    let start = now - (800 * 3600 * S + 3_007_853_681);
    let mut ws = open_tail(
        &tail_url(&loki, TAIL_POD_QUERY, &format!("&start={start}")),
        &[],
    )
    .await;
    assert_eq!(
        close_of(&mut ws).await,
        (CloseCode::Error, "rpc error: code = Code(400) desc = the query time range exceeds the limit (query length: 800h0m3.007853681s, limit: 30d1h)".to_string())
    );
    let metric = r#"count_over_time({kubernetes_pod_name="build-app-run-x7k2p-tail-pod"}[1m])"#;
    let mut ws = open_tail(&tail_url(&loki, metric, ""), &[]).await;
    assert_eq!(
        close_of(&mut ws).await,
        (
            CloseCode::Error,
            "only log selector is supported".to_string()
        )
    );
    let r = get(
        &loki,
        "/loki/api/v1/tail",
        &[("query", TAIL_POD_QUERY)],
        &[],
    )
    .await;
    assert_push_error(&r, 400, "Bad Request");
    assert_eq!(r.headers.get("sec-websocket-version").unwrap(), "13");
    // 10 concurrent tails are fine, the 11th is closed with 1011.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut open = Vec::new();
    for _ in 0..10 {
        open.push(open_tail(&tail_url(&loki, TAIL_POD_QUERY, ""), &[]).await);
    }
    while loki.active_tails() < 10 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut ws = open_tail(&tail_url(&loki, TAIL_POD_QUERY, ""), &[]).await;
    assert_eq!(
        close_of(&mut ws).await,
        (CloseCode::Error, "rpc error: code = Code(400) desc = max concurrent tail requests limit exceeded, count > limit (11 > 10)".to_string())
    );
    drop(open);
}

#[tokio::test]
async fn tail_delay_for_and_future_entries_wait_for_the_clock() {
    let loki = FakeLoki::start(FakeLokiConfig {
        now_ns: Some(NOW),
        ..Default::default()
    });
    let labels = [("kubernetes_pod_name", "build-app-run-x7k2p-tail-pod")];
    let mut ws = open_tail(
        &tail_url(&loki, TAIL_POD_QUERY, &format!("&start={NOW}&delay_for=3")),
        &[],
    )
    .await;
    while loki.active_tails() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    loki.push_lines(&labels, &[(NOW - S, "pushed with delay_for=3")]);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), ws.next())
            .await
            .is_err(),
        "held for delay_for"
    );
    loki.advance(Duration::from_secs(2));
    let mut pings = 0;
    let f = next_text(&mut ws, &mut pings).await;
    assert_eq!(f["streams"][0]["values"][0][1], "pushed with delay_for=3");
}

// ---------------------------------------------------------------------------------------------
// Paging property: forward pages with `start = last ts` (inclusive), dedup by (stream, ts, line),
// and a raised limit when a page is a single timestamp, reconstruct every entry exactly once;
// every page is exactly Loki's top-`limit` entries from `start`.
// ---------------------------------------------------------------------------------------------

use proptest::prelude::*;
use std::collections::{BTreeSet, HashSet};

type Key = (String, i64, String);

async fn page(loki: &FakeLoki, start: i64, end: i64, limit: usize) -> Vec<Key> {
    let (s, e, l) = (start.to_string(), end.to_string(), limit.to_string());
    let r = query(
        loki,
        &[
            ("query", r#"{app="paging"}"#),
            ("start", &s),
            ("end", &e),
            ("limit", &l),
            ("direction", "forward"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut out = Vec::new();
    for stream in r.result().as_array().unwrap() {
        let pod = stream["stream"]["pod"].as_str().unwrap().to_string();
        for v in stream["values"].as_array().unwrap() {
            out.push((
                pod.clone(),
                v[0].as_str().unwrap().parse().unwrap(),
                v[1].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn forward_paging_reconstructs_every_entry_exactly_once(
        entries in proptest::collection::vec((0usize..3, 0i64..10, 0usize..4), 0..70),
        limit in 1usize..6,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let loki = FakeLoki::start(FakeLokiConfig { now_ns: Some(NOW), ..Default::default() });
            // Expected: entries in push order, exact duplicates collapsed.
            let mut expected: Vec<Key> = Vec::new();
            for (pod, off, line) in &entries {
                let key = (format!("p{pod}"), B + off * S, format!("line {line}"));
                let pod_label = key.0.clone();
                loki.push_lines(&[("app", "paging"), ("pod", pod_label.as_str())], &[(key.1, key.2.as_str())]);
                if !expected.contains(&key) {
                    expected.push(key);
                }
            }
            // Loki's merge order: timestamp, then stream labels (pod), then push order.
            let mut oracle: Vec<(usize, &Key)> = expected.iter().enumerate().collect();
            oracle.sort_by(|(ia, a), (ib, b)| (a.1, &a.0, ia).cmp(&(b.1, &b.0, ib)));
            let end = B + 100 * S;
            let (mut start, mut lim) = (B, limit);
            let mut seen: HashSet<Key> = HashSet::new();
            let mut got: Vec<Key> = Vec::new();
            for _ in 0..500 {
                let p = page(&loki, start, end, lim).await;
                let top: BTreeSet<&Key> = oracle.iter().map(|(_, k)| *k).filter(|k| k.1 >= start).take(lim).collect();
                assert_eq!(p.iter().collect::<BTreeSet<_>>(), top, "page from {start} limit {lim}");
                assert_eq!(p.len(), top.len());
                for k in &p {
                    if seen.insert(k.clone()) {
                        got.push(k.clone());
                    }
                }
                if p.len() < lim {
                    let got_set: BTreeSet<&Key> = got.iter().collect();
                    assert_eq!(got.len(), expected.len());
                    assert_eq!(got_set, expected.iter().collect::<BTreeSet<_>>());
                    return;
                }
                let last = p.iter().map(|k| k.1).max().unwrap();
                if p.iter().all(|k| k.1 == start) {
                    lim *= 2; // a page made of one timestamp: raise the limit
                    assert!(lim <= 5000);
                } else {
                    start = last;
                    lim = limit;
                }
            }
            panic!("paging did not finish");
        });
    }
}

#[test]
fn start_outside_a_runtime_is_refused_clearly() {
    let r = std::panic::catch_unwind(|| FakeLoki::start(FakeLokiConfig::default()));
    assert!(r.is_err());
}

async fn lines_and_labels(loki: &FakeLoki, q: &str) -> (u16, Vec<(String, Value)>) {
    let r = query(
        loki,
        &[
            ("query", q),
            ("start", B_S),
            ("end", B60_S),
            ("direction", "forward"),
        ],
    )
    .await;
    if r.status != 200 {
        return (r.status, vec![]);
    }
    let mut out: Vec<(i64, String, Value)> = Vec::new();
    for s in r.result().as_array().unwrap() {
        for v in s["values"].as_array().unwrap() {
            out.push((
                v[0].as_str().unwrap().parse().unwrap(),
                v[1].as_str().unwrap().to_string(),
                s["stream"].clone(),
            ));
        }
    }
    out.sort_by_key(|(ts, _, _)| *ts);
    (200, out.into_iter().map(|(_, l, s)| (l, s)).collect())
}

#[tokio::test]
async fn logql_subset_semantics() {
    let loki = FakeLoki::start(FakeLokiConfig {
        now_ns: Some(NOW),
        ..Default::default()
    });
    let json_line = r#"{"msg":"hello world","app":"dup","kubernetes":{"labels":{"tekton.dev/taskRunUID":"U1"},"app":"inner"},"n":3,"ok":true,"arr":[1,2],"nul":null,"1bad key":"v"}"#;
    loki.push_lines(
        &[("app", "x"), ("namespace", "ci")],
        &[
            (B + S, json_line),
            (B + 2 * S, "plain text line"),
            (B + 3 * S, "ERROR: boom"),
        ],
    );
    let (_, all) = lines_and_labels(&loki, r#"{app="x"} | json"#).await;
    assert_eq!(all.len(), 3);
    let l = &all[0].1;
    assert_eq!(l["msg"], "hello world");
    assert_eq!(l["app"], "x");
    assert_eq!(l["app_extracted"], "dup");
    assert_eq!(l["kubernetes_labels_tekton_dev_taskRunUID"], "U1");
    assert_eq!(l["kubernetes_app"], "inner");
    assert_eq!(
        (l["n"].as_str(), l["ok"].as_str(), l["_1bad_key"].as_str()),
        (Some("3"), Some("true"), Some("v"))
    );
    assert!(l.get("arr").is_none() && l.get("nul").is_none() && l.get("__error__").is_none());
    assert_eq!(all[1].1["__error__"], "JSONParserErr");
    assert_eq!(
        all[1].1["__error_details__"],
        "Value looks like object, but can't find closing '}' symbol"
    );
    let (_, ok) = lines_and_labels(&loki, r#"{app="x"} | json | __error__="""#).await;
    assert_eq!(ok.len(), 1);
    let (_, dropped) = lines_and_labels(
        &loki,
        r#"{app="x"} | json | drop __error__, __error_details__"#,
    )
    .await;
    assert_eq!(dropped.len(), 3);
    assert!(dropped
        .iter()
        .all(|(_, l)| l.get("__error__").is_none() && l.get("__error_details__").is_none()));
    let q = r#"{app="x"} | json uid="kubernetes.labels[\"tekton.dev/taskRunUID\"]", first="arr[0]" | uid="U1" | line_format "{{ .uid }} {{.first}}""#;
    let (_, got) = lines_and_labels(&loki, q).await;
    assert_eq!(
        got.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(),
        vec!["U1 1"]
    );
    let (_, got) = lines_and_labels(
        &loki,
        r#"{app=~"x|y", namespace!="prod"} |~ "(?i)error" != "warn""#,
    )
    .await;
    assert_eq!(
        got.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(),
        vec!["ERROR: boom"]
    );
    let (_, got) = lines_and_labels(&loki, "{app=`x`} |= `plain` | keep app").await;
    assert_eq!(
        got,
        vec![("plain text line".to_string(), json!({"app":"x"}))]
    );
    let (_, got) =
        lines_and_labels(&loki, r#"{app="x"} | json | msg=~"hello.*", ok!="false""#).await;
    assert_eq!(got.len(), 1);
    let (_, got) = lines_and_labels(&loki, r#"{app="x"} !~ "^(plain|ERROR)""#).await;
    assert_eq!(got[0].0, json_line);
    for q in [
        r#"{app="x"} | json | n > 2"#,
        r#"{app="x"} |= "a" or "b""#,
        r#"sum(count_over_time({app="x"}[1m]))"#,
        r#"{app="x"} | line_format "{{ .msg | ToUpper }}""#,
    ] {
        assert_eq!(lines_and_labels(&loki, q).await.0, 501, "{q}");
    }
}

/// A fake that adds no labels of its own (no `service_name`, no `detected_level`), clock at NOW.
fn fake_without_added_labels() -> FakeLoki {
    FakeLoki::start(FakeLokiConfig {
        now_ns: Some(NOW),
        discover_service_name: false,
        discover_log_levels: false,
        ..Default::default()
    })
}

/// Pushes `line` with structured metadata `meta` as the only entry of the stream
/// `{case="<case>"}`, runs `{case="<case>"} | json <params>` and answers the entry's labels
/// without `case`.
async fn json_params_labels(
    loki: &FakeLoki,
    case: &str,
    line: &str,
    meta: &[(&str, &str)],
    params: &str,
) -> Value {
    loki.push_lines_with_metadata(&[("case", case)], &[(B + S, line, meta)]);
    let (status, mut got) =
        lines_and_labels(loki, &format!(r#"{{case="{case}"}} | json {params}"#)).await;
    assert_eq!((status, got.len()), (200, 1), "{case}");
    let mut labels = got.remove(0).1;
    assert_eq!(
        labels.as_object_mut().unwrap().remove("case"),
        Some(json!(case))
    );
    labels
}

/// A case of [`json_params_follow_lokis_reader`]: the case name, the line, its structured
/// metadata, the `| json` parameters and the labels expected (without `case`).
type JsonParamsCase<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str, Value);

/// Labels of `| json name="path"` worked out by hand from Loki's reader (`jsonparser.EachKey`
/// as `JSONExpressionParser` calls it).
#[tokio::test]
async fn json_params_follow_lokis_reader() {
    let loki = fake_without_added_labels();
    let err = |details: &str| json!({"__error__":"JSONParserErr","__error_details__":details});
    let cases: Vec<JsonParamsCase<'_>> = vec![
        // The first of duplicate keys wins, also below duplicate parent objects.
        (
            "duplicates",
            r#"{"k":{"a":"1"},"k":{"a":"2","b":"3"},"m":"x","m":"y"}"#,
            &[],
            r#"a="k.a", b="k.b", m="m""#,
            json!({"a":"1","b":"3","m":"x"}),
        ),
        // U+FFFD, raw or escaped, becomes a space.
        (
            "fffd",
            "{\"s\":\"a\u{FFFD}b\\ufffdc\",\"t\":\"\u{FFFD}\"}",
            &[],
            "s, t",
            json!({"s":"a b c","t":" "}),
        ),
        // Arrays are unescaped, objects raw, numbers whatever their token, null is empty (and
        // so hides the metadata label of its name).
        (
            "kinds",
            r#"{"arr":["a\"b","\u00e9"],"obj":{"x":"\u00e9","y":[1, 2]},"nul":null,"n":12abc,"neg":-,"e":1e5 ,"t":true}"#,
            &[("nul", "meta")],
            "arr, obj, nul, n, neg, e, t",
            json!({"arr":"[\"a\"b\",\"é\"]","obj":r#"{"x":"\u00e9","y":[1, 2]}"#,"n":"12abc","neg":"-","e":"1e5","t":"true"}),
        ),
        // A value of unknown type: an error, and the label is not set (the metadata one shows).
        (
            "unknown_value",
            r#"{"a":tru,"b":"x"}"#,
            &[("a", "meta")],
            "a, b",
            json!({"a":"meta","b":"x","__error__":"JSONParserErr","__error_details__":"Unknown value type"}),
        ),
        // Cut after the last field found: read as whole.
        (
            "cut_after",
            r#"{"a":"1","b":{"c":2},"d":[1,2"#,
            &[],
            r#"a, c="b.c""#,
            json!({"a":"1","c":"2"}),
        ),
        // Cut before a field: the fields found so far, the rest empty, no error.
        (
            "cut_before",
            r#"{"a":"1","b"#,
            &[],
            "a, b, c",
            json!({"a":"1"}),
        ),
        // Cut inside a value being read: that value's error.
        (
            "cut_in_value",
            r#"{"a":"1","b":"2"#,
            &[],
            "a, b",
            json!({"a":"1","__error__":"JSONParserErr","__error_details__":"Value is string, but can't find closing '\"' symbol"}),
        ),
        // Only `"`, `{` or `[` may start the line: otherwise an error without details.
        (
            "leading_space",
            r#" {"a":"1"}"#,
            &[],
            "a",
            json!({"__error__":"JSONParserErr"}),
        ),
        (
            "leading_letter",
            r#"x{"a":"1"}"#,
            &[],
            "a",
            json!({"__error__":"JSONParserErr"}),
        ),
        // A key outside any object, an array below level 0.
        (
            "key_at_level_0",
            r#"{"x":1}"a":"2""#,
            &[],
            "a",
            err("Malformed JSON error"),
        ),
        (
            "array_below_level_0",
            r#"{"x":1}} [1] {"a":"2"}"#,
            &[],
            "a",
            err("Malformed JSON error"),
        ),
        // A bad escape empties the value (which then hides the metadata label of its name).
        (
            "bad_escapes",
            r#"{"a":"x\qy","b":"\u12","c":"ok\/\t"}"#,
            &[("a", "meta"), ("b", "meta")],
            "a, b, c",
            json!({"c":"ok/\t"}),
        ),
        // Surrogate pairs (bytes 6 and 7 are not checked), a lone one empties the value, a pair
        // beyond U+10FFFF is U+FFFD and so a space, a second value below DC00 empties it.
        (
            "surrogates",
            r#"{"r":"\ud83d\ude80","loose":"\ud83dXYde80","high":"a\udc00\udc00b","low":"\ud83d\u0041BCD","lone":"x\ud83d"}"#,
            &[("low", "meta"), ("lone", "meta")],
            "r, loose, high, low, lone",
            json!({"r":"🚀","loose":"🚀","high":"a b"}),
        ),
        // Keys are unescaped before they are compared; keys inside arrays are never seen.
        (
            "keys",
            r#"{"mess\u0061ge":"hi","list":[{"a":"in array"}],"a":"top"}"#,
            &[],
            "message, a",
            json!({"message":"hi","a":"top"}),
        ),
        // Commas and colons between members are not checked.
        (
            "no_commas",
            r#"{"a":"1" "b":"2" "c" : {"d":true}}"#,
            &[],
            r#"a, b, d="c.d""#,
            json!({"a":"1","b":"2","d":"true"}),
        ),
    ];
    for (case, line, meta, params, want) in cases {
        assert_eq!(
            json_params_labels(&loki, case, line, meta, params).await,
            want,
            "{case}: {line}"
        );
    }
    // Missing fields are empty for `line_format` and label filters.
    let (_, got) = lines_and_labels(
        &loki,
        r#"{case="cut_before"} | json a, b, c | b="" | line_format "[{{.a}}|{{.b}}|{{.c}}]""#,
    )
    .await;
    assert_eq!(got[0].0, "[1||]");
}

/// Labels and line of the only entry of `q`, with categorize-labels: (stream, line, the entry's
/// label categories).
async fn categorized_entry(loki: &FakeLoki, q: &str) -> (Value, String, Value) {
    let params = [
        ("query", q),
        ("start", B_S),
        ("end", B60_S),
        ("direction", "forward"),
    ];
    let cat = [("X-Loki-Response-Encoding-Flags", "categorize-labels")];
    let result = get(loki, "/loki/api/v1/query_range", &params, &cat)
        .await
        .result();
    assert_eq!(result.as_array().map(Vec::len), Some(1), "{q}");
    let values = result[0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 1, "{q}");
    let line = values[0][1].as_str().unwrap().to_string();
    (result[0]["stream"].clone(), line, values[0][2].clone())
}

/// Names shared by index labels, structured metadata and parsed fields, as Loki's
/// `LabelsBuilder` resolves them.
#[tokio::test]
async fn labels_named_alike_get_extracted_names_or_hide_each_other() {
    let loki = fake_without_added_labels();
    // A field named like an index label is `<name>_extracted`; both can be looked up.
    loki.push_lines(
        &[("case", "clash"), ("message", "from index")],
        &[(B + S, r#"{"message":"from line"}"#)],
    );
    let q = r#"{case="clash"} | json message="message" | message_extracted="from line" | message="from index" | line_format "{{.message}} / {{.message_extracted}}""#;
    assert_eq!(
        lines_and_labels(&loki, q).await.1,
        vec![(
            "from index / from line".to_string(),
            json!({"case":"clash","message":"from index","message_extracted":"from line"})
        )]
    );
    // Metadata named like an index label is `<name>_extracted`; a later one of the same final
    // name replaces it.
    loki.push_lines_with_metadata(
        &[("case", "meta"), ("trace", "idx")],
        &[
            (B + S, "renamed", &[("trace", "m1"), ("span", "s1")]),
            (
                B + 2 * S,
                "replaced",
                &[("trace", "m1"), ("trace_extracted", "m2")],
            ),
        ],
    );
    let q = r#"{case="meta"} | trace_extracted=~"m." | line_format "{{.trace}} {{.trace_extracted}} {{.span}}""#;
    assert_eq!(
        lines_and_labels(&loki, q).await.1,
        vec![
            (
                "idx m1 s1".to_string(),
                json!({"case":"meta","trace":"idx","trace_extracted":"m1","span":"s1"})
            ),
            (
                "idx m2 ".to_string(),
                json!({"case":"meta","trace":"idx","trace_extracted":"m2"})
            ),
        ]
    );
    assert_eq!(
        categorized_entry(&loki, r#"{case="meta"} |= "renamed""#).await,
        (
            json!({"case":"meta","trace":"idx"}),
            "renamed".to_string(),
            json!({"structuredMetadata":{"span":"s1","trace_extracted":"m1"}})
        )
    );
    // Metadata hides an index label of its final name; a parsed label hides both.
    loki.push_lines_with_metadata(
        &[
            ("case", "hide"),
            ("trace", "idx"),
            ("trace_extracted", "idx2"),
        ],
        &[(
            B + S,
            r#"{"t":"parsed","s":"p"}"#,
            &[("trace", "m"), ("span", "meta span")],
        )],
    );
    assert_eq!(
        categorized_entry(&loki, r#"{case="hide"}"#).await,
        (
            json!({"case":"hide","trace":"idx"}),
            r#"{"t":"parsed","s":"p"}"#.to_string(),
            json!({"structuredMetadata":{"span":"meta span","trace_extracted":"m"}})
        )
    );
    let q = r#"{case="hide"} | line_format "{{.trace_extracted}}""#;
    assert_eq!(lines_and_labels(&loki, q).await.1[0].0, "m");
    let q = r#"{case="hide"} | json trace="t", span="s""#;
    assert_eq!(
        categorized_entry(&loki, q).await,
        (
            json!({"case":"hide","trace":"idx"}),
            r#"{"t":"parsed","s":"p"}"#.to_string(),
            json!({"parsed":{"span":"p","trace_extracted":"parsed"}})
        )
    );
    let q = r#"{case="hide"} | json trace="t", span="s" | line_format "{{.trace}} {{.trace_extracted}} {{.span}}""#;
    assert_eq!(
        lines_and_labels(&loki, q).await.1,
        vec![(
            "idx parsed p".to_string(),
            json!({"case":"hide","trace":"idx","trace_extracted":"parsed","span":"p"})
        )]
    );
}

#[tokio::test]
async fn stops_on_drop() {
    let loki = FakeLoki::start(FakeLokiConfig::default());
    let addr = loki.addr();
    assert_eq!(get(&loki, "/ready", &[], &[]).await.status, 200);
    drop(loki);
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the listener is closed after drop");
}

/// 5,000 lines (results-captures/01 shape) paged forward with the service's default query.
#[tokio::test]
async fn large_log_forward_paging_with_the_service_query() {
    let loki = FakeLoki::start(FakeLokiConfig {
        now_ns: Some(B + 3600 * S),
        ..Default::default()
    });
    for (c, n, off) in [("step-prepare", 2000, 0i64), ("step-build", 3000, 2000)] {
        let lines: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"message":"{c} line {i:07} lorem ipsum","level":"default","log_type":"application","kubernetes":{{"namespace_name":"results-cap","pod_name":"p","container_name":"{c}","labels":{{"tekton_dev_taskRunUID":"U"}}}}}}"#))
            .collect();
        let entries: Vec<(i64, &str)> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| (B + (off + i as i64) * MS, l.as_str()))
            .collect();
        loki.push_lines(
            &[
                ("log_type", "application"),
                ("kubernetes_namespace_name", "results-cap"),
                ("kubernetes_container_name", c),
            ],
            &entries,
        );
    }
    let q = r#"{ log_type="application",kubernetes_namespace_name="results-cap" }| json container="kubernetes.container_name", message="message", uid="kubernetes.labels.tekton_dev_taskRunUID" |uid="U"| line_format "container-{{.container}}: message={{.message}}""#;
    let (mut start, end) = (B, (B + 10 * S).to_string());
    let mut seen: HashSet<(i64, String)> = HashSet::new();
    let mut ordered: Vec<(i64, String)> = Vec::new();
    loop {
        let s = start.to_string();
        let r = query(
            &loki,
            &[
                ("query", q),
                ("start", &s),
                ("end", &end),
                ("limit", "1700"),
                ("direction", "forward"),
            ],
        )
        .await;
        let mut page: Vec<(i64, String)> = r
            .result()
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|st| st["values"].as_array().unwrap().clone())
            .map(|v| {
                (
                    v[0].as_str().unwrap().parse().unwrap(),
                    v[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        page.sort();
        for e in &page {
            if seen.insert(e.clone()) {
                ordered.push(e.clone());
            }
        }
        if page.len() < 1700 {
            break;
        }
        start = page.last().unwrap().0;
    }
    assert_eq!(ordered.len(), 5000);
    assert_eq!(
        ordered[0].1,
        "container-step-prepare: message=step-prepare line 0000000 lorem ipsum"
    );
    assert_eq!(
        ordered[4999].1,
        "container-step-build: message=step-build line 0002999 lorem ipsum"
    );
}

#[tokio::test]
async fn extreme_parameters_do_not_panic() {
    let loki = seeded().await;
    for (start, end) in [
        ("-9223372036", "9223372036"),
        ("-9223372036854775808", "9223372036854775807"),
        ("0", "1e400.5"),
    ] {
        let r = query(
            &loki,
            &[("query", NS_QUERY), ("start", start), ("end", end)],
        )
        .await;
        assert!(
            r.status == 200 || r.status == 400,
            "{start}..{end}: {} {}",
            r.status,
            r.body
        );
    }
    for q in [
        r#"{a=~"\x4"}"#,
        r#"{a=~"(?P<n"}"#,
        r#"{a=~"[z-a]"}"#,
        r#"{a=~"a**"}"#,
        r#"{a="b"} |~ "(""#,
        "{a=\"\u{e9}\"",
        "{\u{e9}=\"x\"}",
    ] {
        let r = query(&loki, &[("query", q), ("start", B_S), ("end", B60_S)]).await;
        assert_eq!(r.status, 400, "{q}: {}", r.body);
    }
    let r = push_raw(
        &loki,
        &[("Content-Type", "application/x-protobuf")],
        proto_push("{\u{e9}=\"x\"}", &[(NOW, "x", &[])]).to_snappy_body(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        "couldn't parse labels: 1:2: parse error: unexpected character inside braces: '\u{e9}'\n"
    );
}

#[tokio::test]
async fn dropped_tails_end_after_their_frames_abruptly_or_with_1011() {
    let loki = FakeLoki::start(FakeLokiConfig {
        now_ns: Some(NOW),
        ..Default::default()
    });
    let labels = [("kubernetes_pod_name", "build-app-run-x7k2p-tail-pod")];
    let url = tail_url(&loki, TAIL_POD_QUERY, &format!("&start={NOW}"));
    for how in [TailDrop::Abrupt, TailDrop::IngestersClosed] {
        loki.drop_tails_after(2, how.clone());
        let mut ws = open_tail(&url, &[]).await;
        while loki.active_tails() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut pings = 0;
        for i in 0..2 {
            loki.push_lines(&labels, &[(NOW - S + i, &format!("{how:?} {i}"))]);
            let frame = next_text(&mut ws, &mut pings).await;
            assert_eq!(frame["streams"][0]["values"][0][1], format!("{how:?} {i}"));
        }
        match how {
            TailDrop::Abrupt => {
                let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
                    .await
                    .expect("the tail ends");
                assert!(
                    matches!(end, None | Some(Err(_))),
                    "no close frame: {end:?}"
                );
            }
            TailDrop::IngestersClosed => {
                let (code, reason) = close_of(&mut ws).await;
                assert_eq!(code, CloseCode::Error);
                assert_eq!(reason, "all ingesters closed the connection");
            }
        }
        loki.keep_tails();
        while loki.active_tails() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
