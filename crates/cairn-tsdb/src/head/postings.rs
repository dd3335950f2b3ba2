//! The inverted index: label name → label value → sorted series IDs, and the
//! set operations on sorted ID lists that answer matchers.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_model::{MatchOp, Matcher};

/// Series IDs sorted ascending, without duplicates.
pub type PostingsList = Vec<u64>;

/// Label name → value → series IDs.
#[derive(Debug, Default)]
pub struct Postings {
    by_label: HashMap<Arc<str>, HashMap<Arc<str>, PostingsList>>,
    /// Every series ID (Prometheus's "all postings" key).
    all: PostingsList,
}

impl Postings {
    /// Indexes series `id`. The index keeps one copy of each distinct
    /// label name and value.
    pub fn add<'a>(&mut self, id: u64, labels: impl IntoIterator<Item = (&'a str, &'a str)>) {
        insert_sorted(&mut self.all, id);
        for (name, value) in labels {
            let values = match self.by_label.get_mut(name) {
                Some(values) => values,
                None => self.by_label.entry(Arc::from(name)).or_default(),
            };
            let list = match values.get_mut(value) {
                Some(list) => list,
                None => values.entry(Arc::from(value)).or_default(),
            };
            insert_sorted(list, id);
        }
    }

    /// Removes many series at once (a block cut's garbage collection): each
    /// touched list is rewritten once, so removing `n` of `N` series costs
    /// O(N + n log n) instead of one `Vec::remove` (O(N)) per series and
    /// label, which at a million series held the write lock for minutes.
    pub fn remove_many<'a, L>(&mut self, series: impl IntoIterator<Item = (u64, L)>)
    where
        L: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut removed: Vec<u64> = Vec::new();
        let mut by_pair: HashMap<(&'a str, &'a str), Vec<u64>> = HashMap::new();
        for (id, labels) in series {
            removed.push(id);
            for pair in labels {
                by_pair.entry(pair).or_default().push(id);
            }
        }
        if removed.is_empty() {
            return;
        }
        removed.sort_unstable();
        self.all = subtract(&self.all, &removed);
        for ((name, value), mut ids) in by_pair {
            ids.sort_unstable();
            let Some(values) = self.by_label.get_mut(name) else {
                continue;
            };
            if let Some(list) = values.get_mut(value) {
                *list = subtract(list, &ids);
                if list.is_empty() {
                    values.remove(value);
                }
            }
            if values.is_empty() {
                self.by_label.remove(name);
            }
        }
    }

    /// How many series have label `name` = `value`.
    pub fn count(&self, name: &str, value: &str) -> usize {
        self.by_label
            .get(name)
            .and_then(|values| values.get(value))
            .map_or(0, Vec::len)
    }

    pub fn all(&self) -> &[u64] {
        &self.all
    }

    /// Label names present on at least one series, unsorted.
    pub fn label_names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.by_label.keys()
    }

    /// Values of label `name`, with their postings, unsorted.
    pub fn label_values(&self, name: &str) -> impl Iterator<Item = (&Arc<str>, &PostingsList)> {
        self.by_label.get(name).into_iter().flat_map(|v| v.iter())
    }

    /// Union of the postings of the values of `name` that `matcher` accepts.
    fn matching_values(&self, name: &str, accept: impl Fn(&str) -> bool) -> PostingsList {
        let Some(values) = self.by_label.get(name) else {
            return Vec::new();
        };
        let lists: Vec<&[u64]> = values
            .iter()
            .filter(|(value, _)| accept(value))
            .map(|(_, list)| list.as_slice())
            .collect();
        union_all(&lists)
    }

    /// Series IDs selected by all `matchers`, sorted (Prometheus's
    /// `PostingsForMatchers`). A matcher that accepts the empty string also
    /// selects series lacking its label; no matchers select every series.
    pub fn select(&self, matchers: &[Matcher]) -> PostingsList {
        let mut result: Option<PostingsList> = None;
        let mut to_subtract: Vec<PostingsList> = Vec::new();
        for matcher in matchers {
            if matcher.matches_empty() {
                // Selects series without the label, and those whose value matches:
                // every series minus those with a value that does not match.
                let rejected = match matcher.op {
                    // Fast path: `a=""` rejects every value present.
                    MatchOp::Equal => self.matching_values(&matcher.name, |_| true),
                    MatchOp::NotEqual => self.by_label_value(&matcher.name, &matcher.value),
                    MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                        self.matching_values(&matcher.name, |v| !matcher.matches(v))
                    }
                };
                to_subtract.push(rejected);
            } else {
                let selected = match (matcher.op, matcher.set_values()) {
                    (MatchOp::Equal, _) => self.by_label_value(&matcher.name, &matcher.value),
                    // `a=~"x|y"`: the listed values' postings, looked up.
                    (_, Some(values)) => {
                        let lists: Vec<&[u64]> = self
                            .by_label
                            .get(matcher.name.as_str())
                            .into_iter()
                            .flat_map(|by_value| {
                                values.iter().filter_map(|v| by_value.get(v.as_str()))
                            })
                            .map(Vec::as_slice)
                            .collect();
                        union_all(&lists)
                    }
                    _ => self.matching_values(&matcher.name, |v| matcher.matches(v)),
                };
                result = Some(match result {
                    None => selected,
                    Some(previous) => intersect(&previous, &selected),
                });
            }
            if result.as_ref().is_some_and(|r| r.is_empty()) {
                return Vec::new();
            }
        }
        let mut selected = result.unwrap_or_else(|| self.all.clone());
        for rejected in &to_subtract {
            selected = subtract(&selected, rejected);
        }
        selected
    }

    fn by_label_value(&self, name: &str, value: &str) -> PostingsList {
        self.by_label
            .get(name)
            .and_then(|values| values.get(value))
            .cloned()
            .unwrap_or_default()
    }
}

fn insert_sorted(list: &mut PostingsList, id: u64) {
    // IDs are allocated in increasing order, so this is nearly always a push.
    match list.last() {
        None => list.push(id),
        Some(&last) if last < id => list.push(id),
        Some(_) => {
            if let Err(position) = list.binary_search(&id) {
                list.insert(position, id);
            }
        }
    }
}

/// IDs present in both sorted lists (head series IDs, or a block's series
/// positions).
pub fn intersect<T: Ord + Copy>(a: &[T], b: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// IDs of sorted `a` that are not in sorted `b`.
pub fn subtract(a: &[u64], b: &[u64]) -> PostingsList {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &id in a {
        while j < b.len() && b[j] < id {
            j += 1;
        }
        if j < b.len() && b[j] == id {
            continue;
        }
        out.push(id);
    }
    out
}

/// Sorted union of sorted lists.
pub fn union_all(lists: &[&[u64]]) -> PostingsList {
    match lists {
        [] => Vec::new(),
        [only] => only.to_vec(),
        _ => {
            let mut out: Vec<u64> = lists.iter().flat_map(|l| l.iter().copied()).collect();
            out.sort_unstable();
            out.dedup();
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn sorted(set: &BTreeSet<u64>) -> Vec<u64> {
        set.iter().copied().collect()
    }

    proptest! {
        #[test]
        fn set_operations_match_btreeset(
            a in proptest::collection::btree_set(0u64..200, 0..60),
            b in proptest::collection::btree_set(0u64..200, 0..60),
            c in proptest::collection::btree_set(0u64..200, 0..60),
        ) {
            let (va, vb, vc) = (sorted(&a), sorted(&b), sorted(&c));
            prop_assert_eq!(intersect(&va, &vb), sorted(&(&a & &b)));
            prop_assert_eq!(subtract(&va, &vb), sorted(&(&a - &b)));
            let all: BTreeSet<u64> = a.iter().chain(&b).chain(&c).copied().collect();
            prop_assert_eq!(union_all(&[&va, &vb, &vc]), sorted(&all));
        }
    }

    fn matcher_strategy() -> impl Strategy<Value = Matcher> {
        let ops = prop_oneof![
            Just(MatchOp::Equal),
            Just(MatchOp::NotEqual),
            Just(MatchOp::RegexMatch),
            Just(MatchOp::RegexNoMatch),
        ];
        let names = prop_oneof![Just("a"), Just("b"), Just("c")];
        let values = prop_oneof![
            Just(""),
            Just("x"),
            Just("y"),
            Just("x|"),
            Just(".*"),
            Just(".+"),
            Just("x.*"),
            Just("xy|y|nope")
        ];
        (ops, names, values).prop_map(|(op, name, value)| Matcher::new(op, name, value).unwrap())
    }

    proptest! {
        /// Postings answer matchers exactly as checking every series would,
        /// also after a batch of series was removed.
        #[test]
        fn select_matches_brute_force(
            series in proptest::collection::vec(
                (prop_oneof![Just(None), Just(Some("x")), Just(Some("y")), Just(Some("xy"))],
                 prop_oneof![Just(None), Just(Some("x")), Just(Some("z"))]),
                0..30,
            ),
            matchers in proptest::collection::vec(matcher_strategy(), 0..4),
            remove in proptest::collection::vec(any::<bool>(), 30),
        ) {
            let mut postings = Postings::default();
            let mut all_labels = Vec::new();
            for (i, (a, b)) in series.iter().enumerate() {
                let mut labels: Vec<(&str, &str)> = Vec::new();
                if let Some(a) = a { labels.push(("a", a)); }
                if let Some(b) = b { labels.push(("b", b)); }
                postings.add(i as u64 + 1, labels.iter().copied());
                all_labels.push(labels);
            }
            postings.remove_many(
                all_labels
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| remove[*i])
                    .map(|(i, labels)| (i as u64 + 1, labels.iter().copied())),
            );
            for name in ["a", "b"] {
                prop_assert!(postings.label_values(name).all(|(_, list)| !list.is_empty()));
            }
            let expected: Vec<u64> = all_labels
                .iter()
                .enumerate()
                .filter(|(i, _)| !remove[*i])
                .filter(|(_, labels)| matchers.iter().all(|m| {
                    let value = labels.iter().find(|(n, _)| *n == m.name).map_or("", |(_, v)| v);
                    m.matches(value)
                }))
                .map(|(i, _)| i as u64 + 1)
                .collect();
            prop_assert_eq!(postings.select(&matchers), expected);
        }
    }

    fn pairs<'a>(labels: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = (&'a str, &'a str)> {
        labels.iter().copied()
    }

    #[test]
    fn all_four_matcher_types_and_missing_labels() {
        let mut postings = Postings::default();
        postings.add(1, pairs(&[("__name__", "up"), ("job", "api")]));
        postings.add(2, pairs(&[("__name__", "up"), ("job", "web")]));
        postings.add(3, pairs(&[("__name__", "up")]));
        postings.add(4, pairs(&[("__name__", "down"), ("job", "api")]));
        let m = |op, name: &str, value: &str| Matcher::new(op, name, value).unwrap();
        let up = m(MatchOp::Equal, "__name__", "up");
        let cases: Vec<(Vec<Matcher>, Vec<u64>)> = vec![
            (vec![], vec![1, 2, 3, 4]),
            (vec![up.clone()], vec![1, 2, 3]),
            (vec![up.clone(), m(MatchOp::Equal, "job", "api")], vec![1]),
            (
                vec![up.clone(), m(MatchOp::NotEqual, "job", "api")],
                vec![2, 3],
            ),
            (vec![up.clone(), m(MatchOp::Equal, "job", "")], vec![3]),
            (
                vec![up.clone(), m(MatchOp::NotEqual, "job", "")],
                vec![1, 2],
            ),
            (
                vec![up.clone(), m(MatchOp::RegexMatch, "job", "a.*")],
                vec![1],
            ),
            (
                vec![up.clone(), m(MatchOp::RegexMatch, "job", "a.*|")],
                vec![1, 3],
            ),
            (
                vec![up.clone(), m(MatchOp::RegexNoMatch, "job", "a.*")],
                vec![2, 3],
            ),
            (
                vec![up.clone(), m(MatchOp::RegexNoMatch, "job", ".+")],
                vec![3],
            ),
            (vec![m(MatchOp::RegexMatch, "job", ".*")], vec![1, 2, 3, 4]),
            (vec![m(MatchOp::RegexMatch, "job", ".+")], vec![1, 2, 4]),
            (vec![m(MatchOp::NotEqual, "nope", "x")], vec![1, 2, 3, 4]),
            (vec![m(MatchOp::Equal, "nope", "x")], vec![]),
            (
                vec![
                    m(MatchOp::Equal, "job", "api"),
                    m(MatchOp::Equal, "__name__", "none"),
                ],
                vec![],
            ),
        ];
        for (matchers, expected) in cases {
            let names: Vec<String> = matchers.iter().map(|m| m.to_string()).collect();
            assert_eq!(postings.select(&matchers), expected, "{names:?}");
        }
        postings.remove_many([(1, pairs(&[("__name__", "up"), ("job", "api")]))]);
        assert_eq!(postings.select(&[up]), vec![2, 3]);
        assert_eq!(postings.all(), &[2, 3, 4]);
    }
}
