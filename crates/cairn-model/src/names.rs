//! Which metric and label names are valid under Prometheus's legacy
//! (pre-UTF-8) scheme, and [`LabelSetBounds`]: the extremes of a collection
//! of label sets, from which a write path can tell that every set in it
//! passes its label checks without looking at each set again.

use crate::METRIC_NAME;

/// Legacy-scheme character classes, one bit each in [`LEGACY_NAME_CHARS`].
const LABEL_FIRST: u8 = 1; // [a-zA-Z_]
const LABEL_REST: u8 = 2; // [a-zA-Z0-9_]
const METRIC_FIRST: u8 = 4; // [a-zA-Z_:]
const METRIC_REST: u8 = 8; // [a-zA-Z0-9_:]

/// The legacy character classes of every byte: one table load per byte
/// instead of a chain of range tests (names are checked for every label of
/// every new series).
static LEGACY_NAME_CHARS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        let letter = b.is_ascii_alphabetic() || b == b'_';
        let digit = b.is_ascii_digit();
        let colon = b == b':';
        let mut classes = 0;
        if letter {
            classes |= LABEL_FIRST | LABEL_REST | METRIC_FIRST | METRIC_REST;
        }
        if digit {
            classes |= LABEL_REST | METRIC_REST;
        }
        if colon {
            classes |= METRIC_FIRST | METRIC_REST;
        }
        table[byte] = classes;
        byte += 1;
    }
    table
};

/// Whether `name` is a legacy metric name, `[a-zA-Z_:][a-zA-Z0-9_:]*`.
#[inline]
pub fn is_legacy_metric_name(name: &str) -> bool {
    legacy_name_is_valid(name, METRIC_FIRST, METRIC_REST)
}

/// Whether `name` is a legacy label name, `[a-zA-Z_][a-zA-Z0-9_]*` (names
/// starting with `__` included).
#[inline]
pub fn is_legacy_label_name(name: &str) -> bool {
    legacy_name_is_valid(name, LABEL_FIRST, LABEL_REST)
}

/// Whether `name` is non-empty, starts with a byte of class `first` and
/// continues with bytes of class `rest`.
#[inline]
fn legacy_name_is_valid(name: &str, first: u8, rest: u8) -> bool {
    match name.as_bytes().split_first() {
        Some((head, tail)) => {
            // The classes all of the tail's bytes share, without a branch
            // per byte (names are short; the early exit costs more than it
            // saves on valid input, which is nearly all input).
            let tail_classes = tail
                .iter()
                .fold(u8::MAX, |acc, b| acc & LEGACY_NAME_CHARS[usize::from(*b)]);
            LEGACY_NAME_CHARS[usize::from(*head)] & first != 0 && tail_classes & rest != 0
        }
        None => false,
    }
}

/// What every label set folded into it satisfies: the most labels, the
/// longest name and value (in bytes), and two properties that hold for all
/// sets or not. Folding only widens it, so it stays true of a collection
/// that sets leave.
///
/// The head keeps one over every series it ever held; the write path then
/// needs no label checks for a series whose labels are byte for byte a
/// stored series' labels, when the bounds fit its limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelSetBounds {
    pub max_labels: usize,
    pub max_name_len: usize,
    pub max_value_len: usize,
    /// Every set: names strictly increasing (sorted, no repeats), no empty
    /// name or value, and a `__name__` label.
    pub well_formed: bool,
    /// Every set: the metric name and every label name valid under the
    /// legacy scheme.
    pub legacy_names: bool,
}

impl Default for LabelSetBounds {
    /// The bounds of no sets at all.
    fn default() -> LabelSetBounds {
        LabelSetBounds {
            max_labels: 0,
            max_name_len: 0,
            max_value_len: 0,
            well_formed: true,
            legacy_names: true,
        }
    }
}

impl LabelSetBounds {
    /// Widens the bounds to cover one more set, given as `(name, value)`
    /// pairs in stored order.
    pub fn include<'a>(&mut self, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
        let mut count = 0;
        let mut previous: Option<&str> = None;
        let mut has_metric_name = false;
        for (name, value) in pairs {
            count += 1;
            self.max_name_len = self.max_name_len.max(name.len());
            self.max_value_len = self.max_value_len.max(value.len());
            if name.is_empty() || value.is_empty() || previous.is_some_and(|p| p >= name) {
                self.well_formed = false;
            }
            if name == METRIC_NAME {
                has_metric_name = true;
                self.legacy_names &= is_legacy_metric_name(value);
            }
            self.legacy_names &= is_legacy_label_name(name);
            previous = Some(name);
        }
        self.well_formed &= has_metric_name;
        self.max_labels = self.max_labels.max(count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spot checks; every byte in every position is checked through the
    /// write path's `NameValidationScheme` in `cairn-ingest`.
    #[test]
    fn legacy_names() {
        assert!(is_legacy_metric_name("node_cpu_seconds_total"));
        assert!(is_legacy_metric_name("job:rate5m:sum"));
        assert!(!is_legacy_label_name("job:rate5m"));
        assert!(is_legacy_label_name("__name__"));
        assert!(!is_legacy_label_name("0abc"));
        assert!(!is_legacy_label_name(""));
        assert!(!is_legacy_metric_name(""));
        assert!(!is_legacy_label_name("é"));
    }

    fn bounds_of(sets: &[&[(&str, &str)]]) -> LabelSetBounds {
        let mut bounds = LabelSetBounds::default();
        for set in sets {
            bounds.include(set.iter().copied());
        }
        bounds
    }

    #[test]
    fn bounds_take_the_extremes_over_all_sets() {
        let bounds = bounds_of(&[
            &[("__name__", "up"), ("job", "node")],
            &[("__name__", "x"), ("a", "b"), ("instance", "host-1:9100")],
        ]);
        assert_eq!(
            bounds,
            LabelSetBounds {
                max_labels: 3,
                max_name_len: 8,
                max_value_len: 11,
                well_formed: true,
                legacy_names: true,
            }
        );
        assert_eq!(bounds_of(&[]), LabelSetBounds::default());
    }

    #[test]
    fn one_irregular_set_makes_the_bounds_irregular() {
        let good: &[(&str, &str)] = &[("__name__", "up"), ("job", "node")];
        for bad in [
            &[("job", "node")][..],                            // no metric name
            &[("__name__", "up"), ("job", "")],                // empty value
            &[("__name__", "up"), ("", "x")],                  // empty name
            &[("job", "node"), ("__name__", "up")],            // unsorted
            &[("__name__", "up"), ("job", "a"), ("job", "b")], // repeated name
        ] {
            assert!(!bounds_of(&[good, bad]).well_formed, "{bad:?}");
        }
        for bad in [
            &[("__name__", "up"), ("jöb", "node")][..],
            &[("__name__", "up.total"), ("job", "node")],
            &[("__name__", "up"), ("a:b", "node")],
        ] {
            let bounds = bounds_of(&[good, bad]);
            assert!(bounds.well_formed, "{bad:?}");
            assert!(!bounds.legacy_names, "{bad:?}");
        }
    }
}
