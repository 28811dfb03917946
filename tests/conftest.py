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
