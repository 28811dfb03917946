"""Benchmark the course's Rust BPE engine (nanochat_bpe) against its peers, all measured in this run on this machine.

Training: the same texts and the same vocabulary for nanochat_bpe, rustbpe (nanochat's engine) and HF `tokenizers`.
Encoding: the same merges (ours) in nanochat_bpe, tiktoken (an Encoding built from our merges) and rustbpe (trained on the
same texts, which gives the same merges); throughput on held-out text, one thread and all threads.
Pathological text: single chunks the split cannot break (one letter x100K and x200K, a base64 blob, newlines, spaces, a
mix), ours vs tiktoken with the same merges, one text and a batch; then the time of one such chunk from 10K to 160K
characters, which must grow linearly (a merge loop that rescans the chunk after every merge grows with its square).

    .venv/bin/python bench/tokenizer.py                                   # quick: vocab 8,192, 10M characters
    .venv/bin/python bench/tokenizer.py --vocab 65536 --chars 100_000_000  # nanochat's vocabulary
    .venv/bin/python bench/tokenizer.py --only pathological --chars 20_000_000  # the quickstart tokenizer's merges

Shards come through the course's dataset code: from `--mirror` (default: ../shared/data/mirror next to the repository, if
present) served on 127.0.0.1, else from the shards already in $NANOCHAT_BASE_DIR/base_data.
"""
import argparse, base64, contextlib, math, os, random, sys, time
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
    download_shards(max(1, math.ceil(chars / 20_000_000)))  # training shards (mirror shards hold ~25M characters each), + validation
    return list(iter_texts("train", chars)), list(iter_texts("val", encode_chars))


def pathological_texts(merges, prose, n=100_000):
    """Texts that are one unbroken chunk (or nearly): {name: text}. The letter is the one whose doubled pair was merged
    first, so the merge loop really runs (a letter with no merge would be a single scan)."""
    rank, letter = min((r, chr(a)) for r, (a, b) in enumerate(merges) if a == b and a < 128 and chr(a).isalpha())
    rng = random.Random(0)
    blob = base64.b64encode(rng.randbytes(n * 3 // 4)).decode()  # real base64: digits and +/ cut it every few characters
    letters = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") for _ in range(n))  # no cut at all
    k = n // 5
    mixed = prose[:k] + letter * k + "\n" * k + letters[:k] + " " * k  # a document with a few such runs inside prose
    return {f"letter {letter!r} x{n // 1000}K": letter * n, f"letter {letter!r} x{2 * n // 1000}K": letter * (2 * n),
            f"base64 {n // 1000}K": blob, f"base64 letters only {n // 1000}K": letters, f"newlines x{n // 1000}K": "\n" * n,
            f"spaces x{n // 1000}K": " " * n + "x", f"mixed {n // 1000}K": mixed}


def bench_pathological(merges, prose, repeat, threads):
    "Ours vs tiktoken (same merges) on pathological texts, one text and a batch; then time vs length, 10K to 160K."
    import nanochat_bpe, tiktoken
    from nanochat.tokenizer import SPLIT_PATTERN, PythonBPE
    ours1, oursN = nanochat_bpe.Encoder(merges, num_threads=1), nanochat_bpe.Encoder(merges)
    tt = tiktoken.Encoding("nanochat-bench", pat_str=SPLIT_PATTERN, special_tokens={},
                           mergeable_ranks={b: i for i, b in enumerate(PythonBPE(merges).vocab)})
    print(f"{'pathological text (one text)':32}{'tokens':>9}{'tiktoken s':>12}{'ours s':>10}{'ours/tiktoken':>15}"
          f"{f'batch x{threads}: tiktoken s':>24}{'ours s':>10}{'ours/tiktoken':>15}")
    worst = 0.0
    for name, text in pathological_texts(merges, prose).items():
        t_tt, ids_tt = best_time(lambda: tt.encode_ordinary(text), repeat)
        t_ours, ids = best_time(lambda: ours1.encode(text), repeat)
        batch = [text] * threads
        tb_tt, _ = best_time(lambda: tt.encode_ordinary_batch(batch, num_threads=threads), repeat)
        tb_ours, idsN = best_time(lambda: oursN.encode_batch(batch), repeat)
        assert ids == ids_tt and idsN == [ids] * threads, f"{name}: ours and tiktoken encode differently"
        worst = max(worst, t_ours / t_tt, tb_ours / tb_tt)
        print(f"{name:32}{len(ids):9,}{t_tt:12.4f}{t_ours:10.4f}{t_ours / t_tt:14.2f}x{tb_tt:24.4f}{tb_ours:10.4f}"
              f"{tb_ours / tb_tt:14.2f}x")
    print(f"worst ours/tiktoken: {worst:.2f}x (ids identical everywhere)\n")

    texts = pathological_texts(merges, prose, 160_000)
    letter, letters = next(iter(texts.values())), texts["base64 letters only 160K"]
    print(f"{'one chunk, time vs length':32}" + "".join(f"{f'{n // 1000}K':>10}" for n in (10_000, 20_000, 40_000, 80_000, 160_000))
          + f"{'160K/10K':>10}  (linear: 16, quadratic: 256)")
    for name, text in ((f"letter {letter[0]!r}", letter), ("base64 letters only", letters), ("newlines", "\n" * 160_000)):
        for eng, enc in (("ours", ours1.encode), ("tiktoken", tt.encode_ordinary)):
            ts = [best_time(lambda: enc(text[:n]), max(repeat, 5))[0] for n in (10_000, 20_000, 40_000, 80_000, 160_000)]
            print(f"{name + ' (' + eng + ')':32}" + "".join(f"{t:10.4f}" for t in ts) + f"{ts[-1] / ts[0]:10.1f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", type=lambda s: int(s.replace("_", "")), default=8192, help="vocabulary size, specials included")
    ap.add_argument("--chars", type=lambda s: int(s.replace("_", "")), default=10_000_000, help="training characters")
    ap.add_argument("--encode-chars", type=lambda s: int(s.replace("_", "")), default=5_000_000, help="held-out characters to encode")
    ap.add_argument("--repeat", type=int, default=3, help="encode timings: best of this many runs")
    ap.add_argument("--mirror", default=None, help="offline mirror folder to download shards from")
    ap.add_argument("--no-hf", action="store_true", help="skip HF tokenizers training (slow and memory-hungry at 100M+ characters)")
    ap.add_argument("--only", choices=["all", "pathological"], default="all",
                    help="pathological: train our merges only, then just the pathological-text benchmark")
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
    if a.only == "pathological":
        print(f"trained our merges in {train_s['nanochat_bpe (ours)']:.1f} s\n")
        return bench_pathological(merges, " ".join(held_out), a.repeat, threads)
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
    print()
    bench_pathological(merges, " ".join(held_out), a.repeat, threads)


if __name__ == "__main__":
    main()
