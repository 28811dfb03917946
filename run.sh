#!/usr/bin/env bash
# nanochat, the course: one entry point.
#   bash run.sh quickstart [runner options]   set up, then run the course on the CPU quickstart preset
#   bash run.sh test [pytest options]         set up, then run the test suite (what CI runs)
#   bash run.sh needs                         only find (or install, as root on Debian) what the tests need: cargo, Chrome/Chromium
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

# `bash run.sh test` needs two things pip cannot install: a Rust toolchain (tests/test_rust_bpe.py imports our engine) and
# Chrome or Chromium (the browser tests drive one with Playwright, which cannot download its own here). Each is found,
# or installed with Debian's apt when this runs as root (or with passwordless sudo) on Debian, or the run stops before
# the tests naming the one command to run: never a silent skip.
is_chrome() { "$1" --version 2>/dev/null | grep -qiE 'chrom(e|ium)'; }   # Ubuntu's apt chromium is a snap stub that fails this
find_chrome() {
  if [ -n "${CHROME_PATH:-}" ]; then
    is_chrome "$CHROME_PATH" && return 0
    echo "!! CHROME_PATH=$CHROME_PATH is not a working Chrome or Chromium ('$CHROME_PATH --version' failed); unset it or point it at one" >&2
    return 1
  fi
  local b p
  for b in chromium chromium-browser google-chrome google-chrome-stable chrome \
           "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome" "/Applications/Chromium.app/Contents/MacOS/Chromium"; do
    p=$(command -v "$b" 2>/dev/null) || continue
    if is_chrome "$p"; then export CHROME_PATH="$p"; return 0; fi
  done
  return 1
}
# apt-get on Debian as root or with passwordless sudo; else print the one command to run and fail
apt_or_say() {   # apt_or_say WHAT PACKAGES...
  local what=$1; shift
  local sudo=""
  if grep -qs '^ID=debian' "${OS_RELEASE:-/etc/os-release}"; then
    if [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && sudo="sudo -n"; }; then
      echo "== installing $what with apt: $*"
      $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null && return 0
      echo "!! apt-get install $* failed" >&2
    fi
    echo "!! the tests need $what: run  sudo apt-get install -y $*  (as root: apt-get install -y $*), then bash run.sh test again" >&2
  else
    echo "!! the tests need $what: $([ "$what" = Chromium ] && echo "install Google Chrome or Chromium (not a snap: it fails in containers) and set CHROME_PATH=/path/to/chrome" || echo "install Rust from https://rustup.rs"), then bash run.sh test again" >&2
  fi
  return 1
}
test_needs() {
  command -v cargo >/dev/null 2>&1 || apt_or_say "a Rust toolchain" cargo rustc || exit 1
  find_chrome || { [ -z "${CHROME_PATH:-}" ] && apt_or_say Chromium chromium && find_chrome; } || exit 1
  echo "== browser for the browser tests: $CHROME_PATH ($("$CHROME_PATH" --version 2>/dev/null))"
}

cmd=${1:-quickstart}; shift || true
case "$cmd" in
  setup) setup ;;
  quickstart) setup; exec "$VENV/bin/nanochat-course" run --preset quickstart "$@" ;;
  test) test_needs; setup; exec "$VENV/bin/python" -m pytest tests "$@" ;;
  needs) test_needs ;;   # only find (or install) what the tests need
  readme) "$VENV/bin/jupyter" nbconvert --to markdown nbs/index.ipynb --output-dir . --output README --log-level WARN ;;
  docs) exec "$VENV/bin/python" docs/build.py "$@" ;;
  outputs)
    [ $# -ge 1 ] || { echo "usage: bash run.sh outputs RUN_DIR [--only CHAPTER ...] | --library [--only NOTEBOOK ...] | --check   (RUN_DIR: e.g. ~/.cache/nanochat/runs/quickstart)" >&2; exit 2; }
    case "$1" in
      --library|--check) exec "$VENV/bin/python" -m nanochat.outputs "$@" ;;
      *) dir=$1; shift; exec "$VENV/bin/python" -m nanochat.outputs --run-dir "$dir" "$@" ;;
    esac ;;
  *) echo "usage: bash run.sh quickstart|test|needs|setup|readme|docs|outputs [options]" >&2; exit 2 ;;
esac
