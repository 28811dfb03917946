# Sphinx configuration of the docs site. Build it with `bash run.sh docs` (docs/build.py stages the notebooks and
# API pages into build/docs/src/, then runs Sphinx with this folder as its configuration); docs/toolchain.md says why
# Sphinx + MyST-NB + Furo.
project = "nanochat, the course"
author = "nanochat course authors"
copyright = "nanochat course authors, MIT licence"
html_title = "nanochat, the course"
html_baseurl = "https://nanochat-course.github.io/nanochat/"   # = [project.urls] Documentation in pyproject.toml

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.viewcode"]
root_doc = "index"
exclude_patterns = ["**.ipynb_checkpoints"]

# notebooks are shown as committed (chapters: outputs of a real quickstart run, copied by nanochat.outputs; library
# notebooks: executed in place by `bash run.sh outputs --library`): never executed here
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
# a chapter's ipywidget output is committed as a screenshot; any other widget state, an HTML table's style, an
# "application/json" output: show the richest thing there is, plain text last
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
# a chapter shows JSON with // comments (not JSON, on purpose): highlighting falls back, which is fine
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header", "misc.highlighting_failure"]

# API pages: our docstrings are markdown-flavoured plain text; `x` reads as code, not as rST's italic "interpreted text"
default_role = "literal"
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_preserve_defaults = True

html_theme = "furo"
html_static_path = []
pygments_style = "friendly"
html_show_sourcelink = False
html_copy_source = False        # the notebooks are on GitHub; copying them would double the site
