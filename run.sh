#!/usr/bin/env bash
# nanochat, the course: one entry point.
#   bash run.sh quickstart [runner options]   set up, then run the course on the CPU quickstart preset
#   bash run.sh test [pytest options]         set up, then run the test suite (what CI runs)
#   bash run.sh setup                         only create .venv and install everything (incl. our Rust tokenizer)
#   bash run.sh readme                        regenerate README.md from nbs/index.ipynb
#   bash run.sh docs [--strict]               build the docs site into _site/ (Sphinx + MyST-NB; docs/toolchain.md)
#   bash run.sh outputs RUN_DIR [--only CH…]  copy a run's executed chapters' outputs into nbs/ (and its report into docs/report/)
#   bash run.sh outputs --library [--only NB…] execute the library notebooks in place (offline mirror, throw-away base dir), keeping their outputs
# Runner options go to `nanochat-course run`, e.g. --preset smoke, --set depth=6, --mirror DIR, --restart.
set -euo pipefail
# a relative --mirror is relative to where it was typed, not to the repository this script moves into
args=(); prev=""
for a in "$@"; do
  if [ "$prev" = "--mirror" ] && [ "${a#/}" = "$a" ]; then a="$PWD/$a"; fi
  case "$a" in --mirror=[!/]*) a="--mirror=$PWD/${a#--mirror=}" ;; esac
  args+=("$a"); prev="$a"
done
set -- ${args[@]+"${args[@]}"}
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=.venv

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
  fi
  local pip="$VENV/bin/python -m pip install -q --disable-pip-version-check"
  echo "== installing dependencies"
  # torch first and pinned: a wider spec could pull a multi-GB build where a CPU wheel is already present
  $pip "torch==2.13.0"
  $pip -e ".[test,docs]"
  if command -v cargo >/dev/null 2>&1; then
    echo "== building our Rust BPE engine (rust/)"
    $pip ./rust
  else
    echo "!! no Rust toolchain (cargo): the tokenizer will fall back to rustbpe. Install Rust from https://rustup.rs to build rust/."
  fi
}

cmd=${1:-quickstart}; shift || true
case "$cmd" in
  setup) setup ;;
  quickstart) setup; exec "$VENV/bin/nanochat-course" run --preset quickstart "$@" ;;
  test) setup; exec "$VENV/bin/python" -m pytest tests "$@" ;;
  readme) "$VENV/bin/jupyter" nbconvert --to markdown nbs/index.ipynb --output-dir . --output README --log-level WARN ;;
  docs) exec "$VENV/bin/python" docs/build.py "$@" ;;
  outputs)
    [ $# -ge 1 ] || { echo "usage: bash run.sh outputs RUN_DIR [--only CHAPTER ...] | --library [--only NOTEBOOK ...] | --check   (RUN_DIR: e.g. ~/.cache/nanochat/runs/quickstart)" >&2; exit 2; }
    case "$1" in
      --library|--check) exec "$VENV/bin/python" -m nanochat.outputs "$@" ;;
      *) dir=$1; shift; exec "$VENV/bin/python" -m nanochat.outputs --run-dir "$dir" "$@" ;;
    esac ;;
  *) echo "usage: bash run.sh quickstart|test|setup|readme|docs|outputs [options]" >&2; exit 2 ;;
esac
