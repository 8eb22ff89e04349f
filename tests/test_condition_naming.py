"""A condition is named by its resolved sampler: an override equal to the model's default is none."""
import copy

from sinkrepro import layout
from sinkrepro.attention.spec import InterventionSpec
from sinkrepro.grid import condition_id, resolved_overrides
from helpers import base_config, grid


def with_sampler(config, name, sampler):
    config = copy.deepcopy(config)
    config["experiments"][name]["sampler"] = sampler
    return config


def test_explicit_default_guidance_is_the_default_baseline():
    plain = grid(base_config())
    explicit = grid(with_sampler(base_config(), "b", {"guidance": 7.0, "steps": 4, "scheduler": "default"}))
    assert explicit.experiments["b"]["baseline"] == plain.experiments["b"]["baseline"] == "base"
    assert set(explicit.conditions) == set(plain.conditions)
    assert [layout.image_dir(s) for s in explicit.shards] == [layout.image_dir(s) for s in plain.shards]
    assert explicit.conditions[("m", "base")].sampler_overrides == {}


def test_a_real_override_keeps_its_own_condition_and_drops_only_the_default_keys():
    g = grid(with_sampler(base_config(), "b", {"guidance": 7.5, "steps": 4}))
    assert g.experiments["b"]["baseline"] == "base~cfg7.5"
    assert g.conditions[("m", "base~cfg7.5")].sampler == {"steps": 4, "guidance": 7.5, "height": 64, "width": 64}
    assert g.conditions[("m", "base~cfg7.5")].sampler_overrides == {"guidance": 7.5}
    assert {c["condition"] for c in g.experiments["b"]["conditions"]} == {"dsp-k1-L1~cfg7.5"}


def test_a_condition_that_returns_to_the_default_is_the_baseline_of_the_model():
    config = with_sampler(base_config(), "b", {"guidance": 7.5})
    config["experiments"]["b"]["conditions"]["back"] = {"preset": "base", "sampler": {"guidance": 7.0}}
    g = grid(config)
    assert {c["label"]: c["condition"] for c in g.experiments["b"]["conditions"]}["back"] == "base"


def test_resolved_overrides_drop_only_values_equal_to_the_model_default():
    model = {"steps": 20, "guidance": 7.0, "height": 1024, "width": 1024}
    overrides = {"steps": 20, "guidance": 7.5, "scheduler": "default", "height": 512}
    assert resolved_overrides(overrides, model) == {"guidance": 7.5, "height": 512}
    assert resolved_overrides({"scheduler": "dpmpp"}, model) == {"scheduler": "dpmpp"}
    assert condition_id(InterventionSpec(), resolved_overrides({"guidance": 7}, model)) == "base"
