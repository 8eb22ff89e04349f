"""A wrapper around a stock diffusers attention processor that swaps only its SDPA call.

The stock processor still does everything else (projections, QK-norms, joint concatenation, mask
preparation, output projections), so the wrapper follows diffusers exactly. Its one
`F.scaled_dot_product_attention(q, k, v, ...)` call is intercepted with a TorchFunctionMode and
answered by the runtime (measure and/or edit), or passed through untouched.
"""
from __future__ import annotations

from typing import Callable

import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


SDPA_PARAMS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


def sdpa_arguments(args, kwargs) -> dict:
    """An SDPA call's arguments by name, whether passed by position (SD3's processor) or by
    keyword (diffusers' attention dispatcher, used by FLUX's processor)."""
    return {**dict(zip(SDPA_PARAMS, args)), **kwargs}


class _SwapSdpa(TorchFunctionMode):
    """Routes F.scaled_dot_product_attention calls to `attention`, everything else through."""

    def __init__(self, attention: Callable):
        super().__init__()
        self.attention = attention
        self.hits = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            self.hits += 1
            return self.attention(func, args, kwargs)
        return func(*args, **kwargs)


class KeyEditProcessor:
    """Calls `stock`; for calls the runtime cares about, answers its attention call itself.

    `runtime.layer_call(layer, attn, hidden_states, encoder_hidden_states, rotary)` returns None
    (pass through untouched) or a function (sdpa, args, kwargs) -> attention output. `rotary` is
    the rotary embedding a FLUX processor receives after the mask (None elsewhere).
    """

    def __init__(self, stock, layer: int, runtime):
        self.stock = stock
        self.layer = layer
        self.runtime = runtime

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        self.runtime.calls += 1
        rotary = args[0] if args else kwargs.get("image_rotary_emb")
        attention = self.runtime.layer_call(self.layer, attn, hidden_states, encoder_hidden_states, rotary)
        if attention is None:
            return self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)
        swap = _SwapSdpa(attention)
        with swap:
            result = self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)
        if swap.hits != 1:
            raise RuntimeError(f"{type(self.stock).__name__} made {swap.hits} attention calls; "
                               "the key edit supports processors with exactly one")
        return result
