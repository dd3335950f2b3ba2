//! A series' labels packed into one allocation, for memory and for fast
//! comparison on the append path.

use std::mem::MaybeUninit;

use cairn_model::{Label, Labels, LabelsRef};

/// Label pairs in name order, encoded as `uvarint(len) name uvarint(len)
/// value` per label in one boxed byte slice (Prometheus's `stringlabels`
/// idea). Only built from valid [`Labels`], so the bytes are always UTF-8
/// strings with well-formed lengths.
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
            let name = take_bytes(&mut rest);
            let value = take_bytes(&mut rest);
            Some((name, value))
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

pub struct PackedIter<'a> {
    rest: &'a [u8],
}

impl<'a> PackedIter<'a> {
    fn string(&mut self) -> &'a str {
        std::str::from_utf8(take_bytes(&mut self.rest)).expect("packed labels hold valid utf-8")
    }
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
        let name = self.string();
        let value = self.string();
        Some((name, value))
    }
}

/// Appends `(name, value)` pairs (in name order) to `out` in the packed
/// format: `uvarint(len) name uvarint(len) value` per label. The format is
/// prefix-free, so equal bytes mean equal label sets; the head hashes and
/// compares these bytes to find a series.
///
/// The append path packs every incoming series' labels, so this is hot
/// (issue 8: ~6 % of ingest CPU as two `extend_from_slice`s, each a
/// `memmove` call, and two pushes per label). A label whose name and value
/// are both shorter than 128 bytes (one-byte lengths: nearly all) takes one
/// capacity check (a no-op when the caller reserved [`packed_len`] for the
/// set) and is written in place, strings up to 64 bytes with a few
/// fixed-size moves instead of a library call.
pub fn pack_pairs<'x>(pairs: impl Iterator<Item = (&'x str, &'x str)>, out: &mut Vec<u8>) {
    for (name, value) in pairs {
        let (name, value) = (name.as_bytes(), value.as_bytes());
        let (n, v) = (name.len(), value.len());
        if n >= 0x80 || v >= 0x80 {
            put_uvarint(out, n);
            out.extend_from_slice(name);
            put_uvarint(out, v);
            out.extend_from_slice(value);
            continue;
        }
        let len = n + v + 2;
        out.reserve(len);
        let start = out.len();
        let dst = &mut out.spare_capacity_mut()[..len];
        let (name_dst, value_dst) = dst.split_at_mut(n + 1);
        name_dst[0].write(n as u8);
        copy_bytes(&mut name_dst[1..], name);
        value_dst[0].write(v as u8);
        copy_bytes(&mut value_dst[1..], value);
        // SAFETY: `dst` is the first `len` elements of the spare capacity
        // (the slicing above checked `len <= spare.len()`), i.e. `out[start
        // .. start + len]`, and the four writes above initialised all of it:
        // `name_dst` is `dst[..n + 1]` (length byte, then `n` name bytes),
        // `value_dst` is `dst[n + 1..]` (length byte, then `v` value bytes).
        unsafe { out.set_len(start + len) };
    }
}

/// Bytes one label takes packed ([`pack_pairs`]).
pub fn packed_len(name_len: usize, value_len: usize) -> usize {
    uvarint_len(name_len) + name_len + uvarint_len(value_len) + value_len
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

    /// The packed format written the plain way (the format's definition).
    fn reference_pack(pairs: &[(&str, &str)]) -> Vec<u8> {
        fn put(out: &mut Vec<u8>, mut value: usize) {
            while value >= 0x80 {
                out.push((value as u8) | 0x80);
                value >>= 7;
            }
            out.push(value as u8);
        }
        let mut out = Vec::new();
        for (name, value) in pairs {
            put(&mut out, name.len());
            out.extend_from_slice(name.as_bytes());
            put(&mut out, value.len());
            out.extend_from_slice(value.as_bytes());
        }
        out
    }

    #[test]
    fn packed_bytes_are_the_pinned_format() {
        let mut out = Vec::new();
        pack_pairs([("job", "node"), ("a", "")].into_iter(), &mut out);
        assert_eq!(out, b"\x03job\x04node\x01a\x00");
        let long = "v".repeat(300);
        let mut out = vec![0xaa];
        pack_pairs([("n", long.as_str())].into_iter(), &mut out);
        let mut expected = vec![0xaa, 1, b'n', 0xac, 0x02];
        expected.extend_from_slice(long.as_bytes());
        assert_eq!(out, expected);
    }

    #[test]
    fn packing_matches_the_reference_at_every_length_and_on_unicode() {
        // Every length through the short-copy cases and past them, varint
        // lengths of 1, 2 and 3 bytes, multi-byte UTF-8, appended after
        // earlier bytes into buffers of any capacity.
        let text: String = "aé€😀bcdefghijklmnopqrstuvwxyz0123456789".repeat(600);
        let mut strings: Vec<String> = (0..=70).map(|n| "x".repeat(n)).collect();
        strings.extend([127, 128, 129, 300, 16_383, 16_384].map(|n| "y".repeat(n)));
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
