//! cairn-ingest: wire formats in. Remote write 1.0 bodies become validated
//! series ready for a tenant's database.
//!
//! Brief overview:
//! - [`prompb`] holds the remote write 1.0 and remote read protobuf messages
//!   (`prometheus.WriteRequest`, `ReadRequest`, ...), derived by hand with
//!   `prost`.
//! - [`decode_write_request_ref`] turns an HTTP body (snappy block format
//!   around protobuf) into a [`WriteRequestRef`] borrowing from a reusable
//!   buffer ([`wire`]: no allocation per label), under [`DecodeLimits`],
//!   refusing oversized bodies before allocating; [`DecodeError`] says why
//!   not. [`decode_write_request`] gives an owned [`prompb::WriteRequest`].
//! - [`validate_write_request`] applies Mimir's per-series rules under
//!   [`ValidationLimits`] and returns a [`ValidatedWrite`]: the accepted
//!   [`cairn_model::SeriesRef`]s (labels still borrowed) and metadata, what was discarded by
//!   [`cairn_model::DiscardReason`], and the first [`WriteError`] to send back.
//!   Invalid series are skipped and valid ones kept (partial success).
//! - [`storage_rejection_message`] writes the client message for samples that
//!   storage refuses (out of order, duplicate timestamp, too old).
//!
//! Every client-facing message ends in a stable `err-cairn-<id>`, listed in
//! `docs/errors.md`; where a setting can be changed the message names its
//! config key (see [`config_keys`]).

pub mod decode;
pub mod prompb;
pub mod validate;
pub mod wire;

#[cfg(test)]
mod proptests;

pub use decode::{
    decode_write_request, decode_write_request_ref, decode_write_request_ref_with,
    decode_write_request_with_buffer, encode_write_request, BodySize, DecodeError, DecodeLimits,
    DEFAULT_MAX_WRITE_MESSAGE_BYTES,
};
pub use validate::{
    storage_rejection_message, validate_write_request, validate_write_request_known,
    ExemplarDiscardReason, MetadataDiscardReason, NameValidationScheme, ValidatedWrite,
    ValidationLimits, WriteError, EXEMPLAR_MAX_LABEL_SET_CHARS,
};
pub use wire::{DecodeScratch, WireError, WriteRequestRef};

/// Prefix of every client-facing error ID.
pub const ERROR_ID_PREFIX: &str = "err-cairn-";

/// Error ID (without [`ERROR_ID_PREFIX`]) for a write body over the size
/// limit; emitted through [`DecodeError::TooLarge`] (HTTP 413).
pub const MAX_WRITE_MESSAGE_SIZE_ERROR_ID: &str = "max-write-message-size";

/// Cairn config keys named in client error messages, where Mimir names a
/// command-line flag. They mirror Mimir's YAML keys.
pub mod config_keys {
    /// Body size cap for remote write (Mimir `-distributor.max-recv-msg-size`);
    /// the key cairn-server's configuration uses.
    pub const MAX_WRITE_MESSAGE_SIZE: &str = "distributor.max_recv_msg_size_bytes";
    /// Mimir `-validation.max-length-label-name`.
    pub const MAX_LABEL_NAME_LENGTH: &str = "limits.max_label_name_length";
    /// Mimir `-validation.max-length-label-value`.
    pub const MAX_LABEL_VALUE_LENGTH: &str = "limits.max_label_value_length";
    /// Mimir `-validation.max-label-names-per-series`.
    pub const MAX_LABEL_NAMES_PER_SERIES: &str = "limits.max_label_names_per_series";
    /// Mimir `-validation.create-grace-period`.
    pub const CREATION_GRACE_PERIOD: &str = "limits.creation_grace_period";
    /// Mimir `-validation.name-validation-scheme`.
    pub const NAME_VALIDATION_SCHEME: &str = "limits.name_validation_scheme";
    /// Mimir `-validation.max-metadata-length`.
    pub const MAX_METADATA_LENGTH: &str = "limits.max_metadata_length";
}
