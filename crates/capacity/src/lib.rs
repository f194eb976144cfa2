//! Giving table capacity back after a load peak.
//!
//! Rust's collections never shrink by themselves: a transaction table that held 25 000
//! entries at 800 calls/s keeps room for 25 000 for the life of the process, and that
//! room is resident memory (hash tables are written all over when they grow). A call
//! center's load comes in peaks (a campaign's morning, a TV spot), so after one the
//! service should look like it did before it. [`GiveBack::give_back`] is called where
//! entries are removed; it is a capacity comparison, so cheap enough for every removal,
//! and only reallocates when the table is less than a quarter full, to half of that
//! (amortised O(1), no thrashing at a steady load).

use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};

/// Capacity that is never given back: small tables are not worth a reallocation.
pub const KEEP: usize = 64;

/// Shrinks a collection that is much bigger than what it holds.
pub trait GiveBack {
    fn give_back(&mut self);
}

/// The capacity to shrink to, if `len` entries in `capacity` is worth shrinking.
fn shrunk(len: usize, capacity: usize) -> Option<usize> {
    (capacity > KEEP && len.saturating_mul(4) < capacity).then(|| (len * 2).max(KEEP))
}

impl<K: Eq + Hash, V, S: BuildHasher> GiveBack for HashMap<K, V, S> {
    fn give_back(&mut self) {
        if let Some(to) = shrunk(self.len(), self.capacity()) {
            self.shrink_to(to);
        }
    }
}

impl<T> GiveBack for VecDeque<T> {
    fn give_back(&mut self) {
        if let Some(to) = shrunk(self.len(), self.capacity()) {
            self.shrink_to(to);
        }
    }
}

impl<T> GiveBack for Vec<T> {
    fn give_back(&mut self) {
        if let Some(to) = shrunk(self.len(), self.capacity()) {
            self.shrink_to(to);
        }
    }
}

impl<T: Ord> GiveBack for BinaryHeap<T> {
    fn give_back(&mut self) {
        if let Some(to) = shrunk(self.len(), self.capacity()) {
            self.shrink_to(to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_emptied_after_a_peak_shrinks() {
        let mut m: HashMap<u32, [u8; 64]> = HashMap::new();
        for i in 0..10_000 {
            m.insert(i, [0; 64]);
        }
        let peak = m.capacity();
        m.retain(|k, _| *k < 100);
        m.give_back();
        assert!(m.capacity() < peak / 10, "{} of {peak}", m.capacity());
        assert_eq!(m.len(), 100);
        m.clear();
        m.give_back();
        assert!(m.capacity() <= 2 * KEEP);
    }

    #[test]
    fn only_a_table_under_a_quarter_full_is_shrunk_to_twice_its_length() {
        assert_eq!(shrunk(4_000, 14_336), None, "over a quarter full");
        assert_eq!(shrunk(3_000, 14_336), Some(6_000));
        assert_eq!(shrunk(0, 1_000), Some(KEEP), "never below KEEP");
        assert_eq!(shrunk(0, KEEP), None, "small tables are not worth it");
    }

    #[test]
    fn small_tables_are_left_alone() {
        let mut v: Vec<u8> = Vec::with_capacity(KEEP);
        v.give_back();
        assert_eq!(v.capacity(), KEEP);
        let mut q: VecDeque<u8> = VecDeque::with_capacity(1000);
        q.push_back(1);
        q.give_back();
        assert!(q.capacity() >= KEEP && q.capacity() < 1000);
        let mut h: BinaryHeap<u8> = BinaryHeap::with_capacity(1000);
        h.give_back();
        assert!(h.capacity() < 1000);
    }
}
