//! Encoding: text -> token ids, given the merges learned by training.
//!
//! For each chunk of the split, start from its bytes and repeatedly apply the
//! merge with the lowest rank (the earliest learned) among adjacent pairs,
//! until no adjacent pair is a known merge. Applying merges in training order
//! reproduces what training did to that chunk.
//!
//! Speed comes from *not* running that loop most of the time:
//! * chunks repeat a lot (" the", ",", " of"): a per-call cache maps a chunk
//!   seen before to where its ids already are in the output;
//! * most chunks are exactly one token: at construction we encode every
//!   token's bytes once and remember those that encode to themselves, so a
//!   single hash lookup finishes such a chunk. Most such chunks are short,
//!   so tokens of up to 7 bytes are keyed by a plain `u64` (bytes + length
//!   packed together): hashing and comparing one integer is much cheaper
//!   than hashing a byte string and calling `memcmp`.
//!
//! When the loop does run, its cost must not explode on a long chunk: the
//! split cannot break 100,000 copies of one letter, a base64 blob or a run of
//! newlines, and a loop that rescans the chunk after every merge is quadratic
//! (seconds for one such document). Long chunks therefore take a linked list
//! and a min-heap (`bpe_heap`, O(n log n)); short ones keep the plain scan.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::thread;

use crate::hash::FxHashMap;
use crate::split::Splitter;
use crate::train::{balanced_groups, default_threads, pair, Pair};

/// "No merge for this pair".
const NONE: u32 = u32::MAX;
/// A node of `bpe_heap`'s list that was merged into its left neighbour.
const GONE: u32 = u32::MAX;
/// "No left neighbour" in `bpe_heap`'s list.
const END: u32 = u32::MAX;
/// Chunks of at least this many bytes take `bpe_heap`, shorter ones `bpe_scan`.
/// Measured on chunks of English letters with 8,192-token merges: the scan is
/// as fast or faster up to ~128 bytes, the heap 2x faster at 256, 3x at 384.
const HEAP_FROM: usize = 128;

pub struct Encoder {
    /// (left, right) -> rank; merging produces token id 256 + rank.
    ranks: FxHashMap<Pair, u32>,
    /// Tokens whose encoding is that single token: bytes -> token id.
    /// Short ones (<= 7 bytes) are keyed by `pack(bytes)`, the rest by bytes.
    whole_short: FxHashMap<u64, u32>,
    whole_long: FxHashMap<Box<[u8]>, u32>,
    num_threads: usize,
}

/// Why merges were rejected.
#[derive(Debug, PartialEq)]
pub struct BadMerge {
    pub index: usize,
    pub pair: (u32, u32),
}

impl Encoder {
    /// Build from merges in order. Merge `i` may only use ids `< 256 + i`
    /// (tokens that exist at that point).
    pub fn new(merges: &[(u32, u32)], num_threads: usize) -> Result<Self, BadMerge> {
        let mut ranks = FxHashMap::default();
        ranks.reserve(merges.len());
        let mut bytes: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        for (i, &(a, b)) in merges.iter().enumerate() {
            let limit = 256 + i as u32;
            if a >= limit || b >= limit {
                return Err(BadMerge {
                    index: i,
                    pair: (a, b),
                });
            }
            // A repeated pair would be unreachable; keep the first (lowest) rank.
            ranks.entry(pair(a, b)).or_insert(i as u32);
            let mut t = bytes[a as usize].clone();
            t.extend_from_slice(&bytes[b as usize]);
            bytes.push(t);
        }
        let mut enc = Encoder {
            ranks,
            whole_short: FxHashMap::default(),
            whole_long: FxHashMap::default(),
            num_threads: if num_threads == 0 {
                default_threads()
            } else {
                num_threads
            },
        };
        let (mut short, mut long) = (FxHashMap::default(), FxHashMap::default());
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        for (id, t) in bytes.into_iter().enumerate().skip(256) {
            out.clear();
            enc.bpe(&t, &mut out, &mut scratch);
            if out.len() == 1 && out[0] == id as u32 {
                match pack(&t) {
                    Some(key) => short.entry(key).or_insert(id as u32),
                    None => long.entry(t.into_boxed_slice()).or_insert(id as u32),
                };
            }
        }
        enc.whole_short = short;
        enc.whole_long = long;
        Ok(enc)
    }

    /// The token id if `chunk` encodes to a single token.
    #[inline(always)]
    fn whole(&self, chunk: &[u8]) -> Option<u32> {
        match pack(chunk) {
            Some(key) => self.whole_short.get(&key).copied(),
            None => self.whole_long.get(chunk).copied(),
        }
    }

    #[inline(always)]
    fn rank(&self, a: u32, b: u32) -> u32 {
        self.ranks.get(&pair(a, b)).copied().unwrap_or(NONE)
    }

    /// The merge loop for one chunk; appends its ids to `out`.
    ///
    /// Both loops below merge the lowest-ranked adjacent pair first (the
    /// leftmost if it occurs twice) until no pair is a merge, so they give
    /// identical ids; they differ only in cost. Short chunks (almost all of
    /// real text) take the plain scan, which is O(n^2) but has tiny constants;
    /// long ones take the heap, O(n log n), so one pathological chunk (100K
    /// copies of a letter, a base64 blob, a run of newlines) costs about as
    /// much per byte as ordinary text.
    #[inline]
    fn bpe(&self, piece: &[u8], out: &mut Vec<u32>, s: &mut Scratch) {
        // (node indices are u32: a chunk of 4 GiB or more, absurd as it is, takes the scan)
        if piece.len() < HEAP_FROM || piece.len() >= u32::MAX as usize {
            self.bpe_scan(piece, out, s)
        } else {
            self.bpe_heap(piece, out, s)
        }
    }

    /// The textbook loop (what `PythonBPE.encode_chunk` does), for short chunks.
    ///
    /// `ids[i]` are the current tokens and `r[i]` the rank of the pair
    /// (`ids[i]`, `ids[i+1]`). Each step scans `r` for the lowest rank (first
    /// occurrence), merges it, and recomputes only the two pairs that touch
    /// the new token. Each merge rescans and shifts the whole chunk: fine for
    /// a word, quadratic for a 100 KB chunk.
    fn bpe_scan(&self, piece: &[u8], out: &mut Vec<u32>, s: &mut Scratch) {
        let ids = &mut s.ids;
        let r = &mut s.ranks;
        ids.clear();
        ids.extend(piece.iter().map(|&b| b as u32));
        r.clear();
        r.extend(ids.windows(2).map(|w| self.rank(w[0], w[1])));
        loop {
            // find the lowest rank (first occurrence)
            let mut best = NONE;
            let mut at = 0;
            for (i, &x) in r.iter().enumerate() {
                if x < best {
                    best = x;
                    at = i;
                }
            }
            if best == NONE {
                break;
            }
            ids[at] = 256 + best;
            ids.remove(at + 1);
            r.remove(at);
            if at + 1 < ids.len() {
                r[at] = self.rank(ids[at], ids[at + 1]);
            }
            if at > 0 {
                r[at - 1] = self.rank(ids[at - 1], ids[at]);
            }
        }
        out.extend_from_slice(ids);
    }

    /// The same merges in O(n log n), for long chunks.
    ///
    /// Tokens are nodes of a doubly linked list laid over the chunk's byte
    /// positions: a merge joins node `i` with its right neighbour `j` by
    /// relinking, not by shifting the rest. A min-heap holds `(rank, i)` for
    /// every mergeable pair whose left token is node `i`; popping gives the
    /// lowest rank and, among equal ranks, the smallest `i`, which is the
    /// leftmost pair because nodes never change order. A merge creates at most
    /// two new pairs (with the left and the right neighbour): they are pushed,
    /// and the pairs the merge destroyed are left in the heap. Such stale
    /// entries are recognised when popped ("lazy invalidation"): `r[i]`
    /// always holds the rank of node `i`'s *current* pair, and an entry whose
    /// rank differs from it (or whose node was absorbed) is skipped. An entry
    /// that agrees with `r[i]` is the current pair: a rank names one pair.
    fn bpe_heap(&self, piece: &[u8], out: &mut Vec<u32>, s: &mut Scratch) {
        let n = piece.len();
        debug_assert!(n >= 2 && n < u32::MAX as usize);
        let Scratch {
            ids,
            ranks: r,
            prev,
            next,
            heap,
        } = s;
        ids.clear();
        ids.extend(piece.iter().map(|&b| b as u32));
        // next[i] == n: no right neighbour; prev[i] == END: no left one.
        next.clear();
        next.extend(1..=n as u32);
        prev.clear();
        prev.extend((0..n as u32).map(|i| i.wrapping_sub(1)));
        r.clear();
        r.extend(ids.windows(2).map(|w| self.rank(w[0], w[1])));
        r.push(NONE); // the last node has no pair
        heap.clear();
        heap.extend(
            r.iter()
                .enumerate()
                .filter(|&(_, &x)| x != NONE)
                .map(|(i, &x)| Reverse(key(x, i as u32))),
        );
        while let Some(Reverse(k)) = heap.pop() {
            let (rank, i) = ((k >> 32) as u32, k as u32 as usize);
            if r[i] != rank || ids[i] == GONE {
                continue; // stale: this pair was destroyed by an earlier merge
            }
            // merge node i with its right neighbour j; j's right neighbour becomes i's
            let j = next[i] as usize;
            ids[i] = 256 + rank;
            ids[j] = GONE;
            r[j] = NONE;
            let k = next[j];
            next[i] = k;
            if (k as usize) < n {
                prev[k as usize] = i as u32;
                r[i] = self.rank(ids[i], ids[k as usize]);
                if r[i] != NONE {
                    heap.push(Reverse(key(r[i], i as u32)));
                }
            } else {
                r[i] = NONE;
            }
            let p = prev[i];
            if p != END {
                let p = p as usize;
                r[p] = self.rank(ids[p], ids[i]);
                if r[p] != NONE {
                    heap.push(Reverse(key(r[p], p as u32)));
                }
            }
        }
        let mut i = 0;
        while i < n {
            out.push(ids[i]);
            i = next[i] as usize;
        }
    }

    /// Encode `text`, appending to `out`. `cache` remembers, for chunks of
    /// this text (or earlier texts with the same lifetime), where in `out`
    /// their ids were first written.
    fn encode_into<'t>(
        &self,
        text: &'t str,
        out: &mut Vec<u32>,
        cache: &mut FxHashMap<&'t [u8], (usize, usize)>,
        s: &mut Scratch,
    ) {
        for chunk in Splitter::new(text) {
            let b = chunk.as_bytes();
            if b.len() == 1 {
                out.push(b[0] as u32);
            } else if let Some(id) = self.whole(b) {
                out.push(id);
            } else if let Some(&(start, len)) = cache.get(b) {
                out.extend_from_within(start..start + len);
            } else {
                let start = out.len();
                self.bpe(b, out, s);
                cache.insert(b, (start, out.len() - start));
            }
        }
    }

    /// Encode one text on the calling thread.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 8);
        let mut cache = FxHashMap::default();
        self.encode_into(text, &mut out, &mut cache, &mut Scratch::default());
        out
    }

    /// Encode many texts in parallel. Returns all ids concatenated, and
    /// `offsets` (n + 1 entries) such that text `i` is `ids[offsets[i]..offsets[i+1]]`.
    pub fn encode_batch(&self, texts: &[&str]) -> (Vec<u32>, Vec<u64>) {
        let groups = balanced_groups(texts, self.num_threads, |t| t.len());
        let results: Vec<(Vec<u32>, Vec<usize>)> = thread::scope(|scope| {
            let handles: Vec<_> = groups
                .iter()
                .map(|&group| {
                    scope.spawn(move || {
                        // One cache per thread, shared by all its texts.
                        let mut cache = FxHashMap::default();
                        let mut s = Scratch::default();
                        let mut out = Vec::new();
                        let mut ends = Vec::with_capacity(group.len());
                        for text in group {
                            self.encode_into(text, &mut out, &mut cache, &mut s);
                            ends.push(out.len());
                        }
                        (out, ends)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("encoding thread panicked"))
                .collect()
        });
        let total: usize = results.iter().map(|(o, _)| o.len()).sum();
        let mut ids = Vec::with_capacity(total);
        let mut offsets = Vec::with_capacity(texts.len() + 1);
        offsets.push(0u64);
        for (out, ends) in results {
            let base = ids.len() as u64;
            offsets.extend(ends.iter().map(|&e| base + e as u64));
            ids.extend_from_slice(&out);
        }
        (ids, offsets)
    }
}

/// Pack a byte string of length <= 7 into one u64: bytes in the low 7 bytes,
/// length in the top byte (so "a" and "a\0" stay different). None if longer.
#[inline(always)]
fn pack(b: &[u8]) -> Option<u64> {
    if b.len() > 7 {
        return None;
    }
    let mut key = (b.len() as u64) << 56;
    for (i, &x) in b.iter().enumerate() {
        key |= (x as u64) << (8 * i);
    }
    Some(key)
}

/// A heap entry: rank in the high half, node in the low half, so that the
/// integer order is "lowest rank, then leftmost node".
#[inline(always)]
fn key(rank: u32, node: u32) -> u64 {
    (rank as u64) << 32 | node as u64
}

/// Reusable buffers for the merge loops (avoid allocating per chunk).
#[derive(Default)]
struct Scratch {
    ids: Vec<u32>,
    ranks: Vec<u32>,
    prev: Vec<u32>,
    next: Vec<u32>,
    heap: BinaryHeap<Reverse<u64>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::Trainer;

    #[test]
    fn encodes_with_merges_in_rank_order() {
        // merges: (a,b)->256, (256,c)->257, (b,c)->258
        let (a, b, c) = (b'a' as u32, b'b' as u32, b'c' as u32);
        let e = Encoder::new(&[(a, b), (256, c), (b, c)], 1).unwrap();
        assert_eq!(e.encode("abc"), vec![257]);
        assert_eq!(e.encode("bc"), vec![258]);
        assert_eq!(e.encode("abab"), vec![256, 256]);
        // " abc": (a,b) has the lowest rank, then (256,c); (b,c) never gets a chance.
        assert_eq!(e.encode("abc abc"), vec![257, b' ' as u32, 257]);
        assert_eq!(e.encode(""), Vec::<u32>::new());
    }

    /// A small deterministic PRNG (xorshift64*): the crate has no dependencies.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        }
    }

    fn both_loops(e: &Encoder, piece: &[u8]) -> (Vec<u32>, Vec<u32>) {
        let (mut a, mut b, mut s) = (Vec::new(), Vec::new(), Scratch::default());
        e.bpe_scan(piece, &mut a, &mut s);
        if piece.len() >= 2 {
            e.bpe_heap(piece, &mut b, &mut s);
        } else {
            b = a.clone();
        }
        (a, b)
    }

    #[test]
    fn heap_loop_equals_scan_loop() {
        // Merges learned from repetitive text over a tiny alphabet, so that long
        // random strings over it hit many merges, overlaps and ties.
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let alphabet = b"aab\n";
        let words: Vec<String> = (0..400)
            .map(|_| {
                let len = 1 + rng.below(12) as usize;
                (0..len)
                    .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize] as char)
                    .collect()
            })
            .collect();
        let text: Vec<&str> = words.iter().map(|w| w.as_str()).collect();
        let mut t = Trainer::new(1);
        t.feed(&text);
        let merges = t.train(120);
        assert!(merges.len() > 20);
        let e = Encoder::new(&merges, 1).unwrap();
        for round in 0..2000 {
            let len = rng.below(if round % 10 == 0 { 1000 } else { 300 }) as usize;
            let piece: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                .collect();
            let (scan, heap) = both_loops(&e, &piece);
            assert_eq!(scan, heap, "piece {:?}", String::from_utf8_lossy(&piece));
        }
    }

    #[test]
    fn long_runs_of_one_byte() {
        // aa -> 256, (aa)(aa) -> 257, a(aa) -> 258: a run of n `a`s becomes
        // n / 4 tokens 257, then what is left: 3 -> [256, 97] (256 is made
        // before 258, leftmost first), 2 -> [256], 1 -> [97].
        let a = b'a' as u32;
        let e = Encoder::new(&[(a, a), (256, 256), (a, 256)], 1).unwrap();
        for n in [2usize, 3, 5, 127, 128, 129, 130, 100_000, 100_003] {
            let text = "a".repeat(n);
            let mut want = vec![257; n / 4];
            want.extend_from_slice(match n % 4 {
                0 => &[][..],
                1 => &[97][..],
                2 => &[256][..],
                _ => &[256, 97][..],
            });
            assert_eq!(e.encode(&text), want, "n = {n}");
            if n < 1000 {
                // (the scan is quadratic: too slow for 100K in a debug build)
                let (scan, heap) = both_loops(&e, text.as_bytes());
                assert_eq!(scan, heap, "n = {n}");
            }
        }
    }

    #[test]
    fn pack_is_injective_on_short_strings() {
        assert_ne!(pack(b"a"), pack(b"a\0"));
        assert_ne!(pack(b""), pack(b"\0"));
        assert_eq!(pack(b"12345678"), None);
        assert_eq!(
            pack(b"ab"),
            Some((2 << 56) | (b'b' as u64) << 8 | b'a' as u64)
        );
    }

    #[test]
    fn rejects_merges_using_future_ids() {
        assert_eq!(
            Encoder::new(&[(1, 256)], 1).err(),
            Some(BadMerge {
                index: 0,
                pair: (1, 256)
            })
        );
    }

    #[test]
    fn batch_equals_single_and_roundtrips() {
        let texts = [
            "hello world, hello there!",
            "",
            "  spaces\n\n and 123456 numbers",
            "ünïcödé 中文",
        ];
        let mut t = Trainer::new(2);
        t.feed(&texts);
        let merges = t.train(44);
        let e = Encoder::new(&merges, 3).unwrap();
        let (ids, offsets) = e.encode_batch(&texts);
        let mut vocab: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        for &(a, b) in &merges {
            let t = [vocab[a as usize].clone(), vocab[b as usize].clone()].concat();
            vocab.push(t);
        }
        for (i, text) in texts.iter().enumerate() {
            let one = e.encode(text);
            assert_eq!(&ids[offsets[i] as usize..offsets[i + 1] as usize], &one[..]);
            let bytes: Vec<u8> = one
                .iter()
                .flat_map(|&t| vocab[t as usize].clone())
                .collect();
            assert_eq!(bytes, text.as_bytes());
        }
    }
}
