use tekton_results_logs::proto::tekton::results::v1alpha3;

use crate::support::{http, raw_request, status_of, TestServer, NAME};

const RESULT: &str = "632c7746-5b0d-45ed-ad1d-08540d75fd83";

/// Malformed names (upstream's capture 05 cases and more) with a piece of the
/// reason each must give.
fn bad_names() -> Vec<(String, &'static str)> {
    let long = "a".repeat(64);
    vec![
        (String::new(), "empty"),
        (format!("Results-Cap/results/{RESULT}/logs/x"), "'R'"),
        (format!("ns/results/{RESULT}/logs/00267D8D"), "'D'"),
        (format!("ns/results/{RESULT}/logs/{long}"), "64 bytes long"),
        ("ns/results/../logs/x".to_owned(), "'.'"),
        (format!("ns/results/{RESULT}/logs/x/extra"), "found 6"),
        (format!("ns/results/{RESULT}/logs/x/"), "found 6"),
        (format!("/ns/results/{RESULT}/logs/x"), "found 6"),
        (format!("ns/results/{RESULT}/records/x"), "\"records\""),
        (
            format!("ns/results/{RESULT}/logs/"),
            "the log part is empty",
        ),
        (format!("my.ns/results/{RESULT}/logs/x"), "'.'"),
        (format!("ns/results/{RESULT}/logs/a\0b"), "'\\0'"),
        (format!("ns/results/{RESULT}/logs/a b"), "' '"),
    ]
}

#[tokio::test]
async fn grpc_refuses_malformed_names_with_the_reason() {
    let server = TestServer::start().await;
    let mut client = server.v1alpha3().await;
    for (name, reason) in bad_names() {
        let status = client
            .get_log(v1alpha3::GetLogRequest { name: name.clone() })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{name:?}");
        assert!(
            status.message().contains(reason),
            "{name:?}: {}",
            status.message()
        );
    }
}

#[tokio::test]
async fn unknown_logs_are_not_found_on_every_route() {
    let server = TestServer::start().await;
    let status = server.get_chunks(NAME).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(status.message(), format!("log {NAME:?} not found"));
    // A 63-byte part and an underscore are valid names (as upstream): not found.
    let valid = format!("my_ns/results/{RESULT}/logs/{}", "a".repeat(63));
    assert_eq!(
        server.get_chunks(&valid).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    for version in ["v1alpha2", "v1alpha3"] {
        let response = http()
            .get(server.rest_url(version, NAME))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], 5);
        assert_eq!(body["message"], format!("log {NAME:?} not found"));
    }
}

#[tokio::test]
async fn rest_refuses_malformed_path_parts_with_400() {
    let server = TestServer::start().await;
    let base = format!("{}/apis/results.tekton.dev/v1alpha3/parents", server.url());
    for (path, reason) in [
        (format!("Results-Cap/results/{RESULT}/logs/x"), "'R'"),
        (
            format!("ns/results/{RESULT}/logs/{}", "a".repeat(64)),
            "64 bytes",
        ),
        (format!("ns/results/{RESULT}/logs/00267d8d%2F3638"), "'/'"),
        (format!("ns/results/{RESULT}/logs/my.record"), "'.'"),
        (format!("ns/results/{RESULT}/logs/a%00b"), "'\\0'"),
        (format!("ns/results/{RESULT}/logs/%FF"), "UTF-8"),
    ] {
        let response = http().get(format!("{base}/{path}")).send().await.unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], 3, "{path}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(reason), "{path}: {message}");
    }
}

#[tokio::test]
async fn raw_dot_segments_and_empty_segments_never_reach_the_store() {
    let server = TestServer::start().await;
    server.upload(NAME, b"secret\n", 100).await.unwrap();
    let prefix = "/apis/results.tekton.dev/v1alpha3/parents";
    for (path, expected) in [
        ("results-cap/results/../logs/x", 400),
        ("../results/r/logs/x", 400),
        ("ns/results/%2E%2E/logs/x", 400),
        // An empty part is named as such (upstream redirected to a cleaned path).
        ("ns/results//logs/x", 400),
        ("ns/results/r/logs/", 404),
    ] {
        let response = raw_request(&server, "GET", &format!("{prefix}/{path}")).await;
        assert_eq!(status_of(&response), expected, "{path}");
        assert!(!response.contains("secret"), "{path}");
    }
}

#[tokio::test]
async fn unmatched_paths_and_methods_get_honest_statuses() {
    let server = TestServer::start().await;
    server.upload(NAME, b"x\n", 100).await.unwrap();
    for path in [
        format!("/apis/results.tekton.dev/v1beta1/parents/{}", NAME),
        format!("/apis/results.tekton.dev/v1alpha3/parents/{NAME}/extra"),
        format!("/apis/results.tekton.dev/v1alpha2/parents/results-cap/results/{RESULT}/logs"),
        "/no/such/route".to_owned(),
    ] {
        let response = http()
            .get(format!("{}{path}", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], 5, "{path}");
    }
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::PATCH,
    ] {
        let response = http()
            .request(method.clone(), server.rest_url("v1alpha3", NAME))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method}");
        assert!(response.headers()["allow"]
            .to_str()
            .unwrap()
            .contains("GET"));
    }
}

#[tokio::test]
async fn unknown_grpc_services_and_methods_are_unimplemented() {
    let server = TestServer::start().await;
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    for path in [
        "/tekton.results.v1alpha2.Results/GetResult",
        "/tekton.results.v1alpha3.Logs/UpdateLog",
    ] {
        grpc.ready().await.unwrap();
        let codec =
            tonic_prost::ProstCodec::<v1alpha3::GetLogRequest, v1alpha3::GetLogRequest>::default();
        let status = grpc
            .unary(
                tonic::Request::new(v1alpha3::GetLogRequest { name: NAME.into() }),
                path.parse().unwrap(),
                codec,
            )
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented, "{path}");
    }
}

#[tokio::test]
async fn a_failing_store_read_is_internal_not_an_empty_success() {
    let server = TestServer::start().await;
    // A directory where the log file should be: opening works, reading fails.
    let log_dir = server
        .data_dir
        .path()
        .join("results-cap")
        .join(RESULT)
        .join("00267d8d-3638-4ee0-ba4b-585665422ee1");
    std::fs::create_dir_all(log_dir.join("upload.log")).unwrap();
    let status = server.get_chunks(NAME).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
    assert!(
        status.message().contains("the cause is in the service log"),
        "{}",
        status.message()
    );
    assert!(
        !status.message().contains("upload.log"),
        "internals stay in the log: {}",
        status.message()
    );
    let response = http()
        .get(server.rest_url("v1alpha3", NAME))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], 13);
}

#[tokio::test]
async fn a_failing_store_write_is_internal_and_stores_nothing() {
    let server = TestServer::start().await;
    // A file where the namespace directory should be.
    std::fs::write(server.data_dir.path().join("results-cap"), b"in the way").unwrap();
    let status = server.upload(NAME, b"data\n", 10).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
    std::fs::remove_file(server.data_dir.path().join("results-cap")).unwrap();
    assert_eq!(
        server.get_chunks(NAME).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
}
