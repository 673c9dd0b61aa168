//! The load test: the fake Loki (`tests/fakes/loki.rs`, in this process) and
//! the real server binary on loopback, driven by many clients at once.
//!
//! 1. Seeds `--runs` TaskRun logs of `--lines` lines each into the fake, and
//!    one running TaskRun (declared in a runs file) to follow.
//! 2. `loki direct`: plain clients fetch the same `query_range` pages from the
//!    fake themselves (the bytes only), one client and then `--readers`
//!    clients at once: the rate the fake alone serves.
//! 3. `server`: the same logs read through the server's REST route, one
//!    reader and then `--readers` readers at once. Every line is checked: the
//!    right text, numbered in order, each once.
//! 4. `follow`: `--followers` clients follow the running run (NDJSON with
//!    `follow=true`) while `--follow-lines` lines are pushed into the fake,
//!    one every `--push-every-ms`; then the run completes and every follower
//!    must end with every line, in order, once. Each line carries the time it
//!    was pushed: its delivery latency is the time it reached a follower
//!    minus that.
//!
//! Prints a table of lines/s, MB/s, time to first byte (for `loki direct`:
//! to the end of the first page, what the server needs before its first
//! byte), push-to-follower
//! latency, the server's peak RSS and CPU, errors, and how many tail
//! websockets the server opened to Loki. Bounded: `--time-limit-s` (default
//! 300) ends the run with a failure; any error makes it exit non-zero.
//!
//! `cargo bench --bench load` runs the small defaults (about a minute);
//! `cargo bench --bench load -- --followers 10000 --readers 1000` and the
//! other flags scale it. `--settle-ms` is the server's
//! `LOGGING_PLUGIN_FOLLOW_SETTLE_MS` (2000, its default), which every followed
//! line waits out before it is sent; `--plan connector|loki` is its
//! `LOGGING_PLUGIN_QUERY_PLAN` (`connector`, its default) and the query the
//! direct reads send. Without `--bench` (as `cargo test
//! --benches` runs it) it is a smoke run of a few seconds. See
//! docs/benchmarks.md.

#[path = "../tests/fakes/loki.rs"]
mod loki;

mod common;

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tekton_results_logs::timestamp::{format_rfc3339_ns, now_ns};

use crate::common::{mib, ProcStats, Server};
use crate::loki::{FakeLoki, FakeLokiConfig};

const NS: &str = "bench-load";
const RESULT: &str = "6b3f2a10-5c4d-4e8f-9a7b-1c2d3e4f5a6b";
const POD: &str = "load-pod";
const CONTAINER: &str = "step-build";
/// The run the followers follow.
const FOLLOW_UID: &str = "f0110000-0000-4000-8000-000000000000";
/// Pads history lines to a typical build log line.
const PADDING: &str = "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod";

fn run_uid(run: usize) -> String {
    format!("10ad0000-0000-4000-8000-{run:012}")
}

fn log_name(uid: &str) -> String {
    format!("{NS}/results/{RESULT}/logs/{uid}")
}

/// What the fake stores: a line as a ViaQ forwarder ships it.
fn viaq(message: &str, uid: &str) -> String {
    serde_json::json!({
        "message": message,
        "kubernetes": {
            "namespace_name": NS,
            "pod_name": POD,
            "container_name": CONTAINER,
            "labels": {"tekton_dev_taskRunUID": uid}
        }
    })
    .to_string()
}

fn message(run: usize, line: usize) -> String {
    format!("r{run} l{line:08} {PADDING}")
}

/// What the server renders for a stored line (the default line format).
fn rendered(message: &str) -> String {
    format!("container-{CONTAINER}: message={message}")
}

/// The query the server sends for `uid` with `plan`: a line filter on the
/// UID (the connector plan), or upstream's pipeline (the Loki plan).
fn logql(uid: &str, plan: &str) -> String {
    if plan == "connector" {
        return format!(
            r#"{{ log_type="application",kubernetes_namespace_name="{NS}" }}|= "{uid}""#
        );
    }
    format!(
        r#"{{ log_type="application",kubernetes_namespace_name="{NS}" }}| json container="kubernetes.container_name", message="message", uid="kubernetes.labels.tekton_dev_taskRunUID" |uid="{uid}"| line_format "container-{{{{.container}}}}: message={{{{.message}}}}""#
    )
}

const LABELS: [(&str, &str); 3] = [
    ("log_type", "application"),
    ("kubernetes_namespace_name", NS),
    ("kubernetes_pod_name", POD),
];

struct Settings {
    runs: usize,
    lines: usize,
    readers: usize,
    followers: usize,
    follow_lines: usize,
    push_every: Duration,
    settle_ms: u64,
    plan: String,
    limit: u32,
    time_limit: Duration,
}

impl Settings {
    fn defaults(smoke: bool) -> Self {
        if smoke {
            Self {
                runs: 2,
                lines: 2_000,
                readers: 4,
                followers: 10,
                follow_lines: 20,
                push_every: Duration::from_millis(20),
                settle_ms: 200,
                plan: "connector".to_owned(),
                limit: 1700,
                time_limit: Duration::from_secs(120),
            }
        } else {
            Self {
                runs: 4,
                lines: 50_000,
                readers: 16,
                followers: 100,
                follow_lines: 200,
                push_every: Duration::from_millis(50),
                settle_ms: 2000,
                plan: "connector".to_owned(),
                limit: 1700,
                time_limit: Duration::from_secs(300),
            }
        }
    }

    fn parse(smoke: bool) -> Result<Self, String> {
        let mut s = Self::defaults(smoke);
        let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
        while let Some(flag) = args.next() {
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => (name.to_owned(), value.to_owned()),
                None => {
                    let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
                    (flag, value)
                }
            };
            let number = || {
                value
                    .replace('_', "")
                    .parse::<u64>()
                    .map_err(|_| format!("{name}={value:?}: not a whole number"))
            };
            match name.as_str() {
                "--runs" => s.runs = number()? as usize,
                "--lines" => s.lines = number()? as usize,
                "--readers" => s.readers = number()? as usize,
                "--followers" => s.followers = number()? as usize,
                "--follow-lines" => s.follow_lines = number()? as usize,
                "--push-every-ms" => s.push_every = Duration::from_millis(number()?),
                "--settle-ms" => s.settle_ms = number()?,
                "--plan" if value == "connector" || value == "loki" => s.plan = value.clone(),
                "--plan" => return Err(format!("--plan={value:?}: connector or loki")),
                "--limit" => s.limit = number()? as u32,
                "--time-limit-s" => s.time_limit = Duration::from_secs(number()?),
                _ => return Err(format!("unknown flag {name} (see benches/load.rs)")),
            }
        }
        if s.runs == 0 || s.lines == 0 || s.readers == 0 || s.limit == 0 || s.limit > 5000 {
            return Err(
                "--runs, --lines and --readers must be at least 1, --limit 1 to 5000".into(),
            );
        }
        Ok(s)
    }
}

/// One measured phase.
#[derive(Default)]
struct Row {
    phase: String,
    clients: usize,
    lines: u64,
    bytes: u64,
    seconds: f64,
    ttfb_us: Vec<u64>,
    latency_us: Vec<u64>,
    server_peak_kib: Option<u64>,
    server_cpu: Option<f64>,
    /// CPU of this process: the fake Loki and the clients.
    bench_cpu: Option<f64>,
    errors: usize,
}

fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn ms(us: Option<u64>) -> String {
    us.map_or_else(|| "-".to_owned(), |us| format!("{:.1}", us as f64 / 1000.0))
}

fn print_table(rows: &mut [Row]) {
    println!(
        "| phase | clients | lines | MB | s | lines/s | MB/s | TTFB p50 ms | TTFB p99 ms | latency p50 ms | latency p99 ms | server peak MiB | server CPU s | bench CPU s | errors |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for r in rows.iter_mut() {
        r.ttfb_us.sort_unstable();
        r.latency_us.sort_unstable();
        let mb = r.bytes as f64 / 1e6;
        println!(
            "| {} | {} | {} | {:.1} | {:.2} | {:.0} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.phase,
            r.clients,
            r.lines,
            mb,
            r.seconds,
            r.lines as f64 / r.seconds,
            mb / r.seconds,
            ms(percentile(&r.ttfb_us, 50.0)),
            ms(percentile(&r.ttfb_us, 99.0)),
            ms(percentile(&r.latency_us, 50.0)),
            ms(percentile(&r.latency_us, 99.0)),
            r.server_peak_kib
                .map_or_else(|| "-".to_owned(), |k| format!("{:.1}", mib(k))),
            r.server_cpu
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.1}")),
            r.bench_cpu
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.1}")),
            r.errors,
        );
    }
}

/// Seeds `lines` lines for each of `runs` runs, 1 ms apart, ending 5 minutes
/// ago. Returns the time of run 0's first line (run `r`'s is `r` ns later).
fn seed(fake: &FakeLoki, runs: usize, lines: usize) -> i64 {
    let base = now_ns() - 5 * 60 * 1_000_000_000 - lines as i64 * 1_000_000;
    for run in 0..runs {
        let uid = run_uid(run);
        let mut batch = Vec::with_capacity(10_000);
        for line in 0..lines {
            let ts = base + run as i64 + line as i64 * 1_000_000;
            batch.push((ts, viaq(&message(run, line), &uid)));
            if batch.len() == 10_000 || line + 1 == lines {
                let entries: Vec<(i64, &str)> =
                    batch.iter().map(|(t, l)| (*t, l.as_str())).collect();
                fake.push_lines(&LABELS, &entries);
                batch.clear();
            }
        }
    }
    base
}

/// The runs file declaring the followed run: running, or completed at
/// `completion_ns`.
fn write_runs_file(path: &Path, start_ns: i64, completion_ns: Option<i64>) -> Result<(), String> {
    let mut status = serde_json::json!({"startTime": format_rfc3339_ns(start_ns), "podName": POD});
    if let Some(done) = completion_ns {
        status["completionTime"] = format_rfc3339_ns(done).into();
    }
    let records = serde_json::json!({"records": [{
        "name": format!("{NS}/results/{RESULT}/records/{FOLLOW_UID}"),
        "data": {"type": "tekton.dev/v1.TaskRun", "value": {
            "apiVersion": "tekton.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "followed", "namespace": NS, "uid": FOLLOW_UID},
            "status": status
        }}
    }]});
    // Written whole, then moved into place: the server never reads half a file.
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, records.to_string()).map_err(|e| e.to_string())?;
    std::fs::rename(&temp, path).map_err(|e| e.to_string())
}

/// A plain client fetching run `run`'s pages from the fake: bytes only, the
/// page boundaries computed from the seeded timestamps. Returns (lines,
/// bytes, time to the whole first page in µs).
async fn read_direct(
    client: &reqwest::Client,
    fake_url: &str,
    run: usize,
    s: &Settings,
    base: i64,
) -> Result<(u64, u64, u64), String> {
    let started = Instant::now();
    let url = format!("{fake_url}/loki/api/v1/query_range");
    let query = logql(&run_uid(run), &s.plan);
    let (mut lines, mut bytes, mut ttfb) = (0u64, 0u64, None);
    let mut first = 0usize;
    while first < s.lines {
        let start = base + run as i64 + first as i64 * 1_000_000;
        let page = (s.lines - first).min(s.limit as usize);
        let response = client
            .get(&url)
            .query(&[
                ("query", query.as_str()),
                ("start", &start.to_string()),
                ("end", &(now_ns() + 1).to_string()),
                ("limit", &s.limit.to_string()),
                ("direction", "forward"),
            ])
            .send()
            .await
            .map_err(|e| format!("fetching from the fake: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("the fake answered {}", response.status()));
        }
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| format!("reading from the fake: {e}"))?;
            bytes += chunk.len() as u64;
        }
        // A page is usable once it is whole: the server's first byte needs
        // the whole first page.
        ttfb.get_or_insert_with(|| started.elapsed().as_micros() as u64);
        lines += page as u64;
        first += page;
    }
    Ok((lines, bytes, ttfb.unwrap_or(0)))
}

/// Checks a text body line by line as it arrives.
struct Checker {
    run: usize,
    next: usize,
    partial: Vec<u8>,
    bytes: u64,
}

impl Checker {
    fn feed(&mut self, mut data: &[u8]) -> Result<(), String> {
        self.bytes += data.len() as u64;
        while let Some(end) = memchr::memchr(b'\n', data) {
            let line = if self.partial.is_empty() {
                &data[..end]
            } else {
                self.partial.extend_from_slice(&data[..end]);
                &self.partial[..]
            };
            let want = rendered(&message(self.run, self.next));
            if line != want.as_bytes() {
                return Err(format!(
                    "run {}: line {} is {:?}, not {want:?}",
                    self.run,
                    self.next,
                    String::from_utf8_lossy(&line[..line.len().min(120)])
                ));
            }
            self.partial.clear();
            self.next += 1;
            data = &data[end + 1..];
        }
        self.partial.extend_from_slice(data);
        Ok(())
    }
}

/// Reads run `run` through the server's REST route and checks every line.
/// Returns (lines, bytes, time to first byte in µs).
async fn read_server(
    client: &reqwest::Client,
    server_url: &str,
    run: usize,
    s: &Settings,
) -> Result<(u64, u64, u64), String> {
    let started = Instant::now();
    let name = log_name(&run_uid(run));
    let (parent, rest) = name.split_once('/').unwrap_or_default();
    let url = format!("{server_url}/apis/results.tekton.dev/v1alpha3/parents/{parent}/{rest}");
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("reading from the server: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("the server answered {}", response.status()));
    }
    let mut checker = Checker {
        run,
        next: 0,
        partial: Vec::new(),
        bytes: 0,
    };
    let mut ttfb = None;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("reading from the server: {e}"))?;
        ttfb.get_or_insert_with(|| started.elapsed().as_micros() as u64);
        checker.feed(&chunk)?;
    }
    if checker.next != s.lines || !checker.partial.is_empty() {
        return Err(format!("run {run}: {} of {} lines", checker.next, s.lines));
    }
    Ok((checker.next as u64, checker.bytes, ttfb.unwrap_or(0)))
}

/// Runs `clients` readers at once, reading every run at least once, and
/// measures them against the server's memory and CPU.
async fn history_phase<F, Fut>(
    phase: String,
    clients: usize,
    s: &Settings,
    server: &Server,
    read: F,
) -> Row
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(u64, u64, u64), String>> + Send + 'static,
{
    server.stats.reset_peak();
    let cpu = server.stats.cpu_seconds();
    let me = ProcStats::of_self();
    let my_cpu = me.cpu_seconds();
    let started = Instant::now();
    // Every run is read at least once: fewer clients than runs read several
    // in turn.
    let reads = clients.max(s.runs);
    let runs = s.runs;
    let read = Arc::new(read);
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let read = read.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for n in (client..reads).step_by(clients) {
                    outcomes.push(read(n % runs).await);
                }
                outcomes
            })
        })
        .collect();
    let mut row = Row {
        phase,
        clients,
        ..Row::default()
    };
    for task in tasks {
        let outcomes = task.await.unwrap_or_else(|e| vec![Err(e.to_string())]);
        for outcome in outcomes {
            match outcome {
                Ok((lines, bytes, ttfb)) => {
                    row.lines += lines;
                    row.bytes += bytes;
                    row.ttfb_us.push(ttfb);
                }
                Err(error) => {
                    eprintln!("load: {}: {error}", row.phase);
                    row.errors += 1;
                }
            }
        }
    }
    row.seconds = started.elapsed().as_secs_f64();
    row.server_peak_kib = server.stats.memory_kib().map(|(_, peak)| peak);
    row.bench_cpu = me
        .cpu_seconds()
        .zip(my_cpu)
        .map(|(after, before)| after - before);
    row.server_cpu = server
        .stats
        .cpu_seconds()
        .zip(cpu)
        .map(|(after, before)| after - before);
    row
}

/// The part of an NDJSON record a follower checks.
#[derive(serde::Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    message: std::borrow::Cow<'a, str>,
}

/// What one follower saw: lines in order, and each line's latency.
async fn follower(
    client: reqwest::Client,
    url: String,
    ready: Arc<AtomicUsize>,
    expected: usize,
) -> Result<Vec<u64>, String> {
    let response = client
        .get(url)
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .map_err(|e| format!("following: {e}"))?;
    if !response.status().is_success() {
        return Err(format!(
            "following: the server answered {}",
            response.status()
        ));
    }
    let mut body = response.bytes_stream();
    let mut partial = Vec::new();
    let mut next = 0usize;
    let mut seen_history = false;
    let mut latencies = Vec::with_capacity(expected);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("following: {e}"))?;
        let arrived = now_ns();
        partial.extend_from_slice(&chunk);
        while let Some(end) = memchr::memchr(b'\n', &partial) {
            let line: Vec<u8> = partial.drain(..=end).collect();
            let record: Record<'_> = serde_json::from_slice(&line)
                .map_err(|e| format!("following: a record that is not JSON: {e}"))?;
            let text = &*record.message;
            if !seen_history {
                if text != rendered("history") {
                    return Err(format!("following: first record {text:?}"));
                }
                seen_history = true;
                ready.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            // "container-step-build: message=live <n> <pushed ns>"
            let mut words = text.rsplit(' ');
            let pushed: i64 = words
                .next()
                .and_then(|w| w.parse().ok())
                .ok_or("no push time")?;
            let n: usize = words
                .next()
                .and_then(|w| w.parse().ok())
                .ok_or("no line number")?;
            if n != next {
                return Err(format!("following: line {n} where {next} was due"));
            }
            next += 1;
            latencies.push(u64::try_from((arrived - pushed) / 1000).unwrap_or(0));
        }
    }
    if next != expected {
        return Err(format!("following: {next} of {expected} lines"));
    }
    Ok(latencies)
}

async fn follow_phase(
    s: &Settings,
    fake: &Arc<FakeLoki>,
    server: &Server,
    runs_file: &Path,
) -> Result<Row, String> {
    let url = {
        let name = log_name(FOLLOW_UID);
        let (parent, rest) = name.split_once('/').unwrap_or_default();
        format!(
            "{}/apis/results.tekton.dev/v1alpha3/parents/{parent}/{rest}?follow=true",
            server.url
        )
    };
    server.stats.reset_peak();
    let cpu = server.stats.cpu_seconds();
    let ready = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .map_err(|e| e.to_string())?;
    // Connects a few hundred at a time, within the listen backlog.
    let mut tasks = Vec::with_capacity(s.followers);
    for i in 0..s.followers {
        tasks.push(tokio::spawn(follower(
            client.clone(),
            url.clone(),
            ready.clone(),
            s.follow_lines,
        )));
        if i % 200 == 199 {
            while ready.load(Ordering::SeqCst) + 50 < i {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    let connect = Instant::now();
    while ready.load(Ordering::SeqCst) < s.followers {
        if connect.elapsed() > Duration::from_secs(120) || tasks.iter().any(|t| t.is_finished()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connected = ready.load(Ordering::SeqCst);
    println!(
        "load: {connected} of {} followers connected in {:.1} s",
        s.followers,
        connect.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let me = ProcStats::of_self();
    let my_cpu = me.cpu_seconds();
    let mut bytes = 0u64;
    let mut most_tails = fake.active_tails();
    for n in 0..s.follow_lines {
        most_tails = most_tails.max(fake.active_tails());
        let ts = now_ns();
        let line = viaq(&format!("live {n} {ts}"), FOLLOW_UID);
        bytes += line.len() as u64;
        fake.push_lines(&LABELS, &[(ts, &line)]);
        tokio::time::sleep(s.push_every).await;
    }
    write_runs_file(
        runs_file,
        now_ns() - 60_000_000_000,
        Some(now_ns() + 1_000_000_000),
    )?;

    let mut row = Row {
        phase: format!("follow (settle {} ms)", s.settle_ms),
        clients: s.followers,
        ..Row::default()
    };
    for task in tasks {
        match task.await {
            Ok(Ok(latencies)) => {
                row.lines += latencies.len() as u64;
                row.latency_us.extend(latencies);
            }
            Ok(Err(error)) => {
                if row.errors < 5 {
                    eprintln!("load: follow: {error}");
                }
                row.errors += 1;
            }
            Err(error) => {
                eprintln!("load: follow: {error}");
                row.errors += 1;
            }
        }
    }
    row.bytes = bytes * (s.followers as u64);
    row.seconds = started.elapsed().as_secs_f64();
    row.server_peak_kib = server.stats.memory_kib().map(|(_, peak)| peak);
    row.server_cpu = server
        .stats
        .cpu_seconds()
        .zip(cpu)
        .map(|(after, before)| after - before);
    println!(
        "load: {} followers: at most {most_tails} tail websocket(s) open to Loki at once",
        s.followers
    );
    row.bench_cpu = me
        .cpu_seconds()
        .zip(my_cpu)
        .map(|(after, before)| after - before);
    Ok(row)
}

async fn run(s: Settings) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("creating a data directory: {e}"))?;
    let fake = Arc::new(FakeLoki::start(FakeLokiConfig::default()));
    let seeding = Instant::now();
    let base = seed(&fake, s.runs, s.lines);
    let follow_start = now_ns() - 60_000_000_000;
    let history = viaq("history", FOLLOW_UID);
    fake.push_lines(&LABELS, &[(follow_start + 1, &history)]);
    println!("load: query plan {}", s.plan);
    println!(
        "load: seeded {} runs of {} lines in {:.1} s",
        s.runs,
        s.lines,
        seeding.elapsed().as_secs_f64()
    );
    let runs_file = dir.path().join("runs.json");
    write_runs_file(&runs_file, follow_start, None)?;
    let env: Vec<(String, String)> = [
        ("LOGS_TYPE", "Loki".to_owned()),
        ("LOGGING_PLUGIN_API_URL", fake.url()),
        ("LOGGING_PLUGIN_PROXY_PATH", String::new()),
        (
            "LOGGING_PLUGIN_TOKEN_PATH",
            dir.path().join("no-token").display().to_string(),
        ),
        ("LOGGING_PLUGIN_QUERY_LIMIT", s.limit.to_string()),
        ("LOGGING_PLUGIN_FORWARDER_DELAY_DURATION", "0".to_owned()),
        ("LOGGING_PLUGIN_FOLLOW_SETTLE_MS", s.settle_ms.to_string()),
        ("LOGGING_PLUGIN_QUERY_PLAN", s.plan.clone()),
        ("LOGS_RUNS_FILE", runs_file.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let server = Server::start(dir.path(), &env).await?;
    let me = ProcStats::of_self();
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .map_err(|e| e.to_string())?;
    let s = Arc::new(s);

    let mut rows = Vec::new();
    let mut concurrency = vec![1];
    if s.readers > 1 {
        concurrency.push(s.readers);
    }
    for clients in concurrency {
        let (c, u, st) = (client.clone(), fake.url(), s.clone());
        rows.push(
            history_phase(
                format!("loki direct x{clients}"),
                clients,
                &s,
                &server,
                move |run| {
                    let (c, u, st) = (c.clone(), u.clone(), st.clone());
                    async move { read_direct(&c, &u, run, &st, base).await }
                },
            )
            .await,
        );
        // The fake runs in this process: its figures are not the server's.
        if let Some(row) = rows.last_mut() {
            row.server_peak_kib = None;
            row.server_cpu = None;
        }
        let (c, u, st) = (client.clone(), server.url.clone(), s.clone());
        rows.push(
            history_phase(
                format!("server x{clients}"),
                clients,
                &s,
                &server,
                move |run| {
                    let (c, u, st) = (c.clone(), u.clone(), st.clone());
                    async move { read_server(&c, &u, run, &st).await }
                },
            )
            .await,
        );
    }
    if s.followers > 0 {
        rows.push(follow_phase(&s, &fake, &server, &runs_file).await?);
    }
    server.stop().await?;
    let errors: usize = rows.iter().map(|r| r.errors).sum();
    print_table(&mut rows);
    if let Some((_, peak)) = me.memory_kib() {
        println!(
            "load: this process (fake Loki and clients) peaked at {:.0} MiB",
            mib(peak)
        );
    }
    if errors > 0 {
        return Err(format!("{errors} client(s) failed"));
    }
    println!("load: every read complete and in order, every follower got every line once");
    Ok(())
}

fn main() -> ExitCode {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let outcome = Settings::parse(smoke).and_then(|s| {
        let limit = s.time_limit;
        tokio::runtime::Runtime::new()
            .map_err(|e| format!("starting the async runtime: {e}"))?
            .block_on(async move {
                tokio::time::timeout(limit, run(s)).await.map_err(|_| {
                    format!("the load test outlasted its {} s limit", limit.as_secs())
                })?
            })
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("load: FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}
