//! The C ABI that Python reaches through cffi.
//!
//! Rules that keep this boundary boring and safe:
//! * Only plain C types cross: pointers + lengths, integers. Many texts travel
//!   as ONE concatenated UTF-8 buffer plus `n + 1` byte offsets (u64).
//! * Every function returns a status code (0 = OK, negative = error, see
//!   `NBPE_*` below); results are written through out-pointers.
//! * Results live in Rust-allocated buffers. Python copies them out and then
//!   MUST hand them back to `nbpe_free_u32` / `nbpe_free_u64` (memory must be
//!   freed by the allocator that allocated it).
//! * Trainer and Encoder are opaque handles: created by `*_new`, released by
//!   `*_free`; Python never looks inside.
//! * A panic must never unwind into C (that is undefined behaviour), so every
//!   entry point runs inside `catch_unwind` and turns a panic into
//!   `NBPE_ERR_PANIC`.
//!
//! # Safety (the contract for every `unsafe extern "C"` function here)
//! Pointers must be NULL or valid for the stated lengths; `offsets` must
//! have `n + 1` entries; handles must come from the matching `*_new` and not
//! be used after `*_free`; a handle must not be used from two threads at once
//! while one of them calls `nbpe_trainer_feed`. Buffers returned by this
//! library must be freed exactly once, with their exact length.
#![allow(clippy::missing_safety_doc)] // documented once, above

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::slice;

use crate::encode::Encoder;
use crate::split::Splitter;
use crate::train::{Trainer, MAX_MERGES};

pub const NBPE_OK: i32 = 0;
/// A required pointer was NULL.
pub const NBPE_ERR_NULL: i32 = -1;
/// A text was not valid UTF-8.
pub const NBPE_ERR_UTF8: i32 = -2;
/// `num_merges` > `u32::MAX - 256` (the last token id would not fit in a `u32`).
pub const NBPE_ERR_NUM_MERGES: i32 = -3;
/// A merge referred to a token id that did not exist yet.
pub const NBPE_ERR_BAD_MERGE: i32 = -4;
/// Offsets were not non-decreasing or pointed past the buffer.
pub const NBPE_ERR_OFFSETS: i32 = -5;
/// Rust panicked (a bug): caught at the boundary.
pub const NBPE_ERR_PANIC: i32 = -99;

/// Run `f`, turning a panic into NBPE_ERR_PANIC.
fn guard(f: impl FnOnce() -> i32) -> i32 {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(NBPE_ERR_PANIC)
}

/// View (ptr, len) as a byte slice; NULL is fine when len == 0.
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        Some(&[])
    } else if ptr.is_null() {
        None
    } else {
        Some(slice::from_raw_parts(ptr, len))
    }
}

/// Decode the (buffer, offsets) calling convention into `n` string slices.
unsafe fn texts<'a>(
    buf: *const u8,
    buf_len: usize,
    offsets: *const u64,
    n: usize,
) -> Result<Vec<&'a str>, i32> {
    let buf = bytes(buf, buf_len).ok_or(NBPE_ERR_NULL)?;
    if offsets.is_null() {
        return Err(NBPE_ERR_NULL);
    }
    let offs = slice::from_raw_parts(offsets, n + 1);
    let mut out = Vec::with_capacity(n);
    for w in offs.windows(2) {
        let (lo, hi) = (w[0] as usize, w[1] as usize);
        if lo > hi || hi > buf.len() {
            return Err(NBPE_ERR_OFFSETS);
        }
        out.push(std::str::from_utf8(&buf[lo..hi]).map_err(|_| NBPE_ERR_UTF8)?);
    }
    Ok(out)
}

/// Hand a Vec to C as (ptr, len); the boxed slice has capacity == len, so
/// `nbpe_free_*` can rebuild it from (ptr, len) alone.
unsafe fn give<T>(v: Vec<T>, out_ptr: *mut *mut T, out_len: *mut usize) {
    let b = v.into_boxed_slice();
    *out_len = b.len();
    *out_ptr = Box::into_raw(b) as *mut T;
}

unsafe fn take_back<T>(ptr: *mut T, len: usize) {
    if !ptr.is_null() {
        drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)));
    }
}

/// Free a u32 buffer returned by this library.
#[no_mangle]
pub unsafe extern "C" fn nbpe_free_u32(ptr: *mut u32, len: usize) {
    let _ = catch_unwind(AssertUnwindSafe(|| take_back(ptr, len)));
}

/// Free a u64 buffer returned by this library.
#[no_mangle]
pub unsafe extern "C" fn nbpe_free_u64(ptr: *mut u64, len: usize) {
    let _ = catch_unwind(AssertUnwindSafe(|| take_back(ptr, len)));
}

/// Split one UTF-8 text. Writes chunk boundaries as CODE POINT offsets
/// (`0, end_1, ..., end_k`, so k + 1 values; Python slices its `str` with them).
#[no_mangle]
pub unsafe extern "C" fn nbpe_split(
    text: *const u8,
    len: usize,
    out_offsets: *mut *mut u64,
    out_n: *mut usize,
) -> i32 {
    guard(|| {
        if out_offsets.is_null() || out_n.is_null() {
            return NBPE_ERR_NULL;
        }
        let Some(b) = bytes(text, len) else {
            return NBPE_ERR_NULL;
        };
        let Ok(s) = std::str::from_utf8(b) else {
            return NBPE_ERR_UTF8;
        };
        let mut offs = vec![0u64];
        let mut chars = 0u64;
        for chunk in Splitter::new(s) {
            chars += chunk.chars().count() as u64;
            offs.push(chars);
        }
        give(offs, out_offsets, out_n);
        NBPE_OK
    })
}

/// Opaque trainer handle. `num_threads == 0` means "all available cores".
/// Returns NULL only if Rust panicked.
#[no_mangle]
pub extern "C" fn nbpe_trainer_new(num_threads: usize) -> *mut Trainer {
    catch_unwind(|| Box::into_raw(Box::new(Trainer::new(num_threads))))
        .unwrap_or(std::ptr::null_mut())
}

#[no_mangle]
pub unsafe extern "C" fn nbpe_trainer_free(t: *mut Trainer) {
    if !t.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(t))));
    }
}

/// Count the chunks of `n` texts (buffer + n + 1 offsets).
#[no_mangle]
pub unsafe extern "C" fn nbpe_trainer_feed(
    t: *mut Trainer,
    buf: *const u8,
    buf_len: usize,
    offsets: *const u64,
    n: usize,
) -> i32 {
    guard(|| {
        let Some(t) = t.as_mut() else {
            return NBPE_ERR_NULL;
        };
        match texts(buf, buf_len, offsets, n) {
            Ok(ts) => {
                t.feed(&ts);
                NBPE_OK
            }
            Err(e) => e,
        }
    })
}

/// Number of distinct chunks counted so far (0 for a NULL handle).
#[no_mangle]
pub unsafe extern "C" fn nbpe_trainer_num_unique_chunks(t: *const Trainer) -> usize {
    catch_unwind(AssertUnwindSafe(|| {
        t.as_ref().map_or(0, |t| t.num_unique_chunks())
    }))
    .unwrap_or(0)
}

/// Learn up to `num_merges` merges (merge `i` creates token id `256 + i`; fewer
/// if the text runs out of pairs). Writes them flattened as
/// `[a0, b0, a1, b1, ...]` (2 * merges values).
#[no_mangle]
pub unsafe extern "C" fn nbpe_trainer_train(
    t: *const Trainer,
    num_merges: u32,
    out_pairs: *mut *mut u32,
    out_len: *mut usize,
) -> i32 {
    guard(|| {
        let Some(t) = t.as_ref() else {
            return NBPE_ERR_NULL;
        };
        if out_pairs.is_null() || out_len.is_null() {
            return NBPE_ERR_NULL;
        }
        if num_merges > MAX_MERGES {
            return NBPE_ERR_NUM_MERGES;
        }
        let flat: Vec<u32> = t
            .train(num_merges)
            .into_iter()
            .flat_map(|(a, b)| [a, b])
            .collect();
        give(flat, out_pairs, out_len);
        NBPE_OK
    })
}

/// Build an encoder from `n_merges` merges given as `[a0, b0, a1, b1, ...]`.
/// On failure returns NULL and writes the status to `*err` (and, for a bad
/// merge, its index to `*bad_index`).
#[no_mangle]
pub unsafe extern "C" fn nbpe_encoder_new(
    pairs: *const u32,
    n_merges: usize,
    num_threads: usize,
    err: *mut i32,
    bad_index: *mut usize,
) -> *mut Encoder {
    let mut code = NBPE_OK;
    let mut bad = 0usize;
    let enc = catch_unwind(AssertUnwindSafe(|| {
        if n_merges > 0 && pairs.is_null() {
            code = NBPE_ERR_NULL;
            return std::ptr::null_mut();
        }
        let flat = if n_merges == 0 {
            &[][..]
        } else {
            slice::from_raw_parts(pairs, 2 * n_merges)
        };
        let merges: Vec<(u32, u32)> = flat.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        match Encoder::new(&merges, num_threads) {
            Ok(e) => Box::into_raw(Box::new(e)),
            Err(b) => {
                code = NBPE_ERR_BAD_MERGE;
                bad = b.index;
                std::ptr::null_mut()
            }
        }
    }))
    .unwrap_or_else(|_| {
        code = NBPE_ERR_PANIC;
        std::ptr::null_mut()
    });
    if !err.is_null() {
        *err = code;
    }
    if !bad_index.is_null() {
        *bad_index = bad;
    }
    enc
}

#[no_mangle]
pub unsafe extern "C" fn nbpe_encoder_free(e: *mut Encoder) {
    if !e.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(e))));
    }
}

/// Encode one UTF-8 text (on the calling thread).
#[no_mangle]
pub unsafe extern "C" fn nbpe_encode(
    e: *const Encoder,
    text: *const u8,
    len: usize,
    out_ids: *mut *mut u32,
    out_len: *mut usize,
) -> i32 {
    guard(|| {
        let Some(e) = e.as_ref() else {
            return NBPE_ERR_NULL;
        };
        if out_ids.is_null() || out_len.is_null() {
            return NBPE_ERR_NULL;
        }
        let Some(b) = bytes(text, len) else {
            return NBPE_ERR_NULL;
        };
        let Ok(s) = std::str::from_utf8(b) else {
            return NBPE_ERR_UTF8;
        };
        give(e.encode(s), out_ids, out_len);
        NBPE_OK
    })
}

/// Encode `n` texts in parallel. Writes all ids concatenated (`out_ids`,
/// `out_len`) and `n + 1` offsets into them (`out_offsets`; its length is n + 1).
#[no_mangle]
pub unsafe extern "C" fn nbpe_encode_batch(
    e: *const Encoder,
    buf: *const u8,
    buf_len: usize,
    offsets: *const u64,
    n: usize,
    out_ids: *mut *mut u32,
    out_len: *mut usize,
    out_offsets: *mut *mut u64,
) -> i32 {
    guard(|| {
        let Some(e) = e.as_ref() else {
            return NBPE_ERR_NULL;
        };
        if out_ids.is_null() || out_len.is_null() || out_offsets.is_null() {
            return NBPE_ERR_NULL;
        }
        let ts = match texts(buf, buf_len, offsets, n) {
            Ok(ts) => ts,
            Err(code) => return code,
        };
        let (ids, offs) = e.encode_batch(&ts);
        give(ids, out_ids, out_len);
        let mut n_offs = 0usize;
        give(offs, out_offsets, &mut n_offs);
        NBPE_OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_counts_merges_and_rejects_too_many() {
        unsafe {
            let t = nbpe_trainer_new(1);
            let text = b"hello hello";
            let offsets = [0u64, text.len() as u64];
            assert_eq!(
                nbpe_trainer_feed(t, text.as_ptr(), text.len(), offsets.as_ptr(), 1),
                NBPE_OK
            );
            let (mut p, mut n) = (std::ptr::null_mut(), 0usize);
            assert_eq!(nbpe_trainer_train(t, 2, &mut p, &mut n), NBPE_OK);
            assert_eq!(n, 2 * 2); // two merges, flattened
            nbpe_free_u32(p, n);
            // The last token id, 256 + num_merges - 1, must fit in a u32.
            assert_eq!(
                nbpe_trainer_train(t, MAX_MERGES + 1, &mut p, &mut n),
                NBPE_ERR_NUM_MERGES
            );
            assert_eq!(
                nbpe_trainer_train(t, u32::MAX, &mut p, &mut n),
                NBPE_ERR_NUM_MERGES
            );
            nbpe_trainer_free(t);
        }
    }
}
