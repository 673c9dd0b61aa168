//! Following a running run: history up to (now − settle), then the same
//! pager again from the last delivered position each time new lines may have
//! arrived, until the run's range has ended.
//!
//! Loki's tail websocket (`/loki/api/v1/tail`) is used as the wake-up signal,
//! not as the data source: its frames carry other labels than `query_range`
//! answers (no structured metadata without categorize-labels), drop entries
//! for slow readers (`dropped_entries`), replay only the last `limit` lines
//! and end after `tail_max_duration`. Reading the lines with `query_range`
//! from the last position makes every switch (history to live, reconnect,
//! dropped entries) gap-free and duplicate-free by construction, with the same
//! order and positions as a history read. When the socket cannot be used
//! (closed, refused, or TLS settings it cannot honour) the follower polls.
//!
//! Lines are released once they are `settle` old (`LOGGING_PLUGIN_FOLLOW_SETTLE_MS`,
//! 2 s by default), so lines a forwarder ships
//! a little late still come in order; a line that arrives later than that
//! behind an already delivered one is not sent live (a later read has it).

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::client::LokiClient;
use super::history::{self, HistoryQuery};
use super::wire::TailFrame;
use crate::backend::{Completion, Result};
use crate::record::{Page, Position};
use crate::timestamp::now_ns;

/// The longest wait between two reads while following, tail frames or not.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// What to follow.
#[derive(Debug, Clone)]
pub struct FollowQuery {
    /// The LogQL query.
    pub logql: String,
    /// Start of the run's range (ns, inclusive).
    pub start_ns: i64,
    /// End of the run's range (ns, exclusive) when the run has completed;
    /// `None` while it runs: follow until `completion` says it has ended
    /// (then to its completion plus `forwarder_delay_ns`), or until the
    /// client goes away.
    pub end_ns: Option<i64>,
    /// Where the run's completion is learnt while following.
    pub completion: Completion,
    /// How long after a run's completion the follow keeps reading (the
    /// forwarder delay, or the query's `follow_grace`).
    pub forwarder_delay_ns: i64,
    /// Page size.
    pub limit: u32,
    /// Deliver only what comes after this position.
    pub after: Option<Position>,
    /// How old a line must be before it is released.
    pub settle: Duration,
}

/// History, then live lines, in order, each once.
pub fn pages(client: Arc<LokiClient>, query: FollowQuery) -> impl Stream<Item = Result<Page>> {
    async_stream::try_stream! {
        let mut last = query.after;
        let settle_ns = duration_ns(query.settle);
        let mut wake = Wake::new(client.clone(), query.logql.clone(), query.settle);
        let mut completion = query.completion.clone();
        loop {
            let released = now_ns().saturating_sub(settle_ns);
            let end_ns = query.end_ns.or_else(|| {
                completion
                    .latest()
                    .map(|done| done.saturating_add(query.forwarder_delay_ns))
            });
            let upto = end_ns.map_or(released, |end| end.min(released));
            let from_ok = last.is_none_or(|p| p.ts_ns < upto);
            if upto > query.start_ns && from_ok {
                let mut pages = history::pages(
                    client.clone(),
                    HistoryQuery {
                        logql: query.logql.clone(),
                        start_ns: query.start_ns,
                        end_ns: upto,
                        limit: query.limit,
                        after: last,
                    },
                )
                .boxed();
                while let Some(page) = pages.next().await {
                    let page = page?;
                    last = page.records.last().map(|r| r.position).or(last);
                    yield page;
                }
            }
            if end_ns.is_some_and(|end| released >= end) {
                break;
            }
            match end_ns {
                // The end is known: no need to watch for it.
                Some(end) => {
                    let until_end = u64::try_from(end.saturating_sub(released)).unwrap_or(0);
                    tokio::select! {
                        () = wake.wait() => {}
                        () = tokio::time::sleep(Duration::from_nanos(until_end)) => {}
                    }
                }
                None => tokio::select! {
                    () = wake.wait() => {}
                    () = completion.changed() => {}
                },
            }
        }
    }
}

/// Waits for a reason to read again: tail frames (then until their newest
/// line is as old as the settle delay, so the lines are released), or
/// `POLL_INTERVAL`.
struct Wake {
    client: Arc<LokiClient>,
    logql: String,
    settle: Duration,
    socket: Option<Socket>,
    /// When the socket last failed; no new attempt before `POLL_INTERVAL`.
    failed_at: Option<tokio::time::Instant>,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Wake {
    fn new(client: Arc<LokiClient>, logql: String, settle: Duration) -> Self {
        Self {
            client,
            logql,
            settle,
            socket: None,
            failed_at: None,
        }
    }

    async fn wait(&mut self) {
        let deadline = tokio::time::Instant::now() + POLL_INTERVAL;
        if self.socket.is_none() && self.failed_at.is_none_or(|t| t.elapsed() >= POLL_INTERVAL) {
            let connected = tokio::time::timeout_at(deadline, self.connect())
                .await
                .unwrap_or_else(|_| Err("the tail handshake timed out".to_owned()));
            match connected {
                Ok(socket) => self.socket = Some(socket),
                Err(error) => {
                    tracing::debug!(%error, "loki tail unavailable; polling");
                    self.failed_at = Some(tokio::time::Instant::now());
                }
            }
        }
        let Some(socket) = self.socket.as_mut() else {
            tokio::time::sleep_until(deadline).await;
            return;
        };
        loop {
            match tokio::time::timeout_at(deadline, socket.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(text)))) => {
                    // Frames that queued meanwhile count as one: one read.
                    let mut newest = TailFrame::newest_ns(&text);
                    while let Some(next) = socket.next().now_or_never() {
                        match next {
                            Some(Ok(Message::Text(text))) => {
                                newest = newest.max(TailFrame::newest_ns(&text));
                            }
                            Some(Ok(Message::Close(_) | Message::Frame(_)) | Err(_)) | None => {
                                self.socket = None;
                                self.failed_at = Some(tokio::time::Instant::now());
                                break;
                            }
                            Some(Ok(_)) => {}
                        }
                    }
                    // Read once the newest line has settled (a read's end is
                    // exclusive, hence the 1 ns), and no later than the settle
                    // delay from now (for a clock ahead of ours).
                    let wait = newest.map_or(self.settle, |newest| {
                        let due = newest
                            .saturating_add(duration_ns(self.settle))
                            .saturating_add(1);
                        let left = u64::try_from(due.saturating_sub(now_ns())).unwrap_or(0);
                        Duration::from_nanos(left).min(self.settle)
                    });
                    tokio::time::sleep(wait).await;
                    return;
                }
                Ok(Some(Ok(Message::Binary(_)))) => {
                    tokio::time::sleep(self.settle).await;
                    return;
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    // Loki ends tails after tail_max_duration (1011), and refuses
                    // extra tails with a close right after the upgrade: wait out
                    // the interval before reading or reconnecting, never spin.
                    tracing::debug!(?frame, "loki closed the tail");
                    self.socket = None;
                    self.failed_at = Some(tokio::time::Instant::now());
                    tokio::time::sleep_until(deadline).await;
                    return;
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(error))) => {
                    tracing::debug!(%error, "loki tail failed");
                    self.socket = None;
                    self.failed_at = Some(tokio::time::Instant::now());
                    tokio::time::sleep_until(deadline).await;
                    return;
                }
                Ok(None) => {
                    self.socket = None;
                    self.failed_at = Some(tokio::time::Instant::now());
                    tokio::time::sleep_until(deadline).await;
                    return;
                }
            }
        }
    }

    async fn connect(&self) -> std::result::Result<Socket, String> {
        let url = self.client.tail_url(&self.logql, now_ns())?;
        let mut request = url.into_client_request().map_err(|e| e.to_string())?;
        for (name, value) in self
            .client
            .auth_headers()
            .await
            .map_err(|e| e.to_string())?
        {
            request.headers_mut().insert(name, value);
        }
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| e.to_string())?;
        Ok(socket)
    }
}

fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}
