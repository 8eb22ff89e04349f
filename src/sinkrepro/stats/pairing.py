"""From score rows to paired per-image and per-prompt values."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

REQUIRED_SCORE_COLUMNS = ("metric", "value", "model", "condition", "seed", "prompt_id")


def own_rows(rows: pd.DataFrame, prompt_ids=None, seeds=None) -> pd.DataFrame:
    """The rows of these prompts and seeds: a condition shared by several experiments has shards that
    also hold the other experiments' prompts and seeds."""
    keep = pd.Series(True, index=rows.index)
    if prompt_ids is not None:
        keep &= rows["prompt_id"].isin(list(prompt_ids))
    if seeds is not None:
        keep &= rows["seed"].isin(list(seeds))
    return rows[keep]


def clean_scores(scores: pd.DataFrame, prompts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Validate score rows, flag unusable ones (`usable`), attach the prompt table's category."""
    missing = [c for c in REQUIRED_SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise ValueError(f"score rows: missing columns {missing}; see docs/contracts.md 'Scores'")
    out = scores.copy()
    out["value"] = pd.to_numeric(out["value"], errors="coerce").astype(float)
    failed = out["failed"].fillna(False).astype(bool) if "failed" in out.columns else False
    out["usable"] = ~failed & out["value"].notna()
    if "reference_condition" not in out.columns:
        out["reference_condition"] = None
    if prompts is not None:
        if not {"prompt_id", "category"} <= set(prompts.columns):
            raise ValueError("prompt table: needs columns prompt_id and category; see docs/contracts.md 'Prompt table'")
        table = prompts.drop_duplicates("prompt_id").set_index("prompt_id")["category"]
        unknown = sorted(set(out["prompt_id"]) - set(table.index))
        if unknown:
            raise ValueError(f"score rows: prompt_id {unknown[:3]} not in the prompt table; pass the experiment's prompt set")
        out["category"] = out["prompt_id"].map(table)
    elif "category" not in out.columns:
        out["category"] = None
    dup = out[out["usable"]].duplicated(["metric", "condition", "seed", "prompt_id"])
    if dup.any():
        row = out[out["usable"]][dup].iloc[0]
        raise ValueError(f"score rows: duplicate ({row.metric}, {row.condition}, seed {row.seed}, {row.prompt_id}); "
                         "each image must be scored once per metric")
    return out


@dataclass(frozen=True)
class Paired:
    """Image pairs of one metric: columns prompt_id, seed, category, x (condition), y (reference)."""
    pairs: pd.DataFrame
    n_excluded: int
    n_unpaired: int
    note: str = ""

    def per_prompt(self) -> pd.DataFrame:
        """Seed-averaged pairs: the prompt is the unit (columns prompt_id, category, x, y, d)."""
        grouped = self.pairs.groupby("prompt_id", sort=True)
        out = grouped[["x", "y", "d"]].mean()
        out.insert(0, "category", grouped["category"].first())
        return out.reset_index()


def pair_values(scores: pd.DataFrame, metric: str, condition: str, reference: str) -> Paired:
    """Pair metric values of `condition` with `reference` on (prompt_id, seed).

    A pairwise metric (LPIPS) scored against `reference` itself has y = 0: it is already a
    distance from the reference image.
    """
    rows = scores[scores["metric"] == metric]
    x_all, y_all = rows[rows["condition"] == condition], rows[rows["condition"] == reference]
    n_excluded = int((~x_all["usable"]).sum() + (~y_all["usable"]).sum())
    x, y = x_all[x_all["usable"]], y_all[y_all["usable"]]
    keys = ["prompt_id", "seed"]
    empty = pd.DataFrame(columns=["prompt_id", "seed", "category", "x", "y", "d"])
    if x.empty:
        return Paired(empty, n_excluded, 0, f"no usable {metric} rows for {condition}")
    against_reference = x["reference_condition"].eq(reference).all()
    if against_reference and y.empty:
        pairs = x[keys + ["category", "value"]].rename(columns={"value": "x"}).assign(y=0.0)
        n_unpaired = 0
    else:
        if y.empty:
            return Paired(empty, n_excluded, len(x), f"no usable {metric} rows for {reference}")
        pairs = x[keys + ["category", "value"]].rename(columns={"value": "x"}).merge(
            y[keys + ["value"]].rename(columns={"value": "y"}), on=keys, how="inner")
        n_unpaired = len(x) + len(y) - 2 * len(pairs)
    pairs = pairs.assign(d=pairs["x"] - pairs["y"]).sort_values(keys).reset_index(drop=True)
    return Paired(pairs, n_excluded, int(n_unpaired))


def per_prompt_matrix(frames: dict[float, pd.DataFrame]) -> pd.DataFrame:
    """Per-prompt d for several doses: [prompt_id x k] (NaN where a prompt lacks a dose)."""
    return pd.DataFrame({k: f.set_index("prompt_id")["d"] for k, f in frames.items()}).sort_index()


def prompt_slopes(matrix: pd.DataFrame) -> np.ndarray:
    """Each prompt's OLS slope of d on ln k, over the doses it has (needs >= 2)."""
    lnk = np.log(np.asarray(matrix.columns, dtype=float))
    slopes = []
    for values in matrix.to_numpy():
        ok = ~np.isnan(values)
        if ok.sum() >= 2:
            xk, yk = lnk[ok], values[ok]
            slopes.append(np.sum((xk - xk.mean()) * (yk - yk.mean())) / np.sum((xk - xk.mean()) ** 2))
    return np.asarray(slopes)
