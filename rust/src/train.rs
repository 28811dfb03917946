//! BPE training: count chunks, then repeatedly merge the most frequent pair.
//!
//! Two phases:
//!
//! 1. **Counting** ([`Trainer::feed`], called once per batch of texts).
//!    We never need the corpus itself, only how often each distinct chunk
//!    occurs: "the" may appear millions of times but is trained on once, with
//!    weight = its count. Each batch is split by several threads at once, each
//!    counting into its own maps; the maps are then merged, also in parallel,
//!    by cutting the key space into shards (by hash) that threads own.
//!
//! 2. **Merging** ([`Trainer::train`]). Every unique chunk becomes a "word":
//!    a sequence of token ids, initially its bytes (ids 0..=255). Then, for
//!    each new token id 256, 257, ...:
//!      * pick the adjacent pair (a, b) with the highest total count (count
//!        of a pair in a word times the word's weight, summed over words);
//!        ties go to the smallest pair (smallest a, then smallest b);
//!      * replace every occurrence of (a, b), left to right, by the new id.
//!
//!    Recounting all pairs after every merge would cost O(corpus) per merge.
//!    Instead we keep, incrementally:
//!      * `counts`: pair -> current total count,
//!      * `where_`: pair -> the words it occurs in (so a merge only touches
//!        those words),
//!      * a max-heap of (count, pair) with *lazy invalidation*: counts change
//!        all the time and a binary heap can't update entries in place, so
//!        when we pop an entry we compare it with `counts`; if stale, we push
//!        it back with the current count and pop again.
//!
//!    Why the lazy heap is exact: a pair's count only ever *grows* in the step
//!    that creates one of its two tokens (only pairs containing the new token
//!    appear), and we push it right then. Afterwards its count only shrinks,
//!    so a heap entry never under-states a count: if the top entry is up to
//!    date, nothing below it can beat it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::thread;

use crate::hash::{hash_bytes, FxHashMap};
use crate::split::Splitter;

/// Token ids are u32; a pair (a, b) is packed into one u64 as `a << 32 | b`.
/// Comparing the packed values compares (a, b) lexicographically, which is
/// exactly our tie-break order.
pub type Pair = u64;

#[inline(always)]
pub fn pair(a: u32, b: u32) -> Pair {
    ((a as u64) << 32) | b as u64
}

#[inline(always)]
pub fn unpair(p: Pair) -> (u32, u32) {
    ((p >> 32) as u32, p as u32)
}

/// The most merges one can ask for: merge `i` creates token id `256 + i`,
/// and the last id must still fit in a `u32`.
pub(crate) const MAX_MERGES: u32 = u32::MAX - 256;

/// Number of shards of the chunk-count table (a power of two).
const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;

#[inline(always)]
fn shard_of(chunk: &[u8]) -> usize {
    (hash_bytes(chunk) >> (64 - SHARD_BITS)) as usize
}

/// Default number of worker threads: all the cores we may use.
pub fn default_threads() -> usize {
    thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Cut `items` into at most `parts` contiguous groups of roughly equal total
/// weight (for texts: bytes), so each thread gets a similar amount of work.
pub fn balanced_groups<T>(items: &[T], parts: usize, weight: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let parts = parts.max(1).min(items.len().max(1));
    let total: usize = items.iter().map(&weight).sum::<usize>().max(1);
    let mut groups = Vec::with_capacity(parts);
    let (mut start, mut acc) = (0, 0);
    for (i, it) in items.iter().enumerate() {
        acc += weight(it);
        // close the group once it has its share of the total
        if acc * parts >= total * (groups.len() + 1) && groups.len() + 1 < parts {
            groups.push(&items[start..=i]);
            start = i + 1;
        }
    }
    groups.push(&items[start..]);
    groups
}

/// Accumulates chunk counts over any number of `feed` calls, then trains.
pub struct Trainer {
    /// chunk bytes -> number of occurrences, sharded by hash of the chunk.
    shards: Vec<FxHashMap<Box<[u8]>, u64>>,
    num_threads: usize,
}

impl Trainer {
    pub fn new(num_threads: usize) -> Self {
        let num_threads = if num_threads == 0 {
            default_threads()
        } else {
            num_threads
        };
        Trainer {
            shards: (0..SHARDS).map(|_| FxHashMap::default()).collect(),
            num_threads,
        }
    }

    pub fn num_unique_chunks(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    /// Split `texts` and add their chunk counts.
    pub fn feed(&mut self, texts: &[&str]) {
        let groups = balanced_groups(texts, self.num_threads, |t| t.len());

        // Phase A: each thread counts the chunks of its texts into SHARDS
        // local maps. Keys borrow from the texts: no allocation per chunk.
        let locals: Vec<Vec<FxHashMap<&[u8], u64>>> = thread::scope(|scope| {
            let handles: Vec<_> = groups
                .iter()
                .map(|&group| {
                    scope.spawn(move || {
                        let mut maps: Vec<FxHashMap<&[u8], u64>> =
                            (0..SHARDS).map(|_| FxHashMap::default()).collect();
                        for text in group {
                            for chunk in Splitter::new(text) {
                                let b = chunk.as_bytes();
                                *maps[shard_of(b)].entry(b).or_insert(0) += 1;
                            }
                        }
                        maps
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("counting thread panicked"))
                .collect()
        });

        // Phase B: thread t owns a contiguous block of shards and merges the
        // matching local maps into them. Only new chunks allocate.
        let per_thread = SHARDS.div_ceil(self.num_threads);
        thread::scope(|scope| {
            for (block_idx, block) in self.shards.chunks_mut(per_thread).enumerate() {
                let locals = &locals;
                scope.spawn(move || {
                    for (k, global) in block.iter_mut().enumerate() {
                        let shard = block_idx * per_thread + k;
                        for local in locals {
                            for (&chunk, &c) in &local[shard] {
                                match global.get_mut(chunk) {
                                    Some(v) => *v += c,
                                    None => {
                                        global.insert(chunk.into(), c);
                                    }
                                }
                            }
                        }
                    }
                });
            }
        });
    }

    /// Learn up to `num_merges` merges. Returns them in order: merge `i`
    /// creates token id `256 + i`. Fewer are returned if the corpus runs out
    /// of pairs. (Special tokens are the caller's business: a tokenizer with
    /// `n` specials and final vocabulary `vocab_size` asks for
    /// `vocab_size - 256 - n` merges.) Panics if `num_merges > u32::MAX - 256`,
    /// since the last token id would not fit in a `u32` (the FFI layer checks first).
    pub fn train(&self, num_merges: u32) -> Vec<(u32, u32)> {
        assert!(
            num_merges <= MAX_MERGES,
            "num_merges must be <= u32::MAX - 256"
        );
        let mut words = Words::default();
        for shard in &self.shards {
            for (chunk, &count) in shard {
                // A 1-byte chunk has no pairs: it can never affect training.
                if chunk.len() >= 2 {
                    words.push(chunk, count);
                }
            }
        }
        train_words(words, num_merges, self.num_threads)
    }
}

/// All words in one flat buffer (one allocation instead of millions).
/// Word `w` is `ids[start[w] .. start[w] + len[w]]`; merging shrinks `len[w]`.
#[derive(Default)]
pub struct Words {
    ids: Vec<u32>,
    start: Vec<usize>,
    len: Vec<u32>,
    weight: Vec<i64>,
}

impl Words {
    pub fn push(&mut self, bytes: &[u8], weight: u64) {
        self.start.push(self.ids.len());
        self.len.push(bytes.len() as u32);
        self.weight.push(weight as i64);
        self.ids.extend(bytes.iter().map(|&b| b as u32));
    }

    fn num_words(&self) -> usize {
        self.start.len()
    }

    fn word(&self, w: usize) -> &[u32] {
        &self.ids[self.start[w]..self.start[w] + self.len[w] as usize]
    }
}

/// Count every adjacent pair in words `range`, and record the words each pair
/// occurs in (each word once, in increasing order).
fn count_pairs(words: &Words, range: std::ops::Range<usize>) -> FxHashMap<Pair, (i64, Vec<u32>)> {
    let mut stats: FxHashMap<Pair, (i64, Vec<u32>)> = FxHashMap::default();
    for w in range {
        let word = words.word(w);
        let weight = words.weight[w];
        for ab in word.windows(2) {
            let e = stats.entry(pair(ab[0], ab[1])).or_default();
            e.0 += weight;
            if e.1.last() != Some(&(w as u32)) {
                e.1.push(w as u32);
            }
        }
    }
    stats
}

/// Pair counting over all words, split across threads, then combined.
fn count_pairs_parallel(words: &Words, num_threads: usize) -> FxHashMap<Pair, (i64, Vec<u32>)> {
    let n = words.num_words();
    let per = n.div_ceil(num_threads.max(1)).max(1);
    let mut parts: Vec<FxHashMap<Pair, (i64, Vec<u32>)>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .step_by(per)
            .map(|lo| scope.spawn(move || count_pairs(words, lo..(lo + per).min(n))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("pair-counting thread panicked"))
            .collect()
    });
    let mut total = parts.pop().unwrap_or_default();
    for part in parts {
        for (p, (c, mut ws)) in part {
            let e = total.entry(p).or_default();
            e.0 += c;
            // Keep word lists sorted (not needed for correctness, nice for locality).
            ws.append(&mut e.1);
            e.1 = ws;
        }
    }
    total
}

/// The merge loop (see the module docs). Returns the merges in order.
pub fn train_words(mut words: Words, num_merges: u32, num_threads: usize) -> Vec<(u32, u32)> {
    let stats = count_pairs_parallel(&words, num_threads);
    let mut counts: FxHashMap<Pair, i64> = FxHashMap::default();
    let mut where_: FxHashMap<Pair, Vec<u32>> = FxHashMap::default();
    let mut heap: BinaryHeap<(i64, Reverse<Pair>)> = BinaryHeap::with_capacity(stats.len());
    for (p, (c, ws)) in stats {
        counts.insert(p, c);
        where_.insert(p, ws);
        heap.push((c, Reverse(p)));
    }

    // (capped: a huge num_merges must not reserve gigabytes up front)
    let mut merges = Vec::with_capacity((num_merges as usize).min(1 << 20));
    // Pairs created by the current merge -> words they were created in.
    let mut created: FxHashMap<Pair, Vec<u32>> = FxHashMap::default();

    while merges.len() < num_merges as usize {
        let Some((c, Reverse(p))) = heap.pop() else {
            break;
        };
        let current = counts.get(&p).copied().unwrap_or(0);
        if current <= 0 {
            continue; // the pair vanished (merged away); drop the entry
        }
        if current != c {
            heap.push((current, Reverse(p))); // stale: requeue with the true count
            continue;
        }

        let (a, b) = unpair(p);
        let new_id = 256 + merges.len() as u32;
        merges.push((a, b));

        for &w in &where_.remove(&p).unwrap_or_default() {
            merge_in_word(
                &mut words,
                w as usize,
                a,
                b,
                new_id,
                &mut counts,
                &mut created,
            );
        }
        debug_assert_eq!(counts.get(&p).copied().unwrap_or(0), 0);
        counts.remove(&p);

        for (q, ws) in created.drain() {
            let c = counts.get(&q).copied().unwrap_or(0);
            if c > 0 {
                heap.push((c, Reverse(q)));
                where_.entry(q).or_default().extend(ws);
            }
        }
    }
    merges
}

/// Replace each (a, b) in word `w`, left to right, by `new_id`, and update
/// the pair counts: for `x a b y` -> `x Z y` the pairs (x,a), (a,b), (b,y)
/// lose one occurrence and (x,Z), (Z,y) gain one, each weighted by the
/// word's count. The new pairs are recorded in `created`.
#[inline]
fn merge_in_word(
    words: &mut Words,
    w: usize,
    a: u32,
    b: u32,
    new_id: u32,
    counts: &mut FxHashMap<Pair, i64>,
    created: &mut FxHashMap<Pair, Vec<u32>>,
) {
    let weight = words.weight[w];
    let start = words.start[w];
    let n = words.len[w] as usize;
    let ids = &mut words.ids[start..start + n];
    let mut add = |q: Pair, delta: i64| *counts.entry(q).or_insert(0) += delta;
    let mut note = |q: Pair| {
        let list = created.entry(q).or_default();
        if list.last() != Some(&(w as u32)) {
            list.push(w as u32);
        }
    };

    // `out` is the write position: the word is rewritten in place and can
    // only shrink, so writes never overtake reads.
    let (mut i, mut out) = (0, 0);
    while i < n {
        if i + 1 < n && ids[i] == a && ids[i + 1] == b {
            if out > 0 {
                // The left neighbour is what we already wrote: it may itself
                // be a fresh `new_id` (e.g. "a b a b" -> "Z Z").
                let x = ids[out - 1];
                add(pair(x, a), -weight);
                add(pair(x, new_id), weight);
                note(pair(x, new_id));
            }
            add(pair(a, b), -weight);
            if i + 2 < n {
                let y = ids[i + 2];
                add(pair(b, y), -weight);
                add(pair(new_id, y), weight);
                note(pair(new_id, y));
            }
            ids[out] = new_id;
            i += 2;
        } else {
            ids[out] = ids[i];
            i += 1;
        }
        out += 1;
    }
    words.len[w] = out as u32;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Textbook BPE: recount everything after each merge.
    fn naive(words: &[(&[u8], u64)], num_merges: u32) -> Vec<(u32, u32)> {
        let mut ws: Vec<(Vec<u32>, i64)> = words
            .iter()
            .map(|(b, c)| (b.iter().map(|&x| x as u32).collect(), *c as i64))
            .collect();
        let mut merges = vec![];
        for k in 0..num_merges {
            let mut stats: std::collections::BTreeMap<(u32, u32), i64> = Default::default();
            for (w, c) in &ws {
                for ab in w.windows(2) {
                    *stats.entry((ab[0], ab[1])).or_default() += c;
                }
            }
            // highest count, then smallest pair
            let Some((&best, _)) = stats.iter().max_by_key(|(p, c)| (**c, Reverse(**p))) else {
                break;
            };
            let id = 256 + k;
            for (w, _) in ws.iter_mut() {
                let mut out = vec![];
                let mut i = 0;
                while i < w.len() {
                    if i + 1 < w.len() && (w[i], w[i + 1]) == best {
                        out.push(id);
                        i += 2;
                    } else {
                        out.push(w[i]);
                        i += 1;
                    }
                }
                *w = out;
            }
            merges.push(best);
        }
        merges
    }

    #[test]
    fn matches_naive_bpe() {
        let data: Vec<(&[u8], u64)> = vec![
            (b"aaaa", 3),
            (b"aaa", 2),
            (b"abab", 5),
            (b"hello", 4),
            (b" hello", 7),
            (b"yellow", 2),
            (b"ababab", 1),
            (b"zz", 1),
        ];
        for threads in [1, 3] {
            let mut words = Words::default();
            for (b, c) in &data {
                words.push(b, *c);
            }
            let got = train_words(words, 40, threads);
            assert_eq!(got, naive(&data, 40));
        }
    }

    #[test]
    fn trainer_end_to_end() {
        let mut t = Trainer::new(2);
        t.feed(&["hello hello world", "hello there"]);
        t.feed(&["world"]);
        assert_eq!(t.num_unique_chunks(), 5); // hello, " hello", " world", " there", world
        let merges = t.train(3);
        assert_eq!(merges.len(), 3);
        // ('h','e') occurs 4 times: hello x2, " hello", " there"
        assert_eq!(merges[0], (b'h' as u32, b'e' as u32));
        assert!(t.train(0).is_empty()); // the argument counts merges, not the vocabulary
        assert_eq!(t.train(1), merges[..1]);
    }

    #[test]
    fn balanced_groups_cover_everything() {
        let items = vec![5usize, 1, 1, 1, 9, 2, 2];
        for parts in 1..10 {
            let g = balanced_groups(&items, parts, |x| *x);
            assert!(g.len() <= parts.max(1));
            assert_eq!(g.concat(), items);
        }
        assert_eq!(balanced_groups::<usize>(&[], 4, |x| *x).len(), 1);
    }
}
