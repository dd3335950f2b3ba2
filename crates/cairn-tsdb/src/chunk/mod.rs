//! Chunk encodings: [`xor`] (Gorilla-style floats, the head's and old
//! blocks') and [`dense`] (decimal integer columns, what the block writer
//! writes). A closed chunk is immutable and shared ([`ClosedChunk`]); the
//! head keeps one open [`XorAppender`] per series.

mod bstream;
pub mod dense;
mod entropy;
pub mod xor;

use std::sync::Arc;

pub use dense::DenseIter;
pub use xor::{XorAppender, XorIter};

/// Samples per chunk before the head cuts a new one (Prometheus's target).
pub const SAMPLES_PER_CHUNK: u16 = 120;

/// Encoding byte of an XOR chunk (block chunk framing, `docs/format.md`).
pub const ENCODING_XOR: u8 = 1;
/// Encoding byte of a dense chunk.
pub const ENCODING_DENSE: u8 = 2;

/// An immutable, encoded chunk with the time range it covers (inclusive).
///
/// `data` is an XOR chunk's bytes as they are; a chunk in any other
/// encoding is held as `00 00` (an XOR sample count of zero, which no closed
/// XOR chunk has), its encoding byte, then its bytes: see [`ClosedChunk::tagged`].
#[derive(Clone, Debug)]
pub struct ClosedChunk {
    pub min_t: i64,
    pub max_t: i64,
    pub data: Arc<[u8]>,
}

/// The prefix of a non-XOR chunk's in-memory bytes.
const TAG: [u8; 2] = [0, 0];

impl ClosedChunk {
    /// A chunk of `encoding` ([`ENCODING_XOR`] or [`ENCODING_DENSE`]) from
    /// its encoded bytes.
    pub fn tagged(min_t: i64, max_t: i64, encoding: u8, bytes: &[u8]) -> ClosedChunk {
        ClosedChunk::tagged_parts(min_t, max_t, encoding, &[], bytes)
    }

    /// [`ClosedChunk::tagged`] of the bytes `prefix` then `bytes` (a dense
    /// chunk's flags byte, which a block keeps in its encoding byte, then
    /// the rest); `prefix` must be empty for XOR.
    pub fn tagged_parts(
        min_t: i64,
        max_t: i64,
        encoding: u8,
        prefix: &[u8],
        bytes: &[u8],
    ) -> ClosedChunk {
        let data: Arc<[u8]> = if encoding == ENCODING_XOR {
            debug_assert!(prefix.is_empty());
            Arc::from(bytes)
        } else {
            // One allocation (the Arc's), not a Vec copied into an Arc.
            let head = TAG.len() + 1 + prefix.len();
            let mut tagged = Arc::<[u8]>::new_uninit_slice(bytes.len() + head);
            let slots = Arc::get_mut(&mut tagged).expect("a new Arc is unique");
            let (header, body) = slots.split_at_mut(head);
            for (slot, &byte) in header
                .iter_mut()
                .zip(TAG.iter().chain([&encoding]).chain(prefix))
            {
                slot.write(byte);
            }
            // SAFETY: `body` is exactly `bytes.len()` slots of u8 and does
            // not overlap `bytes` (it was just allocated); with the header
            // written above every slot is initialised.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    body.as_mut_ptr().cast(),
                    bytes.len(),
                );
                tagged.assume_init()
            }
        };
        ClosedChunk { min_t, max_t, data }
    }

    /// The chunk's encoding byte and encoded bytes (without the in-memory tag).
    pub fn encoded(&self) -> (u8, &[u8]) {
        match &*self.data {
            [0, 0, encoding, bytes @ ..] => (*encoding, bytes),
            xor => (ENCODING_XOR, xor),
        }
    }

    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.min_t <= end && start <= self.max_t
    }

    /// Whether a sample lies in `[start, end]`: from the header alone for a
    /// dense chunk with implied timestamps, else by iterating the samples.
    pub fn has_sample_in(&self, start: i64, end: i64) -> bool {
        if !self.overlaps(start, end) {
            return false;
        }
        if let (ENCODING_DENSE, bytes) = self.encoded() {
            if let Some(found) = dense::implied_sample_in(bytes, self.min_t, self.max_t, start, end)
            {
                return found;
            }
        }
        self.iter().any(|(t, _)| start <= t && t <= end)
    }

    /// The samples, oldest first. A dense chunk is decoded whole here, once.
    pub fn iter(&self) -> ChunkIter<'_> {
        match self.encoded() {
            (ENCODING_DENSE, bytes) => {
                ChunkIter::Dense(DenseIter::new(bytes, self.min_t, self.max_t))
            }
            (ENCODING_XOR, bytes) => ChunkIter::Xor(XorIter::new(bytes)),
            // Unknown encodings never get past the block reader.
            _ => ChunkIter::Dense(DenseIter::new(&[], 0, 0)),
        }
    }
}

/// The samples of a [`ClosedChunk`] of either encoding.
#[derive(Clone, Debug)]
pub enum ChunkIter<'a> {
    Xor(XorIter<'a>),
    Dense(DenseIter),
}

impl ChunkIter<'_> {
    /// Whether the bytes ended (or were malformed) before every sample.
    pub fn is_truncated(&self) -> bool {
        match self {
            ChunkIter::Xor(iter) => iter.is_truncated(),
            ChunkIter::Dense(iter) => iter.is_truncated(),
        }
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = (i64, f64);

    #[inline]
    fn next(&mut self) -> Option<(i64, f64)> {
        match self {
            ChunkIter::Xor(iter) => iter.next(),
            ChunkIter::Dense(iter) => iter.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            ChunkIter::Xor(iter) => iter.size_hint(),
            ChunkIter::Dense(iter) => iter.size_hint(),
        }
    }
}
