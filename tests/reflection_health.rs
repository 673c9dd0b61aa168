use futures::StreamExt;
use prost::Message;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

use crate::support::{http, TestServer};

async fn reflect(server: &TestServer, request: MessageRequest) -> MessageResponse {
    let mut client = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut responses = client
        .server_reflection_info(futures::stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    responses
        .next()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap()
}

#[tokio::test]
async fn reflection_lists_both_logs_services_so_the_watcher_uploads() {
    let server = TestServer::start().await;
    let MessageResponse::ListServicesResponse(list) =
        reflect(&server, MessageRequest::ListServices(String::new())).await
    else {
        panic!("not a list_services answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "tekton.results.v1alpha2.Logs",
        "tekton.results.v1alpha3.Logs",
        "tekton.resultslogs.v1.Logs",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[tokio::test]
async fn reflection_describes_get_log_as_upstream_does() {
    let server = TestServer::start().await;
    let answer = reflect(
        &server,
        MessageRequest::FileContainingSymbol("tekton.results.v1alpha3.Logs".into()),
    )
    .await;
    let MessageResponse::FileDescriptorResponse(files) = answer else {
        panic!("not a file descriptor answer");
    };
    let file = files
        .file_descriptor_proto
        .iter()
        .map(|b| prost_types::FileDescriptorProto::decode(&b[..]).unwrap())
        .find(|f| f.package() == "tekton.results.v1alpha3")
        .unwrap();
    let service = &file.service[0];
    assert_eq!(service.name(), "Logs");
    let method = &service.method[0];
    assert_eq!(method.name(), "GetLog");
    assert_eq!(
        method.input_type(),
        ".tekton.results.v1alpha3.GetLogRequest"
    );
    assert_eq!(method.output_type(), ".google.api.HttpBody");
    assert!(method.server_streaming());
    let request = file
        .message_type
        .iter()
        .find(|m| m.name() == "GetLogRequest")
        .unwrap();
    assert_eq!(request.field.len(), 1);
    assert_eq!(
        (request.field[0].name(), request.field[0].number()),
        ("name", 1)
    );
}

#[tokio::test]
async fn health_reports_serving_for_the_server_and_each_logs_service() {
    let server = TestServer::start().await;
    let mut health = HealthClient::new(server.channel().await);
    for service in [
        "",
        "tekton.results.v1alpha3.Logs",
        "tekton.results.v1alpha2.Logs",
        "tekton.resultslogs.v1.Logs",
    ] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }
    let status = health
        .check(HealthCheckRequest {
            service: "tekton.results.v1alpha2.Results".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);

    let response = http()
        .get(format!("{}/healthz", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.text().await.unwrap(), "{\"status\":\"SERVING\"}\n");
}

#[tokio::test]
async fn reflection_serves_every_imported_file_so_generic_clients_resolve_types() {
    let server = TestServer::start().await;
    for file in [
        "google/api/httpbody.proto",
        "google/protobuf/any.proto",
        "google/protobuf/empty.proto",
        "tekton/results/v1alpha2/logs.proto",
    ] {
        let answer = reflect(&server, MessageRequest::FileByFilename(file.into())).await;
        let MessageResponse::FileDescriptorResponse(files) = answer else {
            panic!("{file}: not a file descriptor answer: {answer:?}");
        };
        let names: Vec<String> = files
            .file_descriptor_proto
            .iter()
            .map(|b| {
                prost_types::FileDescriptorProto::decode(&b[..])
                    .unwrap()
                    .name()
                    .to_owned()
            })
            .collect();
        assert!(names.iter().any(|n| n == file), "{file}: {names:?}");
    }
}
