//! Configuration: env-format config file text → `RawConfig` →
//! `Config::from_raw`.
//!
//! - A refused file names a line of it and the reason.
//! - An accepted file's values, written back quoted, read back the same.
//! - A refused configuration names a known key, the value it was given
//!   (a CA certificate cut short) and the reason.
//! - An accepted one holds its values in their ranges, and its summary
//!   shows no password of the API URL.
//!
//! Input: the text of a config file.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tekton_results_logs::config::{keys, Config, Error, RawConfig};

/// Keys read besides the service's own (the default data directory).
const OTHER_KEYS: &[&str] = &["HOME", "XDG_DATA_HOME"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.env");
    let raw = match RawConfig::parse_file_text(path, text) {
        Ok(raw) => raw,
        Err(Error::File { line, reason, .. }) => {
            assert!(!reason.is_empty());
            let lines = text.lines().count();
            assert!((1..=lines).contains(&line), "line {line} of {lines}");
            return;
        }
        Err(other) => panic!("parsing text gave {other:?}"),
    };
    check_written_back(path, &raw);
    for key in raw.unknown_keys() {
        assert!(["LOGS_", "LOGGING_PLUGIN_", "AUTH_", "TLS_"]
            .iter()
            .any(|prefix| key.starts_with(prefix)));
        assert!(!keys::ALL.contains(&key));
    }
    match Config::from_raw(&raw) {
        Ok(config) => check_config(&config),
        Err(Error::Invalid { key, value, reason }) => {
            assert!(keys::ALL.contains(&key), "{key}");
            assert!(!reason.is_empty());
            if key == keys::LOGGING_PLUGIN_CA_CERT {
                assert!(
                    value.chars().count() <= 43 && !value.contains('\n'),
                    "{value:?}"
                );
            } else if let Some(given) = raw.get(key) {
                assert_eq!(value, given);
            }
        }
        Err(other) => panic!("validating gave {other:?}"),
    }
});

/// Every value read, written back as `KEY='value'` (or in double quotes),
/// reads back the same.
fn check_written_back(path: &Path, raw: &RawConfig) {
    let mut text = String::new();
    let mut written = Vec::new();
    for key in keys::ALL.iter().chain(OTHER_KEYS) {
        // A `\r` before a line end is part of the line end when read back.
        let Some(value) = raw.get(key).filter(|v| !v.contains('\r')) else {
            continue;
        };
        let quote = if !value.contains('\'') {
            '\''
        } else if !value.contains('"') {
            '"'
        } else {
            continue;
        };
        text.push_str(&format!("{key}={quote}{value}{quote}\n"));
        written.push((key, value));
    }
    let again = RawConfig::parse_file_text(path, &text)
        .unwrap_or_else(|e| panic!("{text:?} does not read back: {e}"));
    for (key, value) in written {
        assert_eq!(again.get(key), Some(value), "{key} in {text:?}");
    }
}

fn check_config(config: &Config) {
    let plugin = &config.plugin;
    assert!((1..=5000).contains(&plugin.query_limit));
    assert!((1..=4_190_208).contains(&config.logs.buffer_size));
    assert!((1..=65_536).contains(&config.logs.follow_buffer_pages));
    assert!(plugin.follow_settle.as_millis() <= 60_000);
    assert!(plugin.proxy_path.is_empty() || plugin.proxy_path.starts_with('/'));
    for (name, value) in &plugin.static_labels {
        assert!(!name.is_empty() && !value.is_empty());
    }
    let summary = config.describe();
    assert!(!summary.is_empty());
    if let Some(url) = &plugin.api_url {
        let authority = |url: &str| -> String {
            let rest = url.split_once("://").map_or("", |(_, rest)| rest);
            rest.split(['/', '?', '#']).next().unwrap_or("").to_owned()
        };
        if authority(url).contains('@') {
            // The user info (and with it any password) is masked.
            let row = summary
                .lines()
                .find(|row| row.starts_with(&format!("{}:", keys::LOGGING_PLUGIN_API_URL)))
                .unwrap();
            let shown = authority(row);
            let host = shown
                .strip_prefix("***@")
                .unwrap_or_else(|| panic!("{row}"));
            assert!(!host.contains('@'), "{row}");
        }
    }
    if let Some(db) = &config.db {
        assert!(!db.user.is_empty());
        if !db.password.is_empty() {
            let debug = format!("{db:?}");
            assert!(
                !debug.contains(&format!("password: {:?}", db.password)),
                "{debug}"
            );
        }
    }
}
