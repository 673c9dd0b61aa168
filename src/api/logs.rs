//! The log operations both front ends serve (gRPC and REST): read a log as
//! text chunks, store an upload, delete. Failures that can be known before the
//! first byte (bad name, unknown log, unreadable store) are returned as
//! errors, so a client gets an honest status rather than an empty success.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::StreamExt;

use super::status::ApiError;
use crate::backend::{ByteStream, LogBackend, LogQuery, WriteSummary};
use crate::pipeline::text_chunks;
use crate::run::{LogName, RunResolver};

/// A log body on its way out: text chunks; an `Err` ends it.
pub type TextStream = BoxStream<'static, Result<Bytes, ApiError>>;

/// How the front ends serve logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Bytes per text chunk (`LOGS_BUFFER_SIZE`); positive.
    pub chunk_size: usize,
    /// How long an upload may go without a message (`LOGS_UPLOAD_IDLE_TIMEOUT`).
    pub upload_idle_timeout: Duration,
}

/// What the front ends share.
#[derive(Debug, Clone)]
pub struct Logs {
    backend: Arc<dyn LogBackend>,
    resolver: Arc<dyn RunResolver>,
    settings: Settings,
}

impl Logs {
    /// Serves `backend`, finding runs with `resolver`, as `settings` say.
    pub fn new(
        backend: Arc<dyn LogBackend>,
        resolver: Arc<dyn RunResolver>,
        settings: Settings,
    ) -> Self {
        assert!(settings.chunk_size > 0, "chunk size must be positive");
        Self {
            backend,
            resolver,
            settings,
        }
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn LogBackend> {
        &self.backend
    }

    /// The settings.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// Opens a log as text chunks. Waits for the first chunk, so that a
    /// missing log or a failing store is an `Err` here, not a broken stream.
    pub async fn text(&self, name: LogName) -> Result<TextStream, ApiError> {
        let run = self.resolver.resolve(&name).await?;
        let pages = self.backend.read(LogQuery::for_run(run));
        let mut chunks = text_chunks(pages, self.settings.chunk_size).boxed();
        match chunks.next().await {
            None => Ok(stream::empty().boxed()),
            Some(Err(e)) => Err(e.into()),
            Some(Ok(first)) => Ok(stream::once(async { Ok(first) })
                .chain(chunks.map(|r| r.map_err(ApiError::from)))
                .boxed()),
        }
    }

    /// Stores an upload.
    pub async fn store(&self, name: &LogName, data: ByteStream) -> Result<WriteSummary, ApiError> {
        // The run tells a provider like Loki which UID and time range the
        // lines must carry for reads of this log to find them.
        let run = self.resolver.resolve(name).await?;
        Ok(self.backend.write(&run, data).await?)
    }

    /// Deletes a log.
    pub async fn delete(&self, name: &LogName) -> Result<(), ApiError> {
        Ok(self.backend.delete(name).await?)
    }
}
