"""Seeds for random controls: a hash of everything that identifies one draw.

The authors' seed i*1e4 + c*1e5 + b*1e3 collides ((i=10, c=1) == (i=0, c=2)) and used the CUDA RNG.
Here a seed is SHA-256 of the JSON-encoded identity, so distinct identities give distinct streams
(up to 2^-63 per pair), and draws run on a CPU generator, so CPU and GPU runs pick the same keys.
"""
from __future__ import annotations

import hashlib
import json

import torch


def control_seed(seed: int, prompt_id: str, step: int, layer: int, half: str, purpose: str = "keys") -> int:
    """A 63-bit seed for one (seed, prompt, step, layer, batch half) draw; `purpose` separates streams."""
    identity = json.dumps([purpose, int(seed), str(prompt_id), int(step), int(layer), str(half)])
    return int.from_bytes(hashlib.sha256(identity.encode()).digest()[:8], "big") >> 1


def cpu_generator(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)
