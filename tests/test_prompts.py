"""Prompt tables from our stand-in prompt files, by local path and by pinned (file://) URL."""
import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from sinkrepro.prompts import CATEGORIES, load_prompt_set, read_table, write_table

PROMPTS = Path(__file__).resolve().parents[1] / "config" / "prompts"
GENEVAL = PROMPTS / "standin_geneval.jsonl"
BALANCED = PROMPTS / "standin_balanced.txt"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def path_sets():
    return {
        "geneval": {"source": "geneval", "path": str(GENEVAL)},
        "balanced": {"source": "list", "from": "geneval", "path": str(BALANCED)},
        "first12": {"source": "subset", "from": "geneval", "first": 12},
    }


def url_sets():
    return {
        "geneval": {"source": "geneval", "url": GENEVAL.as_uri(), "sha256": sha(GENEVAL)},
        "balanced": {"source": "list", "from": "geneval", "url": BALANCED.as_uri(), "sha256": sha(BALANCED)},
    }


def test_standin_geneval_has_genevals_format_and_category_order():
    items = [json.loads(line) for line in GENEVAL.read_text().splitlines()]
    for item in items:
        assert set(item) <= {"tag", "include", "exclude", "prompt"} and item["include"]
        assert all({"class", "count"} <= set(obj) for obj in item["include"])
    tags = [item["tag"] for item in items]
    assert Counter(tags) == {c: 6 for c in CATEGORIES}
    # grouped in GenEval's order: each category is one contiguous run
    assert [t for i, t in enumerate(tags) if i == 0 or tags[i - 1] != t] == list(CATEGORIES)
    assert len({item["prompt"] for item in items}) == len(items)


def test_geneval_source_reads_ids_and_tags_from_a_path():
    rows = load_prompt_set("geneval", path_sets())
    items = [json.loads(line) for line in GENEVAL.read_text().splitlines()]
    assert [(r["prompt"], r["category"]) for r in rows] == [(i["prompt"], i["tag"]) for i in items]
    assert [r["prompt_id"] for r in rows] == [f"geneval-{i:03d}" for i in range(len(items))]
    assert [r["prompt_index"] for r in rows] == list(range(len(items)))


def test_balanced_list_keeps_the_lookup_sets_ids_and_its_documented_balance():
    rows = load_prompt_set("balanced", path_sets())
    lines = BALANCED.read_text().splitlines()
    assert [r["prompt"] for r in rows] == lines and len(set(lines)) == len(lines) == 20
    geneval = {r["prompt_id"]: r for r in load_prompt_set("geneval", path_sets())}
    assert all(geneval[r["prompt_id"]] == r for r in rows)
    counts = Counter(r["category"] for r in rows)
    assert counts == {"single_object": 4, "two_object": 4, "counting": 3, "colors": 3, "position": 3,
                      "color_attr": 3}  # the paper's 20/20/15/15/15/15, divided by 5
    assert {r["category"] for r in rows[:6]} == set(CATEGORIES)
    # shuffled: not in the lookup set's order
    assert [r["prompt_index"] for r in rows] != sorted(r["prompt_index"] for r in rows)


def test_url_and_path_sources_give_the_same_table(tmp_path):
    for name in ("geneval", "balanced"):
        assert load_prompt_set(name, url_sets(), cache_dir=tmp_path) == load_prompt_set(name, path_sets())


def test_subset_and_cache(tmp_path):
    sets = {**url_sets(), "first12": {"source": "subset", "from": "geneval", "first": 12}}
    rows = load_prompt_set("first12", sets, cache_dir=tmp_path)
    assert [r["prompt_index"] for r in rows] == list(range(12))
    assert (tmp_path / sha(GENEVAL)).read_bytes() == GENEVAL.read_bytes()


def test_cached_source_is_read_without_the_url(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(GENEVAL, cache / sha(GENEVAL))
    sets = {"g": {"source": "geneval", "url": (tmp_path / "gone.jsonl").as_uri(), "sha256": sha(GENEVAL)}}
    assert len(load_prompt_set("g", sets, cache_dir=cache)) == 36


def test_wrong_sha256_names_the_field(tmp_path):
    bad = url_sets()
    bad["geneval"]["sha256"] = "0" * 64
    with pytest.raises(ValueError, match=r"config.prompt_sets.geneval.sha256"):
        load_prompt_set("geneval", bad, cache_dir=tmp_path)
    bad = path_sets()
    bad["geneval"]["sha256"] = "0" * 64
    with pytest.raises(ValueError, match=r"config.prompt_sets.geneval.sha256: .* has sha256"):
        load_prompt_set("geneval", bad)


def test_unreachable_url_names_the_set_the_url_and_the_fetch_command(tmp_path):
    url = (tmp_path / "nope.jsonl").as_uri()
    cfg = {"g": {"source": "geneval", "url": url, "sha256": "0" * 64}}
    with pytest.raises(RuntimeError, match=r"config.prompt_sets.g.url: cannot read " + url) as err:
        load_prompt_set("g", cfg, cache_dir=tmp_path / "cache")
    assert "sinkrepro fetch-prompts CONFIG" in str(err.value) and "not cached in" in str(err.value)


@pytest.mark.parametrize("entry, message", [
    ({"url": "file:///x", "sha256": "0" * 64, "path": "x.jsonl"}, r"geneval: give exactly one of url .* not both"),
    ({}, r"geneval: give exactly one of url .* not neither"),
    ({"url": "file:///x"}, r"geneval.sha256: required with url"),
    ({"path": "config/prompts/missing.jsonl"}, r"geneval.path: .*missing.jsonl is not a file"),
])
def test_file_sources_need_exactly_one_of_url_or_path(entry, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_prompt_set("geneval", {"geneval": {"source": "geneval", **entry}})


def test_path_is_relative_to_the_root(tmp_path):
    (tmp_path / "p").mkdir()
    shutil.copy(BALANCED, tmp_path / "p" / "b.txt")
    shutil.copy(GENEVAL, tmp_path / "p" / "g.jsonl")
    sets = {"g": {"source": "geneval", "path": "p/g.jsonl"}, "b": {"source": "list", "from": "g", "path": "p/b.txt"}}
    assert len(load_prompt_set("b", sets, root=tmp_path)) == 20


def test_list_line_missing_from_the_lookup_set_is_refused(tmp_path):
    (tmp_path / "b.txt").write_text("a photo of a teapot\na photo of a unicorn\n")
    sets = {**path_sets(), "b": {"source": "list", "from": "geneval", "path": str(tmp_path / "b.txt")}}
    with pytest.raises(ValueError, match=r"config.prompt_sets.b: line 2 'a photo of a unicorn'"):
        load_prompt_set("b", sets)


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
