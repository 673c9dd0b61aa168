//! Faults injected around the real server: the fake Loki answers with bursts
//! of 5xx, 429 storms (with and without `Retry-After`), slow pages, bodies cut
//! off, truncated or not Loki's at all, and drops its tail websocket; the
//! Results database restarts. The server serves logs of sequence-numbered
//! lines (`line 000123`) to every kind of client: REST text, NDJSON, gRPC
//! v1alpha3 GetLog, and following over REST (text and NDJSON).
//!
//! Each client must get every line once, in order, or an explicit error: an
//! error status, a body that breaks off, a non-OK gRPC status. Never a clean
//! end that misses lines, never a line twice, never a hang. Stronger, where
//! the faults a read meets can be told in advance: when every one is within
//! the connector's retries the read is complete, and when one cannot be
//! retried (or too many come in a row) it fails. An NDJSON read that failed
//! resumes from its last cursor with exactly the rest.
//!
//! Random fault points are property tests of few cases (`PROPTEST_CASES`
//! overrides them), on servers started once per test. Nothing asserts how
//! long anything takes; `HANG` only turns a hang into a failure.

mod postgres;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use futures::StreamExt;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use tekton_results_logs::proto::tekton::results::v1alpha3;
use tekton_results_logs::timestamp::{format_rfc3339_ns, now_ns, parse_rfc3339_ns};

use self::postgres::PrivatePostgres;
use crate::fakes::loki::{FakeLoki, FakeLokiConfig, Fault, TailDrop};
use crate::support::{
    http, loki_runs_server, push_lint_lines, running_runs_file, TestServer, RUNS_FIXTURE,
};
use crate::support_db::{db_env, FIXTURES, SCHEMA};

/// Tries per Loki request (the connector's retry policy): this many failed
/// answers in a row end a read.
const ATTEMPTS: usize = 5;

/// `LOGGING_PLUGIN_TIMEOUT` of the servers here.
const TIMEOUT: Duration = Duration::from_secs(1);

/// A read still going after this has hung.
const HANG: Duration = Duration::from_secs(120);

const QUERY_RANGE: &str = "/loki/api/v1/query_range";
const SECOND: i64 = 1_000_000_000;

/// The runs fixture's lint TaskRun: completed in the history tests, running
/// in the follow tests.
const LINT: &str =
    "demo/results/a0a0a0a0-0000-4000-8000-000000000001/logs/a0a0a0a0-0000-4000-8000-000000000002";

/// Lines of the history tests' log, read in pages of `PAGE` lines.
const LINES: usize = 1000;
const PAGE: &str = "100";

/// The `i`th line's message.
fn message(i: usize) -> String {
    format!("line {i:06}")
}

/// The text of lines `lines` of `container`, as the server renders them.
fn text_of(container: &str, lines: std::ops::Range<usize>) -> String {
    lines
        .map(|i| format!("container-{container}: message={}\n", message(i)))
        .collect()
}

// ---------------------------------------------------------------------------
// Clients and what they got
// ---------------------------------------------------------------------------

/// A way to read a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// REST, `text/plain`.
    Text,
    /// REST, `application/x-ndjson`.
    Ndjson,
    /// gRPC v1alpha3 `GetLog`.
    Grpc,
    /// REST text with `follow=true`.
    Follow,
    /// REST NDJSON with `follow=true`.
    FollowNdjson,
}

/// The clients of a log whose run has completed.
const HISTORY_CLIENTS: [Client; 4] = [Client::Text, Client::Ndjson, Client::Grpc, Client::Follow];

/// The clients of a read that does not follow.
const READERS: [Client; 3] = [Client::Text, Client::Ndjson, Client::Grpc];

impl Client {
    /// Reads `log` from the server at `base` to its end, counting its lines
    /// in `seen` as they come.
    async fn read(self, base: String, log: String, seen: Arc<AtomicUsize>) -> Outcome {
        let (parent, rest) = log.split_once('/').unwrap();
        let url = format!("{base}/apis/results.tekton.dev/v1alpha3/parents/{parent}/{rest}");
        let read = async {
            match self {
                Self::Text => rest_read(url, false, seen).await,
                Self::Ndjson => rest_read(url, true, seen).await,
                Self::Follow => rest_read(format!("{url}?follow=true"), false, seen).await,
                Self::FollowNdjson => rest_read(format!("{url}?follow=true"), true, seen).await,
                Self::Grpc => grpc_read(base, log.clone(), seen).await,
            }
        };
        tokio::time::timeout(HANG, read)
            .await
            .unwrap_or_else(|_| panic!("{self:?}: the read of {log} hung"))
    }
}

/// How a read ended.
#[derive(Debug)]
enum Outcome {
    /// Cleanly, with this text (NDJSON: the records' messages, one a line).
    Complete(String),
    /// With an explicit error, after the whole lines of `text`; NDJSON: the
    /// cursor of the last record.
    Failed {
        text: String,
        error: String,
        cursor: Option<String>,
    },
}

impl Outcome {
    fn refused(error: String) -> Self {
        Self::Failed {
            text: String::new(),
            error,
            cursor: None,
        }
    }

    /// This outcome of a read resumed after `text`.
    fn after(self, text: &str) -> Self {
        match self {
            Self::Complete(rest) => Self::Complete(format!("{text}{rest}")),
            Self::Failed {
                text: rest,
                error,
                cursor,
            } => Self::Failed {
                text: format!("{text}{rest}"),
                error,
                cursor,
            },
        }
    }
}

/// Whole lines out of a body, as it arrives.
struct Lines {
    ndjson: bool,
    pending: Vec<u8>,
    text: String,
    /// NDJSON: the last record's cursor.
    cursor: Option<String>,
    seen: Arc<AtomicUsize>,
}

impl Lines {
    fn new(ndjson: bool, seen: Arc<AtomicUsize>) -> Self {
        Self {
            ndjson,
            pending: Vec::new(),
            text: String::new(),
            cursor: None,
            seen,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        while let Some(at) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=at).collect();
            let line = &line[..at];
            if self.ndjson {
                // As the text renders it: a PipelineRun's lines start with their task.
                let record: Option<serde_json::Value> = serde_json::from_slice(line).ok();
                match record
                    .as_ref()
                    .and_then(|r| Some((r["task"].as_str(), r["message"].as_str()?)))
                {
                    Some((task, message)) => {
                        if let Some(task) = task {
                            self.text.push_str(&format!("[{task}] "));
                        }
                        self.text.push_str(message);
                        self.cursor = record
                            .as_ref()
                            .and_then(|r| r["cursor"].as_str())
                            .map(str::to_owned);
                    }
                    None => self.text.push_str(&format!(
                        "<not a record: {}>",
                        String::from_utf8_lossy(line)
                    )),
                }
            } else {
                self.text.push_str(&String::from_utf8_lossy(line));
            }
            self.text.push('\n');
            self.seen.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The text of a body that ended cleanly: a cut line stays visible.
    fn finish(mut self) -> String {
        self.text.push_str(&String::from_utf8_lossy(&self.pending));
        self.text
    }

    /// How a body that broke off with `error` ended.
    fn broken(self, error: String) -> Outcome {
        Outcome::Failed {
            text: self.text,
            error,
            cursor: self.cursor,
        }
    }
}

async fn rest_read(url: String, ndjson: bool, seen: Arc<AtomicUsize>) -> Outcome {
    let mut request = http().get(&url);
    if ndjson {
        request = request.header("accept", "application/x-ndjson");
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return Outcome::refused(format!("no response: {e}")),
    };
    let status = response.status().as_u16();
    if status != 200 {
        let body = response.text().await.unwrap_or_default();
        return Outcome::refused(format!("HTTP {status}: {body}"));
    }
    let mut lines = Lines::new(ndjson, seen);
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => lines.push(&chunk),
            Err(e) => return lines.broken(format!("the body broke off: {e:?}")),
        }
    }
    Outcome::Complete(lines.finish())
}

async fn grpc_read(base: String, log: String, seen: Arc<AtomicUsize>) -> Outcome {
    let channel = match tonic::transport::Channel::from_shared(base)
        .unwrap()
        .connect()
        .await
    {
        Ok(channel) => channel,
        Err(e) => return Outcome::refused(format!("no connection: {e}")),
    };
    let mut client = v1alpha3::logs_client::LogsClient::new(channel);
    let mut stream = match client.get_log(v1alpha3::GetLogRequest { name: log }).await {
        Ok(response) => response.into_inner(),
        Err(status) => return Outcome::refused(grpc_error(&status)),
    };
    let mut lines = Lines::new(false, seen);
    loop {
        match stream.message().await {
            Ok(Some(body)) => {
                assert_eq!(body.content_type, "text/plain");
                lines.push(&body.data);
            }
            Ok(None) => return Outcome::Complete(lines.finish()),
            Err(status) => return lines.broken(grpc_error(&status)),
        }
    }
}

/// Reads `log` as NDJSON after `cursor` (from the start without one).
async fn resume(base: String, log: &str, cursor: Option<&str>, follow: bool) -> Outcome {
    let (parent, rest) = log.split_once('/').unwrap();
    let mut url = reqwest::Url::parse(&format!(
        "{base}/apis/results.tekton.dev/v1alpha3/parents/{parent}/{rest}"
    ))
    .unwrap();
    if let Some(cursor) = cursor {
        url.query_pairs_mut().append_pair("cursor", cursor);
    }
    if follow {
        url.query_pairs_mut().append_pair("follow", "true");
    }
    tokio::time::timeout(HANG, rest_read(url.into(), true, Arc::default()))
        .await
        .unwrap_or_else(|_| panic!("the resumed read of {log} hung"))
}

/// After an NDJSON read of `log` failed, with its faults gone: resuming from
/// its last cursor gives exactly the rest.
async fn check_resume(
    base: String,
    log: &str,
    failed: &Outcome,
    follow: bool,
    expected: &str,
) -> Result<(), String> {
    let Outcome::Failed { text, cursor, .. } = failed else {
        return Ok(());
    };
    let rest = resume(base, log, cursor.as_deref(), follow).await;
    let client = if follow {
        Client::FollowNdjson
    } else {
        Client::Ndjson
    };
    verdict(client, &rest.after(text), expected, Expect::Complete)
        .map_err(|e| format!("resumed from its cursor: {e}"))
}

fn grpc_error(status: &tonic::Status) -> String {
    assert_ne!(status.code(), tonic::Code::Ok, "an error with status OK");
    format!("gRPC {:?}: {}", status.code(), status.message())
}

/// What a read must end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Complete,
    Failed,
    /// Either, as long as it is honest.
    Either,
}

/// Checks what `client` got against the log's `expected` text.
fn verdict(
    client: Client,
    outcome: &Outcome,
    expected: &str,
    expect: Expect,
) -> Result<(), String> {
    match outcome {
        Outcome::Complete(text) if text != expected => Err(format!(
            "{client:?}: a clean end with the wrong lines: {}",
            difference(expected, text)
        )),
        Outcome::Complete(_) if expect == Expect::Failed => Err(format!(
            "{client:?}: a clean end where a fault could not be overcome"
        )),
        Outcome::Failed { text, error, .. } if !expected.starts_with(text.as_str()) => {
            Err(format!(
                "{client:?}: wrong lines before the error ({error}): {}",
                difference(expected, text)
            ))
        }
        Outcome::Failed { error, .. } if expect == Expect::Complete => Err(format!(
            "{client:?}: failed although every fault was within the retries: {error}"
        )),
        _ => Ok(()),
    }
}

/// Where `got` parts from `expected`, line by line.
fn difference(expected: &str, got: &str) -> String {
    let expected: Vec<&str> = expected.lines().collect();
    let got: Vec<&str> = got.lines().collect();
    let at = expected
        .iter()
        .zip(&got)
        .position(|(e, g)| e != g)
        .unwrap_or(expected.len().min(got.len()));
    format!(
        "{} lines expected, {} got; line {at} expected {:?}, got {:?}",
        expected.len(),
        got.len(),
        expected.get(at),
        got.get(at)
    )
}

/// Fails with every message, if there are any.
fn all_ok(results: Vec<Result<(), String>>) -> Result<(), String> {
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

// ---------------------------------------------------------------------------
// Servers and faults
// ---------------------------------------------------------------------------

/// A fake Loki and the server over it.
struct Rig {
    loki: FakeLoki,
    server: TestServer,
}

impl Rig {
    /// A server over a new fake Loki with runs from the runs fixture, pages of
    /// `PAGE` lines, a `TIMEOUT` per request, and `extra` keys.
    async fn start(extra: &[(&str, &str)]) -> Self {
        let loki = FakeLoki::start(FakeLokiConfig::default());
        let timeout = TIMEOUT.as_secs().to_string();
        let mut env = vec![
            ("LOGGING_PLUGIN_QUERY_LIMIT", PAGE),
            ("LOGGING_PLUGIN_TIMEOUT", timeout.as_str()),
            // The faults make the server warn on every retry.
            ("LOG_LEVEL", "error"),
        ];
        env.extend_from_slice(extra);
        let server = loki_runs_server(&loki, &env).await;
        Self { loki, server }
    }

    /// Injects `plan` into the `query_range` answers, in order.
    fn arm(&self, plan: &[Burst]) {
        self.loki.clear_failures();
        for burst in plan {
            self.loki
                .inject(QUERY_RANGE, burst.skip, burst.count, burst.fault.clone());
        }
    }

    async fn read(&self, client: Client, log: &str) -> Outcome {
        client
            .read(self.server.url(), log.to_owned(), Arc::default())
            .await
    }
}

/// `count` answers spoilt by `fault`, after `skip` good ones.
#[derive(Debug, Clone)]
struct Burst {
    skip: usize,
    count: usize,
    fault: Fault,
}

impl Burst {
    fn new(skip: usize, count: usize, fault: Fault) -> Self {
        Self { skip, count, fault }
    }
}

fn status(status: u16, body: &str, retry_after: Option<&str>) -> Fault {
    Fault::Status {
        status,
        body: body.to_owned(),
        retry_after: retry_after.map(str::to_owned),
    }
}

fn sign_in_page() -> Fault {
    Fault::ForeignBody {
        content_type: "text/html; charset=utf-8".to_owned(),
        body:
            "<!DOCTYPE html><html><body><form action=\"/oauth/start\">Sign in</form></body></html>"
                .to_owned(),
    }
}

/// What a fault does to the request that meets it.
enum Effect {
    /// Nothing the connector sees as a failure.
    Harmless,
    /// A failure the connector tries again.
    Retried,
    /// A failure that ends the read.
    Fatal,
}

fn effect(fault: &Fault) -> Effect {
    match fault {
        Fault::Status {
            status: 408 | 429 | 500..=504,
            ..
        } => Effect::Retried,
        Fault::Status { .. } | Fault::TruncatedBody { .. } | Fault::ForeignBody { .. } => {
            Effect::Fatal
        }
        Fault::CutBody { .. } => Effect::Retried,
        Fault::Delay(delay) if *delay < TIMEOUT => Effect::Harmless,
        Fault::Delay(_) => Effect::Retried,
    }
}

/// How a read that makes `requests` requests when nothing fails must end,
/// given the answers `plan` spoils, in order: a retry sends the same request
/// again, so the read gets as far as its good answers take it.
fn predict(plan: &[Burst], requests: usize) -> Expect {
    let spoilt = plan.iter().flat_map(|burst| {
        std::iter::repeat_n(None, burst.skip)
            .chain(std::iter::repeat_n(Some(&burst.fault), burst.count))
    });
    let (mut answered, mut failed) = (0, 0);
    for answer in spoilt.chain(std::iter::repeat(None)) {
        match answer.map_or(Effect::Harmless, effect) {
            Effect::Harmless => {
                answered += 1;
                failed = 0;
                if answered == requests {
                    return Expect::Complete;
                }
            }
            Effect::Retried => {
                failed += 1;
                if failed == ATTEMPTS {
                    return Expect::Failed;
                }
            }
            Effect::Fatal => return Expect::Failed,
        }
    }
    unreachable!("the answers go on")
}

/// Lines of the history tests' log that share one timestamp: more than a
/// page, so the connector asks again for a larger one.
const CROWD: std::ops::Range<usize> = 500..650;

/// The lint TaskRun's log: `LINES` lines, every seventh at the time of the
/// one before (a page may end inside a timestamp), and the `CROWD` at one.
fn seed_history(loki: &FakeLoki) {
    let mut ts = parse_rfc3339_ns("2026-11-25T09:00:01Z").unwrap();
    let lines: Vec<(i64, &str, String)> = (0..LINES)
        .map(|i| {
            if i % 7 != 0 && !(CROWD.start + 1..CROWD.end).contains(&i) {
                ts += 1_000_000;
            }
            (ts, "lint", message(i))
        })
        .collect();
    push_lint_lines(loki, &lines);
}

/// A rig per history client, with the history seeded, and the number of
/// `query_range` requests a clean read of each makes.
async fn history_rigs() -> Vec<(Client, Rig, usize)> {
    join_all(HISTORY_CLIENTS.map(|client| async move {
        let rig = Rig::start(&[]).await;
        seed_history(&rig.loki);
        let outcome = rig.read(client, LINT).await;
        let expected = text_of("step-lint", 0..LINES);
        verdict(client, &outcome, &expected, Expect::Complete).unwrap();
        let requests = rig.loki.requests_to(QUERY_RANGE).len();
        assert!(requests > 5, "{client:?}: {requests} pages: make more");
        (client, rig, requests)
    }))
    .await
}

/// Every history client reads the lint log with `plan` injected, on its own
/// rig, at the same time; each must end as `predict` says.
async fn read_history_with(rigs: &[(Client, Rig, usize)], plan: &[Burst]) -> Result<(), String> {
    let expected = text_of("step-lint", 0..LINES);
    let reads = rigs.iter().map(|(client, rig, requests)| {
        let expected = &expected;
        async move {
            rig.arm(plan);
            let outcome = rig.read(*client, LINT).await;
            rig.loki.clear_failures();
            let expect = predict(plan, *requests);
            verdict(*client, &outcome, expected, expect)
                .map_err(|e| format!("{e}\n  (expected {expect:?} with {plan:?})"))?;
            if *client == Client::Ndjson {
                check_resume(rig.server.url(), LINT, &outcome, false, expected).await?;
            }
            Ok(())
        }
    });
    all_ok(join_all(reads).await)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `cases` cases unless `PROPTEST_CASES` says otherwise; a short shrink
/// (each case starts reads that take seconds), no regression files.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        max_shrink_iters: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs a property on `runtime` with state made once (servers).
fn check<S, T>(
    runtime: &tokio::runtime::Runtime,
    cases: u32,
    strategy: S,
    state: T,
    case: impl AsyncFn(&T, S::Value) -> Result<(), String>,
) where
    S: Strategy,
{
    let mut runner = TestRunner::new(config(cases));
    let result = runner.run(&strategy, |value| {
        runtime
            .block_on(case(&state, value))
            .map_err(TestCaseError::fail)
    });
    runtime.block_on(async move { drop(state) });
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------

/// The faults a `query_range` answer may meet, the common ones more often.
fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        3 => prop::sample::select(vec![500u16, 502, 503, 504])
            .prop_map(|s| status(s, "upstream connect error or disconnect/reset before headers", None)),
        3 => prop::sample::select(vec![None, Some("0"), Some("1"), Some("Wed, 21 Oct 2015 07:28:00 GMT")])
            .prop_map(|after| status(429, "too many outstanding requests", after)),
        2 => (0.0..1.0f64).prop_map(|keep| Fault::CutBody { keep }),
        1 => (0.0..1.0f64).prop_map(|keep| Fault::TruncatedBody { keep }),
        1 => Just(sign_in_page()),
        1 => Just(status(401, "no org id", None)),
        2 => (0u64..250).prop_map(|ms| Fault::Delay(Duration::from_millis(ms))),
    ]
}

fn burst() -> impl Strategy<Value = Burst> {
    (0usize..10, 1usize..=ATTEMPTS + 1, fault()).prop_map(|(skip, count, fault)| Burst {
        skip,
        count,
        fault,
    })
}

/// Bursts of 5xx, 429 storms with and without `Retry-After`, cut,
/// truncated and foreign bodies and slow pages, at random pages: every
/// client's read is complete when the faults are within the retries, fails
/// when they are not, and is never cut short silently.
#[test]
fn history_reads_under_random_loki_faults_are_complete_or_fail_explicitly() {
    let runtime = runtime();
    let rigs = runtime.block_on(history_rigs());
    let plans = prop::collection::vec(burst(), 1..=3);
    check(&runtime, 16, plans, rigs, async |rigs, plan| {
        read_history_with(rigs, &plan).await
    });
}

/// The edges of the retry budget, for every client: as many failures in a
/// row as there are retries is overcome, one more is an error; answers that
/// cannot be read are errors at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_is_the_edge_between_complete_and_an_error() {
    let rigs = history_rigs().await;
    let throttled = status(429, "too many outstanding requests", None);
    let plans: Vec<(Vec<Burst>, Expect)> = vec![
        (
            vec![Burst::new(0, ATTEMPTS - 1, throttled.clone())],
            Expect::Complete,
        ),
        (vec![Burst::new(3, ATTEMPTS, throttled)], Expect::Failed),
        (
            vec![Burst::new(
                2,
                ATTEMPTS - 1,
                status(503, "no healthy upstream", Some("0")),
            )],
            Expect::Complete,
        ),
        (
            vec![Burst::new(1, ATTEMPTS - 1, Fault::CutBody { keep: 0.5 })],
            Expect::Complete,
        ),
        (
            vec![Burst::new(4, ATTEMPTS, Fault::CutBody { keep: 0.0 })],
            Expect::Failed,
        ),
        // Two bursts that meet: one request sees them both.
        (
            vec![
                Burst::new(2, 2, status(502, "bad gateway", None)),
                Burst::new(0, ATTEMPTS - 2, status(504, "timeout", None)),
            ],
            Expect::Failed,
        ),
        (
            vec![Burst::new(5, 1, Fault::TruncatedBody { keep: 0.9 })],
            Expect::Failed,
        ),
        (vec![Burst::new(0, 1, sign_in_page())], Expect::Failed),
    ];
    for (plan, expect) in plans {
        for (_, _, requests) in &rigs {
            assert_eq!(predict(&plan, *requests), expect, "{plan:?}");
        }
        read_history_with(&rigs, &plan).await.unwrap();
    }
}

/// Slow pages are waited for; a page slower than the request timeout is
/// asked again, and too many of them in a row end the read with an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_pages_are_waited_for_and_pages_slower_than_the_timeout_retried() {
    let rigs = history_rigs().await;
    let slower = TIMEOUT + Duration::from_millis(300);
    let plans = vec![
        vec![Burst::new(0, 100, Fault::Delay(Duration::from_millis(200)))],
        vec![Burst::new(3, ATTEMPTS - 1, Fault::Delay(slower))],
        vec![Burst::new(1, ATTEMPTS, Fault::Delay(slower))],
    ];
    for plan in plans {
        read_history_with(&rigs, &plan).await.unwrap();
    }
}

/// Reads `log` as an HTTP/1.0 client does: the body is whatever comes until
/// the server closes the connection.
async fn http10_read(server: &TestServer, log: &str) -> Outcome {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (parent, rest) = log.split_once('/').unwrap();
    let path = format!("/apis/results.tekton.dev/v1alpha3/parents/{parent}/{rest}");
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", server.addr);
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let end = tokio::time::timeout(HANG, socket.read_to_end(&mut response))
        .await
        .expect("the HTTP/1.0 read hung");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = Lines::new(false, Arc::default());
    lines.push(body.as_bytes());
    match end {
        _ if !head.starts_with("HTTP/1.0 200 ") => Outcome::refused(head.to_owned()),
        Ok(_) => Outcome::Complete(lines.finish()),
        Err(e) => lines.broken(format!("the connection broke: {e}")),
    }
}

/// An HTTP/1.0 client, or a proxy that speaks HTTP/1.0 to the service (nginx
/// does by default), gets a body that ends when the connection does: when a
/// read fails after the first byte, only an abortive close (a reset) tells it
/// the log is incomplete; an orderly close reads as the whole log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_body_cut_by_an_error_does_not_end_cleanly() {
    let rig = Rig::start(&[]).await;
    let start = parse_rfc3339_ns("2026-11-25T09:00:01Z").unwrap();
    let lines: Vec<_> = (0..2000)
        .map(|i| (start + i as i64 * 1_000_000, "lint", message(i)))
        .collect();
    push_lint_lines(&rig.loki, &lines);
    // Past the first chunk (32 KiB, 800 lines), a page that cannot be read.
    let plan = [Burst::new(15, 1, sign_in_page())];
    rig.arm(&plan);
    let outcome = http10_read(&rig.server, LINT).await;
    verdict(
        Client::Text,
        &outcome,
        &text_of("step-lint", 0..2000),
        Expect::Failed,
    )
    .unwrap();
}

// ---------------------------------------------------------------------------
// Following
// ---------------------------------------------------------------------------

/// A live follow: lines pushed in batches while two clients follow, tails
/// refused, then dropped after some frames, maybe a burst of spoilt reads.
#[derive(Debug, Clone)]
struct FollowCase {
    batches: Vec<usize>,
    drop_after: u64,
    how: TailDrop,
    /// Tail requests refused (429) before one is let through.
    refused_tails: usize,
    burst: Option<Burst>,
}

fn follow_case() -> impl Strategy<Value = FollowCase> {
    let burst = (0usize..10, 1usize..=ATTEMPTS + 1, fault())
        .prop_map(|(skip, count, fault)| Burst::new(skip, count, fault));
    (
        prop::collection::vec(1usize..8, 3..8),
        0u64..4,
        prop_oneof![Just(TailDrop::Abrupt), Just(TailDrop::IngestersClosed)],
        0usize..3,
        prop::option::of(burst),
    )
        .prop_map(
            |(batches, drop_after, how, refused_tails, burst)| FollowCase {
                batches,
                drop_after,
                how,
                refused_tails,
                burst,
            },
        )
}

/// Rewrites the runs file: the lint TaskRun running, or completed at `done`.
fn write_runs(runs: &Path, done: Option<i64>) {
    match done {
        None => {
            running_runs_file(runs.parent().unwrap());
        }
        Some(done) => {
            let text = std::fs::read_to_string(RUNS_FIXTURE).unwrap().replacen(
                "\"completionTime\": \"2026-11-25T09:05:00Z\"",
                &format!("\"completionTime\": \"{}\"", format_rfc3339_ns(done)),
                1,
            );
            std::fs::write(runs, text).unwrap();
        }
    }
}

/// Waits until `done` holds.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    tokio::time::timeout(HANG, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} never happened"));
}

/// Followers of a running run, reading on their own tasks.
struct Followers {
    reads: Vec<(Client, Arc<AtomicUsize>, tokio::task::JoinHandle<Outcome>)>,
}

impl Followers {
    fn start(server: &TestServer, log: &str) -> Self {
        let reads = [Client::Follow, Client::FollowNdjson]
            .into_iter()
            .map(|client| {
                let seen = Arc::new(AtomicUsize::new(0));
                let read = client.read(server.url(), log.to_owned(), seen.clone());
                (client, seen, tokio::spawn(read))
            })
            .collect();
        Self { reads }
    }

    /// Waits until each follower has `lines` lines, or has ended.
    async fn wait_for(&self, lines: usize) {
        wait_until(&format!("{lines} followed lines"), || {
            self.reads
                .iter()
                .all(|(_, seen, read)| seen.load(Ordering::Relaxed) >= lines || read.is_finished())
        })
        .await;
    }

    /// How each follower's read ended.
    async fn outcomes(self) -> Vec<(Client, Outcome)> {
        let mut outcomes = Vec::new();
        for (client, _, read) in self.reads {
            outcomes.push((client, read.await.unwrap()));
        }
        outcomes
    }

    async fn verdicts(self, expected: &str, expect: Expect) -> Result<(), String> {
        let outcomes = self.outcomes().await;
        all_ok(
            outcomes
                .iter()
                .map(|(client, outcome)| verdict(*client, outcome, expected, expect))
                .collect(),
        )
    }
}

async fn run_follow_case(rig: &Rig, runs: &Path, case: FollowCase) -> Result<(), String> {
    let loki = &rig.loki;
    loki.clear();
    loki.clear_requests();
    loki.keep_tails();
    loki.clear_failures();
    write_runs(runs, None);
    let now = now_ns();
    let history: Vec<_> = (0..3)
        .map(|i| (now - 3 * SECOND + i as i64, "lint", message(i)))
        .collect();
    push_lint_lines(loki, &history);
    loki.drop_tails_after(case.drop_after, case.how.clone());
    let throttled = status(429, "too many outstanding requests", None);
    loki.inject("/loki/api/v1/tail", 0, case.refused_tails, throttled);
    if let Some(burst) = &case.burst {
        loki.inject(QUERY_RANGE, burst.skip, burst.count, burst.fault.clone());
    }
    let followers = Followers::start(&rig.server, LINT);
    followers.wait_for(history.len()).await;
    let mut next = history.len();
    for batch in &case.batches {
        let now = now_ns();
        let lines: Vec<_> = (next..next + batch)
            .map(|i| (now + (i - next) as i64, "lint", message(i)))
            .collect();
        push_lint_lines(loki, &lines);
        next += batch;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    write_runs(runs, Some(now_ns() + SECOND));
    // Followers and their shared tail read at once, so which read meets a
    // fault is not known: a fault that fails a read may fail a follow, or
    // none, but only honestly.
    let expect = match case.burst.as_ref().map(|b| (effect(&b.fault), b.count)) {
        None | Some((Effect::Harmless, _)) => Expect::Complete,
        Some((Effect::Retried, count)) if count < ATTEMPTS => Expect::Complete,
        Some(_) => Expect::Either,
    };
    let outcomes = followers.outcomes().await;
    loki.keep_tails();
    loki.clear_failures();
    let expected = text_of("step-lint", 0..next);
    let mut results = Vec::new();
    for (client, outcome) in &outcomes {
        results.push(verdict(*client, outcome, &expected, expect));
        if *client == Client::FollowNdjson {
            let base = rig.server.url();
            results.push(check_resume(base, LINT, outcome, true, &expected).await);
        }
    }
    results.push(match loki.requests_to("/loki/api/v1/tail").len() {
        0 => Err("the followers never asked for a tail".to_owned()),
        _ => Ok(()),
    });
    all_ok(results)
}

/// Followers of a running run while its tail is refused, then dropped at
/// random points, abruptly or with Loki's 1011, and reads meet a burst of
/// faults: each gets every line once, in order, then a clean end when the
/// run completes (or an error, when a fault cannot be overcome; an NDJSON
/// follower then resumes from its cursor with exactly the rest).
#[test]
fn followers_lose_nothing_when_the_tail_drops_and_reads_fail() {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let runs = running_runs_file(dir.path());
    let rig = runtime.block_on(Rig::start(&[
        ("LOGS_RUNS_FILE", runs.to_str().unwrap()),
        ("LOGGING_PLUGIN_QUERY_LIMIT", "10"),
        ("LOGGING_PLUGIN_FORWARDER_DELAY_DURATION", "0"),
        ("LOGGING_PLUGIN_FOLLOW_SETTLE_MS", "1000"),
    ]));
    check(&runtime, 8, follow_case(), rig, async |rig, case| {
        run_follow_case(rig, &runs, case).await
    });
}

// ---------------------------------------------------------------------------
// The Results database restarting
// ---------------------------------------------------------------------------

const NS: &str = "results-cap";
/// A completed TaskRun of the database fixture: (result, record = UID).
const TASKRUN: (&str, &str) = (
    "632c7746-5b0d-45ed-ad1d-08540d75fd83",
    "00267d8d-3638-4ee0-ba4b-585665422ee1",
);
/// A completed v1beta1 TaskRun, read only while the database is down first.
const V1BETA1: (&str, &str) = (
    "4b7e39c2-0d8b-498f-ab08-f3f3d9044491",
    "058bc59b-d747-4382-a1ad-aa982468b067",
);
/// A TaskRun still running.
const RUNNING: (&str, &str) = (
    "715034e9-2735-4481-81e9-c003c770a30d",
    "69918a7c-a94e-4662-ad69-0cb0a9ee3185",
);
/// A PipelineRun, made to run here: its first TaskRun has completed, its
/// second (`CHILDREN[1]`) starts once the database is back.
const PIPELINERUN: (&str, &str) = (
    "1f350658-5a83-4d98-8c80-4d45ccb98004",
    "7ed7ef0f-d24c-4319-8caa-c658a93e7bc3",
);
/// Its TaskRuns: (record = UID, pipeline task, step container).
const CHILDREN: [(&str, &str, &str); 2] = [
    (
        "199b33a4-ffa1-40f7-95c1-e8a4c01e4825",
        "clone-build",
        "step-clone",
    ),
    ("2b935dc2-761d-48d7-834e-5e695367214c", "test", "step-test"),
];

fn db_log((result, record): (&str, &str)) -> String {
    format!("{NS}/results/{result}/logs/{record}")
}

/// Lines `lines` of the TaskRun `uid`'s `container`, from `start` a
/// millisecond apart, as a forwarder ships them.
fn seed_run(
    loki: &FakeLoki,
    uid: &str,
    container: &str,
    start: i64,
    lines: std::ops::Range<usize>,
) {
    let json: Vec<(i64, String)> = lines
        .enumerate()
        .map(|(k, i)| {
            let line = serde_json::json!({
                "message": message(i),
                "kubernetes": {"container_name": container, "labels": {"tekton_dev_taskRunUID": uid}}
            });
            (start + k as i64 * 1_000_000, line.to_string())
        })
        .collect();
    let entries: Vec<(i64, &str)> = json.iter().map(|(t, l)| (*t, l.as_str())).collect();
    loki.push_lines(
        &[
            ("log_type", "application"),
            ("kubernetes_namespace_name", NS),
        ],
        &entries,
    );
}

/// Sets `status.<field>` of the record `record` to `at` (ns, in whole
/// seconds as Kubernetes writes times), or removes it.
async fn set_status(url: &str, record: &str, field: &str, at: Option<i64>) {
    let db = connect(url).await;
    let sql = match at {
        Some(_) => {
            "UPDATE records SET data = jsonb_set(data, ARRAY['status', $2::text], to_jsonb($3::text)) \
             WHERE name = $1"
        }
        None => "UPDATE records SET data = data #- ARRAY['status', $2::text] WHERE name = $1 AND $3::text IS NULL",
    };
    let time = at.map(|at| format_rfc3339_ns(at / SECOND * SECOND));
    let changed = db.execute(sql, &[&record, &field, &time]).await.unwrap();
    assert_eq!(changed, 1, "{record}");
}

/// Whole lines of `task`'s `container` in a PipelineRun's text.
fn task_text(task: &str, container: &str, lines: std::ops::Range<usize>) -> String {
    text_of(container, lines)
        .lines()
        .map(|line| format!("[{task}] {line}\n"))
        .collect()
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// Reads `log` with every reader at once.
async fn read_all(server: &TestServer, log: &str) -> Vec<(Client, Outcome)> {
    join_all(READERS.map(|client| async move {
        let outcome = client
            .read(server.url(), log.to_owned(), Arc::default())
            .await;
        (client, outcome)
    }))
    .await
}

/// The database stops while runs are read and followed, and starts again.
/// While it is down, a run nobody read yet is refused before any byte
/// (503 / UNAVAILABLE); a run read before is whole or refused; followers of a
/// TaskRun keep getting lines, and those of a PipelineRun waiting for its next
/// TaskRun wait on. A read while it comes back is whole or refused. Once it is
/// back, reads are whole again, and the followers end cleanly when the runs'
/// records show their completion, with every line once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_refuses_new_reads_honestly_and_followers_lose_nothing() {
    let pg = PrivatePostgres::start().await;
    let url = pg.url();
    let db = connect(&url).await;
    db.batch_execute(SCHEMA).await.unwrap();
    db.batch_execute(FIXTURES).await.unwrap();
    drop(db);
    let now = now_ns();
    // The PipelineRun runs; its first TaskRun completed a while ago (its
    // follow is history), its second has not started.
    set_status(&url, PIPELINERUN.1, "completionTime", None).await;
    set_status(
        &url,
        CHILDREN[0].0,
        "completionTime",
        Some(now - 10 * SECOND),
    )
    .await;
    set_status(&url, CHILDREN[1].0, "startTime", None).await;
    set_status(&url, CHILDREN[1].0, "completionTime", None).await;

    let loki = FakeLoki::start(FakeLokiConfig::default());
    let at = |time: &str| parse_rfc3339_ns(time).unwrap();
    seed_run(
        &loki,
        TASKRUN.1,
        "step-build",
        at("2026-11-25T10:05:00Z"),
        0..300,
    );
    seed_run(
        &loki,
        V1BETA1.1,
        "step-bars",
        at("2026-11-25T09:12:10Z"),
        0..300,
    );
    seed_run(&loki, RUNNING.1, "step-run", now - 3 * SECOND, 0..3);
    seed_run(&loki, CHILDREN[0].0, CHILDREN[0].2, now - 20 * SECOND, 0..3);
    let mut env = db_env(&url);
    env.extend(
        [
            ("LOGS_TYPE", "Loki".to_owned()),
            ("LOGGING_PLUGIN_API_URL", loki.url()),
            ("LOGGING_PLUGIN_PROXY_PATH", String::new()),
            ("LOGGING_PLUGIN_QUERY_LIMIT", "50".to_owned()),
            ("LOGGING_PLUGIN_FORWARDER_DELAY_DURATION", "0".to_owned()),
            ("LOGGING_PLUGIN_FOLLOW_SETTLE_MS", "1000".to_owned()),
            ("LOG_LEVEL", "error".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let server = TestServer::start_with(env).await;
    let (taskrun, v1beta1) = (db_log(TASKRUN), db_log(V1BETA1));
    let taskrun_text = text_of("step-build", 0..300);
    let v1beta1_text = text_of("step-bars", 0..300);
    let check_all = |outcomes: Vec<(Client, Outcome)>, expected: &str, expect: Expect| {
        all_ok(
            outcomes
                .iter()
                .map(|(client, outcome)| verdict(*client, outcome, expected, expect))
                .collect(),
        )
        .unwrap();
    };

    check_all(
        read_all(&server, &taskrun).await,
        &taskrun_text,
        Expect::Complete,
    );
    let followers = Followers::start(&server, &db_log(RUNNING));
    let pipeline = Followers::start(&server, &db_log(PIPELINERUN));
    followers.wait_for(3).await;
    pipeline.wait_for(3).await;
    let live = |lines| seed_run(&loki, RUNNING.1, "step-run", now_ns(), lines);
    live(3..8);

    pg.stop().await;
    let down = read_all(&server, &v1beta1).await;
    for (client, outcome) in &down {
        match outcome {
            Outcome::Failed { text, error, .. } => assert!(
                text.is_empty()
                    && (error.starts_with("HTTP 503") || error.starts_with("gRPC Unavailable")),
                "{client:?}: {error}"
            ),
            Outcome::Complete(_) => panic!("{client:?}: read a run with the database down"),
        }
    }
    check_all(down, &v1beta1_text, Expect::Failed);
    check_all(
        read_all(&server, &taskrun).await,
        &taskrun_text,
        Expect::Either,
    );
    live(8..14);
    followers.wait_for(14).await;

    let during = tokio::spawn(Client::Text.read(server.url(), v1beta1.clone(), Arc::default()));
    pg.start_again().await;
    let during = during.await.unwrap();
    verdict(Client::Text, &during, &v1beta1_text, Expect::Either).unwrap();
    check_all(
        read_all(&server, &v1beta1).await,
        &v1beta1_text,
        Expect::Complete,
    );

    // The second TaskRun starts and logs; then everything completes.
    live(14..20);
    let now = now_ns();
    set_status(&url, CHILDREN[1].0, "startTime", Some(now)).await;
    seed_run(&loki, CHILDREN[1].0, CHILDREN[1].2, now, 0..4);
    let done = Some(now + 2 * SECOND);
    for record in [RUNNING.1, CHILDREN[1].0, PIPELINERUN.1] {
        set_status(&url, record, "completionTime", done).await;
    }
    followers
        .verdicts(&text_of("step-run", 0..20), Expect::Complete)
        .await
        .unwrap();
    let pipeline_text = task_text(CHILDREN[0].1, CHILDREN[0].2, 0..3)
        + &task_text(CHILDREN[1].1, CHILDREN[1].2, 0..4);
    pipeline
        .verdicts(&pipeline_text, Expect::Complete)
        .await
        .unwrap();
}
