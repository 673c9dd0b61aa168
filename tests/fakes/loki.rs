//! A fake Grafana Loki HTTP server for integration tests.
//!
//! [`FakeLoki::start`] binds `127.0.0.1:0` and serves, from an in-memory store, the parts of the
//! Loki HTTP API that log connectors use: `query_range` (GET and form POST), `query` (instant),
//! `push` (JSON and snappy-compressed protobuf), the `tail` websocket, `labels`,
//! `label/<name>/values`, `series`, `/ready` and `status/buildinfo`. Status codes, content types,
//! error texts, JSON shapes, ordering, paging and tail framing follow requests and responses
//! captured from a real Loki (main-65e30f8, after v3.8.0) with its default limits.
//!
//! Every API path is also served under [`FakeLokiConfig::path_prefix`] (for example
//! `/api/logs/v1/application`, like the LokiStack gateway); with a prefix set, only the prefixed
//! paths (and `/ready`) exist.
//!
//! What it reproduces, besides the plain answers:
//! - the labels Loki adds: index label `service_name` (from the default discovery list, else
//!   `unknown_service`) and structured metadata `detected_level` (guessed like Loki's distributor:
//!   level labels, structured metadata, JSON/logfmt level fields, then keywords in the line);
//! - result "streams" = index labels + structured metadata + parsed labels (one stream per line with
//!   `| json ... message=...`; metadata and fields named like an index label become
//!   `<name>_extracted`, a parsed label hides a metadata label of its name), `categorize-labels`
//!   encoding, `limit` as the top N across streams, start inclusive / end exclusive, Loki's
//!   timestamp parsing, validation order and texts;
//! - push validation with partial acceptance (too old, too new, too far behind per stream, line too
//!   long, label count/length/duplicates), exact-duplicate collapsing, the 422 for no streams;
//! - tail: replay of the last `limit` entries since `start`, live entries held until
//!   `ts + delay_for` has passed, one stream object per entry, at most 100 entries per frame, pings
//!   every second, close 1011 after the max duration, a 10-frame buffer whose overflow is reported
//!   (at most 1000 items) in `dropped_entries` with the next frame that has an entry;
//! - `auth_enabled` tenancy (401 `no org id`, per-tenant stores, tenant ID validation), a
//!   controllable clock, a request log;
//! - injected faults ([`FakeLoki::inject`], at a chosen request of a path: after `skip` matching
//!   requests, for the next `n`), as Loki and the proxies in front of it misbehave:
//!   - [`Fault::Status`]: an error status with a plain-text body, optionally with `Retry-After`
//!     (Loki never sends it; gateways and proxies do, in seconds or as an HTTP date); the
//!     shorthands `fail_next` and `fail_next_on` inject it at once;
//!   - [`Fault::CutBody`]: the real answer's head, then the connection closes part-way through
//!     its chunked body (a querier or proxy dying mid-stream: the client sees a broken body);
//!   - [`Fault::TruncatedBody`]: the real answer cut short but sent as a complete HTTP message
//!     (a proxy ending a close-delimited body early or re-framing a cut answer: only the JSON
//!     shows it);
//!   - [`Fault::ForeignBody`]: 200 with a body that is not Loki's (an authenticating proxy's
//!     sign-in page after a followed redirect, an HTML error page);
//!   - [`Fault::Delay`]: the real answer, late (a slow querier; a slow first byte);
//! - tails dropped after a number of frames ([`FakeLoki::drop_tails_after`]): abruptly, with no
//!   close frame (a proxy's idle timeout, a restarted querier), or with Loki's close 1011
//!   `all ingesters closed the connection`.
//!
//! # Known differences from the real Loki
//! - LogQL: only log queries with stream selectors, line filters `|=` `!=` `|~` `!~` (no `or`),
//!   `| json` (all fields, or `name="path"` / `name` parameters with dotted and `["key"]`/`[0]` paths),
//!   string label filters `= != =~ !~` joined by `,` or `and`, `| line_format` with only
//!   `{{.label}}` / `{{ .label }}` / `{{__line__}}` actions (and `{{-`/`-}}` trimming), `| drop`,
//!   `| keep` and `| decolorize`. Other valid LogQL (metric queries, `logfmt`, `regexp`,
//!   `pattern`, `unpack`, `label_format`, numeric label filters, `or`, template functions) is
//!   answered with **501** `fake loki: unsupported LogQL: ...` (real Loki would run it).
//! - Syntax-error texts are exact for the captured cases (missing `}`, `.` in a label name, empty
//!   query, unclosed `line_format` action, empty-compatible matchers); other syntax errors use the
//!   same `parse error at line L, col C: syntax error: unexpected X[, expecting ...]` form but the
//!   token lists are a best guess of Loki's yacc tables. Regex errors use Go's wording but the
//!   column may differ.
//! - Regexes run on a small built-in RE2 subset (literals, `.`, `\d \w \s` and their negations,
//!   bracket classes with ranges, negation and `[:alpha:]`-style names, groups incl. named ones,
//!   `|`, `* + ? {n,m}` (lazy forms accepted), `^ $ \A \z \b \B`, flags `i s m U`). Unicode
//!   classes (`\p{..}`) are rejected as a parse error, and case-insensitive matching folds only
//!   through `char::to_lowercase`/`to_uppercase`.
//! - `| json` (no parameters) reads the line with a strict JSON reader: malformed JSON inside the
//!   object gives `__error__="JSONParserErr"` where Loki's lenient reader may still extract the
//!   leading keys; `__error_details__` is exact only for lines that are not a JSON object.
//! - `| json name="path"` with key paths follows Loki's reader (`jsonparser.EachKey`), modelled
//!   from its source rather than captured: a lenient byte scan that keeps the first of duplicate
//!   keys and stops once every path is found (text after that is not looked at; a line broken
//!   before keeps the fields found so far), string, number and array values unescaped with
//!   U+FFFD and invalid bytes as spaces, objects raw, jsonparser's error texts. Loki decides
//!   whether a parameter is `<name>` or `<name>_extracted` (for an index label of that name)
//!   once per stage (one per query shard), by the stream of the first line it finds the
//!   field in; the fake decides per stream. Paths with an `[n]` index use the strict reader
//!   (last duplicate key wins, no fields from a malformed line). The connector's query plan
//!   (`plan.rs`) models the same stage independently; the differential test compares the two.
//! - `detected_level`: the logfmt branch takes the first level-like key in line order (Loki prefers
//!   the earliest key of its hint list); otherwise Loki's rules and keyword lists are followed.
//! - Among entries with the same timestamp in different result streams, the `limit` cut keeps the
//!   smaller label string first in both directions (seen for `forward`, assumed for `backward`).
//!   Within one stream, equal timestamps keep push order (reversed for `backward`), as captured.
//! - `stats` has Loki's full shape, but only the line/byte/entry counters are computed; timings
//!   and cache/chunk counters are fixed. JSON bodies carry a `Content-Length` (Loki streams them
//!   chunked); `/series` and tail `dropped_entries` label objects are sorted (Loki's order varies).
//! - Push: `Content-Encoding: gzip`/`deflate` bodies are refused with 400 (`fake loki:
//!   Content-Encoding "gzip" is not supported by the fake`); Loki accepts them. jsoniter decode
//!   errors are exact for numeric timestamps and for a body cut inside `streams`; other malformed
//!   JSON gets the same prefix and context layout with the fake reader's description. Protobuf
//!   decode errors use prost's text; a body over 100 MiB gets 413 `request body too large`. Several distributor-side rejections are listed in first-seen order
//!   (Loki's order is random). No ingestion rate limits, per-stream rate limits, stream limits,
//!   automatic stream sharding (`__stream_shard__`), 4 MiB gRPC message limit, structured-metadata
//!   size limits, `increment_duplicate_timestamp`, or `block_ingestion_until` (use `fail_next`).
//! - Lines are stored as UTF-8: invalid bytes from protobuf pushes become U+FFFD at ingestion (one
//!   per invalid byte, as Loki's JSON output shows), so a line filter cannot match the raw bytes,
//!   and every U+FFFD is written as `\ufffd` in JSON (Loki writes a genuine U+FFFD raw).
//! - Storage never flushes, compacts or expires: no retention, no `max_query_lookback` clamping,
//!   no chunk/store ordering effects, no query splitting/sharding, no 504 timeouts or 499 cancels
//!   (inject them with `fail_next`). `max_query_series` and `query_timeout` are not enforced.
//! - Tail: the clock used for `delay_for` is the fake clock, and an entry is due when
//!   `now >= ts + delay_for` (Loki: strictly after), so with a frozen clock entries stamped "now"
//!   are still delivered. A slow reader is simulated with [`FakeLoki::stall_tails_after`] (the
//!   fake stops reading its 10-frame buffer, and sends no pings while stalled) instead of a full
//!   TCP window; at most 10,000 not-yet-due entries are held per tail (more are dropped and
//!   reported). The `all ingesters closed the connection` close comes only when injected
//!   ([`FakeLoki::drop_tails_after`]), and the legacy `/api/prom/tail` is not served.
//! - Multi-tenant queries (`X-Scope-OrgID: a|b`) always answer 500 `multiple org IDs present`
//!   (multi-tenant queries disabled, Loki's default). No label-name/label-value cache semantics,
//!   `/loki/api/v1/labels` and friends look at stored entries in the time range (Loki's index is
//!   coarser, by chunk).
//! - `/loki/api/v1/query` (instant) only answers the log-selector 400 and parse errors; metric
//!   instant queries are 501. Injected faults are not tenant-aware; a cut or truncated body is
//!   cut at a byte offset, not where a real stream would break (between writes).
//! - Tail frames hold the entries that are due when the fake's pump runs (all entries of one push
//!   normally arrive in one frame of at most 100). After a stall, exactly the 10 buffered frames
//!   are delivered (a real reader also drains frames held in TCP buffers: capture 26 got 14).
//! - HTTP details: no gzip response compression, no Go-style `Date` header, websocket handshake
//!   headers are axum's, and JSON is not sent with `Transfer-Encoding: chunked`.

// Used as a test-support module: not every knob is used by every test binary.
#![allow(dead_code)]

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch, Notify};

const NS_PER_SEC: i64 = 1_000_000_000;
const HOUR: Duration = Duration::from_secs(3600);
/// Loki's `maxEntriesPerTailResponse`.
const TAIL_MAX_ENTRIES_PER_FRAME: usize = 100;
/// Loki's `maxBufferedTailResponses`.
const TAIL_BUFFERED_FRAMES: usize = 10;
/// Loki's `maxDroppedEntriesPerTailResponse`.
const TAIL_MAX_DROPPED: usize = 1000;
/// Bound on entries waiting for `ts + delay_for` in one tail (fake-specific).
const TAIL_MAX_PENDING: usize = 10_000;
/// Bound on the request log (oldest requests are forgotten first).
const MAX_RECORDED_REQUESTS: usize = 4096;
/// Largest request body the fake reads (Loki's default is 100 MiB).
const MAX_BODY_BYTES: usize = 100 << 20;

/// The build the captures were taken from, answered by `/loki/api/v1/status/buildinfo`.
pub const BUILDINFO_JSON: &str = r#"{"version":"main-65e30f8","revision":"65e30f8488e8a5ea2013c6881675f8103a8f6bc7","branch":"main","buildUser":"local-peers","buildDate":"2026-11-25T10:01:14Z","goVersion":"go1.26.6"}"#;

/// Limits and behaviour of a [`FakeLoki`]; `Default` is Loki's defaults (single binary,
/// `auth_enabled: false`). Change them later with [`FakeLoki::configure`] or the setters.
#[derive(Clone, Debug)]
pub struct FakeLokiConfig {
    /// Extra path prefix in front of every API path, e.g. `/api/logs/v1/application`. Empty: none.
    pub path_prefix: String,
    /// `limits_config.max_entries_limit_per_query` (5000): a larger `limit` is a 400, not clamped.
    pub max_entries_limit_per_query: u32,
    /// `limits_config.max_query_length` (721h = 30d1h); `Duration::ZERO` turns the check off.
    pub max_query_length: Duration,
    /// `querier.tail_max_duration` (1h): the tail websocket is closed with 1011 after it.
    pub tail_max_duration: Duration,
    /// `limits_config.max_concurrent_tail_requests` (10) per tenant.
    pub max_concurrent_tail_requests: usize,
    /// `auth_enabled`: without `X-Scope-OrgID` every API call is a 401 `no org id`. When false,
    /// everything is stored and read as tenant `fake` and the header is ignored.
    pub require_tenant: bool,
    /// `limits_config.reject_old_samples` (true).
    pub reject_old_samples: bool,
    /// `limits_config.reject_old_samples_max_age` (1 week).
    pub reject_old_samples_max_age: Duration,
    /// `limits_config.creation_grace_period` (10m): entries further in the future are rejected.
    pub creation_grace_period: Duration,
    /// Half of `ingester.max_chunk_age` (1h): per stream, an entry older than the stream's newest
    /// entry minus this window is rejected as "too far behind".
    pub too_far_behind_window: Duration,
    /// `limits_config.max_line_size` (256KB = 262144 bytes); 0 turns the check off.
    pub max_line_size: usize,
    /// `limits_config.max_label_names_per_series` (15; the added `service_name` is not counted).
    pub max_label_names_per_series: usize,
    /// `limits_config.max_label_name_length` (1024).
    pub max_label_name_length: usize,
    /// `limits_config.max_label_value_length` (2048).
    pub max_label_value_length: usize,
    /// `limits_config.discover_service_name` non-empty (true): add `service_name`.
    pub discover_service_name: bool,
    /// `limits_config.discover_log_levels` (true): add `detected_level` structured metadata.
    pub discover_log_levels: bool,
    /// `Some(ns)`: start with a frozen clock at this Unix time in ns; `None`: the real clock.
    pub now_ns: Option<i64>,
}

impl Default for FakeLokiConfig {
    fn default() -> Self {
        FakeLokiConfig {
            path_prefix: String::new(),
            max_entries_limit_per_query: 5000,
            max_query_length: Duration::from_secs(721 * 3600),
            tail_max_duration: HOUR,
            max_concurrent_tail_requests: 10,
            require_tenant: false,
            reject_old_samples: true,
            reject_old_samples_max_age: Duration::from_secs(7 * 24 * 3600),
            creation_grace_period: Duration::from_secs(600),
            too_far_behind_window: HOUR,
            max_line_size: 256 * 1024,
            max_label_names_per_series: 15,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            discover_service_name: true,
            discover_log_levels: true,
            now_ns: None,
        }
    }
}

/// One HTTP request as the fake received it (the log is bounded to the last 4096 requests).
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// The path as sent, prefix included, without the query string.
    pub path: String,
    /// Decoded URL query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Decoded `application/x-www-form-urlencoded` body parameters (POST), in order.
    pub form: Vec<(String, String)>,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl RecordedRequest {
    /// The value Loki would use for a parameter: the form body first, then the URL query.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .chain(self.query.iter())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// First header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Loki push protobuf (`logproto.PushRequest`), for tests that push like a client.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
    #[prost(string, tag = "2")]
    pub format: String,
}

/// `logproto.StreamAdapter`: `labels` is the Prometheus text form `{a="b", c="d"}`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<prost_types::Timestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
    #[prost(message, repeated, tag = "4")]
    pub parsed: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

impl PushRequest {
    /// Protobuf-encode and snappy-block-compress, i.e. the body of an `application/x-protobuf` push.
    pub fn to_snappy_body(&self) -> Vec<u8> {
        let raw = prost::Message::encode_to_vec(self);
        snap::raw::Encoder::new()
            .compress_vec(&raw)
            .expect("snappy compression")
    }
}

// Decoding side: same wire format, but `line` as bytes so invalid UTF-8 is accepted like Loki does.
#[derive(Clone, PartialEq, prost::Message)]
struct WirePushRequest {
    #[prost(message, repeated, tag = "1")]
    streams: Vec<WireStream>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct WireStream {
    #[prost(string, tag = "1")]
    labels: String,
    #[prost(message, repeated, tag = "2")]
    entries: Vec<WireEntry>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct WireEntry {
    #[prost(message, optional, tag = "1")]
    timestamp: Option<prost_types::Timestamp>,
    #[prost(bytes = "vec", tag = "2")]
    line: Vec<u8>,
    #[prost(message, repeated, tag = "3")]
    structured_metadata: Vec<LabelPairAdapter>,
}

/// A seeded entry: (Unix ns, line, structured metadata).
pub type SeedEntry<'a> = (i64, &'a str, &'a [(&'a str, &'a str)]);

/// A running fake Loki. Dropping it stops the server (open tails are closed).
pub struct FakeLoki {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for FakeLoki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeLoki")
            .field("addr", &self.addr)
            .finish()
    }
}

impl FakeLoki {
    /// Binds `127.0.0.1:0` and serves in a tokio task. Must be called inside a tokio runtime.
    pub fn start(config: FakeLokiConfig) -> FakeLoki {
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("fake loki: bind 127.0.0.1:0");
        std_listener
            .set_nonblocking(true)
            .expect("fake loki: set_nonblocking");
        let addr = std_listener.local_addr().expect("fake loki: local_addr");
        let listener = tokio::net::TcpListener::from_std(std_listener)
            .expect("fake loki: FakeLoki::start must run inside a tokio runtime");
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (stall_tx, _) = watch::channel(StallCtl::default());
        let (drop_tx, _) = watch::channel(DropCtl::default());
        let clock = match config.now_ns {
            Some(ns) => Clock::Frozen(ns),
            None => Clock::Real,
        };
        let shared = Arc::new(Shared {
            cfg: Mutex::new(config),
            clock: Mutex::new(clock),
            store: Mutex::new(Store::default()),
            requests: Mutex::new(VecDeque::new()),
            failures: Mutex::new(VecDeque::new()),
            stall: stall_tx,
            tail_drop: drop_tx,
            shutdown: shutdown_rx.clone(),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let mut stop = shutdown_rx;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                })
                .await;
        });
        FakeLoki {
            addr,
            shared,
            shutdown: shutdown_tx,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (no path prefix).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// [`FakeLoki::url`] followed by the configured path prefix (what a client behind a gateway
    /// would be given as its Loki base URL).
    pub fn prefixed_url(&self) -> String {
        format!(
            "{}{}",
            self.url(),
            normalize_prefix(&lock(&self.shared.cfg).path_prefix)
        )
    }

    /// A copy of the configuration in force.
    pub fn config(&self) -> FakeLokiConfig {
        lock(&self.shared.cfg).clone()
    }

    /// Changes any knob at run time (applies to the next request; open tails keep their max
    /// duration).
    pub fn configure(&self, f: impl FnOnce(&mut FakeLokiConfig)) {
        f(&mut lock(&self.shared.cfg));
    }

    pub fn set_max_entries_limit_per_query(&self, limit: u32) {
        self.configure(|c| c.max_entries_limit_per_query = limit);
    }
    /// `Duration::ZERO` turns the check off.
    pub fn set_max_query_length(&self, length: Duration) {
        self.configure(|c| c.max_query_length = length);
    }
    pub fn set_tail_max_duration(&self, duration: Duration) {
        self.configure(|c| c.tail_max_duration = duration);
    }
    pub fn set_require_tenant(&self, require: bool) {
        self.configure(|c| c.require_tenant = require);
    }
    pub fn set_reject_old_samples_max_age(&self, age: Duration) {
        self.configure(|c| c.reject_old_samples_max_age = age);
    }
    pub fn set_creation_grace_period(&self, period: Duration) {
        self.configure(|c| c.creation_grace_period = period);
    }
    pub fn set_too_far_behind_window(&self, window: Duration) {
        self.configure(|c| c.too_far_behind_window = window);
    }
    pub fn set_max_line_size(&self, bytes: usize) {
        self.configure(|c| c.max_line_size = bytes);
    }
    pub fn set_path_prefix(&self, prefix: &str) {
        self.configure(|c| c.path_prefix = prefix.to_string());
    }

    /// The fake's "now" in Unix ns (frozen or real).
    pub fn now_ns(&self) -> i64 {
        self.shared.now_ns()
    }
    /// Freezes the clock at `ns` (Unix ns). Used for defaults (`end`, tail `start`), push
    /// validation, the max query length of tails, and tail `delay_for`.
    pub fn set_now(&self, ns: i64) {
        *lock(&self.shared.clock) = Clock::Frozen(ns);
        self.shared.wake_tails();
    }
    /// Moves a frozen clock forward (freezes a real clock at now + `by`).
    pub fn advance(&self, by: Duration) {
        let now = self.shared.now_ns();
        *lock(&self.shared.clock) = Clock::Frozen(now.saturating_add(dur_ns(by)));
        self.shared.wake_tails();
    }
    /// Back to the real clock.
    pub fn use_real_clock(&self) {
        *lock(&self.shared.clock) = Clock::Real;
        self.shared.wake_tails();
    }

    /// The next `n` requests (any path) are answered `status` with `body` as
    /// `text/plain; charset=utf-8`, plus `Retry-After: <retry_after>` when given
    /// (e.g. 429 `too many outstanding requests`, 503, 500). Requests are still recorded.
    pub fn fail_next(&self, n: usize, status: u16, body: &str, retry_after: Option<String>) {
        self.fail_next_on("", n, status, body, retry_after);
    }
    /// Like [`FakeLoki::fail_next`], only for requests whose path (prefix removed) ends with
    /// `path_suffix`, e.g. `/loki/api/v1/query_range`. Rules are used in the order they were added.
    pub fn fail_next_on(
        &self,
        path_suffix: &str,
        n: usize,
        status: u16,
        body: &str,
        retry_after: Option<String>,
    ) {
        let fault = Fault::Status {
            status,
            body: body.to_string(),
            retry_after,
        };
        self.inject(path_suffix, 0, n, fault);
    }
    /// Answers `n` requests whose path (prefix removed) ends with `path_suffix` with `fault`,
    /// after letting the next `skip` such requests through untouched: a fault at a chosen point
    /// of a paged read. Rules are used in the order they were added; a request counts towards
    /// the first rule that matches its path only.
    pub fn inject(&self, path_suffix: &str, skip: usize, n: usize, fault: Fault) {
        if n == 0 {
            return;
        }
        lock(&self.shared.failures).push_back(FailRule {
            path_suffix: path_suffix.to_string(),
            skip,
            remaining: n,
            fault,
        });
    }
    /// Requests still to be answered by the injected rules (skipped ones included).
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.failures)
            .iter()
            .map(|r| r.skip + r.remaining)
            .sum()
    }
    pub fn clear_failures(&self) {
        lock(&self.shared.failures).clear();
    }

    /// Simulates slow readers: every open (and later) tail sends `frames` more text frames and
    /// then stops reading its 10-frame buffer (and pinging) until [`FakeLoki::resume_tails`];
    /// entries that do not fit are dropped and reported in `dropped_entries` later, like Loki.
    pub fn stall_tails_after(&self, frames: u64) {
        self.shared.stall.send_modify(|s| {
            s.generation += 1;
            s.after = Some(frames);
        });
    }
    pub fn resume_tails(&self) {
        self.shared.stall.send_modify(|s| {
            s.generation += 1;
            s.after = None;
        });
    }
    /// Ends every open (and later) tail once it has sent `frames` more text frames, as `how`
    /// says: as a proxy's idle timeout or a restarted querier does (no close frame), or as
    /// Loki does when its ingesters go away (close 1011). Lasts until [`FakeLoki::keep_tails`].
    pub fn drop_tails_after(&self, frames: u64, how: TailDrop) {
        self.shared.tail_drop.send_modify(|d| {
            d.generation += 1;
            d.after = Some((frames, how));
        });
    }
    /// Tails are no longer dropped.
    pub fn keep_tails(&self) {
        self.shared.tail_drop.send_modify(|d| {
            d.generation += 1;
            d.after = None;
        });
    }
    /// Number of tail websockets currently registered.
    pub fn active_tails(&self) -> usize {
        lock(&self.shared.store).tails.len()
    }

    /// Every request received so far (bounded to the last 4096), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).iter().cloned().collect()
    }
    /// Requests whose path ends with `path_suffix`.
    pub fn requests_to(&self, path_suffix: &str) -> Vec<RecordedRequest> {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| r.path.ends_with(path_suffix))
            .cloned()
            .collect()
    }
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Seeds entries (Unix ns, line) into the stream `labels` of tenant `fake`, bypassing HTTP
    /// and push validation, but with Loki's ingestion effects: `service_name` and
    /// `detected_level` are added, exact duplicates collapse, open tails see the entries.
    pub fn push_lines(&self, labels: &[(&str, &str)], entries: &[(i64, &str)]) {
        self.push_lines_for_tenant("fake", labels, entries);
    }
    /// [`FakeLoki::push_lines`] for a given tenant (use with `require_tenant`).
    pub fn push_lines_for_tenant(
        &self,
        tenant: &str,
        labels: &[(&str, &str)],
        entries: &[(i64, &str)],
    ) {
        let entries: Vec<SeedEntry<'_>> = entries
            .iter()
            .map(|(ts, line)| (*ts, *line, &[][..]))
            .collect();
        self.push_entries_for_tenant(tenant, labels, &entries);
    }
    /// [`FakeLoki::push_lines`] with structured metadata per entry.
    pub fn push_lines_with_metadata(&self, labels: &[(&str, &str)], entries: &[SeedEntry<'_>]) {
        self.push_entries_for_tenant("fake", labels, entries);
    }

    fn push_entries_for_tenant(
        &self,
        tenant: &str,
        labels: &[(&str, &str)],
        entries: &[SeedEntry<'_>],
    ) {
        let cfg = self.config();
        let mut ls: Labels = labels
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ls.sort_by(|a, b| a.0.cmp(&b.0));
        add_service_name(&mut ls, &cfg);
        let incoming: Vec<IncomingEntry> = entries
            .iter()
            .map(|(ts, line, sm)| {
                let mut sm: Vec<(String, String)> = sm
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                add_detected_level(&ls, &mut sm, line, &cfg);
                IncomingEntry {
                    ts: *ts,
                    line: line.to_string(),
                    sm,
                }
            })
            .collect();
        let mut store = lock(&self.shared.store);
        let (new, _) = store.ingest(tenant, &ls, incoming, None);
        store.notify_tails(tenant, &ls, &new);
    }

    /// Number of stored entries over all tenants and streams.
    pub fn entry_count(&self) -> usize {
        lock(&self.shared.store)
            .tenants
            .values()
            .flat_map(|t| t.streams.values())
            .map(|s| s.entries.len())
            .sum()
    }
    /// Forgets every stored entry (tails stay open).
    pub fn clear(&self) {
        lock(&self.shared.store).tenants.clear();
    }
}

impl Drop for FakeLoki {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------

type Labels = Vec<(String, String)>;

struct Shared {
    cfg: Mutex<FakeLokiConfig>,
    clock: Mutex<Clock>,
    store: Mutex<Store>,
    requests: Mutex<VecDeque<RecordedRequest>>,
    failures: Mutex<VecDeque<FailRule>>,
    stall: watch::Sender<StallCtl>,
    tail_drop: watch::Sender<DropCtl>,
    shutdown: watch::Receiver<bool>,
}

#[derive(Clone, Copy, Debug)]
enum Clock {
    Real,
    Frozen(i64),
}

/// How an injected rule answers a request (see [`FakeLoki::inject`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// `status` with `body` as `text/plain; charset=utf-8`, plus `Retry-After` when given:
    /// Loki's own refusals (429 `too many outstanding requests`, 500, 504) and a gateway's
    /// (502, 503).
    Status {
        status: u16,
        body: String,
        retry_after: Option<String>,
    },
    /// The real answer's status and headers, then the connection is closed after the share
    /// `keep` (0 to 1) of its body: a querier or a proxy that dies while streaming. The body is
    /// chunked, as Loki streams its JSON, and lacks its last chunk: a client sees it break.
    CutBody { keep: f64 },
    /// The real answer's status and headers with its body cut to `keep` (0 to 1) of its bytes,
    /// sent as a complete HTTP message: a proxy that ends a close-delimited body early, or
    /// buffers a cut answer and sends it with its own `Content-Length`. Only the JSON shows it.
    TruncatedBody { keep: f64 },
    /// 200 with a body that is not Loki's: the sign-in page of an authenticating proxy (a
    /// redirect followed to it), a captive portal, an HTML error page.
    ForeignBody { content_type: String, body: String },
    /// The real answer, after a delay: a slow querier (the first byte comes late).
    Delay(Duration),
}

/// How [`FakeLoki::drop_tails_after`] ends a tail.
#[derive(Clone, Debug, PartialEq)]
pub enum TailDrop {
    /// The TCP connection is closed with no websocket close frame.
    Abrupt,
    /// A close frame 1011 `all ingesters closed the connection`, as Loki sends when the
    /// ingesters it tails through stop (a rollout).
    IngestersClosed,
}

struct FailRule {
    path_suffix: String,
    /// Matching requests still to let through before the fault applies.
    skip: usize,
    remaining: usize,
    fault: Fault,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct StallCtl {
    generation: u64,
    after: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct DropCtl {
    generation: u64,
    after: Option<(u64, TailDrop)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn dur_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn real_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(dur_ns)
        .unwrap_or(0)
}

fn normalize_prefix(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        String::new()
    } else if t.starts_with('/') {
        t.to_string()
    } else {
        format!("/{t}")
    }
}

impl Shared {
    fn cfg(&self) -> FakeLokiConfig {
        lock(&self.cfg).clone()
    }
    fn now_ns(&self) -> i64 {
        match *lock(&self.clock) {
            Clock::Real => real_now_ns(),
            Clock::Frozen(ns) => ns,
        }
    }
    fn clock_is_real(&self) -> bool {
        matches!(*lock(&self.clock), Clock::Real)
    }
    fn wake_tails(&self) {
        for t in &lock(&self.store).tails {
            t.notify.notify_one();
        }
    }
    /// The fault for a request to `route`, if a rule has one for it now.
    fn take_fault(&self, route: &str) -> Option<Fault> {
        let mut rules = lock(&self.failures);
        let idx = rules
            .iter()
            .position(|r| r.remaining > 0 && route.ends_with(&r.path_suffix))?;
        let rule = &mut rules[idx];
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        rule.remaining -= 1;
        let fault = rule.fault.clone();
        if rule.remaining == 0 {
            rules.remove(idx);
        }
        Some(fault)
    }
}

/// How many bytes of `body` a cut keeping `keep` (0 to 1) of it keeps: always fewer than its
/// content (trailing white space aside), so a cut JSON answer is never whole.
fn cut_point(body: &[u8], keep: f64) -> usize {
    let content = body.trim_ascii_end().len();
    let at = (content as f64 * keep.clamp(0.0, 1.0)) as usize;
    at.min(content.saturating_sub(1))
}

/// `response` (the real answer) as `fault` changes it, after its delay if it has one.
async fn apply_fault(
    fault: Fault,
    response: impl std::future::Future<Output = Response>,
) -> Response {
    match fault {
        Fault::Status {
            status,
            body,
            retry_after,
        } => {
            let mut resp = text_response(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                &body,
                false,
            );
            if let Some(v) = retry_after.and_then(|ra| HeaderValue::from_str(&ra).ok()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Fault::ForeignBody { content_type, body } => {
            let mut resp = Response::new(Body::from(body));
            if let Ok(v) = HeaderValue::from_str(&content_type) {
                resp.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            resp
        }
        Fault::Delay(delay) => {
            tokio::time::sleep(delay).await;
            response.await
        }
        Fault::CutBody { keep } | Fault::TruncatedBody { keep } => {
            let resp = response.await;
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                return resp;
            }
            let (mut parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let kept = bytes.slice(..cut_point(&bytes, keep));
            parts.headers.remove(header::CONTENT_LENGTH);
            let body = if matches!(fault, Fault::CutBody { .. }) {
                let cut = std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "fake loki: connection cut mid-body",
                );
                // The head and the kept bytes go out before the connection breaks.
                let broken = futures::stream::once(async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Err(cut)
                });
                Body::from_stream(futures::stream::iter([Ok(kept)]).chain(broken))
            } else {
                Body::from(kept)
            };
            Response::from_parts(parts, body)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Store and ingestion
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Store {
    tenants: HashMap<String, TenantData>,
    tails: Vec<TailSub>,
    next_seq: u64,
    next_tail_id: u64,
}

#[derive(Default)]
struct TenantData {
    /// Keyed by the Prometheus label string of the stream.
    streams: BTreeMap<String, StreamData>,
}

struct StreamData {
    labels: Labels,
    /// Sorted by (ts, seq): equal timestamps keep push order.
    entries: Vec<StoredEntry>,
    highest_ts: Option<i64>,
}

#[derive(Clone, Debug)]
struct StoredEntry {
    ts: i64,
    seq: u64,
    line: Arc<str>,
    /// Structured metadata in push order (`detected_level` appended last when added).
    sm: Arc<Vec<(String, String)>>,
}

struct IncomingEntry {
    ts: i64,
    line: String,
    sm: Vec<(String, String)>,
}

impl Store {
    /// Appends entries to one stream in push order (the ingester's part of a push). With a
    /// `behind_window`, entries older than the stream's newest entry minus the window are
    /// rejected. Exact duplicates (same ts and line) are dropped silently. Returns the stored
    /// entries and the rejected (ts, reason) pairs.
    fn ingest(
        &mut self,
        tenant: &str,
        labels: &Labels,
        entries: Vec<IncomingEntry>,
        behind_window: Option<i64>,
    ) -> (Vec<StoredEntry>, Vec<(i64, String)>) {
        let key = labels_string(labels);
        let mut next_seq = self.next_seq;
        let stream = self
            .tenants
            .entry(tenant.to_string())
            .or_default()
            .streams
            .entry(key)
            .or_insert_with(|| StreamData {
                labels: labels.clone(),
                entries: Vec::new(),
                highest_ts: None,
            });
        let mut stored = Vec::new();
        let mut failed = Vec::new();
        for e in entries {
            if let (Some(window), Some(highest)) = (behind_window, stream.highest_ts) {
                let cutoff = highest.saturating_sub(window);
                if e.ts < cutoff {
                    failed.push((
                        e.ts,
                        format!(
                            "entry too far behind, entry timestamp is: {}, oldest acceptable timestamp is: {}",
                            rfc3339_secs(e.ts),
                            rfc3339_secs(cutoff)
                        ),
                    ));
                    continue;
                }
            }
            let lo = stream.entries.partition_point(|x| x.ts < e.ts);
            let hi = stream.entries.partition_point(|x| x.ts <= e.ts);
            if stream.entries[lo..hi].iter().any(|x| *x.line == *e.line) {
                continue;
            }
            let entry = StoredEntry {
                ts: e.ts,
                seq: next_seq,
                line: Arc::from(e.line),
                sm: Arc::new(e.sm),
            };
            next_seq += 1;
            stream.entries.insert(hi, entry.clone());
            stream.highest_ts = Some(stream.highest_ts.map_or(e.ts, |h| h.max(e.ts)));
            stored.push(entry);
        }
        self.next_seq = next_seq;
        (stored, failed)
    }

    /// Hands newly stored entries to the open tails of the tenant whose query matches.
    fn notify_tails(&mut self, tenant: &str, labels: &Labels, new: &[StoredEntry]) {
        if new.is_empty() {
            return;
        }
        for sub in self.tails.iter().filter(|t| t.tenant == tenant) {
            if !sub.query.selector_matches(labels) {
                continue;
            }
            let mut buf = lock(&sub.buf);
            for e in new {
                let Some(p) = tail_entry(&sub.query, labels, e, true, sub.categorize) else {
                    continue;
                };
                if buf.pending.len() >= TAIL_MAX_PENDING {
                    if buf.dropped.len() < TAIL_MAX_DROPPED {
                        let labels = p.labels.clone();
                        buf.dropped.push((p.ts, labels));
                    }
                } else {
                    buf.pending.push(Reverse(p));
                }
            }
            drop(buf);
            sub.notify.notify_one();
        }
    }
}

const SERVICE_NAME_SOURCES: [&str; 13] = [
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
];

const LEVEL_FIELDS: [&str; 14] = [
    "level",
    "LEVEL",
    "Level",
    "log.level",
    "severity",
    "SEVERITY",
    "Severity",
    "SeverityText",
    "lvl",
    "LVL",
    "Lvl",
    "severity_text",
    "Severity_Text",
    "SEVERITY_TEXT",
];

fn add_service_name(labels: &mut Labels, cfg: &FakeLokiConfig) {
    if !cfg.discover_service_name || labels.iter().any(|(k, _)| k == "service_name") {
        return;
    }
    let value = SERVICE_NAME_SOURCES
        .iter()
        .find_map(|src| {
            labels
                .iter()
                .find(|(k, v)| k == src && !v.is_empty())
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|| "unknown_service".to_string());
    labels.push(("service_name".to_string(), value));
    labels.sort_by(|a, b| a.0.cmp(&b.0));
}

fn normalize_level(v: &str) -> String {
    let l = v.to_ascii_lowercase();
    match l.as_str() {
        "trace" | "trc" => "trace",
        "debug" | "dbg" => "debug",
        "info" | "inf" | "information" => "info",
        "warn" | "wrn" | "warning" => "warn",
        "error" | "err" => "error",
        "critical" => "critical",
        "fatal" => "fatal",
        _ => return v.to_string(),
    }
    .to_string()
}

fn level_from_keywords(line: &str) -> &'static str {
    let has = |words: &[&str]| words.iter().any(|w| line.contains(w));
    if has(&["info:", "INFO:", "[info]", "[INFO]", "info", "INFO"]) {
        "info"
    } else if has(&["err:", "ERR:", "[err]", "[ERR]", "[error]", "[ERROR]"]) {
        "error"
    } else if has(&[
        "warn:",
        "WARN:",
        "[warn]",
        "[WARN]",
        "[warning]",
        "[WARNING]",
        "warning",
        "WARNING",
    ]) {
        "warn"
    } else if has(&["critical:", "CRITICAL:", "[critical]", "[CRITICAL]"]) {
        "critical"
    } else if has(&["debug:", "DEBUG:", "[debug]", "[DEBUG]", "debug", "DEBUG"]) {
        "debug"
    } else {
        "unknown"
    }
}

fn level_from_line(line: &str) -> String {
    let trimmed = line.trim();
    let found: Option<String> = if trimmed.starts_with('{') && trimmed.ends_with('}') {
        match parse_json(line.as_bytes()) {
            Ok((v, _)) => json_level_field(&v, 0),
            Err(_) => None,
        }
    } else if line.contains('=') {
        logfmt_pairs(line).into_iter().find_map(|(k, v)| {
            LEVEL_FIELDS
                .iter()
                .any(|f| f.eq_ignore_ascii_case(&k))
                .then_some(v)
        })
    } else {
        return level_from_keywords(line).to_string();
    };
    match found.map(|v| normalize_level(&v)) {
        Some(l)
            if [
                "trace", "debug", "info", "warn", "error", "critical", "fatal",
            ]
            .contains(&l.as_str()) =>
        {
            l
        }
        _ => level_from_keywords(line).to_string(),
    }
}

/// Loki looks for a string level field at depth < 2 (`log_level_from_json_max_depth`).
fn json_level_field(v: &JVal, depth: usize) -> Option<String> {
    if depth >= 2 {
        return None;
    }
    let JVal::Obj(fields, _) = v else { return None };
    for (k, val) in fields {
        match val {
            JVal::Str(s) if LEVEL_FIELDS.contains(&k.as_str()) => return Some(s.clone()),
            JVal::Obj(..) => {
                if let Some(l) = json_level_field(val, depth + 1) {
                    return Some(l);
                }
            }
            _ => {}
        }
    }
    None
}

fn logfmt_pairs(line: &str) -> Vec<(String, String)> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        let key = String::from_utf8_lossy(&b[ks..i]).into_owned();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            let value = if i < b.len() && b[i] == b'"' {
                i += 1;
                let vs = i;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let v = String::from_utf8_lossy(&b[vs..i.min(b.len())]).into_owned();
                i += 1;
                v
            } else {
                let vs = i;
                while i < b.len() && b[i] != b' ' {
                    i += 1;
                }
                String::from_utf8_lossy(&b[vs..i]).into_owned()
            };
            if !key.is_empty() {
                out.push((key, value));
            }
        }
    }
    out
}

/// The distributor's `detected_level` (only when not already present).
fn add_detected_level(
    labels: &Labels,
    sm: &mut Vec<(String, String)>,
    line: &str,
    cfg: &FakeLokiConfig,
) {
    if !cfg.discover_log_levels {
        return;
    }
    if let Some(existing) = sm.iter_mut().find(|(k, _)| k == "detected_level") {
        existing.1 = normalize_level(&existing.1);
        return;
    }
    let from = |set: &[(String, String)]| {
        LEVEL_FIELDS.iter().find_map(|f| {
            set.iter()
                .find(|(k, _)| k == f)
                .map(|(_, v)| normalize_level(v))
        })
    };
    let level = from(labels)
        .or_else(|| from(sm))
        .unwrap_or_else(|| level_from_line(line));
    if !level.is_empty() {
        sm.push(("detected_level".to_string(), level));
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

struct Req {
    method: Method,
    route: String,
    headers: HeaderMap,
    query: Vec<(String, String)>,
    form: Vec<(String, String)>,
    body: Bytes,
}

impl Req {
    /// Go's `r.Form.Get`: body form values first, then the URL query.
    fn param(&self, name: &str) -> &str {
        self.form
            .iter()
            .chain(self.query.iter())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
    fn params(&self, name: &str) -> Vec<&str> {
        self.form
            .iter()
            .chain(self.query.iter())
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn categorize(&self) -> bool {
        self.headers
            .get_all("x-loki-response-encoding-flags")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|f| f.trim() == "categorize-labels")
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return text_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
                true,
            )
        }
    };
    let path = parts.uri.path().to_string();
    let query = parse_urlencoded(parts.uri.query().unwrap_or(""));
    let is_form = parts.method == Method::POST
        && parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
    let form = if is_form {
        parse_urlencoded(&String::from_utf8_lossy(&body))
    } else {
        Vec::new()
    };
    {
        let mut log = lock(&shared.requests);
        if log.len() >= MAX_RECORDED_REQUESTS {
            log.pop_front();
        }
        log.push_back(RecordedRequest {
            method: parts.method.to_string(),
            path: path.clone(),
            query: query.clone(),
            form: form.clone(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.clone(),
        });
    }
    let cfg = shared.cfg();
    let prefix = normalize_prefix(&cfg.path_prefix);
    let route = if prefix.is_empty() {
        path.clone()
    } else if let Some(rest) = path.strip_prefix(&prefix).filter(|r| r.starts_with('/')) {
        rest.to_string()
    } else if path == "/ready" {
        path.clone()
    } else {
        return match shared.take_fault(&path) {
            Some(fault) => apply_fault(fault, async { not_found() }).await,
            None => not_found(),
        };
    };
    let fault = shared.take_fault(&route);
    let req = Req {
        method: parts.method.clone(),
        route,
        headers: parts.headers.clone(),
        query,
        form,
        body,
    };
    let answer = answer(shared, cfg, req, parts);
    match fault {
        Some(fault) => apply_fault(fault, answer).await,
        None => answer.await,
    }
}

/// The answer to a request, as Loki would give it.
async fn answer(
    shared: Arc<Shared>,
    cfg: FakeLokiConfig,
    req: Req,
    mut parts: axum::http::request::Parts,
) -> Response {
    let is_get_or_post = req.method == Method::GET || req.method == Method::POST;
    match req.route.as_str() {
        "/ready" => text_response(StatusCode::OK, "ready", true),
        "/loki/api/v1/status/buildinfo" => {
            let mut r = Response::new(Body::from(format!("{BUILDINFO_JSON}\n")));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        "/loki/api/v1/query_range" if is_get_or_post => {
            with_tenant(&shared, &cfg, &req, query_range)
        }
        "/loki/api/v1/query" if is_get_or_post => with_tenant(&shared, &cfg, &req, instant_query),
        "/loki/api/v1/labels" if is_get_or_post => with_tenant(&shared, &cfg, &req, label_names),
        "/loki/api/v1/series" if is_get_or_post => with_tenant(&shared, &cfg, &req, series),
        "/loki/api/v1/push" if req.method == Method::POST => with_tenant(&shared, &cfg, &req, push),
        "/loki/api/v1/tail" if req.method == Method::GET => {
            let tenant = match resolve_tenant(&cfg, &req.headers) {
                Ok(t) => t,
                Err(resp) => return resp,
            };
            tail(shared.clone(), cfg, req, tenant, &mut parts).await
        }
        "/loki/api/v1/query_range"
        | "/loki/api/v1/query"
        | "/loki/api/v1/labels"
        | "/loki/api/v1/series"
        | "/loki/api/v1/push"
        | "/loki/api/v1/tail" => empty_response(StatusCode::METHOD_NOT_ALLOWED),
        r => {
            if let Some(name) = r
                .strip_prefix("/loki/api/v1/label/")
                .and_then(|n| n.strip_suffix("/values"))
            {
                if !name.is_empty() && !name.contains('/') {
                    if !is_get_or_post {
                        return empty_response(StatusCode::METHOD_NOT_ALLOWED);
                    }
                    let name = percent_decode(name);
                    return with_tenant(&shared, &cfg, &req, |s, c, r, t| {
                        label_values(s, c, r, t, &name)
                    });
                }
            }
            not_found()
        }
    }
}

fn with_tenant(
    shared: &Shared,
    cfg: &FakeLokiConfig,
    req: &Req,
    f: impl FnOnce(&Shared, &FakeLokiConfig, &Req, &str) -> Response,
) -> Response {
    match resolve_tenant(cfg, &req.headers) {
        Ok(t) => f(shared, cfg, req, &t),
        Err(resp) => resp,
    }
}

#[allow(clippy::result_large_err)]
fn resolve_tenant(cfg: &FakeLokiConfig, headers: &HeaderMap) -> Result<String, Response> {
    if !cfg.require_tenant {
        return Ok("fake".to_string());
    }
    let value = headers
        .get("x-scope-orgid")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if value.is_empty() {
        return Err(text_response(StatusCode::UNAUTHORIZED, "no org id", true));
    }
    for id in value.split('|') {
        if id.len() > 150 {
            return Err(text_response(
                StatusCode::BAD_REQUEST,
                "tenant ID is too long: max 150 characters",
                false,
            ));
        }
        if id == "." || id == ".." {
            return Err(text_response(
                StatusCode::BAD_REQUEST,
                "tenant ID is '.' or '..'",
                false,
            ));
        }
        if let Some(c) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "!-_.*'()".contains(*c)))
        {
            return Err(text_response(
                StatusCode::BAD_REQUEST,
                &format!("tenant ID '{id}' contains unsupported character '{c}'"),
                false,
            ));
        }
    }
    if value.contains('|') {
        return Err(text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "multiple org IDs present",
            false,
        ));
    }
    Ok(value.to_string())
}

fn text_response(status: StatusCode, body: &str, newline: bool) -> Response {
    let body = if newline {
        format!("{body}\n")
    } else {
        body.to_string()
    };
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    r
}

/// Query-path errors: plain text without a trailing newline.
fn query_error(status: StatusCode, msg: &str) -> Response {
    text_response(status, msg, false)
}

fn json_response(body: String) -> Response {
    let mut r = Response::new(Body::from(body + "\n"));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    r
}

fn empty_response(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

fn not_found() -> Response {
    text_response(StatusCode::NOT_FOUND, "404 page not found", true)
}

fn unsupported(msg: &str) -> Response {
    query_error(
        StatusCode::NOT_IMPLEMENTED,
        &format!("fake loki: unsupported LogQL: {msg}"),
    )
}

fn logql_error(e: QErr) -> Response {
    match e {
        QErr::Parse(msg) => query_error(StatusCode::BAD_REQUEST, &msg),
        QErr::Unsupported(msg) => unsupported(&msg),
        QErr::Metric => unsupported("metric queries"),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn parse_urlencoded(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Query endpoints
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Forward,
    Backward,
}

fn parse_limit(v: &str) -> Result<u32, String> {
    let l = if v.is_empty() { 100 } else { go_atoi(v)? };
    if l <= 0 {
        return Err("limit must be a positive value".to_string());
    }
    Ok(l as u32)
}

fn parse_direction(v: &str) -> Result<Direction, String> {
    match v.to_ascii_uppercase().as_str() {
        "" | "BACKWARD" => Ok(Direction::Backward),
        "FORWARD" => Ok(Direction::Forward),
        _ => Err(format!("invalid direction '{v}'")),
    }
}

/// Loki's `determineBounds`: `end` defaults to now, `start` to min(end, now) - since (1h).
fn parse_bounds(now: i64, start: &str, end: &str, since: &str) -> Result<(i64, i64), String> {
    let since = if since.is_empty() {
        dur_ns(HOUR)
    } else {
        parse_prom_duration(since).map_err(|e| format!("could not parse 'since' parameter: {e}"))?
    };
    let end =
        parse_timestamp(end, now).map_err(|e| format!("could not parse 'end' parameter: {e}"))?;
    let end_or_now = end.min(now);
    let start = parse_timestamp(start, end_or_now.saturating_sub(since))
        .map_err(|e| format!("could not parse 'start' parameter: {e}"))?;
    Ok((start, end))
}

/// Loki's `parseTimestamp`: a float with `.` is seconds rounded to ms; an integer of at most 10
/// characters is seconds, longer is ns; otherwise RFC3339Nano.
fn parse_timestamp(v: &str, default: i64) -> Result<i64, String> {
    if v.is_empty() {
        return Ok(default);
    }
    if v.contains('.') {
        if let Ok(f) = v.parse::<f64>() {
            let secs = f.trunc();
            let frac = ((f - secs) * 1000.0).round() / 1000.0;
            let ns = (frac * 1e9) as i64;
            return Ok((secs as i64).saturating_mul(NS_PER_SEC).saturating_add(ns));
        }
    }
    match go_parse_int(v, "strconv.ParseInt") {
        Ok(n) => Ok(if v.len() <= 10 {
            n.saturating_mul(NS_PER_SEC)
        } else {
            n
        }),
        Err(e) => parse_rfc3339(v).ok_or(e),
    }
}

struct RangeParams {
    start: i64,
    end: i64,
    limit: u32,
    direction: Direction,
    interval: i64,
}

/// Loki's `ParseRangeQuery` (without the LogQL parse), in Loki's order.
fn parse_range_params(req: &Req, now: i64) -> Result<RangeParams, String> {
    let (start, end) = parse_bounds(
        now,
        req.param("start"),
        req.param("end"),
        req.param("since"),
    )?;
    if end < start {
        return Err("end timestamp must not be before or equal to start time".to_string());
    }
    let limit = parse_limit(req.param("limit"))?;
    let direction = parse_direction(req.param("direction"))?;
    let step_s = req.param("step");
    let step = if step_s.is_empty() {
        let secs = (end.saturating_sub(start) as f64 / 1e9 / 250.0)
            .floor()
            .max(1.0);
        (secs as i64).saturating_mul(NS_PER_SEC)
    } else {
        parse_seconds_or_duration(step_s)?
    };
    if step <= 0 {
        return Err("zero or negative query resolution step widths are not accepted. Try a positive integer".to_string());
    }
    if end.saturating_sub(start) / step > 11000 {
        return Err(
            "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter"
                .to_string(),
        );
    }
    let interval_s = req.param("interval");
    let interval = if interval_s.is_empty() {
        0
    } else {
        parse_seconds_or_duration(interval_s)?
    };
    if interval < 0 {
        return Err("interval must be >= 0".to_string());
    }
    Ok(RangeParams {
        start,
        end,
        limit,
        direction,
        interval,
    })
}

fn query_range(shared: &Shared, cfg: &FakeLokiConfig, req: &Req, tenant: &str) -> Response {
    let now = shared.now_ns();
    let p = match parse_range_params(req, now) {
        Ok(p) => p,
        Err(e) => return query_error(StatusCode::BAD_REQUEST, &e),
    };
    let q = match parse_logql(req.param("query")) {
        Ok(q) => q,
        Err(e) => return logql_error(e),
    };
    if p.limit > cfg.max_entries_limit_per_query {
        return query_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "max entries limit per query exceeded, limit > max_entries_limit_per_query ({} > {})",
                p.limit, cfg.max_entries_limit_per_query
            ),
        );
    }
    if let Some(resp) = check_query_length(cfg, p.end.saturating_sub(p.start)) {
        return resp;
    }
    let categorize = req.categorize();
    let result = {
        let store = lock(&shared.store);
        run_log_query(
            &store,
            tenant,
            &q,
            p.start,
            p.end,
            p.limit as usize,
            p.direction,
            p.interval,
            categorize,
        )
    };
    json_response(streams_response_json(&result, categorize))
}

fn check_query_length(cfg: &FakeLokiConfig, length: i64) -> Option<Response> {
    let max = dur_ns(cfg.max_query_length);
    if max > 0 && length > max {
        return Some(query_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "the query time range exceeds the limit (query length: {}, limit: {})",
                go_duration(length),
                prom_duration(cfg.max_query_length)
            ),
        ));
    }
    None
}

fn instant_query(shared: &Shared, _cfg: &FakeLokiConfig, req: &Req, _tenant: &str) -> Response {
    let now = shared.now_ns();
    if let Err(e) = parse_timestamp(req.param("time"), now)
        .map_err(|e| format!("could not parse 'time' parameter: {e}"))
        .and_then(|_| parse_limit(req.param("limit")))
        .and_then(|_| parse_direction(req.param("direction")))
    {
        return query_error(StatusCode::BAD_REQUEST, &e);
    }
    match parse_logql(req.param("query")) {
        Ok(_) => query_error(
            StatusCode::BAD_REQUEST,
            "log queries are not supported as an instant query type, please change your query to a range query type",
        ),
        Err(e) => logql_error(e),
    }
}

/// Streams of the tenant with at least one entry in [start, end).
fn streams_in_range<'a>(
    store: &'a Store,
    tenant: &str,
    start: i64,
    end: i64,
) -> impl Iterator<Item = &'a StreamData> + 'a {
    store
        .tenants
        .get(tenant)
        .into_iter()
        .flat_map(|t| t.streams.values())
        .filter(move |s| {
            let lo = s.entries.partition_point(|e| e.ts < start);
            lo < s.entries.len() && s.entries[lo].ts < end
        })
}

fn label_names(shared: &Shared, _cfg: &FakeLokiConfig, req: &Req, tenant: &str) -> Response {
    let now = shared.now_ns();
    let (start, end) = match parse_bounds(
        now,
        req.param("start"),
        req.param("end"),
        req.param("since"),
    ) {
        Ok(b) => b,
        Err(e) => return query_error(StatusCode::BAD_REQUEST, &e),
    };
    let selector = match optional_selector(req.param("query")) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let store = lock(&shared.store);
    let mut names: Vec<String> = streams_in_range(&store, tenant, start, end)
        .filter(|s| {
            selector
                .as_ref()
                .is_none_or(|q| q.selector_matches(&s.labels))
        })
        .flat_map(|s| s.labels.iter().map(|(k, _)| k.clone()))
        .collect();
    names.sort();
    names.dedup();
    json_response(string_list_json(&names))
}

fn label_values(
    shared: &Shared,
    _cfg: &FakeLokiConfig,
    req: &Req,
    tenant: &str,
    name: &str,
) -> Response {
    let now = shared.now_ns();
    let (start, end) = match parse_bounds(
        now,
        req.param("start"),
        req.param("end"),
        req.param("since"),
    ) {
        Ok(b) => b,
        Err(e) => return query_error(StatusCode::BAD_REQUEST, &e),
    };
    let selector = match optional_selector(req.param("query")) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let store = lock(&shared.store);
    let mut values: Vec<String> = streams_in_range(&store, tenant, start, end)
        .filter(|s| {
            selector
                .as_ref()
                .is_none_or(|q| q.selector_matches(&s.labels))
        })
        .filter_map(|s| {
            s.labels
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
        .collect();
    values.sort();
    values.dedup();
    json_response(string_list_json(&values))
}

#[allow(clippy::result_large_err)]
fn optional_selector(q: &str) -> Result<Option<LogQuery>, Response> {
    if q.is_empty() {
        return Ok(None);
    }
    parse_logql(q).map(Some).map_err(logql_error)
}

fn string_list_json(items: &[String]) -> String {
    if items.is_empty() {
        return r#"{"status":"success"}"#.to_string();
    }
    let mut out = String::from(r#"{"status":"success","data":["#);
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(&mut out, v);
    }
    out.push_str("]}");
    out
}

fn series(shared: &Shared, _cfg: &FakeLokiConfig, req: &Req, tenant: &str) -> Response {
    let now = shared.now_ns();
    let (start, end) = match parse_bounds(
        now,
        req.param("start"),
        req.param("end"),
        req.param("since"),
    ) {
        Ok(b) => b,
        Err(e) => return query_error(StatusCode::BAD_REQUEST, &e),
    };
    let mut selectors = Vec::new();
    for m in req.params("match[]").into_iter().chain(req.params("match")) {
        match parse_logql(m) {
            Ok(q) => selectors.push(q),
            Err(e) => return logql_error(e),
        }
    }
    let store = lock(&shared.store);
    let mut out = String::from(r#"{"status":"success","data":["#);
    let mut first = true;
    for s in streams_in_range(&store, tenant, start, end) {
        if !selectors.is_empty() && !selectors.iter().any(|q| q.selector_matches(&s.labels)) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        labels_json(
            &mut out,
            s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
    }
    out.push_str("]}");
    json_response(out)
}

// ---------------------------------------------------------------------------------------------
// Query engine
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
struct Meta {
    sm: Vec<(String, String)>,
    parsed: Vec<(String, String)>,
}

/// One entry after the pipeline, as it will appear in a result.
struct OutEntry {
    ts: i64,
    seq: u64,
    /// Label string of every label (index + structured metadata + parsed): Loki's ordering key.
    full_key: String,
    /// Label string of the result stream it belongs to (index labels only with categorize-labels).
    group_key: String,
    stream_labels: Vec<(String, String)>,
    line: String,
    meta: Option<Meta>,
}

fn process_entry(
    q: &LogQuery,
    labels: &Labels,
    e: &StoredEntry,
    categorize: bool,
) -> Option<OutEntry> {
    let p = run_pipeline(q, labels, &e.sm, &e.line, e.ts)?;
    let full: Vec<(String, String)> = p
        .labels
        .iter()
        .filter(|(_, (v, _))| !v.is_empty())
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect();
    let full_key = labels_string(&full);
    if categorize {
        let pick = |cat: Cat| -> Vec<(String, String)> {
            p.labels
                .iter()
                .filter(|(_, (v, c))| *c == cat && !v.is_empty())
                .map(|(k, (v, _))| (k.clone(), v.clone()))
                .collect()
        };
        let index = pick(Cat::Index);
        Some(OutEntry {
            ts: e.ts,
            seq: e.seq,
            full_key,
            group_key: labels_string(&index),
            stream_labels: index,
            line: p.line,
            meta: Some(Meta {
                sm: pick(Cat::Meta),
                parsed: pick(Cat::Parsed),
            }),
        })
    } else {
        Some(OutEntry {
            ts: e.ts,
            seq: e.seq,
            group_key: full_key.clone(),
            full_key,
            stream_labels: full,
            line: p.line,
            meta: None,
        })
    }
}

struct ResultGroup {
    key: String,
    labels: Vec<(String, String)>,
    values: Vec<(i64, String, Option<Meta>)>,
}

#[derive(Default)]
struct QueryResult {
    groups: Vec<ResultGroup>,
    lines_processed: usize,
    bytes_processed: usize,
    sm_bytes_processed: usize,
    post_filter_lines: usize,
    returned: usize,
}

/// Loki's log query: every matching entry in [start, end) through the pipeline, merged across
/// result streams by (timestamp in `direction`, label string, push order), exact duplicates
/// dropped, `interval` sampling, the first `limit` kept (`readStreams`). Returned in merge order,
/// with the counters for `stats`.
#[allow(clippy::too_many_arguments)]
fn select_entries(
    store: &Store,
    tenant: &str,
    q: &LogQuery,
    start: i64,
    end: i64,
    limit: usize,
    direction: Direction,
    interval: i64,
    categorize: bool,
) -> (Vec<OutEntry>, QueryResult) {
    let mut res = QueryResult::default();
    // Entries in range, merged by timestamp in the query direction (cheap references first; the
    // pipeline only runs until `limit` kept entries are reached at a timestamp boundary).
    let mut refs: Vec<(i64, &StreamData, &StoredEntry)> = Vec::new();
    if let Some(t) = store.tenants.get(tenant) {
        for s in t.streams.values().filter(|s| q.selector_matches(&s.labels)) {
            let lo = s.entries.partition_point(|e| e.ts < start);
            let hi = s.entries.partition_point(|e| e.ts < end).max(lo);
            refs.extend(s.entries[lo..hi].iter().map(|e| (e.ts, s, e)));
        }
    }
    match direction {
        Direction::Forward => refs.sort_by_key(|r| r.0),
        Direction::Backward => refs.sort_by_key(|r| Reverse(r.0)),
    }
    // Only `drop`/`keep` can merge two streams into one result stream (and so make duplicates).
    let can_stop = interval == 0
        && !q
            .stages
            .iter()
            .any(|s| matches!(s, Stage::Drop(_) | Stage::Keep(_)));
    // A line format can make two entries of a stream alike: they count once towards `limit`,
    // as Loki's iterator drops the repeat before the limit.
    let mut group_seen: HashSet<(String, String)> = HashSet::new();
    let mut cands = Vec::new();
    let mut i = 0;
    while i < refs.len() {
        let ts = refs[i].0;
        if can_stop && cands.len() >= limit {
            break;
        }
        group_seen.clear();
        while i < refs.len() && refs[i].0 == ts {
            let (_, s, e) = refs[i];
            res.lines_processed += 1;
            res.bytes_processed += e.line.len();
            res.sm_bytes_processed += e.sm.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
            if let Some(o) = process_entry(q, &s.labels, e, categorize) {
                if group_seen.insert((o.full_key.clone(), o.line.clone())) {
                    cands.push(o);
                }
            }
            i += 1;
        }
    }
    res.post_filter_lines = cands.len();
    match direction {
        Direction::Forward => cands.sort_by(|a, b| {
            a.ts.cmp(&b.ts)
                .then_with(|| a.full_key.cmp(&b.full_key))
                .then(a.seq.cmp(&b.seq))
        }),
        Direction::Backward => cands.sort_by(|a, b| {
            b.ts.cmp(&a.ts)
                .then_with(|| a.full_key.cmp(&b.full_key))
                .then(b.seq.cmp(&a.seq))
        }),
    }
    let mut seen: HashSet<(String, i64, String)> = HashSet::new();
    let mut last: Option<i64> = None;
    let mut selected = Vec::new();
    for o in cands {
        if selected.len() >= limit {
            break;
        }
        if !seen.insert((o.full_key.clone(), o.ts, o.line.clone())) {
            continue;
        }
        if interval > 0 {
            if let Some(l) = last {
                let skip = match direction {
                    Direction::Forward => o.ts < l.saturating_add(interval),
                    Direction::Backward => o.ts > l.saturating_sub(interval),
                };
                if skip {
                    continue;
                }
            }
        }
        last = Some(o.ts);
        selected.push(o);
    }
    res.returned = selected.len();
    (selected, res)
}

/// [`select_entries`] in reverse merge order (oldest first for a backward query): the tail history.
#[allow(clippy::too_many_arguments)]
fn collect_log_entries(
    store: &Store,
    tenant: &str,
    q: &LogQuery,
    start: i64,
    end: i64,
    limit: usize,
    direction: Direction,
    interval: i64,
    categorize: bool,
) -> Vec<OutEntry> {
    let mut v = select_entries(
        store, tenant, q, start, end, limit, direction, interval, categorize,
    )
    .0;
    v.reverse();
    v
}

/// [`select_entries`] grouped into result streams sorted by label string.
#[allow(clippy::too_many_arguments)]
fn run_log_query(
    store: &Store,
    tenant: &str,
    q: &LogQuery,
    start: i64,
    end: i64,
    limit: usize,
    direction: Direction,
    interval: i64,
    categorize: bool,
) -> QueryResult {
    let (selected, mut res) = select_entries(
        store, tenant, q, start, end, limit, direction, interval, categorize,
    );
    let mut index: HashMap<String, usize> = HashMap::new();
    for o in selected {
        let gi = *index.entry(o.group_key.clone()).or_insert_with(|| {
            res.groups.push(ResultGroup {
                key: o.group_key.clone(),
                labels: o.stream_labels.clone(),
                values: Vec::new(),
            });
            res.groups.len() - 1
        });
        res.groups[gi].values.push((o.ts, o.line, o.meta));
    }
    res.groups.sort_by(|a, b| a.key.cmp(&b.key));
    res
}

fn labels_json<'a>(out: &mut String, labels: impl Iterator<Item = (&'a str, &'a str)>) {
    out.push('{');
    for (i, (k, v)) in labels.enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, k);
        out.push(':');
        json_str(out, v);
    }
    out.push('}');
}

fn value_json(out: &mut String, ts: i64, line: &str, meta: Option<&Meta>) {
    out.push_str("[\"");
    let _ = write!(out, "{ts}");
    out.push_str("\",");
    json_str(out, line);
    if let Some(m) = meta {
        out.push_str(",{");
        if !m.sm.is_empty() {
            out.push_str("\"structuredMetadata\":");
            labels_json(out, m.sm.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        if !m.parsed.is_empty() {
            if !m.sm.is_empty() {
                out.push(',');
            }
            out.push_str("\"parsed\":");
            labels_json(out, m.parsed.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        out.push('}');
    }
    out.push(']');
}

fn streams_response_json(r: &QueryResult, categorize: bool) -> String {
    let mut out = String::from(r#"{"status":"success","data":{"resultType":"streams","#);
    if categorize {
        out.push_str(r#""encodingFlags":["categorize-labels"],"#);
    }
    out.push_str(r#""result":["#);
    for (i, g) in r.groups.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"stream\":");
        labels_json(
            &mut out,
            g.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        out.push_str(",\"values\":[");
        for (j, (ts, line, meta)) in g.values.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            value_json(&mut out, *ts, line, meta.as_ref());
        }
        out.push_str("]}");
    }
    out.push_str("],\"stats\":");
    out.push_str(&stats_json(r));
    out.push_str("}}");
    out
}

const STATS_TEMPLATE: &str = r#"{"summary":{"bytesProcessedPerSecond":@BPS@,"linesProcessedPerSecond":@LPS@,"totalBytesProcessed":@BYTES@,"totalLinesProcessed":@LINES@,"execTime":0.001,"queueTime":0.0001,"subqueries":0,"totalEntriesReturned":@RETURNED@,"splits":0,"shards":1,"totalPostFilterLines":@POST@,"totalStructuredMetadataBytesProcessed":@SMBYTES@},"querier":{"store":{"totalChunksRef":0,"totalChunksDownloaded":0,"chunksDownloadTime":0,"queryReferencedStructuredMetadata":false,"queryUsedV2Engine":false,"chunk":{"headChunkBytes":0,"headChunkLines":0,"decompressedBytes":0,"decompressedLines":0,"compressedBytes":0,"totalDuplicates":0,"postFilterLines":0,"headChunkStructuredMetadataBytes":0,"decompressedStructuredMetadataBytes":0},"chunkRefsFetchTime":0,"congestionControlLatency":0,"pipelineWrapperFilteredLines":0,"dataobj":{"prePredicateDecompressedRows":0,"prePredicateDecompressedBytes":0,"prePredicateDecompressedStructuredMetadataBytes":0,"postPredicateRows":0,"postPredicateDecompressedBytes":0,"postPredicateStructuredMetadataBytes":0,"postFilterRows":0,"pagesScanned":0,"pagesDownloaded":0,"pagesDownloadedBytes":0,"pageBatches":0,"totalRowsAvailable":0,"totalPageDownloadTime":0,"wireBytesTransferred":0}},"querierExecTime":0.001},"ingester":{"totalReached":1,"totalChunksMatched":@CHUNKS@,"totalBatches":1,"totalLinesSent":@RETURNED@,"store":{"totalChunksRef":0,"totalChunksDownloaded":0,"chunksDownloadTime":0,"queryReferencedStructuredMetadata":false,"queryUsedV2Engine":false,"chunk":{"headChunkBytes":@BYTES@,"headChunkLines":@LINES@,"decompressedBytes":0,"decompressedLines":0,"compressedBytes":0,"totalDuplicates":0,"postFilterLines":@POST@,"headChunkStructuredMetadataBytes":@SMBYTES@,"decompressedStructuredMetadataBytes":0},"chunkRefsFetchTime":0,"congestionControlLatency":0,"pipelineWrapperFilteredLines":0,"dataobj":{"prePredicateDecompressedRows":0,"prePredicateDecompressedBytes":0,"prePredicateDecompressedStructuredMetadataBytes":0,"postPredicateRows":0,"postPredicateDecompressedBytes":0,"postPredicateStructuredMetadataBytes":0,"postFilterRows":0,"pagesScanned":0,"pagesDownloaded":0,"pagesDownloadedBytes":0,"pageBatches":0,"totalRowsAvailable":0,"totalPageDownloadTime":0,"wireBytesTransferred":0}},"recvWaitTime":0.0001},"cache":{"chunk":@CACHE@,"index":@CACHE@,"result":@CACHE@,"statsResult":@CACHE@,"volumeResult":@CACHE@,"seriesResult":@CACHE@,"labelResult":@CACHE@,"instantMetricResult":@CACHE@,"logResult":@CACHE@,"taskResult":@CACHE@},"index":{"totalChunks":0,"postFilterChunks":0,"shardsDuration":0,"usedBloomFilters":false,"totalStreams":0,"chunkRefsLookupTime":0,"bloomFilterTime":0}}"#;
const STATS_CACHE: &str = r#"{"entriesFound":0,"entriesRequested":0,"entriesStored":0,"bytesReceived":0,"bytesSent":0,"requests":0,"downloadTime":0,"queryLengthServed":0}"#;

/// Loki's `stats` object: full shape, fixed timings (1 ms), computed line/byte/entry counters.
fn stats_json(r: &QueryResult) -> String {
    STATS_TEMPLATE
        .replace("@BPS@", &(r.bytes_processed * 1000).to_string())
        .replace("@LPS@", &(r.lines_processed * 1000).to_string())
        .replace("@BYTES@", &r.bytes_processed.to_string())
        .replace("@LINES@", &r.lines_processed.to_string())
        .replace("@RETURNED@", &r.returned.to_string())
        .replace("@POST@", &r.post_filter_lines.to_string())
        .replace("@SMBYTES@", &r.sm_bytes_processed.to_string())
        .replace("@CHUNKS@", &r.groups.len().to_string())
        .replace("@CACHE@", STATS_CACHE)
}

// ---------------------------------------------------------------------------------------------
// Push
// ---------------------------------------------------------------------------------------------

struct DecodedStream {
    labels: Labels,
    entries: Vec<DecodedEntry>,
}

struct DecodedEntry {
    ts: i64,
    line: String,
    /// Length of the line as pushed (bytes), for `max_line_size`.
    raw_len: usize,
    sm: Vec<(String, String)>,
}

fn push(shared: &Shared, cfg: &FakeLokiConfig, req: &Req, tenant: &str) -> Response {
    let bad = |msg: &str| text_response(StatusCode::BAD_REQUEST, msg, true);
    match req.header("content-encoding").unwrap_or("") {
        "" | "snappy" => {}
        enc @ ("gzip" | "deflate") => {
            return bad(&format!(
                "fake loki: Content-Encoding {} is not supported by the fake",
                go_quote(enc)
            ))
        }
        enc => return bad(&format!("Content-Encoding {} not supported", go_quote(enc))),
    }
    let media = match parse_media_type(req.header("content-type").unwrap_or("")) {
        Ok(m) => m,
        Err(e) => return bad(&e),
    };
    let decoded = if media == "application/json" {
        decode_json_push(&req.body)
    } else {
        decode_proto_push(&req.body)
    };
    let streams = match decoded {
        Ok(s) => s,
        Err(e) => return bad(&e),
    };
    if streams.is_empty() {
        return text_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            "error at least one valid stream is required for ingestion",
            true,
        );
    }
    let now = shared.now_ns();
    let oldest = now.saturating_sub(dur_ns(cfg.reject_old_samples_max_age));
    let newest = now.saturating_add(dur_ns(cfg.creation_grace_period));
    let mut validation_errors: Vec<String> = Vec::new();
    let mut accepted: Vec<(Labels, Vec<IncomingEntry>)> = Vec::new();
    for s in streams {
        if s.entries.is_empty() {
            continue;
        }
        let mut labels = s.labels;
        add_service_name(&mut labels, cfg);
        let ls = labels_string(&labels);
        // Loki does not count `service_name` (capture 20: 16 own labels + service_name = "16").
        let counted = labels.len() - usize::from(labels.iter().any(|(k, _)| k == "service_name"));
        if counted > cfg.max_label_names_per_series {
            validation_errors.push(format!(
                "entry for stream '{ls}' has {counted} label names; limit {}",
                cfg.max_label_names_per_series
            ));
            continue;
        }
        let mut label_err = None;
        for (i, (k, v)) in labels.iter().enumerate() {
            if k.len() > cfg.max_label_name_length {
                label_err = Some(format!("stream '{ls}' has label name too long: '{k}'"));
            } else if v.len() > cfg.max_label_value_length {
                label_err = Some(format!("stream '{ls}' has label value too long: '{v}'"));
            } else if i > 0 && labels[i - 1].0 == *k {
                label_err = Some(format!("stream '{ls}' has duplicate label name: '{k}'"));
            }
            if label_err.is_some() {
                break;
            }
        }
        if let Some(e) = label_err {
            validation_errors.push(e);
            continue;
        }
        let mut kept = Vec::new();
        for e in s.entries {
            if cfg.reject_old_samples && e.ts < oldest {
                validation_errors.push(format!(
                    "entry for stream '{ls}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
                    rfc3339_secs(e.ts),
                    rfc3339_secs(oldest)
                ));
                continue;
            }
            if e.ts > newest {
                validation_errors.push(format!(
                    "entry for stream '{ls}' has timestamp too new: {}",
                    rfc3339_secs(e.ts)
                ));
                continue;
            }
            if cfg.max_line_size != 0 && e.raw_len > cfg.max_line_size {
                validation_errors.push(format!(
                    "max entry size '{}' bytes exceeded for stream '{ls}' while adding an entry with length '{}' bytes",
                    cfg.max_line_size, e.raw_len
                ));
                continue;
            }
            let mut sm = e.sm;
            add_detected_level(&labels, &mut sm, &e.line, cfg);
            kept.push(IncomingEntry {
                ts: e.ts,
                line: e.line,
                sm,
            });
        }
        if !kept.is_empty() {
            accepted.push((labels, kept));
        }
    }
    let mut ingester_error = None;
    {
        let mut store = lock(&shared.store);
        for (labels, entries) in accepted {
            let sent = entries.len();
            let (new, failed) = store.ingest(
                tenant,
                &labels,
                entries,
                Some(dur_ns(cfg.too_far_behind_window)),
            );
            store.notify_tails(tenant, &labels, &new);
            if !failed.is_empty() {
                let mut msg = String::new();
                for (ts, reason) in failed.iter().take(10) {
                    let _ = writeln!(
                        msg,
                        "entry with timestamp {} ignored, reason: '{reason}',",
                        go_time_string(*ts)
                    );
                }
                let _ = write!(
                    msg,
                    "user '{tenant}', total ignored: {} out of {sent} for stream: {}",
                    failed.len(),
                    labels_string(&labels)
                );
                ingester_error = Some(msg);
            }
        }
    }
    if let Some(e) = ingester_error {
        return bad(&e);
    }
    if !validation_errors.is_empty() {
        return bad(&group_errors(&validation_errors));
    }
    empty_response(StatusCode::NO_CONTENT)
}

/// The distributor's joined validation errors: one error alone, else `N errors like: <msg>`
/// per distinct message joined with `; ` (first-seen order; Loki's order is random).
fn group_errors(errors: &[String]) -> String {
    if errors.len() == 1 {
        return errors[0].clone();
    }
    let mut order: Vec<(&str, usize)> = Vec::new();
    for e in errors {
        match order.iter_mut().find(|(m, _)| *m == e.as_str()) {
            Some((_, n)) => *n += 1,
            None => order.push((e.as_str(), 1)),
        }
    }
    order
        .iter()
        .map(|(m, n)| format!("{n} errors like: {m}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Go's `mime.ParseMediaType`, reduced to what the push handler needs.
fn parse_media_type(v: &str) -> Result<String, String> {
    let base = v
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if base.is_empty() {
        return Err("mime: no media type".to_string());
    }
    Ok(base)
}

fn decode_proto_push(body: &[u8]) -> Result<Vec<DecodedStream>, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|_| "snappy: corrupt input".to_string())?;
    let req = <WirePushRequest as prost::Message>::decode(&raw[..]).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for s in req.streams {
        let labels =
            parse_label_set(&s.labels).map_err(|e| format!("couldn't parse labels: {e}"))?;
        let entries = s
            .entries
            .into_iter()
            .map(|e| {
                let ts = e.timestamp.map_or(0, |t| {
                    t.seconds
                        .saturating_mul(NS_PER_SEC)
                        .saturating_add(t.nanos as i64)
                });
                DecodedEntry {
                    ts,
                    raw_len: e.line.len(),
                    line: go_lossy_utf8(&e.line),
                    sm: e
                        .structured_metadata
                        .into_iter()
                        .map(|p| (p.name, p.value))
                        .collect(),
                }
            })
            .collect();
        out.push(DecodedStream { labels, entries });
    }
    Ok(out)
}

/// jsoniter's error layout: `<msg>, error found in #N byte of ...|peek|..., bigger context ...|ctx|...`.
fn jsoniter_error(buf: &[u8], head: usize, msg: &str) -> String {
    let head = head.min(buf.len());
    let peek_start = head.saturating_sub(10);
    let peek_end = (head + 10).min(buf.len());
    let ctx_start = head.saturating_sub(50);
    let ctx_end = (head + 50).min(buf.len());
    format!(
        "{msg}, error found in #{} byte of ...|{}|..., bigger context ...|{}|...",
        head - peek_start,
        String::from_utf8_lossy(&buf[peek_start..peek_end]),
        String::from_utf8_lossy(&buf[ctx_start..ctx_end])
    )
}

const JSON_STREAMS_CTX: &str = "loghttp.PushRequest.Streams: []loghttp.LogProtoStream: ";

fn decode_json_push(body: &[u8]) -> Result<Vec<DecodedStream>, String> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err("EOF".to_string());
    }
    let (doc, _) = match parse_json(body) {
        Ok(d) => d,
        Err(e) => {
            let in_streams = find_bytes(body, b"\"streams\"").is_some_and(|p| e.pos > p + 9);
            return Err(if e.eof && in_streams {
                jsoniter_error(
                    body,
                    body.len(),
                    &format!("{JSON_STREAMS_CTX}Skip: do not know how to skip: 0"),
                )
            } else if in_streams {
                jsoniter_error(body, e.pos, &format!("{JSON_STREAMS_CTX}{}", e.msg))
            } else {
                jsoniter_error(
                    body,
                    e.pos,
                    &format!("loghttp.PushRequest.ReadObject: {}", e.msg),
                )
            });
        }
    };
    let JVal::Obj(fields, _) = doc else {
        return Err(jsoniter_error(
            body,
            1,
            "loghttp.PushRequest.ReadObject: expect { or n, but found something else",
        ));
    };
    let items = match fields
        .into_iter()
        .rev()
        .find(|(k, _)| k == "streams")
        .map(|(_, v)| v)
    {
        None | Some(JVal::Null) => Vec::new(),
        Some(JVal::Arr(items, _)) => items,
        Some(_) => {
            return Err(jsoniter_error(
                body,
                body.len(),
                "loghttp.PushRequest.Streams: decode slice: expect [ or n",
            ))
        }
    };
    let mut out = Vec::new();
    for item in items {
        let JVal::Obj(sfields, (_, end)) = item else {
            return Err(jsoniter_error(
                body,
                body.len(),
                &format!("{JSON_STREAMS_CTX}expect {{ or n"),
            ));
        };
        let fail = |msg: &str| {
            jsoniter_error(
                body,
                end,
                &format!("{JSON_STREAMS_CTX}unmarshalerDecoder: {msg}"),
            )
        };
        let mut label_map: Vec<(String, String)> = Vec::new();
        let mut entries = Vec::new();
        for (k, v) in sfields {
            match (k.as_str(), v) {
                ("stream", JVal::Obj(ls, _)) => {
                    for (lk, lv) in ls {
                        match lv {
                            JVal::Str(s) => label_map.push((lk, s)),
                            _ => return Err(fail("Value is not a string")),
                        }
                    }
                }
                ("values", JVal::Arr(vals, _)) => {
                    for v in vals {
                        let JVal::Arr(parts, _) = v else {
                            return Err(fail("Value is array, but can't find closing ']' symbol"));
                        };
                        let ts = match parts.first() {
                            Some(JVal::Str(s)) => {
                                go_parse_int(s, "strconv.ParseInt").map_err(|e| fail(&e))?
                            }
                            _ => {
                                return Err(fail(
                                    "Value looks like Number/Boolean/None, but can't find its end: ',' or '}' symbol",
                                ))
                            }
                        };
                        let line = match parts.get(1) {
                            Some(JVal::Str(s)) => s.clone(),
                            _ => return Err(fail("Value is not a string")),
                        };
                        let mut sm = Vec::new();
                        if let Some(JVal::Obj(m, _)) = parts.get(2) {
                            for (mk, mv) in m {
                                match mv {
                                    JVal::Str(s) => sm.push((mk.clone(), s.clone())),
                                    _ => return Err(fail("Value is not a string")),
                                }
                            }
                        }
                        entries.push(DecodedEntry {
                            ts,
                            raw_len: line.len(),
                            line,
                            sm,
                        });
                    }
                }
                _ => {}
            }
        }
        label_map.sort_by(|a, b| a.0.cmp(&b.0));
        label_map.dedup_by(|a, b| a.0 == b.0);
        let text = labels_string(&label_map);
        let labels = parse_label_set(&text).map_err(|e| format!("couldn't parse labels: {e}"))?;
        out.push(DecodedStream { labels, entries });
    }
    Ok(out)
}

fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// Tail
// ---------------------------------------------------------------------------------------------

struct TailSub {
    id: u64,
    tenant: String,
    query: Arc<LogQuery>,
    categorize: bool,
    buf: Arc<Mutex<TailBuf>>,
    notify: Arc<Notify>,
}

#[derive(Default)]
struct TailBuf {
    /// Entries not sent yet, smallest (ts, seq) first.
    pending: BinaryHeap<Reverse<PendingEntry>>,
    /// (ts, labels) of entries dropped because the frame buffer was full (at most 1000).
    dropped: Vec<(i64, Vec<(String, String)>)>,
    closed: bool,
}

#[derive(Clone, Debug)]
struct PendingEntry {
    ts: i64,
    seq: u64,
    labels: Vec<(String, String)>,
    line: String,
    meta: Option<Meta>,
}

impl PartialEq for PendingEntry {
    fn eq(&self, other: &Self) -> bool {
        (self.ts, self.seq) == (other.ts, other.seq)
    }
}
impl Eq for PendingEntry {}
impl PartialOrd for PendingEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for PendingEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.ts, self.seq).cmp(&(other.ts, other.seq))
    }
}

struct TailFrame {
    entries: Vec<PendingEntry>,
    dropped: Vec<(i64, Vec<(String, String)>)>,
}

/// A live entry as a tail sends it. Without a pipeline Loki sends the stream's index labels only
/// (structured metadata appears only with categorize-labels, in push order); with a pipeline the
/// labels are those of a query.
fn tail_entry(
    q: &LogQuery,
    labels: &Labels,
    e: &StoredEntry,
    live: bool,
    categorize: bool,
) -> Option<PendingEntry> {
    if live && q.stages.is_empty() {
        return Some(PendingEntry {
            ts: e.ts,
            seq: e.seq,
            labels: labels.clone(),
            line: e.line.to_string(),
            meta: categorize.then(|| Meta {
                sm: e.sm.as_ref().clone(),
                parsed: Vec::new(),
            }),
        });
    }
    let o = process_entry(q, labels, e, categorize)?;
    Some(PendingEntry {
        ts: o.ts,
        seq: o.seq,
        labels: o.stream_labels,
        line: o.line,
        meta: o.meta,
    })
}

fn bad_ws_request() -> Response {
    let mut r = text_response(StatusCode::BAD_REQUEST, "Bad Request", true);
    r.headers_mut().insert(
        HeaderName::from_static("sec-websocket-version"),
        HeaderValue::from_static("13"),
    );
    r
}

async fn tail(
    shared: Arc<Shared>,
    cfg: FakeLokiConfig,
    req: Req,
    tenant: String,
    parts: &mut axum::http::request::Parts,
) -> Response {
    let now = shared.now_ns();
    let limit = match parse_limit(req.param("limit")) {
        Ok(l) => l,
        Err(e) => return query_error(StatusCode::BAD_REQUEST, &e),
    };
    let (start, _) = match parse_bounds(
        now,
        req.param("start"),
        req.param("end"),
        req.param("since"),
    ) {
        Ok(b) => b,
        Err(e) => return query_error(StatusCode::BAD_REQUEST, &e),
    };
    let delay_for = match req.param("delay_for") {
        "" => 0,
        d => match go_atoi(d) {
            Ok(v) => v,
            Err(e) => return query_error(StatusCode::BAD_REQUEST, &e),
        },
    };
    if delay_for > 5 {
        return query_error(StatusCode::BAD_REQUEST, "delay_for can't be greater than 5");
    }
    let query = match parse_logql(req.param("query")) {
        Ok(q) => Some(q),
        Err(QErr::Metric) => None,
        Err(e) => return logql_error(e),
    };
    let ws = match WebSocketUpgrade::from_request_parts(parts, &()).await {
        Ok(ws) => ws,
        Err(_) => return bad_ws_request(),
    };
    let categorize = req.categorize();
    let setup = TailSetup {
        shared,
        cfg,
        tenant,
        query,
        start,
        limit: limit as usize,
        delay_for,
        categorize,
    };
    ws.on_upgrade(move |socket| tail_session(setup, socket))
}

struct TailSetup {
    shared: Arc<Shared>,
    cfg: FakeLokiConfig,
    tenant: String,
    query: Option<LogQuery>,
    start: i64,
    limit: usize,
    delay_for: i64,
    categorize: bool,
}

/// Unregisters a tail however its session ends.
struct TailGuard {
    shared: Arc<Shared>,
    id: u64,
    buf: Arc<Mutex<TailBuf>>,
    notify: Arc<Notify>,
}

impl Drop for TailGuard {
    fn drop(&mut self) {
        lock(&self.shared.store).tails.retain(|t| t.id != self.id);
        lock(&self.buf).closed = true;
        self.notify.notify_one();
    }
}

type WsSink = futures::stream::SplitSink<WebSocket, Message>;
type WsStream = futures::stream::SplitStream<WebSocket>;

/// Closes with code 1011 (Loki's code for every server-side end), then waits up to 1 s for the
/// client's close frame.
async fn close_with(sink: &mut WsSink, stream: &mut WsStream, reason: &str) {
    let frame = CloseFrame {
        code: 1011,
        reason: reason.to_string().into(),
    };
    if sink.send(Message::Close(Some(frame))).await.is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(Ok(m)) = stream.next().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

async fn tail_session(setup: TailSetup, socket: WebSocket) {
    let TailSetup {
        shared,
        cfg,
        tenant,
        query,
        start,
        limit,
        delay_for,
        categorize,
    } = setup;
    let (mut sink, mut stream) = socket.split();
    let Some(query) = query else {
        close_with(&mut sink, &mut stream, "only log selector is supported").await;
        return;
    };
    let query = Arc::new(query);
    let buf = Arc::new(Mutex::new(TailBuf::default()));
    let notify = Arc::new(Notify::new());
    let registered: Result<u64, String> = {
        let mut store = lock(&shared.store);
        let active = store.tails.iter().filter(|t| t.tenant == tenant).count();
        let now = shared.now_ns();
        let max_len = dur_ns(cfg.max_query_length);
        if active >= cfg.max_concurrent_tail_requests {
            Err(format!(
                "rpc error: code = Code(400) desc = max concurrent tail requests limit exceeded, count > limit ({} > {})",
                active + 1,
                cfg.max_concurrent_tail_requests
            ))
        } else if max_len > 0 && now.saturating_sub(start) > max_len {
            Err(format!(
                "rpc error: code = Code(400) desc = the query time range exceeds the limit (query length: {}, limit: {})",
                go_duration(now.saturating_sub(start)),
                prom_duration(cfg.max_query_length)
            ))
        } else {
            // History: the last `limit` entries in [start, now), oldest first.
            let hist = collect_log_entries(
                &store,
                &tenant,
                &query,
                start,
                now,
                limit,
                Direction::Backward,
                0,
                categorize,
            );
            {
                let mut b = lock(&buf);
                for o in hist {
                    b.pending.push(Reverse(PendingEntry {
                        ts: o.ts,
                        seq: o.seq,
                        labels: o.stream_labels,
                        line: o.line,
                        meta: o.meta,
                    }));
                }
            }
            let id = store.next_tail_id;
            store.next_tail_id += 1;
            store.tails.push(TailSub {
                id,
                tenant: tenant.clone(),
                query: query.clone(),
                categorize,
                buf: buf.clone(),
                notify: notify.clone(),
            });
            Ok(id)
        }
    };
    let id = match registered {
        Ok(id) => id,
        Err(reason) => {
            close_with(&mut sink, &mut stream, &reason).await;
            return;
        }
    };
    let mut guard = Some(TailGuard {
        shared: shared.clone(),
        id,
        buf: buf.clone(),
        notify: notify.clone(),
    });
    let (tx, mut rx) = mpsc::channel::<TailFrame>(TAIL_BUFFERED_FRAMES);
    tokio::spawn(tail_pump(
        shared.clone(),
        buf.clone(),
        notify.clone(),
        tx,
        delay_for.saturating_mul(NS_PER_SEC),
    ));

    let mut shutdown = shared.shutdown.clone();
    let mut stall = shared.stall.subscribe();
    let mut seen_generation = stall.borrow().generation;
    let mut frames_since_stall = 0u64;
    let mut drops = shared.tail_drop.subscribe();
    let mut drop_generation = drops.borrow().generation;
    let mut frames_since_drop = 0u64;
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let max_duration = tokio::time::sleep(cfg.tail_max_duration);
    tokio::pin!(max_duration);
    loop {
        let ctl = *stall.borrow();
        if ctl.generation != seen_generation {
            seen_generation = ctl.generation;
            frames_since_stall = 0;
        }
        let stalled = ctl.after.is_some_and(|n| frames_since_stall >= n);
        let drop_now = {
            let drop_ctl = drops.borrow_and_update();
            if drop_ctl.generation != drop_generation {
                drop_generation = drop_ctl.generation;
                frames_since_drop = 0;
            }
            match &drop_ctl.after {
                Some((n, how)) if frames_since_drop >= *n => Some(how.clone()),
                _ => None,
            }
        };
        match drop_now {
            Some(TailDrop::Abrupt) => break,
            Some(TailDrop::IngestersClosed) => {
                drop(guard.take());
                close_with(
                    &mut sink,
                    &mut stream,
                    "all ingesters closed the connection",
                )
                .await;
                break;
            }
            None => {}
        }
        tokio::select! {
            frame = rx.recv(), if !stalled => {
                let Some(frame) = frame else { break };
                let text = tail_frame_json(&frame, categorize);
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
                frames_since_stall += 1;
                frames_since_drop += 1;
            }
            _ = ping.tick(), if !stalled => {
                if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                    break;
                }
            }
            _ = &mut max_duration => {
                drop(guard.take()); // unregister before the closing handshake
                close_with(&mut sink, &mut stream, "reached tail max duration limit").await;
                break;
            }
            msg = stream.next() => {
                match msg {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                    Some(Ok(_)) => {}
                }
            }
            _ = stall.changed() => {}
            _ = drops.changed() => {}
            _ = wait_stopped(&mut shutdown) => break,
        }
    }
}

/// Loki's tailer loop: pops due entries (`ts + delay_for` reached) into frames of at most 100,
/// each carrying the entries dropped so far; a frame that does not fit in the 10-frame buffer is
/// dropped and its entries remembered (at most 1000) for the next frame.
async fn tail_pump(
    shared: Arc<Shared>,
    buf: Arc<Mutex<TailBuf>>,
    notify: Arc<Notify>,
    tx: mpsc::Sender<TailFrame>,
    delay_ns: i64,
) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let wait = {
            let now = shared.now_ns();
            let mut b = lock(&buf);
            if b.closed {
                return;
            }
            loop {
                let mut entries = Vec::new();
                while entries.len() < TAIL_MAX_ENTRIES_PER_FRAME {
                    match b.pending.peek() {
                        Some(Reverse(p)) if now >= p.ts.saturating_add(delay_ns) => {
                            entries.push(b.pending.pop().expect("peeked").0)
                        }
                        _ => break,
                    }
                }
                if entries.is_empty() {
                    break;
                }
                let frame = TailFrame {
                    entries,
                    dropped: std::mem::take(&mut b.dropped),
                };
                match tx.try_send(frame) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(frame)) => {
                        let lost = frame
                            .dropped
                            .into_iter()
                            .chain(frame.entries.into_iter().map(|e| (e.ts, e.labels)));
                        for d in lost {
                            if b.dropped.len() >= TAIL_MAX_DROPPED {
                                break;
                            }
                            b.dropped.push(d);
                        }
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            match b.pending.peek() {
                Some(Reverse(p)) if shared.clock_is_real() => {
                    let due =
                        p.ts.saturating_add(delay_ns)
                            .saturating_sub(now)
                            .max(1_000_000);
                    Duration::from_nanos(due as u64).min(HOUR)
                }
                _ => HOUR,
            }
        };
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = wait_stopped(&mut shutdown) => return,
        }
    }
}

async fn wait_stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stopped| *stopped).await;
}

fn tail_frame_json(f: &TailFrame, categorize: bool) -> String {
    let mut out = String::from("{\"streams\":[");
    for (i, e) in f.entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"stream\":");
        labels_json(
            &mut out,
            e.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        out.push_str(",\"values\":[");
        value_json(&mut out, e.ts, &e.line, e.meta.as_ref());
        out.push_str("]}");
    }
    out.push(']');
    if !f.dropped.is_empty() {
        out.push_str(",\"dropped_entries\":[");
        for (i, (ts, labels)) in f.dropped.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{{\"timestamp\":\"{ts}\",\"labels\":");
            labels_json(
                &mut out,
                labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            out.push('}');
        }
        out.push(']');
    }
    if categorize {
        out.push_str(",\"encodingFlags\":[\"categorize-labels\"]");
    }
    out.push('}');
    out
}

// ---------------------------------------------------------------------------------------------
// LogQL (the log-query subset)
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum QErr {
    /// Full 400 body (`parse error ...`).
    Parse(String),
    /// Valid LogQL the fake does not implement.
    Unsupported(String),
    /// A metric query (valid, not a log query).
    Metric,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MatchOp {
    Eq,
    Neq,
    Re,
    Nre,
}

#[derive(Clone, Debug)]
struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    re: Option<Regex>,
}

impl Matcher {
    fn new(name: String, op: MatchOp, value: String) -> Result<Matcher, QErr> {
        let re = match op {
            MatchOp::Re | MatchOp::Nre => Some(
                Regex::new_anchored(&value)
                    .map_err(|e| QErr::Parse(format!("parse error : {e}")))?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            re,
        })
    }
    fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::Neq => v != self.value,
            MatchOp::Re => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::Nre => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }
}

#[derive(Clone, Debug)]
enum PathSeg {
    Key(String),
    Index(usize),
}

#[derive(Clone, Debug)]
struct LabelPick {
    name: String,
    value: Option<Matcher>,
}

impl LabelPick {
    fn applies(&self, k: &str, v: &str) -> bool {
        self.name == k && self.value.as_ref().is_none_or(|m| m.matches(v))
    }
}

#[derive(Clone, Debug)]
enum Stage {
    LineContains(String),
    LineNotContains(String),
    LineRegex(Regex),
    LineNotRegex(Regex),
    JsonAll,
    JsonExpr(Vec<(String, Vec<PathSeg>)>),
    LineFormat(Vec<TplPart>),
    LabelFilter(Vec<Matcher>),
    Drop(Vec<LabelPick>),
    Keep(Vec<LabelPick>),
    Decolorize,
}

#[derive(Clone, Debug)]
struct LogQuery {
    matchers: Vec<Matcher>,
    stages: Vec<Stage>,
}

impl LogQuery {
    fn selector_matches(&self, labels: &Labels) -> bool {
        self.matchers.iter().all(|m| {
            m.matches(
                labels
                    .iter()
                    .find(|(k, _)| *k == m.name)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or(""),
            )
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LBrace,
    RBrace,
    Comma,
    Eq,
    Neq,
    Re,
    Nre,
    PipeExact,
    PipeMatch,
    Pipe,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Gt,
    Ge,
    Lt,
    Le,
    EqEq,
    Ident(String),
    Str(String),
    Num(String),
    Other(char),
    Eof,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: usize,
    col: usize,
}

fn tok_desc(t: &Tok) -> String {
    match t {
        Tok::LBrace => "{".into(),
        Tok::RBrace => "}".into(),
        Tok::Comma => ",".into(),
        Tok::Eq => "=".into(),
        Tok::Neq => "!=".into(),
        Tok::Re => "=~".into(),
        Tok::Nre => "!~".into(),
        Tok::PipeExact => "|=".into(),
        Tok::PipeMatch => "|~".into(),
        Tok::Pipe => "|".into(),
        Tok::LParen => "(".into(),
        Tok::RParen => ")".into(),
        Tok::LBracket => "[".into(),
        Tok::RBracket => "]".into(),
        Tok::Gt => ">".into(),
        Tok::Ge => ">=".into(),
        Tok::Lt => "<".into(),
        Tok::Le => "<=".into(),
        Tok::EqEq => "==".into(),
        Tok::Ident(_) => "IDENTIFIER".into(),
        Tok::Str(_) => "STRING".into(),
        Tok::Num(_) => "NUMBER".into(),
        Tok::Other(c) => c.to_string(),
        Tok::Eof => "$end".into(),
    }
}

fn lex_logql(input: &str) -> Result<Vec<Token>, QErr> {
    let chars: Vec<char> = input.chars().collect();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    let mut out = Vec::new();
    let lex_err = |line: usize, col: usize, msg: &str| {
        QErr::Parse(format!("parse error at line {line}, col {col}: {msg}"))
    };
    loop {
        while i < chars.len() && chars[i].is_whitespace() {
            if chars[i] == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
            i += 1;
        }
        let (tl, tc) = (line, col);
        if i >= chars.len() {
            out.push(Token {
                tok: Tok::Eof,
                line: tl,
                col: tc,
            });
            return Ok(out);
        }
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let mut width = 1;
        let tok = match (c, next) {
            ('{', _) => Tok::LBrace,
            ('}', _) => Tok::RBrace,
            (',', _) => Tok::Comma,
            ('(', _) => Tok::LParen,
            (')', _) => Tok::RParen,
            ('[', _) => Tok::LBracket,
            (']', _) => Tok::RBracket,
            ('|', Some('=')) => {
                width = 2;
                Tok::PipeExact
            }
            ('|', Some('~')) => {
                width = 2;
                Tok::PipeMatch
            }
            ('|', _) => Tok::Pipe,
            ('!', Some('=')) => {
                width = 2;
                Tok::Neq
            }
            ('!', Some('~')) => {
                width = 2;
                Tok::Nre
            }
            ('=', Some('~')) => {
                width = 2;
                Tok::Re
            }
            ('=', Some('=')) => {
                width = 2;
                Tok::EqEq
            }
            ('=', _) => Tok::Eq,
            ('>', Some('=')) => {
                width = 2;
                Tok::Ge
            }
            ('>', _) => Tok::Gt,
            ('<', Some('=')) => {
                width = 2;
                Tok::Le
            }
            ('<', _) => Tok::Lt,
            ('"', _) => {
                let mut j = i + 1;
                let mut raw = String::new();
                loop {
                    match chars.get(j) {
                        None | Some('\n') => return Err(lex_err(tl, tc, "literal not terminated")),
                        Some('"') => break,
                        Some('\\') => {
                            raw.push('\\');
                            match chars.get(j + 1) {
                                None => return Err(lex_err(tl, tc, "literal not terminated")),
                                Some(&e) => raw.push(e),
                            }
                            j += 2;
                        }
                        Some(&ch) => {
                            raw.push(ch);
                            j += 1;
                        }
                    }
                }
                width = j + 1 - i;
                Tok::Str(unquote_go(&raw).map_err(|_| lex_err(tl, tc, "invalid char escape"))?)
            }
            ('`', _) => {
                let mut j = i + 1;
                while j < chars.len() && chars[j] != '`' {
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(lex_err(tl, tc, "literal not terminated"));
                }
                width = j + 1 - i;
                Tok::Str(chars[i + 1..j].iter().collect())
            }
            (c, _) if c.is_ascii_alphabetic() || c == '_' => {
                let mut j = i;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                width = j - i;
                Tok::Ident(chars[i..j].iter().collect())
            }
            (c, _) if c.is_ascii_digit() => {
                let mut j = i;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '.') {
                    j += 1;
                }
                width = j - i;
                Tok::Num(chars[i..j].iter().collect())
            }
            (c, _) => Tok::Other(c),
        };
        for ch in &chars[i..i + width] {
            if *ch == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
        }
        i += width;
        out.push(Token {
            tok,
            line: tl,
            col: tc,
        });
    }
}

const METRIC_WORDS: [&str; 33] = [
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "stddev",
    "stdvar",
    "bottomk",
    "topk",
    "sort",
    "sort_desc",
    "rate",
    "rate_counter",
    "count_over_time",
    "bytes_rate",
    "bytes_over_time",
    "avg_over_time",
    "sum_over_time",
    "min_over_time",
    "max_over_time",
    "stdvar_over_time",
    "stddev_over_time",
    "quantile_over_time",
    "first_over_time",
    "last_over_time",
    "absent_over_time",
    "label_replace",
    "vector",
    "approx_topk",
    "by",
    "without",
    "quantile",
    "variants",
];

struct Parser {
    toks: Vec<Token>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].tok
    }
    fn next(&mut self) -> Token {
        let t = self.toks[self.i.min(self.toks.len() - 1)].clone();
        if self.i < self.toks.len() {
            self.i += 1;
        }
        t
    }
    fn unexpected(t: &Token, expecting: &str) -> QErr {
        QErr::Parse(format!(
            "parse error at line {}, col {}: syntax error: unexpected {}{}",
            t.line,
            t.col,
            tok_desc(&t.tok),
            expecting
        ))
    }
    fn expect_str(&mut self) -> Result<String, QErr> {
        let t = self.next();
        match t.tok {
            Tok::Str(s) => Ok(s),
            _ => Err(Self::unexpected(&t, ", expecting STRING")),
        }
    }
}

/// Parses a LogQL log query (selector + pipeline). Loki's texts for syntax errors.
fn parse_logql(input: &str) -> Result<LogQuery, QErr> {
    if input.trim().is_empty() {
        return Err(QErr::Parse(
            "parse error : syntax error: unexpected $end".into(),
        ));
    }
    let toks = lex_logql(input)?;
    let mut p = Parser { toks, i: 0 };
    let first = p.next();
    match &first.tok {
        Tok::LBrace => {}
        Tok::Ident(w) if METRIC_WORDS.contains(&w.as_str()) => return Err(QErr::Metric),
        Tok::LParen => return Err(QErr::Unsupported("parenthesized expressions".into())),
        _ => return Err(Parser::unexpected(&first, "")),
    }
    let mut matchers = Vec::new();
    loop {
        let t = p.next();
        let Tok::Ident(name) = t.tok else {
            return Err(Parser::unexpected(&t, ", expecting IDENTIFIER"));
        };
        let t = p.next();
        let op = match t.tok {
            Tok::Eq => MatchOp::Eq,
            Tok::Neq => MatchOp::Neq,
            Tok::Re => MatchOp::Re,
            Tok::Nre => MatchOp::Nre,
            _ => return Err(Parser::unexpected(&t, ", expecting = or =~ or !~ or !=")),
        };
        let value = p.expect_str()?;
        matchers.push(Matcher::new(name, op, value)?);
        let t = p.next();
        match t.tok {
            Tok::Comma => continue,
            Tok::RBrace => break,
            _ => return Err(Parser::unexpected(&t, ", expecting } or ,")),
        }
    }
    let mut stages = Vec::new();
    loop {
        let t = p.next();
        match t.tok {
            Tok::Eof => break,
            Tok::PipeExact | Tok::Neq | Tok::PipeMatch | Tok::Nre => {
                let s = p.expect_str()?;
                if matches!(p.peek(), Tok::Ident(w) if w == "or") {
                    return Err(QErr::Unsupported("line filters joined with `or`".into()));
                }
                stages.push(match t.tok {
                    Tok::PipeExact => Stage::LineContains(s),
                    Tok::Neq => Stage::LineNotContains(s),
                    Tok::PipeMatch => Stage::LineRegex(line_regex(&s)?),
                    _ => Stage::LineNotRegex(line_regex(&s)?),
                });
            }
            Tok::Pipe => stages.push(parse_stage(&mut p)?),
            Tok::LBracket => return Err(QErr::Metric),
            _ => return Err(Parser::unexpected(&t, "")),
        }
    }
    if !matchers.iter().any(|m| !m.matches("")) {
        return Err(QErr::Parse(
            "parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will".into(),
        ));
    }
    Ok(LogQuery { matchers, stages })
}

fn line_regex(s: &str) -> Result<Regex, QErr> {
    Regex::new(s).map_err(|e| QErr::Parse(format!("parse error : {e}")))
}

fn parse_stage(p: &mut Parser) -> Result<Stage, QErr> {
    let t = p.next();
    let Tok::Ident(word) = &t.tok else {
        return Err(Parser::unexpected(&t, ""));
    };
    match word.as_str() {
        "json" => {
            let mut params = Vec::new();
            while let Tok::Ident(id) = p.peek().clone() {
                p.next();
                let path_text = if *p.peek() == Tok::Eq {
                    p.next();
                    p.expect_str()?
                } else {
                    id.clone()
                };
                let path = parse_json_path(&path_text).ok_or_else(|| {
                    QErr::Parse(format!(
                        "parse error : cannot parse expression [{path_text}]: syntax error"
                    ))
                })?;
                params.push((id, path));
                if *p.peek() == Tok::Comma {
                    p.next();
                } else {
                    break;
                }
            }
            Ok(if params.is_empty() {
                Stage::JsonAll
            } else {
                Stage::JsonExpr(params)
            })
        }
        "line_format" => {
            let tpl = p.expect_str()?;
            parse_template(&tpl).map(Stage::LineFormat).map_err(|e| match e {
                TplErr::Syntax(msg) => QErr::Parse(format!(
                    "parse error : stage '| line_format {}' : invalid line template: template: {msg}",
                    go_quote(&tpl)
                )),
                TplErr::Unsupported(what) => QErr::Unsupported(format!("line_format action {{{{{what}}}}}")),
            })
        }
        "drop" | "keep" => {
            let mut picks = Vec::new();
            loop {
                let t = p.next();
                let Tok::Ident(name) = t.tok else {
                    return Err(Parser::unexpected(&t, ", expecting IDENTIFIER"));
                };
                let value = match p.peek() {
                    Tok::Eq | Tok::Neq | Tok::Re | Tok::Nre => {
                        let op = match p.next().tok {
                            Tok::Eq => MatchOp::Eq,
                            Tok::Neq => MatchOp::Neq,
                            Tok::Re => MatchOp::Re,
                            _ => MatchOp::Nre,
                        };
                        let v = p.expect_str()?;
                        Some(Matcher::new(name.clone(), op, v)?)
                    }
                    _ => None,
                };
                picks.push(LabelPick { name, value });
                if *p.peek() == Tok::Comma {
                    p.next();
                } else {
                    break;
                }
            }
            Ok(if word == "drop" {
                Stage::Drop(picks)
            } else {
                Stage::Keep(picks)
            })
        }
        "decolorize" => Ok(Stage::Decolorize),
        "logfmt" | "regexp" | "pattern" | "unpack" | "label_format" | "unwrap" => {
            Err(QErr::Unsupported(format!("| {word}")))
        }
        _ => {
            let mut filters = Vec::new();
            let mut name = word.clone();
            loop {
                let t = p.next();
                let op = match t.tok {
                    Tok::Eq => MatchOp::Eq,
                    Tok::Neq => MatchOp::Neq,
                    Tok::Re => MatchOp::Re,
                    Tok::Nre => MatchOp::Nre,
                    Tok::Gt | Tok::Ge | Tok::Lt | Tok::Le | Tok::EqEq => {
                        return Err(QErr::Unsupported("numeric label filters".into()))
                    }
                    _ => return Err(Parser::unexpected(&t, "")),
                };
                let vt = p.next();
                let value = match vt.tok {
                    Tok::Str(s) => s,
                    Tok::Num(_) | Tok::Ident(_) => {
                        return Err(QErr::Unsupported("numeric label filters".into()))
                    }
                    _ => return Err(Parser::unexpected(&vt, "")),
                };
                filters.push(Matcher::new(name.clone(), op, value)?);
                match p.peek().clone() {
                    Tok::Comma => {
                        p.next();
                    }
                    Tok::Ident(w) if w == "and" => {
                        p.next();
                    }
                    Tok::Ident(w) if w == "or" => {
                        return Err(QErr::Unsupported("label filters joined with `or`".into()))
                    }
                    Tok::LParen => {
                        return Err(QErr::Unsupported("parenthesized label filters".into()))
                    }
                    _ => break,
                }
                let t = p.next();
                match t.tok {
                    Tok::Ident(n) => name = n,
                    Tok::LParen => {
                        return Err(QErr::Unsupported("parenthesized label filters".into()))
                    }
                    _ => return Err(Parser::unexpected(&t, "")),
                }
            }
            Ok(Stage::LabelFilter(filters))
        }
    }
}

/// Loki's `jsonexpr`: `a.b.c`, `a["b.c"]`, `a[0]`, `["a"]`.
fn parse_json_path(s: &str) -> Option<Vec<PathSeg>> {
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    // An unquoted key of the characters Loki's lexer allows: a letter or
    // `_`, then letters, digits and `_` (ASCII only). Loki's lexer also
    // skips white space between tokens, which the fake refuses.
    let ident = |i: &mut usize| -> Option<String> {
        let st = *i;
        if !c
            .get(*i)
            .is_some_and(|&ch| ch.is_ascii_alphabetic() || ch == '_')
        {
            return None;
        }
        while *i < c.len() && (c[*i].is_ascii_alphanumeric() || c[*i] == '_') {
            *i += 1;
        }
        Some(c[st..*i].iter().collect())
    };
    if c.first() != Some(&'[') {
        out.push(PathSeg::Key(ident(&mut i)?));
    }
    while i < c.len() {
        match c[i] {
            '.' => {
                i += 1;
                out.push(PathSeg::Key(ident(&mut i)?));
            }
            '[' => {
                i += 1;
                if c.get(i) == Some(&'"') {
                    let mut raw = String::new();
                    i += 1;
                    while i < c.len() && c[i] != '"' {
                        if c[i] == '\\' && i + 1 < c.len() {
                            raw.push(c[i]);
                            i += 1;
                        }
                        raw.push(c[i]);
                        i += 1;
                    }
                    if c.get(i) != Some(&'"') || c.get(i + 1) != Some(&']') {
                        return None;
                    }
                    i += 2;
                    out.push(PathSeg::Key(unquote_go(&raw).ok()?));
                } else {
                    let st = i;
                    while i < c.len() && c[i].is_ascii_digit() {
                        i += 1;
                    }
                    if i == st || c.get(i) != Some(&']') {
                        return None;
                    }
                    let n: String = c[st..i].iter().collect();
                    out.push(PathSeg::Index(n.parse().ok()?));
                    i += 1;
                }
            }
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

#[derive(Clone, Debug)]
enum TplPart {
    Text(String),
    Label(String),
    Line,
}

enum TplErr {
    Syntax(String),
    Unsupported(String),
}

/// The Go-template subset of `line_format`: text, `{{.name}}`, `{{__line__}}`, comments, and
/// `{{-` / `-}}` whitespace trimming.
fn parse_template(s: &str) -> Result<Vec<TplPart>, TplErr> {
    let mut parts = Vec::new();
    let mut rest = s;
    let mut consumed = 0usize;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        // Go trims ASCII spaces, tabs, CRs and LFs only.
        const GO_SPACE: [char; 4] = [' ', '\t', '\r', '\n'];
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start_matches(GO_SPACE);
        }
        let after = &rest[open + 2..];
        let trim_left =
            after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_left {
            text = text.trim_end_matches(GO_SPACE);
        }
        if !text.is_empty() {
            parts.push(TplPart::Text(text.to_string()));
        }
        let Some(close) = after.find("}}") else {
            let line = 1 + s[..consumed + open].matches('\n').count();
            return Err(TplErr::Syntax(format!("line:{line}: unclosed action")));
        };
        let mut inner = &after[..close];
        if trim_left {
            inner = &inner[1..];
        }
        trim_next = inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-");
        if trim_next {
            inner = &inner[..inner.len() - 1];
        }
        let action = inner.trim();
        if action.starts_with("/*") && action.ends_with("*/") {
            // comment
        } else if action == "__line__" {
            parts.push(TplPart::Line);
        } else if let Some(name) = action
            .strip_prefix('.')
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            parts.push(TplPart::Label(name.to_string()));
        } else {
            return Err(TplErr::Unsupported(action.to_string()));
        }
        let advance = open + 2 + close + 2;
        consumed += advance;
        rest = &rest[advance..];
    }
    let text = if trim_next {
        rest.trim_start_matches([' ', '\t', '\r', '\n'])
    } else {
        rest
    };
    if !text.is_empty() {
        parts.push(TplPart::Text(text.to_string()));
    }
    Ok(parts)
}

// ---------------------------------------------------------------------------------------------
// Pipeline
// ---------------------------------------------------------------------------------------------

/// Where a label of a log entry comes from (what `categorize-labels` separates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cat {
    Index,
    Meta,
    Parsed,
}

struct Processed {
    line: String,
    /// One entry per name, in the category that shows it (Loki's `LabelsBuilder`): a parsed label
    /// hides a metadata or index label of its name, a metadata label an index label.
    labels: BTreeMap<String, (String, Cat)>,
}

fn run_pipeline(
    q: &LogQuery,
    stream: &Labels,
    sm: &[(String, String)],
    line: &str,
    _ts: i64,
) -> Option<Processed> {
    let mut labels: BTreeMap<String, (String, Cat)> = BTreeMap::new();
    for (k, v) in stream {
        labels.insert(k.clone(), (v.clone(), Cat::Index));
    }
    // Loki's `LabelsBuilder.Add`: metadata named like an index label is renamed, a later one of
    // the same final name replaces the earlier, and it hides an index label of that name.
    for (k, v) in sm {
        labels.insert(extracted_name(stream, k), (v.clone(), Cat::Meta));
    }
    let mut line = line.to_string();
    for st in &q.stages {
        match st {
            Stage::LineContains(s) => {
                if !line.contains(s.as_str()) {
                    return None;
                }
            }
            Stage::LineNotContains(s) => {
                if line.contains(s.as_str()) {
                    return None;
                }
            }
            Stage::LineRegex(re) => {
                if !re.is_match(&line) {
                    return None;
                }
            }
            Stage::LineNotRegex(re) => {
                if re.is_match(&line) {
                    return None;
                }
            }
            Stage::JsonAll => json_all(&line, stream, &mut labels),
            Stage::JsonExpr(params) => json_expr(&line, params, stream, &mut labels),
            Stage::LineFormat(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        TplPart::Text(t) => out.push_str(t),
                        TplPart::Line => out.push_str(&line),
                        TplPart::Label(n) => {
                            if let Some((v, _)) = labels.get(n) {
                                out.push_str(v);
                            }
                        }
                    }
                }
                line = out;
            }
            Stage::LabelFilter(ms) => {
                let ok = ms
                    .iter()
                    .all(|m| m.matches(labels.get(&m.name).map(|(v, _)| v.as_str()).unwrap_or("")));
                if !ok {
                    return None;
                }
            }
            Stage::Drop(picks) => labels.retain(|k, (v, _)| !picks.iter().any(|p| p.applies(k, v))),
            Stage::Keep(picks) => labels.retain(|k, (v, _)| picks.iter().any(|p| p.applies(k, v))),
            Stage::Decolorize => line = strip_ansi(&line),
        }
    }
    Some(Processed { line, labels })
}

fn set_parsed(labels: &mut BTreeMap<String, (String, Cat)>, k: String, v: String) {
    labels.insert(k, (v, Cat::Parsed));
}

fn set_json_error(labels: &mut BTreeMap<String, (String, Cat)>, details: Option<&str>) {
    set_parsed(labels, "__error__".into(), "JSONParserErr".into());
    if let Some(d) = details {
        set_parsed(labels, "__error_details__".into(), d.to_string());
    }
}

/// `sanitizeLabelKey(key, true)`.
fn sanitize_key(key: &str) -> String {
    let key = key.trim();
    let mut out = String::new();
    if key.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(key.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    out
}

/// `appendSanitized` for a nested key (no digit prefix).
fn sanitize_segment(key: &str) -> String {
    key.trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn json_all(line: &str, stream: &Labels, labels: &mut BTreeMap<String, (String, Cat)>) {
    let doc = match parse_json(line.as_bytes()) {
        Ok((d @ JVal::Obj(..), _)) => d,
        Ok(_) => {
            return set_json_error(
                labels,
                Some("Value looks like object, but can't find closing '}' symbol"),
            );
        }
        Err(e) => {
            let details = if line.trim_start().starts_with('{') {
                e.jsonparser_text()
            } else {
                "Value looks like object, but can't find closing '}' symbol"
            };
            return set_json_error(labels, Some(details));
        }
    };
    fn walk(
        fields: &[(String, JVal)],
        prefix: &str,
        stream: &Labels,
        labels: &mut BTreeMap<String, (String, Cat)>,
    ) {
        for (k, v) in fields {
            let key = if prefix.is_empty() {
                sanitize_key(k)
            } else {
                format!("{prefix}_{}", sanitize_segment(k))
            };
            match v {
                JVal::Obj(inner, _) => walk(inner, &key, stream, labels),
                JVal::Str(s) => {
                    let value = if s.contains('\u{FFFD}') {
                        String::new()
                    } else {
                        s.clone()
                    };
                    put_parsed(labels, stream, key, value);
                }
                JVal::Num(n) => put_parsed(labels, stream, key, n.clone()),
                JVal::Bool(b) => put_parsed(labels, stream, key, b.to_string()),
                JVal::Arr(..) | JVal::Null => {}
            }
        }
    }
    if let JVal::Obj(fields, _) = &doc {
        walk(fields, "", stream, labels);
    }
}

/// The name a parsed or structured-metadata label `name` gets in a stream: `<name>_extracted`
/// when the stream has an index label of that name (Loki's `duplicateSuffix`).
fn extracted_name(stream: &Labels, name: &str) -> String {
    if stream.iter().any(|(k, _)| k == name) {
        format!("{name}_extracted")
    } else {
        name.to_string()
    }
}

fn put_parsed(
    labels: &mut BTreeMap<String, (String, Cat)>,
    stream: &Labels,
    key: String,
    value: String,
) {
    if key.is_empty() {
        return;
    }
    set_parsed(labels, extracted_name(stream, &key), value);
}

/// `| json name="path", ...` (Loki's `JSONExpressionParser`). Paths made of keys are found by
/// [`scan_json_paths`], Loki's lenient reader; paths with an `[n]` index are read with the strict
/// [`parse_json`] (last duplicate key wins, nothing from a malformed line).
fn json_expr(
    line: &str,
    params: &[(String, Vec<PathSeg>)],
    stream: &Labels,
    labels: &mut BTreeMap<String, (String, Cat)>,
) {
    if line.is_empty() {
        return;
    }
    // Loki looks at the first byte only (no whitespace skipping) and then sets no label at all.
    if !line.starts_with(['"', '{', '[']) {
        return set_json_error(labels, None);
    }
    let mut key_ids = Vec::new();
    let mut key_paths = Vec::new();
    let mut index_params = Vec::new();
    for (id, path) in params {
        match key_path(path) {
            Some(keys) => {
                key_ids.push(id);
                key_paths.push(keys);
            }
            None => index_params.push((id, path)),
        }
    }
    let mut found = 0;
    if !key_paths.is_empty() {
        scan_json_paths(line.as_bytes(), &key_paths, |event| match event {
            JsonScanEvent::Found(p, kind, raw) => {
                put_parsed(
                    labels,
                    stream,
                    key_ids[p].clone(),
                    json_label_value(kind, raw),
                );
                found += 1;
            }
            JsonScanEvent::Error(details) => set_json_error(labels, Some(details)),
        });
    }
    if !index_params.is_empty() {
        match parse_json(line.as_bytes()) {
            Ok((doc, _)) => {
                for (id, path) in index_params {
                    if let Some(value) = strict_json_value(line, &doc, path) {
                        put_parsed(labels, stream, id.clone(), value);
                        found += 1;
                    }
                }
            }
            Err(_) => set_json_error(labels, None),
        }
    }
    // Every parameter gets a label, unless one of its name exists already (in any category).
    if found < params.len() {
        for (id, _) in params {
            if !labels.contains_key(id) {
                set_parsed(labels, id.clone(), String::new());
            }
        }
    }
}

/// The keys of a path made only of keys (`a.b`, `a["b.c"]`); `None` when it has an `[n]` index.
fn key_path(path: &[PathSeg]) -> Option<Vec<&[u8]>> {
    path.iter()
        .map(|seg| match seg {
            PathSeg::Key(k) => Some(k.as_bytes()),
            PathSeg::Index(_) => None,
        })
        .collect()
}

/// The strict reader's value at `path` of `doc` (read from `line`): the last of duplicate keys,
/// strings as decoded, objects and arrays as their raw text.
fn strict_json_value(line: &str, doc: &JVal, path: &[PathSeg]) -> Option<String> {
    let mut cur = doc;
    for seg in path {
        cur = match (cur, seg) {
            (JVal::Obj(fields, _), PathSeg::Key(k)) => fields
                .iter()
                .rev()
                .find(|(fk, _)| fk == k)
                .map(|(_, v)| v)?,
            (JVal::Arr(items, _), PathSeg::Index(n)) => items.get(*n)?,
            _ => return None,
        };
    }
    Some(match cur {
        JVal::Str(s) => s.clone(),
        JVal::Null => String::new(),
        JVal::Num(n) => n.clone(),
        JVal::Bool(b) => b.to_string(),
        JVal::Obj(_, (a, b)) | JVal::Arr(_, (a, b)) => line[*a..*b].to_string(),
    })
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The `| json name="path"` reader for key-only paths: jsonparser's `EachKey`, `Get` and
// `Unescape` as Loki's `JSONExpressionParser` calls them (modelled on their source).
// ---------------------------------------------------------------------------------------------

// jsonparser's error texts (what Loki puts in `__error_details__`).
const JSON_MALFORMED: &str = "Malformed JSON error";
const JSON_UNCLOSED_STRING: &str = "Value is string, but can't find closing '\"' symbol";
const JSON_UNCLOSED_ARRAY: &str = "Value is array, but can't find closing ']' symbol";
const JSON_UNCLOSED_OBJECT: &str = "Value looks like object, but can't find closing '}' symbol";
const JSON_UNKNOWN_VALUE: &str = "Unknown value type";

/// jsonparser's value types, which decide how a found value becomes a label.
#[derive(Clone, Copy, Debug)]
enum JsonKind {
    String,
    Number,
    Boolean,
    Null,
    Array,
    Object,
}

/// What [`scan_json_paths`] reports, in document order.
enum JsonScanEvent<'a> {
    /// Path `.0` was found first here: its kind and raw bytes (a string without its quotes and
    /// still escaped, an array or object with its brackets, a token as written).
    Found(usize, JsonKind, &'a [u8]),
    /// A path's value could not be read (the path counts as done), or the line is malformed in a
    /// way that ends the scan (a key outside any object, an array below level 0).
    Error(&'static str),
}

/// Loki's whitespace for JSON: space, `\n`, `\r`, `\t`.
fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// Finds the first occurrence of every key path in `line` with jsonparser's lenient byte scan
/// (`EachKey`) and reports each found value, or error, to `report`.
///
/// The scan tracks the object depth and the last key seen at each depth up to the longest path;
/// a key matches a path of its depth whose keys equal those last keys. It checks no commas or
/// colons, never looks inside arrays, takes the first of duplicate keys (even across duplicate
/// parent objects), and stops once every path is found, at the end of the line, or silently
/// where the line is cut inside a string or an array or right after a string, or a key has a bad
/// escape; a key outside any object is an error.
fn scan_json_paths<'a>(
    line: &'a [u8],
    paths: &[Vec<&[u8]>],
    mut report: impl FnMut(JsonScanEvent<'a>),
) {
    let longest = paths.iter().map(Vec::len).max().unwrap_or(0);
    let mut seen: Vec<Vec<u8>> = vec![Vec::new(); longest];
    let mut done = vec![false; paths.len()];
    let mut remaining = paths.len();
    let mut level: i64 = 0;
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b'"' => {
                let Some(len) = json_string_len(&line[i + 1..]) else {
                    return;
                };
                let text = &line[i + 1..i + 1 + len];
                let Some(next) = (i + 2 + len..line.len()).find(|&j| !is_json_space(line[j]))
                else {
                    return;
                };
                if line[next] != b':' {
                    // A value string: go on at the byte after it.
                    i = next;
                    continue;
                }
                let key = if text.contains(&b'\\') {
                    match json_unescape(text) {
                        Some(key) => key,
                        None => return,
                    }
                } else {
                    text.to_vec()
                };
                if level <= longest as i64 {
                    if level < 1 {
                        return report(JsonScanEvent::Error(JSON_MALFORMED));
                    }
                    let depth = level as usize;
                    seen[depth - 1] = key;
                    for (p, path) in paths.iter().enumerate() {
                        let matches = !done[p]
                            && path.len() == depth
                            && path
                                .iter()
                                .zip(&seen)
                                .all(|(want, got)| *want == got.as_slice());
                        if !matches {
                            continue;
                        }
                        done[p] = true;
                        remaining -= 1;
                        report(match json_value_at(&line[next + 1..]) {
                            Ok((kind, raw)) => JsonScanEvent::Found(p, kind, raw),
                            Err(details) => JsonScanEvent::Error(details),
                        });
                        if remaining == 0 {
                            return;
                        }
                    }
                }
                // Go on right after the colon: into the value, whatever it is.
                i = next + 1;
            }
            b'{' => {
                level += 1;
                i += 1;
            }
            b'}' | b']' => {
                level -= 1;
                i += 1;
            }
            b'[' => {
                if level < 0 {
                    return report(JsonScanEvent::Error(JSON_MALFORMED));
                }
                match json_block_len(&line[i..], b'[', b']') {
                    Some(len) => i += len,
                    None => return,
                }
            }
            _ => i += 1,
        }
    }
}

/// jsonparser's `Get` without keys: the value at the start of `data` (after whitespace).
fn json_value_at(data: &[u8]) -> Result<(JsonKind, &[u8]), &'static str> {
    let start = data
        .iter()
        .position(|&b| !is_json_space(b))
        .ok_or(JSON_MALFORMED)?;
    let value = &data[start..];
    match value[0] {
        b'"' => json_string_len(&value[1..])
            .map(|len| (JsonKind::String, &value[1..1 + len]))
            .ok_or(JSON_UNCLOSED_STRING),
        b'[' => json_block_len(value, b'[', b']')
            .map(|len| (JsonKind::Array, &value[..len]))
            .ok_or(JSON_UNCLOSED_ARRAY),
        b'{' => json_block_len(value, b'{', b'}')
            .map(|len| (JsonKind::Object, &value[..len]))
            .ok_or(JSON_UNCLOSED_OBJECT),
        first => {
            let end = value
                .iter()
                .position(|&b| is_json_space(b) || matches!(b, b',' | b'}' | b']'))
                .unwrap_or(value.len());
            let token = &value[..end];
            let kind = match first {
                b't' | b'f' if token == b"true" || token == b"false" => JsonKind::Boolean,
                b'n' | b'u' if token == b"null" => JsonKind::Null,
                // Whatever follows the first byte: `12abc` and `-` are numbers too.
                b'0'..=b'9' | b'-' => JsonKind::Number,
                _ => return Err(JSON_UNKNOWN_VALUE),
            };
            Ok((kind, token))
        }
    }
}

/// The length of a string's text given the bytes after its opening quote: up to the first `"`
/// not preceded by an odd number of backslashes; `None` without one.
fn json_string_len(text: &[u8]) -> Option<usize> {
    let mut backslashes = 0;
    for (i, &b) in text.iter().enumerate() {
        match b {
            b'"' if backslashes % 2 == 0 => return Some(i),
            b'\\' => backslashes += 1,
            _ => backslashes = 0,
        }
    }
    None
}

/// The length of the block that `data` starts with (its `open` byte) up to and including the
/// matching `close`, counting only that kind of bracket and skipping strings; `None` without an
/// end (also for a string without an end).
fn json_block_len(data: &[u8], open: u8, close: u8) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'"' => i += 1 + json_string_len(&data[i + 1..])?,
            b if b == open => depth += 1,
            b if b == close => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// A found value as Loki sets it as a label: null is empty, an object is its raw text, anything
/// else is unescaped (`unescapeJSONString`): a malformed escape makes the whole value empty, and
/// U+FFFD and bytes that are not UTF-8 become spaces.
fn json_label_value(kind: JsonKind, raw: &[u8]) -> String {
    match kind {
        JsonKind::Null => String::new(),
        JsonKind::Object => String::from_utf8_lossy(raw).into_owned(),
        JsonKind::String | JsonKind::Number | JsonKind::Boolean | JsonKind::Array => {
            let Some(bytes) = json_unescape(raw) else {
                return String::new();
            };
            let mut out = String::with_capacity(bytes.len());
            for chunk in bytes.utf8_chunks() {
                out.extend(
                    chunk
                        .valid()
                        .chars()
                        .map(|c| if c == '\u{FFFD}' { ' ' } else { c }),
                );
                out.extend(std::iter::repeat_n(' ', chunk.invalid().len()));
            }
            out
        }
    }
}

/// jsonparser's `Unescape`: the JSON escapes decoded to UTF-8; `None` for any other escape
/// letter, a backslash at the end or a malformed `\u` escape.
fn json_unescape(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        let byte = match *raw.get(i + 1)? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let (c, len) = json_unicode_escape(&raw[i..])?;
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                i += len;
                continue;
            }
            _ => return None,
        };
        out.push(byte);
        i += 2;
    }
    Some(out)
}

/// A `\uXXXX` escape at the start of `esc`, and how many bytes it takes. A UTF-16 surrogate
/// takes a second value from bytes 8..12 (bytes 6 and 7 are not checked to be `\u`) that must be
/// at least DC00; a pair beyond U+10FFFF is U+FFFD.
fn json_unicode_escape(esc: &[u8]) -> Option<(char, usize)> {
    let hex4 = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |acc, &d| {
            char::from(d).to_digit(16).map(|v| (acc << 4) | v)
        })
    };
    let first = hex4(esc.get(2..6)?)?;
    if !(0xD800..=0xDFFF).contains(&first) {
        return Some((char::from_u32(first)?, 6));
    }
    let second = hex4(esc.get(8..12)?)?;
    if second < 0xDC00 {
        return None;
    }
    let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
    Some((char::from_u32(code).unwrap_or('\u{FFFD}'), 12))
}

// ---------------------------------------------------------------------------------------------
// Regex: a small RE2-compatible subset, compiled to an NFA and run as a Pike VM (linear time).
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Regex {
    prog: Vec<Inst>,
}

#[derive(Clone, Debug)]
enum Inst {
    Char { class: CharClass, fold: bool },
    Any { dot_nl: bool },
    Split(usize, usize),
    Jmp(usize),
    Look(Look),
    Match,
}

#[derive(Clone, Debug, Default)]
struct CharClass {
    ranges: Vec<(char, char)>,
    negated: bool,
}

impl CharClass {
    fn single(c: char) -> CharClass {
        CharClass {
            ranges: vec![(c, c)],
            negated: false,
        }
    }
    fn contains_raw(&self, c: char) -> bool {
        self.ranges.iter().any(|(a, b)| *a <= c && c <= *b) != self.negated
    }
    fn matches(&self, c: char, fold: bool) -> bool {
        if self.contains_raw(c) {
            return true;
        }
        if fold {
            let lower = c.to_lowercase().next().unwrap_or(c);
            let upper = c.to_uppercase().next().unwrap_or(c);
            return (lower != c && self.contains_raw(lower))
                || (upper != c && self.contains_raw(upper));
        }
        false
    }
}

#[derive(Clone, Copy, Debug)]
enum Look {
    BeginText,
    EndText,
    BeginLine,
    EndLine,
    WordBoundary,
    NotWordBoundary,
}

#[derive(Clone, Debug)]
enum Ast {
    Empty,
    Class(CharClass, bool),
    Any(bool),
    Look(Look),
    Concat(Vec<Ast>),
    Alt(Vec<Ast>),
    Repeat(Box<Ast>, u32, Option<u32>),
}

#[derive(Clone, Copy)]
struct ReFlags {
    fold: bool,
    dot_nl: bool,
    multi_line: bool,
}

struct ReParser<'a> {
    src: &'a str,
    c: Vec<char>,
    i: usize,
    flags: ReFlags,
}

fn re_err(kind: &str, arg: &str) -> String {
    format!("error parsing regexp: {kind}: `{arg}`")
}

fn perl_class(c: char) -> Option<CharClass> {
    let (ranges, negated) = match c {
        'd' => (vec![('0', '9')], false),
        'D' => (vec![('0', '9')], true),
        's' => (vec![('\t', '\n'), ('\x0c', '\r'), (' ', ' ')], false),
        'S' => (vec![('\t', '\n'), ('\x0c', '\r'), (' ', ' ')], true),
        'w' => (vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')], false),
        'W' => (vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')], true),
        _ => return None,
    };
    Some(CharClass { ranges, negated })
}

fn negate_ranges(mut ranges: Vec<(char, char)>) -> Vec<(char, char)> {
    ranges.sort();
    let mut out = Vec::new();
    let mut next: u32 = 0;
    for (a, b) in ranges {
        if (a as u32) > next {
            push_u32_range(&mut out, next, a as u32 - 1);
        }
        next = next.max(b as u32 + 1);
    }
    if next <= 0x10FFFF {
        push_u32_range(&mut out, next, 0x10FFFF);
    }
    out
}

/// Adds the valid `char`s of [lo, hi] (surrogates excluded).
fn push_u32_range(out: &mut Vec<(char, char)>, lo: u32, hi: u32) {
    for (a, b) in [(lo, hi.min(0xD7FF)), (lo.max(0xE000), hi)] {
        if a <= b {
            if let (Some(x), Some(y)) = (char::from_u32(a), char::from_u32(b)) {
                out.push((x, y));
            }
        }
    }
}

impl<'a> ReParser<'a> {
    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }

    fn parse_alt(&mut self, depth: usize) -> Result<Ast, String> {
        if depth > 1000 {
            return Err(re_err("expression nests too deeply", self.src));
        }
        let mut alts = vec![self.parse_concat(depth)?];
        while self.peek() == Some('|') {
            self.i += 1;
            alts.push(self.parse_concat(depth)?);
        }
        Ok(if alts.len() == 1 {
            alts.pop().expect("one")
        } else {
            Ast::Alt(alts)
        })
    }

    fn parse_concat(&mut self, depth: usize) -> Result<Ast, String> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom_start = self.i;
            let Some(atom) = self.parse_atom(depth)? else {
                continue;
            };
            let atom = self.parse_repeat(atom, atom_start)?;
            items.push(atom);
        }
        Ok(match items.len() {
            0 => Ast::Empty,
            1 => items.pop().expect("one"),
            _ => Ast::Concat(items),
        })
    }

    /// Parses `{n}`, `{n,}`, `{n,m}` at the current position; None (position unchanged) if the
    /// text is not a repeat (then `{` is a literal, as in RE2).
    fn try_counted(&mut self) -> Option<(u32, Option<u32>, String)> {
        let start = self.i;
        let mut j = self.i + 1;
        let num = |j: &mut usize, c: &[char]| -> Option<u32> {
            let st = *j;
            while *j < c.len() && c[*j].is_ascii_digit() {
                *j += 1;
            }
            if *j == st {
                return None;
            }
            c[st..*j]
                .iter()
                .collect::<String>()
                .parse()
                .ok()
                .or(Some(u32::MAX))
        };
        let min = num(&mut j, &self.c)?;
        let max = if self.c.get(j) == Some(&',') {
            j += 1;
            if self.c.get(j) == Some(&'}') {
                None
            } else {
                Some(num(&mut j, &self.c)?)
            }
        } else {
            Some(min)
        };
        if self.c.get(j) != Some(&'}') {
            return None;
        }
        self.i = j + 1;
        Some((min, max, self.c[start..self.i].iter().collect()))
    }

    fn parse_repeat(&mut self, mut atom: Ast, _atom_start: usize) -> Result<Ast, String> {
        let mut first_op: Option<usize> = None;
        loop {
            let op_start = self.i;
            let (min, max) = match self.peek() {
                Some('*') => {
                    self.i += 1;
                    (0, None)
                }
                Some('+') => {
                    self.i += 1;
                    (1, None)
                }
                Some('?') => {
                    self.i += 1;
                    (0, Some(1))
                }
                Some('{') => match self.try_counted() {
                    Some((min, max, text)) => {
                        if min > 1000 || max.is_some_and(|m| m > 1000 || m < min) {
                            return Err(re_err("invalid repeat count", &text));
                        }
                        (min, max)
                    }
                    None => return Ok(atom),
                },
                _ => return Ok(atom),
            };
            if self.peek() == Some('?') {
                self.i += 1; // lazy: same set of matches
            }
            if let Some(first) = first_op {
                let text: String = self.c[first..self.i].iter().collect();
                return Err(re_err("invalid nested repetition operator", &text));
            }
            first_op = Some(op_start);
            atom = Ast::Repeat(Box::new(atom), min, max);
        }
    }

    fn parse_atom(&mut self, depth: usize) -> Result<Option<Ast>, String> {
        let c = self.peek().expect("caller checked");
        self.i += 1;
        let f = self.flags;
        Ok(Some(match c {
            '(' => {
                let saved = self.flags;
                if self.peek() == Some('?') {
                    self.i += 1;
                    if self.peek() == Some('P') || self.peek() == Some('<') {
                        if self.peek() == Some('P') {
                            self.i += 1;
                        }
                        if self.peek() != Some('<') {
                            return Err(re_err("invalid or unsupported Perl syntax", "(?P"));
                        }
                        while let Some(ch) = self.peek() {
                            self.i += 1;
                            if ch == '>' {
                                break;
                            }
                        }
                    } else {
                        let mut neg = false;
                        let mut flags = self.flags;
                        loop {
                            match self.peek() {
                                Some('i') => flags.fold = !neg,
                                Some('s') => flags.dot_nl = !neg,
                                Some('m') => flags.multi_line = !neg,
                                Some('U') => {}
                                Some('-') => neg = true,
                                Some(':') => {
                                    self.i += 1;
                                    self.flags = flags;
                                    break;
                                }
                                Some(')') => {
                                    self.i += 1;
                                    self.flags = flags;
                                    return Ok(None);
                                }
                                _ => {
                                    let end = (self.i + 1).min(self.c.len());
                                    let text: String = self.c[..end].iter().collect();
                                    let at = text.rfind("(?").unwrap_or(0);
                                    return Err(re_err(
                                        "invalid or unsupported Perl syntax",
                                        &text[at..],
                                    ));
                                }
                            }
                            self.i += 1;
                        }
                    }
                }
                let inner = self.parse_alt(depth + 1)?;
                if self.peek() != Some(')') {
                    return Err(re_err("missing closing )", self.src));
                }
                self.i += 1;
                self.flags = saved;
                inner
            }
            ')' => return Err(re_err("unexpected )", self.src)),
            '[' => self.parse_class()?,
            '.' => Ast::Any(f.dot_nl),
            '^' => Ast::Look(if f.multi_line {
                Look::BeginLine
            } else {
                Look::BeginText
            }),
            '$' => Ast::Look(if f.multi_line {
                Look::EndLine
            } else {
                Look::EndText
            }),
            '*' | '+' | '?' => {
                return Err(re_err(
                    "missing argument to repetition operator",
                    &c.to_string(),
                ))
            }
            '{' => {
                self.i -= 1;
                if let Some((_, _, text)) = self.try_counted() {
                    return Err(re_err("missing argument to repetition operator", &text));
                }
                self.i += 1;
                Ast::Class(CharClass::single('{'), false)
            }
            '\\' => {
                let Some(e) = self.peek() else {
                    return Err(re_err("trailing backslash at end of expression", ""));
                };
                self.i += 1;
                match e {
                    'A' => Ast::Look(Look::BeginText),
                    'z' => Ast::Look(Look::EndText),
                    'b' => Ast::Look(Look::WordBoundary),
                    'B' => Ast::Look(Look::NotWordBoundary),
                    _ => {
                        if let Some(cls) = perl_class(e) {
                            Ast::Class(cls, false)
                        } else {
                            Ast::Class(CharClass::single(self.escape_char(e)?), f.fold)
                        }
                    }
                }
            }
            other => Ast::Class(CharClass::single(other), f.fold),
        }))
    }

    /// A single-character escape (after the backslash).
    fn escape_char(&mut self, e: char) -> Result<char, String> {
        Ok(match e {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'f' => '\x0c',
            'v' => '\x0b',
            'a' => '\x07',
            '0'..='7' => {
                let mut v = e.to_digit(8).expect("octal");
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            self.i += 1;
                        }
                        None => break,
                    }
                }
                char::from_u32(v).unwrap_or('\u{FFFD}')
            }
            'x' => {
                let hex: String = if self.peek() == Some('{') {
                    self.i += 1;
                    let st = self.i;
                    while self.peek().is_some_and(|d| d != '}') {
                        self.i += 1;
                    }
                    let h: String = self.c[st..self.i].iter().collect();
                    self.i += 1;
                    h
                } else {
                    let h: String = self.c[self.i..(self.i + 2).min(self.c.len())]
                        .iter()
                        .collect();
                    self.i = (self.i + 2).min(self.c.len());
                    h
                };
                u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| re_err("invalid escape sequence", &format!("\\x{hex}")))?
            }
            c if c.is_ascii_punctuation() => c,
            c => return Err(re_err("invalid escape sequence", &format!("\\{c}"))),
        })
    }

    fn parse_class(&mut self) -> Result<Ast, String> {
        let start = self.i - 1;
        let mut cls = CharClass::default();
        if self.peek() == Some('^') {
            cls.negated = true;
            self.i += 1;
        }
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                let text: String = self.c[start..].iter().collect();
                return Err(re_err("missing closing ]", &text));
            };
            if c == ']' && !first {
                self.i += 1;
                break;
            }
            first = false;
            self.i += 1;
            if c == '[' && self.peek() == Some(':') {
                let rest: String = self.c[self.i..].iter().collect();
                if let Some(end) = rest.find(":]") {
                    let name = &rest[1..end];
                    let ranges: Vec<(char, char)> = match name.trim_start_matches('^') {
                        "alpha" => vec![('A', 'Z'), ('a', 'z')],
                        "digit" => vec![('0', '9')],
                        "alnum" => vec![('0', '9'), ('A', 'Z'), ('a', 'z')],
                        "space" => vec![('\t', '\r'), (' ', ' ')],
                        "upper" => vec![('A', 'Z')],
                        "lower" => vec![('a', 'z')],
                        "punct" => vec![('!', '/'), (':', '@'), ('[', '`'), ('{', '~')],
                        "xdigit" => vec![('0', '9'), ('A', 'F'), ('a', 'f')],
                        "word" => vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')],
                        _ => {
                            return Err(re_err(
                                "invalid character class range",
                                &format!("[:{name}:]"),
                            ))
                        }
                    };
                    let ranges = if name.starts_with('^') {
                        negate_ranges(ranges)
                    } else {
                        ranges
                    };
                    cls.ranges.extend(ranges);
                    self.i += end + 2;
                    continue;
                }
            }
            let lo = if c == '\\' {
                let Some(e) = self.peek() else { continue };
                self.i += 1;
                if let Some(p) = perl_class(e) {
                    let ranges = if p.negated {
                        negate_ranges(p.ranges)
                    } else {
                        p.ranges
                    };
                    cls.ranges.extend(ranges);
                    continue;
                }
                self.escape_char(e)?
            } else {
                c
            };
            if self.peek() == Some('-') && self.c.get(self.i + 1).is_some_and(|n| *n != ']') {
                self.i += 1;
                let h = self.peek().expect("checked");
                self.i += 1;
                let hi = if h == '\\' {
                    let Some(e) = self.peek() else { continue };
                    self.i += 1;
                    self.escape_char(e)?
                } else {
                    h
                };
                if hi < lo {
                    return Err(re_err(
                        "invalid character class range",
                        &format!("{lo}-{hi}"),
                    ));
                }
                cls.ranges.push((lo, hi));
            } else {
                cls.ranges.push((lo, lo));
            }
        }
        Ok(Ast::Class(cls, self.flags.fold))
    }
}

impl Regex {
    /// Search semantics (`|~`, `!~` line filters).
    fn new(src: &str) -> Result<Regex, String> {
        Self::compile(src, false)
    }
    /// Fully anchored (label matchers: `^(?:re)$`).
    fn new_anchored(src: &str) -> Result<Regex, String> {
        Self::compile(src, true)
    }

    fn compile(src: &str, anchored: bool) -> Result<Regex, String> {
        let mut p = ReParser {
            src,
            c: src.chars().collect(),
            i: 0,
            flags: ReFlags {
                fold: false,
                dot_nl: false,
                multi_line: false,
            },
        };
        let mut ast = p.parse_alt(0)?;
        if p.i < p.c.len() {
            return Err(re_err("unexpected )", src));
        }
        if anchored {
            ast = Ast::Concat(vec![
                Ast::Look(Look::BeginText),
                ast,
                Ast::Look(Look::EndText),
            ]);
        }
        let mut prog = Vec::new();
        emit(&ast, &mut prog);
        prog.push(Inst::Match);
        if prog.len() > 200_000 {
            return Err(re_err("expression too large", src));
        }
        Ok(Regex { prog })
    }

    fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let n = self.prog.len();
        let mut clist: Vec<usize> = Vec::new();
        let mut nlist: Vec<usize> = Vec::new();
        let mut on = vec![usize::MAX; n];
        let mut stack = Vec::new();
        for pos in 0..=chars.len() {
            // Unanchored search: a new thread starts at every position.
            if self.add(&mut clist, &mut on, &mut stack, 0, pos, &chars) {
                return true;
            }
            if pos == chars.len() {
                break;
            }
            let c = chars[pos];
            let stamp = pos + 1;
            for &pc in &clist {
                let advance = match &self.prog[pc] {
                    Inst::Char { class, fold } => class.matches(c, *fold),
                    Inst::Any { dot_nl } => *dot_nl || c != '\n',
                    _ => false,
                };
                if advance && self.add_at(&mut nlist, &mut on, &mut stack, pc + 1, stamp, &chars) {
                    return true;
                }
            }
            std::mem::swap(&mut clist, &mut nlist);
            nlist.clear();
        }
        false
    }

    fn add(
        &self,
        list: &mut Vec<usize>,
        on: &mut [usize],
        stack: &mut Vec<usize>,
        pc: usize,
        pos: usize,
        chars: &[char],
    ) -> bool {
        self.add_at(list, on, stack, pc, pos, chars)
    }

    /// Adds `pc` and its epsilon closure at position `pos` (marks use `pos` as the stamp).
    fn add_at(
        &self,
        list: &mut Vec<usize>,
        on: &mut [usize],
        stack: &mut Vec<usize>,
        pc: usize,
        pos: usize,
        chars: &[char],
    ) -> bool {
        stack.clear();
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            if on[pc] == pos {
                continue;
            }
            on[pc] = pos;
            match &self.prog[pc] {
                Inst::Match => return true,
                Inst::Jmp(x) => stack.push(*x),
                Inst::Split(a, b) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Inst::Look(l) => {
                    if look_ok(*l, pos, chars) {
                        stack.push(pc + 1);
                    }
                }
                Inst::Char { .. } | Inst::Any { .. } => list.push(pc),
            }
        }
        false
    }
}

fn is_word_char(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
}

fn look_ok(l: Look, pos: usize, chars: &[char]) -> bool {
    match l {
        Look::BeginText => pos == 0,
        Look::EndText => pos == chars.len(),
        Look::BeginLine => pos == 0 || chars[pos - 1] == '\n',
        Look::EndLine => pos == chars.len() || chars[pos] == '\n',
        Look::WordBoundary => {
            is_word_char(pos.checked_sub(1).and_then(|p| chars.get(p)))
                != is_word_char(chars.get(pos))
        }
        Look::NotWordBoundary => {
            is_word_char(pos.checked_sub(1).and_then(|p| chars.get(p)))
                == is_word_char(chars.get(pos))
        }
    }
}

fn emit(ast: &Ast, prog: &mut Vec<Inst>) {
    match ast {
        Ast::Empty => {}
        Ast::Class(class, fold) => prog.push(Inst::Char {
            class: class.clone(),
            fold: *fold,
        }),
        Ast::Any(dot_nl) => prog.push(Inst::Any { dot_nl: *dot_nl }),
        Ast::Look(l) => prog.push(Inst::Look(*l)),
        Ast::Concat(items) => items.iter().for_each(|a| emit(a, prog)),
        Ast::Alt(alts) => {
            let mut jumps = Vec::new();
            for (i, a) in alts.iter().enumerate() {
                if i + 1 < alts.len() {
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    emit(a, prog);
                    jumps.push(prog.len());
                    prog.push(Inst::Jmp(0));
                    let next = prog.len();
                    prog[split] = Inst::Split(split + 1, next);
                } else {
                    emit(a, prog);
                }
            }
            let end = prog.len();
            for j in jumps {
                prog[j] = Inst::Jmp(end);
            }
        }
        Ast::Repeat(inner, min, max) => {
            for _ in 0..*min {
                emit(inner, prog);
                if prog.len() > 200_000 {
                    return;
                }
            }
            match max {
                None => {
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    emit(inner, prog);
                    prog.push(Inst::Jmp(split));
                    let end = prog.len();
                    prog[split] = Inst::Split(split + 1, end);
                }
                Some(max) => {
                    let mut splits = Vec::new();
                    for _ in *min..*max {
                        splits.push(prog.len());
                        prog.push(Inst::Split(prog.len() + 1, 0));
                        emit(inner, prog);
                        if prog.len() > 200_000 {
                            return;
                        }
                    }
                    let end = prog.len();
                    for s in splits {
                        prog[s] = Inst::Split(s + 1, end);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A small JSON reader that keeps raw number text and the byte span of objects and arrays.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum JVal {
    Obj(Vec<(String, JVal)>, (usize, usize)),
    Arr(Vec<JVal>, (usize, usize)),
    Str(String),
    Num(String),
    Bool(bool),
    Null,
}

#[derive(Clone, Copy, Debug)]
enum JErrKind {
    Str,
    Obj,
    Arr,
    Value,
    Other,
}

#[derive(Debug)]
struct JErr {
    pos: usize,
    msg: String,
    eof: bool,
    kind: JErrKind,
}

impl JErr {
    /// The closest `buger/jsonparser` error text (what Loki puts in `__error_details__`).
    fn jsonparser_text(&self) -> &'static str {
        match self.kind {
            JErrKind::Str => "Value is string, but can't find closing '\"' symbol",
            JErrKind::Obj => "Value looks like object, but can't find closing '}' symbol",
            JErrKind::Arr => "Value is array, but can't find closing ']' symbol",
            JErrKind::Value => {
                "Value looks like Number/Boolean/None, but can't find its end: ',' or '}' symbol"
            }
            JErrKind::Other => "Malformed JSON error",
        }
    }
}

struct JsonReader<'a> {
    b: &'a [u8],
    i: usize,
}

/// Reads the first JSON value of `b` (trailing bytes are ignored, like jsonparser); returns it
/// and the offset just after it.
fn parse_json(b: &[u8]) -> Result<(JVal, usize), JErr> {
    let mut r = JsonReader { b, i: 0 };
    r.ws();
    let v = r.value(0)?;
    Ok((v, r.i))
}

impl<'a> JsonReader<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn err(&self, kind: JErrKind, msg: &str) -> JErr {
        JErr {
            pos: self.i,
            msg: msg.to_string(),
            eof: self.i >= self.b.len(),
            kind,
        }
    }
    fn value(&mut self, depth: usize) -> Result<JVal, JErr> {
        if depth > 1000 {
            return Err(self.err(JErrKind::Other, "exceeded max depth"));
        }
        match self.b.get(self.i) {
            None => Err(self.err(JErrKind::Other, "unexpected end of JSON input")),
            Some(b'{') => {
                let start = self.i;
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(JVal::Obj(fields, (start, self.i)));
                }
                loop {
                    self.ws();
                    if self.b.get(self.i) != Some(&b'"') {
                        return Err(self.err(JErrKind::Obj, "expect \" after {"));
                    }
                    let k = self.string()?;
                    self.ws();
                    if self.b.get(self.i) != Some(&b':') {
                        return Err(self.err(JErrKind::Obj, "expect : after object field"));
                    }
                    self.i += 1;
                    self.ws();
                    let v = self.value(depth + 1)?;
                    fields.push((k, v));
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(JVal::Obj(fields, (start, self.i)));
                        }
                        _ => {
                            return Err(self.err(JErrKind::Obj, "expect , or } after object field"))
                        }
                    }
                }
            }
            Some(b'[') => {
                let start = self.i;
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(JVal::Arr(items, (start, self.i)));
                }
                loop {
                    self.ws();
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(JVal::Arr(items, (start, self.i)));
                        }
                        _ => {
                            return Err(self.err(JErrKind::Arr, "expect , or ] after array element"))
                        }
                    }
                }
            }
            Some(b'"') => Ok(JVal::Str(self.string()?)),
            Some(b't') | Some(b'f') | Some(b'n') => {
                for (word, v) in [
                    ("true", JVal::Bool(true)),
                    ("false", JVal::Bool(false)),
                    ("null", JVal::Null),
                ] {
                    if self.b[self.i..].starts_with(word.as_bytes()) {
                        self.i += word.len();
                        return Ok(v);
                    }
                }
                Err(self.err(JErrKind::Value, "invalid literal"))
            }
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                if self.b[self.i] == b'-' {
                    self.i += 1;
                }
                let digits = |r: &mut Self| {
                    let s = r.i;
                    while r.i < r.b.len() && r.b[r.i].is_ascii_digit() {
                        r.i += 1;
                    }
                    r.i > s
                };
                if !digits(self) {
                    return Err(self.err(JErrKind::Value, "invalid number"));
                }
                if self.b.get(self.i) == Some(&b'.') {
                    self.i += 1;
                    if !digits(self) {
                        return Err(self.err(JErrKind::Value, "invalid number"));
                    }
                }
                if matches!(self.b.get(self.i), Some(b'e') | Some(b'E')) {
                    self.i += 1;
                    if matches!(self.b.get(self.i), Some(b'+') | Some(b'-')) {
                        self.i += 1;
                    }
                    if !digits(self) {
                        return Err(self.err(JErrKind::Value, "invalid number"));
                    }
                }
                Ok(JVal::Num(
                    String::from_utf8_lossy(&self.b[start..self.i]).into_owned(),
                ))
            }
            Some(_) => Err(self.err(
                JErrKind::Other,
                "invalid character looking for beginning of value",
            )),
        }
    }
    fn hex4(&mut self) -> Option<u32> {
        let h = self.b.get(self.i..self.i + 4)?;
        let v = u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
        self.i += 4;
        Some(v)
    }
    fn string(&mut self) -> Result<String, JErr> {
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return Err(self.err(JErrKind::Str, "unterminated string"));
            };
            self.i += 1;
            match c {
                b'"' => return Ok(go_lossy_utf8(&out)),
                b'\\' => {
                    let Some(&e) = self.b.get(self.i) else {
                        return Err(self.err(JErrKind::Str, "unterminated string"));
                    };
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\x08',
                        b'f' => '\x0c',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let Some(hi) = self.hex4() else {
                                return Err(self.err(JErrKind::Str, "invalid escape"));
                            };
                            if (0xD800..0xDC00).contains(&hi)
                                && self.b[self.i..].starts_with(b"\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                match self.hex4() {
                                    Some(lo) if (0xDC00..0xE000).contains(&lo) => char::from_u32(
                                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00),
                                    )
                                    .unwrap_or('\u{FFFD}'),
                                    _ => {
                                        self.i = save;
                                        '\u{FFFD}'
                                    }
                                }
                            } else {
                                char::from_u32(hi).unwrap_or('\u{FFFD}')
                            }
                        }
                        _ => return Err(self.err(JErrKind::Str, "invalid escape")),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                other => out.push(other),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Go-compatible formatting and parsing
// ---------------------------------------------------------------------------------------------

/// Go's conversion of bytes to a JSON string: each invalid UTF-8 byte becomes one U+FFFD.
fn go_lossy_utf8(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    let mut rest = b;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                out.push_str(std::str::from_utf8(&rest[..valid]).expect("valid prefix"));
                out.push('\u{FFFD}');
                rest = &rest[valid + 1..];
            }
        }
    }
    out
}

fn is_go_printable(c: char) -> bool {
    !(c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(c, '\u{FFFD}' | '\u{200b}'..='\u{200f}' | '\u{feff}'))
        || c == '\u{FFFD}'
}

/// Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if !is_go_printable(c) => {
                if (c as u32) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a rune.
fn go_quote_rune(c: char) -> String {
    match c {
        '\'' => "'\\''".to_string(),
        '"' => "'\"'".to_string(),
        _ => {
            let q = go_quote(&c.to_string());
            format!("'{}'", &q[1..q.len() - 1])
        }
    }
}

/// Decodes the inside of a Go double-quoted string literal.
fn unquote_go(raw: &str) -> Result<String, ()> {
    let c: Vec<char> = raw.chars().collect();
    let mut out: Vec<u8> = Vec::new();
    let mut i = 0;
    let push = |out: &mut Vec<u8>, ch: char| {
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    };
    while i < c.len() {
        if c[i] != '\\' {
            push(&mut out, c[i]);
            i += 1;
            continue;
        }
        let e = *c.get(i + 1).ok_or(())?;
        i += 2;
        let hex = |i: &mut usize, n: usize| -> Result<u32, ()> {
            let s: String = c.get(*i..*i + n).ok_or(())?.iter().collect();
            *i += n;
            u32::from_str_radix(&s, 16).map_err(|_| ())
        };
        match e {
            'a' => out.push(7),
            'b' => out.push(8),
            'f' => out.push(12),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'v' => out.push(11),
            '\\' => out.push(b'\\'),
            '"' => out.push(b'"'),
            'x' => out.push(hex(&mut i, 2)? as u8),
            'u' => push(&mut out, char::from_u32(hex(&mut i, 4)?).ok_or(())?),
            'U' => push(&mut out, char::from_u32(hex(&mut i, 8)?).ok_or(())?),
            '0'..='7' => {
                let s: String = c.get(i - 1..i + 2).ok_or(())?.iter().collect();
                let v = u32::from_str_radix(&s, 8).map_err(|_| ())?;
                if v > 255 {
                    return Err(());
                }
                out.push(v as u8);
                i += 2;
            }
            _ => return Err(()),
        }
    }
    Ok(go_lossy_utf8(&out))
}

/// Writes `s` as a JSON string the way Loki's encoder does (HTML-safe, `\u2028`/`\u2029`).
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\u{FFFD}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Prometheus `Labels.String()`: `{a="b", c="d"}`.
fn labels_string(labels: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(k);
        out.push('=');
        out.push_str(&go_quote(v));
    }
    out.push('}');
    out
}

fn go_parse_int(v: &str, func: &str) -> Result<i64, String> {
    v.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        format!("{func}: parsing {}: {why}", go_quote(v))
    })
}

fn go_atoi(v: &str) -> Result<i64, String> {
    go_parse_int(v, "strconv.Atoi")
}

/// Prometheus `model.ParseDuration` (units y w d h m s ms, in that order), in ns.
fn parse_prom_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("not a valid duration string: {}", go_quote(s));
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(bad());
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3600 * 1000),
        ("w", 7 * 24 * 3600 * 1000),
        ("d", 24 * 3600 * 1000),
        ("h", 3600 * 1000),
        ("m", 60 * 1000),
        ("s", 1000),
        ("ms", 1),
    ];
    let b = s.as_bytes();
    let mut i = 0;
    let mut next_unit = 0;
    let mut total_ms: i64 = 0;
    while i < b.len() {
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == st {
            return Err(bad());
        }
        let n: i64 = s[st..i].parse().map_err(|_| bad())?;
        let us = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[us..i];
        let idx = UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(bad)?;
        if idx < next_unit {
            return Err(bad());
        }
        next_unit = idx + 1;
        total_ms = total_ms
            .checked_add(n.checked_mul(UNITS[idx].1).ok_or_else(bad)?)
            .ok_or_else(bad)?;
    }
    total_ms
        .checked_mul(1_000_000)
        .ok_or_else(|| "duration out of range".to_string())
}

/// Loki's `parseSecondsOrDuration` (float seconds, else a Prometheus duration), in ns.
fn parse_seconds_or_duration(v: &str) -> Result<i64, String> {
    if let Ok(f) = v.parse::<f64>() {
        let ns = f * 1e9;
        if ns > i64::MAX as f64 || ns < i64::MIN as f64 {
            return Err(format!(
                "cannot parse {} to a valid duration. It overflows int64",
                go_quote(v)
            ));
        }
        return Ok(ns as i64);
    }
    parse_prom_duration(v).map_err(|_| format!("cannot parse {} to a valid duration", go_quote(v)))
}

fn frac_string(v: u128, div: u128) -> String {
    let int = v / div;
    let frac = v % div;
    if frac == 0 {
        return int.to_string();
    }
    let width = div.to_string().len() - 1;
    let f = format!("{frac:0width$}");
    format!("{int}.{}", f.trim_end_matches('0'))
}

/// Go's `time.Duration.String()`.
fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs() as u128;
    let body = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", frac_string(u, 1_000))
    } else if u < 1_000_000_000 {
        format!("{}ms", frac_string(u, 1_000_000))
    } else {
        let secs = u / 1_000_000_000;
        let (h, m) = (secs / 3600, (secs / 60) % 60);
        let s = frac_string(
            (secs % 60) * 1_000_000_000 + u % 1_000_000_000,
            1_000_000_000,
        );
        if h > 0 {
            format!("{h}h{m}m{s}s")
        } else if m > 0 {
            format!("{m}m{s}s")
        } else {
            format!("{s}s")
        }
    };
    format!("{sign}{body}")
}

/// Prometheus `model.Duration.String()` (e.g. 721h → `30d1h`).
fn prom_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, mult, exact) in [
        ("y", 365 * 24 * 3600 * 1000u64, true),
        ("w", 7 * 24 * 3600 * 1000, true),
        ("d", 24 * 3600 * 1000, false),
        ("h", 3600 * 1000, false),
        ("m", 60 * 1000, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ] {
        if exact && !ms.is_multiple_of(mult) {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            let _ = write!(out, "{v}{unit}");
            ms -= v * mult;
        }
    }
    out
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn split_ns(ns: i64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let secs = ns.div_euclid(NS_PER_SEC);
    let nanos = ns.rem_euclid(NS_PER_SEC) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, mo, d) = civil_from_days(days);
    (y, mo, d, sod / 3600, (sod / 60) % 60, sod % 60, nanos)
}

/// Go's `t.UTC().Format(time.RFC3339)` (whole seconds).
fn rfc3339_secs(ns: i64) -> String {
    let (y, mo, d, h, mi, s, _) = split_ns(ns);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Go's `time.Time.String()` for a UTC time: `2026-11-25 08:10:00.5 +0000 UTC`.
fn go_time_string(ns: i64) -> String {
    let (y, mo, d, h, mi, s, nanos) = split_ns(ns);
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{}", format!("{nanos:09}").trim_end_matches('0'))
    };
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}{frac} +0000 UTC")
}

/// Go's `time.Parse(time.RFC3339Nano, v)`, in Unix ns.
fn parse_rfc3339(v: &str) -> Option<i64> {
    let b = v.as_bytes();
    let num = |a: usize, n: usize| -> Option<i64> {
        let s = b.get(a..a + n)?;
        if !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || b.get(10) != Some(&b'T') {
        return None;
    }
    let (h, mi, s) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &v[st..i];
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        nanos = format!("{digits:0<9}").parse().ok()?;
    }
    let offset_secs: i64 = match b.get(i) {
        Some(b'Z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo)
        || d < 1
        || d > month_days[(mo - 1) as usize]
        || h > 23
        || mi > 59
        || s > 59
    {
        return None;
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset_secs;
    secs.checked_mul(NS_PER_SEC)?.checked_add(nanos)
}

// ---------------------------------------------------------------------------------------------
// Prometheus label-set text (`{a="b", c="d"}`), as Loki's push parses stream labels
// ---------------------------------------------------------------------------------------------

fn parse_label_set(s: &str) -> Result<Labels, String> {
    let b = s.as_bytes();
    let err = |pos: usize, msg: String| -> String {
        let pos = pos.min(b.len());
        let before = &s[..pos];
        let line = 1 + before.matches('\n').count();
        let col = pos - before.rfind('\n').map_or(0, |p| p + 1) + 1;
        format!("{line}:{col}: parse error: {msg}")
    };
    let is_alpha = |c: u8| c == b'_' || c.is_ascii_alphabetic();
    let ident_end = |mut i: usize| {
        while i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphanumeric()) {
            i += 1;
        }
        i
    };
    let char_at = |i: usize| s[i..].chars().next().unwrap_or('\u{FFFD}');
    let inside_err = |i: usize| {
        err(
            i,
            format!(
                "unexpected character inside braces: {}",
                go_quote_rune(char_at(i))
            ),
        )
    };
    let skip_ws = |mut i: usize| {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i
    };
    let mut labels: Labels = Vec::new();
    let mut i = skip_ws(0);
    if i < b.len() && is_alpha(b[i]) {
        let mut e = i;
        while e < b.len() && (b[e] == b'_' || b[e] == b':' || b[e].is_ascii_alphanumeric()) {
            e += 1;
        }
        labels.push(("__name__".to_string(), s[i..e].to_string()));
        i = skip_ws(e);
        if i >= b.len() {
            return Ok(labels);
        }
    }
    if i >= b.len() {
        return Err(err(i, "unexpected end of input".to_string()));
    }
    if b[i] != b'{' {
        return Err(err(
            i,
            format!("unexpected character: {}", go_quote_rune(char_at(i))),
        ));
    }
    i += 1;
    let read_string = |i: usize| -> Result<(String, usize), String> {
        let q = b[i];
        let mut j = i + 1;
        while j < b.len() && b[j] != q {
            if b[j] == b'\\' && q != b'`' {
                j += 1;
            }
            if q != b'`' && j < b.len() && b[j] == b'\n' {
                break;
            }
            j += 1;
        }
        if j >= b.len() || b[j] != q {
            return Err(err(i, "unterminated quoted string".to_string()));
        }
        let inner = &s[i + 1..j];
        let value = if q == b'`' {
            inner.to_string()
        } else if q == b'\'' {
            unquote_go(&inner.replace("\\'", "'").replace('"', "\\\""))
                .map_err(|_| err(i, "invalid syntax".to_string()))?
        } else {
            unquote_go(inner).map_err(|_| err(i, "invalid syntax".to_string()))?
        };
        Ok((value, j + 1))
    };
    loop {
        i = skip_ws(i);
        if i >= b.len() {
            return Err(err(i, "unexpected end of input inside braces".to_string()));
        }
        if b[i] == b'}' {
            i += 1;
            break;
        }
        if !is_alpha(b[i]) {
            return Err(match b[i] {
                b',' => err(
                    i,
                    "unexpected \",\" in label set, expected identifier or \"}\"".to_string(),
                ),
                b'=' => err(
                    i,
                    "unexpected \"=\" in label set, expected identifier or \"}\"".to_string(),
                ),
                b'"' | b'\'' | b'`' => err(
                    i,
                    "unexpected string in label set, expected identifier or \"}\"".to_string(),
                ),
                _ => inside_err(i),
            });
        }
        let e = ident_end(i);
        let name = s[i..e].to_string();
        i = skip_ws(e);
        if i >= b.len() {
            return Err(err(i, "unexpected end of input inside braces".to_string()));
        }
        match b[i] {
            b'=' if b.get(i + 1) != Some(&b'~') => i += 1,
            b'=' | b'!' if matches!(b.get(i + 1), Some(b'~') | Some(b'=')) => {
                return Err(err(
                    i,
                    format!(
                        "unexpected \"{}\" in label set, expected \"=\"",
                        &s[i..i + 2]
                    ),
                ))
            }
            c if is_alpha(c) => {
                let e = ident_end(i);
                return Err(err(
                    i,
                    format!(
                        "unexpected identifier {} in label set, expected \"=\"",
                        go_quote(&s[i..e])
                    ),
                ));
            }
            b'}' | b',' => {
                return Err(err(
                    i,
                    format!(
                        "unexpected \"{}\" in label set, expected \"=\"",
                        b[i] as char
                    ),
                ))
            }
            _ => return Err(inside_err(i)),
        }
        i = skip_ws(i);
        if i >= b.len() {
            return Err(err(i, "unexpected end of input inside braces".to_string()));
        }
        let value = match b[i] {
            b'"' | b'\'' | b'`' => {
                let (v, next) = read_string(i)?;
                i = next;
                v
            }
            c if is_alpha(c) => {
                let e = ident_end(i);
                return Err(err(
                    i,
                    format!(
                        "unexpected identifier {} in label set, expected string",
                        go_quote(&s[i..e])
                    ),
                ));
            }
            b'}' | b',' => {
                return Err(err(
                    i,
                    format!(
                        "unexpected \"{}\" in label set, expected string",
                        b[i] as char
                    ),
                ))
            }
            _ => return Err(inside_err(i)),
        };
        labels.push((name, value));
        i = skip_ws(i);
        if i >= b.len() {
            return Err(err(i, "unexpected end of input inside braces".to_string()));
        }
        match b[i] {
            b',' => i += 1,
            b'}' => {
                i += 1;
                break;
            }
            c if is_alpha(c) => {
                let e = ident_end(i);
                return Err(err(
                    i,
                    format!(
                        "unexpected identifier {} in label set, expected \",\" or \"}}\"",
                        go_quote(&s[i..e])
                    ),
                ));
            }
            _ => return Err(inside_err(i)),
        }
    }
    i = skip_ws(i);
    if i < b.len() {
        return Err(err(
            i,
            format!("unexpected character: {}", go_quote_rune(char_at(i))),
        ));
    }
    labels.retain(|(_, v)| !v.is_empty());
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(labels)
}
