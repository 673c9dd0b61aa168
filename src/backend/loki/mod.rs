//! The Grafana Loki connector: complete history through `query_range`
//! (paged forward in time, never capped at the per-query limit), with the
//! LogQL upstream Tekton Results sends by default.
//!
//! - `query.rs` builds and escapes the LogQL;
//! - `client.rs` speaks HTTP (token, tenant, TLS, retries, errors);
//! - `wire.rs` parses answers;
//! - `history.rs` pages, merges streams and orders entries;
//! - `follow.rs` follows a running run;
//! - `push.rs` turns uploads into push requests.
//!
//! The time range of a run is its start to its completion plus
//! `LOGGING_PLUGIN_FORWARDER_DELAY_DURATION` (forwarders ship lines late);
//! open-ended (now) while it runs; the last `LOGGING_PLUGIN_LOOKBACK_DURATION`
//! when its times are unknown.

pub mod client;
pub mod follow;
pub mod history;
pub mod plan;
pub mod push;
pub mod query;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use self::client::{ClientSettings, LokiClient, PROVIDER};
use self::history::HistoryQuery;
use self::plan::{Extraction, Pipeline};
use self::push::{Batcher, LineShape, LineSplitter, PushLine};
use self::query::QueryTemplate;
use super::fanout::{Fanout, Tail};
use super::retry::RetryPolicy;
use super::{
    ByteStream, Completion, ContainerQuery, Error, LogBackend, LogQuery, PageStream, RecordFields,
    Result, WriteSummary,
};
use crate::config::keys::LOGGING_PLUGIN_QUERY_PLAN;
use crate::config::{Config, QueryPlan};
use crate::record::Position;
use crate::run::{Run, RunKind};
use crate::timestamp::now_ns;

/// The Loki connector.
#[derive(Debug)]
pub struct LokiBackend {
    client: Arc<LokiClient>,
    template: QueryTemplate,
    shape: LineShape,
    limit: u32,
    forwarder_delay: Duration,
    lookback: Duration,
    /// How old a followed line must be before it is sent.
    settle: Duration,
    /// The shared live tails of followed runs.
    fanout: Arc<Fanout>,
    /// The connector plan's pipelines, prepared once; `None` when Loki runs
    /// the query's pipeline (the Loki plan).
    pipelines: Option<Pipelines>,
    /// Why the connector plan was configured but the Loki plan is used.
    plan_fallback: Option<String>,
}

/// What the connector does to each run kind's lines in the connector plan.
#[derive(Debug)]
struct Pipelines {
    taskrun: Arc<Pipeline>,
    pipelinerun: Arc<Pipeline>,
}

impl Pipelines {
    /// Both run kinds' pipelines; `Err` says why the configuration needs
    /// the Loki plan.
    fn prepare(template: &QueryTemplate) -> std::result::Result<Self, String> {
        Ok(Self {
            taskrun: Arc::new(template.connector_pipeline(RunKind::TaskRun)?),
            pipelinerun: Arc::new(template.connector_pipeline(RunKind::PipelineRun)?),
        })
    }

    fn of(&self, kind: RunKind) -> &Arc<Pipeline> {
        match kind {
            RunKind::TaskRun => &self.taskrun,
            RunKind::PipelineRun => &self.pipelinerun,
        }
    }
}

impl LokiBackend {
    /// A connector configured by the `LOGGING_PLUGIN_*` keys.
    pub fn from_config(config: &Config) -> Result<Self> {
        let plugin = &config.plugin;
        let api_url = plugin
            .api_url
            .clone()
            .ok_or_else(|| Error::InvalidArgument {
                message: "LOGS_TYPE=Loki needs LOGGING_PLUGIN_API_URL (e.g. http://loki:3100)"
                    .to_owned(),
            })?;
        let client = LokiClient::new(&ClientSettings {
            api_url,
            proxy_path: plugin.proxy_path.clone(),
            token_path: plugin.token_path.clone(),
            tenant: plugin.tenant.clone(),
            ca_cert: plugin.ca_cert.clone(),
            tls_verification_disable: plugin.tls_verification_disable,
            query_params: plugin.query_params.clone(),
            timeout: plugin.timeout,
            retry: RetryPolicy::default(),
        })?;
        let message_path = plugin
            .json_map
            .iter()
            .find(|(name, _)| name == "message")
            .map_or_else(|| "message".to_owned(), |(_, path)| path.clone());
        let shape = LineShape {
            message_path,
            uid_path: plugin.taskrun_uid_key.clone(),
            container_path: plugin.container_key.clone(),
        };
        shape.validate().map_err(|reason| Error::InvalidArgument {
            message: format!("the JSON paths of pushed lines conflict: {reason}"),
        })?;
        let template = QueryTemplate {
            static_labels: plugin.static_labels.clone(),
            namespace_key: plugin.namespace_key.clone(),
            container_key: plugin.container_key.clone(),
            json_map: plugin.json_map.clone(),
            line_format: plugin.line_format.clone(),
            taskrun_uid_key: plugin.taskrun_uid_key.clone(),
            pipelinerun_uid_key: plugin.pipelinerun_uid_key.clone(),
        };
        let (pipelines, plan_fallback) = match plugin.query_plan {
            QueryPlan::Loki => (None, None),
            QueryPlan::Connector => match Pipelines::prepare(&template) {
                Ok(pipelines) => (Some(pipelines), None),
                // Said by `warnings`.
                Err(reason) => (None, Some(reason)),
            },
        };
        Ok(Self {
            client: Arc::new(client),
            shape,
            pipelines,
            plan_fallback,
            template,
            limit: plugin.query_limit,
            forwarder_delay: plugin.forwarder_delay,
            lookback: plugin.lookback,
            settle: plugin.follow_settle,
            fanout: Arc::new(Fanout::new(config.logs.follow_buffer_pages)),
        })
    }

    /// The `[start, end)` range to search for `run`'s lines, in ns.
    fn range(&self, run: &Run) -> (i64, i64) {
        let now = now_ns();
        let start = run
            .start_ns
            .unwrap_or_else(|| now.saturating_sub(duration_ns(self.lookback)));
        let end = match run.completion_ns {
            Some(done) => done.saturating_add(duration_ns(self.forwarder_delay)),
            // Running or unknown: everything up to now (end is exclusive).
            None => now.saturating_add(1),
        };
        (start, end)
    }
}

impl LokiBackend {
    /// Follows a run: through the shared tail of its query, unless its range
    /// has already ended (then it is history, read by the follow pager).
    /// The pages of `logql` in `[start_ns, end_ns)` after `after`.
    fn history(
        &self,
        logql: String,
        start_ns: i64,
        end_ns: i64,
        after: Option<Position>,
        extract: Option<Arc<Extraction>>,
    ) -> PageStream {
        history::pages(
            self.client.clone(),
            HistoryQuery {
                logql,
                start_ns,
                end_ns,
                limit: self.limit,
                after,
                extract,
            },
        )
        .boxed()
    }

    /// The query for `run`'s lines, and what the connector does to them
    /// (see `plan.rs`).
    fn plan_for(&self, run: &Run) -> (String, Option<Arc<Extraction>>) {
        let (namespace, kind, uid) = (run.log.parent(), run.kind, run.uid.as_str());
        match &self.pipelines {
            Some(pipelines) => (
                self.template.connector_query(namespace, uid),
                Some(Arc::new(Extraction::new(pipelines.of(kind).clone(), uid))),
            ),
            None => (self.template.for_run(namespace, kind, uid), None),
        }
    }

    fn follow(
        &self,
        query: LogQuery,
        logql: String,
        extract: Option<Arc<Extraction>>,
        start_ns: i64,
        grace_ns: i64,
    ) -> PageStream {
        let released = now_ns().saturating_sub(duration_ns(self.settle));
        let end_ns = query
            .completion_ns()
            .map(|done| done.saturating_add(grace_ns));
        let (limit, settle) = (self.limit, self.settle);
        if end_ns.is_some_and(|end| released >= end) {
            return follow::pages(
                self.client.clone(),
                follow::FollowQuery {
                    logql,
                    start_ns,
                    end_ns,
                    completion: Completion::default(),
                    forwarder_delay_ns: grace_ns,
                    limit,
                    after: query.after,
                    settle,
                    extract,
                },
            )
            .boxed();
        }
        // A new hub reads what comes after what is released now; followers
        // read anything older from history.
        let origin = Position {
            ts_ns: released.saturating_sub(1),
            seq: u64::MAX,
        };
        let upstream = {
            let (client, logql, extract) = (self.client.clone(), logql.clone(), extract.clone());
            Box::new(move |completion| {
                follow::pages(
                    client,
                    follow::FollowQuery {
                        logql,
                        start_ns,
                        end_ns: None,
                        completion,
                        forwarder_delay_ns: grace_ns,
                        limit,
                        after: Some(origin),
                        settle,
                        extract,
                    },
                )
                .boxed()
            })
        };
        let history = {
            let (client, logql) = (self.client.clone(), logql.clone());
            let extract = extract.clone();
            Arc::new(move |after: Option<Position>, upto: Position| {
                history::pages(
                    client.clone(),
                    HistoryQuery {
                        logql: logql.clone(),
                        start_ns,
                        end_ns: upto.ts_ns.saturating_add(1),
                        limit,
                        after,
                        extract: extract.clone(),
                    },
                )
                .map_ok(move |mut page| {
                    page.records.retain(|r| r.position <= upto);
                    page
                })
                .try_filter(|page| std::future::ready(!page.records.is_empty()))
                .boxed()
            })
        };
        self.fanout.follow(
            Tail {
                key: format!("{grace_ns} {logql}"),
                origin,
                upstream,
                history,
                provider: PROVIDER,
            },
            query.after,
            match query.run.completion_ns {
                Some(done) => Completion::known(done),
                None => query.completion,
            },
        )
    }
}

/// Pushed lines longer than this are cut. Loki rejects lines over
/// `max_line_size` (256 KB by default), measured after the JSON wrapping,
/// whose escaping can make a line up to six times longer.
const PUSH_MAX_LINE_BYTES: usize = 40 * 1024;

/// Bytes of one push request (as Vector's Loki sink batches).
const PUSH_BATCH_BYTES: usize = 1024 * 1024;

/// Lines of one push request.
const PUSH_BATCH_LINES: usize = 10_000;

/// How long a partial batch waits for more lines before it is sent.
const PUSH_BATCH_AGE: Duration = Duration::from_secs(1);

/// The stream label that keeps an upload's lines in a stream of their own.
const RUN_LABEL: &str = "tekton_run_uid";

/// The timestamp of an upload's first line: the run's start when known (so
/// the lines fall in the run's time range, and the same upload again stamps
/// the same lines the same way, which Loki stores once), else now.
///
/// Never moved to make Loki accept it: lines stamped outside the run's range
/// would be stored but never found by a read of the run. Loki refuses lines
/// older than `reject_old_samples_max_age` (a week by default), so uploading
/// the log of an older run fails with Loki's reason, which reaches the client.
fn upload_base_ns(run: &Run) -> i64 {
    run.start_ns.unwrap_or_else(now_ns)
}

/// One upload on its way to Loki.
struct Upload<'a> {
    backend: &'a LokiBackend,
    labels: String,
    shape: LineShape,
    uid: &'a str,
    splitter: LineSplitter,
    /// The next line's timestamp: one nanosecond after the previous line's,
    /// so Loki keeps the upload's order.
    next_ts: i64,
    batcher: Batcher,
}

impl Upload<'_> {
    async fn add(&mut self, message: &str) -> Result<()> {
        let line = PushLine {
            ts_ns: self.next_ts,
            message: push::render_line(&self.shape, message, self.uid, None),
        };
        self.next_ts = self.next_ts.saturating_add(1);
        if let Some(batch) = self.batcher.add(line) {
            self.send(batch).await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        let batch = self.batcher.take();
        if batch.is_empty() {
            return Ok(());
        }
        self.send(batch).await
    }

    async fn send(&self, batch: Vec<PushLine>) -> Result<()> {
        let lines = batch.len();
        let body = push::encode_request(&[(self.labels.clone(), batch)])
            .map_err(|e| Error::internal(PROVIDER, format!("encoding a push request: {e}")))?;
        match self.backend.client.push(Bytes::from(body)).await? {
            Ok(()) => Ok(()),
            Err((status, text)) => {
                let rejection = push::parse_rejection(status, &text);
                let counted = rejection
                    .ignored
                    .map(|(ignored, of)| format!("{ignored} of {of} lines"))
                    .unwrap_or_else(|| format!("a batch of {lines} lines"));
                let message = format!(
                    "loki rejected {counted} (HTTP {status}): {}",
                    rejection.reasons.join("; ")
                );
                Err(if rejection.retryable {
                    Error::Unavailable {
                        provider: PROVIDER,
                        message,
                    }
                } else {
                    Error::InvalidArgument { message }
                })
            }
        }
    }
}

/// `d` in nanoseconds, saturating.
fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[async_trait]
impl LogBackend for LokiBackend {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn read(&self, query: LogQuery) -> PageStream {
        let (start_ns, end_ns) = self.range(&query.run);
        let end_ns = query.before.map_or(end_ns, |before| end_ns.min(before));
        let (logql, extract) = self.plan_for(&query.run);
        tracing::debug!(log = %query.run.log, %logql, start_ns, end_ns, follow = query.follow, "reading from loki");
        if query.follow {
            let grace_ns = query
                .follow_grace
                .map_or_else(|| duration_ns(self.forwarder_delay), duration_ns);
            return self.follow(query, logql, extract, start_ns, grace_ns);
        }
        self.history(logql, start_ns, end_ns, query.after, extract)
    }

    async fn write(&self, run: &Run, mut data: ByteStream) -> Result<WriteSummary> {
        let mut labels = self.template.static_labels.clone();
        labels.push((
            self.template.namespace_key.clone(),
            run.log.parent().to_owned(),
        ));
        // One stream per run: Loki refuses entries too far behind the newest
        // of their stream, and an upload's lines carry the run's times.
        labels.push((RUN_LABEL.to_owned(), run.uid.clone()));
        let labels = push::labels_text(&labels).map_err(|reason| Error::InvalidArgument {
            message: format!("the stream labels of pushed lines are invalid: {reason}"),
        })?;
        let mut shape = self.shape.clone();
        if run.kind == RunKind::PipelineRun {
            shape.uid_path = self.template.pipelinerun_uid_key.clone();
        }
        shape.validate().map_err(|reason| Error::InvalidArgument {
            message: format!("the JSON paths of pushed lines conflict: {reason}"),
        })?;
        let mut upload = Upload {
            backend: self,
            labels,
            shape,
            uid: &run.uid,
            splitter: LineSplitter::new(PUSH_MAX_LINE_BYTES),
            next_ts: upload_base_ns(run),
            batcher: Batcher::new(PUSH_BATCH_BYTES, PUSH_BATCH_LINES),
        };
        let mut bytes = 0u64;
        let mut batch_started: Option<tokio::time::Instant> = None;
        loop {
            // A batch waits at most PUSH_BATCH_AGE from its first line.
            if upload.batcher.is_empty() {
                batch_started = None;
            } else if batch_started.is_none() {
                batch_started = Some(tokio::time::Instant::now());
            }
            let next = match batch_started {
                None => data.next().await,
                Some(started) => {
                    match tokio::time::timeout_at(started + PUSH_BATCH_AGE, data.next()).await {
                        Ok(next) => next,
                        Err(_) => {
                            upload.flush().await?;
                            continue;
                        }
                    }
                }
            };
            let Some(chunk) = next else { break };
            let chunk = chunk?;
            bytes += chunk.len() as u64;
            for line in upload.splitter.push(&chunk) {
                upload.add(&line).await?;
            }
        }
        let splitter =
            std::mem::replace(&mut upload.splitter, LineSplitter::new(PUSH_MAX_LINE_BYTES));
        for line in splitter.finish() {
            upload.add(&line).await?;
        }
        upload.flush().await?;
        Ok(WriteSummary { bytes })
    }

    async fn delete(&self, _run: &Run) -> Result<()> {
        Err(Error::Unsupported {
            provider: PROVIDER,
            operation: "deleting logs",
        })
    }

    async fn check(&self) -> Result<()> {
        self.client.check().await
    }

    fn warnings(&self) -> Vec<String> {
        self.plan_fallback
            .iter()
            .map(|reason| {
                format!(
                    "{LOGGING_PLUGIN_QUERY_PLAN} is connector, but Loki runs the query's \
                     pipeline (the Loki plan): {reason}"
                )
            })
            .collect()
    }

    fn read_container(&self, query: ContainerQuery) -> PageStream {
        let now = now_ns();
        let start_ns = query
            .start_ns
            .unwrap_or_else(|| now.saturating_sub(duration_ns(self.lookback)));
        let end_ns = query.completion_ns.map_or(now.saturating_add(1), |done| {
            done.saturating_add(duration_ns(self.forwarder_delay))
        });
        // A completion older than the look-back, without a start: the
        // look-back before the completion.
        let start_ns = if start_ns < end_ns {
            start_ns
        } else {
            end_ns.saturating_sub(duration_ns(self.lookback))
        };
        let logql = self
            .template
            .for_container(&query.namespace, &query.pod, &query.container);
        tracing::debug!(%logql, start_ns, end_ns, "reading a container's log from loki");
        self.history(logql, start_ns, end_ns, None, None)
    }

    fn follow_settle(&self) -> Duration {
        self.settle
    }

    fn fields(&self) -> RecordFields {
        RecordFields {
            times: true,
            containers: self.template.container_key.is_some(),
        }
    }
}
