//! The local directory store: the embedded default backend. Logs are files
//! under a data directory, laid out like upstream's blob layout
//! (`<namespace>/<result>/<record>/upload.log`, `<record>` the run's own
//! record: a log uploaded under its Log record's name and read under its
//! run's name is one file), so a directory filled by a forwarder or an upload
//! reads the same way.
//!
//! A follower of a run that has not completed waits for its upload (the
//! Results watcher uploads a log once its run has completed) until
//! `UPLOAD_WAIT` after the completion.
//!
//! Uploads are written to a temporary file under `<root>/.partial/` and
//! renamed over the log only when complete, so a reader never sees a partial
//! upload and a broken upload leaves the previous log intact. Temporary files
//! left by a killed process are swept by `check` (run at start-up). Reads
//! stream the file in bounded pieces.

pub mod read;
#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{ByteStream, Error, LogBackend, LogQuery, PageStream, Result, WriteSummary};
use crate::run::{LogName, Run};

const PROVIDER: &str = "local";

/// The file an uploaded log is kept in, inside its log directory.
pub const LOG_FILE: &str = "upload.log";

/// The directory of in-progress uploads, under the root. No namespace can
/// have this name (log name parts hold no `.`), so it never reads as a log.
pub const PARTIAL_DIR: &str = ".partial";

/// A temporary upload file older than this is taken for one left behind by
/// a killed process and deleted by `check`.
pub const STALE_PARTIAL_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// How long after a run's completion a follower still waits for its upload.
pub const UPLOAD_WAIT: Duration = Duration::from_secs(60);

/// How often a follower looks for an upload that has not arrived.
pub const UPLOAD_POLL: Duration = Duration::from_millis(500);

/// Bytes buffered between an upload stream and the file.
const WRITE_BUFFER: usize = 64 * 1024;

/// How often a completed upload is renamed into place before giving up, when
/// a concurrent delete removes the log's (then empty) directory in between.
const RENAME_ATTEMPTS: usize = 3;

/// Logs kept as files under a data directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a log: `<root>/<namespace>/<result>/<log>`. Safe to
    /// join: `LogName` parts hold no `/`, `.` or NUL.
    pub fn log_dir(&self, name: &LogName) -> PathBuf {
        self.root
            .join(name.parent())
            .join(name.result())
            .join(name.log())
    }

    /// The file holding a log's text.
    pub fn log_path(&self, name: &LogName) -> PathBuf {
        self.log_dir(name).join(LOG_FILE)
    }

    /// Where an earlier version kept the log of `run` when it was uploaded
    /// under another name than its run's record (a Log record's): read and
    /// deleted there when the run's own place has nothing.
    fn legacy_path(&self, run: &Run) -> Option<PathBuf> {
        (run.log != run.record).then(|| self.log_path(&run.log))
    }

    /// Removes the now-empty directories above a deleted log file, up to the
    /// root; a directory that still holds something (another log, an upload
    /// in progress) stays.
    async fn tidy_dirs(&self, file: &Path) {
        let mut dir = file.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == self.root || tokio::fs::remove_dir(&d).await.is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
    }

    /// The directory of in-progress uploads.
    pub fn partial_dir(&self) -> PathBuf {
        self.root.join(PARTIAL_DIR)
    }

    /// Deletes temporary upload files last modified more than `age` ago;
    /// returns how many it deleted.
    pub async fn sweep_partials(&self, age: Duration) -> Result<usize> {
        let dir = self.partial_dir();
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_error("listing", &dir, e)),
        };
        let now = SystemTime::now();
        let mut swept = 0;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io_error("listing", &dir, e))?
        {
            let Ok(modified) = entry.metadata().await.and_then(|m| m.modified()) else {
                continue;
            };
            if now.duration_since(modified).unwrap_or_default() > age
                && tokio::fs::remove_file(entry.path()).await.is_ok()
            {
                swept += 1;
            }
        }
        Ok(swept)
    }

    async fn create_partial(&self) -> Result<tempfile::NamedTempFile> {
        let dir = self.partial_dir();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_error("creating", &dir, e))?;
        let in_dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            tempfile::Builder::new()
                .prefix("upload-")
                .suffix(".partial")
                .tempfile_in(&in_dir)
        })
        .await
        .map_err(|e| Error::internal(PROVIDER, e))?
        .map_err(|e| io_error("creating a temporary file in", &dir, e))
    }
}

fn io_error(action: &str, path: &Path, err: io::Error) -> Error {
    Error::internal(PROVIDER, format!("{action} {}: {err}", path.display()))
}

#[async_trait]
impl LogBackend for LocalStore {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn read(&self, query: LogQuery) -> PageStream {
        let path = self.log_path(&query.run.record);
        let legacy = self.legacy_path(&query.run);
        read::pages(path, legacy, query).boxed()
    }

    async fn write(&self, run: &Run, mut data: ByteStream) -> Result<WriteSummary> {
        let name = &run.record;
        // Dropping `temp_path` on any early return deletes the partial file.
        let (file, temp_path) = self.create_partial().await?.into_parts();
        let mut out =
            tokio::io::BufWriter::with_capacity(WRITE_BUFFER, tokio::fs::File::from_std(file));
        let mut bytes = 0u64;
        while let Some(chunk) = data.next().await {
            let chunk = chunk?;
            out.write_all(&chunk)
                .await
                .map_err(|e| io_error("writing", &temp_path, e))?;
            bytes += chunk.len() as u64;
        }
        out.flush()
            .await
            .map_err(|e| io_error("writing", &temp_path, e))?;
        let file = out.into_inner();
        file.sync_all()
            .await
            .map_err(|e| io_error("syncing", &temp_path, e))?;
        drop(file);
        let dir = self.log_dir(name);
        let target = dir.join(LOG_FILE);
        let mut temp_path = temp_path;
        let mut attempts = 1;
        loop {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| io_error("creating", &dir, e))?;
            match temp_path.persist(&target) {
                Ok(()) => return Ok(WriteSummary { bytes }),
                // A concurrent delete tidied the empty directory away.
                Err(e)
                    if e.error.kind() == io::ErrorKind::NotFound && attempts < RENAME_ATTEMPTS =>
                {
                    attempts += 1;
                    temp_path = e.path;
                }
                Err(e) => return Err(io_error("renaming the upload to", &target, e.error)),
            }
        }
    }

    async fn delete(&self, run: &Run) -> Result<()> {
        // Both places: a log left at the old one would come back otherwise.
        let mut deleted = false;
        for path in std::iter::once(self.log_path(&run.record)).chain(self.legacy_path(run)) {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => deleted = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("deleting", &path, e)),
            }
            self.tidy_dirs(&path).await;
        }
        if !deleted {
            return Err(Error::NotFound {
                name: run.log.to_string(),
            });
        }
        Ok(())
    }

    async fn check(&self) -> Result<()> {
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(|e| io_error("creating the data directory", &self.root, e))?;
        let swept = self.sweep_partials(STALE_PARTIAL_AGE).await?;
        if swept > 0 {
            tracing::info!(
                swept,
                "deleted uploads left unfinished by an earlier process"
            );
        }
        self.create_partial().await.map(drop)
    }
}
