//! Who may do what: every log operation names a namespace and a verb, and
//! the caller's credentials (a bearer token from the HTTP `Authorization`
//! header or the gRPC `authorization` metadata) must allow it there.
//!
//! Three modes (`AUTH_MODE`, see `docs/security.md`):
//! - `none`: everyone may do everything (upstream's `AUTH_DISABLE=true`; the
//!   embedded default, which the server accepts only on a loopback address
//!   or with TLS, unless told otherwise);
//! - `tokens`: a file of static bearer tokens, each allowed some namespaces;
//! - `kubernetes`: the Kubernetes API server says who the token belongs to
//!   (TokenReview) and whether they may use the `logs` resource of the
//!   `results.tekton.dev` group with the verb in the namespace
//!   (SubjectAccessReview), as upstream's API server asks; decisions are
//!   kept for a short time in a bounded cache.
//!
//! Unlike upstream, which answers every failure with Unauthenticated, a
//! caller who is known but not allowed gets PermissionDenied, and an API
//! server that cannot be asked gets Unavailable (and no access).

mod cache;
mod kube;
mod tokens;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;

pub use kube::{KubeAuthorizer, KubeSettings};
pub use tokens::TokenFile;

/// What an operation does to a namespace's logs: the verbs of upstream's
/// checks on the `logs` resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// Read a log.
    Get,
    /// Store (upload) a log.
    Update,
    /// Delete a log.
    Delete,
}

impl Verb {
    /// The Kubernetes verb.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }

    /// Whether the verb changes what is stored.
    pub fn writes(self) -> bool {
        matches!(self, Self::Update | Self::Delete)
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request brings to prove who sent it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The bearer token, if the request had one.
    pub token: Option<String>,
    /// Why the request's `Authorization` value is not a bearer token, if
    /// it is not (ignored when auth is off, as upstream ignores it).
    pub malformed: Option<String>,
    /// The address the request came from, when known.
    pub peer: Option<IpAddr>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("malformed", &self.malformed)
            .field("peer", &self.peer)
            .finish()
    }
}

impl Credentials {
    /// The credentials of an `Authorization` header value (`Bearer <token>`,
    /// the scheme in any case). Another scheme is noted, so that a client
    /// sending the wrong kind learns it where auth is on.
    pub fn from_authorization(value: Option<&[u8]>, peer: Option<IpAddr>) -> Self {
        let (token, malformed) = match value.map(bearer_token) {
            None => (None, None),
            Some(Ok(token)) => (Some(token), None),
            Some(Err(reason)) => (None, Some(reason)),
        };
        Self {
            token,
            malformed,
            peer,
        }
    }

    /// The bearer token, or why there is none.
    pub fn bearer(&self) -> Result<&str> {
        if let Some(reason) = &self.malformed {
            return Err(Error::Unauthenticated(reason.clone()));
        }
        self.token.as_deref().ok_or_else(|| {
            Error::Unauthenticated(
                "a bearer token is required (Authorization: Bearer <token>)".to_owned(),
            )
        })
    }
}

/// The token of an `Authorization` value.
fn bearer_token(value: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(value)
        .map_err(|_| "the Authorization header is not UTF-8".to_owned())?;
    let (scheme, token) = text.trim().split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("the Authorization header must be `Bearer <token>`".to_owned());
    }
    let token = token.trim();
    if token.is_empty() {
        return Err("the Authorization header has an empty bearer token".to_owned());
    }
    Ok(token.to_owned())
}

/// Who a caller turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The name limits and the service log use: a Kubernetes user name, the
    /// name of a static token, or `anonymous@<address>` without auth.
    pub name: String,
}

/// Why a request may not go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No credentials, or credentials nobody issued.
    #[error("{0}")]
    Unauthenticated(String),
    /// A known caller, not allowed this.
    #[error("{0}")]
    Denied(String),
    /// Who decides could not be asked; nothing is allowed meanwhile.
    #[error("{0}")]
    Unavailable(String),
}

/// The SHA-256 digest a token is kept and looked up by.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// Results of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Decides whether credentials allow a verb on a namespace's logs.
#[async_trait]
pub trait Authorizer: Send + Sync + fmt::Debug {
    /// The caller of `credentials`, if they may `verb` the logs of
    /// `namespace`.
    async fn authorize(
        &self,
        credentials: &Credentials,
        namespace: &str,
        verb: Verb,
    ) -> Result<Identity>;

    /// Whether `credentials` are someone's at all, before it is known what
    /// they ask for (an upload names its log only in its first message).
    async fn authenticate(&self, credentials: &Credentials) -> Result<()>;

    /// The mode's name, for the service log and `check`.
    fn mode(&self) -> &'static str;
}

/// Everyone may do everything (`AUTH_MODE=none`).
#[derive(Debug, Default)]
pub struct AllowAll;

#[async_trait]
impl Authorizer for AllowAll {
    async fn authorize(
        &self,
        credentials: &Credentials,
        _namespace: &str,
        _verb: Verb,
    ) -> Result<Identity> {
        let name = match credentials.peer {
            Some(ip) => format!("anonymous@{ip}"),
            None => "anonymous".to_owned(),
        };
        Ok(Identity { name })
    }

    async fn authenticate(&self, _credentials: &Credentials) -> Result<()> {
        Ok(())
    }

    fn mode(&self) -> &'static str {
        "none"
    }
}

/// The authorizer `config` asks for.
///
/// # Errors
///
/// A message when the token file or the Kubernetes credentials cannot be
/// read.
pub fn build(
    config: &crate::config::AuthConfig,
) -> std::result::Result<Arc<dyn Authorizer>, String> {
    use crate::config::AuthConfig;
    Ok(match config {
        AuthConfig::None => Arc::new(AllowAll),
        AuthConfig::Tokens { file } => Arc::new(TokenFile::load(file)?),
        AuthConfig::Kubernetes(settings) => Arc::new(KubeAuthorizer::new(settings.clone())?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        let bearer = |v: &str| {
            Credentials::from_authorization(Some(v.as_bytes()), None)
                .bearer()
                .map(str::to_owned)
        };
        assert_eq!(bearer("Bearer abc").unwrap(), "abc");
        assert_eq!(bearer("bearer  abc ").unwrap(), "abc");
        for bad in ["Basic Zm9vOmJhcg==", "Bearer ", "abc"] {
            assert!(
                matches!(bearer(bad), Err(Error::Unauthenticated(_))),
                "{bad}"
            );
        }
        let none = Credentials::from_authorization(None, None);
        assert!(matches!(none.bearer(), Err(Error::Unauthenticated(m)) if m.contains("required")));
    }

    #[test]
    fn credentials_do_not_print_their_token() {
        let c = Credentials::from_authorization(Some(b"Bearer s3cret"), None);
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
