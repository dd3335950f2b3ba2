//! Remote write 1.0 bodies: snappy block format around a protobuf
//! [`WriteRequest`], decoded under size limits.
//!
//! The decompressed size is read from the snappy header and checked against
//! [`DecodeLimits::max_decompressed_bytes`] before anything is allocated, so a
//! tiny body that declares gigabytes costs nothing.

use prost::Message;

use crate::config_keys;
use crate::prompb::WriteRequest;
use crate::wire::{DecodeScratch, WireError, WriteRequestRef};

/// 100 MiB, Mimir's `-distributor.max-recv-msg-size` default.
pub const DEFAULT_MAX_WRITE_MESSAGE_BYTES: usize = 100 << 20;

/// A snappy block cannot expand by more than 64 output bytes per 3-byte
/// copy tag (about 21x); a declared length beyond this ratio is a lie.
const MAX_SNAPPY_EXPANSION: usize = 32;

/// Size caps for one remote write body.
///
/// Both default to 100 MiB, Mimir's `-distributor.max-recv-msg-size`, which
/// Mimir applies to the compressed body and again to the decompressed
/// message. Cairn's config key is [`config_keys::MAX_WRITE_MESSAGE_SIZE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Cap on the HTTP body as received (snappy-compressed). The server
    /// enforces it while reading the body; [`decode_write_request`] checks it
    /// again.
    pub max_compressed_bytes: usize,
    /// Cap on the protobuf message after snappy decompression, checked
    /// against the length the snappy header declares before allocating.
    pub max_decompressed_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> DecodeLimits {
        DecodeLimits {
            max_compressed_bytes: DEFAULT_MAX_WRITE_MESSAGE_BYTES,
            max_decompressed_bytes: DEFAULT_MAX_WRITE_MESSAGE_BYTES,
        }
    }
}

/// Which size a [`DecodeError::TooLarge`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodySize {
    /// The HTTP body as received.
    Compressed,
    /// The protobuf message after snappy decompression.
    Uncompressed,
}

impl BodySize {
    fn as_str(self) -> &'static str {
        match self {
            BodySize::Compressed => "compressed",
            BodySize::Uncompressed => "uncompressed",
        }
    }
}

/// Why a remote write body could not be decoded.
///
/// The server maps [`DecodeError::TooLarge`] to 413 and the others to 400;
/// the `Display` text is safe to send to the client.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body (or what it declares it decompresses to) is over the limit.
    /// `actual` is `None` when the size is unknown, for example when the
    /// server stopped reading a streamed body at the limit.
    #[error(
        "the incoming push request has been rejected because its message size{} ({}) is larger than the allowed limit of {limit} bytes (err-cairn-{}). To adjust the related limit, configure {}, or contact your service administrator.",
        actual.map(|n| format!(" of {n} bytes")).unwrap_or_default(),
        kind.as_str(),
        crate::MAX_WRITE_MESSAGE_SIZE_ERROR_ID,
        config_keys::MAX_WRITE_MESSAGE_SIZE
    )]
    TooLarge {
        actual: Option<u64>,
        limit: u64,
        kind: BodySize,
    },
    /// The body is not a valid snappy block (remote write uses the block
    /// format, not the framed stream format).
    #[error("the push request body is not valid snappy block format: {0}")]
    Snappy(#[source] snap::Error),
    /// The snappy header declares a length the body cannot possibly hold.
    #[error(
        "the push request body is not valid snappy block format: header declares {declared} bytes, more than {compressed} compressed bytes can hold"
    )]
    SnappyImpossibleLength { declared: u64, compressed: u64 },
    /// The decompressed bytes are not a protobuf `prometheus.WriteRequest`
    /// (this includes label names or values that are not UTF-8).
    #[error("the push request body is not a valid protobuf WriteRequest: {0}")]
    Protobuf(#[source] WireError),
}

impl DecodeError {
    /// Whether this is a size-limit error (413) rather than malformed data (400).
    pub fn is_too_large(&self) -> bool {
        matches!(self, DecodeError::TooLarge { .. })
    }

    /// The error for a compressed body over `limit`, for the server to use
    /// when it cuts a body off while reading it.
    pub fn body_too_large(actual: Option<u64>, limit: usize) -> DecodeError {
        DecodeError::TooLarge {
            actual,
            limit: limit as u64,
            kind: BodySize::Compressed,
        }
    }
}

/// Decodes a remote write 1.0 body: snappy block format, then protobuf.
pub fn decode_write_request(
    body: &[u8],
    limits: &DecodeLimits,
) -> Result<WriteRequest, DecodeError> {
    let mut buffer = Vec::new();
    decode_write_request_with_buffer(body, limits, &mut buffer)
}

/// [`decode_write_request`] decompressing into a caller-owned buffer, so a
/// server can reuse one allocation across requests. The buffer's contents
/// are overwritten.
pub fn decode_write_request_with_buffer(
    body: &[u8],
    limits: &DecodeLimits,
    buffer: &mut Vec<u8>,
) -> Result<WriteRequest, DecodeError> {
    if body.len() > limits.max_compressed_bytes {
        return Err(DecodeError::body_too_large(
            Some(body.len() as u64),
            limits.max_compressed_bytes,
        ));
    }
    let written = decompress_snappy_block(body, limits.max_decompressed_bytes, buffer)?;
    WriteRequest::decode(&buffer[..written]).map_err(|err| DecodeError::Protobuf(err.into()))
}

/// Decodes a remote write 1.0 body into `buffer` (decompressed, reused
/// across requests) and returns the request borrowing from it: no
/// allocation per label or series (see [`crate::wire`]). The server's path.
pub fn decode_write_request_ref<'a>(
    body: &[u8],
    limits: &DecodeLimits,
    buffer: &'a mut Vec<u8>,
) -> Result<WriteRequestRef<'a>, DecodeError> {
    decode_write_request_ref_with(body, limits, buffer, DecodeScratch::default())
}

/// [`decode_write_request_ref`] reusing the arrays of an earlier request
/// ([`WriteRequestRef::into_scratch`]).
pub fn decode_write_request_ref_with<'a>(
    body: &[u8],
    limits: &DecodeLimits,
    buffer: &'a mut Vec<u8>,
    scratch: DecodeScratch,
) -> Result<WriteRequestRef<'a>, DecodeError> {
    if body.len() > limits.max_compressed_bytes {
        return Err(DecodeError::body_too_large(
            Some(body.len() as u64),
            limits.max_compressed_bytes,
        ));
    }
    let written = decompress_snappy_block(body, limits.max_decompressed_bytes, buffer)?;
    WriteRequestRef::decode_with(&buffer[..written], scratch).map_err(DecodeError::Protobuf)
}

/// Decompresses a snappy block into the start of `buffer` after checking
/// the declared length against `max_decompressed_bytes`; returns the length
/// written. The buffer only grows (zeroed once, not per request); bytes
/// past the returned length are left from earlier requests and never read.
fn decompress_snappy_block(
    body: &[u8],
    max_decompressed_bytes: usize,
    buffer: &mut Vec<u8>,
) -> Result<usize, DecodeError> {
    let too_large = |actual: u64| DecodeError::TooLarge {
        actual: Some(actual),
        limit: max_decompressed_bytes as u64,
        kind: BodySize::Uncompressed,
    };
    let declared = match snap::raw::decompress_len(body) {
        Ok(declared) => declared,
        // Over snappy's own 4 GiB ceiling: certainly over ours.
        Err(snap::Error::TooBig { given, .. }) => return Err(too_large(given)),
        Err(err) => return Err(DecodeError::Snappy(err)),
    };
    if declared > max_decompressed_bytes {
        return Err(too_large(declared as u64));
    }
    if declared > body.len().saturating_mul(MAX_SNAPPY_EXPANSION) {
        return Err(DecodeError::SnappyImpossibleLength {
            declared: declared as u64,
            compressed: body.len() as u64,
        });
    }
    if buffer.len() < declared {
        buffer.resize(declared, 0);
    }
    let written = snap::raw::Decoder::new()
        .decompress(body, &mut buffer[..declared])
        .map_err(DecodeError::Snappy)?;
    debug_assert_eq!(written, declared);
    Ok(written)
}

/// Encodes a request the way a remote write sender does: protobuf, then
/// snappy block format. For tests, benchmarks and tools.
pub fn encode_write_request(request: &WriteRequest) -> Vec<u8> {
    let protobuf = request.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&protobuf)
        .expect("a protobuf WriteRequest fits snappy's 4 GiB block limit")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompb::{Label, Sample, TimeSeries};
    use cairn_model::STALE_NAN_BITS;

    fn request_with_values(values: &[f64]) -> WriteRequest {
        WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label::new("__name__", "up"), Label::new("job", "a")],
                samples: values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Sample {
                        value: *v,
                        timestamp: 1_000 + i as i64,
                    })
                    .collect(),
                exemplars: vec![],
                histograms: vec![],
            }],
            metadata: vec![],
        }
    }

    /// A snappy varint header (little-endian base-128) for `len`.
    fn snappy_header(mut len: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    #[test]
    fn round_trip_encode_decode() {
        let request = request_with_values(&[1.0, 2.5, -0.0, f64::INFINITY]);
        let body = encode_write_request(&request);
        let decoded = decode_write_request(&body, &DecodeLimits::default()).unwrap();
        assert_eq!(decoded, request);
        let mut buffer = Vec::new();
        let by_ref =
            decode_write_request_ref(&body, &DecodeLimits::default(), &mut buffer).unwrap();
        assert_eq!(by_ref.to_owned_request(), request);
    }

    #[test]
    fn nan_and_stale_marker_survive_bit_exactly() {
        let payload_nan = f64::from_bits(0x7ff8_0000_0000_00ab);
        let values = [f64::from_bits(STALE_NAN_BITS), f64::NAN, payload_nan];
        let body = encode_write_request(&request_with_values(&values));
        let decoded = decode_write_request(&body, &DecodeLimits::default()).unwrap();
        let bits: Vec<u64> = decoded.timeseries[0]
            .samples
            .iter()
            .map(|s| s.value.to_bits())
            .collect();
        let expected: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits, expected);
    }

    #[test]
    fn empty_request_decodes() {
        let body = encode_write_request(&WriteRequest::default());
        let decoded = decode_write_request(&body, &DecodeLimits::default()).unwrap();
        assert_eq!(decoded, WriteRequest::default());
    }

    /// A 6-byte body whose header declares 2 GiB must be refused from the
    /// header alone. (Were it allocated, the test would take 2 GiB.)
    #[test]
    fn declared_length_bomb_is_refused_before_allocating() {
        let mut body = snappy_header(2 << 30);
        body.push(0x00);
        let err = decode_write_request(&body, &DecodeLimits::default()).unwrap_err();
        assert!(err.is_too_large(), "{err}");
        assert!(matches!(
            err,
            DecodeError::TooLarge {
                actual: Some(2147483648),
                limit: 104857600,
                kind: BodySize::Uncompressed
            }
        ));
        // Even with an unlimited cap the expansion-ratio check refuses it.
        let unlimited = DecodeLimits {
            max_compressed_bytes: usize::MAX,
            max_decompressed_bytes: usize::MAX,
        };
        let err = decode_write_request(&body, &unlimited).unwrap_err();
        assert!(
            matches!(err, DecodeError::SnappyImpossibleLength { .. }),
            "{err}"
        );
    }

    #[test]
    fn header_over_snappy_ceiling_is_too_large() {
        let body = snappy_header(1 << 33);
        let err = decode_write_request(&body, &DecodeLimits::default()).unwrap_err();
        assert!(err.is_too_large(), "{err}");
    }

    #[test]
    fn decompressed_size_over_limit_is_too_large() {
        let body = encode_write_request(&request_with_values(&[1.0; 100]));
        let limits = DecodeLimits {
            max_compressed_bytes: 1 << 20,
            max_decompressed_bytes: 64,
        };
        let err = decode_write_request(&body, &limits).unwrap_err();
        assert!(err.is_too_large());
        let message = err.to_string();
        assert!(
            message.starts_with(
                "the incoming push request has been rejected because its message size of "
            ),
            "{message}"
        );
        assert!(message.contains("(uncompressed) is larger than the allowed limit of 64 bytes (err-cairn-max-write-message-size)"), "{message}");
        assert!(message.contains(config_keys::MAX_WRITE_MESSAGE_SIZE));
    }

    #[test]
    fn compressed_size_over_limit_is_too_large() {
        let body = encode_write_request(&request_with_values(&[1.0; 100]));
        let limits = DecodeLimits {
            max_compressed_bytes: 10,
            max_decompressed_bytes: 1 << 20,
        };
        let err = decode_write_request(&body, &limits).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::TooLarge {
                kind: BodySize::Compressed,
                limit: 10,
                ..
            }
        ));
    }

    #[test]
    fn unknown_size_message_omits_the_size() {
        let err = DecodeError::body_too_large(None, 1024);
        assert_eq!(
            err.to_string(),
            format!(
                "the incoming push request has been rejected because its message size (compressed) is larger than the allowed limit of 1024 bytes (err-cairn-max-write-message-size). To adjust the related limit, configure {}, or contact your service administrator.",
                config_keys::MAX_WRITE_MESSAGE_SIZE
            )
        );
    }

    #[test]
    fn malformed_snappy_is_a_snappy_error() {
        let cases: &[(&str, &[u8])] = &[
            ("empty body", b""),
            ("unterminated header varint", &[0xff, 0xff, 0xff]),
            // Declares 5 bytes, holds a literal of 3.
            ("short literal", &[0x05, 0x08, b'a', b'b', b'c']),
            // Declares 4 bytes, then a copy reaching before the output start.
            ("copy before start", &[0x04, 0x01, 0x09]),
            // Uncompressed protobuf sent without snappy.
            ("raw protobuf", &[0x0a, 0x02, 0x0a, 0x00]),
        ];
        for (name, body) in cases {
            let err = decode_write_request(body, &DecodeLimits::default()).unwrap_err();
            assert!(
                matches!(
                    err,
                    DecodeError::Snappy(_) | DecodeError::SnappyImpossibleLength { .. }
                ),
                "{name}: {err:?}"
            );
            assert!(!err.is_too_large(), "{name}");
            assert!(
                err.to_string()
                    .starts_with("the push request body is not valid snappy block format: "),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn malformed_protobuf_is_a_protobuf_error() {
        let cases: &[(&str, Vec<u8>)] = &[
            // Field 1 (LEN) claims 10 bytes, 1 follows.
            ("truncated length", vec![0x0a, 10, 0x00]),
            // Wire type 7 does not exist.
            ("invalid wire type", vec![0x0f]),
            // Label.name with an invalid UTF-8 byte.
            (
                "label not utf-8",
                vec![0x0a, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0xff],
            ),
            // Sample.value (fixed64) cut short.
            ("truncated double", vec![0x0a, 0x04, 0x12, 0x02, 0x09, 0x00]),
        ];
        for (name, protobuf) in cases {
            let body = snap::raw::Encoder::new().compress_vec(protobuf).unwrap();
            let mut buffer = Vec::new();
            let by_ref = decode_write_request_ref(&body, &DecodeLimits::default(), &mut buffer)
                .map(|_| ())
                .unwrap_err();
            let err = decode_write_request(&body, &DecodeLimits::default()).unwrap_err();
            for err in [err, by_ref] {
                assert!(matches!(err, DecodeError::Protobuf(_)), "{name}: {err:?}");
                assert!(
                    err.to_string().starts_with(
                        "the push request body is not a valid protobuf WriteRequest: failed to decode Protobuf message: "
                    ),
                    "{name}: {err}"
                );
            }
        }
    }

    #[test]
    fn buffer_is_reused_and_overwritten() {
        let mut buffer = vec![0xaa; 4096];
        let request = request_with_values(&[1.0]);
        let body = encode_write_request(&request);
        let decoded =
            decode_write_request_with_buffer(&body, &DecodeLimits::default(), &mut buffer).unwrap();
        assert_eq!(decoded, request);
        assert!(buffer.capacity() >= 4096);
    }
}
