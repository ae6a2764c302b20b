//! Finding owner names ASCII case-insensitively (RFC 4343) without storing a lower-cased
//! copy of each: a hash table of `u32` indices into a vector, hashed over case-folded wire
//! bytes.
//!
//! A zone of a million names keeps one name allocation and five bytes of table per name
//! (four for the index, one control byte), where a map from lower-cased keys to nodes held
//! a second allocation and the whole node in every bucket.

use std::hash::Hasher as _;

use hashbrown::HashTable;
use rustc_hash::FxHasher;

/// Something found by an owner name.
pub(crate) trait Named {
    /// The name in wire form, case as given.
    fn wire(&self) -> &[u8];
}

/// Named things by position: a slice, or a zone's chunked nodes.
pub(crate) trait Items {
    /// The wire name of the item at `i`, if there is one.
    fn wire_at(&self, i: usize) -> Option<&[u8]>;
}

impl<T: Named> Items for [T] {
    fn wire_at(&self, i: usize) -> Option<&[u8]> {
        self.get(i).map(Named::wire)
    }
}

impl<T: Named> Items for Vec<T> {
    fn wire_at(&self, i: usize) -> Option<&[u8]> {
        self.get(i).map(Named::wire)
    }
}

/// Indices of items in a vector, found by their names' wire form, case-insensitively.
#[derive(Debug, Clone, Default)]
pub(crate) struct NameIndex(HashTable<u32>);

impl NameIndex {
    /// The position in `items` of the one named `wire` (any case), if any.
    pub(crate) fn find<I: Items + ?Sized>(&self, items: &I, wire: &[u8]) -> Option<usize> {
        let i = self.0.find(folded_hash(wire), |&i| items.wire_at(i as usize).is_some_and(|w| same_name(w, wire)))?;
        Some(*i as usize)
    }

    /// Records that `items[i]` is named `wire`; the caller has checked it is not there yet.
    /// `i` must fit in 32 bits (four billion names would need far more memory than exists).
    pub(crate) fn insert<I: Items + ?Sized>(&mut self, items: &I, wire: &[u8], i: usize) {
        let rehash = |&j: &u32| items.wire_at(j as usize).map_or(0, folded_hash);
        self.0.insert_unique(folded_hash(wire), i as u32, rehash);
    }

    /// Forgets the item at position `i`, named `wire`.
    pub(crate) fn remove(&mut self, wire: &[u8], i: usize) {
        if let Ok(e) = self.0.find_entry(folded_hash(wire), |&j| j as usize == i) {
            e.remove();
        }
    }

    /// Records that the item named `wire` moved from position `from` to `to`.
    pub(crate) fn moved(&mut self, wire: &[u8], from: usize, to: usize) {
        if let Some(j) = self.0.find_mut(folded_hash(wire), |&j| j as usize == from) {
            *j = to as u32;
        }
    }

    /// Makes room for `n` more names.
    pub(crate) fn reserve<I: Items + ?Sized>(&mut self, items: &I, n: usize) {
        self.0.reserve(n, |&j| items.wire_at(j as usize).map_or(0, folded_hash));
    }

    /// Gives back spare room after the last insertion.
    pub(crate) fn shrink<I: Items + ?Sized>(&mut self, items: &I) {
        self.0.shrink_to_fit(|&j| items.wire_at(j as usize).map_or(0, folded_hash));
    }
}

/// Equal up to ASCII case; most names are stored as they are asked (lower case), so the
/// plain comparison settles it first.
fn same_name(a: &[u8], b: &[u8]) -> bool {
    a == b || a.eq_ignore_ascii_case(b)
}

/// FxHash of the wire bytes with ASCII letters lower-cased, eight at a time. Length octets
/// (at most 63) are below `A` and pass unchanged.
pub(crate) fn folded_hash(wire: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write_usize(wire.len());
    let mut chunks = wire.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h.write_u64(fold8(u64::from_le_bytes(w)));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h.write_u64(fold8(u64::from_le_bytes(w)));
    }
    h.finish()
}

/// Lower-cases the ASCII capitals among eight packed bytes (SWAR); other bytes, non-ASCII
/// included, are left as they are.
fn fold8(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    let low7 = x & !HIGH;
    // Each byte's high bit: set where its low seven bits are ≥ 'A', resp. > 'Z' (no carries:
    // 0x7f plus either constant stays below 0x100).
    let at_least_a = low7 + ONES * (0x80 - u64::from(b'A'));
    let above_z = low7 + ONES * (0x80 - u64::from(b'Z') - 1);
    let capital = at_least_a & !above_z & !x & HIGH;
    x | (capital >> 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Named for Vec<u8> {
        fn wire(&self) -> &[u8] {
            self
        }
    }

    #[test]
    fn fold8_lowercases_exactly_the_ascii_capitals() {
        for b in 0..=255u8 {
            for pos in 0..8 {
                let mut bytes = *b"aBcD@[Z\xc1";
                bytes[pos] = b;
                let mut want = bytes;
                want.make_ascii_lowercase();
                assert_eq!(fold8(u64::from_le_bytes(bytes)).to_le_bytes(), want, "byte {b:#x} at {pos}");
            }
        }
    }

    #[test]
    fn names_differing_in_case_hash_alike_and_are_found() {
        let names: Vec<Vec<u8>> = ["www.Example.COM.", "a.example.com.", "xn--bcher-kva.example.com."]
            .iter()
            .map(|n| n.parse::<crate::Name>().unwrap().wire().to_vec())
            .collect();
        let mut idx = NameIndex::default();
        for (i, n) in names.iter().enumerate() {
            idx.insert(&names, n, i);
        }
        let lower = "WWW.example.com.".parse::<crate::Name>().unwrap().to_lowercase();
        assert_eq!(folded_hash(lower.wire()), folded_hash(&names[0]));
        assert_eq!(idx.find(&names, lower.wire()), Some(0));
        let other = "b.example.com.".parse::<crate::Name>().unwrap();
        assert_eq!(idx.find(&names, other.wire()), None);
    }
}
