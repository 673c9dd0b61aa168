//! The front ends: gRPC (tonic) and REST (axum) on one port, as upstream
//! serves them. A request is routed by path: gRPC paths are
//! `/<package>.<Service>/<Method>`, REST paths start with `/apis/` or are
//! `/healthz`; HTTP/1.1 and HTTP/2 (cleartext, prior knowledge) are both
//! accepted.

mod abort;
pub mod cursor;
pub mod encode;
pub mod grpc;
pub mod guard;
pub mod http;
mod logs;
mod metered;
pub mod status;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::Version;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tower::ServiceExt;

pub use guard::Guard;
pub use logs::{Logs, PageStream, ReadOptions, Settings, TextStream, MAX_TAIL};

use crate::backend::LogBackend;
use crate::proto::tekton::results::{v1alpha2, v1alpha3};
use crate::run::RunResolver;

/// gRPC service names reported SERVING by the health service.
pub const SERVICES: &[&str] = &[
    "tekton.results.v1alpha3.Logs",
    "tekton.results.v1alpha2.Logs",
    "tekton.resultslogs.v1.Logs",
];

fn grpc_route<S>(router: Router, service: S) -> Router
where
    S: tower::Service<
            axum::http::Request<Body>,
            Response = axum::http::Response<tonic::body::Body>,
            Error = Infallible,
        > + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let path = format!("/{}/{{*method}}", S::NAME);
    router.route_service(&path, service.map_response(|r| r.map(Body::new)))
}

/// gRPC needs HTTP/2 (its status travels in trailers, which HTTP/1.1
/// responses here do not carry): anything else on a gRPC path is a 404, as
/// upstream answers it.
async fn require_http2(request: Request, next: Next) -> Response {
    if request.version() != Version::HTTP_2 {
        return http::not_found(request.uri().path());
    }
    next.run(request).await
}

/// Every route of the service: the Logs gRPC services, gRPC health and
/// reflection, and the REST routes.
pub async fn router(
    backend: Arc<dyn LogBackend>,
    resolver: Arc<dyn RunResolver>,
    settings: Settings,
    guard: Guard,
) -> Router {
    let logs = Logs::new(backend, resolver, settings).guarded(guard);

    let (health, health_service) = tonic_health::server::health_reporter();
    for name in SERVICES {
        health
            .set_service_status(*name, tonic_health::ServingStatus::Serving)
            .await;
    }
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET);
    let reflection_v1alpha = reflection_builder_v1alpha();

    let mut router = Router::new();
    router = grpc_route(
        router,
        v1alpha3::logs_server::LogsServer::new(grpc::LogsV1alpha3::new(logs.clone())),
    );
    router = grpc_route(
        router,
        v1alpha2::logs_server::LogsServer::new(grpc::LogsV1alpha2::new(logs.clone())),
    );
    router = grpc_route(
        router,
        crate::proto::tekton::resultslogs::v1::logs_server::LogsServer::new(grpc::LogsV1::new(
            logs.clone(),
        )),
    );
    router = grpc_route(router, health_service);
    router = grpc_route(
        router,
        reflection
            .build_v1()
            .expect("embedded descriptors are valid"),
    );
    router = grpc_route(router, reflection_v1alpha);
    http::routes(logs)
        .layer(axum::middleware::from_fn(abort::reset_broken_http10))
        .merge(router.layer(axum::middleware::from_fn(require_http2)))
        .fallback(http::fallback)
}

fn reflection_builder_v1alpha() -> tonic_reflection::server::v1alpha::ServerReflectionServer<
    impl tonic_reflection::server::v1alpha::ServerReflection,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("embedded descriptors are valid")
}

/// The address a request came from: the server loop puts it in each
/// request's extensions (auth without credentials names callers by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// The credentials of a request: its `Authorization` value (HTTP header
/// or gRPC metadata) and the peer the accept loop noted.
fn credentials(authorization: Option<&[u8]>, peer: Option<&Peer>) -> crate::auth::Credentials {
    crate::auth::Credentials::from_authorization(authorization, peer.map(|p| p.0.ip()))
}

/// How [`serve`] treats connections.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// TLS, or `None` for plaintext (HTTP/1.1 and HTTP/2 prior knowledge).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// How long a client has for a TLS handshake and for a request's
    /// headers.
    pub header_timeout: Duration,
    /// How long requests in flight may run on after the shutdown signal.
    pub grace: Duration,
    /// The most connections served at once; more wait to be accepted.
    pub max_connections: usize,
}

/// A connection's byte stream, plaintext or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}

/// Serves `router` on `listener` until `shutdown` completes. Then it stops
/// accepting, tells follows to end (`stopping`), lets the other requests
/// in flight finish for at most `options.grace`, and closes what is left.
/// A connection that brings no request within `options.header_timeout` is
/// closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    stopping: tokio::sync::watch::Sender<bool>,
    options: ServeOptions,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let acceptor = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections));
    loop {
        while connections.try_join_next().is_some() {}
        // At the most connections, wait for one to end before accepting.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before
                    // it was taken: wait a little rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs stall the
        // small frames of a streaming upload for tens of milliseconds each.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "setting TCP_NODELAY failed");
        }
        let abort = abort::Abort::default();
        let tcp = abort::AbortableTcp::new(tcp, abort.clone());
        let started = Arc::new(AtomicBool::new(false));
        let first = started.clone();
        let service = TowerToHyperService::new(router.clone().map_request(
            move |request: Request<hyper::body::Incoming>| {
                first.store(true, Ordering::Relaxed);
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(Peer(peer));
                request.extensions_mut().insert(abort.clone());
                request
            },
        ));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let first_request = options.header_timeout;
        connections.spawn(async move {
            let _permit = permit;
            let io: Box<dyn Io> = match acceptor {
                None => Box::new(tcp),
                Some(acceptor) => {
                    match tokio::time::timeout(first_request, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => Box::new(stream),
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            let connection =
                watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(io), service));
            tokio::pin!(connection);
            // A connection must bring its first request in time (hyper's
            // header timeout starts only once it knows the protocol).
            let ended = tokio::select! {
                result = &mut connection => Some(result),
                () = tokio::time::sleep(first_request) => None,
            };
            let result = match ended {
                Some(result) => result,
                None if started.load(Ordering::Relaxed) => connection.await,
                None => {
                    tracing::debug!(%peer, "no request in time; closing the connection");
                    return;
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // Follows end now, with an error that tells their clients to resume
    // elsewhere; reads of history run on within the grace period.
    let _ = stopping.send(true);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(options.grace) => {
            tracing::warn!(
                grace_seconds = options.grace.as_secs(),
                "requests still running after the shutdown timeout; closing them"
            );
        }
    }
    connections.abort_all();
    Ok(())
}
