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


@dataclass
class _Scope:
    """One experiment as the grid builder reads it."""
    name: str
    cfg: dict            # its config entry
    model: str
    model_cfg: dict
    prompt_ids: list
    seeds: list


def _scope(name: str, exp: dict, config: dict, prompt_tables: dict) -> _Scope:
    if exp["prompts"] not in prompt_tables:
        raise ValueError(f"config.experiments.{name}.prompts: {exp['prompts']!r} is not in config.prompt_sets "
                         f"({sorted(prompt_tables)})")
    rows = prompt_tables[exp["prompts"]]
    if exp.get("n_prompts"):
        rows = rows[: exp["n_prompts"]]
    return _Scope(name, exp, exp["model"], config["models"][exp["model"]], [r["prompt_id"] for r in rows],
                  list(exp["seeds"]))


def _use(conditions: dict, e: _Scope, spec: InterventionSpec, overrides: dict, seeds) -> str:
    """The condition (spec, sampler overrides) of e's model, made or shared, now also run at `seeds` on
    e's prompts; its id."""
    overrides = resolved_overrides(overrides, e.model_cfg["sampler"])  # named by the resolved sampler
    cid = condition_id(spec, overrides)
    key = (e.model, cid)
    if key not in conditions:
        sampler = {**e.model_cfg["sampler"], **overrides}
        conditions[key] = Condition(e.model, cid, spec.canonical(), sampler, dict(overrides))
    cond = conditions[key]
    cond.measure |= bool(e.cfg.get("measure", False))
    for seed in seeds:
        cond.seeds.add(seed)
        cond.prompts.setdefault(seed, set()).update(e.prompt_ids)
    return cid


def _register(conditions: dict, e: _Scope) -> tuple[str, list[dict], dict]:
    """Registers e's baseline and conditions: (baseline id, resolved conditions, label -> {k: id})."""
    # seed_pairs compare the baseline across seeds, so only the baseline needs the extra seeds
    pair_seeds = sorted({s for pair in e.cfg.get("seed_pairs", []) for s in pair} - set(e.seeds))
    baseline = _use(conditions, e, InterventionSpec(), e.cfg.get("sampler", {}), e.seeds + pair_seeds)
    pairwise = bool(set(per_image_metrics(e.cfg["metrics"])) & set(PAIRWISE_METRICS))
    resolved, by_label = [], {}
    for label, spec, sampler_over, k in _expand_conditions(e.name, e.cfg):
        _check_budget(f"config.experiments.{e.name}.conditions.{label}", spec, e.model, e.model_cfg)
        overrides = {**e.cfg.get("sampler", {}), **sampler_over}
        cid = _use(conditions, e, spec, overrides, e.seeds)
        if pairwise:
            conditions[(e.model, cid)].references.add(baseline)
        preset, _ = preset_name(spec) if not spec.is_noop else ("base", {})
        resolved.append({"condition": cid, "label": label, "preset": preset, "k": k,
                         "layers": list(spec.layers), "sampler": overrides, "spec": spec.canonical().to_dict()})
        by_label.setdefault(label, {})[k] = cid
    return baseline, resolved, by_label


def _contrasts(e: _Scope, by_label: dict) -> list[dict]:
    """Each (treatment, control) label pair of the config, at every k both have."""
    contrasts = []
    for i, (treat, control) in enumerate(e.cfg.get("contrasts", [])):
        for label in (treat, control):
            if label not in by_label:
                raise ValueError(f"config.experiments.{e.name}.contrasts[{i}]: {label!r} is not a condition label "
                                 f"({sorted(by_label)})")
        for k, cid in by_label[treat].items():
            if k in by_label[control]:
                contrasts.append({"condition": cid, "control": by_label[control][k], "k": k,
                                  "label": f"{treat}-{control}"})
    return contrasts


def _check_references(conditions: dict, name: str) -> None:
    for (model, cid), cond in conditions.items():
        if len(cond.references) > 1:
            raise ValueError(f"config.experiments.{name}: condition {cid} of {model} would be compared to "
                             f"baselines {sorted(cond.references)} by pairwise metrics; give the experiments "
                             f"the same sampler or drop lpips from one")


def _fid_pairs(e: _Scope, baseline: str, resolved: list[dict]) -> list[dict]:
    """FID sets: each condition against the baseline at each seed, and the baseline across seed_pairs."""
    if "fid" not in e.cfg["metrics"]:
        return []
    pairs = [{"condition": item["condition"], "seed": s, "reference": baseline, "reference_seed": s}
             for item in resolved if item["condition"] != baseline for s in e.seeds]
    return pairs + [{"condition": baseline, "seed": b, "reference": baseline, "reference_seed": a}
                    for a, b in e.cfg.get("seed_pairs", [])]


def _shards(conditions: dict, prompt_tables: dict, size: int) -> list[Shard]:
    """Each (condition, seed)'s prompts in prompt order, cut into shards of `size`."""
    order = {r["prompt_id"]: (r["prompt_index"], r["prompt_id"]) for rows in prompt_tables.values() for r in rows}
    shards = []
    for (model_name, cid), cond in sorted(conditions.items()):
        for seed in sorted(cond.seeds):
            ids = sorted(cond.prompts[seed], key=order.__getitem__)
            for i in range(0, len(ids), size):
                shards.append(Shard(model_name, cid, seed, i // size, ids[i : i + size]))
    return shards


def build_grid(config: dict, prompt_tables: dict) -> Grid:
    """The grid of a validated config. `prompt_tables`: prompt_set -> list of {prompt_id, prompt_index,
    prompt, category}."""
    conditions: dict = {}
    experiments: dict = {}
    for name, exp in config["experiments"].items():
        e = _scope(name, exp, config, prompt_tables)
        baseline, resolved, by_label = _register(conditions, e)
        contrasts = _contrasts(e, by_label)
        _check_references(conditions, name)
        experiments[name] = {
            "name": name, "model": e.model, "family": e.model_cfg["family"],
            "standin": e.model_cfg["source"] == "standin", "prompt_set": exp["prompts"],
            "n_prompts": len(e.prompt_ids), "prompt_set_size": len(prompt_tables[exp["prompts"]]),
            "prompt_ids": e.prompt_ids, "seeds": e.seeds, "tables": list(exp.get("tables", [])),
            "metrics": list(exp["metrics"]), "measure": bool(exp.get("measure")), "baseline": baseline,
            "conditions": resolved, "contrasts": contrasts, "fid_pairs": _fid_pairs(e, baseline, resolved),
            "description": exp.get("description", ""),
        }
    return Grid(conditions, _shards(conditions, prompt_tables, config["shard_size"]), experiments)


def config_hash(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
