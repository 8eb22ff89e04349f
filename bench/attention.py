"""Benchmark: SD3 attention with sink detection, against stock SDPA and the naive materialising algorithm.

Layer (B=2 for CFG, H=24, d=64, image + 333 text keys; 1024 image tokens is SD3 at 512 px, 4096 at
1024 px), each method timed `--runs` times, interleaved, reported as min / median:
- stock: F.scaled_dot_product_attention;
- ours: RDS (per-head top-1 sink, -1e4 on all rows) through `intervene`;
- naive: the authors' algorithm: full fp32 logits and softmax, mean over image rows, top-1, bias,
  softmax again, multiply by V;
- measure: what a measured, unedited layer costs (stock call + mass, entropy and top-5 per row).
Ratios are min/min and median/median against baselines run in the same process. Peak memory is
the increase over the inputs in a fresh subprocess per method (peak RSS on CPU,
max_memory_allocated on CUDA). On CPU the ratios of process CPU time come too (cpu_*: least
disturbed by other load on a shared host; with 2 threads they sum both).

Whole step: one denoiser forward (CFG batch 2) of a random-init stand-in with SD3-medium's widths
and `--step-layers` joint blocks (not the real weights: timings only), unpatched vs every layer
measured (measure-only), and vs A2 (RDS k=1 on layers 6, 12, 18) when it has 19+ layers.

    python bench/attention.py [--image-tokens 1024 4096] [--threads 1 2] [--runs 3]
    python bench/attention.py --device cuda --dtype float16 --image-tokens 4096 --step-layers 24

Last lines: `attention-bench: tokens=N threads=T time_vs_stock=MIN/MEDIAN ...`.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from sinkrepro.attention.intervene import intervene
from sinkrepro.attention.kernels import incoming_mass
from sinkrepro.attention.spec import PRESETS, InterventionSpec
from sinkrepro.attention.tokens import build_layout

HEADS, HEAD_DIM, TEXT_TOKENS, CLIP_TOKENS = 24, 64, 333, 77
SPEC = InterventionSpec(**dict(PRESETS["rds"], k=1, layers=(0,)))
A2_LAYERS = (6, 12, 18)
TARGETS = dict(time_vs_stock=1.8, time_vs_naive=0.4)


def inputs(n_image: int, device: str, dtype: torch.dtype):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, HEADS, n_image + TEXT_TOKENS, HEAD_DIM, generator=g).to(device, dtype)
               for _ in range(3))
    side = int(n_image ** 0.5)
    layout = build_layout(2, n_image, TEXT_TOKENS, n_image, clip_len=CLIP_TOKENS, grid_width=side, device=device)
    return q, k, v, layout


def naive(q, k, v, n_image: int, k_top: int = 1, bias: float = -1e4):
    logits = (q @ k.transpose(-1, -2)).float().mul_(q.shape[-1] ** -0.5)  # [B, H, Nq, Nk]
    mass = torch.softmax(logits, dim=-1)[:, :, :n_image].mean(dim=-2)     # [B, H, Nk]
    sinks = mass.topk(k_top, dim=-1).indices
    logits += torch.zeros_like(mass).scatter_(-1, sinks, bias)[:, :, None, :]
    return torch.softmax(logits, dim=-1).to(v.dtype) @ v


def measure(q, k, v, n_image: int):
    out = F.scaled_dot_product_attention(q, k, v)
    return out, incoming_mass(q, k, None, None, n_image, row_stats=True)


METHODS = {
    "stock": lambda q, k, v, layout: F.scaled_dot_product_attention(q, k, v),
    "ours": lambda q, k, v, layout: intervene(q, k, v, SPEC, layout).out,
    "naive": lambda q, k, v, layout: naive(q, k, v, layout.n_image_rows),
    "measure": lambda q, k, v, layout: measure(q, k, v, layout.n_image_rows),
}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, args, device: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(fns: dict, args, device: str, runs: int) -> tuple[dict, dict]:
    """Wall and CPU seconds per call of each function: a warm-up each, then `runs` rounds of one call each."""
    for fn in fns.values():
        timed(fn, args, device)
    wall, cpu = {name: [] for name in fns}, {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            w, c = timed(fn, args, device)
            wall[name].append(w)
            cpu[name].append(c)
    return wall, cpu


def ratio(times: dict, a: str, b: str) -> tuple[float, float]:
    """(min a / min b, median a / median b)."""
    return min(times[a]) / min(times[b]), statistics.median(times[a]) / statistics.median(times[b])


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def probe_memory(method: str, n_image: int, device: str, dtype: torch.dtype) -> float:
    """Peak extra memory (MiB) of one call, over the inputs; run in a fresh process."""
    args = inputs(n_image, device, dtype)
    fn = METHODS[method]
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn(*args)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    base = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark to the current RSS
    fn(*args)
    return (_rss_kib("VmHWM") - base) / 1024


def memory(method: str, n_image: int, device: str, dtype: str) -> float:
    cmd = [sys.executable, __file__, "--probe", method, "--image-tokens", str(n_image), "--device", device,
           "--dtype", dtype]
    return float(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def load() -> str:
    """The host's 1/5/15-minute load averages: other processes on a shared host disturb timings."""
    return "load " + "/".join(f"{x:.2f}" for x in os.getloadavg())


def fmt(x: float) -> str:
    return f"{x:.3g}"


def layer_bench(n: int, threads: int, device: str, dtype_name: str, runs: int) -> dict[str, tuple[float, float]]:
    data = inputs(n, device, getattr(torch, dtype_name))
    print(f"\nlayer: B=2 H={HEADS} d={HEAD_DIM} keys={n}+{TEXT_TOKENS} {dtype_name} on {device}, "
          f"threads={threads}, runs={runs}, {load()}")
    times, cpu = interleaved(METHODS, data, device, runs)
    print(f"  timed; {load()}")
    mems = {name: memory(name, n, device, dtype_name) for name in METHODS}
    for name, ts in times.items():
        cpu_note = f"(CPU min {fmt(min(cpu[name]) * 1e3):>7s} ms)  " if device == "cpu" else ""
        print(f"  {name:8s} min {fmt(min(ts) * 1e3):>7s} ms  median {fmt(statistics.median(ts) * 1e3):>7s} ms  "
              f"{cpu_note}peak extra {fmt(mems[name]):>7s} MiB")
    diff = (METHODS["ours"](*data).float() - METHODS["naive"](*data).float()).abs().max().item()
    print(f"  max |ours - naive| = {diff:.2g}")
    ratios = dict(time_vs_stock=ratio(times, "ours", "stock"), time_vs_naive=ratio(times, "ours", "naive"),
                  measure_vs_stock=ratio(times, "measure", "stock"))
    ratios["peakmem_vs_naive"] = (mems["ours"] / mems["naive"],) * 2
    if device == "cpu":  # CPU time: what a shared host's load disturbs least
        ratios.update(cpu_time_vs_stock=ratio(cpu, "ours", "stock"), cpu_time_vs_naive=ratio(cpu, "ours", "naive"))
    return ratios


def standin_transformer(n_layers: int, device: str, dtype: torch.dtype):
    """Random-init SD3Transformer2DModel with SD3-medium's widths (24 heads x 64) and n_layers blocks."""
    from diffusers import SD3Transformer2DModel

    torch.manual_seed(0)
    model = SD3Transformer2DModel(sample_size=128, patch_size=2, in_channels=16, out_channels=16,
                                  num_layers=n_layers, attention_head_dim=HEAD_DIM, num_attention_heads=HEADS,
                                  joint_attention_dim=4096, caption_projection_dim=HEADS * HEAD_DIM,
                                  pooled_projection_dim=2048, pos_embed_max_size=192)
    model = model.to(device).eval()
    return model if dtype == torch.float32 else model.to(dtype)


def step_bench(n: int, n_layers: int, threads: int, device: str, dtype_name: str, runs: int) -> dict:
    from sinkrepro.attention import attach

    dtype = getattr(torch, dtype_name)
    model = standin_transformer(n_layers, device, dtype)
    side = 2 * int(n ** 0.5)  # latent side: 2x2 patches make n image tokens
    g = torch.Generator().manual_seed(1)
    batch = dict(hidden_states=torch.randn(2, 16, side, side, generator=g),
                 encoder_hidden_states=torch.randn(2, TEXT_TOKENS, 4096, generator=g),
                 pooled_projections=torch.randn(2, 2048, generator=g))
    batch = {key: x.to(device, dtype) for key, x in batch.items()}
    batch["timestep"] = torch.tensor([500.0, 500.0], device=device)
    pipe = SimpleNamespace(transformer=model, scheduler=SimpleNamespace(timesteps=torch.tensor([500.0])))
    every = tuple(range(n_layers))

    def forward(spec: InterventionSpec, measure_layers: tuple[int, ...]):
        with torch.no_grad(), attach(pipe, spec, prompt_ids=["p"], seed=0, num_inference_steps=1,
                                     measure_layers=measure_layers):
            model(**batch)

    cases = {"unpatched": lambda: forward(InterventionSpec(), ()),
             "measure-all": lambda: forward(InterventionSpec(), every)}
    if n_layers > max(A2_LAYERS):
        cases["A2"] = lambda: forward(InterventionSpec(**dict(PRESETS["rds"], k=1, layers=A2_LAYERS)), ())
    print(f"\nwhole step: stand-in SD3 transformer, {n_layers} joint blocks, 24x64 heads, keys={n}+{TEXT_TOKENS}, "
          f"B=2, {dtype_name} on {device}, threads={threads}, runs={runs}, {load()}")
    times, _ = interleaved(cases, (), device, runs)
    print(f"  timed; {load()}")
    for name, ts in times.items():
        print(f"  {name:12s} min {fmt(min(ts)):>6s} s  median {fmt(statistics.median(ts)):>6s} s")
    return {f"{name}_overhead": tuple(r - 1 for r in ratio(times, name, "unpatched"))
            for name in times if name != "unpatched"}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-tokens", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch CPU threads")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"],
                        help="default: float32 on CPU, float16 on CUDA (as SD3 runs)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--step-tokens", type=int, default=None, help="image tokens of the whole-step bench "
                        "(default: 1024 on CPU, the largest --image-tokens on CUDA)")
    parser.add_argument("--step-layers", type=int, default=None, help="joint blocks of the stand-in "
                        "(default: 2 on CPU, 24 as SD3-medium on CUDA); 0 skips the whole-step bench")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    dtype_name = args.dtype or ("float16" if args.device == "cuda" else "float32")
    if args.probe:
        print(probe_memory(args.probe, args.image_tokens[0], args.device, getattr(torch, dtype_name)))
        return
    step_tokens = args.step_tokens or (max(args.image_tokens) if args.device == "cuda" else 1024)
    step_layers = args.step_layers if args.step_layers is not None else (24 if args.device == "cuda" else 2)
    print(f"host: {cpu_model()}, {os.cpu_count()} CPUs" if args.device == "cpu" else
          f"device: {torch.cuda.get_device_name()}")
    summary = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for n in args.image_tokens:
            ratios = layer_bench(n, threads, args.device, dtype_name, args.runs)
            summary.append((f"tokens={n} threads={threads}", ratios))
        if step_layers:
            summary.append((f"step tokens={step_tokens} layers={step_layers} threads={threads}",
                            step_bench(step_tokens, step_layers, threads, args.device, dtype_name, args.runs)))
    print("\nratios as min/median; targets: " + ", ".join(f"{k} <= {v}" for k, v in TARGETS.items()))
    for label, ratios in summary:
        print(f"attention-bench: {label} " + " ".join(f"{k}={fmt(a)}/{fmt(b)}" for k, (a, b) in ratios.items()))


if __name__ == "__main__":
    main()
