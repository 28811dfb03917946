#!/usr/bin/env bash
# The course on one lent GPU, in one device call. Prepare carry/ here first (bench/carry.py), then on the GPU machine:
#   bash bench/gpu_course.sh setup course          # install the carried wheels, run chapters 00-05 ([gpu_course] preset)
#   bash bench/gpu_course.sh setup test bench      # the engine and sandbox tests on CUDA, then bench/train.py and bench/infer.py
# Steps run in the order given; PRESET=smoke runs that preset instead (a quick check of every chapter on CUDA).
# The device's copy of the tree may carry an older .git: NANOCHAT_COMMIT=$(git rev-parse --short HEAD), set where the
# call is made, puts the right commit in the report.
# Logs, the report and the run's outputs go to $OUT (the device tool's folder), else out/.
# The machine's python3 has torch; the wheels install into /tmp/site (no package index there: pip --no-index).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}; mkdir -p "$OUT"
export PYTHONPATH=/tmp/site:$PWD JUPYTER_PATH=/tmp/site/share/jupyter PYTHONUNBUFFERED=1
export NANOCHAT_BASE_DIR=${NANOCHAT_BASE_DIR:-/tmp/nanochat}
PY=${PYTHON:-python3}
t0=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - t0 ))s] $*"; }

for step in "$@"; do
  case "$step" in
    setup)
      stamp "setup: $($PY -V), $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null)"
      $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site carry/whl/*.whl 2>&1 \
        | grep -v "WARNING: Target directory" || true
      $PY -c "import torch, papermill, ipykernel, ipywidgets, fastcore, nanochat_bpe, rustbpe, nanochat
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), '| papermill', papermill.__version__, '| ipykernel', ipykernel.__version__)" \
        || { echo "setup failed"; exit 1; } ;;
    test)
      stamp "tests on CUDA: engine (fast path included), sandbox"
      timeout ${TEST_TIMEOUT:-240} $PY -m pytest -q tests/test_engine.py tests/test_execution.py -p no:cacheprovider 2>&1 | tee "$OUT/tests.log" | tail -15 ;;
    bench)
      stamp "bench/train.py: pretraining MFU"
      timeout ${TRAIN_TIMEOUT:-330} $PY bench/train.py --device cuda --runs ${TRAIN_RUNS:-20x16 20x32 12x32 12x64} --attn ${TRAIN_ATTN:-best} --steps 2 ${TRAIN_ARGS:-} 2>&1 | tee "$OUT/bench_train.log"
      stamp "bench/infer.py: decoding"
      timeout ${INFER_TIMEOUT:-240} $PY bench/infer.py --device cuda ${INFER_ARGS:-} 2>&1 | tee "$OUT/bench_infer.log" ;;
    course)
      preset=${PRESET:-gpu_course}
      stamp "the course, preset $preset"
      timeout ${COURSE_TIMEOUT:-540} $PY -m nanochat.course run --preset $preset --mirror $PWD/carry/mirror --restart ${COURSE_SET:+--set $COURSE_SET} 2>&1 \
        | tee "$OUT/course.log" | grep -a -E "^\[|✓|✗|error|Error|step [0-9]+:|CORE|ChatCORE" | cut -c1-300
      run="$NANOCHAT_BASE_DIR/runs/$preset"
      cp "$run/report.md" "$OUT/report.md" 2>/dev/null
      tar -czf "$OUT/run.tar.gz" -C "$run" notebooks logs metrics figures state.json report.md 2>/dev/null
      stamp "course done" ;;
    *) echo "unknown step $step (setup, test, bench, course)"; exit 2 ;;
  esac
done
stamp "all done"
