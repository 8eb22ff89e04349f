"""The job grid: canonical conditions, shared work, shard membership, seeds, config errors."""
import pytest

from sinkrepro import layout
from sinkrepro.attention.spec import InterventionSpec, spec_from_config
from sinkrepro.config import validate_config
from sinkrepro.grid import condition_id, generator_seed
from sinkrepro.plan import jobs_per_rule, plan_summary
from sinkrepro.vocab import PAIRWISE_METRICS, per_image_metrics
from helpers import base_config, grid


def test_identical_work_is_one_condition():
    g = grid(base_config())
    assert set(c for _, c in g.conditions) == {"base", "dsp-k1-L1", "dsp-k5-L1", "dsp_random-k1-L1",
                                                "dsp_random-k5-L1"}
    # b's baseline and k=1 sink are a's: no new shards
    assert g.experiments["b"]["baseline"] == g.experiments["a"]["baseline"] == "base"
    assert len(g.shards) == 5 * 2 * 3  # 5 conditions x 2 seeds x ceil(10/4) shards


def test_equivalent_specs_share_a_name():
    eta_one = spec_from_config({"preset": "sa", "eta": 1.0, "layers": [12]}, "x")
    assert condition_id(eta_one, {}) == "base"
    lerp0 = spec_from_config({"preset": "sa_value", "value_mode": "lerp", "alpha": 0.0, "layers": [12]}, "x")
    mean = spec_from_config({"preset": "sa_value", "value_mode": "mean", "layers": [12]}, "x")
    assert condition_id(lerp0, {}) == condition_id(mean, {}) != "base"
    both0 = spec_from_config({"preset": "sa", "path": "both", "eta": 0.0, "layers": [12]}, "x")
    assert condition_id(both0, {}) == condition_id(spec_from_config({"preset": "sa", "layers": [12]}, "x"), {})
    assert condition_id(InterventionSpec(), {"guidance": 6.5}) == "base~cfg6.5"


def test_adding_a_k_or_seed_only_adds_shards():
    before = {layout.image_dir(s): s.prompt_ids for s in grid(base_config()).shards}
    more = base_config()
    more["experiments"]["a"]["k"] = [1, 5, 10]
    more["experiments"]["a"]["seeds"] = [0, 1, 2]
    after = {layout.image_dir(s): s.prompt_ids for s in grid(more).shards}
    assert all(after[p] == ids for p, ids in before.items())
    new = set(after) - set(before)
    assert new and all("k10" in p or "seed2" in p for p in new)


def test_contrasts_pair_each_k():
    exp = grid(base_config()).experiments["a"]
    assert [(c["condition"], c["control"]) for c in exp["contrasts"]] == [
        ("dsp-k1-L1", "dsp_random-k1-L1"), ("dsp-k5-L1", "dsp_random-k5-L1")]
    assert len(exp["fid_pairs"]) == 4 * 2


def test_k_budget_error_names_the_field():
    cfg = base_config()
    cfg["experiments"]["a"]["conditions"]["sink"] = {"preset": "cf"}
    cfg["experiments"]["a"]["k"] = [1, 50]
    with pytest.raises(ValueError, match=r"config.experiments.a.conditions.sink: k=50 asks for 200 keys"):
        grid(cfg)


def test_unknown_fields_and_presets_are_named():
    cfg = base_config()
    cfg["experiments"]["a"]["conditions"]["sink"] = {"preset": "dsp", "lyaers": [2]}
    with pytest.raises(ValueError, match=r"config.experiments.a.conditions.sink.lyaers"):
        grid(cfg)
    cfg["experiments"]["a"]["conditions"]["sink"] = {"preset": "nope"}
    with pytest.raises(ValueError, match=r"conditions.sink.preset: unknown preset 'nope'"):
        grid(cfg)
    cfg = base_config()
    cfg["experiments"]["a"]["model"] = "missing"
    with pytest.raises(ValueError, match=r"config.experiments.a.model: 'missing'"):
        validate_config(cfg)


def test_schema_fills_defaults_and_rejects_bad_values():
    cfg = validate_config(base_config())
    assert cfg["seed_scheme"] == "hash" and cfg["experiments"]["a"]["measure"] is False
    bad = base_config()
    bad["models"]["m"]["sampler"]["height"] = 65
    with pytest.raises(Exception, match="65"):
        validate_config(bad)


def test_generator_seed_is_a_pure_function_of_seed_and_prompt():
    assert generator_seed(42, "geneval-007", 7, "offset") == 49  # the authors' base + i
    a = generator_seed(0, "geneval-007", 7, "hash")
    assert a == generator_seed(0, "geneval-007", 99, "hash")  # independent of the set's order
    assert len({generator_seed(s, f"p{i}", i, "hash") for s in range(5) for i in range(500)}) == 2500


def test_plan_counts_match_the_grid():
    cfg = base_config()
    summary = plan_summary(grid(cfg), {"m": 2.0})
    assert summary["generations"] == 5 * 2 * 10
    assert summary["steps"]["m"] == 5 * 2 * 10 * 4
    assert summary["gpu_hours"]["m"] == pytest.approx(400 * 2.0 / 3600)
    # one score job per shard (5 conditions x 2 seeds x 3 shards), every metric in it
    assert summary["score_jobs"] == summary["generate_jobs"] == 30
    jobs = jobs_per_rule(grid(cfg))
    assert jobs["fid"] == 4 * 2 and jobs["stats"] == 2 and jobs["scorer"] == 3 and jobs["model"] == 1


def needed_scores(g) -> set:
    """Naive oracle: every (model, condition, seed, prompt, metric) some experiment reads."""
    out = set()
    for exp in g.experiments.values():
        for cond in [exp["baseline"]] + [c["condition"] for c in exp["conditions"]]:
            for metric in per_image_metrics(exp["metrics"]):
                if metric in PAIRWISE_METRICS and cond == exp["baseline"]:
                    continue
                out |= {(exp["model"], cond, seed, p, metric) for seed in exp["seeds"] for p in exp["prompt_ids"]}
    return out


def test_score_jobs_score_each_metric_on_the_prompts_that_need_it():
    cfg = base_config()
    cfg["experiments"]["b"]["metrics"] = ["clip_t", "imagereward"]  # b: 6 of a's 10 prompts, seed 0
    g = grid(cfg)
    work = layout.score_work(g)
    planned = {key[:3] + (p, metric) for key, metrics in work.items() for metric, ids in metrics.items() for p in ids}
    assert planned == needed_scores(g)
    assert work[("m", "base", 0, 1)] == {"clip_t": ["p4", "p5", "p6", "p7"], "imagereward": ["p4", "p5"]}
    assert work[("m", "base", 0, 2)] == {"clip_t": ["p8", "p9"]}
    assert "imagereward" not in work[("m", "base", 1, 1)]
    # each prompt id sits in the shard its score job reads
    for key, metrics in work.items():
        assert {p for ids in metrics.values() for p in ids} <= set(g.shard(*key).prompt_ids)


def test_gpu_claims_are_exclusive(tmp_path):
    from sinkrepro.models import load

    first = load.claim_gpu(2, tmp_path)
    # a second process's claim: open the lock files afresh (flock is per open file description)
    import fcntl

    taken = []
    for i in range(2):
        handle = open(tmp_path / f"gpu{i}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            taken.append(i)
        finally:
            handle.close()
    assert taken == [first]
    second = load.claim_gpu(2, tmp_path)
    assert second != first
    with pytest.raises(RuntimeError, match="all 2 GPUs are claimed"):
        load.claim_gpu(2, tmp_path)
    for handle in load._HELD_LOCKS:
        handle.close()
    load._HELD_LOCKS.clear()


def test_pairwise_references_cover_each_shard():
    cfg = base_config()
    cfg["experiments"]["b"]["metrics"] = ["clip_t", "lpips"]
    cfg["experiments"]["b"]["conditions"] = {"other": {"preset": "rds"}}
    g = grid(cfg)
    for shard in g.shards:
        if shard.condition == "base":
            continue
        paths = layout.reference_dirs(g, shard, shard.prompt_ids)
        covered = {p for path in paths for s in g.shards if layout.image_dir(s) == path for p in s.prompt_ids}
        assert all("/base/" in path for path in paths) and set(shard.prompt_ids) <= covered
