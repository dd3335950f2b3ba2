//! A series' labels packed into one allocation, for memory and for fast
//! comparison on the append path.

use std::mem::MaybeUninit;

use cairn_model::{Label, LabelRef, Labels, LabelsRef};

/// Label pairs in name order, encoded as Prometheus's remote write sends
/// them ([`pack_pairs`]) in one boxed byte slice (Prometheus's
/// `stringlabels` idea). Only built from valid [`Labels`], so the bytes are
/// always UTF-8 strings in well-formed entries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PackedLabels(Box<[u8]>);

impl PackedLabels {
    pub fn new(labels: &Labels) -> PackedLabels {
        let size: usize = labels
            .iter()
            .map(|l| packed_len(l.name.len(), l.value.len()))
            .sum();
        let mut bytes = Vec::with_capacity(size);
        pack_pairs(
            labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
            &mut bytes,
        );
        PackedLabels(bytes.into_boxed_slice())
    }

    /// The packed bytes (see [`pack_pairs`]): two label sets are equal
    /// exactly when their packed bytes are.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// `(name, value)` pairs in name order.
    pub fn iter(&self) -> PackedIter<'_> {
        PackedIter { rest: &self.0 }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// `(name, value)` pairs as bytes, skipping UTF-8 validation.
    fn raw_pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut rest: &[u8] = &self.0;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            Some(take_pair(&mut rest))
        })
    }

    pub fn to_labels(&self) -> Labels {
        Labels::from_sorted(self.iter().map(|(n, v)| Label::new(n, v)).collect())
    }

    /// Whether these are exactly `labels`, without allocating.
    pub fn equals(&self, labels: &Labels) -> bool {
        self.equals_pairs(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
    }

    /// [`PackedLabels::equals`] for borrowed labels.
    pub fn equals_ref(&self, labels: LabelsRef<'_>) -> bool {
        self.equals_pairs(labels.iter().map(|l| (l.name, l.value)))
    }

    fn equals_pairs<'x>(&self, pairs: impl Iterator<Item = (&'x str, &'x str)>) -> bool {
        let mut mine = self.raw_pairs();
        for (name, value) in pairs {
            match mine.next() {
                Some((my_name, my_value))
                    if my_name == name.as_bytes() && my_value == value.as_bytes() => {}
                _ => return false,
            }
        }
        mine.next().is_none()
    }
}

/// A series' labels as a write request sent them, to look up
/// (`Head::lookup_label_sets`): in the order sent, possibly unsorted,
/// repeated or with empty values (such sets match nothing).
#[derive(Clone, Copy, Debug)]
pub struct LabelsAsSent<'l> {
    pub labels: &'l [LabelRef<'l>],
    /// The bytes of the same labels' entries in the request's
    /// `prometheus.TimeSeries` (field 1, tags and lengths included),
    /// exactly as received, when they sat back to back. Compared with
    /// stored sets as they are ([`pack_pairs`] writes that encoding), so
    /// they need no packing; bytes written another way (longer varints,
    /// other field order) simply match nothing and the set is not found.
    pub wire: Option<&'l [u8]>,
}

impl<'l> LabelsAsSent<'l> {
    /// Labels without their wire bytes: packed to be looked up.
    pub fn new(labels: &'l [LabelRef<'l>]) -> LabelsAsSent<'l> {
        LabelsAsSent { labels, wire: None }
    }
}

pub struct PackedIter<'a> {
    rest: &'a [u8],
}

/// Takes one packed label, `(name, value)`, off the front of `bytes`
/// (written by [`pack_pairs`], so the tags are where it put them).
fn take_pair<'a>(bytes: &mut &'a [u8]) -> (&'a [u8], &'a [u8]) {
    // The entry's tag and length, then the name's tag.
    *bytes = &bytes[1..];
    take_uvarint(bytes);
    *bytes = &bytes[1..];
    let name = take_bytes(bytes);
    // The value's tag.
    *bytes = &bytes[1..];
    let value = take_bytes(bytes);
    (name, value)
}

/// Takes one length-prefixed byte string off the front of `bytes`.
fn take_bytes<'a>(bytes: &mut &'a [u8]) -> &'a [u8] {
    let len = take_uvarint(bytes);
    let (string, rest) = bytes.split_at(len);
    *bytes = rest;
    string
}

impl<'a> Iterator for PackedIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        if self.rest.is_empty() {
            return None;
        }
        let (name, value) = take_pair(&mut self.rest);
        let utf8 = |s| std::str::from_utf8(s).expect("packed labels hold valid utf-8");
        Some((utf8(name), utf8(value)))
    }
}

/// Tag of `prometheus.TimeSeries.labels` (field 1) and of
/// `prometheus.Label.name` (field 1): length-delimited.
const TAG_LABEL_OR_NAME: u8 = 0x0a;
/// Tag of `prometheus.Label.value` (field 2): length-delimited.
const TAG_VALUE: u8 = 0x12;

/// Appends `(name, value)` pairs (in name order) to `out` in the packed
/// format: per label, the `labels` entry of a `prometheus.TimeSeries` as
/// protobuf writes it, `0a uvarint(len) 0a uvarint(len) name 12
/// uvarint(len) value` (`prompb/types.proto`; shortest varints, fields in
/// number order, as Prometheus's remote write and `prost` encode it). The
/// format is prefix-free, so equal bytes mean equal label sets; the head
/// hashes and compares these bytes to find a series. Being the wire
/// encoding, a request's label entries, when they sit back to back, are
/// looked up as received, without packing them (`Head::lookup_label_sets`).
/// Unlike protobuf, an empty string is written too; stored label sets
/// have none, and a set sent with one (which validation drops) simply
/// matches nothing.
///
/// The append path packs every series it cannot look up by its wire
/// bytes, so this is hot (issue 8: ~6 % of ingest CPU as two
/// `extend_from_slice`s, each a `memmove` call, and pushes per label). A
/// label whose entry is shorter than 128 bytes (one-byte lengths: nearly
/// all) takes one capacity check (a no-op when the caller reserved
/// [`packed_len`] for the set) and is written in place, strings up to 64
/// bytes with a few fixed-size moves instead of a library call.
pub fn pack_pairs<'x>(pairs: impl Iterator<Item = (&'x str, &'x str)>, out: &mut Vec<u8>) {
    for (name, value) in pairs {
        let (name, value) = (name.as_bytes(), value.as_bytes());
        let (n, v) = (name.len(), value.len());
        // The `Label` message: two tags, two one-byte lengths, the strings.
        let message = n + v + 4;
        if message >= 0x80 {
            out.push(TAG_LABEL_OR_NAME);
            put_uvarint(out, message_len(n, v));
            out.push(TAG_LABEL_OR_NAME);
            put_uvarint(out, n);
            out.extend_from_slice(name);
            out.push(TAG_VALUE);
            put_uvarint(out, v);
            out.extend_from_slice(value);
            continue;
        }
        let len = message + 2;
        out.reserve(len);
        let start = out.len();
        let dst = &mut out.spare_capacity_mut()[..len];
        let (name_dst, value_dst) = dst.split_at_mut(n + 4);
        name_dst[0].write(TAG_LABEL_OR_NAME);
        name_dst[1].write(message as u8);
        name_dst[2].write(TAG_LABEL_OR_NAME);
        name_dst[3].write(n as u8);
        copy_bytes(&mut name_dst[4..], name);
        value_dst[0].write(TAG_VALUE);
        value_dst[1].write(v as u8);
        copy_bytes(&mut value_dst[2..], value);
        // SAFETY: `dst` is the first `len` elements of the spare capacity
        // (the slicing above checked `len <= spare.len()`), i.e. `out[start
        // .. start + len]`, and the writes above initialised all of it:
        // `name_dst` is `dst[..n + 4]` (four tag and length bytes, then `n`
        // name bytes), `value_dst` is `dst[n + 4..]` (tag, length, then `v`
        // value bytes), and `len = n + v + 6`.
        unsafe { out.set_len(start + len) };
    }
}

/// Bytes one label takes packed ([`pack_pairs`]).
pub fn packed_len(name_len: usize, value_len: usize) -> usize {
    let message = message_len(name_len, value_len);
    1 + uvarint_len(message) + message
}

/// Bytes of one `prometheus.Label` message with both fields.
fn message_len(name_len: usize, value_len: usize) -> usize {
    2 + uvarint_len(name_len) + name_len + uvarint_len(value_len) + value_len
}

fn uvarint_len(value: usize) -> usize {
    // 7 bits a byte; 0 still takes one.
    (usize::BITS - (value | 1).leading_zeros()).div_ceil(7) as usize
}

fn put_uvarint(out: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Copies `src` into `dst` (the same length). Up to 64 bytes, as two
/// fixed-size moves that may overlap (head and tail), which compile to
/// plain loads and stores: label names and most values are that short,
/// and a `memcpy` call per string costs more than the copy. Longer strings
/// take the one library call.
#[inline(always)]
fn copy_bytes(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    match src.len() {
        0 => {}
        1 => copy_head_tail::<1>(dst, src),
        2..=3 => copy_head_tail::<2>(dst, src),
        4..=7 => copy_head_tail::<4>(dst, src),
        8..=15 => copy_head_tail::<8>(dst, src),
        16..=31 => copy_head_tail::<16>(dst, src),
        32..=64 => copy_head_tail::<32>(dst, src),
        _ => {
            assert_eq!(dst.len(), src.len());
            for (d, s) in dst.iter_mut().zip(src) {
                d.write(*s);
            }
        }
    }
}

/// For `N <= src.len() == dst.len() <= 2 * N`: the first `N` and the
/// last `N` bytes, which together cover all of them.
#[inline(always)]
fn copy_head_tail<const N: usize>(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    assert!(dst.len() == src.len() && N <= src.len() && src.len() <= 2 * N);
    let (Some(head), Some(tail)) = (src.first_chunk::<N>(), src.last_chunk::<N>()) else {
        unreachable!("checked N <= len");
    };
    let (head, tail) = (*head, *tail);
    if let Some(d) = dst.first_chunk_mut::<N>() {
        *d = head.map(MaybeUninit::new);
    }
    if let Some(d) = dst.last_chunk_mut::<N>() {
        *d = tail.map(MaybeUninit::new);
    }
}

fn take_uvarint(bytes: &mut &[u8]) -> usize {
    let mut value = 0usize;
    let mut shift = 0;
    loop {
        let byte = bytes[0];
        *bytes = &bytes[1..];
        value |= usize::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return value;
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The packed format written the plain way (the format's definition:
    /// the `labels` entries of a `prometheus.TimeSeries`).
    fn reference_pack(pairs: &[(&str, &str)]) -> Vec<u8> {
        fn put(out: &mut Vec<u8>, mut value: usize) {
            while value >= 0x80 {
                out.push((value as u8) | 0x80);
                value >>= 7;
            }
            out.push(value as u8);
        }
        fn string(out: &mut Vec<u8>, tag: u8, s: &str) {
            out.push(tag);
            put(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        let mut out = Vec::new();
        for (name, value) in pairs {
            let mut message = Vec::new();
            string(&mut message, 0x0a, name);
            string(&mut message, 0x12, value);
            out.push(0x0a);
            put(&mut out, message.len());
            out.extend(message);
        }
        out
    }

    #[test]
    fn packed_bytes_are_the_pinned_format() {
        let mut out = Vec::new();
        pack_pairs([("job", "node"), ("a", "")].into_iter(), &mut out);
        assert_eq!(
            out,
            b"\x0a\x0b\x0a\x03job\x12\x04node\x0a\x05\x0a\x01a\x12\x00"
        );
        let long = "v".repeat(300);
        let mut out = vec![0xaa];
        pack_pairs([("n", long.as_str())].into_iter(), &mut out);
        // Label message: 0a 01 n 12 ac02 (300 bytes) = 306 bytes (b2 02).
        let mut expected = vec![0xaa, 0x0a, 0xb2, 0x02, 0x0a, 1, b'n', 0x12, 0xac, 0x02];
        expected.extend_from_slice(long.as_bytes());
        assert_eq!(out, expected);
    }

    #[test]
    fn packed_bytes_are_what_prost_encodes_for_the_labels() {
        use prost::Message;
        #[derive(Clone, PartialEq, prost::Message)]
        struct Label {
            #[prost(string, tag = "1")]
            name: String,
            #[prost(string, tag = "2")]
            value: String,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        struct Series {
            #[prost(message, repeated, tag = "1")]
            labels: Vec<Label>,
        }
        let long = "x".repeat(130);
        for pairs in [
            vec![("__name__", "up"), ("job", "node")],
            vec![("__name__", long.as_str()), (long.as_str(), "é")],
            vec![
                ("a", &long[..120]),
                ("b", &long[..121]),
                ("c", &long[..122]),
            ],
        ] {
            let series = Series {
                labels: pairs
                    .iter()
                    .map(|(n, v)| Label {
                        name: n.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
            };
            let mut packed = Vec::new();
            pack_pairs(pairs.iter().copied(), &mut packed);
            assert_eq!(packed, series.encode_to_vec(), "{pairs:?}");
        }
    }

    #[test]
    fn packing_matches_the_reference_at_every_length_and_on_unicode() {
        // Every length through the short-copy cases and past them, varint
        // lengths of 1, 2 and 3 bytes, multi-byte UTF-8, appended after
        // earlier bytes into buffers of any capacity.
        let text: String = "aé€😀bcdefghijklmnopqrstuvwxyz0123456789".repeat(600);
        let mut strings: Vec<String> = (0..=70).map(|n| "x".repeat(n)).collect();
        strings.extend(
            [120, 121, 122, 123, 124, 127, 128, 129, 300, 16_383, 16_384].map(|n| "y".repeat(n)),
        );
        strings.extend(
            text.char_indices()
                .map(|(i, _)| i)
                .filter(|&i| i < 200)
                .map(|i| text[..i].to_owned()),
        );
        strings.push(text.clone());
        strings.push("ünïcødé 名前 🚀".to_owned());
        for (i, name) in strings.iter().enumerate() {
            let value = &strings[(i * 7 + 3) % strings.len()];
            let pairs = [("__name__", name.as_str()), (name.as_str(), value.as_str())];
            for reserved in [0, 1_000_000] {
                let mut out = Vec::with_capacity(reserved);
                out.extend_from_slice(b"prefix");
                pack_pairs(pairs.iter().copied(), &mut out);
                let mut expected = b"prefix".to_vec();
                expected.extend(reference_pack(&pairs));
                assert_eq!(out, expected, "name len {}", name.len());
            }
            let packed_size: usize = pairs
                .iter()
                .map(|(n, v)| packed_len(n.len(), v.len()))
                .sum();
            assert_eq!(packed_size, reference_pack(&pairs).len());
        }
    }

    #[test]
    fn packs_and_unpacks_including_long_and_unicode_values() {
        let long = "x".repeat(300);
        let labels = Labels::from_pairs(&[("__name__", "up"), ("a", &long), ("é", "ünï")]);
        let packed = PackedLabels::new(&labels);
        assert_eq!(packed.to_labels(), labels);
        assert!(packed.equals(&labels));
        assert_eq!(packed.get("a"), Some(long.as_str()));
        assert_eq!(packed.get("b"), None);
        assert!(!packed.equals(&Labels::from_pairs(&[("__name__", "up")])));
        assert!(!PackedLabels::new(&Labels::from_pairs(&[("__name__", "up")])).equals(&labels));
        assert!(PackedLabels::new(&Labels::empty()).equals(&Labels::empty()));
    }
}
