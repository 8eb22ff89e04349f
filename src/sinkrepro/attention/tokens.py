"""Which kind of token each key is: image patch, CLIP, T5 or padding, and where a patch sits.

Two key orders occur. SD3/SD3.5's joint attention concatenates [image, text]; FLUX.1's joint and
single-stream attention concatenate [text, image]. The runtime finds the order of each call (it is
never assumed per family) and describes it with `text_first`. In joint and single-stream calls the
queries are the same sequence as the keys, so the image query rows sit where the image keys sit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from sinkrepro.vocab import PAD, REGIONS

IMAGE, CLIP, T5, TEXT = range(len(REGIONS))  # region codes: indices into REGIONS


@dataclass
class KeyLayout:
    """Key order and token types of one attention call.

    region [B, Nk] (codes into REGIONS) and is_pad [B, Nk] describe every key. The `n_image` image
    keys start at key `image_start`; the text keys are the other, contiguous, keys. The
    `n_image_rows` image query rows start at row `row_start`. `grid_width` is the patch grid's
    width (row-major order), 0 when unknown.
    """
    region: torch.Tensor
    is_pad: torch.Tensor
    n_image: int
    n_image_rows: int
    grid_width: int = 0
    bos_index: int = -1  # key index of the CLIP BOS, -1 when the keys hold no CLIP tokens
    image_start: int = 0
    row_start: int = 0

    @property
    def text_start(self) -> int:
        """Key index of the first text key."""
        return 0 if self.image_start > 0 else self.n_image

    @property
    def image_rows(self) -> slice:
        """The image query rows."""
        return slice(self.row_start, self.row_start + self.n_image_rows)

    def type_names(self, keys: torch.Tensor, batch_rows: torch.Tensor) -> list[str]:
        """Token type ("image" | "clip" | "t5" | "text" | "pad") of keys[i] in batch row batch_rows[i]."""
        region = self.region[batch_rows, keys].tolist()
        pad = self.is_pad[batch_rows, keys].tolist()
        return [PAD if p else REGIONS[r] for r, p in zip(region, pad)]

    def position(self, key: int) -> tuple[int, int]:
        """(row, col) of an image key in the patch grid; (-1, -1) for text or an unknown grid."""
        patch = key - self.image_start
        if not 0 <= patch < self.n_image or self.grid_width <= 0:
            return -1, -1
        return patch // self.grid_width, patch % self.grid_width


def text_regions(n_text: int, clip_len: int) -> list[int]:
    """Regions of a text-key block: `clip_len` CLIP keys then T5 keys (all CLIP when n_text <= clip_len)."""
    return [CLIP] * min(n_text, clip_len) + [T5] * max(0, n_text - clip_len)


def build_layout(batch: int, n_image: int, n_text: int, n_image_rows: int, *, clip_len: int = 77,
                 clip_lengths: Optional[Sequence[int]] = None, t5_lengths: Optional[Sequence[int]] = None,
                 grid_width: int = 0, text_first: bool = False, device=None) -> KeyLayout:
    """Layout of keys [image (n_image), text] or, with `text_first`, [text, image]; the text block
    is `clip_len` CLIP keys, then T5 keys.

    `clip_lengths` / `t5_lengths` give each batch row's real token count (BOS/EOS included);
    positions past it are padding. None: padding unknown, no key counts as padding. With
    `text_first` and image keys, the image query rows follow the text rows, as the keys do.
    """
    text = text_regions(n_text, clip_len)
    regions = text + [IMAGE] * n_image if text_first else [IMAGE] * n_image + text
    region = torch.tensor(regions, dtype=torch.long).expand(batch, -1).clone()
    is_pad = torch.zeros(batch, n_image + n_text, dtype=torch.bool)
    text_start = 0 if text_first else n_image
    n_clip = min(n_text, clip_len)
    for lengths, start, count in ((clip_lengths, text_start, n_clip), (t5_lengths, text_start + n_clip, n_text - n_clip)):
        if lengths is None or count <= 0:
            continue
        if len(lengths) != batch:
            raise ValueError(f"token lengths: got {len(lengths)} for a batch of {batch}")
        pos = torch.arange(count)
        is_pad[:, start:start + count] = pos[None, :] >= torch.tensor(list(lengths))[:, None]
    bos = text_start if n_clip > 0 else -1
    image_start = n_text if text_first and n_image else 0
    return KeyLayout(region.to(device), is_pad.to(device), n_image, n_image_rows, grid_width, bos,
                     image_start=image_start, row_start=image_start)
