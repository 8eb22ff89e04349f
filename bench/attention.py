"""Benchmark: one patched SD3 attention layer, stock SDPA vs ours vs the naive materialising algorithm.

Shapes: B=2 (CFG), H=24, d=64, `--image-tokens` image + 333 text keys (4096 is SD3-medium at
1024 px; the default 1024 suits a CPU). The intervention is RDS (per-head top-1, -1e4 on all rows).
The naive algorithm is the authors': full fp32 logits and softmax, mean over image rows, top-k,
bias, softmax again, multiply by V. Peak memory is measured in a fresh subprocess per method
(peak RSS on CPU, max_memory_allocated on CUDA) as the increase over the inputs.
Then the whole-step overhead of one patched layer in a tiny-sd3 generation.

    python bench/attention.py [--image-tokens 1024] [--device cpu|cuda] [--repeats 5]

Last line: `attention-bench: time_vs_stock=X time_vs_naive=Y peakmem_vs_naive=Z`.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sinkrepro.attention.intervene import intervene
from sinkrepro.attention.spec import PRESETS, InterventionSpec
from sinkrepro.attention.tokens import build_layout

HEADS, HEAD_DIM, TEXT_TOKENS, CLIP_TOKENS = 24, 64, 333, 77
SPEC = InterventionSpec(**dict(PRESETS["rds"], k=1, layers=(0,)))


def inputs(n_image: int, device: str, dtype: torch.dtype):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, HEADS, n_image + TEXT_TOKENS, HEAD_DIM, generator=g).to(device, dtype)
               for _ in range(3))
    side = int(n_image ** 0.5)
    layout = build_layout(2, n_image, TEXT_TOKENS, n_image, clip_len=CLIP_TOKENS, grid_width=side, device=device)
    return q, k, v, layout


def naive(q, k, v, n_image: int, k_top: int = 1, bias: float = -1e4):
    logits = (q @ k.transpose(-1, -2)).float() * q.shape[-1] ** -0.5  # [B, H, Nq, Nk]
    mass = torch.softmax(logits, dim=-1)[:, :, :n_image].mean(dim=-2)  # [B, H, Nk]
    sinks = mass.topk(k_top, dim=-1).indices
    shift = torch.zeros_like(mass).scatter_(-1, sinks, bias)[:, :, None, :]
    return (torch.softmax(logits + shift, dim=-1).to(v.dtype) @ v)


def methods(n_image: int):
    return {
        "stock": lambda q, k, v, layout: F.scaled_dot_product_attention(q, k, v),
        "ours": lambda q, k, v, layout: intervene(q, k, v, SPEC, layout).out,
        "naive": lambda q, k, v, layout: naive(q, k, v, n_image),
    }


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def best_time(fn, args, device: str, repeats: int) -> float:
    fn(*args)
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def probe_memory(method: str, n_image: int, device: str, dtype: torch.dtype) -> float:
    """Peak extra memory (MiB) of one call, over the inputs; run in a fresh process."""
    args = inputs(n_image, device, dtype)
    fn = methods(n_image)[method]
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
           "--dtype", dtype, "--threads", str(torch.get_num_threads())]
    return float(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def pipeline_overhead(repeats: int, size: int = 128, steps: int = 4) -> tuple[float, float]:
    """Seconds per tiny-sd3 generation without and with one patched layer (RDS k=1, layer 1)."""
    from sinkrepro.attention import attach
    from sinkrepro.models.load import load_pipeline
    from sinkrepro.models.tiny import build_tiny_sd3

    with tempfile.TemporaryDirectory() as tmp:
        pipe = load_pipeline(build_tiny_sd3(Path(tmp) / "tiny-sd3"), "sd3")
    prompts = ["a photo of a red dog", "two cats left of a blue car"]

    def generate(spec):
        with attach(pipe, spec, prompt_ids=["a", "b"], seed=0, num_inference_steps=steps):
            pipe(prompt=prompts, num_inference_steps=steps, height=size, width=size, output_type="np",
                 generator=[torch.Generator().manual_seed(i) for i in range(2)])

    spec = InterventionSpec(**dict(PRESETS["rds"], k=1, layers=(1,)))
    return best_time(generate, (InterventionSpec(),), "cpu", repeats), best_time(generate, (spec,), "cpu", repeats)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-tokens", type=int, default=1024)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"],
                        help="default: float32 on CPU, float16 on CUDA (as SD3 runs)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier on shared hosts)")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    dtype_name = args.dtype or ("float16" if args.device == "cuda" else "float32")
    dtype = getattr(torch, dtype_name)
    torch.set_num_threads(args.threads)
    if args.probe:
        print(probe_memory(args.probe, args.image_tokens, args.device, dtype))
        return

    n = args.image_tokens
    data = inputs(n, args.device, dtype)
    print(f"layer: B=2 H={HEADS} d={HEAD_DIM} keys={n}+{TEXT_TOKENS} {dtype_name} on {args.device}, "
          f"threads={torch.get_num_threads()}, spec=rds k=1")
    times = {name: best_time(fn, data, args.device, args.repeats) for name, fn in methods(n).items()}
    mems = {name: memory(name, n, args.device, dtype_name) for name in methods(n)}
    for name in times:
        print(f"  {name:6s} {times[name] * 1e3:9.1f} ms   peak extra {mems[name]:9.1f} MiB")
    ours_out = methods(n)["ours"](*data).float()
    naive_out = methods(n)["naive"](*data).float()
    print(f"  max |ours - naive| = {(ours_out - naive_out).abs().max().item():.2e}")
    ratios = dict(time_vs_stock=times["ours"] / times["stock"], time_vs_naive=times["ours"] / times["naive"],
                  peakmem_vs_naive=mems["ours"] / mems["naive"])
    print("targets: time_vs_stock <= 2.0, time_vs_naive <= 0.5, peakmem_vs_naive <= 0.125")
    if not args.skip_pipeline:
        base, patched = pipeline_overhead(max(1, args.repeats // 2))
        print(f"tiny-sd3 128px 4 steps x2 prompts: unpatched {base:.3f} s, one patched layer {patched:.3f} s "
              f"(overhead {100 * (patched / base - 1):+.1f}%)")
    print(json.dumps({k: round(v, 4) for k, v in ratios.items()}))
    print("attention-bench: " + " ".join(f"{k}={v:.3f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
