//! The `LogBackend` contract every provider passes: push then read back,
//! order and completeness, resume from every position, following a complete
//! log, foreign positions; and, where the provider can, not-found, atomic
//! replacement and delete. Each provider's test calls `run_suite` with a
//! fresh backend and what it can do.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use proptest::prelude::*;
use tekton_results_logs::backend::{self, local::LocalStore, LogBackend, LogQuery};
use tekton_results_logs::record::{LogRecord, Position};
use tekton_results_logs::run::{LogName, Run};
use tekton_results_logs::timestamp::now_ns;

/// What a provider can do, beyond what every provider must.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// Reads return the uploaded bytes exactly (else: the uploaded lines,
    /// each ending with `\n`).
    pub exact_bytes: bool,
    /// A log nobody stored is `NotFound` (else: an empty log).
    pub not_found: bool,
    /// An upload replaces the log atomically; a broken one leaves it whole.
    pub replace: bool,
    /// Logs can be deleted.
    pub delete: bool,
}

/// The local store can do everything.
pub const EVERYTHING: Capabilities = Capabilities {
    exact_bytes: true,
    not_found: true,
    replace: true,
    delete: true,
};

pub fn name(log: &str) -> LogName {
    LogName::parse(&format!("conformance/results/r/logs/{log}")).unwrap()
}

pub async fn push(
    backend: &dyn LogBackend,
    log: &LogName,
    pieces: Vec<Vec<u8>>,
) -> backend::Result<u64> {
    let stream = futures::stream::iter(pieces.into_iter().map(|p| Ok(Bytes::from(p)))).boxed();
    Ok(backend
        .write(&Run::from_name(log.clone()), stream)
        .await?
        .bytes)
}

pub async fn records(backend: &dyn LogBackend, query: LogQuery) -> backend::Result<Vec<LogRecord>> {
    let pages: Vec<_> = backend.read(query).try_collect().await?;
    Ok(pages.into_iter().flat_map(|p| p.records).collect())
}

pub fn text(records: &[LogRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(&r.message);
        if r.terminated {
            out.push(b'\n');
        }
    }
    out
}

/// `body` as a line-oriented provider returns it: every line ends with `\n`.
fn as_lines(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out
}

/// The whole contract, against one backend.
pub async fn run_suite(backend: Arc<dyn LogBackend>, can: Capabilities) {
    backend
        .check()
        .await
        .expect("check passes on a usable backend");

    // Push then read back: same bytes (or lines), positions strictly increasing.
    let log = name("round-trip");
    let pushed_at = now_ns();
    let body = b"line one\nline two\n\nline four without end".to_vec();
    let written = push(
        &*backend,
        &log,
        vec![body[..5].to_vec(), body[5..].to_vec()],
    )
    .await
    .unwrap();
    assert_eq!(written, body.len() as u64);
    let expected = if can.exact_bytes {
        body.clone()
    } else {
        as_lines(&body)
    };
    let all = records(&*backend, LogQuery::new(log.clone()))
        .await
        .unwrap();
    assert_eq!(text(&all), expected);
    assert_eq!(all.len(), 4);
    assert!(
        all.windows(2).all(|w| w[0].position < w[1].position),
        "positions increase"
    );

    // Resume after every position: exactly the records that follow.
    for (i, record) in all.iter().enumerate() {
        let rest = records(
            &*backend,
            LogQuery::new(log.clone()).after(Some(record.position)),
        )
        .await
        .unwrap();
        assert_eq!(rest, all[i + 1..].to_vec(), "resume after record {i}");
    }

    // Following a completed run yields its history, then ends.
    let completed = Run {
        start_ns: Some(pushed_at - 3_600_000_000_000),
        completion_ns: Some(now_ns()),
        ..Run::from_name(log.clone())
    };
    let followed = records(&*backend, LogQuery::for_run(completed).follow(true))
        .await
        .unwrap();
    assert_eq!(followed, all);

    // A log nobody stored: not found before any byte, or empty.
    let mut missing = backend.read(LogQuery::new(name("missing")));
    let first = missing.next().await;
    if can.not_found {
        let first = first.expect("an error item");
        assert!(
            matches!(first, Err(backend::Error::NotFound { .. })),
            "{first:?}"
        );
    } else {
        assert!(first.is_none(), "{first:?}");
    }

    // A foreign position is refused rather than silently misread.
    let foreign = Position {
        ts_ns: i64::MAX,
        seq: u64::MAX,
    };
    let err = records(&*backend, LogQuery::new(log.clone()).after(Some(foreign)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, backend::Error::InvalidArgument { .. }),
        "{err:?}"
    );

    if can.replace {
        // A failed upload leaves the previous log whole.
        let broken = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"partial")),
            Err(backend::Error::UploadAborted {
                name: log.to_string(),
                message: "test".into(),
            }),
        ])
        .boxed();
        assert!(backend
            .write(&Run::from_name(log.clone()), broken)
            .await
            .is_err());
        assert_eq!(
            text(
                &records(&*backend, LogQuery::new(log.clone()))
                    .await
                    .unwrap()
            ),
            body
        );
    }

    if can.delete {
        backend.delete(&Run::from_name(log.clone())).await.unwrap();
        let err = records(&*backend, LogQuery::new(log.clone()))
            .await
            .unwrap_err();
        assert!(matches!(err, backend::Error::NotFound { .. }), "{err:?}");
    } else {
        let err = backend
            .delete(&Run::from_name(log.clone()))
            .await
            .unwrap_err();
        assert!(matches!(err, backend::Error::Unsupported { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn local_store_passes_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    run_suite(Arc::new(LocalStore::new(dir.path())), EVERYTHING).await;
}

fn log_text() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![3 => Just(b'\n'), 10 => any::<u8>()], 0..3_000)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any text, uploaded in any pieces, reads back exactly, and resuming
    /// after any record yields exactly the rest.
    #[test]
    fn local_store_reads_back_and_resumes_exactly(
        body in log_text(),
        cuts in proptest::collection::vec(1usize..500, 0..8),
        resume_at in any::<prop::sample::Index>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = LocalStore::new(dir.path());
            let mut pieces = Vec::new();
            let mut rest = &body[..];
            for cut in cuts {
                let (now, later) = rest.split_at(cut.min(rest.len()));
                pieces.push(now.to_vec());
                rest = later;
            }
            pieces.push(rest.to_vec());
            let log = name("prop");
            push(&store, &log, pieces).await.unwrap();
            let all = records(&store, LogQuery::new(log.clone())).await.unwrap();
            prop_assert_eq!(text(&all), body.clone());
            if !all.is_empty() {
                let i = resume_at.index(all.len());
                let tail = records(&store, LogQuery::new(log).after(Some(all[i].position))).await.unwrap();
                prop_assert_eq!(&tail[..], &all[i + 1..]);
            }
            Ok(())
        })?;
    }
}
