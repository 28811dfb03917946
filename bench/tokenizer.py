"""Benchmark the course's Rust BPE engine (nanochat_bpe) against its peers, all measured in this run on this machine.

Training: the same texts and the same vocabulary for nanochat_bpe, rustbpe (nanochat's engine) and HF `tokenizers`.
Encoding: the same merges (ours) in nanochat_bpe, tiktoken (an Encoding built from our merges) and rustbpe (trained on the
same texts, which gives the same merges); throughput on held-out text, one thread and all threads.

    .venv/bin/python bench/tokenizer.py                                   # quick: vocab 8,192, 10M characters
    .venv/bin/python bench/tokenizer.py --vocab 65536 --chars 100_000_000  # nanochat's vocabulary

Shards come through the course's dataset code: from `--mirror` (default: ../shared/data/mirror next to the repository, if
present) served on 127.0.0.1, else from the shards already in $NANOCHAT_BASE_DIR/base_data.
"""
import argparse, contextlib, math, os, sys, time
from pathlib import Path


def best_time(fn, repeat):
    "Best wall time of `repeat` calls of `fn` (the least disturbed by other processes), and its last result."
    best, out = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter(); out = fn(); best = min(best, time.perf_counter() - t0)
    return best, out


def load_texts(chars, encode_chars):
    "Training texts (first `chars` characters of the train split) and held-out texts (first `encode_chars` of val)."
    from nanochat.dataset import download_shards, iter_texts
    download_shards(max(2, math.ceil(chars / 20_000_000) + 1))  # mirror shards hold ~25M characters each
    return list(iter_texts("train", chars)), list(iter_texts("val", encode_chars))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", type=lambda s: int(s.replace("_", "")), default=8192, help="vocabulary size, specials included")
    ap.add_argument("--chars", type=lambda s: int(s.replace("_", "")), default=10_000_000, help="training characters")
    ap.add_argument("--encode-chars", type=lambda s: int(s.replace("_", "")), default=5_000_000, help="held-out characters to encode")
    ap.add_argument("--repeat", type=int, default=3, help="encode timings: best of this many runs")
    ap.add_argument("--mirror", default=None, help="offline mirror folder to download shards from")
    ap.add_argument("--no-hf", action="store_true", help="skip HF tokenizers training (slow and memory-hungry at 100M+ characters)")
    a = ap.parse_args(argv)

    try: import nanochat_bpe
    except ImportError: sys.exit("nanochat_bpe is not installed: `.venv/bin/pip install ./rust` (needs a Rust toolchain)")
    import tiktoken
    from nanochat.dataset import use_mirror
    from nanochat.tokenizer import SPLIT_PATTERN, SPECIAL_TOKENS, PythonBPE, ranks_to_merges, train_hf_bpe, train_rustbpe

    mirror = Path(a.mirror) if a.mirror else Path(__file__).resolve().parents[2]/"shared"/"data"/"mirror"
    with (use_mirror(mirror) if mirror.is_dir() else contextlib.nullcontext()):
        train, held_out = load_texts(a.chars, a.encode_chars)
    n_chars, n_bytes = sum(map(len, train)), sum(len(t.encode()) for t in held_out)
    num_merges = a.vocab - 256 - len(SPECIAL_TOKENS)
    threads = os.cpu_count()
    print(f"machine: {threads} cores; training: {n_chars:,} characters ({len(train):,} documents), vocab {a.vocab:,} "
          f"({num_merges:,} merges); encoding: {n_bytes / 1e6:.1f} MB held out ({len(held_out):,} documents)\n", flush=True)

    # ---- training ----
    def train_ours():
        t = nanochat_bpe.Trainer()
        for i in range(0, len(train), 1024): t.feed(train[i:i + 1024])
        return [tuple(p) for p in t.train(num_merges)]
    train_s = {}
    train_s["nanochat_bpe (ours)"], merges = best_time(train_ours, 1)
    train_s["rustbpe"], rb = best_time(lambda: train_rustbpe(train, num_merges), 1)
    if not a.no_hf: train_s["HF tokenizers"], _ = best_time(lambda: train_hf_bpe(train, num_merges), 1)
    same = ranks_to_merges(rb.get_mergeable_ranks()) == merges
    print(f"{'training':28}{'seconds':>10}{'time/ours':>11}")
    for name, s in train_s.items():
        print(f"{name:28}{s:10.2f}{s / train_s['nanochat_bpe (ours)']:10.2f}x")
    print(f"rustbpe learned the same merges as ours: {'yes' if same else 'NO'}\n", flush=True)

    # ---- encoding: same merges everywhere ----
    ours1, oursN = nanochat_bpe.Encoder(merges, num_threads=1), nanochat_bpe.Encoder(merges)
    tt = tiktoken.Encoding("nanochat-bench", pat_str=SPLIT_PATTERN, special_tokens={},
                           mergeable_ranks={b: i for i, b in enumerate(PythonBPE(merges).vocab)})
    engines = {  # name: (one thread: a Python loop over documents, all threads: the engine's own batch API)
        "nanochat_bpe (ours)": (lambda: [ours1.encode(t) for t in held_out], lambda: oursN.encode_batch(held_out)),
        "tiktoken": (lambda: [tt.encode_ordinary(t) for t in held_out],
                     lambda: tt.encode_ordinary_batch(held_out, num_threads=threads)),
        "rustbpe": (lambda: [rb.encode(t) for t in held_out], lambda: rb.batch_encode(held_out)),
    }
    rate, ids = {}, {}
    for name, (one, many) in engines.items():
        s1, ids[name] = best_time(one, a.repeat)
        sN, idsN = best_time(many, a.repeat)
        assert idsN == ids[name], f"{name}: batch and single encodes differ"
        rate[name] = (n_bytes / s1 / 1e6, n_bytes / sN / 1e6)
    o1, oN = rate["nanochat_bpe (ours)"]
    print(f"{'encoding (MB/s)':28}{'1 thread':>10}{'speed/ours':>11}{f'{threads} threads':>12}{'speed/ours':>11}")
    for name, (r1, rN) in rate.items():
        print(f"{name:28}{r1:10.1f}{r1 / o1:10.2f}x{rN:12.1f}{rN / oN:10.2f}x")
    for name in ("tiktoken", "rustbpe"):
        diff = sum(a != b for a, b in zip(ids[name], ids["nanochat_bpe (ours)"]))
        print(f"{name} ids identical to ours: {'yes' if diff == 0 else f'NO ({diff} of {len(held_out)} documents differ)'}")


if __name__ == "__main__":
    main()
