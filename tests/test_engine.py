"""Tests of nanochat.engine: cached decoding against recomputation, sampling, stops and limits, the calculator's safety
(on worker threads), the tool loop on a scripted model, `sample_greedy`, and the fast path (`StaticDecoder`) against the
plain path.

Run: .venv/bin/pytest tests/test_engine.py -q   (a few seconds on 2 cores; on a GPU machine the model tests run on CUDA
too, the fast path through its captured CUDA graph, and the bf16 and compiled fast paths run there only)
"""
import threading
import pytest
import torch
import torch.nn as nn

import nanochat.engine as E
from nanochat.engine import Engine, StaticDecoder, expand_cache, sample_next_token, use_calculator, sample_greedy, PROMPTS
from nanochat.model import GPT, GPTConfig, KVCache
from nanochat.tokenizer import Tokenizer

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
CUDA = ["cuda"] if torch.cuda.is_available() else []   # tests of what exists on a GPU only (CUDA graphs, bf16 kernels)
TEXT = """The engine writes one token at a time. It remembers the keys and values of every token it has seen, so each
new token costs the same. What is 2+2? The calculator answers 4. How many r letters are in strawberry? Three.
The capital of France is Paris; the chemical symbol of gold is Au; the opposite of hot is cold."""


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train_from_iterator([TEXT] * 4, vocab_size=256 + 64 + 9, show_progress=False)


def random_gpt(vocab_size, sequence_len=64, seed=0, device="cpu"):
    "A tiny GPT with every weight random (init_weights zeroes the head: all logits would be 0)."
    torch.manual_seed(seed)
    m = GPT(GPTConfig(sequence_len=sequence_len, vocab_size=vocab_size, n_layer=2, n_head=4, n_kv_head=2, n_embd=32))
    for p in m.parameters(): nn.init.normal_(p, std=0.3)
    return m.to(device).eval()


class ScriptedModel(nn.Module):
    "A fake GPT: row i writes scripts[i % len(scripts)] after a prompt of `prompt_len` tokens, then <|assistant_end|>."
    def __init__(self, scripts, prompt_len, tokenizer, sequence_len=64):
        super().__init__()
        self.scripts, self.prompt_len = [list(s) for s in scripts], prompt_len
        self.end = tokenizer.encode_special("<|assistant_end|>")
        self.config = GPTConfig(sequence_len=sequence_len, vocab_size=tokenizer.vocab_size, n_layer=1, n_head=1, n_kv_head=1, n_embd=2)
        self.dummy = nn.Parameter(torch.zeros(1))
        self.fed = []   # every (B, T) input the engine fed, for inspection

    def get_device(self): return self.dummy.device

    def forward(self, idx, kv_cache=None):
        B, T = idx.shape
        t0 = kv_cache.pos
        assert t0 + T <= kv_cache.max_len, "the engine fed past the cache"
        kv_cache.pos += T
        self.fed.append(idx.tolist())
        logits = torch.full((B, T, self.config.vocab_size), -1e9)
        for b in range(B):
            script = self.scripts[b % len(self.scripts)]
            for t in range(T):
                g = t0 + t + 1 - self.prompt_len   # index in the completion of the token position t0+t predicts
                logits[b, t, script[g] if 0 <= g < len(script) else self.end] = 0.0
        return logits


def prompt_ids(tok, text="The capital of France is"): return tok.encode(text, prepend=tok.get_bos_token_id())


# ---------------------------------------------------------------------------------------------------- the KV cache
@pytest.mark.parametrize("device", DEVICES)
def test_cached_greedy_equals_recomputation(tok, device):
    "Every sampled token of greedy decoding is the argmax of the full, uncached forward pass over the tokens before it."
    model = random_gpt(tok.vocab_size, device=device)
    engine = Engine(model, tok, dtype=torch.float32)
    for text in ["The capital of France is", "What is 2+2?", "strawberry"]:
        ids = prompt_ids(tok, text)
        seqs, masks = engine.generate_batch(ids, num_samples=3, max_tokens=24, temperature=0.0)
        assert seqs[1] == seqs[2] == seqs[0] and masks[1] == masks[2] == masks[0]   # every row decodes the copied prefill
        seq, mask = seqs[0], masks[0]
        assert len(seq) > len(ids)
        with torch.no_grad():
            full = model(torch.tensor([seq], device=device))[0].argmax(-1).tolist()   # full[i]: the argmax after seq[:i+1]
        for i in range(len(ids), len(seq)):
            if mask[i]: assert seq[i] == full[i - 1], f"{text!r}: token {i} is {seq[i]}, recomputation says {full[i - 1]}"


def test_expand_cache(tok):
    model = random_gpt(tok.vocab_size)
    x = torch.tensor([prompt_ids(tok)])
    one = KVCache.for_model(model, 1, max_len=x.size(1))
    with torch.no_grad(): model(x, kv_cache=one)
    three = expand_cache(one, 3, max_len=40)
    assert tuple(three.k.shape) == (2, 3, 2, 40, 8) and three.pos == one.pos and three.k.dtype == one.k.dtype
    for r in range(3):
        assert torch.equal(three.k[:, r, :, :one.pos], one.k[:, 0]) and torch.equal(three.v[:, r, :, :one.pos], one.v[:, 0])
    assert three.k[:, :, :, one.pos:].abs().sum() == 0
    with pytest.raises(ValueError, match="positive multiple of the cache's 3 rows"): expand_cache(three, 2)
    with pytest.raises(ValueError, match="positive multiple"): expand_cache(one, 0)
    with pytest.raises(ValueError, match="cannot hold"): expand_cache(one, 2, max_len=one.pos - 1)


# ---------------------------------------------------------------------------------------------------- sampling
def test_sample_next_token():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0], [5.0, 0.0, 0.0, 0.0]])
    rng = torch.Generator().manual_seed(0)
    out = sample_next_token(logits, rng, temperature=0.0)
    assert out.shape == (2, 1) and out.dtype == torch.long and out[:, 0].tolist() == [1, 0]
    assert sample_next_token(logits, rng, 1.0, top_k=1)[:, 0].tolist() == [1, 0]
    many = sample_next_token(logits[:1].expand(2000, -1), rng, 1.0, top_k=2)[:, 0]
    assert set(many.tolist()) == {1, 3}   # only the two most likely tokens, both drawn
    a = sample_next_token(logits.expand(2, 4), torch.Generator().manual_seed(7), 1.0)
    b = sample_next_token(logits.expand(2, 4), torch.Generator().manual_seed(7), 1.0)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="temperature must be ≥ 0"): sample_next_token(logits, rng, -0.5)
    with pytest.raises(ValueError, match="temperature must be ≥ 0"): sample_next_token(logits, rng, float("nan"))
    with pytest.raises(ValueError, match="top_k must be ≥ 0"): sample_next_token(logits, rng, 1.0, top_k=-1)
    with pytest.raises(ValueError, match="batch, vocab"): sample_next_token(logits[0], rng)


@pytest.mark.parametrize("device", DEVICES)
def test_rows_differ_but_reproduce(tok, device):
    engine = Engine(random_gpt(tok.vocab_size, device=device), tok, dtype=torch.float32)
    ids = prompt_ids(tok)
    seqs, masks = engine.generate_batch(ids, num_samples=4, max_tokens=16, temperature=1.0, seed=3)
    assert len({tuple(s) for s in seqs}) > 1, "rows sampled at temperature 1 should not all be equal"
    assert engine.generate_batch(ids, num_samples=4, max_tokens=16, temperature=1.0, seed=3) == (seqs, masks)
    assert engine.generate_batch(ids, num_samples=4, max_tokens=16, temperature=1.0, seed=4)[0] != seqs
    assert all(s[:len(ids)] == ids and m[:len(ids)] == [0] * len(ids) for s, m in zip(seqs, masks))
    (first, _), = engine.generate(ids, num_samples=8, max_tokens=1, temperature=5.0)
    assert len(set(first)) > 1, "each row samples its own first token (from the copied prefill logits)"


@pytest.mark.parametrize("device", DEVICES)
def test_top_k_1_is_greedy(tok, device):
    engine = Engine(random_gpt(tok.vocab_size, device=device), tok, dtype=torch.float32)
    ids = prompt_ids(tok)
    greedy = engine.generate_batch(ids, num_samples=2, max_tokens=20, temperature=0.0)
    assert engine.generate_batch(ids, num_samples=2, max_tokens=20, temperature=0.7, top_k=1, seed=9) == greedy
    assert greedy[0][0] == greedy[0][1]


# ---------------------------------------------------------------------------------------------------- stops and limits
def test_stops_at_assistant_end_and_bos(tok):
    end, bos = tok.encode_special("<|assistant_end|>"), tok.get_bos_token_id()
    ids = prompt_ids(tok)
    a, b = tok.encode("Paris."), tok.encode("Paris is in France")
    model = ScriptedModel([a, b + [bos]], len(ids), tok)   # row 0 ends with assistant_end, row 1 with bos (later)
    cols = list(Engine(model, tok).generate(ids, num_samples=2, max_tokens=50))
    assert len(cols) == len(b) + 1                          # stopped when the last row finished, not at max_tokens
    row0 = [c[0] for c, _ in cols]; m0 = [m[0] for _, m in cols]
    assert row0[:len(a) + 1] == a + [end] and m0[:len(a) + 1] == [1] * (len(a) + 1)
    assert set(row0[len(a) + 1:]) == {end} and set(m0[len(a) + 1:]) == {0}   # a finished row repeats its stop, mask 0
    assert [c[1] for c, _ in cols] == b + [bos]
    seqs, masks = Engine(model, tok).generate_batch(ids, num_samples=2, max_tokens=50)
    assert seqs == [ids + a, ids + b] and masks == [[0] * len(ids) + [1] * len(a), [0] * len(ids) + [1] * len(b)]


def test_max_tokens(tok):
    engine = Engine(random_gpt(tok.vocab_size), tok, dtype=torch.float32)
    ids = prompt_ids(tok)
    for n in (1, 5, 17):
        cols = list(engine.generate(ids, num_samples=3, max_tokens=n, temperature=1.0))
        assert len(cols) == n and all(len(c) == len(m) == 3 for c, m in cols)
        seqs, masks = engine.generate_batch(ids, num_samples=3, max_tokens=n, temperature=1.0)
        assert all(len(ids) < len(s) <= len(ids) + n and len(s) == len(m) for s, m in zip(seqs, masks))
    endless = ScriptedModel([tok.encode("a b") * 40], len(ids), tok, sequence_len=200)
    assert len(Engine(endless, tok).generate_batch(ids, max_tokens=7)[0][0]) == len(ids) + 7


def test_context_limit(tok):
    "Generation stops when the cache (the model's context) is full; nothing is fed past it, nothing crashes."
    ids = prompt_ids(tok)                                    # 7 tokens
    ctx = len(ids) + 9
    endless = ScriptedModel([tok.encode("a b") * 40], len(ids), tok, sequence_len=ctx)   # never writes a stop token
    for max_tokens in (None, 100):
        cols = list(Engine(endless, tok).generate(ids, num_samples=2, max_tokens=max_tokens))
        assert len(cols) == ctx - len(ids) + 1               # the last column is sampled, never fed back
    real = random_gpt(tok.vocab_size, sequence_len=ctx)
    for t in (0.0, 1.0, 5.0):
        seqs, _ = Engine(real, tok, dtype=torch.float32).generate_batch(ids, num_samples=3, temperature=t)
        assert all(len(s) <= ctx + 1 for s in seqs)
    full = list(range(ctx))                                 # a prompt that fills the context: one column, then stop
    assert len(list(Engine(real, tok).generate(full, temperature=0.0))) == 1
    with pytest.raises(ValueError, match="more than the model's context"): Engine(real, tok).generate(full + [1])


def test_argument_errors(tok):
    engine = Engine(random_gpt(tok.vocab_size), tok)
    ids = prompt_ids(tok)
    # raised at the call, before the first next(): a caller learns at once
    for kw, msg in [(dict(num_samples=0), "num_samples must be an int ≥ 1"), (dict(num_samples=1.5), "num_samples"),
                    (dict(max_tokens=0), "max_tokens must be an int ≥ 1 or None"), (dict(temperature=-1.0), "temperature"),
                    (dict(top_k=-2), "top_k must be an int ≥ 0")]:
        with pytest.raises(ValueError, match=msg): engine.generate(ids, **kw)
    with pytest.raises(ValueError, match="non-empty list"): engine.generate([])
    with pytest.raises(ValueError, match="non-empty list"): engine.generate("hello")
    with pytest.raises(ValueError, match=r"token ids must be in 0\.\.328"): engine.generate([tok.vocab_size])
    with pytest.raises(ValueError, match="temperature"): engine.generate_batch(ids, temperature=-1.0)


@pytest.mark.parametrize("device", DEVICES)
def test_default_dtype_follows_autodetect(tok, device, monkeypatch):
    "With no dtype the engine uses autodetect_dtype (bf16 on CUDA and on CPUs with bf16) under amp_context; the cache follows."
    from nanochat.common import autodetect_dtype
    model = random_gpt(tok.vocab_size, device=device)
    dtype = autodetect_dtype(torch.device(device))
    seen = []
    orig = E.KVCache.__init__
    def spy(self, *a, **kw): seen.append(kw.get("dtype")); orig(self, *a, **kw)
    monkeypatch.setattr(E.KVCache, "__init__", spy)
    seqs, masks = Engine(model, tok).generate_batch(prompt_ids(tok), num_samples=2, max_tokens=8, temperature=1.0)
    assert set(seen) == {dtype}
    assert all(0 <= t < tok.vocab_size for s in seqs for t in s) and len(seqs) == 2


def test_generate_on_a_worker_thread(tok):
    engine = Engine(random_gpt(tok.vocab_size), tok, dtype=torch.float32)
    ids = prompt_ids(tok)
    here = engine.generate_batch(ids, num_samples=2, max_tokens=10, temperature=1.0, seed=5)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", engine.generate_batch(ids, num_samples=2, max_tokens=10,
                                                                                   temperature=1.0, seed=5)), daemon=True)
    t.start(); t.join(60)
    assert not t.is_alive() and out["r"] == here


# ---------------------------------------------------------------------------------------------------- the calculator
def calc_on_thread(expr, wait=10.0, **kw):
    "use_calculator on a worker thread (where signal.alarm cannot work); fails if it has not returned within `wait` s."
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", use_calculator(expr, **kw)), daemon=True)
    t.start(); t.join(wait)
    assert not t.is_alive(), f"use_calculator({expr[:50]!r}) did not return within {wait}s"
    return out["r"]


@pytest.mark.parametrize("expr,want", [
    ("2+3*4", "14"), ("'strawberry'.count('r')", "3"), ("10/4", "2.5"), ("48/2", "24"), ("2**10", "1024"),
    ("-(7 - 10) ** 2", "-9"), ("17 // 5", "3"), ("17 % 5", "2"), ("-3 // 2", "-2"), ("+5", "5"), ("1,234 * 2", "2468"),
    ("(1 + 2) * (3 + 4)", "21"), ("1/3", "0.3333333333"), ("0.1 + 0.2", "0.3"), ("2.5 * 4", "10"), ("2 ** -2", "0.25"),
    (" 12 * 12 ", "144"), ('"banana".count("an")', "2"), ("'a,b,c'.count(',')", "2"), ("1e3 + 1", "1001"),
    ("2**1000 // 2**999", "2"), ("1e300 * 1e10 / 1e10", None), ("2 ** 0.5", "1.414213562"), ("7 ** -10**9", "0"),
])
def test_calculator_known_answers(expr, want):
    assert calc_on_thread(expr) == want


MALICIOUS = ["__import__('os').system('ls')", "().__class__.__bases__", "9**9**9**9", "'a'*10**10", "(1,)*10**9",
             "'" + "a" * 100_000 + "'", "'x' * 100_000", "lambda: 1", "(lambda: 1)()", "x", "x + 1", "print(1)",
             "open('/etc/passwd').read()", "[1] * 10**9", "{'a': 1}", "[i for i in range(10**9)]", "1 if 1 else 2",
             "1 < 2", "2 << 10000", "~1", "1 & 1", "'abc'[0]", "'a'.count('a', 0)", "'a'.upper()", "str(1).count('1')",
             "'a'.__class__", "1; 2", "import os", "10**10**10", "2**4000", "2**1024 * 2**1024", "10.0 ** 400",
             "(-8) ** 0.5", "1j", "True + 1", "1/0", "1 % 0", "2 +", "", "   ", "1" * 2000, "-" * 900 + "1",
             "(" * 400 + "1" + ")" * 400, "((((((((((" * 20, "9" * 400 + " ** 9", "__builtins__", "b'a'.count(b'a')",
             "f'{1}'", "1_000_000_000 ** 1_000_000", "\x00", "1 +\n2"]


@pytest.mark.parametrize("expr", MALICIOUS, ids=[repr(e[:30]) for e in MALICIOUS])
def test_calculator_refuses(expr):
    assert calc_on_thread(expr) is None


def test_calculator_deadline(monkeypatch):
    "A deadline that passes during evaluation gives None (a fake clock that jumps 1 s per reading: no real waiting)."
    t = [0.0]
    def clock(): t[0] += 1.0; return t[0]
    monkeypatch.setattr(E.time, "monotonic", clock)
    assert use_calculator("1+2+3", timeout=1.5) is None
    assert use_calculator("1+2+3", timeout=100.0) == "6"
    with pytest.raises(ValueError, match="timeout must be > 0"): use_calculator("1", timeout=0)
    assert use_calculator(None) is None and use_calculator(123) is None


# ---------------------------------------------------------------------------------------------------- the tool loop
def test_tool_forcing(tok):
    S = tok.encode_special
    user = tok.render_for_completion({"messages": [{"role": "user", "content": "What is 2+2?"}]})
    call = [S("<|python_start|>"), *tok.encode("2+2"), S("<|python_end|>")]
    four = tok.encode("4")
    forced = [S("<|output_start|>"), *four, S("<|output_end|>")]
    after = tok.encode("The answer is 4.")
    filler = tok.encode("?") * len(forced)                  # the script's own (ignored) tokens where the engine forces
    refused = [S("<|python_start|>"), *tok.encode("x+1"), S("<|python_end|>")]
    model = ScriptedModel([call + filler + after, refused + after], len(user), tok)
    seqs, masks = Engine(model, tok).generate_batch(user, num_samples=2, temperature=1.0)
    assert seqs[0] == user + call + forced + after
    assert masks[0] == [0] * len(user) + [1] * len(call) + [0] * len(forced) + [1] * len(after)
    assert tok.decode(seqs[0][len(user):]) == "<|python_start|>2+2<|python_end|><|output_start|>4<|output_end|>The answer is 4."
    assert seqs[1] == user + refused + after and 0 not in masks[1][len(user):]   # refused: nothing forced
    # the forced tokens were fed to the model: it reads the tool's answer in its context
    fed_row0 = [step[0][0] for step in model.fed[1:]]
    assert fed_row0[:len(call) + len(forced)] == call + forced


# ---------------------------------------------------------------------------------------------------- sample_greedy
def reference_greedy(model, tokenizer, prompts, max_tokens):
    "Chapter 02's sampler before the engine: greedy, full recomputation, stop at BOS."
    out = []
    for p in prompts:
        ids = tokenizer.encode(p, prepend=tokenizer.get_bos_token_id())
        new = []
        with torch.no_grad():
            for _ in range(max_tokens):
                nxt = model(torch.tensor([ids + new]))[0, -1].argmax().item()
                if nxt == tokenizer.get_bos_token_id(): break
                new.append(nxt)
        out.append(p + tokenizer.decode(new))
    return out


def test_sample_greedy(tok):
    model = random_gpt(tok.vocab_size).train()
    got = sample_greedy(model, tok, PROMPTS, max_tokens=12)
    assert model.training, "sample_greedy puts the model back in the mode it found it in"
    assert len(got) == len(PROMPTS) and all(g.startswith(p) and len(g) > len(p) for g, p in zip(got, PROMPTS))
    assert got == reference_greedy(model, tok, PROMPTS, 12)
    assert sample_greedy(model, tok, PROMPTS[:2], max_tokens=12, device="cpu") == got[:2]
    assert "The capital of France is" in PROMPTS


@pytest.mark.parametrize("asked", [torch.float32, None])
def test_low_precision_model_samples_in_its_own_dtype(tok, asked, monkeypatch):
    "A model stored in bf16 on a CPU: every sampling path (engine, sample_greedy, Chat) follows its dtype, whatever was asked."
    from nanochat.chat import Chat
    model = random_gpt(tok.vocab_size).to(torch.bfloat16)
    seen = []
    orig = E.KVCache.__init__
    def spy(self, *a, **kw): seen.append(kw.get("dtype")); orig(self, *a, **kw)
    monkeypatch.setattr(E.KVCache, "__init__", spy)
    seqs, _ = Engine(model, tok, dtype=asked).generate_batch(prompt_ids(tok), num_samples=2, max_tokens=6, temperature=1.0)
    assert len(seqs) == 2 and all(len(s) > len(prompt_ids(tok)) for s in seqs)
    out = sample_greedy(model, tok, PROMPTS[:2], max_tokens=6)   # its default dtype is float32
    assert all(o.startswith(p) for o, p in zip(out, PROMPTS[:2]))
    Chat(model, tok, temperature=0.0, max_tokens=6).reply([{"role": "user", "content": "hi"}])
    assert set(seen) == {torch.bfloat16}


# ---------------------------------------------------------------------------------------------------- the fast path
@pytest.mark.parametrize("device", DEVICES)
def test_static_decoder_logits_equal_plain_steps(tok, device):
    "Fed the same columns (random tokens, as sampling or the calculator may write), the decoder gives the plain cached step's logits."
    model = random_gpt(tok.vocab_size, device=device)
    ids = torch.tensor([prompt_ids(tok)], device=device)
    with torch.no_grad():
        pre = KVCache.for_model(model, 1, ids.size(1))
        model(ids, kv_cache=pre)
        plain = expand_cache(pre, 3, max_len=50)
        dec = StaticDecoder(model, 3, StaticDecoder.size_for(50)).start(pre, 50)
        assert dec.size == 64 and (dec.graph is not None) == (device == "cuda")   # a CUDA graph on a GPU only
        g = torch.Generator().manual_seed(0)
        for _ in range(50 - ids.size(1)):
            col = torch.randint(0, tok.vocab_size, (3,), generator=g).tolist()
            want = model(torch.tensor(col, device=device)[:, None], kv_cache=plain)[:, -1]
            torch.testing.assert_close(dec.step(col), want, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="decoder is full"): dec.step(col)
    with pytest.raises(ValueError, match="does not fit"): dec.start(pre, 65)
    with pytest.raises(ValueError, match="longer than the rotary tables"): StaticDecoder(model, 1, 1024)


def test_fast_path_on_a_context_shorter_than_its_smallest_cache(tok):
    "A model whose rotary tables are under the decoder's usual 64 positions still decodes on the fast path (found by review)."
    torch.manual_seed(0)
    model = GPT(GPTConfig(sequence_len=5, vocab_size=tok.vocab_size, n_layer=1, n_head=2, n_kv_head=1, n_embd=16)).eval()
    for p in model.lm_head.parameters(): torch.nn.init.normal_(p, std=0.02)
    ids, kw = prompt_ids(tok, "hi")[:3], dict(num_samples=2, temperature=0.0)
    fast = Engine(model, tok, dtype=torch.float32, fast=True)
    assert fast.generate_batch(ids, **kw) == Engine(model, tok, dtype=torch.float32, fast=False).generate_batch(ids, **kw)
    assert [d.size for d in fast._decoders.values()] == [model.rotary_len]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("num_samples", [1, 4])
def test_fast_path_generates_what_the_plain_path_does(tok, device, num_samples):
    "Greedy and sampled generation, to max_tokens and to the end of the context, token for token the same both ways."
    model = random_gpt(tok.vocab_size, device=device)
    plain, fast = Engine(model, tok, dtype=torch.float32, fast=False), Engine(model, tok, dtype=torch.float32, fast=True)
    for text in ["The capital of France is", "What is 2+2?", "strawberry"]:
        kw = dict(num_samples=num_samples, max_tokens=30, temperature=0.0)
        assert fast.generate_batch(prompt_ids(tok, text), **kw) == plain.generate_batch(prompt_ids(tok, text), **kw)
    kw = dict(num_samples=num_samples, temperature=1.0, top_k=5, seed=3)   # no max_tokens: until the context is full
    assert fast.generate_batch(prompt_ids(tok), **kw) == plain.generate_batch(prompt_ids(tok), **kw)
    assert len(fast._decoders) == 1 and not plain._decoders   # one decoder (one graph) reused for every call of this shape


def test_fast_path_follows_the_model_and_interleaved_generations(tok):
    "A decoder reused after the model changed reads the new weights; a second generation interleaved with a first is right too."
    model = random_gpt(tok.vocab_size)
    fast, ids = Engine(model, tok, dtype=torch.float32, fast=True), prompt_ids(tok)
    kw = dict(num_samples=2, max_tokens=12, temperature=0.0)
    fast.generate_batch(ids, **kw)
    with torch.no_grad():
        for p in model.parameters(): p.add_(torch.randn_like(p) * 0.3)   # "more training"
    assert fast.generate_batch(ids, **kw) == Engine(model, tok, dtype=torch.float32, fast=False).generate_batch(ids, **kw)
    first, second = fast.generate(ids, **kw), fast.generate(prompt_ids(tok, "strawberry"), **kw)
    a = [next(first)]
    b = list(second)                                   # runs while `first` holds the decoder: the plain path
    a += list(first)
    plain = Engine(model, tok, dtype=torch.float32, fast=False)
    assert a == list(plain.generate(ids, **kw)) and b == list(plain.generate(prompt_ids(tok, "strawberry"), **kw))
    assert not any(d.busy for d in fast._decoders.values())   # every generation finished: the decoder is free again


# on a GPU: graph-replayed, eager and compiled; on a CPU-only machine (CI) the same check in bf16 without the graph,
# so that the test runs everywhere rather than skipping (compiling on 2 cores would take minutes)
@pytest.mark.parametrize("device,compile", [("cuda", False), ("cuda", True)] if CUDA else [("cpu", False)])
def test_fast_path_bf16(tok, device, compile):
    "In bf16 (the GPU default), graph-replayed and compiled, the fast path keeps the plain path's logits and greedy tokens."
    model = random_gpt(tok.vocab_size, device=device)
    ids = prompt_ids(tok)
    plain = Engine(model, tok, dtype=torch.bfloat16, fast=False)
    fast = Engine(model, tok, dtype=torch.bfloat16, fast=True, compile=compile)
    kw = dict(num_samples=2, max_tokens=24, temperature=0.0)
    assert fast.generate_batch(ids, **kw) == plain.generate_batch(ids, **kw)
    kw1 = dict(num_samples=1, max_tokens=24, temperature=0.0)
    assert fast.generate_batch(ids, **kw1) == plain.generate_batch(ids, **kw1)
    a, b = fast._decoders.values()   # two shapes, one bf16 copy of the weights between them (the model stays fp32)
    assert a.net is b.net and a.net is not model and a.net.lm_head.weight.dtype == torch.bfloat16
    assert model.lm_head.weight.dtype == torch.float32 and a.net.transformer.wte.weight is model.transformer.wte.weight
    assert a.net.cos is model.cos   # the lookup and the rotary tables are shared, not copied
    x = torch.tensor([ids], device=device)
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):   # the plain path's step after the prompt
        pre = KVCache.for_model(model, 1, x.size(1) - 1, dtype=torch.bfloat16)
        model(x[:, :-1], kv_cache=pre)
        want = model(x[:, -1:], kv_cache=expand_cache(pre, 1, max_len=x.size(1)))[:, -1]
    dec = StaticDecoder(model, 1, 64, torch.bfloat16, compile=compile).start(pre, x.size(1))
    assert (dec.graph is not None) == (device == "cuda")   # CUDA graphs exist on GPUs only
    torch.testing.assert_close(dec.step([ids[-1]]), want, atol=0.05, rtol=0.02)
    with torch.no_grad():
        for p in model.parameters(): p.add_(torch.randn_like(p) * 0.3)   # "more training": the shared copy follows
    fast.generate_batch(ids, **kw1)   # (greedy tokens of a perturbed random model sit on near-ties: compare the weights)
    for (name, p), q in zip(model.named_parameters(), a.net.parameters()): assert torch.equal(q, p.to(q.dtype)), name


@pytest.mark.parametrize("device", DEVICES)
def test_generate_many_answers_each_prompt_as_alone(tok, device):
    "Different prompts of one length in one batch: each row's greedy tokens are those of its prompt generated alone."
    model = random_gpt(tok.vocab_size, device=device)
    engine = Engine(model, tok, dtype=torch.float32)
    ids = tok.encode(TEXT, prepend=tok.get_bos_token_id())
    prompts = [ids[i:i + 7] for i in (0, 3, 9, 20)]
    cols = list(engine.generate_many(prompts, max_tokens=12, temperature=0.0))
    together = [[c[r] for c, _ in cols] for r in range(len(prompts))]
    alone = [[c[0] for c, _ in engine.generate(p, max_tokens=12, temperature=0.0)] for p in prompts]
    assert together == alone and len({tuple(t) for t in together}) > 1
    with pytest.raises(ValueError, match=r"got lengths \[7, 8\]"): engine.generate_many([ids[:7], ids[:8]])
    with pytest.raises(ValueError, match="non-empty list of prompts"): engine.generate_many([])


def test_generate_many_runs_the_calculator_per_row(tok):
    "Each row keeps its own tool state: the row that writes a calculator call gets its output forced, the other not."
    S = tok.encode_special
    call = [S("<|python_start|>"), *tok.encode("2+2"), S("<|python_end|>")]
    model = ScriptedModel([call + tok.encode(" ok"), tok.encode("no tool")], prompt_len=3, tokenizer=tok)
    cols = list(Engine(model, tok).generate_many([[1, 2, 3], [4, 5, 6]], max_tokens=20, temperature=0.0))
    row0, row1 = ([c[r] for c, _ in cols] for r in range(2))
    assert row0[:len(call) + 3] == call + [S("<|output_start|>"), *tok.encode("4"), S("<|output_end|>")]
    assert S("<|output_start|>") not in row1
