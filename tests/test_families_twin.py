"""The twin of config/families.yaml (SD3.5-medium, FLUX.1-schnell): its grid merges exactly the
conditions the families grid merges, and its layers map within each block kind (docs/twin.md)."""
import re

import pytest
import yaml

from sinkrepro import layout
from sinkrepro.architecture import attention_names, patchable
from sinkrepro.config import load_prompt_tables, validate_config
from sinkrepro.grid import build_grid
from sinkrepro.paper.claims import CLAIMS
from sinkrepro.twin import MODEL_PREFIX, make_twin
from helpers import snakemake
from twins import REPO, check_complete_run, condition_map, offline_and_twin, run_twin


def families_config() -> dict:
    return yaml.safe_load((REPO / "config" / "families.yaml").read_text())


@pytest.fixture(scope="module")
def grids(tmp_path_factory):
    """The families grid (its prompt sources replaced by synthetic files of the same sizes) and its twin's."""
    offline, twin = offline_and_twin(families_config(), tmp_path_factory.mktemp("sources"))
    return build_grid(offline, load_prompt_tables(offline)), build_grid(twin, load_prompt_tables(twin, REPO))


def test_families_twin_merges_exactly_the_conditions_the_families_grid_merges(grids):
    real, twin = grids
    mapping = condition_map(real, twin)
    assert set(mapping) == set(real.conditions) and sorted(mapping.values()) == sorted(twin.conditions)
    assert len(set(mapping.values())) == len(mapping)
    assert {m for m, _ in real.conditions} == {"sd35-medium", "flux-schnell"}
    for (model, cid), (twin_model, twin_cid) in mapping.items():
        assert twin_model == MODEL_PREFIX + model
        a, b = real.conditions[(model, cid)], twin.conditions[(twin_model, twin_cid)]
        assert a.seeds == b.seeds and a.measure == b.measure
        assert {mapping[(model, r)][1] for r in a.references} == b.references
        assert {**a.spec.to_dict(), "layers": None} == {**b.spec.to_dict(), "layers": None}
    for name, exp in real.experiments.items():
        assert layout.figure_names(exp) == layout.figure_names(twin.experiments[name])
        assert len(layout.fid_jobs(exp)) == len(layout.fid_jobs(twin.experiments[name]))


def _kind(name: str) -> str:
    """A module's block kind: its name without block indices (FLUX: joint or single-stream)."""
    return re.sub(r"\.\d+", "", name)


def oracle_layer(real_names: list[str], standin_names: list[str], layer: int) -> int:
    """The rule from the architectures' module lists: the j-th of its kind's D real modules becomes
    the floor(j * d / D)-th of the kind's d stand-in modules."""
    kind = _kind(real_names[layer])
    real_kind = [n for n in real_names if _kind(n) == kind]
    small_kind = [n for n in standin_names if _kind(n) == kind]
    j = real_kind.index(real_names[layer])
    return standin_names.index(small_kind[j * len(small_kind) // len(real_kind)])


@pytest.mark.parametrize("model_name, blocks", [("flux-schnell", ""), ("flux-schnell", "transformer_blocks"),
                                                ("flux-schnell", "single_transformer_blocks"), ("sd35-medium", "")])
def test_families_twin_layers_map_within_each_block_kind(model_name, blocks):
    config = families_config()
    model = config["models"][model_name]
    real_names = patchable(model, ("attn",), blocks)
    standin_names = patchable({"family": model["family"], "source": "standin"}, ("attn",), blocks)
    conditions = {f"L{l}": {"preset": "rds", "k": 1, "layers": [l]} | ({"blocks": blocks} if blocks else {})
                  for l in range(len(real_names))}
    config["experiments"] = {"every_layer": {"model": model_name, "prompts": "geneval", "seeds": [0],
                                             "conditions": conditions, "metrics": []}}
    twin = make_twin(config)
    got = {label: c["layers"] for label, c in twin["experiments"]["every_layer"]["conditions"].items()}
    assert got == {f"L{l}": [oracle_layer(real_names, standin_names, l)] for l in range(len(real_names))}
    assert {_kind(n) for n in real_names} == {_kind(n) for n in standin_names}
    validate_config(twin)


def test_families_twin_shrinks_flux_without_clip_keys():
    twin = make_twin(families_config())
    flux, sd35 = twin["models"][MODEL_PREFIX + "flux-schnell"], twin["models"][MODEL_PREFIX + "sd35-medium"]
    # FLUX's L28 (single_transformer_blocks.9) lands on a single-stream block of the stand-in
    flux_names = attention_names(flux)
    assert [flux_names[l] for l in twin["experiments"]["flux_cf_k_sweep"]["layers"]] == \
        ["single_transformer_blocks.0.attn"]
    assert twin["experiments"]["flux_a1"]["conditions"]["A1"]["layers"] == twin["experiments"]["flux_cf_k_sweep"]["layers"]
    assert twin["experiments"]["sd35_cf_k_sweep"]["layers"] == [2]  # SD3.5's L12 of 24 -> 2 of 4
    assert flux["measure_layers"] == sd35["measure_layers"] == [0, 1, 2, 3]  # every layer of each stand-in
    for model, clip in ((flux, 0), (sd35, 77)):
        s = model["sampler"]
        image = (s["height"] // 16) * (s["width"] // 16)   # 8x VAE, then 2x2 patches (FLUX: 2x2 packing)
        assert model["n_keys"] == image + clip + s["max_sequence_length"]
        assert model["n_keys"] >= 50 * model["heads"] > model["n_keys"] - 16  # k=50's budget, and no more T5 than it needs


def test_families_twin_refuses_sd35_attn2_layers_it_cannot_map():
    config = families_config()
    config["experiments"]["sd35_a1"]["conditions"]["A1"]["modules"] = ["attn2"]
    with pytest.raises(ValueError, match=r"config.experiments.sd35_a1.conditions.A1.layers: .*modules: \[attn\]"):
        make_twin(config)


# --- the families' core experiments, from nothing to the report, on stand-ins (slow: runs in CI) ---
@pytest.fixture(scope="module")
def families_run(tmp_path_factory):
    return run_twin(REPO / "config" / "families.yaml", tmp_path_factory.mktemp("families-twin"))


@pytest.mark.slow
def test_families_twin_runs_every_experiment_end_to_end(families_run):
    work, log = families_run
    check_complete_run(work, log)
    assert "Nothing to be done" in snakemake(work, "--configfile", str(work / "twin.yaml"), "-n")


@pytest.mark.slow
def test_families_twin_judges_each_claim_per_model_side_by_side(families_run):
    work, _ = families_run
    claims = (work / "paper" / "claims.md").read_text()
    assert claims.startswith("WARNING: made with random-init stand-in models")
    models = [MODEL_PREFIX + "sd35-medium", MODEL_PREFIX + "flux-schnell"]
    summary = claims.split("\n\n## ")[0].splitlines()
    assert f"| claim | {models[0]} | {models[1]} |" in summary or f"| claim | {models[1]} | {models[0]} |" in summary
    rows = [line.split("|")[2:-1] for line in summary if re.match(r"\| \d+\. ", line)]
    assert len(rows) == len(CLAIMS)
    for column in range(2):  # each model has its own verdicts: k=1 non-degradation and the CF k-sweep
        verdicts = [row[column] for row in rows if "not run in this config" not in row[column]]
        assert len(verdicts) >= 3 and all(re.search(r"\*\*(supported|not supported|inconclusive)\*\*", v)
                                          for v in verdicts), verdicts
    report = (work / "paper" / "report.html").read_text(errors="replace")
    assert all(model in report for model in models)
