"""Sink dynamics, reduced and summarised: the statistics behind Table 1, Table 4 and Table 16's
attribution part (docs/contracts.md "Dynamics"); paper.dynamics_tables renders them.

The prompt is the unit: every statistic is first pooled to one number per prompt (seeds, steps,
CFG halves and heads pooled), then averaged over prompts with a t-interval (bootstrap for ratios).
Dynamics shards are reduced one at a time to per-(prompt, seed, step, layer) sums and counts
(`reduce_rows`), so a paper-scale run (~10^7 rows) never sits in memory at once.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd

from ..vocab import MEASURE_K, SINK_TYPES, TEXT_TYPES
from .bootstrap import bootstrap_ci, ratio_statistic, seeded_rng
from .config import StatsConfig
from .groups import mean_ci, require_columns

COMPLETE = "complete (mass exactly 0)"
NEEDED = ["prompt_id", "seed", "step", "progress", "layer", "top1_mass", "topk_mass", "entropy", "top5_conc",
          "sink_index", "sink_type", "bos_mass", "edited_mass", "model", "condition", "standin"]
KEYS = ["model", "condition", "prompt_id", "seed", "step", "layer"]
MASS_SUMS = ("top1_mass", "topk_mass", "entropy", "top5_conc")


# --- shard reduction --------------------------------------------------------------------------
def reduce_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (model, condition, prompt, seed, step, layer): row count `n`, sums of the statistics,
    counts of top-1 sink types, of index-0 sinks (image patch (0,0), the authors' "index-0") and of
    BOS sinks, and the edited-mass sum/count/max/exact-zero count."""
    require_columns(rows, NEEDED, "dynamics rows")
    unknown = sorted(set(rows["sink_type"].astype(str)) - set(SINK_TYPES))
    if unknown:
        raise ValueError(f"dynamics rows: sink_type values {unknown} are not in the contract's {list(SINK_TYPES)}")
    kind = rows["sink_type"].astype(str)
    flags = {f"type_{t}": kind == t for t in SINK_TYPES}
    # the key order is [image, text]: sink_index 0 of an image sink is patch (0, 0)
    flags["patch00"] = (kind == "image") & (rows["sink_index"] == 0)
    # the top-1 key is the CLIP BOS exactly when its mass is the BOS mass (same fp32 tensor)
    flags["bos_sink"] = kind.isin(["clip", "text"]) & (rows["top1_mass"] == rows["bos_mass"])
    flags["edited_zero"] = rows["edited_mass"] == 0.0
    r = rows.assign(**{k: v.astype(np.int64) for k, v in flags.items()})
    aggs = {"progress": ("progress", "mean"), "n": ("top1_mass", "size"),
            **{f"{c}_sum": (c, "sum") for c in MASS_SUMS},
            "bos_mass_sum": ("bos_mass", "sum"), "bos_mass_n": ("bos_mass", "count"),
            "edited_sum": ("edited_mass", "sum"), "edited_n": ("edited_mass", "count"),
            "edited_max": ("edited_mass", "max"), "standin": ("standin", "any"),
            **{k: (k, "sum") for k in flags}}
    return r.groupby(KEYS, sort=True).agg(**aggs).reset_index()


def select_rows(partials: pd.DataFrame, experiment: dict, conditions: Iterable[str]) -> pd.DataFrame:
    """The partials of `experiment`'s model, seeds and prompts, for `conditions`."""
    keep = (partials["model"] == experiment["model"]) & partials["condition"].isin(list(conditions))
    keep &= partials["seed"].isin(experiment["seeds"])
    if experiment.get("prompt_ids") is not None:
        keep &= partials["prompt_id"].isin(experiment["prompt_ids"])
    return partials[keep]


def baseline_rows(partials: pd.DataFrame, experiment: dict) -> pd.DataFrame:
    rows = select_rows(partials, experiment, [experiment["baseline"]])
    if rows.empty:
        raise ValueError(f"experiment {experiment['name']}: no dynamics rows for its baseline "
                         f"{experiment['model']}/{experiment['baseline']} (seeds {experiment['seeds']}); pass the "
                         "baseline's results/dynamics shards as input")
    return rows


# --- prompt-level summaries -------------------------------------------------------------------
def _per_prompt(partials: pd.DataFrame, by: list[str], ratios: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """One row per (by, prompt): name -> sum(numerator) / sum(denominator) over the pooled rows."""
    cols = sorted({c for pair in ratios.values() for c in pair})
    sums = partials.groupby(by + ["prompt_id"], sort=True)[cols].sum()
    out = pd.DataFrame({name: sums[num] / sums[den].where(sums[den] > 0) for name, (num, den) in ratios.items()})
    return out.reset_index()


def _summaries(per_prompt: pd.DataFrame, by: list[str], names: Iterable[str], level: float) -> pd.DataFrame:
    """Wide: by, n (prompts), then name, name_ci_low, name_ci_high for each name (t-intervals)."""
    out = per_prompt.groupby(by)["prompt_id"].nunique().rename("n").reset_index()
    for name in names:
        s = mean_ci(per_prompt, by, name, level).drop(columns="n")
        out = out.merge(s.rename(columns={"mean": name, "ci_low": f"{name}_ci_low", "ci_high": f"{name}_ci_high"}),
                        on=by, how="left")
    return out


SHARE_RATIOS = {**{f"share_{t}": (f"type_{t}", "n") for t in SINK_TYPES},
                "share_text_all": ("type_text_all", "n")}


def _with_text_all(partials: pd.DataFrame) -> pd.DataFrame:
    return partials.assign(type_text_all=partials[[f"type_{t}" for t in TEXT_TYPES]].sum(axis=1))


def peak_steps(partials: pd.DataFrame, value: str) -> pd.DataFrame:
    """Per layer: the step (and its progress) where the prompt-level mean of `value` peaks."""
    per = _per_prompt(partials, ["layer", "step"], {value: (f"{value}_sum", "n")})
    curve = per.groupby(["layer", "step"])[value].mean().reset_index()
    progress = partials.groupby("step")["progress"].mean()
    top = curve.loc[curve.groupby("layer")[value].idxmax()]
    return pd.DataFrame({"layer": top["layer"].to_numpy(), "step": top["step"].to_numpy(),
                         "progress": top["step"].map(progress).to_numpy()})


# --- Table 1 ----------------------------------------------------------------------------------
TABLE1_STATS = {"top1_mass": ("top1_mass_sum", "n"), "entropy": ("entropy_sum", "n"),
                "top5_conc": ("top5_conc_sum", "n"), "bos_mass": ("bos_mass_sum", "bos_mass_n"),
                **SHARE_RATIOS, "share_index0": ("patch00", "n"), "share_bos": ("bos_sink", "n")}


def table1_body(partials: pd.DataFrame, experiment: dict, level: float = 0.95) -> pd.DataFrame:
    """One row per measured layer of the experiment's baseline."""
    base = _with_text_all(baseline_rows(partials, experiment))
    per = _per_prompt(base, ["layer"], TABLE1_STATS)
    out = _summaries(per, ["layer"], TABLE1_STATS, level)
    conc = peak_steps(base, "top5_conc").rename(columns={"step": "conc_peak_step", "progress": "conc_peak_progress"})
    mass = peak_steps(base, "top1_mass").rename(columns={"step": "mass_peak_step", "progress": "mass_peak_progress"})
    out = out.merge(conc, on="layer").merge(mass, on="layer")
    out.insert(0, "experiment", experiment["name"])
    out.insert(1, "condition", experiment["baseline"])
    out.insert(4, "n_seeds", base["seed"].nunique())
    return out


# --- Table 16 (attribution) -------------------------------------------------------------------
TABLE16_STATS = {"share_text_all": SHARE_RATIOS["share_text_all"], "share_image": SHARE_RATIOS["share_image"],
                 **{f"share_{t}": SHARE_RATIOS[f"share_{t}"] for t in TEXT_TYPES}}


def table16_body(partials: pd.DataFrame, experiment: dict, level: float = 0.95) -> pd.DataFrame:
    """Per measured layer and over all layers ("all"): share of top-1 sinks on text vs image keys."""
    base = _with_text_all(baseline_rows(partials, experiment))
    parts = []
    for layer, rows in [("all", base)] + [(str(k), g) for k, g in base.groupby("layer")]:
        per = _per_prompt(rows.assign(layer=layer), ["layer"], TABLE16_STATS)
        s = _summaries(per, ["layer"], TABLE16_STATS, level)
        s.insert(2, "n_sinks", int(rows["n"].sum()))
        parts.append(s)
    out = pd.concat(parts, ignore_index=True)
    out.insert(0, "experiment", experiment["name"])
    out.insert(1, "condition", experiment["baseline"])
    out.insert(4, "n_seeds", base["seed"].nunique())
    return out


# --- Table 4 ----------------------------------------------------------------------------------
def reference_column(spec: dict) -> tuple[str | None, str]:
    """Which contract column holds the edited keys' mass before the edit, and a note saying so."""
    per_head_top = (spec.get("select") == "top" and spec.get("scope", "per_head") == "per_head"
                    and spec.get("pool", "all") == "all" and spec.get("only", "all") == "all")
    if spec.get("select") == "index" and spec.get("index_base") == "text" and list(spec.get("indices", [])) == [0]:
        return "bos_mass", "edited key = CLIP BOS; its mass is bos_mass"
    if per_head_top and spec.get("k") == 1:
        return "top1_mass", "edited key = the per-head top-1; its mass is top1_mass"
    if per_head_top and spec.get("k") == MEASURE_K:
        return "topk_mass", f"edited keys = the per-head top-{MEASURE_K}; their mass is topk_mass"
    return None, (f"the dynamics rows hold no pre-edit mass for these keys (select={spec.get('select')}, "
                  f"scope={spec.get('scope')}, k={spec.get('k')}); only the edited mass is reported")


_REF_SUMS = {"bos_mass": ("bos_mass_sum", "bos_mass_n"), "top1_mass": ("top1_mass_sum", "n"),
             "topk_mass": ("topk_mass_sum", "n")}
TABLE4_COLUMNS = ["experiment", "condition", "label", "preset", "path", "eta", "k", "layers", "reference", "n",
                  "n_seeds", "n_rows", "baseline_mass", "baseline_mass_ci_low", "baseline_mass_ci_high",
                  "pre_edit_mass", "edited_mass", "edited_mass_ci_low", "edited_mass_ci_high", "edited_max", "zero_share", "retained",
                  "retained_ci_low", "retained_ci_high", "reduction", "reduction_factor", "reduction_ci_low",
                  "reduction_ci_high", "ci_method", "note"]


def _ratio_ci(num: np.ndarray, den: np.ndarray, cfg: StatsConfig, key: tuple) -> tuple[float, float, float, str]:
    """mean(num) / mean(den) over prompts with a paired bootstrap CI (cfg's method)."""
    ci = bootstrap_ci(np.column_stack([num, den]), ratio_statistic, resamples=cfg.bootstrap_resamples,
                      level=cfg.ci_level, rng=seeded_rng(cfg.seed, *key))
    low, high = (ci.bca_low, ci.bca_high) if cfg.ci_method == "bca" else (ci.pct_low, ci.pct_high)
    return ci.estimate, low, high, ci.note


def mass_verification(edited: pd.DataFrame, baseline: pd.DataFrame, reference: str | None,
                      cfg: StatsConfig, key: tuple = ()) -> dict:
    """Edited mass vs the baseline's mass of the same keys, paired on (prompt, seed, step, layer).

    `edited`: one condition's partials; only its edited (layer, step) cells are used. `baseline`:
    the baseline's partials. Exactly-zero edited mass is reported as complete, never divided.
    """
    cells = edited[edited["edited_n"] > 0]
    partly = cells[cells["edited_n"] != cells["n"]]
    if len(partly):
        raise ValueError("dynamics rows: edited_mass is set on only some heads of a (layer, step) cell "
                         f"({partly.iloc[0][KEYS].to_dict()}); the contract sets it for every head of an edited cell")
    out = {"n_rows": int(cells["edited_n"].sum()), "ci_method": cfg.ci_method}
    notes = []
    if cells.empty:
        return out | {"n": 0, "n_seeds": 0, "note": "no edited rows measured (is the edited layer in measure_layers?)"}
    pair = ["prompt_id", "seed", "step", "layer"]
    if reference is not None:
        num, den = _REF_SUMS[reference]
        ref = baseline[pair + [num, den]].rename(columns={num: "base_num", den: "base_den"})
        merged = cells.merge(ref, on=pair, how="left")
        missing = merged["base_den"].isna() | (merged["base_den"] == 0)
        if missing.any():
            notes.append(f"{int(missing.sum())} edited (prompt, seed, step, layer) cells have no baseline "
                         "rows and are left out")
            merged = merged[~missing]
        cells = merged.assign(pre_num=merged[num], pre_den=merged[den])
    per = _per_prompt(cells, [], {"edited_mass": ("edited_sum", "edited_n")}
                      | ({"baseline_mass": ("base_num", "base_den"), "pre_edit_mass": ("pre_num", "pre_den")}
                         if reference else {}))
    out |= {"n": len(per), "n_seeds": int(cells["seed"].nunique()), "n_rows": int(cells["edited_n"].sum()),
            "edited_max": float(cells["edited_max"].max()),
            "zero_share": float(cells["edited_zero"].sum() / cells["edited_n"].sum())}
    for name in ("edited_mass", "baseline_mass"):
        if name in per:
            s = mean_ci(per.assign(g=0), ["g"], name, cfg.ci_level).iloc[0]
            out |= {name: s["mean"], f"{name}_ci_low": s["ci_low"], f"{name}_ci_high": s["ci_high"]}
    if reference:
        out["pre_edit_mass"] = float(per["pre_edit_mass"].mean())
    exactly_zero = float(cells["edited_sum"].sum()) == 0.0 and out["edited_max"] == 0.0
    if exactly_zero:
        out |= {"reduction": COMPLETE, "retained": 0.0, "retained_ci_low": 0.0, "retained_ci_high": 0.0}
    elif reference:
        e, b = per["edited_mass"].to_numpy(), per["baseline_mass"].to_numpy()
        r, lo, hi, note = _ratio_ci(b, e, cfg, key + ("reduction",))
        out |= {"reduction_factor": r, "reduction_ci_low": lo, "reduction_ci_high": hi}  # paper/ prints it
        r, lo, hi, note2 = _ratio_ci(e, b, cfg, key + ("reduction",))  # same resamples, the reciprocal
        out |= {"retained": r, "retained_ci_low": lo, "retained_ci_high": hi}
        notes += [note, note2]
    else:
        out["reduction"] = "n/a (no baseline mass for these keys)"
    out["note"] = "; ".join(dict.fromkeys(n for n in notes if n))
    return out


def table4_body(partials: pd.DataFrame, experiment: dict, cfg: StatsConfig) -> pd.DataFrame:
    """One row per edited condition of the experiment."""
    base = select_rows(partials, experiment, [experiment["baseline"]])
    rows = []
    for c in experiment.get("conditions", []):
        if c["condition"] == experiment["baseline"]:
            continue
        spec = c.get("spec", {})
        reference, why = reference_column(spec)
        if reference and base.empty:
            reference, why = None, "the baseline has no dynamics rows; only the edited mass is reported"
        found = mass_verification(select_rows(partials, experiment, [c["condition"]]), base, reference, cfg,
                                  (experiment["name"], c["condition"]))
        note = "; ".join(n for n in (why, found.pop("note", "")) if n)
        if spec.get("path") == "value":
            note += "; value-path edit: attention weights are unchanged by design"
        rows.append({"experiment": experiment["name"], "condition": c["condition"], "label": c.get("label"),
                     "preset": c.get("preset"), "path": spec.get("path"),
                     "eta": spec.get("eta") if spec.get("path") in ("prob_scale", "both") else math.nan,
                     "k": c.get("k") if c.get("k") is not None else math.nan,
                     "layers": ",".join(str(x) for x in c.get("layers", [])), "reference": reference or "none",
                     **found, "note": note})
    return pd.DataFrame(rows, columns=TABLE4_COLUMNS)
