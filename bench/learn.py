"""Learning per CPU minute: pretrain one candidate configuration for a fixed wall time and report what it learned.

    .venv/bin/python bench/learn.py --minutes 10                                   # the quickstart preset as it is
    .venv/bin/python bench/learn.py --minutes 10 --set max_seq_len=512 total_batch_size=8192 --label "nanochat's CPU config"
    # the quickstart this course replaced (a step count instead of the clock: it stops at 50), as chapter 02 quotes it
    .venv/bin/python bench/learn.py --label "the replaced quickstart" --set vocab_size=65536 max_seq_len=1024 device_batch_size=1 total_batch_size=1024 num_iterations=50 lr_ref_batch_size=1024 warmdown_ratio=0.2 final_lr_frac=0

Prints one row per run: the configuration, optimizer steps, tokens, tokens/s, the model FLOP/s as a fraction of a 1024²
matmul in the training dtype measured in the same process just before (the practical CPU ceiling), and validation bits per byte on the
first `eval_tokens` tokens of the pinned validation shard (shard_01822), at the run's sequence length.

What the wall time counts: `--minutes` is the training loop's time budget, and that budget counts everything the loop
does once it has started: optimizer steps (the first one includes torch.compile's compilation, where it is used), the
step-0 and final evaluations and the final checkpoint. Intermediate evaluations and checkpoints are switched off, so
the budget goes to training. Building the model, the tokenizer and the data download come before the clock starts.

Run it on a quiet machine: a second job on the same cores halves tokens/s and the comparison means nothing.
"""
import argparse, json, os, time, shutil
from pathlib import Path
import torch

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="the training loop's time budget")
    ap.add_argument("--preset", default="quickstart", help="settings.ini preset the candidate starts from")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="the candidate's changes to the preset")
    ap.add_argument("--label", default=None, help="a name for the row")
    ap.add_argument("--results", default=None, help="append the row here (JSON lines); default $NANOCHAT_BASE_DIR/bench/learn_results.jsonl")
    a = ap.parse_args()
    from nanochat.common import base_dir, matmul_flops, autodetect_dtype
    from nanochat.settings import chapter_setup, parse_overrides
    from nanochat.dataset import download_shards, iter_texts
    from nanochat.tokenizer import Tokenizer, get_tokenizer
    from nanochat.pretrain import pretrain

    overrides = parse_overrides(a.set)
    root = base_dir()/"bench"/"learn"
    tok_over = {k: v for k, v in overrides.items() if k in ("vocab_size", "tokenizer_max_chars", "num_shards")}
    T0 = chapter_setup("00_tokenizer", a.preset, root/"tmp", tok_over)
    # one tokenizer per (preset, vocabulary, training text), trained once and shared by the candidates that agree on them
    tok_dir = root/f"tokenizer_{a.preset}_{T0.vocab_size}_{T0.tokenizer_max_chars}_{T0.num_shards}"
    T0 = chapter_setup("00_tokenizer", a.preset, tok_dir, tok_over)
    download_shards(T0.num_shards)
    if not (tok_dir/"tokenizer"/"tokenizer.json").exists():
        Tokenizer.train_from_iterator(iter_texts("train", T0.tokenizer_max_chars), T0.vocab_size, show_progress=False).save(tok_dir/"tokenizer")
    tokenizer = get_tokenizer(tok_dir)
    run_dir = root/"run"
    shutil.rmtree(run_dir, ignore_errors=True)
    overrides = dict(num_iterations=-1) | overrides | dict(time_budget=a.minutes * 60, target_param_data_ratio=100, eval_every=10**5, checkpoint_every=10**5)
    P = chapter_setup("02_pretrain", a.preset, run_dir, overrides)
    peak = matmul_flops(torch.device("cpu"), autodetect_dtype(torch.device("cpu"), P.dtype), n=1024, seconds=1.0)
    t0 = time.time()
    res = pretrain(P, tokenizer, quiet=True)
    wall = time.time() - t0
    flops = res["model"].estimate_flops() * res["tok_s"]
    row = dict(label=a.label or " ".join(a.set) or a.preset, preset=a.preset, changes=a.set, minutes=a.minutes,
               params=res["n_params"], steps=res["step"], tokens=res["tokens"], tok_s=round(res["tok_s"]),
               model_gflops=round(flops / 1e9, 1), matmul_gflops=round(peak / 1e9, 1), fraction=round(flops / peak, 3),
               val_bpb=round(res["val_bpb"], 4), eval_tokens=P.eval_tokens, seq_len=P.max_seq_len, dtype=res["dtype"],
               wall_s=round(wall, 1), threads=torch.get_num_threads())
    print(f"{row['label']}: {row['steps']} steps, {row['tokens']:,} tokens, {row['tok_s']:,} tok/s "
          f"({row['fraction']:.0%} of a {row['matmul_gflops']} GFLOP/s matmul), val bpb {row['val_bpb']} "
          f"(first {row['eval_tokens']:,} tokens of shard_01822 at T={row['seq_len']}), {row['dtype']}, {row['wall_s']} s")
    with open(a.results or root.parent/"learn_results.jsonl", "a") as f: f.write(json.dumps(row) + "\n")

if __name__ == "__main__": main()
