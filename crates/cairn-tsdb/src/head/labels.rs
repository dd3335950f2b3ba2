//! A series' labels packed into one allocation, for memory and for fast
//! comparison on the append path.

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
            .map(|l| l.name.len() + l.value.len() + 2)
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
pub fn pack_pairs<'x>(pairs: impl Iterator<Item = (&'x str, &'x str)>, out: &mut Vec<u8>) {
    for (name, value) in pairs {
        put_uvarint(out, name.len());
        out.extend_from_slice(name.as_bytes());
        put_uvarint(out, value.len());
        out.extend_from_slice(value.as_bytes());
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
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
