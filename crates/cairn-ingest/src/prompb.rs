//! Prometheus remote write 1.0 and remote read messages, derived by hand.
//!
//! Field numbers and types follow `prometheus/prometheus: prompb/types.proto`
//! and `prompb/remote.proto` (package `prometheus`). They are byte-load-bearing:
//! never renumber. There is no `build.rs` and no `protoc`: each message is a
//! plain struct with `prost` derive attributes.
//!
//! Decoding notes:
//! - Unknown fields are skipped by `prost`, so a newer sender's extra fields
//!   do not fail decoding.
//! - `string` fields are checked for UTF-8 by `prost`: a label name or value
//!   that is not UTF-8 fails the whole request as a protobuf error (400),
//!   where Mimir (whose decoder does not check) rejects only that series with
//!   `label-value-invalid`.
//! - Proto3 repeated scalars are written packed and read packed or unpacked.
//! - Decoding keeps every double bit for bit (NaN payloads, the staleness
//!   marker, -0.0). Encoding, like gogo-protobuf in Prometheus, omits a
//!   scalar equal to zero, so a -0.0 written by `prost` reads back as +0.0.

/// The body of `POST /api/v1/push` (remote write 1.0), before snappy.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    // Tag 2 is reserved upstream (Cortex used it for the request source).
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// One series: its labels and its samples, exemplars and native histograms.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct TimeSeries {
    /// Sorted by name in well-behaved senders; validation sorts if needed.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
    /// Native histograms. Decoded so they can be counted; Cairn does not
    /// store them yet and validation drops them (as Mimir does with
    /// `native_histograms_ingestion_enabled: false`).
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// `prometheus.Labels`: a bare label list.
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct Labels {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
}

/// One float sample. `value` is carried bit-exactly: NaN payloads and the
/// staleness marker survive decoding.
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Exemplar {
    /// Optional, can be empty upstream; Cairn drops exemplars without labels.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(double, tag = "2")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// A native histogram sample (`prometheus.Histogram`).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Histogram {
    #[prost(oneof = "histogram::Count", tags = "1, 2")]
    pub count: Option<histogram::Count>,
    #[prost(double, tag = "3")]
    pub sum: f64,
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    #[prost(oneof = "histogram::ZeroCount", tags = "6, 7")]
    pub zero_count: Option<histogram::ZeroCount>,
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: Vec<f64>,
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: Vec<f64>,
    #[prost(enumeration = "histogram::ResetHint", tag = "14")]
    pub reset_hint: i32,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
    #[prost(double, repeated, tag = "16")]
    pub custom_values: Vec<f64>,
}

pub mod histogram {
    /// Count of observations: integer histograms use `CountInt`, float
    /// histograms `CountFloat`.
    #[derive(Clone, Copy, PartialEq, ::prost::Oneof)]
    pub enum Count {
        #[prost(uint64, tag = "1")]
        CountInt(u64),
        #[prost(double, tag = "2")]
        CountFloat(f64),
    }

    #[derive(Clone, Copy, PartialEq, ::prost::Oneof)]
    pub enum ZeroCount {
        #[prost(uint64, tag = "6")]
        ZeroCountInt(u64),
        #[prost(double, tag = "7")]
        ZeroCountFloat(f64),
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum ResetHint {
        Unknown = 0,
        Yes = 1,
        No = 2,
        Gauge = 3,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, ::prost::Message)]
pub struct BucketSpan {
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

/// Metadata about a metric family (`# TYPE`, `# HELP`, `# UNIT`).
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct MetricMetadata {
    /// A [`metric_metadata::MetricType`]; unknown numbers read as `Unknown`.
    #[prost(enumeration = "metric_metadata::MetricType", tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    // Tag 3 is unused upstream.
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

pub mod metric_metadata {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum MetricType {
        Unknown = 0,
        Counter = 1,
        Gauge = 2,
        Histogram = 3,
        Gaugehistogram = 4,
        Summary = 5,
        Info = 6,
        Stateset = 7,
    }

    impl From<MetricType> for cairn_model::MetricType {
        fn from(metric_type: MetricType) -> cairn_model::MetricType {
            match metric_type {
                MetricType::Unknown => cairn_model::MetricType::Unknown,
                MetricType::Counter => cairn_model::MetricType::Counter,
                MetricType::Gauge => cairn_model::MetricType::Gauge,
                MetricType::Histogram => cairn_model::MetricType::Histogram,
                MetricType::Gaugehistogram => cairn_model::MetricType::GaugeHistogram,
                MetricType::Summary => cairn_model::MetricType::Summary,
                MetricType::Info => cairn_model::MetricType::Info,
                MetricType::Stateset => cairn_model::MetricType::StateSet,
            }
        }
    }

    impl From<cairn_model::MetricType> for MetricType {
        fn from(metric_type: cairn_model::MetricType) -> MetricType {
            match metric_type {
                cairn_model::MetricType::Unknown => MetricType::Unknown,
                cairn_model::MetricType::Counter => MetricType::Counter,
                cairn_model::MetricType::Gauge => MetricType::Gauge,
                cairn_model::MetricType::Histogram => MetricType::Histogram,
                cairn_model::MetricType::GaugeHistogram => MetricType::Gaugehistogram,
                cairn_model::MetricType::Summary => MetricType::Summary,
                cairn_model::MetricType::Info => MetricType::Info,
                cairn_model::MetricType::StateSet => MetricType::Stateset,
            }
        }
    }
}

/// The body of a remote read request (`POST /api/v1/read`), before snappy.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ReadRequest {
    #[prost(message, repeated, tag = "1")]
    pub queries: Vec<Query>,
    /// [`read_request::ResponseType`]s in order of preference; empty means
    /// `Samples`.
    #[prost(enumeration = "read_request::ResponseType", repeated, tag = "2")]
    pub accepted_response_types: Vec<i32>,
}

pub mod read_request {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum ResponseType {
        /// One snappy-compressed [`super::ReadResponse`] with raw samples.
        Samples = 0,
        /// Streamed, delimited `ChunkedReadResponse` frames (XOR chunks).
        StreamedXorChunks = 1,
    }
}

/// The answer to a `Samples` remote read: one result per query, same order.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ReadResponse {
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<QueryResult>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Query {
    #[prost(int64, tag = "1")]
    pub start_timestamp_ms: i64,
    #[prost(int64, tag = "2")]
    pub end_timestamp_ms: i64,
    #[prost(message, repeated, tag = "3")]
    pub matchers: Vec<LabelMatcher>,
    #[prost(message, optional, tag = "4")]
    pub hints: Option<ReadHints>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct QueryResult {
    /// Samples within a series must be ordered by time.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// One matcher of a remote read query.
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct LabelMatcher {
    /// A [`label_matcher::Type`].
    #[prost(enumeration = "label_matcher::Type", tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub value: String,
}

pub mod label_matcher {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum Type {
        /// `=`
        Eq = 0,
        /// `!=`
        Neq = 1,
        /// `=~`
        Re = 2,
        /// `!~`
        Nre = 3,
    }
}

/// Hints a remote read sender passes about the query around the selector.
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct ReadHints {
    #[prost(int64, tag = "1")]
    pub step_ms: i64,
    #[prost(string, tag = "2")]
    pub func: String,
    #[prost(int64, tag = "3")]
    pub start_ms: i64,
    #[prost(int64, tag = "4")]
    pub end_ms: i64,
    #[prost(string, repeated, tag = "5")]
    pub grouping: Vec<String>,
    #[prost(bool, tag = "6")]
    pub by: bool,
    #[prost(int64, tag = "7")]
    pub range_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Pins the field numbers against bytes written by hand from the
    /// upstream `.proto` files, so a renumbering cannot pass silently.
    #[test]
    fn write_request_field_numbers_match_upstream_proto() {
        let request = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label::new("a", "b")],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 2,
                }],
                exemplars: vec![],
                histograms: vec![],
            }],
            metadata: vec![MetricMetadata {
                r#type: metric_metadata::MetricType::Counter as i32,
                metric_family_name: "m".to_string(),
                help: "h".to_string(),
                unit: "u".to_string(),
            }],
        };
        let bytes = request.encode_to_vec();
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0x0a, 21,                         // WriteRequest.timeseries (1, LEN)
              0x0a, 6,                        //   TimeSeries.labels (1, LEN)
                0x0a, 1, b'a',                //     Label.name (1)
                0x12, 1, b'b',                //     Label.value (2)
              0x12, 11,                       //   TimeSeries.samples (2, LEN)
                0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // Sample.value (1, I64) = 1.0
                0x10, 2,                      //     Sample.timestamp (2, VARINT)
            0x1a, 11,                         // WriteRequest.metadata (3, LEN)
              0x08, 1,                        //   type (1) = COUNTER
              0x12, 1, b'm',                  //   metric_family_name (2)
              0x22, 1, b'h',                  //   help (4)
              0x2a, 1, b'u',                  //   unit (5)
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn exemplars_and_histograms_use_tags_3_and_4() {
        let series = TimeSeries {
            labels: vec![],
            samples: vec![],
            exemplars: vec![Exemplar {
                labels: vec![],
                value: 0.0,
                timestamp: 5,
            }],
            histograms: vec![Histogram {
                timestamp: 7,
                ..Default::default()
            }],
        };
        let bytes = series.encode_to_vec();
        // Exemplar: field 3 LEN, inner timestamp field 3 VARINT.
        // Histogram: field 4 LEN, inner timestamp field 15 VARINT (0x78).
        assert_eq!(bytes, vec![0x1a, 2, 0x18, 5, 0x22, 2, 0x78, 7]);
    }

    #[test]
    fn read_request_field_numbers_match_upstream_proto() {
        let request = ReadRequest {
            queries: vec![Query {
                start_timestamp_ms: 1,
                end_timestamp_ms: 2,
                matchers: vec![LabelMatcher {
                    r#type: label_matcher::Type::Re as i32,
                    name: "n".to_string(),
                    value: "v".to_string(),
                }],
                hints: Some(ReadHints {
                    step_ms: 3,
                    ..Default::default()
                }),
            }],
            accepted_response_types: vec![read_request::ResponseType::StreamedXorChunks as i32],
        };
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0x0a, 18,                 // ReadRequest.queries (1, LEN)
              0x08, 1,                //   start_timestamp_ms (1)
              0x10, 2,                //   end_timestamp_ms (2)
              0x1a, 8,                //   matchers (3, LEN)
                0x08, 2,              //     type (1) = RE
                0x12, 1, b'n',        //     name (2)
                0x1a, 1, b'v',        //     value (3)
              0x22, 2, 0x08, 3,       //   hints (4, LEN) { step_ms (1) = 3 }
            0x12, 1, 1,               // accepted_response_types (2, packed)
        ];
        assert_eq!(request.encode_to_vec(), expected);

        let response = ReadResponse {
            results: vec![QueryResult {
                timeseries: vec![TimeSeries::default()],
            }],
        };
        assert_eq!(response.encode_to_vec(), vec![0x0a, 2, 0x0a, 0]);
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // WriteRequest with an unknown field 2 (reserved upstream) and 9.
        let bytes = [0x12, 1, b'x', 0x48, 1];
        let decoded = WriteRequest::decode(&bytes[..]).unwrap();
        assert_eq!(decoded, WriteRequest::default());
    }

    #[test]
    fn unknown_metric_type_reads_as_unknown() {
        let metadata = MetricMetadata {
            r#type: 42,
            ..Default::default()
        };
        assert_eq!(metadata.r#type(), metric_metadata::MetricType::Unknown);
    }
}
