//! Log names, `<namespace>/results/<result>/logs/<log>`, parsed and validated
//! before they reach a backend, a path or a query.
//!
//! The accepted alphabet is upstream's (`[a-z0-9_-]{1,63}` per part, the
//! regex of Tekton Results `pkg/api/server/v1alpha2/log/log.go`), so that every
//! name upstream stores can be read here; everything else is refused with the
//! part and the reason named.

use std::fmt;
use std::str::FromStr;

/// The longest part upstream accepts (a Kubernetes name label).
pub const MAX_PART_LEN: usize = 63;

/// How much of a refused name an error message repeats.
const MAX_ECHO_CHARS: usize = 120;

/// A validated log name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogName {
    parent: String,
    result: String,
    log: String,
}

/// Why a string is not a log name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid log name {name:?}: {reason}")]
pub struct NameError {
    /// The refused name, shortened when long.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

impl NameError {
    fn new(name: &str, reason: impl Into<String>) -> Self {
        let mut echo: String = name.chars().take(MAX_ECHO_CHARS).collect();
        if echo.len() < name.len() {
            echo.push('…');
        }
        Self {
            name: echo,
            reason: reason.into(),
        }
    }
}

impl LogName {
    /// Parses `<namespace>/results/<result>/logs/<log>`.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::new(
                name,
                "empty; expected <namespace>/results/<result>/logs/<log>",
            ));
        }
        let parts: Vec<&str> = name.split('/').collect();
        if parts.len() != 5 {
            return Err(NameError::new(
                name,
                format!(
                    "expected 5 parts separated by '/' (<namespace>/results/<result>/logs/<log>), found {}",
                    parts.len()
                ),
            ));
        }
        if parts[1] != "results" {
            return Err(NameError::new(
                name,
                format!("the second part must be \"results\", found {:?}", parts[1]),
            ));
        }
        if parts[3] != "logs" {
            let hint = if parts[3] == "records" {
                " (a record name: replace \"records\" with \"logs\")"
            } else {
                ""
            };
            return Err(NameError::new(
                name,
                format!(
                    "the fourth part must be \"logs\", found {:?}{hint}",
                    parts[3]
                ),
            ));
        }
        Self::from_parts(parts[0], parts[2], parts[4]).map_err(|e| NameError::new(name, e.reason))
    }

    /// Builds a name from its three variable parts (as a REST path carries
    /// them), validating each.
    pub fn from_parts(parent: &str, result: &str, log: &str) -> Result<Self, NameError> {
        let whole = format!("{parent}/results/{result}/logs/{log}");
        for (what, value) in [("namespace", parent), ("result", result), ("log", log)] {
            if let Err(reason) = check_part(what, value) {
                return Err(NameError::new(&whole, reason));
            }
        }
        Ok(Self {
            parent: parent.to_owned(),
            result: result.to_owned(),
            log: log.to_owned(),
        })
    }

    /// The namespace (upstream calls it the parent).
    pub fn parent(&self) -> &str {
        &self.parent
    }

    /// The result part.
    pub fn result(&self) -> &str {
        &self.result
    }

    /// The log part: upstream's record name of the run.
    pub fn log(&self) -> &str {
        &self.log
    }

    /// The record form of this name, `<namespace>/results/<result>/records/<log>`,
    /// as upstream's `LogSummary.record` carries it.
    pub fn record_name(&self) -> String {
        format!(
            "{}/results/{}/records/{}",
            self.parent, self.result, self.log
        )
    }
}

fn check_part(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("the {what} part is empty"));
    }
    if value.len() > MAX_PART_LEN {
        return Err(format!(
            "the {what} part is {} bytes long; at most {MAX_PART_LEN} are allowed",
            value.len()
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-' | '_'))
    {
        return Err(format!(
            "the {what} part {value:?} has the character {bad:?}; only lowercase letters, digits, '-' and '_' are allowed"
        ));
    }
    Ok(())
}

impl fmt::Display for LogName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/results/{}/logs/{}",
            self.parent, self.result, self.log
        )
    }
}

impl FromStr for LogName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests;
