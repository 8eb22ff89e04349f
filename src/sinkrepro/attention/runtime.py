"""attach(): patch a pipeline's attention modules for one generation call, then restore them.

Step and phase: a forward pre-hook on the denoiser reads the timestep each forward receives and
finds its index in `scheduler.timesteps`, so a step is gated on its own timestep (the authors'
callback-driven gate lagged one step). progress = step / (N - 1) (0 when N == 1); an edit runs when
spec.steps[0] <= progress <= spec.steps[1]. A window starting above 0 never touches step 0.

Padding: pre-hooks on the CLIP (text_encoder) and T5 (text_encoder_3) encoders read the token ids
the pipeline actually encodes; a key past the first EOS of its prompt is padding. The pipeline
encodes the prompts, then the negative prompts, and the CFG batch is [negative, prompt]. When a
pipeline passes precomputed embeddings (or SDXL's zeroed negatives), those rows' padding is
unknown and no key of them counts as padding. Without a T5 encoder every T5 key is padding.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import torch

from sinkrepro.attention.intervene import intervene
from sinkrepro.attention.kernels import as_bias, incoming_mass
from sinkrepro.attention.processor import KeyEditProcessor
from sinkrepro.attention.seeding import control_seed, cpu_generator
from sinkrepro.attention.spec import InterventionSpec
from sinkrepro.attention.tokens import KeyLayout, build_layout

STEP_TOL = 1e-9


def attention_modules(denoiser, modules: Sequence[str], blocks: str = "") -> list[tuple[str, torch.nn.Module]]:
    """The patchable attention modules, in model order: names ending in one of `modules` and
    starting with `blocks`. Their positions are the `layers` of an InterventionSpec."""
    found = []
    for name, module in denoiser.named_modules():
        if hasattr(module, "set_processor") and name.rsplit(".", 1)[-1] in modules and name.startswith(blocks):
            found.append((name, module))
    if not found:
        raise ValueError(f"spec.modules={tuple(modules)} blocks={blocks!r}: no attention module of "
                         f"{type(denoiser).__name__} matches; SD3 uses ('attn',), SDXL ('attn1',) or ('attn2',)")
    return found


def in_window(progress: float, window: tuple[float, float]) -> bool:
    return window[0] - STEP_TOL <= progress <= window[1] + STEP_TOL


def _token_lengths(ids: torch.Tensor, eos_id: Optional[int]) -> list[int]:
    """Real tokens per row (through the first EOS) of a [P, T] id tensor."""
    lengths = []
    for row in ids.tolist():
        lengths.append(row.index(eos_id) + 1 if eos_id is not None and eos_id in row else len(row))
    return lengths


@dataclass
class _Step:
    index: int = -1
    progress: float = 0.0
    timestep: float = float("nan")
    latent_hw: tuple[int, int] = (0, 0)


@dataclass
class _Record:
    step: int
    progress: float
    timestep: float
    layer: int
    top_mass: torch.Tensor        # [B, H, k] largest masses, descending
    top_index: torch.Tensor       # [B, H, k]
    entropy: torch.Tensor         # [B, H]
    top5: torch.Tensor            # [B, H]
    bos_mass: Optional[torch.Tensor]
    edited_mass: Optional[torch.Tensor]
    max_activation: torch.Tensor  # [B, H]
    sink_types: list[str]         # per (b, h), row-major
    sink_pos: list[tuple[int, int]]


@dataclass
class AttachHandle:
    """What attach() hands back: call counter and the measurement rows."""
    prompt_ids: list[str]
    seed: int
    calls: int = 0
    edits: int = 0
    records: list = field(default_factory=list)

    def halves(self, batch: int) -> list[tuple[str, str]]:
        """(prompt_id, batch half) of each batch row: CFG doubles the batch as [uncond..., cond...]."""
        n = len(self.prompt_ids)
        if batch == n:
            return [(p, "cond") for p in self.prompt_ids]
        if batch == 2 * n:
            return [(p, "uncond") for p in self.prompt_ids] + [(p, "cond") for p in self.prompt_ids]
        raise ValueError(f"prompt_ids: {n} ids for an attention batch of {batch}; pass one id per prompt "
                         "in batch order (num_images_per_prompt must be 1)")

    def dynamics_rows(self) -> list[dict]:
        """One dict per (prompt_id, step, layer, batch_half, head); columns per contracts.md "Dynamics"."""
        rows = []
        for r in self.records:
            B, H, _ = r.top_mass.shape
            top_mass, top_index = r.top_mass.tolist(), r.top_index.tolist()
            entropy, top5, act = r.entropy.tolist(), r.top5.tolist(), r.max_activation.tolist()
            bos = r.bos_mass.tolist() if r.bos_mass is not None else None
            edited = r.edited_mass.tolist() if r.edited_mass is not None else None
            for b, (prompt_id, half) in enumerate(self.halves(B)):
                for h in range(H):
                    row, col = r.sink_pos[b * H + h]
                    rows.append(dict(
                        prompt_id=prompt_id, seed=self.seed, step=r.step, progress=r.progress,
                        timestep=r.timestep, layer=r.layer, batch_half=half, head=h,
                        top1_mass=top_mass[b][h][0], topk_mass=float(sum(top_mass[b][h])),
                        entropy=entropy[b][h], top5_conc=top5[b][h], sink_index=top_index[b][h][0],
                        sink_type=r.sink_types[b * H + h], sink_row=row, sink_col=col,
                        bos_mass=bos[b][h] if bos is not None else float("nan"),
                        edited_mass=edited[b][h] if edited is not None else float("nan"),
                        max_activation=act[b][h]))
        return rows


class _Runtime:
    """State shared by the patched processors during one pipeline call."""

    def __init__(self, pipe, spec: InterventionSpec, handle: AttachHandle, num_inference_steps: int,
                 edit_layers: set[int], measure_layers: set[int], measure_k: int):
        self.pipe = pipe
        self.spec = spec
        self.handle = handle
        self.n_steps = num_inference_steps
        self.edit_layers = edit_layers
        self.measure_layers = measure_layers
        self.measure_k = measure_k
        self.step = _Step()
        self.clip_ids: list[torch.Tensor] = []
        self.t5_ids: list[torch.Tensor] = []

    @property
    def calls(self) -> int:
        return self.handle.calls

    @calls.setter
    def calls(self, value: int) -> None:
        self.handle.calls = value

    # -- hooks -------------------------------------------------------------------------------
    def on_denoiser(self, module, args, kwargs) -> None:
        t = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        sample = kwargs.get("hidden_states", kwargs.get("sample", args[0] if args else None))
        timesteps = self.pipe.scheduler.timesteps.float().cpu()
        if len(timesteps) != self.n_steps:
            raise ValueError(f"num_inference_steps: attach got {self.n_steps} but the scheduler runs "
                             f"{len(timesteps)} timesteps; pass the pipeline call's step count")
        t0 = float(torch.as_tensor(t).flatten()[0])
        gap = (timesteps - t0).abs()
        index = int(gap.argmin())  # first nearest; the tolerance covers a half-precision timestep
        if gap[index] > 2e-3 * max(1.0, abs(t0)):
            raise RuntimeError(f"timestep {t0} is not in scheduler.timesteps; the step of this forward "
                               "is unknown, so phase gating cannot run")
        progress = index / (self.n_steps - 1) if self.n_steps > 1 else 0.0
        hw = tuple(sample.shape[-2:]) if sample is not None and sample.dim() == 4 else (0, 0)
        self.step = _Step(index, progress, float(timesteps[index]), hw)

    def on_clip(self, module, args, kwargs) -> None:
        self.clip_ids.append(kwargs.get("input_ids", args[0] if args else None).detach().cpu())

    def on_t5(self, module, args, kwargs) -> None:
        self.t5_ids.append(kwargs.get("input_ids", args[0] if args else None).detach().cpu())

    # -- per call ----------------------------------------------------------------------------
    def _lengths(self, captured: list[torch.Tensor], eos_id, batch: int) -> Optional[list[int]]:
        n = len(self.handle.prompt_ids)
        if not captured or captured[0].shape[0] != n:
            return None
        lengths = [_token_lengths(ids, eos_id) for ids in captured[:2]]
        if batch == n:
            return lengths[0]
        return lengths[1] + lengths[0] if len(lengths) == 2 else None

    def _layout(self, batch: int, n_image: int, n_text: int, n_rows: int, device) -> KeyLayout:
        """Keys [image (n_image), CLIP, T5]; the first n_rows queries are image tokens."""
        tok = getattr(self.pipe, "tokenizer", None)
        clip_len = min(getattr(tok, "model_max_length", 77), n_text)
        clip_lengths = self._lengths(self.clip_ids, getattr(tok, "eos_token_id", None), batch) if clip_len else None
        t5_lengths = None
        if n_text > clip_len:
            if getattr(self.pipe, "text_encoder_3", None) is None:
                t5_lengths = [0] * batch  # the pipeline feeds zeros: every T5 key is padding
            else:
                eos = getattr(getattr(self.pipe, "tokenizer_3", None), "eos_token_id", None)
                t5_lengths = self._lengths(self.t5_ids, eos, batch)
        h, w = self.step.latent_hw  # the patch grid is the latent grid downsampled by sqrt(h*w/n_rows)
        f = math.sqrt(h * w / n_rows) if h * w else 0.0
        grid_width = round(w / f) if f and round(w / f) * round(h / f) == n_rows else 0
        return build_layout(batch, n_image, n_text, n_rows, clip_len=clip_len, clip_lengths=clip_lengths,
                            t5_lengths=t5_lengths, grid_width=grid_width, device=device)

    def layer_call(self, layer: int, attn, hidden_states, encoder_hidden_states):
        edit_now = layer in self.edit_layers and in_window(self.step.progress, self.spec.steps)
        measure_now = layer in self.measure_layers
        if not (edit_now or measure_now):
            return None
        shape = hidden_states.shape
        n_query = shape[1] if hidden_states.dim() == 3 else shape[-1] * shape[-2]
        joint = encoder_hidden_states is not None and getattr(attn, "add_k_proj", None) is not None
        cross = encoder_hidden_states is not None and not joint
        n_text = encoder_hidden_states.shape[1] if encoder_hidden_states is not None else 0
        # joint: keys [image, text]; cross: keys all text; self: keys all image. Queries: image first.
        layout = self._layout(shape[0], 0 if cross else n_query, n_text, n_query, hidden_states.device)
        step = self.step

        def attention(sdpa, args, kwargs):
            q, k, v = args[:3]
            extra = dict(zip(("attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa"), args[3:]), **kwargs)
            if extra.get("dropout_p", 0.0) or extra.get("is_causal", False) or extra.get("enable_gqa", False):
                raise NotImplementedError("key edits need dropout_p=0, is_causal=False, enable_gqa=False")
            return self._attend(layer, step, layout, sdpa, args, kwargs, q, k, v,
                                as_bias(extra.get("attn_mask")), extra.get("scale"), edit_now, measure_now)

        return attention

    def _generators(self, layer: int, step: _Step, batch: int, purpose: str) -> list[torch.Generator]:
        return [cpu_generator(control_seed(self.handle.seed, p, step.index, layer, half, purpose))
                for p, half in self.handle.halves(batch)]

    def _attend(self, layer, step, layout, sdpa, args, kwargs, q, k, v, bias, scale, edit_now, measure_now):
        B, H, _, d = q.shape
        if edit_now:
            spec = self.spec
            gens = self._generators(layer, step, B, "keys") if spec.select == "random" else None
            noise = None
            if spec.path in ("value", "both") and spec.value_mode == "noise":
                noise_gens = self._generators(layer, step, B, "noise")

                def noise(n: int) -> torch.Tensor:  # [B, H, n, d], drawn on CPU per batch row
                    return torch.stack([torch.randn(H, n, d, generator=g) * spec.noise_std
                                        for g in noise_gens]).to(q.device)
            result = intervene(q, k, v, spec, layout, bias=bias, scale=scale, generators=gens, noise=noise,
                               row_stats=measure_now)
            out, stats, left = result.out, result.stats, result.edited_mass
            self.handle.edits += 1
        else:
            out = sdpa(*args, **kwargs)  # the stock call, untouched: measuring keeps outputs bit-identical
            stats, left = incoming_mass(q, k, bias, scale, layout.n_image_rows, row_stats=True), None
        if measure_now:
            self._record(layer, step, layout, stats, left, out[:, :, :layout.n_image_rows])
        return out

    def _record(self, layer, step, layout, stats, left, out_rows) -> None:
        kk = min(self.measure_k, stats.mass.shape[-1])
        top = stats.mass.topk(kk, dim=-1)
        B, H = top.indices.shape[:2]
        sink = top.indices[..., 0]
        batch_rows = torch.arange(B, device=sink.device)[:, None].expand(B, H).reshape(-1)
        types = layout.type_names(sink.reshape(-1), batch_rows)
        bos = stats.mass[..., layout.bos_index].cpu() if layout.bos_index >= 0 else None
        self.handle.records.append(_Record(
            step=step.index, progress=step.progress, timestep=step.timestep, layer=layer,
            top_mass=top.values.cpu(), top_index=top.indices.cpu(), entropy=stats.entropy.cpu(),
            top5=stats.top5.cpu(), bos_mass=bos, edited_mass=left.cpu() if left is not None else None,
            max_activation=out_rows.abs().amax(dim=(-1, -2)).float().cpu(),
            sink_types=types, sink_pos=[layout.position(j) for j in sink.reshape(-1).tolist()]))


def _denoiser(pipe):
    for name in ("transformer", "unet"):
        if getattr(pipe, name, None) is not None:
            return getattr(pipe, name)
    raise ValueError("pipe: no transformer or unet to patch")


@contextmanager
def attach(pipe, spec: InterventionSpec, *, prompt_ids: list[str], seed: int, num_inference_steps: int,
           measure_layers: tuple[int, ...] = (), measure_k: int = 5,
           modules: Optional[tuple[str, ...]] = None, blocks: Optional[str] = None) -> Iterator[AttachHandle]:
    """Patch `pipe` for one call: edit per `spec`, record sink statistics on `measure_layers`.

    Layers index attention_modules(denoiser, modules, blocks), which default to spec.modules and
    spec.blocks (a no-op spec measuring SDXL passes e.g. modules=("attn2",), blocks="mid_block").
    Noop specs never touch unmeasured layers, so their output is the stock output bit for bit.
    The original processors come back on exit, also on error.
    """
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps: {num_inference_steps} must be >= 1")
    handle = AttachHandle(prompt_ids=[str(p) for p in prompt_ids], seed=int(seed))
    denoiser = _denoiser(pipe)
    edit_layers = set() if spec.is_noop else set(spec.layers)
    measure = set(measure_layers)
    if not (edit_layers or measure):
        yield handle
        return
    found = attention_modules(denoiser, modules or spec.modules, spec.blocks if blocks is None else blocks)
    for name, layers in (("spec.layers", edit_layers), ("measure_layers", measure)):
        bad = sorted(i for i in layers if not 0 <= i < len(found))
        if bad:
            raise ValueError(f"{name}: {bad} outside the {len(found)} patchable modules "
                             f"({found[0][0]} ... {found[-1][0]}); use 0..{len(found) - 1}")
    runtime = _Runtime(pipe, spec, handle, num_inference_steps, edit_layers, measure, measure_k)
    originals = {}
    hooks = [denoiser.register_forward_pre_hook(runtime.on_denoiser, with_kwargs=True)]
    for attr, hook in (("text_encoder", runtime.on_clip), ("text_encoder_3", runtime.on_t5)):
        encoder = getattr(pipe, attr, None)
        if encoder is not None:
            hooks.append(encoder.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        for i in sorted(edit_layers | measure):
            module = found[i][1]
            originals[i] = module.processor
            module.set_processor(KeyEditProcessor(module.processor, i, runtime))
        yield handle
    finally:
        for i, proc in originals.items():
            found[i][1].set_processor(proc)
        for h in hooks:
            h.remove()
