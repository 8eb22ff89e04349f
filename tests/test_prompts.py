"""Prompt tables from local files and pinned URLs (file:// here, never the network)."""
from collections import Counter
from pathlib import Path

import pytest

from sinkrepro.prompts import load_prompt_set, read_table, write_table

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GENEVAL = DATA / "geneval" / "evaluation_metadata.jsonl"
BALANCED = DATA / "paper-prompts" / "prompts_geneval_balanced_100.txt"
GENEVAL_SHA = "5c48e0813e812e3c373fa5c8ed07a8f0a483be30272b4427b0559c8048e67c13"
BALANCED_SHA = "4066159c68a40c0c83fca569311159ef44c96bbecd4c55492252bc9c36f4ad8c"

needs_data = pytest.mark.skipif(not GENEVAL.exists(), reason="shared GenEval data not beside the checkout")


def sets():
    return {
        "geneval": {"source": "geneval", "url": GENEVAL.as_uri(), "sha256": GENEVAL_SHA},
        "balanced100": {"source": "list", "url": BALANCED.as_uri(), "sha256": BALANCED_SHA, "from": "geneval"},
        "first64": {"source": "subset", "from": "geneval", "first": 64},
    }


@needs_data
def test_geneval_categories_follow_the_official_order(tmp_path):
    rows = load_prompt_set("geneval", sets(), cache_dir=tmp_path)
    assert len(rows) == 553
    counts = Counter(r["category"] for r in rows)
    assert counts == {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94,
                      "position": 100, "color_attr": 100}
    # categories are contiguous line ranges (docs/paper-items.md)
    assert {r["category"] for r in rows[353:453]} == {"position"}
    assert rows[0]["prompt_id"] == "geneval-000" and rows[552]["prompt_index"] == 552


@needs_data
def test_list_source_keeps_the_lookup_sets_ids(tmp_path):
    rows = load_prompt_set("balanced100", sets(), cache_dir=tmp_path)
    assert len(rows) == 100
    counts = Counter(r["category"] for r in rows)
    assert counts == {"single_object": 20, "two_object": 20, "counting": 15, "colors": 15,
                      "position": 15, "color_attr": 15}
    geneval = {r["prompt_id"]: r["prompt"] for r in load_prompt_set("geneval", sets(), cache_dir=tmp_path)}
    assert all(geneval[r["prompt_id"]] == r["prompt"] for r in rows)


@needs_data
def test_subset_and_cache(tmp_path):
    rows = load_prompt_set("first64", sets(), cache_dir=tmp_path)
    assert [r["prompt_index"] for r in rows] == list(range(64))
    assert (tmp_path / GENEVAL_SHA).exists()


@needs_data
def test_wrong_sha256_names_the_field(tmp_path):
    bad = sets()
    bad["geneval"]["sha256"] = "0" * 64
    with pytest.raises(ValueError, match=r"config.prompt_sets.geneval.sha256"):
        load_prompt_set("geneval", bad, cache_dir=tmp_path)


def test_missing_url_names_the_field(tmp_path):
    cfg = {"g": {"source": "geneval", "url": (tmp_path / "nope.jsonl").as_uri(), "sha256": "0" * 64}}
    with pytest.raises(RuntimeError, match=r"config.prompt_sets.g.url"):
        load_prompt_set("g", cfg)


def test_local_table_round_trip(tmp_path):
    src = tmp_path / "p.tsv"
    src.write_text("prompt_id\tprompt\tcategory\na\ta photo of a cat\tsingle_object\nb\ttwo dogs\tcounting\n")
    rows = load_prompt_set("mine", {"mine": {"source": "local", "path": str(src)}})
    write_table(tmp_path / "out.tsv", rows)
    assert read_table(tmp_path / "out.tsv") == rows


def test_duplicate_local_ids_are_refused(tmp_path):
    src = tmp_path / "p.tsv"
    src.write_text("prompt_id\tprompt\tcategory\na\tx\tcolors\na\ty\tcolors\n")
    with pytest.raises(ValueError, match="duplicate prompt_id"):
        load_prompt_set("mine", {"mine": {"source": "local", "path": str(src)}})
