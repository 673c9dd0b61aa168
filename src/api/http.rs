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
use axum::http::{header, HeaderMap, HeaderValue, Request, Version};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::time::Duration;

use futures::StreamExt;

use super::cursor::CursorWriter;
use super::encode;
use super::logs::{Logs, ReadOptions, MAX_TAIL};
use super::status::{ApiError, ErrorCode};
use crate::auth::Credentials;
use crate::backend::ContainerQuery;
use crate::run::LogName;
use crate::timestamp::parse_rfc3339_ns;

const V1ALPHA2_LOG: &str =
    "/apis/results.tekton.dev/v1alpha2/parents/{parent}/results/{result}/logs/{log}";
const V1ALPHA3_LOG: &str =
    "/apis/results.tekton.dev/v1alpha3/parents/{parent}/results/{result}/logs/{log}";

/// The Tekton Dashboard's external-logs route: point `--external-logs` at
/// `<this service>/dashboard/logs`.
pub const DASHBOARD_LOG: &str = "/dashboard/logs/{namespace}/{pod}/{container}";

/// The REST routes.
pub fn routes(logs: Logs) -> Router {
    Router::new()
        .route(DASHBOARD_LOG, get(dashboard_log))
        .route(V1ALPHA3_LOG, get(get_log))
        .route(V1ALPHA2_LOG, get(get_log).delete(delete_log))
        .route("/healthz", get(healthz))
        .with_state(logs)
}

/// The caller's credentials: the `Authorization` header, and the peer the
/// server loop noted.
struct Caller(Credentials);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        Ok(Self(super::credentials(
            value,
            parts.extensions.get::<super::Peer>(),
        )))
    }
}

/// The three parts of a log route; a part that is not valid percent-encoded
/// UTF-8 is a 400 like any other bad name.
type LogPath = Result<Path<(String, String, String)>, PathRejection>;

fn log_name(path: LogPath) -> Result<LogName, ApiError> {
    let Path((parent, result, log)) = path.map_err(|rejection| {
        ApiError::invalid(format!(
            "invalid log name in the path: {}",
            rejection.body_text()
        ))
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
    /// Resume after the record this cursor came with (NDJSON and SSE).
    cursor: Option<String>,
    /// Only these steps, comma-separated.
    steps: Option<String>,
    /// Only lines at or after this RFC 3339 time.
    since: Option<String>,
    /// Only lines before this RFC 3339 time.
    until: Option<String>,
    /// Only the last this many lines.
    tail: Option<String>,
    /// Paged JSON: records per page.
    page_size: Option<String>,
    /// Paged JSON: the `next_page_token` of the page before.
    page_token: Option<String>,
    /// Text: start each line with its time, where the store has one.
    timestamps: Option<String>,
}

/// The most records on one page of paged JSON.
pub const MAX_PAGE_SIZE: usize = 1000;

/// The structured-read options of `params`; `follow` when it says nothing.
fn read_options(
    params: &ReadParams,
    follow: bool,
    cursor: Option<String>,
) -> Result<ReadOptions, ApiError> {
    let time = |key: &str, value: &Option<String>| -> Result<Option<i64>, ApiError> {
        value
            .as_deref()
            .map(|text| {
                parse_rfc3339_ns(text).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "{key}={text:?}: expected an RFC 3339 time, e.g. 2026-11-25T10:04:38Z"
                    ))
                })
            })
            .transpose()
    };
    let tail = params
        .tail
        .as_deref()
        .map(|text| {
            text.parse::<usize>().map_err(|_| {
                ApiError::invalid(format!(
                    "tail={text:?}: expected a number of lines, 1 to {MAX_TAIL}"
                ))
            })
        })
        .transpose()?;
    let steps = params
        .steps
        .as_deref()
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(ReadOptions {
        follow: bool_param("follow", params.follow.as_deref(), follow)?,
        cursor: cursor.filter(|c| !c.is_empty()),
        steps,
        since_ns: time("since", &params.since)?,
        until_ns: time("until", &params.until)?,
        tail,
    })
}

type ReadQuery = Result<Query<ReadParams>, QueryRejection>;

fn read_params(params: ReadQuery) -> Result<ReadParams, ApiError> {
    let Query(params) = params.map_err(|rejection| {
        ApiError::invalid(format!("invalid query string: {}", rejection.body_text()))
    })?;
    Ok(params)
}

/// The options of a structured read of `uri`'s query, worked out as
/// `get_log` does: an NDJSON read when `follow` is false, an event stream
/// when it is true. For the fuzz targets; not an API.
#[doc(hidden)]
pub fn read_options_of_query(uri: &axum::http::Uri, follow: bool) -> Result<ReadOptions, ApiError> {
    let params = read_params(Query::try_from_uri(uri))?;
    read_options(&params, follow, params.cursor.clone())
}

/// `follow`, or `default` when absent.
/// A switch parameter `key`: `true`, `1` or empty (`?follow`) turn it on,
/// `false` or `0` off; `default` when absent.
fn bool_param(key: &str, value: Option<&str>, default: bool) -> Result<bool, ApiError> {
    match value {
        None => Ok(default),
        Some("false" | "0") => Ok(false),
        Some("" | "true" | "1") => Ok(true),
        Some(other) => Err(ApiError::invalid(format!(
            "{key}={other:?}: expected true or false"
        ))),
    }
}

/// What a log read answers with, by the request's `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Ndjson,
    EventStream,
}

fn format_of(headers: &HeaderMap) -> Format {
    let mut format = Format::Text;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let media = range.split(';').next().unwrap_or("").trim();
            if media.eq_ignore_ascii_case(NDJSON) {
                return Format::Ndjson;
            }
            if media.eq_ignore_ascii_case(EVENT_STREAM) {
                format = Format::EventStream;
            }
        }
    }
    format
}

const NDJSON: &str = "application/x-ndjson";
const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
const EVENT_STREAM: &str = "text/event-stream";

/// How often an idle event stream gets a comment, so that proxies do not
/// close it.
pub const SSE_HEARTBEAT: Duration = Duration::from_secs(15);

async fn get_log(
    State(logs): State<Logs>,
    Caller(caller): Caller,
    path: LogPath,
    params: ReadQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = log_name(path)?;
    let params = read_params(params)?;
    if params.page_size.is_some() || params.page_token.is_some() {
        return paged(&logs, &caller, name, &params).await;
    }
    let structured = params.steps.is_some()
        || params.since.is_some()
        || params.until.is_some()
        || params.tail.is_some();
    match format_of(&headers) {
        Format::Text => {
            if params.cursor.as_deref().is_some_and(|c| !c.is_empty()) || structured {
                return Err(ApiError::invalid(format!(
                    "cursor, steps, since, until and tail are for structured reads: ask for \
                     {NDJSON} or {EVENT_STREAM}"
                )));
            }
            let follow = bool_param("follow", params.follow.as_deref(), false)?;
            let timestamps = bool_param("timestamps", params.timestamps.as_deref(), false)?;
            text_response(&logs, &caller, name, follow, timestamps).await
        }
        Format::Ndjson => {
            let options = read_options(&params, false, params.cursor.clone())?;
            let pages = logs.records(&caller, &name, &options).await?;
            let what = name.to_string();
            Ok(streamed(encode::ndjson(pages, name), what, NDJSON))
        }
        Format::EventStream => {
            // An event stream is for following; `Last-Event-ID` is the
            // cursor a reconnecting EventSource sends.
            let last_event = headers
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
            // A reconnect resumes where the stream was: an EventSource sends
            // the same URL again (its `cursor` too) with the last id it saw,
            // and `tail` only chose where the stream began.
            let resuming = last_event.is_some();
            let cursor = last_event.or_else(|| params.cursor.clone());
            let mut options = read_options(&params, true, cursor)?;
            if resuming {
                options.tail = None;
            }
            let pages = logs.records(&caller, &name, &options).await?;
            Ok(Sse::new(events(pages, name))
                .keep_alive(KeepAlive::new().interval(SSE_HEARTBEAT))
                .into_response())
        }
    }
}

/// Paged JSON: `{"records": [...], "next_page_token": "..."}`, at most
/// `page_size` records after `page_token`; the token is empty on the page
/// that reaches the end of the log. Pages are cursors, so they stay the same
/// while the log grows.
async fn paged(
    logs: &Logs,
    caller: &Credentials,
    name: LogName,
    params: &ReadParams,
) -> Result<Response, ApiError> {
    let size = match params.page_size.as_deref() {
        None => 100,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "page_size={text:?}: expected a number of records, 1 to {MAX_PAGE_SIZE}"
                ))
            })?,
    };
    if params.cursor.is_some() && params.page_token.is_some() {
        return Err(ApiError::invalid(
            "cursor and page_token say the same thing: give one".to_owned(),
        ));
    }
    if bool_param("follow", params.follow.as_deref(), false)? {
        return Err(ApiError::invalid(
            "paged reads do not follow: use application/x-ndjson or text/event-stream".to_owned(),
        ));
    }
    let token = params
        .page_token
        .clone()
        .or_else(|| params.cursor.clone())
        .filter(|t| !t.is_empty());
    let mut options = read_options(params, false, token)?;
    if params.page_token.as_deref().is_some_and(|t| !t.is_empty()) {
        // Later pages: `tail` only chose where the first one began.
        options.tail = None;
    }
    let mut pages = logs.records(caller, &name, &options).await?;
    let mut records = Vec::with_capacity(size);
    let mut more = false;
    'read: while let Some(page) = pages.next().await {
        for record in page?.records {
            if records.len() == size {
                more = true;
                break 'read;
            }
            records.push(record);
        }
    }
    let cursors = CursorWriter::new(&name);
    let json: Vec<_> = records
        .iter()
        .map(|r| encode::RecordJson::new(r, &cursors))
        .collect();
    let next = match (more, json.last()) {
        (true, Some(last)) => last.cursor.clone(),
        _ => String::new(),
    };
    Ok(axum::Json(serde_json::json!({ "records": json, "next_page_token": next })).into_response())
}

/// The events of a log: `record` events whose ids are cursors, then `end`
/// when the log (or, following, the run) is complete, or `error` when it
/// cannot go on.
pub fn events(
    mut pages: super::logs::PageStream,
    name: LogName,
) -> impl futures::Stream<Item = Result<Event, std::convert::Infallible>> {
    let cursors = CursorWriter::new(&name);
    async_stream::stream! {
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => {
                    for record in &page.records {
                        let json = encode::RecordJson::new(record, &cursors);
                        let id = json.cursor.clone();
                        match Event::default().event("record").id(id).json_data(&json) {
                            Ok(event) => yield Ok(event),
                            Err(e) => {
                                yield Ok(error_event(ErrorCode::Internal, &format!("encoding a record: {e}")));
                                return;
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(log = %name, error = %e, "ending an event stream with an error");
                    yield Ok(error_event(e.code, &e.message));
                    return;
                }
            }
        }
        yield Ok(Event::default().event("end").data("{\"reason\":\"the log is complete\"}"));
    }
}

fn error_event(code: ErrorCode, message: &str) -> Event {
    // The same shape as the error bodies of the REST routes.
    let data = serde_json::json!({
        "code": code.grpc_code() as i32,
        "message": message,
    });
    Event::default().event("error").data(data.to_string())
}

async fn text_response(
    logs: &Logs,
    caller: &Credentials,
    name: LogName,
    follow: bool,
    timestamps: bool,
) -> Result<Response, ApiError> {
    let text = logs.text(caller, name.clone(), follow, timestamps).await?;
    let mut response = streamed(text, name.to_string(), TEXT_PLAIN);
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// The query of a Dashboard external-logs request.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DashboardParams {
    start_time: Option<String>,
    completion_time: Option<String>,
}

/// Whether `name` is a Kubernetes name: lower-case letters, digits and `-`
/// (and `.` where `dots`), starting and ending with a letter or digit, at
/// most `max` bytes.
fn is_kubernetes_name(name: &str, max: usize, dots: bool) -> bool {
    let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !name.is_empty()
        && name.len() <= max
        && name.bytes().next().is_some_and(edge)
        && name.bytes().last().is_some_and(edge)
        && name
            .bytes()
            .all(|b| edge(b) || b == b'-' || (dots && b == b'.'))
}

/// `GET /dashboard/logs/{namespace}/{pod}/{container}?startTime=&completionTime=`:
/// one step container's log as `text/plain`, as the Tekton Dashboard asks
/// for it when the pod's own log is gone.
async fn dashboard_log(
    State(logs): State<Logs>,
    Caller(caller): Caller,
    path: Result<Path<(String, String, String)>, PathRejection>,
    params: Result<Query<DashboardParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path((namespace, pod, container)) = path.map_err(|rejection| {
        ApiError::invalid(format!("invalid path: {}", rejection.body_text()))
    })?;
    let Query(params) = params.map_err(|rejection| {
        ApiError::invalid(format!("invalid query string: {}", rejection.body_text()))
    })?;
    for (what, value, max, dots) in [
        ("namespace", &namespace, 63, false),
        ("pod", &pod, 253, true),
        ("container", &container, 63, false),
    ] {
        if !is_kubernetes_name(value, max, dots) {
            return Err(ApiError::invalid(format!(
                "{what} {value:?} is not a Kubernetes name (lower-case letters, digits and '-'{}, \
                 at most {max})",
                if dots { " or '.'" } else { "" }
            )));
        }
    }
    let time = |key: &str, value: &Option<String>| -> Result<Option<i64>, ApiError> {
        value
            .as_deref()
            .filter(|v| !v.is_empty())
            .map(|text| {
                parse_rfc3339_ns(text).ok_or_else(|| {
                    ApiError::invalid(format!("{key}={text:?}: expected an RFC 3339 time"))
                })
            })
            .transpose()
    };
    let query = ContainerQuery {
        namespace,
        pod,
        container,
        start_ns: time("startTime", &params.start_time)?,
        completion_ns: time("completionTime", &params.completion_time)?,
    };
    let what = format!("{}/{}/{}", query.namespace, query.pod, query.container);
    let text = logs.container_text(&caller, query).await?;
    Ok(streamed(text, what, TEXT_PLAIN))
}

/// A `200` streaming `body` as `content_type`. An error after the status
/// line has gone aborts the chunked body: that is how the client learns
/// the log is incomplete. `what` names the log in the service log.
fn streamed<S>(body: S, what: String, content_type: &'static str) -> Response
where
    S: futures::Stream<Item = Result<bytes::Bytes, ApiError>> + Send + 'static,
{
    let body = Body::from_stream(body.map(move |chunk| {
        chunk.map_err(|e| {
            tracing::warn!(log = %what, error = %e, "aborting a log response");
            std::io::Error::other(e.message)
        })
    }));
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn delete_log(
    State(logs): State<Logs>,
    Caller(caller): Caller,
    path: LogPath,
) -> Result<Response, ApiError> {
    let name = log_name(path)?;
    logs.delete(&caller, &name).await?;
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
