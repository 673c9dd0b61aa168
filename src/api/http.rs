//! The REST front end: upstream's log routes under
//! `/apis/results.tekton.dev/{v1alpha2,v1alpha3}/parents/...`, streaming the
//! log as chunked `text/plain`, and `/healthz`.
//!
//! Differences from upstream, on purpose: names are validated (400, not a
//! 500 "not found"), an unknown log is 404, methods other than GET/HEAD (and
//! DELETE on v1alpha2, upstream's DeleteLog mapping) get 405, and a failure
//! after the first byte aborts the response instead of appending error text
//! to a 200 body.
//!
//! Beyond upstream: `?follow=true` keeps the response open while the run has
//! not completed, sending its lines as they arrive, and ends it once the run's
//! record shows its completion (see `logs`). Without a run database nothing
//! says when a run completes: a Loki follow then lasts until the client
//! leaves, and the local store's ends with the stored log.

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, Request, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;

use super::logs::Logs;
use super::status::{ApiError, ErrorCode};
use crate::run::LogName;

const V1ALPHA2_LOG: &str =
    "/apis/results.tekton.dev/v1alpha2/parents/{parent}/results/{result}/logs/{log}";
const V1ALPHA3_LOG: &str =
    "/apis/results.tekton.dev/v1alpha3/parents/{parent}/results/{result}/logs/{log}";

/// The REST routes.
pub fn routes(logs: Logs) -> Router {
    Router::new()
        .route(V1ALPHA3_LOG, get(get_log))
        .route(V1ALPHA2_LOG, get(get_log).delete(delete_log))
        .route("/healthz", get(healthz))
        .with_state(logs)
}

/// The three parts of a log route; a part that is not valid percent-encoded
/// UTF-8 is a 400 like any other bad name.
type LogPath = Result<Path<(String, String, String)>, PathRejection>;

fn log_name(path: LogPath) -> Result<LogName, ApiError> {
    let Path((parent, result, log)) = path.map_err(|rejection| {
        ApiError::new(
            ErrorCode::InvalidArgument,
            format!("invalid log name in the path: {}", rejection.body_text()),
        )
    })?;
    Ok(LogName::from_parts(&parent, &result, &log)?)
}

/// The query parameters of a log read; others are ignored, as upstream's
/// gateway ignores them.
#[derive(Debug, Default, serde::Deserialize)]
struct ReadParams {
    /// `true`: keep the response open and send new lines until the run has
    /// completed.
    follow: Option<String>,
}

fn follow_param(params: ReadQuery) -> Result<bool, ApiError> {
    let Query(params) = params.map_err(|rejection| {
        ApiError::new(
            ErrorCode::InvalidArgument,
            format!("invalid query string: {}", rejection.body_text()),
        )
    })?;
    match params.follow.as_deref() {
        None | Some("false" | "0") => Ok(false),
        Some("" | "true" | "1") => Ok(true),
        Some(other) => Err(ApiError::new(
            ErrorCode::InvalidArgument,
            format!("follow={other:?}: expected true or false"),
        )),
    }
}

type ReadQuery = Result<Query<ReadParams>, QueryRejection>;

async fn get_log(
    State(logs): State<Logs>,
    path: LogPath,
    params: ReadQuery,
) -> Result<Response, ApiError> {
    let name = log_name(path)?;
    let follow = follow_param(params)?;
    let text = logs.text(name.clone(), follow).await?;
    let body = Body::from_stream(text.map(move |chunk| {
        chunk.map_err(|e| {
            // The status line is gone; aborting the chunked body is how the
            // client learns the log is incomplete.
            tracing::warn!(log = %name, error = %e, "aborting a log response");
            std::io::Error::other(e.message)
        })
    }));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

async fn delete_log(State(logs): State<Logs>, path: LogPath) -> Result<Response, ApiError> {
    let name = log_name(path)?;
    logs.delete(&name).await?;
    tracing::info!(log = %name, "log deleted");
    Ok(Json(serde_json::json!({})).into_response())
}

async fn healthz() -> Response {
    let mut response = Response::new(Body::from("{\"status\":\"SERVING\"}\n"));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The answer to a request no route matched: a gRPC `Unimplemented` to a gRPC
/// client, a JSON 404 to anyone else.
pub async fn fallback(request: Request<Body>) -> Response {
    let is_grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if is_grpc && request.version() == Version::HTTP_2 {
        let status = tonic::Status::unimplemented(format!(
            "unknown service or method {}",
            request.uri().path()
        ));
        return status.into_http::<Body>();
    }
    not_found(request.uri().path())
}

/// The JSON 404 for a path nothing serves.
pub fn not_found(path: &str) -> Response {
    ApiError::new(ErrorCode::NotFound, format!("no route for {path}")).into_response()
}
