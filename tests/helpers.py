"""Helpers shared by the test modules (no tests here): synthetic inputs that follow
docs/contracts.md, a fake `snakemake` object for the workflow scripts, small configs, the workflow
runner, and the attention pipelines checked against the float64 reference."""
from __future__ import annotations

import json
import os
import random
import re
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from snakemake.iocontainers import InputFiles, Log, OutputFiles, Params, Wildcards
from torch.overrides import TorchFunctionMode

from sinkrepro.attention import InterventionSpec, attach
from sinkrepro.attention import runtime as runtime_mod
from sinkrepro.attention.processor import sdpa_arguments
from sinkrepro.attention.reference import naive_edit, naive_mass, naive_select
from sinkrepro.attention.runtime import attention_modules
from sinkrepro.attention.tokens import IMAGE
from sinkrepro.config import validate_config
from sinkrepro.grid import build_grid

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]


# ---- the workflow scripts, run as Snakemake runs them --------------------------------------------
def fake_snakemake(*, input=None, output=None, params=None, log=(), wildcards=None, config=None):
    """The `snakemake` object a script sees: Snakemake's own named lists (a dict gives names, a list
    only positions), the wildcards and the config."""
    def named(cls, value):
        return cls(fromdict=value) if isinstance(value, dict) else cls([str(v) for v in value or []])

    output = {k: str(v) for k, v in output.items()} if isinstance(output, dict) else output
    return SimpleNamespace(input=named(InputFiles, input or {}), output=named(OutputFiles, output or {}),
                           params=Params(fromdict=params or {}), log=Log([str(p) for p in log]),
                           wildcards=Wildcards(fromdict=wildcards or {}), config=config or {})


def run_script(script: str, **snakemake) -> None:
    """Run workflow/scripts/`script` with a fake_snakemake(**snakemake)."""
    runpy.run_path(str(SCRIPTS / script), init_globals={"snakemake": fake_snakemake(**snakemake)})


# ---- synthetic figure, dynamics and image inputs -------------------------------------------------
CATEGORIES = ("single_object", "two_object", "counting", "colors", "position", "color_attr")


FIGURE_PROMPTS = ("a photo of a bench", "a photo of a cow and a bicycle", "a photo of three apples",
                  "a photo of a purple umbrella", "a photo of a dog left of a teddy bear",
                  "a photo of a red cake and a green vase")


def geneval_prompts(n: int) -> pd.DataFrame:
    """n GenEval-style prompts, the six categories in turn (every category for n >= 6)."""
    return pd.DataFrame({"prompt_id": [f"geneval-{i:04d}" for i in range(n)],
                         "prompt": [f"{FIGURE_PROMPTS[i % 6]} ({i})" for i in range(n)],
                         "category": [CATEGORIES[i % 6] for i in range(n)]})


def dynamics_rows(n_prompts=3, seeds=(0, 1), steps=4, layers=(0, 1, 2), heads=2, grid=(4, 4),
                  condition="base", standin=True, rng=0) -> pd.DataFrame:
    rng = np.random.default_rng(rng)
    types = np.array(["image", "clip", "t5", "pad"])
    out = []
    for p in range(n_prompts):
        for seed in seeds:
            for step in range(steps):
                for layer in layers:
                    for half in ("uncond", "cond"):
                        for head in range(heads):
                            t = types[rng.integers(0, 4)]
                            out.append(dict(
                                prompt_id=f"p{p}", seed=seed, step=step, progress=step / (steps - 1),
                                timestep=1000 - step * 250, layer=layer, batch_half=half, head=head,
                                top1_mass=rng.uniform(0, 0.5), topk_mass=rng.uniform(0.5, 1),
                                entropy=rng.uniform(1, 3), top5_conc=rng.uniform(0, 1),
                                sink_index=int(rng.integers(0, 30)), sink_type=t,
                                sink_row=int(rng.integers(0, grid[0])) if t == "image" else -1,
                                sink_col=int(rng.integers(0, grid[1])) if t == "image" else -1,
                                bos_mass=rng.uniform(0, 0.1), edited_mass=np.nan,
                                max_activation=rng.uniform(1, 5), model="tiny-sd3",
                                condition=condition, standin=standin))
    return pd.DataFrame(out)


def stats_rows(ks=(1, 5, 10), metrics=("clip_t", "hps", "lpips"), standin=True, rng=0) -> pd.DataFrame:
    """Stats rows for a k sweep: Δ for sink and random, ΔΔ sink − random, dose slopes, per-category Δ."""
    rng = np.random.default_rng(rng)
    margins = {"clip_t": 0.01, "hps": 0.005, "lpips": 0.05}
    out = []

    def row(**kw):
        mean = rng.normal(0, 0.02)
        half = abs(rng.normal(0.01, 0.002))
        base = dict(experiment="k_sweep", model="tiny-sd3", category="all", mean=mean,
                    ci_low=mean - half, ci_high=mean + half, tost_margin=margins.get(kw["metric"], np.nan),
                    p_t=rng.uniform(), p_adj_family=rng.uniform(), p_adj_experiment=rng.uniform(),
                    layers="1", sampler="{}", seed=np.nan, reference_seed=np.nan, standin=standin, n=12)
        base.update(kw)
        out.append(base)

    for metric in metrics:
        for k in ks:
            for preset, label in (("cf", "sink"), ("cf_random", "random")):
                row(metric=metric, kind="delta", basis="delta", condition=f"{preset}-k{k}-L1",
                    reference="base", k=float(k), preset=preset, label=label, family=f"{preset}|1|{label}|{{}}")
            row(metric=metric, kind="delta_delta", basis="delta_delta", condition=f"cf-k{k}-L1",
                reference=f"cf_random-k{k}-L1", k=float(k), preset="cf", label="sink", family="cf|1|sink|{}")
            for cat in CATEGORIES[:3]:
                row(metric=metric, kind="delta", basis="delta", condition=f"cf-k{k}-L1", reference="base",
                    k=float(k), preset="cf", label="sink", family="cf|1|sink|{}", category=cat)
        for basis in ("delta", "delta_delta"):
            row(metric=metric, kind="dose", basis=basis, condition="cf|1|sink|{}", reference="base",
                k=np.nan, preset="cf", label="sink", family="cf|1|sink|{}")
        row(metric=metric, kind="ratio", basis="ratio", condition="cf-k1-L1", reference="cf_random-k1-L1",
            k=1.0, preset="cf", label="sink", family="cf|1|sink|{}")
    return pd.DataFrame(out)


def fid_stats_rows(standin=True) -> pd.DataFrame:
    """FID rows as the stats stage carries them: seed, CFG, steps and sampler perturbations, interventions."""
    rows = [
        dict(condition="base", reference="base", seed=1.0, reference_seed=0.0, sampler="{}", preset="base",
             label="baseline", k=np.nan, mean=30.0),
        dict(condition="base~cfg6.5", reference="base", seed=0.0, reference_seed=0.0,
             sampler='{"guidance": 6.5}', preset="base", label="cfg", k=np.nan, mean=35.0),
        dict(condition="base~cfg6.5", reference="base", seed=1.0, reference_seed=1.0,
             sampler='{"guidance": 6.5}', preset="base", label="cfg", k=np.nan, mean=37.0),
        dict(condition="base~steps3", reference="base", seed=0.0, reference_seed=0.0,
             sampler='{"steps": 3}', preset="base", label="steps", k=np.nan, mean=50.0),
        dict(condition="base~euler", reference="base", seed=0.0, reference_seed=0.0,
             sampler='{"scheduler": "euler"}', preset="base", label="sampler", k=np.nan, mean=44.0),
        dict(condition="cf-k1-L1", reference="base", seed=0.0, reference_seed=0.0, sampler="{}",
             preset="cf", label="sink", k=1.0, mean=80.0),
        dict(condition="cf_random-k1-L1", reference="base", seed=0.0, reference_seed=0.0, sampler="{}",
             preset="cf_random", label="random", k=1.0, mean=40.0),
    ]
    frame = pd.DataFrame(rows)
    frame["kind"], frame["metric"], frame["category"] = "fid", "fid", "all"
    frame["experiment"], frame["model"], frame["standin"] = "fid_calibration", "tiny-sd3", standin
    frame["ci_low"], frame["ci_high"], frame["n"] = np.nan, np.nan, 12
    return frame


def image_shards(root: Path, conditions=("base", "cf-k1-L1", "cf_random-k1-L1"), n_prompts=8, seeds=(0, 1),
                 size=32, standin=True, rng=0) -> tuple[list[Path], pd.DataFrame]:
    """PNG shards with manifests, and score rows (clip_t for all, lpips vs base for the others)."""
    rng = np.random.default_rng(rng)
    prompts = geneval_prompts(n_prompts)
    shards, scores = [], []
    for cond in conditions:
        for seed in seeds:
            shard = root / "tiny-sd3" / cond / f"seed{seed}" / "shard000"
            shard.mkdir(parents=True)
            manifest = []
            for i, p in enumerate(prompts.itertuples()):
                name = f"{i:05d}.png"
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(shard / name)
                manifest.append(dict(prompt_id=p.prompt_id, prompt_index=i, prompt=p.prompt,
                                     category=p.category, seed=seed, generator_seed=seed * 1000 + i,
                                     file=name, sha256="0" * 64, model="tiny-sd3", condition=cond,
                                     config_hash="x", standin=standin, height=size, width=size,
                                     steps=2, guidance=7.0))
                common = dict(model="tiny-sd3", condition=cond, seed=seed, prompt_id=p.prompt_id,
                              category=p.category, file=name, standin=standin)
                scores.append(dict(common, metric="clip_t", value=rng.uniform(0.2, 0.35),
                                   reference_condition=None))
                if cond != "base":
                    scores.append(dict(common, metric="lpips", value=rng.uniform(0, 0.6),
                                       reference_condition="base"))
            (shard / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in manifest))
            shards.append(shard)
    return shards, pd.DataFrame(scores)


# ---- synthetic experiments, prompt tables and score rows -------------------------------------------
def make_experiment(ks=(1, 10, 50), seeds=(0, 1), n_prompts=12, metrics=("clip_t", "hps", "lpips")):
    conditions, contrasts = [], []
    for k in ks:
        for preset, label, select in (("cf", "sink", "top"), ("cf_random", "random", "random")):
            conditions.append(dict(condition=f"{preset}-k{k}-L12", label=label, preset=preset, k=k, layers=[12],
                                   sampler={}, spec={"select": select, "k": k, "layers": [12]}))
        contrasts.append(dict(condition=f"cf-k{k}-L12", control=f"cf_random-k{k}-L12", k=k, label="sink-random"))
    return dict(name="k_sweep", model="tiny-sd3", family="sd3", standin=True, prompt_set="tiny",
                n_prompts=n_prompts, seeds=list(seeds), tables=["table19", "table20"], metrics=list(metrics),
                baseline="base", conditions=conditions, contrasts=contrasts, fid_pairs=[])


def prompt_table(n_prompts=12):
    return pd.DataFrame(dict(prompt_id=[f"p{i:03d}" for i in range(n_prompts)],
                             category=[CATEGORIES[i % 6] for i in range(n_prompts)]))


def make_scores(exp, effects=None, seed=0, sd=0.02):
    """Score rows per docs/contracts.md; `effects` maps (metric, condition) to a mean shift.

    LPIPS rows are distances from the baseline image (reference_condition='base').
    """
    rng = np.random.default_rng(seed)
    effects = effects or {}
    prompts = [f"p{i:03d}" for i in range(exp["n_prompts"])]
    level = rng.normal(0.3, 0.03, len(prompts))
    rows = []
    for metric in exp["metrics"]:
        for slug in [exp["baseline"]] + [c["condition"] for c in exp["conditions"]]:
            if metric == "lpips" and slug == exp["baseline"]:
                continue
            for s in exp["seeds"]:
                noise = rng.normal(0, sd, len(prompts))
                shift = effects.get((metric, slug), 0.0)
                values = np.abs(shift + noise) if metric == "lpips" else level + shift + noise
                for i, p in enumerate(prompts):
                    rows.append(dict(metric=metric, value=values[i], model=exp["model"], condition=slug, seed=s,
                                     prompt_id=p, category="wrong-tag", standin=True,
                                     reference_condition="base" if metric == "lpips" else None))
    return pd.DataFrame(rows)


def default_config() -> dict:
    """config/config.yaml as it is read (not validated)."""
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


# ---- a small grid config ----------------------------------------------------------------------------
GRID_PROMPTS = {"p": [{"prompt_id": f"p{i}", "prompt_index": i, "prompt": f"prompt {i}", "category": "colors"}
                 for i in range(10)]}


def base_config():
    return yaml.safe_load("""
shard_size: 4
models:
  m: {family: sd3, source: standin, heads: 4, n_keys: 125,
      sampler: {steps: 4, guidance: 7.0, height: 64, width: 64}}
prompt_sets:
  p: {source: local, path: unused.tsv}
scorers: {clip_t: {}, lpips: {}, fid: {}, imagereward: {}}
experiments:
  a:
    model: m
    prompts: p
    seeds: [0, 1]
    layers: [1]
    k: [1, 5]
    conditions: {sink: {preset: dsp}, random: {preset: dsp_random}}
    contrasts: [[sink, random]]
    metrics: [clip_t, lpips, fid]
  b:
    model: m
    prompts: p
    n_prompts: 6
    seeds: [0]
    layers: [1]
    k: [1]
    conditions: {sink: {preset: dsp}}
    metrics: [clip_t]
""")


def grid(config):
    return build_grid(validate_config(config), GRID_PROMPTS)


# ---- the tiny end-to-end config and the workflow runner ---------------------------------------------
# GenEval's category sizes in its order, and the paper's balanced-100 draw per category
GENEVAL_SIZES = {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100,
                 "color_attr": 100}
BALANCED_SIZES = {"single_object": 20, "two_object": 20, "counting": 15, "colors": 15, "position": 15,
                  "color_attr": 15}
TINY_PROMPTS = """prompt_id\tprompt\tcategory
t0\ta photo of a teapot\tsingle_object
t1\ta photo of three apples\tcounting
t2\ta photo of a purple umbrella\tcolors
t3\ta photo of a cat left of a chair\tposition
"""


def tiny_config(prompt_file: Path, seeds=(0, 1), ks=(1, 2)) -> dict:
    return {
        "shard_size": 4, "batch_size": 4, "device": "cpu",
        "models": {"tiny-sd3": {"family": "sd3", "source": "standin", "heads": 4, "measure_layers": [0, 1],
                                "sampler": {"steps": 2, "guidance": 5.0, "height": 32, "width": 32,
                                            "max_sequence_length": 16}}},
        "prompt_sets": {"mini": {"source": "local", "path": str(prompt_file)}},
        "scorers": {"clip_t": {}, "lpips": {}},
        "stats": {"bootstrap_resamples": 200},
        "experiments": {"sweep": {
            "model": "tiny-sd3", "prompts": "mini", "seeds": list(seeds), "layers": [1], "k": list(ks),
            "conditions": {"sink": {"preset": "dsp"}, "random": {"preset": "dsp_random"}},
            "contrasts": [["sink", "random"]], "metrics": ["clip_t", "lpips"], "measure": True,
            "tables": ["table2", "table19"],
        }},
    }


def snakemake(workdir: Path, *args: str, timeout: int = 1500) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([*SNAKEMAKE, "--directory", str(workdir), "--cores", "2", *args],
                          capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def planned(output: str) -> dict[str, int]:
    """Job counts from a dry run's 'Job stats' table ({} when there is nothing to do)."""
    block = output.split("Job stats:")[1].split("\n\n")[0] if "Job stats:" in output else ""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


def synthetic_paper_prompts(folder: Path) -> dict[str, Path]:
    """Files shaped like the paper's two prompt sources: 553 GenEval-format lines, and a shuffled
    balanced 100 of them (made up here; the real files are downloaded only by a user)."""
    folder.mkdir()
    items = [{"tag": tag, "include": [{"class": f"thing{i}", "count": 1}], "prompt": f"a photo of {tag} {i}"}
             for tag, n in GENEVAL_SIZES.items() for i in range(n)]
    rng = random.Random(0)
    balanced = [p for tag, n in BALANCED_SIZES.items()
                for p in rng.sample([it["prompt"] for it in items if it["tag"] == tag], n)]
    rng.shuffle(balanced)
    (folder / "geneval.jsonl").write_text("".join(json.dumps(it) + "\n" for it in items))
    (folder / "balanced100.txt").write_text("\n".join(balanced) + "\n")
    return {"geneval": folder / "geneval.jsonl", "balanced100": folder / "balanced100.txt"}


# ---- attention pipelines against the float64 reference ----------------------------------------------
PIPELINE_PROMPTS = ["a red dog", "two cats on a table left of a blue car"]
PIPELINE_IDS = ["p0", "p1"]
PIPELINE_STEPS = 3


def generate(pipe, steps=PIPELINE_STEPS, prompts=PIPELINE_PROMPTS, **call):
    """`call`: extra pipeline arguments (e.g. a shorter max_sequence_length)."""
    gens = [torch.Generator().manual_seed(i) for i in range(len(prompts))]
    return pipe(prompt=prompts, num_inference_steps=steps, height=64, width=64, generator=gens,
                output_type="np", **call).images


def run(pipe, spec, steps=PIPELINE_STEPS, call=None, **kw):
    with attach(pipe, spec, prompt_ids=PIPELINE_IDS, seed=0, num_inference_steps=steps, **kw) as handle:
        images = generate(pipe, steps, **(call or {}))
    return images, handle


class OracleSdpa(TorchFunctionMode):
    """Replaces the stock processor's SDPA with the float64 naive edit. `image_rows`: the image
    query rows (a count of leading rows, or a slice)."""

    def __init__(self, spec, keys, image_rows, valid=None, noise=None):
        super().__init__()
        self.spec, self.keys, self.image_rows, self.valid, self.noise = spec, keys, image_rows, valid, noise

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        call = sdpa_arguments(args, kwargs)
        q, k, v = call["query"], call["key"], call["value"]
        rows = self.image_rows if self.spec.rows == "image" else q.shape[2]
        out, _ = naive_edit(q, k, v, self.keys, self.spec, rows, self.image_rows, noise=self.noise, valid=self.valid)
        return out.to(q.dtype)


def check_against_oracle(pipe, spec, monkeypatch, steps=2, call=None):
    """Run `spec`; recompute every patched call's module output with the oracle in place of SDPA.

    Tolerance 1e-5, or twice torch's own fp32 attention error on the same call where that is
    larger: stock fp32 attention itself is off the float64 result by up to ~2e-5 on some stand-in
    calls (e.g. the SD3.5 stand-in's last block), and an edit cannot be held closer than that."""
    denoiser = pipe.transformer if hasattr(pipe, "transformer") else pipe.unet
    layer = spec.layers[0]
    module = attention_modules(denoiser, spec.modules, spec.blocks)[layer][1]
    calls, seen = [], []
    hook = module.register_forward_hook(lambda m, a, kw, out: calls.append((a, kw, out)), with_kwargs=True)
    real = runtime_mod.intervene

    def spy(q, k, v, spec, layout, **kw):
        drawn = {}
        if callable(kw.get("noise")):
            make = kw["noise"]
            kw["noise"] = lambda n: drawn.setdefault("noise", make(n))
        result = real(q, k, v, spec, layout, **kw)
        seen.append((q, k, layout, result, drawn.get("noise")))
        return result

    monkeypatch.setattr(runtime_mod, "intervene", spy)
    try:
        run(pipe, spec, steps=steps, call=call)
    finally:
        hook.remove()
    assert len(calls) == len(seen) == steps
    for (args, kwargs, out), (q, k, layout, result, noise) in zip(calls, seen):
        if spec.select in ("top", "bottom"):
            allowed = torch.ones_like(layout.region, dtype=torch.bool)
            if spec.pool != "all":
                allowed = (layout.region == IMAGE) == (spec.pool == "image")
            mass = naive_mass(q, k, layout.image_rows)
            keys = naive_select(spec, mass, allowed)
            # same chosen mass (SDXL's zeroed negative prompt makes all its text keys tie)
            assert torch.allclose(mass.gather(-1, result.keys).sum(-1), mass.gather(-1, keys).sum(-1), atol=1e-6)
        with torch.no_grad():
            with OracleSdpa(spec, result.keys, layout.image_rows, result.valid, noise):
                ref = module(*args, **kwargs)
            # torch's own fp32 attention error on this call: the float64 oracle's unedited output vs stock
            with OracleSdpa(InterventionSpec(), result.keys[..., :0], layout.image_rows):
                exact_stock = module(*args, **kwargs)
            floor = max_gap(module(*args, **kwargs), exact_stock)
        assert max_gap(out, ref) <= max(1e-5, 2 * floor)


def max_gap(a, b) -> float:
    """Largest absolute difference between two module outputs (a tensor or a tuple of them)."""
    pairs = zip(a, b) if isinstance(a, tuple) else [(a, b)]
    return max(float((x.double() - y.double()).abs().max()) for x, y in pairs)
