//! `AUTH_MODE=kubernetes`: the caller's bearer token goes to the API
//! server's TokenReview; a token it authenticates is then checked with a
//! SubjectAccessReview for `{group: results.tekton.dev, resource: logs,
//! verb, namespace}`, the attributes upstream's API server checks. The
//! service authenticates itself with its own (service account) token, read
//! again when its file changes, so that a rotated projected token is picked
//! up.
//!
//! Answers (authenticated or not, allowed or not) are cached for
//! `AUTH_CACHE_TTL`; failures to ask (connection refused, timeouts, 5xx,
//! 429, the API server refusing the service's own token) are retried a few
//! times with backoff, then reported as Unavailable, never cached, and
//! never let a request through.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::cache::Cache;
use super::{digest, Authorizer, Credentials, Error, Identity, Result, Verb};
use crate::backend::retry::{retryable_status, RetryPolicy};
use crate::watched::WatchedText;

/// The API group of the resource checked.
pub const GROUP: &str = "results.tekton.dev";
/// The resource checked.
pub const RESOURCE: &str = "logs";

/// How the service reaches the Kubernetes API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeSettings {
    /// `https://host:port` of the API server.
    pub api_url: String,
    /// The service's own bearer token.
    pub token_path: PathBuf,
    /// CA certificates (PEM) to verify the API server with; `None` for the
    /// system roots.
    pub ca_path: Option<PathBuf>,
    /// How long a decision is reused.
    pub cache_ttl: Duration,
    /// The most decisions kept.
    pub cache_size: usize,
    /// The longest one review may take.
    pub timeout: Duration,
}

/// Decides with TokenReview and SubjectAccessReview.
#[derive(Debug)]
pub struct KubeAuthorizer {
    settings: KubeSettings,
    client: reqwest::Client,
    retry: RetryPolicy,
    /// Token digest to the user the API server said it is.
    users: Cache<[u8; 32], std::result::Result<User, Error>>,
    /// (token digest, namespace, verb) to the decision.
    decisions: Cache<([u8; 32], String, Verb), std::result::Result<Identity, Error>>,
    /// The service's own token as last read, and its file, read again when
    /// it changes (a projected token is rotated).
    service_token: Mutex<WatchedText>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
struct User {
    username: String,
    uid: String,
    groups: Vec<String>,
    extra: BTreeMap<String, Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Review<S> {
    api_version: &'static str,
    kind: &'static str,
    spec: S,
}

#[derive(Serialize)]
struct TokenReviewSpec<'a> {
    token: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccessReviewSpec<'a> {
    user: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    uid: &'a str,
    groups: &'a [String],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extra: &'a BTreeMap<String, Vec<String>>,
    resource_attributes: ResourceAttributes<'a>,
}

#[derive(Serialize)]
struct ResourceAttributes<'a> {
    namespace: &'a str,
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
}

#[derive(Deserialize)]
struct Answer<S> {
    status: Option<S>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TokenReviewStatus {
    authenticated: bool,
    user: User,
    error: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct AccessReviewStatus {
    allowed: bool,
    reason: String,
    evaluation_error: String,
}

/// The most bytes of an API server answer read: a review is a few KiB.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// An answer's body, refused past `MAX_ANSWER_BYTES`.
async fn read_capped(mut response: reqwest::Response) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!(
                "the answer is larger than {MAX_ANSWER_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl KubeAuthorizer {
    /// An authorizer for `settings`; reads the CA file now.
    ///
    /// # Errors
    ///
    /// A message if the CA file cannot be read or holds no certificate.
    pub fn new(settings: KubeSettings) -> std::result::Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .https_only(true);
        if let Some(path) = &settings.ca_path {
            let pem = std::fs::read(path).map_err(|e| {
                format!(
                    "reading the API server's CA {} (AUTH_KUBERNETES_CA_PATH): {e}",
                    path.display()
                )
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("the API server's CA {} is not PEM: {e}", path.display()))?;
            if certificates.is_empty() {
                return Err(format!(
                    "the API server's CA {} holds no certificate",
                    path.display()
                ));
            }
            builder = builder.tls_built_in_root_certs(false);
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder
            .build()
            .map_err(|e| format!("building the Kubernetes API client: {e}"))?;
        Ok(Self {
            service_token: Mutex::new(WatchedText::new(&settings.token_path)),
            users: Cache::new(settings.cache_ttl, settings.cache_size),
            decisions: Cache::new(settings.cache_ttl, settings.cache_size),
            retry: RetryPolicy {
                attempts: 3,
                base: Duration::from_millis(100),
                max: Duration::from_secs(1),
            },
            settings,
            client,
        })
    }

    /// Posts a review and returns its status, retrying what may pass.
    async fn review<S: Serialize, T: for<'de> Deserialize<'de> + Default>(
        &self,
        path: &str,
        kind: &'static str,
        api_version: &'static str,
        spec: S,
    ) -> Result<T> {
        let url = format!("{}{path}", self.settings.api_url.trim_end_matches('/'));
        let body = serde_json::to_vec(&Review {
            api_version,
            kind,
            spec,
        })
        .expect("reviews serialize");
        let unavailable = |what: String| {
            tracing::warn!(kind, error = %what, "the Kubernetes API server could not be asked");
            Error::Unavailable(format!(
                "authorization is unavailable: the Kubernetes API server could not be asked \
                 ({kind}); try again later"
            ))
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.service_token().map_err(unavailable)?;
            let sent = self
                .client
                .post(&url)
                .bearer_auth(&token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(reqwest::header::ACCEPT, "application/json")
                .body(body.clone())
                .send()
                .await;
            let failure = match sent {
                Ok(response) if response.status().is_success() => {
                    let bytes = read_capped(response)
                        .await
                        .map_err(|e| unavailable(format!("reading the answer: {e}")))?;
                    let answer: Answer<T> = serde_json::from_slice(&bytes)
                        .map_err(|e| unavailable(format!("the answer is not a {kind}: {e}")))?;
                    return Ok(answer.status.unwrap_or_default());
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = read_capped(response).await.unwrap_or_default();
                    let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
                    if !retryable_status(status) {
                        // 401/403 here mean the service's own token is not
                        // accepted or lacks the review permissions: a
                        // set-up error no retry mends.
                        return Err(unavailable(format!("HTTP {status}: {text}")));
                    }
                    format!("HTTP {status}: {text}")
                }
                Err(e) => format!("{e}"),
            };
            if attempt >= self.retry.attempts {
                return Err(unavailable(failure));
            }
            tokio::time::sleep(self.retry.delay(attempt, None)).await;
        }
    }

    /// The service's own token: read when first asked for, and again when
    /// its file changes or the last read failed.
    fn service_token(&self) -> std::result::Result<String, String> {
        let mut file = self.service_token.lock().unwrap_or_else(|p| p.into_inner());
        file.text()
            .map_err(|e| format!("reading the service's token {}: {e}", file.path().display()))
    }

    async fn user(&self, token: &str) -> Result<User> {
        let key = digest(token);
        if let Some(known) = self.users.get(&key) {
            return known;
        }
        let status: TokenReviewStatus = self
            .review(
                "/apis/authentication.k8s.io/v1/tokenreviews",
                "TokenReview",
                "authentication.k8s.io/v1",
                TokenReviewSpec { token },
            )
            .await?;
        let answer = if status.authenticated {
            Ok(status.user)
        } else {
            if !status.error.is_empty() {
                tracing::debug!(error = %status.error, "a token was not authenticated");
            }
            Err(Error::Unauthenticated(
                "the bearer token is not valid for this cluster".to_owned(),
            ))
        };
        // An answer with an error may be an authenticator that failed (a
        // webhook down), not a verdict on the token: asked again next time.
        if status.error.is_empty() {
            self.users.put(key, answer.clone());
        }
        answer
    }
}

#[async_trait]
impl Authorizer for KubeAuthorizer {
    async fn authorize(
        &self,
        credentials: &Credentials,
        namespace: &str,
        verb: Verb,
    ) -> Result<Identity> {
        let token = credentials.bearer()?;
        let key = (digest(token), namespace.to_owned(), verb);
        if let Some(known) = self.decisions.get(&key) {
            return known;
        }
        let user = self.user(token).await?;
        let status: AccessReviewStatus = self
            .review(
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                "SubjectAccessReview",
                "authorization.k8s.io/v1",
                AccessReviewSpec {
                    user: &user.username,
                    uid: &user.uid,
                    groups: &user.groups,
                    extra: &user.extra,
                    resource_attributes: ResourceAttributes {
                        namespace,
                        verb: verb.as_str(),
                        group: GROUP,
                        resource: RESOURCE,
                    },
                },
            )
            .await?;
        let decision = if status.allowed {
            Ok(Identity {
                name: user.username.clone(),
            })
        } else {
            if !status.evaluation_error.is_empty() {
                tracing::debug!(error = %status.evaluation_error, "access review evaluation error");
            }
            tracing::debug!(user = %user.username, namespace, %verb, reason = %status.reason, "denied");
            Err(Error::Denied(format!(
                "{} may not {verb} {RESOURCE}.{GROUP} in namespace {namespace:?}",
                user.username
            )))
        };
        if status.evaluation_error.is_empty() {
            self.decisions.put(key, decision.clone());
        }
        decision
    }

    async fn authenticate(&self, credentials: &Credentials) -> Result<()> {
        self.user(credentials.bearer()?).await.map(|_| ())
    }

    fn mode(&self) -> &'static str {
        "kubernetes"
    }
}
