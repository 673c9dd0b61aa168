use std::time::Duration;

use bytes::Bytes;
use tekton_results_logs::proto::tekton::results::v1alpha2;

use std::collections::HashMap;

use crate::support::{http, sample_log, TestServer, NAME};

fn log_message(name: &str, data: &'static [u8]) -> v1alpha2::Log {
    v1alpha2::Log {
        name: name.to_owned(),
        data: Bytes::from_static(data),
    }
}

/// Files under the data directory, relative paths.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn concurrent_uploads_of_different_logs_all_land_intact() {
    let server = std::sync::Arc::new(TestServer::start().await);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("ns-{i}/results/r/logs/log-{i}");
            let mut log = sample_log(5_000 + i * 10);
            log.extend_from_slice(format!("end of {i}").as_bytes());
            let summary = server.upload(&name, &log, 16 * 1024).await.unwrap();
            assert_eq!(summary.bytes_received, log.len() as i64);
            (name, log)
        }));
    }
    for task in tasks {
        let (name, log) = task.await.unwrap();
        assert_eq!(
            server.get_chunks(&name).await.unwrap().concat(),
            log,
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_broken_upload_stores_nothing_and_keeps_the_previous_log() {
    let server = TestServer::start().await;
    server
        .upload(NAME, b"the complete log\n", 1024)
        .await
        .unwrap();

    let (tx, rx) = tokio::sync::mpsc::channel::<v1alpha2::Log>(4);
    let mut client = server.v1alpha2().await;
    let call = tokio::spawn(async move {
        client
            .update_log(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    tx.send(log_message(NAME, b"a half-sent ")).await.unwrap();
    tx.send(log_message(NAME, b"replacement")).await.unwrap();
    // Wait until the server has the upload in progress, then cut the call.
    let dir = server.data_dir.path().to_path_buf();
    let mut in_progress = false;
    for _ in 0..250 {
        if files_under(&dir).iter().any(|f| f.ends_with(".partial")) {
            in_progress = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        in_progress,
        "the upload never started: {:?}",
        files_under(&dir)
    );
    call.abort();
    let _ = call.await;

    let mut settled = false;
    for _ in 0..100 {
        if !files_under(&dir).iter().any(|f| f.ends_with(".partial")) {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        settled,
        "the partial upload was not removed: {:?}",
        files_under(&dir)
    );
    assert_eq!(
        server.get_chunks(NAME).await.unwrap().concat(),
        b"the complete log\n"
    );
}

#[tokio::test]
async fn an_upload_naming_two_logs_is_refused_and_stores_nothing() {
    let server = TestServer::start().await;
    let other = "results-cap/results/r/logs/other";
    let messages = vec![log_message(NAME, b"one\n"), log_message(other, b"two\n")];
    let mut client = server.v1alpha2().await;
    let status = client
        .update_log(futures::stream::iter(messages))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains(other), "{}", status.message());
    for name in [NAME, other] {
        assert_eq!(
            server.get_chunks(name).await.unwrap_err().code(),
            tonic::Code::NotFound
        );
    }
}

#[tokio::test]
async fn an_empty_name_after_the_first_message_means_the_same_log() {
    let server = TestServer::start().await;
    let messages = vec![log_message(NAME, b"one\n"), log_message("", b"two\n")];
    let mut client = server.v1alpha2().await;
    let summary = client
        .update_log(futures::stream::iter(messages))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.bytes_received, 8);
    assert_eq!(
        server.get_chunks(NAME).await.unwrap().concat(),
        b"one\ntwo\n"
    );
}

#[tokio::test]
async fn an_upload_with_a_bad_first_name_is_invalid() {
    let server = TestServer::start().await;
    let mut client = server.v1alpha2().await;
    let bad = "ns/results/r/records/x";
    let status = client
        .update_log(futures::stream::iter(vec![log_message(bad, b"x")]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("replace \"records\" with \"logs\""),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn delete_over_grpc_and_rest() {
    let server = TestServer::start().await;
    server.upload(NAME, b"x\n", 10).await.unwrap();
    let mut client = server.v1alpha2().await;
    client
        .delete_log(v1alpha2::DeleteLogRequest { name: NAME.into() })
        .await
        .unwrap();
    assert_eq!(
        server.get_chunks(NAME).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    let status = client
        .delete_log(v1alpha2::DeleteLogRequest { name: NAME.into() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);

    server.upload(NAME, b"x\n", 10).await.unwrap();
    // v1alpha3 has no DeleteLog: 405 and the log stays.
    let response = http()
        .delete(server.rest_url("v1alpha3", NAME))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let response = http()
        .delete(server.rest_url("v1alpha2", NAME))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "{}");
    let response = http()
        .get(server.rest_url("v1alpha2", NAME))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn concurrent_uploads_of_the_same_log_leave_exactly_one_of_them() {
    let server = std::sync::Arc::new(TestServer::start().await);
    let versions: Vec<Vec<u8>> = (0..4u8)
        .map(|i| {
            let mut log = sample_log(3_000 + usize::from(i) * 7);
            log.push(b'0' + i);
            log
        })
        .collect();
    let mut tasks = Vec::new();
    for version in versions.clone() {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            server.upload(NAME, &version, 4096).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let stored = server.get_chunks(NAME).await.unwrap().concat();
    assert!(
        versions.contains(&stored),
        "a mix of uploads was stored ({} bytes)",
        stored.len()
    );
}

#[tokio::test]
async fn an_idle_upload_is_aborted_with_deadline_exceeded_and_stores_nothing() {
    let server = TestServer::start_with(HashMap::from([(
        "LOGS_UPLOAD_IDLE_TIMEOUT",
        "1".to_owned(),
    )]))
    .await;
    let (tx, rx) = tokio::sync::mpsc::channel::<v1alpha2::Log>(1);
    tx.send(log_message(NAME, b"started, then nothing more\n"))
        .await
        .unwrap();
    let mut client = server.v1alpha2().await;
    let status = client
        .update_log(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err();
    drop(tx);
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    assert!(
        status.message().contains("the upload was aborted"),
        "{}",
        status.message()
    );
    assert_eq!(
        server.get_chunks(NAME).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
}

#[tokio::test]
async fn shutdown_does_not_wait_forever_for_a_stalled_upload() {
    let mut server =
        TestServer::start_with(HashMap::from([("SERVER_SHUTDOWN_TIMEOUT", "1".to_owned())])).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<v1alpha2::Log>(1);
    tx.send(log_message(NAME, b"stalled\n")).await.unwrap();
    let mut client = server.v1alpha2().await;
    let call = tokio::spawn(async move {
        client
            .update_log(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.terminate();
    // The grace period is 1 s; the bound here only keeps a regression from
    // hanging the test run.
    let status = tokio::time::timeout(Duration::from_secs(20), server.wait())
        .await
        .expect("the server did not exit after SIGTERM with a stalled upload");
    assert!(status.success(), "{status:?}");
    assert!(
        call.await.unwrap().is_err(),
        "the stalled upload must not succeed"
    );
    drop(tx);
}
