"""The paper's twin: a paper config run on random-init stand-ins, small enough for CI on a CPU.

`make_twin(paper)` is a pure function from a paper config to its twin config (docs/twin.md). It
keeps every experiment, condition, preset, sampler and scheduler change, seed scheme and seed, k,
measure flag, contrast, metric and table, and every prompt-set relation, so the twin's grid merges
exactly the conditions the paper's grid merges. It shrinks:
- models: stand-ins of the same family (`source: standin`, the hub variant kept, so the stand-in is
  saved in the real model's file layout), float32 on the CPU;
- layers: layer l, the j-th of its block kind's D real layers (FLUX: joint or single-stream),
  becomes the floor(j * d / D)-th of that kind's d stand-in layers;
- steps: the config's distinct step counts, sorted, become 2, 3, 4, ... (order and distinctness
  kept, so each step-window still selects steps);
- image sides: divided by 16 (1024 px -> 64 px);
- T5 tokens: the fewest (a multiple of 16) that still hold every k budget (k x heads keys);
- prompts: GenEval and the list set come from our stand-in files; the distinct first-N slices of
  one set, sorted, become evenly spaced slices of the stand-in set;
- scorers: stand-ins; bootstrap: 200 resamples; one shard per (condition, seed).
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

from sinkrepro.architecture import FLUX1_BLOCKS, SD3_MEDIUM_LAYERS, TINY_FLUX, TINY_SD35

REPO = Path(__file__).resolve().parents[2]
STANDIN_GENEVAL = "config/prompts/standin_geneval.jsonl"
STANDIN_LIST = "config/prompts/standin_balanced.txt"
MODEL_PREFIX = "standin-"

# Layers an edit or a measurement can index, as the sizes of their block kinds in forward order
# (FLUX.1: joint, then single-stream blocks): (hub repo, blocks) -> the real model's; the stand-ins'
# per (family, blocks) (sinkrepro.models.tiny). A layer maps within its own kind (docs/twin.md).
_FLUX_JOINT, _FLUX_SINGLE = FLUX1_BLOCKS
REAL_DEPTHS = {
    ("stabilityai/stable-diffusion-3-medium-diffusers", ""): (SD3_MEDIUM_LAYERS,),  # joint blocks
    ("stabilityai/stable-diffusion-xl-base-1.0", "mid_block"): (10,),  # mid-block transformer layers
    ("stabilityai/stable-diffusion-3.5-medium", ""): (SD3_MEDIUM_LAYERS,),
    ("stabilityai/stable-diffusion-3.5-large", ""): (38,),
    **{(repo, blocks): depth for repo in ("black-forest-labs/FLUX.1-schnell", "black-forest-labs/FLUX.1-dev")
       for blocks, depth in (("", FLUX1_BLOCKS), ("transformer_blocks", (_FLUX_JOINT,)),
                             ("single_transformer_blocks", (_FLUX_SINGLE,)))},
}
STANDIN_DEPTHS = {("sd3", ""): (4,), ("sdxl", "mid_block"): (2,), ("sd35", ""): (TINY_SD35[0],),
                  ("flux", ""): TINY_FLUX, ("flux", "transformer_blocks"): (TINY_FLUX[0],),
                  ("flux", "single_transformer_blocks"): (TINY_FLUX[1],)}
STANDIN_HEADS = {"sd3": 4, "sd35": 4, "flux": 4, "sdxl": 4}
CLIP_KEYS = {"sd3": 77, "sd35": 77, "flux": 0}  # CLIP keys before the T5 keys (FLUX's CLIP is pooled only)
FIRST_STEPS = 2              # the fewest steps the twin runs
SIDE_DIVISOR = 16
BOOTSTRAP_RESAMPLES = 200


def _map_layer(layer: int, real: tuple[int, ...], standin: tuple[int, ...], where: str) -> int:
    first_real = first_standin = 0
    for depth, small in zip(real, standin):
        if layer < first_real + depth:
            return first_standin + (layer - first_real) * small // depth
        first_real, first_standin = first_real + depth, first_standin + small
    raise ValueError(f"{where}: layer {layer} is beyond the model's {first_real} layers")


def _nonblank_lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


class _Twin:
    def __init__(self, paper: dict, root: Path):
        self.paper, self.root = paper, root
        steps = {m["sampler"]["steps"] for m in paper["models"].values()}
        for exp in paper["experiments"].values():
            steps |= {s["steps"] for s in self._samplers(exp) if "steps" in s}
        self.steps = {n: FIRST_STEPS + i for i, n in enumerate(sorted(steps))}

    @staticmethod
    def _samplers(exp: dict) -> list[dict]:
        return [exp.get("sampler", {})] + [c.get("sampler", {}) for c in exp.get("conditions", {}).values()]

    # --- samplers and layers ------------------------------------------------------------------
    def sampler(self, sampler: dict, family: str | None = None, max_k: int = 0) -> dict:
        out = dict(sampler)
        if "steps" in out:
            out["steps"] = self.steps[out["steps"]]
        for side in ("height", "width"):
            if side in out:
                out[side] = max(16, out[side] // SIDE_DIVISOR // 8 * 8)
        if family in CLIP_KEYS and "max_sequence_length" in out:
            image_keys = out["height"] * out["width"] // 256     # 8x VAE, 2x2 patches (FLUX: 2x2 packing)
            need = max_k * STANDIN_HEADS[family] - image_keys - CLIP_KEYS[family]
            out["max_sequence_length"] = min(sampler["max_sequence_length"], max(16, math.ceil(need / 16) * 16))
        return out

    def layers(self, model: dict, layers: list[int], blocks: str, where: str, modules=()) -> list[int]:
        """Layer l, the j-th of its block kind's D real layers, becomes the floor(j * d / D)-th of that
        kind's d stand-in layers (one kind but on FLUX with blocks: ""). `modules`: the module names
        the layers count (the depths above are those of SD3.5's `attn`, not its dual `attn2`)."""
        if model["family"] == "sd35" and set(modules) - {"attn"}:
            raise ValueError(f"{where}: the twin maps SD3.5's joint attentions only (modules: [attn]), not "
                             f"{sorted(set(modules) - {'attn'})}; add their depths to sinkrepro.twin")
        real = REAL_DEPTHS.get((model.get("repo", ""), blocks))
        standin = STANDIN_DEPTHS.get((model["family"], blocks))
        if real is None or standin is None:
            raise ValueError(f"{where}: no known depth of {model.get('repo')!r} (blocks {blocks!r}) or of its "
                             f"stand-in; add it to sinkrepro.twin.REAL_DEPTHS / STANDIN_DEPTHS")
        return sorted({_map_layer(layer, real, standin, where) for layer in layers})

    # --- the config ---------------------------------------------------------------------------
    def model(self, name: str, model: dict, max_k: int) -> dict:
        family = model["family"]
        out = {"family": family, "source": "standin", "seed": 0, "dtype": "float32", "heads": STANDIN_HEADS[family]}
        if model.get("variant"):
            out["variant"] = model["variant"]
        for key in ("measure_modules", "measure_blocks"):
            if key in model:
                out[key] = model[key]
        if model.get("measure_layers"):
            out["measure_layers"] = self.layers(model, model["measure_layers"], model.get("measure_blocks", ""),
                                                f"config.models.{name}.measure_layers", model.get("measure_modules", ()))
        out["sampler"] = self.sampler(model["sampler"], family, max_k)
        s = out["sampler"]
        if "n_keys" in model and "max_sequence_length" in s:
            out["n_keys"] = s["height"] * s["width"] // 256 + CLIP_KEYS[family] + s["max_sequence_length"]
        return out

    def experiment(self, name: str, exp: dict) -> dict:
        out = copy.deepcopy(exp)
        model = self.paper["models"][exp["model"]]
        out["model"] = MODEL_PREFIX + exp["model"]
        if "sampler" in exp:
            out["sampler"] = self.sampler(exp["sampler"])
        conditions = exp.get("conditions", {})
        blocks = {c.get("blocks", "") for c in conditions.values()} or {""}
        modules = {m for c in conditions.values() for m in c.get("modules", ())}
        if "layers" in exp:
            if len(blocks) > 1:
                raise ValueError(f"config.experiments.{name}.layers: its conditions use blocks {sorted(blocks)}; "
                                 "give each condition its own layers")
            out["layers"] = self.layers(model, exp["layers"], blocks.pop(), f"config.experiments.{name}.layers",
                                        modules)
        for label, cond in out.get("conditions", {}).items():
            if "sampler" in cond:
                cond["sampler"] = self.sampler(cond["sampler"])
            if "layers" in cond:
                cond["layers"] = self.layers(model, cond["layers"], cond.get("blocks", ""),
                                             f"config.experiments.{name}.conditions.{label}.layers",
                                             cond.get("modules", ()))
        return out

    def prompt_sets(self) -> tuple[dict, int]:
        """The twin's prompt sets, and the size of its largest."""
        sets = self.paper["prompt_sets"]
        out, sizes = {}, {}

        def resolve(name: str) -> int:
            if name in sizes:
                return sizes[name]
            cfg = sets[name]
            if cfg["source"] == "geneval":
                out[name] = {"source": "geneval", "path": STANDIN_GENEVAL}
                sizes[name] = _nonblank_lines(self.root / STANDIN_GENEVAL)
            elif cfg["source"] == "list":
                out[name] = {"source": "list", "from": cfg["from"], "path": STANDIN_LIST}
                sizes[name] = _nonblank_lines(self.root / STANDIN_LIST)
            elif cfg["source"] == "local":
                out[name] = dict(cfg)
                sizes[name] = _nonblank_lines(self.root / cfg["path"]) - 1  # a header line
            else:
                parent = resolve(cfg["from"])
                firsts = sorted({c["first"] for c in sets.values()
                                 if c["source"] == "subset" and c.get("from") == cfg["from"] and c.get("first")})
                out[name] = dict(cfg)
                if cfg.get("first"):
                    out[name]["first"] = max(1, (firsts.index(cfg["first"]) + 1) * parent // (len(firsts) + 1))
                sizes[name] = out[name].get("first") or parent
            return sizes[name]

        for name in sets:
            resolve(name)
        return out, max(sizes.values())

    def config(self) -> dict:
        paper = self.paper
        max_k = {m: 0 for m in paper["models"]}
        for exp in paper["experiments"].values():
            ks = list(exp.get("k", [])) + [c["k"] for c in exp.get("conditions", {}).values() if "k" in c]
            max_k[exp["model"]] = max([max_k[exp["model"]], *ks])
        prompt_sets, largest = self.prompt_sets()
        return {
            "seed_scheme": paper.get("seed_scheme", "hash"),
            "shard_size": largest,                      # one shard per (condition, seed)
            "batch_size": min(largest, 12),
            "device": "cpu",
            "models": {MODEL_PREFIX + name: self.model(name, m, max_k[name]) for name, m in paper["models"].items()},
            "prompt_sets": prompt_sets,
            "scorers": {name: {"source": "standin", "batch_size": s.get("batch_size", 16)}
                        for name, s in paper.get("scorers", {}).items()},
            "stats": {**paper.get("stats", {}), "bootstrap_resamples": BOOTSTRAP_RESAMPLES},
            "experiments": {name: self.experiment(name, exp) for name, exp in paper["experiments"].items()},
        }


def make_twin(paper: dict, root: Path = REPO) -> dict:
    """The stand-in twin of a paper config (see the module docstring for every rule).

    `root`: the checkout holding the stand-in prompt files (their sizes set the slice sizes)."""
    return _Twin(copy.deepcopy(paper), Path(root)).config()


HEADER = """\
# The stand-in twin of {source}, made by `sinkrepro twin {source}` (docs/twin.md); do not edit.
# Random-init stand-in models and scorers, tiny images, few steps, stand-in prompts: every output
# says it is a stand-in. Same experiments, conditions and sharing as the paper grid.
"""


def write_twin(paper_path: str | Path, out_path: str | Path | None = None, root: Path = REPO) -> str:
    """The twin of the config at `paper_path` as YAML (written atomically to `out_path` when given)."""
    import yaml

    from sinkrepro.config import validate_config
    from sinkrepro.io import write_text

    with open(paper_path) as f:
        paper = yaml.safe_load(f)
    validate_config(copy.deepcopy(paper))
    twin = make_twin(paper, root)
    validate_config(copy.deepcopy(twin))
    text = HEADER.format(source=paper_path) + yaml.safe_dump(twin, sort_keys=False, default_flow_style=None, width=110)
    if out_path is not None:
        write_text(out_path, text)
    return text
