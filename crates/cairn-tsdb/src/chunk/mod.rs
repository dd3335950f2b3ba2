//! Chunk encodings. One encoding today: [`xor`], Gorilla-style floats.
//! A closed chunk is immutable and shared ([`ClosedChunk`]); the head keeps one
//! open [`XorAppender`] per series.

mod bstream;
pub mod xor;

use std::sync::Arc;

pub use xor::{XorAppender, XorIter};

/// Samples per chunk before the head cuts a new one (Prometheus's target).
pub const SAMPLES_PER_CHUNK: u16 = 120;

/// An immutable, encoded chunk with the time range it covers (inclusive).
#[derive(Clone, Debug)]
pub struct ClosedChunk {
    pub min_t: i64,
    pub max_t: i64,
    pub data: Arc<[u8]>,
}

impl ClosedChunk {
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.min_t <= end && start <= self.max_t
    }

    pub fn iter(&self) -> XorIter<'_> {
        XorIter::new(&self.data)
    }
}
