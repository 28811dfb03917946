//! The pre-tokenizer: cut text into chunks, exactly like
//! `regex.findall(SPLIT_PATTERN, text)` -- but without a regex engine.
//!
//! ```text
//! '(?i:[sdmt]|ll|ve|re)          1. contractions: 's 'd 'm 't 'll 've 're
//! |[^\r\n\p{L}\p{N}]?+\p{L}+     2. a word, maybe with one leading non-letter (" hello", "¿Qué")
//! |\p{N}{1,2}                    3. one or two digits
//! | ?[^\s\p{L}\p{N}]++[\r\n]*    4. punctuation/symbols, maybe a leading space, trailing newlines
//! |\s*[\r\n]                     5. whitespace up to and including the last newline
//! |\s+(?!\S)                     6. whitespace, leaving the last char for the next word
//! |\s+                           7. any other whitespace
//! ```
//!
//! How a regex engine runs this: at the current position, try alternatives
//! 1..7 in order and take the FIRST one that matches (leftmost-first, not
//! longest). The chunk ends where that alternative ends; continue from there.
//! Every character is a letter, a number, whitespace, or "other", and each
//! of those starts at least one alternative, so the chunks tile the text.
//!
//! Below, each alternative is a few lines of plain code over code points.
//! The fiddly parts are the regex features:
//! * `?+` and `++` are *possessive*: they never give characters back.
//! * `\s*[\r\n]` and `\s+(?!\S)` *backtrack*: the greedy `\s*`/`\s+` first
//!   grabs the whole whitespace run, then gives characters back until the rest
//!   of the pattern fits. We compute where that ends directly.
//! * `(?i:...)`: case-insensitive. Besides upper/lower case ASCII, Unicode
//!   case folding makes `s` also match U+017F LATIN SMALL LETTER LONG S (ſ).
//!   We found the complete set by asking `regex` about every code point:
//!   {s S ſ d D m M t T} for `[sdmt]`, and only ASCII case pairs for l, v, e, r.

use crate::unicode_tables::{CLASS_RANGES, LETTER, NUMBER, SPACE};

/// The pattern this module implements (for documentation and the Python side).
pub const SPLIT_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";

/// Class of every ASCII character, computed at compile time from the table.
/// ASCII is most of real text, so this fast path matters.
static ASCII_CLASS: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < CLASS_RANGES.len() {
        let (first, last, class) = CLASS_RANGES[i];
        let mut cp = first;
        while cp <= last && cp < 128 {
            t[cp as usize] = class;
            cp += 1;
        }
        i += 1;
    }
    t
};

/// LETTER, NUMBER, SPACE, or 0 ("other": punctuation, symbols, marks, ...).
#[inline(always)]
pub fn class_of(cp: u32) -> u8 {
    if cp < 128 {
        ASCII_CLASS[cp as usize]
    } else {
        class_of_slow(cp)
    }
}

#[inline(never)]
fn class_of_slow(cp: u32) -> u8 {
    // Binary search for the last range starting at or before `cp`.
    let i = CLASS_RANGES.partition_point(|&(first, _, _)| first <= cp);
    if i == 0 {
        return 0;
    }
    let (_, last, class) = CLASS_RANGES[i - 1];
    if cp <= last {
        class
    } else {
        0
    }
}

/// Decode the code point starting at byte `i` of valid UTF-8; returns it and
/// its length in bytes (1..=4). Valid UTF-8 is guaranteed because we only
/// ever split `&str`.
#[inline(always)]
fn decode(s: &[u8], i: usize) -> (u32, usize) {
    let b0 = s[i] as u32;
    if b0 < 0x80 {
        (b0, 1)
    } else if b0 < 0xE0 {
        (((b0 & 0x1F) << 6) | (s[i + 1] as u32 & 0x3F), 2)
    } else if b0 < 0xF0 {
        let cp = ((b0 & 0x0F) << 12) | ((s[i + 1] as u32 & 0x3F) << 6) | (s[i + 2] as u32 & 0x3F);
        (cp, 3)
    } else {
        let cp = ((b0 & 0x07) << 18)
            | ((s[i + 1] as u32 & 0x3F) << 12)
            | ((s[i + 2] as u32 & 0x3F) << 6)
            | (s[i + 3] as u32 & 0x3F);
        (cp, 4)
    }
}

/// Characters that `(?i:[sdmt])` accepts.
#[inline]
fn is_sdmt(cp: u32) -> bool {
    matches!(
        cp,
        0x73 | 0x53 | 0x17F | 0x64 | 0x44 | 0x6D | 0x4D | 0x74 | 0x54
    )
}

/// ASCII letter `cp` equals `lower` ignoring case (`lower` is lowercase).
#[inline]
fn is_ci(cp: u32, lower: u8) -> bool {
    cp == lower as u32 || cp == (lower - 32) as u32
}

/// Iterator over the chunks of a text, as `&str` slices of it.
pub struct Splitter<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Splitter<'a> {
    pub fn new(text: &'a str) -> Self {
        Splitter { text, pos: 0 }
    }

    /// End (byte offset) of the run of characters of class `class`
    /// starting at byte `i`.
    #[inline(always)]
    fn run_end(s: &[u8], mut i: usize, class: u8) -> usize {
        while i < s.len() {
            let (cp, len) = decode(s, i);
            if class_of(cp) != class {
                break;
            }
            i += len;
        }
        i
    }

    /// Where the chunk that starts at byte `i` ends. This is the whole pattern.
    #[inline]
    fn chunk_end(s: &[u8], i: usize) -> usize {
        let n = s.len();
        let (c0, l0) = decode(s, i);
        let k0 = class_of(c0);
        let j = i + l0; // byte after c0

        // 1. '(?i:[sdmt]|ll|ve|re)
        if c0 == b'\'' as u32 && j < n {
            let (c1, l1) = decode(s, j);
            if is_sdmt(c1) {
                return j + l1;
            }
            if j + l1 < n {
                let (c2, l2) = decode(s, j + l1);
                if (is_ci(c1, b'l') && is_ci(c2, b'l'))
                    || (is_ci(c1, b'v') && is_ci(c2, b'e'))
                    || (is_ci(c1, b'r') && is_ci(c2, b'e'))
                {
                    return j + l1 + l2;
                }
            }
        }

        // 2. [^\r\n\p{L}\p{N}]?+\p{L}+
        if k0 == LETTER {
            // The optional prefix can't take a letter, so it matches empty.
            return Self::run_end(s, j, LETTER);
        }
        if k0 != NUMBER && c0 != b'\r' as u32 && c0 != b'\n' as u32 && j < n {
            // c0 is the optional prefix; possessive, so if no letter follows,
            // this alternative fails (it would not retry with an empty prefix,
            // and an empty prefix could not match anyway since c0 is no letter).
            let (c1, l1) = decode(s, j);
            if class_of(c1) == LETTER {
                return Self::run_end(s, j + l1, LETTER);
            }
        }

        // 3. \p{N}{1,2}
        if k0 == NUMBER {
            if j < n {
                let (c1, l1) = decode(s, j);
                if class_of(c1) == NUMBER {
                    return j + l1;
                }
            }
            return j;
        }

        // 4. ' ?[^\s\p{L}\p{N}]++[\r\n]*'  ("other" characters have class 0)
        let start = if c0 == b' ' as u32 { j } else { i };
        if start < n {
            let (c, l) = decode(s, start);
            if class_of(c) == 0 {
                let mut e = Self::run_end(s, start + l, 0);
                while e < n && (s[e] == b'\r' || s[e] == b'\n') {
                    e += 1;
                }
                return e;
            }
        }

        // Only whitespace is left: every other character was taken above.
        debug_assert_eq!(k0, SPACE);
        // Scan the maximal whitespace run once, remembering where the last
        // newline ends and where the last character starts.
        let mut e = i;
        let mut after_last_newline = None;
        let mut last_char_start = i;
        while e < n {
            let (c, l) = decode(s, e);
            if class_of(c) != SPACE {
                break;
            }
            last_char_start = e;
            e += l;
            if c == b'\r' as u32 || c == b'\n' as u32 {
                after_last_newline = Some(e);
            }
        }
        // 5. \s*[\r\n]: backtrack to the last newline in the run.
        if let Some(end) = after_last_newline {
            return end;
        }
        // 6. \s+(?!\S): the whole run if the text ends here; otherwise give back
        //    the last character (it then precedes whitespace, so (?!\S) holds),
        //    as long as at least one character remains.
        if e == n {
            return e;
        }
        if last_char_start > i {
            return last_char_start;
        }
        // 7. \s+  (a single whitespace char followed by a non-space)
        e
    }
}

impl<'a> Iterator for Splitter<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        let s = self.text.as_bytes();
        if self.pos >= s.len() {
            return None;
        }
        let start = self.pos;
        let end = Self::chunk_end(s, start);
        self.pos = end;
        // Chunk ends always fall on code point boundaries.
        Some(&self.text[start..end])
    }
}

/// Split `text` into chunks (convenience wrapper around [`Splitter`]).
pub fn split(text: &str) -> Vec<&str> {
    Splitter::new(text).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(class_of('a' as u32), LETTER);
        assert_eq!(class_of('7' as u32), NUMBER);
        assert_eq!(class_of(' ' as u32), SPACE);
        assert_eq!(class_of('!' as u32), 0);
        assert_eq!(class_of('é' as u32), LETTER);
        assert_eq!(class_of('中' as u32), LETTER);
        assert_eq!(class_of('٣' as u32), NUMBER); // Arabic-Indic digit three
        assert_eq!(class_of(0x3000), SPACE); // ideographic space
        assert_eq!(class_of(0x301), 0); // combining acute accent: a mark, not a letter
    }

    #[test]
    fn examples() {
        // Expected outputs were produced with Python's regex.findall.
        assert_eq!(split("Hello world"), ["Hello", " world"]);
        assert_eq!(
            split("I'm can't WE'LL"),
            ["I", "'m", " can", "'t", " WE", "'LL"]
        );
        assert_eq!(split("x'ſ"), ["x", "'ſ"]);
        assert_eq!(split("12345"), ["12", "34", "5"]);
        assert_eq!(split("a  b"), ["a", " ", " b"]);
        assert_eq!(split("a   \n\n  b"), ["a", "   \n\n", " ", " b"]);
        assert_eq!(split("end  "), ["end", "  "]);
        assert_eq!(split("x  !!?\n\ny"), ["x", " ", " !!?\n\n", "y"]);
        assert_eq!(split("\r\n"), ["\r\n"]);
        assert_eq!(split("¿Qué?"), ["¿Qué", "?"]);
        assert_eq!(split("'hello'"), ["'hello", "'"]);
        assert_eq!(split(""), Vec::<&str>::new());
    }

    #[test]
    fn chunks_tile_the_text() {
        let t = "Mixed: 中文, ١٢٣٤, émoji 🙂🙂 \t\n tabs\u{3000}and 'quotes' don't";
        assert_eq!(split(t).concat(), t);
    }
}
