"""Small synthetic inputs that follow docs/contracts.md, shared by the figure tests (no tests here)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

CATEGORIES = ("single_object", "two_object", "counting", "colors", "position", "color_attr")


PROMPTS = ("a photo of a bench", "a photo of a cow and a bicycle", "a photo of three apples",
           "a photo of a purple umbrella", "a photo of a dog left of a teddy bear",
           "a photo of a red cake and a green vase")


def geneval_prompts(n: int) -> pd.DataFrame:
    """n prompts spread evenly over our stand-in GenEval-format file (every category for n >= 6)."""
    path = Path(__file__).resolve().parents[1] / "config" / "prompts" / "standin_geneval.jsonl"
    lines = path.read_text().splitlines()
    rows = [json.loads(lines[i * len(lines) // n]) for i in range(n)]
    return pd.DataFrame({"prompt_id": [f"geneval-{i:04d}" for i in range(n)],
                         "prompt": [f"{PROMPTS[i % 6]} ({i})" for i in range(n)],
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
