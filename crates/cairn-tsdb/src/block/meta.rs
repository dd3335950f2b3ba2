//! `meta.json`: a block's ID, time range, stats and compaction lineage.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{corrupt_block, io_error};
use crate::TsdbError;

/// The block format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

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
}

impl BlockMeta {
    pub fn read(dir: &Path) -> Result<BlockMeta, TsdbError> {
        let path = dir.join("meta.json");
        let bytes = std::fs::read(&path).map_err(io_error(&path))?;
        let meta: BlockMeta = serde_json::from_slice(&bytes)
            .map_err(|e| corrupt_block(&path, format!("bad meta.json: {e}")))?;
        if meta.version != FORMAT_VERSION {
            return Err(corrupt_block(
                &path,
                format!("unknown block format version {}", meta.version),
            ));
        }
        Ok(meta)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a meta always serializes")
    }
}
