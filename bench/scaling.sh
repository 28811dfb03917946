#!/usr/bin/env bash
# Multi-GPU scaling of chapter 02's pretraining under torchrun: the same [gpu] model and global batch on 1 GPU and on N,
# then scaling efficiency = tok/s(N) / (N × tok/s(1)) and the losses side by side (parity at equal global batch).
#   bash bench/scaling.sh 2            # needs a tokenizer in $NANOCHAT_BASE_DIR/runs/$PRESET/tokenizer (chapter 00 of that preset)
#   STEPS=12 BATCH=524288 bash bench/scaling.sh 8
# Keep NVLink multicast off where the machine is shared (NCCL_NVLS_ENABLE=0).
set -euo pipefail
N=${1:-2}; STEPS=${STEPS:-12}; BATCH=${BATCH:-524288}; PRESET=${PRESET:-gpu}   # PRESET=smoke BATCH=512: a CPU check over gloo
BASE=${NANOCHAT_BASE_DIR:-$HOME/.cache/nanochat}
S="num_iterations=$STEPS eval_every=1000 checkpoint_every=100000 total_batch_size=$BATCH time_budget=3600"
out=$(mktemp -d)
for n in 1 "$N"; do
  rd=$out/run_$n; mkdir -p "$rd"; cp -r "$BASE/runs/$PRESET/tokenizer" "$rd/"
  echo "== torchrun --standalone --nproc_per_node=$n -m nanochat.pretrain --preset $PRESET --run-dir $rd --set $S"
  torchrun --standalone --nproc_per_node="$n" -m nanochat.pretrain --preset $PRESET --run-dir "$rd" --set $S 2>&1 \
    | tee "$out/n$n.log" | tr '\r' '\n' | grep -a '^{"step' || { echo "run with $n GPU(s) failed: $out/n$n.log"; exit 1; }
done
python3 - "$out" "$N" <<'PY'
import json, sys, pathlib
out, n = pathlib.Path(sys.argv[1]), int(sys.argv[2])
r = {k: json.loads([l for l in (out/f"n{k}.log").read_text(errors="replace").replace("\r", "\n").splitlines() if l.startswith('{"step')][-1]) for k in (1, n)}
print(f"tok/s: 1 GPU {r[1]['tok_s']:,.0f} | {n} GPUs {r[n]['tok_s']:,.0f} | scaling efficiency {r[n]['tok_s'] / (n * r[1]['tok_s']):.1%}")
print(f"final train loss {r[1]['train_loss']:.3f} vs {r[n]['train_loss']:.3f}; val bpb {r[1]['val_bpb']:.4f} vs {r[n]['val_bpb']:.4f}")
PY
