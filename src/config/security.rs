//! The security and limits section: who may call (`AUTH_*`), TLS for the
//! server (`TLS_*`), whether an exposed plaintext, unauthenticated server
//! may start (`SERVER_ALLOW_INSECURE`), and the stream, size and time
//! limits (`LOGS_MAX_*`, `LOGS_READ_TIMEOUT`, `SERVER_HEADER_TIMEOUT`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::values::{parse_bool, parse_int, parse_optional_path, parse_path, parse_seconds};
use super::{field, keys, Error, RawConfig, Result};
use crate::auth::KubeSettings;

/// Where the in-cluster service account's files are.
const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How callers are authenticated and authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// Everyone may do everything.
    None,
    /// Static bearer tokens from a file.
    Tokens {
        /// `AUTH_TOKENS_FILE`.
        file: PathBuf,
    },
    /// TokenReview and SubjectAccessReview.
    Kubernetes(KubeSettings),
}

impl AuthConfig {
    /// Whether callers are checked at all.
    pub fn is_enabled(&self) -> bool {
        !matches!(self, Self::None)
    }
}

/// The server's certificate and key files (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Limits on what callers may hold and send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Concurrent log streams in all (`LOGS_MAX_STREAMS`).
    pub max_streams: usize,
    /// Concurrent log streams per caller (`LOGS_MAX_STREAMS_PER_CALLER`).
    pub max_streams_per_caller: usize,
    /// The longest a read that does not follow may take (`LOGS_READ_TIMEOUT`).
    pub read_timeout: Duration,
    /// The longest a follow lasts (`LOGS_MAX_FOLLOW_DURATION`).
    pub max_follow: Duration,
    /// The most bytes one upload may store (`LOGS_MAX_UPLOAD_BYTES`).
    pub max_upload_bytes: u64,
    /// How long a client has for its TLS handshake, its first request and
    /// a request's headers (`SERVER_HEADER_TIMEOUT`).
    pub header_timeout: Duration,
    /// The most connections served at once (`SERVER_MAX_CONNECTIONS`).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_streams: 10_000,
            max_streams_per_caller: 100,
            read_timeout: Duration::from_secs(3600),
            max_follow: Duration::from_secs(24 * 3600),
            max_upload_bytes: 1 << 30,
            header_timeout: Duration::from_secs(30),
            max_connections: 50_000,
        }
    }
}

/// The validated security section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    /// Who may call.
    pub auth: AuthConfig,
    /// TLS for the server, `None` for plaintext.
    pub tls: Option<TlsFiles>,
    /// `SERVER_ALLOW_INSECURE`: start on a non-loopback address with neither
    /// TLS nor auth.
    pub allow_insecure: bool,
    /// Stream, size and time limits.
    pub limits: Limits,
}

fn count(min: i64, max: i64) -> impl Fn(&str) -> Result<usize, String> {
    move |v| match parse_int(v) {
        Some(n) if (min..=max).contains(&n) => Ok(n as usize),
        _ => Err(format!("not a whole number from {min} to {max}")),
    }
}

/// The auth mode: `AUTH_MODE` if set; else `none` with `AUTH_DISABLE=true`;
/// else `kubernetes` with `AUTH_DISABLE=false` said outright or inside a
/// cluster (upstream's default there); else `none`.
fn auth_config(raw: &RawConfig) -> Result<AuthConfig> {
    let disable = field(raw, keys::AUTH_DISABLE, "", |v| {
        if v.is_empty() {
            Ok(None)
        } else {
            parse_bool(v).map(Some)
        }
    })?;
    let in_cluster = raw
        .get("KUBERNETES_SERVICE_HOST")
        .is_some_and(|h| !h.is_empty());
    let tokens_given = raw
        .get(keys::AUTH_TOKENS_FILE)
        .is_some_and(|f| !f.is_empty());
    let default_mode = match disable {
        Some(true) => "none",
        Some(false) if tokens_given => "tokens",
        Some(false) => "kubernetes",
        None if tokens_given => "tokens",
        None if in_cluster => "kubernetes",
        None => "none",
    };
    let mode = field(raw, keys::AUTH_MODE, default_mode, |v| {
        match v.to_ascii_lowercase().as_str() {
            "" => Ok(default_mode),
            "none" => Ok("none"),
            "tokens" => Ok("tokens"),
            "kubernetes" => Ok("kubernetes"),
            _ => Err("must be none, tokens or kubernetes".to_owned()),
        }
    })?;
    if disable == Some(false) && mode == "none" {
        return Err(Error::Invalid {
            key: keys::AUTH_MODE,
            value: mode.to_owned(),
            reason: "AUTH_DISABLE=false asks for auth; unset one of the two".to_owned(),
        });
    }
    if tokens_given && mode != "tokens" {
        return Err(Error::Invalid {
            key: keys::AUTH_TOKENS_FILE,
            value: raw.get(keys::AUTH_TOKENS_FILE).unwrap_or("").to_owned(),
            reason: format!("only read with AUTH_MODE=tokens, and auth is {mode}"),
        });
    }
    if disable == Some(true) && mode != "none" {
        return Err(Error::Invalid {
            key: keys::AUTH_MODE,
            value: mode.to_owned(),
            reason: "AUTH_DISABLE=true turns auth off; unset one of the two".to_owned(),
        });
    }
    let tokens_file = field(raw, keys::AUTH_TOKENS_FILE, "", parse_optional_path)?;
    let default_url = match (
        raw.get("KUBERNETES_SERVICE_HOST"),
        raw.get("KUBERNETES_SERVICE_PORT"),
    ) {
        (Some(host), port) if !host.is_empty() => {
            let port = port.filter(|p| !p.is_empty()).unwrap_or("443");
            if host.contains(':') {
                format!("https://[{host}]:{port}")
            } else {
                format!("https://{host}:{port}")
            }
        }
        _ => String::new(),
    };
    let api_url = field(raw, keys::AUTH_KUBERNETES_API_URL, &default_url, |v| {
        if v.is_empty() {
            return Ok(None);
        }
        match v.strip_prefix("https://") {
            Some(rest) if !rest.is_empty() && !rest.contains('?') && !rest.contains('#') => {
                Ok(Some(v.trim_end_matches('/').to_owned()))
            }
            _ => Err("expected an https:// URL of the Kubernetes API server".to_owned()),
        }
    })?;
    let token_path = field(
        raw,
        keys::AUTH_KUBERNETES_TOKEN_PATH,
        &format!("{SERVICE_ACCOUNT}/token"),
        parse_path,
    )?;
    let ca_path = field(
        raw,
        keys::AUTH_KUBERNETES_CA_PATH,
        &format!("{SERVICE_ACCOUNT}/ca.crt"),
        parse_optional_path,
    )?;
    let cache_ttl = field(raw, keys::AUTH_CACHE_TTL, "10", |v| match parse_int(v) {
        Some(n @ 0..=3600) => Ok(Duration::from_secs(n as u64)),
        _ => Err("must be 0 to 3600 seconds".to_owned()),
    })?;
    let cache_size = field(raw, keys::AUTH_CACHE_SIZE, "10000", count(0, 1_000_000))?;
    Ok(match mode {
        "none" => AuthConfig::None,
        "tokens" => AuthConfig::Tokens {
            file: tokens_file.ok_or_else(|| Error::Invalid {
                key: keys::AUTH_TOKENS_FILE,
                value: String::new(),
                reason: "required with AUTH_MODE=tokens: the file of tokens".to_owned(),
            })?,
        },
        _ => AuthConfig::Kubernetes(KubeSettings {
            api_url: api_url.ok_or_else(|| Error::Invalid {
                key: keys::AUTH_KUBERNETES_API_URL,
                value: String::new(),
                reason: "required with Kubernetes auth outside a cluster (KUBERNETES_SERVICE_HOST \
                         is unset): the API server's https:// URL"
                    .to_owned(),
            })?,
            token_path,
            ca_path,
            cache_ttl,
            cache_size,
            timeout: Duration::from_secs(10),
        }),
    })
}

/// TLS files: `TLS_CERT_FILE` and `TLS_KEY_FILE` (both or neither, and
/// they must exist), else upstream's `TLS_PATH` directory's `tls.crt` and
/// `tls.key` when both are there (plaintext when they are not, as upstream).
fn tls_config(raw: &RawConfig) -> Result<Option<TlsFiles>> {
    let dir = field(raw, keys::TLS_PATH, "/etc/tls", parse_path)?;
    let cert = field(raw, keys::TLS_CERT_FILE, "", parse_optional_path)?;
    let key = field(raw, keys::TLS_KEY_FILE, "", parse_optional_path)?;
    let exists = |key: &'static str, path: &Path| -> Result<()> {
        if path.is_file() {
            Ok(())
        } else {
            Err(Error::Invalid {
                key,
                value: path.display().to_string(),
                reason: "no such file".to_owned(),
            })
        }
    };
    match (cert, key) {
        (Some(cert), Some(key)) => {
            exists(keys::TLS_CERT_FILE, &cert)?;
            exists(keys::TLS_KEY_FILE, &key)?;
            Ok(Some(TlsFiles { cert, key }))
        }
        (Some(_), None) | (None, Some(_)) => Err(Error::Invalid {
            key: keys::TLS_KEY_FILE,
            value: raw.get(keys::TLS_KEY_FILE).unwrap_or("").to_owned(),
            reason: "TLS_CERT_FILE and TLS_KEY_FILE go together: set both or neither".to_owned(),
        }),
        (None, None) => {
            let cert = dir.join("tls.crt");
            let key = dir.join("tls.key");
            Ok((cert.is_file() && key.is_file()).then_some(TlsFiles { cert, key }))
        }
    }
}

fn limits(raw: &RawConfig) -> Result<Limits> {
    // The defaults are `Limits::default()`'s, written as the keys take them.
    let d = Limits::default();
    let secs = |t: Duration| t.as_secs().to_string();
    let limits = Limits {
        max_streams: field(
            raw,
            keys::LOGS_MAX_STREAMS,
            &d.max_streams.to_string(),
            count(1, 1_000_000),
        )?,
        max_streams_per_caller: field(
            raw,
            keys::LOGS_MAX_STREAMS_PER_CALLER,
            &d.max_streams_per_caller.to_string(),
            count(1, 1_000_000),
        )?,
        read_timeout: field(
            raw,
            keys::LOGS_READ_TIMEOUT,
            &secs(d.read_timeout),
            parse_seconds,
        )?,
        max_follow: field(
            raw,
            keys::LOGS_MAX_FOLLOW_DURATION,
            &secs(d.max_follow),
            parse_seconds,
        )?,
        max_upload_bytes: field(
            raw,
            keys::LOGS_MAX_UPLOAD_BYTES,
            &d.max_upload_bytes.to_string(),
            |v| match parse_int(v) {
                Some(n) if n >= 1 => Ok(n as u64),
                _ => Err("must be a positive number of bytes".to_owned()),
            },
        )?,
        header_timeout: field(
            raw,
            keys::SERVER_HEADER_TIMEOUT,
            &secs(d.header_timeout),
            parse_seconds,
        )?,
        max_connections: field(
            raw,
            keys::SERVER_MAX_CONNECTIONS,
            &d.max_connections.to_string(),
            count(1, 10_000_000),
        )?,
    };
    if limits.max_streams_per_caller > limits.max_streams {
        return Err(Error::Invalid {
            key: keys::LOGS_MAX_STREAMS_PER_CALLER,
            value: limits.max_streams_per_caller.to_string(),
            reason: format!(
                "more than LOGS_MAX_STREAMS ({}) allows in all",
                limits.max_streams
            ),
        });
    }
    Ok(limits)
}

/// Reads and checks the section; `host` is where the server listens.
pub(super) fn security(raw: &RawConfig, host: IpAddr) -> Result<Security> {
    let auth = auth_config(raw)?;
    let tls = tls_config(raw)?;
    let allow_insecure = field(raw, keys::SERVER_ALLOW_INSECURE, "false", parse_bool)?;
    let limits = limits(raw)?;
    if !host.is_loopback() && tls.is_none() && !auth.is_enabled() && !allow_insecure {
        return Err(Error::Invalid {
            key: keys::SERVER_HOST,
            value: host.to_string(),
            reason: "not a loopback address, and the server would have neither TLS nor auth: \
                     anyone who can reach it could read every log. Set TLS_CERT_FILE and \
                     TLS_KEY_FILE (or TLS_PATH), or AUTH_MODE, or SERVER_ALLOW_INSECURE=true \
                     to accept this"
                .to_owned(),
        });
    }
    Ok(Security {
        auth,
        tls,
        allow_insecure,
        limits,
    })
}

impl Security {
    /// The auth mode, for `check`.
    pub fn describe_auth(&self) -> String {
        match &self.auth {
            AuthConfig::None => "none: every caller may read, upload and delete".to_owned(),
            AuthConfig::Tokens { file } => format!("static tokens from {}", file.display()),
            AuthConfig::Kubernetes(k) => format!(
                "Kubernetes TokenReview and SubjectAccessReview at {} (token {}, CA {}, \
                 decisions kept {} s, at most {})",
                k.api_url,
                k.token_path.display(),
                k.ca_path
                    .as_ref()
                    .map_or("system roots".to_owned(), |p| p.display().to_string()),
                k.cache_ttl.as_secs(),
                k.cache_size
            ),
        }
    }

    /// The limits, for `check`.
    pub fn describe_limits(&self) -> String {
        let l = &self.limits;
        format!(
            "{} streams, {} per caller; reads {} s, follows {} s; uploads up to {} bytes; \
             requests within {} s; {} connections",
            l.max_streams,
            l.max_streams_per_caller,
            l.read_timeout.as_secs(),
            l.max_follow.as_secs(),
            l.max_upload_bytes,
            l.header_timeout.as_secs(),
            l.max_connections
        )
    }
}
