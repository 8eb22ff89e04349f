"""paper/README.md: which items of the paper this run reproduced, which it did not and why, and
which the paper made by hand; each with its files and the experiments and presets that made it.

Built from the config's resolved experiments alone, so it works for any config. The same entries
open the HTML report (`report_rst`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..io import write_text
from ..provenance import STANDIN_NOTICE
from .dynamics_tables import OUTPUT_STEMS, TITLES as DYNAMICS_TITLES, experiments_filling
from ..layout import figure_names
from .tables import FORMATS, TABLES, stats_tables

REPRODUCED, NOT_IN_CONFIG, HAND_MADE = "reproduced", "not in this config", "hand-made in the paper"
HAND_MADE_ITEMS = ("Fig. 1", "Table 8")  # the authors' code has no script for them


@dataclass(frozen=True)
class Entry:
    item: str
    title: str
    status: str
    files: tuple[str, ...] = ()
    made_by: str = ""  # "experiment (presets)", one per experiment
    why: str = ""      # for items not reproduced


def _presets(exp: dict) -> str:
    presets = sorted({c["preset"] for c in exp["conditions"]}) or ["base"]
    return f"{exp['name']} ({', '.join(presets)}; model {exp['model']})"


def _table_entry(n: int, experiments: list[dict]) -> Entry:
    table = f"table{n}"
    item = f"Table {n}"
    if item in HAND_MADE_ITEMS:
        return Entry(item, "--", HAND_MADE, why="The authors' code has no script for it")
    title = TABLES[table].title if table in TABLES else DYNAMICS_TITLES.get(table, "")
    files, makers = [], []
    scored = [e for e in experiments if e["metrics"]]
    if table in stats_tables(scored):
        files.append(f"paper/tables/{table}.{{{','.join(FORMATS)}}}")
        makers += [e for e in scored if table in e["tables"]]
    if table in OUTPUT_STEMS and experiments_filling(table, experiments):
        files.append(f"paper/tables/{OUTPUT_STEMS[table]}.{{{','.join(FORMATS)}}}")
        makers += [e for e in experiments_filling(table, experiments) if e not in makers]
    if not files:
        return Entry(item, title, NOT_IN_CONFIG, why=f"No experiment lists {table} in `tables`")
    return Entry(item, title, REPRODUCED, tuple(files), "; ".join(_presets(e) for e in makers))


def _figure_entry(item: str, title: str, wanted, experiments: list[dict], why: str) -> Entry:
    files, makers = [], []
    for exp in experiments:
        names = [n for n in figure_names(exp) if wanted(n)]
        files += [f"paper/figures/{exp['name']}/{n}.png" for n in names]
        if names:
            makers.append(exp)
    if not files:
        return Entry(item, title, NOT_IN_CONFIG, why=why)
    return Entry(item, title, REPRODUCED, tuple(files), "; ".join(_presets(e) for e in makers))


PAPER_FIGURES = {"dynamics_curves", "dynamics_position", "dynamics_attribution", "dose"}


def index_entries(experiments: Iterable[dict]) -> list[Entry]:
    """One entry per item of the paper, in the paper's order, then the figures the paper lacks."""
    experiments = list(experiments)
    entries = [Entry("Fig. 1", "--", HAND_MADE, why="The authors' code has no script for it"),
               _figure_entry("Fig. 2", "Sink dynamics: mass, entropy, concentration, position, attribution",
                             lambda n: n.startswith("dynamics_"), experiments,
                             "No experiment has `measure: true`")]
    entries += [_table_entry(n, experiments) for n in range(1, 21)]
    entries += [
        _figure_entry("Dose response", "Effect against the removal budget k", lambda n: n == "dose", experiments,
                      "No experiment removes one condition at two or more k"),
        _figure_entry("Qualitative panels", "Baseline, sinks removed, random keys removed",
                      lambda n: n.startswith("panels_"), experiments,
                      "No experiment has a sink-random contrast scored with clip_t and lpips"),
        _figure_entry("Also drawn", "Forest plots, per-category effects, FID calibration (not figures of the paper)",
                      lambda n: n not in PAPER_FIGURES and not n.startswith("panels_"), experiments,
                      "No scored experiment"),
    ]
    return entries


def _header(experiments: list[dict]) -> list[str]:
    names = ", ".join(e["name"] for e in experiments)
    lines = [f"Every run rewrites this index for its config (the copy in the repository is the default "
             f"config's). This run's experiments: {names}. Each item of the paper is {REPRODUCED} (with the files "
             f"this run "
             f"wrote and the experiments, presets and model that made them), {NOT_IN_CONFIG} (and why), or "
             f"{HAND_MADE}. Each figure's `.png` has a `.pdf` and the `.csv` of its data beside it. Claim verdicts: "
             f"`paper/claims.md`; everything with captions: `paper/report.html`."]
    if any(e.get("standin") for e in experiments):
        lines.insert(0, f"**{STANDIN_NOTICE}**")
    return lines


def render_markdown(experiments: Iterable[dict]) -> str:
    experiments = list(experiments)
    out = ["# Index of the paper's items", "", *(line + "\n" for line in _header(experiments)),
           "| item | status | what | files | made by |", "|---|---|---|---|---|"]
    for e in index_entries(experiments):
        files = "<br>".join(f"`{f}`" for f in e.files) or "--"
        out.append(f"| {e.item} | **{e.status}** | {e.title} | {files} | {e.made_by or e.why or '--'} |")
    return "\n".join(out) + "\n"


def render_rst(experiments: Iterable[dict]) -> str:
    """The same index as reStructuredText, for the report's front page."""
    experiments = list(experiments)
    out = ["Index of the paper's items", "--------------------------", "", *(line + "\n" for line in
                                                                            _header(experiments))]
    for e in index_entries(experiments):
        detail = e.made_by or e.why
        what = "" if e.title == "--" else f" {e.title}."
        out += [f"* **{e.item}** ({e.status}):{what}" + (f" Made by {detail}." if e.made_by else f" {detail}."), ""]
        out += [f"  * `{f}`" for f in e.files] + ([""] if e.files else [])
    return re.sub(r"`([^`]+)`", r"``\1``", "\n".join(out)) + "\n"


def write_index(experiments: Iterable[dict], guide: str, index_md: str | os.PathLike,
                front_rst: str | os.PathLike) -> list[Path]:
    """paper/README.md, and the report's front page: the title and the index, then the guide to
    reading the report (`guide`: reStructuredText whose first two lines are its title)."""
    experiments = list(experiments)
    title, rule, *rest = guide.splitlines()
    write_text(index_md, render_markdown(experiments))
    write_text(front_rst, "\n".join([title, rule, "", render_rst(experiments), *rest]) + "\n")
    return [Path(index_md), Path(front_rst)]
