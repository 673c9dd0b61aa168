//! Backend connectors: one per log provider, all behind the `LogBackend`
//! trait. A connector turns a `LogQuery` into a bounded stream of record pages
//! (history, then live lines when following), stores uploaded logs (push
//! path), and says whether its provider is reachable (health).
//!
//! Adding a provider: one module here, one arm in `build`.

mod error;
pub mod local;
pub mod loki;
pub mod retry;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

pub use error::{Error, Result};

use crate::config::{Config, Provider};
use crate::record::{Page, Position};
use crate::run::{LogName, Run};

/// What to read from a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    /// The run whose log to read (its `log` is the log name).
    pub run: Run,
    /// Read only the records after this position (exclusive); `None` reads
    /// from the start.
    pub after: Option<Position>,
    /// After the history, keep yielding new lines until the log is complete.
    pub follow: bool,
}

impl LogQuery {
    /// The whole log of `run`, from its start, not following.
    pub fn for_run(run: Run) -> Self {
        Self {
            run,
            after: None,
            follow: false,
        }
    }

    /// The whole log named `name`, with nothing known of its run but what the
    /// name says (see `Run::from_name`).
    pub fn new(name: LogName) -> Self {
        Self::for_run(Run::from_name(name))
    }

    /// The log name.
    pub fn name(&self) -> &LogName {
        &self.run.log
    }

    /// Only the records after `position`.
    pub fn after(mut self, position: Option<Position>) -> Self {
        self.after = position;
        self
    }

    /// Whether to follow the log after its history.
    pub fn follow(mut self, follow: bool) -> Self {
        self.follow = follow;
        self
    }
}

/// What a finished upload stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteSummary {
    /// Bytes stored.
    pub bytes: u64,
}

/// The bytes of an upload, as they arrive. An `Err` item aborts the upload.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// A stream of record pages.
pub type PageStream = BoxStream<'static, Result<Page>>;

/// A log provider connector.
#[async_trait]
pub trait LogBackend: Debug + Send + Sync + 'static {
    /// The provider's name, as `LOGS_TYPE` spells it in lower case.
    fn provider(&self) -> &'static str;

    /// Reads a log: its pages in order, each record exactly once. The first
    /// item is `Err(NotFound)` when the log does not exist. The stream holds a
    /// bounded amount of the log at any time, whatever its size, and reads
    /// ahead only as its consumer pulls.
    fn read(&self, query: LogQuery) -> PageStream;

    /// Stores the log of `run` (named `run.log`) from an upload stream,
    /// writing bytes as they arrive. Where the provider can (see
    /// `docs/providers.md`), the log becomes readable only once the stream has
    /// ended without error, and an upload that fails leaves the previous
    /// complete log untouched.
    async fn write(&self, run: &Run, data: ByteStream) -> Result<WriteSummary>;

    /// Deletes a stored log.
    async fn delete(&self, name: &LogName) -> Result<()>;

    /// Checks that the provider is usable (reachable, writable).
    async fn check(&self) -> Result<()>;
}

/// Builds the backend `config` selects.
pub fn build(config: &Config) -> Result<Arc<dyn LogBackend>> {
    match config.logs.provider {
        Provider::Local => Ok(Arc::new(local::LocalStore::new(&config.logs.path))),
        Provider::Loki => Ok(Arc::new(loki::LokiBackend::from_config(config)?)),
        other => Err(Error::InvalidArgument {
            message: format!(
                "LOGS_TYPE selects the {other} provider, which this version does not have yet; \
                 use LOGS_TYPE=File (the embedded local store)"
            ),
        }),
    }
}
