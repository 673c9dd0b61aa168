//! Throughput of the encoders: the text chunker (`pipeline::text_chunks`)
//! cutting pages of records shaped like the local store's (64 KiB pages of
//! ~100-byte lines) into chunks of upstream's default size and of twice that;
//! over the same pages, the NDJSON encoder (`api::encode::ndjson`, a JSON
//! record with its cursor per line), the gRPC encoder (`StreamLog`'s
//! `RecordBatch` per page, `api::encode::record_batch`, then protobuf bytes
//! as tonic writes them) and the event stream (`api::http::events`, a
//! `record` event per line with its cursor as id, rendered by axum's SSE
//! body). Throughput is of log text in.

use std::time::Duration;

use axum::response::sse::Sse;
use axum::response::IntoResponse;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use futures::executor::block_on;
use futures::StreamExt;
use prost::Message;
use tekton_results_logs::api::cursor::CursorWriter;
use tekton_results_logs::api::{encode, http};
use tekton_results_logs::pipeline::text_chunks;
use tekton_results_logs::record::{LogRecord, Page, Position};
use tekton_results_logs::run::LogName;

/// Text per iteration.
const TOTAL_BYTES: usize = 16 << 20;

/// Text per page, as the local store reads it.
const PAGE_BYTES: usize = 64 * 1024;

const CHUNK_SIZES: [usize; 2] = [32_768, 65_536];

fn pages() -> Vec<Page> {
    let mut pages = Vec::new();
    let mut records = Vec::new();
    let (mut offset, mut in_page, mut line) = (0u64, 0usize, 0u64);
    while (offset as usize) < TOTAL_BYTES {
        line += 1;
        let message = format!(
            "step-build: line {line:09} compiling module {} {}",
            line % 977,
            "lorem ipsum ".repeat((line % 7) as usize)
        );
        offset += message.len() as u64 + 1;
        in_page += message.len() + 1;
        records.push(LogRecord::text(
            Position {
                ts_ns: 0,
                seq: offset,
            },
            Bytes::from(message),
            true,
        ));
        if in_page >= PAGE_BYTES {
            pages.push(Page {
                records: std::mem::take(&mut records),
            });
            in_page = 0;
        }
    }
    if !records.is_empty() {
        pages.push(Page { records });
    }
    pages
}

fn text_len(pages: &[Page]) -> u64 {
    pages
        .iter()
        .flat_map(|p| &p.records)
        .map(|r| r.text_len() as u64)
        .sum()
}

/// A group measuring `bytes` of log text per iteration, 10 samples of 5 s.
fn group<'c>(
    c: &'c mut Criterion,
    name: &str,
    bytes: u64,
) -> criterion::BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .throughput(Throughput::Bytes(bytes))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group
}

fn chunk(c: &mut Criterion) {
    let pages = pages();
    let bytes = text_len(&pages);
    let mut group = group(c, "pipeline::chunk", bytes);
    for size in CHUNK_SIZES {
        group.bench_with_input(BenchmarkId::new("text_chunks", size), &size, |b, &size| {
            b.iter_batched(
                || pages.clone(),
                |pages| {
                    let chunks = text_chunks(
                        futures::stream::iter(pages.into_iter().map(Ok::<_, ()>)),
                        size,
                    );
                    let total = block_on(chunks.fold(0u64, |n, c| async move {
                        n + c.map_or(0, |c| c.len() as u64)
                    }));
                    assert_eq!(total, bytes);
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

fn ndjson(c: &mut Criterion) {
    let pages = pages();
    let bytes = text_len(&pages);
    let name = LogName::parse("bench/results/encode/logs/ndjson").expect("a valid name");
    let mut group = group(c, "api::encode", bytes);
    group.bench_function("ndjson", |b| {
        b.iter_batched(
            || pages.clone(),
            |pages| {
                let stream = futures::stream::iter(pages.into_iter().map(Ok)).boxed();
                let out = encode::ndjson(stream, name.clone());
                let lines = block_on(out.fold(0usize, |n, c| async move {
                    n + c.map_or(0, |c| c.iter().filter(|b| **b == b'\n').count())
                }));
                assert!(lines > 0);
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

fn grpc(c: &mut Criterion) {
    let pages = pages();
    let bytes = text_len(&pages);
    let name = LogName::parse("bench/results/encode/logs/grpc").expect("a valid name");
    let mut group = group(c, "api::encode", bytes);
    group.bench_function("grpc_record_batch", |b| {
        b.iter(|| {
            let cursors = CursorWriter::new(&name);
            let out: usize = pages
                .iter()
                .map(|page| encode::record_batch(page, &cursors).encode_to_vec().len())
                .sum();
            assert!(out as u64 > bytes);
        });
    });
    group.finish();
}

fn sse(c: &mut Criterion) {
    let pages = pages();
    let bytes = text_len(&pages);
    let name = LogName::parse("bench/results/encode/logs/sse").expect("a valid name");
    let mut group = group(c, "api::encode", bytes);
    group.bench_function("sse_events", |b| {
        b.iter_batched(
            || pages.clone(),
            |pages| {
                let stream = futures::stream::iter(pages.into_iter().map(Ok)).boxed();
                let body = Sse::new(http::events(stream, name.clone()))
                    .into_response()
                    .into_body();
                // Frames as they would go to the socket, not gathered.
                let (frames, last) = block_on(
                    body.into_data_stream()
                        .fold((0usize, Bytes::new()), |(n, _), frame| async move {
                            (n + 1, frame.expect("a frame"))
                        }),
                );
                assert!(frames > 1);
                assert!(last.ends_with(b"data: {\"reason\":\"the log is complete\"}\n\n"));
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, chunk, ndjson, grpc, sse);
criterion_main!(benches);
