//! Run resolution from the Tekton Results PostgreSQL database (schema:
//! `migrations/0001_results_records.sql`, upstream's): the record the log
//! name points at (`parent`, `result_name`, `name`), read through a bounded
//! connection pool, retried with backoff while the database is unreachable,
//! and cached briefly so a follower does not query per line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use super::tekton::{self, RecordTarget};
use super::{LogName, ResolveError, Run, RunKind, RunResolver};
use crate::backend::retry::RetryPolicy;
use crate::config::DbConfig;

/// How long a completed run stays cached: its record no longer changes.
const COMPLETED_TTL: Duration = Duration::from_secs(300);

/// How long a running run stays cached: its completion must be seen soon.
const RUNNING_TTL: Duration = Duration::from_secs(2);

/// The most runs cached at once.
const CACHE_ENTRIES: usize = 10_000;

/// How long a request waits for a pooled connection, and for a new one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one lookup may take, connection included.
const QUERY_TIMEOUT: Duration = Duration::from_secs(15);

const RECORD_BY_NAME: &str = "SELECT type, data FROM records \
     WHERE parent = $1 AND result_name = $2 AND name = $3 \
     ORDER BY updated_time DESC NULLS LAST, id LIMIT 1";

/// The most child TaskRuns of one PipelineRun served.
pub const MAX_CHILDREN: i64 = 5_000;

/// The child TaskRuns of a PipelineRun: the TaskRun records of its result
/// (where the watcher stores them) whose owner reference or
/// `tekton.dev/pipelineRunUID` label names the PipelineRun's UID, the newest
/// row of each name (names are not unique in the schema). Only the fields a
/// child's log needs are read, not whole TaskRun objects.
const CHILDREN: &str = "SELECT name, type, fields FROM (\
       SELECT DISTINCT ON (name) name, type, jsonb_build_object(\
           'metadata', jsonb_build_object(\
               'uid', data->'metadata'->'uid', \
               'name', data->'metadata'->'name', \
               'labels', jsonb_build_object('tekton.dev/pipelineTask', \
                   data->'metadata'->'labels'->'tekton.dev/pipelineTask')), \
           'status', jsonb_build_object(\
               'startTime', data->'status'->'startTime', \
               'completionTime', data->'status'->'completionTime', \
               'steps', data->'status'->'steps')) AS fields \
       FROM records \
       WHERE parent = $1 AND result_name = $2 AND name IS NOT NULL \
         AND type IN ('tekton.dev/v1.TaskRun', 'tekton.dev/v1beta1.TaskRun') \
         AND jsonb_typeof(data) = 'object' \
         AND (data->'metadata'->'labels'->>'tekton.dev/pipelineRunUID' = $3 \
              OR data->'metadata'->'ownerReferences' @> jsonb_build_array(jsonb_build_object('uid', $3::text))) \
       ORDER BY name, updated_time DESC NULLS LAST, id) AS newest \
     ORDER BY name LIMIT $4";

/// A bounded cache of what was read about runs: an entry made while its run
/// was running lives `RUNNING_TTL` (its completion must be seen soon), one
/// made after it completed `COMPLETED_TTL` (its record no longer changes).
#[derive(Debug)]
struct RunCache<K, V> {
    entries: Mutex<HashMap<K, (Instant, bool, V)>>,
}

fn ttl(complete: bool) -> Duration {
    if complete {
        COMPLETED_TTL
    } else {
        RUNNING_TTL
    }
}

impl<K: std::hash::Hash + Eq, V: Clone> RunCache<K, V> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The live entry for `key`; with `complete`, only one made when the run
    /// was in that state.
    fn get(&self, key: &K, complete: Option<bool>) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (at, made_complete, value) = entries.get(key)?;
        (complete.is_none_or(|c| c == *made_complete) && at.elapsed() < ttl(*made_complete))
            .then(|| value.clone())
    }

    fn put(&self, key: K, complete: bool, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CACHE_ENTRIES {
            entries.retain(|_, (at, complete, _)| at.elapsed() < ttl(*complete));
            if entries.len() >= CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), complete, value));
    }
}

/// Resolves log names through the Results database.
#[derive(Debug)]
pub struct DbResolver {
    pool: Pool,
    retry: RetryPolicy,
    /// Runs by the name they were asked for.
    runs: RunCache<LogName, Run>,
    /// TaskRuns of PipelineRuns, by the PipelineRun's record and UID:
    /// followers of one PipelineRun re-list them every few seconds.
    children: RunCache<(LogName, String), Arc<Vec<Run>>>,
}

impl DbResolver {
    /// A resolver for `config`; connections are made on first use.
    pub fn new(config: &DbConfig) -> Result<Self, ResolveError> {
        let mut pg = tokio_postgres::Config::new();
        pg.host(&config.host)
            .port(config.port)
            .dbname(&config.name)
            .user(&config.user)
            .connect_timeout(CONNECT_TIMEOUT)
            .application_name("tekton-results-logs");
        let (tls, ssl_mode) =
            super::db_tls::connector(config).map_err(|message| ResolveError::Unavailable {
                message: format!("setting up TLS to the database: {message}"),
            })?;
        pg.ssl_mode(ssl_mode);
        if !config.password.is_empty() {
            pg.password(&config.password);
        }
        let manager = Manager::from_config(
            pg,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| ResolveError::Unavailable {
                message: format!("creating the connection pool: {e}"),
            })?;
        Ok(Self {
            pool,
            retry: RetryPolicy::default(),
            runs: RunCache::new(),
            children: RunCache::new(),
        })
    }

    /// Runs a query, retrying while the database cannot be reached.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, ResolveError> {
        let mut attempt = 1;
        loop {
            let query = async {
                let client = self.pool.get().await.map_err(|e| describe(&e))?;
                client.query(sql, params).await.map_err(|e| describe(&e))
            };
            // A half-open connection must not hang a request.
            let outcome = tokio::time::timeout(QUERY_TIMEOUT, query)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {} s", QUERY_TIMEOUT.as_secs())));
            match outcome {
                Ok(rows) => return Ok(rows),
                Err(error) if attempt < self.retry.attempts => {
                    let wait = self.retry.delay(attempt, None);
                    tracing::warn!(attempt, %error, wait_ms = wait.as_millis() as u64, "run database query failed; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(error) => {
                    return Err(ResolveError::Unavailable {
                        message: format!("{attempt} attempts failed; last: {error}"),
                    })
                }
            }
        }
    }

    /// The type and data of the record `parent/result/name`.
    async fn record(
        &self,
        parent: &str,
        result: &str,
        name: &str,
    ) -> Result<Option<(String, serde_json::Value)>, ResolveError> {
        let rows = self
            .query(RECORD_BY_NAME, &[&parent, &result, &name])
            .await?;
        rows.into_iter()
            .next()
            .map(|row| {
                let record_type: String = row.try_get(0).map_err(column_error)?;
                let data: Option<serde_json::Value> = row.try_get(1).map_err(column_error)?;
                let data = data.ok_or_else(|| ResolveError::InvalidRecord {
                    name: format!("{parent}/results/{result}/records/{name}"),
                    reason: "the record has no data".to_owned(),
                })?;
                Ok((record_type, data))
            })
            .transpose()
    }
}

/// An error and its causes, `outer: inner: ...`: the pool's and the client's
/// own messages ("db error") say little without the server's reason.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn column_error(error: tokio_postgres::Error) -> ResolveError {
    ResolveError::Unavailable {
        message: format!("the records table has an unexpected shape: {error}"),
    }
}

#[async_trait]
impl RunResolver for DbResolver {
    async fn resolve(&self, name: &LogName) -> Result<Run, ResolveError> {
        if let Some(run) = self.runs.get(name, None) {
            return Ok(run);
        }
        let not_found = || ResolveError::NotFound {
            name: name.to_string(),
        };
        let (record_type, data) = self
            .record(name.parent(), name.result(), name.log())
            .await?
            .ok_or_else(not_found)?;
        let run = match tekton::target(name, name.log(), &record_type, &data)? {
            RecordTarget::Run(run) => *run,
            RecordTarget::LogOf(uid) => {
                // A Log record: its run's record in the same result.
                let (record_type, data) = self
                    .record(name.parent(), name.result(), &uid)
                    .await?
                    .ok_or_else(|| ResolveError::InvalidRecord {
                        name: name.to_string(),
                        reason: format!(
                            "the Log record points at run record {uid:?}, which does not exist"
                        ),
                    })?;
                match tekton::target(name, &uid, &record_type, &data)? {
                    RecordTarget::Run(run) => *run,
                    RecordTarget::LogOf(_) => {
                        return Err(ResolveError::InvalidRecord {
                            name: name.to_string(),
                            reason: "the Log record points at another Log record".to_owned(),
                        })
                    }
                }
            }
        };
        self.runs
            .put(run.log.clone(), run.is_complete(), run.clone());
        Ok(run)
    }

    async fn children(&self, run: &Run) -> Result<Vec<Run>, ResolveError> {
        if run.kind != RunKind::PipelineRun {
            return Ok(Vec::new());
        }
        // A running PipelineRun gains TaskRuns: its list is kept briefly,
        // and a list made while it ran is never used once it has completed.
        let key = (run.record.clone(), run.uid.clone());
        if let Some(children) = self.children.get(&key, Some(run.is_complete())) {
            return Ok(children.as_ref().clone());
        }
        let (parent, result) = (run.record.parent(), run.record.result());
        let rows = self
            .query(CHILDREN, &[&parent, &result, &run.uid, &(MAX_CHILDREN + 1)])
            .await?;
        if rows.len() as i64 > MAX_CHILDREN {
            return Err(ResolveError::InvalidRecord {
                name: run.log.to_string(),
                reason: format!("the PipelineRun has more than {MAX_CHILDREN} TaskRuns"),
            });
        }
        let mut children = Vec::with_capacity(rows.len());
        for row in rows {
            let name: String = row.try_get(0).map_err(column_error)?;
            let record_type: String = row.try_get(1).map_err(column_error)?;
            let data: serde_json::Value = row.try_get(2).map_err(column_error)?;
            if let Some(child) = tekton::child(&run.log, result, &name, &record_type, &data)? {
                children.push(child);
            }
        }
        // Rows come in name order, so equal start times stay in name order.
        children.sort_by_key(|child| child.start_ns);
        self.children
            .put(key, run.is_complete(), Arc::new(children.clone()));
        Ok(children)
    }

    async fn check(&self) -> Result<(), ResolveError> {
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| ResolveError::Unavailable {
                message: describe(&e),
            })?;
        client
            .query_opt("SELECT 1 FROM records LIMIT 1", &[])
            .await
            .map_err(|e| ResolveError::Unavailable {
                message: format!("reading the records table: {}", describe(&e)),
            })?;
        Ok(())
    }
}
