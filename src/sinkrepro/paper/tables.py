"""Paper tables from stats rows: paper/tables/<table>.{csv,md,tex}.

Each table id of the paper (docs/paper-items.md) has a layout. An experiment names the
tables it fills (`experiment["tables"]`); tables that come from sink dynamics (1, 4, 16's
attribution) or are hand-compiled (8) are not built here.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from ..io import write_text
from ..provenance import notice_lines
from ..stats.config import StatsConfig
from ..stats.multiplicity import combine_stats
from .numbers import cell
from .sidecar import SIDECAR_SUFFIX, csv_text, metadata_text


@dataclass(frozen=True)
class TableSpec:
    title: str
    layout: str  # delta | delta_delta | category | fid


TABLES: dict[str, TableSpec] = {
    "table2": TableSpec("CLIP-T under dynamic sink removal (A1-A3)", "delta"),
    "table3": TableSpec("HPS-v2 under dynamic sink removal (A1-A3)", "delta"),
    "table5": TableSpec("SDXL mid-block sink removal", "delta"),
    "table6": TableSpec("Perceptual shift: sink vs equal-budget random (delta-delta)", "delta_delta"),
    "table7": TableSpec("Alignment and preference: sink vs equal-budget random (delta-delta)", "delta_delta"),
    "table9": TableSpec("FID calibration: sampler and seed perturbations", "fid"),
    "table10": TableSpec("Score-path sweep (probability scaling of the CLIP BOS)", "delta"),
    "table11": TableSpec("Value-path sweep (CLIP BOS values)", "delta"),
    "table12": TableSpec("Single- vs multi-layer sink removal", "delta"),
    "table13": TableSpec("Sink removal by denoising phase", "delta"),
    "table14": TableSpec("Breakdown by GenEval category", "category"),
    "table15": TableSpec("Sink removal under sampler settings (E2)", "delta"),
    "table16": TableSpec("Selective ablation of text vs image sinks (E3)", "delta"),
    "table17": TableSpec("No-op sanity check: custom attention path with an empty edit", "delta"),
    "table18": TableSpec("FID calibration (appendix)", "fid"),
    "table19": TableSpec("k sweep: sink removal across budgets", "delta"),
    "table20": TableSpec("HPS-v2 dose check (delta-delta across k)", "delta_delta"),
}
FORMATS = ("csv", "csv" + SIDECAR_SUFFIX, "md", "tex")


def stats_tables(experiments: Iterable[dict]) -> list[str]:
    """Table ids this module writes for `experiments`, in paper order."""
    wanted = {t for exp in experiments for t in exp.get("tables", []) if t in TABLES}
    return sorted(wanted, key=lambda t: int(t.removeprefix("table")))


# --- building ---------------------------------------------------------------------------------
def build_table(table: str, stats: pd.DataFrame, experiments: list[dict], cfg: StatsConfig) -> "PaperTable":
    if table not in TABLES:
        raise ValueError(f"table {table!r}: not built from statistics; tables built here are {sorted(TABLES)}")
    spec = TABLES[table]
    exps = [e for e in experiments if table in e.get("tables", [])]
    rows = stats[stats["experiment"].isin([e["name"] for e in exps])] if len(stats) else stats
    body = {"delta": _delta_body, "delta_delta": _delta_delta_body, "category": _category_body,
            "fid": _fid_body}[spec.layout](rows)
    caption = _caption(table, spec, exps, rows, cfg)
    standin = any(e.get("standin") for e in exps) or bool(len(rows) and rows.get("standin", pd.Series([False])).any())
    return PaperTable(table, caption, body, standin)


def _label(r) -> str:
    return f"{r['label']} ({r['condition']})" if r.get("label") else str(r["condition"])


def _delta_body(rows: pd.DataFrame) -> pd.DataFrame:
    sel = rows[(rows["category"] == "all") & rows["kind"].isin(["delta", "dose", "dose_contrast"])] if len(rows) else rows
    out = []
    for _, r in sel.iterrows():
        what = {"delta": _label(r), "dose": f"dose slope per ln k, {r['basis']}: {r['condition']}",
                "dose_contrast": f"k50 - k10 (paper's two-dose contrast), {r['basis']}: {r['preset']}"}[r["kind"]]
        k = r["k"] if r["kind"] == "delta" else math.nan
        out.append(_common(r) | {"comparison": what, "k": k, "mean_condition": r["mean_condition"],
                                 "mean_reference": r["mean_reference"], "delta": r["mean"]} | _tests(r))
    return pd.DataFrame(out, columns=_columns(["experiment", "metric", "comparison", "k", "n", "n_seeds",
                                               "mean_condition", "mean_reference", "delta"]))


def _delta_delta_body(rows: pd.DataFrame) -> pd.DataFrame:
    if not len(rows):
        return pd.DataFrame(columns=_columns(["experiment", "metric", "comparison", "k", "n", "n_seeds",
                                              "delta_condition", "delta_control", "delta_delta", "ratio",
                                              "ratio_ci_low", "ratio_ci_high"]))
    all_rows = rows[rows["category"] == "all"]
    deltas = all_rows[all_rows["kind"] == "delta"].set_index(["experiment", "metric", "condition"])
    ratios = all_rows[all_rows["kind"] == "ratio"].set_index(["experiment", "metric", "condition"])
    out = []
    for _, r in all_rows.iterrows():
        if r["kind"] == "delta_delta":
            key = (r["experiment"], r["metric"])
            ratio = ratios.loc[key + (r["condition"],)] if key + (r["condition"],) in ratios.index else None
            out.append(_common(r) | {
                "comparison": f"{_label(r)} - {r['reference']}", "k": r["k"],
                "delta_condition": _lookup(deltas, key + (r["condition"],), "mean"),
                "delta_control": _lookup(deltas, key + (r["reference"],), "mean"), "delta_delta": r["mean"],
                "ratio": ratio["mean"] if ratio is not None else math.nan,
                "ratio_ci_low": ratio["ci_low"] if ratio is not None else math.nan,
                "ratio_ci_high": ratio["ci_high"] if ratio is not None else math.nan} | _tests(r))
        elif r["kind"] in ("dose", "dose_contrast") and r["basis"] == "delta_delta":
            what = (f"dose slope per ln k: {r['condition']} - {r['reference']}" if r["kind"] == "dose"
                    else f"k50 - k10 (paper's two-dose contrast): {r['preset']}")
            out.append(_common(r) | {"comparison": what, "k": math.nan, "delta_condition": math.nan,
                                     "delta_control": math.nan, "delta_delta": r["mean"], "ratio": math.nan,
                                     "ratio_ci_low": math.nan, "ratio_ci_high": math.nan} | _tests(r))
    return pd.DataFrame(out, columns=_columns(["experiment", "metric", "comparison", "k", "n", "n_seeds",
                                               "delta_condition", "delta_control", "delta_delta", "ratio",
                                               "ratio_ci_low", "ratio_ci_high"]))


def _category_body(rows: pd.DataFrame) -> pd.DataFrame:
    sel = rows[(rows["kind"] == "delta") & (rows["category"] != "all")] if len(rows) else rows
    out = [_common(r) | {"category": r["category"], "comparison": _label(r), "k": r["k"], "delta": r["mean"]}
           | _tests(r) for _, r in sel.iterrows()]
    return pd.DataFrame(out, columns=_columns(["experiment", "metric", "category", "comparison", "k", "n",
                                               "n_seeds", "delta"]))


def _fid_body(rows: pd.DataFrame) -> pd.DataFrame:
    sel = rows[rows["kind"] == "fid"] if len(rows) else rows
    cols = ["experiment", "condition", "seed", "reference", "reference_seed", "n_images", "fid"]
    out = [{"experiment": r["experiment"], "condition": r["condition"], "seed": r["seed"],
            "reference": r["reference"], "reference_seed": r["reference_seed"], "n_images": r["n"], "fid": r["mean"]}
           for _, r in sel.iterrows()]
    return pd.DataFrame(out, columns=cols)


TEST_COLUMNS = ["ci_low", "ci_high", "dz", "p_t", "p_t_1s", "p_w", "p_adj_family", "p_adj_paper",
                "tost_margin", "p_tost", "lmm_p", "ci_contains_zero", "note"]


def _columns(head: list[str]) -> list[str]:
    return head + TEST_COLUMNS


def _common(r) -> dict:
    return {"experiment": r["experiment"], "metric": r["metric"], "n": r["n"], "n_seeds": r["n_seeds"]}


def _tests(r) -> dict:
    return {c: r.get(c, math.nan) for c in TEST_COLUMNS}


def _lookup(frame: pd.DataFrame, key: tuple, col: str) -> float:
    return float(frame.loc[key, col]) if key in frame.index else math.nan


def _caption(table: str, spec: TableSpec, exps: list[dict], rows: pd.DataFrame, cfg: StatsConfig) -> str:
    parts = [f"Table {table.removeprefix('table')} (reproduction): {spec.title}."]
    for e in exps:
        presets = sorted({c.get("preset", "") for c in e.get("conditions", [])} - {""})
        seeds = e.get("seeds", [])
        n = e.get("n_prompts", "?")
        parts.append(f"{e['name']}: preset {', '.join(presets) or 'base'}; model {e['model']}; "
                     f"N={n} prompts ({e.get('prompt_set', '?')}) x {len(seeds)} seed(s) {seeds}.")
    if spec.layout != "fid":
        parts.append(f"Differences are condition - reference paired on (prompt, seed) and averaged over seeds per "
                     f"prompt (the prompt is the unit). CI: {cfg.ci_level:.0%} {cfg.ci_method} bootstrap "
                     f"({cfg.bootstrap_resamples} resamples); p: paired t (two-sided; p_1s one-sided in the harm "
                     f"direction); p_adj_family: {cfg.within} within the table family; p_adj_paper: {cfg.across} "
                     f"across the paper; TOST at the metric's margin; lmm_p: mixed model with a prompt random "
                     f"intercept.")
    else:
        parts.append("FID between the condition's image set and the reference set (set-level; no test).")
    return " ".join(parts)


# --- rendering --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PaperTable:
    table: str
    caption: str
    body: pd.DataFrame
    standin: bool

    @property
    def title(self) -> str:
        return self.caption.split(". ")[0].rstrip(".")

    def files(self) -> dict[str, str]:
        """extension -> text of every file of this table (FORMATS)."""
        return {"csv": csv_text(self.body),
                "csv" + SIDECAR_SUFFIX: metadata_text(f"{self.table}.csv", self.title, self.caption,
                                                      self.standin, self.body),
                "md": self.markdown(), "tex": self.latex()}

    def markdown(self) -> str:
        shown = display(self.body)
        head = "| " + " | ".join(shown.columns) + " |\n|" + "---|" * len(shown.columns) + "\n"
        lines = "".join("| " + " | ".join(v.replace("|", "\\|") for v in row) + " |\n"
                        for row in shown.itertuples(index=False))
        notice = f"> {notice_lines(self.standin).strip()}\n\n" if self.standin else ""
        return f"{notice}**{self.caption}**\n\n{head}{lines}"

    def latex(self) -> str:
        shown = display(self.body.drop(columns=["note"], errors="ignore"))
        cols = "l" * 3 + "r" * (len(shown.columns) - 3)
        head = " & ".join(_tex(c) for c in shown.columns) + r" \\"
        lines = "\n".join(" & ".join(_tex(v) for v in row) + r" \\" for row in shown.itertuples(index=False))
        return (notice_lines(self.standin, "% ") + "\\begin{table}[t]\n\\centering\\small\n"
                f"\\caption{{{_tex(self.caption)}}}\n\\label{{tab:{self.table}}}\n"
                f"\\resizebox{{\\textwidth}}{{!}}{{%\n\\begin{{tabular}}{{{cols}}}\n\\toprule\n{head}\n\\midrule\n"
                f"{lines}\n\\bottomrule\n\\end{{tabular}}}}\n\\end{{table}}\n")


def display(body: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({c: [cell(v, c) for v in body[c]] for c in body.columns}, columns=body.columns)


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}", "<": r"$<$", ">": r"$>$"}


def _tex(value) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(value))


# --- files ------------------------------------------------------------------------------------
def write_tables(stats: pd.DataFrame, experiments: list[dict], cfg: StatsConfig,
                 out_dir: str | os.PathLike) -> list[Path]:
    """Write every table `experiments` can fill; returns the paths written."""
    written = []
    for table in stats_tables(experiments):
        written += write_table_files(build_table(table, stats, experiments, cfg), out_dir)
    return written


def write_table_files(table: "PaperTable", out_dir: str | os.PathLike) -> list[Path]:
    written = []
    for ext, text in table.files().items():
        path = Path(out_dir) / f"{table.table}.{ext}"
        write_text(path, text)
        written.append(path)
    return written


def read_stats(paths: Iterable[str | os.PathLike]) -> list[pd.DataFrame]:
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("paper tables: no stats files given; pass results/stats/{experiment}.parquet as input.stats")
    return [pd.read_parquet(p) for p in paths]


def write_paper_tables(stats_paths, experiments: list[dict], stats_config: dict | None,
                       out_dir: str | os.PathLike) -> list[Path]:
    """The file layer of the paper_tables rule."""
    cfg = StatsConfig.from_dict(stats_config)
    return write_tables(combine_stats(read_stats(stats_paths), cfg), experiments, cfg, out_dir)
