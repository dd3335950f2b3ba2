//! The `STREAMED_XOR_CHUNKS` remote read response: delimited
//! `ChunkedReadResponse` frames holding Prometheus XOR chunks.

use cairn_ingest::prompb::{self, ReadRequest};
use cairn_model::{Queryable, Sample};
use prost::Message;

use crate::error::WriteApiError;

/// Prometheus's content type for streamed remote read.
pub(super) const CONTENT_TYPE: &str =
    "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";

/// Samples per chunk, as Prometheus's head cuts them.
const SAMPLES_PER_CHUNK: usize = 120;

/// One frame's message: chunked series of the query at `query_index`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ChunkedReadResponse {
    #[prost(message, repeated, tag = "1")]
    pub chunked_series: Vec<ChunkedSeries>,
    #[prost(int64, tag = "2")]
    pub query_index: i64,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ChunkedSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<prompb::Label>,
    #[prost(message, repeated, tag = "2")]
    pub chunks: Vec<Chunk>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Chunk {
    #[prost(int64, tag = "1")]
    pub min_time_ms: i64,
    #[prost(int64, tag = "2")]
    pub max_time_ms: i64,
    /// 1 = XOR (`prometheus.Chunk.Encoding`).
    #[prost(int32, tag = "3")]
    pub r#type: i32,
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
}

const ENCODING_XOR: i32 = 1;

/// Every frame of the answer, one series per frame, queries in order.
pub(super) fn frames(
    db: &dyn Queryable,
    request: &ReadRequest,
    sample_limit: usize,
) -> Result<Vec<u8>, WriteApiError> {
    let mut out = Vec::new();
    let mut samples_total = 0usize;
    for (index, query) in request.queries.iter().enumerate() {
        for series in super::select(db, query)? {
            samples_total += series.samples.len();
            if samples_total > sample_limit {
                return Err(super::bad_request(format!(
                    "exceeded sample limit ({sample_limit})"
                )));
            }
            let message = ChunkedReadResponse {
                chunked_series: vec![ChunkedSeries {
                    labels: series
                        .labels
                        .iter()
                        .map(|l| prompb::Label::new(l.name.as_str(), l.value.as_str()))
                        .collect(),
                    chunks: series
                        .samples
                        .chunks(SAMPLES_PER_CHUNK)
                        .map(|samples| Chunk {
                            min_time_ms: samples[0].t,
                            max_time_ms: samples[samples.len() - 1].t,
                            r#type: ENCODING_XOR,
                            data: encode_xor_chunk(samples),
                        })
                        .collect(),
                }],
                query_index: index as i64,
            };
            write_frame(&mut out, &message.encode_to_vec());
        }
    }
    Ok(out)
}

/// `uvarint(len) | crc32c(message) big-endian | message` (Prometheus's `ChunkedWriter`).
fn write_frame(out: &mut Vec<u8>, message: &[u8]) {
    write_uvarint(out, message.len() as u64);
    out.extend_from_slice(&crc32c(message).to_be_bytes());
    out.extend_from_slice(message);
}

fn write_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// CRC-32 with the Castagnoli polynomial (reflected 0x82F63B78), bitwise.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82F6_3B78 & mask);
        }
    }
    !crc
}

/// A most-significant-bit-first bit writer (Prometheus's `bstream`).
struct BitWriter {
    bytes: Vec<u8>,
    /// Free bits in the last byte (0 = start a new byte).
    free: u8,
}

impl BitWriter {
    fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.bytes.push(0);
            self.free = 8;
        }
        if bit {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 1 << (self.free - 1);
        }
        self.free -= 1;
    }

    /// The low `count` bits of `value`, most significant first.
    fn write_bits(&mut self, value: u64, count: u8) {
        for i in (0..count).rev() {
            self.write_bit((value >> i) & 1 == 1);
        }
    }

    fn write_byte(&mut self, byte: u8) {
        self.write_bits(u64::from(byte), 8);
    }
}

/// Whether `x` fits Prometheus's `bitRange(x, nbits)`.
fn bit_range(x: i64, nbits: u8) -> bool {
    -((1i64 << (nbits - 1)) - 1) <= x && x <= 1i64 << (nbits - 1)
}

/// Prometheus's `chunkenc.XORChunk` bytes for `samples` (at most 2^16 - 1):
/// a big-endian u16 sample count, the first timestamp as a zig-zag varint and
/// its value's 64 bits, the second timestamp delta as a uvarint, then
/// delta-of-delta timestamps and XOR-compressed values.
pub fn encode_xor_chunk(samples: &[Sample]) -> Vec<u8> {
    debug_assert!(samples.len() <= usize::from(u16::MAX));
    let mut w = BitWriter {
        bytes: (samples.len() as u16).to_be_bytes().to_vec(),
        free: 0,
    };
    let (mut prev_t, mut prev_delta, mut prev_v) = (0i64, 0u64, 0f64);
    let (mut leading, mut trailing) = (0xffu8, 0u8);
    for (i, sample) in samples.iter().enumerate() {
        match i {
            0 => {
                let mut varint = Vec::new();
                let zigzag = ((sample.t << 1) ^ (sample.t >> 63)) as u64;
                write_uvarint(&mut varint, zigzag);
                for byte in varint {
                    w.write_byte(byte);
                }
                w.write_bits(sample.v.to_bits(), 64);
            }
            1 => {
                let delta = sample.t.wrapping_sub(prev_t) as u64;
                let mut varint = Vec::new();
                write_uvarint(&mut varint, delta);
                for byte in varint {
                    w.write_byte(byte);
                }
                write_value(&mut w, sample.v, prev_v, &mut leading, &mut trailing);
                prev_delta = delta;
            }
            _ => {
                let delta = sample.t.wrapping_sub(prev_t) as u64;
                let dod = delta.wrapping_sub(prev_delta) as i64;
                if dod == 0 {
                    w.write_bit(false);
                } else if bit_range(dod, 14) {
                    w.write_bits(0b10, 2);
                    w.write_bits(dod as u64, 14);
                } else if bit_range(dod, 17) {
                    w.write_bits(0b110, 3);
                    w.write_bits(dod as u64, 17);
                } else if bit_range(dod, 20) {
                    w.write_bits(0b1110, 4);
                    w.write_bits(dod as u64, 20);
                } else {
                    w.write_bits(0b1111, 4);
                    w.write_bits(dod as u64, 64);
                }
                write_value(&mut w, sample.v, prev_v, &mut leading, &mut trailing);
                prev_delta = delta;
            }
        }
        prev_t = sample.t;
        prev_v = sample.v;
    }
    w.bytes
}

/// Prometheus's `xorWrite`.
fn write_value(w: &mut BitWriter, value: f64, previous: f64, leading: &mut u8, trailing: &mut u8) {
    let delta = value.to_bits() ^ previous.to_bits();
    if delta == 0 {
        w.write_bit(false);
        return;
    }
    w.write_bit(true);
    let new_leading = (delta.leading_zeros() as u8).min(31);
    let new_trailing = delta.trailing_zeros() as u8;
    if *leading != 0xff && new_leading >= *leading && new_trailing >= *trailing {
        w.write_bit(false);
        w.write_bits(delta >> *trailing, 64 - *leading - *trailing);
        return;
    }
    *leading = new_leading;
    *trailing = new_trailing;
    w.write_bit(true);
    w.write_bits(u64::from(new_leading), 5);
    let significant = 64 - new_leading - new_trailing;
    // 64 significant bits are written as 0 (6 bits), as Prometheus does.
    w.write_bits(u64::from(significant), 6);
    w.write_bits(delta >> new_trailing, significant);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader written from Prometheus's `xorIterator`, independent of the
    /// writer above, for round trips.
    fn decode_xor_chunk(data: &[u8]) -> Vec<(i64, u64)> {
        struct Reader<'a> {
            data: &'a [u8],
            bit: usize,
        }
        impl Reader<'_> {
            fn bit(&mut self) -> bool {
                let b = (self.data[self.bit / 8] >> (7 - self.bit % 8)) & 1 == 1;
                self.bit += 1;
                b
            }
            fn bits(&mut self, n: u8) -> u64 {
                (0..n).fold(0u64, |acc, _| (acc << 1) | u64::from(self.bit()))
            }
            fn uvarint(&mut self) -> u64 {
                let mut value = 0u64;
                for shift in (0..).step_by(7) {
                    let byte = self.bits(8);
                    value |= (byte & 0x7f) << shift;
                    if byte < 0x80 {
                        break;
                    }
                }
                value
            }
        }
        let count = u16::from_be_bytes([data[0], data[1]]) as usize;
        let mut r = Reader {
            data: &data[2..],
            bit: 0,
        };
        let mut out = Vec::new();
        let (mut t, mut delta, mut v) = (0i64, 0i64, 0u64);
        let (mut leading, mut trailing) = (0u8, 0u8);
        for i in 0..count {
            if i == 0 {
                let z = r.uvarint();
                t = ((z >> 1) as i64) ^ -((z & 1) as i64);
                v = r.bits(64);
                out.push((t, v));
                continue;
            }
            if i == 1 {
                delta = r.uvarint() as i64;
            } else {
                let mut prefix = 0;
                while prefix < 4 && r.bit() {
                    prefix += 1;
                }
                let dod = match prefix {
                    0 => 0,
                    1 => sign_extend(r.bits(14), 14),
                    2 => sign_extend(r.bits(17), 17),
                    3 => sign_extend(r.bits(20), 20),
                    _ => r.bits(64) as i64,
                };
                delta += dod;
            }
            t += delta;
            if r.bit() {
                if r.bit() {
                    leading = r.bits(5) as u8;
                    let mut significant = r.bits(6) as u8;
                    if significant == 0 {
                        significant = 64;
                    }
                    trailing = 64 - leading - significant;
                }
                let significant = 64 - leading - trailing;
                v ^= r.bits(significant) << trailing;
            }
            out.push((t, v));
        }
        out
    }

    /// Prometheus's reading of an n-bit two's-complement `dod` (values above
    /// `2^(n-1)` are negative).
    fn sign_extend(bits: u64, n: u8) -> i64 {
        if bits > (1 << (n - 1)) {
            bits as i64 - (1 << n)
        } else {
            bits as i64
        }
    }

    #[test]
    fn first_samples_have_prometheus_bytes() {
        // t=1000 → zig-zag 2000 → uvarint D0 0F; 1.0 → 3FF0000000000000;
        // then delta 15 → 0F and an unchanged value → one 0 bit.
        let one = encode_xor_chunk(&[Sample::new(1000, 1.0)]);
        assert_eq!(one, [0, 1, 0xD0, 0x0F, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]);
        let two = encode_xor_chunk(&[Sample::new(1000, 1.0), Sample::new(1015, 1.0)]);
        assert_eq!(
            two,
            [0, 2, 0xD0, 0x0F, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0, 0x0F, 0x00]
        );
    }

    #[test]
    fn chunks_round_trip_through_a_prometheus_style_reader() {
        let mut samples = Vec::new();
        let mut t = -5_000i64;
        let values = [
            0.0,
            1.0,
            1.0,
            -2.5,
            f64::NAN,
            f64::INFINITY,
            1e300,
            f64::from_bits(0x7ff0_0000_0000_0002),
            3.25,
            -0.0,
        ];
        let steps = [
            15_000,
            15_000,
            14_000,
            20_000,
            1,
            70_000,
            1_000_000,
            10,
            15_000,
            4_000_000_000,
        ];
        for i in 0..120 {
            t += steps[i % steps.len()];
            samples.push(Sample::new(t, values[i % values.len()] * (i as f64 + 1.0)));
        }
        let decoded = decode_xor_chunk(&encode_xor_chunk(&samples));
        let expected: Vec<(i64, u64)> = samples.iter().map(|s| (s.t, s.v.to_bits())).collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn frames_are_length_and_checksum_prefixed() {
        let mut out = Vec::new();
        write_frame(&mut out, b"abc");
        assert_eq!(out[0], 3);
        assert_eq!(&out[1..5], &crc32c(b"abc").to_be_bytes());
        assert_eq!(&out[5..], b"abc");
    }
}
