//! Resolvers: log name -> `Run`. `NameResolver` needs no database and is the
//! default; the Results database resolver (issue 5) plugs in behind the same
//! trait.

use std::fmt::Debug;

use async_trait::async_trait;

use super::{LogName, Run};

/// Why a run could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No run record has this name.
    #[error("run record for {name:?} not found")]
    NotFound {
        /// The log name.
        name: String,
    },
    /// The record exists but is not a TaskRun or PipelineRun, or is malformed.
    #[error("record {name:?} cannot be served as a log: {reason}")]
    InvalidRecord {
        /// The log name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The run database cannot be reached.
    #[error("the run database is unavailable: {message}")]
    Unavailable {
        /// The cause.
        message: String,
    },
}

/// Finds the run behind a log name.
#[async_trait]
pub trait RunResolver: Debug + Send + Sync + 'static {
    /// The run `name` belongs to.
    async fn resolve(&self, name: &LogName) -> Result<Run, ResolveError>;

    /// The TaskRuns of a PipelineRun that have started, in the order they
    /// started (ties by record name); empty for a TaskRun, and where the
    /// source cannot tell.
    async fn children(&self, run: &Run) -> Result<Vec<Run>, ResolveError> {
        let _ = run;
        Ok(Vec::new())
    }

    /// Checks that the resolver's source (a database) can be used.
    async fn check(&self) -> Result<(), ResolveError> {
        Ok(())
    }
}

/// Resolution without a database: the log part of the name is the TaskRun's
/// UID (as the Results watcher names records) and its times are unknown, so a
/// provider searches its default look-back window.
#[derive(Debug, Clone, Copy, Default)]
pub struct NameResolver;

#[async_trait]
impl RunResolver for NameResolver {
    async fn resolve(&self, name: &LogName) -> Result<Run, ResolveError> {
        Ok(Run::from_name(name.clone()))
    }
}
