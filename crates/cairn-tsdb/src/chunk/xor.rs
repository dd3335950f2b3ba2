//! The XOR float chunk: delta-of-delta timestamps and XOR-compressed values
//! (Gorilla, as Prometheus's `chunkenc.XORChunk`). Byte layout: `docs/format.md`, "Chunks".

use super::bstream::{BitReader, BitWriter};

/// Bytes before the bit stream: the sample count, u16 big-endian.
const HEADER_LEN: usize = 2;

/// Timestamp delta-of-delta buckets: (prefix bits, prefix length, value bits).
/// A value that fits none of them is written as `1111` + 64 bits.
const DOD_BUCKETS: [(u64, u8, u8); 3] = [(0b10, 2, 14), (0b110, 3, 17), (0b1110, 4, 20)];

/// Marks "no leading/trailing window yet" for the XOR value encoding.
const NO_WINDOW: u8 = 0xff;

/// Writes samples into one chunk. Timestamps must not decrease (the head
/// guarantees strictly increasing); arithmetic wraps so any i64 sequence
/// round-trips.
#[derive(Clone, Debug)]
pub struct XorAppender {
    stream: BitWriter,
    sample_count: u16,
    last_t: i64,
    last_t_delta: i64,
    last_v_bits: u64,
    leading: u8,
    trailing: u8,
}

impl Default for XorAppender {
    fn default() -> Self {
        XorAppender::new()
    }
}

impl XorAppender {
    pub fn new() -> XorAppender {
        XorAppender {
            // ~120 samples of regular data take well under 256 bytes.
            stream: BitWriter::with_prefix(&[0; HEADER_LEN], 64),
            sample_count: 0,
            last_t: 0,
            last_t_delta: 0,
            last_v_bits: 0,
            leading: NO_WINDOW,
            trailing: 0,
        }
    }

    pub fn sample_count(&self) -> u16 {
        self.sample_count
    }

    /// The newest sample appended: timestamp and value bits.
    pub fn last(&self) -> Option<(i64, u64)> {
        (self.sample_count > 0).then_some((self.last_t, self.last_v_bits))
    }

    /// A copy of the chunk so far, a valid chunk. The sample-count header
    /// is written into copies and the finished chunk, not on every append
    /// (it sits on another cache line than the bits being appended).
    pub fn to_shared(&self) -> std::sync::Arc<[u8]> {
        let mut chunk: std::sync::Arc<[u8]> = std::sync::Arc::from(self.stream.bytes());
        std::sync::Arc::get_mut(&mut chunk).expect("a new Arc is unique")[..HEADER_LEN]
            .copy_from_slice(&self.sample_count.to_be_bytes());
        chunk
    }

    /// Bytes encoded so far, header included.
    pub fn encoded_len(&self) -> usize {
        self.stream.bytes().len()
    }

    /// The last byte encoded: the one the next append writes into.
    pub fn last_byte(&self) -> u8 {
        self.stream.bytes().last().copied().unwrap_or(0)
    }

    /// The finished chunk.
    pub fn into_bytes(self) -> Vec<u8> {
        let mut bytes = self.into_untrimmed_bytes();
        bytes.shrink_to_fit();
        bytes
    }

    /// The finished chunk, its buffer not trimmed: for a caller that
    /// copies the bytes out and drops the vector ([`XorAppender::into_bytes`]
    /// would give the spare bytes back to the allocator first, a wasted
    /// `realloc`).
    pub fn into_untrimmed_bytes(self) -> Vec<u8> {
        let count = self.sample_count.to_be_bytes();
        let mut bytes = self.stream.into_bytes();
        bytes[..HEADER_LEN].copy_from_slice(&count);
        bytes
    }

    /// Appends one sample. Panics past `u16::MAX` samples (the head cuts at ~120).
    pub fn append(&mut self, t: i64, v: f64) {
        let v_bits = v.to_bits();
        match self.sample_count {
            0 => {
                self.stream.write_bits(t as u64, 64);
                self.stream.write_bits(v_bits, 64);
            }
            _ => {
                let t_delta = t.wrapping_sub(self.last_t);
                let delta_of_delta = t_delta.wrapping_sub(self.last_t_delta);
                self.write_delta_of_delta(delta_of_delta);
                self.write_value(v_bits);
                self.last_t_delta = t_delta;
            }
        }
        self.last_t = t;
        self.last_v_bits = v_bits;
        self.sample_count = self
            .sample_count
            .checked_add(1)
            .expect("xor chunk holds at most u16::MAX samples");
    }

    fn write_delta_of_delta(&mut self, delta_of_delta: i64) {
        if delta_of_delta == 0 {
            self.stream.write_bit(false);
            return;
        }
        for (prefix, prefix_len, value_bits) in DOD_BUCKETS {
            if fits_in_bits(delta_of_delta, value_bits) {
                // Prefix and value in one write (at most 24 bits).
                let value = delta_of_delta as u64 & ((1u64 << value_bits) - 1);
                self.stream
                    .write_bits((prefix << value_bits) | value, prefix_len + value_bits);
                return;
            }
        }
        self.stream.write_bits(0b1111, 4);
        self.stream.write_bits(delta_of_delta as u64, 64);
    }

    fn write_value(&mut self, v_bits: u64) {
        let xor = v_bits ^ self.last_v_bits;
        if xor == 0 {
            self.stream.write_bit(false);
            return;
        }
        // Five bits hold the leading-zero count, so it is capped at 31.
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != NO_WINDOW && leading >= self.leading && trailing >= self.trailing {
            // The meaningful bits fit in the previous window: reuse it.
            // Control bits `10`, then the bits (one write when they fit).
            let significant = 64 - self.leading - self.trailing;
            let bits = xor >> self.trailing;
            if significant <= 62 {
                self.stream
                    .write_bits((0b10 << significant) | bits, significant + 2);
            } else {
                self.stream.write_bits(0b10, 2);
                self.stream.write_bits(bits, significant);
            }
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        let significant = 64 - leading - trailing;
        // Control bits `11`, five bits of leading zeros, six of the
        // significant count (64 does not fit; 0 stands for it, 0 itself is
        // impossible), then the bits.
        let header = (0b11 << 11) | (u64::from(leading) << 6) | (u64::from(significant) & 0x3f);
        let bits = xor >> trailing;
        if significant <= 51 {
            self.stream
                .write_bits((header << significant) | bits, significant + 13);
        } else {
            self.stream.write_bits(header, 13);
            self.stream.write_bits(bits, significant);
        }
    }
}

/// Whether `value` is representable in the `bits`-bit bucket. The range is
/// `-(2^(bits-1) - 1) ..= 2^(bits-1)`, as Prometheus's `bitRange`; the
/// decoder reads a raw value above `2^(bits-1)` as negative.
fn fits_in_bits(value: i64, bits: u8) -> bool {
    let half = 1i64 << (bits - 1);
    -(half - 1) <= value && value <= half
}

fn sign_extend(raw: u64, bits: u8) -> i64 {
    let raw = raw as i64;
    if raw > (1i64 << (bits - 1)) {
        raw - (1i64 << bits)
    } else {
        raw
    }
}

/// Number of samples in an encoded chunk (0 for a chunk too short to hold a header).
pub fn sample_count(chunk: &[u8]) -> u16 {
    match chunk {
        [high, low, ..] => u16::from_be_bytes([*high, *low]),
        _ => 0,
    }
}

/// Iterates the samples of an encoded chunk. Malformed input ends the
/// iteration early (never panics); [`XorIter::is_truncated`] tells.
#[derive(Clone, Debug)]
pub struct XorIter<'a> {
    reader: BitReader<'a>,
    remaining: u16,
    read: u16,
    t: i64,
    t_delta: i64,
    v_bits: u64,
    leading: u8,
    trailing: u8,
    truncated: bool,
}

impl<'a> XorIter<'a> {
    pub fn new(chunk: &'a [u8]) -> XorIter<'a> {
        let body = chunk.get(HEADER_LEN..).unwrap_or(&[]);
        XorIter {
            reader: BitReader::new(body),
            remaining: sample_count(chunk),
            read: 0,
            t: 0,
            t_delta: 0,
            v_bits: 0,
            leading: 0,
            trailing: 0,
            truncated: false,
        }
    }

    /// Whether the stream ended before the declared sample count.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    fn read_next(&mut self) -> Option<(i64, f64)> {
        if self.read == 0 {
            self.t = self.reader.read_bits(64)? as i64;
            self.v_bits = self.reader.read_bits(64)?;
            return Some((self.t, f64::from_bits(self.v_bits)));
        }
        let delta_of_delta = self.read_delta_of_delta()?;
        self.t_delta = self.t_delta.wrapping_add(delta_of_delta);
        self.t = self.t.wrapping_add(self.t_delta);
        self.read_value()?;
        Some((self.t, f64::from_bits(self.v_bits)))
    }

    fn read_delta_of_delta(&mut self) -> Option<i64> {
        let mut ones = 0;
        while ones < 4 && self.reader.read_bit()? {
            ones += 1;
        }
        let value_bits = match ones {
            0 => return Some(0),
            1 => 14,
            2 => 17,
            3 => 20,
            _ => return Some(self.reader.read_bits(64)? as i64),
        };
        let raw = self.reader.read_bits(value_bits)?;
        Some(sign_extend(raw, value_bits))
    }

    fn read_value(&mut self) -> Option<()> {
        if !self.reader.read_bit()? {
            return Some(());
        }
        if self.reader.read_bit()? {
            self.leading = self.reader.read_bits(5)? as u8;
            let mut significant = self.reader.read_bits(6)? as u8;
            if significant == 0 {
                significant = 64;
            }
            if self.leading + significant > 64 {
                return None;
            }
            self.trailing = 64 - self.leading - significant;
        }
        let significant = 64 - self.leading - self.trailing;
        if significant == 0 {
            // A window reused before any was set: malformed.
            return None;
        }
        let bits = self.reader.read_bits(significant)?;
        self.v_bits ^= bits << self.trailing;
        Some(())
    }
}

impl Iterator for XorIter<'_> {
    type Item = (i64, f64);

    fn next(&mut self) -> Option<(i64, f64)> {
        if self.remaining == 0 || self.truncated {
            return None;
        }
        match self.read_next() {
            Some(sample) => {
                self.remaining -= 1;
                self.read += 1;
                Some(sample)
            }
            None => {
                self.truncated = true;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.remaining)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_model::STALE_NAN_BITS;
    use proptest::prelude::*;

    fn encode(samples: &[(i64, u64)]) -> Vec<u8> {
        let mut appender = XorAppender::new();
        for (t, bits) in samples {
            appender.append(*t, f64::from_bits(*bits));
        }
        appender.into_bytes()
    }

    fn decode(chunk: &[u8]) -> Vec<(i64, u64)> {
        let mut iter = XorIter::new(chunk);
        let out: Vec<(i64, u64)> = iter.by_ref().map(|(t, v)| (t, v.to_bits())).collect();
        assert!(!iter.is_truncated());
        out
    }

    #[test]
    fn empty_chunk_has_no_samples() {
        assert_eq!(decode(&XorAppender::new().into_bytes()), vec![]);
        assert_eq!(XorIter::new(&[]).count(), 0);
    }

    #[test]
    fn nan_and_staleness_marker_round_trip_bit_exactly() {
        let samples = vec![
            (1000, 1.5f64.to_bits()),
            (2000, STALE_NAN_BITS),
            (3000, f64::NAN.to_bits()),
            (4000, 0x7ff8_0000_0000_0001),
            (5000, STALE_NAN_BITS),
            (6000, (-0.0f64).to_bits()),
            (7000, f64::INFINITY.to_bits()),
        ];
        assert_eq!(decode(&encode(&samples)), samples);
    }

    #[test]
    fn regular_scrapes_compress_to_about_two_bytes_per_sample() {
        let samples: Vec<(i64, u64)> = (0..120)
            .map(|i| (1_700_000_000_000 + i * 15_000, (i as f64).to_bits()))
            .collect();
        let chunk = encode(&samples);
        assert!(chunk.len() < 120 * 3, "chunk is {} bytes", chunk.len());
        assert_eq!(decode(&chunk), samples);
    }

    #[test]
    fn every_delta_of_delta_bucket_edge_round_trips() {
        let mut t = 0i64;
        let mut samples = vec![(t, 0u64)];
        let mut delta = 0i64;
        for dod in [
            0i64,
            1,
            -1,
            8191,
            8192,
            -8191,
            -8192,
            65536,
            -65535,
            -65536,
            524288,
            -524287,
            -524288,
            524289,
            1 << 40,
            -(1 << 40),
        ] {
            delta += dod;
            t += delta;
            samples.push((t, t as u64));
        }
        assert_eq!(decode(&encode(&samples)), samples);
    }

    #[test]
    fn malformed_input_ends_early_without_panicking() {
        let chunk = encode(&[(1, 1), (2, 2), (3, 3)]);
        for cut in 0..chunk.len() {
            let _ = XorIter::new(&chunk[..cut]).count();
        }
        // A header claiming more samples than the stream holds: the real
        // samples come first, then the iteration stops (padding bits may
        // decode as a few repeats first) and reports truncation.
        let mut lying = chunk.clone();
        lying[0] = 0xff;
        let mut iter = XorIter::new(&lying);
        let decoded: Vec<(i64, u64)> = iter.by_ref().map(|(t, v)| (t, v.to_bits())).collect();
        assert_eq!(decoded[..3], [(1, 1), (2, 2), (3, 3)]);
        assert!(decoded.len() < 3 + 8);
        assert!(iter.is_truncated());
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(
            start in any::<i64>(),
            steps in proptest::collection::vec(any::<u64>(), 0..200),
            values in proptest::collection::vec(any::<u64>(), 200),
            step_scale in prop_oneof![Just(0u32), Just(16u32), Just(40u32), Just(63u32)],
        ) {
            // Ascending timestamps, from regular to wildly irregular, saturating at i64::MAX.
            let mut t = start;
            let mut samples = vec![(t, values[0])];
            for (i, step) in steps.iter().enumerate() {
                let step = if step_scale == 0 { 15_000 } else { step >> step_scale };
                t = t.saturating_add(step as i64);
                samples.push((t, values[(i + 1) % values.len()]));
            }
            prop_assert_eq!(decode(&encode(&samples)), samples);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = XorIter::new(&bytes).count();
        }
    }
}
