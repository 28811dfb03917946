"The course runner end to end at smoke size: killed mid-chapter, re-run, it continues; report.md holds real numbers."
import os, re, sys, time, signal, subprocess
from pathlib import Path
from nanochat.common import load_json

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p.stem for p in (REPO/"nbs").glob("0*.ipynb"))

def _wait_for(pred, timeout, proc):
    t = time.time()
    while time.time() - t < timeout:
        if pred(): return True
        if proc.poll() is not None: return False
        time.sleep(0.5)
    return False

def test_course_smoke_kill_resume_report(mirror_dir, tmp_path):
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(tmp_path/"base")}
    for k in ("HF_ENDPOINT", "NANOCHAT_MIRROR"): env.pop(k, None)   # the runner's --mirror serves it
    cmd = [sys.executable, "-m", "nanochat.course", "run", "--preset", "smoke", "--mirror", str(mirror_dir)]
    run_dir = tmp_path/"base"/"runs"/"smoke"
    # 1. start, and kill the whole process group (runner + kernel) in the middle of pretraining, after a checkpoint
    log = open(tmp_path/"first.log", "w")
    p = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ckpts = lambda: [f for f in (run_dir/"base_checkpoints").glob("*") if not f.name.startswith(".")] if (run_dir/"base_checkpoints").exists() else []
    hit = _wait_for(lambda: ckpts() and "02_pretrain" not in load_json(run_dir/"state.json").get("completed", {}), 600, p)
    os.killpg(p.pid, signal.SIGKILL); p.wait(); log.close()
    first = (tmp_path/"first.log").read_text()
    assert hit, f"never saw a pretraining checkpoint before the run ended:\n{first[-3000:]}"
    done_before = list(load_json(run_dir/"state.json")["completed"])
    assert "00_tokenizer" in done_before and "02_pretrain" not in done_before
    # 2. the same command again: completed chapters are skipped, pretraining resumes from its checkpoint
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-5000:]
    for nb in done_before: assert f"{nb}: done earlier" in r.stdout
    # the runner's last words: the skills probe of every chat stage, each score with its standard error
    probe = r.stdout[r.stdout.index("skills probe ("):]
    assert "| skill | MID | SFT | constant | items |" in probe and re.search(r"\| arithmetic \| [0-9.]+ ± [0-9.]+ \| [0-9.]+ ± [0-9.]+ \|", probe), probe
    assert re.search(r"resum", (run_dir/"logs"/"02_pretrain.log").read_text(), re.I)
    state = load_json(run_dir/"state.json")
    assert list(state["completed"]) == CHAPTERS
    for nb in CHAPTERS: assert (run_dir/"notebooks"/f"{nb}.ipynb").exists()
    # 3. report.md, copied to the working directory, has the header, the BASE column with real numbers and the figures
    rep = (tmp_path/"report.md").read_text()
    assert "preset `smoke`" in rep and "git commit:" in rep and "hardware:" in rep and "torch" in rep
    assert "| metric | BASE | MID | SFT |" in rep
    bpb = re.search(r"\| val_bpb \| ([0-9.]+) \|", rep)
    assert bpb and 0 < float(bpb.group(1)) < 12, rep
    assert re.search(r"\| CORE(-\d+)? \| -?[0-9.]+", rep), rep   # named as nanochat's report card names it
    assert "| steps | 30 |" in rep, rep   # the resumed run reaches the same final step ([smoke] num_iterations = 30)
    assert "| **total** |" in rep
    figs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", rep)
    assert figs and all((tmp_path/f).exists() for f in figs), figs


# ---- the runner's refusals and its handling of a second runner, Ctrl-C, changed settings and missing inputs ----
# Chapter 01 needs no download and runs in ~10 s at smoke size: the tests that need a real chapter run it.
from nanochat.settings import load_preset

def _env(tmp_path, base=None):
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(base or tmp_path/"base")}
    for k in ("HF_ENDPOINT", "NANOCHAT_MIRROR", "NANOCHAT_SETTINGS"): env.pop(k, None)
    return env

RUN = [sys.executable, "-m", "nanochat.course", "run", "--preset", "smoke"]

def _started(run_dir, nb):
    "True once the runner has recorded an attempt at `nb` and its kernel has written to the log."
    s = run_dir/"state.json"
    return s.exists() and load_json(s).get("attempts", {}).get(nb) and (run_dir/"logs"/f"{nb}.log").exists()

def _fake_run(run_dir, done, overrides=None):
    "A state.json as the runner leaves it after completing `done` with [smoke]'s settings (+ `overrides`)."
    from nanochat.common import save_json
    settings = {k: str(v) for k, v in load_preset("smoke", overrides, path=REPO/"settings.ini").items()}
    t = time.time() - 100
    state = dict(preset="smoke", settings=settings, attempts={nb: [[t, t + 1]] for nb in done},
                 completed={nb: dict(seconds=1.0, intervals=[[t, t + 1]], finished="2025-01-01T00:00:00") for nb in done})
    save_json(state, run_dir/"state.json")
    return state

def test_one_runner_per_run_folder(tmp_path):
    "A second runner on a busy run folder stops at once, naming the first; after a kill -9 the next one takes over."
    env, run_dir = _env(tmp_path), tmp_path/"base"/"runs"/"smoke"
    cmd = RUN + ["--only", "01_model"]
    a = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert _wait_for(lambda: _started(run_dir, "01_model"), 120, a), "the first runner never started 01_model"
        b = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        err = b.stderr.strip()
        assert b.returncode != 0, f"a second runner ran alongside the first:\n{b.stdout[-2000:]}"
        assert f"pid {a.pid}" in err and str(run_dir) in err and "\n" not in err, err
        assert a.poll() is None, "the first runner ended before the second one was refused: the test proves nothing"
    finally:
        if a.poll() is None: os.killpg(a.pid, signal.SIGKILL)
        a.wait()
    assert len(load_json(run_dir/"state.json")["attempts"]["01_model"]) == 1   # the refused runner recorded nothing
    # the killed runner's lock is stale: the next runner says so and takes over
    c = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert c.returncode == 0, c.stdout[-3000:] + c.stderr[-3000:]
    assert re.search(rf"taking over .*pid {a.pid}", c.stdout), c.stdout
    state = load_json(run_dir/"state.json")
    assert "01_model" in state["completed"] and len(state["attempts"]["01_model"]) == 2
    assert all(b is not None for a_, b in state["attempts"]["01_model"])

def test_ctrl_c_is_one_line_and_the_attempt_is_kept(tmp_path):
    env, run_dir = _env(tmp_path), tmp_path/"base"/"runs"/"smoke"
    p = subprocess.Popen(RUN + ["--only", "01_model"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        assert _wait_for(lambda: _started(run_dir, "01_model"), 120, p), "the runner never started 01_model"
        time.sleep(1)   # into the chapter's cells
        p.send_signal(signal.SIGINT)   # what Ctrl-C sends the runner (its kernel is in a session of its own)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None: os.killpg(p.pid, signal.SIGKILL); p.wait()
    assert p.returncode == 130, (p.returncode, err[-3000:])
    assert "Traceback" not in out + err, err[-3000:]
    assert err.strip().splitlines()[-1] == "interrupted in 01_model; re-run the same command to continue", err[-3000:]
    state = load_json(run_dir/"state.json")
    assert "01_model" not in state["completed"]
    [(start, end)] = state["attempts"]["01_model"]
    assert end is not None and end >= start   # the attempt is recorded as ended: its time counts in the report

def test_changed_settings_are_named_with_the_ways_on(tmp_path):
    env, run_dir = _env(tmp_path), tmp_path/"base"/"runs"/"smoke"
    _fake_run(run_dir, ["00_tokenizer", "01_model", "02_pretrain"])
    before = (run_dir/"state.json").read_text()
    r = subprocess.run(RUN + ["--set", "depth=3", "seed=7"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert "depth 2 → 3" in r.stderr and "seed 42 → 7" in r.stderr, r.stderr
    assert "--restart" in r.stderr and "--from 00_tokenizer" in r.stderr, r.stderr   # seed: every chapter reads it
    # --from a chapter after one whose output used a changed key is refused, naming the key and that chapter
    r = subprocess.run(RUN + ["--set", "depth=3", "--from", "03_midtrain"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert "depth (2 → 3)" in r.stderr and "01_model, 02_pretrain" in r.stderr and "--from 01_model" in r.stderr, r.stderr
    assert (run_dir/"state.json").read_text() == before   # refusals change nothing

def test_from_reruns_a_chapter_and_the_later_ones_with_new_settings(tmp_path):
    env, run_dir = _env(tmp_path), tmp_path/"base"/"runs"/"smoke"
    old = _fake_run(run_dir, ["00_tokenizer", "01_model", "02_pretrain"])
    metrics = lambda nb, v: f'{{"chapter": "{nb}", "stage": null, "summary": {{"made": "{v}"}}, "details": {{}}}}'
    for f, text in {"tokenizer/tokenizer.json": "kept", "metrics/00_tokenizer.json": metrics("00_tokenizer", "kept"),
                    "metrics/01_model.json": metrics("01_model", "old"), "metrics/02_pretrain.json": metrics("02_pretrain", "old"),
                    "base_checkpoints/model_000030.pt": "old", "figures/02_pretrain_loss.png": "old", "notebooks/02_pretrain.ipynb": "old"}.items():
        (run_dir/f).parent.mkdir(parents=True, exist_ok=True); (run_dir/f).write_text(text)
    r = subprocess.run(RUN + ["--set", "depth=3", "--from", "01_model", "--only", "01_model"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    state = load_json(run_dir/"state.json")
    assert state["settings"]["depth"] == "3"                         # the new settings are the run's
    assert state["completed"]["00_tokenizer"] == old["completed"]["00_tokenizer"]   # the earlier chapter is kept
    assert list(state["completed"]) == ["00_tokenizer", "01_model"] and "02_pretrain" not in state["attempts"]
    assert (run_dir/"tokenizer"/"tokenizer.json").read_text() == "kept" and load_json(run_dir/"metrics"/"00_tokenizer.json")["summary"] == {"made": "kept"}
    assert load_json(run_dir/"metrics"/"01_model.json")["summary"]["params_total"] > 0   # 01 ran again, with depth 3:
    injected = [c for c in load_json(run_dir/"notebooks"/"01_model.ipynb")["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and 'overrides = {"depth": "3"}' in "".join(injected[0]["source"]), injected
    for f in ("metrics/02_pretrain.json", "base_checkpoints", "figures/02_pretrain_loss.png", "notebooks/02_pretrain.ipynb"):
        assert not (run_dir/f).exists(), f   # a later chapter's outputs went with it: they came from the old settings

def test_a_chapter_without_its_inputs_is_refused(tmp_path):
    "`--only 05_chat` in an empty run would talk to a random model and be recorded complete; it is refused up front."
    env, run_dir = _env(tmp_path), tmp_path/"base"/"runs"/"smoke"
    r = subprocess.run(RUN + ["--only", "05_chat"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "05_chat needs 00_tokenizer, 02_pretrain, 03_midtrain, 04_sft" in r.stderr, r.stderr[-3000:]
    assert not (run_dir/"state.json").exists() or "05_chat" not in load_json(run_dir/"state.json").get("completed", {})
    # a prerequisite completed earlier counts; one scheduled before it in the same command does too
    _fake_run(run_dir, ["00_tokenizer", "01_model", "02_pretrain"])
    r = subprocess.run(RUN + ["--only", "04_sft"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "04_sft needs 03_midtrain" in r.stderr and "00_tokenizer" not in r.stderr.split("needs")[1], r.stderr

def test_missing_inputs_counts_chapters_scheduled_earlier():
    from nanochat.course import missing_inputs
    assert missing_inputs(["00_tokenizer", "02_pretrain"], done=[]) == {}
    assert missing_inputs(["03_midtrain"], done=["00_tokenizer"]) == {"03_midtrain": ["02_pretrain"]}
    assert missing_inputs(["05_chat", "04_sft"], done=["00_tokenizer", "02_pretrain", "03_midtrain"]) == {}   # run in course order
    assert missing_inputs(["05_chat"], done=["00_tokenizer", "02_pretrain", "03_midtrain"]) == {"05_chat": ["04_sft"]}
    assert missing_inputs(["01_model"], done=[]) == {}

def test_relative_base_dir_and_mirror_are_where_typed(mirror_dir, tmp_path):
    "A relative NANOCHAT_BASE_DIR or --mirror means the folder where the command was typed, not the kernels' nbs/."
    env = _env(tmp_path, base="base")
    r = subprocess.run(RUN + ["--only", "01_model", "--mirror", os.path.relpath(mirror_dir, tmp_path)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (tmp_path/"base"/"runs"/"smoke"/"metrics"/"01_model.json").exists()   # the chapter wrote where the runner looks
    assert not (REPO/"nbs"/"base").exists()
    assert f"serving the mirror {mirror_dir.resolve()}" in r.stdout, r.stdout
