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
use super::duration_ns;
use super::history::{self, HistoryQuery};
use super::plan::Extraction;
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
    /// With the connector plan: what to do to the raw lines.
    pub extract: Option<Arc<Extraction>>,
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
                        extract: query.extract.clone(),
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
                        () = wake.wait(upto) => {}
                        () = tokio::time::sleep(Duration::from_nanos(until_end)) => {}
                    }
                }
                None => tokio::select! {
                    () = wake.wait(upto) => {}
                    () = completion.changed() => {}
                },
            }
        }
    }
}

/// Waits for a reason to read again: a line seen in a tail frame that has
/// become as old as the settle delay (so a read releases it), or
/// `POLL_INTERVAL`. Frames are remembered until a read has covered their
/// lines, so a burst is released line by line as it settles, in reads at
/// most one per eighth of the settle delay (one page for many lines).
struct Wake {
    client: Arc<LokiClient>,
    logql: String,
    settle: Duration,
    socket: Option<Socket>,
    /// When the socket last failed; no new attempt before `POLL_INTERVAL`.
    failed_at: Option<tokio::time::Instant>,
    /// `(oldest, newest)` line times of the frames seen and not yet read.
    seen: std::collections::VecDeque<(i64, i64)>,
    /// When the last wait ended (a read follows each).
    last_read: Option<tokio::time::Instant>,
}

/// Frames remembered at most; more are merged into the newest.
const MAX_SEEN_FRAMES: usize = 1024;

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
            seen: std::collections::VecDeque::new(),
            last_read: None,
        }
    }

    /// Waits until the next read is due; `read_end` is the exclusive end of
    /// the read just made (every line before it has been read).
    async fn wait(&mut self, read_end: i64) {
        self.seen.retain(|&(_, newest)| newest >= read_end);
        let deadline = tokio::time::Instant::now() + POLL_INTERVAL;
        if self.seen.is_empty() && !self.next_frames(deadline).await {
            return;
        }
        // Frames that queued meanwhile are taken now: one read for all.
        self.take_queued();
        let oldest = self
            .seen
            .iter()
            .map(|&(oldest, _)| oldest.max(read_end))
            .min();
        let settle_ns = duration_ns(self.settle);
        // A read's end is exclusive, hence the 1 ns; never later than the
        // settle delay from now (for a clock ahead of ours).
        let left = oldest.map_or(settle_ns, |oldest| {
            let due = oldest.saturating_add(settle_ns).saturating_add(1);
            due.saturating_sub(now_ns()).clamp(0, settle_ns)
        });
        let mut wake_at =
            tokio::time::Instant::now() + Duration::from_nanos(u64::try_from(left).unwrap_or(0));
        if let Some(last) = self.last_read {
            wake_at = wake_at.max(last + self.settle / 8);
        }
        tokio::time::sleep_until(wake_at).await;
        self.last_read = Some(tokio::time::Instant::now());
    }

    /// Waits for the next tail frame, up to `deadline`; false when the wait
    /// ended without one (then it has waited until `deadline`, or for a
    /// frame without lines, the settle delay).
    async fn next_frames(&mut self, deadline: tokio::time::Instant) -> bool {
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
            return false;
        };
        loop {
            let message = match tokio::time::timeout_at(deadline, socket.next()).await {
                Err(_) => return false,
                Ok(message) => message,
            };
            match message {
                Some(Ok(Message::Text(text))) => {
                    if self.remember(&text) {
                        return true;
                    }
                    // Only dropped entries: a read finds them.
                    tokio::time::sleep(self.settle).await;
                    return false;
                }
                Some(Ok(Message::Binary(_))) => {
                    tokio::time::sleep(self.settle).await;
                    return false;
                }
                Some(Ok(Message::Close(frame))) => {
                    // Loki ends tails after tail_max_duration (1011), and refuses
                    // extra tails with a close right after the upgrade: wait out
                    // the interval before reading or reconnecting, never spin.
                    tracing::debug!(?frame, "loki closed the tail");
                    self.lost();
                    tokio::time::sleep_until(deadline).await;
                    return false;
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => {
                    tracing::debug!(%error, "loki tail failed");
                    self.lost();
                    tokio::time::sleep_until(deadline).await;
                    return false;
                }
                None => {
                    self.lost();
                    tokio::time::sleep_until(deadline).await;
                    return false;
                }
            }
        }
    }

    /// Remembers the frames already waiting on the socket.
    fn take_queued(&mut self) {
        while let Some(next) = self.socket.as_mut().and_then(|s| s.next().now_or_never()) {
            match next {
                Some(Ok(Message::Text(text))) => {
                    self.remember(&text);
                }
                Some(Ok(Message::Close(_) | Message::Frame(_)) | Err(_)) | None => self.lost(),
                Some(Ok(_)) => {}
            }
        }
    }

    /// Remembers a frame's line times; false when it has no lines.
    fn remember(&mut self, text: &str) -> bool {
        let Some(times) = TailFrame::line_times(text) else {
            return false;
        };
        let full = self.seen.len() >= MAX_SEEN_FRAMES;
        match self.seen.back_mut() {
            Some(last) if full => *last = (last.0.min(times.0), last.1.max(times.1)),
            _ => self.seen.push_back(times),
        }
        true
    }

    fn lost(&mut self) {
        self.socket = None;
        self.failed_at = Some(tokio::time::Instant::now());
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
