//! Untrusted remote write bodies: decode (snappy block + protobuf) under
//! small limits, then validate whatever decodes. Neither may panic, and a
//! body over the limit must be refused from its header alone.
#![no_main]

use cairn_ingest::{decode_write_request, validate_write_request, DecodeLimits, ValidationLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let limits = DecodeLimits {
        max_compressed_bytes: 1 << 20,
        max_decompressed_bytes: 1 << 20,
    };
    // The same bytes as a snappy body, and wrapped as if they were protobuf.
    let wrapped = snap::raw::Encoder::new()
        .compress_vec(body)
        .unwrap_or_default();
    for candidate in [body, wrapped.as_slice()] {
        if let Ok(request) = decode_write_request(candidate, &limits) {
            let out =
                validate_write_request(request, &ValidationLimits::default(), 1_700_000_000_000);
            assert_eq!(
                out.samples_received,
                out.samples_accepted() + out.samples_discarded()
            );
        }
    }
});
