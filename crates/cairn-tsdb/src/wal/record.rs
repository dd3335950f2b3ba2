//! WAL record framing and payloads. Byte layout: `docs/format.md`, "WAL".

use cairn_model::{Exemplar, Label, Labels, MetricMetadata, MetricType};

use crate::tombstones::Interval;

/// `type u8 | length u32 LE | crc32 u32 LE`.
pub const HEADER_LEN: usize = 9;

/// Largest payload a reader accepts (a sanity bound against corrupt lengths).
pub const MAX_PAYLOAD_LEN: usize = 1 << 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordType {
    Series = 1,
    Samples = 2,
    Exemplars = 3,
    Metadata = 4,
    Tombstones = 5,
}

impl RecordType {
    pub fn from_byte(byte: u8) -> Option<RecordType> {
        match byte {
            1 => Some(RecordType::Series),
            2 => Some(RecordType::Samples),
            3 => Some(RecordType::Exemplars),
            4 => Some(RecordType::Metadata),
            5 => Some(RecordType::Tombstones),
            _ => None,
        }
    }
}

/// A sample addressed by series ID.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefSample {
    pub id: u64,
    pub t: i64,
    pub v: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RefExemplar {
    pub id: u64,
    pub exemplar: Exemplar,
}

/// One decoded WAL record.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Series(Vec<(u64, Labels)>),
    Samples(Vec<RefSample>),
    Exemplars(Vec<RefExemplar>),
    Metadata(Vec<MetricMetadata>),
    /// Deleted ranges of head series: `(series ID, interval)`.
    Tombstones(Vec<(u64, Interval)>),
}

/// The CRC32 of a record: IEEE polynomial (`crc32fast`), over the type byte,
/// the length bytes and the payload.
pub fn checksum(header_type_and_len: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header_type_and_len);
    hasher.update(payload);
    hasher.finalize()
}

/// Appends one framed record to `out`. Encoders keep payloads near
/// [`SOFT_PAYLOAD_LIMIT`]; only a single entry over 1 GiB (labels that
/// validation never lets through) could exceed the frame's limit.
pub fn frame(record_type: RecordType, payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        payload.len() <= MAX_PAYLOAD_LEN,
        "wal record payload of {} bytes exceeds the format's limit",
        payload.len()
    );
    let len = payload.len() as u32;
    let mut type_and_len = [0u8; 5];
    type_and_len[0] = record_type as u8;
    type_and_len[1..5].copy_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&type_and_len);
    out.extend_from_slice(&checksum(&type_and_len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Encodes and frames `record` into `out` (nothing for an empty record).
pub fn encode(record: &Record, out: &mut Vec<u8>) {
    match record {
        Record::Series(series) => encode_series(series, out),
        Record::Samples(samples) => encode_samples(samples, out),
        Record::Exemplars(exemplars) => encode_exemplars(exemplars, out),
        Record::Metadata(metadata) => encode_metadata(metadata, out),
        Record::Tombstones(stones) => encode_tombstones(stones, out),
    }
}

/// Payload size after which an encoder starts a new record, so that one
/// huge append becomes several records of bounded size.
pub const SOFT_PAYLOAD_LIMIT: usize = 8 << 20;

/// Bytes before a record's payload: type, length, CRC (see [`frame`]).
const FRAME_HEADER_LEN: usize = 9;

/// Frames entries into records of at most about [`SOFT_PAYLOAD_LIMIT`]
/// bytes, writing each payload in place in `out` (after room for its
/// header, filled in when the record is closed): the same bytes as
/// [`frame`] without copying the payload.
struct RecordBuilder<'a> {
    record_type: RecordType,
    /// Where the open record's header starts in `out`.
    start: usize,
    out: &'a mut Vec<u8>,
}

impl<'a> RecordBuilder<'a> {
    fn new(record_type: RecordType, out: &'a mut Vec<u8>) -> RecordBuilder<'a> {
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        RecordBuilder {
            record_type,
            start,
            out,
        }
    }

    /// Where the entries go: the end of the open record's payload.
    fn payload(&mut self) -> &mut Vec<u8> {
        self.out
    }

    fn payload_len(&self) -> usize {
        self.out.len() - self.start - FRAME_HEADER_LEN
    }

    /// Whether the next entry should start a new record.
    fn is_full(&self) -> bool {
        self.payload_len() >= SOFT_PAYLOAD_LIMIT
    }

    /// Closes the open record and opens the next one.
    fn flush(&mut self) {
        self.close();
        self.start = self.out.len();
        self.out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    }

    /// Closes the open record (an empty one leaves nothing).
    fn finish(mut self) {
        self.close();
    }

    fn close(&mut self) {
        let len = self.payload_len();
        if len == 0 {
            self.out.truncate(self.start);
            return;
        }
        assert!(
            len <= MAX_PAYLOAD_LEN,
            "wal record payload of {len} bytes exceeds the format's limit"
        );
        let mut type_and_len = [0u8; 5];
        type_and_len[0] = self.record_type as u8;
        type_and_len[1..5].copy_from_slice(&(len as u32).to_le_bytes());
        let payload_start = self.start + FRAME_HEADER_LEN;
        let crc = checksum(&type_and_len, &self.out[payload_start..]);
        self.out[self.start..self.start + 5].copy_from_slice(&type_and_len);
        self.out[self.start + 5..payload_start].copy_from_slice(&crc.to_le_bytes());
    }
}

pub fn encode_series(series: &[(u64, Labels)], out: &mut Vec<u8>) {
    let mut builder = RecordBuilder::new(RecordType::Series, out);
    for (id, labels) in series {
        if builder.is_full() {
            builder.flush();
        }
        put_uvarint(builder.payload(), *id);
        put_labels(builder.payload(), labels);
    }
    builder.finish();
}

pub fn encode_samples(samples: &[RefSample], out: &mut Vec<u8>) {
    // At most 10 + 10 + 8 bytes a sample, usually 1 + 1 + 8.
    out.reserve(FRAME_HEADER_LEN + 16 + samples.len() * 12);
    let mut builder = RecordBuilder::new(RecordType::Samples, out);
    let mut base = (0u64, 0i64);
    for sample in samples {
        if builder.is_full() {
            builder.flush();
        }
        if builder.payload_len() == 0 {
            base = (sample.id, sample.t);
            builder
                .payload()
                .extend_from_slice(&sample.id.to_le_bytes());
            builder.payload().extend_from_slice(&sample.t.to_le_bytes());
        }
        put_varint(builder.payload(), sample.id.wrapping_sub(base.0) as i64);
        put_varint(builder.payload(), sample.t.wrapping_sub(base.1));
        builder
            .payload()
            .extend_from_slice(&sample.v.to_bits().to_le_bytes());
    }
    builder.finish();
}

pub fn encode_exemplars(exemplars: &[RefExemplar], out: &mut Vec<u8>) {
    let mut builder = RecordBuilder::new(RecordType::Exemplars, out);
    for e in exemplars {
        if builder.is_full() {
            builder.flush();
        }
        put_uvarint(builder.payload(), e.id);
        put_varint(builder.payload(), e.exemplar.t);
        builder
            .payload()
            .extend_from_slice(&e.exemplar.value.to_bits().to_le_bytes());
        put_labels(builder.payload(), &e.exemplar.labels);
    }
    builder.finish();
}

pub fn encode_metadata(metadata: &[MetricMetadata], out: &mut Vec<u8>) {
    let mut builder = RecordBuilder::new(RecordType::Metadata, out);
    for m in metadata {
        if builder.is_full() {
            builder.flush();
        }
        put_str(builder.payload(), &m.metric_family_name);
        builder.payload().push(metric_type_to_byte(m.metric_type));
        put_str(builder.payload(), &m.unit);
        put_str(builder.payload(), &m.help);
    }
    builder.finish();
}

pub fn encode_tombstones(stones: &[(u64, Interval)], out: &mut Vec<u8>) {
    let mut builder = RecordBuilder::new(RecordType::Tombstones, out);
    for (id, interval) in stones {
        if builder.is_full() {
            builder.flush();
        }
        put_uvarint(builder.payload(), *id);
        put_varint(builder.payload(), interval.min_t);
        put_varint(builder.payload(), interval.max_t);
    }
    builder.finish();
}

/// Why a payload failed to decode.
#[derive(Debug, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

/// Decodes a payload whose frame (type, length, checksum) was verified.
pub fn decode(record_type: RecordType, payload: &[u8]) -> Result<Record, DecodeError> {
    let mut reader = Reader { bytes: payload };
    match record_type {
        RecordType::Series => {
            let mut series = Vec::new();
            while !reader.is_empty() {
                let id = reader.uvarint()?;
                series.push((id, reader.labels()?));
            }
            Ok(Record::Series(series))
        }
        RecordType::Samples => {
            let base_id = reader.u64()?;
            let base_t = reader.u64()? as i64;
            let mut samples = Vec::new();
            while !reader.is_empty() {
                let id = base_id.wrapping_add(reader.varint()? as u64);
                let t = base_t.wrapping_add(reader.varint()?);
                let v = f64::from_bits(reader.u64()?);
                samples.push(RefSample { id, t, v });
            }
            Ok(Record::Samples(samples))
        }
        RecordType::Exemplars => {
            let mut exemplars = Vec::new();
            while !reader.is_empty() {
                let id = reader.uvarint()?;
                let t = reader.varint()?;
                let value = f64::from_bits(reader.u64()?);
                let labels = reader.labels()?;
                exemplars.push(RefExemplar {
                    id,
                    exemplar: Exemplar { labels, value, t },
                });
            }
            Ok(Record::Exemplars(exemplars))
        }
        RecordType::Metadata => {
            let mut metadata = Vec::new();
            while !reader.is_empty() {
                let metric_family_name = reader.string()?;
                let metric_type = metric_type_from_byte(reader.u8()?)?;
                let unit = reader.string()?;
                let help = reader.string()?;
                metadata.push(MetricMetadata {
                    metric_family_name,
                    metric_type,
                    help,
                    unit,
                });
            }
            Ok(Record::Metadata(metadata))
        }
        RecordType::Tombstones => {
            let mut stones = Vec::new();
            while !reader.is_empty() {
                let id = reader.uvarint()?;
                let min_t = reader.varint()?;
                let max_t = reader.varint()?;
                stones.push((id, Interval::new(min_t, max_t)));
            }
            Ok(Record::Tombstones(stones))
        }
    }
}

fn metric_type_to_byte(metric_type: MetricType) -> u8 {
    match metric_type {
        MetricType::Unknown => 0,
        MetricType::Counter => 1,
        MetricType::Gauge => 2,
        MetricType::Histogram => 3,
        MetricType::GaugeHistogram => 4,
        MetricType::Summary => 5,
        MetricType::Info => 6,
        MetricType::StateSet => 7,
    }
}

fn metric_type_from_byte(byte: u8) -> Result<MetricType, DecodeError> {
    Ok(match byte {
        0 => MetricType::Unknown,
        1 => MetricType::Counter,
        2 => MetricType::Gauge,
        3 => MetricType::Histogram,
        4 => MetricType::GaugeHistogram,
        5 => MetricType::Summary,
        6 => MetricType::Info,
        7 => MetricType::StateSet,
        _ => return Err(DecodeError("unknown metric type")),
    })
}

fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Zigzag, then unsigned varint (protobuf's sint64).
fn put_varint(out: &mut Vec<u8>, value: i64) {
    put_uvarint(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_labels(out: &mut Vec<u8>, labels: &Labels) {
    put_uvarint(out, labels.len() as u64);
    for label in labels {
        put_str(out, &label.name);
        put_str(out, &label.value);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError("unexpected end of record"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("took 8 bytes")))
    }

    fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            if shift == 63 && byte > 1 {
                return Err(DecodeError("varint overflows u64"));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(DecodeError("varint overflows u64"))
    }

    fn varint(&mut self) -> Result<i64, DecodeError> {
        let raw = self.uvarint()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let len = usize::try_from(self.uvarint()?).map_err(|_| DecodeError("string too long"))?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError("string is not utf-8"))
    }

    fn labels(&mut self) -> Result<Labels, DecodeError> {
        let count = self.uvarint()?;
        // Each label takes at least two bytes: bound the allocation by the input.
        if count > self.bytes.len() as u64 / 2 {
            return Err(DecodeError("label count exceeds record"));
        }
        let mut labels = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let name = self.string()?;
            let value = self.string()?;
            labels.push(Label { name, value });
        }
        Ok(Labels::new(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_extremes() {
        for value in [0i64, 1, -1, 63, -64, 64, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(Reader { bytes: &out }.varint(), Ok(value));
        }
        for value in [0u64, 127, 128, u64::MAX] {
            let mut out = Vec::new();
            put_uvarint(&mut out, value);
            assert_eq!(Reader { bytes: &out }.uvarint(), Ok(value));
        }
        let overlong = [0xffu8; 11];
        assert!(Reader { bytes: &overlong }.uvarint().is_err());
    }

    #[test]
    fn records_framed_in_place_match_frame() {
        let samples = [
            RefSample {
                id: 7,
                t: 1_000,
                v: 1.5,
            },
            RefSample {
                id: 9,
                t: 900,
                v: -2.0,
            },
        ];
        let mut payload = Vec::new();
        payload.extend_from_slice(&7u64.to_le_bytes());
        payload.extend_from_slice(&1_000i64.to_le_bytes());
        for (id_delta, t_delta, v) in [(0i64, 0i64, 1.5f64), (2, -100, -2.0)] {
            put_varint(&mut payload, id_delta);
            put_varint(&mut payload, t_delta);
            payload.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        let mut expected = b"earlier bytes".to_vec();
        let mut out = expected.clone();
        frame(RecordType::Samples, &payload, &mut expected);
        encode_samples(&samples, &mut out);
        assert_eq!(out, expected);
        // Nothing to encode leaves `out` as it was.
        encode_samples(&[], &mut out);
        encode_series(&[], &mut out);
        assert_eq!(out, expected);
    }

    #[test]
    fn huge_appends_are_split_into_bounded_records() {
        let samples: Vec<RefSample> = (0..1_000_000u64)
            .map(|i| RefSample {
                id: i % 1000,
                t: i as i64,
                v: i as f64,
            })
            .collect();
        let mut framed = Vec::new();
        encode_samples(&samples, &mut framed);
        let mut decoded = Vec::new();
        let mut records = 0;
        let mut rest = framed.as_slice();
        while !rest.is_empty() {
            let len = u32::from_le_bytes(rest[1..5].try_into().unwrap()) as usize;
            assert!(len < SOFT_PAYLOAD_LIMIT + 64);
            let Record::Samples(part) =
                decode(RecordType::Samples, &rest[HEADER_LEN..HEADER_LEN + len]).unwrap()
            else {
                panic!("not samples");
            };
            decoded.extend(part);
            records += 1;
            rest = &rest[HEADER_LEN + len..];
        }
        assert!(records > 1);
        assert_eq!(decoded, samples);
    }

    #[test]
    fn every_record_type_round_trips() {
        let records = vec![
            Record::Series(vec![(
                7,
                Labels::from_pairs(&[("__name__", "up"), ("a", "b")]),
            )]),
            Record::Samples(vec![
                RefSample {
                    id: 7,
                    t: 1000,
                    v: 1.5,
                },
                RefSample {
                    id: 3,
                    t: -5,
                    v: f64::NAN,
                },
            ]),
            Record::Exemplars(vec![RefExemplar {
                id: 7,
                exemplar: Exemplar {
                    labels: Labels::from_pairs(&[("trace_id", "abc")]),
                    value: 2.0,
                    t: 999,
                },
            }]),
            Record::Metadata(vec![MetricMetadata {
                metric_family_name: "up".into(),
                metric_type: MetricType::Gauge,
                help: "is it up".into(),
                unit: "".into(),
            }]),
            Record::Tombstones(vec![
                (7, Interval::new(-10, 20)),
                (3, Interval::new(i64::MIN, i64::MAX)),
            ]),
        ];
        for record in records {
            let mut framed = Vec::new();
            encode(&record, &mut framed);
            let record_type = RecordType::from_byte(framed[0]).unwrap();
            let decoded = decode(record_type, &framed[HEADER_LEN..]).unwrap();
            // NaN != NaN, so compare the debug forms, which show the bits' value.
            assert_eq!(format!("{decoded:?}"), format!("{record:?}"));
        }
    }
}
