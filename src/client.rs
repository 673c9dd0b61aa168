//! The CLI's structured reads: `get` with filters or `--output json|ndjson`
//! (REST NDJSON), and `tail` (Server-Sent Events, resuming from the last
//! event's cursor when the connection drops).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use futures::StreamExt;
use reqwest_eventsource::{Event, EventSource};
use serde_json::Value;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// The environment variable the CLI takes a bearer token from when no
/// `--token-file` is given.
pub const TOKEN_ENV: &str = "TEKTON_RESULTS_LOGS_TOKEN";

/// How the CLI reaches the service: its URL, the bearer token to send, and
/// the CA certificates to trust for `https://`.
#[derive(Clone)]
pub struct Remote {
    /// The service's URL.
    pub server: String,
    token: Option<String>,
    ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Remote {
    /// The service at `server`; the token from `token_file`, else from
    /// `TEKTON_RESULTS_LOGS_TOKEN`; CA certificates from `ca_file`, else the
    /// system's roots.
    pub fn new(
        server: &str,
        token_file: Option<&Path>,
        ca_file: Option<&Path>,
    ) -> Result<Self, String> {
        let token = match token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("reading the token file {}: {e}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => std::env::var(TOKEN_ENV).ok(),
        }
        .filter(|t| !t.is_empty());
        let ca_pem = ca_file
            .map(|path| {
                std::fs::read(path)
                    .map_err(|e| format!("reading the CA file {}: {e}", path.display()))
            })
            .transpose()?;
        Ok(Self {
            server: server.to_owned(),
            token,
            ca_pem,
        })
    }

    /// An HTTP client that sends the token and trusts the CA.
    pub fn http(&self) -> Result<reqwest::Client, String> {
        let mut builder = reqwest::Client::builder();
        if let Some(token) = &self.token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| "the token has characters a header cannot carry".to_owned())?;
            value.set_sensitive(true);
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, value);
            builder = builder.default_headers(headers);
        }
        if let Some(pem) = &self.ca_pem {
            for certificate in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("the CA file is not PEM: {e}"))?
            {
                builder = builder.add_root_certificate(certificate);
            }
        }
        builder.build().map_err(|e| format!("HTTP client: {e}"))
    }

    /// A gRPC channel to the service (TLS for `https://`).
    pub async fn channel(&self) -> Result<tonic::transport::Channel, String> {
        let server = &self.server;
        let mut endpoint = tonic::transport::Endpoint::from_shared(server.clone())
            .map_err(|e| format!("--server {server:?}: {e}"))?;
        if server.starts_with("https://") {
            let mut tls = tonic::transport::ClientTlsConfig::new().with_webpki_roots();
            if let Some(pem) = &self.ca_pem {
                tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| format!("TLS to {server}: {e}"))?;
        }
        endpoint
            .connect()
            .await
            .map_err(|e| format!("connecting to {server}: {e}"))
    }

    /// `message` as a gRPC request carrying the token.
    pub fn request<T>(&self, message: T) -> Result<tonic::Request<T>, String> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.token {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| "the token has characters metadata cannot carry".to_owned())?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// What `get` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// The log's text (a PipelineRun's lines marked `[task] `).
    Text,
    /// A JSON array of records.
    Json,
    /// One JSON record per line.
    Ndjson,
}

/// Which part of a log to read.
#[derive(Debug, Clone, Default, Args)]
pub struct Filters {
    /// Only these steps (a step's name or its container), comma-separated.
    #[arg(long, value_name = "STEPS")]
    pub steps: Option<String>,
    /// Only lines at or after this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only lines before this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<u32>,
}

impl Filters {
    /// Whether any filter is set.
    pub fn any(&self) -> bool {
        self.steps.is_some() || self.since.is_some() || self.until.is_some() || self.tail.is_some()
    }

    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if let Some(steps) = &self.steps {
            query.push(("steps", steps.clone()));
        }
        if let Some(since) = &self.since {
            query.push(("since", since.clone()));
        }
        if let Some(until) = &self.until {
            query.push(("until", until.clone()));
        }
        if let Some(tail) = self.tail {
            query.push(("tail", tail.to_string()));
        }
        query
    }
}

/// The REST URL of a log.
fn log_url(server: &str, name: &str) -> Result<String, String> {
    let (parent, rest) = name
        .split_once('/')
        .ok_or_else(|| format!("{name:?} is not <namespace>/results/<result>/logs/<log>"))?;
    Ok(format!(
        "{}/apis/results.tekton.dev/v1alpha3/parents/{parent}/{rest}",
        server.trim_end_matches('/')
    ))
}

/// The message of an error answer (`{"message": ...}`), else its body.
async fn error_of(response: reqwest::Response) -> String {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or(body);
    format!("{status}: {}", message.trim_end())
}

/// A record as the text route writes it; `at_line_start` says whether the
/// record starts a line (the one before ended one), and is updated.
fn text_line(record: &Value, out: &mut Vec<u8>, at_line_start: &mut bool) -> Result<(), String> {
    if *at_line_start {
        if let Some(task) = record.get("task").and_then(Value::as_str) {
            out.extend_from_slice(format!("[{task}] ").as_bytes());
        }
    }
    match (record.get("message"), record.get("message_base64")) {
        (Some(Value::String(text)), _) => out.extend_from_slice(text.as_bytes()),
        (_, Some(Value::String(encoded))) => {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| format!("the server sent a bad message_base64: {e}"))?;
            out.extend_from_slice(&bytes);
        }
        _ => {
            return Err(format!(
                "the server sent a record without a message: {record}"
            ))
        }
    }
    *at_line_start = record.get("unterminated") != Some(&Value::Bool(true));
    if *at_line_start {
        out.push(b'\n');
    }
    Ok(())
}

/// The longest NDJSON line `get` takes: a record holds at most a line of
/// the store (Loki's are at most 256 KB), base64 and JSON included.
const MAX_RECORD_LINE: usize = 4 * 1024 * 1024;

/// Where `get` writes, with a progress line on a terminal when it is a file.
struct Sink {
    out: Box<dyn AsyncWrite + Send + Unpin>,
    progress: Option<(PathBuf, Instant)>,
    written: u64,
}

impl Sink {
    async fn open(file: Option<PathBuf>) -> Result<Self, String> {
        match file {
            None => Ok(Self {
                out: Box::new(tokio::io::stdout()),
                progress: None,
                written: 0,
            }),
            Some(path) => {
                let out = tokio::fs::File::create(&path)
                    .await
                    .map_err(|e| format!("creating {}: {e}", path.display()))?;
                let show = std::io::stderr().is_terminal();
                Ok(Self {
                    out: Box::new(tokio::io::BufWriter::new(out)),
                    progress: show.then(|| (path, Instant::now())),
                    written: 0,
                })
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.out
            .write_all(bytes)
            .await
            .map_err(|e| format!("writing the log: {e}"))?;
        self.written += bytes.len() as u64;
        if let Some((path, shown)) = &mut self.progress {
            if shown.elapsed() >= Duration::from_millis(250) {
                *shown = Instant::now();
                eprint!("\r{}: {} written", path.display(), size(self.written));
            }
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<(), String> {
        self.out
            .flush()
            .await
            .map_err(|e| format!("writing the log: {e}"))?;
        if let Some((path, _)) = &self.progress {
            eprintln!("\r{}: {} written", path.display(), size(self.written));
        }
        Ok(())
    }
}

fn size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes < 1024 * 1024 {
        format!("{bytes} bytes")
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB)
    }
}

/// `get` over REST NDJSON: records printed as `output` says.
pub async fn get(
    remote: &Remote,
    name: &str,
    follow: bool,
    filters: &Filters,
    output: Output,
    file: Option<PathBuf>,
) -> Result<(), String> {
    let mut query = filters.query();
    if follow {
        query.push(("follow", "true".to_owned()));
    }
    let server = remote.server.as_str();
    let response = remote
        .http()?
        .get(log_url(server, name)?)
        .query(&query)
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .map_err(|e| format!("connecting to {server}: {e}"))?;
    if !response.status().is_success() {
        return Err(error_of(response).await);
    }
    let mut sink = Sink::open(file).await?;
    let mut body = response.bytes_stream();
    let mut pending = Vec::new();
    let mut out = Vec::new();
    let mut first = true;
    let mut at_line_start = true;
    if output == Output::Json {
        sink.write(b"[").await?;
    }
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("the log stream broke off: {e}"))?;
        let searched = pending.len();
        pending.extend_from_slice(&chunk);
        let Some(end) = pending[searched..]
            .iter()
            .rposition(|b| *b == b'\n')
            .map(|at| searched + at)
        else {
            if pending.len() > MAX_RECORD_LINE {
                return Err(format!(
                    "the server sent a record longer than {MAX_RECORD_LINE} bytes"
                ));
            }
            continue;
        };
        let lines: Vec<u8> = pending.drain(..=end).collect();
        out.clear();
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match output {
                Output::Ndjson => {
                    out.extend_from_slice(line);
                    out.push(b'\n');
                }
                Output::Json => {
                    out.extend_from_slice(if first { b"\n" } else { b",\n" });
                    out.extend_from_slice(line);
                }
                Output::Text => {
                    let record: Value = serde_json::from_slice(line)
                        .map_err(|e| format!("the server sent a bad record: {e}"))?;
                    text_line(&record, &mut out, &mut at_line_start)?;
                }
            }
            first = false;
        }
        sink.write(&out).await?;
    }
    if !pending.is_empty() {
        return Err("the log stream ended inside a record".to_owned());
    }
    if output == Output::Json {
        sink.write(if first { b"]\n" } else { b"\n]\n" }).await?;
    }
    sink.finish().await
}

/// `tail`: follows a log over Server-Sent Events and prints its text; a
/// dropped connection is resumed from the last record's cursor, so no line
/// is printed twice or left out. Ends when the server says the log is
/// complete.
pub async fn tail(remote: &Remote, name: &str, filters: &Filters) -> Result<(), String> {
    let server = remote.server.as_str();
    let request = remote
        .http()?
        .get(log_url(server, name)?)
        .query(&filters.query());
    let mut source = EventSource::new(request).map_err(|e| format!("{e}"))?;
    let mut stdout = tokio::io::stdout();
    let mut out = Vec::new();
    let mut at_line_start = true;
    let outcome = loop {
        let Some(event) = source.next().await else {
            break Ok(());
        };
        match event {
            Ok(Event::Open) => {}
            Ok(Event::Message(message)) => match message.event.as_str() {
                "record" => {
                    let record: Value = serde_json::from_str(&message.data)
                        .map_err(|e| format!("the server sent a bad record: {e}"))?;
                    out.clear();
                    text_line(&record, &mut out, &mut at_line_start)?;
                    stdout
                        .write_all(&out)
                        .await
                        .map_err(|e| format!("writing to standard output: {e}"))?;
                    stdout
                        .flush()
                        .await
                        .map_err(|e| format!("writing to standard output: {e}"))?;
                }
                "end" => break Ok(()),
                "error" => {
                    let error: Value = serde_json::from_str(&message.data).unwrap_or_default();
                    break Err(format!(
                        "the log stream failed: {}",
                        error["message"].as_str().unwrap_or(&message.data)
                    ));
                }
                _ => {}
            },
            Err(reqwest_eventsource::Error::InvalidStatusCode(_, response)) => {
                break Err(error_of(response).await);
            }
            // A dropped connection: the event source reconnects with the
            // last event id, which resumes after the last record printed.
            Err(reqwest_eventsource::Error::Transport(error)) => {
                eprintln!("tekton-results-logs: connection lost ({error}); resuming");
            }
            Err(reqwest_eventsource::Error::StreamEnded) => {}
            Err(other) => break Err(other.to_string()),
        }
    };
    source.close();
    outcome
}
