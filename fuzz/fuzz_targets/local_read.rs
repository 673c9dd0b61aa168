//! The local store's reader (`backend/local/read.rs`): a stored log reads
//! back byte for byte as records of at most `MAX_RECORD_BYTES` in pages of
//! at most `MAX_PAGE_RECORDS`, each at the offset just past it; reading
//! after any record's position gives exactly the records that follow it,
//! and a position past the end or of another version is refused.
//!
//! Input: the stored text, where `0xFF b n` stands for `(n + 1) KiB` of the
//! byte `b` (so that short inputs make lines longer than a record or a
//! read), cut at 192 KiB.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use futures::StreamExt;
use libfuzzer_sys::fuzz_target;
use tekton_results_logs::backend::local::read::{MAX_PAGE_RECORDS, MAX_RECORD_BYTES};
use tekton_results_logs::backend::local::LocalStore;
use tekton_results_logs::backend::{Error, LogBackend, LogQuery};
use tekton_results_logs::record::{LogRecord, Position};
use tekton_results_logs::run::LogName;

/// Marks a run of one byte in the input.
const RUN: u8 = 0xFF;

/// The longest log tried: a few reads and records, small enough to read
/// several times per input.
const MAX_TEXT: usize = 3 * 64 * 1024;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

fn store() -> &'static LocalStore {
    static STORE: OnceLock<LocalStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let root: PathBuf =
            std::env::temp_dir().join(format!("local-read-fuzz-{}", std::process::id()));
        let store = LocalStore::new(root);
        std::fs::create_dir_all(store.log_dir(&name())).unwrap();
        store
    })
}

fn name() -> LogName {
    LogName::parse("ns/results/r/logs/l").unwrap()
}

fn text_of(input: &[u8]) -> Vec<u8> {
    let mut text = Vec::with_capacity(input.len());
    let mut bytes = input.iter();
    while let Some(&b) = bytes.next() {
        if b != RUN {
            text.push(b);
            continue;
        }
        let (Some(&byte), Some(&kib)) = (bytes.next(), bytes.next()) else {
            break;
        };
        text.resize(text.len() + (usize::from(kib) + 1) * 1024, byte);
    }
    text.truncate(MAX_TEXT);
    text
}

fuzz_target!(|input: &[u8]| {
    let text = text_of(input);
    let store = store();
    let name = name();
    std::fs::write(store.log_path(&name), &text).unwrap();
    runtime().block_on(async {
        let records = read(store, &name, None).await.unwrap();
        check_records(&records, &text);
        let Some(last) = records.last() else {
            return;
        };
        let version = last.position.ts_ns;
        let at = input.len() % records.len();
        let rest = read(store, &name, Some(records[at].position))
            .await
            .unwrap();
        assert_eq!(rest, records[at + 1..], "after record {at}");
        let len = text.len() as u64;
        let (ts_ns, seq) = if at.is_multiple_of(2) {
            (version, len + 1)
        } else {
            (version ^ 1, 0)
        };
        match read(store, &name, Some(Position { ts_ns, seq })).await {
            Err(Error::InvalidArgument { message }) => assert!(!message.is_empty()),
            other => panic!("position {ts_ns}:{seq} of {version}:{len}: {other:?}"),
        }
    });
});

async fn read(
    store: &LocalStore,
    name: &LogName,
    after: Option<Position>,
) -> Result<Vec<LogRecord>, Error> {
    let mut pages = store.read(LogQuery::new(name.clone()).after(after));
    let mut records = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page?;
        assert!((1..=MAX_PAGE_RECORDS).contains(&page.records.len()));
        records.extend(page.records);
    }
    Ok(records)
}

fn check_records(records: &[LogRecord], text: &[u8]) {
    let mut read_back = Vec::with_capacity(text.len());
    for (i, record) in records.iter().enumerate() {
        assert!(record.message.len() <= MAX_RECORD_BYTES);
        assert!(!record.message.contains(&b'\n'));
        let last = i + 1 == records.len();
        assert!(
            record.terminated || last || record.message.len() == MAX_RECORD_BYTES,
            "record {i} of {} is cut short at {} bytes",
            records.len(),
            record.message.len()
        );
        read_back.extend_from_slice(&record.message);
        if record.terminated {
            read_back.push(b'\n');
        }
        assert_eq!(record.position.seq, read_back.len() as u64);
        assert_eq!(record.position.ts_ns, records[0].position.ts_ns);
    }
    assert!(
        read_back == text,
        "the log does not read back byte for byte"
    );
}
