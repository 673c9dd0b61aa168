//! Throughput of the first stages of a Loki read: parsing `query_range`
//! answers (`backend::loki::wire::QueryResponse::parse`), then merging their
//! streams into positioned records in log order
//! (`backend::loki::history::records_of`), for pages of 1700 and 5000
//! entries in three streams, as the default query renders them
//! (`container-<step>: message=<text>`), 60 to 180 bytes a line. Issue 7's
//! goal for the parse is 500 MB/s per core. Throughput is of answer bytes.

use std::fmt::Write as _;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tekton_results_logs::backend::loki::history::records_of;
use tekton_results_logs::backend::loki::wire::QueryResponse;

/// A successful streams answer with `entries` entries over three streams.
fn answer(entries: usize) -> Vec<u8> {
    let containers = ["step-build", "step-prepare", "step-push"];
    let mut body = String::from(r#"{"status":"success","data":{"resultType":"streams","result":["#);
    for (s, container) in containers.iter().enumerate() {
        if s > 0 {
            body.push(',');
        }
        let _ = write!(
            body,
            r#"{{"stream":{{"container":"{container}","kubernetes_namespace_name":"bench","log_type":"application","uid":"5f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"}},"values":["#
        );
        let mut first = true;
        for n in (s..entries).step_by(containers.len()) {
            if !first {
                body.push(',');
            }
            first = false;
            let _ = write!(
                body,
                r#"["{}","container-{container}: message={container} line {n:09} compiling module {} \"quoted\"{}"]"#,
                1_795_601_078_000_000_000i64 + n as i64 * 1_000_000,
                n % 977,
                " lorem ipsum dolor sit amet".repeat(n % 5)
            );
        }
        body.push_str("]}");
    }
    body.push_str(r#"],"stats":{"summary":{"bytesProcessedPerSecond":1}}}}"#);
    body.into_bytes()
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("backend::loki::wire");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    for entries in [1700usize, 5000] {
        let body = answer(entries);
        // The body must parse, with every entry.
        let parsed = QueryResponse::parse(&body).expect("a valid answer");
        let count: usize = parsed.data.result.iter().map(|s| s.values.len()).sum();
        assert_eq!(count, entries);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("parse", entries), &body, |b, body| {
            b.iter(|| QueryResponse::parse(body).expect("a valid answer"));
        });
        // Every entry comes out, in time order.
        let records = records_of(QueryResponse::parse(&body).expect("a valid answer"));
        assert_eq!(records.len(), entries);
        assert!(records.windows(2).all(|w| w[0].position < w[1].position));
        group.bench_with_input(
            BenchmarkId::new("parse_and_merge", entries),
            &body,
            |b, body| {
                b.iter(|| records_of(QueryResponse::parse(body).expect("a valid answer")));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
