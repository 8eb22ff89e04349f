"""Bad configs are rejected at load, before any job and without weights: each message names the
config field and the fix, the command exits non-zero and writes nothing. Same checks for
`sinkrepro plan`, `snakemake -n` and `snakemake`."""
import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from sinkrepro import cli
from sinkrepro.attention.runtime import attention_modules
from sinkrepro.architecture import SDXL_BASE, TINY_SDXL, attention_names, patchable, sd3_names

ROOT = Path(__file__).resolve().parents[1]
TINY = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def set_in(config, path, value):
    *head, last = path
    for key in head:
        config = config[key]
    config[last] = value


# (name, mutation of the tiny config or of its prompt file, text the error must contain)
CASES = {
    "layer_out_of_range": (
        lambda c, p: set_in(c, ["experiments", "sink_vs_random", "layers"], [99]),
        "config.experiments.sink_vs_random.layers: layer 99 does not exist: tiny-sd3 has 4 attention modules "
        "matching modules=['attn']; use layers 0..3"),
    "condition_layer_in_mid_block": (
        lambda c, p: set_in(c, ["experiments", "sdxl_cross", "conditions", "sink", "layers"], [2]),
        "config.experiments.sdxl_cross.conditions.sink.layers: layer 2 does not exist: tiny-sdxl has 2 attention "
        "modules matching modules=['attn2'] blocks='mid_block'; use layers 0..1"),
    "measure_layer_out_of_range": (
        lambda c, p: set_in(c, ["models", "tiny-sd3", "measure_layers"], [0, 4]),
        "config.models.tiny-sd3.measure_layers: layer 4 does not exist"),
    "window_past_one": (
        lambda c, p: set_in(c, ["experiments", "sink_vs_random", "conditions", "sink", "steps"], [0.5, 1.5]),
        "config.experiments.sink_vs_random.conditions.sink.steps: [0.5, 1.5] is not a window of denoising "
        "progress; give [start, end] with 0 <= start <= end <= 1"),
    "window_reversed": (
        lambda c, p: set_in(c, ["experiments", "sink_vs_random", "conditions", "random", "steps"], [0.8, 0.2]),
        "config.experiments.sink_vs_random.conditions.random.steps: [0.8, 0.2]"),
    "k_over_keys": (
        lambda c, p: set_in(c, ["experiments", "sink_vs_random", "k"], [1, 200]),
        "config.experiments.sink_vs_random.conditions.sink: k=200 asks for 200 keys but tiny-sd3 has 125 keys"),
    "unknown_scorer_option": (
        lambda c, p: set_in(c, ["scorers", "clip_t"], {"source": "standin", "batchsize": 8}),
        "config.scorers.clip_t: unknown key 'batchsize'; allowed keys are"),
    "unknown_scorer_source": (
        lambda c, p: set_in(c, ["scorers", "lpips"], {"source": "web"}),
        "config.scorers.lpips.source: 'web' is not allowed; use one of"),
    "empty_prompt_file": (
        lambda c, p: p.write_text("prompt_id\tprompt\tcategory\n"),
        "config.prompt_sets.tiny: has no prompts"),
    "missing_prompt_file": (
        lambda c, p: p.unlink(),
        "config.prompt_sets.tiny.path: config/prompts/tiny.tsv does not exist"),
    "duplicate_prompt_id": (
        lambda c, p: p.write_text(p.read_text() + "tiny-03\ta photo of a fox\tsingle_object\n"),
        "config.prompt_sets.tiny.path: config/prompts/tiny.tsv line 14: duplicate prompt_id 'tiny-03' (first at line 5)"),
}


def write_case(root: Path, name: str) -> Path:
    """A working directory holding the tiny config (mutated) and its prompt file."""
    config = copy.deepcopy(TINY)
    prompts = root / "config" / "prompts" / "tiny.tsv"
    prompts.parent.mkdir(parents=True)
    shutil.copy(ROOT / "config" / "prompts" / "tiny.tsv", prompts)
    CASES[name][0](config, prompts)
    path = root / "config" / "bad.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def files_under(root: Path) -> set:
    return {p.relative_to(root) for p in root.rglob("*") if ".snakemake" not in p.parts}


def snakemake(root: Path, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow" / "Snakefile"), "-d", str(root),
           "--cores", "1", *args]
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("name", sorted(CASES))
def test_plan_rejects_bad_config(name, tmp_path, monkeypatch, capsys):
    path = write_case(tmp_path, name)
    before = files_under(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["plan", str(path.relative_to(tmp_path))]) == 2
    assert CASES[name][1] in capsys.readouterr().err
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("name,args", [("layer_out_of_range", ["-n"]), ("empty_prompt_file", ["-n"]),
                                       ("window_past_one", []), ("unknown_scorer_option", [])])
def test_snakemake_rejects_bad_config_before_any_job(name, args, tmp_path):
    path = write_case(tmp_path, name)
    before = files_under(tmp_path)
    run = snakemake(tmp_path, "--configfile", str(path), *args)
    assert run.returncode != 0
    assert CASES[name][1] in run.stdout + run.stderr
    assert files_under(tmp_path) == before, "a rejected config must write nothing"


def test_yaml_syntax_error_names_file_and_line(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "config" / "config.yaml"
    bad.parent.mkdir()
    bad.write_text("seed_scheme: hash\nmodels:\n  tiny: {family: sd3\nexperiments: {}\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["plan", "config/config.yaml"]) == 2
    err = capsys.readouterr().err
    assert "config/config.yaml:4:" in err and "YAML syntax error" in err
    # the workflow's default config goes through the same reader
    run = snakemake(tmp_path, "-n")
    assert run.returncode != 0 and "config/config.yaml:4:" in run.stdout + run.stderr


def test_paper_config_passes_the_checks():
    from sinkrepro.config import load_config

    config = load_config(ROOT / "config" / "paper.yaml")
    assert len(patchable(config["models"]["sdxl-base"], ("attn2",), "mid_block")) == 10


# ---- the attention-module lists behind the layer checks, against the real architectures ----

def module_names(model):
    return [name for name, module in model.named_modules() if hasattr(module, "set_processor")]


def test_standin_layouts_match_the_built_standins(tmp_path):
    from diffusers import SD3Transformer2DModel, UNet2DConditionModel

    from sinkrepro.models.tiny import BUILDERS

    for family, cls, sub in (("sd3", SD3Transformer2DModel, "transformer"), ("sdxl", UNet2DConditionModel, "unet")):
        BUILDERS[family](tmp_path / family)
        denoiser = cls.from_pretrained(tmp_path / family / sub)
        assert module_names(denoiser) == attention_names({"family": family, "source": "standin"})
    assert len(attention_modules(denoiser, ("attn2",), "mid_block")) == 2 == len(patchable(
        {"family": "sdxl", "source": "standin"}, ("attn2",), "mid_block"))


def test_hub_layouts_match_the_reference_architectures():
    """SD3-medium and SDXL-base 1.0, instantiated on the meta device from their published configs."""
    from diffusers import SD3Transformer2DModel, UNet2DConditionModel

    with torch.device("meta"):
        sd3 = SD3Transformer2DModel(sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=24,
                                    attention_head_dim=64, num_attention_heads=24, joint_attention_dim=4096,
                                    caption_projection_dim=1536, pooled_projection_dim=2048, pos_embed_max_size=192)
        sdxl = UNet2DConditionModel(
            sample_size=128, block_out_channels=(320, 640, 1280), layers_per_block=2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), use_linear_projection=True,
            cross_attention_dim=2048, addition_embed_type="text_time", addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816)
    assert module_names(sd3) == sd3_names(24) == attention_names({"family": "sd3", "source": "hub"})
    assert module_names(sdxl) == SDXL_BASE == attention_names({"family": "sdxl", "source": "hub"})
    assert attention_names({"family": "sd3", "source": "hub", "n_layers": 38}) == sd3_names(38)
    assert TINY_SDXL != SDXL_BASE
