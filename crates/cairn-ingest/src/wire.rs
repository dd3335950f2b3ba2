//! Remote write 1.0 decoded in place: label names and values are `&str`
//! slices of the decompressed buffer, and every series' labels, samples and
//! exemplars sit in a few flat arrays, so decoding a request allocates a
//! handful of vectors instead of a `String` per label and a `Vec` per
//! series (what `prost` does for [`crate::prompb::WriteRequest`]).
//!
//! The decoder is hand-written for the messages of `prompb/types.proto` and
//! `prompb/remote.proto` and accepts exactly what `prost` accepts for them
//! (a property test in `proptests.rs` compares the two on arbitrary bytes):
//! unknown fields of any wire type are skipped (groups included, with
//! `prost`'s recursion limit of 100), a known field with the wrong wire type
//! is an error, a repeated scalar keeps its last value, strings must be
//! UTF-8, varints follow `prost`'s overflow rule. Native histograms are
//! decoded by `prost` (they are rare, and only counted) so their checks are
//! the same by construction.

use std::fmt;
use std::ops::Range;

use cairn_model::{LabelRef, Sample};
use prost::Message;

use crate::prompb;

/// `prost`'s recursion limit for nested messages and groups.
const RECURSION_LIMIT: u32 = 100;

/// Why bytes are not a `prometheus.WriteRequest`. Its text starts with
/// `failed to decode Protobuf message: `, as `prost`'s errors do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError {
    message: String,
}

impl WireError {
    #[cold]
    fn new(what: &str) -> WireError {
        WireError {
            message: format!("failed to decode Protobuf message: {what}"),
        }
    }
}

impl From<prost::DecodeError> for WireError {
    fn from(err: prost::DecodeError) -> WireError {
        WireError {
            message: err.to_string(),
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WireError {}

/// Where one series' parts sit in a [`WriteRequestRef`]'s flat arrays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SeriesSpans {
    pub(crate) labels: Range<usize>,
    /// Where the series' label entries sit in the request's bytes, when
    /// they sit back to back (see [`TimeSeriesRef::wire_labels`]). A range
    /// of the whole decoded buffer, so the spans need no lifetime.
    pub(crate) wire_labels: Option<Range<usize>>,
    pub(crate) samples: Range<usize>,
    pub(crate) exemplars: Range<usize>,
    pub(crate) histograms: usize,
}

/// One exemplar; its labels are a range of [`WriteRequestRef`]'s exemplar labels.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ExemplarSpan {
    pub(crate) labels: Range<usize>,
    pub(crate) value: f64,
    pub(crate) timestamp: i64,
}

/// One exemplar as [`TimeSeriesRef`] shows it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExemplarRef<'r, 'a> {
    pub labels: &'r [LabelRef<'a>],
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata` with borrowed strings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricMetadataRef<'a> {
    /// A [`prompb::metric_metadata::MetricType`] number; unknown numbers read
    /// as `Unknown`.
    pub r#type: i32,
    pub metric_family_name: &'a str,
    pub help: &'a str,
    pub unit: &'a str,
}

impl MetricMetadataRef<'_> {
    /// The type, `Unknown` for numbers the enum does not know (as `prost`'s
    /// generated getter).
    pub fn metric_type(&self) -> prompb::metric_metadata::MetricType {
        prompb::metric_metadata::MetricType::try_from(self.r#type).unwrap_or_default()
    }
}

/// A decoded `prometheus.WriteRequest` borrowing from the buffer it was
/// decoded from. Series are read through [`WriteRequestRef::series`];
/// validation reorders and drops labels and samples in place.
#[derive(Clone, Debug, Default)]
pub struct WriteRequestRef<'a> {
    /// The decoded bytes (empty for [`WriteRequestRef::from_owned`]).
    pub(crate) bytes: &'a [u8],
    pub(crate) series: Vec<SeriesSpans>,
    pub(crate) labels: Vec<LabelRef<'a>>,
    pub(crate) samples: Vec<Sample>,
    pub(crate) exemplars: Vec<ExemplarSpan>,
    pub(crate) exemplar_labels: Vec<LabelRef<'a>>,
    pub metadata: Vec<MetricMetadataRef<'a>>,
}

/// Equal when what was decoded is equal, wherever it was decoded from
/// (the bytes and the label entries' places in them are not compared).
impl PartialEq for WriteRequestRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        let spans = |r: &Self| {
            r.series
                .iter()
                .map(|s| {
                    (
                        s.labels.clone(),
                        s.samples.clone(),
                        s.exemplars.clone(),
                        s.histograms,
                    )
                })
                .collect::<Vec<_>>()
        };
        spans(self) == spans(other)
            && self.labels == other.labels
            && self.samples == other.samples
            && self.exemplars == other.exemplars
            && self.exemplar_labels == other.exemplar_labels
            && self.metadata == other.metadata
    }
}

/// One series of a [`WriteRequestRef`].
#[derive(Clone, Copy, Debug)]
pub struct TimeSeriesRef<'r, 'a> {
    request: &'r WriteRequestRef<'a>,
    spans: &'r SeriesSpans,
}

impl<'r, 'a> TimeSeriesRef<'r, 'a> {
    /// The labels as sent (any order, possibly empty values or repeats).
    #[inline]
    pub fn labels(&self) -> &'r [LabelRef<'a>] {
        &self.request.labels[self.spans.labels.clone()]
    }

    /// The series' `labels` entries (field 1 of `prometheus.TimeSeries`,
    /// tags and lengths included) exactly as received, when no other field
    /// sat between them: the labels in protobuf's encoding, which storage
    /// can look up without re-encoding them. `None` when they were split,
    /// for a series without labels, or for a request not decoded from
    /// bytes.
    #[inline]
    pub fn wire_labels(&self) -> Option<&'a [u8]> {
        let range = self.spans.wire_labels.clone()?;
        Some(&self.request.bytes[range])
    }

    #[inline]
    pub fn samples(&self) -> &'r [Sample] {
        &self.request.samples[self.spans.samples.clone()]
    }

    pub fn exemplars(&self) -> impl ExactSizeIterator<Item = ExemplarRef<'r, 'a>> + 'r {
        let request = self.request;
        request.exemplars[self.spans.exemplars.clone()]
            .iter()
            .map(move |e| ExemplarRef {
                labels: &request.exemplar_labels[e.labels.clone()],
                value: e.value,
                timestamp: e.timestamp,
            })
    }

    /// Native histogram samples (counted, not kept).
    pub fn histogram_count(&self) -> usize {
        self.spans.histograms
    }
}

/// The flat arrays of a decoded request, emptied, kept between requests
/// so that decoding the next one reuses their allocations
/// ([`WriteRequestRef::into_scratch`], [`WriteRequestRef::decode_with`]).
#[derive(Debug, Default)]
pub struct DecodeScratch {
    series: Vec<SeriesSpans>,
    labels: Vec<LabelRef<'static>>,
    samples: Vec<Sample>,
    exemplars: Vec<ExemplarSpan>,
    exemplar_labels: Vec<LabelRef<'static>>,
    metadata: Vec<MetricMetadataRef<'static>>,
}

impl DecodeScratch {
    /// Bytes allocated by the arrays.
    pub fn capacity_bytes(&self) -> usize {
        fn bytes<T>(v: &Vec<T>) -> usize {
            v.capacity() * std::mem::size_of::<T>()
        }
        bytes(&self.series)
            + bytes(&self.labels)
            + bytes(&self.samples)
            + bytes(&self.exemplars)
            + bytes(&self.exemplar_labels)
            + bytes(&self.metadata)
    }
}

/// Empties `items` and gives back its allocation for borrows of another
/// lifetime: collecting a vector's own iterator into a vector of an element
/// type of the same size and alignment reuses the allocation (std's
/// in-place collect; were it not to, the result is simply a new empty
/// vector). No element is converted: the iterator is empty.
fn recycle<From, To>(mut items: Vec<From>) -> Vec<To> {
    items.clear();
    items
        .into_iter()
        .map(|_| -> To { unreachable!("the vector was cleared") })
        .collect()
}

impl<'a> WriteRequestRef<'a> {
    /// Decodes a protobuf `prometheus.WriteRequest` (no snappy).
    pub fn decode(bytes: &'a [u8]) -> Result<WriteRequestRef<'a>, WireError> {
        WriteRequestRef::decode_with(bytes, DecodeScratch::default())
    }

    /// [`WriteRequestRef::decode`] into the arrays of an earlier request.
    pub fn decode_with(
        bytes: &'a [u8],
        scratch: DecodeScratch,
    ) -> Result<WriteRequestRef<'a>, WireError> {
        let mut out = WriteRequestRef {
            bytes,
            series: scratch.series,
            labels: recycle(scratch.labels),
            samples: scratch.samples,
            exemplars: scratch.exemplars,
            exemplar_labels: recycle(scratch.exemplar_labels),
            metadata: recycle(scratch.metadata),
        };
        out.series.clear();
        out.samples.clear();
        out.exemplars.clear();
        // A series costs at least ~30 bytes on the wire; reserving from the
        // size avoids regrowing the flat arrays for typical requests.
        out.series.reserve(bytes.len() / 64);
        out.labels.reserve(bytes.len() / 16);
        out.samples.reserve(bytes.len() / 64);
        let mut reader = Reader::new(bytes);
        while let Some((tag, wire_type)) = reader.key()? {
            match tag {
                1 => {
                    let body = reader.message(wire_type, RECURSION_LIMIT)?;
                    let offset = bytes.len() - reader.rest.len() - body.len();
                    out.decode_series(body, offset, RECURSION_LIMIT - 1)?;
                }
                3 => {
                    let body = reader.message(wire_type, RECURSION_LIMIT)?;
                    let metadata = decode_metadata(body, RECURSION_LIMIT - 1)?;
                    out.metadata.push(metadata);
                }
                _ => reader.skip(tag, wire_type, RECURSION_LIMIT)?,
            }
        }
        Ok(out)
    }

    /// Ends the borrow of the decoded buffer, keeping the arrays for the
    /// next [`WriteRequestRef::decode_with`].
    pub fn into_scratch(self) -> DecodeScratch {
        DecodeScratch {
            series: recycle(self.series),
            labels: recycle(self.labels),
            samples: recycle(self.samples),
            exemplars: recycle(self.exemplars),
            exemplar_labels: recycle(self.exemplar_labels),
            metadata: recycle(self.metadata),
        }
    }

    /// Borrows an owned request (tests, tools, the owned decoder's callers).
    pub fn from_owned(request: &'a prompb::WriteRequest) -> WriteRequestRef<'a> {
        let label_ref = |l: &'a prompb::Label| LabelRef {
            name: &l.name,
            value: &l.value,
        };
        let mut out = WriteRequestRef::default();
        for series in &request.timeseries {
            let labels_start = out.labels.len();
            out.labels.extend(series.labels.iter().map(label_ref));
            let samples_start = out.samples.len();
            out.samples.extend(
                series
                    .samples
                    .iter()
                    .map(|s| Sample::new(s.timestamp, s.value)),
            );
            let exemplars_start = out.exemplars.len();
            for exemplar in &series.exemplars {
                let start = out.exemplar_labels.len();
                out.exemplar_labels
                    .extend(exemplar.labels.iter().map(label_ref));
                out.exemplars.push(ExemplarSpan {
                    labels: start..out.exemplar_labels.len(),
                    value: exemplar.value,
                    timestamp: exemplar.timestamp,
                });
            }
            out.series.push(SeriesSpans {
                labels: labels_start..out.labels.len(),
                wire_labels: None,
                samples: samples_start..out.samples.len(),
                exemplars: exemplars_start..out.exemplars.len(),
                histograms: series.histograms.len(),
            });
        }
        out.metadata = request
            .metadata
            .iter()
            .map(|m| MetricMetadataRef {
                r#type: m.r#type,
                metric_family_name: &m.metric_family_name,
                help: &m.help,
                unit: &m.unit,
            })
            .collect();
        out
    }

    /// An owned copy (tests and tools). Histograms are not kept, only
    /// counted, so they come back as default messages.
    pub fn to_owned_request(&self) -> prompb::WriteRequest {
        let label = |l: &LabelRef| prompb::Label::new(l.name, l.value);
        prompb::WriteRequest {
            timeseries: self
                .series()
                .map(|s| prompb::TimeSeries {
                    labels: s.labels().iter().map(label).collect(),
                    samples: s
                        .samples()
                        .iter()
                        .map(|s| prompb::Sample {
                            value: s.v,
                            timestamp: s.t,
                        })
                        .collect(),
                    exemplars: s
                        .exemplars()
                        .map(|e| prompb::Exemplar {
                            labels: e.labels.iter().map(label).collect(),
                            value: e.value,
                            timestamp: e.timestamp,
                        })
                        .collect(),
                    histograms: vec![prompb::Histogram::default(); s.histogram_count()],
                })
                .collect(),
            metadata: self
                .metadata
                .iter()
                .map(|m| prompb::MetricMetadata {
                    r#type: m.r#type,
                    metric_family_name: m.metric_family_name.to_string(),
                    help: m.help.to_string(),
                    unit: m.unit.to_string(),
                })
                .collect(),
        }
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// The series in request order.
    pub fn series(&self) -> impl ExactSizeIterator<Item = TimeSeriesRef<'_, 'a>> + Clone + '_ {
        self.series.iter().map(move |spans| TimeSeriesRef {
            request: self,
            spans,
        })
    }

    /// Decodes one `prometheus.TimeSeries`, `bytes`, found at `offset` in
    /// the request's bytes.
    fn decode_series(
        &mut self,
        bytes: &'a [u8],
        offset: usize,
        depth: u32,
    ) -> Result<(), WireError> {
        let labels_start = self.labels.len();
        let samples_start = self.samples.len();
        let exemplars_start = self.exemplars.len();
        let mut histograms = 0;
        // Fast paths for the label entries Prometheus writes first: `0a
        // <len> <label>` with a one-byte length and a label that
        // `decode_ascii_label` reads, one after the other, in a loop that
        // predicts well. The first bytes that are anything else go to the
        // general loop below, which would read these the same way.
        let mut fast = 0;
        while let [0x0a, len, ..] = bytes[fast..] {
            let body = bytes.get(fast + 2..fast + 2 + usize::from(len));
            let Some(label) = body
                .filter(|_| len < 0x80 && depth > 0)
                .and_then(decode_ascii_label)
            else {
                break;
            };
            self.labels.push(label);
            fast += 2 + usize::from(len);
        }
        let labels_end = fast;
        // The samples that follow, the same way.
        while let [0x12, len, ..] = bytes[fast..] {
            let body = bytes.get(fast + 2..fast + 2 + usize::from(len));
            let Some(body) = body.filter(|_| len < 0x80 && depth > 0) else {
                break;
            };
            self.samples.push(decode_sample(body, depth - 1)?);
            fast += 2 + usize::from(len);
        }
        // The label entries' span in `bytes` while they are back to back;
        // `None` once another field came between two of them.
        let mut wire_labels: Option<Range<usize>> = Some(0..labels_end);
        let mut reader = Reader::new(&bytes[fast..]);
        loop {
            let key_at = bytes.len() - reader.rest.len();
            let Some((tag, wire_type)) = reader.key()? else {
                break;
            };
            match tag {
                1 => {
                    let body = reader.message(wire_type, depth)?;
                    let end = bytes.len() - reader.rest.len();
                    wire_labels = match wire_labels {
                        Some(span) if span.is_empty() => Some(key_at..end),
                        Some(span) if span.end == key_at => Some(span.start..end),
                        _ => None,
                    };
                    let label = match decode_ascii_label(body) {
                        Some(label) => label,
                        None => decode_label(body, depth - 1)?,
                    };
                    self.labels.push(label);
                }
                2 => {
                    let body = reader.message(wire_type, depth)?;
                    self.samples.push(decode_sample(body, depth - 1)?);
                }
                3 => {
                    let body = reader.message(wire_type, depth)?;
                    self.decode_exemplar(body, depth - 1)?;
                }
                4 => {
                    let body = reader.message(wire_type, depth)?;
                    // prost's own checks for the rare histogram (its
                    // recursion budget differs from ours only in depth
                    // already spent: 3 levels, far from the limit).
                    prompb::Histogram::decode(body)?;
                    histograms += 1;
                }
                _ => reader.skip(tag, wire_type, depth)?,
            }
        }
        self.series.push(SeriesSpans {
            labels: labels_start..self.labels.len(),
            wire_labels: wire_labels
                .filter(|span| !span.is_empty())
                .map(|span| offset + span.start..offset + span.end),
            samples: samples_start..self.samples.len(),
            exemplars: exemplars_start..self.exemplars.len(),
            histograms,
        });
        Ok(())
    }

    fn decode_exemplar(&mut self, bytes: &'a [u8], depth: u32) -> Result<(), WireError> {
        let labels_start = self.exemplar_labels.len();
        let mut value = 0.0;
        let mut timestamp = 0;
        let mut reader = Reader::new(bytes);
        while let Some((tag, wire_type)) = reader.key()? {
            match tag {
                1 => {
                    let body = reader.message(wire_type, depth)?;
                    self.exemplar_labels.push(decode_label(body, depth - 1)?);
                }
                2 => value = reader.double(wire_type)?,
                3 => timestamp = reader.int64(wire_type)?,
                _ => reader.skip(tag, wire_type, depth)?,
            }
        }
        self.exemplars.push(ExemplarSpan {
            labels: labels_start..self.exemplar_labels.len(),
            value,
            timestamp,
        });
        Ok(())
    }
}

fn decode_label(bytes: &[u8], depth: u32) -> Result<LabelRef<'_>, WireError> {
    if let Some(label) = decode_ascii_label(bytes) {
        return Ok(label);
    }
    let mut label = LabelRef {
        name: "",
        value: "",
    };
    let mut reader = Reader::new(bytes);
    while let Some((tag, wire_type)) = reader.key()? {
        match tag {
            1 => label.name = reader.string(wire_type)?,
            2 => label.value = reader.string(wire_type)?,
            _ => reader.skip(tag, wire_type, depth)?,
        }
    }
    Ok(label)
}

/// The common shape of a label, read directly: `0a <n> name 12 <m> value`
/// with both lengths under 128 (one varint byte) and every byte ASCII.
/// The general loop reads these bytes to the same label; `None` sends
/// anything else there.
#[inline(always)]
fn decode_ascii_label(bytes: &[u8]) -> Option<LabelRef<'_>> {
    let ([0x0a, name_len], rest) = bytes.split_first_chunk::<2>()? else {
        return None;
    };
    let name_len = usize::from(*name_len);
    if name_len >= 0x80 || rest.len() < name_len + 2 {
        return None;
    }
    let (name, rest) = rest.split_at(name_len);
    let ([0x12, value_len], value) = rest.split_first_chunk::<2>()? else {
        return None;
    };
    if usize::from(*value_len) != value.len() || *value_len >= 0x80 {
        return None;
    }
    // One word-at-a-time pass over the whole label (tags and lengths are
    // ASCII too) instead of a UTF-8 validation per string: labels are
    // nearly always ASCII, and this is a per-label cost on the write path.
    if !bytes.is_ascii() {
        return None;
    }
    // SAFETY: `name` and `value` are sub-slices of `bytes`, which is all
    // ASCII, and ASCII is valid UTF-8.
    let (name, value) = unsafe {
        (
            std::str::from_utf8_unchecked(name),
            std::str::from_utf8_unchecked(value),
        )
    };
    Some(LabelRef { name, value })
}

fn decode_sample(bytes: &[u8], depth: u32) -> Result<Sample, WireError> {
    // The common shape, `09 <8 bytes> 10 <varint>` and nothing else, is
    // read directly; anything else takes the general loop.
    if bytes.len() >= 11 && bytes[0] == 0x09 && bytes[9] == 0x10 {
        let value = f64::from_le_bytes(bytes[1..9].try_into().expect("8 bytes"));
        let mut rest = Reader::new(&bytes[10..]);
        let timestamp = rest.varint()? as i64;
        if rest.is_empty() {
            return Ok(Sample::new(timestamp, value));
        }
    }
    let mut sample = Sample::new(0, 0.0);
    let mut reader = Reader::new(bytes);
    while let Some((tag, wire_type)) = reader.key()? {
        match tag {
            1 => sample.v = reader.double(wire_type)?,
            2 => sample.t = reader.int64(wire_type)?,
            _ => reader.skip(tag, wire_type, depth)?,
        }
    }
    Ok(sample)
}

fn decode_metadata(bytes: &[u8], depth: u32) -> Result<MetricMetadataRef<'_>, WireError> {
    let mut metadata = MetricMetadataRef::default();
    let mut reader = Reader::new(bytes);
    while let Some((tag, wire_type)) = reader.key()? {
        match tag {
            // prost's int32 (an enum): the varint truncated to 32 bits.
            1 => metadata.r#type = reader.int64(wire_type)? as i32,
            2 => metadata.metric_family_name = reader.string(wire_type)?,
            4 => metadata.help = reader.string(wire_type)?,
            5 => metadata.unit = reader.string(wire_type)?,
            _ => reader.skip(tag, wire_type, depth)?,
        }
    }
    Ok(metadata)
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// A cursor over protobuf bytes.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// A varint, with `prost`'s rules: at most 10 bytes, the 10th at most 1.
    #[inline]
    fn varint(&mut self) -> Result<u64, WireError> {
        let bytes = self.rest;
        if let Some(&first) = bytes.first() {
            if first < 0x80 {
                self.rest = &bytes[1..];
                return Ok(u64::from(first));
            }
        }
        let mut value = 0u64;
        for (count, &byte) in bytes.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (count * 7);
            if byte < 0x80 {
                if count == 9 && byte >= 0x02 {
                    break;
                }
                self.rest = &bytes[count + 1..];
                return Ok(value);
            }
        }
        Err(WireError::new("invalid varint"))
    }

    /// The next field's tag and wire type, `None` at the end.
    #[inline]
    fn key(&mut self) -> Result<Option<(u32, u8)>, WireError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire_type = (key & 7) as u8;
        let tag = (key as u32) >> 3;
        if key > u64::from(u32::MAX) || wire_type > FIXED32 || tag == 0 {
            return Err(invalid_key(key));
        }
        Ok(Some((tag, wire_type)))
    }

    #[inline]
    fn take(&mut self, len: u64) -> Result<&'a [u8], WireError> {
        if len > self.rest.len() as u64 {
            return Err(WireError::new("buffer underflow"));
        }
        let (taken, rest) = self.rest.split_at(len as usize);
        self.rest = rest;
        Ok(taken)
    }

    #[inline]
    fn expect(wire_type: u8, expected: u8) -> Result<(), WireError> {
        if wire_type == expected {
            Ok(())
        } else {
            Err(wrong_wire_type(wire_type, expected))
        }
    }

    /// A length-delimited field's bytes.
    #[inline]
    fn bytes(&mut self, wire_type: u8) -> Result<&'a [u8], WireError> {
        Reader::expect(wire_type, LEN)?;
        let len = self.varint()?;
        self.take(len)
    }

    /// An embedded message's bytes; `depth` is the recursion budget left.
    #[inline]
    fn message(&mut self, wire_type: u8, depth: u32) -> Result<&'a [u8], WireError> {
        if depth == 0 {
            return Err(WireError::new("recursion limit reached"));
        }
        self.bytes(wire_type)
    }

    fn string(&mut self, wire_type: u8) -> Result<&'a str, WireError> {
        let bytes = self.bytes(wire_type)?;
        std::str::from_utf8(bytes)
            .map_err(|_| WireError::new("invalid string value: data is not UTF-8 encoded"))
    }

    fn double(&mut self, wire_type: u8) -> Result<f64, WireError> {
        Reader::expect(wire_type, FIXED64)?;
        let bytes = self.take(8)?;
        Ok(f64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    fn int64(&mut self, wire_type: u8) -> Result<i64, WireError> {
        Reader::expect(wire_type, VARINT)?;
        Ok(self.varint()? as i64)
    }

    /// Skips an unknown field (groups included), as `prost::encoding::skip_field`.
    fn skip(&mut self, tag: u32, wire_type: u8, depth: u32) -> Result<(), WireError> {
        if depth == 0 {
            return Err(WireError::new("recursion limit reached"));
        }
        let len = match wire_type {
            VARINT => {
                self.varint()?;
                0
            }
            FIXED64 => 8,
            FIXED32 => 4,
            LEN => self.varint()?,
            START_GROUP => loop {
                let Some((inner_tag, inner_wire_type)) = self.key()? else {
                    return Err(WireError::new("invalid varint"));
                };
                if inner_wire_type == END_GROUP {
                    if inner_tag != tag {
                        return Err(WireError::new("unexpected end group tag"));
                    }
                    break 0;
                }
                self.skip(inner_tag, inner_wire_type, depth - 1)?;
            },
            _ => return Err(WireError::new("unexpected end group tag")),
        };
        self.take(len).map(|_| ())
    }
}

/// The error for a key `Reader::key` refuses, in `prost`'s order of checks.
#[cold]
fn invalid_key(key: u64) -> WireError {
    let wire_type = key & 7;
    if key > u64::from(u32::MAX) {
        WireError::new(&format!("invalid key value: {key}"))
    } else if wire_type > u64::from(FIXED32) {
        WireError::new(&format!("invalid wire type value: {wire_type}"))
    } else {
        WireError::new("invalid tag value: 0")
    }
}

#[cold]
fn wrong_wire_type(wire_type: u8, expected: u8) -> WireError {
    WireError::new(&format!(
        "invalid wire type: {} (expected {})",
        wire_type_name(wire_type),
        wire_type_name(expected)
    ))
}

fn wire_type_name(wire_type: u8) -> &'static str {
    match wire_type {
        VARINT => "Varint",
        FIXED64 => "SixtyFourBit",
        LEN => "LengthDelimited",
        START_GROUP => "StartGroup",
        END_GROUP => "EndGroup",
        _ => "ThirtyTwoBit",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request decoded into the arrays of an earlier, bigger one equals
    /// a fresh decode, and the arrays' allocations are kept.
    #[test]
    fn decode_with_scratch_reuses_the_arrays() {
        let big = sample_request().encode_to_vec();
        let first = WriteRequestRef::decode(&big).unwrap();
        let expected = first.clone();
        let scratch = first.into_scratch();
        let kept = scratch.capacity_bytes();
        assert!(kept > 0);
        let again = WriteRequestRef::decode_with(&big, scratch).unwrap();
        assert_eq!(again, expected);
        let small = prompb::WriteRequest {
            timeseries: vec![prompb::TimeSeries {
                labels: vec![prompb::Label::new("__name__", "x")],
                ..Default::default()
            }],
            metadata: vec![],
        }
        .encode_to_vec();
        let reused = WriteRequestRef::decode_with(&small, again.into_scratch()).unwrap();
        assert_eq!(reused, WriteRequestRef::decode(&small).unwrap());
        assert_eq!(reused.into_scratch().capacity_bytes(), kept);
    }

    fn sample_request() -> prompb::WriteRequest {
        prompb::WriteRequest {
            timeseries: vec![
                prompb::TimeSeries {
                    labels: vec![
                        prompb::Label::new("__name__", "up"),
                        prompb::Label::new("job", "é"),
                    ],
                    samples: vec![
                        prompb::Sample {
                            value: 1.5,
                            timestamp: 1_700_000_000_000,
                        },
                        prompb::Sample {
                            value: 0.0,
                            timestamp: -5,
                        },
                    ],
                    exemplars: vec![prompb::Exemplar {
                        labels: vec![prompb::Label::new("trace_id", "abc")],
                        value: 2.0,
                        timestamp: 7,
                    }],
                    histograms: vec![prompb::Histogram::default()],
                },
                prompb::TimeSeries::default(),
            ],
            metadata: vec![prompb::MetricMetadata {
                r#type: 42,
                metric_family_name: "up".into(),
                help: "h".into(),
                unit: String::new(),
            }],
        }
    }

    #[test]
    fn decodes_what_prost_encodes() {
        let request = sample_request();
        let bytes = request.encode_to_vec();
        let decoded = WriteRequestRef::decode(&bytes).unwrap();
        assert_eq!(decoded.to_owned_request(), request);
        assert_eq!(decoded, WriteRequestRef::from_owned(&request));
        assert_eq!(
            decoded.metadata[0].metric_type(),
            prompb::metric_metadata::MetricType::Unknown
        );
    }

    #[test]
    fn repeated_scalars_keep_the_last_value_and_unknown_fields_are_skipped() {
        // Label { name: "a", name: "b", 7: varint 5, 8: group { 1: fixed32 }, value: "c" }
        let label = [
            0x0a, 0x01, b'a', 0x0a, 0x01, b'b', 0x38, 0x05, 0x43, 0x0d, 1, 2, 3, 4, 0x44, 0x12,
            0x01, b'c',
        ];
        let mut series = vec![0x0a, label.len() as u8];
        series.extend_from_slice(&label);
        let mut request = vec![0x0a, series.len() as u8];
        request.extend_from_slice(&series);
        let decoded = WriteRequestRef::decode(&request).unwrap();
        assert_eq!(
            decoded.series().next().unwrap().labels(),
            &[LabelRef {
                name: "b",
                value: "c"
            }]
        );
        assert_eq!(
            prompb::WriteRequest::decode(request.as_slice()).unwrap(),
            decoded.to_owned_request()
        );
    }

    #[test]
    fn errors_where_prost_errors() {
        let cases: &[(&str, &[u8])] = &[
            ("truncated length", &[0x0a, 10, 0x00]),
            ("invalid wire type", &[0x0f]),
            (
                "label not utf-8",
                &[0x0a, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0xff],
            ),
            ("truncated double", &[0x0a, 0x04, 0x12, 0x02, 0x09, 0x00]),
            ("series as varint", &[0x08, 0x01]),
            ("tag zero", &[0x00]),
            ("lone end group", &[0x0c]),
            (
                "varint overflow",
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
                ],
            ),
            ("open group", &[0x0b]),
        ];
        for (name, bytes) in cases {
            let err = WriteRequestRef::decode(bytes).unwrap_err();
            assert!(
                prompb::WriteRequest::decode(*bytes).is_err(),
                "{name}: prost accepts"
            );
            assert!(
                err.to_string()
                    .starts_with("failed to decode Protobuf message: "),
                "{name}: {err}"
            );
        }
        let mut deep = vec![0x5b; 120];
        deep.extend(vec![0x5c; 120]);
        assert!(WriteRequestRef::decode(&deep).is_err());
        assert!(prompb::WriteRequest::decode(deep.as_slice()).is_err());
    }

    /// A series' label entries are given as received when they are back
    /// to back (whatever comes before or after them), and not when another
    /// field splits them or there are none.
    #[test]
    fn wire_labels_are_the_label_entries_as_received() {
        let labels = vec![
            prompb::Label::new("__name__", "up"),
            prompb::Label::new("job", "é"),
        ];
        let labels_only = prompb::TimeSeries {
            labels: labels.clone(),
            ..Default::default()
        }
        .encode_to_vec();
        let request = sample_request();
        let bytes = request.encode_to_vec();
        let decoded = WriteRequestRef::decode(&bytes).unwrap();
        let series: Vec<_> = decoded.series().collect();
        assert_eq!(series[0].wire_labels(), Some(labels_only.as_slice()));
        assert_eq!(series[1].wire_labels(), None, "no labels");
        assert_eq!(
            WriteRequestRef::from_owned(&request)
                .series()
                .next()
                .unwrap()
                .wire_labels(),
            None
        );

        // Samples first, then the labels: still back to back.
        let sample = prompb::TimeSeries {
            samples: vec![prompb::Sample {
                value: 1.0,
                timestamp: 2,
            }],
            ..Default::default()
        }
        .encode_to_vec();
        let wrap = |series: &[u8]| {
            let mut out = vec![0x0a, series.len() as u8];
            out.extend_from_slice(series);
            out
        };
        let after = wrap(&[sample.clone(), labels_only.clone()].concat());
        let decoded = WriteRequestRef::decode(&after).unwrap();
        let series = decoded.series().next().unwrap();
        assert_eq!(series.wire_labels(), Some(labels_only.as_slice()));
        assert_eq!(series.samples().len(), 1);

        // A sample between the two labels: not back to back.
        let first = prompb::TimeSeries {
            labels: labels[..1].to_vec(),
            ..Default::default()
        }
        .encode_to_vec();
        let split = wrap(&[first.clone(), sample, labels_only[first.len()..].to_vec()].concat());
        let decoded = WriteRequestRef::decode(&split).unwrap();
        let series = decoded.series().next().unwrap();
        assert_eq!(series.labels().len(), 2);
        assert_eq!(series.wire_labels(), None);
    }
}
