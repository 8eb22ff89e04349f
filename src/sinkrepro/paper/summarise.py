"""Pure reductions that turn contract rows into the points and intervals a figure draws."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from sinkrepro.stats.groups import require_columns


def read_parquets(paths: Iterable[str | Path], what: str) -> pd.DataFrame:
    """Concatenate parquet files; an empty list is an error that names the input."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError(f"{what}: no input files; the rule must pass at least one parquet")
    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


def prompt_level(frame: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """Average `value` to one number per prompt within `keys` (heads, CFG halves and seeds pooled).

    The prompt is the unit of analysis: seeds of one prompt are not independent replicates.
    """
    return frame.groupby(keys + ["prompt_id"], sort=True)[value].mean().reset_index()


def paired_deltas(scores: pd.DataFrame, condition: str, baseline: str) -> pd.DataFrame:
    """Per-image effect of `condition` for each metric, paired on (seed, prompt_id).

    Ordinary metrics give value(condition) - value(baseline). Pairwise metrics (LPIPS: the row
    names a reference_condition) already measure the distance to the baseline, so their value
    is the effect. Failed or NaN score rows are dropped (their pair goes with them).
    """
    require_columns(scores, ["metric", "value", "condition", "seed", "prompt_id"], "scores")
    keys = ["metric", "seed", "prompt_id"]
    failed = scores["failed"].fillna(False).astype(bool) if "failed" in scores else False
    scores = scores[~failed & scores["value"].notna()]  # failed scorer rows carry value=NaN
    pairwise = scores.get("reference_condition", pd.Series(None, index=scores.index)).notna()
    mine = scores[scores["condition"] == condition]
    direct = mine[pairwise.loc[mine.index]][keys + ["value"]].rename(columns={"value": "delta"})
    plain = mine[~pairwise.loc[mine.index]]
    base = scores[(scores["condition"] == baseline) & ~pairwise]
    joined = plain.merge(base[keys + ["value"]], on=keys, suffixes=("", "_base"), how="inner")
    joined["delta"] = joined["value"] - joined["value_base"]
    out = pd.concat([direct, joined[keys + ["delta"]]], ignore_index=True)
    extra = [c for c in ("category",) if c in mine.columns]
    if extra:
        out = out.merge(mine[keys + extra].drop_duplicates(keys), on=keys, how="left")
    out["condition"] = condition
    return out
