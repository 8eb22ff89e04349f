"""attach(): patch a pipeline's attention modules for one generation call, then restore them.

Step and phase: a forward pre-hook on the denoiser reads the timestep each forward receives and
finds its index in `scheduler.timesteps`, so a step is gated on its own timestep (the authors'
callback-driven gate lagged one step). progress = step / (N - 1) (0 when N == 1); an edit runs when
spec.steps[0] <= progress <= spec.steps[1]. A window starting above 0 never touches step 0.

Padding: pre-hooks on the pipeline's first CLIP and first T5 text encoder (found by model type:
SD3's text_encoder / text_encoder_3, FLUX's text_encoder / text_encoder_2) read the token ids the
pipeline actually encodes; a key past the first EOS of its prompt is padding. The pipeline
encodes the prompts, then the negative prompts, and the CFG batch is [negative, prompt]. When a
pipeline passes precomputed embeddings (or SDXL's zeroed negatives), those rows' padding is
unknown and no key of them counts as padding. Without a T5 encoder every T5 key is padding.

Key layout of each call, derived from what the processor receives (docs/families.md):
- joint (text states given, the module projects them): image keys = the processor's image
  tokens, text keys = its text tokens; their order is read off the values handed to SDPA (a value
  row is a plain projection of its token, so the first text token's projection is found at key 0
  for [text, image] or right after the image keys for [image, text]);
- cross (text states, no text projections of its own; SDXL attn2): every key is text;
- single-stream (no text states, but the denoiser got text and image position ids and the
  sequence is as long as both; FLUX): the text tokens carry position id 0, so the rotary
  embedding the processor applies is the identity on exactly them, which gives their place;
- otherwise self-attention over image tokens only (SDXL attn1, SD3.5's attn2).
The T5 keys are as many as the T5 encoder's input ids; the text keys before them are CLIP keys
(SD3: 77; FLUX: none, its CLIP gives only the pooled vector).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Sequence

import torch

from sinkrepro.attention.intervene import intervene
from sinkrepro.attention.kernels import as_bias, incoming_mass
from sinkrepro.attention.processor import KeyEditProcessor, sdpa_arguments
from sinkrepro.attention.seeding import control_seed, cpu_generator
from sinkrepro.attention.spec import InterventionSpec
from sinkrepro.attention.tokens import KeyLayout, build_layout
from sinkrepro.vocab import MEASURE_K

STEP_TOL = 1e-9
# The FLUX pipeline hands its transformer timestep / 1000 (the transformer multiplies it back).
TIMESTEP_UNITS = {"FluxTransformer2DModel": 1000.0}


def attention_modules(denoiser, modules: Sequence[str], blocks: str = "") -> list[tuple[str, torch.nn.Module]]:
    """The patchable attention modules, in model order: names ending in one of `modules` and
    starting with `blocks`. Their positions are the `layers` of an InterventionSpec."""
    found = []
    for name, module in denoiser.named_modules():
        if hasattr(module, "set_processor") and name.rsplit(".", 1)[-1] in modules and name.startswith(blocks):
            found.append((name, module))
    if not found:
        raise ValueError(f"spec.modules={tuple(modules)} blocks={blocks!r}: no attention module of "
                         f"{type(denoiser).__name__} matches; SD3 and FLUX use ('attn',), SD3.5 ('attn',) or "
                         "('attn2',), SDXL ('attn1',) or ('attn2',)")
    return found


def in_window(progress: float, window: tuple[float, float]) -> bool:
    return window[0] - STEP_TOL <= progress <= window[1] + STEP_TOL


def _token_lengths(ids: torch.Tensor, eos_id: Optional[int]) -> list[int]:
    """Real tokens per row (through the first EOS) of a [P, T] id tensor."""
    lengths = []
    for row in ids.tolist():
        lengths.append(row.index(eos_id) + 1 if eos_id is not None and eos_id in row else len(row))
    return lengths


def text_encoders(pipe) -> dict:
    """{"clip" | "t5": (encoder, tokenizer)}: the pipeline's first encoder of each type."""
    found = {}
    for attr in ("text_encoder", "text_encoder_2", "text_encoder_3"):
        encoder = getattr(pipe, attr, None)
        kind = {"clip_text_model": "clip", "t5": "t5"}.get(getattr(getattr(encoder, "config", None), "model_type", None))
        if kind and kind not in found:
            found[kind] = (encoder, getattr(pipe, attr.replace("text_encoder", "tokenizer"), None))
    return found


def id_grid(img_ids: torch.Tensor) -> int:
    """Grid width of image position ids [N, 3] (0, row, col) in row-major order, else 0."""
    rows, cols = img_ids[:, 1].long(), img_ids[:, 2].long()
    width = int(cols.max()) + 1
    return width if torch.equal(rows * width + cols, torch.arange(len(img_ids))) else 0


def _text_values(attn, text_states: torch.Tensor) -> torch.Tensor:
    """The value projection the module applies to text tokens."""
    if getattr(attn, "fused_projections", False) and getattr(attn, "to_added_qkv", None) is not None:
        return attn.to_added_qkv(text_states).chunk(3, dim=-1)[2]
    return attn.add_v_proj(text_states)


def joint_text_first(attn, text_states: torch.Tensor, v: torch.Tensor, n_image: int) -> bool:
    """True when a joint call's keys are [text, image], False for [image, text]: the first text
    token's own value projection is found among the values handed to SDPA (v [B, H, Nk, d])."""
    B, H, _, d = v.shape
    probe = _text_values(attn, text_states[:, :1]).reshape(B, H, d).to(v.dtype)
    # A one-token projection may round differently from the batched one (bf16: ~1%); another token's
    # value differs by its whole size. So the match must be near and far nearer than the other place.
    gap = {first: float((v[:, :, key] - probe).abs().max()) for first, key in ((True, 0), (False, n_image))}
    first = min(gap, key=gap.get)
    if not (gap[first] <= 0.05 * float(probe.abs().max()) and gap[first] <= 0.1 * gap[not first]):
        raise RuntimeError(f"{type(attn).__name__}: cannot find the text keys among the attention values "
                           "(neither at key 0 nor after the image keys); this processor's key order is unknown")
    return first


def rotary_text_first(rotary, n_text: int, n_image: int) -> bool:
    """True when a single-stream sequence is [text, image]: text tokens have position id 0, so the
    rotary embedding (cos, sin) [S, D] is the identity on exactly their rows."""
    if rotary is None or n_text < 2 or n_image < 2:
        raise RuntimeError("single-stream attention: no rotary embedding (or too few tokens) to place the "
                           "text tokens; the key layout of this call is unknown")
    cos, sin = rotary[0], rotary[1]
    identity = ((cos == 1).all(-1) & (sin == 0).all(-1)).cpu()  # [S]
    first, last = bool(identity[:n_text].all()), bool(identity[n_image:].all())
    if first == last:
        raise RuntimeError("single-stream attention: the rotary embedding does not mark the text tokens "
                           "(nonzero text position ids?); the key layout of this call is unknown")
    return first


@dataclass
class _Step:
    index: int = -1
    progress: float = 0.0
    timestep: float = float("nan")
    latent_hw: tuple[int, int] = (0, 0)
    n_text_ids: int = 0       # text / image position ids the denoiser got (FLUX); 0 = none
    n_image_ids: int = 0
    id_grid_width: int = 0    # patch grid width read off the image position ids


@dataclass(frozen=True)
class _Call:
    """One patched attention call: where it runs, its inputs, and whether to edit and/or measure it."""
    layer: int
    step: _Step
    layout: KeyLayout
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    bias: Optional[torch.Tensor]
    scale: Optional[float]
    edit: bool
    measure: bool


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
        self.encoders = text_encoders(pipe)
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
        t0 = float(torch.as_tensor(t).flatten()[0]) * TIMESTEP_UNITS.get(type(module).__name__, 1.0)
        gap = (timesteps - t0).abs()
        index = int(gap.argmin())  # first nearest; the tolerance covers a half-precision timestep
        if gap[index] > 2e-3 * max(1.0, abs(t0)):
            raise RuntimeError(f"timestep {t0} is not in scheduler.timesteps; the step of this forward "
                               "is unknown, so phase gating cannot run")
        progress = index / (self.n_steps - 1) if self.n_steps > 1 else 0.0
        hw = tuple(sample.shape[-2:]) if sample is not None and sample.dim() == 4 else (0, 0)
        txt_ids, img_ids = kwargs.get("txt_ids"), kwargs.get("img_ids")
        ids = {}
        if txt_ids is not None and img_ids is not None:
            img_ids = (img_ids[0] if img_ids.dim() == 3 else img_ids).cpu()  # deprecated 3-D ids: [B, N, 3]
            ids = dict(n_text_ids=txt_ids.shape[-2], n_image_ids=len(img_ids), id_grid_width=id_grid(img_ids))
        self.step = _Step(index, progress, float(timesteps[index]), hw, **ids)

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

    def _layout(self, batch: int, n_image: int, n_text: int, n_rows: int, text_first: bool, step: _Step,
                device) -> KeyLayout:
        """Keys [image (n_image), CLIP, T5], or [CLIP, T5, image] with text_first; n_rows image queries."""
        clip_tok = self.encoders.get("clip", (None, getattr(self.pipe, "tokenizer", None)))[1]
        t5_encoder, t5_tok = self.encoders.get("t5", (None, None))
        clip_len = min(getattr(clip_tok, "model_max_length", 77), n_text)
        if t5_encoder is not None and self.t5_ids:
            clip_len = max(0, n_text - self.t5_ids[0].shape[1])  # the T5 keys are as many as its input ids
        clip_lengths = self._lengths(self.clip_ids, getattr(clip_tok, "eos_token_id", None), batch) if clip_len else None
        t5_lengths = None
        if n_text > clip_len:
            if t5_encoder is None:
                t5_lengths = [0] * batch  # the pipeline feeds zeros: every T5 key is padding
            else:
                t5_lengths = self._lengths(self.t5_ids, getattr(t5_tok, "eos_token_id", None), batch)
        grid_width = step.id_grid_width if step.n_image_ids == n_rows else 0
        h, w = step.latent_hw  # the patch grid is the latent grid downsampled by sqrt(h*w/n_rows)
        f = math.sqrt(h * w / n_rows) if h * w and n_rows else 0.0
        if f and round(w / f) * round(h / f) == n_rows:
            grid_width = round(w / f)
        return build_layout(batch, n_image, n_text, n_rows, clip_len=clip_len, clip_lengths=clip_lengths,
                            t5_lengths=t5_lengths, grid_width=grid_width, text_first=text_first, device=device)

    def _call_layout(self, attn, hidden_states, encoder_hidden_states, rotary, v, step: _Step) -> KeyLayout:
        """The layout of one attention call (module docstring): joint, cross, single-stream or self."""
        shape = hidden_states.shape
        n_query = shape[1] if hidden_states.dim() == 3 else shape[-1] * shape[-2]
        n_keys = v.shape[-2]
        if encoder_hidden_states is not None:
            n_text = encoder_hidden_states.shape[1]
            if getattr(attn, "add_k_proj", None) is None and getattr(attn, "to_added_qkv", None) is None:  # cross
                return self._layout(shape[0], 0, n_keys, n_query, False, step, hidden_states.device)
            if n_keys != n_query + n_text:
                raise RuntimeError(f"{type(attn).__name__}: {n_keys} keys for {n_query} image and {n_text} text "
                                   "tokens; this joint processor's key layout is unknown")
            text_first = joint_text_first(attn, encoder_hidden_states, v, n_query)
            return self._layout(shape[0], n_query, n_text, n_query, text_first, step, hidden_states.device)
        if step.n_text_ids and n_keys == step.n_text_ids + step.n_image_ids:  # single-stream
            text_first = rotary_text_first(rotary, step.n_text_ids, step.n_image_ids)
            return self._layout(shape[0], step.n_image_ids, step.n_text_ids, step.n_image_ids, text_first, step,
                                hidden_states.device)
        return self._layout(shape[0], n_query, 0, n_query, False, step, hidden_states.device)

    def layer_call(self, layer: int, attn, hidden_states, encoder_hidden_states, rotary=None):
        edit_now = layer in self.edit_layers and in_window(self.step.progress, self.spec.steps)
        measure_now = layer in self.measure_layers
        if not (edit_now or measure_now):
            return None
        step = self.step

        def attention(sdpa, args, kwargs):
            call = sdpa_arguments(args, kwargs)
            q, k, v = call["query"], call["key"], call["value"]
            if call.get("dropout_p", 0.0) or call.get("is_causal", False) or call.get("enable_gqa", False):
                raise NotImplementedError("key edits need dropout_p=0, is_causal=False, enable_gqa=False")
            layout = self._call_layout(attn, hidden_states, encoder_hidden_states, rotary, v, step)
            return self._attend(_Call(layer, step, layout, q, k, v, as_bias(call.get("attn_mask")), call.get("scale"),
                                      edit_now, measure_now), lambda: sdpa(*args, **kwargs))

        return attention

    def _generators(self, layer: int, step: _Step, batch: int, purpose: str) -> list[torch.Generator]:
        return [cpu_generator(control_seed(self.handle.seed, p, step.index, layer, half, purpose))
                for p, half in self.handle.halves(batch)]

    def _attend(self, call: _Call, stock: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The call's output: edited, or `stock()` (the processor's own SDPA call); measured if asked."""
        B = call.q.shape[0]
        if call.edit:
            spec = self.spec
            gens = self._generators(call.layer, call.step, B, "keys") if spec.select == "random" else None
            noisy = spec.path in ("value", "both") and spec.value_mode == "noise"
            noise = self._noise(call, self._generators(call.layer, call.step, B, "noise")) if noisy else None
            result = intervene(call.q, call.k, call.v, spec, call.layout, bias=call.bias, scale=call.scale,
                               generators=gens, noise=noise, row_stats=call.measure)
            out, stats, left = result.out, result.stats, result.edited_mass
            self.handle.edits += 1
        else:
            out = stock()  # the stock call, untouched: measuring keeps outputs bit-identical
            rows = call.layout.image_rows
            bias = call.bias
            row_bias = bias[..., rows, :] if bias is not None and bias.shape[-2] != 1 else bias
            stats, left = incoming_mass(call.q[:, :, rows], call.k, row_bias, call.scale, row_stats=True), None
        if call.measure:
            self._record(call.layer, call.step, call.layout, stats, left, out[:, :, call.layout.image_rows])
        return out

    def _noise(self, call: _Call, generators: list[torch.Generator]) -> Callable[[int], torch.Tensor]:
        """Replacement values for n keys: [B, H, n, d], drawn on the CPU with one generator per batch row."""
        _, H, _, d = call.q.shape
        return lambda n: torch.stack([torch.randn(H, n, d, generator=g) * self.spec.noise_std
                                      for g in generators]).to(call.q.device)

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
           measure_layers: tuple[int, ...] = (), measure_k: int = MEASURE_K,
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
    for kind, hook in (("clip", runtime.on_clip), ("t5", runtime.on_t5)):
        if kind in runtime.encoders:
            hooks.append(runtime.encoders[kind][0].register_forward_pre_hook(hook, with_kwargs=True))
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
