//! Writes a block: chunks, index and meta into `<ULID>.tmp-for-creation/`,
//! fsynced, then renamed to `<ULID>/`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use cairn_model::Labels;

use super::index::{self, ChunkMeta, IndexSeries};
use super::meta::{BlockMeta, BlockStats, Compaction, FORMAT_VERSION};
use super::{io_error, put_uvarint, sync_dir, ulid, Decbuf, TMP_CREATION};
use crate::chunk::{dense, ClosedChunk, XorAppender};
pub use crate::chunk::{ENCODING_DENSE, ENCODING_XOR};
/// Encoding bytes from this one to [`ENCODING_DENSE_FLAGS_LAST`]: a dense
/// chunk whose flags byte is the encoding byte minus this, without that
/// byte in the data. Bytes above are left for other encodings.
pub const ENCODING_DENSE_FLAGS: u8 = 3;
/// The last of them: flags of 191 at most (3 flag bits, scale + 1 <= 23).
pub const ENCODING_DENSE_FLAGS_LAST: u8 = ENCODING_DENSE_FLAGS + 191;
use crate::fault;
use crate::TsdbError;

/// Magic of a chunk segment file ("CHK1").
pub const CHUNKS_MAGIC: u32 = 0x4348_4B31;
/// Bytes before the first chunk of a segment.
pub const CHUNKS_HEADER_LEN: u64 = 8;
const MAX_SEGMENT_SIZE: u64 = 512 << 20;

/// How a block's chunks are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkEncoding {
    /// Each series' samples re-chunked into dense chunks of up to
    /// [`dense::MAX_CHUNK_SAMPLES`] (XOR for a chunk whose values have no
    /// exact decimal form, or when XOR is smaller); block format 2.
    Dense,
    /// The chunks as given, XOR (what Cairn wrote before format 2, kept to
    /// test that old blocks stay readable); block format 1.
    Xor,
}

/// One series to write: labels and its chunks, oldest first, not overlapping.
pub struct BlockSeries {
    pub labels: Labels,
    pub chunks: Vec<ClosedChunk>,
}

/// What the new block is: its range and lineage.
#[derive(Clone, Debug, Default)]
pub struct NewBlock {
    pub min_time: i64,
    pub max_time: i64,
    pub level: u32,
    /// Level-1 blocks it holds; empty for a block cut from the head (its
    /// own ID is used).
    pub sources: Vec<String>,
    /// See [`BlockMeta::imported`].
    pub imported: bool,
    /// See [`BlockMeta::head_end`].
    pub head_end: Option<i64>,
}

struct ChunkFiles {
    dir: PathBuf,
    current: Option<(u64, fs::File, std::io::BufWriter<fs::File>, u64)>,
    next_segment: u64,
}

impl ChunkFiles {
    fn write(&mut self, encoding: u8, data: &[u8]) -> Result<(u64, u64), TsdbError> {
        // A dense chunk's flags byte goes into the encoding byte
        // (`ENCODING_DENSE_FLAGS + flags`), one byte instead of two, and an
        // uncompressed one's sample count is left to the index's chunk meta.
        let (encoding, data) = match data {
            [flags, rest @ ..]
                if encoding == ENCODING_DENSE
                    && *flags <= ENCODING_DENSE_FLAGS_LAST - ENCODING_DENSE_FLAGS =>
            {
                let rest = if flags & crate::chunk::dense::FLAG_ZSTD == 0 {
                    let mut d = Decbuf::new(rest);
                    d.uvarint()
                        .expect("a dense body starts with its sample count");
                    &rest[d.pos..]
                } else {
                    rest
                };
                (ENCODING_DENSE_FLAGS + flags, rest)
            }
            _ => (encoding, data),
        };
        let mut framed = Vec::with_capacity(data.len() + 16);
        put_uvarint(&mut framed, data.len() as u64);
        framed.push(encoding);
        framed.extend_from_slice(data);
        let crc = crc32fast::hash(&framed[framed.len() - data.len() - 1..]);
        framed.extend_from_slice(&crc.to_le_bytes());
        let full = self.current.as_ref().is_some_and(|c| {
            c.3 > CHUNKS_HEADER_LEN && c.3 + framed.len() as u64 > MAX_SEGMENT_SIZE
        });
        if full {
            self.finish()?;
        }
        if self.current.is_none() {
            let number = self.next_segment;
            self.next_segment += 1;
            let path = self.dir.join(format!("{number:06}"));
            let file = fs::File::create(&path).map_err(io_error(&path))?;
            let mut buffered = std::io::BufWriter::with_capacity(
                1 << 20,
                file.try_clone().map_err(io_error(&path))?,
            );
            let mut header = CHUNKS_MAGIC.to_be_bytes().to_vec();
            header.extend_from_slice(&[1, 0, 0, 0]);
            buffered.write_all(&header).map_err(io_error(&path))?;
            self.current = Some((number, file, buffered, CHUNKS_HEADER_LEN));
        }
        let (number, _, buffered, len) = self.current.as_mut().expect("opened above");
        let offset = *len;
        buffered.write_all(&framed).map_err(io_error(&self.dir))?;
        *len += framed.len() as u64;
        Ok((*number, offset))
    }

    fn finish(&mut self) -> Result<(), TsdbError> {
        if let Some((_, file, mut buffered, _)) = self.current.take() {
            buffered.flush().map_err(io_error(&self.dir))?;
            drop(buffered);
            file.sync_all().map_err(io_error(&self.dir))?;
        }
        Ok(())
    }
}

/// Writes a block from series sorted by labels into `blocks_dir` and
/// returns its meta once it is durable under its final name. Chunks
/// outside `[min_time, max_time)` must not be passed.
pub fn write_block(
    blocks_dir: &Path,
    series: impl IntoIterator<Item = Result<BlockSeries, TsdbError>>,
    new: NewBlock,
) -> Result<BlockMeta, TsdbError> {
    write_block_with(blocks_dir, series, new, ChunkEncoding::Dense)
}

/// [`write_block`] with a choice of chunk encoding.
pub fn write_block_with(
    blocks_dir: &Path,
    series: impl IntoIterator<Item = Result<BlockSeries, TsdbError>>,
    new: NewBlock,
    encoding: ChunkEncoding,
) -> Result<BlockMeta, TsdbError> {
    let id = ulid::new();
    let kind = if new.level <= 1 {
        "block"
    } else {
        "compaction"
    };
    let tmp = blocks_dir.join(format!("{id}{TMP_CREATION}"));
    let result = write_into(&tmp, &id, series, new, encoding);
    let meta = match result {
        Ok(meta) => meta,
        Err(error) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(error);
        }
    };
    fault::point(&format!("{kind}-before-rename"));
    let final_dir = blocks_dir.join(&id);
    fs::rename(&tmp, &final_dir).map_err(io_error(&tmp))?;
    sync_dir(blocks_dir)?;
    fault::point(&format!("{kind}-after-rename"));
    Ok(meta)
}

fn write_into(
    tmp: &Path,
    id: &str,
    series: impl IntoIterator<Item = Result<BlockSeries, TsdbError>>,
    new: NewBlock,
    encoding: ChunkEncoding,
) -> Result<BlockMeta, TsdbError> {
    let kind = if new.level <= 1 {
        "block"
    } else {
        "compaction"
    };
    let chunks_dir = tmp.join("chunks");
    fs::create_dir_all(&chunks_dir).map_err(io_error(&chunks_dir))?;
    let mut files = ChunkFiles {
        dir: chunks_dir.clone(),
        current: None,
        next_segment: 1,
    };
    let mut stats = BlockStats {
        num_samples: 0,
        num_series: 0,
        num_chunks: 0,
    };
    let mut index_series: Vec<IndexSeries> = Vec::new();
    let mut half_written = false;
    for s in series {
        let s = s?;
        if s.chunks.is_empty() {
            continue;
        }
        debug_assert!(index_series
            .last()
            .is_none_or(|prev| prev.labels < s.labels));
        debug_assert!(s
            .chunks
            .iter()
            .all(|c| new.min_time <= c.min_t && c.max_t < new.max_time));
        let chunks = match encoding {
            ChunkEncoding::Dense => dense_chunks(&s.chunks),
            ChunkEncoding::Xor => s.chunks.iter().map(xor_chunk).collect(),
        };
        let mut metas = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let (segment, offset) = files.write(chunk.encoding, &chunk.bytes)?;
            stats.num_samples += chunk.samples;
            stats.num_chunks += 1;
            metas.push(ChunkMeta {
                min_t: chunk.min_t,
                max_t: chunk.max_t,
                samples: chunk.samples,
                segment,
                offset,
            });
        }
        stats.num_series += 1;
        index_series.push(IndexSeries {
            labels: s.labels,
            chunks: metas,
        });
        if !half_written && stats.num_series > 0 {
            half_written = true;
            fault::point(&format!("{kind}-writing"));
        }
    }
    files.finish()?;
    sync_dir(&chunks_dir)?;
    let index_path = tmp.join("index");
    write_synced(&index_path, &index::encode(&index_series))?;
    let sources = if new.sources.is_empty() {
        vec![id.to_string()]
    } else {
        new.sources
    };
    let meta = BlockMeta {
        ulid: id.to_string(),
        min_time: new.min_time,
        max_time: new.max_time,
        stats,
        compaction: Compaction {
            level: new.level,
            sources,
        },
        version: match encoding {
            ChunkEncoding::Dense => FORMAT_VERSION,
            ChunkEncoding::Xor => 1,
        },
        imported: new.imported,
        head_end: new.head_end,
    };
    write_synced(&tmp.join("meta.json"), &meta.to_json())?;
    sync_dir(tmp)?;
    Ok(meta)
}

/// One chunk as it goes to disk.
struct EncodedChunk {
    min_t: i64,
    max_t: i64,
    samples: u64,
    encoding: u8,
    bytes: Vec<u8>,
}

/// A series' chunks (oldest first) re-cut into chunks of at most
/// [`dense::MAX_CHUNK_SAMPLES`] samples, of equal size, each dense unless
/// XOR is smaller.
fn dense_chunks(chunks: &[ClosedChunk]) -> Vec<EncodedChunk> {
    let total: usize = chunks.iter().map(|c| c.iter().size_hint().0).sum();
    let mut ts = Vec::with_capacity(total);
    let mut vs = Vec::with_capacity(total);
    for chunk in chunks {
        for (t, v) in chunk.iter() {
            ts.push(t);
            vs.push(v);
        }
    }
    if ts.is_empty() {
        return Vec::new();
    }
    let groups = ts.len().div_ceil(dense::MAX_CHUNK_SAMPLES);
    let size = ts.len().div_ceil(groups);
    let mut out = Vec::with_capacity(groups);
    for (ts, vs) in ts.chunks(size).zip(vs.chunks(size)) {
        let dense = dense::encode(ts, vs);
        // Values with no exact decimal form: XOR may do better (a decimal
        // chunk of regular data takes well under a byte per sample).
        let try_xor = dense.as_ref().is_none_or(|d| d.len() > ts.len());
        let xor = try_xor.then(|| {
            let mut appender = XorAppender::new();
            for (&t, &v) in ts.iter().zip(vs) {
                appender.append(t, v);
            }
            appender.into_bytes()
        });
        let (encoding, bytes) = match (dense, xor) {
            (Some(d), Some(x)) if x.len() < d.len() => (ENCODING_XOR, x),
            (Some(d), _) => (ENCODING_DENSE, d),
            (None, Some(x)) => (ENCODING_XOR, x),
            (None, None) => unreachable!("XOR is tried when dense is not possible"),
        };
        out.push(EncodedChunk {
            min_t: ts[0],
            max_t: ts[ts.len() - 1],
            samples: ts.len() as u64,
            encoding,
            bytes,
        });
    }
    out
}

/// A chunk written as XOR, as it is when it is one.
fn xor_chunk(chunk: &ClosedChunk) -> EncodedChunk {
    let (encoding, bytes) = chunk.encoded();
    let bytes = if encoding == ENCODING_XOR {
        bytes.to_vec()
    } else {
        let mut appender = XorAppender::new();
        for (t, v) in chunk.iter() {
            appender.append(t, v);
        }
        appender.into_bytes()
    };
    EncodedChunk {
        min_t: chunk.min_t,
        max_t: chunk.max_t,
        samples: u64::from(crate::chunk::xor::sample_count(&bytes)),
        encoding: ENCODING_XOR,
        bytes,
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), TsdbError> {
    let mut file = fs::File::create(path).map_err(io_error(path))?;
    file.write_all(bytes).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}
