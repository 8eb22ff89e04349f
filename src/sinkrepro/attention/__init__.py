"""Attention-sink detection and key edits for diffusers pipelines.

`spec` is torch-free (the workflow imports it to name conditions); everything else loads torch
lazily through `attach`.
"""
from sinkrepro.attention.spec import PRESETS, InterventionSpec, preset_name, spec_from_config

__all__ = ["attach", "InterventionSpec", "PRESETS", "preset_name", "spec_from_config"]


def __getattr__(name):
    if name in ("attach", "AttachHandle", "attention_modules"):
        from sinkrepro.attention import runtime

        return getattr(runtime, name)
    raise AttributeError(name)
