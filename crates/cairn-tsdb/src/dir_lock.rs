//! Directory locks: one process owns `<data>` (the server) and one owns
//! `<data>/import` (an import) at a time.
//!
//! Two servers on one directory would interleave WAL segments and cut the
//! same head twice. Like Prometheus (`tsdb/fileutil` flock on `<data>/lock`),
//! the store takes an exclusive advisory lock on a `lock` file and holds it
//! until it is dropped; the kernel releases it when the process dies, so a
//! `kill -9` never leaves a stale lock behind. `cairn import` does not take
//! the server's: it only adds finished blocks, which a running server picks
//! up; it locks its own staging directory instead.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::TsdbError;

/// Held for the life of a [`crate::TenantStore`]; unlocks on drop.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `<dir>/lock`, or fails at once with [`TsdbError::Locked`]
    /// naming `holder` (who else would hold it) if another process, or
    /// another store in this process, holds it.
    pub fn acquire(dir: &Path, holder: &'static str) -> Result<DirLock, TsdbError> {
        let path = dir.join("lock");
        let io_error = |source| TsdbError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io_error)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(TsdbError::Locked { path, holder }),
            Err(std::fs::TryLockError::Error(source)) => Err(TsdbError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_fails_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), "another test").unwrap();
        match DirLock::acquire(dir.path(), "another test") {
            Err(TsdbError::Locked { path, holder }) => {
                assert_eq!(path, dir.path().join("lock"));
                assert_eq!(holder, "another test");
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        DirLock::acquire(dir.path(), "another test").unwrap();
    }

    #[test]
    fn different_directories_lock_independently() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let _a = DirLock::acquire(a.path(), "a").unwrap();
        let _b = DirLock::acquire(b.path(), "b").unwrap();
    }
}
