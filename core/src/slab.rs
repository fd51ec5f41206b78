//! A slab whose keys are never reused: each id carries the slab index in its
//! low 32 bits and a creation serial (1, 2, 3, … per slab) in its high 32
//! bits. A freed index is handed out again, but with a new serial, so an id
//! held by the control plane after its object was removed never finds the
//! object that took its place. Lookups stay O(1): index, then compare serials.

use std::marker::PhantomData;

use slab::Slab;

/// An id stored in an [`IdSlab`]: a `u64` of serial (high 32) and index (low 32).
pub trait SlabId: Copy {
    /// Builds the id from its raw value.
    fn from_raw(raw: u64) -> Self;
    /// The raw value.
    fn raw(self) -> u64;
}

#[derive(Debug)]
struct Entry<T> {
    serial: u32,
    value: T,
}

/// Objects of one kind, referred to by ids of type `I` that are unique for
/// the life of the slab.
#[derive(Debug)]
pub struct IdSlab<I, T> {
    slab: Slab<Entry<T>>,
    next_serial: u32,
    _id: PhantomData<I>,
}

impl<I: SlabId, T> Default for IdSlab<I, T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: SlabId, T> IdSlab<I, T> {
    /// An empty slab.
    pub fn new() -> Self {
        Self {
            slab: Slab::new(),
            next_serial: 1,
            _id: PhantomData,
        }
    }

    fn split(id: I) -> (u32, usize) {
        let raw = id.raw();
        ((raw >> 32) as u32, (raw & 0xffff_ffff) as usize)
    }

    /// Stores `value` and returns its new id. Serials wrap after 2^32
    /// creations in one slab; an id would have to be held that long to alias.
    pub fn insert(&mut self, value: T) -> I {
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1).max(1);
        let index = self.slab.insert(Entry { serial, value });
        I::from_raw((u64::from(serial) << 32) | index as u64)
    }

    /// The object with this id, if it still exists.
    pub fn get(&self, id: I) -> Option<&T> {
        let (serial, index) = Self::split(id);
        self.slab
            .get(index)
            .filter(|e| e.serial == serial)
            .map(|e| &e.value)
    }

    /// The object with this id, mutably, if it still exists.
    pub fn get_mut(&mut self, id: I) -> Option<&mut T> {
        let (serial, index) = Self::split(id);
        self.slab
            .get_mut(index)
            .filter(|e| e.serial == serial)
            .map(|e| &mut e.value)
    }

    /// True when the object exists.
    pub fn contains(&self, id: I) -> bool {
        self.get(id).is_some()
    }

    /// Removes and returns the object, if it exists.
    pub fn try_remove(&mut self, id: I) -> Option<T> {
        let (serial, index) = Self::split(id);
        if self.slab.get(index).is_some_and(|e| e.serial == serial) {
            self.slab.try_remove(index).map(|e| e.value)
        } else {
            None
        }
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// The objects with their ids, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (I, &T)> {
        self.slab.iter().map(|(index, e)| {
            (
                I::from_raw((u64::from(e.serial) << 32) | index as u64),
                &e.value,
            )
        })
    }

    /// The objects, mutable, in index order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slab.iter_mut().map(|(_, e)| &mut e.value)
    }

    /// The objects, mutable, with their ids, in index order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (I, &mut T)> {
        self.slab.iter_mut().map(|(index, e)| {
            (
                I::from_raw((u64::from(e.serial) << 32) | index as u64),
                &mut e.value,
            )
        })
    }

    /// The ids of all objects, in index order.
    pub fn ids(&self) -> Vec<I> {
        self.iter().map(|(id, _)| id).collect()
    }
}

impl<I: SlabId, T> std::ops::Index<I> for IdSlab<I, T> {
    type Output = T;

    /// Panics when the id is stale: only for ids the router itself holds in
    /// its own consistent tables.
    #[expect(
        clippy::expect_used,
        reason = "Index panics on a missing key by contract; the packet path uses get()"
    )]
    fn index(&self, id: I) -> &T {
        self.get(id)
            .expect("id held by the router's own tables exists")
    }
}

impl<I: SlabId, T> std::ops::IndexMut<I> for IdSlab<I, T> {
    #[expect(
        clippy::expect_used,
        reason = "IndexMut panics on a missing key by contract; the packet path uses get_mut()"
    )]
    fn index_mut(&mut self, id: I) -> &mut T {
        self.get_mut(id)
            .expect("id held by the router's own tables exists")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TransportId;

    #[test]
    fn a_freed_index_comes_back_with_a_new_id() {
        let mut s: IdSlab<TransportId, &str> = IdSlab::new();
        let a = s.insert("a");
        assert_eq!(s.try_remove(a), Some("a"));
        let b = s.insert("b");
        assert_ne!(a, b, "the index is reused, the id is not");
        assert_eq!(s.get(a), None, "a stale id finds nothing");
        assert_eq!(s.try_remove(a), None, "and removes nothing");
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.ids(), vec![b]);
    }
}
