//! The `tekton-results-logs` command: `serve` runs the service; `check`
//! validates the configuration; `get`, `tail` and `push` are clients of a
//! running service (the upstream-compatible gRPC API, and REST for follows,
//! filters and structured output).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use tekton_results_logs::config::{self, keys, Config, RawConfig};
use tekton_results_logs::proto::tekton::results::{v1alpha2, v1alpha3};
use tekton_results_logs::{api, backend, run, telemetry};

mod client;

/// Where `get` and `push` find the service unless told otherwise.
const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Bytes per UpdateLog message sent by `push` (the Results watcher sends at
/// most 64 KiB per message too).
const PUSH_CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug, Parser)]
#[command(
    name = "tekton-results-logs",
    version,
    about = "Serves Tekton TaskRun and PipelineRun logs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (gRPC and REST on one port).
    Serve(ConfigArgs),
    /// Validate the configuration and print what the service would use.
    Check(ConfigArgs),
    /// Print a log to standard output (or a file).
    Get {
        /// The log: <namespace>/results/<result>/logs/<log>.
        name: String,
        /// Keep printing new lines until the run has completed (over REST,
        /// `?follow=true`).
        #[arg(short, long)]
        follow: bool,
        /// text (the log as it is), json (an array of records) or ndjson
        /// (a record per line).
        #[arg(short, long, value_enum, default_value = "text")]
        output: client::Output,
        /// Write to this file instead, with progress on a terminal.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        filters: client::Filters,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Follow a log, printing its lines as they come; resumes where it
    /// stopped when the connection drops, and ends when the run has completed.
    Tail {
        /// The log: <namespace>/results/<result>/logs/<log>.
        name: String,
        #[command(flatten)]
        filters: client::Filters,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Store a log, streamed from a file or standard input.
    Push {
        /// The log: <namespace>/results/<result>/logs/<log>.
        name: String,
        /// The file to upload; `-` or nothing reads standard input.
        file: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// An env-format config file (KEY=VALUE lines); the environment overrides it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (SERVER_HOST; default 127.0.0.1).
    #[arg(long, value_name = "IP")]
    host: Option<String>,
    /// Port for gRPC and REST (SERVER_PORT; default 8080; 0 picks a free one).
    #[arg(long)]
    port: Option<String>,
    /// Data directory of the local store (LOGS_PATH).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A file of Tekton Results records declaring runs (LOGS_RUNS_FILE).
    #[arg(long, value_name = "FILE")]
    runs_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ClientArgs {
    /// The service's URL (`https://` for a service with TLS).
    #[arg(long, default_value = DEFAULT_SERVER)]
    server: String,
    /// A file holding the bearer token to send (default: the
    /// TEKTON_RESULTS_LOGS_TOKEN environment variable, if set).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// CA certificates (PEM) to trust for an `https://` server, beside the
    /// usual roots.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

impl ClientArgs {
    fn remote(&self) -> Result<client::Remote, String> {
        client::Remote::new(
            &self.server,
            self.token_file.as_deref(),
            self.ca_file.as_deref(),
        )
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Check(args) => check(args).await,
        Command::Get {
            name,
            follow,
            output,
            out,
            filters,
            client,
        } => {
            let remote = client.remote()?;
            if !follow && output == client::Output::Text && out.is_none() && !filters.any() {
                // The plain log through the upstream-compatible gRPC API.
                get(&name, &remote).await
            } else {
                client::get(&remote, &name, follow, &filters, output, out).await
            }
        }
        Command::Tail {
            name,
            filters,
            client,
        } => client::tail(&client.remote()?, &name, &filters).await,
        Command::Push { name, file, client } => push(&name, file, &client.remote()?).await,
    }
}

fn load_config(args: &ConfigArgs) -> Result<(RawConfig, Config), config::Error> {
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let mut raw = RawConfig::load(args.config.as_deref(), env)?;
    if let Some(host) = &args.host {
        raw.set(keys::SERVER_HOST, host.clone());
    }
    if let Some(port) = &args.port {
        raw.set(keys::SERVER_PORT, port.clone());
    }
    if let Some(dir) = &args.data_dir {
        raw.set(keys::LOGS_PATH, dir.to_string_lossy());
    }
    if let Some(file) = &args.runs_file {
        raw.set(keys::LOGS_RUNS_FILE, file.to_string_lossy());
    }
    let config = Config::from_raw(&raw)?;
    Ok((raw, config))
}

/// Writes to standard output; a closed pipe (`check | head`) is not an error.
fn print_out(text: &str) -> Result<(), String> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("writing to standard output: {e}"))
        }
        _ => Ok(()),
    }
}

async fn check(args: ConfigArgs) -> Result<(), String> {
    let (raw, config) = load_config(&args).map_err(|e| format!("invalid configuration: {e}"))?;
    print_out(&config.describe())?;
    for key in raw.unknown_keys() {
        print_out(&format!(
            "warning: {key} is not a key this service reads; it is ignored\n"
        ))?;
    }
    let backend = backend::build(&config).map_err(|e| format!("invalid configuration: {e}"))?;
    for warning in backend.warnings() {
        print_out(&format!("warning: {warning}\n"))?;
    }
    backend
        .check()
        .await
        .map_err(|e| format!("the {} store is not usable: {e}", backend.provider()))?;
    print_out(&format!("ok: the {} store is usable\n", backend.provider()))?;
    let authorizer = tekton_results_logs::auth::build(&config.security.auth)
        .map_err(|e| format!("invalid configuration: {e}"))?;
    if config.security.auth.is_enabled() {
        print_out(&format!("ok: {} auth is set up\n", authorizer.mode()))?;
    }
    if !config.server.host.is_loopback() && !config.security.auth.is_enabled() {
        print_out(&format!(
            "warning: auth is off on {}, an address others can reach: anyone who connects \
             may read, upload and delete every log\n",
            config.server.host
        ))?;
    }
    if let Some(files) = &config.security.tls {
        api::tls::server_config(files).map_err(|e| format!("invalid configuration: {e}"))?;
        print_out("ok: the TLS certificate and key load\n")?;
    }
    if config.logs.runs_file.is_some() {
        build_resolver(&config)?;
        print_out("ok: the runs file is readable\n")?;
    }
    if config.db.is_some() {
        build_resolver(&config)?
            .check()
            .await
            .map_err(|e| format!("the run database is not usable: {e}"))?;
        print_out("ok: the run database is usable\n")?;
    }
    Ok(())
}

async fn serve(args: ConfigArgs) -> Result<(), String> {
    let (raw, config) = load_config(&args).map_err(|e| format!("invalid configuration: {e}"))?;
    telemetry::init(&config.server.log_level)?;
    for key in raw.unknown_keys() {
        tracing::warn!(key, "not a key this service reads; it is ignored");
    }
    let backend = backend::build(&config).map_err(|e| format!("invalid configuration: {e}"))?;
    for warning in backend.warnings() {
        tracing::warn!("{warning}");
    }
    backend
        .check()
        .await
        .map_err(|e| format!("the {} store is not usable: {e}", backend.provider()))?;
    let resolver = build_resolver(&config)?;
    let authorizer = tekton_results_logs::auth::build(&config.security.auth)
        .map_err(|e| format!("invalid configuration: {e}"))?;
    let tls = config
        .security
        .tls
        .as_ref()
        .map(api::tls::server_config)
        .transpose()
        .map_err(|e| format!("invalid configuration: {e}"))?;
    let address = (config.server.host, config.server.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| format!("listening on {}:{}: {e}", address.0, address.1))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let metrics = match config.server.metrics_port {
        None => None,
        Some(port) => {
            let listener = tokio::net::TcpListener::bind((config.server.host, port))
                .await
                .map_err(|e| {
                    format!(
                        "listening for metrics on {}:{port} (PROMETHEUS_PORT): {e}",
                        config.server.host
                    )
                })?;
            let handle = telemetry::install_metrics()?;
            Some((listener, handle))
        }
    };
    tracing::info!(
        address = %local,
        provider = backend.provider(),
        data_dir = %config.logs.path.display(),
        auth = authorizer.mode(),
        tls = tls.is_some(),
        "serving gRPC and REST"
    );
    if !local.ip().is_loopback() && !config.security.auth.is_enabled() {
        tracing::warn!(
            address = %local,
            "auth is off on an address others can reach: anyone who connects may read every log"
        );
    }
    // Scripts and tests read the address from this line (port 0 picks one).
    println!("tekton-results-logs listening on {local}");
    if let Some((listener, handle)) = metrics {
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        println!("tekton-results-logs metrics on {address}");
        tracing::info!(%address, "serving metrics at /metrics");
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let handle = handle.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        handle.render(),
                    )
                }
            }),
        );
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "the metrics endpoint stopped");
            }
        });
    }
    let settings = api::Settings {
        chunk_size: config.logs.buffer_size,
        upload_idle_timeout: config.logs.upload_idle_timeout,
    };
    if let Err(error) = resolver.check().await {
        // Requests get 503 until the database answers; the service starts.
        tracing::warn!(%error, "the run database is not usable yet");
    }
    let (stopping, stopping_rx) = tokio::sync::watch::channel(false);
    let guard = api::Guard::new(authorizer, config.security.limits, stopping_rx);
    let router = api::router(backend, resolver, settings, guard).await;
    let options = api::ServeOptions {
        tls,
        header_timeout: config.security.limits.header_timeout,
        grace: config.server.shutdown_timeout,
        max_connections: config.security.limits.max_connections,
    };
    api::serve(listener, router, shutdown_signal(), stopping, options)
        .await
        .map_err(|e| format!("serving: {e}"))
}

fn build_resolver(config: &Config) -> Result<std::sync::Arc<dyn run::RunResolver>, String> {
    Ok(match (&config.db, &config.logs.runs_file) {
        (Some(db), _) => std::sync::Arc::new(run::DbResolver::new(db).map_err(|e| e.to_string())?),
        (None, Some(file)) => std::sync::Arc::new(
            run::FileResolver::load(file).map_err(|e| format!("invalid configuration: {e}"))?,
        ),
        (None, None) => std::sync::Arc::new(run::NameResolver),
    })
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

fn status_message(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

async fn get(name: &str, remote: &client::Remote) -> Result<(), String> {
    let mut client = v1alpha3::logs_client::LogsClient::new(remote.channel().await?);
    let request = remote.request(v1alpha3::GetLogRequest {
        name: name.to_owned(),
    })?;
    let mut chunks = client
        .get_log(request)
        .await
        .map_err(|s| status_message(&s))?
        .into_inner();
    let mut stdout = tokio::io::stdout();
    while let Some(chunk) = chunks.message().await.map_err(|s| status_message(&s))? {
        stdout
            .write_all(&chunk.data)
            .await
            .map_err(|e| format!("writing to standard output: {e}"))?;
    }
    stdout
        .flush()
        .await
        .map_err(|e| format!("writing to standard output: {e}"))
}

async fn push(name: &str, file: Option<PathBuf>, remote: &client::Remote) -> Result<(), String> {
    let input: Box<dyn AsyncRead + Send + Unpin> = match &file {
        Some(path) if path.as_os_str() != "-" => Box::new(
            tokio::fs::File::open(path)
                .await
                .map_err(|e| format!("opening {}: {e}", path.display()))?,
        ),
        _ => Box::new(tokio::io::stdin()),
    };
    let mut client = v1alpha2::logs_client::LogsClient::new(remote.channel().await?);
    let name = name.to_owned();
    let (read_failed, read_error) = tokio::sync::oneshot::channel::<String>();
    let mut read_failed = Some(read_failed);
    let messages = async_stream::stream! {
        let mut chunks = ReaderStream::with_capacity(input, PUSH_CHUNK_BYTES);
        let mut sent = false;
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(data) => {
                    sent = true;
                    yield v1alpha2::Log { name: name.clone(), data };
                }
                Err(e) => {
                    // Ending the stream would half-close the call and store a
                    // truncated log as complete; stalling lets the select below
                    // drop the call, which cancels the upload on the server.
                    if let Some(tx) = read_failed.take() {
                        let _ = tx.send(e.to_string());
                    }
                    std::future::pending::<()>().await;
                }
            }
        }
        if !sent {
            // An empty log is still one message: it names the log.
            yield v1alpha2::Log { name: name.clone(), data: Default::default() };
        }
    };
    tokio::select! {
        summary = client.update_log(remote.request(messages)?) => {
            let summary = summary.map_err(|s| status_message(&s))?.into_inner();
            println!("stored {} bytes as {}", summary.bytes_received, summary.record);
            Ok(())
        }
        Ok(e) = read_error => Err(format!("reading the log to upload: {e}; the upload was cancelled")),
    }
}
