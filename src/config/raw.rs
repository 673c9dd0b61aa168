//! [`RawConfig`]: the unvalidated key/value strings the configuration is
//! built from, merged from an optional env-format config file, the process
//! environment and CLI overrides (overrides > environment > file).

use std::collections::BTreeMap;
use std::path::Path;

use super::values::is_identifier;
use super::{Error, Result};

/// Raw configuration strings by key, before validation.
///
/// Every entry is kept, including keys this module does not know (such as
/// `HOME` and `XDG_DATA_HOME`, which pick the default data directory);
/// [`Config::from_raw`](super::Config::from_raw) ignores the unknown ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawConfig {
    values: BTreeMap<String, String>,
}

impl RawConfig {
    /// An empty map: every key takes its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every variable of an environment map, such as `std::env::vars()`.
    pub fn from_env<I: IntoIterator<Item = (String, String)>>(env: I) -> Self {
        Self {
            values: env.into_iter().collect(),
        }
    }

    /// Reads the config file, if any, then lets the environment override it.
    ///
    /// # Errors
    ///
    /// [`Error::Read`] if the file cannot be read (or is not UTF-8), and
    /// [`Error::File`] for its first malformed line.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let mut raw = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Self::parse_file_text(path, &text)?
            }
            None => Self::new(),
        };
        raw.values.extend(env);
        Ok(raw)
    }

    /// Parses the text of an env-format config file; `path` only names the
    /// file in errors.
    ///
    /// One `KEY=VALUE` per line; blank lines and lines starting with `#` are
    /// skipped, an `export ` prefix is allowed, whitespace around the key and
    /// the value is trimmed, and a value wrapped in single or double quotes
    /// loses them (the quoted text is kept as is). A quoted value may span
    /// several lines, up to the line holding its closing quote, so PEM text
    /// fits in a file. A later line for the same key wins.
    ///
    /// # Errors
    ///
    /// [`Error::File`] for the first line that is not `KEY=VALUE` (no `=`, an
    /// empty or invalid key, text after a closing quote, an unclosed quote).
    pub fn parse_file_text(path: &Path, text: &str) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut values = BTreeMap::new();
        let mut lines = text.lines().enumerate();
        while let Some((index, line)) = lines.next() {
            let error = |reason: String| Error::File {
                path: path.to_path_buf(),
                line: index + 1,
                reason,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = strip_export(line);
            let Some((key, value)) = line.split_once('=') else {
                return Err(error("expected KEY=VALUE".to_owned()));
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(error("empty key".to_owned()));
            }
            if !is_identifier(key) {
                return Err(error(format!(
                    "invalid key {key:?}: expected [A-Za-z_][A-Za-z0-9_]*"
                )));
            }
            let value = value.trim();
            let value = match value.chars().next() {
                Some(quote @ ('"' | '\'')) => unquote(value, quote, &mut lines).map_err(error)?,
                _ => value.to_owned(),
            };
            values.insert(key.to_owned(), value);
        }
        Ok(Self { values })
    }

    /// Sets a key, overriding the file and the environment (CLI overrides).
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.values.insert(key.to_owned(), value.into());
    }

    /// The raw value of a key, if present (possibly empty).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Keys that look like this service's (`LOGS_*`, `LOGGING_PLUGIN_*`, `AUTH_*`,
    /// `TLS_*`) but
    /// are not among `keys::ALL`: most likely misspelt, and otherwise ignored.
    pub fn unknown_keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str).filter(|key| {
            (key.starts_with("LOGS_")
                || key.starts_with("LOGGING_PLUGIN_")
                || key.starts_with("AUTH_")
                || key.starts_with("TLS_"))
                && !super::keys::ALL.contains(key)
        })
    }
}

/// Drops a leading `export` keyword followed by whitespace.
fn strip_export(line: &str) -> &str {
    match line.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start(),
        _ => line,
    }
}

/// Removes the quotes around `value`, which starts with `quote`; when the
/// value does not close on its line, reads the following lines up to the
/// closing quote and joins them with `\n`.
fn unquote<'a>(
    value: &str,
    quote: char,
    rest: &mut impl Iterator<Item = (usize, &'a str)>,
) -> Result<String, String> {
    let inner = &value[quote.len_utf8()..];
    if let Some(body) = inner.strip_suffix(quote) {
        return Ok(body.to_owned());
    }
    if inner.contains(quote) {
        return Err(format!("unexpected text after the closing {quote} quote"));
    }
    let mut text = inner.to_owned();
    for (index, line) in rest {
        text.push('\n');
        if let Some((body, after)) = line.split_once(quote) {
            if !after.trim().is_empty() {
                return Err(format!(
                    "the {quote} quote opened here closes on line {}, followed by unexpected text",
                    index + 1
                ));
            }
            text.push_str(body);
            return Ok(text);
        }
        text.push_str(line);
    }
    Err(format!("the {quote} quote opened here is never closed"))
}
