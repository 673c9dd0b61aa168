//! `AUTH_MODE=tokens`: a file of static bearer tokens. Each line that is
//! not blank or a `#` comment is
//!
//! ```text
//! <token> <caller name> <namespaces> [read|write]
//! ```
//!
//! where `<namespaces>` is a comma-separated list of namespaces or `*` for
//! all, and the access is `read` (get and list; the default) or `write`
//! (also upload and delete). Tokens are kept only as SHA-256 digests. The
//! file is read again when it changes (looked at no more than once a
//! second), so a mounted Secret can be rotated. A changed file that cannot
//! be read (gone, broken, or changing while it is read) refuses every token
//! until it is mended, and says why in the service log: the change may have
//! revoked a token.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{digest, Authorizer, Credentials, Error, Identity, Result, Verb};
use crate::watched::{stamp, Watched};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    name: String,
    /// `None`: every namespace.
    namespaces: Option<Vec<String>>,
    write: bool,
}

type Digests = HashMap<[u8; 32], Grant>;

#[derive(Debug)]
struct Loaded {
    tokens: Digests,
    file: Watched,
}

/// The static tokens of a file.
#[derive(Debug)]
pub struct TokenFile {
    state: Mutex<Loaded>,
}

/// The tokens of a file's text; `path` names the file in errors.
fn parse(path: &Path, text: &str) -> std::result::Result<Digests, String> {
    let mut tokens = Digests::new();
    for (index, line) in text.lines().enumerate() {
        let at = || format!("{} line {}", path.display(), index + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (token, name, namespaces, access) = match fields.as_slice() {
            [t, n, ns] => (*t, *n, *ns, "read"),
            [t, n, ns, a] => (*t, *n, *ns, *a),
            _ => {
                return Err(format!(
                    "{}: expected `<token> <caller name> <namespaces> [read|write]`, found {} \
                     field(s)",
                    at(),
                    fields.len()
                ))
            }
        };
        let write = match access {
            "read" => false,
            "write" => true,
            other => {
                return Err(format!(
                    "{}: access {other:?}: expected read or write",
                    at()
                ))
            }
        };
        let namespaces = if namespaces == "*" {
            None
        } else {
            let list: Vec<String> = namespaces.split(',').map(str::to_owned).collect();
            if let Some(bad) = list.iter().find(|ns| !is_namespace(ns)) {
                return Err(format!(
                    "{}: {bad:?} is not a namespace name (or `*` for all)",
                    at()
                ));
            }
            Some(list)
        };
        let grant = Grant {
            name: name.to_owned(),
            namespaces,
            write,
        };
        if tokens.insert(digest(token), grant).is_some() {
            return Err(format!(
                "{}: this token is already on an earlier line",
                at()
            ));
        }
    }
    Ok(tokens)
}

/// A Kubernetes namespace name: a DNS label.
fn is_namespace(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The tokens of `path`, read while it does not change (a file read in the
/// middle of being rewritten in place could parse, and say something else).
fn read_stable(path: &Path) -> std::result::Result<Digests, String> {
    let before = stamp(path).ok_or("the file is gone")?;
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    if stamp(path) != Some(before) {
        return Err("the file changed while it was read".to_owned());
    }
    parse(path, &text)
}

impl TokenFile {
    /// Reads the tokens of `path`.
    ///
    /// # Errors
    ///
    /// A message naming the file (and line) that cannot be read.
    pub fn load(path: &Path) -> std::result::Result<Self, String> {
        let file = Watched::new(path);
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "reading the token file {} (AUTH_TOKENS_FILE): {e}",
                path.display()
            )
        })?;
        let tokens = parse(path, &text)?;
        Ok(Self {
            state: Mutex::new(Loaded { tokens, file }),
        })
    }

    /// The grant of a token, reading the file again if it changed.
    fn grant(&self, token: &str) -> Option<Grant> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Loaded { tokens, file } = &mut *state;
        if file.changed() {
            let path = file.path().display();
            match read_stable(file.path()) {
                Ok(read) => {
                    tracing::info!(file = %path, tokens = read.len(), "token file read again");
                    *tokens = read;
                }
                Err(error) => {
                    // Fail closed: the change may have revoked a token,
                    // and a broken file cannot say which.
                    tracing::error!(
                        file = %path,
                        %error,
                        "the token file changed and cannot be read; refusing every token until it is mended"
                    );
                    *tokens = Digests::new();
                }
            }
        }
        state.tokens.get(&digest(token)).cloned()
    }
}

#[async_trait]
impl Authorizer for TokenFile {
    async fn authorize(
        &self,
        credentials: &Credentials,
        namespace: &str,
        verb: Verb,
    ) -> Result<Identity> {
        let token = credentials.bearer()?;
        let grant = self
            .grant(token)
            .ok_or_else(|| Error::Unauthenticated("the bearer token is not valid".to_owned()))?;
        let in_namespace = grant
            .namespaces
            .as_ref()
            .is_none_or(|list| list.iter().any(|ns| ns == namespace));
        if !in_namespace {
            return Err(Error::Denied(format!(
                "{} may not {verb} logs in namespace {namespace:?}",
                grant.name
            )));
        }
        if verb.writes() && !grant.write {
            return Err(Error::Denied(format!(
                "{} may only read logs, not {verb} them",
                grant.name
            )));
        }
        Ok(Identity { name: grant.name })
    }

    async fn authenticate(&self, credentials: &Credentials) -> Result<()> {
        let token = credentials.bearer()?;
        match self.grant(token) {
            Some(_) => Ok(()),
            None => Err(Error::Unauthenticated(
                "the bearer token is not valid".to_owned(),
            )),
        }
    }

    fn mode(&self) -> &'static str {
        "tokens"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn file(text: &str) -> (tempfile::NamedTempFile, TokenFile) {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        let tokens = TokenFile::load(f.path()).unwrap();
        (f, tokens)
    }

    fn with(token: &str) -> Credentials {
        Credentials::from_authorization(Some(format!("Bearer {token}").as_bytes()), None)
    }

    #[tokio::test]
    async fn tokens_allow_their_namespaces_and_access() {
        let (_f, tokens) = file("# comment\n\nt-alice alice team-a,team-b\nt-ci ci * write\n");
        let ok = tokens
            .authorize(&with("t-alice"), "team-b", Verb::Get)
            .await;
        assert_eq!(ok.unwrap().name, "alice");
        assert!(matches!(
            tokens
                .authorize(&with("t-alice"), "team-c", Verb::Get)
                .await,
            Err(Error::Denied(_))
        ));
        assert!(matches!(
            tokens
                .authorize(&with("t-alice"), "team-a", Verb::Update)
                .await,
            Err(Error::Denied(_))
        ));
        assert!(tokens
            .authorize(&with("t-ci"), "any", Verb::Delete)
            .await
            .is_ok());
        assert!(matches!(
            tokens.authorize(&with("t-bob"), "team-a", Verb::Get).await,
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            tokens
                .authorize(&Credentials::default(), "team-a", Verb::Get)
                .await,
            Err(Error::Unauthenticated(_))
        ));
    }

    #[test]
    fn bad_lines_are_named() {
        let p = Path::new("tokens");
        let e = parse(p, "a b\n").unwrap_err();
        assert!(e.contains("tokens line 1") && e.contains("found 2"), "{e}");
        let e = parse(p, "a b c,D\n").unwrap_err();
        assert!(e.contains("\"D\" is not a namespace name"), "{e}");
        let e = parse(p, "a b c rw\n").unwrap_err();
        assert!(e.contains("expected read or write"), "{e}");
        let e = parse(p, "a b c\na d e\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("already"), "{e}");
    }

    #[tokio::test]
    async fn a_changed_file_is_read_again_and_a_broken_one_refuses_all() {
        let (f, tokens) = file("old alice *\n");
        std::fs::write(f.path(), "new alice2 * write\n").unwrap();
        tokens.state.lock().unwrap().file.look_next_time();
        // The same size and second as before would hide the change: make
        // the modification time differ for certain.
        let later = SystemTime::now() + Duration::from_secs(5);
        f.as_file().set_modified(later).unwrap();
        assert!(tokens
            .authorize(&with("old"), "x", Verb::Get)
            .await
            .is_err());
        assert_eq!(
            tokens
                .authorize(&with("new"), "x", Verb::Get)
                .await
                .unwrap()
                .name,
            "alice2"
        );
        std::fs::write(f.path(), "broken\n").unwrap();
        f.as_file()
            .set_modified(later + Duration::from_secs(5))
            .unwrap();
        tokens.state.lock().unwrap().file.look_next_time();
        assert!(matches!(
            tokens.authorize(&with("new"), "x", Verb::Get).await,
            Err(Error::Unauthenticated(_))
        ));
        std::fs::remove_file(f.path()).unwrap();
        tokens.state.lock().unwrap().file.look_next_time();
        assert!(tokens
            .authorize(&with("new"), "x", Verb::Get)
            .await
            .is_err());
    }
}
