"""Chat evaluations (nanochat.chat_eval), scored with known answers: fake models whose next token is a function of what
they were fed (an oracle, an always-"A" model, a model that uses the calculator), the real tasks from the offline mirror,
the real engine and the real sandbox. Also: bad conversations and unknown task names fail with an error that names them.

Run: .venv/bin/pytest tests/test_chat_eval.py -q   (≈15 s on 2 cores)
"""
import re
import pytest
import torch
import torch.nn as nn

import nanochat.chat_eval as CE
from nanochat.chat_eval import (CHAT_TASKS, centered, score_categorical, generate_answers, end_rate, evaluate_chat,
                                chat_table)
from nanochat.model import GPTConfig
from nanochat.tasks import mc_conversation, extract_answer, get_task, humaneval_candidate, LETTERS
from nanochat.execution import execute_tests, _answer
from nanochat.tokenizer import Tokenizer, check_conversation

CPU, F32 = torch.device("cpu"), torch.float32


@pytest.fixture(scope="module")
def tok():
    return Tokenizer([])   # byte-level: every letter, digit and special token is one token


SPECIAL_RE = re.compile(r"(<\|[a-z_]+\|>)")

def ids(tok, text: str) -> list[int]:
    "Token ids of `text`, with special tokens written by name (`<|python_start|>`) turned into their ids."
    out = []
    for i, piece in enumerate(SPECIAL_RE.split(text)):
        out += [tok.encode_special(piece)] if i % 2 else tok.encode(piece)
    return out

def user_text(tok, prompt: list[int]) -> str:
    "The (first) user message of a rendered prompt."
    return tok.decode(prompt).split("<|user_start|>", 1)[1].split("<|user_end|>", 1)[0]


class PolicyModel(nn.Module):
    """A fake GPT whose prediction after every position is `policy(prompt, completion)` — the prompt's ids and the
    completion so far (every id the engine fed back, forced tool output included) — a list of token ids, most likely
    first (logits 0, −1, −2, …; every other token −1e9).

    Generating (with a KV cache) the prompt is what the prefill fed. Scored categorically (no cache, rows padded with
    BOS), only the last prompt position gets the policy's answer; every other position gets `decoy`, so reading the
    wrong position gives the wrong letter. `self.asked`: the user message of every prompt the model saw."""
    def __init__(self, tok, policy, decoy=None, sequence_len=4096):
        super().__init__()
        self.tok, self.policy, self.decoy = tok, policy, decoy
        self.config = GPTConfig(sequence_len=sequence_len, vocab_size=tok.vocab_size, n_layer=1, n_head=1, n_kv_head=1, n_embd=2)
        self.dummy = nn.Parameter(torch.zeros(1))
        self.asked, self.seq, self.prompt_len = [], [], 0

    def get_device(self): return self.dummy.device

    def _logits(self, prefs):
        row = torch.full((self.config.vocab_size,), -1e9)
        for rank, t in enumerate(prefs): row[t] = -float(rank)
        return row

    def forward(self, idx, targets=None, kv_cache=None):
        B, T = idx.shape
        logits = torch.full((B, T, self.config.vocab_size), -1e9)
        if kv_cache is None:   # categorical scoring: whole prompts, right-padded with BOS
            bos = self.tok.get_bos_token_id()
            for b in range(B):
                row = idx[b].tolist()
                n = len(row)
                while row[n - 1] == bos: n -= 1   # a prompt ends with <|assistant_start|>, never with BOS
                prompt = row[:n]; self.asked.append(user_text(self.tok, prompt))
                logits[b] = self._logits(self.decoy or [])   # every position…
                logits[b, n - 1] = self._logits(self.policy(prompt, []))   # …but the answer's
            return logits
        assert B == 1, "generate_answers writes one row per conversation"
        if kv_cache.pos == 0:   # prefill: a new conversation
            self.seq, self.prompt_len = idx[0].tolist(), T
            self.asked.append(user_text(self.tok, self.seq))
        else: self.seq += idx[0].tolist()
        kv_cache.pos += T
        logits[0, -1] = self._logits(self.policy(self.seq[:self.prompt_len], self.seq[self.prompt_len:]))
        return logits


def plan_policy(tok, plan_for):
    """A policy that writes `plan_for(user_text)` (special tokens by name) then `<|assistant_end|>`. `{out}` in the plan
    stands for the calculator's output the engine forced after the last `<|python_end|>` ('?' if it forced none): the
    model copies what it reads. Forced tokens are not the model's: while the engine forces, the plan waits."""
    o_start, o_end, end = tok.encode_special("<|output_start|>"), tok.encode_special("<|output_end|>"), tok.encode_special("<|assistant_end|>")
    def policy(prompt, completion):
        written, out, forced = [], None, None   # the model's own tokens; the last complete tool output
        for t in completion:
            if t == o_start: forced = []
            elif forced is not None and t == o_end: out, forced = tok.decode(forced), None
            elif forced is not None: forced.append(t)
            else: written.append(t)
        before, at, after = plan_for(user_text(tok, prompt)).partition("{out}")
        out = "?" if out is None else out
        target = ids(tok, before) + (ids(tok, out + after.replace("{out}", out)) if at else [])
        return [target[len(written)]] if len(written) < len(target) else [end]
    return policy


# ---------------------------------------------------------------------------------------------------- centring
def test_centered():
    assert centered(0.25, 0.25) == 0.0 and centered(1.0, 0.25) == 1.0 and centered(0.0, 0.25) == pytest.approx(-1 / 3)
    assert centered(0.4, 0.0) == 0.4   # generative tasks: chance 0, accuracy unchanged
    assert {k: c for k, (_, c) in CHAT_TASKS.items()} == {"ARC-Easy": 0.25, "ARC-Challenge": 0.25, "MMLU": 0.25,
                                                           "GSM8K": 0.0, "HumanEval": 0.0, "SpellingBee": 0.0}


# ---------------------------------------------------------------------------------------------------- categorical
def mc_convs():
    "Questions with 3, 4 and 5 choices; right answers at every letter."
    convs = []
    for n in (3, 4, 5):
        for answer in range(n):
            choices = [f"option {k} of question {n}/{answer}" for k in range(n)]
            convs.append(mc_conversation(f"Question {n}/{answer}: which?", choices, answer))
    return convs

def letter_policy(tok, convs, pick):
    "A policy for categorical scoring: `pick(conv)` → letters, most likely first, for the conversation asked."
    by_user = {c["messages"][0]["content"]: c for c in convs}
    return lambda prompt, completion: [tok.encode(l)[0] for l in pick(by_user[user_text(tok, prompt)])]

@pytest.mark.parametrize("batch_size", [1, 4, 100])
def test_categorical_oracle_scores_one(tok, batch_size):
    convs = mc_convs()
    right = lambda c: c["messages"][-1]["content"]
    # the largest logit of all on 'Z', not a choice: only the choices' letters are compared; the decoy is wrong everywhere else
    model = PolicyModel(tok, letter_policy(tok, convs, lambda c: ["Z", right(c)]), decoy=[tok.encode("A")[0], tok.encode("B")[0]])
    got = score_categorical(model, tok, convs, CPU, F32, batch_size=batch_size)
    assert got == [True] * len(convs)
    assert model.asked == [c["messages"][0]["content"] for c in convs]   # every question once, in order

def test_categorical_always_a_scores_fraction_of_a(tok):
    convs = mc_convs()   # 3 of 12 have 'A' as the answer
    model = PolicyModel(tok, letter_policy(tok, convs, lambda c: ["A"]), decoy=[tok.encode("B")[0]])
    got = score_categorical(model, tok, convs, CPU, F32, batch_size=5)
    assert got == [c["messages"][-1]["content"] == "A" for c in convs] and sum(got) == 3

def test_categorical_last_letters(tok):
    "'C' is right on a 3-choice question and 'E' on a 5-choice one; a model always answering the last letter gets exactly those."
    convs = mc_convs()
    model = PolicyModel(tok, letter_policy(tok, convs, lambda c: [c["letters"][-1]]), decoy=[tok.encode("A")[0]])
    got = score_categorical(model, tok, convs, CPU, F32)
    expected = [c["messages"][-1]["content"] == LETTERS[len(c["letters"]) - 1] for c in convs]
    assert got == expected and sum(got) == 3   # one per question size

def test_categorical_letters_must_be_one_token(tok):
    conv = mc_conversation("Which?", ["x", "y"], 0) | {"letters": ("AA", "BB")}
    conv["messages"][-1]["content"] = "AA"
    model = PolicyModel(tok, lambda p, c: [tok.encode("A")[0]])
    with pytest.raises(ValueError, match="one token each"): score_categorical(model, tok, [conv], CPU, F32)


def test_evaluate_chat_arc_and_chatcore(tok, mirror, base):
    "Real ARC-Easy and ARC-Challenge questions: the oracle scores 1 (centred 1), always-'A' the fraction of A answers."
    tasks = {name: CHAT_TASKS[name][0]() for name in ("ARC-Easy", "ARC-Challenge")}
    by_user = {c["messages"][0]["content"]: c for t in tasks.values() for c in t}
    right = lambda prompt, completion: [tok.encode(by_user[user_text(tok, prompt)]["messages"][-1]["content"])[0]]
    oracle = PolicyModel(tok, right, decoy=[tok.encode("Z")[0]])
    res = evaluate_chat(oracle, tok, CPU, F32, tasks=list(tasks), max_problems=12, batch_size=5)
    assert res["chatcore"] == 1.0
    for name, r in res["tasks"].items():
        assert (r["accuracy"], r["centered"], r["n"], r["chance"]) == (1.0, 1.0, 12, 0.25)
    assert len(oracle.asked) == 24 and len(set(oracle.asked)) == 24

    always_a = PolicyModel(tok, lambda prompt, completion: [tok.encode("A")[0]], decoy=[tok.encode("B")[0]])
    res = evaluate_chat(always_a, tok, CPU, F32, tasks=list(tasks), max_problems=40, batch_size=8)
    accs = {}
    for k, name in enumerate(tasks):   # the questions asked, in order: 40 of ARC-Easy, then 40 of ARC-Challenge
        asked = always_a.asked[40 * k:40 * (k + 1)]
        accs[name] = sum(by_user[u]["messages"][-1]["content"] == "A" for u in asked) / 40
        assert res["tasks"][name]["accuracy"] == accs[name]
        assert res["tasks"][name]["centered"] == pytest.approx((accs[name] - 0.25) / 0.75)
    assert 0 < accs["ARC-Easy"] < 1 and accs["ARC-Easy"] != accs["ARC-Challenge"]   # a fraction, not a constant
    assert res["chatcore"] == pytest.approx(sum((a - 0.25) / 0.75 for a in accs.values()) / 2)
    table = chat_table(res)
    assert list(table) == ["ARC-Easy", "ARC-Challenge", "ChatCORE"] and table["ChatCORE"]["centred"] == res["chatcore"]
    a = accs["ARC-Easy"]
    assert table["ARC-Easy"] == {"accuracy": a, "± s.e.": pytest.approx((a * (1 - a) / 40) ** 0.5), "chance": 0.25,
                                 "centred": res["tasks"]["ARC-Easy"]["centered"], "problems": 40}


# ---------------------------------------------------------------------------------------------------- generation
def test_generate_answers_scripted(tok):
    convs = [{"messages": [{"role": "user", "content": q}]} for q in ("one", "two", "three")]
    model = PolicyModel(tok, plan_policy(tok, lambda q: f"you said {q}"))
    got = generate_answers(model, tok, convs, max_tokens=32, dtype=F32)
    assert got == [("you said one", True), ("you said two", True), ("you said three", True)]
    cut = generate_answers(model, tok, convs[:1], max_tokens=5, dtype=F32)   # no room to finish: not ended
    assert cut == [("you s", False)]

def test_generate_answers_forces_the_calculator(tok):
    "The model writes a call; the engine runs it and forces its output, which the model then reads and copies."
    convs = [{"messages": [{"role": "user", "content": "What is 6 times 7?"}]}]
    model = PolicyModel(tok, plan_policy(tok, lambda q: "<|python_start|>6*7<|python_end|>So it is {out}.\n#### {out}"))
    (text, ended), = generate_answers(model, tok, convs, max_tokens=64, dtype=F32)
    assert ended and text == "<|python_start|>6*7<|python_end|><|output_start|>42<|output_end|>So it is 42.\n#### 42"
    refused = PolicyModel(tok, plan_policy(tok, lambda q: "<|python_start|>__import__('os')<|python_end|>#### {out}"))
    (text, ended), = generate_answers(refused, tok, convs, max_tokens=64, dtype=F32)
    assert ended and text == "<|python_start|>__import__('os')<|python_end|>#### ?"   # nothing forced

def test_end_rate(tok):
    convs = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "ok"}]} for q in ("a", "b", "c", "d")]
    at_once = PolicyModel(tok, lambda p, c: [tok.encode_special("<|assistant_end|>")])
    never = PolicyModel(tok, lambda p, c: [tok.encode("a")[0]])
    half = PolicyModel(tok, plan_policy(tok, lambda q: "x" * (3 if q in "ab" else 30)))
    assert end_rate(at_once, tok, convs, max_tokens=8, dtype=F32) == 1.0
    assert end_rate(never, tok, convs, max_tokens=8, dtype=F32) == 0.0
    assert end_rate(half, tok, convs, max_tokens=8, dtype=F32) == 0.5
    assert at_once.asked == ["a", "b", "c", "d"]   # answered from the first user turn


def reference(conv) -> str: return extract_answer("".join(p["text"] for p in conv["messages"][-1]["content"]))

def gsm8k_policy(tok, task, right):
    """Answers a GSM8K question by calling the calculator on `n - 3 + 3` (n: the reference answer, or n + 1 where
    `right(question)` is False) and copying the tool's output after `####`: the score hangs on the forced output."""
    ref = {c["messages"][0]["content"]: int(reference(c)) for c in task}
    def plan(q):
        n = ref[q] + (0 if right(q) else 1)
        return f"Let me compute.<|python_start|>{n - 3}+3<|python_end|>\n#### {{out}}"
    return plan_policy(tok, plan)

def test_evaluate_chat_gsm8k(tok, mirror, base):
    task = CHAT_TASKS["GSM8K"][0]()
    assert all(re.fullmatch(r"-?\d+", reference(c)) for c in task)   # whole numbers: `n - 3 + 3` stays exact
    oracle = PolicyModel(tok, gsm8k_policy(tok, task, lambda q: True))
    r = evaluate_chat(oracle, tok, CPU, F32, tasks=["GSM8K"], max_problems=6)
    assert (r["tasks"]["GSM8K"]["accuracy"], r["chatcore"], r["tasks"]["GSM8K"]["n"]) == (1.0, 1.0, 6)
    assert "<|output_start|>" in r["tasks"]["GSM8K"]["example"]
    # one off on every third question asked (the model appends a question to `asked` before it answers it)
    mixed = PolicyModel(tok, None)
    mixed.policy = gsm8k_policy(tok, task, lambda q: len(mixed.asked) % 3 != 0)
    r = evaluate_chat(mixed, tok, CPU, F32, tasks=["GSM8K"], max_problems=10)
    assert len(mixed.asked) == 10 and r["tasks"]["GSM8K"]["accuracy"] == 0.7 and r["chatcore"] == 0.7

def test_evaluate_chat_spellingbee(tok, mirror, base):
    "The model counts with the calculator (`'word'.count('l')`) and copies its output: right exactly when the tool ran."
    task = CHAT_TASKS["SpellingBee"][0]()
    wl = {c["messages"][0]["content"]: (c["word"], c["letter"]) for c in task}
    model = PolicyModel(tok, plan_policy(tok, lambda q: "<|python_start|>'{}'.count('{}')<|python_end|>#### {{out}}".format(*wl[q])))
    r = evaluate_chat(model, tok, CPU, F32, tasks=["SpellingBee"], max_problems=8)
    assert r["tasks"]["SpellingBee"]["accuracy"] == 1.0 and r["chatcore"] == 1.0
    wrong = PolicyModel(tok, plan_policy(tok, lambda q: "#### {}".format(wl[q][0].count(wl[q][1]) + 1)))
    r = evaluate_chat(wrong, tok, CPU, F32, tasks=["SpellingBee"], max_problems=8)
    assert r["tasks"]["SpellingBee"]["accuracy"] == 0.0


def test_humaneval_canonical_passes_wrong_fails(mirror, base):
    task = get_task("humaneval")
    for i in (0, 1, 2):
        c = task[i]
        canonical = c["messages"][-1]["content"][len(c["prompt"]):]
        assert task.evaluate(c, canonical), c["task_id"]
        assert task.evaluate(c, f"```python\n{c['prompt']}{canonical}```")   # a fenced whole function too
        assert not task.evaluate(c, "    return None\n"), c["task_id"]
        assert not task.evaluate(c, "    return (\n")   # a syntax error

def test_evaluate_chat_humaneval(tok, mirror, base, monkeypatch):
    "Through the whole path: the model writes the canonical body for some problems and `return None` for the others."
    task = CHAT_TASKS["HumanEval"][0]()
    body = {c["messages"][0]["content"]: c["messages"][-1]["content"][len(c["prompt"]):] for c in task}
    model = PolicyModel(tok, None)   # right on the 1st and 3rd problem asked
    model.policy = plan_policy(tok, lambda q: body[q] if len(model.asked) % 2 == 1 else "    return None\n")
    monkeypatch.setitem(CE.MAX_NEW_TOKENS, "HumanEval", 4096)   # byte-level tokens: a body is hundreds of them
    r = evaluate_chat(model, tok, CPU, F32, tasks=["HumanEval"], max_problems=4)
    assert len(model.asked) == 4 and r["tasks"]["HumanEval"]["accuracy"] == 0.5
    assert r["tasks"]["HumanEval"]["example"] == body[model.asked[0]][:300]   # the first answer, as the model wrote it


# ---------------------------------------------------------------------------------------------------- bad input
def test_evaluate_chat_rejects_bad_arguments(tok):
    model = PolicyModel(tok, lambda p, c: [0])
    with pytest.raises(ValueError, match=r"unknown chat task\(s\) \['Nope'\]; known: ARC-Easy"):
        evaluate_chat(model, tok, CPU, F32, tasks=["ARC-Easy", "Nope"])
    with pytest.raises(ValueError, match="'arc-easy'"):   # the names are CHAT_TASKS' keys, case included
        evaluate_chat(model, tok, CPU, F32, tasks=["arc-easy"])
    for bad in (0, -2, -100):
        with pytest.raises(ValueError, match=f"max_problems must be an int: -1 \\(all\\) or ≥ 1, got {bad}"):
            evaluate_chat(model, tok, CPU, F32, tasks=["ARC-Easy"], max_problems=bad)
    assert model.asked == []   # refused before any task was loaded or any question asked

def test_get_task_unknown_name():
    with pytest.raises(ValueError, match=r"unknown task 'gsm9k'; known tasks: arc-easy"): get_task("gsm9k")

BAD_CONVERSATIONS = [
    ({"messages": [{"role": "robot", "content": "hi"}]}, r"message 0: unknown role 'robot'; roles: system, user, assistant"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "again"}]},
     r"message 1: expected role 'assistant', got 'user' \(turns alternate"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, r"message 0: expected role 'user', got 'assistant'"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "late"}]},
     r"message 1: expected role 'assistant', got 'system' \(a system message is allowed only first\)"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]}, r"message 1 \(assistant\): empty content"),
    ({"messages": [{"role": "user", "content": ""}]}, r"message 0 \(user\): empty content"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": []}]}, r"message 1 \(assistant\): empty content \(no parts\)"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"type": "code", "text": "x"}]}]},
     r"message 1 \(assistant\), part 0: must be"),
    ({"messages": []}, "conversation has no messages"),
    ({"msgs": []}, r"a conversation is a dict \{'messages': \[...\]\}, got dict with keys \['msgs'\]"),
]

@pytest.mark.parametrize("conv,error", BAD_CONVERSATIONS)
def test_bad_conversations_are_named(tok, conv, error):
    with pytest.raises(ValueError, match=error): check_conversation(conv)
    with pytest.raises(ValueError, match=error): tok.render_conversation(conv)
    with pytest.raises(ValueError, match=error): tok.render_for_completion(conv)

def test_bad_conversation_in_an_eval_is_named(tok):
    "A conversation an eval cannot render fails with the same message, not deep in the model."
    model = PolicyModel(tok, lambda p, c: [0])
    bad = {"messages": [{"role": "robot", "content": "hi"}], "letters": ("A", "B")}
    with pytest.raises(ValueError, match="unknown role 'robot'"): score_categorical(model, tok, [bad], CPU, F32)
    with pytest.raises(ValueError, match="unknown role 'robot'"): generate_answers(model, tok, [bad], dtype=F32)


# ---------------------------------------------------------------------------------------------------- HumanEval cannot be forged
# Each completion is HumanEval/0's function; when the tests call it, it gathers every string it can read through one
# channel, prints those that mention "passed" (a pass marker would) or an assert of the tests, writes them to every
# file descriptor it has, and exits with status 0 before any assert can fail. None may score as a pass: the proof that the tests finished must be
# out of the program's reach. `got` collects strings; `read(path)` is a file's text or the error.
LEAK = '''import os, sys, re
def read(p, n=1 << 20):
    "The first `n` bytes (a MB) of file `p` as text (never waiting: a pipe reopened through /proc may be empty), or the error."
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
        try: return os.read(fd, n).decode("utf-8", "replace")
        finally: os.close(fd)
    except OSError as e: return repr(e)
def strings(x, seen, depth=0):
    "Every str inside `x`: code constants, containers, frames' variables."
    if id(x) in seen or x is seen or depth > 6: return []
    seen.add(id(x))
    if isinstance(x, str): return [x]
    if isinstance(x, bytes): return [x.decode("utf-8", "replace")]
    if hasattr(x, "co_consts"): return [s for c in x.co_consts for s in strings(c, seen, depth + 1)]
    if isinstance(x, dict): x = list(x.values())
    if isinstance(x, (list, tuple, set, frozenset)): return [s for c in list(x) for s in strings(c, seen, depth + 1)]
    return []
def useful(s): return "passed" in s or " ".join(("assert", "candidate(")) in s   # a pass marker; the tests' asserts
def marks(s):
    "Each mention of a mark in `s`, with 200 characters either side: kept as it goes, as a whole venv's text would not fit."
    out = []
    for m in ("passed", " ".join(("assert", "candidate("))):   # joined here, not kept in a global the exploit then finds
        i = s.find(m)
        while i >= 0: out.append(s[max(0, i - 200):i + 200]); i = s.find(m, i + 1)
    return out
def has_close_elements(numbers, threshold):
    got, seen = [], set()
    try:
{gather}
    except BaseException as e: got.append(repr(e))   # whatever it found so far
    found = "\\n".join(s for s in got if useful(s))
    print(found, flush=True)
    for fd in range(3, 64):
        try: os.write(fd, found.encode())
        except OSError: pass
    os._exit(0)
'''
CHANNELS = {
    "own source via __file__": 'got.append(read(sys.modules["__main__"].__file__))',
    "own source via sys.argv": 'got += [read(a) for a in sys.argv]',
    "own source via /proc/self/cmdline": 'got += [read(a) for a in read("/proc/self/cmdline").split("\\0") if a]',
    "own source via inspect": 'import inspect\n'
                              'try: got.append(inspect.getsource(sys.modules["__main__"]))\n'
                              'except Exception as e: got.append(repr(e))\n'
                              'f = sys._getframe()\n'
                              'while f:\n'
                              '    try: got.append(inspect.getsource(f.f_code))\n'
                              '    except Exception: pass\n'
                              '    f = f.f_back',
    "code constants of the frames": 'f = sys._getframe()\n'
                                    'while f: got += strings(f.f_code, seen) + strings(f.f_globals, seen) + strings(f.f_locals, seen); f = f.f_back',
    "gc objects and referrers": 'import gc\n'
                                'for o in gc.get_objects() + gc.get_referrers(has_close_elements, sys._getframe().f_code):\n'
                                '    got += strings(o, seen)\n'
                                '    for r in gc.get_referents(o):\n'
                                '        if hasattr(r, "co_consts") or isinstance(r, str): got += strings(r, seen)',
    "environment": 'got += list(os.environ.values()) + [read("/proc/self/environ")]',
    "stdin": 'try: got.append(os.read(0, 1 << 20).decode("utf-8", "replace"))\nexcept OSError as e: got.append(repr(e))',
    "inherited file descriptors": 'for fd in os.listdir("/proc/self/fd"):\n'
                                  '    got.append(read(f"/proc/self/fd/{fd}"))\n'
                                  '    try: os.set_blocking(int(fd), False); got.append(os.read(int(fd), 1 << 20).decode("utf-8", "replace"))\n'
                                  '    except OSError: pass',
    "files in the work and temp folders": 'import tempfile\n'
                                          'for d in {os.getcwd(), tempfile.gettempdir(), "/tmp"}:\n'
                                          '    for root, dirs, files in os.walk(d):\n'
                                          '        got += [m for n in files for m in marks(read(os.path.join(root, n), 1 << 16))]',   # 64 KB: a test program is a few
    "other processes' cmdline, environ, fds and files": 'for pid in [p for p in os.listdir("/proc") if p.isdigit()]:\n'
                                  '    for what in ("cmdline", "environ"):\n'
                                  '        text = read(f"/proc/{pid}/{what}"); got.append(text)\n'
                                  '        got += [read(a) for a in text.split("\\0") if a.startswith("/")]\n'
                                  '    try: got += [read(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]\n'
                                  '    except OSError as e: got.append(repr(e))',
    "other processes' memory": 'for pid in [p for p in os.listdir("/proc") if p.isdigit() and p != str(os.getpid())]:\n'
                               '    try:\n'
                               '        with open(f"/proc/{pid}/mem", "rb") as mem:\n'
                               '            for line in open(f"/proc/{pid}/maps"):\n'
                               '                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))\n'
                               '                try: mem.seek(lo); got += re.findall(r"tests passed [0-9a-f]+", mem.read(min(hi - lo, 1 << 24)).decode("latin-1"))\n'
                               '                except (OSError, OverflowError, ValueError): pass\n'
                               '    except OSError as e: got.append(repr(e))',
}

@pytest.fixture(scope="module")
def humaneval(mirror, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NANOCHAT_BASE_DIR", str(tmp_path_factory.mktemp("base")))
        task = get_task("humaneval")
    return task

@pytest.mark.parametrize("channel", CHANNELS)
def test_humaneval_pass_cannot_be_printed(humaneval, channel):
    c = humaneval[0]
    completion = LEAK.replace("{gather}", "\n".join("        " + l for l in CHANNELS[channel].splitlines()))
    compile(completion, channel, "exec")   # the exploit itself is valid Python
    assert humaneval.evaluate(c, completion) is False, channel
    # the same, seen from the sandbox: the exploit ran to its exit (or wrote into its answers pipe) and never saw the tests
    r = execute_tests(humaneval_candidate(c, completion), c["test"], c["entry_point"], helpers=c["prompt"], timeout=10)
    assert r.status == "fail" and ("(exit code 0) before answering" in r.reason or "answered" in r.reason), r.reason
    assert "assert candidate(" not in r.stdout, (channel, r.stdout[:2000])

def test_humaneval_leak_harness_is_live(humaneval):
    "The exploits' scaffolding works: the same completion without the early exit, answering right, passes."
    c = humaneval[0]
    good = LEAK.replace("{gather}", '        got.append("passed")').replace("    for fd in range(3, 64):", "    for fd in ():").replace(
        "    os._exit(0)\n", "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n")
    assert humaneval.evaluate(c, good) is True
    assert humaneval.evaluate(c, good.replace("< threshold", "> threshold")) is False

def test_humaneval_answers_that_compare_equal_to_anything_fail(humaneval):
    "An object whose == is always True (and whose bool, hash, repr lie) is not an answer: only plain values are."
    c = humaneval[0]
    liar = ("class Liar:\n    __eq__ = lambda s, o: True\n    __ne__ = lambda s, o: False\n    __bool__ = lambda s: True\n"
            "    __hash__ = lambda s: 0\n    __repr__ = lambda s: 'True'\n"
            "def has_close_elements(numbers, threshold):\n    return Liar()\n")
    assert humaneval.evaluate(c, liar) is False

def test_humaneval_patching_the_tests_fails(humaneval):
    "Code that replaces the checker's machinery (builtins, the exit path) before the tests run does not make a pass."
    c = humaneval[0]
    patches = [  # after the uncaught AssertionError, an atexit hook exits 0 (and prints what today's marker would be)
        "import atexit, os, sys, re\n"
        "def done():\n"
        "    src = open(sys.argv[0]).read() if os.path.exists(sys.argv[0]) else ''\n"
        "    print(*re.findall(r'tests passed [0-9a-f]+', src), flush=True); os._exit(0)\n"
        "atexit.register(done)\n"
        "def has_close_elements(numbers, threshold): return None\n",
        # every assert's AssertionError swallowed by a trace function that jumps over failing lines is out of reach:
        # a failing check exits 1 whatever the candidate's process does to itself
        "import sys, builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {})\n"
        "sys.excepthook = lambda *a: None\n"
        "def has_close_elements(numbers, threshold): return None\n"]
    for p in patches: assert humaneval.evaluate(c, p) is False, p

def test_humaneval_every_canonical_call_crosses_the_pipe_unchanged(humaneval):
    """Every argument the tests pass and every answer a reference solution gives, for all 164 problems, survives the
    checker's protocol with its value and type (trusted code, run here: the sandboxed path is tested below)."""
    import ast
    crossed = 0
    for c in humaneval:
        ref = {}; exec(c["messages"][-1]["content"], ref)
        def candidate(*args, **kwargs):
            nonlocal crossed
            a = ast.literal_eval(repr((args, kwargs)))          # as the candidate's process reads a call
            assert a == (args, kwargs) and list(map(type, a[0])) == list(map(type, args)), (c["task_id"], args)
            value = ref[c["entry_point"]](*args, **kwargs)
            got = _answer(repr(("ok", value)) + "\n", c["entry_point"])   # as the checker reads the answer
            assert got == value and type(got) is type(value), (c["task_id"], value)
            crossed += 1
            return got
        env = {}; exec(c["prompt"], env); env[c["entry_point"]] = candidate; exec(c["test"], env)
        env["check"](candidate)
    assert crossed > 164 * 3   # every problem called its candidate (most several times)

def test_humaneval_problems_with_helpers_pass_in_two_processes(humaneval):
    "Problems whose tests use the prompt's helpers (poly, encode_cyclic, encode_shift) or random inputs pass in the sandbox."
    for i in (32, 38, 50, 53):
        c = humaneval[i]
        assert humaneval.evaluate(c, c["messages"][-1]["content"]), c["task_id"]
        assert not humaneval.evaluate(c, c["prompt"] + "    return None\n"), c["task_id"]


@pytest.mark.parametrize("bad", [2.5, 0, -2, "10", True])
def test_evaluate_chat_refuses_bad_max_problems(bad):
    "A fractional or non-integer problem count is a ValueError naming it (it was a TypeError deep in the loop)."
    with pytest.raises(ValueError, match=r"max_problems must be an int: -1 \(all\) or ≥ 1, got"):
        evaluate_chat(None, None, "cpu", None, max_problems=bad)
