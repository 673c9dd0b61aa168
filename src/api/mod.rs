//! The front ends: gRPC (tonic) and REST (axum) on one port, as upstream
//! serves them. A request is routed by path: gRPC paths are
//! `/<package>.<Service>/<Method>`, REST paths start with `/apis/` or are
//! `/healthz`; HTTP/1.1 and HTTP/2 (cleartext, prior knowledge) are both
//! accepted.

pub mod grpc;
pub mod http;
mod logs;
pub mod status;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tower::ServiceExt;

pub use logs::{Logs, TextStream};

use crate::backend::LogBackend;
use crate::proto::tekton::results::{v1alpha2, v1alpha3};

/// gRPC service names reported SERVING by the health service.
pub const SERVICES: &[&str] = &[
    "tekton.results.v1alpha3.Logs",
    "tekton.results.v1alpha2.Logs",
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

/// Every route of the service: the Logs gRPC services, gRPC health and
/// reflection, and the REST routes.
pub async fn router(backend: Arc<dyn LogBackend>, chunk_size: usize) -> Router {
    let logs = Logs::new(backend, chunk_size);

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

    let mut router = http::routes(logs.clone());
    router = grpc_route(
        router,
        v1alpha3::logs_server::LogsServer::new(grpc::LogsV1alpha3::new(logs.clone())),
    );
    router = grpc_route(
        router,
        v1alpha2::logs_server::LogsServer::new(grpc::LogsV1alpha2::new(logs)),
    );
    router = grpc_route(router, health_service);
    router = grpc_route(
        router,
        reflection
            .build_v1()
            .expect("embedded descriptors are valid"),
    );
    router = grpc_route(router, reflection_v1alpha);
    router.fallback(http::fallback)
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
/// requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
