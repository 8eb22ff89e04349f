"""The one parametric intervention, as plain data, and the named presets.

Pure Python: the workflow imports this to name conditions without importing torch.

Key order is what the model's processor builds (docs/families.md): [image tokens, text tokens] in
SD3/SD3.5, [text tokens, image tokens] in FLUX; the text tokens of SD3 are [77 CLIP, T5], FLUX's
are T5 only. `index` positions are counted from the start of `index_base` ("image" or "text"),
so the CLIP BOS of SD3 is `select=index, index_base=text, indices=(0,)`; FLUX has no BOS key.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Literal, Optional

Select = Literal["none", "top", "bottom", "random", "index"]
Scope = Literal["per_head", "shared"]
Path = Literal["score", "prob_scale", "value", "both"]
Rows = Literal["image", "all"]
Pool = Literal["all", "text", "image"]
ValueMode = Literal["zero", "mean", "noise", "lerp"]


@dataclass(frozen=True)
class InterventionSpec:
    select: Select = "none"          # which keys: top/bottom incoming mass, random, fixed indices
    scope: Scope = "per_head"        # per_head: k keys per head; shared: k*H keys from head-mean mass
    path: Path = "score"             # score: mask keys (mask_bias); prob_scale: scale their probability
    #                                  by eta; value: edit their values; both: prob_scale, then value
    rows: Rows = "image"             # which query rows see the edit
    pool: Pool = "all"               # which keys may be chosen
    only: Pool = "all"               # after choosing, edit only the chosen keys of this type (E3)
    k: int = 1
    layers: tuple[int, ...] = ()     # indices into the model's ordered list of patchable modules
    modules: tuple[str, ...] = ("attn",)  # SD3, FLUX: attn; SD3.5: attn / attn2 (image-only); SDXL: attn1 / attn2
    blocks: str = ""                 # only modules whose name starts with this (e.g. "mid_block")
    steps: tuple[float, float] = (0.0, 1.0)  # window of denoising progress step/(N-1), inclusive
    index_base: Literal["image", "text"] = "text"
    indices: tuple[int, ...] = ()
    eta: float = 0.0                 # prob_scale factor for the selected keys
    value_mode: ValueMode = "zero"
    alpha: float = 0.0               # lerp: alpha*V + (1-alpha)*mean(V)
    noise_std: float = 0.1
    mask_bias: Optional[float] = None  # None: hard mask (-inf); a float reproduces additive biases
    match_types: bool = False        # random draws keep the sinks' token-type counts
    exclude_padding: bool = False    # random draws never pick padding tokens

    @property
    def is_noop(self) -> bool:
        """True when the spec cannot change any output in exact arithmetic."""
        if self.select == "none" or not self.layers:
            return True
        if self.select == "index" and not self.indices:
            return True
        if self.path == "prob_scale" and self.eta == 1.0:
            return True
        if self.path == "value" and self.value_mode == "lerp" and self.alpha == 1.0:
            return True
        return self.steps[0] > self.steps[1]

    def canonical(self) -> "InterventionSpec":
        """Collapse specs that do identical work onto one representative."""
        if self.is_noop:
            return InterventionSpec()
        spec = self
        if spec.path == "value" and spec.value_mode == "lerp" and spec.alpha == 0.0:
            spec = replace(spec, value_mode="mean")
        if spec.path in ("score", "prob_scale"):  # value-only fields are unused
            spec = replace(spec, value_mode="zero", alpha=0.0, noise_std=0.1)
        if spec.path in ("score", "value"):
            spec = replace(spec, eta=0.0)
        if spec.path != "score":  # only the score path reads mask_bias
            spec = replace(spec, mask_bias=None)
        if spec.only == spec.pool:  # every chosen key already has that type
            spec = replace(spec, only="all")
        if spec.path == "both" and spec.eta == 0.0:
            # eta=0 gives the edited keys zero weight, so the value edit is a no-op (SA's "both")
            spec = replace(spec, path="prob_scale", value_mode="zero", alpha=0.0, noise_std=0.1)
        if spec.select != "index":
            spec = replace(spec, indices=(), index_base="text")
        else:
            spec = replace(spec, k=len(spec.indices), match_types=False, exclude_padding=False)
        if spec.select != "random":
            spec = replace(spec, match_types=False, exclude_padding=False)
        return replace(spec, layers=tuple(sorted(set(spec.layers))))

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("layers", "modules", "steps", "indices"):
            d[key] = list(d[key])
        return d


SPEC_FIELDS = {f.name for f in fields(InterventionSpec)}

# Each preset reproduces one mechanism of the authors' code (docs/paper-deviations.md), or is a
# corrected variant beside it. Experiments add k and layers.
PRESETS: dict[str, dict] = {
    "base": {},
    # RDS (Tables 2/3/14): per-head top-k of image-query mass, -1e4 bias on image AND text rows.
    "rds": dict(select="top", scope="per_head", path="score", rows="all", mask_bias=-1e4),
    # DSP (Tables 15/16): the same detection, image rows only.
    "dsp": dict(select="top", scope="per_head", path="score", rows="image", mask_bias=-1e4),
    # DSP's equal-budget random control, corrected: per head, seeded by hash, token types matched.
    "dsp_random": dict(select="random", scope="per_head", path="score", rows="image",
                       mask_bias=-1e4, match_types=True, exclude_padding=True),
    # CF (Tables 6/7/19/20): k*H keys from the head-mean mass, shared by all heads, -65000 on all rows.
    "cf": dict(select="top", scope="shared", path="score", rows="all", mask_bias=-65000.0),
    "cf_bottom": dict(select="bottom", scope="shared", path="score", rows="all", mask_bias=-65000.0),
    # CF's random control as the authors drew it: any key, text and padding included.
    "cf_random": dict(select="random", scope="shared", path="score", rows="all", mask_bias=-65000.0),
    # Corrected CF control: same budget, same token-type counts as the sinks, no padding.
    "cf_random_matched": dict(select="random", scope="shared", path="score", rows="all",
                              mask_bias=-65000.0, match_types=True, exclude_padding=True),
    # SA (Tables 4/10-13): fixed CLIP BOS, probability scaling on every row and head.
    "sa": dict(select="index", index_base="text", indices=(0,), path="prob_scale", rows="all", eta=0.0),
    "sa_value": dict(select="index", index_base="text", indices=(0,), path="value", rows="all"),
    # The custom path with nothing to edit (k=0): Table 17's no-op check, run for real.
    "empty": dict(select="top", scope="per_head", path="score", rows="all", k=0),
    # The key the authors' RDS/CH1 logged as "index 0": image patch (0, 0), not the BOS.
    "image_patch0": dict(select="index", index_base="image", indices=(0,), path="score", rows="all"),
}


def spec_from_config(entry: dict, where: str) -> InterventionSpec:
    """Build a spec from a config entry `{preset: name, <field>: value, ...}`.

    `where` names the config path for error messages.
    """
    entry = dict(entry)
    preset = entry.pop("preset", "base")
    if preset not in PRESETS:
        raise ValueError(f"{where}.preset: unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    values = dict(PRESETS[preset])
    for key, value in entry.items():
        if key not in SPEC_FIELDS:
            raise ValueError(f"{where}.{key}: not an intervention field; valid fields are {sorted(SPEC_FIELDS)}")
        values[key] = tuple(value) if isinstance(value, list) else value
    return InterventionSpec(**values)


def preset_name(spec: InterventionSpec) -> tuple[str, dict]:
    """The preset closest to `spec` (fewest differing fields) and the differing fields."""
    spec = spec.canonical()
    best = None
    for name, values in PRESETS.items():
        ref = replace(InterventionSpec(**values), k=spec.k, layers=spec.layers).canonical()
        diff = {f: getattr(spec, f) for f in SPEC_FIELDS if getattr(spec, f) != getattr(ref, f)}
        if best is None or len(diff) < len(best[1]):
            best = (name, diff)
    return best
