use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};

use super::*;
use crate::record::{Page, Position};
use crate::run::Run;

fn run(log: &str) -> Run {
    Run::from_name(name(log))
}

fn name(log: &str) -> LogName {
    LogName::parse(&format!("ns/results/res/logs/{log}")).unwrap()
}

fn bytes_of(chunks: &[&[u8]]) -> ByteStream {
    let items: Vec<Result<Bytes>> = chunks
        .iter()
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(items).boxed()
}

async fn read_all(store: &LocalStore, query: LogQuery) -> Result<Vec<Page>> {
    store.read(query).try_collect().await
}

fn text_of(pages: &[Page]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in pages.iter().flat_map(|p| &p.records) {
        out.extend_from_slice(&r.message);
        if r.terminated {
            out.push(b'\n');
        }
    }
    out
}

#[tokio::test]
async fn stores_under_the_blob_layout_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let summary = store
        .write(&run("l1"), bytes_of(&[b"one\ntw", b"o\nthree"]))
        .await
        .unwrap();
    assert_eq!(summary.bytes, 13);
    let file = dir.path().join("ns/res/l1").join(LOG_FILE);
    assert_eq!(std::fs::read(&file).unwrap(), b"one\ntwo\nthree");
    let pages = read_all(&store, LogQuery::new(name("l1"))).await.unwrap();
    let records: Vec<_> = pages.iter().flat_map(|p| &p.records).collect();
    assert_eq!(records.len(), 3);
    assert_eq!(&records[2].message[..], b"three");
    assert!(!records[2].terminated);
    assert_eq!(records[0].position.seq, 4);
    assert_eq!(records[2].position.seq, 13);
    assert!(records
        .iter()
        .all(|r| r.position.ts_ns == records[0].position.ts_ns));
}

#[tokio::test]
async fn unknown_log_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let err = read_all(&store, LogQuery::new(name("nope")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = store
        .delete(&Run::from_name(name("nope")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn a_broken_upload_keeps_the_previous_log_and_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    store
        .write(&run("l"), bytes_of(&[b"complete\n"]))
        .await
        .unwrap();
    let broken: Vec<Result<Bytes>> = vec![
        Ok(Bytes::from_static(b"half of a new")),
        Err(Error::UploadAborted {
            name: "l".into(),
            message: "client went away".into(),
        }),
    ];
    let err = store
        .write(&run("l"), stream::iter(broken).boxed())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UploadAborted { .. }));
    let pages = read_all(&store, LogQuery::new(name("l"))).await.unwrap();
    assert_eq!(text_of(&pages), b"complete\n");
    let names: Vec<_> = std::fs::read_dir(dir.path().join("ns/res/l"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec![LOG_FILE.to_owned()]);
    assert_eq!(std::fs::read_dir(store.partial_dir()).unwrap().count(), 0);
}

#[tokio::test]
async fn an_upload_in_progress_is_not_readable() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes>>(1);
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .write(
                    &run("slow"),
                    tokio_stream::wrappers::ReceiverStream::new(rx).boxed(),
                )
                .await
        })
    };
    tx.send(Ok(Bytes::from_static(b"first part\n")))
        .await
        .unwrap();
    tokio::task::yield_now().await;
    let err = read_all(&store, LogQuery::new(name("slow")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    tx.send(Ok(Bytes::from_static(b"last part\n")))
        .await
        .unwrap();
    drop(tx);
    writer.await.unwrap().unwrap();
    let pages = read_all(&store, LogQuery::new(name("slow"))).await.unwrap();
    assert_eq!(text_of(&pages), b"first part\nlast part\n");
}

#[tokio::test]
async fn long_lines_are_cut_into_bounded_unterminated_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let long = vec![b'x'; read::MAX_RECORD_BYTES * 2 + 10];
    let mut text = long.clone();
    text.extend_from_slice(b"\nshort\n");
    store.write(&run("long"), bytes_of(&[&text])).await.unwrap();
    let pages = read_all(&store, LogQuery::new(name("long"))).await.unwrap();
    let records: Vec<_> = pages.iter().flat_map(|p| &p.records).collect();
    assert!(records
        .iter()
        .all(|r| r.message.len() <= read::MAX_RECORD_BYTES));
    assert_eq!(records.len(), 4);
    assert_eq!(
        records.iter().map(|r| r.terminated).collect::<Vec<_>>(),
        vec![false, false, true, true]
    );
    assert_eq!(text_of(&pages), text);
}

#[tokio::test]
async fn reading_after_a_position_yields_exactly_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    store
        .write(&run("r"), bytes_of(&[b"a\nbb\nccc\n"]))
        .await
        .unwrap();
    let pages = read_all(&store, LogQuery::new(name("r"))).await.unwrap();
    let second = pages[0].records[1].position;
    let rest = read_all(&store, LogQuery::new(name("r")).after(Some(second)))
        .await
        .unwrap();
    assert_eq!(text_of(&rest), b"ccc\n");
    let last = pages[0].records[2].position;
    let rest = read_all(&store, LogQuery::new(name("r")).after(Some(last)))
        .await
        .unwrap();
    assert!(text_of(&rest).is_empty());
}

#[tokio::test]
async fn a_position_outside_the_log_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    store.write(&run("r"), bytes_of(&[b"a\n"])).await.unwrap();
    let pages = read_all(&store, LogQuery::new(name("r"))).await.unwrap();
    let version = pages[0].records[0].position.ts_ns;
    for bad in [
        Position {
            ts_ns: version,
            seq: 3,
        },
        Position { ts_ns: 7, seq: 1 },
    ] {
        let err = read_all(&store, LogQuery::new(name("r")).after(Some(bad)))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn delete_removes_the_log_and_its_empty_directories() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    store.write(&run("a"), bytes_of(&[b"a\n"])).await.unwrap();
    store.write(&run("b"), bytes_of(&[b"b\n"])).await.unwrap();
    store.delete(&Run::from_name(name("a"))).await.unwrap();
    assert!(!dir.path().join("ns/res/a").exists());
    assert!(dir.path().join("ns/res/b").exists());
    store.delete(&Run::from_name(name("b"))).await.unwrap();
    assert!(!dir.path().join("ns").exists());
    assert!(dir.path().exists());
}

#[tokio::test]
async fn check_creates_the_data_directory_and_fails_where_it_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().join("new/data"));
    store.check().await.unwrap();
    assert!(dir.path().join("new/data").is_dir());
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let err = LocalStore::new(file.join("sub")).check().await.unwrap_err();
    assert!(matches!(err, Error::Internal { .. }), "{err:?}");
}

#[tokio::test]
async fn a_position_from_before_a_new_upload_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    store
        .write(&run("v"), bytes_of(&[b"old one\nold two\n"]))
        .await
        .unwrap();
    let old = read_all(&store, LogQuery::new(name("v"))).await.unwrap();
    let old_position = old[0].records[0].position;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    store
        .write(&run("v"), bytes_of(&[b"new text, longer than the old\n"]))
        .await
        .unwrap();
    let err = read_all(&store, LogQuery::new(name("v")).after(Some(old_position)))
        .await
        .unwrap_err();
    match err {
        Error::InvalidArgument { message } => {
            assert!(message.contains("stored again"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn pages_of_short_lines_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let text = vec![b'\n'; 200_000];
    store
        .write(&run("short"), bytes_of(&[&text]))
        .await
        .unwrap();
    let pages = read_all(&store, LogQuery::new(name("short")))
        .await
        .unwrap();
    assert!(pages
        .iter()
        .all(|p| p.records.len() <= read::MAX_PAGE_RECORDS));
    assert_eq!(
        pages.iter().map(|p| p.records.len()).sum::<usize>(),
        200_000
    );
    assert_eq!(text_of(&pages), text);
}

#[tokio::test]
async fn lines_around_the_read_and_record_limits_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let limit = read::MAX_RECORD_BYTES;
    for size in [limit - 1, limit, limit + 1, 2 * limit, 2 * limit + 1] {
        for newline_at in [
            None,
            Some(size - 1),
            Some((limit - 1).min(size - 1)),
            Some(limit.min(size - 1)),
        ] {
            let mut text = vec![b'a'; size];
            if let Some(i) = newline_at {
                text[i] = b'\n';
            }
            store.write(&run("edge"), bytes_of(&[&text])).await.unwrap();
            let pages = read_all(&store, LogQuery::new(name("edge"))).await.unwrap();
            assert_eq!(
                text_of(&pages),
                text,
                "size {size}, newline at {newline_at:?}"
            );
            let records: Vec<_> = pages.iter().flat_map(|p| &p.records).collect();
            assert!(records.iter().all(|r| r.message.len() <= limit));
            assert!(records.windows(2).all(|w| w[0].position < w[1].position));
        }
    }
}

#[tokio::test]
async fn check_sweeps_only_stale_partial_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    store.check().await.unwrap();
    let partials = store.partial_dir();
    let stale = partials.join("upload-stale.partial");
    let fresh = partials.join("upload-fresh.partial");
    std::fs::write(&stale, b"left by a killed process").unwrap();
    std::fs::write(&fresh, b"an upload in progress").unwrap();
    let long_ago =
        std::time::SystemTime::now() - STALE_PARTIAL_AGE - std::time::Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    store.check().await.unwrap();
    assert!(!stale.exists());
    assert!(fresh.exists());
}

#[tokio::test]
async fn a_runs_log_is_kept_under_its_record_and_found_where_it_used_to_be() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    // Named by its Log record, kept under its run's record.
    let via_log_record = Run {
        record: name("taskrun"),
        ..run("logrecord")
    };
    store
        .write(&via_log_record, bytes_of(&[b"new\n"]))
        .await
        .unwrap();
    assert!(dir.path().join("ns/res/taskrun").join(LOG_FILE).exists());
    assert!(!dir.path().join("ns/res/logrecord").exists());
    let pages = read_all(&store, LogQuery::for_run(run("taskrun")))
        .await
        .unwrap();
    assert_eq!(text_of(&pages), b"new\n");

    // A log stored before runs had their own place (under the Log record's
    // name) is still read and deleted through that name.
    let old = Run {
        record: name("old-taskrun"),
        ..run("old-logrecord")
    };
    let old_file = dir.path().join("ns/res/old-logrecord").join(LOG_FILE);
    std::fs::create_dir_all(old_file.parent().unwrap()).unwrap();
    std::fs::write(&old_file, b"old\n").unwrap();
    let pages = read_all(&store, LogQuery::for_run(old.clone()))
        .await
        .unwrap();
    assert_eq!(text_of(&pages), b"old\n");
    store.delete(&old).await.unwrap();
    assert!(!old_file.exists());
    let err = read_all(&store, LogQuery::for_run(old)).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}
