"""Exploration commands: look at one prompt's sinks, or generate one image under an intervention.

    sinkrepro sinks --model-dir resources/models/tiny-sd3 --family sd3 --prompt "a red dog" --layer 1
    sinkrepro generate --model-dir DIR --family sd3 --prompt "a red dog" --preset rds --k 1 --layers 1 --out img.png
"""
from __future__ import annotations

import json
from collections import defaultdict

from sinkrepro.architecture import FAMILY_MODULES
from sinkrepro.vocab import MEASURE_K


def _common(parser) -> None:
    parser.add_argument("--model-dir", required=True, help="a saved pipeline (resources/models/<name>)")
    parser.add_argument("--family", required=True, choices=sorted(FAMILY_MODULES))
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--steps", type=int, default=4, help="denoising steps (default 4)")
    parser.add_argument("--size", type=int, default=64, help="height = width in pixels (default 64)")
    parser.add_argument("--guidance", type=float, default=None, help="CFG scale (default: the pipeline's)")
    parser.add_argument("--seed", type=int, default=0, help="torch generator seed")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--variant", default=None, help="weight-file variant the model was fetched with (e.g. fp16)")
    parser.add_argument("--modules", default=None, help="comma-separated attention modules (SD3, FLUX: attn; "
                        "SD3.5: attn or attn2; SDXL: attn1 or attn2)")
    parser.add_argument("--blocks", default=None, help="only modules under this prefix, e.g. mid_block "
                        "(SDXL) or single_transformer_blocks (FLUX)")


def _load(args):
    from sinkrepro.models.load import is_standin, load_pipeline
    from sinkrepro.provenance import STANDIN_NOTICE

    pipe = load_pipeline(args.model_dir, args.family, dtype=args.dtype, device=args.device, variant=args.variant)
    if is_standin(args.model_dir):
        print(STANDIN_NOTICE)
    return pipe


def _generate(pipe, args, spec, measure_layers=()):
    import torch

    from sinkrepro.attention import attach

    kwargs = dict(num_inference_steps=args.steps, height=args.size, width=args.size,
                  generator=[torch.Generator("cpu").manual_seed(args.seed)])
    if args.guidance is not None:
        kwargs["guidance_scale"] = args.guidance
    modules = tuple(args.modules.split(",")) if args.modules else None
    with attach(pipe, spec, prompt_ids=["prompt"], seed=args.seed, num_inference_steps=args.steps,
                measure_layers=measure_layers, measure_k=args.top if hasattr(args, "top") else MEASURE_K,
                modules=modules, blocks=args.blocks) as handle:
        image = pipe(prompt=[args.prompt], **kwargs).images[0]
    return image, handle


def sink_table(rows: list[dict], top: int) -> list[str]:
    """Per step (cond half): the keys that are the top-1 sink of the most heads."""
    by_step = defaultdict(list)
    for r in rows:
        if r["batch_half"] == "cond":
            by_step[(r["step"], r["progress"], r["layer"])].append(r)
    lines = [f"{'step':>4} {'progress':>8} {'layer':>5} {'key':>6} {'type':>5} {'pos':>9} {'heads':>5} "
             f"{'top1 mass':>9} {'bos mass':>8} {'entropy':>7}"]
    for (step, progress, layer), group in sorted(by_step.items()):
        keys = defaultdict(list)
        for r in group:
            keys[r["sink_index"]].append(r)
        ranked = sorted(keys.items(), key=lambda kv: (-len(kv[1]), -max(r["top1_mass"] for r in kv[1])))
        bos = sum(r["bos_mass"] for r in group) / len(group)
        entropy = sum(r["entropy"] for r in group) / len(group)
        for key, hits in ranked[:top]:
            r = hits[0]
            pos = f"({r['sink_row']},{r['sink_col']})" if r["sink_row"] >= 0 else "-"
            mass = sum(h["top1_mass"] for h in hits) / len(hits)
            lines.append(f"{step:>4} {progress:>8.3f} {layer:>5} {key:>6} {r['sink_type']:>5} {pos:>9} "
                         f"{len(hits):>2}/{len(group):<2} {mass:>9.4f} {bos:>8.4f} {entropy:>7.3f}")
    return lines


def cmd_sinks(args) -> int:
    from sinkrepro.attention.spec import InterventionSpec

    pipe = _load(args)
    _, handle = _generate(pipe, args, InterventionSpec(), measure_layers=(args.layer,))
    print("\n".join(sink_table(handle.dynamics_rows(), args.top)))
    return 0


def _parse_sets(items: list[str]) -> dict:
    values = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: use FIELD=VALUE, e.g. --set eta=0.5 or --set steps=[0.8,1.0]")
        key, raw = item.split("=", 1)
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


def cmd_generate(args) -> int:
    from sinkrepro.attention.spec import spec_from_config

    entry = {"preset": args.preset, **_parse_sets(args.set)}
    if args.k is not None:
        entry["k"] = args.k
    if args.layers:
        entry["layers"] = [int(x) for x in args.layers.split(",")]
    spec = spec_from_config(entry, "generate")
    pipe = _load(args)
    measure = tuple(int(x) for x in args.measure_layers.split(",")) if args.measure_layers else ()
    image, handle = _generate(pipe, args, spec, measure_layers=measure)
    image.save(args.out)
    print(f"wrote {args.out}: spec {spec.canonical().to_dict()}; {handle.edits} edited attention calls "
          f"of {handle.calls} patched")
    if measure:
        print("\n".join(sink_table(handle.dynamics_rows(), 3)))
    return 0


def add_parsers(subparsers) -> None:
    """Register `sinks` and `generate` on the main CLI's subparsers."""
    sinks = subparsers.add_parser("sinks", help="print the top attention sinks per step for one prompt")
    _common(sinks)
    sinks.add_argument("--layer", type=int, required=True, help="index among the patchable attention modules")
    sinks.add_argument("--top", type=int, default=3, help="keys listed per step (default 3)")
    sinks.set_defaults(func=cmd_sinks)

    gen = subparsers.add_parser("generate", help="generate one image under an intervention preset")
    _common(gen)
    gen.add_argument("--preset", default="base", help="a preset of sinkrepro.attention.spec.PRESETS")
    gen.add_argument("--k", type=int, default=None)
    gen.add_argument("--layers", default="", help="comma-separated layer indices, e.g. 6,12,18")
    gen.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                     help="any other spec field (JSON value), e.g. --set eta=0.5; repeatable")
    gen.add_argument("--measure-layers", default="", help="also print sink statistics of these layers")
    gen.add_argument("--out", required=True, help="output PNG path")
    gen.set_defaults(func=cmd_generate)
