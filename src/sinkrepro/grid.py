"""From a validated config to the job grid: conditions, shards, experiments.

The workflow and `sinkrepro plan` both call `build_grid`, so what is planned is what runs.
A condition is named by its canonical content (`condition_id`), so identical work asked for by
several experiments is one set of shards.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

from sinkrepro.attention.spec import InterventionSpec, preset_name, spec_from_config
from sinkrepro.vocab import PAIRWISE_METRICS, per_image_metrics

SAMPLER_KEYS = ("steps", "guidance", "height", "width", "scheduler", "max_sequence_length")
SAMPLER_TAGS = {"steps": "steps", "guidance": "cfg", "height": "h", "width": "w", "scheduler": "",
                "max_sequence_length": "seq"}
SAMPLER_DEFAULTS = {"scheduler": "default"}  # what a model's sampler means when it leaves a key out


def generator_seed(seed: int, prompt_id: str, prompt_index: int, scheme: str) -> int:
    """The torch generator seed of one image: a pure function of (seed, prompt)."""
    if scheme == "offset":  # the authors' base + i
        return seed + prompt_index
    digest = hashlib.sha256(f"{seed}/{prompt_id}".encode()).hexdigest()
    return int(digest[:15], 16)


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def resolved_overrides(overrides: dict, model_sampler: dict) -> dict:
    """The overrides that change the model's sampler: one equal to its default is no override."""
    return {k: v for k, v in overrides.items() if v != model_sampler.get(k, SAMPLER_DEFAULTS.get(k))}


def condition_id(spec: InterventionSpec, sampler_overrides: dict) -> str:
    """A readable, canonical slug: `base`, `dsp-k1-L12`, `sa-L12-eta0.5`, `base~cfg6.5`."""
    spec = spec.canonical()
    if spec.is_noop:
        slug = "base"
    else:
        name, diff = preset_name(spec)
        parts = [name]
        if spec.select != "index":
            parts.append(f"k{spec.k}")
        parts.append("L" + "_".join(map(str, spec.layers)))
        for key in sorted(set(diff) - {"k", "layers"}):
            value = diff[key]
            if isinstance(value, tuple):
                value = "_".join(map(_fmt, value))
            parts.append(f"{key}{_fmt(value)}")
        slug = "-".join(parts)
    for key in SAMPLER_KEYS:
        if key in sampler_overrides:
            slug += f"~{SAMPLER_TAGS[key]}{_fmt(sampler_overrides[key])}"
    return slug.replace("/", "_").replace(" ", "")


@dataclass
class Condition:
    model: str
    condition: str
    spec: InterventionSpec
    sampler: dict                      # the full sampler (model defaults + overrides)
    sampler_overrides: dict
    measure: bool = False
    references: set = field(default_factory=set)  # baselines that pairwise metrics compare it to
    seeds: set = field(default_factory=set)
    prompts: dict = field(default_factory=dict)   # seed -> set of prompt ids


@dataclass
class Shard:
    model: str
    condition: str
    seed: int
    index: int
    prompt_ids: list

    @property
    def name(self) -> str:
        return f"shard{self.index:03d}"

    @property
    def key(self) -> tuple:
        return (self.model, self.condition, self.seed, self.index)


@dataclass
class Grid:
    conditions: dict                   # (model, condition) -> Condition
    shards: list
    experiments: dict                  # name -> resolved experiment dict

    def shard(self, model: str, condition: str, seed: int, index: int) -> Shard:
        return self._index[(model, condition, seed, index)]

    def shards_of(self, model: str, condition: str, seed: int) -> list:
        return self._by_set.get((model, condition, seed), [])

    def __post_init__(self):
        self._index = {s.key: s for s in self.shards}
        self._by_set = {}
        for s in self.shards:
            self._by_set.setdefault((s.model, s.condition, s.seed), []).append(s)


def _expand_conditions(name: str, exp: dict) -> list[tuple[str, InterventionSpec, dict, int | None]]:
    """(label, spec, sampler overrides, k) for each condition of an experiment, k crossed in."""
    out = []
    where = f"config.experiments.{name}.conditions"
    for label, entry in exp["conditions"].items():
        entry = dict(entry)
        sampler = entry.pop("sampler", {})
        for key in sampler:
            if key not in SAMPLER_KEYS:
                raise ValueError(f"{where}.{label}.sampler.{key}: unknown sampler key; use one of {SAMPLER_KEYS}")
        ks = [entry.pop("k")] if "k" in entry else list(exp.get("k", [1]))
        entry.setdefault("layers", exp.get("layers", []))
        base_spec = spec_from_config(entry, f"{where}.{label}")
        for k in ks:
            spec = replace(base_spec, k=k)
            if base_spec.select in ("none", "index"):
                out.append((label, spec, sampler, None))
                break
            out.append((label, spec, sampler, k))
    return out


def _check_budget(where: str, spec: InterventionSpec, model_name: str, model_cfg: dict):
    n_keys = model_cfg.get("n_keys")
    if spec.is_noop or n_keys is None:
        return
    heads = model_cfg.get("heads", 1)
    budget = spec.k * heads if spec.scope == "shared" else spec.k
    if budget > n_keys:
        raise ValueError(f"{where}: k={spec.k} asks for {budget} keys but {model_name} has {n_keys} keys per "
                         f"attention row; lower k")


def build_grid(config: dict, prompt_tables: dict) -> Grid:
    """`prompt_tables`: prompt_set -> list of {prompt_id, prompt_index, prompt, category}."""
    conditions: dict = {}
    experiments: dict = {}
    for name, exp in config["experiments"].items():
        model_name = exp["model"]
        if model_name not in config["models"]:
            raise ValueError(f"config.experiments.{name}.model: {model_name!r} is not in config.models "
                             f"({sorted(config['models'])})")
        model_cfg = config["models"][model_name]
        if exp["prompts"] not in prompt_tables:
            raise ValueError(f"config.experiments.{name}.prompts: {exp['prompts']!r} is not in config.prompt_sets "
                             f"({sorted(prompt_tables)})")
        rows = prompt_tables[exp["prompts"]]
        if exp.get("n_prompts"):
            rows = rows[: exp["n_prompts"]]
        prompt_ids = [r["prompt_id"] for r in rows]
        seeds = list(exp["seeds"])

        def use(spec: InterventionSpec, overrides: dict, seed_list) -> str:
            overrides = resolved_overrides(overrides, model_cfg["sampler"])  # named by the resolved sampler
            cid = condition_id(spec, overrides)
            key = (model_name, cid)
            if key not in conditions:
                sampler = {**model_cfg["sampler"], **overrides}
                conditions[key] = Condition(model_name, cid, spec.canonical(), sampler, dict(overrides))
            cond = conditions[key]
            cond.measure |= bool(exp.get("measure", False))
            for seed in seed_list:
                cond.seeds.add(seed)
                cond.prompts.setdefault(seed, set()).update(prompt_ids)
            return cid

        # seed_pairs compare the baseline across seeds, so only the baseline needs the extra seeds
        pair_seeds = sorted({s for pair in exp.get("seed_pairs", []) for s in pair} - set(seeds))
        baseline = use(InterventionSpec(), exp.get("sampler", {}), seeds + pair_seeds)
        resolved, by_label = [], {}
        for label, spec, sampler_over, k in _expand_conditions(name, exp):
            where = f"config.experiments.{name}.conditions.{label}"
            _check_budget(where, spec, model_name, model_cfg)
            overrides = {**exp.get("sampler", {}), **sampler_over}
            cid = use(spec, overrides, seeds)
            if set(per_image_metrics(exp["metrics"])) & set(PAIRWISE_METRICS):
                conditions[(model_name, cid)].references.add(baseline)
            preset, _ = preset_name(spec) if not spec.is_noop else ("base", {})
            item = {"condition": cid, "label": label, "preset": preset, "k": k,
                    "layers": list(spec.layers), "sampler": overrides, "spec": spec.canonical().to_dict()}
            resolved.append(item)
            by_label.setdefault(label, {})[k] = cid
        contrasts = []
        for i, (treat, control) in enumerate(exp.get("contrasts", [])):
            for label in (treat, control):
                if label not in by_label:
                    raise ValueError(f"config.experiments.{name}.contrasts[{i}]: {label!r} is not a condition label "
                                     f"({sorted(by_label)})")
            for k, cid in by_label[treat].items():
                if k in by_label[control]:
                    contrasts.append({"condition": cid, "control": by_label[control][k], "k": k,
                                      "label": f"{treat}-{control}"})
        for (model, cid), cond in conditions.items():
            if len(cond.references) > 1:
                raise ValueError(f"config.experiments.{name}: condition {cid} of {model} would be compared to "
                                 f"baselines {sorted(cond.references)} by pairwise metrics; give the experiments "
                                 f"the same sampler or drop lpips from one")
        fid_pairs = []
        if "fid" in exp["metrics"]:
            for item in resolved:
                if item["condition"] != baseline:
                    fid_pairs += [{"condition": item["condition"], "seed": s, "reference": baseline,
                                   "reference_seed": s} for s in seeds]
            for a, b in exp.get("seed_pairs", []):
                fid_pairs.append({"condition": baseline, "seed": b, "reference": baseline, "reference_seed": a})
        experiments[name] = {
            "name": name, "model": model_name, "family": model_cfg["family"],
            "standin": model_cfg["source"] == "standin", "prompt_set": exp["prompts"],
            "n_prompts": len(prompt_ids), "prompt_set_size": len(prompt_tables[exp["prompts"]]),
            "prompt_ids": prompt_ids, "seeds": seeds, "tables": list(exp.get("tables", [])),
            "metrics": list(exp["metrics"]), "measure": bool(exp.get("measure")), "baseline": baseline, "conditions": resolved,
            "contrasts": contrasts, "fid_pairs": fid_pairs, "description": exp.get("description", ""),
        }

    order = {r["prompt_id"]: (r["prompt_index"], r["prompt_id"]) for rows in prompt_tables.values() for r in rows}
    shards = []
    size = config["shard_size"]
    for (model_name, cid), cond in sorted(conditions.items()):
        for seed in sorted(cond.seeds):
            ids = sorted(cond.prompts[seed], key=order.__getitem__)
            for i in range(0, len(ids), size):
                shards.append(Shard(model_name, cid, seed, i // size, ids[i : i + size]))
    return Grid(conditions, shards, experiments)


def config_hash(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
