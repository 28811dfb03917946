"Every notebook executes top to bottom at smoke size (nbdev-test), against the offline mirror, in chapter order."
import os, sys, subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

def test_nbdev_test_all_notebooks(mirror, tmp_path):
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(tmp_path/"base")}   # mirror: HF_ENDPOINT/NANOCHAT_MIRROR set by the fixture
    # one worker: chapters run in order (00, 01, 02, …) and later ones read what earlier ones saved
    r = subprocess.run([str(Path(sys.executable).parent/"nbdev-test"), "--n-workers", "0", "--do-print", "--timing"],
                       cwd=REPO/"nbs", env=env, capture_output=True, text=True, timeout=1200)
    print(r.stdout[-5000:]); print(r.stderr[-20000:], file=sys.stderr)
    assert r.returncode == 0 and "Success." in r.stdout, "nbdev-test failed: see the captured stderr above"
