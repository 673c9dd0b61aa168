//! Shared live tails: every follower of one log reads the live part of it
//! from one upstream tail (a hub), not from a tail of its own.
//!
//! A hub starts at an origin position (what is older is history) and
//! publishes each page it reads into a ring of `capacity` pages that all its
//! followers read. It never waits for a follower: the ring overwrites its
//! oldest page when full, so a slow follower slows nobody else. A follower:
//!
//! 1. subscribes to the ring and learns, in the same step, the position up to
//!    which the hub has published (`upto`): everything after `upto` reaches
//!    the ring after the subscription;
//! 2. reads history from its own position up to `upto` (its cursor, if the
//!    client resumes);
//! 3. then takes the ring's pages, skipping what it already has.
//!
//! A follower the ring has overtaken (its client was slow) is told so by the
//! ring; it goes back to step 1 from the last record it delivered, so it loses
//! nothing. When the hub ends (the run's range has ended, or the upstream
//! failed) the ring closes; a follower reads history up to the hub's last
//! position, then ends (or fails with the hub's error). The hub's task stops,
//! and its upstream tail closes, when its last follower leaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use futures::StreamExt;
use tokio::sync::{broadcast, watch};

use super::{Completion, Error, PageStream, Result};
use crate::record::{Page, Position};
use crate::telemetry::names;
use crate::timestamp::now_ns;

/// Reads the records after a position (exclusive; `None`: from the start) up
/// to another (inclusive), in order: what a follower catches up with.
pub type History = Arc<dyn Fn(Option<Position>, Position) -> PageStream + Send + Sync>;

/// Starts the upstream tail of a new hub: the pages after the hub's origin,
/// until the run's range has ended, given where the run's completion is
/// learnt.
pub type Upstream = Box<dyn FnOnce(Completion) -> PageStream + Send>;

/// One log to follow through a shared tail.
pub struct Tail {
    /// Followers with the same key share a hub: the same upstream query,
    /// for the same time range.
    pub key: String,
    /// Where a new hub starts: the upstream tail yields what comes after it.
    pub origin: Position,
    /// Starts the upstream tail of a new hub (unused when one runs already).
    pub upstream: Upstream,
    /// Reads history for this follower.
    pub history: History,
    /// The provider, for metrics.
    pub provider: &'static str,
}

/// The hubs of one backend, by key.
#[derive(Debug)]
pub struct Fanout {
    hubs: Mutex<HashMap<String, Weak<Hub>>>,
    capacity: usize,
}

impl Fanout {
    /// Hubs whose rings hold `capacity` pages each (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            hubs: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Follows `tail` from `after` (exclusive; `None`: from the start):
    /// history, then live pages, each record once and in order, until the
    /// hub ends. `completion` is this follower's knowledge of the run's
    /// completion; it is shared with the hub.
    pub fn follow(
        &self,
        tail: Tail,
        after: Option<Position>,
        completion: Completion,
    ) -> PageStream {
        let Tail {
            key,
            origin,
            upstream,
            history,
            provider,
        } = tail;
        let hub = self.hub(key, origin, upstream, provider);
        follower(hub, history, after, completion, provider).boxed()
    }

    /// Number of hubs running (for tests and metrics).
    pub fn hubs(&self) -> usize {
        lock(&self.hubs)
            .values()
            .filter(|hub| hub.strong_count() > 0)
            .count()
    }

    /// The running hub of `key`, or a new one.
    fn hub(
        &self,
        key: String,
        origin: Position,
        upstream: Upstream,
        provider: &'static str,
    ) -> Arc<Hub> {
        let mut hubs = lock(&self.hubs);
        hubs.retain(|_, hub| hub.strong_count() > 0);
        if let Some(hub) = hubs.get(&key).and_then(Weak::upgrade) {
            if lock(&hub.shared.state).outcome.is_none() {
                return hub;
            }
        }
        let hub = Hub::start(origin, upstream, self.capacity, provider);
        hubs.insert(key, Arc::downgrade(&hub));
        hub
    }
}

/// One shared upstream tail.
#[derive(Debug)]
struct Hub {
    shared: Arc<Shared>,
    task: tokio::task::AbortHandle,
}

/// What a hub's task and its followers share.
#[derive(Debug)]
struct Shared {
    state: Mutex<HubState>,
    /// The run's completion, as any follower learnt it.
    completion: watch::Sender<Option<i64>>,
}

#[derive(Debug)]
struct HubState {
    /// `None` once the hub has ended.
    ring: Option<broadcast::Sender<Arc<Page>>>,
    /// Every record up to here has been published (or precedes the origin).
    published: Position,
    /// How the hub ended, once it has.
    outcome: Option<Result<()>>,
}

impl Hub {
    fn start(
        origin: Position,
        upstream: Upstream,
        capacity: usize,
        provider: &'static str,
    ) -> Arc<Self> {
        let (ring, _) = broadcast::channel(capacity);
        let (completion, watching) = watch::channel(None);
        let shared = Arc::new(Shared {
            state: Mutex::new(HubState {
                ring: Some(ring),
                published: origin,
                outcome: None,
            }),
            completion,
        });
        let pages = upstream(Completion::watch(watching));
        let open = Open::new(shared.clone(), provider);
        let task = tokio::spawn(publish(open, pages)).abort_handle();
        Arc::new(Self { shared, task })
    }

    /// A receiver of the pages published from now on, and the position up to
    /// which pages were published before it.
    fn subscribe(&self) -> (Option<broadcast::Receiver<Arc<Page>>>, Position) {
        let state = lock(&self.shared.state);
        (
            state.ring.as_ref().map(broadcast::Sender::subscribe),
            state.published,
        )
    }

    /// Where the hub stopped and why (once its ring has closed).
    fn ended(&self) -> (Position, Option<Error>) {
        let state = lock(&self.shared.state);
        let error = match &state.outcome {
            Some(Err(error)) => Some(error.clone()),
            _ => None,
        };
        (state.published, error)
    }

    /// Tells the hub the run's completion, when a follower learnt it first.
    fn learn(&self, completion_ns: Option<i64>) {
        if let Some(done) = completion_ns {
            self.shared.completion.send_if_modified(|known| {
                let new = known.is_none();
                if new {
                    *known = Some(done);
                }
                new
            });
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        // The last follower has gone: close the upstream tail.
        self.task.abort();
    }
}

/// Held by a hub's task while its upstream tail is open (the gauge of open
/// tails). However the task ends, even by a panic, its followers see the
/// ring close and an outcome, so none waits forever and no new follower
/// joins it.
struct Open {
    shared: Arc<Shared>,
    provider: &'static str,
}

impl Open {
    fn new(shared: Arc<Shared>, provider: &'static str) -> Self {
        metrics::gauge!(names::UPSTREAM_TAILS, "provider" => provider).increment(1);
        Self { shared, provider }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!(names::UPSTREAM_TAILS, "provider" => self.provider).decrement(1);
        let mut state = lock(&self.shared.state);
        if state.outcome.is_none() {
            state.outcome = Some(Err(Error::internal(
                self.provider,
                "the shared tail of this log stopped unexpectedly",
            )));
        }
        state.ring = None;
    }
}

/// The hub's task: reads the upstream tail and publishes its pages.
async fn publish(open: Open, mut pages: PageStream) {
    let shared = &open.shared;
    let outcome = loop {
        match pages.next().await {
            Some(Ok(page)) => {
                let Some(last) = page.records.last().map(|r| r.position) else {
                    continue;
                };
                let state = &mut *lock(&shared.state);
                state.published = last;
                if let Some(ring) = &state.ring {
                    // No receivers is fine: a follower may be catching up.
                    let _ = ring.send(Arc::new(page));
                }
            }
            Some(Err(error)) => break Err(error),
            None => break Ok(()),
        }
    };
    lock(&shared.state).outcome = Some(outcome);
    // `open` goes now: the ring closes.
}

/// Counts a follower while it lives.
struct FollowerGauge(&'static str);

impl FollowerGauge {
    fn new(provider: &'static str) -> Self {
        metrics::gauge!(names::FOLLOWERS, "provider" => provider).increment(1);
        Self(provider)
    }
}

impl Drop for FollowerGauge {
    fn drop(&mut self) {
        metrics::gauge!(names::FOLLOWERS, "provider" => self.0).decrement(1);
    }
}

/// What a follower waits for.
enum Event {
    Page(Arc<Page>),
    Overtaken,
    Ended,
    Completion,
}

/// One follower: catch-up history, then the ring, again after being
/// overtaken, and the rest of the history when the hub ends.
fn follower(
    hub: Arc<Hub>,
    history: History,
    after: Option<Position>,
    mut completion: Completion,
    provider: &'static str,
) -> impl futures::Stream<Item = Result<Page>> {
    async_stream::try_stream! {
        let _gauge = FollowerGauge::new(provider);
        hub.learn(completion.latest());
        let mut last = after;
        loop {
            let (ring, upto) = hub.subscribe();
            if last.is_none_or(|last| last < upto) {
                let mut pages = history(last, upto);
                while let Some(page) = pages.next().await {
                    let page = page?;
                    last = page.records.last().map(|r| r.position).or(last);
                    yield page;
                }
                // Nothing else up to `upto` exists (and the ring has what follows).
                last = last.max(Some(upto));
            }
            let Some(mut ring) = ring else {
                // The hub has ended: the rest is history, up to where it stopped.
                let (end, error) = hub.ended();
                if last.is_none_or(|last| last < end) {
                    let mut pages = history(last, end);
                    while let Some(page) = pages.next().await {
                        yield page?;
                    }
                }
                if let Some(error) = error {
                    Err(error)?;
                }
                break;
            };
            loop {
                let event = tokio::select! {
                    received = ring.recv() => match received {
                        Ok(page) => Event::Page(page),
                        Err(broadcast::error::RecvError::Lagged(_)) => Event::Overtaken,
                        Err(broadcast::error::RecvError::Closed) => Event::Ended,
                    },
                    () = completion.changed() => Event::Completion,
                };
                match event {
                    Event::Page(page) => {
                        let records: Vec<_> = page
                            .records
                            .iter()
                            .filter(|r| last.is_none_or(|last| r.position > last))
                            .cloned()
                            .collect();
                        if let Some(newest) = records.last() {
                            last = Some(newest.position);
                            if let Some(ts) = newest.ts_ns {
                                let lag = now_ns().saturating_sub(ts).max(0) as f64 / 1e9;
                                metrics::histogram!(names::FOLLOWER_LAG, "provider" => provider).record(lag);
                            }
                            yield Page { records };
                        }
                    }
                    Event::Overtaken => {
                        metrics::counter!(names::FOLLOWER_FALLBACKS, "provider" => provider).increment(1);
                        break;
                    }
                    Event::Ended => break,
                    Event::Completion => hub.learn(completion.latest()),
                }
            }
            // Overtaken: subscribe again and read what was missed from
            // history. Ended: the next subscription has no ring.
            drop(ring);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::LogRecord;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn record(i: usize) -> LogRecord {
        let position = Position {
            ts_ns: i as i64 / 3,
            seq: i as u64 % 3,
        };
        LogRecord::text(position, Bytes::from(format!("line {i}")), true)
    }

    /// History over what has been stored so far, in pages of 3.
    fn history(stored: Arc<Mutex<Vec<LogRecord>>>) -> History {
        Arc::new(move |after: Option<Position>, upto: Position| {
            let records: Vec<_> = lock(&stored)
                .iter()
                .filter(|r| after.is_none_or(|a| r.position > a) && r.position <= upto)
                .cloned()
                .collect();
            let pages: Vec<Result<Page>> = records
                .chunks(3)
                .map(|c| {
                    Ok(Page {
                        records: c.to_vec(),
                    })
                })
                .collect();
            futures::stream::iter(pages).boxed()
        })
    }

    async fn run(
        page_sizes: Vec<usize>,
        capacity: usize,
        stalls: Vec<Option<usize>>,
        resume: usize,
    ) {
        let total: usize = page_sizes.iter().sum();
        let stored = Arc::new(Mutex::new(Vec::new()));
        let fanout = Fanout::new(capacity);
        let (feed, upstream) = tokio::sync::mpsc::channel::<Page>(1);
        let upstream: Upstream = Box::new(move |_| {
            tokio_stream::wrappers::ReceiverStream::new(upstream)
                .map(Ok)
                .boxed()
        });
        let origin = Position {
            ts_ns: -1,
            seq: u64::MAX,
        };
        let (release, released) = watch::channel(false);
        let mut readers = Vec::new();
        let mut upstream = Some(upstream);
        for (n, stall) in stalls.into_iter().enumerate() {
            // The first follower starts the hub; the others share it, one
            // of them resuming after a record.
            let after = (n == 1 && resume < total).then(|| record(resume).position);
            let pages = fanout.follow(
                Tail {
                    key: "run".to_owned(),
                    origin,
                    upstream: upstream
                        .take()
                        .unwrap_or_else(|| Box::new(|_| unreachable!())),
                    history: history(stored.clone()),
                    provider: "test",
                },
                after,
                Completion::default(),
            );
            let mut released = released.clone();
            readers.push((
                after,
                tokio::spawn(async move {
                    let mut pages = pages;
                    let mut got = Vec::new();
                    let mut taken = 0;
                    while let Some(page) = pages.next().await {
                        got.extend(page.unwrap().records.into_iter().map(|r| r.position));
                        taken += 1;
                        if stall == Some(taken) {
                            let _ = released.wait_for(|go| *go).await;
                        }
                    }
                    got
                }),
            ));
        }
        assert_eq!(fanout.hubs(), 1);
        let mut next = 0;
        for size in page_sizes {
            let page: Vec<_> = (next..next + size).map(record).collect();
            next += size;
            lock(&stored).extend(page.iter().cloned());
            feed.send(Page { records: page }).await.unwrap();
            tokio::task::yield_now().await;
        }
        drop(feed);
        // Let the stalled followers go once everything is published.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        release.send_replace(true);
        for (after, reader) in readers {
            let got = reader.await.unwrap();
            let want: Vec<_> = (0..total)
                .map(|i| record(i).position)
                .filter(|p| after.is_none_or(|a| *p > a))
                .collect();
            assert_eq!(got, want);
        }
        assert_eq!(fanout.hubs(), 0, "the hub went with its last follower");
    }

    #[tokio::test]
    async fn a_hub_whose_upstream_panics_fails_its_followers_and_is_not_reused() {
        let fanout = Fanout::new(4);
        let stored = Arc::new(Mutex::new(vec![record(0)]));
        let origin = record(0).position;
        let tail = |upstream: Upstream| Tail {
            key: "run".to_owned(),
            origin,
            upstream,
            history: history(stored.clone()),
            provider: "test",
        };
        let panics: Upstream =
            Box::new(|_| futures::stream::once(async { panic!("upstream bug") }).boxed());
        let pages = fanout.follow(tail(panics), None, Completion::default());
        let got: Vec<_> = pages.collect().await;
        assert_eq!(got.len(), 2, "the history, then the error: {got:?}");
        assert_eq!(got[0].as_ref().unwrap().records, vec![record(0)]);
        let error = got[1].as_ref().unwrap_err().to_string();
        assert!(error.contains("stopped unexpectedly"), "{error}");
        // A new follower gets a new hub, which ends cleanly.
        let ends: Upstream = Box::new(|_| futures::stream::empty().boxed());
        let got: Vec<_> = fanout
            .follow(tail(ends), None, Completion::default())
            .collect()
            .await;
        assert_eq!(got.len(), 1);
        assert!(got[0].is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever the ring size and however the followers stall, every
        /// follower gets every record after its position, once, in order.
        #[test]
        fn every_follower_gets_every_record_once_in_order(
            page_sizes in prop::collection::vec(1usize..6, 0..40),
            capacity in 1usize..4,
            stalls in prop::collection::vec(prop::option::of(1usize..20), 1..5),
            resume in 0usize..100,
        ) {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let run = run(page_sizes, capacity, stalls, resume);
                    tokio::time::timeout(std::time::Duration::from_secs(60), run)
                        .await
                        .expect("a follower hung");
                });
        }
    }
}
