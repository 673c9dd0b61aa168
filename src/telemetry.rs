//! Logging set-up (tracing to stderr) and metrics (the `metrics` facade,
//! rendered for Prometheus).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `level` is the validated `LOG_LEVEL`, an
/// `EnvFilter` directive (`info`, `tekton_results_logs=debug,warn`).
pub fn init(level: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(level).map_err(|e| format!("LOG_LEVEL={level:?}: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| e.to_string())
}

/// The metrics the service records.
pub mod names {
    /// Gauge: log streams being served, by `api` (`text`, `records`,
    /// `dashboard`).
    pub const STREAMS: &str = "tekton_results_logs_streams";
    /// Gauge: bytes of store pages held for clients that have not taken them
    /// yet, over all streams (a page per stream at most: what backpressure
    /// bounds).
    pub const STREAM_BUFFERED_BYTES: &str = "tekton_results_logs_stream_buffered_bytes";
    /// Counter: log records served, by `api`.
    pub const RECORDS_SERVED: &str = "tekton_results_logs_records_served_total";
    /// Counter: message bytes of the log records served, by `api`.
    pub const BYTES_SERVED: &str = "tekton_results_logs_bytes_served_total";
    /// Counter: requests to a log provider, by `provider`, `request` (e.g.
    /// `query_range`) and `outcome` (`2xx`, `4xx`, `5xx`, `transport-error`).
    pub const UPSTREAM_REQUESTS: &str = "tekton_results_logs_upstream_requests_total";
    /// Counter: requests to a provider tried again, by `provider`, `request`.
    pub const UPSTREAM_RETRIES: &str = "tekton_results_logs_upstream_retries_total";
    /// Counter: requests to a provider given up after every retry (answered
    /// `Unavailable`), by `provider`, `request`.
    pub const UPSTREAM_FAILURES: &str = "tekton_results_logs_upstream_failures_total";
    /// Gauge: shared upstream tails open (one per followed log), by
    /// `provider`.
    pub const UPSTREAM_TAILS: &str = "tekton_results_logs_upstream_tails";
    /// Gauge: followers reading live lines from a shared tail, by `provider`.
    pub const FOLLOWERS: &str = "tekton_results_logs_followers";
    /// Counter: times a follower fell so far behind its shared tail that it
    /// went back to reading history from its own position, by `provider`.
    pub const FOLLOWER_FALLBACKS: &str = "tekton_results_logs_follower_fallbacks_total";
    /// Summary: how old a followed line is when a follower takes it from the
    /// shared tail (now minus the line's time, seconds), by `provider`.
    pub const FOLLOWER_LAG: &str = "tekton_results_logs_follower_lag_seconds";
    /// Gauge: stream slots held (see `LOGS_MAX_STREAMS`).
    pub const STREAM_SLOTS: &str = "tekton_results_logs_stream_slots";
    /// Counter: streams refused because a stream limit was reached.
    pub const STREAMS_REFUSED: &str = "tekton_results_logs_streams_refused_total";
    /// Counter: requests refused by auth, by `outcome` (`unauthenticated`,
    /// `denied`, `unavailable`).
    pub const AUTH_REFUSED: &str = "tekton_results_logs_auth_refused_total";
}

/// Installs the global metrics recorder; the handle renders the metrics in
/// Prometheus' text format.
pub fn install_metrics() -> Result<metrics_exporter_prometheus::PrometheusHandle, String> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("installing the metrics recorder: {e}"))?;
    metrics::describe_gauge!(names::STREAMS, "Log streams being served.");
    metrics::describe_gauge!(
        names::STREAM_BUFFERED_BYTES,
        metrics::Unit::Bytes,
        "Bytes of store pages held for clients that have not taken them yet."
    );
    metrics::describe_counter!(names::RECORDS_SERVED, "Log records served.");
    metrics::describe_counter!(names::UPSTREAM_REQUESTS, "Requests to a log provider.");
    metrics::describe_counter!(
        names::UPSTREAM_RETRIES,
        "Requests to a log provider tried again."
    );
    metrics::describe_counter!(
        names::UPSTREAM_FAILURES,
        "Requests to a log provider given up after every retry."
    );
    metrics::describe_counter!(
        names::BYTES_SERVED,
        metrics::Unit::Bytes,
        "Message bytes of the log records served."
    );
    metrics::describe_gauge!(names::UPSTREAM_TAILS, "Shared upstream tails open.");
    metrics::describe_gauge!(names::FOLLOWERS, "Followers of a shared upstream tail.");
    metrics::describe_counter!(
        names::FOLLOWER_FALLBACKS,
        "Times a follower fell behind its shared tail and read history from its own position."
    );
    metrics::describe_histogram!(
        names::FOLLOWER_LAG,
        metrics::Unit::Seconds,
        "Age of a followed line when a follower takes it from the shared tail."
    );
    metrics::describe_gauge!(names::STREAM_SLOTS, "Stream slots held (LOGS_MAX_STREAMS).");
    metrics::describe_counter!(
        names::STREAMS_REFUSED,
        "Streams refused because a stream limit was reached."
    );
    metrics::describe_counter!(names::AUTH_REFUSED, "Requests refused by auth, by outcome.");
    Ok(handle)
}
