//! The gRPC front end: upstream's `tekton.results.v1alpha3.Logs` (read) and
//! the log RPCs of `tekton.results.v1alpha2.Logs` (read, upload, delete), wire
//! compatible, and the product's own `tekton.resultslogs.v1.Logs`
//! (structured records, follow, cursors, filters), over the shared `Logs`
//! operations.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::cursor::CursorWriter;
use super::encode;
use super::logs::{Logs, ReadOptions, TextStream};
use super::status::{ApiError, ErrorCode};
use crate::auth::Credentials;
use crate::backend;
use crate::proto::google::api::HttpBody;
use crate::proto::tekton::results::{v1alpha2, v1alpha3};
use crate::proto::tekton::resultslogs::v1;
use crate::run::LogName;

/// The content type of every log chunk, as upstream sends it.
pub const TEXT_PLAIN: &str = "text/plain";

/// A streamed log as upstream's gRPC clients expect it.
pub type HttpBodyStream = futures::stream::BoxStream<'static, Result<HttpBody, Status>>;

fn http_bodies(text: TextStream) -> HttpBodyStream {
    text.map(|chunk| {
        chunk
            .map(|data| HttpBody {
                content_type: TEXT_PLAIN.to_owned(),
                data,
                extensions: Vec::new(),
            })
            .map_err(|e| {
                tracing::warn!(error = %e, "log stream ended with an error");
                Status::from(e)
            })
    })
    .boxed()
}

/// The credentials of a call: its `authorization` metadata and the peer
/// the server loop noted.
fn credentials<T>(request: &Request<T>) -> Credentials {
    let value = request
        .metadata()
        .get("authorization")
        .map(|v| v.as_encoded_bytes());
    super::credentials(value, request.extensions().get::<super::Peer>())
}

async fn get_log<T>(
    logs: &Logs,
    request: &Request<T>,
    name: &str,
) -> Result<Response<HttpBodyStream>, Status> {
    let credentials = credentials(request);
    let name = LogName::parse(name).map_err(ApiError::from)?;
    Ok(Response::new(http_bodies(
        logs.text(&credentials, name, false, false).await?,
    )))
}

/// `tekton.results.v1alpha3.Logs`.
#[derive(Debug, Clone)]
pub struct LogsV1alpha3 {
    logs: Logs,
}

impl LogsV1alpha3 {
    /// Serves `logs`.
    pub fn new(logs: Logs) -> Self {
        Self { logs }
    }
}

#[tonic::async_trait]
impl v1alpha3::logs_server::Logs for LogsV1alpha3 {
    type GetLogStream = HttpBodyStream;

    async fn get_log(
        &self,
        request: Request<v1alpha3::GetLogRequest>,
    ) -> Result<Response<Self::GetLogStream>, Status> {
        get_log(&self.logs, &request, &request.get_ref().name).await
    }
}

/// The log RPCs of `tekton.results.v1alpha2.Logs`.
#[derive(Debug, Clone)]
pub struct LogsV1alpha2 {
    logs: Logs,
}

impl LogsV1alpha2 {
    /// Serves `logs`.
    pub fn new(logs: Logs) -> Self {
        Self { logs }
    }
}

#[tonic::async_trait]
impl v1alpha2::logs_server::Logs for LogsV1alpha2 {
    type GetLogStream = HttpBodyStream;

    async fn get_log(
        &self,
        request: Request<v1alpha2::GetLogRequest>,
    ) -> Result<Response<Self::GetLogStream>, Status> {
        get_log(&self.logs, &request, &request.get_ref().name).await
    }

    async fn update_log(
        &self,
        request: Request<Streaming<v1alpha2::Log>>,
    ) -> Result<Response<v1alpha2::LogSummary>, Status> {
        let idle = self.logs.settings().upload_idle_timeout;
        let credentials = credentials(&request);
        // Who the caller is, before waiting for the message that says what
        // they want.
        self.logs.guard().authenticate(&credentials).await?;
        let mut messages = request.into_inner();
        let first = next_message(&mut messages, idle).await?.ok_or_else(|| {
            ApiError::invalid("UpdateLog received no message; the first one must name the log")
        })?;
        let name = LogName::parse(&first.name).map_err(ApiError::from)?;
        let slot = self.logs.admit_upload(&credentials, &name).await?;
        let broken = Arc::new(Mutex::new(None));
        let upload = Upload {
            name: name.clone(),
            idle,
            max_bytes: self.logs.guard().limits().max_upload_bytes,
            broken: broken.clone(),
        };
        let data = upload_bytes(upload, first.data, messages);
        let summary = match self.logs.store(&slot, &name, data).await {
            Ok(summary) => summary,
            Err(e) => {
                // A broken request stream keeps its own status (cancelled,
                // deadline, message too large) rather than a generic one.
                let status = broken.lock().unwrap_or_else(|p| p.into_inner()).take();
                tracing::warn!(log = %name, error = %e, "upload not stored");
                return Err(status.unwrap_or_else(|| Status::from(e)));
            }
        };
        let bytes_received = i64::try_from(summary.bytes).unwrap_or(i64::MAX);
        tracing::info!(log = %name, bytes = summary.bytes, "log stored");
        Ok(Response::new(v1alpha2::LogSummary {
            record: name.record_name(),
            bytes_received,
        }))
    }

    async fn delete_log(
        &self,
        request: Request<v1alpha2::DeleteLogRequest>,
    ) -> Result<Response<()>, Status> {
        let credentials = credentials(&request);
        let name = LogName::parse(&request.get_ref().name).map_err(ApiError::from)?;
        self.logs.delete(&credentials, &name).await?;
        tracing::info!(log = %name, "log deleted");
        Ok(Response::new(()))
    }
}

/// The next UpdateLog message, or `DeadlineExceeded` after `idle` without one.
async fn next_message(
    messages: &mut Streaming<v1alpha2::Log>,
    idle: Duration,
) -> Result<Option<v1alpha2::Log>, Status> {
    match tokio::time::timeout(idle, messages.message()).await {
        Ok(message) => message,
        Err(_) => Err(Status::deadline_exceeded(format!(
            "no UpdateLog message for {} s; the upload was aborted",
            idle.as_secs()
        ))),
    }
}

/// An upload's abort: `status` is left in `broken` for the call's answer,
/// and the store gets the error.
fn aborted(name: &str, broken: &Mutex<Option<Status>>, status: Status) -> backend::Error {
    let error = backend::Error::UploadAborted {
        name: name.to_owned(),
        message: status.message().to_owned(),
    };
    *broken.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
    error
}

/// What an upload may be.
struct Upload {
    /// The log it stores.
    name: LogName,
    /// How long it may go without a message.
    idle: Duration,
    /// The most bytes it may bring (`LOGS_MAX_UPLOAD_BYTES`).
    max_bytes: u64,
    /// Where a stream error's status is left.
    broken: Arc<Mutex<Option<Status>>>,
}

/// The data of an UpdateLog stream, as it arrives. Every message must name
/// the same log as the first (an empty name means the same log); anything
/// else, a broken stream, an idle one or one longer than allowed aborts the
/// upload (the local store keeps nothing of it; Loki keeps the batches
/// already pushed). A stream error's status is left in `broken`
/// for the caller to answer with.
fn upload_bytes(
    upload: Upload,
    first: Bytes,
    mut messages: Streaming<v1alpha2::Log>,
) -> backend::ByteStream {
    let Upload {
        name,
        idle,
        max_bytes,
        broken,
    } = upload;
    let expected = name.to_string();
    let mut received = 0u64;
    async_stream::try_stream! {
        let mut first = Some(first);
        loop {
            let data = match first.take() {
                Some(data) => data,
                None => {
                    let message = next_message(&mut messages, idle)
                        .await
                        .map_err(|status| aborted(&expected, &broken, status))?;
                    let Some(message) = message else { break };
                    if !message.name.is_empty() && message.name != expected {
                        Err(backend::Error::InvalidArgument {
                            message: format!(
                                "UpdateLog for {expected:?} received a message for {:?}; one upload stores one log",
                                message.name
                            ),
                        })?;
                    }
                    message.data
                }
            };
            received += data.len() as u64;
            if received > max_bytes {
                let status = Status::from(ApiError::new(
                    ErrorCode::ResourceExhausted,
                    format!(
                        "the upload is larger than {max_bytes} bytes (LOGS_MAX_UPLOAD_BYTES); \
                         it was aborted"
                    ),
                ));
                Err(aborted(&expected, &broken, status))?;
            }
            yield data;
        }
    }
    .boxed()
}

/// `tekton.resultslogs.v1.Logs`: structured records with cursors, follow
/// and filters (the REST structured reads' gRPC form).
#[derive(Debug, Clone)]
pub struct LogsV1 {
    logs: Logs,
}

impl LogsV1 {
    /// Serves `logs`.
    pub fn new(logs: Logs) -> Self {
        Self { logs }
    }
}

/// A stream of record batches.
pub type RecordBatchStream = futures::stream::BoxStream<'static, Result<v1::RecordBatch, Status>>;

/// A protobuf time as nanoseconds since the epoch.
fn time_ns(field: &str, time: Option<prost_types::Timestamp>) -> Result<Option<i64>, ApiError> {
    let Some(time) = time else { return Ok(None) };
    let ns = (0..1_000_000_000)
        .contains(&time.nanos)
        .then(|| time.seconds.checked_mul(1_000_000_000))
        .flatten()
        .and_then(|s| s.checked_add(i64::from(time.nanos)));
    ns.map(Some).ok_or_else(|| {
        ApiError::invalid(format!(
            "{field} ({} s, {} ns) is out of range",
            time.seconds, time.nanos
        ))
    })
}

#[tonic::async_trait]
impl v1::logs_server::Logs for LogsV1 {
    type StreamLogStream = RecordBatchStream;

    async fn stream_log(
        &self,
        request: Request<v1::StreamLogRequest>,
    ) -> Result<Response<Self::StreamLogStream>, Status> {
        let credentials = credentials(&request);
        let request = request.into_inner();
        let name = LogName::parse(&request.name).map_err(ApiError::from)?;
        let options = ReadOptions {
            follow: request.follow,
            cursor: (!request.cursor.is_empty()).then_some(request.cursor),
            steps: request.steps,
            since_ns: time_ns("since", request.since)?,
            until_ns: time_ns("until", request.until)?,
            tail: (request.tail > 0).then_some(request.tail as usize),
        };
        let pages = self.logs.records(&credentials, &name, &options).await?;
        let cursors = CursorWriter::new(&name);
        let batches = pages.map(move |page| {
            page.map(|page| encode::record_batch(&page, &cursors))
                .map_err(|e| {
                    tracing::warn!(error = %e, "record stream ended with an error");
                    Status::from(e)
                })
        });
        Ok(Response::new(batches.boxed()))
    }
}
