"""Thin file layer: read score shards and the prompt table, write one experiment's stats."""
from __future__ import annotations

import os
from typing import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..io import atomic_path
from ..provenance import STANDIN_NOTICE
from .analysis import analyze_experiment
from .config import StatsConfig


def read_scores(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("stats: no score files given; the rule must pass the experiment's score shards as input.scores")
    frames = [pd.read_parquet(p) for p in paths]
    return pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else frames[0]


def read_prompt_table(path: str | os.PathLike | None) -> pd.DataFrame | None:
    return None if path is None else pd.read_csv(path, sep="\t", dtype={"prompt_id": str})


def write_experiment_stats(score_paths, prompts_path, experiment: dict, stats_config: dict | None,
                           out_parquet, out_csv) -> pd.DataFrame:
    """Read, analyse, write `results/stats/{experiment}.parquet` and `.csv` atomically."""
    cfg = StatsConfig.from_dict(stats_config)
    stats = analyze_experiment(read_scores(score_paths), experiment, cfg, read_prompt_table(prompts_path))
    table = pa.Table.from_pandas(stats, preserve_index=False)
    standin = bool(len(stats) and stats["standin"].any())
    notice = {b"sinkrepro.notice": STANDIN_NOTICE.encode()} if standin else {}
    with atomic_path(out_parquet) as tmp:  # the notice also in the file's own metadata
        pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **notice}), tmp)
    with atomic_path(out_csv) as tmp:
        stats.to_csv(tmp, index=False)
    return stats
