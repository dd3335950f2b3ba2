//! The block `index` file: symbols, series with chunk references, postings,
//! and (version 2) offset tables so a reader finds any symbol, series or
//! postings list without decoding the rest. Byte layout: `docs/format.md`,
//! "Blocks" / "index".
//!
//! [`IndexReader`] maps the file and decodes only what a call asks for
//! (Prometheus's `tsdb/index` reader works the same way): memory per open
//! block is the mapping's touched pages, not the decoded series. Version-1
//! files (no offset tables) are scanned once at open into the same tables,
//! held in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use cairn_model::{Label, Labels, MatchOp, Matcher};

use super::{corrupt_block, io_error, put_str, put_uvarint, put_varint, Decbuf};
use crate::head::postings::{intersect, subtract, union_all};
use crate::TsdbError;

const MAGIC: u32 = 0x4944_5831;
/// Version written: 4 (narrow tables, chunk metas against a common step);
/// 3 when a chunk reference does not fit version 4's (an offset of 2^29 or
/// more), 2 when the body is too large for 32-bit offsets. 1 to 3 are
/// still read.
const VERSION: u8 = 4;
/// Version 4: a chunk reference is `(segment - 1) << SEGMENT_SHIFT | offset`
/// (chunk segments are at most 512 MiB, so every offset is below it).
const SEGMENT_SHIFT: u32 = 29;
/// Version 4: the series offsets table lists every this many series (a
/// lookup skips up to this many minus one before its series).
const SERIES_GROUP: usize = 4;
/// Bytes of the version-2 table of contents before the CRC.
const TOC_LEN: usize = 6 * 8;
/// Width of one version-1/2 postings offset entry: name, value (u32 each), offset (u64).
const POSTINGS_ENTRY: usize = 16;

/// Where one chunk is and what it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkMeta {
    pub min_t: i64,
    pub max_t: i64,
    pub samples: u64,
    pub segment: u64,
    pub offset: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IndexSeries {
    pub labels: Labels,
    pub chunks: Vec<ChunkMeta>,
}

/// Encodes an index for series already sorted by labels: version 4, or
/// the newest older version that can hold it.
pub fn encode(series: &[IndexSeries]) -> Vec<u8> {
    [VERSION, 3, 2]
        .into_iter()
        .map(|version| encode_version(series, version))
        .find(|bytes| !bytes.is_empty())
        .expect("version 2 holds any index")
}

/// Bytes needed for any value below `limit` (at least `min`).
fn width_for(limit: u64, min: usize) -> usize {
    let bits = 64 - limit.saturating_sub(1).leading_zeros() as usize;
    bits.div_ceil(8).max(min)
}

/// Encodes version 2, 3 or 4 (empty if the version cannot hold it: 3's
/// and 4's offsets, 4's chunk references).
fn encode_version(series: &[IndexSeries], version: u8) -> Vec<u8> {
    if version >= 4
        && series.iter().flat_map(|s| &s.chunks).any(|c| {
            c.segment == 0
                || (c.segment - 1) >> (64 - SEGMENT_SHIFT) != 0
                || c.offset >> SEGMENT_SHIFT != 0
                || c.samples >> 63 != 0
        })
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    let tables = encode_body(series, &mut out, version);
    if version >= 3 && out.len() > u32::MAX as usize {
        return Vec::new();
    }
    // Version 4: offsets in as few bytes as the body needs (2 to 4), symbol
    // IDs in as few as the symbol count needs (1 to 4), both in byte 5.
    let (offset_width, symbol_width) = match version {
        4.. => (
            width_for(out.len() as u64, 2),
            width_for(tables.symbols.len() as u64, 1),
        ),
        3 => (4, 4),
        _ => (8, 4),
    };
    if version >= 4 {
        out[5] = (offset_width | symbol_width << 4) as u8;
    }
    let put_offset = |out: &mut Vec<u8>, offset: usize| {
        out.extend_from_slice(&(offset as u64).to_le_bytes()[..offset_width]);
    };
    let toc_start = out.len();
    let mut toc = [0u64; 6];
    toc[0] = tables.symbols.len() as u64;
    toc[1] = out.len() as u64;
    for offset in &tables.symbols {
        put_offset(&mut out, *offset);
    }
    toc[2] = tables.series.len() as u64;
    toc[3] = out.len() as u64;
    let group = if version >= 4 { SERIES_GROUP } else { 1 };
    for offset in tables.series.iter().step_by(group) {
        put_offset(&mut out, *offset);
    }
    toc[4] = tables.postings.len() as u64;
    toc[5] = out.len() as u64;
    for (name, value, offset) in &tables.postings {
        out.extend_from_slice(&name.to_le_bytes()[..symbol_width]);
        out.extend_from_slice(&value.to_le_bytes()[..symbol_width]);
        put_offset(&mut out, *offset);
    }
    debug_assert!(toc_start <= out.len());
    for field in toc {
        out.extend_from_slice(&field.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Offsets of every symbol, series and postings list in an encoded body.
#[derive(Default)]
struct BodyTables {
    symbols: Vec<usize>,
    series: Vec<usize>,
    /// (name symbol, value symbol, offset of the list's length).
    postings: Vec<(u32, u32, usize)>,
}

/// Magic, version, symbols, series and postings (the whole version-1 file
/// but its CRC); returns where each item starts.
fn encode_body(series: &[IndexSeries], out: &mut Vec<u8>, version: u8) -> BodyTables {
    debug_assert!(series.windows(2).all(|w| w[0].labels < w[1].labels));
    let mut symbols: BTreeSet<&str> = BTreeSet::new();
    let mut postings: BTreeMap<(&str, &str), Vec<u32>> = BTreeMap::new();
    for (position, s) in series.iter().enumerate() {
        for label in &s.labels {
            symbols.insert(&label.name);
            symbols.insert(&label.value);
            postings
                .entry((&label.name, &label.value))
                .or_default()
                .push(position as u32);
        }
    }
    let symbol_ids: BTreeMap<&str, u32> = symbols
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, i as u32))
        .collect();
    let mut tables = BodyTables::default();
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.push(version);
    if version >= 4 {
        // The table widths, filled in once the body's length is known.
        out.push(0);
    }
    // Version 3: the first chunk's min_t of every series is relative to
    // the earliest one (a byte or two instead of six).
    let base = series
        .iter()
        .filter_map(|s| s.chunks.first().map(|c| c.min_t))
        .min()
        .unwrap_or(0);
    if version >= 3 {
        put_varint(out, base);
    }
    let step = common_step(series);
    if version >= 4 {
        put_uvarint(out, step as u64);
    }
    put_uvarint(out, symbols.len() as u64);
    for symbol in &symbols {
        tables.symbols.push(out.len());
        put_str(out, symbol);
    }
    // Version 4: a label is the position of its (name, value) pair in the
    // postings table (sorted by name, then value), one reference not two.
    let pair_ids: BTreeMap<(&str, &str), u64> = postings
        .keys()
        .enumerate()
        .map(|(i, pair)| (*pair, i as u64))
        .collect();
    put_uvarint(out, series.len() as u64);
    // Version 4: chunk references are deltas within a group of series.
    let mut previous_ref = 0u64;
    for (position, s) in series.iter().enumerate() {
        if position % SERIES_GROUP == 0 {
            previous_ref = 0;
        }
        tables.series.push(out.len());
        put_uvarint(out, s.labels.len() as u64);
        for label in &s.labels {
            if version >= 4 {
                put_uvarint(out, pair_ids[&(label.name.as_str(), label.value.as_str())]);
                continue;
            }
            put_uvarint(out, u64::from(symbol_ids[label.name.as_str()]));
            put_uvarint(out, u64::from(symbol_ids[label.value.as_str()]));
        }
        if version >= 4 {
            put_chunk_metas_v4(out, &s.chunks, base, step, &mut previous_ref);
            continue;
        }
        put_uvarint(out, s.chunks.len() as u64);
        let mut previous_max: Option<i64> = None;
        for c in &s.chunks {
            match previous_max {
                None if version >= 3 => put_varint(out, c.min_t.wrapping_sub(base)),
                None => put_varint(out, c.min_t),
                Some(previous) => put_varint(out, c.min_t.wrapping_sub(previous)),
            }
            previous_max = Some(c.max_t);
            put_uvarint(out, c.max_t.wrapping_sub(c.min_t) as u64);
            put_uvarint(out, c.samples);
            put_uvarint(out, c.segment);
            put_uvarint(out, c.offset);
        }
    }
    put_uvarint(out, postings.len() as u64);
    for ((name, value), ids) in &postings {
        let (name, value) = (symbol_ids[name], symbol_ids[value]);
        if version >= 4 {
            // The postings offsets entry has the pair; the list is gaps or
            // runs, whichever is shorter.
            tables.postings.push((name, value, out.len()));
            put_postings_v4(out, ids);
            continue;
        }
        put_uvarint(out, u64::from(name));
        put_uvarint(out, u64::from(value));
        tables.postings.push((name, value, out.len()));
        put_uvarint(out, ids.len() as u64);
        let mut previous = 0u32;
        for (i, id) in ids.iter().enumerate() {
            put_uvarint(out, u64::from(if i == 0 { *id } else { id - previous }));
            previous = *id;
        }
    }
    tables
}

/// A series' version-4 chunk metas (layout in `docs/format.md`):
/// `uvarint (nchunks << 1) | from_base`, then per chunk its min_t (left
/// out for the first when it is the base time), `uvarint (samples << 1) |
/// regular`, the span's difference from `(samples - 1) * step` unless
/// `regular` (it is 0), and its reference as a delta from `previous_ref`
/// (the previous chunk's, in this series or the ones before it in its
/// group of [`SERIES_GROUP`]; 0 at a group's start).
fn put_chunk_metas_v4(
    out: &mut Vec<u8>,
    chunks: &[ChunkMeta],
    base: i64,
    step: i64,
    previous_ref: &mut u64,
) {
    let from_base = chunks.first().is_some_and(|c| c.min_t == base);
    put_uvarint(out, (chunks.len() as u64) << 1 | u64::from(from_base));
    let mut previous_max: Option<i64> = None;
    for c in chunks {
        match previous_max {
            None if from_base => {}
            None => put_varint(out, c.min_t.wrapping_sub(base)),
            Some(previous) => put_varint(out, c.min_t.wrapping_sub(previous)),
        }
        previous_max = Some(c.max_t);
        let residual = c
            .max_t
            .wrapping_sub(c.min_t)
            .wrapping_sub(expected_span(c.samples, step));
        put_uvarint(out, c.samples << 1 | u64::from(residual == 0));
        if residual != 0 {
            put_varint(out, residual);
        }
        let reference = (c.segment - 1) << SEGMENT_SHIFT | c.offset;
        put_varint(out, reference.wrapping_sub(*previous_ref) as i64);
        *previous_ref = reference;
    }
}

/// Reads a series' version-4 chunk metas ([`put_chunk_metas_v4`]) into
/// `out` (if given); `previous_ref` as the writer's. `None` if the bytes
/// end or a sample count does not fit.
fn read_chunk_metas_v4(
    d: &mut Decbuf<'_>,
    base: i64,
    step: i64,
    previous_ref: &mut u64,
    mut out: Option<&mut Vec<ChunkMeta>>,
) -> Option<()> {
    let head = d.uvarint()?;
    let (nchunks, from_base) = (head >> 1, head & 1 == 1);
    let mut previous_max: Option<i64> = None;
    for _ in 0..nchunks {
        let min_t = match previous_max {
            None if from_base => base,
            None => base.wrapping_add(d.varint()?),
            Some(previous) => previous.wrapping_add(d.varint()?),
        };
        let samples = d.uvarint()?;
        let (samples, regular) = (samples >> 1, samples & 1 == 1);
        let residual = if regular { 0 } else { d.varint()? };
        let max_t = min_t
            .wrapping_add(expected_span(samples, step))
            .wrapping_add(residual);
        previous_max = Some(max_t);
        let reference = previous_ref.wrapping_add(d.varint()? as u64);
        *previous_ref = reference;
        if let Some(out) = out.as_deref_mut() {
            out.push(ChunkMeta {
                min_t,
                max_t,
                samples,
                segment: (reference >> SEGMENT_SHIFT) + 1,
                offset: reference & ((1 << SEGMENT_SHIFT) - 1),
            });
        }
    }
    Some(())
}

/// A version-4 postings list: `uvarint (n << 1) | runs`, then `n` gaps
/// (`runs` 0: the first position, then the distance to the previous one)
/// or `n` runs of consecutive positions (`runs` 1: `uvarint` start, the
/// first absolute, later ones less the previous run's end plus 1, then
/// `uvarint` length - 1), whichever is shorter (runs win on lists like
/// `job="node"` that hold every series of a stretch).
fn put_postings_v4(out: &mut Vec<u8>, ids: &[u32]) {
    let mut gaps = Vec::new();
    let mut previous = 0u32;
    for (i, &id) in ids.iter().enumerate() {
        put_uvarint(
            &mut gaps,
            u64::from(if i == 0 { id } else { id - previous }),
        );
        previous = id;
    }
    let mut runs = Vec::new();
    let mut count = 0u64;
    let mut next = 0u32;
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && ids[i + 1] == end + 1 {
            end += 1;
            i += 1;
        }
        put_uvarint(&mut runs, u64::from(start - next));
        put_uvarint(&mut runs, u64::from(end - start));
        next = end + 1;
        count += 1;
        i += 1;
    }
    if runs.len() < gaps.len() {
        put_uvarint(out, count << 1 | 1);
        out.extend_from_slice(&runs);
    } else {
        put_uvarint(out, (ids.len() as u64) << 1);
        out.extend_from_slice(&gaps);
    }
}

/// The most common whole step between a chunk's samples,
/// `(max_t - min_t) / (samples - 1)` where that divides exactly (the
/// scrape interval; 0 if no chunk has one): version 4 writes each chunk's
/// span as its difference from `(samples - 1) * step`, a byte on regular
/// scrapes instead of four.
fn common_step(series: &[IndexSeries]) -> i64 {
    let mut counts: std::collections::HashMap<i64, u64> = std::collections::HashMap::new();
    for c in series.iter().flat_map(|s| &s.chunks) {
        let gaps = c.samples.saturating_sub(1) as i64;
        let span = c.max_t.wrapping_sub(c.min_t);
        if gaps > 0 && span > 0 && span % gaps == 0 {
            *counts.entry(span / gaps).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|&(step, count)| (count, std::cmp::Reverse(step)))
        .map_or(0, |(step, _)| step)
}

/// `(samples - 1) * step`, wrapping (what a version-4 span is written
/// against).
fn expected_span(samples: u64, step: i64) -> i64 {
    (samples.wrapping_sub(1) as i64).wrapping_mul(step)
}

/// The file's bytes: mapped (version 2), or read whole (version 1, small
/// and rare: blocks written before version 2).
enum Data {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Data {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Data::Mapped(map) => map,
            Data::Owned(bytes) => bytes,
        }
    }
}

/// A fixed-width table: in the file (version 2) or built at open (version 1).
enum Table {
    InFile { start: usize },
    Built(Vec<u8>),
}

/// A block's index, read lazily: symbols, series and postings lists are
/// decoded when asked for. Series are referred to by position (their rank
/// in label order), as in postings and tombstones.
pub struct IndexReader {
    path: PathBuf,
    data: Data,
    symbol_count: usize,
    symbols: Table,
    series_count: usize,
    series: Table,
    postings_count: usize,
    postings: Table,
    /// Width of an offset in the tables: 2 to 4 (version 4), 4 (version 3)
    /// or 8.
    offset_width: usize,
    /// Width of a symbol ID in the postings offsets: 1 to 4 (version 4) or 4.
    symbol_width: usize,
    /// What each series' first chunk min_t is relative to (version 3, 4;
    /// 0 before).
    base_t: i64,
    /// What version-4 chunk spans are relative to, per sample gap.
    step: i64,
    version: u8,
    /// Series per entry of the series offsets table: 4 (version 4) or 1.
    series_group: usize,
}

impl std::fmt::Debug for IndexReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexReader")
            .field("path", &self.path)
            .field("series", &self.series_count)
            .finish()
    }
}

/// CRC32 of the first `len` bytes of `file`, read in pieces through the
/// page cache (not mapped, so checking costs no resident memory).
fn crc_of(file: &fs::File, len: u64) -> std::io::Result<u32> {
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut at = 0u64;
    while at < len {
        let n = buf.len().min((len - at) as usize);
        file.read_exact_at(&mut buf[..n], at)?;
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(hasher.finalize())
}

impl IndexReader {
    /// Opens the index file at `path`: checks magic, version and (when
    /// `verify`) the CRC of the whole file, then reads only the table of
    /// contents.
    pub fn open(path: &Path, verify: bool) -> Result<IndexReader, TsdbError> {
        let file = fs::File::open(path).map_err(io_error(path))?;
        let len = file.metadata().map_err(io_error(path))?.len();
        if len < 9 {
            return Err(corrupt_block(path, "index too short"));
        }
        let mut head = [0u8; 5];
        file.read_exact_at(&mut head, 0).map_err(io_error(path))?;
        if head[..4] != MAGIC.to_be_bytes() {
            return Err(corrupt_block(path, "bad index magic"));
        }
        if verify || head[4] == 1 {
            let mut crc = [0u8; 4];
            file.read_exact_at(&mut crc, len - 4)
                .map_err(io_error(path))?;
            if crc_of(&file, len - 4).map_err(io_error(path))? != u32::from_le_bytes(crc) {
                return Err(corrupt_block(path, "index checksum mismatch"));
            }
        }
        match head[4] {
            1 => {
                let bytes = fs::read(path).map_err(io_error(path))?;
                Self::scan_v1(path, bytes)
            }
            2..=4 => {
                // SAFETY: blocks are immutable once renamed into place and
                // only ever deleted whole (after the last reader dropped
                // this mapping), so the mapped file never changes under us.
                let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_error(path))?;
                Self::from_toc(path, Data::Mapped(map))
            }
            other => Err(corrupt_block(
                path,
                format!("unknown index version {other}"),
            )),
        }
    }

    fn from_toc(path: &Path, data: Data) -> Result<IndexReader, TsdbError> {
        let bad = |what: &str| corrupt_block(path, format!("malformed index ({what})"));
        let toc_start = data
            .len()
            .checked_sub(4 + TOC_LEN)
            .filter(|&s| s >= 5)
            .ok_or_else(|| bad("no table of contents"))?;
        let field = |i: usize| {
            let at = toc_start + 8 * i;
            u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"))
        };
        // Each table must lie inside the file, before the table of contents.
        let table =
            |count_field: usize, width: usize, group: usize| -> Result<(usize, usize), TsdbError> {
                let count = usize::try_from(field(count_field)).map_err(|_| bad("table count"))?;
                let start =
                    usize::try_from(field(count_field + 1)).map_err(|_| bad("table offset"))?;
                let end = count
                    .div_ceil(group)
                    .checked_mul(width)
                    .and_then(|n| n.checked_add(start))
                    .ok_or_else(|| bad("table size"))?;
                if start < 5 || end > toc_start {
                    return Err(bad("table out of bounds"));
                }
                Ok((count, start))
            };
        let version = data[4];
        let mut d = Decbuf::new(&data[..toc_start]);
        d.pos = 5;
        let (offset_width, symbol_width) = match version {
            4.. => {
                let widths = d.u8().ok_or_else(|| bad("table widths"))?;
                let (offsets, symbols) = (usize::from(widths & 15), usize::from(widths >> 4));
                if !(2..=4).contains(&offsets) || !(1..=4).contains(&symbols) {
                    return Err(bad("table widths"));
                }
                (offsets, symbols)
            }
            3 => (4, 4),
            _ => (8, 4),
        };
        let base_t = if version >= 3 {
            d.varint().ok_or_else(|| bad("base time"))?
        } else {
            0
        };
        let step = if version >= 4 {
            d.uvarint().ok_or_else(|| bad("step"))? as i64
        } else {
            0
        };
        let series_group = if version >= 4 { SERIES_GROUP } else { 1 };
        let (symbol_count, symbols) = table(0, offset_width, 1)?;
        let (series_count, series) = table(2, offset_width, series_group)?;
        let (postings_count, postings) = table(4, 2 * symbol_width + offset_width, 1)?;
        if series_count > u32::MAX as usize || symbol_count > u32::MAX as usize {
            return Err(bad("too many series or symbols"));
        }
        Ok(IndexReader {
            path: path.to_path_buf(),
            data,
            symbol_count,
            symbols: Table::InFile { start: symbols },
            series_count,
            series: Table::InFile { start: series },
            postings_count,
            postings: Table::InFile { start: postings },
            offset_width,
            symbol_width,
            base_t,
            step,
            version,
            series_group,
        })
    }

    /// Version 1: walks the whole file once, recording where each symbol,
    /// series and postings list starts, and checks every reference.
    fn scan_v1(path: &Path, bytes: Vec<u8>) -> Result<IndexReader, TsdbError> {
        let bad = |what: &str| corrupt_block(path, format!("malformed index ({what})"));
        let body_end = bytes.len() - 4;
        let mut d = Decbuf::new(&bytes[..body_end]);
        d.pos = 5;
        let mut symbols = Vec::new();
        let count = d.uvarint().ok_or_else(|| bad("symbol count"))?;
        for _ in 0..count {
            symbols.extend_from_slice(&(d.pos as u64).to_le_bytes());
            d.str().ok_or_else(|| bad("symbol"))?;
        }
        let symbol_count = symbols.len() / 8;
        let check_symbol = |id: Option<u64>| {
            id.filter(|&i| i < symbol_count as u64)
                .ok_or_else(|| bad("symbol reference"))
        };
        let mut series = Vec::new();
        let count = d.uvarint().ok_or_else(|| bad("series count"))?;
        for _ in 0..count {
            series.extend_from_slice(&(d.pos as u64).to_le_bytes());
            let nlabels = d.uvarint().ok_or_else(|| bad("label count"))?;
            for _ in 0..nlabels {
                check_symbol(d.uvarint())?;
                check_symbol(d.uvarint())?;
            }
            let nchunks = d.uvarint().ok_or_else(|| bad("chunk count"))?;
            for _ in 0..nchunks {
                d.varint().ok_or_else(|| bad("chunk min_t"))?;
                for _ in 0..4 {
                    d.uvarint().ok_or_else(|| bad("chunk meta"))?;
                }
            }
        }
        let series_count = series.len() / 8;
        let mut postings = Vec::new();
        let count = d.uvarint().ok_or_else(|| bad("postings count"))?;
        for _ in 0..count {
            let name = check_symbol(d.uvarint())? as u32;
            let value = check_symbol(d.uvarint())? as u32;
            postings.extend_from_slice(&name.to_le_bytes());
            postings.extend_from_slice(&value.to_le_bytes());
            postings.extend_from_slice(&(d.pos as u64).to_le_bytes());
            let n = d.uvarint().ok_or_else(|| bad("postings length"))?;
            for _ in 0..n {
                d.uvarint().ok_or_else(|| bad("posting"))?;
            }
        }
        if d.pos != body_end {
            return Err(bad("trailing bytes"));
        }
        Ok(IndexReader {
            path: path.to_path_buf(),
            data: Data::Owned(bytes),
            symbol_count,
            symbols: Table::Built(symbols),
            series_count,
            series: Table::Built(series),
            postings_count: postings.len() / POSTINGS_ENTRY,
            postings: Table::Built(postings),
            offset_width: 8,
            symbol_width: 4,
            base_t: 0,
            step: 0,
            version: 1,
            series_group: 1,
        })
    }

    fn bad(&self, what: &str) -> TsdbError {
        corrupt_block(&self.path, format!("malformed index ({what})"))
    }

    fn entry<'a>(&'a self, table: &'a Table, width: usize, i: usize) -> &'a [u8] {
        let bytes: &[u8] = match table {
            Table::InFile { start } => &self.data[*start..],
            Table::Built(bytes) => bytes,
        };
        &bytes[i * width..(i + 1) * width]
    }

    /// A little-endian unsigned integer of 1 to 8 bytes (an offset or a
    /// symbol ID from a table).
    fn read_offset(&self, bytes: &[u8]) -> u64 {
        let mut le = [0u8; 8];
        le[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(le)
    }

    /// A file offset from a table, checked to lie inside the body.
    fn offset_at(&self, table: &Table, i: usize) -> Result<usize, TsdbError> {
        let raw = self.read_offset(self.entry(table, self.offset_width, i));
        usize::try_from(raw)
            .ok()
            .filter(|&at| at >= 5 && at < self.data.len())
            .ok_or_else(|| self.bad("offset out of bounds"))
    }

    fn decbuf_at(&self, at: usize) -> Decbuf<'_> {
        let mut d = Decbuf::new(&self.data[..self.data.len() - 4]);
        d.pos = at;
        d
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.series_count
    }

    pub fn is_empty(&self) -> bool {
        self.series_count == 0
    }

    /// Symbol `id` (a label name or value).
    fn symbol(&self, id: u64) -> Result<&str, TsdbError> {
        let i = usize::try_from(id)
            .ok()
            .filter(|&i| i < self.symbol_count)
            .ok_or_else(|| self.bad("symbol reference"))?;
        let at = self.offset_at(&self.symbols, i)?;
        self.decbuf_at(at).str().ok_or_else(|| self.bad("symbol"))
    }

    /// The ID of symbol `s`, if the block has it (symbols are sorted, so a
    /// binary search over the offset table).
    fn symbol_id(&self, s: &str) -> Result<Option<u32>, TsdbError> {
        let (mut low, mut high) = (0usize, self.symbol_count);
        while low < high {
            let mid = low + (high - low) / 2;
            match self.symbol(mid as u64)?.cmp(s) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(Some(mid as u32)),
            }
        }
        Ok(None)
    }

    /// Labels and chunk references of the series at `position`.
    pub fn series(&self, position: u32) -> Result<IndexSeries, TsdbError> {
        let (mut d, previous_ref) = self.series_decbuf(position)?;
        let labels = self.decode_labels(&mut d)?;
        let chunks = self.decode_chunks(&mut d, previous_ref)?;
        Ok(IndexSeries { labels, chunks })
    }

    /// Labels of the series at `position`.
    pub fn labels(&self, position: u32) -> Result<Labels, TsdbError> {
        let (mut d, _) = self.series_decbuf(position)?;
        self.decode_labels(&mut d)
    }

    /// Where the series at `position` starts, and (version 4) the chunk
    /// reference its first chunk's is a delta from.
    fn series_decbuf(&self, position: u32) -> Result<(Decbuf<'_>, u64), TsdbError> {
        let i = position as usize;
        if i >= self.series_count {
            return Err(self.bad("series position out of range"));
        }
        let mut d = self.decbuf_at(self.offset_at(&self.series, i / self.series_group)?);
        let mut previous_ref = 0;
        for _ in 0..i % self.series_group {
            // A version-4 series entry: its labels, then its chunk metas
            // (whose last reference the next series' first is a delta from).
            let nlabels = d.uvarint().ok_or_else(|| self.bad("label count"))?;
            for _ in 0..nlabels {
                d.uvarint().ok_or_else(|| self.bad("label pair"))?;
            }
            read_chunk_metas_v4(&mut d, self.base_t, self.step, &mut previous_ref, None)
                .ok_or_else(|| self.bad("chunk meta"))?;
        }
        Ok((d, previous_ref))
    }

    fn decode_labels(&self, d: &mut Decbuf<'_>) -> Result<Labels, TsdbError> {
        let nlabels = d.uvarint().ok_or_else(|| self.bad("label count"))?;
        let mut labels = Vec::with_capacity(nlabels.min(64) as usize);
        for _ in 0..nlabels {
            let (name, value) = if self.version >= 4 {
                let pair = d.uvarint().ok_or_else(|| self.bad("label pair"))?;
                let pair = usize::try_from(pair)
                    .ok()
                    .filter(|&p| p < self.postings_count)
                    .ok_or_else(|| self.bad("label pair reference"))?;
                let (name, value, _) = self.postings_entry(pair);
                (
                    self.symbol(u64::from(name))?,
                    self.symbol(u64::from(value))?,
                )
            } else {
                let name = self.symbol(d.uvarint().ok_or_else(|| self.bad("label name"))?)?;
                let value = self.symbol(d.uvarint().ok_or_else(|| self.bad("label value"))?)?;
                (name, value)
            };
            // A damaged index behind a valid CRC must not hand the engine
            // an unsorted or empty-valued label set: `from_sorted` trusts it.
            if value.is_empty()
                || labels
                    .last()
                    .is_some_and(|l: &Label| l.name.as_str() >= name)
            {
                return Err(self.bad("series labels not sorted, unique and non-empty"));
            }
            labels.push(Label::new(name, value));
        }
        Ok(Labels::from_sorted(labels))
    }

    fn decode_chunks(
        &self,
        d: &mut Decbuf<'_>,
        mut previous_ref: u64,
    ) -> Result<Vec<ChunkMeta>, TsdbError> {
        if self.version >= 4 {
            let mut chunks = Vec::new();
            read_chunk_metas_v4(
                d,
                self.base_t,
                self.step,
                &mut previous_ref,
                Some(&mut chunks),
            )
            .ok_or_else(|| self.bad("chunk meta"))?;
            return Ok(chunks);
        }
        let nchunks = d.uvarint().ok_or_else(|| self.bad("chunk count"))?;
        let mut chunks = Vec::with_capacity(nchunks.min(1024) as usize);
        let mut previous_max: Option<i64> = None;
        for _ in 0..nchunks {
            let delta = d.varint().ok_or_else(|| self.bad("chunk min_t"))?;
            let min_t = previous_max.unwrap_or(self.base_t).wrapping_add(delta);
            let span = d.uvarint().ok_or_else(|| self.bad("chunk span"))?;
            let max_t = min_t.wrapping_add(span as i64);
            let samples = d.uvarint().ok_or_else(|| self.bad("chunk samples"))?;
            let segment = d.uvarint().ok_or_else(|| self.bad("chunk segment"))?;
            let offset = d.uvarint().ok_or_else(|| self.bad("chunk offset"))?;
            chunks.push(ChunkMeta {
                min_t,
                max_t,
                samples,
                segment,
                offset,
            });
            previous_max = Some(max_t);
        }
        Ok(chunks)
    }

    /// The position of the series with exactly `labels` (series are sorted
    /// by labels: a binary search decoding O(log n) label sets).
    pub fn find(&self, labels: &Labels) -> Result<Option<u32>, TsdbError> {
        let (mut low, mut high) = (0u32, self.series_count as u32);
        while low < high {
            let mid = low + (high - low) / 2;
            match self.labels(mid)?.cmp(labels) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(Some(mid)),
            }
        }
        Ok(None)
    }

    /// (name symbol, value symbol, offset of the list) of postings entry `i`.
    fn postings_entry(&self, i: usize) -> (u32, u32, u64) {
        let w = self.symbol_width;
        let e = self.entry(&self.postings, 2 * w + self.offset_width, i);
        (
            self.read_offset(&e[..w]) as u32,
            self.read_offset(&e[w..2 * w]) as u32,
            self.read_offset(&e[2 * w..]),
        )
    }

    /// First postings entry whose (name, value) is not below `key`
    /// (entries are sorted by symbol IDs, which sort as the strings do).
    fn postings_lower_bound(&self, key: (u32, u32)) -> usize {
        let (mut low, mut high) = (0usize, self.postings_count);
        while low < high {
            let mid = low + (high - low) / 2;
            let (name, value, _) = self.postings_entry(mid);
            if (name, value) < key {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }

    /// Postings entries of label `name`: their index range.
    fn name_range(&self, name: &str) -> Result<std::ops::Range<usize>, TsdbError> {
        let Some(id) = self.symbol_id(name)? else {
            return Ok(0..0);
        };
        let start = self.postings_lower_bound((id, 0));
        let end = match id.checked_add(1) {
            Some(next) => self.postings_lower_bound((next, 0)),
            None => self.postings_count,
        };
        Ok(start..end)
    }

    /// The series positions of postings entry `i`, ascending.
    fn postings_list(&self, i: usize) -> Result<Vec<u64>, TsdbError> {
        let (_, _, offset) = self.postings_entry(i);
        let at = usize::try_from(offset)
            .ok()
            .filter(|&at| at >= 5 && at < self.data.len())
            .ok_or_else(|| self.bad("postings offset out of bounds"))?;
        let mut d = self.decbuf_at(at);
        let n = d.uvarint().ok_or_else(|| self.bad("postings length"))?;
        if self.version >= 4 && n & 1 == 1 {
            return self.postings_runs(&mut d, n >> 1);
        }
        let n = if self.version >= 4 { n >> 1 } else { n };
        let mut ids = Vec::with_capacity(n.min(self.series_count as u64) as usize);
        let mut previous = 0u64;
        for i in 0..n {
            let raw = d.uvarint().ok_or_else(|| self.bad("posting"))?;
            let id = if i == 0 {
                raw
            } else {
                previous
                    .checked_add(raw)
                    .ok_or_else(|| self.bad("posting"))?
            };
            if id >= self.series_count as u64 || (i > 0 && id <= previous) {
                return Err(self.bad("posting out of range"));
            }
            ids.push(id);
            previous = id;
        }
        Ok(ids)
    }

    /// A version-4 postings list of `runs` runs (see [`put_postings_v4`]).
    fn postings_runs(&self, d: &mut Decbuf<'_>, runs: u64) -> Result<Vec<u64>, TsdbError> {
        let mut ids = Vec::new();
        let mut next = 0u64;
        for _ in 0..runs {
            let gap = d.uvarint().ok_or_else(|| self.bad("posting run"))?;
            let len = d.uvarint().ok_or_else(|| self.bad("posting run"))?;
            let start = next.checked_add(gap);
            let end = start.and_then(|s| s.checked_add(len));
            let (Some(start), Some(end)) = (start, end) else {
                return Err(self.bad("posting out of range"));
            };
            // Runs ascend and stay below the series count, so the list
            // holds at most that many positions.
            if end >= self.series_count as u64 {
                return Err(self.bad("posting out of range"));
            }
            ids.extend(start..=end);
            next = end + 1;
        }
        Ok(ids)
    }

    /// Positions of the series with label `name` = `value`, ascending.
    pub fn postings(&self, name: &str, value: &str) -> Result<Vec<u64>, TsdbError> {
        let (Some(name), Some(value)) = (self.symbol_id(name)?, self.symbol_id(value)?) else {
            return Ok(Vec::new());
        };
        let i = self.postings_lower_bound((name, value));
        if i < self.postings_count {
            let (n, v, _) = self.postings_entry(i);
            if (n, v) == (name, value) {
                return self.postings_list(i);
            }
        }
        Ok(Vec::new())
    }

    /// Label names carried by at least one series, sorted.
    pub fn label_names(&self) -> Result<Vec<String>, TsdbError> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.postings_count {
            let (name, _, _) = self.postings_entry(i);
            out.push(self.symbol(u64::from(name))?.to_string());
            i = match name.checked_add(1) {
                Some(next) => self.postings_lower_bound((next, 0)),
                None => self.postings_count,
            };
        }
        Ok(out)
    }

    /// Values of label `name` across the block's series, sorted.
    pub fn label_values(&self, name: &str) -> Result<Vec<String>, TsdbError> {
        self.name_range(name)?
            .map(|i| {
                let (_, value, _) = self.postings_entry(i);
                self.symbol(u64::from(value)).map(str::to_string)
            })
            .collect()
    }

    /// Union of the postings of the values of `name` that `accept` takes.
    fn matching_values(
        &self,
        name: &str,
        accept: impl Fn(&str) -> bool,
    ) -> Result<Vec<u64>, TsdbError> {
        let mut lists = Vec::new();
        for i in self.name_range(name)? {
            let (_, value, _) = self.postings_entry(i);
            if accept(self.symbol(u64::from(value))?) {
                lists.push(self.postings_list(i)?);
            }
        }
        let slices: Vec<&[u64]> = lists.iter().map(Vec::as_slice).collect();
        Ok(union_all(&slices))
    }

    /// Positions of the series matching every matcher, ascending, from the
    /// postings alone (Prometheus's `PostingsForMatchers`, as the head's
    /// `Postings::select`): a matcher that does not accept the empty value
    /// intersects the union of its values' postings; one that does (it also
    /// selects series lacking the label) subtracts the postings of the
    /// values it rejects. No matchers select every series.
    pub fn select(&self, matchers: &[Matcher]) -> Result<Vec<u32>, TsdbError> {
        let mut result: Option<Vec<u64>> = None;
        let mut to_subtract: Vec<Vec<u64>> = Vec::new();
        for m in matchers {
            if m.matches_empty() {
                let rejected = match m.op {
                    MatchOp::Equal => self.matching_values(&m.name, |_| true)?,
                    MatchOp::NotEqual => self.postings(&m.name, &m.value)?,
                    MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                        self.matching_values(&m.name, |v| !m.matches(v))?
                    }
                };
                to_subtract.push(rejected);
            } else {
                let selected = match (m.op, m.set_values()) {
                    (MatchOp::Equal, _) => self.postings(&m.name, &m.value)?,
                    // `a=~"x|y"`: the listed values' postings, looked up.
                    (_, Some(values)) => {
                        let lists = values
                            .iter()
                            .map(|v| self.postings(&m.name, v))
                            .collect::<Result<Vec<_>, _>>()?;
                        let slices: Vec<&[u64]> = lists.iter().map(Vec::as_slice).collect();
                        union_all(&slices)
                    }
                    _ => self.matching_values(&m.name, |v| m.matches(v))?,
                };
                result = Some(match result {
                    None => selected,
                    Some(previous) => intersect(&previous, &selected),
                });
            }
            if result.as_ref().is_some_and(Vec::is_empty) {
                return Ok(Vec::new());
            }
        }
        let mut selected = result.unwrap_or_else(|| (0..self.series_count as u64).collect());
        for rejected in &to_subtract {
            selected = subtract(&selected, rejected);
        }
        Ok(selected.into_iter().map(|p| p as u32).collect())
    }
}

/// Byte counts of a version-2 index file's sections (for the storage
/// breakdown test); `None` for other versions or malformed files.
#[cfg(test)]
pub(crate) fn sections(bytes: &[u8]) -> Option<Vec<(&'static str, usize)>> {
    let version = *bytes.get(4)?;
    if bytes.len() < 5 + TOC_LEN + 4 || !(2..=4).contains(&version) {
        return None;
    }
    let mut d = Decbuf::new(&bytes[..bytes.len() - 4]);
    d.pos = 5;
    let mut out = Vec::new();
    if version == 4 {
        d.u8()?;
    }
    if version >= 3 {
        d.varint()?;
    }
    if version >= 4 {
        d.uvarint()?;
    }
    out.push(("header", d.pos));
    let symbols_start = d.pos;
    let n = d.uvarint()?;
    for _ in 0..n {
        d.str()?;
    }
    out.push(("symbol table", d.pos - symbols_start));
    let start = d.pos;
    let n = d.uvarint()?;
    let mut metas = 0;
    for _ in 0..n {
        let nl = d.uvarint()?;
        for _ in 0..if version >= 4 { nl } else { 2 * nl } {
            d.uvarint()?;
        }
        let before = d.pos;
        if version >= 4 {
            read_chunk_metas_v4(&mut d, 0, 0, &mut 0, None)?;
        } else {
            let nc = d.uvarint()?;
            for _ in 0..nc * 5 {
                d.uvarint()?;
            }
        }
        metas += d.pos - before;
    }
    out.push(("series labels", d.pos - start - metas));
    out.push(("series chunk metas", metas));
    let start = d.pos;
    let n = d.uvarint()?;
    for _ in 0..n {
        if version < 4 {
            d.uvarint()?;
            d.uvarint()?;
        }
        let k = d.uvarint()?;
        let k = match version {
            4.. if k & 1 == 1 => 2 * (k >> 1),
            4.. => k >> 1,
            _ => k,
        };
        for _ in 0..k {
            d.uvarint()?;
        }
    }
    out.push(("postings", d.pos - start));
    out.push(("offset tables", bytes.len() - 4 - TOC_LEN - d.pos));
    out.push(("toc and crc", TOC_LEN + 4));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(min_t: i64, offset: u64) -> ChunkMeta {
        ChunkMeta {
            min_t,
            max_t: min_t + 10,
            samples: 3,
            segment: 1,
            offset,
        }
    }

    /// The version-1 encoding (blocks written before version 2).
    fn encode_v1(series: &[IndexSeries]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_body(series, &mut out, 1);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    fn sample_series() -> Vec<IndexSeries> {
        let mut series: Vec<IndexSeries> = [
            vec![("__name__", "a"), ("job", "x")],
            vec![("__name__", "b"), ("job", "x")],
            vec![("__name__", "b"), ("job", "y"), ("zone", "eu")],
            vec![("__name__", "c")],
        ]
        .iter()
        .enumerate()
        .map(|(i, pairs)| IndexSeries {
            labels: Labels::from_pairs(pairs),
            chunks: vec![chunk(-5 + i as i64, 8), chunk(100, 40 + i as u64)],
        })
        .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        series
    }

    fn open_bytes(bytes: &[u8]) -> Result<IndexReader, TsdbError> {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("index");
        std::fs::write(&path, bytes).unwrap();
        IndexReader::open(&path, true)
    }

    fn m(op: MatchOp, name: &str, value: &str) -> Matcher {
        Matcher::new(op, name, value).unwrap()
    }

    /// Every query the reader answers, checked against the matchers
    /// applied to each series' labels, for both versions.
    #[test]
    fn both_versions_read_back_and_select_like_a_full_scan() {
        let series = sample_series();
        let v4 = encode(&series);
        assert_eq!(v4[4], 4);
        for bytes in [
            v4,
            encode_version(&series, 3),
            encode_version(&series, 2),
            encode_v1(&series),
        ] {
            let index = open_bytes(&bytes).unwrap();
            assert_eq!(index.len(), series.len());
            for (i, s) in series.iter().enumerate() {
                assert_eq!(&index.series(i as u32).unwrap(), s);
                assert_eq!(index.find(&s.labels).unwrap(), Some(i as u32));
            }
            assert_eq!(
                index
                    .find(&Labels::from_pairs(&[("__name__", "bb")]))
                    .unwrap(),
                None
            );
            assert_eq!(index.label_names().unwrap(), ["__name__", "job", "zone"]);
            assert_eq!(index.label_values("__name__").unwrap(), ["a", "b", "c"]);
            assert_eq!(index.label_values("zone").unwrap(), ["eu"]);
            assert!(index.label_values("nope").unwrap().is_empty());
            assert!(index.postings("job", "z").unwrap().is_empty());
            assert!(index.postings("eu", "job").unwrap().is_empty());
            let cases = vec![
                vec![],
                vec![Matcher::equal("job", "x")],
                vec![Matcher::equal("job", "x"), Matcher::equal("__name__", "b")],
                vec![m(MatchOp::NotEqual, "__name__", "a")],
                vec![Matcher::equal("nope", "")],
                vec![Matcher::equal("job", "")],
                vec![Matcher::equal("job", "nope")],
                vec![m(MatchOp::RegexMatch, "__name__", "a|c")],
                vec![m(MatchOp::RegexMatch, "__name__", "c|b|nope|b")],
                vec![
                    m(MatchOp::RegexMatch, "job", "x|y"),
                    m(MatchOp::RegexMatch, "zone", "e.+"),
                ],
                vec![m(MatchOp::RegexMatch, "job", ".*")],
                vec![m(MatchOp::RegexMatch, "job", ".+")],
                vec![m(MatchOp::RegexNoMatch, "job", "x")],
                vec![m(MatchOp::RegexNoMatch, "job", ".*")],
                vec![m(MatchOp::RegexMatch, "zone", "e.|")],
                vec![
                    m(MatchOp::RegexMatch, "__name__", ".+"),
                    m(MatchOp::NotEqual, "job", "y"),
                    m(MatchOp::RegexNoMatch, "zone", "eu"),
                ],
            ];
            for matchers in cases {
                let expected: Vec<u32> = (0..series.len() as u32)
                    .filter(|&i| {
                        let labels = &series[i as usize].labels;
                        matchers
                            .iter()
                            .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
                    })
                    .collect();
                assert_eq!(index.select(&matchers).unwrap(), expected, "{matchers:?}");
            }
        }
    }

    #[test]
    fn an_empty_index_selects_nothing() {
        let index = open_bytes(&encode(&[])).unwrap();
        assert!(index.is_empty());
        assert!(index.select(&[]).unwrap().is_empty());
        assert!(index.select(&[Matcher::equal("a", "")]).unwrap().is_empty());
        assert!(index.label_names().unwrap().is_empty());
        assert_eq!(index.find(&Labels::empty()).unwrap(), None);
        assert!(index.series(0).is_err());
    }

    #[test]
    fn damage_is_reported_not_read() {
        let bytes = encode(&sample_series());
        for at in [0, 4, 7, bytes.len() - 30, bytes.len() - 2] {
            let mut broken = bytes.clone();
            broken[at] ^= 1;
            assert!(open_bytes(&broken).is_err(), "byte {at}");
        }
        assert!(open_bytes(&bytes[..bytes.len() - 1]).is_err());
        // A table of contents pointing outside the file, with a valid CRC.
        let mut lying = bytes[..bytes.len() - 4].to_vec();
        let toc = lying.len() - TOC_LEN;
        lying[toc + 8..toc + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        let crc = crc32fast::hash(&lying);
        lying.extend_from_slice(&crc.to_le_bytes());
        assert!(open_bytes(&lying).is_err());
    }

    /// Version 3 is smaller than version 2 (32-bit offsets, min_t from a
    /// base) and version 4 than 3, and any damage behind a valid CRC is an
    /// error, never a panic.
    #[test]
    fn newer_versions_are_smaller_and_survive_damage() {
        let series = sample_series();
        let (v4, v3, v2) = (
            encode(&series),
            encode_version(&series, 3),
            encode_version(&series, 2),
        );
        assert!(v3.len() < v2.len(), "{} vs {}", v3.len(), v2.len());
        assert!(v4.len() < v3.len(), "{} vs {}", v4.len(), v3.len());
        // More series: several groups of 4, postings as runs (`job`) and
        // gaps, chunk references as deltas.
        let mut many: Vec<IndexSeries> = (0..23u64)
            .map(|i| IndexSeries {
                labels: Labels::from_pairs(&[
                    ("__name__", &format!("m{}", i % 3)),
                    ("job", "x"),
                    ("i", &format!("{i}")),
                ]),
                chunks: vec![chunk(i as i64, 100 * i), chunk(50, 100 * i + 40)],
            })
            .collect();
        many.sort_by(|a, b| a.labels.cmp(&b.labels));
        let many_v4 = encode(&many);
        assert_eq!(many_v4[4], 4);
        let mut draw = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..1800 {
            let v = match round % 3 {
                0 => &v4,
                1 => &v3,
                _ => &many_v4,
            };
            let mut broken = v[..v.len() - 4].to_vec();
            for _ in 0..1 + round % 3 {
                draw ^= draw << 13;
                draw ^= draw >> 7;
                draw ^= draw << 17;
                let at = (draw >> 8) as usize % broken.len();
                broken[at] ^= (draw as u8) | 1;
            }
            let crc = crc32fast::hash(&broken);
            broken.extend_from_slice(&crc.to_le_bytes());
            let Ok(index) = open_bytes(&broken) else {
                continue;
            };
            for position in 0..index.len() as u32 {
                let _ = index.series(position);
            }
            let _ = index.label_names();
            let _ = index.postings("job", "x");
            let _ = index.label_values("__name__");
        }
    }

    /// Version 4's chunk metas: spans off the common step either way, one
    /// sample, extreme times, later segments; a reference version 4 cannot
    /// hold falls back to version 3. Narrower tables make it smaller.
    #[test]
    fn version_4_chunk_metas_round_trip_and_fall_back() {
        let meta = |min_t: i64, max_t: i64, samples: u64, segment: u64, offset: u64| ChunkMeta {
            min_t,
            max_t,
            samples,
            segment,
            offset,
        };
        let mut series = sample_series();
        series[0].chunks = vec![
            meta(-5, 20_000, 3, 1, 8),
            meta(20_001, 20_001, 1, 1, 9),
            meta(30_000, 29_999 + 15_000 * 9, 10, 2, (1 << SEGMENT_SHIFT) - 1),
            meta(i64::MAX - 5, i64::MAX, 0, 1 << 30, 0),
        ];
        series[1].chunks = vec![meta(i64::MIN, i64::MIN + 1, 1 << 40, 3, 7)];
        for s in &mut series[2..] {
            s.chunks = vec![meta(0, 15_000 * 99, 100, 1, 100)];
        }
        let v4 = encode(&series);
        assert_eq!(v4[4], 4);
        let index = open_bytes(&v4).unwrap();
        assert_eq!(index.step, 15_000);
        for (i, s) in series.iter().enumerate() {
            assert_eq!(&index.series(i as u32).unwrap(), s);
        }
        assert!(v4.len() < encode_version(&series, 3).len());
        for (segment, offset, samples) in [
            (0, 1, 2),
            (1, 1 << SEGMENT_SHIFT, 2),
            (1 << 40, 0, 2),
            (1, 0, u64::MAX),
        ] {
            series[3].chunks = vec![meta(0, 10, samples, segment, offset)];
            let bytes = encode(&series);
            assert_eq!(bytes[4], 3, "segment {segment}, offset {offset}");
            assert_eq!(open_bytes(&bytes).unwrap().series(3).unwrap(), series[3]);
        }
    }

    /// Many series with many values: lookups through the binary searches
    /// agree with a scan.
    #[test]
    fn many_series_look_up_through_the_offset_tables() {
        let mut series: Vec<IndexSeries> = (0..2000)
            .map(|i| IndexSeries {
                labels: Labels::from_pairs(&[
                    ("__name__", &format!("m{}", i % 7)),
                    ("env", if i % 5 == 0 { "test" } else { "prod" }),
                    ("instance", &format!("host-{i:05}")),
                    ("job", "node"),
                    ("mod", &format!("{}", i % 13)),
                ]),
                chunks: vec![chunk(i, i as u64 * 3)],
            })
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        let index = open_bytes(&encode(&series)).unwrap();
        let got = index
            .select(&[
                Matcher::equal("__name__", "m3"),
                m(MatchOp::RegexMatch, "mod", "1|2"),
            ])
            .unwrap();
        let expected: Vec<u32> = (0..series.len() as u32)
            .filter(|&i| {
                let l = &series[i as usize].labels;
                l.get("__name__") == Some("m3") && matches!(l.get("mod"), Some("1" | "2"))
            })
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(got, expected);
        for i in [0u32, 1, 2, 3, 4, 999, 1998, 1999] {
            assert_eq!(index.find(&series[i as usize].labels).unwrap(), Some(i));
            assert_eq!(index.series(i).unwrap(), series[i as usize]);
        }
        // Runs (`job` holds every series, `env` long stretches) and gaps
        // read back alike.
        for (name, value) in [
            ("job", "node"),
            ("env", "prod"),
            ("env", "test"),
            ("mod", "3"),
        ] {
            let want: Vec<u64> = (0..series.len() as u64)
                .filter(|&i| series[i as usize].labels.get(name) == Some(value))
                .collect();
            assert_eq!(index.postings(name, value).unwrap(), want, "{name}={value}");
        }
        assert!(index.series(2000).is_err());
        assert_eq!(index.label_values("mod").unwrap().len(), 13);
    }
}
