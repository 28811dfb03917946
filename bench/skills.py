"""Which chat-stage data teaches the skills in the quickstart's budget? Midtraining + SFT from one base checkpoint under
each candidate mixture, at fixed step counts, with several seeds; then the skills probe, chat bpb and ChatCORE.

    # a base model first (the quickstart's, or trained here: --pretrain-steps), then the candidates
    .venv/bin/python bench/skills.py --run-dir ~/.cache/nanochat/runs/quickstart --seeds 1 2
    .venv/bin/python bench/skills.py --pretrain-steps 500 --device cuda --seeds 1 2      # on a GPU: the same step counts, minutes

Each candidate is a pair of mixture settings (`mid_mixture`, `sft_mixture`, see nanochat.skills.parse_mixture), run
for `--mid-steps` and `--sft-steps` optimizer steps of the preset's batch: the step counts the quickstart reaches in
its time budgets on 2 CPU cores, so a GPU run measures the same training, only faster. The table prints, for each
candidate, the mean over seeds and the spread (max − min) of every probe skill, chat bpb on SmolTalk's validation
conversations and ChatCORE; one JSON line per run goes to `--results`.
"""
import argparse, json, os, shutil, statistics, sys, time
from pathlib import Path

# the candidates: what each teaches is said in chapter 03
CANDIDATES = {
    "nanochat": ("smoltalk:all mmlu:all gsm8k:all identity:2000 simplespelling:20000 spellingbee:8000",
                 "arc-easy:all arc-challenge:all gsm8k:all smoltalk:10000 identity:1000 simplespelling:300 spellingbee:300"),
    "skills": ("smoltalk:5000 identity:3000 arithmetic:12000 spelling:12000 counting:10000",
               "smoltalk:3000 identity:1000 arithmetic:6000 spelling:6000 counting:5000"),
    "balanced": ("smoltalk:8000 identity:2000 arithmetic:8000 spelling:8000 counting:6000",
                 "smoltalk:5000 identity:1000 arithmetic:3000 spelling:3000 counting:3000"),
    "skills2": ("smoltalk:6000 identity:4000 arithmetic:14000 spelling:14000 counting:12000",
                "smoltalk:3000 identity:1500 arithmetic:5000 spelling:5000 counting:5000"),
    # balanced with twice the identity rows in midtraining and SFT at 3x the learning rate (settings of its own: a third element)
    "balanced-lr": ("smoltalk:8000 identity:4000 arithmetic:8000 spelling:8000 counting:6000",
                    "smoltalk:5000 identity:1000 arithmetic:3000 spelling:3000 counting:3000", {"sft_lr_scale": 0.3}),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="quickstart")
    ap.add_argument("--run-dir", default=None, help="a run folder with the tokenizer and a base checkpoint (default: train them here)")
    ap.add_argument("--pretrain-steps", type=int, default=500, help="without --run-dir: pretraining steps of the base model")
    ap.add_argument("--candidates", nargs="*", default=["nanochat", "skills", "balanced"], help=f"of {', '.join(CANDIDATES)}")
    ap.add_argument("--seeds", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--mid-steps", type=int, default=140, help="midtraining steps (the quickstart reaches ~140 in its 240 s)")
    ap.add_argument("--sft-steps", type=int, default=90, help="SFT steps (the quickstart reaches ~90 in its 150 s)")
    ap.add_argument("--taught-words", type=int, default=None, help="words the spelling rows teach (default: probe.TAUGHT_WORDS)")
    ap.add_argument("--counting-words", type=int, default=None, help="words whose letters are counted (default: probe.COUNTING_WORDS)")
    ap.add_argument("--probe-items", type=int, default=100, help="probe items per skill")
    ap.add_argument("--chat-problems", type=int, default=50, help="problems per chat evaluation task (ChatCORE)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--mirror", default=None, help="serve this offline mirror folder on 127.0.0.1 and download from it")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="other settings for every run")
    ap.add_argument("--results", default=None, help="JSON lines, one per run (default: $NANOCHAT_BASE_DIR/bench/skills_results.jsonl)")
    a = ap.parse_args()
    unknown = [c for c in a.candidates if c not in CANDIDATES]
    if unknown: sys.exit(f"unknown candidate(s) {unknown}; candidates: {', '.join(CANDIDATES)}")
    if a.mirror:
        from nanochat.dataset import use_mirror
        with use_mirror(Path(a.mirror).resolve()): return run(a)
    return run(a)


def run(a):

    import torch
    from nanochat.common import base_dir, autodetect_device, autodetect_dtype
    from nanochat.settings import chapter_setup, parse_overrides
    from nanochat.dataset import download_shards, iter_texts
    from nanochat.tokenizer import Tokenizer, get_tokenizer
    from nanochat.checkpoint import load_model, checkpoint_dir
    from nanochat.pretrain import pretrain
    from nanochat.midtrain import midtrain, chat_val_batches
    from nanochat.sft import sft
    from nanochat.loss_eval import evaluate_bpb
    from nanochat.chat_eval import evaluate_chat
    from nanochat.probe import skills_probe, probe_words

    extra = parse_overrides(a.set) | dict(device=a.device)
    root = base_dir()/"bench"/"skills"
    base = Path(a.run_dir).expanduser().resolve() if a.run_dir else root/"base"
    if not a.run_dir and not (base/"base_checkpoints").exists():   # a base model of the preset, at a fixed step count
        T0 = chapter_setup("00_tokenizer", a.preset, base, extra)
        download_shards(T0.num_shards)
        Tokenizer.train_from_iterator(iter_texts("train", T0.tokenizer_max_chars), T0.vocab_size, show_progress=False).save(base/"tokenizer")
        t = time.time()
        r = pretrain(chapter_setup("02_pretrain", a.preset, base, extra | dict(num_iterations=a.pretrain_steps, time_budget=604800)), quiet=True)
        print(f"base model: {r['step']} steps in {time.time() - t:.0f}s, val bpb {r['val_bpb']:.4f}", flush=True)
    if not (base/"base_checkpoints").exists(): sys.exit(f"{base} has no base_checkpoints: run chapter 02 there first, or leave out --run-dir")
    import nanochat.probe as probe_module   # before the first probe_words() call: it is cached, and the training rows read it too
    if a.taught_words: probe_module.TAUGHT_WORDS = a.taught_words
    if a.counting_words: probe_module.COUNTING_WORDS = a.counting_words
    words = probe_words()
    results = Path(a.results) if a.results else root/"skills_results.jsonl"
    results.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for cand in a.candidates:
        mid_mix, sft_mix, *own = CANDIDATES[cand]
        for seed in a.seeds:
            run = root/"runs"/f"{cand}_seed{seed}"
            shutil.rmtree(run, ignore_errors=True); run.mkdir(parents=True)
            for d in ("tokenizer", "base_checkpoints"): (run/d).symlink_to(base/d)
            over = extra | (own[0] if own else {}) | dict(seed=seed, mid_mixture=mid_mix, sft_mixture=sft_mix, mid_num_iterations=a.mid_steps, sft_num_iterations=a.sft_steps,
                                mid_time_budget=604800, sft_time_budget=604800, eval_every=10**5, checkpoint_every=10**5)
            t = time.time()
            midtrain(chapter_setup("03_midtrain", a.preset, run, over), quiet=True)
            P = chapter_setup("04_sft", a.preset, run, over)
            res = sft(P, quiet=True)
            train_s = time.time() - t
            device = autodetect_device(P.device); dtype = autodetect_dtype(device, P.dtype)
            tok = get_tokenizer(run)
            model, _ = load_model(checkpoint_dir(run, "sft"), device)
            model.eval()
            probe = skills_probe(model, tok, n=a.probe_items, words=words, dtype=dtype)
            bpb = evaluate_bpb(model, chat_val_batches(tok, P.device_batch_size, model.config.sequence_len, P.eval_tokens), tok.token_bytes, device, dtype)
            chat = evaluate_chat(model, tok, device, dtype, max_problems=a.chat_problems)
            row = dict(candidate=cand, seed=seed, mid_mixture=mid_mix, sft_mixture=sft_mix, settings=(own[0] if own else {}) | {k: v for k, v in extra.items() if k != "device"}, mid_steps=a.mid_steps, sft_steps=a.sft_steps, taught_words=len(words["taught"]), counting_words=len(words["counting"]),
                       train_s=round(train_s, 1), chat_bpb=round(bpb, 4), chatcore=round(chat["chatcore"], 4),
                       **{k: round(v["accuracy"], 3) for k, v in probe["skills"].items()},
                       calculator=round(probe["calculator"]["accuracy"], 3), ends_turn=round(probe["ends_turn"]["accuracy"], 3),
                       device=str(device), examples=probe["examples"])
            rows.append(row)
            with open(results, "a") as f: f.write(json.dumps(row) + "\n")
            print(f"{cand} seed {seed}: " + ", ".join(f"{k} {row[k]}" for k in ("chat_bpb", "chatcore", *probe["skills"], "calculator", "ends_turn"))
                  + f" ({train_s:.0f}s training)", flush=True)
    keys = ["identity", "arithmetic", "spelling", "spelling (untaught)", "counting", "calculator", "ends_turn", "chat_bpb", "chatcore"]
    print(f"\n{a.mid_steps} midtraining + {a.sft_steps} SFT steps, seeds {a.seeds}, {a.probe_items} probe items per skill "
          f"(s.e. ≤ ±{0.5 / a.probe_items ** 0.5:.2f}), ChatCORE on {a.chat_problems} problems per task: mean (spread over seeds)")
    print("| candidate | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
    for cand in a.candidates:
        rs = [r for r in rows if r["candidate"] == cand]
        cell = lambda k: f"{statistics.mean(r[k] for r in rs):.3f} ({max(r[k] for r in rs) - min(r[k] for r in rs):.3f})"
        print(f"| {cand} | " + " | ".join(cell(k) for k in keys) + " |")


if __name__ == "__main__":
    main()
