//! What the benches that start the real server share: starting it on a
//! loopback port, and reading a process's memory and CPU from `/proc`.

#![allow(dead_code)] // each bench uses its own part

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Cargo builds the binary for benches and says where it is.
pub const BIN: &str = env!("CARGO_BIN_EXE_tekton-results-logs");

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ).
const USER_HZ: f64 = 100.0;

/// Memory and CPU of a process, from `/proc`.
pub struct ProcStats {
    dir: String,
}

impl ProcStats {
    pub fn of_self() -> Self {
        Self {
            dir: "/proc/self".to_owned(),
        }
    }

    pub fn of(pid: u32) -> Self {
        Self {
            dir: format!("/proc/{pid}"),
        }
    }

    /// `(VmRSS, VmHWM)` in KiB.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("{}/status", self.dir)).ok()?;
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// CPU seconds used, user and system, all threads.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("{}/stat", self.dir)).ok()?;
        // utime and stime: the 14th and 15th fields of the whole line.
        let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
        let utime: u64 = fields.next()?.parse().ok()?;
        let stime: u64 = fields.next()?.parse().ok()?;
        Some((utime + stime) as f64 / USER_HZ)
    }

    /// Resets VmHWM to the current RSS (Linux ≥ 4.0); false where refused.
    pub fn reset_peak(&self) -> bool {
        std::fs::write(format!("{}/clear_refs", self.dir), "5").is_ok()
    }
}

/// KiB to MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The server binary (`serve`) on an ephemeral loopback port, its data in
/// `data_dir`, with `env` on top of an empty environment (metrics off, log
/// level `warn`, stream limits lifted, unless `env` says otherwise).
pub struct Server {
    child: Child,
    pub pid: u32,
    pub stats: ProcStats,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Server {
    pub async fn start(data_dir: &Path, env: &[(String, String)]) -> Result<Self, String> {
        let mut child = Command::new(BIN)
            .arg("serve")
            .env_clear()
            .env("SERVER_HOST", "127.0.0.1")
            .env("SERVER_PORT", "0")
            .env("PROMETHEUS_PORT", "")
            .env("LOGS_PATH", data_dir)
            .env("LOG_LEVEL", "warn")
            // Every simulated client comes from one address, so one caller:
            // the stream limits are lifted, not measured, here.
            .env("LOGS_MAX_STREAMS", "1000000")
            .env("LOGS_MAX_STREAMS_PER_CALLER", "1000000")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {BIN}: {e}"))?;
        let pid = child.id().ok_or("the server exited at once")?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| "the server did not say where it listens within 30 s")?
            .map_err(|e| format!("reading the server's stdout: {e}"))?
            .ok_or("the server exited before listening")?;
        let addr = line
            .strip_prefix("tekton-results-logs listening on ")
            .ok_or_else(|| format!("unexpected first line {line:?}"))?
            .to_owned();
        // Drained so that the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            pid,
            stats: ProcStats::of(pid),
            url: format!("http://{addr}"),
        })
    }

    pub async fn stop(mut self) -> Result<(), String> {
        self.child
            .kill()
            .await
            .map_err(|e| format!("stopping the server: {e}"))
    }
}
