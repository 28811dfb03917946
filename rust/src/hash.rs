//! A tiny, fast, non-cryptographic hasher (in the spirit of rustc's FxHash).
//!
//! Rust's default `HashMap` hasher is SipHash: robust against attackers who
//! choose keys to force collisions, but slow for our job, where keys are
//! millions of short byte strings (text chunks) and pairs of token ids.
//! Nobody adversarial picks our keys, so we trade that protection for speed:
//! mix each 8-byte word into the state with a rotate, xor and multiply.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// An odd 64-bit constant with well-spread bits (the one FxHash uses).
const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline(always)]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Eat 8 bytes at a time, then the 0..7 byte tail packed into one word.
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // The multiply pushes entropy to the HIGH bits, but hash tables pick a
        // bucket from the LOW bits: rotate the good bits down.
        self.hash.rotate_left(26)
    }
}

pub type FxBuild = BuildHasherDefault<FxHasher>;
pub type FxHashMap<K, V> = HashMap<K, V, FxBuild>;
pub type FxHashSet<K> = HashSet<K, FxBuild>;

/// Hash a byte string on its own (used to pick a shard, see train.rs).
#[inline]
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_keys_different_hashes() {
        assert_ne!(hash_bytes(b"hello"), hash_bytes(b"hellp"));
        assert_ne!(hash_bytes(b" the"), hash_bytes(b"the "));
        let mut m: FxHashMap<&[u8], u32> = FxHashMap::default();
        m.insert(b"a", 1);
        m.insert(b"a\0", 2); // same padded word, but `Eq` keeps them apart
        assert_eq!(m[&b"a"[..]], 1);
        assert_eq!(m[&b"a\0"[..]], 2);
    }
}
