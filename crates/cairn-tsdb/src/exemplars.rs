//! Exemplars: a fixed-size ring buffer per tenant, as Prometheus's
//! `CircularExemplarStorage`. The oldest exemplar is overwritten when full.

use std::collections::{HashMap, VecDeque};

use cairn_model::Exemplar;

#[derive(Debug)]
pub struct ExemplarStore {
    capacity: usize,
    ring: VecDeque<(u64, Exemplar)>,
    /// Timestamp of the newest exemplar accepted per series ID.
    newest_by_series: HashMap<u64, i64>,
}

impl ExemplarStore {
    pub fn new(capacity: usize) -> ExemplarStore {
        ExemplarStore {
            capacity,
            ring: VecDeque::new(),
            newest_by_series: HashMap::new(),
        }
    }

    /// Whether exemplars are kept at all (`max_exemplars > 0`).
    pub fn is_enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Whether an exemplar at `t` would be accepted for series `id` whose
    /// newest exemplar (if known to the caller) is `newest`: exemplars must
    /// be strictly newer than the series' newest one (Prometheus refuses
    /// out-of-order and duplicate exemplars).
    pub fn accepts(&self, id: u64, t: i64, newest_in_batch: Option<i64>) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let newest = newest_in_batch.or_else(|| self.newest_by_series.get(&id).copied());
        newest.is_none_or(|newest| t > newest)
    }

    /// Adds an exemplar, evicting the oldest when full. Refused exemplars
    /// (see [`ExemplarStore::accepts`]) are ignored; returns whether it was kept.
    pub fn add(&mut self, id: u64, exemplar: Exemplar) -> bool {
        if !self.accepts(id, exemplar.t, None) {
            return false;
        }
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        self.newest_by_series.insert(id, exemplar.t);
        self.ring.push_back((id, exemplar));
        true
    }

    /// Exemplars with `start <= t <= end` whose series passes `wanted`,
    /// oldest first.
    pub fn query(
        &self,
        start: i64,
        end: i64,
        wanted: impl Fn(u64) -> bool,
    ) -> Vec<(u64, Exemplar)> {
        self.ring
            .iter()
            .filter(|(id, e)| start <= e.t && e.t <= end && wanted(*id))
            .cloned()
            .collect()
    }

    /// Drops the exemplars `keep` refuses (series deletion).
    pub fn retain(&mut self, mut keep: impl FnMut(u64, &Exemplar) -> bool) {
        self.ring.retain(|(id, e)| keep(*id, e));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ring.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_model::Labels;

    fn exemplar(t: i64) -> Exemplar {
        Exemplar {
            labels: Labels::from_pairs(&[("trace_id", "x")]),
            value: t as f64,
            t,
        }
    }

    #[test]
    fn ring_buffer_evicts_oldest_and_refuses_out_of_order() {
        let mut store = ExemplarStore::new(3);
        assert!(store.add(1, exemplar(10)));
        assert!(!store.add(1, exemplar(10)));
        assert!(!store.add(1, exemplar(5)));
        assert!(store.add(2, exemplar(5)));
        assert!(store.add(1, exemplar(11)));
        assert!(store.add(1, exemplar(12)));
        assert_eq!(store.len(), 3);
        let ts: Vec<i64> = store
            .query(0, 100, |_| true)
            .iter()
            .map(|(_, e)| e.t)
            .collect();
        assert_eq!(ts, vec![5, 11, 12]);
        let only_1: Vec<i64> = store
            .query(0, 11, |id| id == 1)
            .iter()
            .map(|(_, e)| e.t)
            .collect();
        assert_eq!(only_1, vec![11]);
        assert!(!ExemplarStore::new(0).add(1, exemplar(1)));
    }
}
