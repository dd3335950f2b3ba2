//! A fast hasher for maps keyed by series IDs (u64) or by label hashes.
//! Keys are not attacker-chosen byte strings (IDs are allocated by us; label
//! hashes are already outputs of the head's randomly seeded foldhash), so a
//! multiplicative hash (as rustc's FxHash) is enough and much cheaper than
//! SipHash.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        // FxHash's step; the rotation spreads high bits into the low bits
        // that hashbrown uses for bucket selection.
        self.0 = (self.0.rotate_left(5) ^ value)
            .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
            .rotate_left(26);
    }
}

pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;
