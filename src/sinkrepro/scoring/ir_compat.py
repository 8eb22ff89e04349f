"""Make the image-reward 1.5 package importable and runnable on transformers 5, offline.

Its BLIP text encoder (ImageReward/models/BLIP/med.py) was written for transformers 4.x:
  - it imports apply_chunking_to_forward, prune_linear_layer and find_pruneable_heads_and_indices
    from transformers.modeling_utils (moved to pytorch_utils; the last one removed);
  - it calls PreTrainedModel.invert_attention_mask and get_head_mask (removed in 5.x);
  - its BertModel calls init_weights() where 5.x needs post_init().
`install()` restores exactly those names before the package is imported. Scoring never prunes heads
and never passes a head mask, so those two stand-ins only accept the no-op case.
The package's __init__ also imports its fine-tuning module (ReFL), which imports diffusers and
accelerate (about 2 s of CPU in every score job) and which scoring never uses: an empty module
stands in for it.
"""
from __future__ import annotations

import sys
import types

import torch

_DONE = False


def _find_pruneable_heads_and_indices(*args, **kwargs):
    raise NotImplementedError("head pruning is not supported by sinkrepro's ImageReward compatibility layer")


def _invert_attention_mask(self, encoder_attention_mask: torch.Tensor) -> torch.Tensor:
    """1 = attend, 0 = masked  ->  additive mask: 0 where attended, dtype-min where masked."""
    if encoder_attention_mask.dim() == 3:
        extended = encoder_attention_mask[:, None, :, :]  # [B, 1, Nq, Nk]
    elif encoder_attention_mask.dim() == 2:
        extended = encoder_attention_mask[:, None, None, :]  # [B, 1, 1, Nk]
    else:
        raise ValueError(f"encoder_attention_mask must be 2-D or 3-D, got shape {tuple(encoder_attention_mask.shape)}")
    extended = extended.to(dtype=self.dtype)
    return (1.0 - extended) * torch.finfo(self.dtype).min


def _get_head_mask(self, head_mask, num_hidden_layers: int, is_attention_chunked: bool = False):
    if head_mask is not None:
        raise NotImplementedError("head masks are not supported by sinkrepro's ImageReward compatibility layer")
    return [None] * num_hidden_layers


def install() -> None:
    """Patch transformers, then import ImageReward and fix its BertModel initialisation. Idempotent."""
    global _DONE
    if _DONE:
        return
    import transformers.modeling_utils as mu
    import transformers.pytorch_utils as pu
    from transformers import PreTrainedModel

    for name, value in (("apply_chunking_to_forward", pu.apply_chunking_to_forward),
                        ("prune_linear_layer", pu.prune_linear_layer),
                        ("find_pruneable_heads_and_indices", _find_pruneable_heads_and_indices)):
        if not hasattr(mu, name):
            setattr(mu, name, value)
    if not hasattr(PreTrainedModel, "invert_attention_mask"):
        PreTrainedModel.invert_attention_mask = _invert_attention_mask
    if not hasattr(PreTrainedModel, "get_head_mask"):
        PreTrainedModel.get_head_mask = _get_head_mask

    sys.modules.setdefault("ImageReward.ReFL", types.ModuleType("ImageReward.ReFL"))
    import ImageReward.models.BLIP.med as med

    def init_weights(self):
        # 5.x: post_init() sets all_tied_weights_keys, then calls init_weights() again to initialise
        if hasattr(self, "all_tied_weights_keys"):
            PreTrainedModel.init_weights(self)
        else:
            self.post_init()

    med.BertModel.init_weights = init_weights
    _DONE = True
