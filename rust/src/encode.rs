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

use std::thread;

use crate::hash::FxHashMap;
use crate::split::Splitter;
use crate::train::{balanced_groups, default_threads, pair, Pair};

/// "No merge for this pair".
const NONE: u32 = u32::MAX;

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
    /// `ids[i]` are the current tokens and `r[i]` the rank of the pair
    /// (`ids[i]`, `ids[i+1]`). Each step merges the lowest-ranked pair (the
    /// leftmost if it occurs twice), then recomputes only the two pairs that
    /// touch the new token. Chunks are short, so plain Vec shifts are cheap.
    fn bpe(&self, piece: &[u8], out: &mut Vec<u32>, s: &mut Scratch) {
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

/// Reusable buffers for the merge loop (avoid allocating per chunk).
#[derive(Default)]
struct Scratch {
    ids: Vec<u32>,
    ranks: Vec<u32>,
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
