//! The entropy-coded mode of a dense chunk's integer column: values
//! `0 ..= max` coded by their magnitude class with a static rANS coder
//! (Duda, "Asymmetric numeral systems", 2013; the byte-wise 32-bit variant
//! F. Giesen describes as `rans_byte`; written here, no crate), plus the
//! bits below each class's leading one written as they are.
//!
//! Why this shape: bit packing (PFOR) rounds every value up to whole bits,
//! so a uniform range of `R` values costs `ceil(log2 R)` bits, and a column
//! of mostly zeros pays for each rare one as a patch. Here a value's class
//! is its bit length (0 ..= 64), coded with a per-column frequency table
//! normalised to [`SCALE`] (so a skewed column costs about its entropy);
//! within class `c` the value is one of `2^(c-1)` equally likely ones, so
//! its `c - 1` low bits go out raw. The top class (the one of `max`) holds
//! only `max - 2^(c-1) + 1` values: it is split into up to 128 symbols by
//! the high part of the offset, so a uniform range costs about `log2 R`
//! bits. The table lists only the classes from the lowest used one up to
//! the top (the top's frequency is implied): ~10 to 20 bytes for a column
//! of thousands of values. A static model (one table per column, counted
//! by the writer) rather than an adaptive one keeps decoding to one table
//! lookup per value; two coders with a stream each alternate, so decoding
//! follows two independent dependency chains.
//!
//! The [`uniform`] mode codes a column of values spread evenly over
//! `0 ..= max` exactly (`log2(max + 1)` bits each, no table).
//!
//! Byte layout: `docs/format.md`, "Dense chunks".

use super::dense::{DecodeError, Reader};
use crate::block::put_uvarint;

/// Frequencies sum to `2^SCALE_BITS`.
const SCALE_BITS: u32 = 12;
const SCALE: u32 = 1 << SCALE_BITS;
/// Classes: bit lengths 0 ..= 64.
const CLASSES: usize = 65;
/// Lower bound of the coder's state, which stays in `[L, 256 L)`.
const L: u32 = 1 << 23;
/// Most symbols the top class is split into (so that every symbol index
/// fits a byte of the slot table: 64 lower classes + 128).
const MAX_TOP_SYMBOLS: u32 = 128;
/// Most symbols of a column.
const MAX_SYMBOLS: usize = 64 + MAX_TOP_SYMBOLS as usize;

/// What a coder and decoder of one column share: the classes' frequencies
/// and the symbols they make.
///
/// Symbols are the classes below the top one, then the top class split by
/// the high part of the offset `u - 2^(top-1)`: `top_symbols` equal parts
/// of its frequency, each standing for `2^top_raw` values (the last for
/// fewer). The top class gets at least 8 slots per part so the parts' uneven
/// rounding costs little (< 0.01 bit), and at most 128 parts, so a value in
/// the last, partly used part wastes at most log2(1 + 1/127) bits.
#[derive(Clone, Debug)]
pub(super) struct Model {
    max: u64,
    /// Class of `max`.
    top: u32,
    /// Lowest class with a frequency.
    low: u32,
    /// Frequencies, summing to [`SCALE`]; zero outside `low ..= top`.
    freqs: [u32; CLASSES],
    top_start: u64,
    top_raw: u32,
    top_symbols: u32,
}

/// One symbol: its slots `[cum, cum + freq)` and the values it stands for,
/// `base + ` `width` raw bits.
#[derive(Clone, Copy, Debug, Default)]
struct Symbol {
    freq: u32,
    cum: u32,
    base: u64,
    width: u32,
}

impl Model {
    fn with_freqs(max: u64, low: u32, freqs: [u32; CLASSES]) -> Model {
        let top = 64 - max.leading_zeros();
        let top_start = if top == 0 { 0 } else { 1u64 << (top - 1) };
        let span = max - top_start; // values in the top class, minus one
        let f_top = freqs[top as usize];
        let cap = (f_top / 8).clamp(1, MAX_TOP_SYMBOLS);
        let mut top_raw = 0;
        while (span >> top_raw) >= u64::from(cap) {
            top_raw += 1;
        }
        Model {
            max,
            top,
            low,
            freqs,
            top_start,
            top_raw,
            top_symbols: (span >> top_raw) as u32 + 1,
        }
    }

    /// The symbols in slot order, and the symbol index of each class below
    /// the top (the top class's symbols follow them).
    fn symbols(&self) -> (Vec<Symbol>, [u8; CLASSES]) {
        let mut symbols = Vec::with_capacity(MAX_SYMBOLS);
        let mut index = [0u8; CLASSES];
        let mut cum = 0;
        for c in self.low..self.top {
            let freq = self.freqs[c as usize];
            if freq == 0 {
                continue;
            }
            index[c as usize] = symbols.len() as u8;
            symbols.push(Symbol {
                freq,
                cum,
                base: (1u64 << c) >> 1,
                width: c.saturating_sub(1),
            });
            cum += freq;
        }
        let f_top = self.freqs[self.top as usize];
        let parts = self.top_symbols;
        for h in 0..parts {
            let freq = (h + 1) * f_top / parts - h * f_top / parts;
            symbols.push(Symbol {
                freq,
                cum,
                base: self.top_start + (u64::from(h) << self.top_raw),
                width: self.top_raw,
            });
            cum += freq;
        }
        debug_assert_eq!(cum, SCALE);
        (symbols, index)
    }

    /// The model for values whose bit lengths have `histogram` (counts by
    /// class) and whose largest is `max`.
    pub(super) fn new(histogram: &[u64; CLASSES], max: u64) -> Model {
        let total: u64 = histogram.iter().sum();
        let top = (64 - max.leading_zeros()) as usize;
        let low = histogram.iter().position(|&c| c > 0).unwrap_or(top);
        let mut freqs = [0u32; CLASSES];
        let mut sum = 0u32;
        for (c, &count) in histogram.iter().enumerate() {
            if count > 0 {
                let f = ((count as u128 * u128::from(SCALE)) / u128::from(total.max(1))) as u32;
                freqs[c] = f.max(1);
                sum += freqs[c];
            }
        }
        // Give the rounding error to (or take it from) the largest classes,
        // where it costs least.
        while sum != SCALE {
            let largest = (0..CLASSES)
                .filter(|&c| sum < SCALE || freqs[c] > 1)
                .max_by_key(|&c| freqs[c])
                .expect("some class can take the difference");
            if sum < SCALE {
                freqs[largest] += SCALE - sum;
                sum = SCALE;
            } else {
                let step = (sum - SCALE).min(freqs[largest] - 1);
                freqs[largest] -= step;
                sum -= step;
            }
        }
        Model::with_freqs(max, low as u32, freqs)
    }

    /// Bits this model takes for values with `histogram`, table and framing
    /// included (the top class's values taken as spread evenly).
    pub(super) fn bits(&self, histogram: &[u64; CLASSES]) -> u64 {
        let mut bits = 0f64;
        for (c, &count) in histogram.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let code = f64::from(SCALE_BITS) - f64::from(self.freqs[c]).log2();
            let extra = if c as u32 == self.top {
                f64::from(self.top_raw) + f64::from(self.top_symbols).log2()
            } else {
                c.saturating_sub(1) as f64
            };
            bits += count as f64 * (code + extra);
        }
        // Table, final state, stream length.
        let table: u64 = (self.low..self.top)
            .map(|c| uvarint_len(u64::from(self.freqs[c as usize])))
            .sum();
        bits.ceil() as u64 + 8 * (uvarint_len(self.max) + 1 + table + 8 + 4)
    }

    /// Appends the model and `values` (each at most `max`, with the
    /// histogram the model was made from).
    pub(super) fn put(&self, out: &mut Vec<u8>, values: &[u64]) {
        put_uvarint(out, self.max);
        out.push(self.low as u8);
        for c in self.low..self.top {
            put_uvarint(out, u64::from(self.freqs[c as usize]));
        }
        let (symbols, index) = self.symbols();
        let top_first = symbols.len() - self.top_symbols as usize;
        let symbol_of = |u: u64| -> usize {
            let c = 64 - u.leading_zeros();
            if c == self.top {
                top_first + ((u - self.top_start) >> self.top_raw) as usize
            } else {
                usize::from(index[c as usize])
            }
        };
        // rANS codes backwards: the decoder reads the bytes written last
        // first. Two coders with a stream each take turns (value j goes to
        // coder j % 2), so a decoder follows two independent dependency
        // chains at once.
        let mut states = [L; 2];
        let mut emitted: [Vec<u8>; 2] = [
            Vec::with_capacity(values.len()),
            Vec::with_capacity(values.len()),
        ];
        for (j, &u) in values.iter().enumerate().rev() {
            let (x, emitted) = (&mut states[j % 2], &mut emitted[j % 2]);
            let s = symbols[symbol_of(u)];
            let x_max = ((L >> SCALE_BITS) << 8) * s.freq;
            while *x >= x_max {
                emitted.push(*x as u8);
                *x >>= 8;
            }
            *x = ((*x / s.freq) << SCALE_BITS) + *x % s.freq + s.cum;
        }
        put_uvarint(out, 4 + emitted[0].len() as u64);
        put_uvarint(out, 4 + emitted[1].len() as u64);
        for (x, emitted) in states.iter().zip(&emitted) {
            out.extend_from_slice(&x.to_le_bytes());
            out.extend(emitted.iter().rev());
        }
        // The raw bits go forwards, in value order.
        let mut raw = BitWriter::default();
        for &u in values {
            let s = symbols[symbol_of(u)];
            raw.put(u - s.base, s.width);
        }
        raw.finish(out);
    }
}

/// Reads an entropy-coded column of `count` values (after its base and
/// divisor) and appends them to `out`.
pub(super) fn read(
    r: &mut Reader<'_>,
    count: usize,
    out: &mut Vec<i64>,
) -> Result<(), DecodeError> {
    let max = r.uvarint()?;
    let top = 64 - max.leading_zeros();
    let low = u32::from(r.u8()?);
    if low > top {
        return Err(DecodeError("bad class table"));
    }
    let mut freqs = [0u32; CLASSES];
    let mut sum = 0u64;
    for c in low..top {
        let f = r.uvarint()?;
        if f >= u64::from(SCALE) || sum + f >= u64::from(SCALE) {
            return Err(DecodeError("bad class table"));
        }
        sum += f;
        freqs[c as usize] = f as u32;
    }
    freqs[top as usize] = SCALE - sum as u32;
    let (symbols, _) = Model::with_freqs(max, low, freqs).symbols();

    // Slot table: symbol, slot - cum and freq - 1, a byte and 12 bits each.
    let mut slots = [0u32; SCALE as usize];
    // 256 entries: any byte of a slot entry indexes them without a check.
    let mut bases = [0u64; 256];
    let mut widths = [0u32; 256];
    for (i, s) in symbols.iter().enumerate() {
        for (k, slot) in slots[s.cum as usize..(s.cum + s.freq) as usize]
            .iter_mut()
            .enumerate()
        {
            *slot = ((i as u32) << 24) | ((k as u32) << 12) | (s.freq - 1);
        }
        bases[i] = s.base;
        widths[i] = s.width;
    }

    let mut lens = [0usize; 2];
    for len in &mut lens {
        *len = usize::try_from(r.uvarint()?).map_err(|_| DecodeError("truncated"))?;
        if *len < 4 {
            return Err(DecodeError("bad entropy stream"));
        }
    }
    let padded = r.padded();
    let start0 = r.pos;
    let mut x0 = u32::from_le_bytes(r.take(lens[0])?[..4].try_into().expect("4 bytes"));
    let start1 = r.pos;
    let mut x1 = u32::from_le_bytes(r.take(lens[1])?[..4].try_into().expect("4 bytes"));
    if !(L..L << 8).contains(&x0) || !(L..L << 8).contains(&x1) {
        return Err(DecodeError("bad entropy state"));
    }
    // Renormalisation reads two bytes at a time at `p` from the padded
    // body; `p` is checked against its stream's length after each value.
    let (bytes0, bytes1) = (&padded[start0..], &padded[start1..]);
    let (mut p0, mut p1) = (4usize, 4usize);
    let raw_start = r.pos;
    let raw_bits = (r.len() - raw_start) as u64 * 8;
    let raw = &padded[raw_start..];
    let mut bit = 0u64;
    out.reserve(count);
    // The value of symbol `i`: its base plus its raw bits.
    macro_rules! emit {
        ($i:expr) => {{
            let i = $i;
            let width = widths[i];
            if bit + u64::from(width) > raw_bits {
                return Err(DecodeError("truncated entropy column"));
            }
            out.push(bases[i].wrapping_add(read_bits(raw, bit as usize, width)) as i64);
            bit += u64::from(width);
        }};
    }
    for _ in 0..count / 2 {
        let i0 = step(&slots, &mut x0, &mut p0, bytes0);
        let i1 = step(&slots, &mut x1, &mut p1, bytes1);
        if p0 > lens[0] || p1 > lens[1] {
            return Err(DecodeError("truncated entropy column"));
        }
        emit!(i0);
        emit!(i1);
    }
    if count % 2 == 1 {
        let i0 = step(&slots, &mut x0, &mut p0, bytes0);
        emit!(i0);
    }
    if x0 != L || x1 != L || p0 != lens[0] || p1 != lens[1] {
        return Err(DecodeError("bad entropy stream"));
    }
    r.pos = raw_start + bit.div_ceil(8) as usize;
    Ok(())
}

/// Decodes one symbol of a coder with state `x` reading at `p` in `bytes`:
/// the slot table's entry, then renormalisation without a data-dependent
/// branch. Returns the symbol's index.
#[inline(always)]
fn step(slots: &[u32; SCALE as usize], x: &mut u32, p: &mut usize, bytes: &[u8]) -> usize {
    let e = slots[(*x & (SCALE - 1)) as usize];
    *x = ((e & 0xfff) + 1) * (*x >> SCALE_BITS) + ((e >> 12) & 0xfff);
    // x >= 2^11 here, so two bytes always bring it back to >= L.
    let n = u32::from(*x < L) + u32::from(*x < L >> 8);
    let two = (u32::from(bytes[*p]) << 8) | u32::from(bytes[*p + 1]);
    *x = (*x << (8 * n)) | (two >> (8 * (2 - n)));
    *p += n as usize;
    (e >> 24) as usize
}

/// `width` bits at bit `bit` of `bytes` (LSB first); `bytes` has at least
/// 16 readable bytes from `bit / 8`.
#[inline(always)]
fn read_bits(bytes: &[u8], bit: usize, width: u32) -> u64 {
    if width <= 56 {
        let word = u64::from_le_bytes(bytes[bit / 8..bit / 8 + 8].try_into().expect("8 bytes"));
        (word >> (bit % 8)) & ((1u64 << width) - 1)
    } else {
        let word = u128::from_le_bytes(bytes[bit / 8..bit / 8 + 16].try_into().expect("16 bytes"));
        (word >> (bit % 8)) as u64 & low_mask(width)
    }
}

fn low_mask(width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

fn uvarint_len(v: u64) -> u64 {
    u64::from((64 - v.leading_zeros()).max(1).div_ceil(7))
}

/// Packs bits LSB first.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    acc: u128,
    pending: u32,
}

impl BitWriter {
    fn put(&mut self, value: u64, width: u32) {
        self.acc |= u128::from(value) << self.pending;
        self.pending += width;
        while self.pending >= 8 {
            self.bytes.push(self.acc as u8);
            self.acc >>= 8;
            self.pending -= 8;
        }
    }

    fn finish(mut self, out: &mut Vec<u8>) {
        if self.pending > 0 {
            self.bytes.push(self.acc as u8);
        }
        out.extend_from_slice(&self.bytes);
    }
}

/// The uniform mode (column modes 8 ..= 10): every value `0 ..= max` is
/// one of `M = max + 1` equally likely symbols, coded exactly with rANS
/// over a total of `M` (no table, no class split): `n log2 M` bits plus
/// the coders' final states. The state is a u64 in `[K M, 2^32 K M)` with
/// `K = floor(2^32 / M)`, renormalised by 32-bit words, so coding a value
/// is `x * M + u` and decoding `x % M`, `x / M`, and at most one word in.
pub(super) mod uniform {
    use super::super::dense::{DecodeError, Reader};
    use crate::block::put_uvarint;

    /// Largest `M` (so `K >= 1` and the state fits a u64).
    pub(in crate::chunk) const MAX_RANGE: u64 = 1 << 32;

    fn lower(range: u64) -> u64 {
        (MAX_RANGE / range) * range
    }

    /// Bits the compact mode ([`put`]) takes for `count` values up to
    /// `max`, framing included; `None` when `max + 1` is above
    /// [`MAX_RANGE`].
    pub(in crate::chunk) fn bits(count: usize, max: u64) -> Option<u64> {
        let range = max.checked_add(1).filter(|&m| m <= MAX_RANGE)?;
        let (n0, n1) = (count.div_ceil(2), count / 2);
        let tails = tail_len(range, lower(range), n0) + tail_len(range, lower(range), n1);
        let payload = ((count - tails) as f64 * (range as f64).log2()).ceil() as u64;
        // Whole 32-bit words, two final states (6.5 bytes each on average),
        // max and (up to) two lengths.
        Some(payload.div_ceil(32) * 32 + 8 * (13 + super::uvarint_len(max) + 4))
    }

    /// How many of a coder's `n` values its initial state carries: the
    /// most `t` with `range^t <= low` (at most 32, and `n`).
    fn tail_len(range: u64, low: u64, n: usize) -> usize {
        let mut pow = 1u64;
        let mut t = 0;
        while t < n.min(32) {
            match pow.checked_mul(range).filter(|&p| p <= low) {
                Some(p) => pow = p,
                None => break,
            }
            t += 1;
        }
        t
    }

    /// Appends `max` and the coded `values` (each at most `max`, with
    /// `max + 1 <= MAX_RANGE`) in the compact layout (column modes 32 ..=
    /// 34): each coder starts from `low` plus its last values as digits
    /// base `M` (bits back: the state the decoder ends in carries them
    /// instead of a constant), and its final state takes 5 to 8 bytes, as
    /// few as hold it, told by its stream's length mod 4. `last`: the
    /// column ends the chunk's body, so stream 1's length is left out (it
    /// runs to the end).
    pub(in crate::chunk) fn put(out: &mut Vec<u8>, values: &[u64], max: u64, last: bool) {
        let range = max + 1;
        debug_assert!(range <= MAX_RANGE && values.iter().all(|&u| u <= max));
        let low = lower(range);
        let k = low / range;
        let count = values.len();
        let n = [count.div_ceil(2), count / 2];
        let tails = [tail_len(range, low, n[0]), tail_len(range, low, n[1])];
        // Coder c's value i is values[2 i + c]; its last `tails[c]` ones
        // become the initial state's digits, the first of them lowest.
        let mut states = [0u64; 2];
        for c in 0..2 {
            let mut w = 0u64;
            for i in (n[c] - tails[c]..n[c]).rev() {
                w = w * range + values[2 * i + c];
            }
            states[c] = low + w;
        }
        let mut words: [Vec<u32>; 2] =
            [Vec::with_capacity(count / 4), Vec::with_capacity(count / 4)];
        for (j, &u) in values.iter().enumerate().rev() {
            let c = j % 2;
            if j / 2 >= n[c] - tails[c] {
                continue;
            }
            let (x, words) = (&mut states[c], &mut words[c]);
            if *x >> 32 >= k {
                words.push(*x as u32);
                *x >>= 32;
            }
            *x = *x * range + u;
        }
        let state_len = |x: u64| ((64 - x.leading_zeros() as usize).div_ceil(8)).max(5);
        put_uvarint(out, max);
        for (x, words) in states.iter().zip(&words).take(if last { 1 } else { 2 }) {
            put_uvarint(out, (state_len(*x) + 4 * words.len()) as u64);
        }
        for (x, words) in states.iter().zip(&words) {
            out.extend_from_slice(&x.to_le_bytes()[..state_len(*x)]);
            for w in words.iter().rev() {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
    }

    /// Reads a compact uniform column ([`put`]) of `count` values (after
    /// its base and divisor) and appends them to `out`.
    pub(in crate::chunk) fn read_compact(
        r: &mut Reader<'_>,
        count: usize,
        out: &mut Vec<i64>,
        last: bool,
    ) -> Result<(), DecodeError> {
        let max = r.uvarint()?;
        let range = max
            .checked_add(1)
            .filter(|&m| m <= MAX_RANGE)
            .ok_or(DecodeError("bad uniform range"))?;
        let low = lower(range);
        let mut lens = [0usize; 2];
        let written = if last { 1 } else { 2 };
        for len in &mut lens[..written] {
            *len = usize::try_from(r.uvarint()?).map_err(|_| DecodeError("truncated"))?;
        }
        if last {
            // Stream 1 runs to the end of the body.
            lens[1] = (r.len() - r.pos)
                .checked_sub(lens[0])
                .ok_or(DecodeError("truncated"))?;
        }
        if lens.iter().any(|&len| len < 5) {
            return Err(DecodeError("bad uniform stream"));
        }
        let padded = r.padded();
        let mut x = [0u64; 2];
        let mut p = [0usize; 2];
        let mut starts = [0usize; 2];
        for c in 0..2 {
            // 5, 6, 7 or 8 bytes of state, as the length says mod 4.
            let state_len = 5 + (lens[c] - 5) % 4;
            starts[c] = r.pos;
            let stream = r.take(lens[c])?;
            let mut le = [0u8; 8];
            le[..state_len].copy_from_slice(&stream[..state_len]);
            x[c] = u64::from_le_bytes(le);
            p[c] = state_len;
            if x[c] < low || x[c] >> 32 >= low {
                return Err(DecodeError("bad uniform state"));
            }
        }
        let (bytes0, bytes1) = (&padded[starts[0]..], &padded[starts[1]..]);
        let n = [count.div_ceil(2), count / 2];
        let tails = [tail_len(range, low, n[0]), tail_len(range, low, n[1])];
        let streamed = [n[0] - tails[0], n[1] - tails[1]];
        let pairs = streamed[0].min(streamed[1]);
        let first = out.len();
        out.reserve(count);
        let [mut x0, mut x1] = x;
        let [mut p0, mut p1] = p;
        // Values 0 .. 2 pairs alternate coders: pushed in order (the hot
        // loop); the few after them are put in place below.
        for _ in 0..pairs {
            let u0 = step(&mut x0, &mut p0, bytes0, range, low);
            let u1 = step(&mut x1, &mut p1, bytes1, range, low);
            if p0 > lens[0] || p1 > lens[1] {
                return Err(DecodeError("truncated uniform column"));
            }
            out.push(u0 as i64);
            out.push(u1 as i64);
        }
        out.resize(first + count, 0);
        let dst = &mut out[first..];
        for i in pairs..streamed[0] {
            dst[2 * i] = step(&mut x0, &mut p0, bytes0, range, low) as i64;
        }
        for i in pairs..streamed[1] {
            dst[2 * i + 1] = step(&mut x1, &mut p1, bytes1, range, low) as i64;
        }
        if p0 != lens[0] || p1 != lens[1] {
            return Err(DecodeError("bad uniform stream"));
        }
        for (c, x) in [x0, x1].into_iter().enumerate() {
            // The state the encoder started from: low plus the tail digits.
            let mut w = x - low;
            for i in streamed[c]..n[c] {
                dst[2 * i + c] = (w % range) as i64;
                w /= range;
            }
            if w != 0 {
                return Err(DecodeError("bad uniform stream"));
            }
        }
        Ok(())
    }

    /// Appends `max` and the coded `values` in the first uniform layout
    /// (column modes 8 ..= 10: both coders start from `low`, 8-byte final
    /// states), which blocks written before the compact one hold.
    #[cfg(test)]
    pub(in crate::chunk) fn put_v1(out: &mut Vec<u8>, values: &[u64], max: u64) {
        let range = max + 1;
        debug_assert!(range <= MAX_RANGE && values.iter().all(|&u| u <= max));
        let low = lower(range);
        let k = low / range;
        let mut states = [low; 2];
        let mut words: [Vec<u32>; 2] = [
            Vec::with_capacity(values.len() / 4),
            Vec::with_capacity(values.len() / 4),
        ];
        for (j, &u) in values.iter().enumerate().rev() {
            let (x, words) = (&mut states[j % 2], &mut words[j % 2]);
            if *x >> 32 >= k {
                words.push(*x as u32);
                *x >>= 32;
            }
            *x = *x * range + u;
        }
        put_uvarint(out, max);
        put_uvarint(out, 8 + 4 * words[0].len() as u64);
        put_uvarint(out, 8 + 4 * words[1].len() as u64);
        for (x, words) in states.iter().zip(&words) {
            out.extend_from_slice(&x.to_le_bytes());
            for w in words.iter().rev() {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
    }

    /// Reads a first-layout uniform column ([`put_v1`], modes 8 ..= 10) of
    /// `count` values (after its base and divisor) and appends them to
    /// `out`.
    pub(in crate::chunk) fn read(
        r: &mut Reader<'_>,
        count: usize,
        out: &mut Vec<i64>,
    ) -> Result<(), DecodeError> {
        let max = r.uvarint()?;
        let range = max
            .checked_add(1)
            .filter(|&m| m <= MAX_RANGE)
            .ok_or(DecodeError("bad uniform range"))?;
        let low = lower(range);
        let mut lens = [0usize; 2];
        for len in &mut lens {
            *len = usize::try_from(r.uvarint()?).map_err(|_| DecodeError("truncated"))?;
            if *len < 8 || *len % 4 != 0 {
                return Err(DecodeError("bad uniform stream"));
            }
        }
        let padded = r.padded();
        let start0 = r.pos;
        let mut x0 = u64::from_le_bytes(r.take(lens[0])?[..8].try_into().expect("8 bytes"));
        let start1 = r.pos;
        let mut x1 = u64::from_le_bytes(r.take(lens[1])?[..8].try_into().expect("8 bytes"));
        let valid = |x: u64| x >= low && x >> 32 < low;
        if !valid(x0) || !valid(x1) {
            return Err(DecodeError("bad uniform state"));
        }
        let (bytes0, bytes1) = (&padded[start0..], &padded[start1..]);
        let (mut p0, mut p1) = (8usize, 8usize);
        out.reserve(count);
        for _ in 0..count / 2 {
            let u0 = step(&mut x0, &mut p0, bytes0, range, low);
            let u1 = step(&mut x1, &mut p1, bytes1, range, low);
            if p0 > lens[0] || p1 > lens[1] {
                return Err(DecodeError("truncated uniform column"));
            }
            out.push(u0 as i64);
            out.push(u1 as i64);
        }
        if count % 2 == 1 {
            let u0 = step(&mut x0, &mut p0, bytes0, range, low);
            if p0 > lens[0] {
                return Err(DecodeError("truncated uniform column"));
            }
            out.push(u0 as i64);
        }
        if x0 != low || x1 != low || p0 != lens[0] || p1 != lens[1] {
            return Err(DecodeError("bad uniform stream"));
        }
        Ok(())
    }

    /// Decodes one value; `bytes` has at least 4 readable bytes at `p`
    /// (the body's padding covers a read just past the stream, which the
    /// caller then refuses).
    #[inline(always)]
    fn step(x: &mut u64, p: &mut usize, bytes: &[u8], range: u64, low: u64) -> u64 {
        let u = *x % range;
        *x /= range;
        let word = u64::from(u32::from_le_bytes(
            bytes[*p..*p + 4].try_into().expect("4 bytes"),
        ));
        if *x < low {
            *x = (*x << 32) | word;
            *p += 4;
        }
        u
    }
}
