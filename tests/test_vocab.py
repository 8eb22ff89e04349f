"""The shared vocabulary: torch-free, consistent with the scorers, and statistics/paper code
independent of the job grid."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import torch

from sinkrepro.attention.tokens import build_layout
from sinkrepro.scoring.registry import SCORERS
from sinkrepro.vocab import PAD, PAIRWISE_METRICS, SCORES_NEEDED, SINK_TYPES, per_image_metrics

SRC = Path(__file__).resolve().parents[1] / "src" / "sinkrepro"


def test_vocab_imports_without_torch():
    code = "import sys, sinkrepro.vocab; assert 'torch' not in sys.modules, 'vocab imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=SRC.parent)


def test_statistics_and_paper_do_not_import_the_grid():
    offenders = []
    for path in [*(SRC / "stats").glob("*.py"), *(SRC / "paper").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):  # also `from .. import grid`, `from sinkrepro import grid`
                names = [f"{node.module or ''}.{a.name}" for a in node.names]
            else:
                continue
            offenders += [f"{path.name}: {n}" for n in names if "grid" in n.split(".")]
    assert offenders == []


def test_every_needed_score_has_a_scorer():
    needed = set(per_image_metrics(SCORES_NEEDED))
    assert needed == set(SCORERS)
    assert set(PAIRWISE_METRICS) <= needed
    assert per_image_metrics(["fid", "clip_t"]) == ["feat_l2", "clip_t"]


def test_key_types_are_sink_types():
    # 2 image keys, then 3 text keys (2 CLIP, 1 T5); row 1's CLIP prompt is 1 token long
    layout = build_layout(2, 2, 3, 2, clip_len=2, clip_lengths=[2, 1])
    keys = torch.arange(5).repeat(2)
    rows = torch.arange(2).repeat_interleave(5)
    names = layout.type_names(keys, rows)
    assert names == ["image", "image", "clip", "clip", "t5", "image", "image", "clip", PAD, "t5"]
    assert set(names) <= set(SINK_TYPES)
