//! The seam between the WAL writer and the file system, for fault injection
//! (torn writes, failing fsyncs, simulated power loss) in tests.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// One open segment file, written at its end.
pub trait SegmentFile: Send {
    /// Appends all of `bytes` (one `write(2)` loop, no user-space buffer).
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// `fdatasync`.
    fn sync_data(&mut self) -> io::Result<()>;
    /// `fsync`.
    fn sync_all(&mut self) -> io::Result<()>;
    /// Truncates to `len` bytes (undoes a failed write).
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

/// Creates segment files.
pub trait SegmentOpener: Send + Sync {
    /// Creates a new, empty segment file at `path`; fails if it exists.
    fn create(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFiles;

impl SegmentOpener for OsFiles {
    fn create(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)?;
        Ok(Box::new(file))
    }
}

impl SegmentFile for File {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        Write::write_all(self, bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&mut self) -> io::Result<()> {
        File::sync_all(self)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}
