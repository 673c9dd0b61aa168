//! The gRPC front end: upstream's `tekton.results.v1alpha3.Logs` (read) and
//! the log RPCs of `tekton.results.v1alpha2.Logs` (read, upload, delete), wire
//! compatible, over the shared `Logs` operations.

use bytes::Bytes;
use futures::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::logs::{Logs, TextStream};
use super::status::{ApiError, ErrorCode};
use crate::backend;
use crate::proto::google::api::HttpBody;
use crate::proto::tekton::results::{v1alpha2, v1alpha3};
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

async fn get_log(logs: &Logs, name: &str) -> Result<Response<HttpBodyStream>, Status> {
    let name = LogName::parse(name).map_err(ApiError::from)?;
    Ok(Response::new(http_bodies(logs.text(name).await?)))
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
        get_log(&self.logs, &request.get_ref().name).await
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
        get_log(&self.logs, &request.get_ref().name).await
    }

    async fn update_log(
        &self,
        request: Request<Streaming<v1alpha2::Log>>,
    ) -> Result<Response<v1alpha2::LogSummary>, Status> {
        let mut messages = request.into_inner();
        let first = messages.message().await?.ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidArgument,
                "UpdateLog received no message; the first one must name the log",
            )
        })?;
        let name = LogName::parse(&first.name).map_err(ApiError::from)?;
        let data = upload_bytes(name.clone(), first.data, messages);
        let summary = self.logs.store(&name, data).await?;
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
        let name = LogName::parse(&request.get_ref().name).map_err(ApiError::from)?;
        self.logs.delete(&name).await?;
        tracing::info!(log = %name, "log deleted");
        Ok(Response::new(()))
    }
}

/// The data of an UpdateLog stream, as it arrives. Every message must name
/// the same log as the first (an empty name means the same log); anything
/// else, or a broken stream, aborts the upload.
fn upload_bytes(
    name: LogName,
    first: Bytes,
    mut messages: Streaming<v1alpha2::Log>,
) -> backend::ByteStream {
    let expected = name.to_string();
    async_stream::try_stream! {
        yield first;
        loop {
            let message = messages.message().await.map_err(|status| backend::Error::UploadAborted {
                name: expected.clone(),
                message: status.message().to_owned(),
            })?;
            let Some(message) = message else { break };
            if !message.name.is_empty() && message.name != expected {
                Err(backend::Error::InvalidArgument {
                    message: format!(
                        "UpdateLog for {expected:?} received a message for {:?}; one upload stores one log",
                        message.name
                    ),
                })?;
            }
            yield message.data;
        }
    }
    .boxed()
}
