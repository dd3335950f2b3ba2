//! The dense chunk (block chunk encoding 2): how blocks store samples at
//! rest. The head keeps XOR chunks; the block writer re-chunks a series'
//! samples into dense chunks of up to [`MAX_CHUNK_SAMPLES`].
//!
//! Timestamps, and values turned into decimal integers with one common
//! scale per chunk (`v = m / 10^k`, exact to the bit or the value is a
//! patched exception), are each written as an integer column: delta or
//! delta-of-delta (whichever is smallest), minus the column's minimum,
//! divided by the common divisor of what is left, bit-packed at the width
//! that minimises size with the few wider values patched in afterwards
//! (PFOR), or entropy-coded ([`super::entropy`]: rANS over magnitude
//! classes, for mostly-zero columns; or exact rANS over `max + 1` equally
//! likely values, for uniform ranges that packing rounds up to whole bits)
//! when that is smaller; a column whose values after the heads are all
//! one value writes just that value. The body
//! is zstd-compressed when that saves at least 1/16.
//! VictoriaMetrics gets its density the same way (decimal mantissas,
//! "nearest delta" / "delta2", zstd: `lib/encoding`, `lib/decimal`); the
//! bit packing is Lemire and Boytsov's patched frame of reference.
//! Byte layout: `docs/format.md`, "Dense chunks".

use std::fmt;

use super::entropy::Model;
use crate::block::{put_uvarint, put_varint};

/// Most samples the writer puts in one dense chunk: a day of 15 s scrapes
/// (5,760) is one chunk of a 24h block, so its column headers and tables
/// are paid once a day (4,096 before: two chunks a day).
pub const MAX_CHUNK_SAMPLES: usize = 8192;
/// Most samples a reader accepts in one chunk (bounds decoding memory).
const MAX_DECODE_SAMPLES: u64 = 1 << 16;
/// Most body bytes a reader decompresses.
const MAX_BODY_LEN: u64 = 16 << 20;
/// Flag of a zstd-compressed body.
pub const FLAG_ZSTD: u8 = 1;
/// Flag of a chunk whose timestamps are evenly spaced from its `min_t` to
/// its `max_t` (the chunk's time range, which every reader has beside the
/// bytes: the block index's chunk meta, the head's chunk): the body has no
/// timestamp column. Written by the block writer only; readers before it
/// refuse the chunk (unknown flags).
const FLAG_IMPLIED_TIMESTAMPS: u8 = 2;
/// Flag of a chunk without exceptions: the body has no exception count.
/// Readers before it refuse the chunk (unknown flags).
const FLAG_NO_EXCEPTIONS: u8 = 4;
/// The flags' high 5 bits: the decimal scale plus 1, in place of the
/// body's scale byte (0: the body has it, as chunks written before).
const SCALE_SHIFT: u32 = 3;
/// zstd level: 3 is zstd's default; higher levels gain nothing on
/// bit-packed columns.
const ZSTD_LEVEL: i32 = 3;
/// Bodies shorter than this are not worth compressing (VictoriaMetrics
/// uses the same 128-byte floor).
const MIN_COMPRESSIBLE: usize = 128;
/// Bytes of zeros after a body so unpacking may read 16 bytes at any bit.
const PADDING: usize = 16;
/// Largest decimal scale: 10^22 is the largest power of ten an f64 holds exactly.
const MAX_SCALE: usize = 22;
/// Mantissas stay within ±2^53 so they convert to f64 exactly.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;
/// A chunk with more value exceptions than 1 in this many is left to XOR.
const MAX_EXCEPTION_RATIO: usize = 8;
/// Column mode bit: the values after the heads are entropy-coded
/// ([`super::entropy`]) instead of bit-packed. Readers before it refuse
/// the column (its mode byte is above 2).
const MODE_ENTROPY: u8 = 4;
/// Column mode bit: the values after the heads are coded as equally likely
/// values `0 ..= max` ([`super::entropy::uniform`]). Readers before it
/// refuse the column (its mode byte is above 6).
const MODE_UNIFORM: u8 = 8;
/// Column mode bit: every value after the heads equals `base` (only the
/// base is written: regular timestamps, constant gauges). Readers before
/// it refuse the column (its mode byte is above 10).
const MODE_CONSTANT: u8 = 16;
/// Column mode bit: uniform-coded like [`MODE_UNIFORM`], with the coders'
/// last values in their initial states and final states of 5 to 8 bytes
/// ([`super::entropy::uniform::put`]); what the writer uses for uniform
/// columns since. Readers before it refuse the column (its mode byte is
/// above 18).
const MODE_UNIFORM_COMPACT: u8 = 32;
/// The mode bits above the order (at most one is set).
const MODE_BITS: u8 = MODE_ENTROPY | MODE_UNIFORM | MODE_CONSTANT | MODE_UNIFORM_COMPACT;
/// Column mode bit: the divisor is 1 and not written. Readers before it
/// refuse the column (its mode byte is above 34).
const MODE_UNIT_DIVISOR: u8 = 64;
/// Column mode bit: the base is 0 and not written. Readers before it
/// refuse the column.
const MODE_ZERO_BASE: u8 = 128;
/// Every bit of a mode byte above the order.
const MODE_ALL: u8 = MODE_BITS | MODE_UNIT_DIVISOR | MODE_ZERO_BASE;

const POW10: [f64; MAX_SCALE + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Why a dense chunk did not decode (only malformed bytes do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub(super) &'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed dense chunk: {}", self.0)
    }
}

/// The value a decoder computes from mantissa `m` at scale `k`. The
/// encoder checks every value against exactly this, so decoding is exact.
#[inline]
fn from_decimal(m: i64, k: usize) -> f64 {
    m as f64 / POW10[k]
}

/// The smallest scale `k` and mantissa `m` with `from_decimal(m, k)` equal
/// to `v` bit for bit; `None` for NaN, infinities, -0.0 and values that
/// need more than 53 bits of decimal mantissa.
fn to_decimal(v: f64) -> Option<(i64, usize)> {
    let bits = v.to_bits();
    for (k, pow) in POW10.iter().enumerate() {
        let scaled = v * pow;
        // NaN and infinities fail here too.
        if scaled.is_nan() || scaled.abs() > MAX_EXACT {
            return None;
        }
        let m = scaled.round() as i64;
        if from_decimal(m, k).to_bits() == bits {
            return Some((m, k));
        }
    }
    None
}

/// Encodes samples (any i64 timestamps, any floats) as a dense chunk.
/// `None` when too many values have no exact decimal form for the dense
/// encoding to pay (the caller writes XOR). Panics on an empty input or
/// more than `u16::MAX` samples.
///
/// Evenly spaced timestamps are left out of the bytes
/// ([`FLAG_IMPLIED_TIMESTAMPS`]): the chunk must be decoded with its time
/// range, `ts[0]` and `ts[n - 1]` (what the block writer puts in the index).
pub fn encode(ts: &[i64], vs: &[f64]) -> Option<Vec<u8>> {
    encode_with(ts, vs, true, true)
}

/// Whether `ts` is `ts[0] + i * step` for one step of at least 1 (a
/// single timestamp is), so [`timestamps_between`] gives it back from its
/// ends.
fn evenly_spaced(ts: &[i64]) -> bool {
    let n = ts.len();
    if n == 1 {
        return true;
    }
    let step = i128::from(ts[1]) - i128::from(ts[0]);
    step >= 1
        && ts
            .iter()
            .enumerate()
            .all(|(i, &t)| i128::from(t) == i128::from(ts[0]) + i as i128 * step)
}

/// `n` timestamps evenly spaced from `min_t` to `max_t` (inclusive) into
/// `out`; an error unless the range splits into `n - 1` whole steps of at
/// least 1 (or `n` is 1 and the range one instant).
fn timestamps_between(
    n: usize,
    min_t: i64,
    max_t: i64,
    out: &mut Vec<i64>,
) -> Result<(), DecodeError> {
    let span = i128::from(max_t) - i128::from(min_t);
    let steps = n as i128 - 1;
    let fits = if steps == 0 {
        span == 0
    } else {
        span >= steps && span % steps == 0
    };
    if !fits {
        return Err(DecodeError("timestamps do not fit the chunk's time range"));
    }
    // The step may not fit an i64 (two samples at i64::MIN and MAX), but
    // every timestamp lies in [min_t, max_t]: wrapping arithmetic gives it
    // exactly.
    let step = if steps == 0 { 0 } else { (span / steps) as i64 };
    out.clear();
    out.extend((0..n as i64).map(|i| min_t.wrapping_add(i.wrapping_mul(step))));
    Ok(())
}

/// Whether a dense chunk with time range `[min_t, max_t]` has a sample in
/// `[start, end]`, answered from its header when its timestamps are implied
/// by that range (regular spacing; no value is decoded); `None` when the
/// timestamps are coded or the body is compressed (decode it to know).
pub fn implied_sample_in(
    chunk: &[u8],
    min_t: i64,
    max_t: i64,
    start: i64,
    end: i64,
) -> Option<bool> {
    let (&flags, body) = chunk.split_first()?;
    if flags & FLAG_IMPLIED_TIMESTAMPS == 0 || flags & FLAG_ZSTD != 0 {
        return None;
    }
    let n = Reader::new(body).uvarint().ok()?;
    if n == 0 || n > MAX_DECODE_SAMPLES {
        return None;
    }
    let mut ts = Vec::new();
    timestamps_between(n as usize, min_t, max_t, &mut ts).ok()?;
    // Sorted: the first timestamp at or after `start` decides.
    let first = ts.partition_point(|&t| t < start);
    Some(ts.get(first).is_some_and(|&t| t <= end))
}

/// [`encode`] for short chunks kept in memory: bit-packed columns only. On
/// a chunk of ~120 samples zstd is rarely smaller, and building the
/// entropy coders' models cost about a sixth of the ingest CPU at 100k
/// series for no measurable RSS (A/B in BENCHMARKS.md, "head chunks");
/// blocks are written with [`encode`].
pub fn encode_small(ts: &[i64], vs: &[f64]) -> Option<Vec<u8>> {
    encode_with(ts, vs, false, false)
}

/// [`encode`], with entropy-coded columns, zstd and implied timestamps
/// allowed or not (`blocks`).
fn encode_with(ts: &[i64], vs: &[f64], entropy: bool, blocks: bool) -> Option<Vec<u8>> {
    let zstd = blocks;
    assert!(!ts.is_empty() && ts.len() == vs.len() && ts.len() as u64 <= MAX_DECODE_SAMPLES);
    let n = ts.len();
    let decimals: Vec<Option<(i64, usize)>> = vs.iter().map(|&v| to_decimal(v)).collect();
    let scale = decimals.iter().flatten().map(|d| d.1).max().unwrap_or(0);
    let mut mantissas = Vec::with_capacity(n);
    let mut exceptions: Vec<(usize, u64)> = Vec::new();
    let mut previous = 0i64;
    let mut first_exact: Option<usize> = None;
    for (i, (decimal, &v)) in decimals.iter().zip(vs).enumerate() {
        let common = decimal.and_then(|(m, k)| {
            let m = m.checked_mul(10i64.checked_pow((scale - k) as u32)?)?;
            let exact = (m.unsigned_abs() as f64) <= MAX_EXACT
                && from_decimal(m, scale).to_bits() == v.to_bits();
            exact.then_some(m)
        });
        match common {
            Some(m) => {
                previous = m;
                first_exact.get_or_insert(i);
            }
            // The previous mantissa keeps the deltas around it small.
            None => exceptions.push((i, v.to_bits())),
        }
        mantissas.push(previous);
    }
    if exceptions.len() * MAX_EXCEPTION_RATIO > n {
        return None;
    }
    if let Some(first) = first_exact {
        // Leading exceptions take the first exact mantissa, not zero.
        let m = mantissas[first];
        mantissas[..first].fill(m);
    }

    let implied = blocks && evenly_spaced(ts);
    let mut flags = ((scale + 1) << SCALE_SHIFT) as u8;
    if implied {
        flags |= FLAG_IMPLIED_TIMESTAMPS;
    }
    if exceptions.is_empty() {
        flags |= FLAG_NO_EXCEPTIONS;
    }
    // Each column's ways of writing it, worked out once for both bodies.
    let ts_plans = if implied {
        Vec::new()
    } else {
        plans(ts, entropy)
    };
    let mantissa_plans = plans(&mantissas, entropy);
    let write_body = |entropy: bool| {
        let mut body = Vec::with_capacity(16 + n * 2);
        put_uvarint(&mut body, n as u64);
        let mut coded = !implied && put_column(&mut body, &ts_plans, entropy, false);
        // Without exceptions the value column ends the body.
        coded |= put_column(&mut body, &mantissa_plans, entropy, exceptions.is_empty());
        if !exceptions.is_empty() {
            put_uvarint(&mut body, exceptions.len() as u64);
        }
        let mut last = 0usize;
        for &(i, bits) in &exceptions {
            put_uvarint(&mut body, (i - last) as u64);
            body.extend_from_slice(&bits.to_le_bytes());
            last = i;
        }
        (body, coded)
    };
    let (body, coded) = write_body(entropy);
    if !coded {
        return Some(frame(flags, body, zstd));
    }
    // zstd finds repetition (periodic series) in packed columns that it
    // cannot in entropy-coded ones (so it is not tried on those): keep
    // whichever ends up smaller.
    let packed = frame(flags, write_body(false).0, zstd);
    if packed.len() <= body.len() {
        return Some(packed);
    }
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(flags);
    out.extend_from_slice(&body);
    Some(out)
}

/// A body behind its flags byte (`flags` plus [`FLAG_ZSTD`] if
/// compressed), zstd-compressed when that saves enough.
fn frame(flags: u8, body: Vec<u8>, zstd: bool) -> Vec<u8> {
    if zstd && body.len() >= MIN_COMPRESSIBLE {
        if let Ok(compressed) = zstd::bulk::compress(&body, ZSTD_LEVEL) {
            if compressed.len() + 8 < body.len() - body.len() / 16 {
                let mut out = Vec::with_capacity(compressed.len() + 8);
                out.push(flags | FLAG_ZSTD);
                put_uvarint(&mut out, body.len() as u64);
                out.extend_from_slice(&compressed);
                return out;
            }
        }
    }
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(flags);
    out.extend_from_slice(&body);
    out
}

/// Decodes a dense chunk with time range `[min_t, max_t]` (inclusive, as
/// the index or the head has it beside the bytes) into its timestamps and
/// values.
pub fn decode(chunk: &[u8], min_t: i64, max_t: i64) -> Result<(Vec<i64>, Vec<f64>), DecodeError> {
    let mut decoder = Decoder::default();
    decoder.decode(chunk, min_t, max_t)?;
    Ok((decoder.ts, decoder.vs))
}

/// Decodes dense chunks one after another into buffers it keeps (the body,
/// the integer columns, the values) with one zstd context: a query decoding
/// thousands of chunks allocates these once, not per chunk (the per-chunk
/// buffers and zstd contexts were about a quarter of a range query's CPU,
/// mostly page faults on fresh memory).
#[derive(Default)]
pub struct Decoder {
    body: Vec<u8>,
    ts: Vec<i64>,
    mantissas: Vec<i64>,
    vs: Vec<f64>,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("samples", &self.ts.len())
            .finish()
    }
}

impl Decoder {
    /// Timestamps of the last chunk decoded.
    pub fn timestamps(&self) -> &[i64] {
        &self.ts
    }

    /// Values of the last chunk decoded.
    pub fn values(&self) -> &[f64] {
        &self.vs
    }

    /// Decodes `chunk`, whose time range is `[min_t, max_t]`, in place of
    /// the previous one (left empty on error).
    pub fn decode(&mut self, chunk: &[u8], min_t: i64, max_t: i64) -> Result<(), DecodeError> {
        self.ts.clear();
        self.vs.clear();
        let result = self.decode_inner(chunk, min_t, max_t);
        if result.is_err() {
            self.ts.clear();
            self.vs.clear();
        }
        result
    }

    fn decode_inner(&mut self, chunk: &[u8], min_t: i64, max_t: i64) -> Result<(), DecodeError> {
        let (&flags, rest) = chunk.split_first().ok_or(DecodeError("empty"))?;
        let body = &mut self.body;
        body.clear();
        match flags & FLAG_ZSTD {
            0 => body.extend_from_slice(rest),
            _ => {
                let mut r = Reader::new(rest);
                let len = r.uvarint()?;
                if len > MAX_BODY_LEN {
                    return Err(DecodeError("body too long"));
                }
                body.resize(len as usize, 0);
                let zstd = match &mut self.zstd {
                    Some(zstd) => zstd,
                    None => self.zstd.insert(
                        zstd::bulk::Decompressor::new()
                            .map_err(|_| DecodeError("no zstd context"))?,
                    ),
                };
                let n = zstd
                    .decompress_to_buffer(&rest[r.pos..], body.as_mut_slice())
                    .map_err(|_| DecodeError("bad zstd frame"))?;
                if n as u64 != len {
                    return Err(DecodeError("body length mismatch"));
                }
            }
        }
        let len = body.len();
        body.resize(len + PADDING, 0);
        let mut r = Reader::new(&body[..len]);
        r.padded = body;
        let n = r.uvarint()?;
        if n == 0 || n > MAX_DECODE_SAMPLES {
            return Err(DecodeError("bad sample count"));
        }
        let n = n as usize;
        if flags & FLAG_IMPLIED_TIMESTAMPS != 0 {
            timestamps_between(n, min_t, max_t, &mut self.ts)?;
        } else {
            r.column(n, &mut self.ts, false)?;
        }
        let scale = match flags >> SCALE_SHIFT {
            0 => usize::from(r.u8()?),
            scale => usize::from(scale - 1),
        };
        if scale > MAX_SCALE {
            return Err(DecodeError("bad scale"));
        }
        r.column(n, &mut self.mantissas, flags & FLAG_NO_EXCEPTIONS != 0)?;
        let pow = POW10[scale];
        let vs = &mut self.vs;
        vs.extend(self.mantissas.iter().map(|&m| m as f64 / pow));
        let exceptions = if flags & FLAG_NO_EXCEPTIONS != 0 {
            0
        } else {
            r.uvarint()?
        };
        let mut i = 0u64;
        for e in 0..exceptions {
            let gap = r.uvarint()?;
            i = if e == 0 {
                gap
            } else {
                i.checked_add(gap).ok_or(DecodeError("bad exception"))?
            };
            let bits = u64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
            *vs.get_mut(usize::try_from(i).map_err(|_| DecodeError("bad exception"))?)
                .ok_or(DecodeError("exception past the end"))? = f64::from_bits(bits);
        }
        if r.pos != len {
            return Err(DecodeError("trailing bytes"));
        }
        Ok(())
    }
}

/// Appends an integer column (layout in `docs/format.md`), entropy-coded
/// if `entropy` allows and that is smaller; tells whether it was.
fn put_column(out: &mut Vec<u8>, plans: &[Plan], entropy: bool, last: bool) -> bool {
    let bits = |plan: &Plan| {
        let mut bits = plan.bits;
        if entropy {
            if let Some((_, b)) = &plan.model {
                bits = bits.min(*b);
            }
            if let Some((_, b)) = plan.uniform {
                bits = bits.min(b);
            }
        }
        bits
    };
    let plan = plans
        .iter()
        .min_by_key(|&plan| bits(plan))
        .expect("at least order 0");
    let best = bits(plan);
    // Packed wins ties (fastest to decode), then the class model.
    let model = plan
        .model
        .as_ref()
        .filter(|(_, b)| entropy && *b == best && plan.bits > best)
        .map(|(model, _)| model);
    let uniform = plan
        .uniform
        .filter(|&(_, b)| entropy && model.is_none() && b == best && plan.bits > best)
        .map(|(max, _)| max);
    let constant = !plan.rest.is_empty() && plan.rest.iter().all(|&u| u == 0);
    let mode = if model.is_some() {
        MODE_ENTROPY
    } else if uniform.is_some() {
        MODE_UNIFORM_COMPACT
    } else if constant {
        MODE_CONSTANT
    } else {
        0
    };
    let rest = !plan.rest.is_empty();
    let zero_base = rest && plan.base == 0;
    let unit_divisor = rest && !constant && plan.divisor == 1;
    out.push(
        plan.order as u8
            | mode
            | if zero_base { MODE_ZERO_BASE } else { 0 }
            | if unit_divisor { MODE_UNIT_DIVISOR } else { 0 },
    );
    for &head in &plan.heads[..plan.order] {
        put_varint(out, head);
    }
    if !rest {
        return false;
    }
    if !zero_base {
        put_varint(out, plan.base);
    }
    if constant {
        return false;
    }
    if !unit_divisor {
        put_uvarint(out, plan.divisor);
    }
    if let Some(model) = model {
        model.put(out, &plan.rest);
        return true;
    }
    if let Some(max) = uniform {
        super::entropy::uniform::put(out, &plan.rest, max, last);
        return true;
    }
    out.push(plan.width);
    let width = u32::from(plan.width);
    let patches: Vec<(usize, u64)> = if width == 64 {
        Vec::new()
    } else {
        plan.rest
            .iter()
            .enumerate()
            .filter(|(_, &u)| u >> width != 0)
            .map(|(i, &u)| (i, u >> width))
            .collect()
    };
    put_uvarint(out, patches.len() as u64);
    let mut last = 0;
    for &(i, high) in &patches {
        put_uvarint(out, (i - last) as u64);
        put_uvarint(out, high);
        last = i;
    }
    let mask = low_mask(width);
    let mut acc: u128 = 0;
    let mut pending = 0u32;
    for &u in &plan.rest {
        acc |= u128::from(u & mask) << pending;
        pending += width;
        while pending >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            pending -= 8;
        }
    }
    if pending > 0 {
        out.push(acc as u8);
    }
    false
}

fn low_mask(width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

/// The ways to write a column, one per order (0, 1, 2, at most n - 1);
/// entropy-coded ones considered if `entropy`.
fn plans(values: &[i64], entropy: bool) -> Vec<Plan> {
    (0..=2usize.min(values.len() - 1))
        .map(|order| Plan::new(values, order, entropy))
        .collect()
}

/// One way to write a column: the first `order` values of the
/// `order`-times differenced sequence as they are, the rest as
/// `(x - base) / divisor` packed at `width` bits, or entropy-coded with
/// `model` when that is smaller.
struct Plan {
    order: usize,
    /// The first `order` of these.
    heads: [i64; 2],
    base: i64,
    divisor: u64,
    width: u8,
    /// The entropy-coded alternative and its estimated size in bits, when
    /// smaller than packing.
    model: Option<(Model, u64)>,
    rest: Vec<u64>,
    /// The uniform mode's `max` and estimated size in bits, when smaller
    /// than packing.
    uniform: Option<(u64, u64)>,
    /// Estimated size in bits, packed.
    bits: u64,
}

/// How many values have each bit length (0 for 0, 1..=64), counted in
/// four interleaved tables then summed: neighbouring values often have the
/// same length, and one table would make each count wait for the previous
/// increment of the same counter. The tables count in u32 (a column has at
/// most [`MAX_DECODE_SAMPLES`] values): half the memory to zero and sum,
/// on every plan of every chunk cut.
fn length_histogram(values: &[u64]) -> [u64; 65] {
    debug_assert!(values.len() as u64 <= MAX_DECODE_SAMPLES);
    let mut tables = [[0u32; 65]; 4];
    let mut quads = values.chunks_exact(4);
    for quad in &mut quads {
        for (table, u) in tables.iter_mut().zip(quad) {
            table[(64 - u.leading_zeros()) as usize] += 1;
        }
    }
    for u in quads.remainder() {
        tables[0][(64 - u.leading_zeros()) as usize] += 1;
    }
    let mut histogram = [0u64; 65];
    for (len, count) in histogram.iter_mut().enumerate() {
        *count = tables.iter().map(|t| u64::from(t[len])).sum();
    }
    histogram
}

impl Plan {
    fn new(values: &[i64], order: usize, entropy: bool) -> Plan {
        // The `order`-times differenced sequence, differenced in place as
        // the decoder integrates it (wrapping): its first `order` values
        // are the heads (`v0`; `v0`, `v1 - 2 v0`), the rest starts at
        // `order`. Computed straight from `values` into `rest` (as u64
        // bits until `base` is known): no working copy per order.
        let mut heads = [0i64; 2];
        let mut rest: Vec<u64> = Vec::with_capacity(values.len() - order);
        match order {
            0 => rest.extend(values.iter().map(|&v| v as u64)),
            1 => {
                heads[0] = values[0];
                rest.extend(values.windows(2).map(|w| w[1].wrapping_sub(w[0]) as u64));
            }
            _ => {
                debug_assert_eq!(order, 2);
                heads = [values[0], values[1].wrapping_sub(values[0].wrapping_mul(2))];
                rest.extend(
                    values
                        .windows(3)
                        .map(|w| w[2].wrapping_sub(w[1].wrapping_mul(2)).wrapping_add(w[0]) as u64),
                );
            }
        }
        let base = rest.iter().map(|&u| u as i64).min().unwrap_or(0);
        let mut divisor = 0u64;
        for u in &mut rest {
            *u = (*u as i64).wrapping_sub(base) as u64;
            // Once 1, always 1: skip the work on noisy data.
            if divisor != 1 {
                divisor = gcd(divisor, *u);
            }
        }
        let divisor = divisor.max(1);
        if divisor > 1 {
            // A division per value is most of a short column's cost: only
            // when it changes something.
            for u in &mut rest {
                *u /= divisor;
            }
        }
        let histogram = length_histogram(&rest);
        let count = rest.len() as u64;
        let longest = histogram.iter().rposition(|&c| c > 0).unwrap_or(0) as u64;
        let (width, bits) = packed_width(&histogram, count, longest);
        // The packed size above, plus the divisor, width byte and patch
        // count; a column whose rest is all `base` writes none of them.
        let bits = if longest == 0 { 0 } else { bits + 24 };
        let mut model = None;
        let mut uniform = None;
        if entropy && longest > 0 {
            let max = rest.iter().copied().max().unwrap_or(0);
            uniform = super::entropy::uniform::bits(rest.len(), max)
                .filter(|&b| b < bits)
                .map(|b| (max, b));
            let entropy = Model::new(&histogram, max);
            let entropy_bits = entropy.bits(&histogram);
            if entropy_bits < bits {
                model = Some((entropy, entropy_bits));
            }
        }
        let header = heads[..order].iter().map(|&h| varint_bits(h)).sum::<u64>()
            + varint_bits(base)
            + 8 * u64::from(divisor > 127);
        Plan {
            order,
            heads,
            base,
            divisor,
            width,
            model: model.map(|(m, bits)| (m, bits + header)),
            uniform: uniform.map(|(max, bits)| (max, bits + header)),
            rest,
            bits: bits + header,
        }
    }
}

/// The packing width minimising packed bits plus patches (~2 bytes of
/// index and varint per patch, plus the high bits in 7-bit varint groups)
/// for values with bit-length `histogram` (`count` values, the longest
/// `longest` bits), and that size; the smallest width of the cheapest, and
/// 64 unless a narrower one is strictly cheaper than `64 * count`.
///
/// Widths above the longest value only add bits, so only `0..=longest` are
/// tried, each in constant time: with `S(j)` the count of values at least
/// `j` bits long and `T(j) = S(j) + T(j + 7)`, a value of `len > w` bits
/// needs `ceil((len - w) / 7)` varint bytes, one for each `k >= 0` with
/// `len >= w + 1 + 7k`, so width `w` costs
/// `w * count + 16 * S(w + 1) + 8 * T(w + 1)`. (Summing over the lengths
/// for each width was ~2,000 steps for a float column, three orders per
/// column, on every head chunk cut.)
fn packed_width(histogram: &[u64; 65], count: u64, longest: u64) -> (u8, u64) {
    let longest = longest as usize;
    // Index 65 and up stay 0: S(65) and T(j > 64).
    let mut s = [0u64; 72];
    let mut t = [0u64; 72];
    for j in (1..=longest).rev() {
        s[j] = s[j + 1] + histogram[j];
        t[j] = s[j] + t[j + 7];
    }
    let (mut width, mut bits) = (64u8, 64 * count);
    for w in 0..=longest.min(63) {
        let cost = w as u64 * count + 16 * s[w + 1] + 8 * t[w + 1];
        if cost < bits {
            (width, bits) = (w as u8, cost);
        }
    }
    (width, bits)
}

fn varint_bits(v: i64) -> u64 {
    let zigzag = ((v << 1) ^ (v >> 63)) as u64;
    8 * u64::from((64 - zigzag.leading_zeros()).max(1).div_ceil(7))
}

/// Binary GCD (Stein's); `gcd(0, x) = x`.
fn gcd(mut a: u64, mut b: u64) -> u64 {
    if a == 0 || b == 0 {
        return a | b;
    }
    let shift = (a | b).trailing_zeros();
    a >>= a.trailing_zeros();
    loop {
        b >>= b.trailing_zeros();
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        b -= a;
        if b == 0 {
            return a << shift;
        }
    }
}

/// A bounds-checked reader over a body followed by [`PADDING`] zero bytes.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    padded: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader {
            bytes,
            padded: bytes,
            pos: 0,
        }
    }

    /// Length of the body (without the padding).
    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The body followed by [`PADDING`] zero bytes.
    pub(super) fn padded(&self) -> &'a [u8] {
        self.padded
    }

    pub(super) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError("truncated"))?;
        let out = self
            .bytes
            .get(self.pos..end)
            .ok_or(DecodeError("truncated"))?;
        self.pos = end;
        Ok(out)
    }

    pub(super) fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            if shift == 63 && byte > 1 {
                break;
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(DecodeError("bad varint"))
    }

    fn varint(&mut self) -> Result<i64, DecodeError> {
        let raw = self.uvarint()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// Reads a column of `n` values into `out` (cleared first).
    /// `last`: the column ends the body (a compact uniform column then
    /// leaves its second stream's length out).
    fn column(&mut self, n: usize, out: &mut Vec<i64>, last: bool) -> Result<(), DecodeError> {
        let mode = self.u8()?;
        let order = usize::from(mode & !MODE_ALL);
        if order > 2 || order > n - 1 || (mode & MODE_BITS).count_ones() > 1 {
            return Err(DecodeError("bad column order"));
        }
        out.clear();
        out.reserve(n);
        for _ in 0..order {
            out.push(self.varint()?);
        }
        let count = n - order;
        let base = |r: &mut Self| match mode & MODE_ZERO_BASE {
            0 => r.varint(),
            _ => Ok(0),
        };
        if count > 0 && mode & MODE_CONSTANT != 0 {
            let base = base(self)?;
            out.resize(n, base);
        } else if count > 0 {
            let base = base(self)?;
            let divisor = match mode & MODE_UNIT_DIVISOR {
                0 => self.uvarint()?,
                _ => 1,
            };
            if divisor == 0 {
                return Err(DecodeError("bad column header"));
            }
            let first = out.len();
            if mode & MODE_ENTROPY != 0 {
                super::entropy::read(self, count, out)?;
            } else if mode & MODE_UNIFORM_COMPACT != 0 {
                super::entropy::uniform::read_compact(self, count, out, last)?;
            } else if mode & MODE_UNIFORM != 0 {
                super::entropy::uniform::read(self, count, out)?;
            } else {
                self.packed(count, out)?;
            }
            for slot in &mut out[first..] {
                *slot = base.wrapping_add((*slot as u64).wrapping_mul(divisor) as i64);
            }
        }
        for _ in 0..order {
            for i in 1..out.len() {
                out[i] = out[i].wrapping_add(out[i - 1]);
            }
        }
        Ok(())
    }

    /// Reads `count` bit-packed values with their patches (after the
    /// column's base and divisor) and appends them to `out`.
    fn packed(&mut self, count: usize, out: &mut Vec<i64>) -> Result<(), DecodeError> {
        let width = u32::from(self.u8()?);
        if width > 64 {
            return Err(DecodeError("bad column header"));
        }
        let patches = self.uvarint()?;
        if patches > count as u64 {
            return Err(DecodeError("too many patches"));
        }
        let mut patch_list = Vec::with_capacity(patches as usize);
        let mut i = 0u64;
        for p in 0..patches {
            let gap = self.uvarint()?;
            i = if p == 0 { gap } else { i.saturating_add(gap) };
            let high = self.uvarint()?;
            if i >= count as u64 || width > high.leading_zeros() {
                return Err(DecodeError("bad patch"));
            }
            patch_list.push((i as usize, high.checked_shl(width).unwrap_or(0)));
        }
        let packed_len = (count as u64 * u64::from(width)).div_ceil(8) as usize;
        let start = self.pos;
        self.take(packed_len)?;
        let packed = &self.padded[start..];
        let first = out.len();
        unpack(packed, width, count, out);
        for (i, high) in patch_list {
            let slot = &mut out[first + i];
            *slot = (*slot as u64 | high) as i64;
        }
        Ok(())
    }
}

/// Unpacks `count` values of `width` bits (LSB first) from `packed`, which
/// has at least [`PADDING`] readable bytes past the packed ones.
fn unpack(packed: &[u8], width: u32, count: usize, out: &mut Vec<i64>) {
    if width == 0 {
        out.resize(out.len() + count, 0);
        return;
    }
    let mask = low_mask(width);
    if width <= 56 {
        for i in 0..count {
            let bit = i * width as usize;
            let word =
                u64::from_le_bytes(packed[bit / 8..bit / 8 + 8].try_into().expect("8 bytes"));
            out.push(((word >> (bit % 8)) & mask) as i64);
        }
    } else {
        for i in 0..count {
            let bit = i * width as usize;
            let word =
                u128::from_le_bytes(packed[bit / 8..bit / 8 + 16].try_into().expect("16 bytes"));
            out.push(((word >> (bit % 8)) as u64 & mask) as i64);
        }
    }
}

/// Where a dense chunk's bytes go (for the storage breakdown test): byte
/// counts of its parts, and the value column's mode.
#[cfg(test)]
#[derive(Clone, Debug, Default)]
pub(crate) struct Layout {
    /// Flags byte, and the body length of a zstd-compressed chunk.
    pub frame: usize,
    /// zstd saving (body length minus compressed length), if compressed.
    pub zstd_saved: isize,
    /// Sample count, scale byte and exception count.
    pub header: usize,
    pub ts_column: usize,
    /// Mode, heads, base and divisor of the value column.
    pub value_header: usize,
    /// Entropy table (max, low, frequencies, stream lengths) or packed
    /// header (width, patch count).
    pub value_table: usize,
    /// Final coder states.
    pub value_states: usize,
    /// Coded values: streams, raw bits, packed bits and patches.
    pub value_payload: usize,
    pub exceptions: usize,
    pub value_mode: u8,
}

#[cfg(test)]
pub(crate) fn layout(chunk: &[u8]) -> Result<Layout, DecodeError> {
    let mut layout = Layout::default();
    let (&flags, rest) = chunk.split_first().ok_or(DecodeError("empty"))?;
    let body = match flags & FLAG_ZSTD {
        0 => {
            layout.frame = 1;
            rest.to_vec()
        }
        _ => {
            let mut r = Reader::new(rest);
            let len = r.uvarint()?;
            layout.frame = 1 + r.pos;
            let body = zstd::bulk::decompress(&rest[r.pos..], len as usize)
                .map_err(|_| DecodeError("bad zstd frame"))?;
            layout.zstd_saved = body.len() as isize - (rest.len() - r.pos) as isize;
            body
        }
    };
    let len = body.len();
    let mut padded = body.clone();
    padded.resize(len + PADDING, 0);
    let mut r = Reader::new(&padded[..len]);
    r.padded = &padded;
    let n = r.uvarint()? as usize;
    layout.header = r.pos;
    let start = r.pos;
    let mut scratch = Vec::new();
    if flags & FLAG_IMPLIED_TIMESTAMPS == 0 {
        r.column(n, &mut scratch, false)?;
    }
    layout.ts_column = r.pos - start;
    if flags >> SCALE_SHIFT == 0 {
        r.u8()?;
        layout.header += 1;
    }
    let start = r.pos;
    let mode = r.u8()?;
    layout.value_mode = mode & !(MODE_UNIT_DIVISOR | MODE_ZERO_BASE);
    let order = usize::from(mode & !MODE_ALL);
    for _ in 0..order {
        r.varint()?;
    }
    if n > order && mode & MODE_ZERO_BASE == 0 {
        r.varint()?;
    }
    if n > order && mode & MODE_CONSTANT != 0 {
        layout.value_header = r.pos - start;
    } else if n > order {
        if mode & MODE_UNIT_DIVISOR == 0 {
            r.uvarint()?;
        }
        layout.value_header = r.pos - start;
        let table_start = r.pos;
        if mode & MODE_ENTROPY != 0 {
            let max = r.uvarint()?;
            let top = 64 - max.leading_zeros();
            let low = u32::from(r.u8()?);
            for _ in low..top {
                r.uvarint()?;
            }
            r.uvarint()?;
            r.uvarint()?;
            layout.value_table = r.pos - table_start;
            layout.value_states = 8;
        } else if mode & MODE_UNIFORM_COMPACT != 0 {
            r.uvarint()?;
            let s0 = r.uvarint()? as usize;
            let s1 = if flags & FLAG_NO_EXCEPTIONS != 0 {
                len - r.pos - s0
            } else {
                r.uvarint()? as usize
            };
            layout.value_table = r.pos - table_start;
            layout.value_states = 10 + (s0 - 5) % 4 + (s1 - 5) % 4;
        } else if mode & MODE_UNIFORM != 0 {
            r.uvarint()?;
            r.uvarint()?;
            r.uvarint()?;
            layout.value_table = r.pos - table_start;
            layout.value_states = 16;
        } else {
            r.u8()?;
            r.uvarint()?;
            layout.value_table = r.pos - table_start;
        }
    } else {
        layout.value_header = r.pos - start;
    }
    let mut r = Reader::new(&padded[..len]);
    r.padded = &padded;
    r.pos = start;
    let last = flags & FLAG_NO_EXCEPTIONS != 0;
    r.column(n, &mut scratch, last)?;
    layout.value_payload =
        r.pos - start - layout.value_header - layout.value_table - layout.value_states;
    let start = r.pos;
    if flags & FLAG_NO_EXCEPTIONS == 0 {
        r.uvarint()?;
    }
    layout.header += r.pos - start;
    layout.exceptions = len - r.pos;
    Ok(layout)
}

/// Iterates a decoded dense chunk. Malformed bytes yield no sample and
/// [`DenseIter::is_truncated`] tells.
#[derive(Clone, Debug)]
pub struct DenseIter {
    ts: Vec<i64>,
    vs: Vec<f64>,
    pos: usize,
    truncated: bool,
}

impl DenseIter {
    /// Decodes the whole chunk, whose time range is `[min_t, max_t]`, at
    /// once (one pass, no per-sample branching on the stream).
    pub fn new(chunk: &[u8], min_t: i64, max_t: i64) -> DenseIter {
        let (ts, vs, truncated) = match decode(chunk, min_t, max_t) {
            Ok((ts, vs)) => (ts, vs, false),
            Err(_) => (Vec::new(), Vec::new(), true),
        };
        DenseIter {
            ts,
            vs,
            pos: 0,
            truncated,
        }
    }

    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
}

impl Iterator for DenseIter {
    type Item = (i64, f64);

    #[inline]
    fn next(&mut self) -> Option<(i64, f64)> {
        let t = *self.ts.get(self.pos)?;
        let v = self.vs[self.pos];
        self.pos += 1;
        Some((t, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.ts.len() - self.pos;
        (left, Some(left))
    }
}

impl ExactSizeIterator for DenseIter {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_histogram_counts_every_value_once() {
        for n in [0usize, 1, 3, 4, 5, 120, 123] {
            let values: Vec<u64> = (0..n as u64)
                .map(|i| match i % 5 {
                    0 => 0,
                    1 => 1 << (i % 64),
                    2 => u64::MAX >> (i % 64),
                    _ => i * 977,
                })
                .collect();
            let mut expected = [0u64; 65];
            for u in &values {
                expected[(64 - u.leading_zeros()) as usize] += 1;
            }
            assert_eq!(length_histogram(&values), expected, "{n} values");
        }
    }
    use cairn_model::STALE_NAN_BITS;
    use proptest::prelude::*;

    fn round_trip(ts: &[i64], vs: &[f64]) -> Option<usize> {
        let chunk = encode(ts, vs)?;
        let (got_ts, got_vs) = decode(&chunk, ts[0], ts[ts.len() - 1]).expect("decodes");
        assert_eq!(got_ts, ts);
        let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<u64>>();
        assert_eq!(bits(&got_vs), bits(vs));
        Some(chunk.len())
    }

    fn regular(n: usize) -> Vec<i64> {
        (0..n as i64)
            .map(|i| 1_700_000_000_000 + i * 15_000)
            .collect()
    }

    #[test]
    fn decimal_form_is_exact_or_absent() {
        assert_eq!(to_decimal(1234.57), Some((123_457, 2)));
        assert_eq!(to_decimal(0.1), Some((1, 1)));
        assert_eq!(to_decimal(8e9), Some((8_000_000_000, 0)));
        assert_eq!(to_decimal(-2.5), Some((-25, 1)));
        assert_eq!(to_decimal(0.0), Some((0, 0)));
        for v in [
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.1 + 0.2,
            1e300,
            5e-324,
        ] {
            assert_eq!(to_decimal(v), None, "{v:e}");
        }
        assert_eq!(to_decimal(f64::from_bits(STALE_NAN_BITS)), None);
    }

    #[test]
    fn regular_counters_and_gauges_take_a_few_bits_per_sample() {
        let ts = regular(4096);
        // A counter at a constant rate: delta-of-delta zero everywhere.
        let counter: Vec<f64> = (0..4096).map(|i| i as f64 * 3.0).collect();
        assert!(round_trip(&ts, &counter).unwrap() < 64);
        // A constant.
        assert!(round_trip(&ts, &vec![500_107_862_016.0; 4096]).unwrap() < 64);
        // A 2-decimal gauge in 0..4: about 9 bits per sample.
        let mut x = 1u64;
        let gauge: Vec<f64> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 401) as f64 / 100.0
            })
            .collect();
        let len = round_trip(&ts, &gauge).unwrap();
        assert!(len < 4096 * 9 / 8 + 64, "{len} bytes");
        // Multiples of a page size: the common divisor comes out.
        let pages: Vec<f64> = gauge
            .iter()
            .map(|g| 8e9 + (g * 100.0).round() * 4096.0)
            .collect();
        let len = round_trip(&ts, &pages).unwrap();
        assert!(len < 4096 * 9 / 8 + 64, "{len} bytes");
    }

    #[test]
    fn special_values_are_patched_bit_exactly() {
        let ts = regular(64);
        let mut vs: Vec<f64> = (0..64).map(|i| i as f64 / 4.0).collect();
        vs[0] = f64::from_bits(STALE_NAN_BITS);
        vs[5] = -0.0;
        vs[17] = f64::NAN;
        vs[40] = f64::INFINITY;
        vs[63] = f64::from_bits(STALE_NAN_BITS);
        round_trip(&ts, &vs).unwrap();
        // Mostly inexact values: left to XOR.
        let thirds: Vec<f64> = (0..64).map(|i| i as f64 / 3.0).collect();
        assert_eq!(encode(&ts, &thirds), None);
    }

    #[test]
    fn single_samples_and_extreme_timestamps_round_trip() {
        round_trip(&[i64::MIN], &[1.0]).unwrap();
        round_trip(&[i64::MIN, i64::MAX], &[1.0, 2.0]).unwrap();
        round_trip(
            &[i64::MAX, i64::MIN, 0, 0, -5],
            &[0.0, 9e15, -9e15, 1.0, 7.0],
        )
        .unwrap();
        // One scale for 9e15 and 1e-22 does not fit 53 bits: XOR's job.
        assert_eq!(encode(&[1, 2], &[9e15, 1e-22]), None);
        let big = [9_007_199_254_740_992.0, -9_007_199_254_740_992.0, 1.0, 3.0];
        round_trip(&[1, 2, 3, 4], &big).unwrap();
    }

    #[test]
    fn evenly_spaced_timestamps_come_from_the_time_range() {
        let ts = regular(5760);
        let vs: Vec<f64> = (0..5760).map(|i| (i % 7) as f64).collect();
        let chunk = encode(&ts, &vs).unwrap();
        assert_eq!(chunk[0] & FLAG_IMPLIED_TIMESTAMPS, FLAG_IMPLIED_TIMESTAMPS);
        assert_eq!(chunk[0] & FLAG_NO_EXCEPTIONS, FLAG_NO_EXCEPTIONS);
        assert_eq!(layout(&chunk).unwrap().ts_column, 0);
        let (got, _) = decode(&chunk, ts[0], ts[5759]).unwrap();
        assert_eq!(got, ts);
        // A range that does not split into whole steps is refused.
        assert!(decode(&chunk, ts[0], ts[5759] + 1).is_err());
        assert!(decode(&chunk, ts[5759], ts[0]).is_err());
        assert!(decode(&chunk, i64::MIN, i64::MAX).is_err());
        // One sample: the range is one instant.
        let one = encode(&[7], &[1.5]).unwrap();
        assert_eq!(decode(&one, 7, 7).unwrap(), (vec![7], vec![1.5]));
        assert!(decode(&one, 7, 8).is_err());
        // Extreme ends and the largest step round-trip.
        round_trip(&[i64::MIN, i64::MAX], &[1.0, 2.0]).unwrap();
        round_trip(&[i64::MIN, -1, i64::MAX - 1], &[1.0, 2.0, 3.0]).unwrap();
        // Irregular, repeated or descending timestamps keep their column.
        for ts in [vec![0, 15, 31], vec![5, 5, 5], vec![9, 6, 3]] {
            let chunk = encode(&ts, &[1.0, 2.0, 3.0]).unwrap();
            assert_eq!(chunk[0] & FLAG_IMPLIED_TIMESTAMPS, 0, "{ts:?}");
            round_trip(&ts, &[1.0, 2.0, 3.0]).unwrap();
        }
        // Head chunks (`encode_small`) always carry their timestamps.
        let small = encode_small(&ts[..120], &vs[..120]).unwrap();
        assert_eq!(small[0] & FLAG_IMPLIED_TIMESTAMPS, 0);
        assert_eq!(decode(&small, 0, 0).unwrap().0, &ts[..120]);
    }

    #[test]
    fn sample_presence_in_a_range_comes_from_the_header_when_timestamps_are_implied() {
        let ts: Vec<i64> = (0..100).map(|i| 1_000 + i * 15_000).collect();
        let vs: Vec<f64> = (0..100).map(|i| (i % 5) as f64).collect();
        let chunk = encode(&ts, &vs).unwrap();
        let (min_t, max_t) = (ts[0], ts[99]);
        // Every window edge on, next to and between samples, against the
        // decoded timestamps.
        let edges: Vec<i64> = ts
            .iter()
            .flat_map(|&t| [t - 1, t, t + 1, t + 7_500])
            .chain([i64::MIN, 0, i64::MAX])
            .collect();
        for &start in &edges {
            for &end in edges.iter().step_by(7) {
                let expected = ts.iter().any(|&t| start <= t && t <= end);
                assert_eq!(
                    implied_sample_in(&chunk, min_t, max_t, start, end),
                    Some(expected),
                    "[{start}, {end}]"
                );
            }
        }
        // Coded timestamps: decode to know.
        let irregular = encode(&[0, 15, 31], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(implied_sample_in(&irregular, 0, 31, 0, 40), None);
        // A range the samples do not fit is not an answer either.
        assert_eq!(
            implied_sample_in(&chunk, min_t, max_t + 1, 0, i64::MAX),
            None
        );
    }

    /// A chunk as writers before the implied-timestamp and no-exception
    /// flags wrote it (flags 0, a timestamp column, an exception count of
    /// zero) still decodes, whatever range it is given.
    #[test]
    fn chunks_without_the_newer_flags_still_decode() {
        let mut chunk = vec![0u8];
        put_uvarint(&mut chunk, 3);
        // Timestamps 1000, 2000, 3000: order 2 (differenced twice in
        // place: heads 1000 and (2000 - 1000) - 1000), constant 0.
        chunk.push(2 | MODE_CONSTANT);
        put_varint(&mut chunk, 1000);
        put_varint(&mut chunk, 0);
        put_varint(&mut chunk, 0);
        chunk.push(1);
        // Mantissas 25, 25, 25 at scale 1: order 0, constant.
        chunk.push(MODE_CONSTANT);
        put_varint(&mut chunk, 25);
        put_uvarint(&mut chunk, 0);
        let want = (vec![1000, 2000, 3000], vec![2.5, 2.5, 2.5]);
        assert_eq!(decode(&chunk, 1000, 3000).unwrap(), want);
        assert_eq!(decode(&chunk, 0, 0).unwrap(), want);
        // Without its exception count it is truncated.
        assert!(decode(&chunk[..chunk.len() - 1], 1000, 3000).is_err());
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let ts = regular(300);
        let vs: Vec<f64> = (0..300).map(|i| (i * i) as f64).collect();
        let chunk = encode(&ts, &vs).unwrap();
        for cut in 0..chunk.len() {
            assert!(decode(&chunk[..cut], ts[0], ts[ts.len() - 1]).is_err());
        }
        let mut bad = chunk.clone();
        bad[0] = 7;
        assert!(decode(&bad, ts[0], ts[ts.len() - 1]).is_err());
        assert!(DenseIter::new(&bad, ts[0], ts[ts.len() - 1]).is_truncated());
        assert_eq!(DenseIter::new(&bad, ts[0], ts[ts.len() - 1]).count(), 0);
    }

    /// A xorshift draw in `[0, 1)`, as `cairn-bench history` draws.
    fn draws(seed: u64) -> impl FnMut() -> f64 {
        let mut x = seed;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// The bytes of the values column alone: the chunk minus the same
    /// timestamps with constant values.
    fn value_bytes(ts: &[i64], vs: &[f64]) -> usize {
        let constant = encode(ts, &vec![0.0; ts.len()]).unwrap().len();
        round_trip(ts, vs).unwrap() - constant
    }

    #[test]
    fn uniform_ranges_cost_their_entropy_not_whole_bits() {
        let ts = regular(2880);
        let mut draw = draws(7);
        // Steps of 0..15.00 (1,501 values, log2 = 10.55 bits; packing: 11).
        let mut v = 0.0f64;
        let cpu: Vec<f64> = (0..2880)
            .map(|_| {
                v = ((v + 15.0 * draw()) * 100.0).round() / 100.0;
                v
            })
            .collect();
        let bits = value_bytes(&ts, &cpu) as f64 * 8.0 / 2880.0;
        assert!(bits < 10.65, "{bits} bits per sample");
        // A gauge in 0..4.00 (401 values, 8.65 bits; packing: 9).
        let gauge: Vec<f64> = (0..2880)
            .map(|_| (draw() * 400.0).round() / 100.0)
            .collect();
        let bits = value_bytes(&ts, &gauge) as f64 * 8.0 / 2880.0;
        assert!(bits < 8.75, "{bits} bits per sample");
        // A rare-error counter: +1 with p = 0.01 (0.08 bits of entropy).
        let mut v = 0.0;
        let errors: Vec<f64> = (0..2880)
            .map(|_| {
                v += if draw() < 0.01 { 1.0 } else { 0.0 };
                v
            })
            .collect();
        let bits = value_bytes(&ts, &errors) as f64 * 8.0 / 2880.0;
        assert!(bits < 0.16, "{bits} bits per sample");
    }

    #[test]
    fn packing_stays_where_it_wins() {
        // Regular timestamps and a constant-rate counter: zero bits either
        // way, so no entropy-coded column (whose table and state cost more).
        let ts = regular(2880);
        let counter: Vec<f64> = (0..2880).map(|i| i as f64 * 3.0).collect();
        let chunk = encode(&ts, &counter).unwrap();
        assert!(chunk.len() < 48, "{} bytes", chunk.len());
        let mut r = Reader::new(&chunk[1..]);
        r.uvarint().unwrap();
        assert_eq!(r.u8().unwrap() & MODE_ENTROPY, 0, "timestamps packed");
    }

    /// Bits per sample of each of the storage benchmark's value kinds
    /// (`cairn-bench history`, `node`: the same formulas and draws), in
    /// chunks of 2,880 samples as a 24h block cuts a day of 15 s scrapes.
    /// A figure, not a check: `cargo test --release -p cairn-tsdb --lib --
    /// --ignored --nocapture node_kinds`.
    #[test]
    #[ignore]
    fn node_kinds_bits_per_sample() {
        let ts = regular(2880);
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let (series, chunks) = (600, 2);
        let mut state: Vec<f64> = (0..series)
            .map(|s| match s % 6 {
                1 => 8_000_000_000.0,
                3 => 500_107_862_016.0,
                _ => 0.0,
            })
            .collect();
        let mut values = vec![Vec::new(); series];
        let mut bytes = [0usize; 6];
        let mut packed = [0usize; 6];
        let mut count = [0usize; 6];
        for _ in 0..chunks {
            for _ in 0..2880 {
                for (s, v) in state.iter_mut().enumerate() {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let draw = (rng >> 16) as f64 / (1u64 << 48) as f64;
                    match s % 6 {
                        0 => *v = ((*v + 15.0 * draw) * 100.0).round() / 100.0,
                        2 => *v += (draw * 1_000_000.0).round(),
                        4 => *v += if draw < 0.01 { 1.0 } else { 0.0 },
                        1 => *v = 8_000_000_000.0 + ((draw - 0.5) * 256.0).round() * 4096.0,
                        3 => {}
                        _ => *v = (draw * 400.0).round() / 100.0,
                    }
                    values[s].push(*v);
                }
            }
            for (s, vs) in values.iter_mut().enumerate() {
                bytes[s % 6] += round_trip(&ts, vs).unwrap();
                packed[s % 6] += encode_with(&ts, vs, false, true).unwrap().len();
                count[s % 6] += vs.len();
                vs.clear();
            }
        }
        let mut weighted = [0.0; 2];
        for k in 0..6 {
            let bits = bytes[k] as f64 * 8.0 / count[k] as f64;
            let packed_bits = packed[k] as f64 * 8.0 / count[k] as f64;
            // Series s of a host has kind s % 100 % 6: 17, 17, 17, 17, 16, 16.
            let share = if k < 4 { 0.17 } else { 0.16 };
            weighted[0] += bits * share;
            weighted[1] += packed_bits * share;
            println!("kind {k}: {bits:.3} bits/sample (bit-packed only: {packed_bits:.3})");
        }
        println!(
            "benchmark mix: {:.4} bytes/sample (bit-packed only: {:.4})",
            weighted[0] / 8.0,
            weighted[1] / 8.0
        );
    }

    /// Decode time per sample of the storage benchmark's random kinds,
    /// entropy-coded against bit-packed, measured in the same process
    /// (best of 15 rounds of 100 decodes each, alternating). A figure, not
    /// a check: `cargo test --release -p cairn-tsdb --lib -- --ignored
    /// --nocapture decode_speed`.
    /// Decoding cost of the compact uniform layout against the first one,
    /// on the same values (A/B, interleaved, best of 15):
    /// `cargo test --release -p cairn-tsdb --lib -- --ignored --nocapture
    /// decode_speed_uniform`.
    #[test]
    #[ignore]
    fn decode_speed_uniform_compact_vs_first() {
        use crate::chunk::entropy::uniform;
        let mut draw = draws(11);
        for (name, range) in [
            ("0..1500", 1501.0),
            ("0..1e6", 1e6 + 1.0),
            ("0..400", 401.0),
        ] {
            let values: Vec<u64> = (0..5759).map(|_| (draw() * range) as u64).collect();
            let max = values.iter().copied().max().unwrap();
            let (mut compact, mut first) = (Vec::new(), Vec::new());
            uniform::put(&mut compact, &values, max, false);
            uniform::put_v1(&mut first, &values, max);
            let mut best = [f64::MAX; 2];
            let mut out = Vec::with_capacity(values.len());
            for _ in 0..15 {
                for (k, body) in [&compact, &first].into_iter().enumerate() {
                    let mut padded = body.clone();
                    padded.resize(body.len() + PADDING, 0);
                    let start = std::time::Instant::now();
                    for _ in 0..100 {
                        let mut r = Reader::new(&padded[..body.len()]);
                        r.padded = &padded;
                        out.clear();
                        if k == 0 {
                            uniform::read_compact(&mut r, values.len(), &mut out, false).unwrap();
                        } else {
                            uniform::read(&mut r, values.len(), &mut out).unwrap();
                        }
                        std::hint::black_box(&out);
                    }
                    let ns = start.elapsed().as_nanos() as f64 / (100.0 * values.len() as f64);
                    best[k] = best[k].min(ns);
                }
            }
            println!(
                "uniform {name}: compact {} bytes {:.2} ns/value, first {} bytes {:.2} ns/value",
                compact.len(),
                best[0],
                first.len(),
                best[1]
            );
        }
    }

    #[test]
    #[ignore]
    fn decode_speed_entropy_vs_packed() {
        let ts = regular(2880);
        let mut draw = draws(11);
        let (mut cpu, mut bytes) = (0.0f64, 0.0f64);
        let mut kinds = vec![
            ("cpu seconds +0..15.00", Vec::new()),
            ("byte counter +0..1e6", Vec::new()),
            ("gauge 0..4.00", Vec::new()),
            ("errors +1 p=0.01", Vec::new()),
        ];
        let mut errors = 0.0;
        for _ in 0..2880 {
            cpu = ((cpu + 15.0 * draw()) * 100.0).round() / 100.0;
            bytes += (draw() * 1_000_000.0).round();
            errors += if draw() < 0.01 { 1.0 } else { 0.0 };
            kinds[0].1.push(cpu);
            kinds[1].1.push(bytes);
            kinds[2].1.push((draw() * 400.0).round() / 100.0);
            kinds[3].1.push(errors);
        }
        for (name, vs) in &kinds {
            let coded = encode_with(&ts, vs, true, true).unwrap();
            let packed = encode_with(&ts, vs, false, true).unwrap();
            let mut best = [f64::MAX; 2];
            for _ in 0..15 {
                for (k, chunk) in [&coded, &packed].into_iter().enumerate() {
                    let start = std::time::Instant::now();
                    for _ in 0..100 {
                        std::hint::black_box(
                            decode(std::hint::black_box(chunk), ts[0], ts[ts.len() - 1]).unwrap(),
                        );
                    }
                    let ns = start.elapsed().as_nanos() as f64 / (100.0 * 2880.0);
                    best[k] = best[k].min(ns);
                }
            }
            let mut encode_best = [f64::MAX; 2];
            for _ in 0..5 {
                for (k, entropy) in [true, false].into_iter().enumerate() {
                    let start = std::time::Instant::now();
                    for _ in 0..20 {
                        std::hint::black_box(encode_with(&ts, vs, entropy, true));
                    }
                    let ns = start.elapsed().as_nanos() as f64 / (20.0 * 2880.0);
                    encode_best[k] = encode_best[k].min(ns);
                }
            }
            println!(
                "{name}: entropy-coded {} bytes {:.2} ns/sample, packed {} bytes {:.2} ns/sample, \
                 {:.2}x; encode {:.1} vs {:.1} ns/sample",
                coded.len(),
                best[0],
                packed.len(),
                best[1],
                best[0] / best[1],
                encode_best[0],
                encode_best[1],
            );
        }
    }

    /// Writes `values` with the entropy mode (whether or not it wins) and
    /// reads them back.
    fn entropy_column(values: &[u64]) -> Vec<u8> {
        let mut histogram = [0u64; 65];
        for &u in values {
            histogram[(64 - u.leading_zeros()) as usize] += 1;
        }
        let max = values.iter().copied().max().unwrap();
        let model = Model::new(&histogram, max);
        let mut body = Vec::new();
        model.put(&mut body, values);
        let len = body.len();
        let mut padded = body.clone();
        padded.resize(len + PADDING, 0);
        let mut r = Reader::new(&padded[..len]);
        r.padded = &padded;
        let mut out = Vec::new();
        crate::chunk::entropy::read(&mut r, values.len(), &mut out).unwrap();
        assert_eq!(r.pos, len, "whole column read");
        assert_eq!(out.iter().map(|&v| v as u64).collect::<Vec<_>>(), values);
        for cut in 0..len {
            let mut r = Reader::new(&padded[..cut]);
            r.padded = &padded;
            let mut out = Vec::new();
            assert!(crate::chunk::entropy::read(&mut r, values.len(), &mut out).is_err());
        }
        body
    }

    #[test]
    fn entropy_columns_round_trip_adversarial_values() {
        entropy_column(&[0]);
        entropy_column(&[1]);
        entropy_column(&[u64::MAX]);
        entropy_column(&[5; 100]);
        entropy_column(&[0; 4096]);
        entropy_column(&[u64::MAX, 0, 1, u64::MAX - 1, 1 << 63, (1 << 63) - 1]);
        // Every class at once: the largest alphabet.
        let all: Vec<u64> = (0..=64u32)
            .flat_map(|c| match c {
                0 => vec![0],
                64 => vec![u64::MAX, 1 << 63],
                c => vec![1 << (c - 1), (1u64 << c) - 1],
            })
            .collect();
        entropy_column(&all);
        // A top class of exactly 4,097 and 4,096 values (high part limit).
        entropy_column(&[0, 4096, 4096 + 4096, 3, 4100]);
        entropy_column(&[0, 8191, 4096, 5000]);
        // 65,536 values, one class far rarer than 1 in 4,096.
        let mut skewed = vec![0u64; 65_536];
        skewed[77] = 1 << 40;
        skewed[65_535] = 3;
        entropy_column(&skewed);
    }

    /// Writes `values` with the uniform mode and reads them back; every
    /// truncation is an error.
    /// Round-trips `values` through the compact uniform layout and the
    /// first one (which older blocks hold); every cut is an error. Returns
    /// the compact column.
    fn uniform_column(values: &[u64]) -> Vec<u8> {
        use crate::chunk::entropy::uniform;
        type Read = Box<dyn Fn(&mut Reader<'_>, usize, &mut Vec<i64>) -> Result<(), DecodeError>>;
        type Put = Box<dyn Fn(&mut Vec<u8>, &[u64], u64)>;
        let max = values.iter().copied().max().unwrap();
        let mut compact = Vec::new();
        let ways: [(Put, Read); 3] = [
            (
                Box::new(|o, v, m| uniform::put(o, v, m, false)),
                Box::new(|r, c, o| uniform::read_compact(r, c, o, false)),
            ),
            // Last in the body: stream 1's length left out.
            (
                Box::new(|o, v, m| uniform::put(o, v, m, true)),
                Box::new(|r, c, o| uniform::read_compact(r, c, o, true)),
            ),
            (Box::new(uniform::put_v1), Box::new(uniform::read)),
        ];
        for (way, (put, read)) in ways.into_iter().enumerate() {
            let mut body = Vec::new();
            put(&mut body, values, max);
            let len = body.len();
            let mut padded = body.clone();
            padded.resize(len + PADDING, 0);
            let mut r = Reader::new(&padded[..len]);
            r.padded = &padded;
            let mut out = vec![-1];
            read(&mut r, values.len(), &mut out).unwrap();
            assert_eq!(r.pos, len, "whole column read");
            assert_eq!(
                out[1..].iter().map(|&v| v as u64).collect::<Vec<_>>(),
                values
            );
            for cut in 0..len {
                let mut r = Reader::new(&padded[..cut]);
                r.padded = &padded;
                let mut out = Vec::new();
                let result = read(&mut r, values.len(), &mut out);
                // A column that runs to the end of the body cannot tell a
                // cut there (the chunk's CRC does): no panic is all.
                assert!(way == 1 || result.is_err(), "cut at {cut}");
            }
            if compact.is_empty() {
                compact = body;
            }
        }
        compact
    }

    #[test]
    fn uniform_columns_round_trip_adversarial_values() {
        uniform_column(&[0]);
        uniform_column(&[1]);
        uniform_column(&[0; 100]);
        uniform_column(&[u32::MAX as u64, 0, 1, u32::MAX as u64 - 1]);
        uniform_column(&[(1 << 31) + 1, 0, 5]);
        let mut draw = draws(5);
        let big: Vec<u64> = (0..65_536).map(|_| (draw() * 1e6).round() as u64).collect();
        let bytes = uniform_column(&big).len();
        // log2(1e6 + 1) bits each, plus states and framing.
        let ideal = 65_536.0 * (1e6f64 + 1.0).log2() / 8.0;
        assert!((bytes as f64) < ideal + 32.0, "{bytes} vs {ideal}");
        // Past the largest range the mode is not offered.
        assert!(crate::chunk::entropy::uniform::bits(10, u32::MAX as u64 + 1).is_none());
    }

    #[test]
    fn uniform_steps_cost_log2_of_their_range() {
        let ts = regular(5760);
        let mut draw = draws(17);
        let mut cpu = 0.0f64;
        let walk: Vec<f64> = (0..5760)
            .map(|_| {
                cpu = ((cpu + 15.0 * draw()) * 100.0).round() / 100.0;
                cpu
            })
            .collect();
        let chunk = encode(&ts, &walk).unwrap();
        let (got_ts, got_vs) = decode(&chunk, ts[0], ts[ts.len() - 1]).unwrap();
        assert_eq!(got_ts, ts);
        assert_eq!(got_vs, walk);
        // 1,501 values: 10.55 bits each, and ~45 bytes of everything else.
        let ideal = 5760.0 * 1501f64.log2() / 8.0;
        assert!(
            (chunk.len() as f64) < ideal + 48.0,
            "{} vs {ideal}",
            chunk.len()
        );
    }

    #[test]
    fn constant_columns_write_only_their_base() {
        let ts = regular(5760);
        let vs = vec![500_107_862_016.0; 5760];
        let chunk = encode(&ts, &vs).unwrap();
        let (got_ts, got_vs) = decode(&chunk, ts[0], ts[ts.len() - 1]).unwrap();
        assert_eq!((got_ts, got_vs), (ts.clone(), vs));
        let layout = layout(&chunk).unwrap();
        assert_eq!(layout.value_mode, MODE_CONSTANT);
        // flags, n, timestamps (mode, t0, d0, base), scale, values (mode,
        // base), exception count.
        assert!(
            chunk.len() <= 1 + 2 + 11 + 1 + 7 + 1,
            "{} bytes",
            chunk.len()
        );
        // Two mode bits at once are refused.
        let mut body = vec![0u8];
        put_uvarint(&mut body, 3);
        body.extend_from_slice(&[MODE_CONSTANT | MODE_ENTROPY, 0, 0]);
        assert!(decode(&body, 0, 2).is_err());
    }

    /// The width search as it was before [`packed_width`]: every width
    /// summed over every longer length, kept to check it against.
    fn packed_width_quadratic(histogram: &[u64; 65], count: u64) -> (u8, u64) {
        let (mut width, mut bits) = (64u8, 64 * count);
        let longest = histogram.iter().rposition(|&c| c > 0).unwrap_or(0) as u64;
        for w in 0..=longest.min(63) {
            let mut cost = w * count;
            for (len, &c) in histogram
                .iter()
                .enumerate()
                .take(longest as usize + 1)
                .skip(w as usize + 1)
            {
                cost += c * (16 + 8 * (len as u64 - w).div_ceil(7));
            }
            if cost < bits {
                (width, bits) = (w as u8, cost);
            }
        }
        (width, bits)
    }

    fn check_packed_width(histogram: &[u64; 65]) {
        let count = histogram.iter().sum();
        let longest = histogram.iter().rposition(|&c| c > 0).unwrap_or(0) as u64;
        assert_eq!(
            packed_width(histogram, count, longest),
            packed_width_quadratic(histogram, count),
            "{histogram:?}"
        );
    }

    #[test]
    fn packed_width_matches_the_quadratic_search() {
        let mut cases: Vec<[u64; 65]> = vec![[0; 65]];
        for len in 0..65 {
            for c in [1u64, 7, 120, 1 << 40] {
                let mut h = [0; 65];
                h[len] = c;
                cases.push(h);
                // Plus one value at each other length: patch or widen.
                for other in 0..65 {
                    let mut h2 = h;
                    h2[other] += 1;
                    cases.push(h2);
                }
            }
        }
        // Every length 64 bits long; huge counts at every length.
        let mut h = [0; 65];
        h[64] = 1 << 40;
        cases.push(h);
        cases.push([1 << 40; 65]);
        cases.push([1; 65]);
        // Ties between widths: one value per length step of 7.
        for start in 0..7 {
            let mut h = [0; 65];
            for len in (start..65).step_by(7) {
                h[len] = 1;
            }
            cases.push(h);
        }
        // Random histograms shaped like columns: a bulk of lengths around
        // a centre, a tail of outliers, and fully random ones.
        let mut draw = draws(0x00c0_ffee);
        for i in 0..20_000 {
            let mut h = [0; 65];
            let longest = (draw() * 65.0) as usize;
            match i % 3 {
                0 => {
                    for c in &mut h[..=longest] {
                        *c = (draw() * 1000.0) as u64 * u64::from(draw() < 0.5);
                    }
                }
                1 => {
                    let centre = (draw() * (longest + 1) as f64) as usize;
                    for _ in 0..(draw() * 200.0) as usize {
                        let spread = ((draw() - 0.5) * 6.0) as isize;
                        let len = (centre as isize + spread).clamp(0, longest as isize);
                        h[len as usize] += 1;
                    }
                    h[longest] += (draw() * 3.0) as u64;
                }
                _ => {
                    for c in &mut h[..=longest] {
                        *c = (draw() * (1u64 << 40) as f64) as u64;
                    }
                }
            }
            cases.push(h);
        }
        for h in &cases {
            check_packed_width(h);
        }
    }

    /// Chunks as the head cuts them: 120 samples 15 s apart, values of
    /// four kinds in turn (a 2-decimal gauge, a gauge random walk, a byte
    /// counter, 2-decimal CPU seconds).
    fn cut_chunks(count: usize) -> Vec<(Vec<i64>, Vec<f64>)> {
        let mut draw = draws(0x5eed_cafe_f00d);
        let (mut walk, mut bytes, mut cpu) = (50.0f64, 0.0f64, 0.0f64);
        (0..count)
            .map(|i| {
                let start = 1_700_000_000_000 + i as i64 * 1_800_000;
                let ts: Vec<i64> = (0..120).map(|j| start + j * 15_000).collect();
                let vs = (0..120)
                    .map(|_| match i % 4 {
                        0 => (draw() * 400.0).round() / 100.0,
                        1 => {
                            walk = (walk + (draw() - 0.5) * 4.0).round();
                            walk
                        }
                        2 => {
                            bytes += (draw() * 1_000_000.0).round();
                            bytes
                        }
                        _ => {
                            cpu = ((cpu + 15.0 * draw()) * 100.0).round() / 100.0;
                            cpu
                        }
                    })
                    .collect();
                (ts, vs)
            })
            .collect()
    }

    /// FNV-1a over a sequence of byte strings and their lengths.
    fn digest<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for chunk in chunks {
            for &b in (chunk.len() as u64).to_le_bytes().iter().chain(chunk) {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }

    /// The encoder's exact bytes on a fixed corpus (head cuts, block
    /// chunks, irregular timestamps, exceptions, 1 to 3 samples), pinned
    /// by digest: speed-ups of the planning must not change one byte.
    #[test]
    fn encoded_bytes_are_pinned() {
        let mut draw = draws(0x0dd_ba11);
        let mut inputs = cut_chunks(64);
        for n in [1usize, 2, 3, 7, 500, 2880] {
            let ts: Vec<i64> = (0..n as i64)
                .map(|i| 1_000 + i * 15_000 + (i * 7919) % 13)
                .collect();
            let ints = (0..n).map(|_| (draw() * 1e12).round() - 5e11).collect();
            let mut patched: Vec<f64> = (0..n).map(|i| i as f64 * 0.25).collect();
            patched[n / 2] = f64::NAN;
            let steps = (0..n).map(|i| ((i * i) % 97) as f64 * 1e-3).collect();
            inputs.extend([(ts.clone(), ints), (ts.clone(), patched), (ts, steps)]);
        }
        let mut out = Vec::new();
        for (ts, vs) in &inputs {
            for chunk in [encode(ts, vs), encode_small(ts, vs)] {
                out.push(chunk.unwrap_or_default());
            }
        }
        assert_eq!(digest(out.iter().map(Vec::as_slice)), PINNED_DIGEST);
    }

    /// Digest of [`encoded_bytes_are_pinned`]'s chunks.
    const PINNED_DIGEST: u64 = 7_021_248_203_000_423_890;

    /// Encoding 10,000 head cuts of 120 samples, for instruction counts:
    /// `cargo test -p cairn-tsdb --release --lib -- --ignored --exact
    /// chunk::dense::tests::encode_head_cuts` under `valgrind --tool=callgrind
    /// --toggle-collect='*dense*encode_small*'`.
    #[test]
    #[ignore]
    fn encode_head_cuts() {
        let inputs = cut_chunks(10_000);
        let mut bytes = 0usize;
        for (ts, vs) in &inputs {
            bytes += std::hint::black_box(encode_small(ts, vs)).map_or(0, |c| c.len());
        }
        println!("{} chunks, {bytes} bytes", inputs.len());
    }

    /// Floats that stress the decimal conversion and the fallbacks.
    fn adversarial_float() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            (-100_000i64..100_000, 0u32..6).prop_map(|(m, k)| m as f64 / 10f64.powi(k as i32)),
            (any::<i64>(), 0usize..23).prop_map(|(m, k)| m as f64 / POW10[k]),
            prop::sample::select(vec![
                0.0,
                -0.0,
                f64::NAN,
                f64::from_bits(STALE_NAN_BITS),
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::MIN_POSITIVE,
                f64::MAX,
                f64::MIN,
                5e-324,
                0.1 + 0.2,
                9_007_199_254_740_993.0,
                1e22,
                1e23,
            ]),
        ]
    }

    proptest! {
        #[test]
        fn encode_decode_is_bit_exact(
            start in any::<i64>(),
            steps in proptest::collection::vec(any::<i64>(), 0..300),
            step_kind in 0u8..4,
            values in proptest::collection::vec(adversarial_float(), 300),
        ) {
            let mut ts = vec![start];
            for step in &steps {
                let step = match step_kind {
                    0 => 15_000,
                    1 => 15_000 + step % 50,
                    2 => *step,
                    _ => step >> 20,
                };
                ts.push(ts[ts.len() - 1].wrapping_add(step));
            }
            let vs = &values[..ts.len()];
            if let Some(chunk) = encode(&ts, vs) {
                let (got_ts, got_vs) = decode(&chunk, ts[0], ts[ts.len() - 1]).unwrap();
                prop_assert_eq!(got_ts, ts);
                let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<u64>>();
                prop_assert_eq!(bits(&got_vs), bits(vs));
            }
            // `None`: the writer uses XOR, whose round trip xor.rs tests.
        }

        #[test]
        fn packed_width_matches_the_quadratic_search_on_any_histogram(
            counts in proptest::collection::vec(
                prop_oneof![Just(0u64), 0u64..4, 0u64..200, 0u64..(1u64 << 40)],
                65,
            ),
            longest in 0usize..65,
        ) {
            let mut h = [0u64; 65];
            h[..=longest].copy_from_slice(&counts[..=longest]);
            check_packed_width(&h);
        }

        #[test]
        fn decimal_values_always_encode_dense(
            mantissas in proptest::collection::vec(-1_000_000_000i64..1_000_000_000, 1..500),
            scale in 0usize..10,
        ) {
            let ts = regular(mantissas.len());
            let vs: Vec<f64> = mantissas.iter().map(|&m| from_decimal(m, scale)).collect();
            prop_assert!(round_trip(&ts, &vs).is_some());
        }

        #[test]
        fn entropy_columns_round_trip(
            values in proptest::collection::vec(
                prop_oneof![
                    0u64..2,
                    0u64..1501,
                    any::<u64>(),
                    (0u32..64).prop_map(|c| 1u64 << c),
                ],
                1..600,
            ),
        ) {
            entropy_column(&values);
        }

        #[test]
        fn corrupted_entropy_chunks_never_panic(
            seed in any::<u64>(),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
        ) {
            let mut draw = draws(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let vs: Vec<f64> = (0..2000).map(|_| (draw() * 400.0).round() / 100.0).collect();
            let ts = regular(vs.len());
            let chunk = encode(&ts, &vs).unwrap();
            // The values column is entropy-coded (smaller than packed).
            prop_assert!(chunk.len() < encode_with(&ts, &vs, false, true).unwrap().len());
            let mut bad = chunk.clone();
            for (at, byte) in flips {
                let at = at % bad.len();
                bad[at] ^= byte;
            }
            let _ = decode(&bad, ts[0], ts[ts.len() - 1]);
            let _ = decode(&chunk[..cut % chunk.len()], ts[0], ts[ts.len() - 1]);
        }

        #[test]
        fn arbitrary_entropy_columns_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            count in 1usize..5000,
        ) {
            let mut padded = bytes.clone();
            padded.resize(bytes.len() + PADDING, 0);
            let mut r = Reader::new(&padded[..bytes.len()]);
            r.padded = &padded;
            let mut out = Vec::new();
            if crate::chunk::entropy::read(&mut r, count, &mut out).is_ok() {
                prop_assert_eq!(out.len(), count);
                prop_assert!(r.pos <= bytes.len());
            }
        }

        #[test]
        fn uniform_columns_round_trip(
            values in proptest::collection::vec(
                prop_oneof![0u64..2, 0u64..1501, 0u64..=u32::MAX as u64],
                1..600,
            ),
        ) {
            uniform_column(&values);
        }

        #[test]
        fn arbitrary_uniform_columns_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            count in 1usize..5000,
        ) {
            let mut padded = bytes.clone();
            padded.resize(bytes.len() + PADDING, 0);
            let mut r = Reader::new(&padded[..bytes.len()]);
            r.padded = &padded;
            let mut out = Vec::new();
            if crate::chunk::entropy::uniform::read(&mut r, count, &mut out).is_ok() {
                prop_assert_eq!(out.len(), count);
                prop_assert!(r.pos <= bytes.len());
            }
            let mut r = Reader::new(&padded[..bytes.len()]);
            r.padded = &padded;
            let mut out = Vec::new();
            if crate::chunk::entropy::uniform::read_compact(&mut r, count, &mut out, false).is_ok() {
                prop_assert_eq!(out.len(), count);
                prop_assert!(r.pos <= bytes.len());
            }
            let mut r = Reader::new(&padded[..bytes.len()]);
            r.padded = &padded;
            let mut out = Vec::new();
            if crate::chunk::entropy::uniform::read_compact(&mut r, count, &mut out, true).is_ok() {
                prop_assert_eq!(out.len(), count);
                prop_assert_eq!(r.pos, bytes.len());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            min_t in any::<i64>(),
            max_t in any::<i64>(),
        ) {
            let _ = decode(&bytes, min_t, max_t);
            let mut compressed = vec![FLAG_ZSTD];
            compressed.extend_from_slice(&bytes);
            let _ = decode(&compressed, min_t, max_t);
            // The same with the timestamp column left to the range.
            let mut implied = bytes.clone();
            if let Some(flags) = implied.first_mut() {
                *flags |= FLAG_IMPLIED_TIMESTAMPS;
            }
            let _ = decode(&implied, min_t, max_t);
        }
    }
}
