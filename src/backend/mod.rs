//! Backend connectors: one per log provider, all behind the `LogBackend`
//! trait. A connector turns a `LogQuery` into a bounded stream of record pages
//! (history, then live lines when following), stores uploaded logs (push
//! path), and says whether its provider is reachable (health).
//!
//! Adding a provider: one module here, one arm in `build`.

mod error;
pub mod fanout;
pub mod local;
pub mod loki;
pub mod retry;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;

pub use error::{Error, Result};

use crate::config::{Config, Provider};
use crate::record::{Page, Position};
use crate::run::{LogName, Run};

/// When a followed run completes, where that is learnt after the read began:
/// the API re-reads the run's record while a follower waits, and a backend
/// ends its follow once the completion (plus the forwarder delay, where the
/// provider has one) has passed. Empty (`default`) when nothing watches.
#[derive(Debug, Clone, Default)]
pub struct Completion(Option<tokio::sync::watch::Receiver<Option<i64>>>);

impl Completion {
    /// Completion times as `receiver` learns them (ns since the epoch).
    pub fn watch(receiver: tokio::sync::watch::Receiver<Option<i64>>) -> Self {
        Self(Some(receiver))
    }

    /// A completion already known: `ns` since the epoch.
    pub fn known(ns: i64) -> Self {
        // The sender goes at once: `changed` then never fires, and `latest`
        // keeps the value.
        let (_, receiver) = tokio::sync::watch::channel(Some(ns));
        Self(Some(receiver))
    }

    /// The completion time learnt so far.
    pub fn latest(&self) -> Option<i64> {
        self.0.as_ref().and_then(|receiver| *receiver.borrow())
    }

    /// Waits until the completion time learnt changes; forever when nothing
    /// watches (or the watcher has stopped).
    pub async fn changed(&mut self) {
        if let Some(receiver) = self.0.as_mut() {
            if receiver.changed().await.is_ok() {
                return;
            }
        }
        std::future::pending::<()>().await;
    }
}

/// What to read from a log.
#[derive(Debug, Clone)]
pub struct LogQuery {
    /// The run whose log to read (its `log` is the log name).
    pub run: Run,
    /// Read only the records after this position (exclusive); `None` reads
    /// from the start.
    pub after: Option<Position>,
    /// After the history, keep yielding new lines until the log is complete.
    pub follow: bool,
    /// When following a run that had not completed when the read began: its
    /// completion, when learnt.
    pub completion: Completion,
    /// How long after the run's completion a follow keeps reading; `None`:
    /// as long as the provider's lines may take to arrive (Loki: the
    /// forwarder delay). The TaskRuns of a followed PipelineRun use a short
    /// one, so that the next task's lines are not held up.
    pub follow_grace: Option<std::time::Duration>,
    /// Only records before this time (ns since the epoch), for stores with
    /// line times; not with `follow`.
    pub before: Option<i64>,
}

impl LogQuery {
    /// The whole log of `run`, from its start, not following.
    pub fn for_run(run: Run) -> Self {
        Self {
            run,
            after: None,
            follow: false,
            completion: Completion::default(),
            follow_grace: None,
            before: None,
        }
    }

    /// The run's completion time: the one known when the read began, else
    /// the one learnt since.
    pub fn completion_ns(&self) -> Option<i64> {
        self.run.completion_ns.or_else(|| self.completion.latest())
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

    /// Where the run's completion is learnt while following.
    pub fn completion(mut self, completion: Completion) -> Self {
        self.completion = completion;
        self
    }

    /// Only the records before `before` (ns since the epoch).
    pub fn before(mut self, before: Option<i64>) -> Self {
        self.before = before;
        self
    }

    /// How long after the run's completion a follow keeps reading.
    pub fn follow_grace(mut self, grace: Option<std::time::Duration>) -> Self {
        self.follow_grace = grace;
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

/// One container's log, found by its pod (the Tekton Dashboard's
/// external-logs request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerQuery {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// The container, e.g. `step-build`.
    pub container: String,
    /// The run's start (ns), when known.
    pub start_ns: Option<i64>,
    /// The run's completion (ns), when known.
    pub completion_ns: Option<i64>,
}

/// Which fields a provider fills in on its records; the API refuses filters
/// on fields the provider does not have, rather than answer nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordFields {
    /// Each line's time (`LogRecord::ts_ns`).
    pub times: bool,
    /// Each line's container (`LogRecord::container`).
    pub containers: bool,
}

/// A log provider connector.
#[async_trait]
pub trait LogBackend: Debug + Send + Sync + 'static {
    /// The provider's name, as `LOGS_TYPE` spells it in lower case.
    fn provider(&self) -> &'static str;

    /// Reads a log: its pages in order, each record exactly once. The first
    /// item is `Err(NotFound)` when the log does not exist. A store keyed by
    /// name finds the log under `query.run.record`, the run's own record,
    /// whichever name the request used. The stream holds a
    /// bounded amount of the log at any time, whatever its size, and reads
    /// ahead only as its consumer pulls.
    fn read(&self, query: LogQuery) -> PageStream;

    /// Stores the log of `run` (kept under `run.record`) from an upload stream,
    /// writing bytes as they arrive. Where the provider can (see
    /// `docs/providers.md`), the log becomes readable only once the stream has
    /// ended without error, and an upload that fails leaves the previous
    /// complete log untouched.
    async fn write(&self, run: &Run, data: ByteStream) -> Result<WriteSummary>;

    /// Deletes the stored log of `run` (kept under `run.record`).
    async fn delete(&self, run: &Run) -> Result<()>;

    /// Checks that the provider is usable (reachable, writable).
    async fn check(&self) -> Result<()>;

    /// What an operator should know about how this configuration is served
    /// (`check` prints it, `serve` logs it at start-up). None unless the
    /// provider says so.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// Reads one container's log by its pod, for stores that keep lines by
    /// pod and container; the first item is `Err(Unsupported)` elsewhere.
    fn read_container(&self, query: ContainerQuery) -> PageStream {
        let _ = query;
        let provider = self.provider();
        futures::stream::once(async move {
            Err(Error::Unsupported {
                provider,
                operation: "reading a container's log by its pod",
            })
        })
        .boxed()
    }

    /// How late a followed line may arrive behind the newest one delivered
    /// (a follow releases lines only once they are this old). History read
    /// for a hand-over to a follow ends this long ago, so the follow takes
    /// over with no gap. Zero unless the provider says so.
    fn follow_settle(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// Which fields the provider's records have; none unless it says so.
    fn fields(&self) -> RecordFields {
        RecordFields::default()
    }
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
