//! Runs and their log names: what a request names, and what a backend needs
//! to know about the run behind it (kind, UID, start and completion times)
//! to query a provider. A `RunResolver` turns one into the other.

pub mod db;
mod db_tls;
pub mod file;
mod name;
mod resolve;
pub mod tekton;

pub use db::DbResolver;
pub use file::FileResolver;
pub use name::{LogName, NameError};
pub use resolve::{NameResolver, ResolveError, RunResolver};

use std::sync::Arc;

/// What kind of Tekton run a log belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunKind {
    /// A TaskRun: one pod, one container per step.
    TaskRun,
    /// A PipelineRun: the logs of all its TaskRuns.
    PipelineRun,
}

impl RunKind {
    /// `TaskRun` or `PipelineRun`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TaskRun => "TaskRun",
            Self::PipelineRun => "PipelineRun",
        }
    }
}

/// The run behind a log name, as far as it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The log name the request used.
    pub log: LogName,
    /// The run's own record in log form (`<parent>/results/<result>/logs/<run
    /// record>`): where a store keyed by name keeps the run's log, whichever
    /// name (the run's record or its Log record) a request used.
    pub record: LogName,
    /// TaskRun or PipelineRun.
    pub kind: RunKind,
    /// The UID forwarders label the run's lines with (`tekton.dev/taskRunUID`
    /// or `tekton.dev/pipelineRunUID` on its pods).
    pub uid: String,
    /// When the run started (ns since the epoch), if known.
    pub start_ns: Option<i64>,
    /// When the run completed (ns since the epoch); `None` while it runs or
    /// when unknown.
    pub completion_ns: Option<i64>,
    /// What a PipelineRun's merged log calls the run's lines: its pipeline
    /// task (the `tekton.dev/pipelineTask` label), else the run's name; set
    /// for every run read from a record, used only when the run is a
    /// TaskRun of a PipelineRun being read.
    pub task: Option<Arc<str>>,
    /// The containers of the run's steps, in order, as its record lists
    /// them (`status.steps[].container`); empty when unknown.
    pub steps: Vec<String>,
}

impl Run {
    /// What a log name alone says: the log part is the run's record name,
    /// which the Results watcher makes the TaskRun's UID; times unknown.
    pub fn from_name(log: LogName) -> Self {
        Self {
            uid: log.log().to_owned(),
            record: log.clone(),
            log,
            kind: RunKind::TaskRun,
            start_ns: None,
            completion_ns: None,
            task: None,
            steps: Vec::new(),
        }
    }

    /// Whether the run has completed.
    pub fn is_complete(&self) -> bool {
        self.completion_ns.is_some()
    }
}
