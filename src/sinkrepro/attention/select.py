"""Choose the keys an intervention edits: top/bottom incoming mass, random controls, fixed indices."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from sinkrepro.attention.spec import InterventionSpec
from sinkrepro.attention.tokens import IMAGE, KeyLayout


def needs_mass(spec: InterventionSpec) -> bool:
    return spec.select in ("top", "bottom") or (spec.select == "random" and spec.match_types)


def pool_mask(spec: InterventionSpec, layout: KeyLayout, for_random: bool) -> torch.Tensor:
    """[B, Nk] True where a key may be chosen."""
    image = layout.region == IMAGE
    allowed = {"all": torch.ones_like(image), "image": image, "text": ~image}[spec.pool]
    if for_random and spec.exclude_padding:
        allowed = allowed & ~layout.is_pad
    return allowed


def budget(spec: InterventionSpec, n_heads: int, pool_size: int) -> int:
    """Keys per head (per_head) or per batch row (shared: k*H keys, capped by the pool)."""
    if spec.scope == "shared":
        return min(spec.k * n_heads, pool_size)
    if spec.k > pool_size:
        raise ValueError(f"spec.k: {spec.k} exceeds the {pool_size} keys of pool={spec.pool!r} in this layer; "
                         "lower k or widen the pool")
    return spec.k


def ranked_keys(spec: InterventionSpec, mass: torch.Tensor, layout: KeyLayout, largest: bool) -> torch.Tensor:
    """Top (largest) or bottom keys of the incoming mass [B, H, Nk] -> [B, H, n]."""
    B, H, Nk = mass.shape
    allowed = pool_mask(spec, layout, for_random=False).to(mass.device)  # [B, Nk]
    n = budget(spec, H, int(allowed.sum(-1).min()))
    fill = float("-inf") if largest else float("inf")
    if spec.scope == "shared":
        score = mass.mean(dim=1).masked_fill(~allowed, fill)            # [B, Nk] head-mean mass
        return score.topk(n, dim=-1, largest=largest).indices[:, None, :].expand(B, H, n)
    score = mass.masked_fill(~allowed[:, None, :], fill)                 # [B, H, Nk]
    return score.topk(n, dim=-1, largest=largest).indices


def index_keys(spec: InterventionSpec, layout: KeyLayout, batch: int, n_heads: int, n_keys: int) -> torch.Tensor:
    """Fixed positions counted from the start of `index_base` -> [B, H, n]."""
    if spec.index_base == "text" and layout.n_image < n_keys and layout.bos_index < 0:
        raise ValueError("spec.index_base: 'text' counts from the CLIP BOS, but these keys hold no CLIP tokens "
                         "(FLUX attends to T5 tokens only; T5 has no BOS); use index_base='image'")
    base = layout.image_start if spec.index_base == "image" else layout.text_start
    limit = layout.n_image if spec.index_base == "image" else n_keys - layout.n_image
    keys = []
    for i in spec.indices:
        if not 0 <= i < limit:
            raise ValueError(f"spec.indices: {i} is outside the {limit} {spec.index_base} keys of this layer")
        if base + i not in keys:
            keys.append(base + i)
    return torch.tensor(keys, dtype=torch.long, device=layout.region.device).expand(batch, n_heads, -1)


def _draw(candidates: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    return candidates[torch.randperm(candidates.numel(), generator=gen)[:n]]


def _matched_draw(candidates: torch.Tensor, regions: torch.Tensor, sink_regions: torch.Tensor,
                  gen: torch.Generator) -> torch.Tensor:
    """Draw one key per sink from the sinks' own region; a region short of candidates is topped up
    from the remaining candidates so the budget stays equal."""
    picked = []
    for r in torch.unique(sink_regions).tolist():
        need = int((sink_regions == r).sum())
        picked.append(_draw(candidates[regions == r], need, gen))
    picked = torch.cat(picked) if picked else candidates[:0]
    short = sink_regions.numel() - picked.numel()
    if short > 0:
        rest = candidates[~torch.isin(candidates, picked)]
        picked = torch.cat([picked, _draw(rest, short, gen)])
    return picked


def random_keys(spec: InterventionSpec, layout: KeyLayout, n_heads: int, generators: Sequence[torch.Generator],
                sinks: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Equal-budget random keys [B, H, n], drawn on CPU from one generator per batch row.

    With match_types, `sinks` [B, H, n] are the keys the top selection would pick; the draw then
    keeps their region counts (image / CLIP / T5) and never picks a sink itself.
    """
    allowed = pool_mask(spec, layout, for_random=True).cpu()  # [B, Nk]
    region = layout.region.cpu()
    B = allowed.shape[0]
    if len(generators) != B:
        raise ValueError(f"random selection: {len(generators)} generators for a batch of {B}")
    n = budget(spec, n_heads, int(allowed.sum(-1).min()))
    out = torch.empty(B, n_heads, n, dtype=torch.long)
    for b in range(B):
        # shared scope: one draw per batch row, used by every head
        targets = [slice(None)] if spec.scope == "shared" else [slice(h, h + 1) for h in range(n_heads)]
        for h, target in enumerate(targets):
            cand = allowed[b].nonzero().squeeze(-1)
            if sinks is None:
                out[b, target] = _draw(cand, n, generators[b])
                continue
            s = sinks[b, h].cpu()
            cand = cand[~torch.isin(cand, s)]
            out[b, target] = _matched_draw(cand, region[b, cand], region[b, s], generators[b])
    return out.to(layout.region.device)


def only_mask(spec: InterventionSpec, layout: KeyLayout, keys: torch.Tensor) -> Optional[torch.Tensor]:
    """[B, H, n] True for the chosen keys that `spec.only` keeps (E3's text_only / image_only), or None."""
    if spec.only == "all":
        return None
    B, H, n = keys.shape
    image = torch.gather(layout.region[:, None, :].expand(B, H, -1), -1, keys) == IMAGE
    return image if spec.only == "image" else ~image


def select_keys(spec: InterventionSpec, layout: KeyLayout, n_heads: int, n_keys: int,
                mass: Optional[torch.Tensor] = None,
                generators: Optional[Sequence[torch.Generator]] = None) -> torch.Tensor:
    """The keys [B, H, n] that `spec` edits in one attention call."""
    batch = layout.region.shape[0]
    if spec.select in ("top", "bottom"):
        return ranked_keys(spec, mass, layout, largest=spec.select == "top")
    if spec.select == "index":
        return index_keys(spec, layout, batch, n_heads, n_keys)
    if spec.select == "random":
        sinks = ranked_keys(spec, mass, layout, largest=True) if spec.match_types else None
        return random_keys(spec, layout, n_heads, generators, sinks)
    return torch.empty(batch, n_heads, 0, dtype=torch.long, device=layout.region.device)
