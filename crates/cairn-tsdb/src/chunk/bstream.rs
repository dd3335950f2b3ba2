//! A bit stream over bytes: most significant bit first, as the XOR chunk needs.

/// Appends bits to a byte vector, most significant bit first.
#[derive(Clone, Debug, Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// Bits still free in the last byte (0 when a new byte is needed).
    free_bits_in_last_byte: u8,
}

impl BitWriter {
    /// Starts a stream after `prefix` (whole bytes, e.g. a header).
    pub fn with_prefix(prefix: &[u8], capacity: usize) -> BitWriter {
        let mut bytes = Vec::with_capacity(capacity.max(prefix.len()));
        bytes.extend_from_slice(prefix);
        BitWriter {
            bytes,
            free_bits_in_last_byte: 0,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn write_bit(&mut self, bit: bool) {
        self.write_bits(u64::from(bit), 1);
    }

    /// Writes the low `bit_count` bits of `value` (at most 64), high bit first.
    ///
    /// Fills the free bits of the last byte, then pushes whole bytes: at
    /// most 9 bytes, one capacity check per call (the append path calls
    /// this a few times per sample).
    #[inline]
    pub fn write_bits(&mut self, value: u64, bit_count: u8) {
        debug_assert!(bit_count <= 64);
        if bit_count == 0 {
            return;
        }
        let mut remaining = u32::from(bit_count);
        let value = value & (u64::MAX >> (64 - remaining));
        let free = u32::from(self.free_bits_in_last_byte);
        if free > 0 {
            let take = remaining.min(free);
            let bits = (value >> (remaining - take)) as u8;
            let last = self.bytes.last_mut().expect("free bits imply a last byte");
            *last |= bits << (free - take);
            self.free_bits_in_last_byte = (free - take) as u8;
            remaining -= take;
            if remaining == 0 {
                return;
            }
        }
        let new_bytes = remaining.div_ceil(8) as usize;
        if self.bytes.len() + new_bytes > self.bytes.capacity() {
            // Grow by a quarter, not double: an open chunk lives as long as
            // its series, and doubling wastes up to half.
            self.bytes
                .reserve_exact((self.bytes.capacity() / 4).max(16));
        }
        while remaining >= 8 {
            remaining -= 8;
            self.bytes.push((value >> remaining) as u8);
        }
        if remaining > 0 {
            // The low `remaining` bits, at the top of a new byte.
            self.bytes.push((value << (8 - remaining)) as u8);
            self.free_bits_in_last_byte = (8 - remaining) as u8;
        }
    }
}

/// Reads bits written by [`BitWriter`]; returns `None` past the end.
#[derive(Clone, Debug)]
pub struct BitReader<'a> {
    bytes: &'a [u8],
    /// Position in bits from the start of `bytes`.
    position: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8]) -> BitReader<'a> {
        BitReader { bytes, position: 0 }
    }

    pub fn read_bit(&mut self) -> Option<bool> {
        let byte = *self.bytes.get(self.position / 8)?;
        let bit = (byte >> (7 - self.position % 8)) & 1;
        self.position += 1;
        Some(bit == 1)
    }

    /// Reads `bit_count` bits (at most 64) as the low bits of the result.
    pub fn read_bits(&mut self, bit_count: u8) -> Option<u64> {
        debug_assert!(bit_count <= 64);
        if bit_count == 0 {
            return Some(0);
        }
        if self.position + usize::from(bit_count) > self.bytes.len() * 8 {
            return None;
        }
        // Load the (at most 9) bytes holding the bits into a u128 window,
        // big-endian, then shift the wanted bits to the bottom.
        let first_byte = self.position / 8;
        let available = (self.bytes.len() - first_byte).min(16);
        let mut window = [0u8; 16];
        window[..available].copy_from_slice(&self.bytes[first_byte..first_byte + available]);
        let skipped = (self.position % 8) as u32;
        let value = (u128::from_be_bytes(window) << skipped) >> (128 - u32::from(bit_count));
        self.position += usize::from(bit_count);
        Some(value as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn reads_return_what_was_written(
            fields in proptest::collection::vec((any::<u64>(), 0u8..=64), 0..50),
        ) {
            let mut writer = BitWriter::with_prefix(&[], 0);
            for (value, bits) in &fields {
                writer.write_bits(*value, *bits);
            }
            let bytes = writer.into_bytes();
            let total: usize = fields.iter().map(|(_, b)| usize::from(*b)).sum();
            prop_assert_eq!(bytes.len(), total.div_ceil(8));
            let mut reader = BitReader::new(&bytes);
            for (value, bits) in &fields {
                let mask = if *bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
                prop_assert_eq!(reader.read_bits(*bits), Some(value & mask));
            }
        }
    }

    #[test]
    fn bits_round_trip_across_byte_boundaries() {
        let mut writer = BitWriter::default();
        writer.write_bit(true);
        writer.write_bits(0b101, 3);
        writer.write_bits(u64::MAX, 64);
        writer.write_bits(0x1234, 13);
        writer.write_bits(0, 0);
        let bytes = writer.into_bytes();
        let mut reader = BitReader::new(&bytes);
        assert_eq!(reader.read_bit(), Some(true));
        assert_eq!(reader.read_bits(3), Some(0b101));
        assert_eq!(reader.read_bits(64), Some(u64::MAX));
        assert_eq!(reader.read_bits(13), Some(0x1234 & 0x1fff));
        assert_eq!(reader.read_bits(8), None);
    }
}
