"settings.ini presets: every shipped preset is valid; bad values fail fast, naming the key, before any work."
import os, sys, time, subprocess
from pathlib import Path
import pytest
from nanochat.settings import load_preset, PARAMS

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "nanochat.course"]

@pytest.mark.parametrize("preset", ["smoke", "quickstart", "gpu", "gpu_course"])
def test_shipped_presets_are_valid(preset):
    s = load_preset(preset, path=REPO/"settings.ini")
    assert set(s) == set(PARAMS)

@pytest.mark.parametrize("args, expect", [
    (["--set", "depth=-1"], "depth = '-1' is out of range; allowed: int from 1 to 64"),
    (["--set", "deph=2"], "unknown key 'deph' (did you mean 'depth'?)"),
    (["--set", "depth=0", "seed=-1"], "seed = '-1' is out of range"),   # every bad value named, not only the first
    (["--set", "depth=0", "seed=-1"], "depth = '0' is out of range"),
    (["--set", "vocab_size=lots"], "vocab_size = 'lots' is not a valid int"),
    (["--set", "device=tpu"], "device = 'tpu' is out of range; allowed: one of auto, cpu, cuda, mps"),
])
def test_bad_override_fails_fast(args, expect, tmp_path):
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(tmp_path/"base")}
    t = time.time()
    r = subprocess.run(CLI + ["run", "--preset", "smoke", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert time.time() - t < 5, f"took {time.time() - t:.1f}s"
    assert r.returncode != 0 and expect in r.stderr, r.stderr
    assert not (tmp_path/"base"/"base_data").exists()   # nothing downloaded, nothing trained

@pytest.mark.parametrize("edit, expect", [
    (("[smoke]", "[smoke]\nwidht = 3"), "unknown key 'widht'"),
    (("depth = 2\n", "depth = -1\n"), "[smoke] depth = '-1' is out of range"),
    (("[smoke]", "[smoke]\nseed = 1\nseed = 2"), "seed"),          # a duplicate key: ConfigParser's error, reworded
])
def test_bad_settings_file_fails_fast(edit, expect, tmp_path):
    bad = tmp_path/"settings.ini"
    bad.write_text((REPO/"settings.ini").read_text().replace(*edit, 1))
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(tmp_path/"base"), "NANOCHAT_SETTINGS": str(bad)}
    r = subprocess.run(CLI + ["run", "--preset", "smoke"], capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert r.returncode != 0 and expect in r.stderr and "Traceback" not in r.stderr, r.stderr

def test_unknown_preset_lists_presets():
    with pytest.raises(ValueError, match="presets: smoke, quickstart, gpu"): load_preset("fast", path=REPO/"settings.ini")

def test_batch_consistency():
    # smoke: 4 rows × 64 tokens per forward pass; 600 is not a whole number of passes, 100 not even one
    for bad in (100, 600):
        with pytest.raises(ValueError, match=f"total_batch_size = {bad} must be a multiple of device_batch_size × max_seq_len = 4 × 64 = 256"):
            load_preset("smoke", {"total_batch_size": bad}, path=REPO/"settings.ini")
    assert load_preset("smoke", {"total_batch_size": 768}, path=REPO/"settings.ini")["total_batch_size"] == 768


def test_percent_is_just_a_character(tmp_path):
    "A `%` is no reference to another key: the value is read as written, and an error names its own section and key."
    ini = tmp_path/"settings.ini"
    ini.write_text((REPO/"settings.ini").read_text().replace("device = auto\n", "device = au%to\n", 1))   # in [DEFAULT]
    with pytest.raises(ValueError) as e: load_preset("smoke", path=ini)
    assert str(e.value).startswith("settings.ini [DEFAULT] device = 'au%to' is out of range; allowed: one of auto"), str(e.value)
    ini.write_text((REPO/"settings.ini").read_text().replace("# all chapters: random seed", "# all chapters: 100% random seed", 1))
    assert load_preset("smoke", path=ini)["seed"] == 42   # in a comment, too, it is a character


INT_KEYS = [k for k, p in PARAMS.items() if p.type is int]

@pytest.mark.parametrize("key", INT_KEYS)
def test_int_keys_refuse_fractions_and_take_whole_numbers(key):
    "Every int-typed key the same way: 2.5 is a ValueError naming key, value and range; a whole number written 4.0 is 4."
    with pytest.raises(ValueError, match=rf"--set {key} = '2.5' is not a valid int; allowed: int from"):
        load_preset("smoke", {key: "2.5"}, path=REPO/"settings.ini")
    # a value in range that keeps [smoke]'s batch whole (512 = 2 × 4 rows × 64 tokens)
    ok = 1024 if key in ("total_batch_size", "chat_batch_size") else next(v for v in (4, 64, 1024, 100_000) if v >= PARAMS[key].lo and v <= (PARAMS[key].hi or v))
    assert load_preset("smoke", {key: f"{ok}.0"}, path=REPO/"settings.ini")[key] == ok


def test_chat_batch_size_must_divide_into_forward_passes():
    "chat_batch_size is checked as total_batch_size is: whole forward passes of device_batch_size × max_seq_len; -1 = the same."
    with pytest.raises(ValueError, match=r"chat_batch_size = 300 must be a multiple of device_batch_size × max_seq_len = 4 × 64 = 256"):
        load_preset("smoke", {"chat_batch_size": "300"}, path=REPO/"settings.ini")
    assert load_preset("smoke", {"chat_batch_size": "-1"}, path=REPO/"settings.ini")["chat_batch_size"] == -1
    assert load_preset("quickstart", path=REPO/"settings.ini")["chat_batch_size"] == 4096


@pytest.mark.parametrize("cmd", ["run", "check"])
def test_unknown_preset_says_did_you_mean(cmd, tmp_path):
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(tmp_path/"base")}
    r = subprocess.run(CLI + [cmd, "--preset", "quickstrat"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    err = r.stderr.strip()
    assert r.returncode != 0 and "\n" not in err, err
    assert err.startswith("error: unknown preset 'quickstrat' (did you mean 'quickstart'?); presets: smoke, quickstart, gpu, gpu_course"), err


def test_cross_key_constraint_fails_at_check_in_one_line(tmp_path):
    "A batch that cannot be made of whole forward passes fails at `check`, naming the keys, before anything runs."
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(tmp_path/"base")}
    r = subprocess.run(CLI + ["check", "--preset", "smoke", "--set", "device_batch_size=3"], capture_output=True, text=True,
                       cwd=REPO, env=env, timeout=60)
    err = r.stderr.strip()
    assert r.returncode != 0 and "\n" not in err and "Traceback" not in err, err
    assert "total_batch_size = 512" in err and "device_batch_size × max_seq_len = 3 × 64 = 192" in err, err


def test_odd_head_dim_is_refused():
    with pytest.raises(ValueError, match="head_dim = 33 must be even"):
        load_preset("smoke", {"head_dim": 33}, path=REPO/"settings.ini")


def test_unknown_chapter_is_an_error_not_a_success(tmp_path):
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(tmp_path/"base")}
    r = subprocess.run(CLI + ["run", "--preset", "smoke", "--only", "99_nope"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert r.returncode != 0 and "unknown chapter(s) 99_nope; chapters: 00_tokenizer" in r.stderr, r.stderr
    assert not (tmp_path/"report.md").exists()   # an existing report is never overwritten by a run that did nothing


def test_ranges_print_as_integers():
    with pytest.raises(ValueError, match="allowed: int from 0 to 2,147,483,647"):
        load_preset("smoke", {"seed": -1}, path=REPO/"settings.ini")
