"""The skills probe (nanochat.probe): its scoring on known replies, its balance (no constant answer above 35 % on
letter counting), its items disjoint from every training template and mixture row, and a run on a trained smoke model."""
import re
import pytest
from nanochat import probe as P
from nanochat import tasks as T
from nanochat import skills as K
from nanochat.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def words(mirror, tmp_path_factory):
    import os
    from nanochat.dataset import download_shards
    old = os.environ.get("NANOCHAT_BASE_DIR")
    os.environ["NANOCHAT_BASE_DIR"] = str(tmp_path_factory.mktemp("probe_base"))
    try:
        download_shards(1)
        P.probe_words.cache_clear()
        yield P.probe_words()
    finally:
        P.probe_words.cache_clear()
        if old is None: os.environ.pop("NANOCHAT_BASE_DIR", None)
        else: os.environ["NANOCHAT_BASE_DIR"] = old


@pytest.fixture(scope="module")
def items(words):
    return P.probe_items(words=words)


def test_read_reply_separates_the_tool_output():
    tok = Tokenizer([])
    S = tok.encode_special
    ids = (tok.encode("Let me compute: ") + [S("<|python_start|>")] + tok.encode("12*7") + [S("<|python_end|>"), S("<|output_start|>")]
           + tok.encode("84") + [S("<|output_end|>")] + tok.encode(" so it is 84."))
    r = P.read_reply(tok, ids, ended=True)
    assert r == dict(text="Let me compute:  so it is 84.", after_tool=" so it is 84.", exprs=["12*7"], ended=True)
    item = dict(skill="arithmetic", answer=84)
    assert P.passes(item, r) and P.called_right(item, r)
    # the tool's output alone is not the model's answer
    bare = P.read_reply(tok, [S("<|python_start|>"), *tok.encode("12*7"), S("<|python_end|>"), S("<|output_start|>"), *tok.encode("84"), S("<|output_end|>")], True)
    assert not P.passes(item, bare) and P.called_right(item, bare)


@pytest.mark.parametrize("skill,answer,reply,ok", [
    ("identity", "nanochat", "Hello! I'm nanochat, a small chat model.", True),
    ("identity", "nanochat", "I am a small chat model.", False),
    ("identity", "Nano", "I'm nanochat.", False),
    ("arithmetic", 440, "436 plus 4 is 440.", True),
    ("arithmetic", 440, "436 plus 4 is 441.", False),
    ("arithmetic", 1234, "The answer is 1,234", True),
    ("spelling", "formed", "f-o-r-m-e-d", True),
    ("spelling", "formed", "Sure: F - O - R - M - E - D.", True),
    ("spelling", "formed", "f-o-r-m-e", False),
    ("spelling", "formed", "formed", False),
    ("counting", 0, "There are 0.", True),
    ("counting", 2, "Let me spell 'settle': s-e-t-t-l-e. That makes 2.\n\n#### 2", True),
    ("counting", 2, "#### 3", False),
])
def test_passes_known_replies(skill, answer, reply, ok):
    assert P.passes(dict(skill=skill, answer=answer), dict(text=reply, after_tool=reply, exprs=[], ended=True)) is ok


def test_every_reference_reply_passes_its_item_and_a_wrong_one_fails(items):
    for i in items:
        assert P.passes(i, P.reference_reply(i)), i
        assert not P.passes(i, dict(text="I do not know.", after_tool="I do not know.", exprs=[], ended=True)), i


def test_items_are_deterministic_and_sized(items, words):
    assert items == P.probe_items(words=words)
    counts = {s: sum(i["skill"] == s for i in items) for s in P.SKILLS}
    assert all(c >= 100 for c in counts.values()), counts
    assert len({i["question"] for i in items if i["skill"] == "identity"}) == 100
    assert len({re.sub(r"\W", "", t) for t in P.IDENTITY_QUESTIONS}) >= 10
    assert set(words["untaught"]).isdisjoint(words["taught"]) and all(T.is_test_word(w) for w in words["untaught"])


def test_counting_is_balanced(items):
    "No constant answer scores above 35 % on letter counting (each of 0, 1, 2, 3+ a quarter of the items)."
    counting = [i for i in items if i["skill"] == "counting"]
    assert P.constant_baseline(counting) <= 0.35
    classes = [min(i["answer"], 3) for i in counting]
    assert all(classes.count(c) == len(counting) // 4 for c in range(4)), classes
    for answer in ("0", "1", "2", "3", "#### 1"):   # the baseline really is the best constant: try the obvious ones
        assert sum(P.passes(i, dict(text=answer, after_tool=answer, exprs=[], ended=True)) for i in counting) / len(counting) <= P.constant_baseline(counting)


def _norm(s: str) -> str: return re.sub(r"[^a-z{} ]", "", s.lower()).strip()

def test_templates_appear_in_no_generator():
    "No probe question template is a template of a training generator (identity, spelling, letter counting)."
    probe = [*P.IDENTITY_QUESTIONS, *P.SPELLING_TEMPLATES, *P.COUNTING_TEMPLATES, *(t for ts in P.ARITHMETIC_TEMPLATES.values() for t in ts)]
    train = ([q for _, qs, _ in T.IDENTITY_TOPICS for q in qs] + T.IDENTITY_GREETINGS[0] + T.IDENTITY_THANKS[0] + T.SPELL_TEMPLATES + T.BEE_TEMPLATES
             + [t for ts in K.ARITHMETIC_TRAIN_TEMPLATES.values() for t in ts] + K.SPELL_TRAIN_TEMPLATES + K.COUNT_TRAIN_TEMPLATES)
    overlap = {_norm(p) for p in probe} & {_norm(t) for t in train}
    assert not overlap, overlap


def test_items_appear_in_no_mixture_row(items, words, mirror, tmp_path, monkeypatch):
    """No probe question is a user message of any training task (the datasets and our generators), no probe arithmetic
    (a op b) is a calculator expression of any training row, and no probe (word, letter) is a counting row's."""
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path))
    questions = {_norm(i["question"]) for i in items}
    exprs, pairs = set(), set()
    generated = (T.Identity(size=2000), T.SimpleSpelling(size=2000), T.SpellingBee(size=2000), K.Arithmetic(size=20_000),
                 K.CommonSpelling(words["taught"], size=5000), K.LetterCount(words["counting"], size=20_000))
    for task in (T.SmolTalk(split="train"), T.GSM8K(split="train"), *generated):
        for conv in task:
            for m in conv["messages"]:
                if m["role"] == "user": assert _norm(m["content"]) not in questions, m["content"]
                elif isinstance(m["content"], list):
                    exprs.update(re.sub(r"\s", "", p["text"]) for p in m["content"] if p["type"] == "python")
            if isinstance(task, K.LetterCount): pairs.add((conv["word"], conv["letter"]))
    probe_exprs = {f"{a}{i['op']}{b}" for i in items if i["skill"] == "arithmetic" for a, b in [i["operands"]]}
    assert exprs and not (probe_exprs & exprs), probe_exprs & exprs
    probe_pairs = {(i["word"], i["letter"]) for i in items if i["skill"] == "counting"}
    assert pairs and not (probe_pairs & pairs), probe_pairs & pairs


def test_taught_words_are_the_spelling_rows_words(items, words):
    "The probe's taught words are spelled in training (CommonSpelling walks all of them); the untaught ones never are."
    spelled = {c["word"] for c in K.CommonSpelling(words["taught"], size=len(words["taught"]))}
    asked = {i["answer"] for i in items if i["skill"] == "spelling"}
    assert asked <= spelled and not spelled & {i["answer"] for i in items if i["skill"] == "spelling (untaught)"}


def test_probe_on_a_trained_model(chat_run, words):
    "The whole probe on the smoke run's SFT model: every skill scored with its error and baseline, and its table."
    from nanochat.checkpoint import load_chat_model
    model, tok, _ = load_chat_model(run_dir=chat_run, stage="sft")
    res = P.skills_probe(model, tok, n=20, words=words)
    assert set(res["skills"]) == set(P.SKILLS)
    for v in res["skills"].values():
        assert 0 <= v["accuracy"] <= 1 and v["n"] == 20 and abs(v["stderr"] - P.stderr(v["accuracy"], 20)) < 1e-12
    assert res["skills"]["identity"]["constant"] == 1.0 and res["skills"]["counting"]["constant"] == 0.25
    assert res["ends_turn"]["n"] == 100 and set(P.probe_table(res)) == {*P.SKILLS, "calculator, right expression", "ends its turn"}
