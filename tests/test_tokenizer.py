"""Tests of nanochat.tokenizer: the engine against the pure-Python reference, round trips, conversations, the file format.

Run: .venv/bin/pytest tests/test_tokenizer.py   (about a minute on 2 cores; needs ../shared/data/mirror for the corpus tests)
"""
import json
from pathlib import Path
import pytest
import pyarrow.parquet as pq
from hypothesis import given, settings, strategies as st, HealthCheck

import nanochat.tokenizer as T
from nanochat.dataset import MAX_SHARD
from nanochat.tokenizer import (Tokenizer, PythonBPE, train_bpe, train_merges, ranks_to_merges, get_tokenizer, SPECIAL_TOKENS, bytes_per_token, train_rustbpe)

MIRROR = Path(__file__).resolve().parents[2]/"shared"/"data"/"mirror"
VAL_SHARD = MAX_SHARD  # the dataset's last shard, pinned as the validation split (the mirror holds it)


@pytest.fixture(scope="session")
def val_texts(tmp_path_factory):
    "The documents of the mirror's validation shard, downloaded through the course's own code from a local mirror server."
    if not MIRROR.is_dir(): pytest.skip(f"offline mirror not found at {MIRROR}")
    from nanochat.dataset import use_mirror, download, hf_dataset_url, FINEWEB_REPO, shard_name, check_parquet
    dest = tmp_path_factory.mktemp("data")/shard_name(VAL_SHARD)
    with use_mirror(MIRROR):
        download(hf_dataset_url(FINEWEB_REPO, shard_name(VAL_SHARD)), dest, verify=check_parquet, quiet=True)
    return pq.read_table(dest, columns=["text"]).column("text").to_pylist()


def first_chars(texts, n):
    out, total = [], 0
    for t in texts:
        out.append(t); total += len(t)
        if total >= n: break
    return out


@pytest.fixture(scope="session")
def megabyte(val_texts): return first_chars(val_texts, 1_000_000)


@pytest.fixture(scope="session")
def tok(megabyte):
    "A 2,048-token tokenizer trained with the primary engine on ~1 MB of validation text."
    return Tokenizer.train_from_iterator(megabyte, 2048, show_progress=False)


# ---- the pure-Python reference ----

def test_train_bpe_small_known_answer():
    # chunks "aaab" and " aaab". Counts: (a,a)=4, (a,b)=2, ( ,a)=1 -> (97, 97) becomes 256.
    # Then [256 a b], [' ' 256 a b]: (256,a)=2 ties (a,b)=2 -> the smaller pair (97, 98) becomes 257; then (256, 257).
    merges = train_bpe(["aaab aaab"], 10)
    # then (' ', 258) -> 259; after that every chunk is one token and training stops early
    assert merges == [(97, 97), (97, 98), (256, 257), (32, 258)]
    assert train_merges(["aaab aaab"], 10) == merges
    bpe = PythonBPE(merges)
    assert bpe.decode(bpe.encode("aaab aaab")) == "aaab aaab"


def test_tie_break_is_smallest_pair():
    # every pair occurs once: the smallest pair must win, for both engines
    text = ["zyxwvu"]
    assert train_bpe(text, 1) == [(ord("v"), ord("u"))] == train_merges(text, 1)
    assert train_merges(text, 1, engine="rustbpe") == [(ord("v"), ord("u"))]


def test_vocab_size_is_bytes_plus_merges_plus_specials():
    # vocab_size means the final vocabulary everywhere: every engine is asked for vocab_size - 256 - 9 merges
    for engine in ("nanochat_bpe", "rustbpe", "python"):
        t = Tokenizer.train_from_iterator(["aaab aaab"], 256 + 3 + 9, show_progress=False, engine=engine)
        assert t.merges == [(97, 97), (97, 98), (256, 257)], engine  # the first 3 of test_train_bpe_small_known_answer
        assert t.vocab_size == 268 == len(t.token_bytes) and t.get_bos_token_id() == 259, engine


def test_engine_learns_the_python_merges_on_a_megabyte(megabyte):
    # the acceptance test of the engine: same corpus -> exactly the same merges, in order (pure Python takes ~20 s here)
    assert sum(map(len, megabyte)) >= 1_000_000
    reference = train_bpe(megabyte, 200)
    assert len(reference) == 200
    assert train_merges(megabyte, 200) == reference
    assert train_merges(megabyte, 200, engine="rustbpe") == reference  # nanochat's engine agrees too


def test_ranks_to_merges_inverts_the_vocab(tok):
    ranked = [(b, i) for i, b in enumerate(tok.vocab)]
    assert ranks_to_merges(ranked) == tok.merges


# ---- encode / decode ----

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(s=st.text())
def test_decode_encode_round_trip(tok, s):
    assert tok.decode(tok.encode(s)) == s


def word_soup():
    "Texts made of common English words, digits, punctuation and whitespace: they exercise many merges."
    words = st.sampled_from(["the", " the", "The", " of", " and", "tion", " information", "ing", "'s", " don't", "12",
                             "345", ",", ".", "!", "\n", "\n\n", "  ", "\t", " (", ")", "é", "日本", "👋", "<|bos|>"])
    return st.lists(words, max_size=40).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(s=st.one_of(st.text(), word_soup()))
def test_engine_encode_equals_python_encode(tok, s):
    assert tok.encode(s) == PythonBPE(tok.merges).encode(s)


def test_batch_encode_equals_single(tok, val_texts):
    docs = val_texts[:64]
    assert tok.encode(docs, num_threads=2) == [tok.encode(d) for d in docs]
    assert tok.encode(docs, prepend="<|bos|>") == [[tok.get_bos_token_id()] + tok.encode(d) for d in docs]


def test_specials(tok):
    assert tok.vocab_size == 2048 == len(tok.token_bytes)
    assert [tok.encode_special(s) for s in SPECIAL_TOKENS] == list(range(2048 - 9, 2048))
    assert tok.get_bos_token_id() == 2048 - 9
    assert tok.get_bos_token_id() not in tok.encode("<|bos|>")  # text never turns into a special token
    assert tok.decode(tok.encode("hi", prepend="<|bos|>", append="<|assistant_end|>")) == "<|bos|>hi<|assistant_end|>"
    assert tok.id_to_token(tok.encode_special("<|user_start|>")) == "<|user_start|>"
    assert tok.token_bytes[:256].tolist() == [1] * 256 and tok.token_bytes[-9:].tolist() == [0] * 9
    assert tok.token_bytes[300].item() == len(tok.vocab[300])


def test_bad_inputs(tok):
    with pytest.raises(ValueError, match="unknown special token '<|eos|>'"): tok.encode("x", prepend="<|eos|>")
    with pytest.raises(ValueError, match="got 99999"): tok.encode("x", append=99999)
    with pytest.raises(ValueError, match="got -1"): tok.decode([1, -1])
    with pytest.raises(TypeError, match="str or a list of str"): tok.encode(b"bytes")
    with pytest.raises(ValueError, match="vocab_size must be > 265"): Tokenizer.train_from_iterator(["abc"], 265)
    with pytest.raises(ValueError, match="does not exist yet"): Tokenizer([(256, 97)])


def test_rustbpe_tiktoken_fallback_gives_the_same_tokenizer(monkeypatch, megabyte, tok):
    # without the Rust engine the course trains with rustbpe and encodes with tiktoken: same merges, same ids
    monkeypatch.setenv("NANOCHAT_BPE_ENGINE", "rustbpe")
    T.engine_name.cache_clear()
    try:
        fb = Tokenizer.train_from_iterator(megabyte, 2048, show_progress=False)
        assert fb.meta["engine"] == "rustbpe" and fb.merges == tok.merges
        docs = megabyte[:20]
        assert fb.encode(docs) == tok.encode(docs)
    finally:
        T.engine_name.cache_clear()


# ---- compression: same algorithm as rustbpe, same numbers ----

def test_compression_matches_rustbpe_at_vocab_8192(val_texts):
    train, held_out = val_texts[:-200], val_texts[-200:]
    ours = Tokenizer.train_from_iterator(train, 8192, show_progress=False)
    rb = train_rustbpe(train, len(ours.merges))
    a, b = bytes_per_token(ours.encode, held_out), bytes_per_token(rb.batch_encode, held_out)
    assert a > 3.0, f"an 8K English tokenizer compresses prose to > 3 bytes/token, got {a:.3f}"
    assert abs(a / b - 1) < 0.001, (a, b)


# ---- conversations ----

CONV = {"messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": [{"type": "text", "text": "Computing: "}, {"type": "python", "text": "2+2"},
                                      {"type": "python_output", "text": "4"}, {"type": "text", "text": "It is 4."}]},
    {"role": "user", "content": "Thanks"},
    {"role": "assistant", "content": "Welcome."}]}


def test_render_conversation_mask(tok):
    ids, mask = tok.render_conversation(CONV)
    assert len(ids) == len(mask) and set(mask) == {0, 1}
    S = tok.special_tokens
    expected = ([S["<|bos|>"]], 0), ([S["<|user_start|>"]], 0), (tok.encode("Be brief.\n\nWhat is 2+2?"), 0), \
               ([S["<|user_end|>"]], 0), ([S["<|assistant_start|>"]], 0), (tok.encode("Computing: "), 1), \
               ([S["<|python_start|>"]], 1), (tok.encode("2+2"), 1), ([S["<|python_end|>"]], 1), \
               ([S["<|output_start|>"]], 0), (tok.encode("4"), 0), ([S["<|output_end|>"]], 0), \
               (tok.encode("It is 4."), 1), ([S["<|assistant_end|>"]], 1), \
               ([S["<|user_start|>"]], 0), (tok.encode("Thanks"), 0), ([S["<|user_end|>"]], 0), \
               ([S["<|assistant_start|>"]], 0), (tok.encode("Welcome."), 1), ([S["<|assistant_end|>"]], 1)
    assert ids == [i for part, _ in expected for i in part]
    assert mask == [m for part, m in expected for _ in part]
    ids5, mask5 = tok.render_conversation(CONV, max_tokens=5)
    assert (ids5, mask5) == (ids[:5], mask[:5])
    assert CONV["messages"][0]["content"] == "Be brief."  # the input is not modified


def test_render_for_completion(tok):
    ids = tok.render_for_completion(CONV)
    assert ids[-1] == tok.encode_special("<|assistant_start|>")
    assert tok.decode(ids).endswith("<|user_start|>Thanks<|user_end|><|assistant_start|>")
    assert "Welcome" not in tok.decode(ids)  # the final answer is what the model must produce
    ending_in_user = {"messages": CONV["messages"][:-1]}
    assert tok.render_for_completion(ending_in_user) == ids


@pytest.mark.parametrize("messages, match", [
    ([], "no messages"),
    ([{"role": "bot", "content": "hi"}], "message 0: unknown role 'bot'"),
    ([{"role": "assistant", "content": "hi"}], "message 0: expected role 'user'"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "message 1: expected role 'assistant'"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "system", "content": "c"}],
     "message 2: expected role 'user', got 'system' \\(a system message is allowed only first"),
    ([{"role": "system", "content": "s"}], "system message must be followed by a user message"),
    ([{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}], "message 1: expected role 'user'"),
    ([{"role": "user", "content": ""}], "message 0 \\(user\\): empty content"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": []}], "message 1 \\(assistant\\): empty content"),
    ([{"role": "user", "content": [{"type": "text", "text": "q"}]}], "message 0 \\(user\\): content must be a str"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": [{"type": "image", "text": "x"}]}],
     "message 1 \\(assistant\\), part 0: must be"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": [{"type": "python", "text": ""}]}],
     "message 1 \\(assistant\\), part 0: empty 'python' text"),
    ([{"role": "user"}], "message 0: must be a dict with 'role' and 'content'"),
])
def test_malformed_conversations(tok, messages, match):
    with pytest.raises(ValueError, match=match): tok.render_conversation({"messages": messages})


def test_malformed_conversation_container(tok):
    with pytest.raises(ValueError, match="a conversation is a dict"): tok.render_conversation([{"role": "user", "content": "x"}])
    with pytest.raises(ValueError, match="with keys \\['turns'\\]"): tok.render_conversation({"turns": []})


def test_empty_tool_output_is_allowed(tok):
    conv = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [
        {"type": "python", "text": "print()"}, {"type": "python_output", "text": ""}, {"type": "text", "text": "ok"}]}]}
    ids, mask = tok.render_conversation(conv)
    assert tok.decode(ids).endswith("<|output_start|><|output_end|>ok<|assistant_end|>")


# ---- the file format ----

def test_save_load_round_trip(tok, tmp_path):
    tok.meta["vocab_size"] = 2048
    path = tok.save(tmp_path/"run"/"tokenizer")
    assert path == tmp_path/"run"/"tokenizer"/"tokenizer.json"
    assert [p.name for p in path.parent.iterdir()] == ["tokenizer.json"]  # atomic write: no temp file left behind
    d = json.loads(path.read_text())
    assert d["format"] == "nanochat-tokenizer" and d["version"] == 1 and d["pattern"] == T.SPLIT_PATTERN
    assert d["special_tokens"] == SPECIAL_TOKENS and len(d["merges"]) == 2048 - 256 - 9
    t2 = get_tokenizer(tmp_path/"run")
    assert t2.merges == tok.merges and t2.special_tokens == tok.special_tokens and t2.meta["vocab_size"] == 2048
    s = "Round trip: the same ids, 日本 too.\n"
    assert t2.encode(s) == tok.encode(s)
    assert Tokenizer.load(path).vocab_size == tok.vocab_size


def test_load_errors(tok, tmp_path):
    with pytest.raises(FileNotFoundError, match="run 00_tokenizer first"): get_tokenizer(tmp_path)
    path = tok.save(tmp_path)
    d = json.loads(path.read_text()); d["version"] = 2; path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="version 2; this code reads 'nanochat-tokenizer' version 1"): Tokenizer.load(tmp_path)
    d["version"] = 1; d["pattern"] = r"\w+"; path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="split pattern"): Tokenizer.load(tmp_path)


# ---- text that is not valid Unicode: tiktoken's rule on every path (a pair -> its character, a lone one -> U+FFFD) ----

SURROGATES = [  # (text holding surrogates, the valid text it stands for)
    ("a\ud800b", "a\ufffdb"),                           # a lone high surrogate
    ("end \udc80", "end \ufffd"),                       # a lone low one, last
    ("the cat \ud83d" + "\ude00!", "the cat 😀!"),       # a pair stored as two code units (built by hand)
    ("\ude00\ud83d x", "\ufffd\ufffd x"),               # the wrong order: two lone ones
    ("\ud83d\ude00\ud83d", "😀\ufffd"),                  # a pair, then a lone one
]
SMALL_TEXT = ["the cat sat on the mat, the cat ate the rat 😀 😀 " * 3, "tokens of the text"]


@pytest.fixture(params=["nanochat_bpe", "rustbpe", "python"])
def engine(request, monkeypatch):
    "Each engine in turn (rustbpe trains, tiktoken encodes), as NANOCHAT_BPE_ENGINE selects it."
    monkeypatch.setenv("NANOCHAT_BPE_ENGINE", request.param)
    T.engine_name.cache_clear()
    yield request.param
    T.engine_name.cache_clear()


def test_fix_surrogates_known_answers():
    for bad, good in SURROGATES:
        with pytest.raises(UnicodeEncodeError): bad.encode("utf-8")
        assert T.fix_surrogates(bad) == good
    assert T.fix_surrogates("\ud83d\ude00") == json.loads('"\\ud83d\\ude00"') == "😀"  # what a JSON decoder would have made


@settings(max_examples=200, deadline=None)
@given(s=st.text())
def test_fix_surrogates_leaves_valid_text_alone(s):
    assert T.fix_surrogates(s) == s


def test_every_engine_encodes_surrogates(engine):
    tok = Tokenizer.train_from_iterator(SMALL_TEXT, 256 + 30 + 9, show_progress=False)
    enc = tok._encoder()
    expected_class = {"nanochat_bpe": "Encoder", "rustbpe": "_TiktokenEncoder", "python": "PythonBPE"}[engine]
    assert type(enc).__name__ == expected_class  # the path under test is the one we meant
    ref = PythonBPE(tok.merges)
    for bad, good in SURROGATES:
        assert tok.encode(bad) == tok.encode(good) == ref.encode(good), (engine, bad)
        assert enc.encode(bad) == enc.encode(good)
    bads, goods = [b for b, _ in SURROGATES], [g for _, g in SURROGATES]
    assert tok.encode(["ok"] + bads, prepend="<|bos|>") == tok.encode(["ok"] + goods, prepend="<|bos|>")
    assert tok.decode(tok.encode(SURROGATES[2][0])) == "the cat 😀!"


def test_every_engine_trains_on_surrogates(engine):
    bad = Tokenizer.train_from_iterator(SMALL_TEXT + [b for b, _ in SURROGATES], 256 + 30 + 9, show_progress=False)
    good = Tokenizer.train_from_iterator(SMALL_TEXT + [g for _, g in SURROGATES], 256 + 30 + 9, show_progress=False)
    assert bad.merges == good.merges, engine


def test_conversations_with_surrogates(engine):
    tok = Tokenizer.train_from_iterator(SMALL_TEXT, 256 + 30 + 9, show_progress=False)
    def conv(user, text, out): return {"messages": [
        {"role": "system", "content": "Be brief \udc80"}, {"role": "user", "content": user},
        {"role": "assistant", "content": [{"type": "text", "text": text}, {"type": "python", "text": "1+1"},
                                          {"type": "python_output", "text": out}]},
        {"role": "user", "content": user}]}
    bad, good = conv("hi \ud83d\ude00", "ok \ud800", "2\ude00"), conv("hi 😀", "ok \ufffd", "2\ufffd")
    good["messages"][0]["content"] = "Be brief \ufffd"
    assert tok.render_conversation(bad) == tok.render_conversation(good)
    assert tok.render_for_completion(bad) == tok.render_for_completion(good)
    assert "😀" in tok.decode(tok.render_for_completion(bad))


def test_damaged_tokenizer_file_names_path_and_fix(tmp_path):
    tok = Tokenizer.train_from_iterator(["hello world"] * 3, 256 + 5 + 9, show_progress=False)
    path = tok.save(tmp_path/"tokenizer")
    path.write_text(path.read_text()[:40])   # cut short, as by a crash during a copy
    with pytest.raises(ValueError, match=r"tokenizer\.json is damaged .*run 00_tokenizer again"):
        get_tokenizer(tmp_path)
    path.write_text('{"format": "nanochat-tokenizer"}')   # JSON, but not a whole tokenizer
    with pytest.raises(ValueError, match=r"not a whole nanochat tokenizer.*run 00_tokenizer again"):
        get_tokenizer(tmp_path)


def test_train_chars_counted_without_progress_bar():
    tok = Tokenizer.train_from_iterator(["hello world"] * 3, 256 + 5 + 9, show_progress=False)
    assert tok.meta["train_chars"] == 33
