//! Kubernetes auth through the real binary against the fake API server
//! (HTTPS): TokenReview, then SubjectAccessReview of `logs` in the log's
//! namespace; decisions cached; an API server that cannot be asked grants
//! nothing.

use tekton_results_logs::proto::tekton::results::v1alpha2;

use crate::fakes::kube::FakeKube;
use crate::security::{get_as, rest_as, upload_as, with_token};
use crate::support::{sample_log, TestServer, NAME};

/// A log in another namespace than `NAME`'s.
const OTHER: &str =
    "elsewhere/results/632c7746-5b0d-45ed-ad1d-08540d75fd83/logs/00267d8d-3638-4ee0-ba4b-585665422ee1";

/// The server with Kubernetes auth against `kube`, and `extra` keys.
async fn server(kube: &FakeKube, dir: &std::path::Path, extra: &[(&str, &str)]) -> TestServer {
    let account = kube.write_service_account_dir(&dir.join("serviceaccount"));
    let token = account.join("token");
    let ca = account.join("ca.crt");
    let url = kube.url();
    let mut env = vec![
        ("AUTH_MODE", "kubernetes"),
        ("AUTH_KUBERNETES_API_URL", url.as_str()),
        ("AUTH_KUBERNETES_TOKEN_PATH", token.to_str().unwrap()),
        ("AUTH_KUBERNETES_CA_PATH", ca.to_str().unwrap()),
    ];
    env.extend_from_slice(extra);
    TestServer::start_with(env).await
}

fn people(kube: &FakeKube) {
    kube.add_user("t-alice", "alice", "uid-alice", &["dev"]);
    kube.add_user("t-bob", "bob", "uid-bob", &[]);
    kube.allow("alice", "results-cap", "get");
    kube.allow("alice", "results-cap", "update");
    kube.allow("alice", "results-cap", "delete");
    // Bob may do nothing; Carol reads everywhere through a group grant.
    kube.add_user("t-carol", "carol", "uid-carol", &["auditors"]);
    kube.allow("auditors", "*", "get");
}

#[tokio::test]
async fn reviews_allow_a_namespace_and_deny_another() {
    let kube = FakeKube::start();
    people(&kube);
    let dir = tempfile::tempdir().unwrap();
    let server = server(&kube, dir.path(), &[]).await;
    let log = sample_log(10);

    let code = |r: Result<_, tonic::Status>| r.map(|_| ()).map_err(|s| s.code());
    assert_eq!(
        code(upload_as(&server, NAME, &log, "t-bob").await),
        Err(tonic::Code::PermissionDenied)
    );
    upload_as(&server, NAME, &log, "t-alice").await.unwrap();
    assert_eq!(get_as(&server, NAME, "t-alice").await.unwrap(), log);
    assert_eq!(get_as(&server, NAME, "t-carol").await.unwrap(), log);

    let denied = get_as(&server, OTHER, "t-alice").await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    assert!(
        denied
            .message()
            .contains("alice may not get logs.results.tekton.dev in namespace \"elsewhere\""),
        "{denied:?}"
    );
    assert_eq!(
        get_as(&server, NAME, "t-bob").await.unwrap_err().code(),
        tonic::Code::PermissionDenied
    );
    let unknown = get_as(&server, NAME, "t-nobody").await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        get_as(&server, NAME, "").await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );

    let url = server.rest_url("v1alpha3", NAME);
    assert_eq!(rest_as(&url, Some("Bearer t-alice")).await.0, 200);
    assert_eq!(rest_as(&url, Some("Bearer t-bob")).await.0, 403);
    assert_eq!(rest_as(&url, Some("Bearer t-nobody")).await.0, 401);
    assert_eq!(rest_as(&url, None).await.0, 401);
    let other = server.rest_url("v1alpha3", OTHER);
    assert_eq!(rest_as(&other, Some("Bearer t-alice")).await.0, 403);

    // What the API server was asked: upstream's attributes, with the
    // user's identity as TokenReview gave it.
    let reviews = kube.access_reviews();
    let asked = reviews
        .iter()
        .find(|r| {
            r.user == "alice"
                && r.resource
                    .as_ref()
                    .is_some_and(|a| a.namespace == "elsewhere")
        })
        .expect("no access review for alice in elsewhere");
    let attributes = asked.resource.as_ref().unwrap();
    assert_eq!(
        (
            attributes.group.as_str(),
            attributes.resource.as_str(),
            attributes.verb.as_str()
        ),
        ("results.tekton.dev", "logs", "get")
    );
    assert_eq!(asked.uid, "uid-alice");
    assert!(
        asked.groups.contains(&"dev".to_owned()),
        "{:?}",
        asked.groups
    );
    assert!(!asked.allowed);
    let update = reviews
        .iter()
        .find(|r| r.user == "alice" && r.resource.as_ref().is_some_and(|a| a.verb == "update"));
    assert!(
        update.is_some(),
        "the upload was not checked with verb update"
    );

    // Delete needs its own verb.
    let mut grpc = server.v1alpha2().await;
    let request = v1alpha2::DeleteLogRequest {
        name: NAME.to_owned(),
    };
    assert_eq!(
        grpc.delete_log(with_token(request.clone(), "t-carol"))
            .await
            .unwrap_err()
            .code(),
        tonic::Code::PermissionDenied
    );
    grpc.delete_log(with_token(request, "t-alice"))
        .await
        .unwrap();
}

#[tokio::test]
async fn decisions_are_cached_for_their_ttl_and_not_without_one() {
    let kube = FakeKube::start();
    people(&kube);
    let dir = tempfile::tempdir().unwrap();
    let server = server(&kube, dir.path(), &[]).await;
    upload_as(&server, NAME, b"x\n", "t-alice").await.unwrap();
    kube.clear_records();
    for _ in 0..5 {
        get_as(&server, NAME, "t-alice").await.unwrap();
        get_as(&server, OTHER, "t-alice").await.unwrap_err();
    }
    // One TokenReview for the token (the upload's), one access review per
    // namespace and verb.
    assert_eq!(kube.token_reviews().len(), 0);
    assert_eq!(kube.access_reviews().len(), 2);

    let dir = tempfile::tempdir().unwrap();
    let uncached = self::server(&kube, dir.path(), &[("AUTH_CACHE_TTL", "0")]).await;
    upload_as(&uncached, NAME, b"x\n", "t-alice").await.unwrap();
    kube.clear_records();
    for _ in 0..3 {
        get_as(&uncached, NAME, "t-alice").await.unwrap();
    }
    assert_eq!(kube.token_reviews().len(), 3);
    assert_eq!(kube.access_reviews().len(), 3);
}

#[tokio::test]
async fn an_api_server_that_cannot_be_asked_grants_nothing() {
    let kube = FakeKube::start();
    people(&kube);
    let dir = tempfile::tempdir().unwrap();
    let server = server(&kube, dir.path(), &[("AUTH_CACHE_TTL", "0")]).await;
    upload_as(&server, NAME, b"x\n", "t-alice").await.unwrap();

    // A brief failure is retried.
    kube.fail_next(1, 503);
    assert_eq!(get_as(&server, NAME, "t-alice").await.unwrap(), b"x\n");

    // A longer one is Unavailable / 503 with Retry-After.
    kube.fail_next(100, 503);
    let status = get_as(&server, NAME, "t-alice").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        status.message().contains("could not be asked"),
        "{status:?}"
    );
    kube.clear_failures();

    kube.set_down(true);
    let status = get_as(&server, NAME, "t-alice").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    let response = reqwest::Client::new()
        .get(server.rest_url("v1alpha3", NAME))
        .header("authorization", "Bearer t-alice")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let code = |r: Result<_, tonic::Status>| r.map(|_| ()).map_err(|s| s.code());
    assert_eq!(
        code(upload_as(&server, NAME, b"y\n", "t-alice").await),
        Err(tonic::Code::Unavailable)
    );
    kube.set_down(false);
    assert_eq!(get_as(&server, NAME, "t-alice").await.unwrap(), b"x\n");

    // The service's own token refused or not allowed to review: a set-up
    // error, Unavailable, never a grant.
    kube.set_service_may_review(false);
    assert_eq!(
        get_as(&server, NAME, "t-alice").await.unwrap_err().code(),
        tonic::Code::Unavailable
    );
    assert!(
        server
            .metric("tekton_results_logs_auth_refused_total{outcome=\"unavailable\"}")
            .await
            >= 3.0
    );
}
