//! The HTTP side of the Loki connector: URLs (`LOGGING_PLUGIN_API_URL` +
//! `LOGGING_PLUGIN_PROXY_PATH`), the bearer token from
//! `LOGGING_PLUGIN_TOKEN_PATH` (re-read when the file changes, as projected
//! service-account tokens rotate), the tenant header, TLS settings, retries
//! with backoff, and the mapping of Loki's answers to `backend::Error`.
//!
//! Loki's error bodies are plain text (`pkg/util/server/error.go`); they are
//! passed on in the error message, shortened.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};

use super::wire::QueryResponse;
use crate::backend::retry::{parse_retry_after, retryable_status, RetryPolicy};
use crate::backend::{Error, Result};
use crate::telemetry::names;
use crate::timestamp::now_ns;
use crate::watched::WatchedText;

pub(super) const PROVIDER: &str = "loki";

/// Parameters this connector sets itself; the same names in
/// `LOGGING_PLUGIN_QUERY_PARAMS` are ignored (paging needs them).
const RESERVED_PARAMS: &[&str] = &[
    "query",
    "start",
    "end",
    "limit",
    "direction",
    "step",
    "interval",
];

/// The largest response body read; a larger one is an error rather than an
/// unbounded buffer (a page is at most `limit` lines).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// How much of an error body goes into a message.
const MAX_EXCERPT_CHARS: usize = 300;

/// How to reach Loki.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Base URL, without the proxy path.
    pub api_url: String,
    /// Path between the base URL and `/loki/api/v1/...`; may be empty.
    pub proxy_path: String,
    /// The bearer token file; a missing file means no token.
    pub token_path: PathBuf,
    /// `X-Scope-OrgID`, if any.
    pub tenant: Option<String>,
    /// PEM text of the CAs to trust instead of the built-in roots.
    pub ca_cert: Option<String>,
    /// Skip certificate verification (ignored when `ca_cert` is set).
    pub tls_verification_disable: bool,
    /// Extra query parameters (`LOGGING_PLUGIN_QUERY_PARAMS`).
    pub query_params: Vec<(String, String)>,
    /// Time limit of one request.
    pub timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
}

/// A Loki HTTP client.
#[derive(Debug)]
pub struct LokiClient {
    http: reqwest::Client,
    base: String,
    /// Whether TLS settings apply that only the HTTP client honours.
    custom_tls: bool,
    token: TokenFile,
    tenant: Option<String>,
    query_params: Vec<(String, String)>,
    retry: RetryPolicy,
}

/// The answer to a request that reached Loki and was not retried (again).
struct Answer {
    status: u16,
    body: Bytes,
}

impl LokiClient {
    /// A client for `settings`.
    pub fn new(settings: &ClientSettings) -> Result<Self> {
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("tekton-results-logs/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &settings.ca_cert {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| Error::internal(PROVIDER, format!("LOGGING_PLUGIN_CA_CERT: {e}")))?;
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        } else if settings.tls_verification_disable {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| Error::internal(PROVIDER, format!("building the HTTP client: {e}")))?;
        let query_params = settings
            .query_params
            .iter()
            .filter(|(k, v)| {
                let reserved = RESERVED_PARAMS.contains(&k.as_str());
                // Upstream's default, `direction=forward`, is what paging uses anyway.
                let harmless = k == "direction" && v.eq_ignore_ascii_case("forward");
                if reserved && !harmless {
                    tracing::warn!(param = %k, value = %v, "LOGGING_PLUGIN_QUERY_PARAMS sets a parameter the connector sets itself; ignored");
                }
                !reserved
            })
            .cloned()
            .collect();
        Ok(Self {
            http,
            base: format!(
                "{}{}",
                settings.api_url.trim_end_matches('/'),
                settings.proxy_path.trim_end_matches('/')
            ),
            custom_tls: settings.ca_cert.is_some() || settings.tls_verification_disable,
            token: TokenFile::new(settings.token_path.clone()),
            tenant: settings.tenant.clone(),
            query_params,
            retry: settings.retry,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The websocket URL of a tail of `query` from `start_ns`. Fails for
    /// `https` with a custom CA or verification turned off, which the
    /// websocket client does not honour (the caller then polls).
    pub fn tail_url(&self, query: &str, start_ns: i64) -> std::result::Result<String, String> {
        let base = if let Some(rest) = self.base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = self.base.strip_prefix("https://") {
            if self.custom_tls {
                return Err("the tail websocket does not use LOGGING_PLUGIN_CA_CERT or \
                     LOGGING_PLUGIN_TLS_VERIFICATION_DISABLE"
                    .to_owned());
            }
            format!("wss://{rest}")
        } else {
            return Err(format!("no websocket scheme for {}", self.base));
        };
        let params = [
            ("query", query.to_owned()),
            ("start", start_ns.to_string()),
            ("limit", "1".to_owned()),
        ];
        reqwest::Url::parse_with_params(&format!("{base}/loki/api/v1/tail"), &params)
            .map(String::from)
            .map_err(|e| e.to_string())
    }

    /// The authentication headers every request carries: the bearer token
    /// and the tenant, when set.
    pub async fn auth_headers(
        &self,
    ) -> Result<Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>> {
        let mut headers = Vec::new();
        let invalid = |what: &str| {
            Error::internal(PROVIDER, format!("the {what} is not a valid header value"))
        };
        if let Some(token) = self.token.bearer()? {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| invalid("token"))?;
            value.set_sensitive(true);
            headers.push((reqwest::header::AUTHORIZATION, value));
        }
        if let Some(tenant) = &self.tenant {
            let value =
                reqwest::header::HeaderValue::from_str(tenant).map_err(|_| invalid("tenant"))?;
            headers.push((
                reqwest::header::HeaderName::from_static("x-scope-orgid"),
                value,
            ));
        }
        Ok(headers)
    }

    /// One forward `query_range` page: entries in `[start_ns, end_ns)`, at
    /// most `limit`.
    pub async fn query_range(
        &self,
        query: &str,
        start_ns: i64,
        end_ns: i64,
        limit: u32,
        categorize: bool,
    ) -> Result<QueryResponse> {
        let url = self.url("/loki/api/v1/query_range");
        let mut params = self.query_params.clone();
        params.extend([
            ("query".to_owned(), query.to_owned()),
            ("start".to_owned(), start_ns.to_string()),
            ("end".to_owned(), end_ns.to_string()),
            ("limit".to_owned(), limit.to_string()),
            ("direction".to_owned(), "forward".to_owned()),
        ]);
        let answer = self
            .send("query_range", || {
                let request = self.http.get(&url).query(&params);
                if categorize {
                    // Index labels apart from structured metadata, so that
                    // labels the connector extracts are named as Loki would.
                    request.header("X-Loki-Response-Encoding-Flags", "categorize-labels")
                } else {
                    request
                }
            })
            .await?;
        if answer.status != 200 {
            return Err(refusal("query_range", answer.status, &answer.body));
        }
        QueryResponse::parse(&answer.body).map_err(|e| {
            Error::internal(
                PROVIDER,
                format!(
                    "query_range answered 200 with an unusable body ({e}): {}",
                    excerpt(&answer.body)
                ),
            )
        })
    }

    /// Pushes an encoded request (snappy protobuf). `Ok` on 204; a refusal
    /// that is not retried is returned with its status and body.
    pub async fn push(&self, body: Bytes) -> Result<std::result::Result<(), (u16, String)>> {
        let url = self.url("/loki/api/v1/push");
        let answer = self
            .send("push", || {
                self.http
                    .post(&url)
                    .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(body.clone())
            })
            .await?;
        match answer.status {
            200..=299 => Ok(Ok(())),
            status => Ok(Err((
                status,
                String::from_utf8_lossy(&answer.body).into_owned(),
            ))),
        }
    }

    /// Whether Loki answers: a label query over the last minute.
    pub async fn check(&self) -> Result<()> {
        let url = self.url("/loki/api/v1/labels");
        let now = now_ns();
        let params = [
            ("start", (now - 60_000_000_000).to_string()),
            ("end", now.to_string()),
        ];
        let answer = self
            .send("labels", || self.http.get(&url).query(&params))
            .await?;
        if answer.status == 200 {
            Ok(())
        } else {
            Err(refusal("labels", answer.status, &answer.body))
        }
    }

    /// Sends a request, retrying connection failures and retryable statuses.
    /// Returns the first answer that is not retried; exhausted retries are
    /// `Unavailable`.
    async fn send(
        &self,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Answer> {
        let mut attempt = 1;
        loop {
            let mut request = build();
            for (name, value) in self.auth_headers().await? {
                request = request.header(name, value);
            }
            let (failure, retry_after) = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    count_request(what, status_class(status));
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    match read_body(response).await {
                        Ok(body) if !retryable_status(status) => {
                            return Ok(Answer { status, body });
                        }
                        Ok(body) => (format!("HTTP {status}: {}", excerpt(&body)), retry_after),
                        // A connection cut mid-body is worth another try.
                        Err(Error::Unavailable { message, .. }) => (message, None),
                        Err(other) => return Err(other),
                    }
                }
                Err(e) => {
                    count_request(what, "transport-error");
                    (describe_transport_error(&e), None)
                }
            };
            if attempt >= self.retry.attempts {
                metrics::counter!(names::UPSTREAM_FAILURES, "provider" => PROVIDER, "request" => what.to_owned())
                    .increment(1);
                return Err(Error::Unavailable {
                    provider: PROVIDER,
                    message: format!("{what} failed {attempt} times; last: {failure}"),
                });
            }
            metrics::counter!(names::UPSTREAM_RETRIES, "provider" => PROVIDER, "request" => what.to_owned())
                .increment(1);
            let wait = self.retry.delay(attempt, retry_after);
            tracing::warn!(provider = PROVIDER, what, attempt, error = %failure, wait_ms = wait.as_millis() as u64, "request failed; retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// Counts one request to Loki by what it was and how it ended.
fn count_request(what: &str, outcome: &'static str) {
    metrics::counter!(
        names::UPSTREAM_REQUESTS,
        "provider" => PROVIDER,
        "request" => what.to_owned(),
        "outcome" => outcome
    )
    .increment(1);
}

/// `2xx`, `4xx`, `5xx`, ... for a status.
fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Reads a response body, refusing one over `MAX_BODY_BYTES`.
async fn read_body(mut response: reqwest::Response) -> Result<Bytes> {
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| Error::Unavailable {
        provider: PROVIDER,
        message: format!("reading an answer: {}", describe_transport_error(&e)),
    })? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(Error::internal(
                PROVIDER,
                format!(
                    "an answer exceeded {MAX_BODY_BYTES} bytes; lower LOGGING_PLUGIN_QUERY_LIMIT"
                ),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The error for a final, non-retryable answer.
fn refusal(what: &str, status: u16, body: &[u8]) -> Error {
    let text = excerpt(body);
    match status {
        400 => Error::InvalidArgument {
            message: format!("loki rejected the {what} request: {text}"),
        },
        401 | 403 => Error::internal(
            PROVIDER,
            format!("loki refused the service's credentials for {what} (HTTP {status}): {text}"),
        ),
        _ => Error::internal(PROVIDER, format!("{what} answered HTTP {status}: {text}")),
    }
}

fn describe_transport_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "transport error"
    };
    let mut message = format!("{kind}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

/// The start of a body, as text, for messages.
pub(super) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut out: String = text.chars().take(MAX_EXCERPT_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// The bearer token file, read again when it changes (kubelet rotates
/// projected tokens by replacing the file); no token while it is missing.
#[derive(Debug)]
struct TokenFile(Mutex<WatchedText>);

impl TokenFile {
    fn new(path: PathBuf) -> Self {
        Self(Mutex::new(WatchedText::new(&path)))
    }

    fn bearer(&self) -> Result<Option<String>> {
        let mut file = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match file.text() {
            Ok(token) => Ok(Some(token)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::internal(
                PROVIDER,
                format!("reading the token file {}: {e}", file.path().display()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_token_is_reread_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let token = TokenFile::new(path.clone());
        let look_next_time = || token.0.lock().unwrap().look_next_time();
        assert_eq!(token.bearer().unwrap(), None);
        std::fs::write(&path, "first\n").unwrap();
        assert_eq!(token.bearer().unwrap().as_deref(), Some("first"));
        std::fs::write(&path, "second-token\n").unwrap();
        look_next_time();
        assert_eq!(token.bearer().unwrap().as_deref(), Some("second-token"));
    }

    #[test]
    fn refusals_map_to_honest_errors() {
        assert!(matches!(
            refusal("q", 400, b"parse error"),
            Error::InvalidArgument { .. }
        ));
        assert!(matches!(
            refusal("q", 401, b"no org id"),
            Error::Internal { .. }
        ));
        assert!(matches!(
            refusal("q", 404, b"404 page not found"),
            Error::Internal { .. }
        ));
        let long = vec![b'x'; 10_000];
        assert!(refusal("q", 400, &long).to_string().len() < 400);
    }
}
