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
