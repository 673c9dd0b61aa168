//! Parsers and checks for each value format of the configuration keys,
//! including a small strict parser for the flat JSON object of
//! `LOGGING_PLUGIN_JSON_MAP`. Each returns the reason a value is rejected.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::Provider;

/// Largest `LOGS_BUFFER_SIZE`: 4 MiB minus 4 KiB, leaving room for the
/// rest of the gRPC message.
const MAX_BUFFER_SIZE: i64 = 4_190_208;
/// `LOGS_BUFFER_SIZE` used when the configured one is below 1.
const FALLBACK_BUFFER_SIZE: usize = 65_536;
/// Largest `LOGGING_PLUGIN_QUERY_LIMIT`: Loki's default `max_entries_limit_per_query`.
const MAX_QUERY_LIMIT: i64 = 5000;

/// Whether `s` matches `[A-Za-z_][A-Za-z0-9_]*` (env keys, Loki label names).
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// An optionally signed decimal integer; out-of-range values saturate so
/// that range checks reject them.
pub(super) fn parse_int(v: &str) -> Option<i64> {
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let saturated = if v.starts_with('-') {
        i64::MIN
    } else {
        i64::MAX
    };
    Some(v.parse().unwrap_or(saturated))
}

pub(super) fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("not a boolean (true/false, 1/0, yes/no, on/off)".to_owned()),
    }
}

pub(super) fn parse_ip(v: &str) -> Result<IpAddr, String> {
    v.parse().map_err(|_| "not an IP address".to_owned())
}

pub(super) fn parse_port(v: &str) -> Result<u16, String> {
    let n = parse_int(v).ok_or("not an integer")?;
    u16::try_from(n).map_err(|_| "out of range (0 to 65535)".to_owned())
}

pub(super) fn parse_provider(v: &str) -> Result<Provider, String> {
    match v.to_ascii_lowercase().as_str() {
        "file" | "local" => Ok(Provider::Local),
        "loki" => Ok(Provider::Loki),
        "blob" => Ok(Provider::Blob),
        "splunk" => Ok(Provider::Splunk),
        "s3" | "gcs" => {
            Err("the v1alpha2 S3/GCS stores are not supported: use LOGS_TYPE=Blob".to_owned())
        }
        _ => Err("unknown logs type: expected File, local, Loki, Blob or Splunk".to_owned()),
    }
}

pub(super) fn parse_buffer_size(v: &str) -> Result<usize, String> {
    let n = parse_int(v).ok_or("not an integer")?;
    if n < 1 {
        return Ok(FALLBACK_BUFFER_SIZE);
    }
    if n > MAX_BUFFER_SIZE {
        return Err(format!(
            "too large: gRPC clients reject messages over 4 MiB by default, the maximum is {MAX_BUFFER_SIZE}"
        ));
    }
    usize::try_from(n).map_err(|_| "too large for this platform".to_owned())
}

pub(super) fn parse_path(v: &str) -> Result<PathBuf, String> {
    if v.is_empty() {
        Err("empty path".to_owned())
    } else if v.contains('\0') {
        Err("path contains a NUL character".to_owned())
    } else {
        Ok(PathBuf::from(v))
    }
}

/// A path, or `None` when empty.
pub(super) fn parse_optional_path(v: &str) -> Result<Option<PathBuf>, String> {
    if v.is_empty() {
        Ok(None)
    } else {
        parse_path(v).map(Some)
    }
}

pub(super) fn parse_optional(v: &str) -> Result<Option<String>, String> {
    Ok((!v.is_empty()).then(|| v.to_owned()))
}

pub(super) fn parse_api_url(v: &str, provider: Provider) -> Result<Option<String>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    if v.chars().any(char::is_whitespace) {
        return Err("contains whitespace".to_owned());
    }
    let (schemes, expected): (&[&str], &str) = if provider == Provider::Blob {
        (
            &["http", "https", "s3", "gs", "file", "az"],
            "must start with http://, https://, s3://, gs://, file:// or az://",
        )
    } else {
        (&["http", "https"], "must start with http:// or https://")
    };
    let (scheme, rest) = v.split_once("://").ok_or(expected)?;
    let scheme = scheme.to_ascii_lowercase();
    if !schemes.contains(&scheme.as_str()) {
        return Err(expected.to_owned());
    }
    if scheme == "file" {
        return if rest.is_empty() {
            Err("has no path".to_owned())
        } else {
            Ok(Some(v.to_owned()))
        };
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once(']').map_or("", |(h, _)| h),
        None => host_port.split(':').next().unwrap_or(""),
    };
    if host.is_empty() {
        return Err("has no host".to_owned());
    }
    Ok(Some(v.to_owned()))
}

pub(super) fn parse_proxy_path(v: &str) -> Result<String, String> {
    if v.is_empty() {
        Ok(String::new())
    } else if !v.starts_with('/') {
        Err("must start with /".to_owned())
    } else if v.chars().any(char::is_whitespace) {
        Err("contains whitespace".to_owned())
    } else if v.contains(['?', '#']) {
        Err("must not contain ? or #".to_owned())
    } else {
        Ok(v.to_owned())
    }
}

pub(super) fn parse_label_name(v: &str) -> Result<String, String> {
    if v.is_empty() {
        Err("must not be empty".to_owned())
    } else if !is_identifier(v) {
        Err("not a label name ([a-zA-Z_][a-zA-Z0-9_]*)".to_owned())
    } else {
        Ok(v.to_owned())
    }
}

/// The keys of a dotted JSON path, as Loki's `json` stage reads them
/// unquoted.
const PATH_KEYS: &str = "keys of a letter or _, then letters, digits or _, joined by dots";

pub(super) fn parse_json_path(v: &str) -> Result<Option<String>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    // The path goes into Loki's `json` stage as written, so its keys are
    // what Loki's path lexer reads unquoted; any other key makes Loki refuse
    // every query.
    if v.split('.').all(is_identifier) {
        Ok(Some(v.to_owned()))
    } else {
        Err(format!("not a dotted JSON path Loki reads ({PATH_KEYS})"))
    }
}

pub(super) fn parse_static_labels(v: &str) -> Result<Vec<(String, String)>, String> {
    let mut labels: Vec<(String, String)> = Vec::new();
    if v.is_empty() {
        return Ok(labels);
    }
    for item in v.split(',') {
        let (name, value) = match item.split_once('=') {
            Some((name, value)) if !value.contains('=') => (name, value),
            _ => return Err(format!("item {item:?} is not name=value")),
        };
        if !is_identifier(name) {
            return Err(format!(
                "item {item:?}: {name:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"
            ));
        }
        if value.is_empty() {
            return Err(format!("item {item:?}: empty value"));
        }
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("item {item:?}: duplicate label {name:?}"));
        }
        labels.push((name.to_owned(), value.to_owned()));
    }
    Ok(labels)
}

const BEGIN_CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----";
const END_CERTIFICATE: &str = "-----END CERTIFICATE-----";

/// Counts the complete certificate blocks of PEM text; an unclosed block is
/// an error.
pub(super) fn count_certificates(pem: &str) -> Result<usize, String> {
    let mut count = 0;
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN_CERTIFICATE) {
        let body = &rest[start + BEGIN_CERTIFICATE.len()..];
        match body.find(END_CERTIFICATE) {
            Some(end) if !body[..end].contains(BEGIN_CERTIFICATE) => {
                count += 1;
                rest = &body[end + END_CERTIFICATE.len()..];
            }
            _ => {
                return Err(format!(
                    "a {BEGIN_CERTIFICATE} line has no matching {END_CERTIFICATE}"
                ));
            }
        }
    }
    Ok(count)
}

pub(super) fn parse_ca_cert(v: &str) -> Result<Option<String>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    if v.contains("PRIVATE KEY-----") {
        return Err("contains a private key: only CA certificates belong here".to_owned());
    }
    if count_certificates(v)? > 0 {
        Ok(Some(v.to_owned()))
    } else if v.trim_start().starts_with('/') {
        Err("expects PEM text, not a path: set it to the certificate file's contents".to_owned())
    } else {
        Err(format!(
            "no {BEGIN_CERTIFICATE} ... {END_CERTIFICATE} block"
        ))
    }
}

pub(super) fn parse_query_limit(v: &str) -> Result<u32, String> {
    match parse_int(v) {
        Some(n) if n > MAX_QUERY_LIMIT => Err(format!(
            "too large: the maximum is {MAX_QUERY_LIMIT}, Loki's default max_entries_limit_per_query"
        )),
        Some(n) if n >= 1 => u32::try_from(n).map_err(|_| "not a positive integer".to_owned()),
        _ => Err("not a positive integer".to_owned()),
    }
}

pub(super) fn parse_minutes(v: &str) -> Result<Duration, String> {
    let n = parse_int(v).ok_or("not a whole number of minutes")?;
    let minutes = u64::try_from(n).map_err(|_| "must not be negative".to_owned())?;
    minutes
        .checked_mul(60)
        .map(Duration::from_secs)
        .ok_or_else(|| "too large".to_owned())
}

pub(super) fn parse_seconds(v: &str) -> Result<Duration, String> {
    let n = parse_int(v).ok_or("not a whole number of seconds")?;
    match u64::try_from(n) {
        Ok(0) | Err(_) => Err("must be at least 1 second".to_owned()),
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
    }
}

pub(super) fn parse_follow_buffer_pages(v: &str) -> Result<usize, String> {
    let n = parse_int(v).ok_or("not a whole number of pages")?;
    match usize::try_from(n) {
        Ok(pages @ 1..=65536) => Ok(pages),
        _ => Err("must be 1 to 65536 pages".to_owned()),
    }
}

pub(super) fn parse_settle_ms(v: &str) -> Result<Duration, String> {
    let n = parse_int(v).ok_or("not a whole number of milliseconds")?;
    match u64::try_from(n) {
        Ok(ms @ 0..=60_000) => Ok(Duration::from_millis(ms)),
        _ => Err("must be 0 to 60000 milliseconds".to_owned()),
    }
}

pub(super) fn parse_query_plan(v: &str) -> Result<super::QueryPlan, String> {
    match v.to_ascii_lowercase().as_str() {
        "connector" => Ok(super::QueryPlan::Connector),
        "loki" => Ok(super::QueryPlan::Loki),
        _ => Err("must be connector or loki".to_owned()),
    }
}

pub(super) fn parse_query_params(v: &str) -> Result<Vec<(String, String)>, String> {
    let mut params = Vec::new();
    if v.is_empty() {
        return Ok(params);
    }
    for item in v.split('&') {
        match item.split_once('=') {
            Some(("", _)) => return Err(format!("item {item:?}: empty key")),
            Some((key, value)) if !value.contains('=') => {
                params.push((key.to_owned(), value.to_owned()));
            }
            _ => return Err(format!("item {item:?} is not key=value")),
        }
    }
    Ok(params)
}

pub(super) fn parse_json_map(v: &str) -> Result<Vec<(String, String)>, String> {
    if v.is_empty() {
        return Ok(Vec::new());
    }
    let mut parser = JsonMapParser { text: v, pos: 0 };
    let map = parser.object().map_err(|(pos, what)| {
        format!("not a flat JSON object of strings: {what} at byte {pos}")
    })?;
    // Keys become LogQL label names; `uid` is the run filter and must keep
    // its configured path, or the filter could match other runs' lines.
    for (key, _path) in &map {
        if !is_identifier(key) {
            return Err(format!(
                "key {key:?} is not a label name ([A-Za-z_][A-Za-z0-9_]*)"
            ));
        }
        if key == "uid" {
            return Err("key \"uid\" is reserved for the run filter; set LOGGING_PLUGIN_TASKRUN_UID_KEY instead".to_owned());
        }
    }
    Ok(map)
}

/// A byte offset into the JSON text and what was wrong there.
type JsonResult<T> = Result<T, (usize, String)>;

/// A strict parser for exactly one JSON object whose values are strings.
struct JsonMapParser<'a> {
    text: &'a str,
    /// Byte offset of the next unread character (always a char boundary).
    pos: usize,
}

impl JsonMapParser<'_> {
    fn fail<T>(&self, what: &str) -> JsonResult<T> {
        Err((self.pos, what.to_owned()))
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn object(&mut self) -> JsonResult<Vec<(String, String)>> {
        let mut map: Vec<(String, String)> = Vec::new();
        self.skip_whitespace();
        if !self.eat(b'{') {
            return self.fail("expected `{`");
        }
        self.skip_whitespace();
        if !self.eat(b'}') {
            loop {
                let key_pos = self.pos;
                let key = self.string("expected a string key")?;
                if map.iter().any(|(k, _)| *k == key) {
                    return Err((key_pos, format!("duplicate key {key:?}")));
                }
                self.skip_whitespace();
                if !self.eat(b':') {
                    return self.fail("expected `:`");
                }
                self.skip_whitespace();
                let value = self.string("expected a string value")?;
                map.push((key, value));
                self.skip_whitespace();
                if self.eat(b'}') {
                    break;
                }
                if !self.eat(b',') {
                    return self.fail("expected `,` or `}`");
                }
                self.skip_whitespace();
            }
        }
        self.skip_whitespace();
        if self.pos < self.text.len() {
            return self.fail("unexpected text after the object");
        }
        Ok(map)
    }

    fn string(&mut self, expected: &str) -> JsonResult<String> {
        if !self.eat(b'"') {
            return self.fail(expected);
        }
        let mut out = String::new();
        loop {
            let Some(c) = self.text.get(self.pos..).and_then(|s| s.chars().next()) else {
                return self.fail("unterminated string");
            };
            match c {
                '"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                '\\' => {
                    self.pos += 1;
                    out.push(self.escape()?);
                }
                c if c < ' ' => return self.fail("unescaped control character"),
                c => {
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    /// Decodes the escape after a backslash (at `pos - 1`).
    fn escape(&mut self) -> JsonResult<char> {
        let start = self.pos - 1;
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                return self.unicode_escape(start);
            }
            _ => return Err((start, "invalid escape".to_owned())),
        };
        self.pos += 1;
        Ok(c)
    }

    /// Decodes the digits of a `\uXXXX` escape starting at `start`,
    /// combining a surrogate pair into one character.
    fn unicode_escape(&mut self, start: usize) -> JsonResult<char> {
        let unpaired = || Err((start, "unpaired surrogate in \\u escape".to_owned()));
        let code = match self.hex4()? {
            high @ 0xD800..=0xDBFF => {
                if !self.text[self.pos..].starts_with("\\u") {
                    return unpaired();
                }
                self.pos += 2;
                match self.hex4()? {
                    low @ 0xDC00..=0xDFFF => 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00),
                    _ => return unpaired(),
                }
            }
            0xDC00..=0xDFFF => return unpaired(),
            code => code,
        };
        char::from_u32(code).ok_or((start, "invalid \\u escape".to_owned()))
    }

    fn hex4(&mut self) -> JsonResult<u32> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some(code) = digits.and_then(|d| u32::from_str_radix(d, 16).ok()) else {
            return self.fail("expected 4 hex digits after \\u");
        };
        self.pos += 4;
        Ok(code)
    }
}

pub(super) fn parse_log_level(v: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(v)
        .map(|_| v.to_owned())
        .map_err(|e| {
            format!("not a log filter such as info, debug or tekton_results_logs=debug,warn: {e}")
        })
}

pub(super) fn parse_required_json_path(v: &str) -> Result<String, String> {
    parse_json_path(v)?.ok_or_else(|| "must not be empty".to_owned())
}

pub(super) fn parse_tenant(v: &str) -> Result<Option<String>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    // Loki's tenant IDs: printable ASCII without '/' or '\\' (and not "." or "..");
    // '|' joins several tenants for queries.
    let ok = v
        .bytes()
        .all(|b| (0x21..0x7f).contains(&b) && b != b'/' && b != b'\\')
        && v != "."
        && v != ".."
        && v.len() <= 150;
    if ok {
        Ok(Some(v.to_owned()))
    } else {
        Err(
            "not a Loki tenant ID (up to 150 printable ASCII characters, no '/' or '\\')"
                .to_owned(),
        )
    }
}
