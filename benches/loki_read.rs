//! Read throughput and memory of the Loki connector against the fake Loki
//! (`tests/fakes/loki.rs`), which runs inside this process.
//!
//! N lines of one TaskRun are seeded into the fake in three container
//! streams, as ViaQ JSON (what OpenShift logging / Vector forward), with many
//! timestamps shared across the streams, all within the last hour. Then, for
//! each page size (`LOGGING_PLUGIN_QUERY_LIMIT` 1700, upstream's default, and
//! 5000, Loki's largest by default):
//!
//! - `connector`: `LokiBackend::read` in this process. The fake lives here
//!   too, so the figure is this process's peak RSS during the read minus its
//!   RSS right after seeding (the kernel's peak is reset first); it includes
//!   the fake's own per-query memory, so it is an upper bound.
//! - `grpc-get` and `rest-get`: the real server binary (`serve`,
//!   `LOGS_TYPE=Loki`) pointed at the fake, read over gRPC v1alpha3 GetLog and
//!   REST; the server's RSS is sampled from `/proc/<pid>/status` and its peak
//!   (`VmHWM`, reset before each phase) is the figure that matters.
//!
//! Every read is checked line by line: exactly N lines, each the expected
//! rendered text, numbered 0..N in timestamp order (so each once, in order);
//! the in-process read also checks each record's timestamp. Any failure or a
//! phase outlasting its time limit exits non-zero. See docs/benchmarks.md.
//!
//! `cargo bench --bench loki_read` runs 1,000,000 lines; `LOKI_BENCH_LINES`
//! sets another count, `LOKI_BENCH_LIMITS` the page sizes (comma-separated),
//! `LOKI_BENCH_MAX_MIB` makes a server peak RSS above that many MiB a failure.
//! Without `--bench` (as `cargo test --benches` runs it) it is a smoke run of
//! 20,000 lines.

mod common;
#[path = "../tests/fakes/loki.rs"]
mod loki;

use std::fmt::Write as _;
use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tekton_results_logs::backend::loki::LokiBackend;
use tekton_results_logs::backend::{LogBackend, LogQuery};
use tekton_results_logs::config::{Config, RawConfig};
use tekton_results_logs::proto::tekton::results::v1alpha3;
use tekton_results_logs::run::LogName;
use tekton_results_logs::timestamp::now_ns;
use tonic::transport::Channel;

use crate::common::{mib, ProcStats, Server};
use crate::loki::{FakeLoki, FakeLokiConfig};

const NS: &str = "bench-loki";
const RESULT: &str = "9d0c3b1e-7a43-4f55-9b2e-3c8f0e6d2a71";
/// The TaskRun UID: the log part of the name, and what the query filters on.
const UID: &str = "5f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b";
const POD: &str = "bench-taskrun-pod";

/// The streams, in the order of their label strings (the connector orders
/// the lines of one timestamp by stream labels, then line).
const CONTAINERS: [&str; 3] = ["step-build", "step-prepare", "step-push"];

/// Which streams have a line at each tick, cycled: 12 lines per 7 ticks, so
/// most timestamps are shared by two or three streams. Each subset is in
/// `CONTAINERS` order, and lines are numbered in that order, so the line
/// numbers are the order the connector must deliver.
const TICKS: [&[usize]; 7] = [&[0], &[0, 1], &[1], &[0, 1, 2], &[2], &[0, 2], &[1, 2]];
const LINES_PER_CYCLE: u64 = 12;

/// The seeded lines span this long, ending `END_AGO` before now.
const SPAN: Duration = Duration::from_secs(50 * 60);
const END_AGO: Duration = Duration::from_secs(5 * 60);

/// Lines of a `cargo bench` run and of a smoke run.
const BENCH_LINES: u64 = 1_000_000;
const SMOKE_LINES: u64 = 20_000;

const DEFAULT_LIMITS: [u32; 2] = [1700, 5000];

/// Lines handed to the fake per `push_lines` call while seeding.
const SEED_BATCH: u64 = 50_000;

const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// A phase may take `PHASE_BASE`, plus `PHASE_NS_PER_LINE` per line, plus
/// `PHASE_NS_PER_SCAN` per entry the fake scans: each page scans every entry
/// from the page's start to the end of the log, N²/(2·limit) in all. Both
/// rates are three to four times what was measured here.
const PHASE_BASE: Duration = Duration::from_secs(120);
const PHASE_NS_PER_LINE: f64 = 50_000.0;
const PHASE_NS_PER_SCAN: f64 = 120.0;

/// A line longer than this in a read is an error, not a growing buffer.
const MAX_LINE_BYTES: usize = 64 * 1024;

const MIB: f64 = 1024.0 * 1024.0;

fn dur_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn log_name() -> String {
    format!("{NS}/results/{RESULT}/logs/{UID}")
}

/// One line of the log.
#[derive(Debug, Clone, Copy)]
struct Line {
    n: u64,
    ts_ns: i64,
    container: usize,
}

/// The log's lines in delivery order: numbered from 0, by tick.
#[derive(Debug, Clone)]
struct Lines {
    total: u64,
    n: u64,
    tick: u64,
    slot: usize,
    base_ns: i64,
    step_ns: i64,
}

impl Lines {
    /// `total` lines spread evenly over `SPAN`, ending `END_AGO` before now.
    fn new(total: u64) -> Self {
        let ticks = total / LINES_PER_CYCLE * TICKS.len() as u64 + TICKS.len() as u64;
        let step_ns = (dur_ns(SPAN) / i64::try_from(ticks).unwrap_or(i64::MAX)).max(1);
        Self {
            total,
            n: 0,
            tick: 0,
            slot: 0,
            base_ns: now_ns() - dur_ns(SPAN) - dur_ns(END_AGO),
            step_ns,
        }
    }

    fn first_ts(&self) -> i64 {
        self.base_ns
    }
}

impl Iterator for Lines {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        if self.n >= self.total {
            return None;
        }
        let subset = TICKS[(self.tick % TICKS.len() as u64) as usize];
        let line = Line {
            n: self.n,
            ts_ns: self.base_ns + i64::try_from(self.tick).unwrap_or(0) * self.step_ns,
            container: subset[self.slot],
        };
        self.n += 1;
        self.slot += 1;
        if self.slot == subset.len() {
            self.slot = 0;
            self.tick += 1;
        }
        Some(line)
    }
}

/// The message of a line: numbered, 45–170 bytes.
fn write_message(out: &mut String, line: Line) {
    let _ = write!(
        out,
        "{} line {:09} compiling module {}",
        CONTAINERS[line.container],
        line.n,
        line.n % 977
    );
    for _ in 0..line.n % 5 {
        out.push_str(" lorem ipsum dolor sit amet");
    }
}

/// What the connector's default query renders for a line (upstream's
/// `line_format`), without the line end.
fn write_rendered(out: &mut String, line: Line) {
    let _ = write!(out, "container-{}: message=", CONTAINERS[line.container]);
    write_message(out, line);
}

/// A forwarded line as OpenShift logging / Vector ViaQ writes it.
fn viaq(message: &str, container: &str) -> String {
    serde_json::json!({
        "message": message,
        "level": "default",
        "log_type": "application",
        "kubernetes": {
            "namespace_name": NS,
            "pod_name": POD,
            "container_name": container,
            "labels": {"tekton_dev_taskRunUID": UID, "tekton_dev_task": "bench-task"}
        }
    })
    .to_string()
}

/// Seeds the log into the fake, one stream per container, `SEED_BATCH` lines
/// at a time. Returns the bytes of the stored (JSON) lines.
fn seed(fake: &FakeLoki, lines: Lines) -> u64 {
    let mut stored = 0u64;
    let mut lines = lines.peekable();
    let mut message = String::new();
    while lines.peek().is_some() {
        let mut by_stream: [Vec<(i64, String)>; 3] = Default::default();
        for line in lines.by_ref().take(SEED_BATCH as usize) {
            message.clear();
            write_message(&mut message, line);
            let json = viaq(&message, CONTAINERS[line.container]);
            stored += json.len() as u64;
            by_stream[line.container].push((line.ts_ns, json));
        }
        for (container, entries) in CONTAINERS.iter().zip(&by_stream) {
            let entries: Vec<(i64, &str)> =
                entries.iter().map(|(ts, l)| (*ts, l.as_str())).collect();
            fake.push_lines(
                &[
                    ("log_type", "application"),
                    ("kubernetes_namespace_name", NS),
                    ("kubernetes_pod_name", POD),
                    ("kubernetes_container_name", container),
                ],
                &entries,
            );
        }
    }
    stored
}

/// Checks a read line by line against the expected log.
struct Checker {
    expected: Lines,
    want: String,
    lines: u64,
    bytes: u64,
    /// The start of a line cut by a chunk boundary.
    partial: Vec<u8>,
}

impl Checker {
    fn new(expected: Lines) -> Self {
        Self {
            expected,
            want: String::new(),
            lines: 0,
            bytes: 0,
            partial: Vec::new(),
        }
    }

    /// One line, without its line end; `ts_ns` when the reader has it.
    fn line(&mut self, got: &[u8], ts_ns: Option<i64>) -> Result<(), String> {
        let Some(line) = self.expected.next() else {
            return Err(format!(
                "more than the {} lines seeded; extra line {:?}",
                self.expected.total,
                excerpt(got)
            ));
        };
        self.want.clear();
        write_rendered(&mut self.want, line);
        if got != self.want.as_bytes() {
            return Err(format!(
                "line {}: got {:?}, expected {:?}",
                self.lines,
                excerpt(got),
                self.want
            ));
        }
        if let Some(ts) = ts_ns {
            if ts != line.ts_ns {
                return Err(format!(
                    "line {}: timestamp {ts}, expected {}",
                    self.lines, line.ts_ns
                ));
            }
        }
        self.lines += 1;
        self.bytes += got.len() as u64 + 1;
        Ok(())
    }

    /// A piece of text output (lines ended by `\n`, cut anywhere).
    fn feed(&mut self, mut data: &[u8]) -> Result<(), String> {
        while let Some(end) = memchr::memchr(b'\n', data) {
            if self.partial.is_empty() {
                self.line(&data[..end], None)?;
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(&data[..end]);
                self.line(&whole, None)?;
                whole.clear();
                self.partial = whole;
            }
            data = &data[end + 1..];
        }
        self.partial.extend_from_slice(data);
        if self.partial.len() > MAX_LINE_BYTES {
            return Err(format!(
                "line {}: longer than {MAX_LINE_BYTES} bytes",
                self.lines
            ));
        }
        Ok(())
    }

    /// `(lines, bytes)` once the read has ended; fails unless it was complete.
    fn finish(self) -> Result<(u64, u64), String> {
        if !self.partial.is_empty() {
            return Err(format!(
                "the output ends inside a line: {:?}",
                excerpt(&self.partial)
            ));
        }
        if self.lines != self.expected.total {
            return Err(format!(
                "{} lines of the {} seeded",
                self.lines, self.expected.total
            ));
        }
        Ok((self.lines, self.bytes))
    }
}

fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned()
}

/// The configuration keys of a connector reading from `loki_url` in pages of
/// `limit` (no token file: `dir/no-token` does not exist).
fn loki_env(loki_url: &str, limit: u32, dir: &Path) -> Vec<(String, String)> {
    [
        ("LOGS_TYPE", "Loki".to_owned()),
        ("LOGGING_PLUGIN_API_URL", loki_url.to_owned()),
        ("LOGGING_PLUGIN_PROXY_PATH", String::new()),
        (
            "LOGGING_PLUGIN_TOKEN_PATH",
            dir.join("no-token").display().to_string(),
        ),
        ("LOGGING_PLUGIN_QUERY_LIMIT", limit.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Reads the log with the connector in this process.
async fn read_in_process(backend: &LokiBackend, expected: Lines) -> Result<(u64, u64), String> {
    let name = LogName::parse(&log_name()).map_err(|e| format!("the log name: {e}"))?;
    let mut checker = Checker::new(expected);
    let mut pages = backend.read(LogQuery::new(name));
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| format!("connector: {e}"))?;
        for record in &page.records {
            if !record.terminated {
                return Err(format!("line {}: not terminated", checker.lines));
            }
            checker.line(&record.message, record.ts_ns)?;
        }
    }
    checker.finish()
}

/// Reads the log over gRPC v1alpha3 GetLog.
async fn read_grpc(server: &Server, expected: Lines) -> Result<(u64, u64), String> {
    let channel = Channel::from_shared(server.url.clone())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connecting to {}: {e}", server.url))?;
    let mut client = v1alpha3::logs_client::LogsClient::new(channel);
    let grpc_error = |s: tonic::Status| format!("GetLog: {:?}: {}", s.code(), s.message());
    let mut stream = client
        .get_log(v1alpha3::GetLogRequest { name: log_name() })
        .await
        .map_err(grpc_error)?
        .into_inner();
    let mut checker = Checker::new(expected);
    while let Some(body) = stream.message().await.map_err(grpc_error)? {
        checker.feed(&body.data)?;
    }
    checker.finish()
}

/// Reads the log over REST.
async fn read_rest(server: &Server, expected: Lines) -> Result<(u64, u64), String> {
    let url = format!(
        "{}/apis/results.tekton.dev/v1alpha3/parents/{}",
        server.url,
        log_name()
    );
    let response = reqwest::get(&url)
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("GET {url}: {}", response.status()));
    }
    let mut checker = Checker::new(expected);
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        checker.feed(&chunk.map_err(|e| format!("GET {url}: {e}"))?)?;
    }
    checker.finish()
}

/// The LogQL the connector sends by default (upstream's).
fn default_logql() -> String {
    format!(
        r#"{{ log_type="application",kubernetes_namespace_name="{NS}" }}| json container="kubernetes.container_name", message="message", uid="kubernetes.labels.tekton_dev_taskRunUID" |uid="{UID}"| line_format "container-{{{{.container}}}}: message={{{{.message}}}}""#
    )
}

/// The time limit of a phase reading `lines` in pages of `limit`.
fn phase_time_limit(lines: u64, limit: u32) -> Duration {
    let lines = lines as f64;
    let scanned = lines * lines / (2.0 * f64::from(limit));
    PHASE_BASE
        + Duration::from_secs_f64((lines * PHASE_NS_PER_LINE + scanned * PHASE_NS_PER_SCAN) / 1e9)
}

/// The fastest of three `query_range` pages of `limit` from `start_ns`, in
/// seconds, and the page's size in bytes: what one page costs the fake there.
async fn probe_fake(fake: &FakeLoki, start_ns: i64, limit: u32) -> Result<(f64, usize), String> {
    let url = format!("{}/loki/api/v1/query_range", fake.url());
    let params = [
        ("query", default_logql()),
        ("start", start_ns.to_string()),
        ("end", (now_ns() + 1).to_string()),
        ("limit", limit.to_string()),
        ("direction", "forward".to_owned()),
    ];
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())?;
    let (mut best, mut size) = (f64::INFINITY, 0);
    for _ in 0..3 {
        let start = Instant::now();
        let response = client
            .get(&url)
            .query(&params)
            .send()
            .await
            .map_err(|e| format!("probing the fake: {e}"))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("probing the fake: {}", response.status()));
        }
        size = response
            .bytes()
            .await
            .map_err(|e| format!("probing the fake: {e}"))?
            .len();
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok((best, size))
}

/// One measured phase.
struct Row {
    phase: &'static str,
    limit: u32,
    lines: u64,
    bytes: u64,
    seconds: f64,
    /// The server's peak RSS (VmHWM of the phase) and largest sampled VmRSS.
    server_peak_kib: Option<u64>,
    /// This process's peak RSS during the phase minus its RSS after seeding.
    in_process_kib: Option<i64>,
    server_cpu: Option<f64>,
    /// CPU of this process: the fake, the client and the checks.
    bench_cpu: f64,
}

/// Runs `work`, which returns `(lines, bytes)`, within `limit`, sampling the
/// server's memory when there is one, else this process's.
async fn measure<F>(
    server: Option<&Server>,
    phase: &'static str,
    page_limit: u32,
    time_limit: Duration,
    after_seed_kib: u64,
    work: F,
) -> Result<Row, String>
where
    F: Future<Output = Result<(u64, u64), String>>,
{
    let me = ProcStats::of_self();
    let watched = server.map_or(&me, |s| &s.stats);
    if !watched.reset_peak() {
        eprintln!("note: could not reset VmHWM; peaks are since the process started");
    }
    let gone = || format!("{phase}: the measured process is gone");
    let server_cpu_before = server.and_then(|s| s.stats.cpu_seconds());
    let bench_cpu_before = me.cpu_seconds().ok_or_else(gone)?;
    let start = Instant::now();
    let mut work = std::pin::pin!(tokio::time::timeout(time_limit, work));
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    let mut sampled_kib = 0;
    let outcome = loop {
        tokio::select! {
            outcome = &mut work => break outcome,
            _ = ticks.tick() => {
                let (rss, _) = watched.memory_kib().ok_or_else(gone)?;
                sampled_kib = sampled_kib.max(rss);
            }
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let (lines, bytes) = outcome
        .map_err(|_| format!("{phase} (limit {page_limit}): no end within {time_limit:?}"))?
        .map_err(|e| format!("{phase} (limit {page_limit}): {e}"))?;
    let (rss, hwm) = watched.memory_kib().ok_or_else(gone)?;
    let peak_kib = hwm.max(sampled_kib).max(rss);
    let bench_cpu = me.cpu_seconds().ok_or_else(gone)? - bench_cpu_before;
    eprintln!("loki_read: {phase} (limit {page_limit}): {lines} lines in {seconds:.1} s");
    let (server_peak_kib, in_process_kib, server_cpu) = match server {
        Some(s) => (
            Some(peak_kib),
            None,
            s.stats
                .cpu_seconds()
                .zip(server_cpu_before)
                .map(|(after, before)| after - before),
        ),
        None => (
            None,
            Some(i64::try_from(peak_kib).unwrap_or(i64::MAX) - after_seed_kib as i64),
            None,
        ),
    };
    Ok(Row {
        phase,
        limit: page_limit,
        lines,
        bytes,
        seconds,
        server_peak_kib,
        in_process_kib,
        server_cpu,
        bench_cpu,
    })
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<9} {:>5} {:>10} {:>11} {:>8} {:>9} {:>6} {:>12} {:>12} {:>10} {:>9}",
        "phase",
        "limit",
        "lines",
        "bytes",
        "seconds",
        "lines/s",
        "MiB/s",
        "server peak",
        "in-proc Δ",
        "server CPU",
        "bench CPU"
    );
    for r in rows {
        let per_second = |v: f64| {
            if r.seconds > 0.0 && v > 0.0 {
                v / r.seconds
            } else {
                0.0
            }
        };
        let server_peak = r
            .server_peak_kib
            .map_or_else(|| "-".to_owned(), |k| format!("{:.1} MiB", mib(k)));
        let in_process = r.in_process_kib.map_or_else(
            || "-".to_owned(),
            |k| format!("{:+.1} MiB", k as f64 / 1024.0),
        );
        let server_cpu = r
            .server_cpu
            .map_or_else(|| "-".to_owned(), |s| format!("{s:.2} s"));
        println!(
            "{:<9} {:>5} {:>10} {:>11} {:>8.2} {:>9.0} {:>6.1} {:>12} {:>12} {:>10} {:>7.2} s",
            r.phase,
            r.limit,
            r.lines,
            r.bytes,
            r.seconds,
            per_second(r.lines as f64),
            per_second(r.bytes as f64) / MIB,
            server_peak,
            in_process,
            server_cpu,
            r.bench_cpu
        );
    }
}

struct Settings {
    lines: u64,
    limits: Vec<u32>,
    max_mib: Option<f64>,
}

fn settings(smoke: bool) -> Result<Settings, String> {
    let lines = match std::env::var("LOKI_BENCH_LINES") {
        Ok(v) => v
            .replace('_', "")
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("LOKI_BENCH_LINES={v:?}: not a positive integer"))?,
        Err(_) if smoke => SMOKE_LINES,
        Err(_) => BENCH_LINES,
    };
    let limits = match std::env::var("LOKI_BENCH_LIMITS") {
        Ok(v) => v
            .split(',')
            .map(|l| {
                l.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=5000).contains(n))
                    .ok_or_else(|| format!("LOKI_BENCH_LIMITS={v:?}: {l:?} is not 1 to 5000"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Err(_) => DEFAULT_LIMITS.to_vec(),
    };
    let max_mib = match std::env::var("LOKI_BENCH_MAX_MIB") {
        Ok(v) => Some(
            v.parse::<f64>()
                .ok()
                .filter(|n| *n > 0.0)
                .ok_or_else(|| format!("LOKI_BENCH_MAX_MIB={v:?}: not a positive number"))?,
        ),
        Err(_) => None,
    };
    Ok(Settings {
        lines,
        limits,
        max_mib,
    })
}

async fn run(settings: Settings) -> Result<(), String> {
    let total = settings.lines;
    let me = ProcStats::of_self();
    let dir = tempfile::tempdir().map_err(|e| format!("creating a data directory: {e}"))?;

    let fake = FakeLoki::start(FakeLokiConfig::default());
    let before_seed_kib = me.memory_kib().ok_or("no /proc/self/status")?.0;
    let expected = Lines::new(total);
    println!(
        "loki_read: {total} lines in {} streams, one every {} ns on average, over {} min",
        CONTAINERS.len(),
        expected.step_ns * TICKS.len() as i64 / LINES_PER_CYCLE as i64,
        SPAN.as_secs() / 60
    );
    let start = Instant::now();
    let stored = seed(&fake, expected.clone());
    let seed_seconds = start.elapsed().as_secs_f64();
    let in_fake = fake.entry_count() as u64;
    if in_fake != total {
        return Err(format!(
            "seeding: the fake holds {in_fake} lines of {total}"
        ));
    }
    let after_seed_kib = me.memory_kib().ok_or("no /proc/self/status")?.0;
    let fake_kib = after_seed_kib.saturating_sub(before_seed_kib);
    println!(
        "loki_read: seeded {stored} bytes of JSON in {seed_seconds:.1} s; the fake's store takes \
         {:.1} MiB of RSS ({:.0} bytes a line)",
        mib(fake_kib),
        fake_kib as f64 * 1024.0 / total as f64
    );
    let page = settings.limits.iter().copied().max().unwrap_or(5000);
    let (first, page_bytes) = probe_fake(&fake, expected.first_ts(), page).await?;
    // A full page near the end: the same work but for the entries in range.
    let near_end = total.saturating_sub(2 * u64::from(page));
    let near_end_ts = expected
        .clone()
        .nth(usize::try_from(near_end).unwrap_or(0))
        .map_or(0, |l| l.ts_ns);
    let (last, _) = probe_fake(&fake, near_end_ts, page).await?;
    println!(
        "loki_read: one query_range page of {page} lines ({:.2} MiB of JSON) costs the fake \
         {:.1} ms from the first line ({total} entries in range), {:.1} ms from line {near_end} \
         ({} in range)",
        page_bytes as f64 / MIB,
        first * 1e3,
        last * 1e3,
        total - near_end
    );

    let mut rows = Vec::new();
    for &limit in &settings.limits {
        let raw = RawConfig::from_env(loki_env(&fake.url(), limit, dir.path()));
        let config = Config::from_raw(&raw).map_err(|e| format!("configuration: {e}"))?;
        let backend = LokiBackend::from_config(&config).map_err(|e| format!("connector: {e}"))?;
        let time_limit = phase_time_limit(total, limit);
        rows.push(
            measure(
                None,
                "connector",
                limit,
                time_limit,
                after_seed_kib,
                read_in_process(&backend, expected.clone()),
            )
            .await?,
        );
    }
    for &limit in &settings.limits {
        let time_limit = phase_time_limit(total, limit);
        let server = Server::start(dir.path(), &loki_env(&fake.url(), limit, dir.path())).await?;
        let idle = measure(Some(&server), "idle", limit, time_limit, 0, async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok((0, 0))
        })
        .await;
        let grpc = match idle {
            Ok(row) => {
                rows.push(row);
                measure(
                    Some(&server),
                    "grpc-get",
                    limit,
                    time_limit,
                    0,
                    read_grpc(&server, expected.clone()),
                )
                .await
            }
            Err(e) => Err(e),
        };
        let rest = match grpc {
            Ok(row) => {
                rows.push(row);
                measure(
                    Some(&server),
                    "rest-get",
                    limit,
                    time_limit,
                    0,
                    read_rest(&server, expected.clone()),
                )
                .await
            }
            Err(e) => Err(e),
        };
        let stopped = server.stop().await;
        rows.push(rest?);
        stopped?;
    }
    print_table(&rows);

    let peak = rows.iter().filter_map(|r| r.server_peak_kib).max();
    let peak = mib(peak.unwrap_or(0));
    println!("loki_read: largest server RSS {peak:.1} MiB; every read complete and in order");
    match settings.max_mib {
        Some(max) if peak > max => Err(format!(
            "server peak RSS {peak:.1} MiB is above LOKI_BENCH_MAX_MIB={max}"
        )),
        _ => Ok(()),
    }
}

fn main() -> ExitCode {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let outcome = settings(smoke).and_then(|settings| {
        tokio::runtime::Runtime::new()
            .map_err(|e| format!("starting the async runtime: {e}"))?
            .block_on(run(settings))
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("loki_read: FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}
