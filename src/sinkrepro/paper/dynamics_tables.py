"""Paper tables from measured sink dynamics (docs/contracts.md "Dynamics"), not from scores.

- Table 1: sink statistics per measured layer of the unedited baseline.
- Table 4: mass left on the edited keys (`edited_mass`) vs the same keys' mass in the baseline.
- Table 16, attribution part: share of top-1 sinks on text vs image keys per layer.

The statistics come from `sinkrepro.stats.dynamics`; this module picks the experiments, renders
the tables and captions, and reads and writes the files.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import pandas as pd
import pyarrow.parquet as pq

from ..io import write_text
from ..stats.config import StatsConfig
from ..stats.dynamics import COMPLETE, NEEDED, reduce_rows, table1_body, table4_body, table16_body
from ..vocab import SINK_TYPE_LABELS, SINK_TYPES, UNKNOWN_TEXT
from .numbers import cell, estimate, interval, is_missing, sig
from .tables import PaperTable

# table id -> file stem under paper/tables/ (Table 16's stats part is paper/tables/table16.*)
OUTPUT_STEMS = {"table1": "table1", "table4": "table4", "table16": "table16_attribution"}
TITLES = {
    "table1": "Sink dynamics summary per measured layer (unedited baseline)",
    "table4": "Mass verification: incoming mass left on the edited keys",
    "table16": "Sink attribution (E3): share of top-1 sinks on text vs image keys per layer",
}
# The per-type sink shares both tables show; a text key of unknown encoder counts only in "text (all)".
SHARE_LABELS = {f"share_{t}": SINK_TYPE_LABELS[t] for t in SINK_TYPES if t != UNKNOWN_TEXT}
# Tables that exist only as dynamics tables (Table 16 also has a stats part from scored experiments).
DYNAMICS_ONLY = ("table1", "table4")


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


# --- display and captions ---------------------------------------------------------------------
DIGITS = 4  # significant digits of the dynamics estimates and the reduction factor


def _ci_display(body: pd.DataFrame, head: dict[str, str], stats: dict[str, str], tail: dict[str, str]) -> pd.DataFrame:
    """Display frame: head/tail columns as they are, each stat as 'mean [low, high]'."""
    out = {label: [cell(v, col) for v in body[col]] for col, label in head.items()}
    for col, label in stats.items():
        out[label] = [estimate(r[col], r[f"{col}_ci_low"], r[f"{col}_ci_high"], DIGITS) for _, r in body.iterrows()]
    for col, label in tail.items():
        out[label] = [cell(v, col) for v in body[col]]
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
                            "bos_mass": "CLIP-BOS mass", **SHARE_LABELS, "share_index0": "index-0 (patch 0,0)",
                            "share_bos": "CLIP BOS"},
                           {"conc_peak_progress": "conc. peak (progress)",
                            "mass_peak_progress": "mass peak (progress)"})
    if table == "table16":
        return _ci_display(body, {"experiment": "experiment", "layer": "layer", "n": "n", "n_seeds": "seeds",
                                  "n_sinks": "sinks"},
                           {"share_text_all": "text", **SHARE_LABELS}, {})
    shown = _ci_display(body, {"experiment": "experiment", "condition": "condition", "reference": "reference",
                               "n": "n", "n_seeds": "seeds"},
                        {"baseline_mass": "baseline", "edited_mass": "edited", "retained": "retained"},
                        {"edited_max": "max edited", "zero_share": "rows at 0", "reduction": "reduction"})
    shown["reduction CI"] = [interval(lo, hi, DIGITS)
                             for lo, hi in zip(body["reduction_ci_low"], body["reduction_ci_high"])]
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
        body["reduction"] = [f"{sig(f, DIGITS)}x" if is_missing(r) and not is_missing(f) else r
                             for r, f in zip(body["reduction"], body["reduction_factor"])]
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
