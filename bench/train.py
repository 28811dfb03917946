"""CPU training throughput of the course's GPT, against this machine's own matmul peak measured in the same run.

    .venv/bin/python bench/train.py                       # smoke and quickstart model sizes, 1 thread and all threads
    .venv/bin/python bench/train.py --sizes quickstart --compile   # also torch.compile: compile time and break-even
    .venv/bin/python bench/train.py --dtypes float32 bfloat16      # bf16 autocast vs fp32

Prints, per model size / threads / dtype: ms per optimizer step (forward + backward + Muon/AdamW), tokens per second,
achieved FLOP/s (model FLOPs per token × tok/s, as MFU counts them) and that as a fraction of a 1024² fp32 matmul's
FLOP/s measured with the same threads just before: the practical ceiling on a CPU.
"""
import argparse, time, os
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

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="*", default=["smoke", "quickstart"], help="presets of settings.ini whose model to time")
    ap.add_argument("--threads", nargs="*", type=int, default=None, help="torch thread counts (default: 1 and all cores)")
    ap.add_argument("--dtypes", nargs="*", default=["float32"], choices=["float32", "bfloat16"])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (compile seconds, steady state, break-even)")
    a = ap.parse_args()
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
