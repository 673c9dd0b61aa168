//! The log operations both front ends serve (gRPC and REST): read a log as
//! text chunks, store an upload, delete. Failures that can be known before the
//! first byte (bad name, unknown log, unreadable store) are returned as
//! errors, so a client gets an honest status rather than an empty success.
//!
//! A PipelineRun's log is the logs of its TaskRuns (as the run resolver finds
//! them), one after the other in the order they started, each line marked
//! with its task; only when none of them has a log is the PipelineRun's own
//! log (an upload of it, or the provider's lines labelled with its UID)
//! served. A follower of a run that has not completed gets new lines until
//! the run's record shows its completion: the record is read again every
//! `RUN_REFRESH` while it waits.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::StreamExt;

use super::status::ApiError;
use crate::backend::{self, ByteStream, Completion, LogBackend, LogQuery, WriteSummary};
use crate::pipeline::{live_text_chunks, text_chunks};
use crate::record::Page;
use crate::run::{LogName, Run, RunKind, RunResolver};

/// A log body on its way out: text chunks; an `Err` ends it.
pub type TextStream = BoxStream<'static, Result<Bytes, ApiError>>;

/// Record pages on their way out; an `Err` ends them.
pub type PageStream = BoxStream<'static, Result<Page, ApiError>>;

/// How often a follower re-reads the record of a run that has not completed,
/// and re-lists the TaskRuns of a PipelineRun.
pub const RUN_REFRESH: Duration = Duration::from_secs(2);
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

    /// Opens a log as text chunks; with `follow`, new lines keep coming
    /// until the run has completed. Waits for the first chunk, so that a
    /// missing log or a failing store is an `Err` here, not a broken stream.
    pub async fn text(&self, name: LogName, follow: bool) -> Result<TextStream, ApiError> {
        let run = self.resolver.resolve(&name).await?;
        let pages = self.pages(run, follow);
        let size = self.settings.chunk_size;
        let mut chunks = if follow {
            live_text_chunks(pages, size).boxed()
        } else {
            text_chunks(pages, size).boxed()
        };
        match chunks.next().await {
            None => Ok(stream::empty().boxed()),
            Some(Err(e)) => Err(e),
            Some(Ok(first)) => Ok(stream::once(async { Ok(first) }).chain(chunks).boxed()),
        }
    }

    /// The record pages of `run`'s log (a PipelineRun's: its TaskRuns').
    pub fn pages(&self, run: Run, follow: bool) -> PageStream {
        match run.kind {
            RunKind::PipelineRun => self.clone().pipeline_pages(run, follow),
            RunKind::TaskRun => self
                .backend
                .read(self.query(run, follow))
                .map(|page| page.map_err(ApiError::from))
                .boxed(),
        }
    }

    /// The query for `run`'s own log; a follower of a run that has not
    /// completed learns its completion from its record.
    fn query(&self, run: Run, follow: bool) -> LogQuery {
        let completion = if follow {
            self.completion(&run)
        } else {
            Completion::default()
        };
        LogQuery::for_run(run).follow(follow).completion(completion)
    }

    /// Watches the record of `run` until it shows a completion time, while
    /// someone holds the returned handle. Nothing to watch for a completed
    /// run, or one whose times are unknown (no run database).
    fn completion(&self, run: &Run) -> Completion {
        if run.is_complete() || run.start_ns.is_none() {
            return Completion::default();
        }
        let (sender, receiver) = tokio::sync::watch::channel(None);
        let resolver = self.resolver.clone();
        let record = run.record.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = sender.closed() => return,
                    () = tokio::time::sleep(RUN_REFRESH) => {}
                }
                match resolver.resolve(&record).await {
                    Ok(run) if run.completion_ns.is_some() => {
                        let _ = sender.send(run.completion_ns);
                        return;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::debug!(run = %record, %error, "re-reading a followed run failed");
                    }
                }
            }
        });
        Completion::watch(receiver)
    }

    /// The TaskRuns' logs of a PipelineRun, in the order they started, each
    /// record marked with its task; a follower also gets the TaskRuns that
    /// start later, until the PipelineRun has completed.
    fn pipeline_pages(self, run: Run, follow: bool) -> PageStream {
        async_stream::try_stream! {
            let mut pipeline_done = Completion::default();
            if follow {
                pipeline_done = self.completion(&run);
            }
            // UIDs of the TaskRuns served; bounded by run::db::MAX_CHILDREN.
            let mut served: HashSet<String> = HashSet::new();
            let mut found = false;
            loop {
                let done = !follow || run.is_complete() || pipeline_done.latest().is_some();
                let children = self.resolver.children(&run).await?;
                let mut new = 0;
                for child in children {
                    if !served.insert(child.uid.clone()) {
                        continue;
                    }
                    new += 1;
                    let task = child.task.clone();
                    let mut pages = self.backend.read(self.query(child, follow));
                    let mut first = true;
                    while let Some(page) = pages.next().await {
                        let mut page = match page {
                            // This TaskRun has no log (the store has no upload of it).
                            Err(backend::Error::NotFound { .. }) if first => break,
                            other => other?,
                        };
                        first = false;
                        found = true;
                        for record in &mut page.records {
                            record.task.clone_from(&task);
                        }
                        yield page;
                    }
                }
                if done {
                    break;
                }
                if new == 0 {
                    tokio::select! {
                        () = tokio::time::sleep(RUN_REFRESH) => {}
                        () = pipeline_done.changed() => {}
                    }
                }
            }
            if !found {
                let mut pages = self.backend.read(LogQuery::for_run(run));
                while let Some(page) = pages.next().await {
                    yield page?;
                }
            }
        }
        .boxed()
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
        let run = self.resolver.resolve(name).await?;
        Ok(self.backend.delete(&run).await?)
    }
}
