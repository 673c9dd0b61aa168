//! The front ends: gRPC (tonic) and REST (axum) on one port, as upstream
//! serves them. A request is routed by path: gRPC paths are
//! `/<package>.<Service>/<Method>`, REST paths start with `/apis/` or are
//! `/healthz`; HTTP/1.1 and HTTP/2 (cleartext, prior knowledge) are both
//! accepted.

pub mod cursor;
pub mod encode;
pub mod grpc;
pub mod http;
mod logs;
mod metered;
pub mod status;

use std::convert::Infallible;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::Version;
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tower::ServiceExt;

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
) -> Router {
    let logs = Logs::new(backend, resolver, settings);

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

/// Serves `router` on `listener` until `shutdown` completes, then lets
/// requests in flight finish for at most `grace` before returning (which
/// closes their connections).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (stopping, mut stopped) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown.await;
        let _ = stopping.send(true);
    };
    // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs stall the
    // small frames of a streaming upload for tens of milliseconds each.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "setting TCP_NODELAY failed");
        }
    });
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(signal)
        .into_future();
    let deadline = async move {
        if stopped.wait_for(|stop| *stop).await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!(
                grace_seconds = grace.as_secs(),
                "requests still running after the shutdown timeout; closing them"
            );
            Ok(())
        }
    }
}
