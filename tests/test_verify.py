"""`sinkrepro verify` on a tiny run: a tampered, a missing and a re-made-but-unscored image are each
named with the outputs built from them, and the command fails; an untouched tree passes."""
import json
import shutil

import pytest

from sinkrepro import cli
from sinkrepro.io import sha256_file
from sinkrepro.verify import verify

pytestmark = pytest.mark.slow
BASE = "results/images/tiny-sd3/base/seed0/shard000"


@pytest.fixture
def tree(reference, tmp_path):
    """A copy of the run's results and figures, free to tamper with."""
    for part in ("results", "paper"):
        shutil.copytree(reference / part, tmp_path / part)
    return tmp_path


def test_untouched_run_verifies(tree, capsys):
    assert cli.main(["verify", "--root", str(tree)]) == 0
    out = capsys.readouterr().out
    assert "all match their records" in out and "12 images" in out and "score rows" in out


def test_tampered_baseline_image_is_named_with_what_was_built_from_it(tree, capsys):
    image = tree / BASE / "m0.png"
    data = bytearray(image.read_bytes())
    data[-20] ^= 0xFF  # one byte inside the PNG
    image.write_bytes(bytes(data))
    assert cli.main(["verify", "--root", str(tree)]) == 1
    out = capsys.readouterr().out
    assert f"CHANGED {BASE}/m0.png: sha256" in out and f"fix: snakemake --forcerun {BASE}" in out
    built = {str(p.relative_to(tree)) for p in verify(tree).built_from[image]}
    # the image's own CLIP-T scores, the LPIPS of both edited conditions against it, stats and figures
    assert {"results/scores/shards/tiny-sd3/base/seed0/shard000.parquet",
            "results/scores/shards/tiny-sd3/dsp-k1-L1/seed0/shard000.parquet",
            "results/scores/shards/tiny-sd3/dsp_random-k1-L1/seed0/shard000.parquet",
            "results/stats/sweep.parquet", "paper/figures/sweep/panels_k1.pdf"} <= built


def test_missing_image_fails(tree):
    (tree / BASE / "m1.png").unlink()
    report = verify(tree)
    assert list(report.problems) == [tree / BASE / "m1.png"] and "missing" in report.problems[tree / BASE / "m1.png"]


def test_image_remade_without_rescoring_flags_its_scores(tree):
    """Image and manifest agree (a regenerated shard) but the score rows name the old bytes."""
    shard = tree / "results/images/tiny-sd3/dsp-k1-L1/seed0/shard000"
    source = tree / BASE / "m0.png"
    shutil.copy(source, shard / "m2.png")
    rows = [json.loads(line) for line in (shard / "manifest.jsonl").read_text().splitlines()]
    for row in rows:
        if row["file"] == "m2.png":
            row["sha256"] = sha256_file(source)
    (shard / "manifest.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    problems = {str(p.relative_to(tree)): why for p, why in verify(tree).problems.items()}
    scores = "results/scores/shards/tiny-sd3/dsp-k1-L1/seed0/shard000.parquet"
    assert "m2.png" in problems.pop(scores)
    # paper/provenance.json still holds the bytes the panel figure was drawn from
    assert set(problems) == {f"{shard.relative_to(tree)}/{f}" for f in ("m2.png", "manifest.jsonl")}
    assert all("paper/provenance.json records" in why for why in problems.values())
