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

use bounded_vec_deque::BoundedVecDeque;
use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::StreamExt;

use super::cursor::Cursor;
use super::guard::{Guard, Slot};
use super::status::{ApiError, ErrorCode};
use crate::auth::{Credentials, Verb};
use crate::backend::{
    self, ByteStream, Completion, ContainerQuery, LogBackend, LogQuery, RecordFields, WriteSummary,
};
use crate::pipeline::{text_chunks, text_chunks_with, TextOptions};
use crate::record::{LogRecord, Page};
use crate::run::{LogName, ResolveError, Run, RunKind, RunResolver};
use crate::timestamp::{format_rfc3339_ns, now_ns};

/// A log body on its way out: text chunks; an `Err` ends it.
pub type TextStream = BoxStream<'static, Result<Bytes, ApiError>>;

/// Record pages on their way out; an `Err` ends them.
pub type PageStream = BoxStream<'static, Result<Page, ApiError>>;

/// How often a follower re-reads the record of a run that has not completed,
/// and re-lists the TaskRuns of a PipelineRun.
pub const RUN_REFRESH: Duration = Duration::from_secs(2);

/// How long a follower's response waits for the log's first bytes before it
/// starts without them (errors after that end the response abruptly).
pub const FIRST_CHUNK_WAIT: Duration = Duration::from_secs(1);

/// How long after a followed PipelineRun's TaskRun completes its lines are
/// still read before the next TaskRun's: a little more than a forwarder
/// takes to ship a line (a full forwarder delay per task would hold the
/// next tasks' lines back for minutes).
pub const TASK_FOLLOW_GRACE: Duration = Duration::from_secs(5);
/// The most lines `tail` keeps.
pub const MAX_TAIL: usize = 10_000;

/// The most message bytes `tail` keeps: with long lines, fewer lines.
pub const MAX_TAIL_BYTES: usize = 16 * 1024 * 1024;

/// Records per batch of a `tail`'s window.
const TAIL_BATCH: usize = 500;

/// What to read of a log, for the structured reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Keep sending new records until the run has completed.
    pub follow: bool,
    /// Resume after the record this cursor came with.
    pub cursor: Option<String>,
    /// Only these steps: a step's name (`build`) or its container
    /// (`step-build`); empty for all.
    pub steps: Vec<String>,
    /// Only lines at or after this time (ns since the epoch).
    pub since_ns: Option<i64>,
    /// Only lines before this time (ns since the epoch).
    pub until_ns: Option<i64>,
    /// Only the last this many lines (of those the other filters keep),
    /// then, following, the new ones.
    pub tail: Option<usize>,
}

impl ReadOptions {
    /// Checks the options against each other and against what the store's
    /// records say.
    fn validate(&self, fields: RecordFields) -> Result<(), ApiError> {
        if let (Some(since), Some(until)) = (self.since_ns, self.until_ns) {
            if since >= until {
                return Err(ApiError::invalid(format!(
                    "since ({}) is not before until ({})",
                    format_rfc3339_ns(since),
                    format_rfc3339_ns(until)
                )));
            }
        }
        if let Some(lines) = self.tail {
            if !(1..=MAX_TAIL).contains(&lines) {
                return Err(ApiError::invalid(format!(
                    "tail={lines}: expected 1 to {MAX_TAIL} lines"
                )));
            }
            if self.cursor.is_some() {
                return Err(ApiError::invalid(
                    "tail and cursor do not go together: a cursor already says where to start"
                        .to_owned(),
                ));
            }
        }
        if (self.since_ns.is_some() || self.until_ns.is_some()) && !fields.times {
            return Err(ApiError::invalid(
                "this log store keeps no line times, so since and until cannot be applied"
                    .to_owned(),
            ));
        }
        if !self.steps.is_empty() && !fields.containers {
            return Err(ApiError::invalid(
                "this log store does not say which step a line is from, so steps cannot be \
                 applied"
                    .to_owned(),
            ));
        }
        Ok(())
    }
}

/// The record filters of a read.
#[derive(Debug, Clone, Default)]
struct Filter {
    containers: Vec<String>,
    since_ns: Option<i64>,
    until_ns: Option<i64>,
    /// Records come in time order (a TaskRun's log; a PipelineRun's is in
    /// task order), so the first one past `until` ends the read.
    ordered: bool,
}

impl Filter {
    /// The filters of `options` for `run`, whose known steps the asked
    /// steps must be among.
    fn new(options: &ReadOptions, run: &Run) -> Result<Self, ApiError> {
        let containers: Vec<String> = options
            .steps
            .iter()
            .map(|step| {
                if step.starts_with("step-") {
                    step.clone()
                } else {
                    format!("step-{step}")
                }
            })
            .collect();
        if !run.steps.is_empty() {
            if let Some(unknown) = containers.iter().find(|c| !run.steps.contains(c)) {
                return Err(ApiError::invalid(format!(
                    "{} has no step {:?}; its steps are {}",
                    run.log,
                    unknown.trim_start_matches("step-"),
                    run.steps
                        .iter()
                        .map(|s| s.trim_start_matches("step-"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(Self {
            containers,
            since_ns: options.since_ns,
            until_ns: options.until_ns,
            ordered: run.kind == RunKind::TaskRun,
        })
    }

    fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.since_ns.is_none() && self.until_ns.is_none()
    }

    fn keeps(&self, record: &LogRecord) -> bool {
        let container_ok = self.containers.is_empty()
            || record
                .container
                .as_deref()
                .is_some_and(|c| self.containers.iter().any(|want| want == c));
        let time_ok = match record.ts_ns {
            Some(ts) => {
                self.since_ns.is_none_or(|since| ts >= since)
                    && self.until_ns.is_none_or(|until| ts < until)
            }
            None => self.since_ns.is_none() && self.until_ns.is_none(),
        };
        container_ok && time_ok
    }

    /// `pages` with only the records kept; a TaskRun's read ends once its
    /// lines are past `until` (a follow too).
    fn apply(self, pages: PageStream) -> PageStream {
        if self.is_empty() {
            return pages;
        }
        async_stream::try_stream! {
            let mut pages = pages;
            while let Some(page) = pages.next().await {
                let mut page = page?;
                let past_until = self.ordered && self.until_ns.is_some_and(|until| {
                    page.records.last().and_then(|r| r.ts_ns).is_some_and(|ts| ts >= until)
                });
                page.records.retain(|record| self.keeps(record));
                if !page.records.is_empty() {
                    yield page;
                }
                if past_until {
                    break;
                }
            }
        }
        .boxed()
    }
}

/// Waits for the first item of `stream`, so that an error known before any
/// byte (a missing log, a failing store) is an `Err` here, not a broken
/// stream; with `may_wait` (a run still running, which may have no line
/// yet), at most `FIRST_CHUNK_WAIT`, after which the stream starts without
/// it, since clients and proxies give up on a response that does not start.
async fn first_then<T: Send + 'static>(
    mut stream: BoxStream<'static, Result<T, ApiError>>,
    may_wait: bool,
) -> Result<BoxStream<'static, Result<T, ApiError>>, ApiError> {
    let first = if may_wait {
        // Dropping a pending `next` loses nothing: the response polls the
        // stream again.
        match tokio::time::timeout(FIRST_CHUNK_WAIT, stream.next()).await {
            Ok(first) => first,
            Err(_) => return Ok(stream),
        }
    } else {
        stream.next().await
    };
    match first {
        None => Ok(stream::empty().boxed()),
        Some(Err(e)) => Err(e),
        Some(Ok(first)) => Ok(stream::once(async { Ok(first) }).chain(stream).boxed()),
    }
}

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
    guard: Guard,
}

impl Logs {
    /// Serves `backend`, finding runs with `resolver`, as `settings` say,
    /// to every caller within the default limits (see [`Logs::guarded`]).
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
            guard: Guard::open(),
        }
    }

    /// The same, with callers checked and limited by `guard`.
    pub fn guarded(mut self, guard: Guard) -> Self {
        self.guard = guard;
        self
    }

    /// What checks callers.
    pub fn guard(&self) -> &Guard {
        &self.guard
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
    /// missing log or a failing store is an `Err` here, not a broken stream;
    /// a follower waits at most `FIRST_CHUNK_WAIT` (a running run may have no
    /// line yet, and clients and proxies give up on a response that does
    /// not start).
    pub async fn text(
        &self,
        credentials: &Credentials,
        name: LogName,
        follow: bool,
        timestamps: bool,
    ) -> Result<TextStream, ApiError> {
        let caller = self
            .guard
            .admit(credentials, name.parent(), Verb::Get)
            .await?;
        let slot = self.guard.slot(&caller)?;
        let run = self.resolver.resolve(&name).await?;
        // A completed run's log is all there: its errors still get a status.
        let may_wait = follow && !run.is_complete();
        let pages = self
            .guard
            .bound(self.pages(run, follow, None)?, slot, follow);
        let pages = super::metered::metered(pages, "text");
        let size = self.settings.chunk_size;
        let chunks = text_chunks_with(
            pages,
            size,
            TextOptions {
                live: follow,
                timestamps,
            },
        )
        .boxed();
        first_then(chunks, may_wait).await
    }

    /// Opens a log as record pages, as `options` say: after a cursor (a
    /// token a client got with an earlier record), only some steps or a
    /// time range, only the last lines. Waits for the first record as
    /// `text` waits for the first chunk.
    pub async fn records(
        &self,
        credentials: &Credentials,
        name: &LogName,
        options: &ReadOptions,
    ) -> Result<PageStream, ApiError> {
        let follow = options.follow;
        let caller = self
            .guard
            .admit(credentials, name.parent(), Verb::Get)
            .await?;
        options.validate(self.backend.fields())?;
        let slot = self.guard.slot(&caller)?;
        let after = options
            .cursor
            .as_deref()
            .map(|text| Self::cursor(name, text))
            .transpose()?;
        let run = self.resolver.resolve(name).await?;
        let filter = Filter::new(options, &run)?;
        let may_wait = follow && !run.is_complete();
        let pages = match options.tail {
            None => filter.apply(self.pages(run, follow, after)?),
            Some(lines) => self.tail(run, follow, lines, filter).await?,
        };
        let pages = self.guard.bound(pages, slot, follow);
        first_then(super::metered::metered(pages, "records"), may_wait).await
    }

    /// The last `lines` records of `run`'s log that pass `filter`, then,
    /// following, the records after them.
    async fn tail(
        &self,
        run: Run,
        follow: bool,
        lines: usize,
        filter: Filter,
    ) -> Result<PageStream, ApiError> {
        let live_run = follow && !run.is_complete();
        // History up to what a follower would have been given by now (lines
        // come in up to SETTLE late), so the live read takes over with no gap.
        let before = live_run.then(|| {
            let settle = i64::try_from(self.backend.follow_settle().as_nanos()).unwrap_or(0);
            now_ns().saturating_sub(settle)
        });
        let history = match (run.kind, before) {
            (RunKind::TaskRun, Some(before)) => self
                .backend
                .read(LogQuery::for_run(run.clone()).before(Some(before)))
                .map(|page| page.map_err(ApiError::from))
                .boxed(),
            _ => self.pages(run.clone(), false, None)?,
        };
        let mut history = filter.clone().apply(history);
        let mut window = BoundedVecDeque::new(lines);
        let mut window_bytes = 0usize;
        let mut first = true;
        while let Some(page) = history.next().await {
            let page = match page {
                // A running run whose log is not there yet (an upload to
                // come): no history, and the follow waits for it.
                Err(e) if first && live_run && e.code == ErrorCode::NotFound => break,
                page => page?,
            };
            first = false;
            for record in page.records {
                window_bytes += record.message.len();
                if let Some(dropped) = window.push_back(record) {
                    window_bytes -= dropped.message.len();
                }
                // A byte budget as well: long lines make a short window.
                while window_bytes > MAX_TAIL_BYTES && window.len() > 1 {
                    if let Some(dropped) = window.pop_front() {
                        window_bytes -= dropped.message.len();
                    }
                }
            }
        }
        let last = window
            .back()
            .map(|r: &LogRecord| Cursor::new(r.task_run.as_deref().map(str::to_owned), r.position));
        let records: Vec<LogRecord> = window.into_unbounded().into();
        // In batches, as a store's pages are.
        let mut batches = Vec::new();
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            batches.push(Ok(Page {
                records: records.by_ref().take(TAIL_BATCH).collect(),
            }));
        }
        let head = stream::iter(batches);
        if !follow {
            return Ok(head.boxed());
        }
        let live = filter.apply(self.pages(run, true, last)?);
        Ok(head.chain(live).boxed())
    }

    /// One container's log as text, found by its pod (the Tekton
    /// Dashboard's external-logs request); errors before the first chunk.
    pub async fn container_text(
        &self,
        credentials: &Credentials,
        query: ContainerQuery,
    ) -> Result<TextStream, ApiError> {
        let slot = self
            .guard
            .open_stream(credentials, &query.namespace, Verb::Get)
            .await?;
        let pages = self
            .backend
            .read_container(query)
            .map(|page| page.map_err(ApiError::from))
            .boxed();
        let pages = super::metered::metered(self.guard.bound(pages, slot, false), "dashboard");
        first_then(text_chunks(pages, self.settings.chunk_size).boxed(), false).await
    }

    /// The record pages of `run`'s log (a PipelineRun's: its TaskRuns'),
    /// after `after` when given: exactly the records that follow the one the
    /// cursor was made for.
    pub fn pages(
        &self,
        run: Run,
        follow: bool,
        after: Option<Cursor>,
    ) -> Result<PageStream, ApiError> {
        match (run.kind, after) {
            (RunKind::PipelineRun, after) => Ok(self.clone().pipeline_pages(run, follow, after)),
            (
                RunKind::TaskRun,
                Some(Cursor {
                    task_run: Some(_), ..
                }),
            ) => Err(ApiError::invalid(format!(
                "the cursor is from a PipelineRun's log, not from {}",
                run.log
            ))),
            (RunKind::TaskRun, after) => {
                let position = after.map(|cursor| cursor.position);
                Ok(self
                    .backend
                    .read(self.query(run, follow).after(position))
                    .map(|page| page.map_err(ApiError::from))
                    .boxed())
            }
        }
    }

    /// Reads a cursor a client sent for the log `name`.
    pub fn cursor(name: &LogName, text: &str) -> Result<Cursor, ApiError> {
        Cursor::decode(text, name).map_err(|e| ApiError::invalid(e.to_string()))
    }

    /// The query for `run`'s own log; a follower of a run that has not
    /// completed learns its completion from its record.
    fn query(&self, run: Run, follow: bool) -> LogQuery {
        let completion = if follow {
            self.completion(&run, Completion::default())
        } else {
            Completion::default()
        };
        LogQuery::for_run(run).follow(follow).completion(completion)
    }

    /// Watches the record of `run` until it shows a completion time, while
    /// someone holds the returned handle; when `parent` (a PipelineRun's)
    /// completes first, that completion ends the run too (its record may
    /// never show one, e.g. when it was deleted). Nothing to watch for a
    /// completed run, or one whose times are unknown (no run database).
    fn completion(&self, run: &Run, mut parent: Completion) -> Completion {
        if run.is_complete() || run.start_ns.is_none() {
            return Completion::default();
        }
        if let Some(done) = parent.latest() {
            return Completion::known(done);
        }
        let (sender, receiver) = tokio::sync::watch::channel(None);
        let resolver = self.resolver.clone();
        let record = run.record.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = sender.closed() => return,
                    () = tokio::time::sleep(RUN_REFRESH) => {}
                    () = parent.changed() => {
                        if let Some(done) = parent.latest() {
                            let _ = sender.send(Some(done));
                            return;
                        }
                        continue;
                    }
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
    /// record marked with its task and each ending with a line end; a
    /// follower also gets the TaskRuns that start later, until the
    /// PipelineRun has completed.
    fn pipeline_pages(self, run: Run, follow: bool, after: Option<Cursor>) -> PageStream {
        async_stream::try_stream! {
            // Resuming: the TaskRun the cursor is in, and where in its log;
            // a cursor without one is in the PipelineRun's own log.
            let (mut resume_in, mut resume_at) = match after {
                Some(Cursor { task_run: Some(task_run), position }) => (Some(task_run), Some(position)),
                Some(Cursor { task_run: None, position }) => {
                    let mut pages = self.backend.read(self.query(run, follow).after(Some(position)));
                    while let Some(page) = pages.next().await {
                        yield page?;
                    }
                    return;
                }
                None => (None, None),
            };
            let mut pipeline_done = Completion::default();
            if follow {
                pipeline_done = self.completion(&run, Completion::default());
            }
            // UIDs of the TaskRuns served: as many as the resolver lists (the
            // database resolver at most run::db::MAX_CHILDREN).
            let mut served: HashSet<String> = HashSet::new();
            // Whether any record was delivered, and any TaskRun had a log.
            let mut found = false;
            let mut any_log = false;
            let mut listed_once = false;
            loop {
                let done = !follow || run.is_complete() || pipeline_done.latest().is_some();
                // Once it has completed, the listing must not be one made
                // while it ran (a resolver may keep those briefly).
                let listed = match pipeline_done.latest() {
                    Some(done_ns) if !run.is_complete() => {
                        let completed = Run { completion_ns: Some(done_ns), ..run.clone() };
                        self.resolver.children(&completed).await
                    }
                    _ => self.resolver.children(&run).await,
                };
                let children = match listed {
                    Ok(children) => children,
                    // Once streaming, a database outage is waited out.
                    Err(error @ ResolveError::Unavailable { .. }) if listed_once && !done => {
                        tracing::warn!(run = %run.log, %error, "listing the TaskRuns of a followed PipelineRun failed; trying again");
                        tokio::time::sleep(RUN_REFRESH).await;
                        continue;
                    }
                    Err(error) => Err(error)?,
                };
                listed_once = true;
                let mut new = 0;
                if let Some(task_run) = &resume_in {
                    let Some(at) = children.iter().position(|c| c.record.log() == task_run) else {
                        Err(ApiError::invalid(format!("the cursor's TaskRun {task_run:?} is not one of {}'s", run.log),
                        ))?;
                        return;
                    };
                    // The TaskRuns before it were delivered already.
                    for child in &children[..at] {
                        served.insert(child.uid.clone());
                    }
                    resume_in = None;
                    found = true;
                }
                for child in children {
                    if !served.insert(child.uid.clone()) {
                        continue;
                    }
                    new += 1;
                    let task = child.task.clone();
                    let task_run: Arc<str> = Arc::from(child.record.log());
                    let position = resume_at.take();
                    // A follower reads each TaskRun until shortly after it
                    // completes (a completed one: its lines may still be on
                    // their way, its upload still to come).
                    let query = if follow {
                        let completion = self.completion(&child, pipeline_done.clone());
                        LogQuery::for_run(child)
                            .follow(true)
                            .completion(completion)
                            .follow_grace(Some(TASK_FOLLOW_GRACE))
                    } else {
                        LogQuery::for_run(child)
                    }
                    .after(position);
                    let mut pages = self.backend.read(query);
                    // The last record read, when it has no line end: held
                    // back until the next page shows whether the line goes on.
                    let mut open_line: Option<LogRecord> = None;
                    let mut first = true;
                    let mut missing = false;
                    while let Some(page) = pages.next().await {
                        let mut page = match page {
                            // This TaskRun has no log (the store has no upload of it).
                            Err(backend::Error::NotFound { .. }) if first => {
                                missing = true;
                                break;
                            }
                            other => other?,
                        };
                        first = false;
                        if let Some(record) = open_line.take() {
                            page.records.insert(0, record);
                        }
                        if page.records.last().is_some_and(|r| !r.terminated) {
                            open_line = page.records.pop();
                        }
                        for record in &mut page.records {
                            record.task.clone_from(&task);
                            record.task_run = Some(task_run.clone());
                        }
                        if !page.records.is_empty() {
                            found = true;
                            yield page;
                        }
                    }
                    any_log |= !missing;
                    if let Some(mut record) = open_line {
                        found = true;
                        // The task's last line: the next task starts a line.
                        record.terminated = true;
                        record.task.clone_from(&task);
                        record.task_run = Some(task_run.clone());
                        yield Page { records: vec![record] };
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
                // No TaskRun has a line: the PipelineRun's own log (an upload
                // of it); when TaskRuns have (empty) logs and it has none,
                // the log is empty, not missing.
                let mut pages = self.backend.read(self.query(run, follow));
                let mut first = true;
                while let Some(page) = pages.next().await {
                    match page {
                        Err(backend::Error::NotFound { .. }) if first && any_log => break,
                        page => yield page?,
                    }
                    first = false;
                }
            }
        }
        .boxed()
    }

    /// Whether `credentials` may store the log `name`: a stream slot for
    /// the upload, which [`Logs::store`] asks for.
    pub async fn admit_upload(
        &self,
        credentials: &Credentials,
        name: &LogName,
    ) -> Result<Slot, ApiError> {
        self.guard
            .open_stream(credentials, name.parent(), Verb::Update)
            .await
    }

    /// Stores an upload, admitted with [`Logs::admit_upload`] (its slot);
    /// one that takes longer than `LOGS_READ_TIMEOUT` is cut.
    pub async fn store(
        &self,
        _admitted: &Slot,
        name: &LogName,
        data: ByteStream,
    ) -> Result<WriteSummary, ApiError> {
        let limit = self.guard.limits().read_timeout;
        tokio::time::timeout(limit, self.store_now(name, data))
            .await
            .unwrap_or_else(|_| {
                Err(ApiError::new(
                    ErrorCode::DeadlineExceeded,
                    format!(
                        "the upload took longer than {} s (LOGS_READ_TIMEOUT) and was cut",
                        limit.as_secs()
                    ),
                ))
            })
    }

    async fn store_now(&self, name: &LogName, data: ByteStream) -> Result<WriteSummary, ApiError> {
        // The run tells a provider like Loki which UID and time range the
        // lines must carry for reads of this log to find them.
        let run = self.resolver.resolve(name).await?;
        Ok(self.backend.write(&run, data).await?)
    }

    /// Deletes a log: the one stored for its run (a PipelineRun's own
    /// upload, not its TaskRuns' logs). A name whose record is gone (as after
    /// the Results retention policy ran) deletes what is stored under it.
    pub async fn delete(&self, credentials: &Credentials, name: &LogName) -> Result<(), ApiError> {
        self.guard
            .admit(credentials, name.parent(), Verb::Delete)
            .await?;
        let run = match self.resolver.resolve(name).await {
            Ok(run) => run,
            Err(ResolveError::NotFound { .. }) => Run::from_name(name.clone()),
            Err(other) => return Err(other.into()),
        };
        Ok(self.backend.delete(&run).await?)
    }
}
