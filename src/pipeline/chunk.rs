//! The text chunker: records to the upstream text format (each record's bytes,
//! plus `\n` where the source line had one; a line whose first record names
//! its pipeline task starts with `[<task>] `), cut into chunks of exactly
//! `chunk_size` bytes at byte offsets (the last one shorter), as upstream's
//! `LOGS_BUFFER_SIZE` writer does. Holds at most one chunk. With
//! `TextOptions::timestamps`, a line starts with its time first.

use bytes::{Bytes, BytesMut};
use futures::{FutureExt, Stream, StreamExt};

use crate::record::Page;
use crate::timestamp::format_rfc3339_ns;

/// Turns pages into text chunks of exactly `chunk_size` bytes, the last one
/// shorter; no chunk is empty. An error ends the stream after being passed on.
pub fn text_chunks<S, E>(pages: S, chunk_size: usize) -> impl Stream<Item = Result<Bytes, E>>
where
    S: Stream<Item = Result<Page, E>>,
{
    chunks(pages, chunk_size, false)
}

/// As `text_chunks`, for a followed log: whenever the next page is not ready
/// yet, what has been chunked so far goes out as a shorter chunk, so a
/// follower sees each line as soon as it is read, not once a chunk is full.
pub fn live_text_chunks<S, E>(pages: S, chunk_size: usize) -> impl Stream<Item = Result<Bytes, E>>
where
    S: Stream<Item = Result<Page, E>>,
{
    chunks(pages, chunk_size, true)
}

/// How text is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextOptions {
    /// Send what is ready whenever the next page is not (`live_text_chunks`).
    pub live: bool,
    /// Start each line whose record has a time with that time, RFC 3339 with
    /// nanoseconds, and a space (as `kubectl logs --timestamps` does).
    pub timestamps: bool,
}

/// `text_chunks` or `live_text_chunks`, with timestamps when asked.
pub fn text_chunks_with<S, E>(
    pages: S,
    chunk_size: usize,
    options: TextOptions,
) -> impl Stream<Item = Result<Bytes, E>>
where
    S: Stream<Item = Result<Page, E>>,
{
    chunks_of(pages, chunk_size, options)
}

fn chunks<S, E>(
    pages: S,
    chunk_size: usize,
    flush_when_idle: bool,
) -> impl Stream<Item = Result<Bytes, E>>
where
    S: Stream<Item = Result<Page, E>>,
{
    chunks_of(
        pages,
        chunk_size,
        TextOptions {
            live: flush_when_idle,
            timestamps: false,
        },
    )
}

fn chunks_of<S, E>(
    pages: S,
    chunk_size: usize,
    options: TextOptions,
) -> impl Stream<Item = Result<Bytes, E>>
where
    S: Stream<Item = Result<Page, E>>,
{
    assert!(chunk_size > 0, "chunk size must be positive");
    async_stream::stream! {
        let mut pages = std::pin::pin!(pages);
        let mut out = BytesMut::with_capacity(chunk_size);
        // Whether the next record starts a line (the one before ended one).
        let mut at_line_start = true;
        let mut ready = None;
        loop {
            let next = match ready.take() {
                Some(next) => next,
                None => pages.next().await,
            };
            let Some(page) = next else { break };
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    yield Err(e);
                    return;
                }
            };
            // The copy loop is written out for each piece (prefix, message,
            // line end): a shared helper measured 1.7 times slower here
            // (`cargo bench --bench chunk`, docs/benchmarks.md).
            for record in page.records {
                if at_line_start && (record.task.is_some() || options.timestamps) {
                    let mut prefix = String::new();
                    if let (true, Some(ts)) = (options.timestamps, record.ts_ns) {
                        prefix.push_str(&format_rfc3339_ns(ts));
                        prefix.push(' ');
                    }
                    if let Some(task) = &record.task {
                        prefix.push_str(&format!("[{task}] "));
                    }
                    {
                        let mut rest = prefix.as_bytes();
                        while !rest.is_empty() {
                            let room = chunk_size - out.len();
                            let (now, later) = rest.split_at(room.min(rest.len()));
                            out.extend_from_slice(now);
                            rest = later;
                            if out.len() == chunk_size {
                                yield Ok(out.split().freeze());
                                out.reserve(chunk_size);
                            }
                        }
                    }
                }
                let mut rest: &[u8] = &record.message;
                while !rest.is_empty() {
                    let room = chunk_size - out.len();
                    let (now, later) = rest.split_at(room.min(rest.len()));
                    out.extend_from_slice(now);
                    rest = later;
                    if out.len() == chunk_size {
                        yield Ok(out.split().freeze());
                        out.reserve(chunk_size);
                    }
                }
                at_line_start = record.terminated;
                if record.terminated {
                    out.extend_from_slice(b"\n");
                    if out.len() == chunk_size {
                        yield Ok(out.split().freeze());
                        out.reserve(chunk_size);
                    }
                }
            }
            if options.live && !out.is_empty() {
                // Polling a stream's `next` and dropping it when pending
                // loses nothing; the next await polls it again.
                ready = pages.next().now_or_never();
                if ready.is_none() {
                    yield Ok(out.split().freeze());
                    out.reserve(chunk_size);
                }
            }
        }
        if !out.is_empty() {
            yield Ok(out.freeze());
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use proptest::prelude::*;

    use super::*;
    use crate::record::{LogRecord, Position};

    fn pages_of(text: &[u8], split: usize, per_page: usize) -> Vec<Result<Page, ()>> {
        let mut records = Vec::new();
        let mut seq = 0;
        for line in text.split_inclusive(|b| *b == b'\n') {
            for piece in line.chunks(split.max(1)) {
                seq += piece.len() as u64;
                let terminated = piece.last() == Some(&b'\n');
                let message = &piece[..piece.len() - usize::from(terminated)];
                records.push(LogRecord::text(
                    Position { ts_ns: 0, seq },
                    Bytes::copy_from_slice(message),
                    terminated,
                ));
            }
        }
        records
            .chunks(per_page.max(1))
            .map(|c| {
                Ok(Page {
                    records: c.to_vec(),
                })
            })
            .collect()
    }

    fn chunks(pages: Vec<Result<Page, ()>>, size: usize) -> Vec<Result<Bytes, ()>> {
        block_on(text_chunks(futures::stream::iter(pages), size).collect())
    }

    #[test]
    fn cuts_at_exact_sizes_ignoring_line_ends() {
        let out = chunks(pages_of(b"abc\ndefgh\nij", 100, 1), 4);
        let out: Vec<Bytes> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(out, vec![&b"abc\n"[..], b"defg", b"h\nij"]);
    }

    #[test]
    fn an_empty_log_gives_no_chunk() {
        assert!(chunks(vec![], 8).is_empty());
        assert!(chunks(vec![Ok(Page::default())], 8).is_empty());
    }

    #[test]
    fn an_error_is_passed_on_and_ends_the_stream() {
        let mut pages = pages_of(b"abcdef\n", 100, 1);
        pages.push(Err(()));
        pages.extend(pages_of(b"never\n", 100, 1));
        let out = chunks(pages, 4);
        assert_eq!(out, vec![Ok(Bytes::from_static(b"abcd")), Err(())]);
    }

    /// The pages of several tasks' logs, one after the other: each log cut
    /// as `pages_of` cuts it, its records marked with its task.
    fn task_pages(logs: &[(Option<&str>, Vec<u8>)], split: usize) -> Vec<Result<Page, ()>> {
        let mut pages = Vec::new();
        for (task, text) in logs {
            for mut page in pages_of(text, split, 3) {
                for record in &mut page.as_mut().unwrap().records {
                    record.task = task.map(std::sync::Arc::from);
                }
                pages.push(page);
            }
        }
        pages
    }

    /// What a merged log reads as: each line that starts with a record of a
    /// task starts with `[task] `.
    fn rendered(logs: &[(Option<&str>, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (task, text) in logs {
            for line in text.split_inclusive(|b| *b == b'\n') {
                if let Some(task) = task {
                    if out.is_empty() || out.last() == Some(&b'\n') {
                        out.extend_from_slice(format!("[{task}] ").as_bytes());
                    }
                }
                out.extend_from_slice(line);
            }
        }
        out
    }

    #[test]
    fn lines_of_a_task_are_marked_where_they_start() {
        let logs = [
            (Some("clone"), b"a\nlong line\n".to_vec()),
            (Some("test"), b"b\nc".to_vec()),
            (None, b"d\n".to_vec()),
        ];
        let out: Vec<Bytes> = chunks(task_pages(&logs, 4), 5)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            String::from_utf8(out.concat()).unwrap(),
            "[clone] a\n[clone] long line\n[test] b\n[test] cd\n"
        );
    }

    #[test]
    fn a_live_log_goes_out_when_the_next_page_is_not_ready() {
        use futures::channel::mpsc;
        let (mut sender, receiver) = mpsc::channel::<Result<Page, ()>>(4);
        let mut out = live_text_chunks(receiver, 64).boxed();
        for page in pages_of(b"one\ntwo\n", 100, 1) {
            sender.try_send(page).unwrap();
        }
        // Both pages were ready: one chunk for both, sent while waiting.
        assert_eq!(
            block_on(out.next()),
            Some(Ok(Bytes::from_static(b"one\ntwo\n")))
        );
        for page in pages_of(b"three\n", 100, 1) {
            sender.try_send(page).unwrap();
        }
        assert_eq!(
            block_on(out.next()),
            Some(Ok(Bytes::from_static(b"three\n")))
        );
        drop(sender);
        assert_eq!(block_on(out.next()), None);
    }

    proptest! {
        #[test]
        fn merged_task_logs_read_as_their_marked_lines(
            logs in proptest::collection::vec(
                (
                    prop_oneof![Just(None), Just(Some("a")), Just(Some("task-b"))],
                    proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'x')], 0..40),
                ),
                0..6,
            ),
            split in 1usize..8,
            size in 1usize..16,
        ) {
            let out: Vec<Bytes> = chunks(task_pages(&logs, split), size)
                .into_iter()
                .map(Result::unwrap)
                .collect();
            prop_assert_eq!(out.concat(), rendered(&logs));
            if let Some((_, full)) = out.split_last() {
                prop_assert!(full.iter().all(|c| c.len() == size));
            }
        }

        #[test]
        fn concatenation_is_the_text_and_every_chunk_but_the_last_is_full(
            text in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..400),
            split in 1usize..50,
            per_page in 1usize..10,
            size in 1usize..64,
        ) {
            let out: Vec<Bytes> = chunks(pages_of(&text, split, per_page), size)
                .into_iter()
                .map(Result::unwrap)
                .collect();
            prop_assert_eq!(out.concat(), text);
            if let Some((last, full)) = out.split_last() {
                prop_assert!(!last.is_empty() && last.len() <= size);
                prop_assert!(full.iter().all(|c| c.len() == size));
            }
        }
    }
}
