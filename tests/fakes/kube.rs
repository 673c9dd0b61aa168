//! A fake Kubernetes API server for integration tests: the two review APIs the service
//! authenticates and authorizes its callers with, served over HTTPS the way kube-apiserver
//! serves them.
//!
//! [`FakeKube::start`] binds `127.0.0.1:0`, generates a test CA and a server certificate for
//! `127.0.0.1` and `localhost` (h2 and http/1.1 by ALPN), and serves
//! `POST /apis/authentication.k8s.io/v1/tokenreviews` and
//! `POST /apis/authorization.k8s.io/v1/subjectaccessreviews` from an in-memory set of tokens and
//! RBAC-like grants. The service presents [`FakeKube::service_token`], the token of the
//! service account `tekton-pipelines/tekton-results-logs`, which is bound to
//! `system:auth-delegator` (create on both reviews) like a real deployment.
//!
//! What it reproduces (from kube-apiserver's sources and documented captures, see
//! <https://kubernetes.io/docs/reference/kubernetes-api/authentication-resources/token-review-v1/>
//! and <https://kubernetes.io/docs/reference/kubernetes-api/authorization-resources/subject-access-review-v1/>):
//! - the filter order of a real server: authentication of the caller (a bad bearer token is a
//!   **401** `Unauthorized` Status on every path; no `Authorization: Bearer` header is
//!   `system:anonymous` when anonymous auth is on, the default, which then gets a **403**), RBAC
//!   authorization of the caller (**403** `Forbidden` with the exact
//!   `... is forbidden: User "..." cannot create resource ...` message and `details`), then the
//!   handler: output negotiation (**406**), input content type (**415**, a missing
//!   `Content-Type` counts as JSON), the 3 MiB body limit (**413**), decoding (**400**),
//!   validation (**400** for an empty token, **422** `Invalid` for a review without attributes
//!   or subject), and **201 Created** with the review echoed back and `status` filled in;
//! - response shapes as Go's encoder writes them: struct field order, `omitempty` (an
//!   unauthenticated TokenReview has no `authenticated` key and an empty `user` object; a denied
//!   SubjectAccessReview is `{"allowed":false}` with no `reason`, as RBAC gives none), HTML-safe
//!   escaping (`\u003c`, `\u0026`), a trailing newline, `metadata.creationTimestamp: null`;
//! - TokenReview semantics: `system:authenticated` is added to a user's groups, audiences default
//!   to the API's ([`API_AUDIENCE`]) and must intersect the token's, `status.audiences` is the
//!   intersection; errors `invalid bearer token` (unknown token),
//!   `[invalid bearer token, service account token has expired]` (see [`FakeKube::expire_token`])
//!   and the audience mismatch text;
//! - SubjectAccessReview semantics: RBAC matching of verb (`*`), API group, `resource` or
//!   `resource/subresource`, cluster-wide bindings before the namespace's RoleBindings, subjects
//!   by user name or group, `system:masters` always allowed (with an empty reason), and RBAC's
//!   reason text `RBAC: allowed by ClusterRoleBinding "..." of ClusterRole "..." to User "..."`;
//! - unknown JSON fields answered with `Warning: 299 - "unknown field \"spec.x\""` headers (the
//!   server's default `fieldValidation=Warn`), or a 400 with `?fieldValidation=Strict`;
//! - `Audit-Id` and `Cache-Control: no-cache, private` on every answer, `/healthz`, `/livez`,
//!   `/readyz` and `/version` open to anyone, like `system:public-info-viewer`.
//!
//! Failure knobs: [`FakeKube::set_down`] (connections refused and open ones closed, like a
//! crashed or restarting API server), [`FakeKube::fail_next`] (real-looking `Status` errors: 429
//! with `Retry-After`, 500, 503, 504, ...), [`FakeKube::fail_next_raw`] (a load balancer's own
//! body), [`FakeKube::set_delay`]. Every review is recorded ([`FakeKube::token_reviews`],
//! [`FakeKube::access_reviews`]) with every request ([`FakeKube::requests`]), so tests can
//! assert that a cache spared the second round trip.
//!
//! # Known differences from a real kube-apiserver
//! - Only the two reviews, the health paths and `/version` exist. Everything else a permitted
//!   caller asks for is a 404 (including `LocalSubjectAccessReview`, `SelfSubjectAccessReview`
//!   and discovery documents); the service account may do nothing else, so real RBAC would
//!   mostly answer 403 there, as the fake does.
//! - Tokens are opaque strings looked up in a table (the service's is JWT-shaped but never
//!   verified); no client certificates, OIDC, webhooks or impersonation headers. The error text
//!   of a failed TokenReview depends on a cluster's authenticators; only the three above exist.
//! - JSON only: YAML and protobuf request bodies get 415 and an `Accept` without JSON gets 406
//!   (a real server would speak them). The Go `json parse error` detail after
//!   `couldn't get version/kind; json parse error:` is mapped from serde_json's error and may
//!   name a different context than Go's scanner; type errors follow Go's
//!   `json: cannot unmarshal X into Go struct field S.path of type T` form.
//! - `metadata` and `status` of a request are checked for type and unknown keys at their first
//!   level only and are not echoed (the answer's `metadata` is always
//!   `{"creationTimestamp":null}`). `fieldSelector` and `labelSelector` attributes are echoed but
//!   neither validated nor used, `dryRun` is ignored, `resourceNames` do not exist in grants.
//! - [`FakeKube::set_down`] takes effect when the accept task next runs: a connection that races
//!   the switch is accepted and closed before the TLS handshake instead of being refused.
//! - A plain-HTTP request to the TLS port is dropped (Go answers a 400 text); no
//!   `X-Kubernetes-Pf-*` headers; other HTTP details are hyper's, not Go's `net/http`'s.

// Used as a test-support module: not every knob is used by every test.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use base64::Engine as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// The audience of tokens for the API server itself (kubeadm's and kind's issuer).
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";
/// Namespace of the service's own service account.
pub const SERVICE_NAMESPACE: &str = "tekton-pipelines";
/// Name of the service's own service account.
pub const SERVICE_ACCOUNT: &str = "tekton-results-logs";
/// API group of the resource the service authorizes (Tekton Results' RBAC).
pub const LOGS_GROUP: &str = "results.tekton.dev";
/// The resource the service authorizes.
pub const LOGS_RESOURCE: &str = "logs";

/// The generic API server's `MaxRequestBodyBytes`.
const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// Bound on each record log (oldest entries are forgotten first).
const MAX_RECORDS: usize = 4096;
const ACCEPTED_MEDIA_TYPES: &str =
    "application/json, application/yaml, application/vnd.kubernetes.protobuf";
const AUTHN_GROUP: &str = "authentication.k8s.io";
const AUTHZ_GROUP: &str = "authorization.k8s.io";
const AUTH_DELEGATOR_BINDING: &str = "tekton-results-logs-auth-delegator";

/// A user as a TokenReview reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// One TokenReview the fake answered with 201.
#[derive(Clone, Debug)]
pub struct TokenReviewRecord {
    /// User name of the caller (the holder of the bearer token that created the review).
    pub caller: String,
    /// `spec.token`.
    pub token: String,
    /// `spec.audiences` as sent.
    pub audiences: Vec<String>,
    /// The user the token authenticated as (`system:authenticated` added); `None` when not.
    pub user: Option<UserInfo>,
}

/// `spec.resourceAttributes` of a SubjectAccessReview.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    pub namespace: String,
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

/// One SubjectAccessReview the fake answered with 201.
#[derive(Clone, Debug)]
pub struct AccessReviewRecord {
    /// User name of the caller.
    pub caller: String,
    pub user: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
    pub resource: Option<ResourceAttributes>,
    /// `spec.nonResourceAttributes` as (path, verb).
    pub non_resource: Option<(String, String)>,
    pub allowed: bool,
    pub reason: String,
}

/// One HTTP request as the fake answered it (failures and rejections included).
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The bearer token, as kube-apiserver would parse it from `Authorization`.
    pub bearer: Option<String>,
    pub status: u16,
}

/// A running fake kube-apiserver. Dropping it stops the server and closes its connections.
pub struct FakeKube {
    addr: SocketAddr,
    ca_pem: String,
    service_token: String,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FakeKube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKube")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.shared.ctl.send_modify(|c| c.stopped = true);
    }
}

struct Identity {
    user: UserInfo,
    audiences: Vec<String>,
    expired: bool,
}

/// One RBAC rule bound to one subject (a user name or a group name).
struct Grant {
    subject: String,
    /// `None`: a ClusterRoleBinding; `Some(ns)`: a RoleBinding in `ns`.
    namespace: Option<String>,
    group: String,
    resource: String,
    verb: String,
    binding: String,
    cluster_role: String,
}

enum Failure {
    Status(u16),
    Raw {
        status: u16,
        content_type: String,
        body: String,
    },
}

#[derive(Default)]
struct KubeState {
    identities: HashMap<String, Identity>,
    grants: Vec<Grant>,
    anonymous_auth: bool,
    failures: VecDeque<Failure>,
    delay: Duration,
    token_reviews: VecDeque<TokenReviewRecord>,
    access_reviews: VecDeque<AccessReviewRecord>,
    requests: VecDeque<RecordedRequest>,
    bindings_made: u32,
}

/// The listening socket's state, shared by `set_down` and the accept task so that bringing the
/// server back up rebinds synchronously when (and only when) the old listener is gone.
struct Socket {
    listening: bool,
    rebound: Option<std::net::TcpListener>,
}

#[derive(Clone, Copy, Default)]
struct Ctl {
    down: bool,
    stopped: bool,
}

struct Shared {
    addr: SocketAddr,
    state: Mutex<KubeState>,
    socket: Mutex<Socket>,
    ctl: watch::Sender<Ctl>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, KubeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn socket(&self) -> MutexGuard<'_, Socket> {
        self.socket.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl FakeKube {
    /// Binds `127.0.0.1:0` with a fresh CA and serves in a tokio task. Must be called inside a
    /// tokio runtime.
    pub fn start() -> FakeKube {
        let (ca_pem, tls) = tls_config();
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("fake kube: bind 127.0.0.1:0");
        std_listener
            .set_nonblocking(true)
            .expect("fake kube: set_nonblocking");
        let addr = std_listener.local_addr().expect("fake kube: local_addr");
        let listener = TcpListener::from_std(std_listener)
            .expect("fake kube: FakeKube::start must run inside a tokio runtime");

        let service_uid = uuid();
        let service_token = service_account_token(SERVICE_NAMESPACE, SERVICE_ACCOUNT, &service_uid);
        let mut service_user =
            service_account_user(SERVICE_NAMESPACE, SERVICE_ACCOUNT, &service_uid);
        service_user.extra = BTreeMap::from([
            (
                "authentication.kubernetes.io/credential-id".to_string(),
                vec![format!("JTI={}", uuid())],
            ),
            (
                "authentication.kubernetes.io/pod-name".to_string(),
                vec![format!("{SERVICE_ACCOUNT}-0")],
            ),
            (
                "authentication.kubernetes.io/pod-uid".to_string(),
                vec![uuid()],
            ),
        ]);
        let service_username = service_user.username.clone();
        let mut state = KubeState {
            anonymous_auth: true,
            ..KubeState::default()
        };
        state.identities.insert(
            service_token.clone(),
            Identity {
                user: service_user,
                audiences: vec![API_AUDIENCE.to_string()],
                expired: false,
            },
        );
        state.grant_auth_delegator(&service_username);

        let (ctl, ctl_rx) = watch::channel(Ctl::default());
        let shared = Arc::new(Shared {
            addr,
            state: Mutex::new(state),
            socket: Mutex::new(Socket {
                listening: true,
                rebound: None,
            }),
            ctl,
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        tokio::spawn(accept_loop(
            listener,
            TlsAcceptor::from(Arc::new(tls)),
            app,
            shared.clone(),
            ctl_rx,
        ));
        FakeKube {
            addr,
            ca_pem,
            service_token,
            shared,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// PEM of the CA that signed the server certificate: the only root a client needs.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes the CA to `dir/ca.crt` and returns its path.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.crt");
        std::fs::write(&path, &self.ca_pem).expect("fake kube: write ca.crt");
        path
    }

    /// Writes `token`, `ca.crt` and `namespace` into `dir`, the layout of a pod's
    /// `/var/run/secrets/kubernetes.io/serviceaccount`, and returns `dir`.
    pub fn write_service_account_dir(&self, dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).expect("fake kube: create service account dir");
        std::fs::write(dir.join("token"), &self.service_token).expect("fake kube: write token");
        std::fs::write(dir.join("namespace"), SERVICE_NAMESPACE)
            .expect("fake kube: write namespace");
        self.write_ca(dir);
        dir.to_path_buf()
    }

    /// Writes a kubeconfig for the service account to `dir/kubeconfig` and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let b64 = base64::engine::general_purpose::STANDARD;
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n    \
             certificate-authority-data: {}\nusers:\n- name: {SERVICE_ACCOUNT}\n  user:\n    \
             token: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: \
             {SERVICE_ACCOUNT}\n    namespace: {SERVICE_NAMESPACE}\ncurrent-context: fake\n",
            self.url(),
            b64.encode(&self.ca_pem),
            self.service_token,
        );
        let path = dir.join("kubeconfig");
        std::fs::write(&path, text).expect("fake kube: write kubeconfig");
        path
    }

    /// The bearer token the service must present: the service account's, allowed to create
    /// both reviews.
    pub fn service_token(&self) -> &str {
        &self.service_token
    }

    /// `system:serviceaccount:tekton-pipelines:tekton-results-logs`.
    pub fn service_username(&self) -> String {
        format!("system:serviceaccount:{SERVICE_NAMESPACE}:{SERVICE_ACCOUNT}")
    }

    /// Binds (true) or unbinds (false) `system:auth-delegator` for the service account; without
    /// it every review the service creates is a 403.
    pub fn set_service_may_review(&self, allowed: bool) {
        let username = self.service_username();
        let mut st = self.shared.state();
        st.grants.retain(|g| g.binding != AUTH_DELEGATOR_BINDING);
        if allowed {
            st.grant_auth_delegator(&username);
        }
    }

    /// Adds (or replaces) a token for a user. `system:authenticated` is added to `groups` in
    /// reviews, as the API server does. The token is valid for the API audience only.
    pub fn add_user(&self, token: &str, username: &str, uid: &str, groups: &[&str]) {
        let user = UserInfo {
            username: username.to_string(),
            uid: uid.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            extra: BTreeMap::new(),
        };
        self.insert_identity(token, user);
    }

    /// Adds a token for service account `namespace/name` and returns its user name
    /// (`system:serviceaccount:namespace:name`, groups `system:serviceaccounts` and
    /// `system:serviceaccounts:namespace`).
    pub fn add_service_account(&self, token: &str, namespace: &str, name: &str) -> String {
        let user = service_account_user(namespace, name, &uuid());
        let username = user.username.clone();
        self.insert_identity(token, user);
        username
    }

    fn insert_identity(&self, token: &str, user: UserInfo) {
        self.shared.state().identities.insert(
            token.to_string(),
            Identity {
                user,
                audiences: vec![API_AUDIENCE.to_string()],
                expired: false,
            },
        );
    }

    /// Sets the audiences a token was issued for (default: [`API_AUDIENCE`]). A token without the
    /// API audience cannot call the fake itself (401).
    pub fn set_audiences(&self, token: &str, audiences: &[&str]) {
        if let Some(id) = self.shared.state().identities.get_mut(token) {
            id.audiences = audiences.iter().map(|a| a.to_string()).collect();
        }
    }

    /// Makes a known token expire: reviews answer
    /// `[invalid bearer token, service account token has expired]`, calls with it get 401.
    pub fn expire_token(&self, token: &str) {
        if let Some(id) = self.shared.state().identities.get_mut(token) {
            id.expired = true;
        }
    }

    /// Forgets a token: it becomes unknown (`invalid bearer token`).
    pub fn remove_token(&self, token: &str) {
        self.shared.state().identities.remove(token);
    }

    /// `--anonymous-auth` (default true): whether a request without a bearer token is
    /// `system:anonymous` (then mostly 403) or a 401.
    pub fn set_anonymous_auth(&self, enabled: bool) {
        self.shared.state().anonymous_auth = enabled;
    }

    /// Grants `verb` (`*` for all) on `logs` in `results.tekton.dev` to a user or group name, in
    /// `namespace` (a RoleBinding) or everywhere with `*` (a ClusterRoleBinding).
    pub fn allow(&self, subject: &str, namespace: &str, verb: &str) {
        self.allow_resource(subject, namespace, LOGS_GROUP, LOGS_RESOURCE, verb);
    }

    /// Like [`FakeKube::allow`] for any API group and resource (`*` matches all; a subresource is
    /// `resource/subresource`).
    pub fn allow_resource(
        &self,
        subject: &str,
        namespace: &str,
        group: &str,
        resource: &str,
        verb: &str,
    ) {
        let mut st = self.shared.state();
        st.bindings_made += 1;
        let name = format!("fake-kube-{}", st.bindings_made);
        st.grants.push(Grant {
            subject: subject.to_string(),
            namespace: (namespace != "*").then(|| namespace.to_string()),
            group: group.to_string(),
            resource: resource.to_string(),
            verb: verb.to_string(),
            binding: name.clone(),
            cluster_role: name,
        });
    }

    /// Removes every grant made with `allow`/`allow_resource` (the service's own stays).
    pub fn clear_grants(&self) {
        self.shared
            .state()
            .grants
            .retain(|g| g.binding == AUTH_DELEGATOR_BINDING);
    }

    /// Down: the listener is closed (connects are refused) and open connections are closed, as
    /// when the API server process dies. Up: the same port listens again.
    pub fn set_down(&self, down: bool) {
        let mut socket = self.shared.socket();
        self.shared.ctl.send_modify(|c| c.down = down);
        if down {
            socket.rebound = None;
        } else if !socket.listening && socket.rebound.is_none() {
            let listener =
                std::net::TcpListener::bind(self.addr).expect("fake kube: rebind the same port");
            listener
                .set_nonblocking(true)
                .expect("fake kube: set_nonblocking");
            socket.rebound = Some(listener);
        }
    }

    pub fn is_down(&self) -> bool {
        self.shared.ctl.borrow().down
    }

    /// The next `n` requests get a kube-apiserver `Status` error with this code before
    /// authentication: 429 `TooManyRequests` (with `Retry-After: 1`), 500 `InternalError`, 503
    /// `ServiceUnavailable`, 504 `Timeout`, 401, 403, ...
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut st = self.shared.state();
        st.failures.extend((0..n).map(|_| Failure::Status(status)));
    }

    /// The next `n` requests get this raw answer, as from a load balancer in front of the API
    /// server (for example 502 with an HTML body).
    pub fn fail_next_raw(&self, n: usize, status: u16, content_type: &str, body: &str) {
        let mut st = self.shared.state();
        st.failures.extend((0..n).map(|_| Failure::Raw {
            status,
            content_type: content_type.to_string(),
            body: body.to_string(),
        }));
    }

    pub fn clear_failures(&self) {
        self.shared.state().failures.clear();
    }

    /// Every request waits this long before it is looked at (zero: none).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.state().delay = delay;
    }

    /// TokenReviews answered with 201, oldest first.
    pub fn token_reviews(&self) -> Vec<TokenReviewRecord> {
        self.shared.state().token_reviews.iter().cloned().collect()
    }

    /// SubjectAccessReviews answered with 201, oldest first.
    pub fn access_reviews(&self) -> Vec<AccessReviewRecord> {
        self.shared.state().access_reviews.iter().cloned().collect()
    }

    /// Every request, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.iter().cloned().collect()
    }

    pub fn clear_records(&self) {
        let mut st = self.shared.state();
        st.token_reviews.clear();
        st.access_reviews.clear();
        st.requests.clear();
    }
}

// ---------------------------------------------------------------------------------------------
// TLS and identities
// ---------------------------------------------------------------------------------------------

fn tls_config() -> (String, rustls::ServerConfig) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "fake-kube-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("fake kube: CA key");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("fake kube: CA certificate");

    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("fake kube: server certificate names");
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate().expect("fake kube: server key");
    let cert = params
        .signed_by(&key, &ca)
        .expect("fake kube: server certificate");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("fake kube: TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("fake kube: TLS certificate");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (ca.pem(), config)
}

fn service_account_user(namespace: &str, name: &str, uid: &str) -> UserInfo {
    UserInfo {
        username: format!("system:serviceaccount:{namespace}:{name}"),
        uid: uid.to_string(),
        groups: vec![
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{namespace}"),
        ],
        extra: BTreeMap::new(),
    }
}

/// A JWT-shaped token with a bound service account token's claims; the signature is random
/// bytes, since only the fake ever checks it (by table lookup).
fn service_account_token(namespace: &str, name: &str, uid: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let header = json!({"alg": "RS256", "kid": "fake-kube"});
    let claims = json!({
        "aud": [API_AUDIENCE],
        "exp": now + 365 * 24 * 3600,
        "iat": now,
        "iss": API_AUDIENCE,
        "jti": uuid(),
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        "nbf": now,
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
    });
    let signature: [u8; 32] = rand::random();
    format!(
        "{}.{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string()),
        b64.encode(signature)
    )
}

fn uuid() -> String {
    let v: u128 = rand::random();
    let v = (v & !(0xf << 76)) | (0x4 << 76);
    let v = (v & !(0x3 << 62)) | (0x2 << 62);
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

// ---------------------------------------------------------------------------------------------
// Accepting connections
// ---------------------------------------------------------------------------------------------

async fn accept_loop(
    listener: TcpListener,
    tls: TlsAcceptor,
    app: Router,
    shared: Arc<Shared>,
    mut ctl: watch::Receiver<Ctl>,
) {
    let mut listener = Some(listener);
    let mut conns = JoinSet::new();
    loop {
        let now = *ctl.borrow_and_update();
        if now.stopped {
            break;
        }
        if now.down && listener.is_some() {
            let mut socket = shared.socket();
            if shared.ctl.borrow().down {
                listener = None;
                socket.listening = false;
                conns.abort_all();
            }
        } else if !now.down && listener.is_none() {
            listener = reopen(&shared);
        }
        tokio::select! {
            changed = ctl.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            accepted = accept(listener.as_ref()) => {
                let Ok((stream, _)) = accepted else { continue };
                if ctl.borrow().down {
                    continue;
                }
                conns.spawn(serve_connection(stream, tls.clone(), app.clone()));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
}

/// The listener `set_down(false)` bound, or a new one when the accept task closed the old one
/// after `set_down(false)` had looked.
fn reopen(shared: &Shared) -> Option<TcpListener> {
    let mut socket = shared.socket();
    let std_listener = match socket.rebound.take() {
        Some(l) => l,
        None => {
            let l = std::net::TcpListener::bind(shared.addr).ok()?;
            l.set_nonblocking(true).ok()?;
            l
        }
    };
    socket.listening = true;
    TcpListener::from_std(std_listener).ok()
}

async fn accept(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn serve_connection(stream: TcpStream, tls: TlsAcceptor, app: Router) {
    let Ok(stream) = tls.accept(stream).await else {
        return;
    };
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
        .await;
}

// ---------------------------------------------------------------------------------------------
// Requests: authentication, authorization, routing
// ---------------------------------------------------------------------------------------------

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let delay = shared.state().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let bearer = bearer_token(req.headers());
    let failure = shared.state().failures.pop_front();
    let response = match failure {
        Some(Failure::Raw {
            status,
            content_type,
            body,
        }) => raw_response(status, &content_type, body),
        Some(Failure::Status(code)) => with_audit_headers(injected_status(code)),
        None => with_audit_headers(respond(&shared, req, bearer.as_deref()).await),
    };
    let mut st = shared.state();
    push_bounded(
        &mut st.requests,
        RecordedRequest {
            method,
            path,
            bearer,
            status: response.status().as_u16(),
        },
    );
    response
}

/// The token as k8s.io/apiserver's bearertoken authenticator reads it: trimmed header, split on
/// single spaces, case-insensitive `bearer`, the second part non-empty.
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let mut parts = value.splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// What kube-apiserver's request-info resolver makes of a path and method.
enum Target {
    Resource {
        group: String,
        version: String,
        namespace: String,
        resource: String,
        subresource: String,
        name: String,
        verb: String,
    },
    NonResource {
        path: String,
        verb: String,
    },
}

impl Target {
    fn parse(method: &Method, path: &str, query: &str) -> Target {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let rest = match segments.as_slice() {
            ["apis", group, version, rest @ ..] if !rest.is_empty() => {
                Some((group.to_string(), version.to_string(), rest))
            }
            ["api", version, rest @ ..] if !rest.is_empty() => {
                Some((String::new(), version.to_string(), rest))
            }
            _ => None,
        };
        let Some((group, version, rest)) = rest else {
            return Target::NonResource {
                path: path.to_string(),
                verb: method.as_str().to_ascii_lowercase(),
            };
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, tail @ ..] if !tail.is_empty() => (ns.to_string(), tail),
            _ => (String::new(), rest),
        };
        let resource = rest[0].to_string();
        let name = rest.get(1).map_or(String::new(), |s| s.to_string());
        let subresource = rest.get(2).map_or(String::new(), |s| s.to_string());
        let watch = query
            .split('&')
            .any(|kv| kv == "watch=true" || kv == "watch=1");
        let verb = match *method {
            Method::POST => "create",
            Method::GET | Method::HEAD if watch => "watch",
            Method::GET | Method::HEAD if name.is_empty() => "list",
            Method::GET | Method::HEAD => "get",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if name.is_empty() => "deletecollection",
            Method::DELETE => "delete",
            _ => "",
        };
        let verb = if verb.is_empty() {
            method.as_str().to_ascii_lowercase()
        } else {
            verb.to_string()
        };
        Target::Resource {
            group,
            version,
            namespace,
            resource,
            subresource,
            name,
            verb,
        }
    }
}

async fn respond(shared: &Shared, req: Request, bearer: Option<&str>) -> Response {
    let caller = match shared.state().authenticate_caller(bearer) {
        Some(user) => user,
        None => return status_response(&Status::unauthorized()),
    };
    let target = Target::parse(
        req.method(),
        req.uri().path(),
        req.uri().query().unwrap_or(""),
    );
    if let Some(forbidden) = shared.state().authorize_caller(&caller, &target) {
        return status_response(&forbidden);
    }
    match &target {
        Target::NonResource { path, .. } => non_resource(path),
        Target::Resource {
            group,
            version,
            namespace,
            resource,
            subresource,
            name,
            ..
        } => {
            let collection = namespace.is_empty()
                && name.is_empty()
                && subresource.is_empty()
                && version == "v1";
            let kind = match (group.as_str(), resource.as_str()) {
                (AUTHN_GROUP, "tokenreviews") if collection => ReviewKind::Token,
                (AUTHZ_GROUP, "subjectaccessreviews") if collection => ReviewKind::Access,
                _ => return status_response(&Status::not_found()),
            };
            if req.method() != Method::POST {
                return status_response(&Status::method_not_allowed());
            }
            review(shared, req, kind, &caller.username).await
        }
    }
}

fn non_resource(path: &str) -> Response {
    if path == "/version" {
        let version = json!({
            "major": "1", "minor": "33", "emulationMajor": "1", "emulationMinor": "33",
            "minCompatibilityMajor": "1", "minCompatibilityMinor": "32",
            "gitVersion": "v1.33.1", "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
            "gitTreeState": "clean", "buildDate": "2025-05-15T08:19:08Z",
            "goVersion": "go1.24.2", "compiler": "gc", "platform": "linux/amd64",
        });
        return json_response(StatusCode::OK, go_json(&version), &[]);
    }
    if is_health_path(path) {
        return Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header("x-content-type-options", "nosniff")
            .body(Body::from("ok"))
            .expect("fake kube: response");
    }
    status_response(&Status::not_found())
}

fn is_health_path(path: &str) -> bool {
    ["/healthz", "/livez", "/readyz"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

impl KubeState {
    fn grant_auth_delegator(&mut self, username: &str) {
        for (group, resource) in [
            (AUTHN_GROUP, "tokenreviews"),
            (AUTHZ_GROUP, "subjectaccessreviews"),
        ] {
            self.grants.push(Grant {
                subject: username.to_string(),
                namespace: None,
                group: group.to_string(),
                resource: resource.to_string(),
                verb: "create".to_string(),
                binding: AUTH_DELEGATOR_BINDING.to_string(),
                cluster_role: "system:auth-delegator".to_string(),
            });
        }
    }

    /// The user behind the caller's own credential, `None` for a 401.
    fn authenticate_caller(&self, bearer: Option<&str>) -> Option<UserInfo> {
        let Some(token) = bearer else {
            return self.anonymous_auth.then(|| UserInfo {
                username: "system:anonymous".to_string(),
                groups: vec!["system:unauthenticated".to_string()],
                ..UserInfo::default()
            });
        };
        let id = self.identities.get(token)?;
        let for_api = id.audiences.iter().any(|a| a == API_AUDIENCE);
        (!id.expired && for_api).then(|| with_authenticated_group(&id.user))
    }

    /// `Some(403 Status)` when RBAC does not let the caller make this request.
    fn authorize_caller(&self, caller: &UserInfo, target: &Target) -> Option<Status> {
        if caller.groups.iter().any(|g| g == "system:masters") {
            return None;
        }
        match target {
            Target::NonResource { path, verb } => {
                let public = (path == "/version" || is_health_path(path)) && verb == "get";
                (!public).then(|| {
                    Status::forbidden(
                        "",
                        "",
                        "",
                        &format!(
                            "User {} cannot {verb} path {}",
                            go_quote(&caller.username),
                            go_quote(path)
                        ),
                    )
                })
            }
            Target::Resource {
                group,
                namespace,
                resource,
                subresource,
                name,
                verb,
                ..
            } => {
                let allowed = self
                    .rbac_reason(
                        &caller.username,
                        &caller.groups,
                        namespace,
                        group,
                        resource,
                        subresource,
                        verb,
                    )
                    .is_some();
                if allowed {
                    return None;
                }
                let shown = if subresource.is_empty() {
                    resource.clone()
                } else {
                    format!("{resource}/{subresource}")
                };
                let scope = if namespace.is_empty() {
                    "at the cluster scope".to_string()
                } else {
                    format!("in the namespace {}", go_quote(namespace))
                };
                let why = format!(
                    "User {} cannot {verb} resource {} in API group {} {scope}",
                    go_quote(&caller.username),
                    go_quote(&shown),
                    go_quote(group)
                );
                Some(Status::forbidden(group, resource, name, &why))
            }
        }
    }

    /// RBAC's decision: `Some(reason)` when a binding allows the request.
    #[allow(clippy::too_many_arguments)]
    fn rbac_reason(
        &self,
        user: &str,
        groups: &[String],
        namespace: &str,
        group: &str,
        resource: &str,
        subresource: &str,
        verb: &str,
    ) -> Option<String> {
        let combined = if subresource.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}/{subresource}")
        };
        // RBAC visits ClusterRoleBindings first, then the RoleBindings of the namespace.
        let cluster = self.grants.iter().filter(|g| g.namespace.is_none());
        let local = self
            .grants
            .iter()
            .filter(|g| !namespace.is_empty() && g.namespace.as_deref() == Some(namespace));
        for g in cluster.chain(local) {
            let rule_matches = (g.verb == "*" || g.verb == verb)
                && (g.group == "*" || g.group == group)
                && (g.resource == "*" || g.resource == combined);
            if !rule_matches {
                continue;
            }
            let subject = if g.subject == user {
                describe_user(user)
            } else if groups.contains(&g.subject) {
                format!("Group {}", go_quote(&g.subject))
            } else {
                continue;
            };
            let binding = match &g.namespace {
                None => format!(
                    "ClusterRoleBinding {} of ClusterRole {}",
                    go_quote(&g.binding),
                    go_quote(&g.cluster_role)
                ),
                Some(ns) => format!(
                    "RoleBinding {} of ClusterRole {}",
                    go_quote(&format!("{}/{ns}", g.binding)),
                    go_quote(&g.cluster_role)
                ),
            };
            return Some(format!("RBAC: allowed by {binding} to {subject}"));
        }
        None
    }
}

fn with_authenticated_group(user: &UserInfo) -> UserInfo {
    let mut user = user.clone();
    if !user.groups.iter().any(|g| g == "system:authenticated") {
        user.groups.push("system:authenticated".to_string());
    }
    user
}

/// RBAC's `describeSubject`: service accounts as `ServiceAccount "name/namespace"`.
fn describe_user(user: &str) -> String {
    match user
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((ns, name)) => format!("ServiceAccount {}", go_quote(&format!("{name}/{ns}"))),
        None => format!("User {}", go_quote(user)),
    }
}

// ---------------------------------------------------------------------------------------------
// The reviews
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum ReviewKind {
    Token,
    Access,
}

impl ReviewKind {
    fn kind(self) -> &'static str {
        match self {
            ReviewKind::Token => "TokenReview",
            ReviewKind::Access => "SubjectAccessReview",
        }
    }
    fn api_version(self) -> &'static str {
        match self {
            ReviewKind::Token => "authentication.k8s.io/v1",
            ReviewKind::Access => "authorization.k8s.io/v1",
        }
    }
}

/// The create handler: negotiation, body, decoding, then the review itself.
async fn review(shared: &Shared, req: Request, kind: ReviewKind, caller: &str) -> Response {
    let headers = req.headers();
    if !accepts_json(headers) {
        return status_response(&Status::new(
            406,
            "NotAcceptable",
            &format!("only the following media types are accepted: {ACCEPTED_MEDIA_TYPES}"),
        ));
    }
    if !content_is_json(headers) {
        return status_response(&Status::new(
            415,
            "UnsupportedMediaType",
            &format!(
                "the body of the request was in an unknown format - accepted media types \
                 include: {ACCEPTED_MEDIA_TYPES}"
            ),
        ));
    }
    let strict = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .any(|kv| kv == "fieldValidation=Strict");
    let ignore_unknown = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .any(|kv| kv == "fieldValidation=Ignore");
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return status_response(&Status::new(
                413,
                "RequestEntityTooLarge",
                &format!("Request entity too large: limit is {MAX_BODY_BYTES}"),
            ))
        }
    };
    let root = match decode_root(&body, kind) {
        Ok(root) => root,
        Err(status) => return status_response(&status),
    };
    let mut decoder = Decoder::default();
    let decoded = match kind {
        ReviewKind::Token => decoder.token_review(&root).map(Decoded::Token),
        ReviewKind::Access => decoder
            .access_review(&root)
            .map(|spec| Decoded::Access(Box::new(spec))),
    };
    let cannot_handle = |detail: String| {
        status_response(&Status::bad_request(&format!(
            "{kind} in version \"v1\" cannot be handled as a {kind}: {detail}",
            kind = kind.kind()
        )))
    };
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => return cannot_handle(e),
    };
    if strict && !decoder.unknown.is_empty() {
        let list: Vec<String> = decoder
            .unknown
            .iter()
            .map(|f| format!("unknown field {}", go_quote(f)))
            .collect();
        return cannot_handle(format!("strict decoding error: {}", list.join(", ")));
    }
    let warnings: Vec<String> = if ignore_unknown {
        Vec::new()
    } else {
        decoder
            .unknown
            .iter()
            .map(|f| {
                format!(
                    "299 - {}",
                    go_quote(&format!("unknown field {}", go_quote(f)))
                )
            })
            .collect()
    };
    let mut st = shared.state();
    let answer = match decoded {
        Decoded::Token(spec) => st.token_review(spec, caller),
        Decoded::Access(spec) => st.access_review(*spec, caller),
    };
    match answer {
        Ok(body) => json_response(StatusCode::CREATED, body, &warnings),
        Err(status) => status_response(&status),
    }
}

fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn accepts_json(headers: &HeaderMap) -> bool {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let ranges: Vec<String> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(media_type)
        .filter(|m| !m.is_empty())
        .collect();
    ranges.is_empty()
        || ranges
            .iter()
            .any(|m| m == "application/json" || m == "application/*" || m == "*/*")
}

fn content_is_json(headers: &HeaderMap) -> bool {
    match headers.get(header::CONTENT_TYPE) {
        None => true,
        Some(v) => {
            let m = media_type(v.to_str().unwrap_or("?"));
            m.is_empty() || m == "application/json"
        }
    }
}

/// The serializer's first pass (`apiVersion`/`kind`) and the create handler's checks on them.
fn decode_root(body: &[u8], kind: ReviewKind) -> Result<Map<String, Value>, Status> {
    let unrecognized = |detail: String| {
        Status::bad_request(&format!(
            "the object provided is unrecognized (must be of type {}): couldn't get \
             version/kind; json parse error: {detail} ({})",
            kind.kind(),
            summarize_data(body)
        ))
    };
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Err(unrecognized(go_syntax_error(body, &e))),
    };
    let root = match value {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => {
            return Err(unrecognized(format!(
                "json: cannot unmarshal {} into Go value of type struct {{ APIVersion string \
                 \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \
                 \"json:\\\"kind,omitempty\\\"\" }}",
                go_kind(&other)
            )))
        }
    };
    let meta = |key: &str| match root.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(unrecognized(format!(
            "json: cannot unmarshal {} into Go struct field .{key} of type string",
            go_kind(other)
        ))),
    };
    let api_version = meta("apiVersion")?;
    let sent_kind = meta("kind")?;
    if !api_version.is_empty() && api_version != kind.api_version() {
        return Err(Status::bad_request(&format!(
            "the API version in the data ({api_version}) does not match the expected API \
             version ({})",
            kind.api_version()
        )));
    }
    if !sent_kind.is_empty() && sent_kind != kind.kind() {
        return Err(Status::bad_request(&format!(
            "{sent_kind} in version \"v1\" cannot be handled as a {}: no kind {} is registered \
             for version {} in scheme \"pkg/api/legacyscheme/scheme.go:30\"",
            kind.kind(),
            go_quote(&sent_kind),
            go_quote(kind.api_version())
        )));
    }
    Ok(root)
}

enum Decoded {
    Token(TokenReviewSpec),
    Access(Box<AccessReviewSpec>),
}

struct TokenReviewSpec {
    token: String,
    audiences: Vec<String>,
}

#[derive(Default)]
struct AccessReviewSpec {
    resource: Option<ResourceAttributes>,
    field_selector: Option<Value>,
    label_selector: Option<Value>,
    non_resource: Option<(String, String)>,
    user: String,
    groups: Vec<String>,
    extra: BTreeMap<String, Vec<String>>,
    uid: String,
}

const OBJECT_META_KEYS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Typed reading of a decoded body with Go's type errors; collects unknown fields.
#[derive(Default)]
struct Decoder {
    unknown: Vec<String>,
}

fn go_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_error(v: &Value, owner: &str, path: &str, go_type: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go struct field {owner}.{path} of type {go_type}",
        go_kind(v)
    )
}

fn join_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Decoder {
    /// An optional object field of `m`, its unknown keys noted.
    fn object<'v>(
        &mut self,
        m: &'v Map<String, Value>,
        key: &str,
        owner: &str,
        path: &str,
        go_type: &str,
        known: &[&str],
    ) -> Result<Option<&'v Map<String, Value>>, String> {
        let path = join_path(path, key);
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(inner)) => {
                for k in inner.keys() {
                    if !known.contains(&k.as_str()) {
                        self.unknown.push(join_path(&path, k));
                    }
                }
                Ok(Some(inner))
            }
            Some(other) => Err(type_error(other, owner, &path, go_type)),
        }
    }

    fn string(
        m: &Map<String, Value>,
        key: &str,
        owner: &str,
        path: &str,
    ) -> Result<String, String> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(type_error(other, owner, &join_path(path, key), "string")),
        }
    }

    fn strings(
        m: &Map<String, Value>,
        key: &str,
        owner: &str,
        path: &str,
    ) -> Result<Vec<String>, String> {
        let path = join_path(path, key);
        match m.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    Value::Null => Ok(String::new()),
                    other => Err(type_error(other, owner, &path, "string")),
                })
                .collect(),
            Some(other) => Err(type_error(other, owner, &path, "[]string")),
        }
    }

    fn top_level(
        &mut self,
        root: &Map<String, Value>,
        kind: &str,
        status_keys: &[&str],
    ) -> Result<(), String> {
        for k in root.keys() {
            if !["kind", "apiVersion", "metadata", "spec", "status"].contains(&k.as_str()) {
                self.unknown.push(k.clone());
            }
        }
        self.object(
            root,
            "metadata",
            kind,
            "",
            "v1.ObjectMeta",
            OBJECT_META_KEYS,
        )?;
        self.object(
            root,
            "status",
            kind,
            "",
            &format!("v1.{kind}Status"),
            status_keys,
        )?;
        Ok(())
    }

    fn token_review(&mut self, root: &Map<String, Value>) -> Result<TokenReviewSpec, String> {
        self.top_level(
            root,
            "TokenReview",
            &["authenticated", "user", "audiences", "error"],
        )?;
        let empty = Map::new();
        let spec = self
            .object(
                root,
                "spec",
                "TokenReview",
                "",
                "v1.TokenReviewSpec",
                &["token", "audiences"],
            )?
            .unwrap_or(&empty);
        Ok(TokenReviewSpec {
            token: Self::string(spec, "token", "TokenReviewSpec", "spec")?,
            audiences: Self::strings(spec, "audiences", "TokenReviewSpec", "spec")?,
        })
    }

    fn access_review(&mut self, root: &Map<String, Value>) -> Result<AccessReviewSpec, String> {
        self.top_level(
            root,
            "SubjectAccessReview",
            &["allowed", "denied", "reason", "evaluationError"],
        )?;
        let empty = Map::new();
        let owner = "SubjectAccessReviewSpec";
        let spec = self
            .object(
                root,
                "spec",
                "SubjectAccessReview",
                "",
                "v1.SubjectAccessReviewSpec",
                &[
                    "resourceAttributes",
                    "nonResourceAttributes",
                    "user",
                    "groups",
                    "extra",
                    "uid",
                ],
            )?
            .unwrap_or(&empty);
        let mut out = AccessReviewSpec {
            user: Self::string(spec, "user", owner, "spec")?,
            groups: Self::strings(spec, "groups", owner, "spec")?,
            uid: Self::string(spec, "uid", owner, "spec")?,
            ..AccessReviewSpec::default()
        };
        let path = "spec.resourceAttributes";
        if let Some(ra) = self.object(
            spec,
            "resourceAttributes",
            owner,
            "spec",
            "v1.ResourceAttributes",
            &[
                "namespace",
                "verb",
                "group",
                "version",
                "resource",
                "subresource",
                "name",
                "fieldSelector",
                "labelSelector",
            ],
        )? {
            let s = |key| Self::string(ra, key, "ResourceAttributes", path);
            out.resource = Some(ResourceAttributes {
                namespace: s("namespace")?,
                verb: s("verb")?,
                group: s("group")?,
                version: s("version")?,
                resource: s("resource")?,
                subresource: s("subresource")?,
                name: s("name")?,
            });
            for (key, go_type) in [
                ("fieldSelector", "v1.FieldSelectorAttributes"),
                ("labelSelector", "v1.LabelSelectorAttributes"),
            ] {
                let value = match ra.get(key) {
                    None | Some(Value::Null) => None,
                    Some(v @ Value::Object(_)) => Some(v.clone()),
                    Some(other) => {
                        return Err(type_error(
                            other,
                            "ResourceAttributes",
                            &join_path(path, key),
                            go_type,
                        ))
                    }
                };
                match key {
                    "fieldSelector" => out.field_selector = value,
                    _ => out.label_selector = value,
                }
            }
        }
        if let Some(nra) = self.object(
            spec,
            "nonResourceAttributes",
            owner,
            "spec",
            "v1.NonResourceAttributes",
            &["path", "verb"],
        )? {
            let path = "spec.nonResourceAttributes";
            out.non_resource = Some((
                Self::string(nra, "path", "NonResourceAttributes", path)?,
                Self::string(nra, "verb", "NonResourceAttributes", path)?,
            ));
        }
        match spec.get("extra") {
            None | Some(Value::Null) => {}
            Some(Value::Object(extra)) => {
                for (key, values) in extra {
                    let path = format!("spec.extra.{key}");
                    let list = match values {
                        Value::Null => Vec::new(),
                        Value::Array(items) => items
                            .iter()
                            .map(|v| match v {
                                Value::String(s) => Ok(s.clone()),
                                other => Err(type_error(other, owner, &path, "string")),
                            })
                            .collect::<Result<_, _>>()?,
                        other => return Err(type_error(other, owner, &path, "v1.ExtraValue")),
                    };
                    out.extra.insert(key.clone(), list);
                }
            }
            Some(other) => {
                return Err(type_error(
                    other,
                    owner,
                    "spec.extra",
                    "map[string]v1.ExtraValue",
                ))
            }
        }
        Ok(out)
    }
}

impl KubeState {
    fn token_review(&mut self, spec: TokenReviewSpec, caller: &str) -> Result<Vec<u8>, Status> {
        if spec.token.is_empty() {
            return Err(Status::bad_request(
                "token is required for TokenReview in authentication",
            ));
        }
        let requested = if spec.audiences.is_empty() {
            vec![API_AUDIENCE.to_string()]
        } else {
            spec.audiences.clone()
        };
        let (user, audiences, error) = match self.identities.get(&spec.token) {
            None => (None, Vec::new(), "invalid bearer token".to_string()),
            Some(id) if id.expired => (
                None,
                Vec::new(),
                "[invalid bearer token, service account token has expired]".to_string(),
            ),
            Some(id) => {
                let common: Vec<String> = id
                    .audiences
                    .iter()
                    .filter(|a| requested.contains(a))
                    .cloned()
                    .collect();
                if common.is_empty() {
                    let error = format!(
                        "[invalid bearer token, token audiences {} is invalid for the target \
                         audiences {}]",
                        go_quote_list(&id.audiences),
                        go_quote_list(&requested)
                    );
                    (None, Vec::new(), error)
                } else {
                    (
                        Some(with_authenticated_group(&id.user)),
                        common,
                        String::new(),
                    )
                }
            }
        };
        let out = ReviewOut {
            kind: "TokenReview",
            api_version: "authentication.k8s.io/v1",
            metadata: CreatedMeta::default(),
            spec: TokenReviewSpecOut {
                token: &spec.token,
                audiences: &spec.audiences,
            },
            status: TokenReviewStatusOut {
                authenticated: user.is_some(),
                user: UserInfoOut::from(user.as_ref()),
                audiences: &audiences,
                error: &error,
            },
        };
        let body = go_json(&out);
        push_bounded(
            &mut self.token_reviews,
            TokenReviewRecord {
                caller: caller.to_string(),
                token: spec.token.clone(),
                audiences: spec.audiences.clone(),
                user,
            },
        );
        Ok(body)
    }

    fn access_review(&mut self, spec: AccessReviewSpec, caller: &str) -> Result<Vec<u8>, Status> {
        let mut errors: Vec<(&str, String, &str)> = Vec::new();
        if let (Some(_), Some((path, verb))) = (&spec.resource, &spec.non_resource) {
            errors.push((
                "spec",
                format!(
                    "authorization.NonResourceAttributes{{Path:{}, Verb:{}}}",
                    go_quote(path),
                    go_quote(verb)
                ),
                "cannot be specified in combination with resourceAttributes",
            ));
        }
        if spec.resource.is_none() && spec.non_resource.is_none() {
            errors.push((
                "spec",
                "null".to_string(),
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ));
        }
        if spec.user.is_empty() && spec.groups.is_empty() {
            errors.push((
                "spec.user",
                "\"\"".to_string(),
                "at least one of user or group must be specified",
            ));
        }
        if !errors.is_empty() {
            return Err(Status::invalid(AUTHZ_GROUP, &errors));
        }
        let reason = if spec.groups.iter().any(|g| g == "system:masters") {
            Some(String::new())
        } else {
            spec.resource.as_ref().and_then(|ra| {
                self.rbac_reason(
                    &spec.user,
                    &spec.groups,
                    &ra.namespace,
                    &ra.group,
                    &ra.resource,
                    &ra.subresource,
                    &ra.verb,
                )
            })
        };
        let allowed = reason.is_some();
        let reason = reason.unwrap_or_default();
        let out = ReviewOut {
            kind: "SubjectAccessReview",
            api_version: "authorization.k8s.io/v1",
            metadata: CreatedMeta::default(),
            spec: AccessReviewSpecOut {
                resource_attributes: spec.resource.as_ref().map(|ra| ResourceAttributesOut {
                    namespace: &ra.namespace,
                    verb: &ra.verb,
                    group: &ra.group,
                    version: &ra.version,
                    resource: &ra.resource,
                    subresource: &ra.subresource,
                    name: &ra.name,
                    field_selector: spec.field_selector.as_ref(),
                    label_selector: spec.label_selector.as_ref(),
                }),
                non_resource_attributes: spec
                    .non_resource
                    .as_ref()
                    .map(|(path, verb)| NonResourceAttributesOut { path, verb }),
                user: &spec.user,
                groups: &spec.groups,
                extra: &spec.extra,
                uid: &spec.uid,
            },
            status: AccessReviewStatusOut {
                allowed,
                reason: &reason,
            },
        };
        let body = go_json(&out);
        push_bounded(
            &mut self.access_reviews,
            AccessReviewRecord {
                caller: caller.to_string(),
                user: spec.user,
                uid: spec.uid,
                groups: spec.groups,
                extra: spec.extra,
                resource: spec.resource,
                non_resource: spec.non_resource,
                allowed,
                reason,
            },
        );
        Ok(body)
    }
}

fn push_bounded<T>(log: &mut VecDeque<T>, item: T) {
    if log.len() == MAX_RECORDS {
        log.pop_front();
    }
    log.push_back(item);
}

// ---------------------------------------------------------------------------------------------
// Wire types, in Go's field order with Go's `omitempty`
// ---------------------------------------------------------------------------------------------

/// An object's metadata after create of a review: `{"creationTimestamp":null}`.
#[derive(Serialize, Default)]
struct CreatedMeta {
    #[serde(rename = "creationTimestamp")]
    creation_timestamp: Option<()>,
}

/// A review as the API server echoes it back: `S` and `T` are its kind's
/// spec and status.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<S, T> {
    kind: &'static str,
    api_version: &'static str,
    metadata: CreatedMeta,
    spec: S,
    status: T,
}

#[derive(Serialize)]
struct TokenReviewSpecOut<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    token: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    audiences: &'a [String],
}

#[derive(Serialize)]
struct TokenReviewStatusOut<'a> {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    authenticated: bool,
    /// A struct in Go, so never omitted: `{}` when nobody was authenticated.
    user: UserInfoOut,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    audiences: &'a [String],
    #[serde(skip_serializing_if = "str::is_empty")]
    error: &'a str,
}

#[derive(Serialize, Default)]
struct UserInfoOut {
    #[serde(skip_serializing_if = "String::is_empty")]
    username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    groups: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extra: BTreeMap<String, Vec<String>>,
}

impl From<Option<&UserInfo>> for UserInfoOut {
    fn from(user: Option<&UserInfo>) -> Self {
        user.map_or_else(UserInfoOut::default, |u| UserInfoOut {
            username: u.username.clone(),
            uid: u.uid.clone(),
            groups: u.groups.clone(),
            extra: u.extra.clone(),
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccessReviewSpecOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_attributes: Option<ResourceAttributesOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    non_resource_attributes: Option<NonResourceAttributesOut<'a>>,
    #[serde(skip_serializing_if = "str::is_empty")]
    user: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    groups: &'a [String],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extra: &'a BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "str::is_empty")]
    uid: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceAttributesOut<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    namespace: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    verb: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    group: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    version: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    resource: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    subresource: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field_selector: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label_selector: Option<&'a Value>,
}

#[derive(Serialize)]
struct NonResourceAttributesOut<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    path: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    verb: &'a str,
}

#[derive(Serialize)]
struct AccessReviewStatusOut<'a> {
    /// No `omitempty` in Go: `"allowed":false` is always written.
    allowed: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
}

/// `metav1.Status` as kube-apiserver writes errors.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    kind: &'static str,
    api_version: &'static str,
    metadata: EmptyMeta,
    status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Box<StatusDetails>>,
    code: u16,
}

/// A Status's empty `ListMeta`: `{}`.
#[derive(Serialize)]
struct EmptyMeta {}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct StatusDetails {
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    kind: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    causes: Vec<StatusCause>,
    #[serde(skip_serializing_if = "is_zero")]
    retry_after_seconds: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

#[derive(Serialize)]
struct StatusCause {
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    field: String,
}

impl Status {
    fn new(code: u16, reason: &str, message: &str) -> Status {
        Status {
            kind: "Status",
            api_version: "v1",
            metadata: EmptyMeta {},
            status: "Failure",
            message: message.to_string(),
            reason: reason.to_string(),
            details: None,
            code,
        }
    }

    fn with_details(mut self, details: StatusDetails) -> Status {
        self.details = Some(Box::new(details));
        self
    }

    fn unauthorized() -> Status {
        Status::new(401, "Unauthorized", "Unauthorized")
    }

    fn bad_request(message: &str) -> Status {
        Status::new(400, "BadRequest", message)
    }

    /// `apierrors.NewForbidden` for `group`/`resource` (both empty for a non-resource path).
    fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> Status {
        let qualified = match (group, resource) {
            ("", "") => String::new(),
            ("", r) => r.to_string(),
            (g, r) => format!("{r}.{g}"),
        };
        let message = if qualified.is_empty() {
            format!("forbidden: {why}")
        } else if name.is_empty() {
            format!("{qualified} is forbidden: {why}")
        } else {
            format!("{qualified} {} is forbidden: {why}", go_quote(name))
        };
        Status::new(403, "Forbidden", &message).with_details(StatusDetails {
            name: name.to_string(),
            group: group.to_string(),
            kind: resource.to_string(),
            ..StatusDetails::default()
        })
    }

    fn not_found() -> Status {
        Status::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(StatusDetails::default())
    }

    fn method_not_allowed() -> Status {
        Status::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        .with_details(StatusDetails::default())
    }

    /// `apierrors.NewInvalid` for an internal object, whose kind is empty: hence the leading
    /// `.` of `.authorization.k8s.io "" is invalid`.
    fn invalid(group: &str, errors: &[(&str, String, &str)]) -> Status {
        let texts: Vec<String> = errors
            .iter()
            .map(|(field, value, detail)| format!("{field}: Invalid value: {value}: {detail}"))
            .collect();
        let aggregate = if texts.len() == 1 {
            texts[0].clone()
        } else {
            format!("[{}]", texts.join(", "))
        };
        let causes = errors
            .iter()
            .map(|(field, value, detail)| StatusCause {
                reason: "FieldValueInvalid".to_string(),
                message: format!("Invalid value: {value}: {detail}"),
                field: field.to_string(),
            })
            .collect();
        Status::new(
            422,
            "Invalid",
            &format!(".{group} \"\" is invalid: {aggregate}"),
        )
        .with_details(StatusDetails {
            group: group.to_string(),
            causes,
            ..StatusDetails::default()
        })
    }
}

/// The Status a real server (or its priority-and-fairness filter) sends with this code.
fn injected_status(code: u16) -> Response {
    let status = match code {
        400 => Status::bad_request("fake kube: injected failure"),
        401 => Status::unauthorized(),
        403 => Status::forbidden("", "", "", "fake kube: injected failure"),
        404 => Status::not_found(),
        409 => Status::new(
            409,
            "Conflict",
            "Operation cannot be fulfilled: fake kube: injected failure",
        ),
        429 => Status::new(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
        )
        .with_details(StatusDetails {
            retry_after_seconds: 1,
            ..StatusDetails::default()
        }),
        500 => Status::new(
            500,
            "InternalError",
            "Internal error occurred: fake kube: injected failure",
        )
        .with_details(StatusDetails {
            causes: vec![StatusCause {
                reason: String::new(),
                message: "fake kube: injected failure".to_string(),
                field: String::new(),
            }],
            ..StatusDetails::default()
        }),
        503 => Status::new(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ),
        504 => Status::new(
            504,
            "Timeout",
            "Timeout: request did not complete within requested timeout - context deadline \
             exceeded",
        )
        .with_details(StatusDetails::default()),
        other => Status::new(
            other,
            "",
            "an error on the server (\"fake kube: injected failure\") has prevented the request \
             from succeeding",
        ),
    };
    status_response(&status)
}

fn status_response(status: &Status) -> Response {
    let mut response = json_response(
        StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        go_json(status),
        &[],
    );
    let headers = response.headers_mut();
    if status.code == 403 {
        headers.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
    }
    // The server sets `Retry-After` from the Status it writes.
    if let Some(secs) = status
        .details
        .as_ref()
        .map(|d| d.retry_after_seconds)
        .filter(|s| *s > 0)
    {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn json_response(status: StatusCode, body: Vec<u8>, warnings: &[String]) -> Response {
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    for w in warnings {
        builder = builder.header(header::WARNING, w.as_str());
    }
    builder.body(Body::from(body)).expect("fake kube: response")
}

fn raw_response(status: u16, content_type: &str, body: String) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY))
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .expect("fake kube: response")
}

fn with_audit_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(&uuid()) {
        headers.insert("audit-id", id);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    response
}

// ---------------------------------------------------------------------------------------------
// Go's text conventions
// ---------------------------------------------------------------------------------------------

/// JSON as Go's `encoding/json` encoder writes it: `<`, `>`, `&`, U+2028 and U+2029 escaped,
/// newline-terminated.
fn go_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value
        .serialize(&mut ser)
        .expect("fake kube: serialize JSON");
    out.push(b'\n');
    out
}

struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escaped.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Go's `%q` of a string (`strconv.Quote`), for the ASCII and printable text used here.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `quoteChar` for a byte of the input, as its JSON scanner errors show it.
fn go_quote_char(b: u8) -> String {
    match b {
        b'\'' => "'\\''".to_string(),
        b'"' => "'\"'".to_string(),
        b'\\' => "'\\\\'".to_string(),
        b'\n' => "'\\n'".to_string(),
        b'\r' => "'\\r'".to_string(),
        b'\t' => "'\\t'".to_string(),
        0x07 => "'\\a'".to_string(),
        0x08 => "'\\b'".to_string(),
        0x0b => "'\\v'".to_string(),
        0x0c => "'\\f'".to_string(),
        0x00..=0x1f | 0x7f => format!("'\\x{b:02x}'"),
        0x80..=0xa0 | 0xad => format!("'\\u{b:04x}'"),
        _ => format!("'{}'", b as char),
    }
}

/// A Go `encoding/json` syntax error text for a body serde_json rejected (see the module doc).
fn go_syntax_error(body: &[u8], e: &serde_json::Error) -> String {
    if e.is_eof() {
        return "unexpected end of JSON input".to_string();
    }
    let line_start: usize = body
        .split(|b| *b == b'\n')
        .take(e.line().saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    let offset = (line_start + e.column().saturating_sub(1)).min(body.len().saturating_sub(1));
    let c = body.get(offset).copied().unwrap_or(b' ');
    let text = e.to_string();
    let what = text.split(" at line ").next().unwrap_or("");
    let context = match what {
        "expected `:`" => "after object key".to_string(),
        "expected `,` or `}`" => "after object key:value pair".to_string(),
        "expected `,` or `]`" => "after array element".to_string(),
        "key must be a string" => "looking for beginning of object key string".to_string(),
        "trailing characters" => "after top-level value".to_string(),
        "invalid number" | "number out of range" => "in numeric literal".to_string(),
        "invalid escape" => "in string escape code".to_string(),
        w if w.starts_with("control character") => "in string literal".to_string(),
        "expected ident" => {
            let start = body[..offset]
                .iter()
                .rposition(|b| !b.is_ascii_alphabetic())
                .map_or(0, |p| p + 1);
            let literal = match body.get(start) {
                Some(b't') => "true",
                Some(b'f') => "false",
                _ => "null",
            };
            let expecting = literal
                .as_bytes()
                .get(offset - start)
                .map_or(String::new(), |b| {
                    format!(" (expecting {})", go_quote_char(*b))
                });
            format!("in literal {literal}{expecting}")
        }
        _ => "looking for beginning of value".to_string(),
    };
    format!("invalid character {} {context}", go_quote_char(c))
}

/// apimachinery's `summarizeData(body, 30)` for decode errors.
fn summarize_data(body: &[u8]) -> String {
    const MAX: usize = 30;
    let (head, more) = if body.len() > MAX {
        (&body[..MAX], " ...")
    } else {
        (body, "")
    };
    match body.first() {
        None => "<empty>".to_string(),
        Some(b'{') => format!("{}{more}", String::from_utf8_lossy(head)),
        Some(_) => {
            let hex: String = head.iter().map(|b| format!("{b:02x}")).collect();
            format!("{hex}{more}")
        }
    }
}
