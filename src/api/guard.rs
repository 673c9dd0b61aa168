//! What stands before every log operation: the caller must be allowed the
//! verb in the log's namespace (see `auth`), a stream must find a free slot
//! (a global and a per-caller count), and once open a stream is held to its
//! time limits and ends, with an error that says so, when the service shuts
//! down. Every error here is one a client can act on: 401 / Unauthenticated,
//! 403 / PermissionDenied, 429 / ResourceExhausted with `Retry-After`,
//! 504 / DeadlineExceeded, 503 / Unavailable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use super::logs::PageStream;
use super::status::{ApiError, ErrorCode};
use crate::auth::{Authorizer, Credentials, Identity, Verb};
use crate::config::Limits;
use crate::record::Page;
use crate::telemetry::names;

/// Seconds a refused stream is told to wait before trying again.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// Stream slots in use, in all and per caller.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_caller: HashMap<String, usize>,
}

/// Checks callers and counts their streams.
#[derive(Debug, Clone)]
pub struct Guard {
    authorizer: Arc<dyn Authorizer>,
    limits: Limits,
    counts: Arc<Mutex<Counts>>,
    stopping: watch::Receiver<bool>,
}

/// A stream's slot; freed when dropped.
#[derive(Debug)]
pub struct Slot {
    caller: String,
    counts: Arc<Mutex<Counts>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.total -= 1;
        if let Some(n) = counts.per_caller.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                counts.per_caller.remove(&self.caller);
            }
        }
        metrics::gauge!(names::STREAM_SLOTS).decrement(1.0);
    }
}

impl Guard {
    /// A guard deciding with `authorizer` under `limits`; streams end when
    /// `stopping` turns true.
    pub fn new(
        authorizer: Arc<dyn Authorizer>,
        limits: Limits,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Self {
            authorizer,
            limits,
            counts: Arc::default(),
            stopping,
        }
    }

    /// A guard that allows everything within the default limits and never
    /// stops: for tools and tests that build the API in-process.
    pub fn open() -> Self {
        let (_, stopping) = watch::channel(false);
        Self::new(Arc::new(crate::auth::AllowAll), Limits::default(), stopping)
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The caller, if `credentials` allow `verb` on the logs of `namespace`.
    pub async fn admit(
        &self,
        credentials: &Credentials,
        namespace: &str,
        verb: Verb,
    ) -> Result<Identity, ApiError> {
        let decision = self
            .authorizer
            .authorize(credentials, namespace, verb)
            .await;
        decision.map_err(|e| refused(e, credentials, Some((namespace, verb))))
    }

    /// Whether `credentials` are someone's at all: asked of an upload before
    /// its first message, which names the log, is waited for.
    pub async fn authenticate(&self, credentials: &Credentials) -> Result<(), ApiError> {
        let known = self.authorizer.authenticate(credentials).await;
        known.map_err(|e| refused(e, credentials, None))
    }

    /// A slot for a stream of `verb` on `namespace`'s logs, if `credentials`
    /// allow it and a slot is free.
    pub async fn open_stream(
        &self,
        credentials: &Credentials,
        namespace: &str,
        verb: Verb,
    ) -> Result<Slot, ApiError> {
        let caller = self.admit(credentials, namespace, verb).await?;
        self.slot(&caller)
    }

    /// A stream slot for `caller`, or ResourceExhausted when the caller's
    /// or the service's streams are all taken.
    pub fn slot(&self, caller: &Identity) -> Result<Slot, ApiError> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mine = counts.per_caller.get(&caller.name).copied().unwrap_or(0);
        let refused = if counts.total >= self.limits.max_streams {
            Some(format!(
                "the service is serving its most streams ({}, LOGS_MAX_STREAMS); try again shortly",
                self.limits.max_streams
            ))
        } else if mine >= self.limits.max_streams_per_caller {
            Some(format!(
                "{} already has {mine} streams open, the most one caller may have \
                 (LOGS_MAX_STREAMS_PER_CALLER); close one or try again shortly",
                caller.name
            ))
        } else {
            None
        };
        if let Some(message) = refused {
            metrics::counter!(names::STREAMS_REFUSED).increment(1);
            return Err(ApiError::new(ErrorCode::ResourceExhausted, message)
                .retry_after(RETRY_AFTER_SECONDS));
        }
        counts.total += 1;
        *counts.per_caller.entry(caller.name.clone()).or_default() += 1;
        metrics::gauge!(names::STREAM_SLOTS).increment(1.0);
        Ok(Slot {
            caller: caller.name.clone(),
            counts: self.counts.clone(),
        })
    }

    /// `pages`, holding `slot` until it ends, ended with DeadlineExceeded
    /// past its time limit (`LOGS_MAX_FOLLOW_DURATION` for a follow,
    /// `LOGS_READ_TIMEOUT` otherwise) and, for a follow, with Unavailable
    /// when the service shuts down (a read of history is let finish within
    /// the shutdown timeout).
    ///
    /// The pages are read by a task of their own, a page ahead at most, so
    /// that the limits hold for a client that has stopped reading too: its
    /// slot and the store's stream go when the limit passes, and the client,
    /// if it ever reads on, finds its response cut with the reason.
    pub fn bound(&self, pages: PageStream, slot: Slot, follow: bool) -> PageStream {
        let limit = if follow {
            self.limits.max_follow
        } else {
            self.limits.read_timeout
        };
        let mut stopping = self.stopping.clone();
        // `None` is the end the pages said; a channel closed without it was
        // cut, for the reason left in `cut`.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Option<Result<Page, ApiError>>>(1);
        let cut = Arc::new(Mutex::new(None::<ApiError>));
        let why = cut.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut pages = pages;
            let deadline = tokio::time::sleep(limit);
            tokio::pin!(deadline);
            let stop = |reason: ApiError| {
                *why.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
            };
            loop {
                let next = tokio::select! {
                    biased;
                    () = tx.closed() => return,
                    () = &mut deadline => return stop(too_long(follow, limit)),
                    Ok(_) = stopping.wait_for(|stop| *stop), if follow => return stop(shutting_down()),
                    page = pages.next() => page,
                };
                let last = !matches!(next, Some(Ok(_)));
                tokio::select! {
                    biased;
                    () = &mut deadline => return stop(too_long(follow, limit)),
                    Ok(_) = stopping.wait_for(|stop| *stop), if follow => return stop(shutting_down()),
                    sent = tx.send(next) => if sent.is_err() { return },
                }
                if last {
                    return;
                }
            }
        });
        async_stream::stream! {
            while let Some(item) = rx.recv().await {
                match item {
                    None => return,
                    Some(Ok(page)) => yield Ok(page),
                    Some(Err(e)) => {
                        yield Err(e);
                        return;
                    }
                }
            }
            let reason = cut.lock().unwrap_or_else(|p| p.into_inner()).take();
            yield Err(reason.unwrap_or_else(|| {
                ApiError::new(ErrorCode::Internal, "the log stream stopped before its end")
            }));
        }
        .boxed()
    }
}

/// Counts and logs a refusal; the client's error.
fn refused(
    error: crate::auth::Error,
    credentials: &Credentials,
    asked: Option<(&str, Verb)>,
) -> ApiError {
    let outcome = match &error {
        crate::auth::Error::Unauthenticated(_) => "unauthenticated",
        crate::auth::Error::Denied(_) => "denied",
        crate::auth::Error::Unavailable(_) => "unavailable",
    };
    metrics::counter!(names::AUTH_REFUSED, "outcome" => outcome).increment(1);
    let (namespace, verb) = asked.map_or(("", ""), |(ns, verb)| (ns, verb.as_str()));
    tracing::info!(namespace, verb, peer = ?credentials.peer, %error, "request refused");
    error.into()
}

fn too_long(follow: bool, limit: Duration) -> ApiError {
    let (what, key) = if follow {
        ("follow", "LOGS_MAX_FOLLOW_DURATION")
    } else {
        ("read", "LOGS_READ_TIMEOUT")
    };
    ApiError::new(
        ErrorCode::DeadlineExceeded,
        format!(
            "the {what} reached its time limit of {} s ({key}); resume from the last cursor",
            limit.as_secs()
        ),
    )
}

fn shutting_down() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "the service is shutting down; reconnect and resume from the last cursor",
    )
    .retry_after(RETRY_AFTER_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(name: &str) -> Identity {
        Identity {
            name: name.to_owned(),
        }
    }

    #[test]
    fn slots_are_counted_per_caller_and_in_all() {
        let (_tx, rx) = watch::channel(false);
        let limits = Limits {
            max_streams: 3,
            max_streams_per_caller: 2,
            ..Limits::default()
        };
        let guard = Guard::new(Arc::new(crate::auth::AllowAll), limits, rx);
        let a1 = guard.slot(&who("a")).unwrap();
        let _a2 = guard.slot(&who("a")).unwrap();
        let e = guard.slot(&who("a")).unwrap_err();
        assert_eq!(e.code, ErrorCode::ResourceExhausted);
        assert_eq!(e.retry_after, Some(RETRY_AFTER_SECONDS));
        assert!(e.message.contains("LOGS_MAX_STREAMS_PER_CALLER"), "{e}");
        let _b1 = guard.slot(&who("b")).unwrap();
        let e = guard.slot(&who("c")).unwrap_err();
        assert!(e.message.contains("LOGS_MAX_STREAMS)"), "{e}");
        drop(a1);
        let _c1 = guard.slot(&who("c")).unwrap();
        assert_eq!(guard.counts.lock().unwrap().total, 3);
    }

    #[tokio::test]
    async fn a_follow_ends_with_an_error_on_shutdown_and_at_its_limit() {
        let (tx, rx) = watch::channel(false);
        let limits = Limits {
            max_follow: Duration::from_secs(3600),
            ..Limits::default()
        };
        let guard = Guard::new(Arc::new(crate::auth::AllowAll), limits, rx);
        let pending: PageStream = futures::stream::pending().boxed();
        let slot = guard.slot(&who("a")).unwrap();
        let mut follow = guard.bound(pending, slot, true);
        tx.send(true).unwrap();
        let e = follow.next().await.unwrap().unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable);
        drop(follow);
        assert_eq!(guard.counts.lock().unwrap().total, 0);

        let (_tx, rx) = watch::channel(false);
        let limits = Limits {
            read_timeout: Duration::from_millis(1),
            ..Limits::default()
        };
        let guard = Guard::new(Arc::new(crate::auth::AllowAll), limits, rx);
        let slot = guard.slot(&who("a")).unwrap();
        let mut read = guard.bound(futures::stream::pending().boxed(), slot, false);
        let e = read.next().await.unwrap().unwrap_err();
        assert_eq!(e.code, ErrorCode::DeadlineExceeded);
    }

    /// Whether every slot is freed within 2 s (slots go when the task
    /// reading the pages ends).
    async fn all_freed(guard: &Guard) -> bool {
        for _ in 0..200 {
            if guard.counts.lock().unwrap().total == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_loses_its_slot_at_the_limit() {
        let (_tx, rx) = watch::channel(false);
        let limits = Limits {
            read_timeout: Duration::from_millis(50),
            ..Limits::default()
        };
        let guard = Guard::new(Arc::new(crate::auth::AllowAll), limits, rx);
        let endless = futures::stream::repeat_with(|| {
            Ok(Page {
                records: Vec::new(),
            })
        })
        .boxed();
        let slot = guard.slot(&who("a")).unwrap();
        let mut read = guard.bound(endless, slot, false);
        // Not read at all: the slot still goes once the limit passes.
        assert!(
            all_freed(&guard).await,
            "the slot of a stalled read was kept past its limit"
        );
        // Reading on gets what was handed over, then the reason.
        let mut pages = 0;
        let error = loop {
            match read.next().await.expect("a cut read ends with an error") {
                Ok(_) => pages += 1,
                Err(e) => break e,
            }
        };
        assert!(
            pages <= 1,
            "{pages} pages were buffered for a stalled reader"
        );
        assert_eq!(error.code, ErrorCode::DeadlineExceeded);
    }

    #[tokio::test]
    async fn a_clean_end_stays_clean_and_a_gone_client_frees_its_slot() {
        let guard = Guard::open();
        let two = futures::stream::iter([
            Ok(Page {
                records: Vec::new(),
            }),
            Ok(Page {
                records: Vec::new(),
            }),
        ])
        .boxed();
        let slot = guard.slot(&who("a")).unwrap();
        let read: Vec<_> = guard.bound(two, slot, false).collect().await;
        assert_eq!(read.len(), 2);
        assert!(read.iter().all(Result::is_ok));

        let slot = guard.slot(&who("a")).unwrap();
        let waiting = guard.bound(futures::stream::pending().boxed(), slot, true);
        assert_eq!(guard.counts.lock().unwrap().total, 1);
        drop(waiting);
        assert!(
            all_freed(&guard).await,
            "a follow whose client left kept its slot"
        );
    }
}
