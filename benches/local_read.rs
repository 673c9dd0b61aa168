//! Throughput of `LocalStore::read`: a 64 MiB log, written once into a
//! temporary data directory (so it is in the page cache), read as record
//! pages to its end.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::StreamExt;
use tekton_results_logs::backend::local::LocalStore;
use tekton_results_logs::backend::{LogBackend, LogQuery};
use tekton_results_logs::run::LogName;

const LOG_BYTES: usize = 64 << 20;

/// A log of numbered lines, exactly `LOG_BYTES` long.
fn log_text() -> Vec<u8> {
    let mut text = Vec::with_capacity(LOG_BYTES + 256);
    let mut line = 0u64;
    while text.len() < LOG_BYTES {
        line += 1;
        text.extend_from_slice(
            format!(
                "step-build: line {line:09} compiling module {} {}\n",
                line % 977,
                "lorem ipsum ".repeat((line % 7) as usize)
            )
            .as_bytes(),
        );
    }
    text.truncate(LOG_BYTES);
    text
}

fn local_read(c: &mut Criterion) {
    let data_dir = tempfile::tempdir().expect("creating a data directory");
    let store = LocalStore::new(data_dir.path());
    let name = LogName::parse("bench/results/local/logs/read").expect("a valid name");
    let path = store.log_path(&name);
    std::fs::create_dir_all(path.parent().expect("a log directory")).expect("creating it");
    std::fs::write(&path, log_text()).expect("writing the log");
    let runtime = tokio::runtime::Runtime::new().expect("starting the async runtime");

    let mut group = c.benchmark_group("backend::local");
    group
        .throughput(Throughput::Bytes(LOG_BYTES as u64))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function(BenchmarkId::new("read", "64MiB"), |b| {
        b.iter(|| {
            let total = runtime.block_on(store.read(LogQuery::new(name.clone())).fold(
                0usize,
                |n, page| async move {
                    n + page
                        .expect("reading the log")
                        .records
                        .iter()
                        .map(|r| r.text_len())
                        .sum::<usize>()
                },
            ));
            assert_eq!(total, LOG_BYTES);
        });
    });
    group.finish();
}

criterion_group!(benches, local_read);
criterion_main!(benches);
