"""Random-init stand-ins with the real models' classes, built offline from a fixed seed.

tiny-sd3 keeps SD3's structure: SD3Transformer2DModel joint attention over
[image tokens, 77 CLIP tokens, T5 tokens], two CLIP text encoders with the real CLIP tokenizer
(rebuilt from open_clip's BPE file), a tiny T5 encoder with its own tokenizer and a 16-channel VAE.
tiny-sd35 is the same pipeline with SD3.5-medium's transformer features: QK RMSNorm and dual
attention blocks (an extra image-only `attn2`) in its first blocks.
tiny-flux keeps FLUX.1's: FluxTransformer2DModel with joint blocks over [T5 tokens, image tokens],
single-stream blocks, rotary positions, a CLIP encoder for the pooled vector only, a T5 encoder;
`guidance_embeds` makes it dev-like (guidance embedding), else schnell-like.
tiny-sdxl keeps a UNet with self- (attn1) and cross-attention (attn2) and a mid block.
All are saved with save_pretrained and loaded with from_pretrained, like the hub models; with a
`variant` (fp16) they are saved in the hub layout of such a model: fp16 tensors in
`*.fp16.safetensors` files (e.g. unet/diffusion_pytorch_model.fp16.safetensors).
"""
from __future__ import annotations

import gzip
import json
import string
from pathlib import Path

import torch

from sinkrepro.architecture import TINY_FLUX, TINY_SD35
from sinkrepro.io import atomic_dir, write_text

CLIP_VOCAB_SIZE = 49408
STANDIN_MARKER = "sinkrepro_standin.json"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-to-unicode table (a printable character for every byte)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def write_clip_tokenizer_files(out_dir: Path) -> tuple[Path, Path]:
    """Rebuild OpenAI CLIP's vocab.json / merges.txt from open_clip's shipped BPE file."""
    import open_clip

    bpe = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    merges = gzip.open(bpe).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    vocab = list(_bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == CLIP_VOCAB_SIZE
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_path, merges_path = out_dir / "vocab.json", out_dir / "merges.txt"
    vocab_path.write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    merges_path.write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return vocab_path, merges_path


def clip_tokenizer(work_dir: Path):
    from transformers import CLIPTokenizer

    vocab, merges = write_clip_tokenizer_files(work_dir)
    # model_max_length=77 is required: without it the pipeline pads to ~1e30 and overflows.
    return CLIPTokenizer(vocab=str(vocab), merges=str(merges), model_max_length=77)


def t5_tokenizer():
    """A small unigram T5 tokenizer: common English pieces plus single characters."""
    from transformers import T5Tokenizer

    words = ("a an the of on in and with to left right above below behind photo red blue green "
             "yellow black white brown orange purple pink gray two three four five six dog cat car "
             "bird person chair table cup bottle").split()
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [("▁" + w, -5.0) for w in words] + [("▁", -8.0)]
    pieces += [(c, -10.0) for c in string.ascii_lowercase + string.digits + string.punctuation]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def _clip_config():
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=CLIP_VOCAB_SIZE, hidden_size=32, intermediate_size=64,
                          num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                          projection_dim=32, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)


QK_NORMS = ("norm_q", "norm_k", "norm_added_q", "norm_added_k")


def sharpen_attention(attention_modules, gain: float, norm_jitter: float = 0.0) -> None:
    """Scale query and key projections so logits grow by `gain`.

    At the default init a tiny model's attention is nearly uniform (top-1 mass ~1/keys), so there
    are no sinks to find. Trained DiTs have peaked attention; a gain of a few makes sinks form
    (top-1 mass ~5% here) while the weights stay random. A QK RMSNorm undoes a projection's scale,
    so its weight carries the gain too; `norm_jitter` also draws each norm's weights around it
    (x (1 + jitter * N(0, 1))), so that image and text norms differ as in a trained model and a
    wrong norm on a key shows.
    """
    for attn in attention_modules:
        for name in ("to_q", "to_k", "add_q_proj", "add_k_proj"):
            proj = getattr(attn, name, None)
            if proj is not None:
                proj.weight.data *= gain ** 0.5
        for name in QK_NORMS:
            weight = getattr(getattr(attn, name, None), "weight", None)
            if weight is not None:
                weight.data = gain ** 0.5 * (1 + norm_jitter * torch.randn_like(weight))


def _vae(shift_factor: float, scaling_factor: float):
    """A 16-channel, 8x-downsampling VAE (64 px -> an 8x8 latent)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(8, 16, 16, 16), layers_per_block=1,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         latent_channels=16, norm_num_groups=4, use_quant_conv=False, use_post_quant_conv=False,
                         shift_factor=shift_factor, scaling_factor=scaling_factor)


def _t5(t5tok):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=len(t5tok), d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4))


def _build_mmdit(out_dir: str | Path, name: str, seed: int, attention_gain: float, variant: str | None,
                 **transformer) -> Path:
    """An SD3-class pipeline; `transformer` adds SD3Transformer2DModel options (SD3.5's)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        torch.manual_seed(seed)
        tok = clip_tokenizer(tmp / "_clip_bpe")
        t5tok = t5_tokenizer()
        pipe = StableDiffusion3Pipeline(
            transformer=SD3Transformer2DModel(
                sample_size=16, patch_size=2, in_channels=16, out_channels=16, attention_head_dim=16,
                num_attention_heads=4, joint_attention_dim=64, caption_projection_dim=64,
                pooled_projection_dim=64, pos_embed_max_size=32, **transformer),
            scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
            vae=_vae(shift_factor=0.0609, scaling_factor=1.5035),
            text_encoder=CLIPTextModelWithProjection(_clip_config()), tokenizer=tok,
            text_encoder_2=CLIPTextModelWithProjection(_clip_config()), tokenizer_2=tok,
            text_encoder_3=_t5(t5tok), tokenizer_3=t5tok,
        )
        blocks = pipe.transformer.transformer_blocks
        sharpen_attention([b.attn for b in blocks] + [b.attn2 for b in blocks if b.attn2 is not None],
                          attention_gain, norm_jitter=0.3)
        _save(pipe, tmp, variant)
        _mark_standin(tmp, name, seed, attention_gain)
    return out_dir


def build_tiny_sd3(out_dir: str | Path, seed: int = 0, num_layers: int = 4, attention_gain: float = 4.0,
                   variant: str | None = None) -> Path:
    """Build, save and return the directory of a random-init SD3 pipeline (~30 MB)."""
    return _build_mmdit(out_dir, "tiny-sd3", seed, attention_gain, variant, num_layers=num_layers)


def build_tiny_sd35(out_dir: str | Path, seed: int = 0, attention_gain: float = 4.0,
                    variant: str | None = None) -> Path:
    """A random-init SD3.5-medium-like pipeline: QK RMSNorm, dual attention in the first blocks
    (SD3.5-medium: blocks 0-12 of 24; here architecture.TINY_SD35)."""
    num_layers, dual = TINY_SD35
    return _build_mmdit(out_dir, "tiny-sd35", seed, attention_gain, variant, num_layers=num_layers,
                        qk_norm="rms_norm", dual_attention_layers=dual)


def build_tiny_flux(out_dir: str | Path, seed: int = 0, attention_gain: float = 4.0, variant: str | None = None,
                    guidance_embeds: bool = False) -> Path:
    """A random-init FLUX.1 pipeline: schnell-like (no guidance embedding, unshifted schedule), or
    dev-like with `guidance_embeds` (guidance embedding, resolution-dependent shift)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        torch.manual_seed(seed)
        t5tok = t5_tokenizer()
        num_layers, num_single_layers = TINY_FLUX
        pipe = FluxPipeline(
            transformer=FluxTransformer2DModel(
                patch_size=1, in_channels=64, num_layers=num_layers, num_single_layers=num_single_layers,
                attention_head_dim=16, num_attention_heads=4, joint_attention_dim=64, pooled_projection_dim=32,
                guidance_embeds=guidance_embeds, axes_dims_rope=(4, 6, 6)),
            scheduler=FlowMatchEulerDiscreteScheduler(
                shift=3.0 if guidance_embeds else 1.0, use_dynamic_shifting=guidance_embeds, base_shift=0.5,
                max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096),
            vae=_vae(shift_factor=0.1159, scaling_factor=0.3611),
            text_encoder=CLIPTextModel(_clip_config()), tokenizer=clip_tokenizer(tmp / "_clip_bpe"),
            text_encoder_2=_t5(t5tok), tokenizer_2=t5tok,
        )
        t = pipe.transformer
        sharpen_attention([b.attn for b in list(t.transformer_blocks) + list(t.single_transformer_blocks)],
                          attention_gain, norm_jitter=0.3)
        _save(pipe, tmp, variant)
        _mark_standin(tmp, "tiny-flux-dev" if guidance_embeds else "tiny-flux", seed, attention_gain)
    return out_dir


def build_tiny_sdxl(out_dir: str | Path, seed: int = 0, attention_gain: float = 4.0,
                    variant: str | None = None) -> Path:
    """Build, save and return the directory of a random-init SDXL pipeline (~30 MB)."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        torch.manual_seed(seed)
        tok = clip_tokenizer(tmp / "_clip_bpe")
        unet = UNet2DConditionModel(
            block_out_channels=(32, 64), layers_per_block=1, sample_size=16,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
            use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
            transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=6 * 8 + 32,
            cross_attention_dim=64, norm_num_groups=8)
        pipe = StableDiffusionXLPipeline(
            unet=unet,
            scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                             timestep_spacing="leading", steps_offset=1),
            vae=AutoencoderKL(block_out_channels=(8, 16), layers_per_block=1,
                              down_block_types=("DownEncoderBlock2D",) * 2,
                              up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4),
            text_encoder=CLIPTextModel(_clip_config()), tokenizer=tok,
            text_encoder_2=CLIPTextModelWithProjection(_clip_config()), tokenizer_2=tok,
        )
        sharpen_attention([m for name, m in unet.named_modules() if name.endswith(("attn1", "attn2"))],
                          attention_gain)
        _save(pipe, tmp, variant)
        _mark_standin(tmp, "tiny-sdxl", seed, attention_gain)
    return out_dir


def _save(pipe, out_dir: Path, variant: str | None) -> None:
    if variant == "fp16":
        pipe.to(torch.float16)
    pipe.save_pretrained(out_dir, variant=variant)


def _mark_standin(model_dir: Path, name: str, seed: int, attention_gain: float) -> None:
    info = {"standin": name, "seed": seed, "random_init": True, "attention_gain": attention_gain}
    write_text(model_dir / STANDIN_MARKER, json.dumps(info, indent=1))
    for scratch in model_dir.glob("_clip_bpe"):
        for f in scratch.iterdir():
            f.unlink()
        scratch.rmdir()


BUILDERS = {"sd3": build_tiny_sd3, "sd35": build_tiny_sd35, "flux": build_tiny_flux, "sdxl": build_tiny_sdxl}
