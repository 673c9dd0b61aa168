//! Run resolution from a file of Tekton Results records (`LOGS_RUNS_FILE`),
//! for set-ups without the Results database: the embedded default, tests, a
//! laptop replaying records saved from a cluster.
//!
//! The file is JSON, shaped as the Results API lists records
//! (`GET /apis/results.tekton.dev/v1alpha2/parents/<ns>/results/-/records`):
//!
//! ```json
//! {"records": [
//!   {"name": "ns/results/<result>/records/<record>",
//!    "data": {"type": "tekton.dev/v1.TaskRun", "value": <the TaskRun>}}
//! ]}
//! ```
//!
//! `value` is the run object, either as JSON or as the API returns it (the
//! object's JSON, base64-encoded). A name the file does not declare resolves
//! as without a database (`NameResolver`), so logs of other names can still
//! be stored and read. The file is read again when it changes; a change that
//! does not parse is reported and the last good contents stay in use.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::tekton::{self, RecordTarget};
use super::{LogName, NameResolver, ResolveError, Run, RunKind, RunResolver};
use crate::watched::{settled, stamp_of, Stamp};

/// The largest runs file read, so a wrong path cannot fill the memory.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Records by (parent, result, record name): type and run object.
type Records = HashMap<(String, String, String), (String, Value)>;

/// What the file held when it was last read.
#[derive(Debug)]
struct Loaded {
    /// The version read; `None` to read the file again next time.
    stamp: Option<Stamp>,
    records: Arc<Records>,
}

/// Resolves log names through a file of records.
#[derive(Debug)]
pub struct FileResolver {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

#[derive(Deserialize)]
struct File {
    records: Vec<FileRecord>,
}

#[derive(Deserialize)]
struct FileRecord {
    name: String,
    data: RecordData,
}

#[derive(Deserialize)]
struct RecordData {
    #[serde(rename = "type")]
    record_type: String,
    value: Value,
}

impl FileResolver {
    /// Reads `path`; an unreadable or malformed file is an error naming the
    /// file and the problem.
    pub fn load(path: impl Into<PathBuf>) -> Result<Self, String> {
        let path = path.into();
        let (stamp, records) = read(&path)?;
        Ok(Self {
            path,
            loaded: Mutex::new(Loaded {
                stamp: settled(stamp),
                records: Arc::new(records),
            }),
        })
    }

    /// The records, read again first if the file has changed.
    async fn records(&self) -> Arc<Records> {
        let stamp = tokio::fs::metadata(&self.path)
            .await
            .map(|m| stamp_of(&m))
            .ok();
        let current = {
            let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            // A file that cannot be looked at now keeps its last contents.
            if stamp.is_none() || (stamp == loaded.stamp) {
                return loaded.records.clone();
            }
            loaded.records.clone()
        };
        let path = self.path.clone();
        match tokio::task::spawn_blocking(move || read(&path)).await {
            Ok(Ok((stamp, records))) => {
                let records = Arc::new(records);
                let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
                *loaded = Loaded {
                    stamp: settled(stamp),
                    records: records.clone(),
                };
                tracing::info!(file = %self.path.display(), records = records.len(), "runs file read again");
                records
            }
            Ok(Err(error)) => {
                // Keep serving the last good contents; say so once per change.
                let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(stamp) = stamp {
                    // A file caught half-written is read again until it settles.
                    if settled(stamp).is_some() {
                        loaded.stamp = Some(stamp);
                    }
                }
                tracing::warn!(%error, "the changed runs file is not used");
                current
            }
            Err(error) => {
                tracing::warn!(%error, "reading the runs file failed");
                current
            }
        }
    }
}

/// Reads and parses the file.
fn read(path: &Path) -> Result<(Stamp, Records), String> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|e| format!("runs file {shown}: {e}"))?;
    if metadata.len() > MAX_FILE_BYTES {
        return Err(format!(
            "runs file {shown}: {} bytes, more than the {MAX_FILE_BYTES} allowed",
            metadata.len()
        ));
    }
    let text = std::fs::read(path).map_err(|e| format!("runs file {shown}: {e}"))?;
    let file: File = serde_json::from_slice(&text).map_err(|e| {
        format!("runs file {shown}: not a {{\"records\": [...]}} list of records: {e}")
    })?;
    let mut records = Records::with_capacity(file.records.len());
    for (index, record) in file.records.into_iter().enumerate() {
        let at = |reason: String| format!("runs file {shown}: record {index}: {reason}");
        let key = record_key(&record.name).map_err(at)?;
        let value = match record.data.value {
            Value::String(encoded) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded.as_bytes())
                    .map_err(|e| at(format!("data.value is not base64: {e}")))?;
                serde_json::from_slice(&bytes)
                    .map_err(|e| at(format!("data.value is not base64 of JSON: {e}")))?
            }
            object @ Value::Object(_) => object,
            other => {
                return Err(at(format!(
                    "data.value must be an object or base64 of one, not {other}"
                )))
            }
        };
        if records
            .insert(key, (record.data.record_type, value))
            .is_some()
        {
            return Err(at(format!("{:?} is declared twice", record.name)));
        }
    }
    Ok((stamp_of(&metadata), records))
}

/// `<parent>/results/<result>/records/<record>` as its three parts, checked
/// as a log name's are.
fn record_key(name: &str) -> Result<(String, String, String), String> {
    let log = name
        .split_once("/records/")
        .map(|(head, record)| format!("{head}/logs/{record}"))
        .ok_or_else(|| {
            format!("name {name:?} is not <parent>/results/<result>/records/<record>")
        })?;
    let log = LogName::parse(&log).map_err(|e| format!("name {name:?}: {e}"))?;
    Ok((
        log.parent().to_owned(),
        log.result().to_owned(),
        log.log().to_owned(),
    ))
}

fn key(parent: &str, result: &str, name: &str) -> (String, String, String) {
    (parent.to_owned(), result.to_owned(), name.to_owned())
}

#[async_trait]
impl RunResolver for FileResolver {
    async fn resolve(&self, name: &LogName) -> Result<Run, ResolveError> {
        let records = self.records().await;
        let Some((record_type, data)) = records.get(&key(name.parent(), name.result(), name.log()))
        else {
            return NameResolver.resolve(name).await;
        };
        match tekton::target(name, name.log(), record_type, data)? {
            RecordTarget::Run(run) => Ok(*run),
            RecordTarget::LogOf(uid) => {
                let (record_type, data) = records
                    .get(&key(name.parent(), name.result(), &uid))
                    .ok_or_else(|| ResolveError::InvalidRecord {
                        name: name.to_string(),
                        reason: format!(
                            "the Log record points at run record {uid:?}, which the runs file does not declare"
                        ),
                    })?;
                match tekton::target(name, &uid, record_type, data)? {
                    RecordTarget::Run(run) => Ok(*run),
                    RecordTarget::LogOf(_) => Err(ResolveError::InvalidRecord {
                        name: name.to_string(),
                        reason: "the Log record points at another Log record".to_owned(),
                    }),
                }
            }
        }
    }

    async fn children(&self, run: &Run) -> Result<Vec<Run>, ResolveError> {
        if run.kind != RunKind::PipelineRun {
            return Ok(Vec::new());
        }
        let records = self.records().await;
        let (parent, result) = (run.record.parent(), run.record.result());
        let mut matching: Vec<_> = records
            .iter()
            .filter(|((p, r, _), (record_type, data))| {
                p == parent
                    && r == result
                    && tekton::is_task_run_type(record_type)
                    && tekton::is_child_of(data, &run.uid)
            })
            .collect();
        matching.sort_by(|a, b| a.0 .2.cmp(&b.0 .2));
        let mut children = Vec::new();
        for ((_, _, record), (record_type, data)) in matching {
            if let Some(child) = tekton::child(&run.log, result, record, record_type, data)? {
                children.push(child);
            }
        }
        children.sort_by_key(|child| child.start_ns);
        Ok(children)
    }

    async fn check(&self) -> Result<(), ResolveError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || read(&path))
            .await
            .map_err(|e| ResolveError::Unavailable {
                message: format!("reading the runs file: {e}"),
            })?
            .map(drop)
            .map_err(|message| ResolveError::Unavailable { message })
    }
}
