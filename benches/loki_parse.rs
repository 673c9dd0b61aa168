//! Throughput of the first stages of a Loki read: parsing `query_range`
//! answers (`backend::loki::wire::QueryResponse::parse`), then merging their
//! streams into positioned records in log order
//! (`backend::loki::history::records_of`), for pages of 1700 and 5000
//! entries in three streams, as the default query renders them
//! (`container-<step>: message=<text>`), 60 to 180 bytes a line. Issue 7's
//! goal for the parse is 500 MB/s per core. Throughput is of answer bytes.
//!
//! Then the connector plan's stage (`backend::loki::plan::Extraction`,
//! issue 9, goal 500 MB/s per core): a categorized answer of raw ViaQ JSON
//! lines as Vector forwards them (about 500 bytes each, a tenth of them
//! another run's), parsed, then each line's fields extracted, the UID
//! matched and the default line format rendered.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use criterion::BatchSize;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tekton_results_logs::backend::loki::history::records_of;
use tekton_results_logs::backend::loki::plan::{Extraction, Pipeline};
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

/// A group of 20 samples of 5 s.
fn group<'c>(
    c: &'c mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    group
}

fn parse(c: &mut Criterion) {
    let mut group = group(c, "backend::loki::wire");
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

const UID: &str = "5f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b";
const OTHER: &str = "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b";

/// A categorized answer of `entries` raw ViaQ lines in three streams.
fn raw_answer(entries: usize) -> Vec<u8> {
    let containers = ["step-build", "step-prepare", "step-push"];
    let mut body = String::from(
        r#"{"status":"success","data":{"resultType":"streams","encodingFlags":["categorize-labels"],"result":["#,
    );
    for (s, container) in containers.iter().enumerate() {
        if s > 0 {
            body.push(',');
        }
        let _ = write!(
            body,
            r#"{{"stream":{{"kubernetes_container_name":"{container}","kubernetes_namespace_name":"bench","log_type":"application"}},"values":["#
        );
        let mut first = true;
        for n in (s..entries).step_by(containers.len()) {
            if !first {
                body.push(',');
            }
            first = false;
            let uid = if n % 10 == 9 { OTHER } else { UID };
            let line = serde_json::json!({
                "@timestamp": "2026-12-03T10:00:00.000000Z",
                "message": format!("{container} line {n:09} compiling module {} \"quoted\"{}", n % 977, " lorem ipsum".repeat(n % 5)),
                "level": "default",
                "log_type": "application",
                "kubernetes": {
                    "namespace_name": "bench",
                    "pod_name": "bench-taskrun-pod",
                    "container_name": container,
                    "labels": {"app.kubernetes.io/managed-by": "tekton-pipelines", "tekton_dev_task": "bench-task", "tekton_dev_taskRunUID": uid}
                }
            })
            .to_string();
            let _ = write!(
                body,
                r#"["{}",{},{{"structuredMetadata":{{"detected_level":"unknown"}}}}]"#,
                1_795_601_078_000_000_000i64 + n as i64 * 1_000_000,
                serde_json::Value::from(line)
            );
        }
        body.push_str("]}");
    }
    body.push_str(r#"],"stats":{"summary":{"bytesProcessedPerSecond":1}}}}"#);
    body.into_bytes()
}

fn extract(c: &mut Criterion) {
    let fields = [
        (
            "container".to_owned(),
            "kubernetes.container_name".to_owned(),
        ),
        ("message".to_owned(), "message".to_owned()),
        (
            "uid".to_owned(),
            "kubernetes.labels.tekton_dev_taskRunUID".to_owned(),
        ),
    ];
    let pipeline = Pipeline::new(
        &fields,
        "uid",
        "container-{{.container}}: message={{.message}}",
    )
    .expect("the default line format");
    let extraction = Extraction::new(Arc::new(pipeline), UID);
    let mut group = group(c, "backend::loki::plan");
    for entries in [1700usize, 5000] {
        let body = raw_answer(entries);
        // The run's lines come out (nine in ten), rendered.
        let kept = extraction.apply(QueryResponse::parse(&body).expect("a valid answer"));
        let lines: Vec<&str> = kept
            .data
            .result
            .iter()
            .flat_map(|s| s.values.iter().map(|e| e.line.as_str()))
            .collect();
        assert_eq!(lines.len(), entries - entries / 10);
        assert!(lines.iter().all(|l| l.starts_with("container-step-")));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("extract", entries), &body, |b, body| {
            b.iter_batched(
                || QueryResponse::parse(body).expect("a valid answer"),
                |response| extraction.apply(response),
                BatchSize::LargeInput,
            );
        });
        group.bench_with_input(
            BenchmarkId::new("parse_and_extract", entries),
            &body,
            |b, body| {
                b.iter(|| extraction.apply(QueryResponse::parse(body).expect("a valid answer")));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, parse, extract);
criterion_main!(benches);
