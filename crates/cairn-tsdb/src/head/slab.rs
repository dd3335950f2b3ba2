//! Where the head keeps its series: a vector of slots in creation order
//! (freed slots are reused), with an index from series ID to slot.
//!
//! The append path finds a series by its label hash, which maps straight
//! to a slot, and carries the slot from the lookup to the append, so a
//! sample reaches its series without probing an ID map. Series created one
//! after the other (a scrape's series, a sender's batch) sit next to each
//! other, where a hash map scatters them.

use super::series::MemSeries;
use crate::idhash::IdMap;

/// A series' position in the slab; stable for the series' life.
pub type SlotId = u32;

/// Stands for "no slot known" in an append plan (a series created by the
/// same batch): the append finds the series by ID instead.
pub const NO_SLOT: SlotId = SlotId::MAX;

#[derive(Debug)]
struct Slot {
    id: u64,
    series: MemSeries,
}

#[derive(Debug, Default)]
pub struct SeriesSlab {
    slots: Vec<Option<Slot>>,
    /// Empty slots, reused before the vector grows.
    free: Vec<SlotId>,
    index: IdMap<SlotId>,
}

impl SeriesSlab {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    pub fn slot_of(&self, id: u64) -> Option<SlotId> {
        self.index.get(&id).copied()
    }

    pub fn get(&self, id: u64) -> Option<&MemSeries> {
        self.slot_of(id)
            .and_then(|slot| self.at(slot))
            .map(|(_, s)| s)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut MemSeries> {
        let slot = self.slot_of(id)?;
        self.at_mut(slot, id)
    }

    /// The series in `slot` with its ID, if the slot is taken.
    #[inline]
    pub fn at(&self, slot: SlotId) -> Option<(u64, &MemSeries)> {
        self.slots
            .get(slot as usize)
            .and_then(Option::as_ref)
            .map(|s| (s.id, &s.series))
    }

    /// The series in `slot` if it is series `id`.
    #[inline]
    pub fn at_mut(&mut self, slot: SlotId, id: u64) -> Option<&mut MemSeries> {
        self.slots
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
            .filter(|s| s.id == id)
            .map(|s| &mut s.series)
    }

    /// Stores a series under an ID not in the slab; returns its slot.
    pub fn insert(&mut self, id: u64, series: MemSeries) -> SlotId {
        debug_assert!(!self.contains(id), "series {id} inserted twice");
        let entry = Some(Slot { id, series });
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = entry;
                slot
            }
            None => {
                let slot = SlotId::try_from(self.slots.len())
                    .ok()
                    .filter(|slot| *slot != NO_SLOT)
                    .expect("fewer than 2^32-1 series in one head");
                self.slots.push(entry);
                slot
            }
        };
        self.index.insert(id, slot);
        slot
    }

    /// Takes series `id` out, with the slot it had.
    pub fn remove(&mut self, id: u64) -> Option<(SlotId, MemSeries)> {
        let slot = self.index.remove(&id)?;
        let taken = self.slots[slot as usize].take()?;
        self.free.push(slot);
        Some((slot, taken.series))
    }

    /// Every series with its ID, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &MemSeries)> {
        self.slots.iter().flatten().map(|s| (s.id, &s.series))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut MemSeries)> {
        self.slots
            .iter_mut()
            .flatten()
            .map(|s| (s.id, &mut s.series))
    }

    pub fn values(&self) -> impl Iterator<Item = &MemSeries> {
        self.iter().map(|(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::PackedLabels;
    use cairn_model::Labels;

    fn series(name: &str) -> MemSeries {
        MemSeries::new(PackedLabels::new(&Labels::from_pairs(&[(
            "__name__", name,
        )])))
    }

    #[test]
    fn slots_are_reused_and_checked_by_id() {
        let mut slab = SeriesSlab::default();
        let a = slab.insert(10, series("a"));
        let b = slab.insert(11, series("b"));
        assert_ne!(a, b);
        assert_eq!(slab.len(), 2);
        assert_eq!(slab.get(11).unwrap().labels().get("__name__"), Some("b"));
        let (slot, removed) = slab.remove(10).unwrap();
        assert_eq!((slot, removed.labels().get("__name__")), (a, Some("a")));
        assert!(slab.remove(10).is_none());
        assert!(slab.at(a).is_none());
        // The freed slot goes to the next series; a stale (slot, id) pair
        // no longer reaches anything.
        assert_eq!(slab.insert(12, series("c")), a);
        assert!(slab.at_mut(a, 10).is_none());
        assert!(slab.at_mut(a, 12).is_some());
        assert_eq!(slab.at(a).map(|(id, _)| id), Some(12));
        let ids: Vec<u64> = slab.iter().map(|(id, _)| id).collect();
        assert_eq!(ids, vec![12, 11]);
        assert_eq!(slab.len(), 2);
        assert!(!slab.contains(10));
    }
}
