//! Noticing that a file changed, for what the service reads again while it
//! runs (the runs file, the token file, the TLS pair, the service account
//! token, Loki's bearer token).
//!
//! A version of a file is told by its [`Stamp`]: modification and change
//! times, length and inode (a replaced file, as when a mounted Secret's or
//! ConfigMap's link is swapped, has another inode). A file modified within
//! [`SETTLE`] may still be written again within the file system's timestamp
//! granularity, unseen by its stamp, so such a version is not remembered:
//! it is read again until it settles.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How often a [`Watched`] file's stamp is looked at.
pub const RECHECK: Duration = Duration::from_secs(1);

/// How long after its last change a file's stamp can be trusted.
pub const SETTLE: Duration = Duration::from_secs(2);

/// What identifies one version of a file: modification time, change time,
/// length, inode.
pub type Stamp = (Option<SystemTime>, Option<(i64, i64)>, u64, u64);

/// The stamp of a file's metadata.
pub fn stamp_of(metadata: &std::fs::Metadata) -> Stamp {
    #[cfg(unix)]
    let (change, inode) = {
        use std::os::unix::fs::MetadataExt;
        (
            Some((metadata.ctime(), metadata.ctime_nsec())),
            metadata.ino(),
        )
    };
    #[cfg(not(unix))]
    let (change, inode) = (None, 0);
    (metadata.modified().ok(), change, metadata.len(), inode)
}

/// The stamp of `path` now, `None` while it cannot be looked at.
pub fn stamp(path: &Path) -> Option<Stamp> {
    std::fs::metadata(path).ok().map(|m| stamp_of(&m))
}

/// The stamp to remember for a version read: none while it is fresh.
pub fn settled(stamp: Stamp) -> Option<Stamp> {
    let fresh = stamp
        .0
        .and_then(|modified| modified.elapsed().ok())
        .is_none_or(|age| age < SETTLE);
    (!fresh).then_some(stamp)
}

/// A file and the version of it last seen, looked at no more than once per
/// [`RECHECK`], so that a hot path pays for a `stat` at most that often.
#[derive(Debug)]
pub struct Watched {
    path: PathBuf,
    /// The stamp last seen, `None` while the file is gone.
    seen: Option<Stamp>,
    /// Whether that version was fresh: the next look counts as a change.
    fresh: bool,
    checked: Instant,
}

impl Watched {
    /// `path`, as it is now.
    pub fn new(path: &Path) -> Self {
        let seen = stamp(path);
        Self {
            path: path.to_owned(),
            fresh: seen.is_some_and(|s| settled(s).is_none()),
            seen,
            checked: Instant::now(),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file may have changed (or went, or came back) since it
    /// was last seen; a fresh file counts as changed until it settles.
    /// `false` without looking when it was looked at less than [`RECHECK`]
    /// ago.
    pub fn changed(&mut self) -> bool {
        if self.checked.elapsed() < RECHECK {
            return false;
        }
        self.checked = Instant::now();
        let now = stamp(&self.path);
        let changed = now != self.seen || self.fresh;
        self.fresh = now.is_some_and(|s| settled(s).is_none());
        self.seen = now;
        changed
    }

    /// Makes the next [`Watched::changed`] look, whenever it is asked.
    #[cfg(test)]
    pub fn look_next_time(&mut self) {
        self.checked -= RECHECK;
    }
}

/// A small file's trimmed text (a bearer token): read when first asked
/// for, and again when the file changes (as [`Watched`] sees it) or the last
/// read failed.
#[derive(Debug)]
pub struct WatchedText {
    file: Watched,
    text: Option<String>,
}

impl WatchedText {
    /// `path`, not read yet.
    pub fn new(path: &Path) -> Self {
        Self {
            file: Watched::new(path),
            text: None,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The file's text, trimmed; `Err` while it cannot be read (gone
    /// included).
    pub fn text(&mut self) -> std::io::Result<String> {
        if self.file.changed() || self.text.is_none() {
            self.text = None;
            let text = std::fs::read_to_string(self.file.path())?;
            self.text = Some(text.trim().to_owned());
        }
        Ok(self.text.clone().unwrap_or_default())
    }

    /// Makes the next [`WatchedText::text`] look at the file.
    #[cfg(test)]
    pub fn look_next_time(&mut self) {
        self.file.look_next_time();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_seen_once_and_fresh_files_until_they_settle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "a").unwrap();
        let old = SystemTime::now() - SETTLE * 2;
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let mut watched = Watched::new(&path);
        watched.look_next_time();
        assert!(!watched.changed(), "an unchanged, settled file");
        assert!(!watched.changed(), "looked at less than RECHECK ago");
        // Rewritten now: changed, and again while it is fresh.
        std::fs::write(&path, "b").unwrap();
        watched.look_next_time();
        assert!(watched.changed());
        watched.look_next_time();
        assert!(watched.changed(), "a fresh file is read again");
        std::fs::remove_file(&path).unwrap();
        watched.look_next_time();
        assert!(watched.changed(), "gone is a change");
        watched.look_next_time();
        assert!(!watched.changed(), "still gone is not");
    }
}
