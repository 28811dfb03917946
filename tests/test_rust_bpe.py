"""Tests for the Rust BPE engine (``rust/`` -> the ``nanochat_bpe`` package).

Three independent references keep the engine honest:
* the Python ``regex`` module for splitting,
* a tiny pure-Python BPE (below) for training and encoding,
* Karpathy's ``rustbpe`` for training on a bigger text.
"""

import random

import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nanochat_bpe as nb
import tiktoken

PATTERN = nb.SPLIT_PATTERN
COMPILED = regex.compile(PATTERN)
FAST = settings(deadline=None, max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
ENCODE = settings(deadline=None, max_examples=500, suppress_health_check=[HealthCheck.too_slow])


def test_pattern_is_nanochats():
    assert PATTERN == (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
    )


# ----------------------------------------------------------------------------- split

# An alphabet that makes the tricky cases common: runs of mixed whitespace
# (incl. Unicode spaces and \r\n), contractions (incl. 'ſ, the case-folding
# surprise), digits of several scripts, combining marks, CJK, emoji, controls.
TRICKY = list(
    " \t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u2028\u3000\x1c\x00"
    "'''sStTdDmMlLvVeErRſKkK"
    "aZé中文ﬅ"
    "0123٣४⅓²"
    ".,!?-_\"()[]{}@#$%^&*/\\|~`<>+=;:"
    "\u0301\u0308\u200d\ufe0f🙂👍🏽"
)
tricky_text = st.text(alphabet=st.sampled_from(TRICKY), max_size=60)
any_text = st.text(max_size=80)  # every category hypothesis knows (no lone surrogates: st.text excludes Cs)


def check_split(s):
    assert nb.split(s) == COMPILED.findall(s)


@FAST
@given(any_text)
def test_split_matches_regex_on_any_unicode(s):
    check_split(s)


@FAST
@given(tricky_text)
def test_split_matches_regex_on_tricky_text(s):
    check_split(s)


@FAST
@given(st.binary(max_size=80))
def test_split_matches_regex_on_decoded_bytes(b):
    check_split(b.decode("utf-8", errors="replace"))
    check_split(b.decode("latin-1"))


@pytest.mark.parametrize(
    "s",
    [
        "",
        " ",
        "  ",
        "\n",
        "\r\n",
        " \r\n ",
        "a  b",
        "a \n\n b",
        "x   ",
        "I'm you'LL they'Ve we'RE it'ſ 'K",
        "''s",
        "don't!!!\n\n\nok",
        "12345 ٣٣٣ 1.5e10",
        " !!",
        " \u3000x",
        "\t\u00a0y",
        "e\u0301te\u0301",
        "中文字符 and ASCII",
    ],
)
def test_split_examples(s):
    check_split(s)


def test_split_long_whitespace_and_text():
    s = "hello" + " " * 10_000 + "world\n" * 1000 + "\n" * 5000 + "end"
    check_split(s)


def test_split_cleans_surrogates():
    # tiktoken's rule: a pair stored as two code units is its character, a lone surrogate is U+FFFD
    assert nb.split("a\ud800b") == COMPILED.findall("a\ufffdb") == ["a", "\ufffdb"]
    assert nb.split("x\ud83d" + "\ude00 y") == nb.split("x😀 y") == ["x", "😀", " y"]
    assert nb.fix_surrogates("\ude00\ud83d \udc80") == "\ufffd\ufffd \ufffd"  # wrong order: two lone ones


# ----------------------------------------------------------------------------- reference BPE
# The course's plain-Python BPE (chapter 00): recounts every pair after every merge. Slow but obviously right.
from nanochat.tokenizer import train_bpe, PythonBPE


def ref_train(texts, num_merges): return train_bpe(texts, num_merges)


def ref_encode(text, merges): return PythonBPE(merges).encode(text)


def make_corpus(n_words, seed):
    """Deterministic text with the features that matter: repeated words, spaces,
    newlines, contractions, numbers, punctuation, some non-ASCII."""
    rng = random.Random(seed)
    vocab = ["the", "a", "of", "token", "tokenizer", "byte", "pair", "encoding", "aaa", "aaaa", "banana",
             "don't", "we'll", "I'M", "naïve", "café", "中文", "数据", "über", "ſtill", "x"]
    seps = [" ", " ", " ", "  ", "\n", "\n\n", ", ", ". ", "! ", " - ", "\t", " \n "]
    parts = []
    for _ in range(n_words):
        r = rng.random()
        if r < 0.1:
            parts.append(str(rng.randint(0, 99999)))
        elif r < 0.15:
            parts.append("".join(rng.choice("abcdefgh") for _ in range(rng.randint(1, 8))))
        else:
            parts.append(rng.choice(vocab))
        parts.append(rng.choice(seps))
    return "".join(parts)


@pytest.fixture(scope="module")
def small_corpus():
    text = make_corpus(1500, seed=0)  # ~ 8 KB
    lines = text.split("\n")
    return lines


@pytest.fixture(scope="module")
def trained(small_corpus):
    t = nb.Trainer(num_threads=2)
    t.feed(small_corpus[: len(small_corpus) // 2])
    t.feed(small_corpus[len(small_corpus) // 2 :])  # streaming in two batches
    merges = t.train(200)
    return merges, nb.Encoder(merges, num_threads=2)


def test_training_matches_reference(small_corpus, trained):
    merges, _ = trained
    ref = ref_train(small_corpus, 200)
    assert len(merges) == len(ref) == 200
    assert merges == ref


@pytest.mark.parametrize("threads", [1, 2, 3, 7])
def test_training_independent_of_threads_and_batching(small_corpus, trained, threads):
    t = nb.Trainer(num_threads=threads)
    for i in range(0, len(small_corpus), 37):
        t.feed(small_corpus[i : i + 37])
    assert t.train(200) == trained[0]


def test_num_unique_chunks(small_corpus):
    t = nb.Trainer()
    t.feed(small_corpus)
    assert t.num_unique_chunks == len({c for line in small_corpus for c in COMPILED.findall(line)})


def test_training_runs_out_of_pairs():
    t = nb.Trainer()
    t.feed(["ab ab ab"])
    merges = t.train(1000)
    assert merges == [(97, 98), (32, 256)]  # 'ab', then ' ab'; nothing left to merge
    assert nb.Trainer().train(44) == []  # nothing fed at all


def test_train_argument_counts_merges():
    """`train(n)` learns n merges: not a vocabulary size (no 256 bytes, no specials added or subtracted)."""
    t = nb.Trainer()
    t.feed(["hello hello world"])
    assert t.train(0) == []
    assert len(t.train(1)) == 1 and len(t.train(3)) == 3
    assert t.train(3)[:1] == t.train(1) == [(101, 108)]  # 'el': 2 times, tied with 'he', 'll', 'lo'; the smallest pair wins


def test_overlapping_pairs_merge_left_to_right():
    t = nb.Trainer()
    t.feed(["aaa"])
    merges = t.train(2)
    assert merges == [(97, 97), (256, 97)]  # "aaa" -> [aa, a] -> [aaa]
    e = nb.Encoder(merges[:1])
    assert e.encode("aaaaa") == [256, 256, 97]


corpus_words = st.lists(st.sampled_from(make_corpus(400, seed=1).split(" ")), max_size=40).map(" ".join)


@ENCODE
@given(st.one_of(tricky_text, any_text, corpus_words))
def test_encode_matches_reference_and_roundtrips(trained, s):
    merges, enc = trained
    ids = enc.encode(s)
    assert ids == ref_encode(s, merges)
    assert enc.decode_bytes(ids) == s.encode("utf-8")
    assert enc.decode(ids) == s


# ----------------------------------------------------------------------------- long chunks (the heap loop)
# Chunks of >= 128 bytes take encode.rs's linked-list + heap loop; it must give exactly the reference's ids.

def long_chunk_text():
    "One unbroken chunk of 128..600 bytes from a few letters (words of the corpus' merges overlap a lot), maybe a prefix."
    letters = st.text(alphabet=st.sampled_from("aaaabnt"), min_size=128, max_size=600)
    return st.tuples(st.sampled_from(["", " ", "'", "(", "\n"]), letters).map("".join)


@ENCODE
@given(st.one_of(long_chunk_text(), st.lists(st.sampled_from(make_corpus(300, seed=3).split(" ")), max_size=200).map("".join)))
def test_long_chunks_match_reference(trained, s):
    merges, enc = trained
    assert enc.encode(s) == ref_encode(s, merges)


def random_letters(n, alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"):
    rng = random.Random(n)
    return "".join(rng.choice(alphabet) for _ in range(n))


PATHOLOGICAL = {  # one unbroken chunk each (or nearly): what the split cannot cut
    "letter": lambda n: "a" * n,
    "newlines": lambda n: "\n" * n,                 # one \s*[\r\n] chunk
    "spaces": lambda n: " " * n + "x",              # one chunk, then " x"
    "letters": lambda n: random_letters(n, "abcdefAB"),  # a base64-like blob (few letters: so that merges apply)
    "ab": lambda n: "ab" * (n // 2),
    "word": lambda n: "tokenizer" * (n // 9),
}


@pytest.fixture(scope="module")
def patho_merges(small_corpus):
    "Merges that apply to the pathological inputs: learned from the corpus plus short samples of each kind."
    t = nb.Trainer(num_threads=2)
    t.feed(small_corpus + [make(n) for make in PATHOLOGICAL.values() for n in (8, 16, 24, 40, 64)] * 5)
    return t.train(300)


@pytest.mark.parametrize("kind", list(PATHOLOGICAL))
def test_pathological_chunks_match_reference(patho_merges, kind):
    # 2,000 bytes: enough for the heap loop (>= 128) and many merges; the pure-Python reference is quadratic, and the
    # time at 100K-200K characters is measured against tiktoken by bench/tokenizer.py, not asserted here
    enc, s = nb.Encoder(patho_merges), PATHOLOGICAL[kind](2000)
    ids = enc.encode(s)
    assert len(ids) < 0.75 * len(s.encode())  # the merges do apply: these are real tests of the merge loop
    assert ids == ref_encode(s, patho_merges)
    assert enc.encode_batch([s, "x" + s, s]) == [ids, enc.encode("x" + s), ids]
    assert enc.decode(ids) == s


def test_long_run_known_answer():
    # aa -> 256, (aa)(aa) -> 257: 100,003 a's are 25,000 tokens "aaaa", then "aa" and "a" (leftmost first)
    enc = nb.Encoder([(97, 97), (256, 256)])
    assert enc.encode("a" * 100_003) == [257] * 25_000 + [256, 97]
    assert enc.encode_batch(["a" * 100_003, "a" * 129]) == [[257] * 25_000 + [256, 97], [257] * 32 + [97]]


@settings(deadline=None, max_examples=30)
@given(st.lists(st.one_of(tricky_text, corpus_words), max_size=20))
def test_encode_batch_equals_encode(trained, texts):
    _, enc = trained
    assert enc.encode_batch(texts) == [enc.encode(t) for t in texts]


def test_encode_batch_many_texts(small_corpus, trained):
    merges, _ = trained
    enc = nb.Encoder(merges, num_threads=3)
    assert enc.encode_batch(small_corpus) == [ref_encode(t, merges) for t in small_corpus]
    assert enc.encode_batch([]) == []


# ----------------------------------------------------------------------------- vs rustbpe


def test_training_matches_rustbpe():
    """rustbpe (Karpathy) picks the most frequent pair and breaks ties by the
    smallest pair -- the same rule as ours -- so the merges must be identical."""
    rustbpe = pytest.importorskip("rustbpe")
    texts = make_corpus(40_000, seed=2).split("\n")  # ~ 200 KB
    ref = rustbpe.Tokenizer()
    ref.train_from_iterator(iter(texts), 256 + 1000, pattern=PATTERN)  # rustbpe's vocab_size: 256 bytes + merges
    # rustbpe exposes token bytes -> id; rebuild its merges as pairs of ids.
    ranks = dict(ref.get_mergeable_ranks())
    by_id = sorted(ranks.items(), key=lambda kv: kv[1])
    t = nb.Trainer()
    t.feed(texts)
    merges = t.train(1000)
    enc = nb.Encoder(merges)
    ours = enc.token_bytes
    assert [b for b, _ in by_id] == ours
    # and the encodings agree too
    sample = texts[:200]
    assert [ref.encode(x) for x in sample] == enc.encode_batch(sample)


# ----------------------------------------------------------------------------- errors


def test_num_merges_out_of_range():
    t = nb.Trainer()
    t.feed(["hello"])
    with pytest.raises(ValueError, match=r"num_merges must be ≥ 0 .*got -1$"):
        t.train(-1)
    with pytest.raises(ValueError, match=rf"< 2\*\*32 - 256 .*got {2**32 - 256}$"):
        t.train(2**32 - 256)  # merge 2**32 - 257 would create token id 2**32: not a uint32
    assert t.train(2**32 - 257) == t.train(4)  # the largest allowed; "hello" has only 4 pairs to merge
    with pytest.raises(TypeError, match="num_merges must be an int, got 300.0"):
        t.train(300.0)
    with pytest.raises(TypeError, match="num_merges must be an int"):
        t.train(True)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_threads"):
        nb.Trainer(num_threads=0)
    with pytest.raises(ValueError, match="merge 0"):
        nb.Encoder([(1, 256)])
    with pytest.raises(TypeError):
        nb.Trainer().feed("a single string, not a list")


# ----------------------------------------------------------------------------- text that is not valid Unicode

SURROGATES = [  # (text holding surrogates, the valid text it stands for: tiktoken's rule)
    ("a\ud800b", "a\ufffdb"),                              # a lone high surrogate
    ("end \udc80", "end \ufffd"),                          # a lone low one, last
    ("the \ud83d" + "\ude00!", "the 😀!"),                  # a pair stored as two code units
    ("\ude00\ud83d x", "\ufffd\ufffd x"),                  # the wrong order: two lone ones
    ("\ud83d\ude00\ud83d", "😀\ufffd"),                     # a pair, then a lone one
]


@pytest.mark.parametrize("bad, good", SURROGATES)
def test_surrogates_encode_as_tiktoken_does(trained, bad, good):
    merges, enc = trained
    with pytest.raises(UnicodeEncodeError): bad.encode("utf-8")  # what used to escape from deep inside
    assert nb.fix_surrogates(bad) == good
    assert enc.encode(bad) == enc.encode(good) == ref_encode(good, merges)
    assert enc.encode_batch(["ok", bad, good]) == [enc.encode("ok"), enc.encode(good), enc.encode(good)]
    tt = tiktoken.Encoding("t", pat_str=PATTERN, mergeable_ranks={b: i for i, b in enumerate(enc.token_bytes)}, special_tokens={})
    assert tt.encode_ordinary(bad) == enc.encode(bad)


def test_surrogates_in_training_are_cleaned():
    t1, t2 = nb.Trainer(), nb.Trainer()
    t1.feed(["ok", "bad \udc80\udc80 and \ud83d\ude00\ud83d\ude00"])
    t2.feed(["ok", "bad \ufffd\ufffd and 😀😀"])
    assert t1.num_unique_chunks == t2.num_unique_chunks and t1.train(20) == t2.train(20)


@ENCODE
@given(any_text)
def test_valid_text_is_unchanged(s):
    assert nb.fix_surrogates(s) == s
