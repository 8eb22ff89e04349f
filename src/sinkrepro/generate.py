"""One generation job: one shard = one (model, condition, seed, prompt chunk), one model load."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from sinkrepro.attention import attach
from sinkrepro.attention.spec import InterventionSpec
from sinkrepro.grid import generator_seed
from sinkrepro.io import atomic_dir, sha256_bytes, write_jsonl, write_parquet
from sinkrepro.architecture import MEASURE_MODULES
from sinkrepro.models.load import is_standin, load_pipeline
from sinkrepro.vocab import DYNAMICS_COLUMNS

MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class ShardJob:
    model: str
    family: str
    condition: str
    seed: int
    seed_scheme: str
    sampler: dict
    spec: InterventionSpec
    prompts: list            # prompt rows: prompt_id, prompt_index, prompt, category
    measure_layers: tuple = ()
    measure_modules: tuple = ()      # default: MEASURE_MODULES[family]
    measure_blocks: str = ""
    batch_size: int = 4
    config_hash: str = ""

    @classmethod
    def from_params(cls, job: dict) -> "ShardJob":
        """From the workflow's JSON-able job dict (lists where the spec has tuples)."""
        job = {k: v for k, v in job.items() if k not in ("dtype", "variant")}
        spec = {k: tuple(v) if isinstance(v, list) else v for k, v in job.pop("spec").items()}
        return cls(spec=InterventionSpec(**spec), measure_layers=tuple(job.pop("measure_layers")),
                   measure_modules=tuple(job.pop("measure_modules", ())), **job)

    def layer_scope(self) -> dict:
        """An edit counts layers over its own modules; a measured baseline over the model's."""
        if not self.spec.is_noop:
            return {}
        return {"modules": self.measure_modules or MEASURE_MODULES[self.family], "blocks": self.measure_blocks}


def set_scheduler(pipe, family: str, name: str) -> None:
    """`default` keeps the pipeline's scheduler; others are rebuilt from its config.

    SD3's flow-matching Euler scheduler shifts its sigmas by `shift` (3.0 on SD3-medium); the
    DPM-Solver++ flow scheduler calls the same shift `flow_shift`, so it is carried over by name.
    FLUX.1-dev shifts by image size at run time (dynamic shifting), so FLUX keeps its own scheduler.
    """
    if name == "default":
        return
    from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler

    if family == "flux":
        raise ValueError(f"sampler.scheduler: {name!r} is not supported for flux models (FLUX.1 shifts its "
                         "flow-matching schedule by image size); use 'default'")
    if family in ("sd3", "sd35"):
        if name == "euler":
            raise ValueError("sampler.scheduler: 'euler' (EulerDiscreteScheduler) predicts epsilon and does not fit "
                             "SD3's flow matching (docs/paper-deviations.md); use 'default' or 'dpmpp'")
        flow = dict(pipe.scheduler.config)
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(
            {k: v for k, v in flow.items() if k != "shift"}, use_flow_sigmas=True,
            prediction_type="flow_prediction", flow_shift=flow["shift"])
    else:
        cls = EulerDiscreteScheduler if name == "euler" else DPMSolverMultistepScheduler
        pipe.scheduler = cls.from_config(pipe.scheduler.config)


def pipeline_kwargs(family: str, sampler: dict) -> dict:
    kwargs = dict(num_inference_steps=sampler["steps"], guidance_scale=sampler["guidance"],
                  height=sampler["height"], width=sampler["width"])
    if family in ("sd3", "sd35", "flux") and "max_sequence_length" in sampler:
        kwargs["max_sequence_length"] = sampler["max_sequence_length"]
    return kwargs


def png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def run_shard(job: ShardJob, model_dir: str | Path, out_dir: str | Path, dynamics_path: str | Path,
              device: str = "cpu", dtype: str = "float32", variant: str | None = None) -> list[dict]:
    """Generate every image of the shard; write PNGs + manifest atomically, and the dynamics table."""
    pipe = load_pipeline(model_dir, job.family, dtype=dtype, device=device, variant=variant)
    set_scheduler(pipe, job.family, job.sampler.get("scheduler", "default"))
    standin = is_standin(model_dir)
    kwargs = pipeline_kwargs(job.family, job.sampler)
    manifest, dynamics = [], []
    with atomic_dir(out_dir) as tmp:
        batches = [job.prompts[i : i + job.batch_size] for i in range(0, len(job.prompts), job.batch_size)]
        for batch in tqdm(batches, desc=f"{job.model}/{job.condition}/seed{job.seed}", unit="batch"):
            seeds = [generator_seed(job.seed, p["prompt_id"], p["prompt_index"], job.seed_scheme) for p in batch]
            generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
            ids = [p["prompt_id"] for p in batch]
            with attach(pipe, job.spec, prompt_ids=ids, seed=job.seed, num_inference_steps=kwargs["num_inference_steps"],
                        measure_layers=tuple(job.measure_layers), **job.layer_scope()) as handle:
                images = pipe(prompt=[p["prompt"] for p in batch], generator=generators, **kwargs).images
            dynamics += handle.dynamics_rows()
            for prompt, gen_seed, image in zip(batch, seeds, images):
                data = png_bytes(image)
                name = f"{prompt['prompt_id']}.png"
                (tmp / name).write_bytes(data)
                manifest.append({
                    "prompt_id": prompt["prompt_id"], "prompt_index": prompt["prompt_index"],
                    "prompt": prompt["prompt"], "category": prompt["category"], "seed": job.seed,
                    "generator_seed": gen_seed, "file": name, "sha256": sha256_bytes(data),
                    "model": job.model, "condition": job.condition, "config_hash": job.config_hash,
                    "standin": standin, "height": job.sampler["height"], "width": job.sampler["width"],
                    "steps": job.sampler["steps"], "guidance": job.sampler["guidance"],
                })
        write_jsonl(tmp / MANIFEST, manifest)
    frame = pd.DataFrame(dynamics, columns=list(DYNAMICS_COLUMNS))
    frame = frame.assign(model=job.model, condition=job.condition, standin=standin)
    write_parquet(dynamics_path, frame)
    return manifest
