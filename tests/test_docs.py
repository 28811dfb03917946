"""The docs site (docs/build.py, Sphinx + MyST-NB) builds from the notebooks without executing them, and each chapter's
page holds its figures: as many <img> as the notebook has image outputs. Chapters that carry no committed outputs yet
get a figure of the test's own (a tagged PNG output), so the path from a notebook's image output to the page's <img>
is always exercised; chapters that carry a real run's outputs are built as committed, and must hold at least one figure."""
import base64, importlib.util, io, json, re, shutil
from pathlib import Path
import pytest
from nanochat.course import CHAPTERS
from nanochat.outputs import META_KEY

REPO = Path(__file__).resolve().parents[1]
MARK = "test figure (tests/test_docs.py)"


def _build_module():
    spec = importlib.util.spec_from_file_location("docs_build", REPO/"docs"/"build.py")
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    return m


def _png() -> str:
    from PIL import Image
    b = io.BytesIO(); Image.new("RGB", (40, 20), (30, 90, 200)).save(b, "PNG")
    return base64.b64encode(b.getvalue()).decode()


def _images(nb: dict) -> int:
    return sum(1 for c in nb["cells"] for o in c.get("outputs", []) if any(k.startswith("image/") for k in o.get("data", {})))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    "The site built from a copy of nbs/ (+ a test figure in chapters without committed outputs); yields (site, nbs)."
    tmp = tmp_path_factory.mktemp("docs")
    nbs = tmp/"nbs"; shutil.copytree(REPO/"nbs", nbs)
    for ch in CHAPTERS:
        nb = json.loads((nbs/f"{ch}.ipynb").read_text())
        if nb["metadata"].get(META_KEY): continue
        last = [c for c in nb["cells"] if c["cell_type"] == "code"][-1]
        last["outputs"] = [dict(output_type="display_data", metadata={}, data={"image/png": _png(), "text/plain": MARK})]
        (nbs/f"{ch}.ipynb").write_text(json.dumps(nb))
    seconds = _build_module().build(tmp/"site", nbs, work=tmp/"work", strict=True)
    print(f"docs site built in {seconds:.0f}s")
    return tmp/"site", nbs


# library notebooks that plot: their committed outputs (`bash run.sh outputs --library`) must reach their pages too
LIBRARY_FIGURES = ["optim", "performance"]


@pytest.mark.parametrize("chapter", [*CHAPTERS, *LIBRARY_FIGURES])
def test_chapter_page_holds_its_figures(site, chapter):
    out, nbs = site
    nb = json.loads((nbs/f"{chapter}.ipynb").read_text())
    html = (out/f"{chapter}.html").read_text()
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', html)
    want = _images(nb)
    assert want >= 1, f"{chapter} carries outputs but no figure"             # every chapter (and these notebooks) plots something
    assert len(imgs) >= want, f"{chapter}.html shows {len(imgs)} images, the notebook has {want} image outputs"
    for src in imgs:                                                         # every image the page names is in the site
        assert (out/src).is_file(), f"{chapter}.html: {src} is not in the site"


def test_home_links_chapters_and_images(site):
    out, _ = site
    html = (out/"index.html").read_text()
    for ch in CHAPTERS: assert f'href="{ch}.html' in html, f"index.html does not link {ch}.html"
    assert 'href="nbs/' not in html and 'src="docs/images' not in html, "README-style links left on the home page"
    for src in re.findall(r'<img [^>]*src="([^"]+)"', html): assert (out/src).is_file(), src


def test_api_pages_from_docstrings(site):
    out, _ = site
    html = (out/"api"/"outputs.html").read_text()
    assert 'id="nanochat.outputs.check_outputs"' in html and "SHA-256 (hex) of the sources" in html
    assert (out/"api"/"settings.html").is_file() and (out/"api"/"course.html").is_file()


def test_performance_report_and_toolchain_pages(site):
    out, _ = site
    assert "Performance" in (out/"performance.html").read_text()
    report = (out/"report"/"report.html").read_text()
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', report)
    assert imgs and all((out/"report"/s).resolve().is_file() for s in imgs), "the example report's figures are missing"
    gpu = (out/"gpu"/"report.html").read_text()   # the GPU course's report, and the page that says how it was made
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', gpu)
    assert "gpu_course" in gpu and imgs and all((out/"gpu"/s).resolve().is_file() for s in imgs), "the GPU report's figures are missing"
    readme = (out/"gpu"/"README.html").read_text()
    assert "bench/gpu_course.sh" in readme
    logs = re.findall(r'href="([^"]+\.txt)"', readme)   # the raw logs the page quotes are published beside it
    assert logs and all((out/"gpu"/h).resolve().is_file() for h in logs), logs
    assert "Sphinx" in (out/"toolchain.html").read_text()
