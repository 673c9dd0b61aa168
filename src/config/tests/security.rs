//! The security section: auth modes, TLS files, the exposure rule, limits.

use std::time::Duration;

use super::{config, error};
use crate::config::{keys, AuthConfig};

#[test]
fn auth_is_off_by_default_outside_a_cluster_and_kubernetes_inside() {
    assert_eq!(config(&[]).security.auth, AuthConfig::None);
    let inside = config(&[
        ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ("KUBERNETES_SERVICE_PORT", "443"),
    ]);
    let AuthConfig::Kubernetes(k) = inside.security.auth else {
        panic!("expected Kubernetes auth, got {:?}", inside.security.auth);
    };
    assert_eq!(k.api_url, "https://10.96.0.1:443");
    assert_eq!(k.cache_ttl, Duration::from_secs(10));
    assert_eq!(
        k.token_path.to_str(),
        Some("/var/run/secrets/kubernetes.io/serviceaccount/token")
    );
    // Upstream's switch turns it off, in a cluster too.
    let off = config(&[
        ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        (keys::AUTH_DISABLE, "true"),
    ]);
    assert_eq!(off.security.auth, AuthConfig::None);
}

#[test]
fn kubernetes_auth_outside_a_cluster_needs_the_api_url() {
    let e = error(&[(keys::AUTH_DISABLE, "false")]);
    assert!(
        e.starts_with("AUTH_KUBERNETES_API_URL=\"\": required"),
        "{e}"
    );
    let e = error(&[
        (keys::AUTH_MODE, "kubernetes"),
        (keys::AUTH_KUBERNETES_API_URL, "http://api:6443"),
    ]);
    assert!(e.contains("expected an https:// URL"), "{e}");
    let c = config(&[
        (keys::AUTH_MODE, "Kubernetes"),
        (keys::AUTH_KUBERNETES_API_URL, "https://api:6443/"),
        (keys::AUTH_KUBERNETES_CA_PATH, ""),
        (keys::AUTH_CACHE_TTL, "0"),
    ]);
    let AuthConfig::Kubernetes(k) = c.security.auth else {
        panic!("expected Kubernetes auth");
    };
    assert_eq!(k.api_url, "https://api:6443");
    assert_eq!(k.ca_path, None);
    assert_eq!(k.cache_ttl, Duration::ZERO);
    let e = error(&[(keys::AUTH_CACHE_TTL, "-1")]);
    assert!(e.contains("0 to 3600"), "{e}");
}

#[test]
fn modes_are_checked_against_each_other() {
    let e = error(&[(keys::AUTH_MODE, "basic")]);
    assert!(e.contains("must be none, tokens or kubernetes"), "{e}");
    let e = error(&[(keys::AUTH_MODE, "tokens"), (keys::AUTH_DISABLE, "true")]);
    assert!(e.contains("AUTH_DISABLE=true turns auth off"), "{e}");
    let e = error(&[(keys::AUTH_MODE, "tokens")]);
    assert!(e.starts_with("AUTH_TOKENS_FILE=\"\": required"), "{e}");
    let e = error(&[(keys::AUTH_MODE, "none"), (keys::AUTH_DISABLE, "false")]);
    assert!(e.contains("AUTH_DISABLE=false asks for auth"), "{e}");
    let e = error(&[
        (keys::AUTH_MODE, "kubernetes"),
        (keys::AUTH_KUBERNETES_API_URL, "https://api"),
        (keys::AUTH_TOKENS_FILE, "/t"),
    ]);
    assert!(
        e.contains("only read with AUTH_MODE=tokens, and auth is kubernetes"),
        "{e}"
    );
    // A token file alone means token auth; an empty mode means unset.
    for pairs in [
        &[(keys::AUTH_TOKENS_FILE, "/t")][..],
        &[(keys::AUTH_TOKENS_FILE, "/t"), (keys::AUTH_MODE, "")][..],
        &[
            (keys::AUTH_TOKENS_FILE, "/t"),
            (keys::AUTH_DISABLE, "false"),
        ][..],
    ] {
        assert!(
            matches!(config(pairs).security.auth, AuthConfig::Tokens { .. }),
            "{pairs:?}"
        );
    }
    let c = config(&[(keys::AUTH_MODE, "tokens"), (keys::AUTH_TOKENS_FILE, "/t")]);
    assert_eq!(c.security.auth, AuthConfig::Tokens { file: "/t".into() });
}

#[test]
fn tls_files_go_in_pairs_and_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let e = error(&[(keys::TLS_CERT_FILE, c)]);
    assert!(e.contains("set both or neither"), "{e}");
    let e = error(&[(keys::TLS_CERT_FILE, c), (keys::TLS_KEY_FILE, k)]);
    assert!(
        e.starts_with("TLS_CERT_FILE=") && e.ends_with("no such file"),
        "{e}"
    );
    // Upstream's directory: plaintext while its files are missing.
    let d = dir.path().to_str().unwrap();
    assert_eq!(config(&[(keys::TLS_PATH, d)]).security.tls, None);
    std::fs::write(&cert, "x").unwrap();
    std::fs::write(&key, "x").unwrap();
    let tls = config(&[(keys::TLS_PATH, d)]).security.tls.unwrap();
    assert_eq!((tls.cert, tls.key), (cert.clone(), key.clone()));
    assert!(config(&[(keys::TLS_CERT_FILE, c), (keys::TLS_KEY_FILE, k)])
        .security
        .tls
        .is_some());
}

#[test]
fn an_exposed_server_needs_tls_or_auth_or_an_explicit_yes() {
    let e = error(&[(keys::SERVER_HOST, "0.0.0.0")]);
    assert!(
        e.starts_with("SERVER_HOST=\"0.0.0.0\": not a loopback address")
            && e.contains("SERVER_ALLOW_INSECURE=true"),
        "{e}"
    );
    assert!(error(&[(keys::SERVER_HOST, "::")]).contains("not a loopback address"));
    config(&[(keys::SERVER_HOST, "::1")]);
    config(&[
        (keys::SERVER_HOST, "0.0.0.0"),
        (keys::SERVER_ALLOW_INSECURE, "yes"),
    ]);
    config(&[
        (keys::SERVER_HOST, "0.0.0.0"),
        (keys::AUTH_MODE, "tokens"),
        (keys::AUTH_TOKENS_FILE, "/t"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), "x").unwrap();
    std::fs::write(dir.path().join("tls.key"), "x").unwrap();
    config(&[
        (keys::SERVER_HOST, "0.0.0.0"),
        (keys::TLS_PATH, dir.path().to_str().unwrap()),
    ]);
}

#[test]
fn limits_have_defaults_and_ranges() {
    let l = config(&[]).security.limits;
    assert_eq!((l.max_streams, l.max_streams_per_caller), (10_000, 100));
    assert_eq!(l.max_upload_bytes, 1 << 30);
    assert_eq!(l.max_follow, Duration::from_secs(86_400));
    let e = error(&[(keys::LOGS_MAX_STREAMS, "0")]);
    assert!(e.contains("from 1 to 1000000"), "{e}");
    let e = error(&[
        (keys::LOGS_MAX_STREAMS, "10"),
        (keys::LOGS_MAX_STREAMS_PER_CALLER, "11"),
    ]);
    assert!(e.contains("more than LOGS_MAX_STREAMS (10)"), "{e}");
    let e = error(&[(keys::LOGS_MAX_UPLOAD_BYTES, "0")]);
    assert!(e.contains("positive number of bytes"), "{e}");
    let e = error(&[(keys::LOGS_READ_TIMEOUT, "0")]);
    assert!(e.contains("at least 1 second"), "{e}");
}
