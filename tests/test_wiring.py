"""The rules' inputs and params (sinkrepro.wiring), from plain wildcard values on a small grid."""
import pytest

from helpers import GRID_PROMPTS, base_config
from sinkrepro.config import validate_config
from sinkrepro.wiring import Wiring


def wiring(**changes) -> Wiring:
    """The grid of tests/helpers.py's base_config (10 prompts in shards of 4), experiment `a` measured
    and listing Table 1, on the CPU."""
    config = base_config()
    config["models"]["m"]["measure_layers"] = [0, 1]
    config["scorers"]["clip_t"] = {"tolerance": 0.1}
    config["experiments"]["a"] |= {"measure": True, "tables": ["table1"]}
    return Wiring(validate_config({**config, "device": "cpu", **changes}), GRID_PROMPTS)


def test_shard_job_holds_the_shard_prompts_and_hashes_what_decides_its_images():
    w = wiring()
    first, last = w.shard_job("m", "base", "0", "shard000"), w.shard_job("m", "base", "0", "shard002")
    assert [p["prompt_id"] for p in first["prompts"]] == ["p0", "p1", "p2", "p3"]
    assert [p["prompt_id"] for p in last["prompts"]] == ["p8", "p9"]
    assert first["measure_layers"] == [0, 1] and first["seed"] == 0 and first["spec"]["select"] == "none"
    assert first["config_hash"] != last["config_hash"]
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
    wildcards = dict(prompts="p", model="m", condition="dsp-k5-L1", seed="0", reference="base", reference_seed="0")
    assert w.fid_params(**wildcards) == {"prompt_ids": [f"p{i}" for i in range(10)]}
    assert w.fid_inputs(**wildcards)["references"] == [f"results/images/m/base/seed0/shard00{i}" for i in range(3)]
    with pytest.raises(ValueError, match="no experiment asks for this FID set"):
        w.fid_params(**{**wildcards, "seed": "7"})


def test_figure_and_panel_labels():
    w = wiring()
    assert w.figure_labels("a", "curves") == {"figure": "curves", "k": "-", "preset": "base",
                                                  "metric": "sink statistics"}
    assert w.figure_labels("a", "forest") == {"figure": "forest", "k": "all", "preset": "dsp, dsp_random",
                                                  "metric": "all"}
    assert w.panel_labels("a", "5")["preset"] == "dsp-k5-L1"
    assert w.contrast("a", "5")["control"] == "dsp_random-k5-L1"


def test_dynamics_tables_by_output_stem():
    w = wiring()
    assert w.dynamics_table("table1") == "table1"
    assert [e["name"] for e in w.dynamics_table_experiments("table1")] == ["a"]
    assert w.dynamics_table_inputs("table1") == [f"results/dynamics/m/base/seed{s}/shard00{i}.parquet"
                                                 for s in (0, 1) for i in range(3)]


def test_resources_ask_for_a_gpu_unless_the_device_is_the_cpu():
    assert wiring().resources("generate") == {"gpu": 0, "mem_mb": 4000, "runtime": 120}
    assert wiring(device="cuda").resources("score") == {"gpu": 1, "mem_mb": 4000}
