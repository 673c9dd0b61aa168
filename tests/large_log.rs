//! A 100 MB log goes through upload, gRPC and REST in bounded chunks. (Memory
//! is measured by `benches/`, not asserted here; see docs/benchmarks.md.)

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tekton_results_logs::proto::tekton::results::{v1alpha2, v1alpha3};

use crate::support::{http, TestServer, NAME};

const TOTAL: usize = 100 * 1024 * 1024;
const LINE: &[u8] =
    b"step-build: compiling module 0123456789 with flags -O2 -Wall lorem ipsum dolor sit amet\n";

/// The `i`th 64 KiB piece of the generated log.
fn piece(i: usize) -> Bytes {
    let start = i * 65_536;
    let end = (start + 65_536).min(TOTAL);
    Bytes::from(
        (start..end)
            .map(|k| LINE[k % LINE.len()])
            .collect::<Vec<u8>>(),
    )
}

#[tokio::test]
async fn a_100_mb_log_streams_through_in_bounded_chunks() {
    let server = TestServer::start().await;
    let pieces = TOTAL.div_ceil(65_536);
    let mut expected = Sha256::new();
    for i in 0..pieces {
        expected.update(piece(i));
    }
    let expected = expected.finalize();

    let messages = futures::stream::iter(0..pieces).map(|i| v1alpha2::Log {
        name: NAME.into(),
        data: piece(i),
    });
    let mut client = server.v1alpha2().await;
    let summary = client.update_log(messages).await.unwrap().into_inner();
    assert_eq!(summary.bytes_received, TOTAL as i64);

    let mut client = server.v1alpha3().await;
    let mut stream = client
        .get_log(v1alpha3::GetLogRequest { name: NAME.into() })
        .await
        .unwrap()
        .into_inner();
    let (mut hash, mut total, mut short) = (Sha256::new(), 0usize, 0usize);
    while let Some(body) = stream.message().await.unwrap() {
        assert!(body.data.len() <= 32_768);
        short += usize::from(body.data.len() < 32_768);
        total += body.data.len();
        hash.update(&body.data);
    }
    assert_eq!(total, TOTAL);
    // TOTAL is a whole number of chunks: none may be short (nor empty).
    assert_eq!(TOTAL % 32_768, 0);
    assert_eq!(short, 0);
    assert_eq!(hash.finalize(), expected);

    let response = http()
        .get(server.rest_url("v1alpha3", NAME))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (mut hash, mut total) = (Sha256::new(), 0usize);
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        total += chunk.len();
        hash.update(&chunk);
    }
    assert_eq!(total, TOTAL);
    assert_eq!(hash.finalize(), expected);
}
