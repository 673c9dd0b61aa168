//! Auth with static tokens on every route, stream and upload limits, time
//! limits, TLS with certificate reload, the exposure rule and shutdown, all
//! through the real binary. (Kubernetes auth: `auth_kube.rs`.)

use std::time::Duration;

use futures::StreamExt;
use tekton_results_logs::proto::tekton::results::{v1alpha2, v1alpha3};
use tekton_results_logs::proto::tekton::resultslogs::v1;
use tonic::Request;

use crate::support::{ndjson_200, running_runs_file, sample_log, TestServer, BIN, NAME};

/// The runs fixture's lint TaskRun (running in `running_runs_file`).
const LINT: &str =
    "demo/results/a0a0a0a0-0000-4000-8000-000000000001/logs/a0a0a0a0-0000-4000-8000-000000000002";

/// A request carrying `token` as upstream's clients send it.
pub fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    if !token.is_empty() {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

/// Uploads `data` to `name` with `token`.
pub async fn upload_as(
    server: &TestServer,
    name: &str,
    data: &[u8],
    token: &str,
) -> Result<v1alpha2::LogSummary, tonic::Status> {
    let message = v1alpha2::Log {
        name: name.to_owned(),
        data: bytes::Bytes::copy_from_slice(data),
    };
    let mut client = server.v1alpha2().await;
    client
        .update_log(with_token(futures::stream::iter([message]), token))
        .await
        .map(tonic::Response::into_inner)
}

/// Reads `name` over v1alpha3 GetLog with `token`: the text, or the status.
pub async fn get_as(
    server: &TestServer,
    name: &str,
    token: &str,
) -> Result<Vec<u8>, tonic::Status> {
    let mut client = server.v1alpha3().await;
    let request = v1alpha3::GetLogRequest {
        name: name.to_owned(),
    };
    let mut stream = client
        .get_log(with_token(request, token))
        .await?
        .into_inner();
    let mut text = Vec::new();
    while let Some(body) = stream.message().await? {
        text.extend_from_slice(&body.data);
    }
    Ok(text)
}

/// `GET url` with `authorization` (if any): status, `WWW-Authenticate` and body.
pub async fn rest_as(url: &str, authorization: Option<&str>) -> (u16, Option<String>, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, challenge, response.text().await.unwrap())
}

fn token_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("tokens");
    std::fs::write(
        &path,
        "# token caller namespaces access\n\
         t-reader reader results-cap,demo\n\
         t-writer writer results-cap write\n\
         t-other other elsewhere\n",
    )
    .unwrap();
    path
}

#[tokio::test]
async fn static_tokens_guard_every_route_and_call() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = token_file(dir.path());
    let server = TestServer::start_with([
        ("AUTH_MODE", "tokens"),
        ("AUTH_TOKENS_FILE", tokens.to_str().unwrap()),
    ])
    .await;
    let log = sample_log(20);

    // Uploads: only a writer of the namespace.
    let code = |r: Result<_, tonic::Status>| r.map(|_| ()).map_err(|s| s.code());
    assert_eq!(
        code(upload_as(&server, NAME, &log, "").await),
        Err(tonic::Code::Unauthenticated)
    );
    assert_eq!(
        code(upload_as(&server, NAME, &log, "t-bogus").await),
        Err(tonic::Code::Unauthenticated)
    );
    assert_eq!(
        code(upload_as(&server, NAME, &log, "t-reader").await),
        Err(tonic::Code::PermissionDenied)
    );
    assert_eq!(
        code(upload_as(&server, NAME, &log, "t-other").await),
        Err(tonic::Code::PermissionDenied)
    );
    upload_as(&server, NAME, &log, "t-writer").await.unwrap();

    // gRPC reads.
    assert_eq!(get_as(&server, NAME, "t-reader").await.unwrap(), log);
    assert_eq!(get_as(&server, NAME, "t-writer").await.unwrap(), log);
    let denied = get_as(&server, NAME, "t-other").await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    assert!(
        denied
            .message()
            .contains("other may not get logs in namespace \"results-cap\""),
        "{denied:?}"
    );
    let missing = get_as(&server, NAME, "").await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::Unauthenticated);
    assert!(
        missing.message().contains("bearer token is required"),
        "{missing:?}"
    );
    // Refused before the run is looked up: a stranger cannot tell which
    // logs exist.
    let unknown = NAME.replace("00267d8d", "99999999");
    assert_eq!(
        get_as(&server, &unknown, "t-other")
            .await
            .unwrap_err()
            .code(),
        tonic::Code::PermissionDenied
    );
    assert_eq!(
        get_as(&server, &unknown, "t-reader")
            .await
            .unwrap_err()
            .code(),
        tonic::Code::NotFound
    );

    // The product's own API.
    let mut v1 = v1::logs_client::LogsClient::new(server.channel().await);
    let request = v1::StreamLogRequest {
        name: NAME.to_owned(),
        ..Default::default()
    };
    let status = v1
        .stream_log(with_token(request.clone(), "t-other"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    let mut batches = v1
        .stream_log(with_token(request, "t-reader"))
        .await
        .unwrap()
        .into_inner();
    let mut records = 0;
    while let Some(batch) = batches.message().await.unwrap() {
        records += batch.records.len();
    }
    assert_eq!(records, 20);

    // REST: 401 with a challenge, 403, 200.
    for version in ["v1alpha2", "v1alpha3"] {
        let url = server.rest_url(version, NAME);
        let (status, challenge, body) = rest_as(&url, None).await;
        assert_eq!(status, 401, "{body}");
        assert!(challenge.unwrap().starts_with("Bearer"));
        assert!(body.contains("\"code\":16"), "{body}");
        let (status, _, body) = rest_as(&url, Some("Basic Zm9vOmJhcg==")).await;
        assert_eq!(status, 401);
        assert!(body.contains("must be `Bearer <token>`"), "{body}");
        let (status, _, body) = rest_as(&url, Some("Bearer t-other")).await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("\"code\":7"), "{body}");
        let (status, _, body) = rest_as(&url, Some("Bearer t-reader")).await;
        assert_eq!(status, 200);
        assert_eq!(body.as_bytes(), log.as_slice());
        let (status, _, _) = rest_as(&format!("{url}?page_size=5"), Some("Bearer t-other")).await;
        assert_eq!(status, 403);
    }
    let dashboard = format!("{}/dashboard/logs/results-cap/pod/step-a", server.url());
    assert_eq!(rest_as(&dashboard, Some("Bearer t-other")).await.0, 403);
    assert_eq!(rest_as(&dashboard, None).await.0, 401);
    // Health stays open to probes.
    assert_eq!(
        rest_as(&format!("{}/healthz", server.url()), None).await.0,
        200
    );

    // Deletes: only a writer.
    let client = reqwest::Client::new();
    let url = server.rest_url("v1alpha2", NAME);
    let delete = |token: &'static str| {
        client
            .delete(&url)
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    assert_eq!(delete("t-reader").await.unwrap().status().as_u16(), 403);
    let mut grpc = server.v1alpha2().await;
    let request = v1alpha2::DeleteLogRequest {
        name: NAME.to_owned(),
    };
    assert_eq!(
        grpc.delete_log(with_token(request.clone(), "t-reader"))
            .await
            .unwrap_err()
            .code(),
        tonic::Code::PermissionDenied
    );
    assert_eq!(get_as(&server, NAME, "t-reader").await.unwrap(), log);
    grpc.delete_log(with_token(request, "t-writer"))
        .await
        .unwrap();
    assert_eq!(
        get_as(&server, NAME, "t-reader").await.unwrap_err().code(),
        tonic::Code::NotFound
    );
}

#[tokio::test]
async fn without_auth_any_authorization_header_is_ignored_as_upstream_does() {
    let server = TestServer::start().await;
    server.upload(NAME, b"hello\n", 64).await.unwrap();
    let url = server.rest_url("v1alpha3", NAME);
    for value in ["Bearer x", "Basic Zm9vOmJhcg==", "garbage"] {
        let (status, _, body) = rest_as(&url, Some(value)).await;
        assert_eq!((status, body.as_str()), (200, "hello\n"), "{value}");
    }
    assert_eq!(get_as(&server, NAME, "x").await.unwrap(), b"hello\n");
}

/// Opens a follow of the running lint TaskRun over REST (NDJSON) and waits
/// for its headers.
async fn open_follow(server: &TestServer) -> reqwest::Response {
    let url = format!("{}?follow=true", server.rest_url("v1alpha2", LINT));
    ndjson_200(&url, None).await
}

/// Opens a follow of the running lint TaskRun over gRPC.
async fn open_grpc_follow(server: &TestServer) -> tonic::Streaming<v1::RecordBatch> {
    let mut v1 = v1::logs_client::LogsClient::new(server.channel().await);
    let request = v1::StreamLogRequest {
        name: LINT.to_owned(),
        follow: true,
        ..Default::default()
    };
    v1.stream_log(request).await.unwrap().into_inner()
}

#[tokio::test]
async fn streams_over_the_callers_limit_get_429_and_resource_exhausted() {
    let dir = tempfile::tempdir().unwrap();
    let runs = running_runs_file(dir.path());
    let server = TestServer::start_with([
        ("LOGS_RUNS_FILE", runs.to_str().unwrap()),
        ("LOGS_MAX_STREAMS_PER_CALLER", "2"),
    ])
    .await;
    // No log stored yet: the follows wait for the running run's lines.
    let first = open_follow(&server).await;
    let second = open_grpc_follow(&server).await;

    let url = server.rest_url("v1alpha2", LINT);
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let body = response.text().await.unwrap();
    assert!(body.contains("LOGS_MAX_STREAMS_PER_CALLER"), "{body}");
    let status = get_as(&server, LINT, "").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert_eq!(status.metadata().get("retry-after").unwrap(), "1");
    assert!(
        server
            .metric("tekton_results_logs_streams_refused_total")
            .await
            >= 2.0
    );

    // A closed stream frees its slot (once the server sees it go).
    drop(first);
    let mut freed = false;
    for _ in 0..100 {
        // No log is stored yet: a plain read that gets a slot says 404.
        if reqwest::get(&url).await.unwrap().status() == 404 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "the closed stream's slot was never freed");
    drop(second);
}

#[tokio::test]
async fn the_service_wide_stream_limit_holds_across_callers() {
    let dir = tempfile::tempdir().unwrap();
    let runs = running_runs_file(dir.path());
    let tokens = token_file(dir.path());
    let server = TestServer::start_with([
        ("LOGS_RUNS_FILE", runs.to_str().unwrap()),
        ("AUTH_MODE", "tokens"),
        ("AUTH_TOKENS_FILE", tokens.to_str().unwrap()),
        ("LOGS_MAX_STREAMS", "1"),
        ("LOGS_MAX_STREAMS_PER_CALLER", "1"),
    ])
    .await;
    upload_as(&server, NAME, b"x\n", "t-writer").await.unwrap();
    let url = format!("{}?follow=true", server.rest_url("v1alpha2", LINT));
    let held = ndjson_200(&url, Some("t-reader")).await;
    let status = get_as(&server, NAME, "t-writer").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.message().contains("LOGS_MAX_STREAMS"), "{status:?}");
    drop(held);
}

#[tokio::test]
async fn an_upload_over_the_size_limit_stores_nothing() {
    let server = TestServer::start_with([("LOGS_MAX_UPLOAD_BYTES", "1000")]).await;
    let status = server
        .upload(NAME, &vec![b'x'; 2000], 300)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(
        status.message().contains("LOGS_MAX_UPLOAD_BYTES"),
        "{status:?}"
    );
    assert_eq!(
        server.get_chunks(NAME).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    server.upload(NAME, &vec![b'x'; 1000], 300).await.unwrap();
}

#[tokio::test]
async fn a_follow_ends_with_deadline_exceeded_at_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let runs = running_runs_file(dir.path());
    let server = TestServer::start_with([
        ("LOGS_RUNS_FILE", runs.to_str().unwrap()),
        // Longer than the wait for a follow's first line, so the response
        // starts before the limit ends it.
        ("LOGS_MAX_FOLLOW_DURATION", "3"),
    ])
    .await;
    let mut batches = open_grpc_follow(&server).await;
    let mut records = 0;
    let status = loop {
        match batches.message().await {
            Ok(Some(batch)) => records += batch.records.len(),
            Ok(None) => panic!("the follow ended cleanly; it must say it was cut"),
            Err(status) => break status,
        }
    };
    assert_eq!(records, 0, "no line was ever stored");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    assert!(
        status.message().contains("resume from the last cursor"),
        "{status:?}"
    );
}

#[tokio::test]
async fn shutdown_ends_follows_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let runs = running_runs_file(dir.path());
    let mut server = TestServer::start_with([
        ("LOGS_RUNS_FILE", runs.to_str().unwrap()),
        ("SERVER_SHUTDOWN_TIMEOUT", "20"),
    ])
    .await;
    let mut grpc = open_grpc_follow(&server).await;
    let rest = open_follow(&server).await;
    server.terminate();
    let status = grpc.message().await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(status.message().contains("shutting down"), "{status:?}");
    // The REST follow's body is cut, not ended cleanly.
    let mut body = rest.bytes_stream();
    let mut error = None;
    while let Some(chunk) = body.next().await {
        if let Err(e) = chunk {
            error = Some(e);
            break;
        }
    }
    assert!(error.is_some(), "the REST follow ended as if complete");
    // With its follows gone, the server exits well before the grace period.
    let exit = tokio::time::timeout(Duration::from_secs(15), server.wait())
        .await
        .expect("the server did not exit after its follows ended");
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn an_exposed_address_without_tls_or_auth_is_refused() {
    let output = tokio::process::Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("SERVER_HOST", "0.0.0.0")
        .env("SERVER_PORT", "0")
        .env("PROMETHEUS_PORT", "")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not a loopback address") && stderr.contains("SERVER_ALLOW_INSECURE"),
        "{stderr}"
    );
}

#[tokio::test]
async fn connections_that_bring_no_request_in_time_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with([("SERVER_HEADER_TIMEOUT", "1")]).await;
    // Silent; half a request line; half the headers; the HTTP/2 preface
    // and nothing else.
    let starts: [&[u8]; 4] = [
        b"",
        b"PRI * HT",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ];
    for start in starts {
        let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        socket.write_all(start).await.unwrap();
        let mut rest = Vec::new();
        // The bound only keeps a regression from hanging the run.
        tokio::time::timeout(Duration::from_secs(20), socket.read_to_end(&mut rest))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the server kept a connection that sent {:?}",
                    String::from_utf8_lossy(start)
                )
            })
            .ok();
        let text = String::from_utf8_lossy(&rest);
        assert!(
            !text.contains("200 OK"),
            "{:?} was answered: {text}",
            String::from_utf8_lossy(start)
        );
    }
    // A connection that did bring a request in time is served on.
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 512];
    let n = socket.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
}

mod tls {
    use super::*;
    use rcgen::{CertificateParams, CertifiedIssuer, KeyPair};

    /// A CA and a certificate for 127.0.0.1 it signed, as PEM.
    struct Pki {
        ca: String,
        cert: String,
        key: String,
    }

    fn pki(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        Pki {
            ca: issuer.pem(),
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn client_trusting(ca: &str) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn tls_serves_rest_and_reloads_a_renewed_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let first = pki("first");
        std::fs::write(&cert, &first.cert).unwrap();
        std::fs::write(&key, &first.key).unwrap();
        let server = TestServer::start_with([
            ("TLS_CERT_FILE", cert.to_str().unwrap()),
            ("TLS_KEY_FILE", key.to_str().unwrap()),
        ])
        .await;
        let https = format!("https://{}", server.addr);
        // A fresh client per check: each makes its own handshake.
        let with_ca = |ca: &str| {
            let client = client_trusting(ca);
            let url = format!("{https}/healthz");
            async move { client.get(url).send().await }
        };
        assert_eq!(with_ca(&first.ca).await.unwrap().status(), 200);
        // HTTP/2 by ALPN, as gRPC clients need.
        let h2 = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(first.ca.as_bytes()).unwrap())
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let health = h2.get(format!("{https}/healthz")).send().await.unwrap();
        assert_eq!(health.version(), reqwest::Version::HTTP_2);
        // Plaintext to the TLS port gets nowhere.
        assert!(reqwest::get(format!("http://{}/healthz", server.addr))
            .await
            .is_err());

        // A renewed pair (another CA, so the change is visible) is served
        // without a restart; a broken write in between is ignored.
        std::fs::write(&cert, "not a certificate").unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(
            with_ca(&first.ca).await.unwrap().status(),
            200,
            "a broken certificate file must not replace the served one"
        );
        let second = pki("second");
        std::fs::write(&key, &second.key).unwrap();
        std::fs::write(&cert, &second.cert).unwrap();
        let mut reloaded = false;
        for _ in 0..100 {
            if with_ca(&second.ca).await.is_ok() {
                reloaded = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(reloaded, "the renewed certificate was never served");
        assert!(with_ca(&first.ca).await.is_err());
    }

    #[tokio::test]
    async fn the_cli_sends_its_token_and_trusts_its_ca_over_tls() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki("cli");
        let (cert, key, ca) = (
            dir.path().join("tls.crt"),
            dir.path().join("tls.key"),
            dir.path().join("ca.crt"),
        );
        std::fs::write(&cert, &pki.cert).unwrap();
        std::fs::write(&key, &pki.key).unwrap();
        std::fs::write(&ca, &pki.ca).unwrap();
        let tokens = token_file(dir.path());
        let writer = dir.path().join("writer-token");
        std::fs::write(&writer, "t-writer\n").unwrap();
        let server = TestServer::start_with([
            ("TLS_CERT_FILE", cert.to_str().unwrap()),
            ("TLS_KEY_FILE", key.to_str().unwrap()),
            ("AUTH_MODE", "tokens"),
            ("AUTH_TOKENS_FILE", tokens.to_str().unwrap()),
        ])
        .await;
        let https = format!("https://{}", server.addr);
        let input = dir.path().join("log.txt");
        std::fs::write(&input, "one\ntwo\n").unwrap();
        let run = |args: Vec<&str>| {
            let child = crate::support::spawn_cli(&args);
            async move { child.wait_with_output().await.unwrap() }
        };
        let (ca, writer, input) = (
            ca.to_str().unwrap(),
            writer.to_str().unwrap(),
            input.to_str().unwrap(),
        );
        // `args`, to the server over TLS, with the CA and the writer's token.
        let as_writer = |args: &[&str]| {
            let mut all: Vec<&str> = args.to_vec();
            all.extend([
                "--server",
                https.as_str(),
                "--ca-file",
                ca,
                "--token-file",
                writer,
            ]);
            run(all)
        };
        let pushed = as_writer(&["push", NAME, input]).await;
        assert!(pushed.status.success(), "{pushed:?}");
        // gRPC over TLS.
        let got = as_writer(&["get", NAME]).await;
        assert!(got.status.success(), "{got:?}");
        assert_eq!(got.stdout, b"one\ntwo\n");
        // REST over TLS.
        let got = as_writer(&["get", "-o", "ndjson", NAME]).await;
        assert!(got.status.success(), "{got:?}");
        assert_eq!(String::from_utf8_lossy(&got.stdout).lines().count(), 2);
        // No token: the server's refusal, said plainly.
        let refused = run(vec!["get", NAME, "--server", &https, "--ca-file", ca]).await;
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("Unauthenticated") && stderr.contains("bearer token"),
            "{stderr}"
        );
        // Without the CA the server is not trusted.
        let untrusted = run(vec![
            "get",
            NAME,
            "--server",
            &https,
            "--token-file",
            writer,
        ])
        .await;
        assert!(!untrusted.status.success());
    }
}
