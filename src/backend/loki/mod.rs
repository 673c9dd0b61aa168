//! The Grafana Loki connector: complete history through `query_range`
//! (paged forward in time, never capped at the per-query limit), with the
//! LogQL upstream Tekton Results sends by default.
//!
//! - `query.rs` builds and escapes the LogQL;
//! - `client.rs` speaks HTTP (token, tenant, TLS, retries, errors);
//! - `wire.rs` parses answers;
//! - `history.rs` pages, merges streams and orders entries.
//!
//! The time range of a run is its start to its completion plus
//! `LOGGING_PLUGIN_FORWARDER_DELAY_DURATION` (forwarders ship lines late);
//! open-ended (now) while it runs; the last `LOGGING_PLUGIN_LOOKBACK_DURATION`
//! when its times are unknown.

pub mod client;
pub mod follow;
pub mod history;
pub mod query;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

use self::client::{now_ns, ClientSettings, LokiClient, PROVIDER};
use self::history::HistoryQuery;
use self::query::QueryTemplate;
use super::retry::RetryPolicy;
use super::{ByteStream, Error, LogBackend, LogQuery, PageStream, Result, WriteSummary};
use crate::config::Config;
use crate::run::{LogName, Run};

/// The Loki connector.
#[derive(Debug)]
pub struct LokiBackend {
    client: Arc<LokiClient>,
    template: QueryTemplate,
    limit: u32,
    forwarder_delay: Duration,
    lookback: Duration,
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
        Ok(Self {
            client: Arc::new(client),
            template: QueryTemplate {
                static_labels: plugin.static_labels.clone(),
                namespace_key: plugin.namespace_key.clone(),
                container_key: plugin.container_key.clone(),
                json_map: plugin.json_map.clone(),
                line_format: plugin.line_format.clone(),
                taskrun_uid_key: plugin.taskrun_uid_key.clone(),
                pipelinerun_uid_key: plugin.pipelinerun_uid_key.clone(),
            },
            limit: plugin.query_limit,
            forwarder_delay: plugin.forwarder_delay,
            lookback: plugin.lookback,
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
        let logql = self
            .template
            .for_run(query.run.log.parent(), query.run.kind, &query.run.uid);
        tracing::debug!(log = %query.run.log, %logql, start_ns, end_ns, follow = query.follow, "reading from loki");
        if query.follow {
            let end_ns = query.run.completion_ns.map(|_| end_ns);
            return follow::pages(
                self.client.clone(),
                follow::FollowQuery {
                    logql,
                    start_ns,
                    end_ns,
                    limit: self.limit,
                    after: query.after,
                },
            )
            .boxed();
        }
        history::pages(
            self.client.clone(),
            HistoryQuery {
                logql,
                start_ns,
                end_ns,
                limit: self.limit,
                after: query.after,
            },
        )
        .boxed()
    }

    async fn write(&self, _name: &LogName, _data: ByteStream) -> Result<WriteSummary> {
        Err(Error::Unsupported {
            provider: PROVIDER,
            operation: "storing uploads",
        })
    }

    async fn delete(&self, _name: &LogName) -> Result<()> {
        Err(Error::Unsupported {
            provider: PROVIDER,
            operation: "deleting logs",
        })
    }

    async fn check(&self) -> Result<()> {
        self.client.check().await
    }
}
