//! [`Block`]: one block on disk, read without any lock of the head.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_model::{Labels, Matcher};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::index::{ChunkMeta, IndexReader};
use super::meta::BlockMeta;
use super::writer::BlockSeries;
use super::writer::{
    CHUNKS_HEADER_LEN, CHUNKS_MAGIC, ENCODING_DENSE, ENCODING_DENSE_FLAGS,
    ENCODING_DENSE_FLAGS_LAST, ENCODING_XOR,
};
use super::{corrupt_block, io_error, put_uvarint, Decbuf};
use crate::chunk::{dense, ClosedChunk};
use crate::tombstones::Tombstones;
use crate::TsdbError;

/// Chunk segments mapped for the span of one read (a query's `select`):
/// each chunk is checked and copied out of the mapping, with no system call
/// per chunk (one `pread` per chunk was about a third of an instant query's
/// CPU over 10,000 series). The mappings are dropped when the read ends,
/// so the segments' pages do not stay in the process's RSS.
///
/// A read's first [`PREAD_FIRST`] chunks are read with `pread` instead: a
/// dashboard query for one host reads a chunk or two per block, and mapping
/// a multi-megabyte segment for them (mmap, page faults, then a munmap whose
/// TLB shootdown interrupts the other cores) cost more than the reads.
struct MappedSegments<'a> {
    block: &'a Block,
    maps: Vec<(u64, memmap2::Mmap)>,
    /// Chunks read so far with `pread`.
    preads: usize,
}

/// Chunks a read takes with `pread` before it maps segments.
const PREAD_FIRST: usize = 8;

impl<'a> MappedSegments<'a> {
    fn new(block: &'a Block) -> MappedSegments<'a> {
        MappedSegments {
            block,
            maps: Vec::new(),
            preads: 0,
        }
    }

    fn read(&mut self, meta: &ChunkMeta) -> Result<ClosedChunk, TsdbError> {
        let i = match self.maps.iter().position(|(s, _)| *s == meta.segment) {
            Some(i) => i,
            None if self.preads < PREAD_FIRST => {
                self.preads += 1;
                return self.block.read_chunk(meta);
            }
            None => {
                let (file, _) = self.block.file(meta.segment)?;
                // SAFETY: as the index's mapping: a block's files never
                // change once renamed into place and are deleted only when
                // the block is dropped, which this borrow of it outlives.
                let map = unsafe { memmap2::Mmap::map(&*file) }
                    .map_err(|e| io_error(&self.block.segment_path(meta.segment))(e))?;
                self.maps.push((meta.segment, map));
                self.maps.len() - 1
            }
        };
        let map = &self.maps[i].1;
        let len = map.len() as u64;
        if meta.offset >= len {
            return Err(self.block.bad_chunk(meta, "chunk reference past the end"));
        }
        let rest = &map[meta.offset as usize..];
        let total = self.block.chunk_len(meta, rest, len)?;
        self.block.parse_chunk(meta, &rest[..total])
    }
}

/// One immutable block. The index is opened on first use (a block outside
/// every query's range costs only its meta) and read lazily through a
/// mapping (`index::IndexReader`); chunk files are opened on first use,
/// mapped for the span of a query's read ([`MappedSegments`]) and read
/// with `pread` otherwise (compaction, one chunk at a time).
pub struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    index: Mutex<Option<Arc<IndexReader>>>,
    /// Set once the index file's CRC was checked (the file never changes,
    /// so reopening after [`Block::release_idle_index`] does not read it
    /// whole again).
    index_verified: AtomicBool,
    /// Open chunk segments and their lengths.
    files: Mutex<HashMap<u64, (Arc<fs::File>, u64)>>,
    /// Set once compaction or retention has replaced the block: its
    /// directory is deleted when the last reader lets go of it.
    doomed: AtomicBool,
    /// Set by every index use; cleared by [`Block::release_idle_index`].
    used: AtomicBool,
    /// Deleted ranges per series position (the `tombstones` file); reads
    /// leave them out. Replaced whole by `Tsdb::delete_series`.
    pub(crate) tombstones: parking_lot::RwLock<Arc<Tombstones>>,
    /// Bytes of the block's files, measured at open (blocks are immutable).
    size_bytes: u64,
}

impl Drop for Block {
    fn drop(&mut self) {
        if !self.doomed.load(Ordering::Acquire) {
            return;
        }
        self.files.get_mut().clear();
        if let Err(error) = super::delete_block_dir(&self.dir) {
            tracing::error!(dir = %self.dir.display(), %error, "deleting a replaced block failed; it is removed at the next open");
        }
    }
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block").field("meta", &self.meta).finish()
    }
}

impl Block {
    pub fn open(dir: &Path) -> Result<Block, TsdbError> {
        let meta = BlockMeta::read(dir)?;
        let tombstones = crate::tombstones::read_file(dir)?;
        let size_bytes = crate::stats::dir_size(dir);
        Ok(Block {
            size_bytes,
            dir: dir.to_path_buf(),
            meta,
            index: Mutex::new(None),
            index_verified: AtomicBool::new(false),
            files: Mutex::new(HashMap::new()),
            doomed: AtomicBool::new(false),
            used: AtomicBool::new(false),
            tombstones: parking_lot::RwLock::new(Arc::new(tombstones)),
        })
    }

    /// Deletes the block's directory once the last `Arc` to it is dropped
    /// (queries still reading it finish first). Call only after the block
    /// left the database's block list.
    pub fn delete_when_unused(&self) {
        self.doomed.store(true, Ordering::Release);
    }

    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes of the block's files on disk.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Whether the block holds any time in the inclusive `[start, end]`.
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.meta.min_time <= end && start < self.meta.max_time
    }

    /// The index reader (opened, and checked the first time, on first use).
    pub fn index(&self) -> Result<Arc<IndexReader>, TsdbError> {
        self.used.store(true, Ordering::Relaxed);
        let mut slot = self.index.lock();
        if let Some(index) = slot.as_ref() {
            return Ok(index.clone());
        }
        let path = self.dir.join("index");
        let verify = !self.index_verified.load(Ordering::Relaxed);
        let index = Arc::new(IndexReader::open(&path, verify)?);
        self.index_verified.store(true, Ordering::Relaxed);
        *slot = Some(index.clone());
        Ok(index)
    }

    /// Drops the cached index reader (unmapping the file) if it was not
    /// used since the previous call; returns whether it dropped one.
    pub fn release_idle_index(&self) -> bool {
        if self.used.swap(false, Ordering::Relaxed) {
            return false;
        }
        self.index.lock().take().is_some()
    }

    fn file(&self, segment: u64) -> Result<(Arc<fs::File>, u64), TsdbError> {
        let mut files = self.files.lock();
        if let Some(file) = files.get(&segment) {
            return Ok(file.clone());
        }
        let path = self.dir.join("chunks").join(format!("{segment:06}"));
        let file = fs::File::open(&path).map_err(io_error(&path))?;
        let mut header = [0u8; CHUNKS_HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0)
            .map_err(io_error(&path))?;
        if header[..4] != CHUNKS_MAGIC.to_be_bytes() || header[4] != 1 {
            return Err(corrupt_block(&path, "bad chunk segment header"));
        }
        let len = file.metadata().map_err(io_error(&path))?.len();
        let opened = (Arc::new(file), len);
        files.insert(segment, opened.clone());
        Ok(opened)
    }

    /// Reads and checks one chunk: one `pread` for a chunk of up to
    /// ~500 bytes (nearly all), two for a longer one.
    pub fn read_chunk(&self, meta: &ChunkMeta) -> Result<ClosedChunk, TsdbError> {
        const FIRST_READ: u64 = 512;
        let (file, len) = self.file(meta.segment)?;
        if meta.offset >= len {
            return Err(self.bad_chunk(meta, "chunk reference past the end"));
        }
        let mut buf = vec![0u8; FIRST_READ.min(len - meta.offset) as usize];
        file.read_exact_at(&mut buf, meta.offset)
            .map_err(|e| io_error(&self.segment_path(meta.segment))(e))?;
        let total = self.chunk_len(meta, &buf, len)?;
        if total > buf.len() {
            let already = buf.len();
            buf.resize(total, 0);
            file.read_exact_at(&mut buf[already..], meta.offset + already as u64)
                .map_err(|e| io_error(&self.segment_path(meta.segment))(e))?;
        }
        self.parse_chunk(meta, &buf[..total])
    }

    fn segment_path(&self, segment: u64) -> PathBuf {
        self.dir.join("chunks").join(format!("{segment:06}"))
    }

    fn bad_chunk(&self, meta: &ChunkMeta, what: &str) -> TsdbError {
        corrupt_block(
            &self.segment_path(meta.segment),
            format!("{what} at offset {}", meta.offset),
        )
    }

    /// Length of the chunk framed at the start of `head` (its first bytes
    /// at `meta.offset` in a segment of `len` bytes): length varint,
    /// encoding byte and data, CRC.
    fn chunk_len(&self, meta: &ChunkMeta, head: &[u8], len: u64) -> Result<usize, TsdbError> {
        let mut d = Decbuf::new(head);
        let data_len = d
            .uvarint()
            .ok_or_else(|| self.bad_chunk(meta, "bad chunk length"))?;
        (d.pos as u64)
            .checked_add(1 + 4)
            .and_then(|n| n.checked_add(data_len))
            .filter(|&n| n <= len - meta.offset)
            .map(|n| n as usize)
            .ok_or_else(|| self.bad_chunk(meta, "chunk length past the end"))
    }

    /// Checks and decodes one framed chunk (`bytes` exactly as long as
    /// [`Block::chunk_len`] says).
    fn parse_chunk(&self, meta: &ChunkMeta, bytes: &[u8]) -> Result<ClosedChunk, TsdbError> {
        let mut d = Decbuf::new(bytes);
        d.uvarint()
            .ok_or_else(|| self.bad_chunk(meta, "bad chunk length"))?;
        let (payload, crc) = bytes[d.pos..].split_at(bytes.len() - d.pos - 4);
        if crc32fast::hash(payload).to_le_bytes() != crc {
            return Err(self.bad_chunk(meta, "chunk checksum mismatch"));
        }
        let encoding = payload[0];
        if (ENCODING_DENSE_FLAGS..=ENCODING_DENSE_FLAGS_LAST).contains(&encoding) {
            // A dense chunk with its flags byte in the encoding byte and,
            // unless compressed, its sample count in the chunk meta.
            let flags = encoding - ENCODING_DENSE_FLAGS;
            let mut prefix = vec![flags];
            if flags & dense::FLAG_ZSTD == 0 {
                put_uvarint(&mut prefix, meta.samples);
            }
            return Ok(ClosedChunk::tagged_parts(
                meta.min_t,
                meta.max_t,
                ENCODING_DENSE,
                &prefix,
                &payload[1..],
            ));
        }
        if encoding != ENCODING_XOR && encoding != ENCODING_DENSE {
            return Err(self.bad_chunk(meta, &format!("unknown chunk encoding {encoding}")));
        }
        Ok(ClosedChunk::tagged(
            meta.min_t,
            meta.max_t,
            encoding,
            &payload[1..],
        ))
    }

    /// Labels of the matching series with a sample in `[start, end]`;
    /// reads only chunks that straddle the range's ends.
    pub fn select_labels(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<Labels>, TsdbError> {
        let index = self.index()?;
        let tombstones = self.tombstones.read().clone();
        let mut chunk_reads = MappedSegments::new(self);
        let mut out = Vec::new();
        for position in index.select(matchers)? {
            let series = index.series(position)?;
            if let Some(deleted) = tombstones.get(u64::from(position)) {
                let mut chunks = Vec::new();
                for meta in &series.chunks {
                    if meta.min_t <= end && start <= meta.max_t {
                        chunks.push(chunk_reads.read(meta)?);
                    }
                }
                let found = deleted
                    .filter_chunks(chunks)
                    .iter()
                    .any(|c| c.iter().any(|(t, _)| start <= t && t <= end));
                if found {
                    out.push(series.labels);
                }
                continue;
            }
            let mut found = false;
            for meta in &series.chunks {
                if start <= meta.min_t && meta.max_t <= end {
                    found = true;
                } else if meta.min_t <= end && start <= meta.max_t {
                    found = chunk_reads.read(meta)?.has_sample_in(start, end);
                }
                if found {
                    break;
                }
            }
            if found {
                out.push(series.labels);
            }
        }
        Ok(out)
    }

    /// Matching series with their chunks overlapping `[start, end]`
    /// (series without such chunks are left out), sorted by labels; deleted
    /// samples are left out.
    pub fn select(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<(Labels, Vec<ClosedChunk>)>, TsdbError> {
        let index = self.index()?;
        let tombstones = self.tombstones.read().clone();
        let mut chunk_reads = MappedSegments::new(self);
        let mut out = Vec::new();
        for position in index.select(matchers)? {
            let series = index.series(position)?;
            let mut chunks = Vec::new();
            for meta in &series.chunks {
                if meta.min_t <= end && start <= meta.max_t {
                    chunks.push(chunk_reads.read(meta)?);
                }
            }
            if let Some(deleted) = tombstones.get(u64::from(position)) {
                chunks = deleted.filter_chunks(chunks);
            }
            if !chunks.is_empty() {
                out.push((series.labels, chunks));
            }
        }
        Ok(out)
    }

    /// Every series in label order with all its chunks, tombstoned samples
    /// left out (a series may come with none left), read one at a time:
    /// the input of a compaction or a rewrite.
    pub fn all_series(
        &self,
    ) -> Result<impl Iterator<Item = Result<BlockSeries, TsdbError>> + '_, TsdbError> {
        self.all_series_without(self.tombstones.read().clone())
    }

    /// [`Block::all_series`] leaving out the samples of `tombstones`.
    pub fn all_series_without(
        &self,
        tombstones: Arc<Tombstones>,
    ) -> Result<impl Iterator<Item = Result<BlockSeries, TsdbError>> + '_, TsdbError> {
        let index = self.index()?;
        Ok((0..index.len() as u32).map(move |position| {
            let series = index.series(position)?;
            let mut chunks = Vec::with_capacity(series.chunks.len());
            for meta in &series.chunks {
                chunks.push(self.read_chunk(meta)?);
            }
            if let Some(deleted) = tombstones.get(u64::from(position)) {
                chunks = deleted.filter_chunks(chunks);
            }
            Ok(BlockSeries {
                labels: series.labels,
                chunks,
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::writer::{write_block_with, ChunkEncoding, NewBlock};
    use crate::block::BlockSeries;
    use crate::chunk::{dense, XorAppender};

    fn chunk(ts: std::ops::Range<i64>, value: impl Fn(i64) -> f64) -> ClosedChunk {
        let mut appender = XorAppender::new();
        for t in ts.clone() {
            appender.append(t, value(t));
        }
        ClosedChunk {
            min_t: ts.start,
            max_t: ts.end - 1,
            data: Arc::from(appender.into_bytes()),
        }
    }

    fn samples(chunks: &[ClosedChunk]) -> Vec<(i64, u64)> {
        chunks
            .iter()
            .flat_map(|c| c.iter().map(|(t, v)| (t, v.to_bits())))
            .collect()
    }

    fn one_series_block(dir: &Path, chunks: Vec<ClosedChunk>, encoding: ChunkEncoding) -> PathBuf {
        let series = vec![Ok(BlockSeries {
            labels: Labels::from_pairs(&[("__name__", "m")]),
            chunks,
        })];
        let new = NewBlock {
            min_time: 0,
            max_time: 1_000_000,
            level: 1,
            ..NewBlock::default()
        };
        let meta = write_block_with(dir, series, new, encoding).unwrap();
        dir.join(&meta.ulid)
    }

    /// The old writer (XOR chunks as given, format 1): chunks come back
    /// byte for byte, short and long, and corruption is reported.
    #[test]
    fn xor_blocks_of_format_1_stay_readable_and_corruption_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        // A noisy chunk is longer than the first read.
        let noisy = chunk(0..120, |t| (t as f64 * 1.618_033).sin() * 1e9);
        assert!(noisy.data.len() > 512);
        let flat = chunk(120..240, |_| 1.0);
        let dir = one_series_block(
            tmp.path(),
            vec![noisy.clone(), flat.clone()],
            ChunkEncoding::Xor,
        );
        let block = Block::open(&dir).unwrap();
        assert_eq!(block.meta().version, 1);
        assert_eq!(block.meta().stats.num_samples, 240);
        let got = block.select(&[], 0, 1000).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(&*got[0].1[0].data, &*noisy.data);
        assert_eq!(&*got[0].1[1].data, &*flat.data);
        assert_eq!(block.select(&[], 200, 210).unwrap()[0].1.len(), 1);
        assert_eq!(block.select_labels(&[], 240, 1000).unwrap().len(), 0);
        assert_eq!(block.select_labels(&[], 239, 239).unwrap().len(), 1);
        // The index stays cached while in use and goes when idle.
        assert!(!block.release_idle_index());
        assert!(block.release_idle_index());
        assert!(!block.release_idle_index());
        assert_eq!(block.select(&[], 0, 1000).unwrap().len(), 1);

        // Flip one byte of the first chunk's data.
        let segment = dir.join("chunks").join("000001");
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes[20] ^= 0x40;
        std::fs::write(&segment, bytes).unwrap();
        let reopened = Block::open(&dir).unwrap();
        let error = reopened.select(&[], 0, 1000).unwrap_err().to_string();
        assert!(error.contains("000001"), "{error}");
    }

    /// The default writer re-chunks a series into dense chunks of up to
    /// `MAX_CHUNK_SAMPLES`, with the same samples, bit for bit (a stale
    /// marker and -0.0 included), in fewer bytes.
    #[test]
    fn dense_blocks_rechunk_series_and_keep_every_bit() {
        let tmp = tempfile::tempdir().unwrap();
        let n = dense::MAX_CHUNK_SAMPLES as i64 + 500;
        let value = |t: i64| match t {
            7 => f64::from_bits(cairn_model::STALE_NAN_BITS),
            8 => -0.0,
            _ => (t * 7 % 1000) as f64 / 100.0,
        };
        let xor: Vec<ClosedChunk> = (0..n)
            .step_by(120)
            .map(|start| chunk(start..(start + 120).min(n), value))
            .collect();
        let xor_bytes: usize = xor.iter().map(|c| c.data.len()).sum();
        let dir = one_series_block(tmp.path(), xor.clone(), ChunkEncoding::Dense);
        let block = Block::open(&dir).unwrap();
        assert_eq!(block.meta().version, crate::block::meta::FORMAT_VERSION);
        assert_eq!(block.meta().stats.num_samples, n as u64);
        assert_eq!(block.meta().stats.num_chunks, 2);
        let got = block.select(&[], 0, 1_000_000).unwrap();
        let chunks = &got[0].1;
        assert_eq!(chunks.len(), 2);
        assert!(chunks.iter().all(|c| c.encoded().0 == ENCODING_DENSE));
        assert_eq!(samples(chunks), samples(&xor));
        assert_eq!((chunks[0].min_t, chunks[1].max_t), (0, n - 1));
        assert_eq!(chunks[0].max_t + 1, chunks[1].min_t);
        let dense_bytes: usize = chunks.iter().map(|c| c.data.len()).sum();
        assert!(dense_bytes * 2 < xor_bytes, "{dense_bytes} vs {xor_bytes}");
        // A range inside the second chunk reads only that chunk.
        assert_eq!(block.select(&[], n - 10, n).unwrap()[0].1.len(), 1);
        assert_eq!(block.select_labels(&[], n - 1, n + 10).unwrap().len(), 1);
        assert_eq!(block.select_labels(&[], n, n + 10).unwrap().len(), 0);

        // Values with no decimal form are written as XOR chunks, bit exact.
        let noisy = vec![chunk(0..120, |t| (t as f64 * 1.618_033).sin() * 1e9)];
        let dir = one_series_block(tmp.path(), noisy.clone(), ChunkEncoding::Dense);
        let got = Block::open(&dir).unwrap().select(&[], 0, 1000).unwrap();
        assert_eq!(got[0].1[0].encoded().0, ENCODING_XOR);
        assert_eq!(samples(&got[0].1), samples(&noisy));
    }

    /// An encoding byte the reader does not know is an error naming it.
    #[test]
    fn unknown_chunk_encodings_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = one_series_block(
            tmp.path(),
            vec![chunk(0..10, |t| t as f64)],
            ChunkEncoding::Dense,
        );
        let segment = dir.join("chunks").join("000001");
        let written = std::fs::read(&segment).unwrap();
        // The flags byte of a dense chunk is in its encoding byte.
        assert!((ENCODING_DENSE_FLAGS..=ENCODING_DENSE_FLAGS_LAST).contains(&written[9]));
        for encoding in [0, ENCODING_DENSE_FLAGS_LAST + 1, u8::MAX] {
            let mut bytes = written.clone();
            // Header, one-byte length, then the encoding byte; fix the CRC.
            let len = bytes[8] as usize;
            bytes[9] = encoding;
            let crc = crc32fast::hash(&bytes[9..10 + len]);
            bytes[10 + len..14 + len].copy_from_slice(&crc.to_le_bytes());
            std::fs::write(&segment, bytes).unwrap();
            let error = Block::open(&dir).unwrap().select(&[], 0, 1000).unwrap_err();
            let error = format!("{error:?}");
            assert!(
                error.contains(&format!("unknown chunk encoding {encoding}")),
                "{error}"
            );
        }
    }

    /// A dense chunk framed as blocks before the flags moved into the
    /// encoding byte wrote it (encoding 2, the flags byte and the sample
    /// count in the data) still reads.
    #[test]
    fn dense_chunks_with_their_flags_byte_in_the_data_still_read() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = one_series_block(
            tmp.path(),
            vec![chunk(0..10, |t| t as f64 / 4.0)],
            ChunkEncoding::Dense,
        );
        let segment = dir.join("chunks").join("000001");
        let bytes = std::fs::read(&segment).unwrap();
        let len = bytes[8] as usize;
        let flags = bytes[9] - ENCODING_DENSE_FLAGS;
        assert_eq!(flags & dense::FLAG_ZSTD, 0);
        let mut old = bytes[..8].to_vec();
        // The flags byte and the sample count (10) back in the data.
        old.push(len as u8 + 2);
        old.extend_from_slice(&[ENCODING_DENSE, flags, 10]);
        old.extend_from_slice(&bytes[10..10 + len]);
        let crc = crc32fast::hash(&old[9..]);
        old.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(bytes.len(), 14 + len, "one chunk");
        std::fs::write(&segment, &old).unwrap();
        // The index's reference still points at the chunk (same offset).
        let got = Block::open(&dir).unwrap().select(&[], 0, 1000).unwrap();
        assert_eq!(got[0].1[0].encoded().0, ENCODING_DENSE);
        let want: Vec<(i64, f64)> = (0..10).map(|t| (t, t as f64 / 4.0)).collect();
        assert_eq!(got[0].1[0].iter().collect::<Vec<_>>(), want);
    }
}
