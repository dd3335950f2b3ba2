//! `meta.json`: a block's ID, time range, stats and compaction lineage.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{corrupt_block, io_error};
use crate::TsdbError;

/// The block format version this code writes: 2 (chunks may be dense,
/// encoding 2). It also reads version 1 (XOR chunks only).
pub const FORMAT_VERSION: u32 = 2;
/// The oldest block format version this code reads.
pub const MIN_FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    pub num_samples: u64,
    pub num_series: u64,
    pub num_chunks: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compaction {
    pub level: u32,
    pub sources: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    pub ulid: String,
    /// Inclusive.
    pub min_time: i64,
    /// Exclusive.
    pub max_time: i64,
    pub stats: BlockStats,
    pub compaction: Compaction,
    pub version: u32,
    /// True when no sample of the block came from this tenant's head (a
    /// block written by `cairn import`, or compacted only from such).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub imported: bool,
    /// On a compacted block that mixes imported and head data: the largest
    /// `maxTime` of its head-cut sources. Absent: `maxTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_end: Option<i64>,
}

impl BlockMeta {
    pub fn read(dir: &Path) -> Result<BlockMeta, TsdbError> {
        let path = dir.join("meta.json");
        let bytes = std::fs::read(&path).map_err(io_error(&path))?;
        let meta: BlockMeta = serde_json::from_slice(&bytes)
            .map_err(|e| corrupt_block(&path, format!("bad meta.json: {e}")))?;
        if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&meta.version) {
            return Err(corrupt_block(
                &path,
                format!("unknown block format version {}", meta.version),
            ));
        }
        Ok(meta)
    }

    /// Where the data this block took from the head ends: WAL replay puts
    /// samples older than the largest of these out of order and then drops
    /// those a block holds. `None` for an imported block, which holds no
    /// head data.
    pub fn head_data_end(&self) -> Option<i64> {
        if self.imported {
            None
        } else {
            Some(self.head_end.unwrap_or(self.max_time))
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a meta always serializes")
    }
}
