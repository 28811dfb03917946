"""CORE: each task type on hand-made examples whose answer is known, the centring, the few-shot rule, cropping,
batching, a whole (synthetic) bundle end to end, and the real bundle downloaded from the offline mirror."""
import os, json, random, socket
from pathlib import Path
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from nanochat import core_eval as ce
from nanochat.core_eval import CoreTask


class ByteTok:
    "One token per byte; BOS = 256."
    def get_bos_token_id(self): return 256
    def encode(self, text, prepend=None):
        if isinstance(text, list): return [self.encode(t, prepend) for t in text]
        return ([] if prepend is None else [prepend]) + list(text.encode("utf-8"))


class Oracle(torch.nn.Module):
    """Logits that strongly favour the byte that followed the previous `k` bytes in one of `texts`, flat elsewhere:
    a model that knows exactly the answers we give it. `max_len`, if set, is its context window, enforced."""
    def __init__(self, texts, k=16, max_len=None):
        super().__init__()
        self.k, self.next, self.seen_lengths = k, {}, []
        for text in texts:
            b = text.encode("utf-8")
            for i in range(len(b)): self.next.setdefault(b[max(0, i - k):i], set()).add(b[i])
        if max_len: self.config = type("Cfg", (), {"sequence_len": max_len})()

    def forward(self, ids):
        self.seen_lengths.append(ids.shape[1])
        if hasattr(self, "config"): assert ids.shape[1] <= self.config.sequence_len, "prompt not cropped"
        logits = torch.zeros(*ids.shape, 257)
        for r, row in enumerate(ids.tolist()):
            for p in range(len(row)):
                ctx = bytes(x for x in row[max(0, p - self.k + 1):p + 1] if x < 256)
                for nxt in self.next.get(ctx, ()): logits[r, p, nxt] = 10.0
        return logits


tok = ByteTok()
flat = lambda ids: torch.zeros(*ids.shape, 257)

MC = CoreTask("mc", "multiple_choice", 2, "\nAnswer: ", 25.0)
MC_DATA = [dict(query=f"Question: what is three times {a}?", choices=[str(3 * a + d) for d in (1, -1, 0, 2)], gold=2)
           for a in range(11, 17)]
SCHEMA = CoreTask("schema", "schema", 1, " ", 50.0)
SCHEMA_DATA = [dict(context_options=[f"Kim{i} lent Lee{i} money because Kim{i}", f"Kim{i} lent Lee{i} money because Lee{i}"],
                    continuation="was broke that month.", gold=1) for i in range(4)]
LM = CoreTask("lm", "language_modeling", 3, "\nAnswer: ", 0.0)
LM_DATA = [dict(context=f"Q: the colour of thing {i}?", continuation=c) for i, c in enumerate(["red", "blue", "green", "amber", "teal"])]


def with_answer(task, item, answer):
    "The text of `item` solved with `answer`: the gold index (mc, schema) or a continuation string (lm)."
    if task.type == "multiple_choice": return ce.render_mc(item, task.delimiter)[answer]
    if task.type == "schema": return ce.render_schema(item, task.delimiter)[answer]
    return ce.render_lm(dict(item, continuation=answer), task.delimiter)[1]


# --- the three task types, on examples whose answer we know ----------------------------------------------------------

def test_multiple_choice_picks_the_choice_the_model_prefers():
    knows_gold = Oracle([with_answer(MC, it, it["gold"]) for it in MC_DATA])
    assert ce.evaluate_task(knows_gold, tok, MC, MC_DATA, "cpu") == [True] * len(MC_DATA)
    knows_other = Oracle([with_answer(MC, it, 3) for it in MC_DATA])  # "3a+2": a wrong choice, after the gold one
    assert ce.evaluate_task(knows_other, tok, MC, MC_DATA, "cpu") == [False] * len(MC_DATA)
    # a flat model ties every choice and the first wins the tie: right only where gold == 0
    data = [dict(it, gold=g) for it, g in zip(MC_DATA, [0, 1, 2, 3, 0, 2])]
    assert ce.evaluate_task(flat, tok, MC, data, "cpu") == [g == 0 for g in [0, 1, 2, 3, 0, 2]]


def test_schema_picks_the_context_that_makes_the_continuation_likely():
    knows_gold = Oracle([with_answer(SCHEMA, it, it["gold"]) for it in SCHEMA_DATA])
    assert ce.evaluate_task(knows_gold, tok, SCHEMA, SCHEMA_DATA, "cpu") == [True] * len(SCHEMA_DATA)
    knows_other = Oracle([with_answer(SCHEMA, it, 0) for it in SCHEMA_DATA])
    assert ce.evaluate_task(knows_other, tok, SCHEMA, SCHEMA_DATA, "cpu") == [False] * len(SCHEMA_DATA)


def test_language_modeling_needs_an_exact_greedy_match():
    knows = Oracle([with_answer(LM, it, it["continuation"]) for it in LM_DATA])
    assert ce.evaluate_task(knows, tok, LM, LM_DATA, "cpu") == [True] * len(LM_DATA)
    # right until the last byte, then wrong: "rex" for "red" must not count
    almost = Oracle([with_answer(LM, it, it["continuation"][:-1] + "x") for it in LM_DATA])
    assert ce.evaluate_task(almost, tok, LM, LM_DATA, "cpu") == [False] * len(LM_DATA)
    # knowing a longer answer is fine: only the continuation's own tokens are compared
    longer = Oracle([with_answer(LM, it, it["continuation"] + "ish") for it in LM_DATA])
    assert ce.evaluate_task(longer, tok, LM, LM_DATA, "cpu") == [True] * len(LM_DATA)
    assert ce.evaluate_task(flat, tok, LM, LM_DATA, "cpu") == [False] * len(LM_DATA)


def test_scores_are_mean_losses_and_greedy_hits():
    rows = ce.continuation_spans("multiple_choice", tok.encode(ce.render_mc(dict(query="Sky:", choices=["blue", "red"]), " "), prepend=256))
    (l0, hit0), (l1, hit1) = ce.score_rows(Oracle(["Sky: blue"]), rows, "cpu", 256)
    assert hit0 and not hit1 and l0 < 0.05 and l1 > 5
    # exact value on a flat model: every token costs log(257)
    (lf, hf), _ = ce.score_rows(flat, rows, "cpu", 256)
    assert lf == pytest.approx(torch.log(torch.tensor(257.0)).item(), abs=1e-5) and not hf


def test_rows_that_share_their_scored_logits_share_a_forward_pass():
    lettered = CoreTask("letters", "multiple_choice", 2, " ", 25.0)
    data = [dict(query=f"Item {i}: which letter is {'ABCD'[i % 4]}?\nAnswer:", choices=list("ABCD"), gold=i % 4) for i in range(8)]
    oracle = Oracle([with_answer(lettered, it, it["gold"]) for it in data])
    shown = []
    def counting(ids): shown.append(ids.shape[0]); return oracle(ids)
    assert ce.evaluate_task(counting, tok, lettered, data, "cpu", batch_size=8) == [True] * 8
    assert sum(shown) == 8  # 32 rows, 8 sequences through the model
    torch.manual_seed(0)
    net = torch.nn.Embedding(257, 257)
    rows = ce.example_rows(lettered, data, 3, tok)
    assert ce.score_rows(net, rows, "cpu", 256) == [ce.score_rows(net, [r], "cpu", 256)[0] for r in rows]
    # rows that differ before their last token still get their own pass (schema: the contexts differ)
    shown.clear()
    ce.score_rows(counting, ce.example_rows(SCHEMA, SCHEMA_DATA, 0, tok), "cpu", 256)
    assert shown == [2]


# --- prompts, spans, cropping -----------------------------------------------------------------------------------------

def test_rendering_matches_nanochat_layout():
    shots = [dict(query="Q1", choices=["a", "b"], gold=1), dict(query="Q2", choices=["c", "d"], gold=0)]
    assert ce.render_mc(dict(query="Q3", choices=["x", "y"]), "\nA: ", shots) == ["Q1\nA: b\n\nQ2\nA: c\n\nQ3\nA: x", "Q1\nA: b\n\nQ2\nA: c\n\nQ3\nA: y"]
    sshot = [dict(context_options=["P", "R"], continuation="ran.", gold=1)]
    assert ce.render_schema(dict(context_options=["S", "T"], continuation="sat."), " ", sshot) == ["R ran.\n\nS sat.", "R ran.\n\nT sat."]
    lshot = [dict(context="  two plus two  ", continuation="four")]
    assert ce.render_lm(dict(context="one plus one ", continuation="two"), " ", lshot) == ["two plus two four\n\none plus one", "two plus two four\n\none plus one two"]


def test_spans_in_token_space():
    assert ce.continuation_spans("multiple_choice", [[256, 5, 6, 7], [256, 5, 8]]) == [([256, 5, 6, 7], 2, 4), ([256, 5, 8], 2, 3)]
    assert ce.continuation_spans("multiple_choice", [[256, 5], [256, 5]]) == [([256, 5], 1, 2), ([256, 5], 1, 2)]  # identical choices
    assert ce.continuation_spans("schema", [[256, 1, 9, 9], [256, 2, 3, 9, 9]]) == [([256, 1, 9, 9], 2, 4), ([256, 2, 3, 9, 9], 3, 5)]
    assert ce.continuation_spans("schema", [[256, 9, 9], [256, 9, 9]]) == [([256, 9, 9], 1, 3), ([256, 9, 9], 1, 3)]
    assert ce.continuation_spans("language_modeling", [[256, 1, 2], [256, 1, 2, 3]]) == [([256, 1, 2, 3], 3, 4)]
    # a tokenizer merged the boundary: score from the first differing token rather than crash
    assert ce.continuation_spans("language_modeling", [[256, 1, 2], [256, 1, 4, 3]]) == [([256, 1, 4, 3], 2, 4)]
    with pytest.raises(ValueError, match="'qa'"): ce.continuation_spans("qa", [[1]])


def test_crop_left_keeps_the_end_and_shifts_the_span():
    assert ce.crop_left(list(range(10)), 7, 10, 5) == ([5, 6, 7, 8, 9], 2, 5)
    assert ce.crop_left(list(range(10)), 2, 10, 4) == ([6, 7, 8, 9], 1, 4)  # the answer overflows: its start goes
    assert ce.crop_left([1, 2, 3], 1, 3, 100) == ([1, 2, 3], 1, 3)
    with pytest.raises(ValueError, match="at least 2"): ce.crop_left([1, 2, 3], 1, 3, 1)


def test_long_prompts_are_cropped_to_the_model_window_and_still_scored():
    # 2 shots make every MC prompt > 100 bytes; the model refuses anything longer than 40 and must still be right
    model = Oracle([with_answer(MC, it, it["gold"]) for it in MC_DATA], max_len=40)
    assert ce.evaluate_task(model, tok, MC, MC_DATA, "cpu", max_seq_len=ce.model_max_seq_len(model)) == [True] * len(MC_DATA)
    assert max(model.seen_lengths) == 40


def test_batching_does_not_change_results():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Embedding(257, 16), torch.nn.Linear(16, 257))  # a random bigram-ish model
    for task, data in [(MC, MC_DATA), (SCHEMA, SCHEMA_DATA), (LM, LM_DATA)]:
        a = ce.evaluate_task(net, tok, task, data, "cpu", batch_size=1, chunk=2)
        b = ce.evaluate_task(net, tok, task, data, "cpu", batch_size=64)
        assert a == b, task.label
        rows = [r for i in range(len(data)) for r in ce.example_rows(task, data, i, tok)]
        one = [ce.score_rows(net, [r], "cpu", 256)[0] for r in rows]
        together = ce.score_rows(net, rows, "cpu", 256)  # padded to the longest: a causal model ignores the padding
        for (l1, h1), (l2, h2) in zip(one, together): assert l1 == pytest.approx(l2, abs=1e-5) and h1 == h2


# --- centring and few-shot sampling ----------------------------------------------------------------------------------

def test_centering():
    assert ce.centered(0.25, 25) == 0 and ce.centered(1.0, 25) == 1
    assert ce.centered(0.625, 25) == pytest.approx(0.5)
    assert ce.centered(0.38, 62) == pytest.approx(-0.24 / 0.38)
    assert ce.centered(0.1, 0) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="100"): ce.centered(0.5, 100)


def test_fewshot_excludes_the_item_and_is_deterministic():
    for n, k in [(2, 1), (7, 3), (100, 10), (20321, 10)]:
        for idx in {0, 1, n // 2, n - 1}:
            got = ce.fewshot_indices(idx, n, k)
            assert got == ce.fewshot_indices(idx, n, k)
            assert idx not in got and len(set(got)) == len(got) == k and all(0 <= j < n for j in got)
            # nanochat's rule, spelled out: Random(1234 + idx).sample(all other indices, k)
            assert got == random.Random(1234 + idx).sample([i for i in range(n) if i != idx], k)
    assert ce.fewshot_indices(0, 3, 10) == ce.fewshot_indices(0, 3, 2) and len(ce.fewshot_indices(0, 3, 10)) == 2
    assert ce.fewshot_indices(0, 1, 5) == [] and ce.fewshot_indices(4, 10, 0) == []
    assert ce.fewshot_indices(5, 100, 10) != ce.fewshot_indices(6, 100, 10)  # each example gets its own shots


def test_example_rows_use_the_shots_of_the_rule():
    item_idx = 2
    rows = ce.example_rows(LM, LM_DATA, item_idx, tok)
    shots = [LM_DATA[j] for j in ce.fewshot_indices(item_idx, len(LM_DATA), LM.shots)]
    assert bytes(rows[0][0][1:]).decode() == ce.render_lm(LM_DATA[item_idx], LM.delimiter, shots)[1]


# --- a whole bundle --------------------------------------------------------------------------------------------------

def make_bundle(root: Path, with_missing=True) -> Path:
    "A tiny bundle in nanochat's layout: one task of each type, plus (optionally) one whose data file is missing."
    b = root/"eval_bundle"
    tasks = [("mc", MC, MC_DATA, "cat/mc.jsonl"), ("schema", SCHEMA, SCHEMA_DATA, "cat/schema.jsonl"), ("lm", LM, LM_DATA, "cat/lm.jsonl")]
    yaml_lines = ["icl_tasks:"]
    for label, task, data, uri in tasks:
        (b/"eval_data"/uri).parent.mkdir(parents=True, exist_ok=True)
        (b/"eval_data"/uri).write_text("".join(json.dumps(d) + "\n" for d in data))
        yaml_lines += [f"- label: {label}", f"  dataset_uri: {uri}", f"  num_fewshot: [{task.shots}]", f"  icl_task_type: {task.type}"]
        if task.delimiter != " ": yaml_lines.append(f"  continuation_delimiter: {json.dumps(task.delimiter)}")
    if with_missing:
        yaml_lines += ["- label: gone", "  dataset_uri: cat/gone.jsonl", "  num_fewshot: [0]", "  icl_task_type: multiple_choice"]
    (b/"core.yaml").write_text("\n".join(yaml_lines) + "\n")
    (b/"eval_meta_data.csv").write_text("Eval Task,Random baseline\nmc,25\nschema,50\nlm,0\ngone,25\n")
    return b


def test_load_core_tasks_reads_yaml_and_baselines(tmp_path):
    tasks = ce.load_core_tasks(make_bundle(tmp_path))
    assert [(t.label, t.type, t.shots, t.delimiter, t.baseline) for t in tasks] == [
        ("mc", "multiple_choice", 2, "\nAnswer: ", 25.0), ("schema", "schema", 1, " ", 50.0),
        ("lm", "language_modeling", 3, "\nAnswer: ", 0.0), ("gone", "multiple_choice", 0, " ", 25.0)]
    b = make_bundle(tmp_path/"bad")
    (b/"eval_meta_data.csv").write_text("Eval Task,Random baseline\nmc,25\n")
    with pytest.raises(ValueError, match="no 'Random baseline' for task 'schema'"): ce.load_core_tasks(b)
    (b/"core.yaml").write_text((b/"core.yaml").read_text().replace("icl_task_type: schema", "icl_task_type: generation"))
    with pytest.raises(ValueError, match="'generation'"): ce.load_core_tasks(b)



def test_damaged_task_file_names_it_and_the_fix(tmp_path):
    b = make_bundle(tmp_path)
    (b/"eval_data"/"cat"/"mc.jsonl").write_text('{"query": "cut sho')   # a copy interrupted mid-file
    task = next(t for t in ce.load_core_tasks(b) if t.label == "mc")
    with pytest.raises(ValueError, match=r"mc\.jsonl is damaged .*delete .*eval_bundle and run again"): ce.load_task_data(task)

def test_evaluate_core_end_to_end(tmp_path):
    bundle = make_bundle(tmp_path)
    # an oracle that knows every gold answer: accuracy 1 everywhere, CORE 1, and the missing task skipped with a warning
    texts = [with_answer(MC, it, it["gold"]) for it in MC_DATA] + [with_answer(SCHEMA, it, it["gold"]) for it in SCHEMA_DATA]
    texts += [with_answer(LM, it, it["continuation"]) for it in LM_DATA]
    oracle = Oracle(texts, max_len=64)
    oracle.train()
    with pytest.warns(UserWarning, match="'gone' skipped"):
        r = ce.evaluate_core(oracle, tok, "cpu", bundle=bundle, batch_size=3)
    assert oracle.training, "evaluate_core must give the model back in the mode it found it"
    assert max(oracle.seen_lengths) <= 64  # cropped to model.config.sequence_len
    assert (r["core"], r["n_tasks"], r["name"], r["skipped"]) == (1.0, 3, "CORE-3", ["gone"])
    assert {k: (v["accuracy"], v["centered"], v["n"]) for k, v in r["tasks"].items()} == {
        "mc": (1.0, 1.0, 6), "schema": (1.0, 1.0, 4), "lm": (1.0, 1.0, 5)}
    # the flat model: MC right where gold == 0 (never here: gold is 2), schema where gold == 0 (never: 1), LM never
    with pytest.warns(UserWarning):
        rf = ce.evaluate_core(flat, tok, "cpu", bundle=bundle, max_per_task=3, tasks=["mc", "lm", "schema", "gone"])
    assert {k: (v["accuracy"], v["n"]) for k, v in rf["tasks"].items()} == {"mc": (0.0, 3), "schema": (0.0, 3), "lm": (0.0, 3)}
    assert rf["core"] == pytest.approx((-1 / 3 - 1 + 0) / 3)
    # the report helpers
    table = ce.core_table(r)
    assert "CORE-3" in table and "gone" in table and table.count("\n") == 5
    assert ce.centered_by_task(rf) == {"mc": -0.3333, "schema": -1.0, "lm": 0.0}


def test_max_per_task_takes_a_fixed_shuffled_subset(tmp_path):
    bundle = make_bundle(tmp_path, with_missing=False)
    class Spy(torch.nn.Module):  # a flat model that records the prompts it is shown
        def __init__(self): super().__init__(); self.prompts = []
        def forward(self, ids):
            self.prompts += [bytes(x for x in row if x < 256).decode() for row in ids.tolist()]
            return torch.zeros(*ids.shape, 257)
    runs = [Spy(), Spy(), Spy()]
    for spy, m in zip(runs, [2, 2, -1]): ce.evaluate_core(spy, tok, "cpu", bundle=bundle, max_per_task=m, tasks=["mc"])
    sub, again, full = (set(s.prompts) for s in runs)
    assert sub == again  # the same questions every time
    order = list(range(len(MC_DATA))); random.Random(1337).shuffle(order)
    asked = {p.rsplit("\n\n", 1)[-1].split("\n")[0] for p in sub}
    assert asked == {MC_DATA[i]["query"] for i in order[:2]}  # the first 2 of the fixed shuffle
    assert sub < full  # with their few-shot examples exactly as in the full evaluation


def test_bad_arguments_fail_early(tmp_path):
    bundle = make_bundle(tmp_path, with_missing=False)
    with pytest.raises(ValueError, match="max_per_task must be -1 .* got 0"): ce.evaluate_core(flat, tok, "cpu", bundle=bundle, max_per_task=0)
    with pytest.raises(ValueError, match="batch_size must be ≥ 1, got 0"): ce.evaluate_core(flat, tok, "cpu", bundle=bundle, batch_size=0)
    with pytest.raises(ValueError, match=r"unknown CORE task\(s\) \['hellaswag'\].*lm, mc, schema"):
        ce.evaluate_core(flat, tok, "cpu", bundle=bundle, tasks=["hellaswag"])


def _ddp_worker(rank, world, port, bundle, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Embedding(257, 16), torch.nn.Linear(16, 257))
        r = ce.evaluate_core(net, ByteTok(), "cpu", bundle=bundle, max_seq_len=64)
        Path(out, f"rank{rank}.json").write_text(json.dumps(r))
    finally:
        dist.destroy_process_group()


def test_distributed_ranks_split_the_examples_and_agree(tmp_path):
    bundle = make_bundle(tmp_path, with_missing=False)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Embedding(257, 16), torch.nn.Linear(16, 257))
    alone = ce.evaluate_core(net, tok, "cpu", bundle=bundle, max_seq_len=64)
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(bundle), str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        r = json.loads((tmp_path/f"rank{rank}.json").read_text())
        assert {k: (v["accuracy"], v["n"]) for k, v in r["tasks"].items()} == {k: (v["accuracy"], v["n"]) for k, v in alone["tasks"].items()}
        assert r["core"] == pytest.approx(alone["core"])


# --- the real bundle, from the offline mirror -------------------------------------------------------------------------

ROWS = {  # /work/shared/data/EVAL_BUNDLE.md
    "hellaswag_zeroshot": 10042, "hellaswag": 10042, "jeopardy": 2117, "bigbench_qa_wikidata": 20321, "arc_easy": 2376,
    "arc_challenge": 1172, "copa": 100, "commonsense_qa": 1221, "piqa": 1838, "openbook_qa": 500, "lambada_openai": 5153,
    "winograd": 273, "winogrande": 1267, "bigbench_dyck_languages": 1000, "agi_eval_lsat_ar": 230,
    "bigbench_cs_algorithms": 1320, "bigbench_operators": 210, "bigbench_repeat_copy_logic": 32, "squad": 10570,
    "boolq": 3270, "bigbench_language_identification": 10000}


def test_real_bundle_from_the_mirror(mirror, base):
    bundle = ce.download_eval_bundle()
    assert bundle == base/"eval_bundle" and (bundle/"core.yaml").exists()
    assert not list(base.glob(".eval_bundle.*")) and not list(base.glob(".*.tmp"))  # no extraction or download leftovers
    tasks = [t for t in ce.load_core_tasks() if t.path.exists()]
    assert {t.label: len(ce.load_task_data(t)) for t in tasks} == ROWS
    by = {t.label: t for t in tasks}
    assert (by["arc_easy"].shots, by["arc_easy"].delimiter, by["arc_easy"].baseline) == (10, "\nAnswer: ", 25.0)
    assert (by["winogrande"].type, by["squad"].type, by["boolq"].baseline) == ("schema", "language_modeling", 62.0)
    # cached: a second call touches neither the network nor the files
    mtime = (bundle/"core.yaml").stat().st_mtime_ns
    assert ce.download_eval_bundle() == bundle and (bundle/"core.yaml").stat().st_mtime_ns == mtime
    # the whole pipeline on real data, with a known answer: a flat model is right exactly where gold == 0
    r = ce.evaluate_core(flat, tok, "cpu", max_per_task=3, max_seq_len=256)
    assert (r["n_tasks"], r["name"]) == (21, "CORE-21")
    for label, res in r["tasks"].items():
        data = ce.load_task_data(by[label]); random.Random(1337).shuffle(data)
        want = 0.0 if by[label].type == "language_modeling" else sum(d["gold"] == 0 for d in data[:3]) / 3
        assert res["accuracy"] == want and res["n"] == 3, label


def test_incomplete_bundle_folder_is_reported(base):
    (base/"eval_bundle").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="has no core.yaml"): ce.download_eval_bundle()
