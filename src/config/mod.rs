//! Service configuration: [`Config`] and its sections, validated from a
//! [`RawConfig`] (config file < environment < CLI overrides), the [`Provider`]
//! choice, the [`Error`] type and [`Config::describe`] for the `check` command.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod keys;
pub mod raw;
mod security;
#[cfg(test)]
mod tests;
mod values;

pub use keys::DEFAULT_DATA_DIR_DOC;
pub use raw::RawConfig;
pub use security::{AuthConfig, Limits, Security, TlsFiles};
pub(crate) use values::is_identifier;
use values::{
    count_certificates, parse_api_url, parse_bool, parse_buffer_size, parse_ca_cert, parse_ip,
    parse_json_map, parse_json_path, parse_label_name, parse_minutes, parse_optional, parse_path,
    parse_port, parse_provider, parse_proxy_path, parse_query_limit, parse_query_params,
    parse_static_labels,
};

/// Result of loading or validating the configuration.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key has a value that fails validation; displays as, e.g.,
    /// `LOGGING_PLUGIN_QUERY_LIMIT="abc": not a positive integer`.
    #[error("{key}={value:?}: {reason}")]
    Invalid {
        /// The key, one of [`keys`].
        key: &'static str,
        /// The rejected value (a CA certificate is cut to the first 40
        /// characters of its first line).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A line of the config file is not `KEY=VALUE`.
    #[error("config file \"{}\", line {line}: {reason}", path.display())]
    File {
        /// The config file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// The config file cannot be read.
    #[error("config file \"{}\": {source}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the server listens.
    pub server: ServerConfig,
    /// Which log store is used and how logs are streamed.
    pub logs: LogsConfig,
    /// Settings of the remote logging backends (Loki, Blob, Splunk).
    pub plugin: PluginConfig,
    /// The Results database, when `DB_HOST` is set.
    pub db: Option<DbConfig>,
    /// Auth, TLS and limits.
    pub security: Security,
}

/// How to reach the Tekton Results PostgreSQL database.
#[derive(Clone, PartialEq, Eq)]
pub struct DbConfig {
    /// `DB_HOST`.
    pub host: String,
    /// `DB_PORT`.
    pub port: u16,
    /// `DB_NAME`.
    pub name: String,
    /// `DB_USER`.
    pub user: String,
    /// `DB_PASSWORD` (may be empty).
    pub password: String,
    /// `DB_SSLMODE`: `disable`, `allow`, `prefer`, `require`, `verify-ca`
    /// or `verify-full`.
    pub sslmode: String,
    /// `DB_SSLROOTCERT`: the CA certificates file, if set.
    pub sslrootcert: Option<PathBuf>,
    /// `DB_MAX_OPEN_CONNECTIONS`: the pool size.
    pub max_connections: usize,
}

/// Listening address of the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// IP address to bind (`SERVER_HOST`).
    pub host: IpAddr,
    /// Port to bind, 0 for any free port (`SERVER_PORT`).
    pub port: u16,
    /// The service's log filter, a valid tracing directive (`LOG_LEVEL`).
    pub log_level: String,
    /// How long requests in flight may run on after a shutdown signal
    /// (`SERVER_SHUTDOWN_TIMEOUT`).
    pub shutdown_timeout: Duration,
    /// Port of the metrics endpoint, `None` for none (`PROMETHEUS_PORT`).
    pub metrics_port: Option<u16>,
}

/// The logs API and its store.
#[derive(Debug, Clone)]
pub struct LogsConfig {
    /// `LOGS_API`, read for compatibility with upstream config files. This
    /// service always serves its Logs APIs: serving logs is all it does.
    pub api: bool,
    /// Where logs are read from (`LOGS_TYPE`).
    pub provider: Provider,
    /// Size in bytes of the streamed chunks, 1 to 4190208 (`LOGS_BUFFER_SIZE`).
    pub buffer_size: usize,
    /// Data directory of the embedded local store (`LOGS_PATH`).
    pub path: PathBuf,
    /// Records declaring runs, when there is no run database
    /// (`LOGS_RUNS_FILE`).
    pub runs_file: Option<PathBuf>,
    /// `LOGS_TIMESTAMPS`: unused by upstream's API server (its watcher adds
    /// timestamps when it uploads); kept for the structured API to come.
    pub timestamps: bool,
    /// How long an upload may go without a message before it is aborted
    /// (`LOGS_UPLOAD_IDLE_TIMEOUT`).
    pub upload_idle_timeout: Duration,
    /// Pages each shared live tail keeps for its followers
    /// (`LOGS_FOLLOW_BUFFER_PAGES`).
    pub follow_buffer_pages: usize,
}

/// Where logs are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// The embedded local store (`LOGS_TYPE=File` or `local`).
    Local,
    /// Grafana Loki.
    Loki,
    /// A blob store (S3, GCS, Azure, files) addressed by a bucket URL.
    Blob,
    /// Splunk.
    Splunk,
}

impl Provider {
    /// The lowercase name: `local`, `loki`, `blob` or `splunk`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Local => "local",
            Provider::Loki => "loki",
            Provider::Blob => "blob",
            Provider::Splunk => "splunk",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings of the remote logging backends (the `LOGGING_PLUGIN_*` keys).
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// Base URL of the backend, `None` if unset (`LOGGING_PLUGIN_API_URL`).
    pub api_url: Option<String>,
    /// Path appended to the URL, empty for none (`LOGGING_PLUGIN_PROXY_PATH`).
    pub proxy_path: String,
    /// File holding the bearer token (`LOGGING_PLUGIN_TOKEN_PATH`).
    pub token_path: PathBuf,
    /// Label holding the namespace (`LOGGING_PLUGIN_NAMESPACE_KEY`).
    pub namespace_key: String,
    /// Dotted JSON path of the container name (`LOGGING_PLUGIN_CONTAINER_KEY`).
    pub container_key: Option<String>,
    /// Labels added to every query, in order (`LOGGING_PLUGIN_STATIC_LABELS`).
    pub static_labels: Vec<(String, String)>,
    /// PEM text of the trusted CA certificates (`LOGGING_PLUGIN_CA_CERT`).
    pub ca_cert: Option<String>,
    /// Whether TLS verification is off (`LOGGING_PLUGIN_TLS_VERIFICATION_DISABLE`).
    pub tls_verification_disable: bool,
    /// Log lines per query, 1 to 5000 (`LOGGING_PLUGIN_QUERY_LIMIT`).
    pub query_limit: u32,
    /// Time the forwarder may take to store logs, in whole minutes
    /// (`LOGGING_PLUGIN_FORWARDER_DELAY_DURATION`).
    pub forwarder_delay: Duration,
    /// Extra query parameters, in order (`LOGGING_PLUGIN_QUERY_PARAMS`).
    pub query_params: Vec<(String, String)>,
    /// Regex matching the parts of one multipart log, unchecked
    /// (`LOGGING_PLUGIN_MULTIPART_REGEX`).
    pub multipart_regex: Option<String>,
    /// Field map from the JSON object, in document order (`LOGGING_PLUGIN_JSON_MAP`).
    pub json_map: Vec<(String, String)>,
    /// Format applied to each log line (`LOGGING_PLUGIN_LINE_FORMAT`).
    pub line_format: Option<String>,
    /// Loki tenant, sent as `X-Scope-OrgID` (`LOGGING_PLUGIN_TENANT`).
    pub tenant: Option<String>,
    /// JSON path of the TaskRun UID (`LOGGING_PLUGIN_TASKRUN_UID_KEY`).
    pub taskrun_uid_key: String,
    /// JSON path of the PipelineRun UID (`LOGGING_PLUGIN_PIPELINERUN_UID_KEY`).
    pub pipelinerun_uid_key: String,
    /// Time limit of one backend request (`LOGGING_PLUGIN_TIMEOUT`).
    pub timeout: Duration,
    /// How far back to search when a run's start is unknown
    /// (`LOGGING_PLUGIN_LOOKBACK_DURATION`).
    pub lookback: Duration,
    /// How old a followed line must be before it is sent
    /// (`LOGGING_PLUGIN_FOLLOW_SETTLE_MS`).
    pub follow_settle: Duration,
    /// Who runs the query's pipeline (`LOGGING_PLUGIN_QUERY_PLAN`).
    pub query_plan: QueryPlan,
}

/// Who runs a Loki query's pipeline (`json`, the UID filter,
/// `line_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryPlan {
    /// The connector, over the lines Loki keeps with a line filter on the
    /// UID (the default; see `backend/loki/plan.rs`).
    Connector,
    /// Loki: upstream's query, for set-ups that rely on other LogQL stages.
    Loki,
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("name", &self.name)
            .field("user", &self.user)
            .field(
                "password",
                &if self.password.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// The database section: `None` unless `DB_HOST` is set; every `DB_*` key is
/// validated either way.
fn db_config(raw: &RawConfig) -> Result<Option<DbConfig>> {
    let host = field(raw, keys::DB_HOST, "", parse_optional)?;
    let port = field(raw, keys::DB_PORT, "5432", parse_port)?;
    let name = field(raw, keys::DB_NAME, "tekton-results", |v| {
        if v.is_empty() {
            Err("must not be empty".to_owned())
        } else {
            Ok(v.to_owned())
        }
    })?;
    let user = raw.get(keys::DB_USER).unwrap_or("").to_owned();
    let password = raw.get(keys::DB_PASSWORD).unwrap_or("").to_owned();
    let sslmode = field(raw, keys::DB_SSLMODE, "disable", |v| match v {
        "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full" => {
            Ok(v.to_owned())
        }
        _ => Err("expected disable, allow, prefer, require, verify-ca or verify-full".to_owned()),
    })?;
    let sslrootcert = field(raw, keys::DB_SSLROOTCERT, "", values::parse_optional_path)?;
    let max_connections = field(raw, keys::DB_MAX_OPEN_CONNECTIONS, "10", |v| {
        match values::parse_int(v) {
            // Upstream: 0 means the driver's default.
            Some(0) => Ok(10),
            Some(n @ 1..=1000) => Ok(n as usize),
            _ => Err("not an integer from 0 to 1000".to_owned()),
        }
    })?;
    field(raw, keys::DB_ENABLE_AUTO_MIGRATION, "true", parse_bool)?;
    let Some(host) = host else {
        return Ok(None);
    };
    if user.is_empty() {
        return Err(Error::Invalid {
            key: keys::DB_USER,
            value: user,
            reason: "required when DB_HOST is set".to_owned(),
        });
    }
    if sslrootcert.is_none() && sslmode.starts_with("verify-") {
        return Err(Error::Invalid {
            key: keys::DB_SSLROOTCERT,
            value: String::new(),
            reason: format!(
                "required with DB_SSLMODE={sslmode}: the CA certificates to check the database's \
                 certificate against"
            ),
        });
    }
    Ok(Some(DbConfig {
        host,
        port,
        name,
        user,
        password,
        sslmode,
        sslrootcert,
        max_connections,
    }))
}

/// Directory name of the default data directory.
const DATA_DIR_NAME: &str = "tekton-results-logs";

impl Config {
    /// Validates every key, including keys the chosen provider does not use,
    /// in the order of [`keys::ALL`]; absent keys take their defaults.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for the first key whose value fails validation.
    pub fn from_raw(raw: &RawConfig) -> Result<Config> {
        let server = ServerConfig {
            host: field(raw, keys::SERVER_HOST, "127.0.0.1", parse_ip)?,
            port: field(raw, keys::SERVER_PORT, "8080", parse_port)?,
            shutdown_timeout: field(
                raw,
                keys::SERVER_SHUTDOWN_TIMEOUT,
                "30",
                values::parse_seconds,
            )?,
            log_level: field(raw, keys::LOG_LEVEL, "info", values::parse_log_level)?,
            metrics_port: field(raw, keys::PROMETHEUS_PORT, "9090", |v| {
                if v.is_empty() {
                    Ok(None)
                } else {
                    parse_port(v).map(Some)
                }
            })?,
        };
        let logs = LogsConfig {
            api: field(raw, keys::LOGS_API, "false", parse_bool)?,
            provider: field(raw, keys::LOGS_TYPE, "File", parse_provider)?,
            buffer_size: field(raw, keys::LOGS_BUFFER_SIZE, "32768", parse_buffer_size)?,
            path: field(raw, keys::LOGS_PATH, &default_data_dir(raw), parse_path)?,
            runs_file: field(raw, keys::LOGS_RUNS_FILE, "", values::parse_optional_path)?,
            timestamps: field(raw, keys::LOGS_TIMESTAMPS, "false", parse_bool)?,
            upload_idle_timeout: field(
                raw,
                keys::LOGS_UPLOAD_IDLE_TIMEOUT,
                "300",
                values::parse_seconds,
            )?,
            follow_buffer_pages: field(
                raw,
                keys::LOGS_FOLLOW_BUFFER_PAGES,
                "64",
                values::parse_follow_buffer_pages,
            )?,
        };
        let provider = logs.provider;
        let plugin = PluginConfig {
            api_url: field(raw, keys::LOGGING_PLUGIN_API_URL, "", |v| {
                parse_api_url(v, provider)
            })?,
            proxy_path: field(
                raw,
                keys::LOGGING_PLUGIN_PROXY_PATH,
                "/api/logs/v1/application",
                parse_proxy_path,
            )?,
            token_path: field(
                raw,
                keys::LOGGING_PLUGIN_TOKEN_PATH,
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
                parse_path,
            )?,
            namespace_key: field(
                raw,
                keys::LOGGING_PLUGIN_NAMESPACE_KEY,
                "kubernetes_namespace_name",
                parse_label_name,
            )?,
            container_key: field(
                raw,
                keys::LOGGING_PLUGIN_CONTAINER_KEY,
                "kubernetes.container_name",
                parse_json_path,
            )?,
            static_labels: field(
                raw,
                keys::LOGGING_PLUGIN_STATIC_LABELS,
                "log_type=application",
                parse_static_labels,
            )?,
            ca_cert: field(raw, keys::LOGGING_PLUGIN_CA_CERT, "", parse_ca_cert)?,
            tls_verification_disable: field(
                raw,
                keys::LOGGING_PLUGIN_TLS_VERIFICATION_DISABLE,
                "false",
                parse_bool,
            )?,
            query_limit: field(
                raw,
                keys::LOGGING_PLUGIN_QUERY_LIMIT,
                "1700",
                parse_query_limit,
            )?,
            forwarder_delay: field(
                raw,
                keys::LOGGING_PLUGIN_FORWARDER_DELAY_DURATION,
                "10",
                parse_minutes,
            )?,
            query_params: field(
                raw,
                keys::LOGGING_PLUGIN_QUERY_PARAMS,
                "direction=forward",
                parse_query_params,
            )?,
            multipart_regex: field(
                raw,
                keys::LOGGING_PLUGIN_MULTIPART_REGEX,
                "",
                parse_optional,
            )?,
            json_map: field(raw, keys::LOGGING_PLUGIN_JSON_MAP, "", parse_json_map)?,
            line_format: field(raw, keys::LOGGING_PLUGIN_LINE_FORMAT, "", parse_optional)?,
            tenant: field(raw, keys::LOGGING_PLUGIN_TENANT, "", values::parse_tenant)?,
            taskrun_uid_key: field(
                raw,
                keys::LOGGING_PLUGIN_TASKRUN_UID_KEY,
                "kubernetes.labels.tekton_dev_taskRunUID",
                values::parse_required_json_path,
            )?,
            pipelinerun_uid_key: field(
                raw,
                keys::LOGGING_PLUGIN_PIPELINERUN_UID_KEY,
                "kubernetes.labels.tekton_dev_pipelineRunUID",
                values::parse_required_json_path,
            )?,
            timeout: field(
                raw,
                keys::LOGGING_PLUGIN_TIMEOUT,
                "60",
                values::parse_seconds,
            )?,
            lookback: field(
                raw,
                keys::LOGGING_PLUGIN_LOOKBACK_DURATION,
                "43200",
                parse_minutes,
            )?,
            follow_settle: field(
                raw,
                keys::LOGGING_PLUGIN_FOLLOW_SETTLE_MS,
                "2000",
                values::parse_settle_ms,
            )?,
            query_plan: field(
                raw,
                keys::LOGGING_PLUGIN_QUERY_PLAN,
                "connector",
                values::parse_query_plan,
            )?,
        };
        let db = db_config(raw)?;
        if let (Some(_), Some(file)) = (&db, &logs.runs_file) {
            return Err(Error::Invalid {
                key: keys::LOGS_RUNS_FILE,
                value: file.display().to_string(),
                reason: "runs come from the database when DB_HOST is set; set one of the two"
                    .to_owned(),
            });
        }
        let security = security::security(raw, server.host)?;
        Ok(Config {
            server,
            logs,
            plugin,
            db,
            security,
        })
    }

    /// A multi-line summary of the effective configuration, one `name: value`
    /// per line. The CA certificate text is never shown, only its size, and a
    /// password in the API URL is masked.
    pub fn describe(&self) -> String {
        let p = &self.plugin;
        let mut rows: Vec<(&str, String)> = vec![
            ("provider", self.logs.provider.to_string()),
            (
                "listen address",
                SocketAddr::new(self.server.host, self.server.port).to_string(),
            ),
            ("log level", self.server.log_level.clone()),
            (
                "shutdown timeout",
                format!("{} s", self.server.shutdown_timeout.as_secs()),
            ),
            (
                "logs API",
                format!(
                    "LOGS_API={} (ignored: the Logs APIs are always served)",
                    self.logs.api
                ),
            ),
            (
                "metrics",
                match self.server.metrics_port {
                    None => "off (PROMETHEUS_PORT empty)".to_owned(),
                    Some(0) => format!("http://{}:<any free port>/metrics", self.server.host),
                    Some(port) => format!("http://{}:{port}/metrics", self.server.host),
                },
            ),
            ("data dir", self.logs.path.display().to_string()),
            ("buffer size", format!("{} bytes", self.logs.buffer_size)),
            ("timestamps", enabled(self.logs.timestamps).to_owned()),
            (
                "upload idle timeout",
                format!("{} s", self.logs.upload_idle_timeout.as_secs()),
            ),
            (
                "follow buffer",
                format!("{} pages per shared tail", self.logs.follow_buffer_pages),
            ),
            ("auth", self.security.describe_auth()),
            (
                "TLS",
                match &self.security.tls {
                    None => "off (plaintext)".to_owned(),
                    Some(files) => format!(
                        "certificate {}, key {} (read again when they change)",
                        files.cert.display(),
                        files.key.display()
                    ),
                },
            ),
            ("limits", self.security.describe_limits()),
            (
                "run database",
                match &self.db {
                    None => match &self.logs.runs_file {
                        None => "none: runs are resolved from log names (DB_HOST unset)".to_owned(),
                        Some(file) => format!(
                            "none: runs declared in {} (LOGS_RUNS_FILE), others resolved \
                                 from log names",
                            file.display()
                        ),
                    },
                    Some(db) => {
                        format!(
                        "postgres://{}@{}:{}/{} (sslmode {}{}, password {}, up to {} connections)",
                        db.user,
                        db.host,
                        db.port,
                        db.name,
                        db.sslmode,
                        db.sslrootcert
                            .as_ref()
                            .map(|f| format!(", CA certificates {}", f.display()))
                            .unwrap_or_default(),
                        if db.password.is_empty() { "empty" } else { "set" },
                        db.max_connections
                    )
                    }
                },
            ),
        ];
        let ca_cert = match &p.ca_cert {
            Some(pem) => {
                let count = count_certificates(pem).unwrap_or(0);
                let noun = if count == 1 {
                    "certificate"
                } else {
                    "certificates"
                };
                format!("set ({} bytes, {count} {noun})", pem.len())
            }
            None => "unset".to_owned(),
        };
        rows.extend([
            (
                keys::LOGGING_PLUGIN_API_URL,
                optional(p.api_url.as_deref().map(mask_password).as_deref()),
            ),
            (
                keys::LOGGING_PLUGIN_PROXY_PATH,
                format!("{:?}", p.proxy_path),
            ),
            (
                keys::LOGGING_PLUGIN_TOKEN_PATH,
                format!("{:?}", p.token_path.display().to_string()),
            ),
            (
                keys::LOGGING_PLUGIN_NAMESPACE_KEY,
                format!("{:?}", p.namespace_key),
            ),
            (
                keys::LOGGING_PLUGIN_CONTAINER_KEY,
                optional(p.container_key.as_deref()),
            ),
            (
                keys::LOGGING_PLUGIN_STATIC_LABELS,
                pairs(&p.static_labels, ","),
            ),
            (keys::LOGGING_PLUGIN_CA_CERT, ca_cert),
            (
                keys::LOGGING_PLUGIN_TLS_VERIFICATION_DISABLE,
                p.tls_verification_disable.to_string(),
            ),
            (keys::LOGGING_PLUGIN_QUERY_LIMIT, p.query_limit.to_string()),
            (
                keys::LOGGING_PLUGIN_FORWARDER_DELAY_DURATION,
                match p.forwarder_delay.as_secs() / 60 {
                    1 => "1 minute".to_owned(),
                    minutes => format!("{minutes} minutes"),
                },
            ),
            (
                keys::LOGGING_PLUGIN_QUERY_PARAMS,
                pairs(&p.query_params, "&"),
            ),
            (
                keys::LOGGING_PLUGIN_MULTIPART_REGEX,
                optional(p.multipart_regex.as_deref()),
            ),
            (keys::LOGGING_PLUGIN_JSON_MAP, json_map_summary(&p.json_map)),
            (
                keys::LOGGING_PLUGIN_LINE_FORMAT,
                optional(p.line_format.as_deref()),
            ),
            (keys::LOGGING_PLUGIN_TENANT, optional(p.tenant.as_deref())),
            (
                keys::LOGGING_PLUGIN_TASKRUN_UID_KEY,
                format!("{:?}", p.taskrun_uid_key),
            ),
            (
                keys::LOGGING_PLUGIN_PIPELINERUN_UID_KEY,
                format!("{:?}", p.pipelinerun_uid_key),
            ),
            (
                keys::LOGGING_PLUGIN_TIMEOUT,
                format!("{} s", p.timeout.as_secs()),
            ),
            (
                keys::LOGGING_PLUGIN_LOOKBACK_DURATION,
                format!("{} minutes", p.lookback.as_secs() / 60),
            ),
            (
                keys::LOGGING_PLUGIN_FOLLOW_SETTLE_MS,
                format!("{} ms", p.follow_settle.as_millis()),
            ),
            (
                keys::LOGGING_PLUGIN_QUERY_PLAN,
                match p.query_plan {
                    QueryPlan::Connector => "connector".to_owned(),
                    QueryPlan::Loki => "loki".to_owned(),
                },
            ),
        ]);
        let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0) + 1;
        let mut out = String::new();
        for (name, value) in rows {
            out.push_str(&format!("{:<width$} {value}\n", format!("{name}:")));
        }
        out
    }
}

fn enabled(on: bool) -> &'static str {
    if on {
        "enabled"
    } else {
        "disabled"
    }
}

/// A quoted string, or `unset`.
fn optional(value: Option<&str>) -> String {
    value.map_or_else(|| "unset".to_owned(), |v| format!("{v:?}"))
}

/// `k=v` items joined by `separator` and quoted, or `none`.
fn pairs(items: &[(String, String)], separator: &str) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    let joined: Vec<String> = items.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{:?}", joined.join(separator))
}

fn json_map_summary(map: &[(String, String)]) -> String {
    if map.is_empty() {
        return "unset".to_owned();
    }
    let items: Vec<String> = map.iter().map(|(k, v)| format!("{k:?}: {v:?}")).collect();
    format!("{{{}}}", items.join(", "))
}

/// Replaces the user info of a URL (`user:password@`) with `***@`.
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// Parses the value of `key` (or `default` when the key is absent) with
/// `parse`, turning its reason into [`Error::Invalid`].
fn field<T>(
    raw: &RawConfig,
    key: &'static str,
    default: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T> {
    let value = raw.get(key).unwrap_or(default);
    parse(value).map_err(|reason| Error::Invalid {
        key,
        value: shown_value(key, value),
        reason,
    })
}

/// The value as quoted in an error: a CA certificate is cut to the first 40
/// characters of its first line so errors never carry whole PEM blocks.
fn shown_value(key: &str, value: &str) -> String {
    if key != keys::LOGGING_PLUGIN_CA_CERT {
        return value.to_owned();
    }
    let first_line = value.lines().next().unwrap_or("");
    let mut shown: String = first_line.chars().take(40).collect();
    if shown.len() < value.len() {
        shown.push_str("...");
    }
    shown
}

/// The default `LOGS_PATH`, see [`DEFAULT_DATA_DIR_DOC`].
fn default_data_dir(raw: &RawConfig) -> String {
    let non_empty = |key: &str| raw.get(key).filter(|v| !v.is_empty());
    let dir = if let Some(data_home) = non_empty("XDG_DATA_HOME") {
        Path::new(data_home).join(DATA_DIR_NAME)
    } else if let Some(home) = non_empty("HOME") {
        Path::new(home).join(".local/share").join(DATA_DIR_NAME)
    } else {
        PathBuf::from("./tekton-results-logs-data")
    };
    dir.to_string_lossy().into_owned()
}
