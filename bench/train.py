"""Training throughput of the course's GPT, against the machine's own matmul peak measured in the same run.

    .venv/bin/python bench/train.py                       # CPU: smoke and quickstart model sizes, 1 thread and all threads
    .venv/bin/python bench/train.py --sizes quickstart --compile   # also torch.compile: compile time and break-even
    .venv/bin/python bench/train.py --dtypes float32 bfloat16      # bf16 autocast vs fp32
    python3 bench/train.py --device cuda                  # one GPU: d20 and d12, bf16, compiled (see --runs, --attn)

CPU: prints, per model size / threads / dtype: ms per optimizer step (forward + backward + Muon/AdamW), tokens per
second, achieved FLOP/s (model FLOPs per token × tok/s, as MFU counts them) and that as a fraction of a 1024² fp32
matmul's FLOP/s measured with the same threads just before: the practical ceiling on a CPU.

GPU: first the two ceilings — the datasheet's dense bf16 peak (989 TFLOP/s on an H100/H200) and an 8192³ bf16 matmul
measured in this process — and the attention kernels PyTorch offers (flash, cuDNN, memory-efficient), forward +
backward at each run's shape. Then, per run (depth × device batch, and attention backend): whole optimizer steps of
`--total-batch` tokens (gradient accumulation, as the [gpu] preset trains: 524,288 tokens per step), the model compiled,
bf16 autocast, random tokens (no data loader): compile seconds, tokens/s, MFU against both ceilings, peak memory, and
the optimizer step alone with Muon matrix by matrix and stacked by shape (the default on one GPU, used in the steps).
"""
import argparse, time, os, contextlib
import torch
from nanochat.model import GPT, config_from_depth, amp_context
from nanochat.optim import make_optimizers
from nanochat.common import matmul_flops
from nanochat.settings import load_preset

def step_seconds(model, opts, x, dtype, steps):
    "Best-of-`steps` seconds for one optimizer step (after one warm-up step)."
    ts = []
    for i in range(steps + 1):
        t = time.perf_counter()
        with amp_context(torch.device("cpu"), dtype): loss = model(x, x)
        loss.backward()
        for o in opts: o.step()
        model.zero_grad(set_to_none=True)
        ts.append(time.perf_counter() - t)
    return min(ts[1:] or ts)

def cuda_events_ms(fn, reps=10, warmup=3):
    "Median milliseconds of `fn()` timed with CUDA events."
    for _ in range(warmup): fn()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); torch.cuda.synchronize(); times.append(s.elapsed_time(e))
    return sorted(times)[len(times) // 2]

def gpu_matmul_flops(n=8192):
    "bf16 n×n×n matmul FLOP/s on random data (median of 10 after 3 warm-ups)."
    a, b = torch.randn(n, n, device=GPU, dtype=torch.bfloat16), torch.randn(n, n, device=GPU, dtype=torch.bfloat16)
    return 2 * n**3 / (cuda_events_ms(lambda: a @ b) / 1e3)

GPU = "cuda"   # where the GPU runs go (a test may point this at "cpu", with torch.cuda's timers replaced)
ATTN = {"flash": "FLASH_ATTENTION", "cudnn": "CUDNN_ATTENTION", "efficient": "EFFICIENT_ATTENTION"}

def attn_context(name):
    "A context that makes SDPA use backend `name` ('default': PyTorch's own choice)."
    if name == "default": return contextlib.nullcontext()
    from torch.nn.attention import sdpa_kernel, SDPBackend
    return sdpa_kernel(getattr(SDPBackend, ATTN[name]))

def attention_ms(B, H, T, D, name):
    "Forward + backward milliseconds of causal SDPA at (B, H, T, D) in bf16 with backend `name`."
    q, k, v = (torch.randn(B, H, T, D, device=GPU, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    g = torch.randn(B, H, T, D, device=GPU, dtype=torch.bfloat16)
    def run():
        with attn_context(name): y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        y.backward(g)
    return cuda_events_ms(run)

def gpu_run(depth, B, T, vocab, total, steps, attn, peak, measured, profile=False):
    "Compile and time `steps` optimizer steps of `total` tokens; prints one row."
    import torch.nn.functional as F
    cfg = config_from_depth(depth, vocab, 64, 128, T)
    torch.manual_seed(0)
    with torch.device(GPU): model = GPT(cfg)
    opts = make_optimizers(model)
    fwd = torch.compile(model, dynamic=False)
    accum = total // (B * T)
    x = torch.randint(0, vocab, (accum, B, T), device=GPU); y = x.roll(-1, -1)
    def step():
        for i in range(accum):
            with attn_context(attn), amp_context(torch.device(GPU), torch.bfloat16): loss = fwd(x[i], y[i])
            (loss / accum).backward()
        for o in opts: o.step()
        model.zero_grad(set_to_none=True)
    torch.cuda.synchronize(); t0 = time.perf_counter(); step(); torch.cuda.synchronize(); compile_s = time.perf_counter() - t0
    step(); torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps): step()
    torch.cuda.synchronize(); sec = (time.perf_counter() - t0) / steps
    # the optimizer alone, Muon matrix by matrix and stacked by shape (the default on one GPU): gradients of one micro-batch
    with attn_context(attn), amp_context(torch.device(GPU), torch.bfloat16): fwd(x[0], y[0]).backward()
    opt_ms = {}
    for stack in (False, True):
        opts[1].stack = stack
        opt_ms[stack] = cuda_events_ms(lambda: [o.step() for o in opts], reps=3, warmup=1)
    opts[1].stack = None
    model.zero_grad(set_to_none=True)
    tok_s = total / sec
    achieved = model.estimate_flops() * tok_s
    mem = torch.cuda.max_memory_allocated() / 2**30
    print(f"d{depth:<4}{B:>4}×{T:<6}{attn:<10}{accum:>6}{compile_s:>9.0f}{sec:>9.2f}{tok_s:>11,.0f}{achieved / 1e12:>9.0f}"
          f"{achieved / peak:>9.1%}{achieved / measured:>10.1%}{mem:>8.0f}{opt_ms[False]:>9.0f}{opt_ms[True]:>9.0f}", flush=True)
    if profile:
        def micro():
            with attn_context(attn), amp_context(torch.device(GPU), torch.bfloat16): fwd(x[0], y[0]).backward()
        try: profile_kernels(micro, f"d{depth} {B}×{T}, one micro-batch forward + backward", B * T * model.estimate_flops())
        except Exception as e: print(f"-- profile failed: {type(e).__name__}: {str(e)[:200]}")   # the timings above stand
    del model, opts, fwd, x, y
    torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()

# by kernel name, first match wins (cuDNN's attention kernels also carry "sm90" and "gemm"-like words: attention first)
KINDS = [("attention", ("flash", "fmha", "cudnn", "attention", "sdpa")), ("matmul", ("gemm", "nvjet", "cutlass", "xmma", "cublas")),
         ("fused (Triton)", ("triton",))]

def profile_kernels(fn, title, flops):
    "GPU time of `fn()` by kind of kernel (matrix products, attention, Triton-fused elementwise, the rest), and the costliest kernels."
    from torch.profiler import profile, ProfilerActivity
    fn(); torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn(); torch.cuda.synchronize()
    us = lambda e: getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)
    kernels = [e for e in prof.key_averages() if us(e) > 0]
    total = sum(map(us, kernels))
    if not total: print(f"-- {title}: the profiler saw no GPU kernels"); return
    kind = lambda e: next((k for k, keys in KINDS if any(w in e.key.lower() for w in keys)), "other")
    by = {}
    for e in kernels: by[kind(e)] = by.get(kind(e), 0) + us(e)
    print(f"-- {title}: {total / 1e3:.1f} ms of GPU time, {sum(e.count for e in kernels)} kernels; "
          f"model FLOPs / GPU time = {flops / (total / 1e6) / 1e12:.0f} TFLOP/s")
    print("   " + " | ".join(f"{k} {v / total:.1%}" for k, v in sorted(by.items(), key=lambda kv: -kv[1])))
    for e in sorted(kernels, key=us, reverse=True)[:12]:
        print(f"   {us(e) / 1e3:8.2f} ms {e.count:5d}×  {kind(e):<15} {e.key[:80]}")

def gpu_main(a):
    from nanochat.common import peak_flops
    name = torch.cuda.get_device_name()
    peak, measured = peak_flops(torch.device(GPU)), gpu_matmul_flops()
    print(f"torch {torch.__version__}, {name}; bf16 peak: datasheet {peak / 1e12:.0f} TFLOP/s, 8192³ matmul measured here "
          f"{measured / 1e12:.0f} TFLOP/s ({measured / peak:.0%} of the datasheet)")
    runs = [tuple(map(int, r.lower().split("x"))) for r in a.runs]
    shapes = sorted({(B, config_from_depth(d, a.vocab, 64, 128, a.seq).n_head) for d, B in runs})
    print(f"causal attention, forward + backward, ms (bf16, head_dim 128, seq {a.seq}):")
    best = {}
    for B, H in shapes:
        ms = {}
        for n in ["default", *ATTN]:
            try: ms[n] = attention_ms(B, H, a.seq, 128, n)
            except RuntimeError as e: print(f"  B={B} heads={H} {n}: unavailable ({str(e).splitlines()[0][:80]})")
        best[B, H] = min((n for n in ms if n != "default"), key=ms.get)
        print(f"  B={B} heads={H}: " + " | ".join(f"{n} {t:.2f}" for n, t in ms.items()) + f"  → best: {best[B, H]}", flush=True)
    print(f"{'model':<6}{'batch':>11} {'attn':<10}{'accum':>6}{'compile':>9}{'s/step':>9}{'tok/s':>11}{'TFLOP/s':>9}"
          f"{'MFU':>9}{'of matmul':>10}{'GiB':>8}{'opt ms':>9}{'stacked':>9}")
    for depth, B in runs:
        H = config_from_depth(depth, a.vocab, 64, 128, a.seq).n_head
        for attn in dict.fromkeys(best[B, H] if n == "best" else n for n in a.attn):
            try: gpu_run(depth, B, a.seq, a.vocab, a.total_batch, a.steps, attn, peak, measured, a.profile)
            except torch.OutOfMemoryError: print(f"d{depth} {B}×{a.seq} {attn}: out of memory"); torch.cuda.empty_cache()

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--runs", nargs="*", default=["20x16", "20x32", "12x32", "12x64"], help="GPU: DEPTHxDEVICE_BATCH")
    ap.add_argument("--attn", nargs="*", default=["default"], choices=["default", "best", *ATTN],
                    help="GPU: SDPA backends to train with (best: the fastest in the attention table at that shape)")
    ap.add_argument("--seq", type=int, default=2048, help="GPU: sequence length")
    ap.add_argument("--vocab", type=int, default=65536, help="GPU: vocabulary size")
    ap.add_argument("--total-batch", type=int, default=524288, help="GPU: tokens per optimizer step")
    ap.add_argument("--sizes", nargs="*", default=["smoke", "quickstart"], help="presets of settings.ini whose model to time")
    ap.add_argument("--threads", nargs="*", type=int, default=None, help="torch thread counts (default: 1 and all cores)")
    ap.add_argument("--dtypes", nargs="*", default=["float32"], choices=["float32", "bfloat16"])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (compile seconds, steady state, break-even)")
    ap.add_argument("--profile", action="store_true", help="GPU: also profile one micro-batch per run: GPU time by kind of kernel")
    a = ap.parse_args()
    if a.device == "cuda":
        if not torch.cuda.is_available(): raise SystemExit("error: --device cuda but torch sees no CUDA GPU")
        return gpu_main(a)
    threads = a.threads or sorted({1, os.cpu_count() or 1})
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, bf16 instructions: "
          f"{[f for f in ('avx512_bf16', 'amx_bf16') if f in open('/proc/cpuinfo').read()] or 'none'}")
    print(f"{'model':<11}{'thr':>4} {'dtype':<9}{'ms/step':>9}{'tok/s':>10}{'GFLOP/s':>9}{'matmul GFLOP/s':>16}{'fraction':>10}")
    for size in a.sizes:
        s = load_preset(size)
        cfg = config_from_depth(s["depth"], s["vocab_size"], s["aspect_ratio"], s["head_dim"], s["max_seq_len"])
        B, T = s["device_batch_size"], s["max_seq_len"]
        for nt in threads:
            torch.set_num_threads(nt)
            peak = matmul_flops(torch.device("cpu"), torch.float32, n=1024, seconds=0.5)
            for dt_name in a.dtypes:
                dt = getattr(torch, dt_name)
                torch.manual_seed(0)
                model = GPT(cfg); opts = make_optimizers(model)
                x = torch.randint(0, cfg.vocab_size, (B, T))
                sec = step_seconds(model, opts, x, dt, a.steps if dt == torch.float32 else 1)
                tok_s = B * T / sec
                achieved = model.estimate_flops() * tok_s
                print(f"{size:<11}{nt:>4} {dt_name:<9}{sec * 1000:>9.0f}{tok_s:>10,.0f}{achieved / 1e9:>9.1f}{peak / 1e9:>16.1f}{achieved / peak:>10.1%}")
                if a.compile and dt == torch.float32:
                    torch.manual_seed(0)
                    model = GPT(cfg); opts = make_optimizers(model); cm = torch.compile(model, dynamic=False)
                    t0 = time.perf_counter(); step_seconds(cm, opts, x, dt, 0); compile_s = time.perf_counter() - t0
                    csec = step_seconds(cm, opts, x, dt, a.steps)
                    gain = sec - csec
                    be = f"{compile_s / gain:,.0f} steps ({compile_s / gain * sec / 60:.1f} min)" if gain > 0 else "never"
                    print(f"{'  compiled':<11}{nt:>4} {dt_name:<9}{csec * 1000:>9.0f}{B * T / csec:>10,.0f}"
                          f"   compile {compile_s:.0f}s, speedup {sec / csec:.2f}×, pays back after {be}")

if __name__ == "__main__": main()
