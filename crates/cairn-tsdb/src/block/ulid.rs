//! Block IDs: ULIDs (48-bit milliseconds since the epoch, 80 random bits,
//! 26 characters of Crockford base32), so directory names sort by time.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new ID for the current time.
pub fn new() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    encode(ms, random_80())
}

/// 80 bits from the std hasher's per-process random keys and a counter.
fn random_80() -> u128 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = 0u128;
    for _ in 0..2 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        out = (out << 64) | u128::from(hasher.finish());
    }
    out & ((1u128 << 80) - 1)
}

/// Encodes a time and 80 random bits.
pub fn encode(ms: u64, random: u128) -> String {
    let value: u128 = (u128::from(ms & ((1 << 48) - 1)) << 80) | (random & ((1u128 << 80) - 1));
    let mut out = String::with_capacity(26);
    for i in (0..26).rev() {
        let digit = ((value >> (i * 5)) & 31) as usize;
        out.push(ALPHABET[digit] as char);
    }
    out
}

/// The 128-bit value of a ULID string, if it is one.
pub fn parse(s: &str) -> Option<u128> {
    if s.len() != 26 {
        return None;
    }
    let mut value: u128 = 0;
    for (i, byte) in s.bytes().enumerate() {
        let digit = ALPHABET.iter().position(|&c| c == byte)? as u128;
        if i == 0 && digit > 7 {
            return None;
        }
        value = (value << 5) | digit;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulids_round_trip_and_sort_by_time() {
        let a = encode(1, 5);
        let b = encode(2, 0);
        assert!(a < b);
        assert_eq!(parse(&a), Some((1u128 << 80) | 5));
        let fresh = new();
        assert_eq!(fresh.len(), 26);
        assert!(parse(&fresh).is_some());
        assert_ne!(new(), new());
        assert_eq!(parse("not-a-ulid"), None);
    }
}
