"""Decoding speed of the course's GPT: prefill, decode with and without the KV cache, and on a GPU the engine's fast path
(`StaticDecoder`: static cache + CUDA graph, optionally compiled) against the memory-bandwidth bound.

    .venv/bin/python bench/infer.py                      # CPU: quickstart size (d4, width 256, vocab 8,192), contexts 64/256/1024
    python3 bench/infer.py --device cuda --compile       # GPU: d20 (vocab 65,536), batch 1 and 8, plain vs fast vs compiled

All models are randomly initialised (speed does not depend on the weights; a random head keeps the logits non-zero).
Tokens/s count generated tokens (rows × steps). Each decode step ends with the greedy argmax copied to the host, as the
engine's loop does. CPU table: for each context length, prefill tokens/s, then decode tokens/s with the cache (one new
token per step) and without it (the whole sequence again every step), and the cache's speed-up — which grows with the
context, since without a cache each step re-reads the whole context. GPU table: bytes read per generated token (every
matrix once — the embedding is a lookup — plus the keys and values of the live context) against a device-to-device
copy measured in the same run (bytes read + written / time): the fraction of that bound is what a decode loop can
hope to raise.
"""
import argparse, os, statistics, time
import torch
import torch.nn as nn
from nanochat.model import GPT, config_from_depth, KVCache, amp_context
from nanochat.engine import StaticDecoder, expand_cache


def random_gpt(depth, vocab, width_ratio, head_dim, seq_len, device, seed=0):
    "A GPT of the course's shape with every weight random (init_weights zeroes the head and the output projections)."
    torch.manual_seed(seed)
    with torch.device(device):
        m = GPT(config_from_depth(depth, vocab, width_ratio, head_dim, seq_len))
        for p in m.parameters(): nn.init.normal_(p, std=p.size(-1) ** -0.5)
    return m.eval()


def sync(device):
    if device.type == "cuda": torch.cuda.synchronize(device)


def timed(fn, device, min_seconds=0.5, min_reps=2, max_reps=10_000, warmup=True):
    "Median seconds of `fn()` over repetitions (after one warm-up), until `min_seconds` have passed."
    if warmup: fn(); sync(device)
    ts, t_all = [], time.perf_counter()
    while len(ts) < min_reps or (time.perf_counter() - t_all < min_seconds and len(ts) < max_reps):
        t = time.perf_counter(); fn(); sync(device); ts.append(time.perf_counter() - t)
    return statistics.median(ts)


@torch.no_grad()
def plain_decode(model, ids, steps, dtype, use_cache=True) -> float:
    """Seconds per step of greedy decoding `steps` tokens after the prompt `ids` (B, T) — the prefill not counted — with
    the KV cache (the prompt prefilled once in one row, copied to B rows, as the engine does), or recomputing the whole
    sequence every step."""
    B, T = ids.shape
    device = ids.device
    with amp_context(device, dtype):
        if not use_cache:
            seq = ids
            sync(device); t0 = time.perf_counter()
            for _ in range(steps):
                nxt = model(seq)[:, -1].argmax(-1, keepdim=True)
                nxt.tolist(); seq = torch.cat([seq, nxt], 1)
            return (time.perf_counter() - t0) / steps
        cache = KVCache.for_model(model, 1, T, dtype=dtype)
        logits = model(ids[:1], kv_cache=cache)[:, -1]
        cache = expand_cache(cache, B, T + steps)
        nxt = logits.argmax(-1, keepdim=True).expand(B, 1)
        sync(device); t0 = time.perf_counter()
        for _ in range(steps):
            nxt = model(nxt, kv_cache=cache)[:, -1].argmax(-1, keepdim=True)
            nxt.tolist()
        return (time.perf_counter() - t0) / steps


def median_of(fn, reps=3):
    "Median of `reps` calls of `fn()` (each returns seconds), after one warm-up call."
    fn()
    return statistics.median(fn() for _ in range(reps))


@torch.no_grad()
def prefill_seconds(model, ids, dtype):
    device = ids.device
    def run():
        with amp_context(device, dtype):
            cache = KVCache.for_model(model, ids.size(0), ids.size(1), dtype=dtype)
            model(ids, kv_cache=cache)
    return timed(run, device)


def cpu_main(a):
    device, dtype = torch.device("cpu"), torch.float32
    model = random_gpt(a.depth or 4, a.vocab or 8192, 64, 64, max(a.contexts) + a.steps, device)
    c = model.config
    n = torch.get_num_threads()
    print(f"torch {torch.__version__}, {n} thread{'s' * (n > 1)}, fp32; d{c.n_layer}, width {c.n_embd}, vocab {c.vocab_size}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters; {a.steps} decode steps per measurement")
    print(f"{'context':>8}{'batch':>6}{'prefill tok/s':>15}{'cached tok/s':>14}{'no cache tok/s':>16}{'speed-up':>10}")
    for T in a.contexts:
        for B in a.batches:
            ids = torch.randint(0, c.vocab_size, (B, T), generator=torch.Generator().manual_seed(T))
            pre = B * T / prefill_seconds(model, ids, dtype)
            cached = B / median_of(lambda: plain_decode(model, ids, a.steps, dtype))
            n = 4   # steps without the cache: each is a whole forward pass over the context, so a few are enough
            uncached = B / median_of(lambda: plain_decode(model, ids, n, dtype, use_cache=False), reps=1 if T >= 1024 else 3)
            print(f"{T:>8}{B:>6}{pre:>15,.0f}{cached:>14,.0f}{uncached:>16,.0f}{cached / uncached:>9.1f}×", flush=True)


def copy_bandwidth(device, gb=4.0):
    "Device-to-device copy: (bytes read + bytes written) / seconds, median of 20 after warm-up."
    n = int(gb * 1e9) // 2
    src = torch.randn(n, device=device, dtype=torch.bfloat16); dst = torch.empty_like(src)
    starts, ends = [torch.cuda.Event(enable_timing=True) for _ in range(20)], [torch.cuda.Event(enable_timing=True) for _ in range(20)]
    for _ in range(3): dst.copy_(src)
    for s, e in zip(starts, ends): s.record(); dst.copy_(src); e.record()
    torch.cuda.synchronize()
    return 2 * src.numel() * 2 / (statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends)) / 1e3)


def decode_bytes(model, dtype, rows, context):
    "Bytes one decode step must read: every matrix once (the embedding: `rows` rows of it), and the keys and values of `context` positions per row."
    c, size = model.config, torch.finfo(dtype).bits // 8
    mats = sum(p.numel() for n, p in model.named_parameters() if "wte" not in n)
    kv = 2 * c.n_layer * c.n_kv_head * (c.n_embd // c.n_head) * context * rows
    return (mats + kv) * size + rows * c.n_embd * model.transformer.wte.weight.element_size()


@torch.no_grad()
def fast_decode_seconds(model, ids, steps, dtype, compile):
    "Seconds per step of greedy decoding through `StaticDecoder` (graph replay), and the seconds its construction took."
    B, T = ids.shape
    t0 = time.perf_counter()
    dec = StaticDecoder(model, B, StaticDecoder.size_for(T + steps), dtype, compile=compile)
    sync(ids.device); build = time.perf_counter() - t0
    cache = KVCache.for_model(model, 1, T, dtype=dtype)
    with amp_context(ids.device, dtype):
        first = model(ids[:1], kv_cache=cache)[:, -1].argmax(-1).expand(B).tolist()
    def run():
        dec.start(cache, T + steps)
        col = first
        for _ in range(steps): col = dec.step(col).argmax(-1).tolist()
    return timed(run, ids.device, min_seconds=1.0, min_reps=3) / steps, build, dec


def profile_step(decoders: dict, prompt):
    "Where one decode step's GPU time goes, per decoder: kernels per step, GPU time per step, and the costliest kernels."
    from torch.profiler import profile, ProfilerActivity
    for name, dec in decoders.items():
        dec.cache.seek(prompt)
        dec.graph.replay(); torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(5): dec.graph.replay()
            torch.cuda.synchronize()
        ev = prof.key_averages()
        us = lambda e: getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)
        kernels = [e for e in ev if us(e) > 0]
        n, total = sum(e.count for e in kernels) / 5, sum(us(e) for e in kernels) / 5
        print(f"-- {name}: {n:.0f} kernels and {total / 1e3:.3f} ms of GPU time per step; the costliest:")
        for e in sorted(kernels, key=us, reverse=True)[:10]:
            print(f"   {us(e) / 5:8.1f} µs/step {e.count / 5:5.0f}× {us(e) / e.count:6.1f} µs  {e.key[:90]}")

GPU = "cuda"   # where the GPU runs go (a test may point this at "cpu", with torch.cuda's timers replaced)

def gpu_main(a):
    device, dtype = torch.device(GPU), torch.bfloat16
    bw = copy_bandwidth(device)
    model = random_gpt(a.depth or 20, a.vocab or 65536, 64, 128, 2048, device)
    c = model.config
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}; d{c.n_layer}, width {c.n_embd}, vocab {c.vocab_size}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters, bf16 autocast (fp32 weights in the plain path; "
          f"the fast path reads a bf16 copy of the matrices); prompt {a.prompt} tokens, {a.steps} decode steps")
    print(f"device-to-device copy: {bw / 1e12:.2f} TB/s (read + write)")
    print(f"{'batch':>5} {'path':<22}{'ms/step':>9}{'tok/s':>9}{'MB/token':>10}{'bound tok/s':>12}{'of bound':>9}{'build s':>9}")
    ctx_avg = a.prompt + a.steps / 2
    rows_out, profiled = [], {}
    for B in a.batches:
        ids = torch.randint(0, c.vocab_size, (B, a.prompt), device=device, generator=torch.Generator(device).manual_seed(0))
        bytes_step = decode_bytes(model, dtype, B, ctx_avg)
        bound = bw / bytes_step * B   # tokens/s if a step took only the time to read its bytes
        plain = median_of(lambda: plain_decode(model, ids, a.steps, dtype))
        results = [("plain (KV cache)", plain, 0.0)]
        for name, comp, lt in (("fast: static + graph", False, False), ("fast: graph, cuBLASLt", False, True),
                               ("fast: + torch.compile", True, False)):
            if (comp and not a.compile) or (lt and not a.cublaslt): continue   # compiling takes ~40 s per batch size
            blas = torch.backends.cuda.preferred_blas_library()
            try:
                if lt: torch.backends.cuda.preferred_blas_library("cublaslt")   # its kernels are chosen at capture
                sec, build, dec = fast_decode_seconds(model, ids, a.steps, dtype, comp)
                results.append((name, sec, build))
                if B == 1 and a.profile: profiled[name] = dec   # profiled below (a compiled one is not compiled twice)
                del dec
            except Exception as e:
                print(f"{B:>5} {name:<22} failed: {type(e).__name__}: {str(e)[:300]}")
            finally: torch.backends.cuda.preferred_blas_library(blas)
        for name, sec, build in results:
            tok_s = B / sec
            print(f"{B:>5} {name:<22}{sec * 1e3:>9.3f}{tok_s:>9,.0f}{bytes_step / B / 1e6:>10.1f}{bound:>12,.0f}{tok_s / bound:>9.1%}"
                  f"{build:>9.1f}", flush=True)
            rows_out.append((B, name, tok_s, tok_s / bound))
    if a.profile:
        try: profile_step(profiled, a.prompt)
        except Exception as e: print(f"-- profile failed: {type(e).__name__}: {str(e)[:200]}")
    profiled.clear()
    # the fast path must decode what the plain path decodes: greedy tokens of both from the same prompt, in fp32 (where
    # the two should agree exactly) and in bf16 (where rounding may differ: attention over a masked cache)
    ids = torch.randint(0, c.vocab_size, (1, a.prompt), device=device, generator=torch.Generator(device).manual_seed(1))
    for dt in (torch.float32, dtype):
        plain_toks, fast_toks, diff = greedy_both(model, ids, 64, dt)
        same = next((i for i, (p, f) in enumerate(zip(plain_toks, fast_toks)) if p != f), len(plain_toks))
        print(f"greedy, {len(plain_toks)} tokens, {str(dt).split('.')[-1]}: the fast path agrees with the plain path on the first "
              f"{same}; first step's logits differ by at most {diff:.2e}")


@torch.no_grad()
def greedy_both(model, ids, n, dtype):
    "Greedy tokens of the plain cached path and of StaticDecoder after prompt `ids` (1, T), and their first step's max |Δlogits|."
    T, dev = ids.size(1), ids.device
    with amp_context(dev, dtype):
        cache = KVCache.for_model(model, 1, T + n, dtype=dtype)
        nxt = model(ids, kv_cache=cache)[:, -1].argmax(-1, keepdim=True)
        plain, logits0 = [nxt.item()], model(nxt, kv_cache=cache)[:, -1].float()
        nxt = logits0.argmax(-1, keepdim=True); plain.append(nxt.item())
        for _ in range(n - 2): nxt = model(nxt, kv_cache=cache)[:, -1].argmax(-1, keepdim=True); plain.append(nxt.item())
        pre = KVCache.for_model(model, 1, T, dtype=dtype); model(ids, kv_cache=pre)
    dec = StaticDecoder(model, 1, StaticDecoder.size_for(T + n), dtype).start(pre, T + n)
    fast = [plain[0]]
    for k in range(n - 1):
        out = dec.step(fast[-1:])
        if k == 0: diff = (out - logits0).abs().max().item()
        fast.append(out.argmax(-1).item())
    return plain, fast, diff


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--depth", type=int, default=None, help="model depth (default: 4 on the CPU, 20 on a GPU)")
    ap.add_argument("--vocab", type=int, default=None, help="vocabulary (default: 8192 on the CPU, 65536 on a GPU)")
    ap.add_argument("--contexts", nargs="*", type=int, default=[64, 256, 1024], help="CPU: context lengths (tokens)")
    ap.add_argument("--batches", nargs="*", type=int, default=[1, 8])
    ap.add_argument("--steps", type=int, default=None, help="decode steps per measurement (default: 16 on the CPU, 256 on a GPU)")
    ap.add_argument("--prompt", type=int, default=512, help="GPU: prompt tokens before decoding")
    ap.add_argument("--compile", action="store_true", help="GPU: also the compiled fast path (it compiles for ~40 s per batch size)")
    ap.add_argument("--cublaslt", action="store_true", help="GPU: also the graph with cuBLASLt's kernels (other tile choices for 1-row products)")
    ap.add_argument("--profile", action="store_true", help="GPU: also profile one batch-1 step (torch.profiler): where the time goes")
    ap.add_argument("--threads", type=int, default=None, help="CPU: torch threads (default: all cores)")
    a = ap.parse_args()
    if a.device == "cuda":
        a.steps = a.steps or 256
        if not torch.cuda.is_available(): raise SystemExit("error: --device cuda but torch sees no CUDA GPU")
        gpu_main(a)
    else:
        a.steps = a.steps or 16
        if a.threads: torch.set_num_threads(a.threads)
        cpu_main(a)


if __name__ == "__main__": main()
