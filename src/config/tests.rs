//! Unit tests of the configuration: defaults, the validation and error
//! message of every key, and `describe`; the config sources and the JSON map
//! parser have their own submodules.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

mod json_map;
mod security;
mod sources;

const CERT: &str =
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUb2R1bW15\n-----END CERTIFICATE-----\n";

fn raw(pairs: &[(&str, &str)]) -> RawConfig {
    let mut raw = RawConfig::new();
    for (key, value) in pairs {
        raw.set(key, *value);
    }
    raw
}

fn config(pairs: &[(&str, &str)]) -> Config {
    match Config::from_raw(&raw(pairs)) {
        Ok(config) => config,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn error(pairs: &[(&str, &str)]) -> String {
    match Config::from_raw(&raw(pairs)) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e.to_string(),
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    env(items)
}

#[test]
fn defaults_from_empty_raw_config() {
    let c = config(&[]);
    assert_eq!(c.server.host, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(c.server.port, 8080);
    assert!(!c.logs.api);
    assert_eq!(c.logs.provider, Provider::Local);
    assert_eq!(c.logs.buffer_size, 32768);
    assert_eq!(c.logs.path, PathBuf::from("./tekton-results-logs-data"));
    assert!(!c.logs.timestamps);
    let p = &c.plugin;
    assert_eq!(p.api_url, None);
    assert_eq!(p.proxy_path, "/api/logs/v1/application");
    assert_eq!(
        p.token_path,
        PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount/token")
    );
    assert_eq!(p.namespace_key, "kubernetes_namespace_name");
    assert_eq!(
        p.container_key.as_deref(),
        Some("kubernetes.container_name")
    );
    assert_eq!(p.static_labels, pairs(&[("log_type", "application")]));
    assert_eq!(p.ca_cert, None);
    assert!(!p.tls_verification_disable);
    assert_eq!(p.query_limit, 1700);
    assert_eq!(p.forwarder_delay, Duration::from_secs(600));
    assert_eq!(p.query_params, pairs(&[("direction", "forward")]));
    assert_eq!(p.multipart_regex, None);
    assert!(p.json_map.is_empty());
    assert_eq!(p.line_format, None);
}

#[test]
fn default_data_dir_follows_xdg_then_home() {
    let path = |pairs: &[(&str, &str)]| config(pairs).logs.path;
    assert_eq!(
        path(&[("XDG_DATA_HOME", "/xdg"), ("HOME", "/home/u")]),
        PathBuf::from("/xdg/tekton-results-logs")
    );
    assert_eq!(
        path(&[("XDG_DATA_HOME", ""), ("HOME", "/home/u")]),
        PathBuf::from("/home/u/.local/share/tekton-results-logs")
    );
    assert_eq!(
        path(&[("HOME", "/home/u")]),
        PathBuf::from("/home/u/.local/share/tekton-results-logs")
    );
    assert_eq!(
        path(&[("HOME", "")]),
        PathBuf::from("./tekton-results-logs-data")
    );
    assert_eq!(
        path(&[("HOME", "/home/u"), (keys::LOGS_PATH, "/data")]),
        PathBuf::from("/data")
    );
    assert!(DEFAULT_DATA_DIR_DOC.contains("XDG_DATA_HOME"));
}

/// `(key, bad value, reason)`: every key's invalid values and messages.
#[rustfmt::skip]
const BAD_VALUES: &[(&str, &str, &str)] = &[
    (keys::SERVER_HOST, "localhost", "not an IP address"),
    (keys::SERVER_PORT, "http", "not an integer"),
    (keys::SERVER_PORT, "65536", "out of range (0 to 65535)"),
    (keys::SERVER_PORT, "-1", "out of range (0 to 65535)"),
    (keys::LOGS_API, "maybe", "not a boolean (true/false, 1/0, yes/no, on/off)"),
    (keys::LOGS_API, "", "not a boolean (true/false, 1/0, yes/no, on/off)"),
    (keys::LOGS_BUFFER_SIZE, "1k", "not an integer"),
    (keys::LOGS_PATH, "", "empty path"),
    (keys::LOGS_PATH, "a\0b", "path contains a NUL character"),
    (keys::LOGS_TIMESTAMPS, "2", "not a boolean (true/false, 1/0, yes/no, on/off)"),
    (keys::LOGGING_PLUGIN_API_URL, "loki:3100", "must start with http:// or https://"),
    (keys::LOGGING_PLUGIN_API_URL, "s3://bucket", "must start with http:// or https://"),
    (keys::LOGGING_PLUGIN_API_URL, "http://", "has no host"),
    (keys::LOGGING_PLUGIN_API_URL, "http://:3100/x", "has no host"),
    (keys::LOGGING_PLUGIN_API_URL, "http://a b", "contains whitespace"),
    (keys::LOGGING_PLUGIN_PROXY_PATH, "api", "must start with /"),
    (keys::LOGGING_PLUGIN_PROXY_PATH, "/a b", "contains whitespace"),
    (keys::LOGGING_PLUGIN_PROXY_PATH, "/a?b=c", "must not contain ? or #"),
    (keys::LOGGING_PLUGIN_TOKEN_PATH, "", "empty path"),
    (keys::LOGGING_PLUGIN_NAMESPACE_KEY, "", "must not be empty"),
    (keys::LOGGING_PLUGIN_NAMESPACE_KEY, "kubernetes.namespace", "not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
    (keys::LOGGING_PLUGIN_CONTAINER_KEY, "kubernetes..name", "not a dotted JSON path Loki reads (keys of a letter or _, then letters, digits or _, joined by dots)"),
    (keys::LOGGING_PLUGIN_CONTAINER_KEY, "a.b c", "not a dotted JSON path Loki reads (keys of a letter or _, then letters, digits or _, joined by dots)"),
    (keys::LOGGING_PLUGIN_TASKRUN_UID_KEY, "kubernetes.labels.tekton-dev", "not a dotted JSON path Loki reads (keys of a letter or _, then letters, digits or _, joined by dots)"),
    (keys::LOGGING_PLUGIN_PIPELINERUN_UID_KEY, "labels.1uid", "not a dotted JSON path Loki reads (keys of a letter or _, then letters, digits or _, joined by dots)"),
    (keys::LOGGING_PLUGIN_STATIC_LABELS, "a=b,c", "item \"c\" is not name=value"),
    (keys::LOGGING_PLUGIN_STATIC_LABELS, "a=b=c", "item \"a=b=c\" is not name=value"),
    (keys::LOGGING_PLUGIN_STATIC_LABELS, "a=b,", "item \"\" is not name=value"),
    (keys::LOGGING_PLUGIN_STATIC_LABELS, "a-b=c", "item \"a-b=c\": \"a-b\" is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
    (keys::LOGGING_PLUGIN_STATIC_LABELS, "a=", "item \"a=\": empty value"),
    (keys::LOGGING_PLUGIN_STATIC_LABELS, "a=1,a=2", "item \"a=2\": duplicate label \"a\""),
    (keys::LOGGING_PLUGIN_TLS_VERIFICATION_DISABLE, "yesplease", "not a boolean (true/false, 1/0, yes/no, on/off)"),
    (keys::LOGGING_PLUGIN_QUERY_LIMIT, "abc", "not a positive integer"),
    (keys::LOGGING_PLUGIN_QUERY_LIMIT, "0", "not a positive integer"),
    (keys::LOGGING_PLUGIN_QUERY_LIMIT, "-3", "not a positive integer"),
    (keys::LOGGING_PLUGIN_QUERY_LIMIT, "5001", "too large: the maximum is 5000, Loki's default max_entries_limit_per_query"),
    (keys::LOGGING_PLUGIN_FORWARDER_DELAY_DURATION, "10m", "not a whole number of minutes"),
    (keys::LOGGING_PLUGIN_FORWARDER_DELAY_DURATION, "-1", "must not be negative"),
    (keys::LOGGING_PLUGIN_FORWARDER_DELAY_DURATION, "999999999999999999", "too large"),
    (keys::LOGGING_PLUGIN_QUERY_PARAMS, "a=1&b", "item \"b\" is not key=value"),
    (keys::LOGGING_PLUGIN_QUERY_PARAMS, "=1", "item \"=1\": empty key"),
    (keys::LOGGING_PLUGIN_QUERY_PARAMS, "a=1=2", "item \"a=1=2\" is not key=value"),
    (keys::LOGGING_PLUGIN_JSON_MAP, "[]", "not a flat JSON object of strings: expected `{` at byte 0"),
];

#[test]
fn bad_values_name_key_and_value() {
    let long_pem_start = "-----BEGIN CERTIFICATE-----\nabc";
    for (key, value, reason) in BAD_VALUES {
        assert_eq!(
            error(&[(key, value)]),
            format!("{key}={value:?}: {reason}"),
            "{key}={value:?}"
        );
    }
    assert_eq!(
        error(&[(keys::LOGGING_PLUGIN_QUERY_LIMIT, "abc")]),
        "LOGGING_PLUGIN_QUERY_LIMIT=\"abc\": not a positive integer"
    );
    assert_eq!(
        error(&[(keys::LOGGING_PLUGIN_CA_CERT, "/etc/ssl/ca.pem")]),
        "LOGGING_PLUGIN_CA_CERT=\"/etc/ssl/ca.pem\": expects PEM text, not a path: \
         set it to the certificate file's contents"
    );
    assert_eq!(
        error(&[(keys::LOGGING_PLUGIN_CA_CERT, long_pem_start)]),
        "LOGGING_PLUGIN_CA_CERT=\"-----BEGIN CERTIFICATE-----...\": a -----BEGIN CERTIFICATE----- \
         line has no matching -----END CERTIFICATE-----"
    );
    assert_eq!(
        error(&[(keys::LOGGING_PLUGIN_CA_CERT, "hello")]),
        "LOGGING_PLUGIN_CA_CERT=\"hello\": no -----BEGIN CERTIFICATE----- ... \
         -----END CERTIFICATE----- block"
    );
    let with_key =
        format!("{CERT}-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n");
    let shown = error(&[(keys::LOGGING_PLUGIN_CA_CERT, &with_key)]);
    assert!(
        !shown.contains("secret") && shown.contains("contains a private key"),
        "{shown}"
    );
}

#[test]
fn first_error_wins_and_unused_keys_are_checked() {
    assert_eq!(
        error(&[
            (keys::LOGGING_PLUGIN_QUERY_LIMIT, "0"),
            (keys::SERVER_PORT, "x"),
        ]),
        "SERVER_PORT=\"x\": not an integer"
    );
    // The local provider does not use the plugin keys; they are checked anyway.
    assert_eq!(
        error(&[
            (keys::LOGS_TYPE, "File"),
            (keys::LOGGING_PLUGIN_QUERY_LIMIT, "0")
        ]),
        "LOGGING_PLUGIN_QUERY_LIMIT=\"0\": not a positive integer"
    );
}

#[test]
fn server_host_accepts_v4_and_v6() {
    assert_eq!(
        config(&[(keys::SERVER_HOST, "::1")]).server.host,
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    );
    assert_eq!(
        config(&[
            (keys::SERVER_HOST, "0.0.0.0"),
            (keys::SERVER_PORT, "0"),
            (keys::SERVER_ALLOW_INSECURE, "true")
        ])
        .server
        .port,
        0
    );
}

#[test]
fn buffer_size_rules() {
    let size = |v: &str| config(&[(keys::LOGS_BUFFER_SIZE, v)]).logs.buffer_size;
    assert_eq!(size("0"), 65536);
    assert_eq!(size("-5"), 65536);
    assert_eq!(size("1"), 1);
    assert_eq!(size("4190208"), 4_190_208);
    assert_eq!(
        error(&[(keys::LOGS_BUFFER_SIZE, "4190209")]),
        "LOGS_BUFFER_SIZE=\"4190209\": too large: gRPC clients reject messages over 4 MiB \
         by default, the maximum is 4190208"
    );
    assert!(error(&[(keys::LOGS_BUFFER_SIZE, "99999999999999999999999")]).contains("too large"));
}

#[test]
fn logs_type_variants() {
    let provider = |v: &str| config(&[(keys::LOGS_TYPE, v)]).logs.provider;
    for (value, expected) in [
        ("File", Provider::Local),
        ("file", Provider::Local),
        ("local", Provider::Local),
        ("LOCAL", Provider::Local),
        ("Loki", Provider::Loki),
        ("loki", Provider::Loki),
        ("BLOB", Provider::Blob),
        ("Splunk", Provider::Splunk),
        ("splunk", Provider::Splunk),
    ] {
        assert_eq!(provider(value), expected, "{value}");
    }
    for value in ["S3", "s3", "GCS"] {
        assert_eq!(
            error(&[(keys::LOGS_TYPE, value)]),
            format!(
                "LOGS_TYPE={value:?}: the v1alpha2 S3/GCS stores are not supported: use LOGS_TYPE=Blob"
            )
        );
    }
    for value in ["elastic", "files", ""] {
        assert_eq!(
            error(&[(keys::LOGS_TYPE, value)]),
            format!(
                "LOGS_TYPE={value:?}: unknown logs type: expected File, local, Loki, Blob or Splunk"
            )
        );
    }
    let names: Vec<String> = [
        Provider::Local,
        Provider::Loki,
        Provider::Blob,
        Provider::Splunk,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(names, ["local", "loki", "blob", "splunk"]);
}

#[test]
fn booleans() {
    let api = |v: &str| config(&[(keys::LOGS_API, v)]).logs.api;
    for v in ["true", "TRUE", "1", "yes", "On"] {
        assert!(api(v), "{v}");
    }
    for v in ["false", "False", "0", "no", "OFF"] {
        assert!(!api(v), "{v}");
    }
}

#[test]
fn api_url_schemes() {
    let url = |provider: &str, v: &str| {
        config(&[
            (keys::LOGS_TYPE, provider),
            (keys::LOGGING_PLUGIN_API_URL, v),
        ])
        .plugin
        .api_url
    };
    assert_eq!(url("Loki", ""), None);
    for v in [
        "http://loki:3100",
        "HTTPS://user:pw@loki.example",
        "https://[::1]:3100/x",
    ] {
        assert_eq!(url("Loki", v).as_deref(), Some(v));
    }
    for v in [
        "s3://tekton-logs",
        "gs://b",
        "file:///var/logs",
        "az://c",
        "https://minio:9000",
    ] {
        assert_eq!(url("Blob", v).as_deref(), Some(v));
    }
    assert_eq!(
        error(&[
            (keys::LOGS_TYPE, "Blob"),
            (keys::LOGGING_PLUGIN_API_URL, "ftp://x")
        ]),
        "LOGGING_PLUGIN_API_URL=\"ftp://x\": must start with http://, https://, s3://, gs://, \
         file:// or az://"
    );
    assert_eq!(
        error(&[
            (keys::LOGS_TYPE, "Blob"),
            (keys::LOGGING_PLUGIN_API_URL, "file://")
        ]),
        "LOGGING_PLUGIN_API_URL=\"file://\": has no path"
    );
}

#[test]
fn list_and_optional_keys() {
    let c = config(&[
        (keys::LOGGING_PLUGIN_PROXY_PATH, ""),
        (keys::LOGGING_PLUGIN_CONTAINER_KEY, ""),
        (keys::LOGGING_PLUGIN_STATIC_LABELS, ""),
        (keys::LOGGING_PLUGIN_QUERY_PARAMS, ""),
        (keys::LOGGING_PLUGIN_MULTIPART_REGEX, ""),
        (keys::LOGGING_PLUGIN_LINE_FORMAT, ""),
        (keys::LOGGING_PLUGIN_CA_CERT, ""),
    ]);
    let p = &c.plugin;
    assert_eq!(p.proxy_path, "");
    assert_eq!(p.container_key, None);
    assert!(p.static_labels.is_empty() && p.query_params.is_empty());
    assert_eq!(
        (p.multipart_regex.as_deref(), p.line_format.as_deref()),
        (None, None)
    );
    assert_eq!(p.ca_cert, None);

    let c = config(&[
        (
            keys::LOGGING_PLUGIN_CONTAINER_KEY,
            "kubernetes.container_name_1",
        ),
        (
            keys::LOGGING_PLUGIN_STATIC_LABELS,
            "log_type=application,env=prod",
        ),
        (
            keys::LOGGING_PLUGIN_QUERY_PARAMS,
            "direction=backward&legacy=true&empty=",
        ),
        (keys::LOGGING_PLUGIN_MULTIPART_REGEX, r"-\d{10}$"),
        (keys::LOGGING_PLUGIN_FORWARDER_DELAY_DURATION, "0"),
        (keys::LOGGING_PLUGIN_QUERY_LIMIT, "5000"),
    ]);
    let p = &c.plugin;
    assert_eq!(
        p.container_key.as_deref(),
        Some("kubernetes.container_name_1")
    );
    assert_eq!(
        p.static_labels,
        pairs(&[("log_type", "application"), ("env", "prod")])
    );
    assert_eq!(
        p.query_params,
        pairs(&[("direction", "backward"), ("legacy", "true"), ("empty", "")])
    );
    assert_eq!(p.multipart_regex.as_deref(), Some(r"-\d{10}$"));
    assert_eq!(p.forwarder_delay, Duration::ZERO);
    assert_eq!(p.query_limit, 5000);
}

#[test]
fn ca_cert_accepts_pem_blocks() {
    let two = format!("{CERT}{CERT}");
    let c = config(&[(keys::LOGGING_PLUGIN_CA_CERT, &two)]);
    assert_eq!(c.plugin.ca_cert.as_deref(), Some(two.as_str()));
}

#[test]
fn describe_summarises_without_ca_text() {
    let two = format!("{CERT}{CERT}");
    let c = config(&[
        (keys::LOGS_TYPE, "Loki"),
        (keys::SERVER_HOST, "::1"),
        (keys::SERVER_PORT, "9000"),
        (keys::LOGS_PATH, "/data/logs"),
        (
            keys::LOGGING_PLUGIN_API_URL,
            "https://user:hunter2@loki:3100/x",
        ),
        (keys::LOGGING_PLUGIN_CA_CERT, &two),
        (
            keys::LOGGING_PLUGIN_JSON_MAP,
            "{\"pod\":\"kubernetes.pod_name\"}",
        ),
    ]);
    let text = c.describe();
    for expected in [
        "provider: ",
        " loki\n",
        " [::1]:9000\n",
        " /data/logs\n",
        " 32768 bytes\n",
        &format!(" set ({} bytes, 2 certificates)\n", two.len()),
        " \"https://***@loki:3100/x\"\n",
        " \"log_type=application\"\n",
        " \"direction=forward\"\n",
        " {\"pod\": \"kubernetes.pod_name\"}\n",
        " 10 minutes\n",
        " 1700\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    for key in keys::ALL
        .iter()
        .filter(|k| k.starts_with("LOGGING_PLUGIN_"))
    {
        assert!(
            text.contains(&format!("{key}:")),
            "missing {key} in:\n{text}"
        );
    }
    assert!(!text.contains("BEGIN") && !text.contains("MIIB"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");

    let one = config(&[(keys::LOGGING_PLUGIN_CA_CERT, CERT)]).describe();
    assert!(
        one.contains(&format!(" set ({} bytes, 1 certificate)\n", CERT.len())),
        "{one}"
    );
    assert!(config(&[]).describe().contains(" unset\n"));
}

#[test]
fn log_level_is_validated_as_a_filter_directive() {
    assert_eq!(config(&[]).server.log_level, "info");
    assert_eq!(
        config(&[(keys::LOG_LEVEL, "tekton_results_logs=debug,warn")])
            .server
            .log_level,
        "tekton_results_logs=debug,warn"
    );
    let message = error(&[(keys::LOG_LEVEL, "info,=x[")]);
    assert!(
        message.starts_with("LOG_LEVEL=\"info,=x[\": not a log filter"),
        "{message}"
    );
}

#[test]
fn misspelt_service_keys_are_reported_and_others_are_not() {
    let raw = raw(&[
        ("LOGS_TYPO", "x"),
        ("LOGGING_PLUGIN_QUERY_LIMT", "5"),
        (keys::LOGS_PATH, "/data"),
        ("HOME", "/home/u"),
        ("LOGSTASH_HOST", "h"),
    ]);
    let unknown: Vec<&str> = raw.unknown_keys().collect();
    assert_eq!(unknown, vec!["LOGGING_PLUGIN_QUERY_LIMT", "LOGS_TYPO"]);
}

#[test]
fn timeouts_are_whole_positive_seconds() {
    let c = config(&[]);
    assert_eq!(c.server.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(c.logs.upload_idle_timeout, Duration::from_secs(300));
    let c = config(&[
        (keys::LOGS_UPLOAD_IDLE_TIMEOUT, "5"),
        (keys::SERVER_SHUTDOWN_TIMEOUT, "1"),
    ]);
    assert_eq!(c.logs.upload_idle_timeout, Duration::from_secs(5));
    assert_eq!(c.server.shutdown_timeout, Duration::from_secs(1));
    assert_eq!(
        error(&[(keys::LOGS_UPLOAD_IDLE_TIMEOUT, "0")]),
        "LOGS_UPLOAD_IDLE_TIMEOUT=\"0\": must be at least 1 second"
    );
    assert_eq!(
        error(&[(keys::SERVER_SHUTDOWN_TIMEOUT, "1m")]),
        "SERVER_SHUTDOWN_TIMEOUT=\"1m\": not a whole number of seconds"
    );
}

#[test]
fn the_database_is_configured_by_db_host() {
    assert_eq!(config(&[]).db, None);
    let c = config(&[
        (keys::DB_HOST, "127.0.0.1"),
        (keys::DB_PORT, "15432"),
        (keys::DB_USER, "results"),
        (keys::DB_PASSWORD, "secret"),
    ]);
    let db = c.db.unwrap();
    assert_eq!(
        (
            db.host.as_str(),
            db.port,
            db.name.as_str(),
            db.user.as_str(),
            db.max_connections
        ),
        ("127.0.0.1", 15432, "tekton-results", "results", 10)
    );
    assert_eq!(
        error(&[(keys::DB_HOST, "db")]),
        "DB_USER=\"\": required when DB_HOST is set"
    );
    assert!(error(&[(keys::DB_SSLMODE, "secure")]).contains("expected disable, allow"));
    assert!(error(&[
        (keys::DB_HOST, "db"),
        (keys::DB_USER, "u"),
        (keys::DB_SSLMODE, "verify-ca")
    ])
    .starts_with("DB_SSLROOTCERT=\"\": required with DB_SSLMODE=verify-ca"));
    assert!(error(&[(keys::DB_PORT, "x")]).starts_with("DB_PORT=\"x\""));
    assert!(error(&[(keys::DB_MAX_OPEN_CONNECTIONS, "-1")]).contains("0 to 1000"));
}

#[test]
fn the_database_password_never_shows() {
    let c = config(&[
        (keys::DB_HOST, "db"),
        (keys::DB_USER, "u"),
        (keys::DB_PASSWORD, "hunter2"),
    ]);
    assert!(!format!("{c:?}").contains("hunter2"));
    assert!(!c.describe().contains("hunter2"));
}

#[test]
fn the_metrics_port_is_upstreams_key_and_can_be_turned_off() {
    assert_eq!(config(&[]).server.metrics_port, Some(9090));
    assert_eq!(
        config(&[(keys::PROMETHEUS_PORT, "0")]).server.metrics_port,
        Some(0)
    );
    let off = config(&[(keys::PROMETHEUS_PORT, "")]);
    assert_eq!(off.server.metrics_port, None);
    assert!(
        off.describe().contains("off (PROMETHEUS_PORT empty)"),
        "{}",
        off.describe()
    );
    assert!(error(&[(keys::PROMETHEUS_PORT, "http")]).starts_with("PROMETHEUS_PORT=\"http\""));
}

#[test]
fn follow_buffer_is_a_page_count_in_range() {
    assert_eq!(config(&[]).logs.follow_buffer_pages, 64);
    let c = config(&[(keys::LOGS_FOLLOW_BUFFER_PAGES, "2")]);
    assert_eq!(c.logs.follow_buffer_pages, 2);
    for bad in ["0", "65537", "-1"] {
        assert_eq!(
            error(&[(keys::LOGS_FOLLOW_BUFFER_PAGES, bad)]),
            format!("LOGS_FOLLOW_BUFFER_PAGES={bad:?}: must be 1 to 65536 pages")
        );
    }
    assert_eq!(
        error(&[(keys::LOGS_FOLLOW_BUFFER_PAGES, "lots")]),
        "LOGS_FOLLOW_BUFFER_PAGES=\"lots\": not a whole number of pages"
    );
}

#[test]
fn follow_settle_is_whole_milliseconds_up_to_a_minute() {
    let key = keys::LOGGING_PLUGIN_FOLLOW_SETTLE_MS;
    assert_eq!(config(&[]).plugin.follow_settle, Duration::from_secs(2));
    assert_eq!(config(&[(key, "0")]).plugin.follow_settle, Duration::ZERO);
    assert_eq!(
        config(&[(key, "250")]).plugin.follow_settle,
        Duration::from_millis(250)
    );
    assert_eq!(
        error(&[(key, "60001")]),
        "LOGGING_PLUGIN_FOLLOW_SETTLE_MS=\"60001\": must be 0 to 60000 milliseconds"
    );
    assert_eq!(
        error(&[(key, "2s")]),
        "LOGGING_PLUGIN_FOLLOW_SETTLE_MS=\"2s\": not a whole number of milliseconds"
    );
}
