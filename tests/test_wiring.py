"""The rules' inputs and params (sinkrepro.wiring), from plain wildcard values on a small grid."""
import pytest
import yaml

from sinkrepro.config import validate_config
from sinkrepro.wiring import Wiring

PROMPTS = {"p": [{"prompt_id": f"p{i}", "prompt_index": i, "prompt": f"prompt {i}", "category": "colors"}
                 for i in range(6)]}
CONFIG = """
shard_size: 4
device: cpu
models:
  m: {family: sd3, source: standin, heads: 4, measure_layers: [0, 1],
      sampler: {steps: 4, guidance: 7.0, height: 64, width: 64}}
prompt_sets:
  p: {source: local, path: unused.tsv}
scorers: {clip_t: {tolerance: 0.1}, lpips: {}, fid: {}}
experiments:
  sweep:
    model: m
    prompts: p
    seeds: [0]
    layers: [1]
    k: [1, 2]
    conditions: {sink: {preset: dsp}, random: {preset: dsp_random}}
    contrasts: [[sink, random]]
    metrics: [clip_t, lpips, fid]
    measure: true
    tables: [table1]
"""


def wiring(**changes) -> Wiring:
    config = validate_config({**yaml.safe_load(CONFIG), **changes})
    return Wiring(config, PROMPTS)


def test_shard_job_holds_the_shard_prompts_and_hashes_what_decides_its_images():
    w = wiring()
    first, second = w.shard_job("m", "base", "0", "shard000"), w.shard_job("m", "base", "0", "shard001")
    assert [p["prompt_id"] for p in first["prompts"]] == ["p0", "p1", "p2", "p3"]
    assert [p["prompt_id"] for p in second["prompts"]] == ["p4", "p5"]
    assert first["measure_layers"] == [0, 1] and first["seed"] == 0 and first["spec"]["select"] == "none"
    assert first["config_hash"] != second["config_hash"]
    assert wiring(batch_size=2).shard_job("m", "base", "0", "shard000")["config_hash"] != first["config_hash"]


def test_score_jobs_read_the_baseline_partner_only_for_edited_shards():
    w = wiring()
    base, edited = ("m", "base", "0", "shard000"), ("m", "dsp-k1-L1", "0", "shard000")
    assert "references" not in w.score_inputs(*base)
    assert w.score_inputs(*edited)["references"] == ["results/images/m/base/seed0/shard000"]
    assert sorted(w.score_inputs(*edited)["scorers"]) == ["resources/scorers/clip_t", "resources/scorers/fid",
                                                         "resources/scorers/lpips"]
    params = w.score_params(*edited)
    assert sorted(params) == ["clip_t", "feat_l2", "lpips"]
    assert params["clip_t"] == {"prompt_ids": ["p0", "p1", "p2", "p3"], "tolerance": 0.1}
    assert sorted(w.score_params(*base)) == ["clip_t"]  # pairwise metrics compare a shard to the baseline


def test_fid_jobs_are_the_planned_ones():
    w = wiring()
    wildcards = dict(prompts="p", model="m", condition="dsp-k2-L1", seed="0", reference="base", reference_seed="0")
    assert w.fid_params(**wildcards) == {"prompt_ids": [f"p{i}" for i in range(6)]}
    assert w.fid_inputs(**wildcards)["references"] == ["results/images/m/base/seed0/shard000",
                                                       "results/images/m/base/seed0/shard001"]
    with pytest.raises(ValueError, match="no experiment asks for this FID set"):
        w.fid_params(**{**wildcards, "seed": "7"})


def test_figure_and_panel_labels():
    w = wiring()
    assert w.figure_labels("sweep", "curves") == {"figure": "curves", "k": "-", "preset": "base",
                                                  "metric": "sink statistics"}
    assert w.figure_labels("sweep", "forest") == {"figure": "forest", "k": "all", "preset": "dsp, dsp_random",
                                                  "metric": "all"}
    assert w.panel_labels("sweep", "2")["preset"] == "dsp-k2-L1"
    assert w.contrast("sweep", "2")["control"] == "dsp_random-k2-L1"


def test_dynamics_tables_by_output_stem():
    w = wiring()
    assert w.dynamics_table("table1") == "table1"
    assert [e["name"] for e in w.dynamics_table_experiments("table1")] == ["sweep"]
    assert w.dynamics_table_inputs("table1") == ["results/dynamics/m/base/seed0/shard000.parquet",
                                                 "results/dynamics/m/base/seed0/shard001.parquet"]


def test_resources_ask_for_a_gpu_unless_the_device_is_the_cpu():
    assert wiring().resources("generate") == {"gpu": 0, "mem_mb": 4000, "runtime": 120}
    assert wiring(device="cuda").resources("score") == {"gpu": 1, "mem_mb": 4000}
