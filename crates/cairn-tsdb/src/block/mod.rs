//! Immutable blocks: one directory per time range under `<tenant>/blocks/`.
//! Byte layout: `docs/format.md`, "Blocks".
//!
//! [`BlockWriter`](writer::write_block) turns a list of series (labels and
//! chunks) into `meta.json`, `index` and `chunks/NNNNNN` inside a
//! `.tmp-for-creation` directory, fsyncs and renames it into place.
//! [`Block`] reads one back: its meta eagerly, the index on first use,
//! chunks from disk with `pread` per query, never under the head's lock.

pub mod index;
pub mod meta;
pub mod reader;
pub mod ulid;
pub mod writer;

#[cfg(test)]
mod breakdown;

use std::fs;
use std::path::Path;

use crate::TsdbError;

pub use meta::{BlockMeta, BlockStats, Compaction};
pub use reader::Block;
pub use writer::{write_block, BlockSeries};

/// Suffix of a block directory being written.
pub const TMP_CREATION: &str = ".tmp-for-creation";
/// Suffix of a block directory being deleted.
pub const TMP_DELETION: &str = ".tmp-for-deletion";

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TsdbError + '_ {
    move |source| TsdbError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn corrupt_block(path: &Path, reason: impl Into<String>) -> TsdbError {
    TsdbError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, reason.into()),
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), TsdbError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// Opens every block in `blocks_dir` (created if missing), after deleting
/// leftovers of interrupted writes and deletions, and source blocks that a
/// finished compaction already replaced. Sorted by `minTime`.
pub fn open_blocks(blocks_dir: &Path) -> Result<Vec<Block>, TsdbError> {
    fs::create_dir_all(blocks_dir).map_err(io_error(blocks_dir))?;
    let mut blocks = Vec::new();
    let mut removed_any = false;
    for entry in fs::read_dir(blocks_dir).map_err(io_error(blocks_dir))? {
        let entry = entry.map_err(io_error(blocks_dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(TMP_CREATION) || name.ends_with(TMP_DELETION) {
            tracing::info!(dir = %path.display(), "removing an interrupted block write or deletion");
            fs::remove_dir_all(&path).map_err(io_error(&path))?;
            removed_any = true;
            continue;
        }
        if !entry.file_type().map_err(io_error(&path))?.is_dir() {
            continue;
        }
        if ulid::parse(&name).is_none() {
            tracing::warn!(dir = %path.display(), "ignoring unknown directory in blocks");
            continue;
        }
        blocks.push(Block::open(&path)?);
    }
    // A compaction that crashed after its rename but before deleting its
    // sources leaves both: a block whose level-1 sources are all held by a
    // bigger (or higher-level) block is one of those sources, and goes.
    let source_sets: Vec<std::collections::HashSet<&str>> = blocks
        .iter()
        .map(|b| {
            b.meta()
                .compaction
                .sources
                .iter()
                .map(String::as_str)
                .collect()
        })
        .collect();
    let replaced: Vec<bool> = (0..blocks.len())
        .map(|x| {
            (0..blocks.len()).any(|y| {
                y != x
                    && source_sets[x].is_subset(&source_sets[y])
                    && (source_sets[y].len() > source_sets[x].len()
                        || blocks[y].meta().compaction.level > blocks[x].meta().compaction.level)
            })
        })
        .collect();
    let mut kept = Vec::new();
    for (block, replaced) in blocks.into_iter().zip(replaced) {
        if replaced {
            tracing::info!(block = %block.meta().ulid, "removing a block already compacted into another");
            delete_block_dir(block.dir())?;
            removed_any = true;
        } else {
            kept.push(block);
        }
    }
    if removed_any {
        sync_dir(blocks_dir)?;
    }
    kept.sort_by_key(|b| (b.meta().min_time, b.meta().max_time));
    Ok(kept)
}

/// Deletes a block directory: renamed to `.tmp-for-deletion` first so a
/// crash never leaves a half-deleted block that looks whole.
pub fn delete_block_dir(dir: &Path) -> Result<(), TsdbError> {
    let mut doomed = dir.as_os_str().to_owned();
    doomed.push(TMP_DELETION);
    let doomed = std::path::PathBuf::from(doomed);
    fs::rename(dir, &doomed).map_err(io_error(dir))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    fs::remove_dir_all(&doomed).map_err(io_error(&doomed))
}

pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn put_varint(out: &mut Vec<u8>, value: i64) {
    put_uvarint(out, ((value << 1) ^ (value >> 63)) as u64);
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A bounds-checked reader over a byte slice.
pub(crate) struct Decbuf<'a> {
    pub bytes: &'a [u8],
    pub pos: usize,
}

impl<'a> Decbuf<'a> {
    pub fn new(bytes: &'a [u8]) -> Decbuf<'a> {
        Decbuf { bytes, pos: 0 }
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub fn uvarint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.u8()?;
            if shift == 63 && byte > 1 {
                return None;
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }

    pub fn varint(&mut self) -> Option<i64> {
        let raw = self.uvarint()?;
        Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    pub fn str(&mut self) -> Option<&'a str> {
        let len = usize::try_from(self.uvarint()?).ok()?;
        std::str::from_utf8(self.take(len)?).ok()
    }
}
