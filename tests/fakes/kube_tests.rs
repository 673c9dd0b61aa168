//! The fake Kubernetes API server against the real server's documented answers: review shapes,
//! RBAC decisions, `Status` errors in the real filter order, and the failure knobs.

use super::kube::*;
use serde_json::{json, Value};
use std::time::Duration;

const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
const ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

fn client(kube: &FakeKube) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(kube.ca_pem().as_bytes()).expect("CA PEM");
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .expect("client")
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
    version: reqwest::Version,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }
}

async fn send(rb: reqwest::RequestBuilder) -> Answer {
    let r = rb.send().await.expect("request");
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        version: r.version(),
        text: r.text().await.expect("body"),
    }
}

async fn post(kube: &FakeKube, path: &str, token: Option<&str>, body: &Value) -> Answer {
    let mut rb = client(kube)
        .post(format!("{}{path}", kube.url()))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    send(rb).await
}

fn token_review(token: &str) -> Value {
    json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "spec": {"token": token}})
}

/// A SubjectAccessReview as Tekton Results' RBAC check builds it.
fn logs_review(user: &str, groups: &[&str], namespace: &str, verb: &str) -> Value {
    json!({
        "kind": "SubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": {
            "resourceAttributes": {
                "namespace": namespace, "verb": verb, "group": "results.tekton.dev", "resource": "logs"
            },
            "user": user,
            "groups": groups,
            "uid": "u-1",
        },
        "status": {"allowed": false},
    })
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    })
}

#[tokio::test]
async fn token_review_of_a_known_token_authenticates_with_system_authenticated() {
    let kube = FakeKube::start();
    kube.add_user("alice-token", "alice", "uid-a", &["dev"]);
    let a = post(
        &kube,
        TOKEN_REVIEWS,
        Some(kube.service_token()),
        &token_review("alice-token"),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(a.headers["cache-control"], "no-cache, private");
    assert!(a.headers.contains_key("audit-id"));
    assert!(a.text.ends_with("}\n"), "Go's encoder ends with a newline");
    assert!(
        a.text.starts_with(r#"{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"token":"alice-token"},"status":{"authenticated":true,"#),
        "{}",
        a.text
    );
    assert_eq!(
        a.json()["status"],
        json!({
            "authenticated": true,
            "user": {"username": "alice", "uid": "uid-a", "groups": ["dev", "system:authenticated"]},
            "audiences": [API_AUDIENCE],
        })
    );
    let reviews = kube.token_reviews();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].caller, kube.service_username());
    assert_eq!(reviews[0].token, "alice-token");
    assert_eq!(
        reviews[0].user.as_ref().map(|u| u.username.as_str()),
        Some("alice")
    );
}

#[tokio::test]
async fn unknown_token_is_a_201_without_the_authenticated_key() {
    let kube = FakeKube::start();
    let a = post(
        &kube,
        TOKEN_REVIEWS,
        Some(kube.service_token()),
        &token_review("nope"),
    )
    .await;
    assert_eq!(a.status, 201);
    // `authenticated` is `omitempty` and `user` a struct: `{}` stays, `false` goes.
    assert_eq!(
        a.json()["status"],
        json!({"user": {}, "error": "invalid bearer token"})
    );
    assert!(kube.token_reviews()[0].user.is_none());
}

#[tokio::test]
async fn expired_token_and_foreign_audience_are_not_authenticated() {
    let kube = FakeKube::start();
    kube.add_user("t", "bob", "uid-b", &[]);
    kube.expire_token("t");
    let a = post(
        &kube,
        TOKEN_REVIEWS,
        Some(kube.service_token()),
        &token_review("t"),
    )
    .await;
    assert_eq!(
        a.json()["status"]["error"],
        "[invalid bearer token, service account token has expired]"
    );

    kube.add_user("v", "carol", "uid-c", &[]);
    kube.set_audiences("v", &["vault"]);
    let a = post(
        &kube,
        TOKEN_REVIEWS,
        Some(kube.service_token()),
        &token_review("v"),
    )
    .await;
    assert_eq!(
        a.json()["status"],
        json!({"user": {}, "error": "[invalid bearer token, token audiences [\"vault\"] is invalid for the target audiences [\"https://kubernetes.default.svc.cluster.local\"]]"})
    );
    let with_audience = json!({"spec": {"token": "v", "audiences": ["vault", "other"]}});
    let a = post(
        &kube,
        TOKEN_REVIEWS,
        Some(kube.service_token()),
        &with_audience,
    )
    .await;
    let status = a.json()["status"].clone();
    assert_eq!(status["authenticated"], true);
    assert_eq!(status["audiences"], json!(["vault"]));
}

#[tokio::test]
async fn service_token_reviews_itself_as_its_service_account() {
    let kube = FakeKube::start();
    let a = post(
        &kube,
        TOKEN_REVIEWS,
        Some(kube.service_token()),
        &token_review(kube.service_token()),
    )
    .await;
    let user = a.json()["status"]["user"].clone();
    assert_eq!(
        user["username"],
        "system:serviceaccount:tekton-pipelines:tekton-results-logs"
    );
    assert_eq!(
        user["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:tekton-pipelines",
            "system:authenticated"
        ])
    );
    assert!(
        user["extra"]["authentication.kubernetes.io/credential-id"][0]
            .as_str()
            .is_some_and(|s| s.starts_with("JTI="))
    );
}

#[tokio::test]
async fn access_review_allows_only_what_a_binding_grants() {
    let kube = FakeKube::start();
    kube.allow("alice", "team-a", "get");
    kube.allow("readers", "*", "list");
    let t = Some(kube.service_token());

    let a = post(
        &kube,
        ACCESS_REVIEWS,
        t,
        &logs_review("alice", &["tekton.dev"], "team-a", "get"),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let v = a.json();
    assert_eq!(v["kind"], "SubjectAccessReview");
    assert_eq!(v["apiVersion"], "authorization.k8s.io/v1");
    assert_eq!(v["metadata"], json!({"creationTimestamp": null}));
    assert_eq!(v["spec"]["resourceAttributes"]["resource"], "logs");
    assert_eq!(v["spec"]["uid"], "u-1");
    assert_eq!(
        v["status"],
        json!({"allowed": true, "reason": "RBAC: allowed by RoleBinding \"fake-kube-1/team-a\" of ClusterRole \"fake-kube-1\" to User \"alice\""})
    );

    // Another namespace, another verb, a cluster-scope request: RBAC has no opinion, no reason.
    for (ns, verb) in [("team-b", "get"), ("team-a", "delete"), ("", "get")] {
        let a = post(
            &kube,
            ACCESS_REVIEWS,
            t,
            &logs_review("alice", &["tekton.dev"], ns, verb),
        )
        .await;
        assert_eq!(a.json()["status"], json!({"allowed": false}), "{ns} {verb}");
    }

    // A ClusterRoleBinding to a group covers every namespace and the cluster scope.
    for ns in ["team-a", "anywhere", ""] {
        let a = post(
            &kube,
            ACCESS_REVIEWS,
            t,
            &logs_review("dave", &["readers"], ns, "list"),
        )
        .await;
        assert_eq!(
            a.json()["status"],
            json!({"allowed": true, "reason": "RBAC: allowed by ClusterRoleBinding \"fake-kube-2\" of ClusterRole \"fake-kube-2\" to Group \"readers\""})
        );
    }

    // Another resource of the group, or a subresource, is not `logs`.
    let mut other = logs_review("alice", &[], "team-a", "get");
    other["spec"]["resourceAttributes"]["resource"] = json!("results");
    assert_eq!(
        post(&kube, ACCESS_REVIEWS, t, &other).await.json()["status"]["allowed"],
        false
    );
    let mut sub = logs_review("alice", &[], "team-a", "get");
    sub["spec"]["resourceAttributes"]["subresource"] = json!("tail");
    assert_eq!(
        post(&kube, ACCESS_REVIEWS, t, &sub).await.json()["status"]["allowed"],
        false
    );

    let reviews = kube.access_reviews();
    assert_eq!(reviews.len(), 9);
    assert!(reviews[0].allowed);
    assert_eq!(
        reviews[0].resource.as_ref().map(|r| r.namespace.as_str()),
        Some("team-a")
    );
    assert_eq!(reviews[1].groups, vec!["tekton.dev".to_string()]);
}

#[tokio::test]
async fn system_masters_are_allowed_without_a_reason() {
    let kube = FakeKube::start();
    let body = logs_review("root", &["system:masters"], "x", "delete");
    let a = post(&kube, ACCESS_REVIEWS, Some(kube.service_token()), &body).await;
    assert_eq!(a.json()["status"], json!({"allowed": true}));
}

#[tokio::test]
async fn invalid_caller_token_is_a_401_status_on_every_path() {
    let kube = FakeKube::start();
    let expected = status_body(401, "Unauthorized", "Unauthorized");
    for path in [TOKEN_REVIEWS, ACCESS_REVIEWS, "/healthz"] {
        let a = post(&kube, path, Some("not-a-token"), &token_review("x")).await;
        assert_eq!(a.status, 401, "{path}");
        assert_eq!(a.json(), expected);
    }
    kube.expire_token(kube.service_token());
    let a = post(
        &kube,
        TOKEN_REVIEWS,
        Some(kube.service_token()),
        &token_review("x"),
    )
    .await;
    assert_eq!(a.status, 401);
    assert!(kube.token_reviews().is_empty());
}

#[tokio::test]
async fn missing_caller_token_is_anonymous_then_forbidden_or_401_without_anonymous_auth() {
    let kube = FakeKube::start();
    let a = post(&kube, TOKEN_REVIEWS, None, &token_review("x")).await;
    assert_eq!(a.status, 403);
    assert_eq!(a.headers["x-content-type-options"], "nosniff");
    assert_eq!(
        a.json(),
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "tokenreviews.authentication.k8s.io is forbidden: User \"system:anonymous\" cannot create resource \"tokenreviews\" in API group \"authentication.k8s.io\" at the cluster scope",
            "reason": "Forbidden",
            "details": {"group": "authentication.k8s.io", "kind": "tokenreviews"},
            "code": 403,
        })
    );
    // A `Basic` header or an empty bearer token are no bearer token either.
    let basic = client(&kube)
        .post(format!("{}{TOKEN_REVIEWS}", kube.url()))
        .header("authorization", "Basic YTpi")
        .body("{}");
    assert_eq!(send(basic).await.status, 403);

    kube.set_anonymous_auth(false);
    let a = post(&kube, TOKEN_REVIEWS, None, &token_review("x")).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.json(), status_body(401, "Unauthorized", "Unauthorized"));
}

#[tokio::test]
async fn a_token_without_review_rights_is_forbidden() {
    let kube = FakeKube::start();
    kube.add_user("user-token", "alice", "uid-a", &[]);
    let a = post(
        &kube,
        ACCESS_REVIEWS,
        Some("user-token"),
        &logs_review("alice", &[], "a", "get"),
    )
    .await;
    assert_eq!(a.status, 403);
    assert_eq!(
        a.json()["message"],
        "subjectaccessreviews.authorization.k8s.io is forbidden: User \"alice\" cannot create resource \"subjectaccessreviews\" in API group \"authorization.k8s.io\" at the cluster scope"
    );

    kube.set_service_may_review(false);
    let a = post(
        &kube,
        TOKEN_REVIEWS,
        Some(kube.service_token()),
        &token_review("user-token"),
    )
    .await;
    assert_eq!(a.status, 403);
    assert_eq!(
        a.json()["message"],
        "tokenreviews.authentication.k8s.io is forbidden: User \"system:serviceaccount:tekton-pipelines:tekton-results-logs\" cannot create resource \"tokenreviews\" in API group \"authentication.k8s.io\" at the cluster scope"
    );
    kube.set_service_may_review(true);
    let a = post(
        &kube,
        TOKEN_REVIEWS,
        Some(kube.service_token()),
        &token_review("user-token"),
    )
    .await;
    assert_eq!(a.status, 201);
}

#[tokio::test]
async fn listing_reviews_is_forbidden_and_unknown_routes_are_not_found() {
    let kube = FakeKube::start();
    let c = client(&kube);
    let get = c
        .get(format!("{}{TOKEN_REVIEWS}", kube.url()))
        .bearer_auth(kube.service_token());
    let a = send(get).await;
    assert_eq!(a.status, 403);
    assert!(a.json()["message"]
        .as_str()
        .is_some_and(|m| m.contains("cannot list resource \"tokenreviews\"")));

    kube.add_user("root", "root", "uid-r", &["system:masters"]);
    let a = send(
        c.get(format!("{}{TOKEN_REVIEWS}", kube.url()))
            .bearer_auth("root"),
    )
    .await;
    assert_eq!(a.status, 405);
    assert_eq!(a.json()["reason"], "MethodNotAllowed");
    let a = send(
        c.get(format!("{}/apis/example.com/v1/things", kube.url()))
            .bearer_auth("root"),
    )
    .await;
    assert_eq!(a.status, 404);
    assert_eq!(
        a.json(),
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "the server could not find the requested resource",
            "reason": "NotFound", "details": {}, "code": 404,
        })
    );

    let a = send(c.get(format!("{}/readyz", kube.url()))).await;
    assert_eq!((a.status, a.text.as_str()), (200, "ok"));
    let a = send(c.get(format!("{}/metrics", kube.url()))).await;
    assert_eq!(a.status, 403);
    assert_eq!(
        a.json()["message"],
        "forbidden: User \"system:anonymous\" cannot get path \"/metrics\""
    );
}

#[tokio::test]
async fn malformed_requests_get_the_handler_errors() {
    let kube = FakeKube::start();
    let c = client(&kube);
    let url = format!("{}{TOKEN_REVIEWS}", kube.url());
    let t = kube.service_token();

    let a = send(
        c.post(&url)
            .bearer_auth(t)
            .header("content-type", "application/json")
            .body("not json"),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.json(),
        status_body(
            400,
            "BadRequest",
            "the object provided is unrecognized (must be of type TokenReview): couldn't get version/kind; json parse error: invalid character 'o' in literal null (expecting 'u') (6e6f74206a736f6e)"
        )
    );
    let a = send(c.post(&url).bearer_auth(t).body(r#"{"spec":{"token":"x"}"#)).await;
    assert_eq!(a.status, 400);
    assert!(
        a.text
            .contains("json parse error: unexpected end of JSON input"),
        "{}",
        a.text
    );

    let a = send(
        c.post(&url)
            .bearer_auth(t)
            .header("content-type", "text/plain")
            .body("{}"),
    )
    .await;
    assert_eq!(a.status, 415);
    assert_eq!(
        a.json(),
        status_body(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf"
        )
    );

    let a = send(
        c.post(&url)
            .bearer_auth(t)
            .header("accept", "text/html")
            .body("{}"),
    )
    .await;
    assert_eq!(a.status, 406);

    let a = send(c.post(&url).bearer_auth(t).body(r#"{"spec":{"token":42}}"#)).await;
    assert_eq!(
        a.json()["message"],
        "TokenReview in version \"v1\" cannot be handled as a TokenReview: json: cannot unmarshal number into Go struct field TokenReviewSpec.spec.token of type string"
    );

    let a = post(&kube, TOKEN_REVIEWS, Some(t), &json!({"spec": {}})).await;
    assert_eq!(
        a.json(),
        status_body(
            400,
            "BadRequest",
            "token is required for TokenReview in authentication"
        )
    );

    let a = post(
        &kube,
        TOKEN_REVIEWS,
        Some(t),
        &json!({"apiVersion": "authentication.k8s.io/v1beta1", "spec": {"token": "x"}}),
    )
    .await;
    assert_eq!(a.status, 400);

    let a = post(&kube, ACCESS_REVIEWS, Some(t), &json!({"spec": {}})).await;
    assert_eq!(a.status, 422);
    assert_eq!(
        a.json(),
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": ".authorization.k8s.io \"\" is invalid: [spec: Invalid value: null: exactly one of nonResourceAttributes or resourceAttributes must be specified, spec.user: Invalid value: \"\": at least one of user or group must be specified]",
            "reason": "Invalid",
            "details": {"group": "authorization.k8s.io", "causes": [
                {"reason": "FieldValueInvalid", "message": "Invalid value: null: exactly one of nonResourceAttributes or resourceAttributes must be specified", "field": "spec"},
                {"reason": "FieldValueInvalid", "message": "Invalid value: \"\": at least one of user or group must be specified", "field": "spec.user"},
            ]},
            "code": 422,
        })
    );
    assert!(kube.token_reviews().is_empty() && kube.access_reviews().is_empty());
}

#[tokio::test]
async fn unknown_fields_warn_by_default_and_fail_when_strict() {
    let kube = FakeKube::start();
    kube.add_user("a", "alice", "uid-a", &[]);
    let body = json!({"spec": {"token": "a", "tokn": "typo"}, "extra": 1});
    let a = post(&kube, TOKEN_REVIEWS, Some(kube.service_token()), &body).await;
    assert_eq!(a.status, 201);
    let warnings: Vec<&str> = a
        .headers
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(
        warnings,
        [
            r#"299 - "unknown field \"extra\"""#,
            r#"299 - "unknown field \"spec.tokn\"""#
        ]
    );
    let strict = format!("{TOKEN_REVIEWS}?fieldValidation=Strict");
    let a = post(&kube, &strict, Some(kube.service_token()), &body).await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.json()["message"],
        "TokenReview in version \"v1\" cannot be handled as a TokenReview: strict decoding error: unknown field \"extra\", unknown field \"spec.tokn\""
    );
}

#[tokio::test]
async fn html_characters_are_escaped_like_go() {
    let kube = FakeKube::start();
    let a = post(
        &kube,
        TOKEN_REVIEWS,
        Some(kube.service_token()),
        &token_review("<a&b>"),
    )
    .await;
    assert!(
        a.text.contains(r#""token":"\u003ca\u0026b\u003e""#),
        "{}",
        a.text
    );
}

#[tokio::test]
async fn serves_http2_when_the_client_offers_it() {
    let kube = FakeKube::start();
    let a = post(
        &kube,
        TOKEN_REVIEWS,
        Some(kube.service_token()),
        &token_review("x"),
    )
    .await;
    assert_eq!(a.version, reqwest::Version::HTTP_2);
}

#[tokio::test]
async fn down_refuses_connections_and_comes_back_on_the_same_port() {
    let kube = FakeKube::start();
    let c = client(&kube);
    let url = format!("{}{TOKEN_REVIEWS}", kube.url());
    let body = token_review("x").to_string();
    let ok = c
        .post(&url)
        .bearer_auth(kube.service_token())
        .body(body.clone());
    assert_eq!(send(ok).await.status, 201);

    kube.set_down(true);
    assert!(kube.is_down());
    // The pooled connection is closed too: this fails whatever the accept task's timing.
    let err = c
        .post(&url)
        .bearer_auth(kube.service_token())
        .body(body.clone())
        .send()
        .await
        .expect_err("down");
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = client(&kube)
        .post(&url)
        .body(body.clone())
        .send()
        .await
        .expect_err("down");
    assert!(err.is_connect(), "connection refused: {err:?}");

    // Up and down again before the accept task looks: still refused.
    kube.set_down(false);
    kube.set_down(true);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = client(&kube).post(&url).send().await.expect_err("down");
    assert!(err.is_connect(), "connection refused: {err:?}");

    kube.set_down(false);
    let ok = client(&kube)
        .post(&url)
        .bearer_auth(kube.service_token())
        .body(body);
    assert_eq!(send(ok).await.status, 201);
}

#[tokio::test]
async fn injected_failures_look_like_the_api_server_then_stop() {
    let kube = FakeKube::start();
    let t = Some(kube.service_token());
    kube.fail_next(1, 429);
    kube.fail_next(1, 503);
    kube.fail_next_raw(1, 502, "text/html", "<html>Bad Gateway</html>");

    let a = post(&kube, TOKEN_REVIEWS, t, &token_review("x")).await;
    assert_eq!(a.status, 429);
    assert_eq!(a.headers["retry-after"], "1");
    assert_eq!(
        a.json(),
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Too many requests, please try again later.",
            "reason": "TooManyRequests", "details": {"retryAfterSeconds": 1}, "code": 429,
        })
    );
    let a = post(&kube, TOKEN_REVIEWS, t, &token_review("x")).await;
    assert_eq!(
        a.json(),
        status_body(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request"
        )
    );
    let a = post(&kube, TOKEN_REVIEWS, t, &token_review("x")).await;
    assert_eq!(
        (a.status, a.text.as_str()),
        (502, "<html>Bad Gateway</html>")
    );
    let a = post(&kube, TOKEN_REVIEWS, t, &token_review("x")).await;
    assert_eq!(a.status, 201);

    let statuses: Vec<u16> = kube.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 503, 502, 201]);
    assert_eq!(kube.token_reviews().len(), 1);
}

#[tokio::test]
async fn delay_holds_every_answer_back() {
    let kube = FakeKube::start();
    kube.set_delay(Duration::from_millis(400));
    let c = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(kube.ca_pem().as_bytes()).unwrap())
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let err = c
        .post(format!("{}{TOKEN_REVIEWS}", kube.url()))
        .bearer_auth(kube.service_token())
        .body(token_review("x").to_string())
        .send()
        .await
        .expect_err("timeout");
    assert!(err.is_timeout(), "{err:?}");
    kube.set_delay(Duration::ZERO);
    let a = post(
        &kube,
        TOKEN_REVIEWS,
        Some(kube.service_token()),
        &token_review("x"),
    )
    .await;
    assert_eq!(a.status, 201);
}

#[tokio::test]
async fn written_files_hold_the_ca_and_the_service_token() {
    let kube = FakeKube::start();
    let dir = tempfile::tempdir().unwrap();
    let sa = kube.write_service_account_dir(&dir.path().join("sa"));
    assert_eq!(
        std::fs::read_to_string(sa.join("token")).unwrap(),
        kube.service_token()
    );
    assert_eq!(
        std::fs::read_to_string(sa.join("namespace")).unwrap(),
        SERVICE_NAMESPACE
    );
    assert_eq!(
        std::fs::read_to_string(sa.join("ca.crt")).unwrap(),
        kube.ca_pem()
    );
    let kubeconfig = std::fs::read_to_string(kube.write_kubeconfig(dir.path())).unwrap();
    assert!(kubeconfig.contains(&format!("server: {}", kube.url())));
    assert_eq!(kube.service_token().split('.').count(), 3, "JWT-shaped");
}
