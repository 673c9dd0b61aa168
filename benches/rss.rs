//! Memory and throughput of the real server binary with one large log: the
//! log is uploaded over gRPC v1alpha2 UpdateLog, then read back over gRPC
//! v1alpha3 GetLog and over REST, while the server's RSS is sampled from
//! `/proc/<pid>/status`. The log is generated on the fly and checked by length
//! and sha256; the bench never holds it in memory. See docs/benchmarks.md.
//!
//! `cargo bench --bench rss` builds the binary (release profile) and runs with
//! a 1 GiB log; `RSS_BENCH_BYTES` sets another size, `RSS_BENCH_MAX_MIB` makes
//! a peak RSS above that many MiB a failure. Run without `--bench` (as
//! `cargo test --benches` does) it is a quick smoke run of a few MiB.

mod common;

use std::future::Future;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tekton_results_logs::proto::tekton::results::{v1alpha2, v1alpha3};
use tonic::transport::Channel;

use crate::common::{mib, Server};

const PARENT: &str = "bench";
const RESULT: &str = "rss";
const LOG: &str = "large";

/// Bytes per UpdateLog message, as the Results watcher sends them.
const MESSAGE_BYTES: usize = 64 * 1024;

/// Log size of a `cargo bench` run.
const BENCH_BYTES: u64 = 1 << 30;

/// Log size of a smoke run (`cargo test --benches`).
const SMOKE_BYTES: u64 = 4 << 20;

const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// A phase may take this long, plus `PHASE_SECS_PER_MIB` per MiB of log.
const PHASE_BASE_TIMEOUT: Duration = Duration::from_secs(60);
const PHASE_SECS_PER_MIB: f64 = 0.5;

const MIB: f64 = 1024.0 * 1024.0;

/// The log text: numbered lines of varied length, produced 64 KiB at a time.
struct LogGenerator {
    remaining: u64,
    line: u64,
    pending: BytesMut,
}

impl LogGenerator {
    fn new(total: u64) -> Self {
        Self {
            remaining: total,
            line: 0,
            pending: BytesMut::with_capacity(2 * MESSAGE_BYTES),
        }
    }

    fn next_message(&mut self) -> Option<Bytes> {
        if self.remaining == 0 {
            return None;
        }
        let want = MESSAGE_BYTES.min(usize::try_from(self.remaining).unwrap_or(MESSAGE_BYTES));
        while self.pending.len() < want {
            self.line += 1;
            let words = "lorem ipsum dolor sit amet ".repeat((self.line % 5) as usize);
            let text = format!(
                "2026-11-25T10:00:00.{:06}Z step-build: line {:09} compiling module {} {words}\n",
                self.line % 1_000_000,
                self.line,
                self.line % 977,
            );
            self.pending.extend_from_slice(text.as_bytes());
        }
        self.remaining -= want as u64;
        Some(self.pending.split_to(want).freeze())
    }
}

/// A gRPC channel to the server.
async fn channel(server: &Server) -> Result<Channel, String> {
    Channel::from_shared(server.url.clone())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connecting to {}: {e}", server.url))
}

/// One measured phase.
struct Row {
    phase: &'static str,
    bytes: u64,
    seconds: f64,
    /// CPU seconds the server used during the phase.
    server_cpu: f64,
    /// VmHWM at the end of the phase (the phase's peak when reset worked).
    peak_kib: u64,
    /// Largest VmRSS seen by sampling.
    sampled_kib: u64,
    final_kib: u64,
}

/// Runs `work` (which returns the bytes it moved) while sampling the server's
/// memory; fails when it fails or outlasts `limit`.
async fn measure<F>(
    server: &Server,
    phase: &'static str,
    limit: Duration,
    work: F,
) -> Result<Row, String>
where
    F: Future<Output = Result<u64, String>>,
{
    if !server.stats.reset_peak() {
        eprintln!("note: could not reset VmHWM; peaks are since the server started");
    }
    let cpu_before = server.stats.cpu_seconds().ok_or("the server is gone")?;
    let start = Instant::now();
    let mut work = std::pin::pin!(tokio::time::timeout(limit, work));
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    let mut sampled_kib = 0;
    let outcome = loop {
        tokio::select! {
            outcome = &mut work => break outcome,
            _ = ticks.tick() => {
                let (rss, _) = server.stats.memory_kib().ok_or("the server is gone")?;
                sampled_kib = sampled_kib.max(rss);
            }
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let bytes = outcome.map_err(|_| format!("{phase}: no end within {limit:?}"))??;
    let (final_kib, peak_kib) = server.stats.memory_kib().ok_or("the server is gone")?;
    let cpu_after = server.stats.cpu_seconds().ok_or("the server is gone")?;
    Ok(Row {
        phase,
        bytes,
        seconds,
        server_cpu: cpu_after - cpu_before,
        peak_kib,
        sampled_kib: sampled_kib.max(final_kib),
        final_kib,
    })
}

fn log_name() -> String {
    format!("{PARENT}/results/{RESULT}/logs/{LOG}")
}

/// Uploads a generated log of `total` bytes; returns the bytes stored and the
/// sha256 of what was sent.
async fn upload(server: &Server, total: u64) -> Result<(u64, [u8; 32]), String> {
    let (digest_tx, digest_rx) = tokio::sync::oneshot::channel();
    let messages = async_stream::stream! {
        let mut log = LogGenerator::new(total);
        let mut hash = Sha256::new();
        while let Some(data) = log.next_message() {
            hash.update(&data);
            yield v1alpha2::Log { name: log_name(), data };
        }
        let _ = digest_tx.send(<[u8; 32]>::from(hash.finalize()));
    };
    let mut client = v1alpha2::logs_client::LogsClient::new(channel(server).await?);
    let summary = client
        .update_log(messages)
        .await
        .map_err(|s| format!("UpdateLog: {:?}: {}", s.code(), s.message()))?
        .into_inner();
    let digest = digest_rx
        .await
        .map_err(|_| "the upload stream did not reach its end")?;
    let stored = u64::try_from(summary.bytes_received).map_err(|e| e.to_string())?;
    Ok((stored, digest))
}

/// Reads the log over v1alpha3 GetLog: its length and sha256.
async fn get_grpc(server: &Server) -> Result<(u64, [u8; 32]), String> {
    let mut client = v1alpha3::logs_client::LogsClient::new(channel(server).await?);
    let grpc_error = |s: tonic::Status| format!("GetLog: {:?}: {}", s.code(), s.message());
    let mut stream = client
        .get_log(v1alpha3::GetLogRequest { name: log_name() })
        .await
        .map_err(grpc_error)?
        .into_inner();
    let (mut hash, mut total) = (Sha256::new(), 0u64);
    while let Some(body) = stream.message().await.map_err(grpc_error)? {
        total += body.data.len() as u64;
        hash.update(&body.data);
    }
    Ok((total, hash.finalize().into()))
}

/// Reads the log over REST: its length and sha256.
async fn get_rest(server: &Server) -> Result<(u64, [u8; 32]), String> {
    let url = format!(
        "{}/apis/results.tekton.dev/v1alpha3/parents/{PARENT}/results/{RESULT}/logs/{LOG}",
        server.url
    );
    let response = reqwest::get(&url)
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("GET {url}: {}", response.status()));
    }
    let (mut hash, mut total) = (Sha256::new(), 0u64);
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("GET {url}: {e}"))?;
        total += chunk.len() as u64;
        hash.update(&chunk);
    }
    Ok((total, hash.finalize().into()))
}

/// Fails unless `got` is `expected`.
fn check(phase: &str, got: (u64, [u8; 32]), expected: (u64, [u8; 32])) -> Result<u64, String> {
    if got.0 != expected.0 {
        return Err(format!("{phase}: {} bytes, expected {}", got.0, expected.0));
    }
    if got.1 != expected.1 {
        return Err(format!("{phase}: the sha256 differs from the upload's"));
    }
    Ok(got.0)
}

fn log_size(smoke: bool) -> Result<u64, String> {
    match std::env::var("RSS_BENCH_BYTES") {
        Ok(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("RSS_BENCH_BYTES={v:?}: not a positive integer")),
        Err(_) if smoke => Ok(SMOKE_BYTES),
        Err(_) => Ok(BENCH_BYTES),
    }
}

fn max_peak_mib() -> Result<Option<f64>, String> {
    match std::env::var("RSS_BENCH_MAX_MIB") {
        Ok(v) => v
            .parse::<f64>()
            .ok()
            .filter(|n| *n > 0.0)
            .map(Some)
            .ok_or_else(|| format!("RSS_BENCH_MAX_MIB={v:?}: not a positive number")),
        Err(_) => Ok(None),
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<9} {:>11} {:>8} {:>8} {:>11} {:>13} {:>12} {:>14}",
        "phase",
        "bytes",
        "seconds",
        "MiB/s",
        "server CPU",
        "peak RSS MiB",
        "sampled max",
        "final RSS MiB"
    );
    for r in rows {
        let rate = if r.seconds > 0.0 && r.bytes > 0 {
            format!("{:.1}", r.bytes as f64 / MIB / r.seconds)
        } else {
            "-".to_owned()
        };
        println!(
            "{:<9} {:>11} {:>8.2} {:>8} {:>10.2}s {:>13.1} {:>12.1} {:>14.1}",
            r.phase,
            r.bytes,
            r.seconds,
            rate,
            r.server_cpu,
            mib(r.peak_kib),
            mib(r.sampled_kib),
            mib(r.final_kib)
        );
    }
}

async fn run(total: u64, max_mib: Option<f64>) -> Result<(), String> {
    let data_dir = tempfile::tempdir().map_err(|e| format!("creating a data directory: {e}"))?;
    let server = Server::start(data_dir.path(), &[]).await?;
    let limit =
        PHASE_BASE_TIMEOUT + Duration::from_secs_f64(total as f64 / MIB * PHASE_SECS_PER_MIB);
    println!(
        "rss: server pid {}, log of {total} bytes ({:.1} MiB) in {MESSAGE_BYTES}-byte messages",
        server.pid,
        total as f64 / MIB
    );

    let mut rows = Vec::new();
    rows.push(
        measure(&server, "idle", Duration::from_secs(2), async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(0)
        })
        .await?,
    );
    let mut expected = None;
    rows.push(
        measure(&server, "upload", limit, async {
            let (stored, digest) = upload(&server, total).await?;
            if stored != total {
                return Err(format!(
                    "upload: the server stored {stored} bytes of {total}"
                ));
            }
            expected = Some((stored, digest));
            Ok(stored)
        })
        .await?,
    );
    let expected = expected.ok_or("upload: no digest")?;
    rows.push(
        measure(&server, "grpc-get", limit, async {
            check("grpc-get", get_grpc(&server).await?, expected)
        })
        .await?,
    );
    rows.push(
        measure(&server, "rest-get", limit, async {
            check("rest-get", get_rest(&server).await?, expected)
        })
        .await?,
    );
    print_table(&rows);

    let peak = rows.iter().map(|r| r.peak_kib.max(r.sampled_kib)).max();
    let peak = mib(peak.unwrap_or(0));
    println!("rss: largest server RSS {peak:.1} MiB; all checks passed");
    server.stop().await?;
    match max_mib {
        Some(max) if peak > max => Err(format!(
            "peak RSS {peak:.1} MiB is above RSS_BENCH_MAX_MIB={max}"
        )),
        _ => Ok(()),
    }
}

fn main() -> ExitCode {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let settings = log_size(smoke).and_then(|total| Ok((total, max_peak_mib()?)));
    let outcome = settings.and_then(|(total, max_mib)| {
        tokio::runtime::Runtime::new()
            .map_err(|e| format!("starting the async runtime: {e}"))?
            .block_on(run(total, max_mib))
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rss: FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}
