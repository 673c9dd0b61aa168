//! Complete history from `query_range`, which has no cursor: pages move
//! forward in time. Each full page's last timestamp is held back and becomes
//! the next page's (inclusive) start, so every entry at a timestamp is
//! delivered together, once: identical timestamps across a page boundary
//! neither repeat nor vanish. Entries of one timestamp are ordered by
//! (stream labels, line), which makes `Position { ts_ns, seq }` (seq = rank
//! within the timestamp) stable across queries, so a reader can resume after
//! any record. A window longer than Loki's `max_query_length` is split.
//!
//! The next page is requested as soon as a page is parsed, while that page
//! goes to the reader: one page ahead at most, so the reader does not wait
//! for Loki between pages, and a reader that stops holds two pages at most.
//!
//! See log-providers reference §1.3 and Loki's `pkg/logcli/query/query.go`.

use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;

use super::client::LokiClient;
use super::plan::Extraction;
use super::wire::QueryResponse;
use crate::backend::{Error, Result};
use crate::record::{LogRecord, OutputStream, Page, Position};

/// The longest window one query covers: 30 days and 30 minutes, under Loki's
/// default `max_query_length` of 30d1h (and over the default look-back of 30
/// days, which then takes one query, not two).
pub const MAX_WINDOW_NS: i64 = (30 * 24 * 3600 + 1800) * 1_000_000_000;

/// Loki's default `max_entries_limit_per_query`: the page size tried when one
/// timestamp holds more entries than `LOGGING_PLUGIN_QUERY_LIMIT`.
pub const MAX_ENTRIES: u32 = 5000;

/// What to page through.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    /// The LogQL query.
    pub logql: String,
    /// The time range, `[start, end)` in ns.
    pub start_ns: i64,
    /// The exclusive end.
    pub end_ns: i64,
    /// Page size (`LOGGING_PLUGIN_QUERY_LIMIT`).
    pub limit: u32,
    /// Deliver only what comes after this position.
    pub after: Option<Position>,
    /// With the connector plan: what to do to the raw lines Loki returns.
    pub extract: Option<Arc<Extraction>>,
}

/// `[start, end)` cut into windows of at most `MAX_WINDOW_NS`.
pub fn windows(start_ns: i64, end_ns: i64) -> impl Iterator<Item = (i64, i64)> {
    let mut next = start_ns;
    std::iter::from_fn(move || {
        if next >= end_ns {
            return None;
        }
        let window = (next, next.saturating_add(MAX_WINDOW_NS).min(end_ns));
        next = window.1;
        Some(window)
    })
}

/// One entry of a page, with what orders it.
struct Merged {
    ts_ns: i64,
    labels: Arc<str>,
    container: Option<Arc<str>>,
    line: String,
}

/// All entries of a response, merged across result streams and sorted by
/// (timestamp, stream labels, line), each once (Loki answers an entry once
/// per stream; the connector plan may produce one twice).
fn merge(response: QueryResponse) -> Vec<Merged> {
    let mut entries = Vec::new();
    for stream in response.data.result {
        let labels: Arc<str> = stream
            .stream
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(",")
            .into();
        let container: Option<Arc<str>> = stream.stream.get("container").map(|c| c.as_str().into());
        for entry in stream.values {
            entries.push(Merged {
                ts_ns: entry.ts_ns,
                labels: labels.clone(),
                container: container.clone(),
                line: entry.line,
            });
        }
    }
    entries
        .sort_unstable_by(|a, b| (a.ts_ns, &a.labels, &a.line).cmp(&(b.ts_ns, &b.labels, &b.line)));
    entries.dedup_by(|a, b| a.ts_ns == b.ts_ns && a.labels == b.labels && a.line == b.line);
    entries
}

/// How many entries an answer has, and their time span, as Loki sent it.
struct RawCount {
    entries: usize,
    first_ns: Option<i64>,
    last_ns: Option<i64>,
}

impl RawCount {
    fn of(response: &QueryResponse) -> Self {
        let times = || {
            response
                .data
                .result
                .iter()
                .flat_map(|s| s.values.iter().map(|e| e.ts_ns))
        };
        Self {
            entries: response.data.result.iter().map(|s| s.values.len()).sum(),
            first_ns: times().min(),
            last_ns: times().max(),
        }
    }
}

/// A `query_range` request running ahead of the reader; cancelled when the
/// reader goes.
struct Prefetch {
    start_ns: i64,
    task: tokio::task::JoinHandle<Result<QueryResponse>>,
}

impl Prefetch {
    fn spawn(client: &Arc<LokiClient>, query: &HistoryQuery, start_ns: i64, end_ns: i64) -> Self {
        let (client, logql) = (client.clone(), query.logql.clone());
        let (limit, categorize) = (query.limit, query.extract.is_some());
        Self {
            start_ns,
            task: tokio::spawn(async move {
                client
                    .query_range(&logql, start_ns, end_ns, limit, categorize)
                    .await
            }),
        }
    }

    async fn answer(mut self) -> Result<QueryResponse> {
        (&mut self.task).await.map_err(|e| {
            Error::internal(
                super::client::PROVIDER,
                format!("a page request failed: {e}"),
            )
        })?
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Records of merged entries before `cut` and after `after`, positioned by
/// rank within their timestamp.
fn page_records(entries: Vec<Merged>, cut: i64, after: Option<Position>) -> Vec<LogRecord> {
    let mut records = Vec::with_capacity(entries.len());
    let mut group: Option<(i64, u64)> = None;
    for entry in entries.into_iter().take_while(|e| e.ts_ns < cut) {
        let seq = match group {
            Some((ts, seq)) if ts == entry.ts_ns => seq + 1,
            _ => 0,
        };
        group = Some((entry.ts_ns, seq));
        let position = Position {
            ts_ns: entry.ts_ns,
            seq,
        };
        if after.is_some_and(|after| position <= after) {
            continue;
        }
        records.push(LogRecord {
            position,
            ts_ns: Some(entry.ts_ns),
            task: None,
            task_run: None,
            container: entry.container,
            stream: OutputStream::Unknown,
            message: Bytes::from(entry.line),
            terminated: true,
        });
    }
    records
}

/// A whole answer as records in log order: its streams merged, entries
/// ordered and positioned as a page of the history is (the merge stage of a
/// read, public for the stage benches).
pub fn records_of(response: QueryResponse) -> Vec<LogRecord> {
    page_records(merge(response), i64::MAX, None)
}

/// The pages of the log, in order, each entry once.
pub fn pages(client: Arc<LokiClient>, query: HistoryQuery) -> impl Stream<Item = Result<Page>> {
    async_stream::try_stream! {
        if let Some(after) = query.after {
            if after.ts_ns >= query.end_ns {
                Err(Error::InvalidArgument {
                    message: format!(
                        "position {}:{} is after the end of the log's time range",
                        after.ts_ns, after.seq
                    ),
                })?;
            }
        }
        for (window_start, window_end) in windows(query.start_ns, query.end_ns) {
            let mut start = match query.after {
                Some(after) if after.ts_ns >= window_end => continue,
                Some(after) => after.ts_ns.max(window_start),
                None => window_start,
            };
            let mut ahead: Option<Prefetch> = None;
            loop {
                let mut limit = query.limit;
                let entries = loop {
                    let response = match ahead.take() {
                        Some(fetch) if fetch.start_ns == start && limit == query.limit => fetch.answer().await?,
                        _ => client.query_range(&query.logql, start, window_end, limit, query.extract.is_some()).await?,
                    };
                    // Paging goes by what Loki returned, before the connector
                    // drops the lines that are not the run's.
                    let raw = RawCount::of(&response);
                    let response = match &query.extract {
                        Some(extract) => extract.apply(response),
                        None => response,
                    };
                    let entries = merge(response);
                    if raw.entries >= limit as usize && raw.first_ns == raw.last_ns {
                        if limit < MAX_ENTRIES {
                            limit = MAX_ENTRIES;
                            continue;
                        }
                        Err(Error::internal(
                            super::client::PROVIDER,
                            format!(
                                "{} or more lines share the timestamp {start}; query_range cannot page past them \
                                 (raise Loki's max_entries_limit_per_query)",
                                raw.entries
                            ),
                        ))?;
                    }
                    break (entries, raw);
                };
                let (entries, raw) = entries;
                let full = raw.entries >= limit as usize;
                // A full page may end inside a timestamp: hold it back.
                let cut = match (full, raw.last_ns) {
                    (true, Some(last)) => last,
                    _ => i64::MAX,
                };
                let records = page_records(entries, cut, query.after);
                if full {
                    // The next page is fetched while this one is read.
                    start = cut;
                    ahead = Some(Prefetch::spawn(&client, &query, start, window_end));
                }
                if !records.is_empty() {
                    yield Page { records };
                }
                if !full {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_range_without_overlap() {
        let m = MAX_WINDOW_NS;
        let w: Vec<_> = windows(0, 2 * m + 5).collect();
        assert_eq!(w, vec![(0, m), (m, 2 * m), (2 * m, 2 * m + 5)]);
        // The default look-back (30 days) up to now is one query.
        let thirty_days = 30 * 24 * 3600 * 1_000_000_000i64;
        assert_eq!(windows(0, thirty_days + 1).count(), 1);
        assert_eq!(windows(5, 5).count(), 0);
        assert_eq!(windows(9, 5).count(), 0);
        assert_eq!(
            windows(i64::MAX - 10, i64::MAX).collect::<Vec<_>>(),
            vec![(i64::MAX - 10, i64::MAX)]
        );
    }
}
