//! The text chunker: records to the upstream text format (each record's bytes,
//! plus `\n` where the source line had one), cut into chunks of exactly
//! `chunk_size` bytes at byte offsets (the last one shorter), as upstream's
//! `LOGS_BUFFER_SIZE` writer does. Holds at most one chunk.

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};

use crate::record::Page;

/// Turns pages into text chunks of exactly `chunk_size` bytes, the last one
/// shorter; no chunk is empty. An error ends the stream after being passed on.
pub fn text_chunks<S, E>(pages: S, chunk_size: usize) -> impl Stream<Item = Result<Bytes, E>>
where
    S: Stream<Item = Result<Page, E>>,
{
    assert!(chunk_size > 0, "chunk size must be positive");
    async_stream::stream! {
        let mut pages = std::pin::pin!(pages);
        let mut out = BytesMut::with_capacity(chunk_size);
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    yield Err(e);
                    return;
                }
            };
            for record in page.records {
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
                if record.terminated {
                    out.extend_from_slice(b"\n");
                    if out.len() == chunk_size {
                        yield Ok(out.split().freeze());
                        out.reserve(chunk_size);
                    }
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

    proptest! {
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
