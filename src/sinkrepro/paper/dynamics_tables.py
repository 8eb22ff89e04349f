"""Paper tables from measured sink dynamics (docs/contracts.md "Dynamics"), not from scores.

- Table 1: sink statistics per measured layer of the unedited baseline.
- Table 4: mass left on the edited keys (`edited_mass`) vs the same keys' mass in the baseline.
- Table 16, attribution part: share of top-1 sinks on text vs image keys per layer.

The prompt is the unit: every statistic is first pooled to one number per prompt (seeds, steps,
CFG halves and heads pooled), then averaged over prompts with a t-interval (bootstrap for ratios).
Dynamics shards are reduced one at a time to per-(prompt, seed, step, layer) sums and counts
(`reduce_rows`), so a paper-scale run (~10^7 rows) never sits in memory at once.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ..io import write_text
from ..stats.bootstrap import bootstrap_ci, ratio_statistic, seeded_rng
from ..stats.config import StatsConfig
from ..vocab import MEASURE_K, SINK_TYPES, TEXT_TYPES
from .numbers import is_missing, sig
from .summarise import mean_ci, require_columns
from .tables import PaperTable

# table id -> file stem under paper/tables/ (Table 16's stats part is paper/tables/table16.*)
OUTPUT_STEMS = {"table1": "table1", "table4": "table4", "table16": "table16_attribution"}
TITLES = {
    "table1": "Sink dynamics summary per measured layer (unedited baseline)",
    "table4": "Mass verification: incoming mass left on the edited keys",
    "table16": "Sink attribution (E3): share of top-1 sinks on text vs image keys per layer",
}
# Tables that exist only as dynamics tables (Table 16 also has a stats part from scored experiments).
DYNAMICS_ONLY = ("table1", "table4")
COMPLETE = "complete (mass exactly 0)"
NEEDED = ["prompt_id", "seed", "step", "progress", "layer", "top1_mass", "topk_mass", "entropy", "top5_conc",
          "sink_index", "sink_type", "bos_mass", "edited_mass", "model", "condition", "standin"]
KEYS = ["model", "condition", "prompt_id", "seed", "step", "layer"]
MASS_SUMS = ("top1_mass", "topk_mass", "entropy", "top5_conc")


# --- which experiments fill which table -------------------------------------------------------
def check_experiments(experiments: Iterable[dict]) -> None:
    """Table 1/4 come only from measured dynamics: asking for them without `measure` is an error."""
    for e in experiments:
        for table in DYNAMICS_ONLY:
            if table in e.get("tables", []) and not e.get("measure"):
                raise ValueError(f"config.experiments.{e['name']}.tables: {table} is built from measured sink "
                                 f"dynamics; set `measure: true` on this experiment or drop {table}")


def experiments_filling(table: str, experiments: Iterable[dict]) -> list[dict]:
    """The measured experiments that list `table`."""
    if table not in OUTPUT_STEMS:
        raise ValueError(f"table {table!r}: not a dynamics table; dynamics tables are {sorted(OUTPUT_STEMS)}")
    return [e for e in experiments if e.get("measure") and table in e.get("tables", [])]


def dynamics_tables(experiments: Iterable[dict]) -> list[str]:
    """Table ids some measured experiment fills, in paper order."""
    experiments = list(experiments)
    return [t for t in OUTPUT_STEMS if experiments_filling(t, experiments)]


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


def _baseline(partials: pd.DataFrame, experiment: dict) -> pd.DataFrame:
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
    base = _with_text_all(_baseline(partials, experiment))
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
    base = _with_text_all(_baseline(partials, experiment))
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
        out |= {"reduction_factor": r, "reduction_ci_low": lo, "reduction_ci_high": hi, "reduction": f"{sig(r, 4)}x"}
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


# --- display and captions ---------------------------------------------------------------------
def _cell(mean, low, high, digits: int = 4) -> str:
    if is_missing(low) or is_missing(high):
        return sig(mean, digits)
    return f"{sig(mean, digits)} [{sig(low, digits)}, {sig(high, digits)}]"


def _ci_display(body: pd.DataFrame, head: dict[str, str], stats: dict[str, str], tail: dict[str, str]) -> pd.DataFrame:
    """Display frame: head/tail columns as they are, each stat as 'mean [low, high]'."""
    out = {label: body[col].astype(str) for col, label in head.items()}
    for col, label in stats.items():
        out[label] = [_cell(r[col], r[f"{col}_ci_low"], r[f"{col}_ci_high"]) for _, r in body.iterrows()]
    for col, label in tail.items():
        out[label] = [v if isinstance(v, str) else sig(v) for v in body[col]]
    return pd.DataFrame(out)


def _experiment_line(e: dict, what: str) -> str:
    seeds = e.get("seeds", [])
    return (f"{e['name']}: {what}; model {e['model']}; N={e.get('n_prompts', '?')} prompts "
            f"({e.get('prompt_set', '?')}) x {len(seeds)} seed(s) {seeds}.")


def _caption(table: str, exps: list[dict], cfg: StatsConfig) -> str:
    parts = [f"Table {table.removeprefix('table')} (reproduction): {TITLES[table]}."]
    for e in exps:
        if table == "table4":
            presets = sorted({c.get("preset", "") for c in e.get("conditions", [])} - {""})
            parts.append(_experiment_line(e, f"preset {', '.join(presets) or 'base'} vs baseline {e['baseline']}"))
        else:
            parts.append(_experiment_line(e, f"unedited baseline ({e['baseline']})"))
    unit = (f"Each value is pooled over seeds, steps, CFG halves and heads per prompt, then averaged over "
            f"prompts (the prompt is the unit); [ ] are {cfg.ci_level:.0%} t-intervals over prompts.")
    if table == "table1":
        parts += [unit, "Shares are of top-1 incoming-mass keys by token type. index-0 is image patch (0,0), the "
                  "key the authors' logging called 'index-0' (key order [image, text]); BOS is the real CLIP BOS. "
                  "Peaks: the step (progress step/(N-1)) where the mean top-5 concentration / top-1 mass is largest."]
    elif table == "table16":
        parts += [unit, "Every measured layer is reported (the authors' attribution covered only layer 12, "
                  "which their patcher also edited); 'all' pools every layer."]
    else:
        parts += [
            "edited = incoming mass left on the edited keys after the edit (exact: 0.0 under a hard or -1e4 "
            "mask, no epsilon floor); baseline = the same keys' mass in the unedited baseline, paired on "
            "(prompt, seed, step, layer, CFG half, head); pre-edit = their mass in the same run before the edit. "
            "CLIP-BOS edits use bos_mass; per-head top-1/top-5 edits use top1_mass/topk_mass; other "
            "selections have no baseline mass in the dynamics rows.",
            f"reduction = mean baseline / mean edited over prompts, {cfg.ci_level:.0%} {cfg.ci_method} bootstrap "
            f"CI ({cfg.bootstrap_resamples} resamples); when the edited mass is exactly 0 it is reported as "
            f"'{COMPLETE}' and never divided.",
            "The paper's 44,059x (Table 4) and README's >10^8x were epsilon artefacts: the eta=0 mass is exactly 0, "
            "so baseline / max(0, 1e-6) = baseline x 10^6 (44,059x is an index-0 mass of 0.044059) and "
            "mass / 1e-10 gives >10^8x (docs/paper-deviations.md)."]
    return " ".join(parts)


def _display(table: str, body: pd.DataFrame) -> pd.DataFrame:
    if table == "table1":
        return _ci_display(body, {"experiment": "experiment", "layer": "layer", "n": "n", "n_seeds": "seeds"},
                           {"top1_mass": "top-1 mass", "entropy": "entropy", "top5_conc": "top-5 conc.",
                            "bos_mass": "CLIP-BOS mass", "share_image": "image", "share_clip": "CLIP",
                            "share_t5": "T5", "share_pad": "pad", "share_index0": "index-0 (patch 0,0)",
                            "share_bos": "CLIP BOS"},
                           {"conc_peak_progress": "conc. peak (progress)",
                            "mass_peak_progress": "mass peak (progress)"})
    if table == "table16":
        return _ci_display(body, {"experiment": "experiment", "layer": "layer", "n": "n", "n_seeds": "seeds",
                                  "n_sinks": "sinks"},
                           {"share_text_all": "text", "share_image": "image", "share_clip": "CLIP",
                            "share_t5": "T5", "share_pad": "pad"}, {})
    shown = _ci_display(body, {"experiment": "experiment", "condition": "condition", "reference": "reference",
                               "n": "n", "n_seeds": "seeds"},
                        {"baseline_mass": "baseline", "edited_mass": "edited", "retained": "retained"},
                        {"edited_max": "max edited", "zero_share": "rows at 0", "reduction": "reduction"})
    shown["reduction CI"] = [f"[{sig(r['reduction_ci_low'], 4)}, {sig(r['reduction_ci_high'], 4)}]"
                             if not is_missing(r["reduction_ci_low"]) else "--" for _, r in body.iterrows()]
    shown["note"] = body["note"].astype(str)
    return shown


def build_dynamics_table(table: str, partials: pd.DataFrame, experiments: list[dict],
                         cfg: StatsConfig) -> tuple[PaperTable, PaperTable]:
    """(numeric table for csv, display table for md/tex) of `table` from the experiments filling it."""
    exps = experiments_filling(table, experiments)
    if not exps:
        raise ValueError(f"{table}: no measured experiment lists it in `tables`")
    if table == "table1":
        body = pd.concat([table1_body(partials, e, cfg.ci_level) for e in exps], ignore_index=True)
    elif table == "table16":
        body = pd.concat([table16_body(partials, e, cfg.ci_level) for e in exps], ignore_index=True)
    else:
        body = pd.concat([table4_body(partials, e, cfg) for e in exps], ignore_index=True)
    standin = any(e.get("standin") for e in exps) or bool(partials["standin"].any())
    caption = _caption(table, exps, cfg)
    name = OUTPUT_STEMS[table]
    return PaperTable(name, caption, body, standin), PaperTable(name, caption, _display(table, body), standin)


# --- files ------------------------------------------------------------------------------------
def read_partials(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Reduce each dynamics shard as it is read (see reduce_rows)."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("dynamics tables: no dynamics files given; pass results/dynamics/.../shard*.parquet "
                         "as input.dynamics")
    parts = []
    for p in paths:
        missing = sorted(set(NEEDED) - set(pq.read_schema(p).names))
        if missing:
            raise ValueError(f"{p}: missing columns {missing}; see docs/contracts.md \"Dynamics\"")
        try:
            parts.append(reduce_rows(pd.read_parquet(p, columns=NEEDED)))
        except ValueError as err:
            raise ValueError(f"{p}: {err}") from None
    return pd.concat(parts, ignore_index=True)


def write_dynamics_table(table: str, dynamics_paths, experiments: list[dict], stats_config: dict | None,
                         out_dir: str | os.PathLike) -> list[Path]:
    """The file layer of the dynamics_table rule: paper/tables/<stem>.{csv,md,tex}."""
    cfg = StatsConfig.from_dict(stats_config)
    check_experiments(experiments)
    numeric, shown = build_dynamics_table(table, read_partials(dynamics_paths), experiments, cfg)
    files = {ext: text for ext, text in numeric.files().items() if ext.startswith("csv")}
    files |= {ext: text for ext, text in shown.files().items() if not ext.startswith("csv")}
    written = []
    for ext, text in files.items():
        path = Path(out_dir) / f"{OUTPUT_STEMS[table]}.{ext}"
        write_text(path, text)
        written.append(path)
    return written
