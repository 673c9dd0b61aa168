//! Integration tests, one binary (see `Cargo.toml`): each module tests one
//! behaviour through the real `tekton-results-logs` binary or the library's
//! public API.

/// The Tekton Dashboard's external-logs route.
mod dashboard;
/// Fake provider servers.
mod fakes;
/// Starting the real server on an ephemeral loopback port; clients.
mod support;
/// A fresh Results database per test (needs `TEST_DATABASE_URL`).
mod support_db;

/// Kubernetes auth (TokenReview, SubjectAccessReview) against the fake API
/// server.
mod auth_kube;
/// The `LogBackend` contract suite, run against the local store (and, later,
/// every provider's fake).
mod backend_conformance;
/// A slow reader holds the upstream paging back.
mod backpressure;
/// Invalid names, unknown logs, wrong methods: precise errors, never a panic.
mod bad_input;
/// The `get`, `push` and `check` commands.
mod cli;
/// Followers of one run share one upstream tail; a slow one loses nothing.
mod fanout;
/// Faults injected into Loki (5xx bursts, 429 storms, slow, cut or foreign
/// answers, dropped tails) and the Results database (a restart): every client
/// gets every line once, in order, or an explicit error.
mod faults;
/// Upload then read back byte for byte over gRPC (v1alpha2, v1alpha3) and REST.
mod get_log_compat;
/// The product's own gRPC API: records, cursors, filters, follow.
mod grpc_v1;
/// A 100 MB log through gRPC and REST in bounded chunks.
mod large_log;
/// The Loki connector against the fake Loki, and the server on top of it.
mod loki;
/// The Loki plan and the connector plan read the same log.
mod loki_plan;
/// The Prometheus endpoint.
mod metrics;
/// gRPC reflection, health, /healthz.
mod reflection_health;
/// Resume cursors at every record of random logs.
mod resume;
/// Run resolution from the Results database.
mod run_db;
/// TLS to the Results database.
mod run_db_tls;
/// Run resolution from a file of records.
mod run_file;
/// Static-token auth on every route, limits, TLS, the exposure rule, shutdown.
mod security;
/// NDJSON and Server-Sent Events with resume cursors.
mod structured;
/// Uploads: concurrency, broken streams, mismatched names, delete.
mod update_log;
/// The proto layout against upstream's wire bytes.
mod wire_compat;
