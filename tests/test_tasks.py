"Chat tasks: known rows of each dataset (served from the offline mirror), slicing, mixtures, the generated tasks."
import json, sys, subprocess, collections
import pytest
from nanochat.tokenizer import check_conversation
from nanochat.tasks import (Task, TaskMixture, TaskSequence, ARC, MMLU, GSM8K, HumanEval, SmolTalk, Identity, SimpleSpelling,
                            SpellingBee, TASKS, get_task, extract_answer, gsm8k_parts, humaneval_program, extract_code, render_mc,
                            load_rows, load_words, spelling_words, is_test_word)
from nanochat.skills import build_mixture

NANOCHAT_MID = "smoltalk:all mmlu:all gsm8k:all identity:2000 simplespelling:{} spellingbee:{}"
NANOCHAT_SFT = "arc-easy:all arc-challenge:all gsm8k:all smoltalk:10000 identity:1000 simplespelling:300 spellingbee:300"

pytestmark = pytest.mark.usefixtures("mirror", "base")

def test_gsm8k_train_row0_parts():
    c = GSM8K(split="train")[0]
    assert c["messages"][0] == {"role": "user", "content": "Natalia sold clips to 48 of her friends in April, and then she sold half "
                                "as many clips in May. How many clips did Natalia sell altogether in April and May?"}
    assert c["messages"][1] == {"role": "assistant", "content": [
        {"type": "text", "text": "Natalia sold 48/2 = "}, {"type": "python", "text": "48/2"}, {"type": "python_output", "text": "24"},
        {"type": "text", "text": "24 clips in May.\nNatalia sold 48+24 = "}, {"type": "python", "text": "48+24"},
        {"type": "python_output", "text": "72"}, {"type": "text", "text": "72 clips altogether in April and May.\n#### 72"}]}

def test_gsm8k_parts_edge_cases():
    assert gsm8k_parts("<<2*3=6>>6\n#### 6") == [{"type": "python", "text": "2*3"}, {"type": "python_output", "text": "6"},
                                                {"type": "text", "text": "6\n#### 6"}]   # no empty text part at the start
    with pytest.raises(ValueError, match="not <<expression=result>>"): gsm8k_parts("x <<42>> y")

def test_extract_answer():
    assert extract_answer("#### 1,234") == "1234"
    assert extract_answer("first #### 5, then corrected:\n#### -7") == "-7"   # the last one counts
    assert extract_answer("#### 18.00") == "18" and extract_answer("#### 2.50") == "2.5"
    assert extract_answer("The answer is 42.") is None and extract_answer("") is None

def test_gsm8k_evaluate():
    t = GSM8K(split="test")
    c = t[0]
    ref = extract_answer(c["messages"][1]["content"][-1]["text"])
    assert t.evaluate(c, f"Some working.\n#### {ref}") and t.evaluate(c, f"#### {int(ref):,}")
    assert not t.evaluate(c, f"#### {int(ref) + 1}") and not t.evaluate(c, ref)   # no #### marker: no answer

def test_arc_numeric_labels_and_odd_sizes():
    arc = ARC("ARC-Easy", split="train")
    c = arc[4]   # NYSEDREGENTS_2006_8_10: labels 1-4, answerKey '3'
    assert c["id"] == "NYSEDREGENTS_2006_8_10" and c["letters"] == ("A", "B", "C", "D")
    assert c["messages"][0]["content"] == ("Rocks are classified as igneous, metamorphic, or sedimentary according to\n\nA. their color\n"
                                           "B. their shape\nC. how they formed\nD. the minerals they contain\n\n"
                                           "Answer with the letter of the correct choice.")
    assert c["messages"][1] == {"role": "assistant", "content": "C"}
    assert arc[690]["letters"] == ("A", "B", "C") and arc[690]["messages"][1]["content"] == "C"        # labels 1-3, key '3'
    assert arc[289]["letters"] == ("A", "B", "C") and arc[289]["messages"][1]["content"] == "A"
    assert arc[753]["letters"] == tuple("ABCDE") and arc[753]["messages"][1]["content"] == "D"         # five choices
    assert arc.eval_type == "categorical"
    assert arc.evaluate(c, "C") and arc.evaluate(c, " C.\n") and not arc.evaluate(c, "A")

def test_mmlu_answer_letter():
    c = MMLU(split="test")[0]
    assert c["subject"] == "abstract_algebra" and c["letters"] == ("A", "B", "C", "D")
    assert c["messages"][0]["content"] == render_mc("Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.",
                                                    "ABCD", ["0", "4", "2", "6"])
    assert c["messages"][1]["content"] == "B"   # answer index 1

def test_construction_validates():
    with pytest.raises(ValueError, match="'ARC-Easy', 'ARC-Challenge'"): ARC("ARC-Hard", split="test")
    with pytest.raises(ValueError, match="'train', 'validation', 'test'"): ARC(split="dev")
    with pytest.raises(ValueError, match="'auxiliary_train', 'validation', 'test', 'dev'"): MMLU(split="train")
    with pytest.raises(ValueError, match="'main'"): GSM8K("socratic", split="train")
    with pytest.raises(ValueError, match="'train', 'test'"): SmolTalk(split="validation")
    with pytest.raises(ValueError, match="'train', 'test'"): SpellingBee(split="validation")
    with pytest.raises(ValueError, match="size must be an int ≥ 1"): SimpleSpelling(size=0)
    with pytest.raises(ValueError, match="size must be an int ≥ 1"): Identity(size=-3)

def test_slicing_len_indexerror():
    full = GSM8K(split="test")
    assert len(full) == 1319
    t = GSM8K(split="test", start=10, stop=20, step=3)   # rows 10, 13, 16, 19
    assert len(t) == 4
    assert t[0] == full[10] and t[3] == full[19] and t[-1] == full[19] and list(t)[1] == full[13]
    with pytest.raises(IndexError): t[4]
    with pytest.raises(IndexError): t[-5]
    with pytest.raises(TypeError): t["0"]
    assert len(GSM8K(split="test", start=1300, stop=10**6)) == 19   # a stop past the end is cut, as in a slice
    assert len(GSM8K(split="test", start=5000)) == 0
    with pytest.raises(ValueError, match="step must be ≥ 1"): GSM8K(split="test", step=0)
    with pytest.raises(ValueError, match="stop must be ≥ start"): GSM8K(split="test", start=5, stop=4)
    with pytest.raises(ValueError, match="start must be ≥ 0"): GSM8K(split="test", start=-1)
    with pytest.raises(ValueError, match="must be an int"): GSM8K(split="test", stop=2.5)

def test_every_task_first_20_conversations_are_valid():
    tasks = [get_task(name) for name in TASKS] + [ARC("ARC-Easy", split="train"), ARC("ARC-Challenge", split="train"),
             MMLU(split="auxiliary_train"), GSM8K(split="train"), SmolTalk(split="train"), SimpleSpelling(split="train"), SpellingBee(split="train")]
    for t in tasks:
        assert t.eval_type in ("categorical", "generative")
        for i in range(20): check_conversation(t[i])

def test_get_task():
    assert isinstance(get_task("arc-easy"), ARC) and get_task("arc-easy").split == "test" and get_task("ARC_Challenge").subset == "ARC-Challenge"
    assert get_task("gsm8k", split="train", stop=5).split == "train" and len(get_task("gsm8k", split="train", stop=5)) == 5
    assert len(get_task("humaneval")) == 164 and len(get_task("mmlu")) == 14079
    with pytest.raises(ValueError, match="unknown task 'hellaswag'; known tasks: arc-easy, arc-challenge, mmlu, gsm8k, humaneval"):
        get_task("hellaswag")

def test_smoltalk_cleaning():
    train, test = SmolTalk(split="train"), SmolTalk(split="test")
    assert (len(train), train.dropped_invalid, train.dropped_duplicates) == (42843, 0, 1085)   # the mirror's stand-in
    assert (len(test), test.dropped_invalid, test.dropped_duplicates) == (2265, 0, 46)
    assert len({json.dumps(c["messages"]) for c in train}) == len(train)
    c = train[0]; c["messages"].append({"role": "user", "content": "mutated"})
    assert train[0]["messages"][-1]["content"] != "mutated"   # conversations are copies: the cached rows stay intact
    with pytest.raises(NotImplementedError): train.evaluate(train[0], "hello")

def test_downloads_land_in_base_dir(base):
    load_rows.cache_clear()
    GSM8K(split="test")
    assert (base/"tasks"/"openai"/"gsm8k"/"main"/"test-00000-of-00001.parquet").is_file()

def test_identity():
    t = Identity(size=500, seed=7)
    assert len(t) == 500 and t[123] == Identity(size=500, seed=7)[123]
    assert [t[i] for i in range(50)] != [Identity(size=500, seed=8)[i] for i in range(50)]
    turns = collections.Counter(len(c["messages"]) // 2 for c in t)
    assert turns[1] > 0 and sum(v for k, v in turns.items() if k >= 2) > 250   # mostly multi-turn
    text = " ".join(m["content"] for c in t for m in c["messages"] if m["role"] == "assistant")
    for fact in ("nanochat", "course", "calculator", "web", "memory", "mistakes"): assert fact in text
    for c in t: check_conversation(c)
    with pytest.raises(NotImplementedError, match="no automatic evaluation"): t.evaluate(t[0], "I am nanochat")

def test_spelling_split_disjoint_and_deterministic():
    words = load_words()
    assert len(words) == 370099
    train, test = spelling_words("train"), spelling_words("test")
    assert not set(train) & set(test) and set(train) | set(test) == set(words)
    assert 0.09 < len(test) / len(words) < 0.11
    assert spelling_words("train", 1) != train and sorted(spelling_words("train", 1)) == sorted(train)   # another order, same words
    s_test, s_train = SimpleSpelling(size=300, split="test"), SimpleSpelling(size=300, split="train")
    assert all(is_test_word(c["word"]) for c in s_test) and not any(is_test_word(c["word"]) for c in s_train)
    assert len({c["word"] for c in s_train}) == 300   # no word twice
    c = s_train[5]
    assert c["messages"][1]["content"] == "-".join(c["word"]) and s_train.evaluate(c, "-".join(c["word"]) + "\n")
    assert c == SimpleSpelling(size=300, split="train")[5]
    bee_test = SpellingBee(size=300, split="test")
    assert all(is_test_word(c["word"]) for c in bee_test)

def test_spellingbee_python_part_computes_the_count():
    bee = SpellingBee(size=500, split="train")
    absent = 0
    for c in bee:
        word, letter = c["word"], c["letter"]
        parts = c["messages"][1]["content"]
        assert [p["type"] for p in parts] == ["text", "python", "python_output", "text"]
        assert parts[1]["text"] == f"'{word}'.count('{letter}')"
        assert eval(parts[1]["text"]) == int(parts[2]["text"]) == sum(ch == letter for ch in word)
        assert parts[-1]["text"].endswith(f"#### {word.count(letter)}") and "-".join(word) in parts[0]["text"]
        assert bee.evaluate(c, f"#### {word.count(letter)}") and not bee.evaluate(c, f"#### {word.count(letter) + 1}")
        absent += word.count(letter) == 0
    assert 0 < absent < 100   # about one question in ten asks for a letter the word may lack

def test_mixture_and_sequence_determinism():
    a, b = GSM8K(split="test", stop=30), ARC("ARC-Easy", split="test", stop=20)
    m1, m2, m3 = TaskMixture([a, b], seed=3), TaskMixture([a, b], seed=3), TaskMixture([a, b], seed=4)
    assert len(m1) == 50 and m1.order == m2.order and m1.order != m3.order
    assert [m1[i] for i in range(50)] == [m2[i] for i in range(50)]
    assert sorted(m1.locate(i) for i in range(50)) == [(0, i) for i in range(30)] + [(1, i) for i in range(20)]   # every row once
    s = TaskSequence([a, b])
    assert len(s) == 50 and s[0] == a[0] and s[29] == a[29] and s[30] == b[0] and s[49] == b[19]
    with pytest.raises(ValueError, match="at least one task"): TaskMixture([])
    with pytest.raises(ValueError, match="must be a Task"): TaskMixture([a, "gsm8k"])

def test_mixture_refuses_mmlu_auxiliary_train_with_arc_train():
    with pytest.raises(ValueError, match="show them twice"):
        TaskMixture([MMLU(split="auxiliary_train"), GSM8K(split="train"), ARC("ARC-Challenge", split="train")])
    with pytest.raises(ValueError, match="show them twice"):   # also through a nested mixture
        TaskMixture([TaskMixture([MMLU(split="auxiliary_train")]), ARC("ARC-Easy", split="train")])
    TaskMixture([MMLU(split="auxiliary_train"), ARC("ARC-Easy", split="test")])   # test questions are not in auxiliary_train
    TaskMixture([ARC("ARC-Easy", split="train")] * 2)                             # oversampling one task on purpose is fine

# ARC-Challenge train holds this question twice (MEA_2011_8_8, MEA_2012_5_8: one exam question asked in two years), so
# it is in both mixtures twice; MMLU auxiliary_train, ARC train in the mirror, holds it twice as well.
KNOWN_DUPLICATE = "How many times does Earth rotate on its axis in one day?"

def duplicate_questions(mix):
    "Questions seen more than once in `mix` (identity excluded: it repeats by design): first user message, or the whole chat."
    seen = collections.Counter()
    for t in mix.tasks:
        if isinstance(t, Identity): continue
        for c in t:
            key = json.dumps(c["messages"]) if isinstance(t, SmolTalk) else c["messages"][0]["content"]
            seen[key] += 1
    return {k: n for k, n in seen.items() if n > 1}

@pytest.mark.parametrize("make", [lambda: build_mixture(NANOCHAT_MID.format(3000, 3000)), lambda: build_mixture(NANOCHAT_SFT)])
def test_training_mixtures_no_duplicate_questions(make):
    mix = make()
    assert mix.order == make().order and mix[1234] == make()[1234]   # deterministic
    dups = duplicate_questions(mix)
    assert len(dups) == 1 and list(dups.values()) == [2] and next(iter(dups)).startswith(KNOWN_DUPLICATE)
    for i in range(0, len(mix), 97): check_conversation(mix[i])

def test_mixture_contents():
    mid = build_mixture("smoltalk:1000 mmlu:all gsm8k:all identity:200 simplespelling:200 spellingbee:100")
    sft = build_mixture(NANOCHAT_SFT)
    assert [type(t).__name__ for t in mid.tasks] == ["SmolTalk", "MMLU", "GSM8K", "Identity", "SimpleSpelling", "SpellingBee"]
    assert len(mid) == 1000 + 3370 + 7473 + 200 + 200 + 100
    assert [type(t).__name__ for t in sft.tasks] == ["ARC", "ARC", "GSM8K", "SmolTalk", "Identity", "SimpleSpelling", "SpellingBee"]
    assert len(sft) == 2251 + 1119 + 7473 + 10000 + 1000 + 300 + 300

def test_humaneval_program_runs_canonical_solutions():
    "Every canonical solution, as the whole function or the body only, passes its tests; a wrong one fails (trusted code, in a subprocess)."
    he = HumanEval()
    assert len(he) == 164 and he[0]["entry_point"] == "has_close_elements" and he[0]["task_id"] == "HumanEval/0"
    programs = []
    for c in he:
        body = c["messages"][1]["content"][len(c["prompt"]):]
        programs += [humaneval_program(c, c["messages"][1]["content"]),                            # the whole function, plain
                     humaneval_program(c, f"Sure:\n```python\n{c['messages'][1]['content']}```\n"),  # in a fenced block
                     humaneval_program(c, body)]                                                   # the body only
    wrong = humaneval_program(he[0], "def has_close_elements(numbers, threshold):\n    return False\n")
    script = ("import json, sys\nprogs = json.load(sys.stdin)\nok = []\nfor p in progs:\n    try: exec(p, {}); ok.append(True)\n"
              "    except BaseException: ok.append(False)\nprint(json.dumps(ok))")
    r = subprocess.run([sys.executable, "-c", script], input=json.dumps(programs + [wrong]), capture_output=True, text=True, timeout=300)
    ok = json.loads(r.stdout.strip().splitlines()[-1])
    assert ok[:-1] == [True] * len(programs) and ok[-1] is False

def test_extract_code():
    assert extract_code("Here:\n```python\ndef f():\n    return 1\n```\nand more ```python\nx\n```") == "def f():\n    return 1"
    assert extract_code("```\nprint(1)\n```") == "print(1)"
    assert extract_code("\n    return x + 1\n\n") == "    return x + 1"

def test_humaneval_evaluate_in_sandbox():
    he = HumanEval(timeout=3)
    c = he[2]
    assert he.evaluate(c, c["messages"][1]["content"]) is True
    assert he.evaluate(c, "```python\n" + c["messages"][1]["content"][len(c["prompt"]):] + "```") is True   # the body only, fenced
    assert he.evaluate(c, f"def {c['entry_point']}(*args):\n    return None\n") is False
    assert he.evaluate(c, f"def {c['entry_point']}(*args):\n    while True: pass\n") is False   # killed at the timeout
    # code that exits with status 0 before the tests run is not a pass: the verdict is the exit status of the tests' process
    assert he.evaluate(c, "import sys\nsys.exit(0)\n") is False
    assert he.evaluate(c, f"import os\ndef {c['entry_point']}(*args):\n    os._exit(0)\n") is False
    assert he.evaluate(c, "print('tests passed 0123456789abcdef')\nimport sys\nsys.exit(0)\n") is False
