//! Counting what a log stream holds and serves: a stream of store pages that
//! keeps the `stream_buffered_bytes` gauge at the bytes of the page it last
//! gave out until its consumer asks for the next one (which it does only once
//! the connection has taken what the page became), and counts records and
//! bytes served.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};

use super::logs::PageStream;
use crate::record::Page;
use crate::telemetry::names;

/// `pages`, metered under the label `api`.
pub fn metered(pages: PageStream, api: &'static str) -> PageStream {
    metrics::gauge!(names::STREAMS, "api" => api).increment(1.0);
    Metered {
        inner: pages,
        api,
        held: 0,
    }
    .boxed()
}

struct Metered {
    inner: PageStream,
    api: &'static str,
    /// Bytes of the page given out last, not yet known to be taken.
    held: u64,
}

fn bytes_of(page: &Page) -> u64 {
    page.records.iter().map(|r| r.message.len() as u64).sum()
}

impl Metered {
    fn release(&mut self) {
        if self.held > 0 {
            metrics::gauge!(names::STREAM_BUFFERED_BYTES).decrement(self.held as f64);
            self.held = 0;
        }
    }
}

impl Stream for Metered {
    type Item = <PageStream as Stream>::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Asked for more: what was given out before has been taken.
        self.release();
        let next = self.inner.poll_next_unpin(cx);
        if let Poll::Ready(Some(Ok(page))) = &next {
            let bytes = bytes_of(page);
            self.held = bytes;
            metrics::gauge!(names::STREAM_BUFFERED_BYTES).increment(bytes as f64);
            metrics::counter!(names::RECORDS_SERVED, "api" => self.api)
                .increment(page.records.len() as u64);
            metrics::counter!(names::BYTES_SERVED, "api" => self.api).increment(bytes);
        }
        next
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        self.release();
        metrics::gauge!(names::STREAMS, "api" => self.api).decrement(1.0);
    }
}
