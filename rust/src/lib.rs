//! nanochat_bpe: a byte-level BPE tokenizer engine, built from `std` only.
//!
//! Read it in this order:
//! 1. [`split`]: cut text into chunks (a hand-written version of the
//!    GPT-4-style regex); uses the generated [`unicode_tables`].
//! 2. [`hash`]: a small fast hasher, because everything below is hash maps.
//! 3. [`train`]: count chunks in parallel, then learn merges with an
//!    incrementally-updated pair count table and a lazy max-heap.
//! 4. [`encode`]: apply merges to new text, with caches.
//! 5. [`ffi`]: the C functions Python calls through cffi.

pub mod encode;
pub mod ffi;
pub mod hash;
pub mod split;
pub mod train;
pub mod unicode_tables;

pub use encode::Encoder;
pub use split::{split, Splitter, SPLIT_PATTERN};
pub use train::Trainer;
