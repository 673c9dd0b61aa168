//! The local directory store: the embedded default backend. Logs are files
//! under a data directory, laid out like upstream's blob layout
//! (`<namespace>/<result>/<log>/`), so a directory filled by a forwarder or an
//! upload reads the same way.
//!
//! Uploads go to a temporary file beside the log and are renamed over it only
//! when complete, so a reader never sees a partial upload and a broken upload
//! leaves the previous log intact. Reads stream the file in bounded pieces.

mod read;
#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{ByteStream, Error, LogBackend, LogQuery, PageStream, Result, WriteSummary};
use crate::run::LogName;

const PROVIDER: &str = "local";

/// The file an uploaded log is kept in, inside its log directory.
pub const LOG_FILE: &str = "upload.log";

/// Prefix of in-progress uploads; never read as logs.
const PARTIAL_PREFIX: &str = ".upload-";

/// Bytes buffered between an upload stream and the file.
const WRITE_BUFFER: usize = 64 * 1024;

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
        let path = self.log_path(&query.name);
        read::pages(path, query).boxed()
    }

    async fn write(&self, name: &LogName, mut data: ByteStream) -> Result<WriteSummary> {
        let dir = self.log_dir(name);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_error("creating", &dir, e))?;
        let partial_dir = dir.clone();
        // Dropping `temp` on any early return deletes the partial file.
        let temp = tokio::task::spawn_blocking(move || {
            tempfile::Builder::new()
                .prefix(PARTIAL_PREFIX)
                .suffix(".partial")
                .tempfile_in(&partial_dir)
        })
        .await
        .map_err(|e| Error::internal(PROVIDER, e))?
        .map_err(|e| io_error("creating a temporary file in", &dir, e))?;
        let (file, temp_path) = temp.into_parts();
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
        let target = dir.join(LOG_FILE);
        temp_path
            .persist(&target)
            .map_err(|e| io_error("renaming the upload to", &target, e.error))?;
        Ok(WriteSummary { bytes })
    }

    async fn delete(&self, name: &LogName) -> Result<()> {
        let path = self.log_path(name);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    name: name.to_string(),
                })
            }
            Err(e) => return Err(io_error("deleting", &path, e)),
        }
        // Tidy now-empty directories up to the root; a directory that still
        // holds something (another log, an upload in progress) stays.
        let mut dir = path.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == self.root || tokio::fs::remove_dir(&d).await.is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        Ok(())
    }

    async fn check(&self) -> Result<()> {
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(|e| io_error("creating the data directory", &self.root, e))?;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            tempfile::Builder::new()
                .prefix(PARTIAL_PREFIX)
                .tempfile_in(&root)
                .map(drop)
                .map_err(|e| io_error("writing to the data directory", &root, e))
        })
        .await
        .map_err(|e| Error::internal(PROVIDER, e))?
    }
}
