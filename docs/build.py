"""Build the docs site: `bash run.sh docs` (= `.venv/bin/python docs/build.py`) → `_site/index.html`.

The notebooks in nbs/ are the pages, shown with the outputs they carry (never executed here). Sphinx reads one source
folder, so this script stages one in build/docs/src/ (and builds in build/docs/site/): every notebook of nbs/ (the home page's links, written for
the README on GitHub, made relative to the site), the example reports (docs/report/, docs/gpu/), the docs pages (docs/*.md), one
API page per module (autodoc, from the docstrings) and the table of contents. Files whose content did not change are
left untouched, so a second build only redoes what changed."""
from __future__ import annotations
import argparse, json, shutil, subprocess, sys, time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = ["00_tokenizer", "01_model", "02_pretrain", "03_midtrain", "04_sft", "05_chat"]
MEASURED = ["performance", "report/report", "gpu/README", "gpu/report"]   # the Performance page, the example reports (CPU, GPU)
SKIP = {"index"}                                      # the home page (nbs/index.ipynb, the README's source)


def _write(path: Path, text: str):
    "Write `text` to `path` unless it already holds it (Sphinx rebuilds what changed, judged by modification time)."
    if path.exists() and path.read_text(encoding="utf-8") == text: return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp"); tmp.write_text(text, encoding="utf-8"); tmp.replace(path)


def _title(nb: dict) -> str:
    for c in nb["cells"]:
        s = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        if c["cell_type"] == "markdown" and s.startswith("# "): return s.splitlines()[0][2:].strip()
    return ""


def _directives(nb: dict) -> dict:
    """`nb` as nbdev shows it: `#|` directive lines taken out of the code, a cell holding only `#| default_exp` or
    marked `#| hide` left out, `#| echo: false` shows only the output (MyST-NB's remove-input tag)."""
    cells = []
    for c in nb["cells"]:
        if c["cell_type"] != "code": cells.append(c); continue
        src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        lines = src.split("\n")
        dirs = [l.strip()[3:].strip() for l in lines if l.strip().startswith("#| ")]
        code = "\n".join(l for l in lines if not l.strip().startswith("#| ")).strip("\n")
        if any(d == "hide" for d in dirs) or (not code.strip() and not c.get("outputs")): continue
        if any(d.replace(" ", "") == "echo:false" for d in dirs):
            c.setdefault("metadata", {}).setdefault("tags", []).append("remove-input")
        c["source"] = code
        cells.append(c)
    nb["cells"] = cells
    return nb


def _toctree(caption: str, docs: list[str]) -> str:
    return "```{toctree}\n:hidden:\n:caption: " + caption + "\n\n" + "\n".join(docs) + "\n```\n"


def stage(src: Path, nbs: Path = REPO/"nbs") -> dict:
    "Stage the site's sources into `src`; returns the page groups `{caption: [docname, …]}`."
    nb_names = sorted(p.stem for p in nbs.glob("*.ipynb"))
    missing = [c for c in CHAPTERS + ["index", "performance"] if c not in nb_names]
    if missing: raise SystemExit(f"error: {nbs} lacks {', '.join(m + '.ipynb' for m in missing)}: pass the course's nbs/ folder")
    if not (REPO/"docs"/"report"/"report.md").exists():
        raise SystemExit("error: docs/report/report.md is missing: `bash run.sh outputs RUN_DIR` copies a run's report there")
    modules = sorted(p.stem for p in (REPO/"nanochat").glob("*.py") if not p.stem.startswith("_"))
    library = [n for n in nb_names if n not in CHAPTERS and n not in SKIP and n != "performance"]
    groups = {"Chapters": CHAPTERS, "Library notebooks": library, "Measured": MEASURED,
              "API reference": [f"api/{m}" for m in modules], "About these docs": ["toolchain"]}
    keep = set()
    for name in nb_names:
        nb = json.loads((nbs/f"{name}.ipynb").read_text(encoding="utf-8"))
        nb["metadata"].setdefault("language_info", {"name": "python"})   # notebooks saved by jupytext lack it: code unhighlighted
        _directives(nb)
        if name == "index":   # links written for the README on GitHub (nbs/X.ipynb, docs/images/…) → the site's
            for c in nb["cells"]:
                if c["cell_type"] == "markdown":
                    s = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                    c["source"] = s.replace("](nbs/", "](").replace("](docs/images/", "](images/").replace("](docs/gpu/", "](gpu/")
            nb["cells"].append(dict(cell_type="markdown", id="toctree", metadata={},
                                    source="\n".join(_toctree(cap, docs) for cap, docs in groups.items())))
        _write(src/f"{name}.ipynb", json.dumps(nb, indent=1, ensure_ascii=False)); keep.add(f"{name}.ipynb")
    for m in modules:
        _write(src/"api"/f"{m}.md", f"# nanochat.{m}\n\n```{{eval-rst}}\n.. automodule:: nanochat.{m}\n```\n"); keep.add(f"api/{m}.md")
    for f in (REPO/"docs").glob("*.md"):
        _write(src/f.name, f.read_text(encoding="utf-8")); keep.add(f.name)
    for folder, to in [(REPO/"docs"/"images", "images"), (REPO/"docs"/"report", "report"), (REPO/"docs"/"gpu", "gpu")]:
        for f in folder.rglob("*"):
            if f.is_file():
                rel = f"{to}/{f.relative_to(folder)}"; keep.add(rel)
                if not (src/rel).exists() or (src/rel).read_bytes() != f.read_bytes():
                    (src/rel).parent.mkdir(parents=True, exist_ok=True); shutil.copyfile(f, src/rel)
    for f in list(src.rglob("*")):          # a page deleted from nbs/ leaves the site too
        if f.is_file() and f.relative_to(src).as_posix() not in keep: f.unlink()
    return groups


def build(out: Path = REPO/"_site", nbs: Path = REPO/"nbs", work: Path = REPO/"build"/"docs", strict: bool = False) -> float:
    "Stage and build the site into `out`; returns the seconds it took. `strict`: Sphinx warnings are errors."
    t = time.time()
    stage(work/"src", Path(nbs))
    # Sphinx writes into work/site (MyST-NB puts its image files beside the output folder, so that must be in work/
    # too), then the site is copied to `out` whole: an interrupted build never leaves half a site there
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(REPO/"docs"), "-d", str(work/"doctrees"),
           str(work/"src"), str(work/"site")] + (["-W", "--keep-going"] if strict else [])
    r = subprocess.run(cmd, cwd=REPO)
    if r.returncode: raise SystemExit(f"error: sphinx-build failed (exit {r.returncode}); its messages are above")
    out = Path(out); tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True); shutil.copytree(work/"site", tmp)
    shutil.rmtree(out, ignore_errors=True); tmp.rename(out)
    return time.time() - t


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Build the docs site (Sphinx + MyST-NB) from nbs/ into _site/.")
    ap.add_argument("--out", default=str(REPO/"_site"), help="where the site goes (default _site/)")
    ap.add_argument("--nbs", default=str(REPO/"nbs"), help="the notebooks to show (default nbs/)")
    ap.add_argument("--strict", action="store_true", help="treat Sphinx warnings as errors")
    a = ap.parse_args()
    s = build(Path(a.out), Path(a.nbs), strict=a.strict)
    print(f"site built in {s:.0f}s: {Path(a.out).resolve()/'index.html'}")
