"Shared fixtures: the offline mirror of upstream files, served on 127.0.0.1, and a private base directory."
from pathlib import Path
import pytest
from nanochat.dataset import use_mirror

REPO = Path(__file__).resolve().parents[1]
MIRROR = REPO.parent/"shared"/"data"/"mirror"

@pytest.fixture(scope="session")
def mirror_dir():
    if not MIRROR.is_dir():  # a hard failure, never a silent skip: CI always has ../shared beside the clone
        pytest.fail(f"offline mirror not found at {MIRROR}: the tests need ../shared/data/mirror beside the repository")
    return MIRROR

@pytest.fixture(scope="session")
def mirror(mirror_dir):
    "Serve the mirror and point HF_ENDPOINT / NANOCHAT_MIRROR at it for the whole session; yields the base URL."
    with use_mirror(mirror_dir) as url: yield url

@pytest.fixture
def base(tmp_path, monkeypatch):
    "A fresh, empty NANOCHAT_BASE_DIR for one test."
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path/"base"))
    return tmp_path/"base"


@pytest.fixture(scope="session")
def chat_run(mirror, tmp_path_factory):
    """A real smoke-size run, trained once per test session through the library (tokenizer, base, mid and sft
    checkpoints, as chapters 00–04 make them); yields its run folder. The chat front ends are tested against it."""
    import os
    from nanochat.settings import chapter_setup
    from nanochat.dataset import download_shards, iter_texts
    from nanochat.tokenizer import Tokenizer
    from nanochat.pretrain import pretrain
    from nanochat.midtrain import midtrain
    from nanochat.sft import sft
    base = tmp_path_factory.mktemp("chat_run_base")
    old = os.environ.get("NANOCHAT_BASE_DIR")
    os.environ["NANOCHAT_BASE_DIR"] = str(base)
    try:
        o = dict(device="cpu")
        P = chapter_setup("00_tokenizer", "smoke", overrides=o)
        download_shards(P.num_shards)
        tok = Tokenizer.train_from_iterator(iter_texts("train", P.tokenizer_max_chars), P.vocab_size, show_progress=False)
        tok.save(P.run_dir/"tokenizer")
        pretrain(chapter_setup("02_pretrain", "smoke", overrides=o), quiet=True)
        midtrain(chapter_setup("03_midtrain", "smoke", overrides=o), quiet=True)
        sft(chapter_setup("04_sft", "smoke", overrides=o), quiet=True)
    finally:
        if old is None: os.environ.pop("NANOCHAT_BASE_DIR", None)
        else: os.environ["NANOCHAT_BASE_DIR"] = old
    yield P.run_dir


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory):
    """Where the browser tests save their screenshots: a temp folder, or `$NANOCHAT_SCREENSHOTS` (the README's images are
    refreshed with `NANOCHAT_SCREENSHOTS=docs/images pytest tests/test_chat_web.py tests/test_chat_widget.py`)."""
    import os
    d = Path(os.environ["NANOCHAT_SCREENSHOTS"]).resolve() if os.environ.get("NANOCHAT_SCREENSHOTS") else tmp_path_factory.mktemp("screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


CHROME_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

@pytest.fixture(scope="session")
def chrome_path():
    """The Chrome or Chromium the browser tests drive: `$CHROME_PATH` (which `bash run.sh test` sets after finding or
    installing one), else the first on PATH. None found is a failure naming the command that provides one, never a skip."""
    import os, shutil
    p = os.environ.get("CHROME_PATH") or next(filter(None, map(shutil.which, CHROME_NAMES)), None)
    if not p or not Path(p).exists():
        pytest.fail(f"no Chrome or Chromium ({'CHROME_PATH=' + p if p else 'none on PATH'}): `bash run.sh needs` finds or installs one")
    return p
