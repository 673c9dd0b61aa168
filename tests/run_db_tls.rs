//! TLS to the Results database: `.ci/postgres.sh` gives the test server a
//! certificate for IP 127.0.0.1 signed by a throw-away CA
//! (`TEST_DATABASE_CA`), and a role `tls_only` that may connect only over TLS.

use std::collections::HashMap;

use tekton_results_logs::config::{self, Config, RawConfig};
use tekton_results_logs::run::{DbResolver, LogName, ResolveError, RunKind, RunResolver};

use crate::support_db::{db_env, fresh_database};

fn env_path(key: &str) -> String {
    match std::env::var(key) {
        Ok(path) if !path.is_empty() => path,
        _ => panic!(
            "{key} is not set: this test needs the TLS set-up of .ci/postgres.sh \
             (run the tests with `bash .ci/test`; it needs openssl)"
        ),
    }
}

/// A resolver for the database at `url` as `tls_only`, with these TLS keys.
fn tls_config(url: &str, host: &str, tls: &[(&str, &str)]) -> Result<Config, config::Error> {
    let mut env: HashMap<String, String> = db_env(url).into_iter().collect();
    env.insert("DB_USER".into(), "tls_only".into());
    env.insert("DB_HOST".into(), host.into());
    for (k, v) in tls {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    Config::from_raw(&RawConfig::from_env(env))
}

fn resolver(config: &Config) -> DbResolver {
    DbResolver::new(config.db.as_ref().unwrap()).unwrap()
}

fn taskrun() -> LogName {
    LogName::parse(
        "results-cap/results/632c7746-5b0d-45ed-ad1d-08540d75fd83/logs/00267d8d-3638-4ee0-ba4b-585665422ee1",
    )
    .unwrap()
}

async fn unavailable(resolver: &DbResolver) -> String {
    match resolver.check().await.unwrap_err() {
        ResolveError::Unavailable { message } => message,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn runs_resolve_over_tls_checked_as_sslmode_says() {
    let db = fresh_database().await;
    let ca = env_path("TEST_DATABASE_CA");
    let other_ca = env_path("TEST_DATABASE_OTHER_CA");

    // Checked fully: the right CA and the name on the certificate.
    for mode in ["verify-full", "verify-ca", "require"] {
        let config = tls_config(
            &db.url,
            "127.0.0.1",
            &[("DB_SSLMODE", mode), ("DB_SSLROOTCERT", &ca)],
        )
        .unwrap();
        let run = resolver(&config).resolve(&taskrun()).await.unwrap();
        assert_eq!(run.kind, RunKind::TaskRun, "{mode}");
    }
    // Encryption only (libpq's prefer/require without CA certificates).
    for mode in ["prefer", "allow", "require"] {
        let config = tls_config(&db.url, "127.0.0.1", &[("DB_SSLMODE", mode)]).unwrap();
        resolver(&config).check().await.unwrap();
    }

    // Without TLS the server turns tls_only away: the resolvers above did use it.
    let config = tls_config(&db.url, "127.0.0.1", &[("DB_SSLMODE", "disable")]).unwrap();
    let message = unavailable(&resolver(&config)).await;
    assert!(message.contains("no encryption"), "{message}");

    // A certificate from another CA is refused, in every checking mode.
    for mode in ["verify-full", "verify-ca", "require"] {
        let config = tls_config(
            &db.url,
            "127.0.0.1",
            &[("DB_SSLMODE", mode), ("DB_SSLROOTCERT", &other_ca)],
        )
        .unwrap();
        let message = unavailable(&resolver(&config)).await;
        assert!(
            message.to_lowercase().contains("certificate"),
            "{mode}: {message}"
        );
    }

    // The certificate names 127.0.0.1 only: reached as localhost, verify-full
    // refuses it and verify-ca does not check the name.
    let by_name = |mode: &'static str| {
        tls_config(
            &db.url,
            "localhost",
            &[("DB_SSLMODE", mode), ("DB_SSLROOTCERT", &ca)],
        )
        .unwrap()
    };
    let message = unavailable(&resolver(&by_name("verify-full"))).await;
    assert!(message.contains("not valid for name"), "{message}");
    resolver(&by_name("verify-ca")).check().await.unwrap();
}

#[test]
fn tls_settings_are_checked_before_connecting() {
    let url = "postgres://u@127.0.0.1:5432/db";
    let err = tls_config(url, "127.0.0.1", &[("DB_SSLMODE", "verify-full")]).unwrap_err();
    assert!(err.to_string().contains("DB_SSLROOTCERT"), "{err}");
    let err = tls_config(url, "127.0.0.1", &[("DB_SSLMODE", "secure")]).unwrap_err();
    assert!(err.to_string().contains("DB_SSLMODE"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    for (path, expected) in [
        (empty.clone(), "no PEM certificate"),
        (dir.path().join("absent.pem"), "absent.pem"),
    ] {
        let config = tls_config(
            url,
            "127.0.0.1",
            &[
                ("DB_SSLMODE", "verify-ca"),
                ("DB_SSLROOTCERT", path.to_str().unwrap()),
            ],
        )
        .unwrap();
        let err = DbResolver::new(config.db.as_ref().unwrap()).unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
}
