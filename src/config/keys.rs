//! Names of every configuration key, with what each one means and its
//! default. Apart from `SERVER_HOST`, these are the upstream Tekton Results
//! keys, read from the environment, the config file or CLI overrides.
//!
//! For the optional text keys (API URL, CA certificate, multipart regex, JSON
//! map, line format) an empty value means the same as unset.

/// Address the server listens on, an IPv4 or IPv6 address (ours, not
/// upstream). Default `127.0.0.1`.
pub const SERVER_HOST: &str = "SERVER_HOST";

/// Port the server listens on, 0 to 65535 (0 picks a free port). Default
/// `8080`.
pub const SERVER_PORT: &str = "SERVER_PORT";

/// Port of the Prometheus metrics endpoint (`GET /metrics`) on
/// `SERVER_HOST`, 0 to 65535 (0 picks a free port); empty turns it off.
/// Default `9090`, as upstream's.
pub const PROMETHEUS_PORT: &str = "PROMETHEUS_PORT";

/// Upstream's switch for its Logs gRPC service (`true`/`false`, `1`/`0`,
/// `yes`/`no`, `on`/`off`). Read for compatibility and validated; this service
/// always serves its Logs APIs. Default `false`.
pub const LOGS_API: &str = "LOGS_API";

/// Where logs are read from: `File` or `local`, any case (the embedded local store),
/// `Loki`, `Blob` or `Splunk`. Default `File`.
pub const LOGS_TYPE: &str = "LOGS_TYPE";

/// Size in bytes of the chunks logs are streamed in; a value below 1 means
/// 65536, the maximum is 4190208. Default `32768`.
pub const LOGS_BUFFER_SIZE: &str = "LOGS_BUFFER_SIZE";

/// Data directory of the embedded local store. Default: see
/// [`DEFAULT_DATA_DIR_DOC`].
pub const LOGS_PATH: &str = "LOGS_PATH";

/// A file of Tekton Results records (JSON, as the Results API lists them)
/// declaring the runs behind log names when there is no run database (ours,
/// not upstream; see `docs/configuration.md`). Not with `DB_HOST`. Default
/// unset.
pub const LOGS_RUNS_FILE: &str = "LOGS_RUNS_FILE";

/// Upstream's timestamps switch, unused by its API server (its watcher adds
/// timestamps when uploading). Read for compatibility and validated. Default
/// `false`.
pub const LOGS_TIMESTAMPS: &str = "LOGS_TIMESTAMPS";

/// Base URL of the logging backend (`http://` or `https://`; for `Blob` also
/// `s3://`, `gs://`, `file://` or `az://`). Default unset.
pub const LOGGING_PLUGIN_API_URL: &str = "LOGGING_PLUGIN_API_URL";

/// Path appended to the API URL when the backend sits behind a proxy; empty
/// for none. Default `/api/logs/v1/application`.
pub const LOGGING_PLUGIN_PROXY_PATH: &str = "LOGGING_PLUGIN_PROXY_PATH";

/// File holding the bearer token sent to the backend. Default
/// `/var/run/secrets/kubernetes.io/serviceaccount/token`.
pub const LOGGING_PLUGIN_TOKEN_PATH: &str = "LOGGING_PLUGIN_TOKEN_PATH";

/// Label the backend stores the Kubernetes namespace under. Default
/// `kubernetes_namespace_name`.
pub const LOGGING_PLUGIN_NAMESPACE_KEY: &str = "LOGGING_PLUGIN_NAMESPACE_KEY";

/// Dotted JSON path of the container name in log records; empty for none.
/// Default `kubernetes.container_name`.
pub const LOGGING_PLUGIN_CONTAINER_KEY: &str = "LOGGING_PLUGIN_CONTAINER_KEY";

/// Labels added to every query, as `name=value,name=value`; empty for none.
/// Default `log_type=application`.
pub const LOGGING_PLUGIN_STATIC_LABELS: &str = "LOGGING_PLUGIN_STATIC_LABELS";

/// PEM text (not a path) of the CA certificates trusted for the backend.
/// Default unset (system roots).
pub const LOGGING_PLUGIN_CA_CERT: &str = "LOGGING_PLUGIN_CA_CERT";

/// Whether TLS certificate verification of the backend is turned off.
/// Default `false`.
pub const LOGGING_PLUGIN_TLS_VERIFICATION_DISABLE: &str = "LOGGING_PLUGIN_TLS_VERIFICATION_DISABLE";

/// Maximum number of log lines per backend query, 1 to 5000. Default `1700`.
pub const LOGGING_PLUGIN_QUERY_LIMIT: &str = "LOGGING_PLUGIN_QUERY_LIMIT";

/// Whole minutes the log forwarder may take to store logs after a run
/// completes; widens the query time range. Default `10`.
pub const LOGGING_PLUGIN_FORWARDER_DELAY_DURATION: &str = "LOGGING_PLUGIN_FORWARDER_DELAY_DURATION";

/// Extra query parameters sent to the backend, as `key=value&key=value`;
/// empty for none. Default `direction=forward`.
pub const LOGGING_PLUGIN_QUERY_PARAMS: &str = "LOGGING_PLUGIN_QUERY_PARAMS";

/// Regular expression matching the name suffix of the parts of one log
/// stored in several objects (e.g. `-\d{10}$`). Default unset.
pub const LOGGING_PLUGIN_MULTIPART_REGEX: &str = "LOGGING_PLUGIN_MULTIPART_REGEX";

/// Flat JSON object of string to string naming fields of the backend's JSON
/// log records, e.g. `{"pod":"kubernetes.pod_name"}`. Default unset.
pub const LOGGING_PLUGIN_JSON_MAP: &str = "LOGGING_PLUGIN_JSON_MAP";

/// Format applied to each log line returned by the backend. Default unset.
pub const LOGGING_PLUGIN_LINE_FORMAT: &str = "LOGGING_PLUGIN_LINE_FORMAT";

/// Loki tenant sent as `X-Scope-OrgID` (ours); empty for none. Default unset.
pub const LOGGING_PLUGIN_TENANT: &str = "LOGGING_PLUGIN_TENANT";

/// Dotted JSON path of the TaskRun UID in forwarded lines (ours; upstream
/// hard-codes it). Default `kubernetes.labels.tekton_dev_taskRunUID`.
pub const LOGGING_PLUGIN_TASKRUN_UID_KEY: &str = "LOGGING_PLUGIN_TASKRUN_UID_KEY";

/// Dotted JSON path of the PipelineRun UID in forwarded lines (ours; upstream
/// hard-codes it). Default `kubernetes.labels.tekton_dev_pipelineRunUID`.
pub const LOGGING_PLUGIN_PIPELINERUN_UID_KEY: &str = "LOGGING_PLUGIN_PIPELINERUN_UID_KEY";

/// Seconds one request to the backend may take (ours). Default `60`.
pub const LOGGING_PLUGIN_TIMEOUT: &str = "LOGGING_PLUGIN_TIMEOUT";

/// Whole minutes searched back from now for a run whose start time is not
/// known (no run database configured) (ours). Default `43200` (30 days).
pub const LOGGING_PLUGIN_LOOKBACK_DURATION: &str = "LOGGING_PLUGIN_LOOKBACK_DURATION";

/// Who runs the query's pipeline (ours): `connector` (Loki keeps the lines
/// containing the run's UID; the connector extracts, filters and formats
/// them) or `loki` (upstream's query: Loki does it all). Default
/// `connector`; a line format or field path the connector cannot render
/// exactly falls back to `loki`.
pub const LOGGING_PLUGIN_QUERY_PLAN: &str = "LOGGING_PLUGIN_QUERY_PLAN";

/// Milliseconds a followed line waits before it is sent, so that lines a
/// forwarder ships a little late still come in order (ours). 0 to 60000.
/// Default `2000`.
pub const LOGGING_PLUGIN_FOLLOW_SETTLE_MS: &str = "LOGGING_PLUGIN_FOLLOW_SETTLE_MS";

/// Seconds `serve` lets requests in flight finish after SIGTERM or Ctrl-C
/// before closing their connections (ours, not upstream). Default `30`.
pub const SERVER_SHUTDOWN_TIMEOUT: &str = "SERVER_SHUTDOWN_TIMEOUT";

/// Seconds an upload (UpdateLog) may go without a message before it is
/// aborted and nothing of it is stored (ours, not upstream). Default `300`.
pub const LOGS_UPLOAD_IDLE_TIMEOUT: &str = "LOGS_UPLOAD_IDLE_TIMEOUT";

/// Pages each shared live tail keeps for its followers (ours, not upstream):
/// a follower further behind than this reads the missed lines from history
/// instead. 1 to 65536. Default `64`.
pub const LOGS_FOLLOW_BUFFER_PAGES: &str = "LOGS_FOLLOW_BUFFER_PAGES";

/// The service's log filter, a tracing directive such as `info`, `debug` or
/// `tekton_results_logs=debug,warn`. Default `info`.
pub const LOG_LEVEL: &str = "LOG_LEVEL";

/// Host of the Tekton Results PostgreSQL database. When set, log names are
/// resolved to runs through it; unset: from the name alone. Default unset.
pub const DB_HOST: &str = "DB_HOST";

/// Port of the database. Default `5432`.
pub const DB_PORT: &str = "DB_PORT";

/// Name of the database. Default `tekton-results`.
pub const DB_NAME: &str = "DB_NAME";

/// Database user; required with `DB_HOST`. Default unset.
pub const DB_USER: &str = "DB_USER";

/// Database password; may be empty (trust authentication). Default empty.
pub const DB_PASSWORD: &str = "DB_PASSWORD";

/// TLS to the database, as libpq's `sslmode`: `disable`; `allow` and
/// `prefer` (TLS when the server offers it); `require` (TLS always; the
/// certificate checked against `DB_SSLROOTCERT` when that is set); `verify-ca`
/// (TLS, certificate chain checked against `DB_SSLROOTCERT`); `verify-full`
/// (as `verify-ca`, and the certificate must name `DB_HOST`). Default
/// `disable`.
pub const DB_SSLMODE: &str = "DB_SSLMODE";

/// PEM file of the certificate authorities the database's certificate must
/// chain to; required for `verify-ca` and `verify-full`. Default unset.
pub const DB_SSLROOTCERT: &str = "DB_SSLROOTCERT";

/// Largest number of open database connections (the pool size). Default `10`.
pub const DB_MAX_OPEN_CONNECTIONS: &str = "DB_MAX_OPEN_CONNECTIONS";

/// Upstream's schema migration switch; read and validated, never acted on:
/// this service only reads the database the Results API server owns.
/// Default `true`.
pub const DB_ENABLE_AUTO_MIGRATION: &str = "DB_ENABLE_AUTO_MIGRATION";

/// Upstream's switch that turns auth off (`true`/`false`). Unset: auth is
/// off outside a cluster and Kubernetes auth inside one (when
/// `KUBERNETES_SERVICE_HOST` is set); `false` asks for Kubernetes auth.
/// Default unset.
pub const AUTH_DISABLE: &str = "AUTH_DISABLE";

/// How callers are checked: `none`, `tokens` (a file of static bearer
/// tokens) or `kubernetes` (TokenReview and SubjectAccessReview; ours, not
/// upstream). Default: as `AUTH_DISABLE` says.
pub const AUTH_MODE: &str = "AUTH_MODE";

/// The file of static bearer tokens for `AUTH_MODE=tokens` (see
/// `docs/security.md`). Default unset.
pub const AUTH_TOKENS_FILE: &str = "AUTH_TOKENS_FILE";

/// The `https://` URL of the Kubernetes API server. Default
/// `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT` inside a
/// cluster.
pub const AUTH_KUBERNETES_API_URL: &str = "AUTH_KUBERNETES_API_URL";

/// The service's own token for the API server. Default
/// `/var/run/secrets/kubernetes.io/serviceaccount/token`.
pub const AUTH_KUBERNETES_TOKEN_PATH: &str = "AUTH_KUBERNETES_TOKEN_PATH";

/// CA certificates (PEM file) of the API server; empty for the system
/// roots. Default `/var/run/secrets/kubernetes.io/serviceaccount/ca.crt`.
pub const AUTH_KUBERNETES_CA_PATH: &str = "AUTH_KUBERNETES_CA_PATH";

/// Seconds a Kubernetes auth decision is reused, 0 to 3600. Default `10`.
pub const AUTH_CACHE_TTL: &str = "AUTH_CACHE_TTL";

/// The most Kubernetes auth decisions kept. Default `10000`.
pub const AUTH_CACHE_SIZE: &str = "AUTH_CACHE_SIZE";

/// Upstream's directory of the server's `tls.crt` and `tls.key`; without
/// both files the server speaks plaintext. Default `/etc/tls`.
pub const TLS_PATH: &str = "TLS_PATH";

/// The server's certificate chain (PEM); with `TLS_KEY_FILE`, wins over
/// `TLS_PATH`, and must exist. Re-read when it changes. Default unset.
pub const TLS_CERT_FILE: &str = "TLS_CERT_FILE";

/// The server's private key (PEM). Default unset.
pub const TLS_KEY_FILE: &str = "TLS_KEY_FILE";

/// Lets the server start on a non-loopback address with neither TLS nor
/// auth. Default `false`.
pub const SERVER_ALLOW_INSECURE: &str = "SERVER_ALLOW_INSECURE";

/// Seconds a client has for its TLS handshake, its first request and a
/// request's headers. Default `30`.
pub const SERVER_HEADER_TIMEOUT: &str = "SERVER_HEADER_TIMEOUT";

/// The most connections served at once; more wait to be accepted. Default
/// `50000`.
pub const SERVER_MAX_CONNECTIONS: &str = "SERVER_MAX_CONNECTIONS";

/// Concurrent log streams in all; more get 429 / ResourceExhausted.
/// Default `10000`.
pub const LOGS_MAX_STREAMS: &str = "LOGS_MAX_STREAMS";

/// Concurrent log streams per caller. Default `100`.
pub const LOGS_MAX_STREAMS_PER_CALLER: &str = "LOGS_MAX_STREAMS_PER_CALLER";

/// Seconds a read that does not follow may take. Default `3600`.
pub const LOGS_READ_TIMEOUT: &str = "LOGS_READ_TIMEOUT";

/// Seconds a follow lasts at most; then it ends with DeadlineExceeded and
/// the client resumes with its cursor. Default `86400`.
pub const LOGS_MAX_FOLLOW_DURATION: &str = "LOGS_MAX_FOLLOW_DURATION";

/// The most bytes one upload may store. Default `1073741824` (1 GiB).
pub const LOGS_MAX_UPLOAD_BYTES: &str = "LOGS_MAX_UPLOAD_BYTES";

/// Every key above, in the order they are validated.
pub const ALL: &[&str] = &[
    SERVER_HOST,
    SERVER_PORT,
    SERVER_SHUTDOWN_TIMEOUT,
    LOG_LEVEL,
    PROMETHEUS_PORT,
    LOGS_API,
    LOGS_TYPE,
    LOGS_BUFFER_SIZE,
    LOGS_PATH,
    LOGS_RUNS_FILE,
    LOGS_TIMESTAMPS,
    LOGS_UPLOAD_IDLE_TIMEOUT,
    LOGS_FOLLOW_BUFFER_PAGES,
    LOGGING_PLUGIN_API_URL,
    LOGGING_PLUGIN_PROXY_PATH,
    LOGGING_PLUGIN_TOKEN_PATH,
    LOGGING_PLUGIN_NAMESPACE_KEY,
    LOGGING_PLUGIN_CONTAINER_KEY,
    LOGGING_PLUGIN_STATIC_LABELS,
    LOGGING_PLUGIN_CA_CERT,
    LOGGING_PLUGIN_TLS_VERIFICATION_DISABLE,
    LOGGING_PLUGIN_QUERY_LIMIT,
    LOGGING_PLUGIN_FORWARDER_DELAY_DURATION,
    LOGGING_PLUGIN_QUERY_PARAMS,
    LOGGING_PLUGIN_MULTIPART_REGEX,
    LOGGING_PLUGIN_JSON_MAP,
    LOGGING_PLUGIN_LINE_FORMAT,
    LOGGING_PLUGIN_TENANT,
    LOGGING_PLUGIN_TASKRUN_UID_KEY,
    LOGGING_PLUGIN_PIPELINERUN_UID_KEY,
    LOGGING_PLUGIN_TIMEOUT,
    LOGGING_PLUGIN_LOOKBACK_DURATION,
    LOGGING_PLUGIN_FOLLOW_SETTLE_MS,
    LOGGING_PLUGIN_QUERY_PLAN,
    DB_HOST,
    DB_PORT,
    DB_NAME,
    DB_USER,
    DB_PASSWORD,
    DB_SSLMODE,
    DB_SSLROOTCERT,
    DB_MAX_OPEN_CONNECTIONS,
    DB_ENABLE_AUTO_MIGRATION,
    AUTH_DISABLE,
    AUTH_MODE,
    AUTH_TOKENS_FILE,
    AUTH_KUBERNETES_API_URL,
    AUTH_KUBERNETES_TOKEN_PATH,
    AUTH_KUBERNETES_CA_PATH,
    AUTH_CACHE_TTL,
    AUTH_CACHE_SIZE,
    TLS_PATH,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    SERVER_ALLOW_INSECURE,
    LOGS_MAX_STREAMS,
    LOGS_MAX_STREAMS_PER_CALLER,
    LOGS_READ_TIMEOUT,
    LOGS_MAX_FOLLOW_DURATION,
    LOGS_MAX_UPLOAD_BYTES,
    SERVER_HEADER_TIMEOUT,
    SERVER_MAX_CONNECTIONS,
];

/// How the default of [`LOGS_PATH`] is chosen, for docs and `--help`.
pub const DEFAULT_DATA_DIR_DOC: &str =
    "$XDG_DATA_HOME/tekton-results-logs if XDG_DATA_HOME is set \
     and non-empty, else $HOME/.local/share/tekton-results-logs if HOME is set and non-empty, \
     else ./tekton-results-logs-data";
