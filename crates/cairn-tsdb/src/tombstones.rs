//! Tombstones: which samples of which series are deleted, before the bytes
//! are gone. Byte layout: `docs/format.md`, "Tombstones".
//!
//! - [`Intervals`]: sorted, merged, inclusive `[min_t, max_t]` ranges of one
//!   series, and [`Intervals::filter_chunks`], which removes the samples they
//!   cover from a series' chunks (untouched chunks are passed through,
//!   chunks fully covered are dropped, the others re-encoded).
//! - [`Tombstones`]: intervals per series reference (a head series ID, or a
//!   series position in a block's index).
//! - The per-block `tombstones` file: [`read_file`], and [`write_file`]
//!   which replaces it atomically (temporary file, fsync, rename, fsync of
//!   the block directory).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use crate::block::{io_error, put_uvarint, put_varint, sync_dir, Decbuf};
use crate::chunk::{ClosedChunk, XorAppender};
use crate::TsdbError;

/// File name of a block's tombstones.
pub const FILE_NAME: &str = "tombstones";
/// Magic of the tombstones file ("TMB1").
const MAGIC: u32 = 0x544D_4231;
const VERSION: u8 = 1;

/// One deleted time range, both ends inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    pub min_t: i64,
    pub max_t: i64,
}

impl Interval {
    pub fn new(min_t: i64, max_t: i64) -> Interval {
        Interval { min_t, max_t }
    }

    fn overlaps(&self, min_t: i64, max_t: i64) -> bool {
        self.min_t <= max_t && min_t <= self.max_t
    }
}

/// The deleted ranges of one series: sorted, non-overlapping, non-adjacent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Intervals(Vec<Interval>);

impl Intervals {
    pub fn as_slice(&self) -> &[Interval] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `[min_t, max_t]` (ignored when empty), merging it with the
    /// ranges it overlaps or touches.
    pub fn add(&mut self, new: Interval) {
        if new.min_t > new.max_t {
            return;
        }
        let mut merged = new;
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let mut placed = false;
        for &current in &self.0 {
            let touches = current.min_t <= merged.max_t.saturating_add(1)
                && merged.min_t <= current.max_t.saturating_add(1);
            if touches {
                merged.min_t = merged.min_t.min(current.min_t);
                merged.max_t = merged.max_t.max(current.max_t);
            } else if current.max_t < merged.min_t {
                out.push(current);
            } else {
                if !placed {
                    out.push(merged);
                    placed = true;
                }
                out.push(current);
            }
        }
        if !placed {
            out.push(merged);
        }
        self.0 = out;
    }

    /// Whether `t` is deleted.
    pub fn contains(&self, t: i64) -> bool {
        let i = self.0.partition_point(|iv| iv.max_t < t);
        self.0.get(i).is_some_and(|iv| iv.min_t <= t)
    }

    /// Whether one range covers all of `[min_t, max_t]`.
    fn covers(&self, min_t: i64, max_t: i64) -> bool {
        self.0
            .iter()
            .any(|iv| iv.min_t <= min_t && max_t <= iv.max_t)
    }

    fn overlaps(&self, min_t: i64, max_t: i64) -> bool {
        self.0.iter().any(|iv| iv.overlaps(min_t, max_t))
    }

    /// Drops ranges ending before `t`; returns whether any is left.
    pub fn retain_from(&mut self, t: i64) -> bool {
        self.0.retain(|iv| iv.max_t >= t);
        !self.0.is_empty()
    }

    /// `chunks` (of one series, oldest first) without the deleted samples.
    pub fn filter_chunks(&self, chunks: Vec<ClosedChunk>) -> Vec<ClosedChunk> {
        if self.0.is_empty() {
            return chunks;
        }
        let mut out = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            if !self.overlaps(chunk.min_t, chunk.max_t) {
                out.push(chunk);
                continue;
            }
            if self.covers(chunk.min_t, chunk.max_t) {
                continue;
            }
            let mut appender = XorAppender::new();
            let mut bounds: Option<(i64, i64)> = None;
            for (t, v) in chunk.iter() {
                if self.contains(t) {
                    continue;
                }
                appender.append(t, v);
                bounds = Some(bounds.map_or((t, t), |(lo, _)| (lo, t)));
            }
            if let Some((min_t, max_t)) = bounds {
                out.push(ClosedChunk {
                    min_t,
                    max_t,
                    data: appender.into_bytes().into(),
                });
            }
        }
        out
    }
}

/// Deleted ranges per series reference.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tombstones(BTreeMap<u64, Intervals>);

impl Tombstones {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of series with deleted ranges.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn get(&self, series: u64) -> Option<&Intervals> {
        self.0.get(&series)
    }

    pub fn add(&mut self, series: u64, interval: Interval) {
        if interval.min_t > interval.max_t {
            return;
        }
        self.0.entry(series).or_default().add(interval);
    }

    /// Every `(series, interval)`, by series then time.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Interval)> + '_ {
        self.0
            .iter()
            .flat_map(|(series, ivs)| ivs.0.iter().map(move |iv| (*series, *iv)))
    }

    /// Keeps the series `keep` accepts, and of their ranges those ending at
    /// or after `from`.
    pub fn retain(&mut self, from: i64, mut keep: impl FnMut(u64) -> bool) {
        self.0
            .retain(|series, ivs| keep(*series) && ivs.retain_from(from));
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.push(VERSION);
        put_uvarint(&mut out, self.0.len() as u64);
        for (series, ivs) in &self.0 {
            put_uvarint(&mut out, *series);
            put_uvarint(&mut out, ivs.0.len() as u64);
            for iv in &ivs.0 {
                put_varint(&mut out, iv.min_t);
                put_uvarint(&mut out, iv.max_t.wrapping_sub(iv.min_t) as u64);
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Tombstones, &'static str> {
        if bytes.len() < 9 {
            return Err("file too short");
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err("checksum mismatch");
        }
        if body[..4] != MAGIC.to_be_bytes() {
            return Err("bad magic");
        }
        if body[4] != VERSION {
            return Err("unknown tombstones version");
        }
        let mut d = Decbuf::new(&body[5..]);
        let truncated = "truncated";
        let count = d.uvarint().ok_or(truncated)?;
        let mut out = Tombstones::default();
        for _ in 0..count {
            let series = d.uvarint().ok_or(truncated)?;
            let n = d.uvarint().ok_or(truncated)?;
            for _ in 0..n {
                let min_t = d.varint().ok_or(truncated)?;
                let span = d.uvarint().ok_or(truncated)?;
                let max_t = min_t.wrapping_add(span as i64);
                if max_t < min_t {
                    return Err("interval ends before it starts");
                }
                out.add(series, Interval::new(min_t, max_t));
            }
        }
        if d.pos != d.bytes.len() {
            return Err("trailing bytes");
        }
        Ok(out)
    }
}

/// Reads `<block>/tombstones`; a missing file is no tombstones.
pub fn read_file(block_dir: &Path) -> Result<Tombstones, TsdbError> {
    let path = block_dir.join(FILE_NAME);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Tombstones::default()),
        Err(e) => return Err(io_error(&path)(e)),
    };
    Tombstones::decode(&bytes).map_err(|reason| crate::block::corrupt_block(&path, reason))
}

/// Replaces `<block>/tombstones` atomically (removes it when `stones` is
/// empty): a crash leaves the old file or the new one.
pub fn write_file(block_dir: &Path, stones: &Tombstones) -> Result<(), TsdbError> {
    let path = block_dir.join(FILE_NAME);
    if stones.is_empty() {
        match fs::remove_file(&path) {
            Ok(()) => return sync_dir(block_dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error(&path)(e)),
        }
    }
    let tmp = block_dir.join(format!("{FILE_NAME}.tmp"));
    let mut file = fs::File::create(&tmp).map_err(io_error(&tmp))?;
    file.write_all(&stones.encode()).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(io_error(&tmp))?;
    sync_dir(block_dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn chunk(ts: impl Iterator<Item = i64>) -> ClosedChunk {
        let mut appender = XorAppender::new();
        let ts: Vec<i64> = ts.collect();
        for &t in &ts {
            appender.append(t, t as f64);
        }
        ClosedChunk {
            min_t: ts[0],
            max_t: *ts.last().unwrap(),
            data: Arc::from(appender.into_bytes()),
        }
    }

    fn ranges(ivs: &Intervals) -> Vec<(i64, i64)> {
        ivs.as_slice()
            .iter()
            .map(|iv| (iv.min_t, iv.max_t))
            .collect()
    }

    #[test]
    fn intervals_merge_and_answer_membership() {
        let mut ivs = Intervals::default();
        ivs.add(Interval::new(10, 20));
        ivs.add(Interval::new(30, 40));
        ivs.add(Interval::new(5, 1)); // empty: ignored
        assert_eq!(ranges(&ivs), vec![(10, 20), (30, 40)]);
        ivs.add(Interval::new(21, 25)); // touches the first
        assert_eq!(ranges(&ivs), vec![(10, 25), (30, 40)]);
        ivs.add(Interval::new(0, 2));
        ivs.add(Interval::new(50, i64::MAX));
        ivs.add(Interval::new(24, 31));
        assert_eq!(ranges(&ivs), vec![(0, 2), (10, 40), (50, i64::MAX)]);
        ivs.add(Interval::new(i64::MIN, i64::MAX));
        assert_eq!(ranges(&ivs), vec![(i64::MIN, i64::MAX)]);
        let mut ivs = Intervals::default();
        ivs.add(Interval::new(10, 20));
        ivs.add(Interval::new(30, 40));
        for (t, deleted) in [(9, false), (10, true), (20, true), (25, false), (40, true)] {
            assert_eq!(ivs.contains(t), deleted, "{t}");
        }
        assert!(ivs.retain_from(21));
        assert_eq!(ranges(&ivs), vec![(30, 40)]);
        assert!(!ivs.retain_from(41));
    }

    #[test]
    fn filtering_keeps_untouched_chunks_and_reencodes_partial_ones() {
        let chunks = vec![chunk(0..10), chunk(10..20), chunk(20..30)];
        let mut ivs = Intervals::default();
        ivs.add(Interval::new(10, 19)); // the whole second chunk
        ivs.add(Interval::new(25, 26));
        let out = ivs.filter_chunks(chunks.clone());
        assert_eq!(out.len(), 2);
        assert!(Arc::ptr_eq(&out[0].data, &chunks[0].data));
        let ts: Vec<i64> = out[1].iter().map(|(t, _)| t).collect();
        assert_eq!(ts, vec![20, 21, 22, 23, 24, 27, 28, 29]);
        assert_eq!((out[1].min_t, out[1].max_t), (20, 29));
        ivs.add(Interval::new(27, 100));
        let out = ivs.filter_chunks(chunks);
        assert_eq!((out[1].min_t, out[1].max_t), (20, 24));
        let mut all = Intervals::default();
        all.add(Interval::new(3, 3));
        all.add(Interval::new(0, 2));
        all.add(Interval::new(4, 9));
        assert!(all.filter_chunks(vec![chunk(0..10)]).is_empty());
    }

    proptest::proptest! {
        /// Whatever ranges are added, in any order, the result is sorted,
        /// apart, and deletes exactly the union of the ranges.
        #[test]
        fn intervals_are_the_union_of_what_was_added(
            added in proptest::collection::vec((-50i64..50, 0i64..20), 0..12),
        ) {
            let mut ivs = Intervals::default();
            for &(min_t, len) in &added {
                ivs.add(Interval::new(min_t, min_t + len));
            }
            for pair in ivs.as_slice().windows(2) {
                proptest::prop_assert!(pair[0].max_t + 1 < pair[1].min_t);
            }
            for t in -60..80 {
                let expected = added.iter().any(|&(min_t, len)| min_t <= t && t <= min_t + len);
                proptest::prop_assert_eq!(ivs.contains(t), expected, "t={}", t);
            }
        }
    }

    #[test]
    fn the_file_round_trips_and_damage_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(read_file(tmp.path()).unwrap().is_empty());
        let mut stones = Tombstones::default();
        stones.add(3, Interval::new(-5, 10));
        stones.add(3, Interval::new(100, 200));
        stones.add(0, Interval::new(i64::MIN, i64::MAX));
        write_file(tmp.path(), &stones).unwrap();
        assert_eq!(read_file(tmp.path()).unwrap(), stones);
        assert!(!tmp.path().join("tombstones.tmp").exists());
        let path = tmp.path().join(FILE_NAME);
        let mut bytes = fs::read(&path).unwrap();
        bytes[7] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(read_file(tmp.path()).is_err());
        write_file(tmp.path(), &Tombstones::default()).unwrap();
        assert!(!path.exists());
    }
}
