"""Committed chapter outputs (nanochat.outputs): they belong to the code beside them, stay under 1 MiB, and survive
nbdev-clean with the `parameters` tag; the command refuses outputs of other code and folders that are not runs."""
import json, shutil, subprocess, sys, base64, io
from pathlib import Path
import pytest
from nanochat.course import CHAPTERS
from nanochat.outputs import (META_KEY, MAX_NB_BYTES, LIBRARY_PRESET, check_outputs, code_hash, write_outputs,
                              library_notebooks, write_library_outputs)

REPO = Path(__file__).resolve().parents[1]
NBS = REPO/"nbs"
LIBRARY = library_notebooks(NBS)


@pytest.mark.parametrize("chapter", [*CHAPTERS, *LIBRARY])
def test_committed_outputs_match_their_code(chapter):
    """A chapter or library notebook whose code cells changed since its outputs were made fails here, naming the way to
    regenerate them."""
    assert (reason := check_outputs(NBS/f"{chapter}.ipynb")) is None, reason


def test_library_notebooks_carry_outputs():
    "Every library notebook carries executed outputs (`bash run.sh outputs --library`), so its docs page shows results."
    assert "optim" in LIBRARY and "performance" in LIBRARY and not set(LIBRARY) & set(CHAPTERS) and "index" not in LIBRARY
    missing = [n for n in LIBRARY if (json.loads((NBS/f"{n}.ipynb").read_text())["metadata"].get(META_KEY) or {}).get("preset") != LIBRARY_PRESET]
    assert not missing, f"library notebooks without outputs: {missing}; run `bash run.sh outputs --library --only {' '.join(missing)}`"


def test_chapters_carry_outputs_all_or_none():
    "Once one chapter carries the outputs of a run, all do, of the same run (preset and commit)."
    recs = {c: json.loads((NBS/f"{c}.ipynb").read_text())["metadata"].get(META_KEY) for c in CHAPTERS}
    have = {c: r for c, r in recs.items() if r}
    if have:
        assert set(have) == set(CHAPTERS), f"outputs in {sorted(have)} but not in {sorted(set(CHAPTERS) - set(have))}"
        runs = {(r["preset"], r["commit"]) for r in have.values()}
        assert len(runs) == 1, f"chapters carry outputs of different runs: {runs}"


@pytest.mark.parametrize("nb", sorted(p.name for p in NBS.glob("*.ipynb")))
def test_notebook_under_size_cap(nb):
    size = (NBS/nb).stat().st_size
    assert size < MAX_NB_BYTES, f"nbs/{nb} is {size / 2**20:.2f} MiB, over the 1 MiB cap: regenerate with a lower --max-lines"


def test_nbdev_keeps_outputs_and_parameters_tags():
    "pyproject's [tool.nbdev] keeps outputs (clear_all false), cell tags and our record through nbdev-clean."
    from nbdev.config import get_config
    cfg = get_config(path=REPO)
    assert not cfg.clear_all, "clear_all must be false: nbdev-clean would delete the committed outputs"
    assert "tags" in cfg.allowed_cell_metadata_keys and META_KEY in cfg.allowed_metadata_keys


def _png() -> str:
    from PIL import Image
    im = Image.new("RGB", (300, 200), "white")
    for x in range(300): im.putpixel((x, x * 2 // 3), (200, 30, 30))
    b = io.BytesIO(); im.save(b, "PNG"); return base64.b64encode(b.getvalue()).decode()


def _fake_run(tmp_path, chapter="01_model", edit=None):
    """A run folder whose executed `chapter` is today's committed one plus papermill's injected cell and outputs (a log,
    a plot, a widget); `edit` changes the copy of nbs/ the outputs go into."""
    run, nbs = tmp_path/"runs"/"quickstart", tmp_path/"nbs"
    (run/"notebooks").mkdir(parents=True); nbs.mkdir()
    committed = json.loads((NBS/f"{chapter}.ipynb").read_text())
    executed = json.loads(json.dumps(committed))
    params = next(i for i, c in enumerate(executed["cells"]) if "parameters" in c["metadata"].get("tags", []))
    executed["cells"].insert(params + 1, dict(cell_type="code", id="injected", execution_count=None, outputs=[],
                             metadata={"tags": ["injected-parameters"]}, source=f'# Parameters\npreset = "quickstart"\nrun_dir = "{run}"\n'))
    code = [c for c in executed["cells"] if c["cell_type"] == "code" and c["id"] != "injected"]
    code[-1]["outputs"] = [dict(output_type="stream", name="stdout", text=f"step {i}\n") for i in range(500)] + [
        dict(output_type="display_data", metadata={}, data={"image/png": _png(), "text/plain": "<Figure>"}),
        dict(output_type="display_data", metadata={}, data={"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                                                            "text/plain": "VBox()"})]
    code[-1]["source"] = "".join(code[-1]["source"]) + "\n# chat_widget"   # the widget is taken for the chat widget
    committed["cells"][[c["id"] for c in committed["cells"]].index(code[-1]["id"])]["source"] = code[-1]["source"]
    executed["metadata"]["papermill"] = dict(exception=False, parameters=dict(preset="quickstart"))
    if edit: edit(committed)
    (nbs/f"{chapter}.ipynb").write_text(json.dumps(committed))
    (run/"notebooks"/f"{chapter}.ipynb").write_text(json.dumps(executed))
    (run/"state.json").write_text(json.dumps(dict(preset="quickstart", completed={chapter: dict(seconds=12.3)})))
    (run/"report.md").write_text("# report\n\n- date: 2026-01-01T00:00:00\n- git commit: 1234abc\n- hardware: test CPU\n")
    return run, nbs


def test_outputs_copied_cleaned_and_recorded(tmp_path):
    run, nbs = _fake_run(tmp_path)
    [p] = write_outputs(run, nbs, ["01_model"])
    nb = json.loads(p.read_text())
    assert not any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"])
    params = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1 and 'preset = "smoke"' in "".join(params[0]["source"]), "the learner's default must stay"
    rec = nb["metadata"][META_KEY]
    assert (rec["preset"], rec["commit"], rec["seconds"]) == ("quickstart", "1234abc", 12) and rec["code_sha256"] == code_hash(nb)
    assert "papermill" not in nb["metadata"] and "widgets" not in nb["metadata"]
    outs = [c for c in nb["cells"] if c["cell_type"] == "code"][-1]["outputs"]
    log = "".join(outs[0]["text"])
    assert log.count("\n") == 61 and "440 lines cut" in log and log.endswith("step 499\n")   # 500 lines → 60 and a note
    assert "image/png" in outs[1]["data"] and "image/png" in outs[2]["data"]                   # the plot, the widget's screenshot
    assert "application/vnd.jupyter.widget-view+json" not in outs[2]["data"]
    assert p.stat().st_size < MAX_NB_BYTES and check_outputs(p) is None
    # nbdev-clean (the repository's settings) leaves the file exactly as written
    before = p.read_bytes()
    r = subprocess.run([str(Path(sys.executable).parent/"nbdev-clean"), "--fname", str(p)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert p.read_bytes() == before, "nbdev-clean changed a notebook written by nanochat.outputs"


def test_edited_code_is_refused_and_caught(tmp_path):
    "Outputs of other code are never copied; outputs whose code is edited afterwards fail the check."
    def edit(nb):
        c = [c for c in nb["cells"] if c["cell_type"] == "code"][3]
        c["source"] = "".join(c["source"]) + "\nprint('edited')"
    run, nbs = _fake_run(tmp_path, edit=edit)
    with pytest.raises(ValueError, match="code cell 4 .* differs from the one that ran"): write_outputs(run, nbs, ["01_model"])
    run2, nbs2 = _fake_run(tmp_path/"b")
    [p] = write_outputs(run2, nbs2, ["01_model"])
    nb = json.loads(p.read_text()); edit(nb); p.write_text(json.dumps(nb))
    assert "code cells changed since its outputs were made" in check_outputs(p)


def test_command_errors_are_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "nanochat.outputs", "--run-dir", str(tmp_path/"nope")], capture_output=True, text=True)
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "is not a course run folder" in r.stderr and str(tmp_path/"nope") in r.stderr


def test_library_notebook_executed_cleaned_and_recorded(tmp_path, mirror_dir):
    """A library notebook executed in place: the cells nbdev-test skips (`#| eval: false`, a `tst_flags` flag) keep no
    output, the throw-away base folder, temp folders, the repository's folder and the mirror print as generic names, a plot is
    kept compressed, nbdev-clean leaves the file as written, and editing its code afterwards makes it stale."""
    nbs = tmp_path/"nbs"; nbs.mkdir()
    cells = ["#| eval: false\nraise SystemExit('must not run')", "#| notest\nraise SystemExit('must not run either')",
             "import tempfile\nfrom nanochat.common import base_dir\nfrom nanochat.settings import repo_root\n"
             "import os\nwith tempfile.TemporaryDirectory() as t: print(base_dir()/'base_data', t, repo_root()/'nbs', os.environ['HF_ENDPOINT'])",
             "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2]); plt.show()"]
    nb = dict(nbformat=4, nbformat_minor=5, cells=[dict(cell_type="code", id=f"c{i}", metadata={}, source=s, outputs=[], execution_count=None)
                                                   for i, s in enumerate(cells)],
              metadata={"kernelspec": dict(name="python3", display_name="python3", language="python")})
    (nbs/"lib.ipynb").write_text(json.dumps(nb))
    [p] = write_library_outputs(["lib"], nbs, mirror_dir, log=lambda s: None)
    out = json.loads(p.read_text())
    assert out["cells"][0]["outputs"] == [] and out["cells"][1]["outputs"] == []
    assert "".join(out["cells"][2]["outputs"][0]["text"]) == "~/.cache/nanochat/base_data /tmp/tmpXXXXXXXX nanochat/nbs http://127.0.0.1:8765/huggingface.co\n"
    assert any("image/png" in o.get("data", {}) for o in out["cells"][3]["outputs"])
    rec = out["metadata"][META_KEY]
    assert rec["preset"] == LIBRARY_PRESET and rec["code_sha256"] == code_hash(out) and rec["seconds"] >= 0 and check_outputs(p) is None
    before = p.read_bytes()
    r = subprocess.run([str(Path(sys.executable).parent/"nbdev-clean"), "--fname", str(p)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0 and p.read_bytes() == before, "nbdev-clean changed a notebook written by write_library_outputs"
    out["cells"][2]["source"] = "print('edited')"; p.write_text(json.dumps(out))
    assert "bash run.sh outputs --library --only lib" in check_outputs(p)


def test_library_command_errors_are_one_line():
    r = subprocess.run([sys.executable, "-m", "nanochat.outputs", "--library", "--only", "01_model"], capture_output=True, text=True)
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "unknown library notebook(s) 01_model; library notebooks: " in r.stderr and "optim" in r.stderr
