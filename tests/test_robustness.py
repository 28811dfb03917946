"""What goes wrong around a run rather than inside it: a relative NANOCHAT_BASE_DIR (the runner and the chapters' kernels
have different working folders), a stage resumed with changed settings, a disk that fills up or is read-only while a
checkpoint is written. A toy model and a counting task keep every test to a second or two; the full disk and the
read-only folder are real (a 1 MB tmpfs in a private mount namespace, via `unshare`).

Run: .venv/bin/pytest tests/test_robustness.py -q
"""
import errno, json, os, shutil, subprocess, sys
from pathlib import Path
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


# ---- 1. a relative NANOCHAT_BASE_DIR -------------------------------------------------------------------------------

CHILD = "from nanochat.common import base_dir; print(base_dir())"

def test_relative_base_dir_is_made_absolute_for_children(tmp_path):
    """The course runner reads the base dir in the repository root and its kernels run in nbs/: one run, one folder.
    A process that reads a relative NANOCHAT_BASE_DIR makes it absolute in os.environ, so children inherit the same folder."""
    (tmp_path/"nbs").mkdir()
    parent = ("import os, subprocess, sys\n" + CHILD + "\n"
              "print(os.environ['NANOCHAT_BASE_DIR'])\n"
              "print(subprocess.run([sys.executable, '-c', sys.argv[1]], cwd='nbs', capture_output=True, text=True, check=True).stdout, end='')")
    env = {**os.environ, "NANOCHAT_BASE_DIR": "cache/nanochat", "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", parent, CHILD], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    mine, exported, childs = r.stdout.splitlines()
    assert mine == exported == childs == str(tmp_path/"cache"/"nanochat"), r.stdout
    assert not (tmp_path/"nbs"/"cache").exists()   # nothing written beside the notebooks


def test_base_dir_normalises(tmp_path, monkeypatch):
    from nanochat.common import base_dir
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NANOCHAT_BASE_DIR", "a/../b")
    assert base_dir() == tmp_path/"b" and os.environ["NANOCHAT_BASE_DIR"] == str(tmp_path/"b")
    monkeypatch.chdir(tmp_path/"b")
    assert base_dir() == tmp_path/"b"   # once absolute, a later change of folder does not move it
    monkeypatch.setenv("NANOCHAT_BASE_DIR", "~/x")
    monkeypatch.setenv("HOME", str(tmp_path/"home"))
    assert base_dir() == tmp_path/"home"/"x"


# ---- a toy stage: counting sequences, the loop every stage calls ----------------------------------------------------

class CountingLoader:
    "Endless batches of counting sequences (mod 64); targets masked (-1) in the first half of each row."
    def __init__(self, B, T=16, state=None): self.B, self.T, self.i = B, T, (state or {}).get("i", 0)
    def __next__(self):
        g = torch.Generator().manual_seed(self.i); self.i += 1
        rows = (torch.randint(0, 64, (self.B, 1), generator=g) + torch.arange(self.T + 1)) % 64
        x, y = rows[:, :-1], rows[:, 1:].clone(); y[:, : self.T // 2] = -1
        return x, y
    def state_dict(self): return dict(i=self.i)
    def close(self): pass

def toy_model(vocab=64, width=32):
    from nanochat.model import GPT, GPTConfig
    torch.manual_seed(0)
    return GPT(GPTConfig(sequence_len=16, vocab_size=vocab, n_layer=1, n_head=2, n_kv_head=2, n_embd=width))

def toy_stage(P, restart=False, stop_after=None):
    "A stage as midtrain() is one: its settings `P` (chapter 03's keys), the shared loop, its own checkpoint folder."
    from nanochat.train_loop import train
    return train(toy_model(), lambda s: CountingLoader(P.device_batch_size, 16, s), Path(P.run_dir)/"toy_checkpoints",
                 val_batches=[next(CountingLoader(4, 16, dict(i=10**6)))], token_bytes=torch.ones(64, dtype=torch.int32),
                 device="cpu", dtype=torch.float32, total_batch_size=P.total_batch_size, num_iterations=P.mid_num_iterations,
                 time_budget=P.mid_time_budget, eval_every=P.eval_every, checkpoint_every=P.checkpoint_every,
                 settings={k: v for k, v in P.items() if k != "run_dir"}, lr_scale=P.mid_lr_scale, name="toy",
                 restart=restart, stop_after=stop_after, quiet=True)

def toy_cli(run_dir, *sets, extra=()):
    "`python -m nanochat.midtrain`'s command line (stage_cli), in this process, on the toy stage; returns its JSON line."
    from nanochat.train_loop import stage_cli
    base = ["device=cpu", "dtype=float32", "compile=false", "device_batch_size=2", "total_batch_size=256",
            "mid_num_iterations=6", "eval_every=100", "checkpoint_every=100"]
    stage_cli(["--preset", "smoke", "--run-dir", str(run_dir), "--set", *base, *sets, *extra], "03_midtrain", toy_stage,
              "python -m nanochat.midtrain", "toy")


# ---- 2. a stage resumed with changed settings -----------------------------------------------------------------------

def test_resume_with_changed_settings_refuses_naming_each_key(tmp_path, capsys):
    toy_cli(tmp_path, extra=["--stop-after", "3"])
    assert json.loads(capsys.readouterr().out)["step"] == 3
    with pytest.raises(SystemExit) as e:
        toy_cli(tmp_path, "total_batch_size=512", "mid_num_iterations=10", "mid_lr_scale=0.5")
    msg = str(e.value.code)
    assert len(msg.splitlines()) == 1, msg
    for change in ("total_batch_size 256 → 512", "mid_num_iterations 6 → 10", "mid_lr_scale 1.0 → 0.5"):
        assert change in msg, msg
    assert "step_000003.pt" in msg and "--restart" in msg, msg
    # the way out it names: start the stage over with the new settings
    toy_cli(tmp_path, "total_batch_size=512", "mid_num_iterations=10", "mid_lr_scale=0.5", extra=["--restart"])
    out = json.loads(capsys.readouterr().out)
    assert out["step"] == 10 and out["tokens"] == 10 * 512, out


def test_memory_and_eval_knobs_may_change_on_resume(tmp_path, capsys):
    "device_batch_size (gradient accumulation keeps the step's batch), eval and checkpoint cadence: they resume."
    toy_cli(tmp_path, extra=["--stop-after", "3"])
    capsys.readouterr()
    toy_cli(tmp_path, "device_batch_size=4", "eval_every=2", "checkpoint_every=2", "eval_tokens=2048")
    out = json.loads(capsys.readouterr().out)
    assert out["step"] == 6 and out["tokens"] == 6 * 256, out


def test_resume_checks_the_loops_own_arguments(tmp_path):
    "Without settings (a caller of `train` of its own), the schedule's arguments are compared: 20 steps are not 30."
    from nanochat.train_loop import train
    from nanochat.checkpoint import CheckpointError
    kw = dict(val_batches=[next(CountingLoader(4))], token_bytes=torch.ones(64, dtype=torch.int32), device="cpu",
              dtype=torch.float32, total_batch_size=128, time_budget=600, eval_every=100, checkpoint_every=100, quiet=True)
    train(toy_model(), lambda s: CountingLoader(2, 16, s), tmp_path, num_iterations=20, stop_after=2, **kw)
    with pytest.raises(CheckpointError, match=r"num_iterations 20 → 30.*warmdown_ratio 0.2 → 0.5"):
        train(toy_model(), lambda s: CountingLoader(2, 16, s), tmp_path, num_iterations=30, warmdown_ratio=0.5, **kw)
    assert train(toy_model(), lambda s: CountingLoader(2, 16, s), tmp_path, num_iterations=20, **kw)["step"] == 20


# ---- 3. a full disk, a read-only folder ------------------------------------------------------------------------------

class FullDisk:
    "A file that takes `room` bytes, then fails each write as a full disk does (OSError ENOSPC)."
    def __init__(self, f, room): self.f, self.room = f, room
    def write(self, b):
        if len(b) > self.room: raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(b); return self.f.write(b)
    def __getattr__(self, name): return getattr(self.f, name)
    def __enter__(self): return self
    def __exit__(self, *a): return self.f.__exit__(*a)

def fill_disk(monkeypatch, room=100_000):
    "From now on, files opened by atomic_write (every checkpoint) hit a full disk after `room` bytes."
    import builtins, nanochat.common as C
    monkeypatch.setattr(C, "open", lambda *a, **kw: FullDisk(builtins.open(*a, **kw), room), raising=False)

def tensors_equal(a, b): return all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys()

def test_disk_full_names_the_file_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    from nanochat.checkpoint import save_checkpoint, load_checkpoint, CheckpointError
    m = toy_model(1024, 64)
    meta = dict(model_config=m.config.__dict__)
    first = save_checkpoint(tmp_path, 1, m, [], meta, [{}])
    fill_disk(monkeypatch)
    with pytest.raises(CheckpointError) as e: save_checkpoint(tmp_path, 2, m, [], meta, [{}])
    msg = str(e.value)
    assert isinstance(e.value, OSError) and e.value.errno == errno.ENOSPC
    assert len(msg.splitlines()) == 1 and msg.startswith(f"cannot write checkpoint {tmp_path/'step_000002.pt'}: no space left on device ("), msg
    assert "free" in msg and "step_000001.pt" in msg, msg
    assert [p.name for p in tmp_path.iterdir()] == ["step_000001.pt"]   # the temp file is gone
    assert tensors_equal(load_checkpoint(first)["model"], m.state_dict())


def test_disk_full_in_a_stage_is_one_line(tmp_path, monkeypatch):
    "Through a stage's command line: `error: cannot write checkpoint …: no space left on device …`, no traceback."
    fill_disk(monkeypatch, room=10_000)
    with pytest.raises(SystemExit) as e: toy_cli(tmp_path, extra=["--stop-after", "2"])
    msg = str(e.value.code)
    assert msg.startswith("error: cannot write checkpoint ") and "step_000002.pt: no space left on device" in msg, msg
    assert len(msg.splitlines()) == 1, msg


def in_mount_namespace(*args):
    """Run this file's `mount-worker` in a private mount namespace (`unshare -m`, as root; `unshare -rm` otherwise), where
    it may mount a tmpfs that nothing outside sees; its last stdout line is JSON."""
    unshare = shutil.which("unshare")
    root = os.geteuid() == 0
    cmd = [unshare, "-m" if root else "-rm", sys.executable, __file__, "mount-worker", *map(str, args)]
    probe = unshare and subprocess.run([unshare, "-m" if root else "-rm", "true"], capture_output=True, text=True)
    if not probe or probe.returncode:
        why = "no unshare command" if not unshare else probe.stderr.strip()
        if root: pytest.fail(f"cannot make a private mount namespace as root ({why}): the real disk tests need one")
        pytest.skip(f"no unprivileged mount namespace here ({why}); the monkeypatched full-disk tests ran")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.splitlines()[-1])

def mount_worker(folder, how):
    "In a private mount namespace: a 1 MB tmpfs on `folder`, one checkpoint, then a second on a full (or read-only) disk."
    from nanochat.checkpoint import save_checkpoint, load_checkpoint
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", folder], check=True)
    m = toy_model(1024, 64)   # ~0.7 MB of weights: one checkpoint fits, two do not
    meta = dict(model_config=m.config.__dict__)
    first = save_checkpoint(folder, 1, m, [], meta, [{}])
    if how == "read-only": subprocess.run(["mount", "-o", "remount,ro", folder], check=True)
    try: save_checkpoint(folder, 2, m, [], meta, [{}]); err = None
    except Exception as e: err = dict(type=type(e).__name__, msg=str(e), oserror=isinstance(e, OSError))
    print(json.dumps(dict(err=err, files=sorted(os.listdir(folder)), intact=tensors_equal(load_checkpoint(first)["model"], m.state_dict()))))

@pytest.mark.parametrize("how, cause", [("full", "no space left on device"), ("read-only", "read-only file system")])
def test_real_full_and_read_only_disk(tmp_path, how, cause):
    out = in_mount_namespace(tmp_path, how)
    err = out["err"]
    assert err is not None, out
    assert err["type"] == "CheckpointWriteError" and err["oserror"], err
    assert err["msg"].startswith(f"cannot write checkpoint {tmp_path/'step_000002.pt'}: {cause}"), err
    assert len(err["msg"].splitlines()) == 1, err
    assert out["files"] == ["step_000001.pt"] and out["intact"], out


if __name__ == "__main__" and sys.argv[1:2] == ["mount-worker"]:
    mount_worker(sys.argv[2], sys.argv[3])
