//! Starts the real server binary on `127.0.0.1:0` with a fresh data
//! directory, and connects clients to it.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use tekton_results_logs::proto::tekton::results::{v1alpha2, v1alpha3};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

pub const BIN: &str = env!("CARGO_BIN_EXE_tekton-results-logs");

pub const NAME: &str =
    "results-cap/results/632c7746-5b0d-45ed-ad1d-08540d75fd83/logs/00267d8d-3638-4ee0-ba4b-585665422ee1";

/// A running server; killed when dropped.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    /// Where the metrics endpoint listens, when it is on.
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub data_dir: tempfile::TempDir,
    /// Killed when the test ends (`kill_on_drop`).
    child: Child,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(HashMap::<String, String>::new()).await
    }

    /// Starts the server with only `env` (plus the data directory and port 0)
    /// in its environment.
    pub async fn start_with<I, K, V>(env: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        let data_dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .env_clear()
            .env("SERVER_PORT", "0")
            .env("PROMETHEUS_PORT", "0")
            .env("LOGS_PATH", data_dir.path())
            .env("LOG_LEVEL", "warn")
            .envs(env)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("starting the server binary");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the server did not say where it listens within 30 s")
            .unwrap()
            .expect("the server exited before listening");
        let addr = line
            .strip_prefix("tekton-results-logs listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        // With metrics on (the default here), the next line says where.
        let mut metrics_addr = None;
        if let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await
        {
            metrics_addr = line
                .strip_prefix("tekton-results-logs metrics on ")
                .and_then(|a| a.parse().ok());
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            addr,
            metrics_addr,
            data_dir,
            child,
        }
    }

    /// Sends SIGTERM, as Kubernetes does to stop a pod.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("the server is running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the server to exit.
    pub async fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().await.unwrap()
    }

    /// The metrics endpoint's text.
    pub async fn metrics(&self) -> String {
        let addr = self.metrics_addr.expect("the metrics endpoint is on");
        http()
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of the metric line that starts with `series` (a name and
    /// its labels, as the endpoint writes them), 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn v1alpha3(&self) -> v1alpha3::logs_client::LogsClient<Channel> {
        v1alpha3::logs_client::LogsClient::new(self.channel().await)
    }

    pub async fn v1alpha2(&self) -> v1alpha2::logs_client::LogsClient<Channel> {
        v1alpha2::logs_client::LogsClient::new(self.channel().await)
    }

    pub fn rest_url(&self, version: &str, name: &str) -> String {
        let (parent, rest) = name.split_once('/').unwrap();
        format!(
            "{}/apis/results.tekton.dev/{version}/parents/{parent}/{rest}",
            self.url()
        )
    }

    /// Uploads `data` in messages of `chunk` bytes over v1alpha2 UpdateLog.
    pub async fn upload(
        &self,
        name: &str,
        data: &[u8],
        chunk: usize,
    ) -> Result<v1alpha2::LogSummary, tonic::Status> {
        let messages: Vec<v1alpha2::Log> = data
            .chunks(chunk.max(1))
            .map(|c| v1alpha2::Log {
                name: name.to_owned(),
                data: bytes::Bytes::copy_from_slice(c),
            })
            .collect();
        let mut client = self.v1alpha2().await;
        client
            .update_log(futures::stream::iter(messages))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Reads a log over v1alpha3 GetLog: its chunks' data.
    pub async fn get_chunks(&self, name: &str) -> Result<Vec<bytes::Bytes>, tonic::Status> {
        let mut client = self.v1alpha3().await;
        let mut stream = client
            .get_log(v1alpha3::GetLogRequest {
                name: name.to_owned(),
            })
            .await?
            .into_inner();
        let mut chunks = Vec::new();
        while let Some(body) = stream.message().await? {
            assert_eq!(body.content_type, "text/plain");
            chunks.push(body.data);
        }
        Ok(chunks)
    }
}

/// A log of `lines` numbered lines, shaped like the upstream capture.
pub fn sample_log(lines: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 1..=lines {
        out.extend_from_slice(
            format!("container-step-prepare: message=step-prepare line {i:07} lorem ipsum dolor sit amet\n").as_bytes(),
        );
    }
    out
}

/// Sends one raw HTTP/1.1 request (no client-side path normalization, so
/// `..` and `//` reach the server as written) and returns the whole response.
pub async fn raw_request(server: &TestServer, method: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await.unwrap();
    String::from_utf8(response).unwrap()
}

/// The status code of a raw response.
pub fn status_of(response: &str) -> u16 {
    response.split(' ').nth(1).unwrap().parse().unwrap()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// `GET url` as NDJSON, with `token` as a bearer token when given: the
/// response, once its status is checked to be 200.
pub async fn ndjson_200(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = http().get(url).header("accept", "application/x-ndjson");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response
}

/// `tests/fixtures/runs.json`: runs declared for `LOGS_RUNS_FILE`.
pub const RUNS_FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/runs.json");

/// A copy of the runs fixture in `dir` in which the lint TaskRun
/// (`demo/results/a0a0a0a0-…01/logs/a0a0a0a0-…02`) is still running.
pub fn running_runs_file(dir: &std::path::Path) -> std::path::PathBuf {
    let runs = dir.join("runs.json");
    let text = std::fs::read_to_string(RUNS_FIXTURE).unwrap().replacen(
        "\"completionTime\": \"2026-11-25T09:05:00Z\"",
        "\"podName\": \"lint-pod\"",
        1,
    );
    std::fs::write(&runs, text).unwrap();
    runs
}

/// A server over the local store with the lint TaskRun running.
pub async fn server_with_a_running_run(dir: &std::path::Path) -> TestServer {
    let runs = running_runs_file(dir);
    TestServer::start_with([("LOGS_RUNS_FILE", runs.to_str().unwrap())]).await
}

/// Runs the CLI with only `args` (no environment), its output piped.
pub fn spawn_cli(args: &[&str]) -> tokio::process::Child {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting the CLI")
}

/// The UID of the runs fixture's lint TaskRun.
pub const LINT_UID: &str = "a0a0a0a0-0000-4000-8000-000000000002";

/// Puts lines of the runs fixture's lint TaskRun into `loki` as a forwarder
/// ships them (ViaQ JSON): `(time in ns, step, message)`.
pub fn push_lint_lines(loki: &crate::fakes::loki::FakeLoki, lines: &[(i64, &str, String)]) {
    let json: Vec<(i64, String)> = lines
        .iter()
        .map(|(ts, step, message)| {
            let line = serde_json::json!({
                "message": message,
                "kubernetes": {"container_name": format!("step-{step}"), "namespace_name": "demo",
                               "labels": {"tekton_dev_taskRunUID": LINT_UID}}
            });
            (*ts, line.to_string())
        })
        .collect();
    let entries: Vec<(i64, &str)> = json.iter().map(|(t, l)| (*t, l.as_str())).collect();
    loki.push_lines(
        &[
            ("log_type", "application"),
            ("kubernetes_namespace_name", "demo"),
        ],
        &entries,
    );
}

/// The server over `loki`, with runs from the runs fixture, and `extra` keys.
pub async fn loki_runs_server(
    loki: &crate::fakes::loki::FakeLoki,
    extra: &[(&str, &str)],
) -> TestServer {
    let url = loki.url();
    let mut env = vec![
        ("LOGS_RUNS_FILE", RUNS_FIXTURE),
        ("LOGS_TYPE", "Loki"),
        ("LOGGING_PLUGIN_API_URL", url.as_str()),
        ("LOGGING_PLUGIN_PROXY_PATH", ""),
    ];
    env.extend_from_slice(extra);
    TestServer::start_with(env).await
}
