use std::collections::HashMap;

use tekton_results_logs::proto::tekton::results::v1alpha2;

use crate::support::{http, raw_request, sample_log, status_of, TestServer, NAME};

#[tokio::test]
async fn upload_then_read_back_byte_for_byte_over_grpc_and_rest() {
    let server = TestServer::start().await;
    let log = sample_log(5_000);
    let summary = server.upload(NAME, &log, 64 * 1024).await.unwrap();
    assert_eq!(summary.bytes_received, log.len() as i64);
    assert_eq!(summary.record, NAME.replace("/logs/", "/records/"));

    // v1alpha3 gRPC: HttpBody chunks of exactly LOGS_BUFFER_SIZE (32768)
    // bytes but the last, cut at byte offsets.
    let chunks = server.get_chunks(NAME).await.unwrap();
    let (last, full) = chunks.split_last().unwrap();
    assert!(full.iter().all(|c| c.len() == 32_768));
    assert!(!last.is_empty() && last.len() <= 32_768);
    assert_eq!(chunks.concat(), log);

    // v1alpha2 gRPC GetLog: the same bytes.
    let mut v2 = server.v1alpha2().await;
    let mut stream = v2
        .get_log(v1alpha2::GetLogRequest { name: NAME.into() })
        .await
        .unwrap()
        .into_inner();
    let mut v2_bytes = Vec::new();
    while let Some(body) = stream.message().await.unwrap() {
        assert_eq!(body.content_type, "text/plain");
        v2_bytes.extend_from_slice(&body.data);
    }
    assert_eq!(v2_bytes, log);

    // REST, both versions: 200, text/plain; charset=utf-8, raw text.
    for version in ["v1alpha3", "v1alpha2"] {
        let response = http()
            .get(server.rest_url(version, NAME))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{version}");
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; charset=utf-8"
        );
        assert!(
            response.headers().get("content-length").is_none(),
            "streamed, not buffered"
        );
        assert_eq!(response.bytes().await.unwrap(), log, "{version}");
    }
}

#[tokio::test]
async fn head_answers_the_get_headers_without_a_body() {
    let server = TestServer::start().await;
    server.upload(NAME, b"hello\n", 1024).await.unwrap();
    let path = server.rest_url("v1alpha3", NAME).replace(&server.url(), "");
    let response = raw_request(&server, "HEAD", &path).await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains("content-type: text/plain; charset=utf-8"),
        "{head}"
    );
    assert_eq!(body, "", "a HEAD answer has no body");

    let unknown = path.replace("00267d8d", "99999999");
    assert_eq!(
        status_of(&raw_request(&server, "HEAD", &unknown).await),
        404
    );
}

#[tokio::test]
async fn rest_works_over_cleartext_http2_too() {
    let server = TestServer::start().await;
    let log = sample_log(500);
    server.upload(NAME, &log, 10_000).await.unwrap();
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client
        .get(server.rest_url("v1alpha2", NAME))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap(), log);
}

#[tokio::test]
async fn grpc_paths_over_http1_are_not_served_as_grpc() {
    // Without HTTP/2 trailers a client could not tell a failed stream from
    // a complete one; upstream answers 404 here too.
    let server = TestServer::start().await;
    server.upload(NAME, b"x\n", 10).await.unwrap();
    let response = http()
        .post(format!(
            "{}/tekton.results.v1alpha3.Logs/GetLog",
            server.url()
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], 5);
}

#[tokio::test]
async fn logs_buffer_size_sets_the_chunk_size() {
    let server =
        TestServer::start_with(HashMap::from([("LOGS_BUFFER_SIZE", "1000".to_owned())])).await;
    let log = sample_log(100);
    server.upload(NAME, &log, 777).await.unwrap();
    let chunks = server.get_chunks(NAME).await.unwrap();
    let sizes: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
    assert!(
        sizes[..sizes.len() - 1].iter().all(|s| *s == 1000),
        "{sizes:?}"
    );
    assert_eq!(chunks.len(), log.len().div_ceil(1000));
    assert_eq!(chunks.concat(), log);
}

#[tokio::test]
async fn arbitrary_bytes_without_a_final_newline_round_trip_exactly() {
    let server = TestServer::start().await;
    let mut log: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    log.extend_from_slice(b"\r\n\n\nno final newline");
    server.upload(NAME, &log, 10_000).await.unwrap();
    assert_eq!(server.get_chunks(NAME).await.unwrap().concat(), log);
    let body = http()
        .get(server.rest_url("v1alpha2", NAME))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body, log);
}

#[tokio::test]
async fn an_empty_log_is_ok_and_empty() {
    let server = TestServer::start().await;
    let summary = server.upload(NAME, b"", 1).await;
    // No message at all names no log: refused.
    assert_eq!(summary.unwrap_err().code(), tonic::Code::InvalidArgument);
    let mut client = server.v1alpha2().await;
    let only_name = v1alpha2::Log {
        name: NAME.into(),
        data: bytes::Bytes::new(),
    };
    let summary = client
        .update_log(futures::stream::iter(vec![only_name]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.bytes_received, 0);
    assert!(server.get_chunks(NAME).await.unwrap().is_empty());
    let response = http()
        .get(server.rest_url("v1alpha3", NAME))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_new_upload_replaces_the_log() {
    let server = TestServer::start().await;
    server.upload(NAME, b"first version\n", 4).await.unwrap();
    server.upload(NAME, b"second\n", 4).await.unwrap();
    assert_eq!(server.get_chunks(NAME).await.unwrap().concat(), b"second\n");
}
