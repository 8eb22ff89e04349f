"""Scorers: conformance with the original packages on shared stand-in weights, jobs, failures, FID.

Every oracle is independent of sinkrepro's scoring code: open_clip by hand (CLIP-T), the hpsv2
package's own img_score.score with its vendored open_clip (HPS), the image-reward package's
ImageReward.score (ImageReward), a directly built lpips.LPIPS (LPIPS), and an eigenvalue route to
the Fréchet distance (FID). No test touches the network.
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from sinkrepro.io import read_jsonl, sha256_bytes, write_jsonl
from sinkrepro.scoring import (SCORE_COLUMNS, ScoringError, build_standin_scorers, fetch_scorer_weights,
                               frechet_distance, load_scorer, score_fid, score_shard)
from sinkrepro.scoring.fetch import FetchError
from sinkrepro.scoring.shards import image_tensor
from sinkrepro.scoring.standins import TINY_CLIP_T, TINY_HPS

PROMPTS = [("p000", "a photo of a cat", "single_object"), ("p001", "a red car and a blue bench", "two_object"),
           ("p002", "three apples", "counting"), ("p003", "a dog left of a tree", "position")]
SIZES = [(40, 40), (48, 32), (32, 48), (40, 40)]  # (width, height): square and non-square


def png_bytes(seed: int, size) -> bytes:
    pixels = np.random.RandomState(seed).randint(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def make_shard(root: Path, condition: str, *, seed: int = 0, image_seed: int = 0) -> Path:
    """A contract-shaped image shard: random PNGs plus manifest.jsonl."""
    shard = root / "images" / "tiny-sd3" / condition / f"seed{seed}" / "shard000"
    shard.mkdir(parents=True)
    rows = []
    for i, (pid, prompt, cat) in enumerate(PROMPTS):
        data = png_bytes(1000 * image_seed + i, SIZES[i])
        name = f"{i:05d}.png"
        (shard / name).write_bytes(data)
        rows.append({"prompt_id": pid, "prompt_index": i, "prompt": prompt, "category": cat, "seed": seed,
                     "generator_seed": 100 + i, "file": name, "sha256": sha256_bytes(data), "model": "tiny-sd3",
                     "condition": condition, "config_hash": "test", "standin": True, "height": SIZES[i][1],
                     "width": SIZES[i][0], "steps": 2, "guidance": 5.0})
    write_jsonl(shard / "manifest.jsonl", rows)
    return shard


@pytest.fixture(scope="session")
def scorers(tmp_path_factory):
    return build_standin_scorers(tmp_path_factory.mktemp("scorers"), seed=0)


@pytest.fixture
def shards(tmp_path):
    return make_shard(tmp_path, "dsp-k1-L1", image_seed=1), make_shard(tmp_path, "base", image_seed=2)


def by_prompt(frame: pd.DataFrame) -> dict[str, float]:
    return dict(zip(frame["prompt_id"], frame["value"]))


def register_config(module, tmp_path: Path, name: str, cfg: dict) -> None:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(cfg))
    module.add_model_config(path)


# ---------------------------------------------------------------- conformance

def test_clip_t_matches_hand_computation_with_open_clip(scorers, shards, tmp_path):
    import open_clip

    shard, _ = shards
    got = by_prompt(score_shard("clip_t", scorers["clip_t"], shard, batch_size=3))
    register_config(open_clip, tmp_path, "oracle-tiny-clip", TINY_CLIP_T)
    model, _, preprocess = open_clip.create_model_and_transforms(
        "oracle-tiny-clip", pretrained=str(scorers["clip_t"] / "open_clip_model.safetensors"))
    model.eval()
    for row in read_jsonl(shard / "manifest.jsonl"):
        with torch.no_grad():
            img = model.encode_image(preprocess(Image.open(shard / row["file"]))[None])
            txt = model.encode_text(open_clip.tokenize([row["prompt"]]))
        want = torch.nn.functional.cosine_similarity(img, txt).item()
        assert got[row["prompt_id"]] == pytest.approx(want, abs=1e-5)
    assert len(set(np.round(list(got.values()), 4))) == len(got)  # the stand-in separates images


def test_hps_matches_hpsv2_package_scoring(scorers, shards, tmp_path, monkeypatch):
    import hpsv2.img_score as hps_pkg
    import hpsv2.src.open_clip as hps_open_clip

    shard, _ = shards
    got = by_prompt(score_shard("hps", scorers["hps"], shard, batch_size=4))
    register_config(hps_open_clip, tmp_path, "oracle-tiny-hps", TINY_HPS)
    # the package's own model construction and transform (initialize_model's arguments, tiny config)
    model, _, preprocess_val = hps_open_clip.create_model_and_transforms(
        "oracle-tiny-hps", None, precision="fp32", device="cpu", light_augmentation=True, output_dict=True)
    monkeypatch.setattr(hps_pkg, "model_dict", {"model": model, "preprocess_val": preprocess_val})
    monkeypatch.setattr(hps_pkg, "root_path", str(tmp_path / "hps_root"))
    monkeypatch.setattr(hps_pkg, "device", "cpu")
    checkpoint = str(scorers["hps"] / "hps_standin.pt")
    for row in read_jsonl(shard / "manifest.jsonl"):
        want = hps_pkg.score(str(shard / row["file"]), row["prompt"], cp=checkpoint, hps_version="v2.1")[0]
        assert got[row["prompt_id"]] == pytest.approx(float(want), abs=1e-5)


def test_hps_transform_is_not_open_clips_default(scorers):
    """On a non-square image HPSv2 pads where open_clip crops: the scorer must use HPSv2's."""
    import open_clip

    scorer = load_scorer("hps", scorers["hps"])
    image = Image.open(io.BytesIO(png_bytes(7, (48, 32))))
    default = open_clip.image_transform(224, is_train=False)
    assert (scorer.transform(image) - default(image)).abs().max() > 0.1


def test_imagereward_matches_package_score(scorers, shards):
    from ImageReward.ImageReward import ImageReward

    shard, _ = shards
    got = by_prompt(score_shard("imagereward", scorers["imagereward"], shard, batch_size=3))
    model = load_scorer("imagereward", scorers["imagereward"]).model
    for row in read_jsonl(shard / "manifest.jsonl"):
        want = ImageReward.score(model, row["prompt"], str(shard / row["file"]))  # the package's method
        assert got[row["prompt_id"]] == pytest.approx(want, abs=1e-5)
    assert np.ptp(list(got.values())) > 1e-3  # rewards differ between images


def test_lpips_matches_direct_lpips_call(scorers, shards):
    import lpips
    from safetensors.torch import load_file

    shard, base = shards
    frame = score_shard("lpips", scorers["lpips"], shard, reference_shard_dir=base, batch_size=4)
    got = by_prompt(frame)
    direct = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False).eval()  # wheel's heads
    direct.net.load_state_dict({k: v.float() for k, v in load_file(scorers["lpips"] / "alexnet_features.safetensors").items()})
    for row in read_jsonl(shard / "manifest.jsonl"):
        pair = [lpips.im2tensor(np.asarray(Image.open(d / row["file"]).convert("RGB"))) for d in (shard, base)]
        with torch.no_grad():
            want = direct(*pair).item()
        assert got[row["prompt_id"]] == pytest.approx(want, abs=1e-5)
    assert set(frame["reference_condition"]) == {"base"}
    assert list(frame["reference_file"]) == list(frame["file"])


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_image_tensor_is_torchvisions_to_tensor_of_the_rgb_image(mode):
    from torchvision.transforms.functional import to_tensor

    pixels = np.random.default_rng(0).integers(0, 256, size=(7, 5, len(mode)), dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)
    got = image_tensor(image)
    assert got.dtype == torch.float32 and got.shape == (3, 7, 5)
    assert torch.equal(got, to_tensor(image.convert("RGB")))


# ---------------------------------------------------------------- jobs

@pytest.mark.parametrize("metric", ["clip_t", "lpips", "feat_l2"])
def test_rows_carry_provenance_and_do_not_depend_on_batching(metric, scorers, shards, tmp_path):
    shard, base = shards
    scorer_dir = scorers["fid" if metric == "feat_l2" else metric]
    out = tmp_path / "scores" / "shard000.parquet"
    one = score_shard(metric, scorer_dir, shard, out, reference_shard_dir=base, batch_size=1)
    many = score_shard(metric, scorer_dir, shard, reference_shard_dir=base, batch_size=4)
    np.testing.assert_allclose(one["value"], many["value"], atol=1e-6)
    frame = pd.read_parquet(out)
    assert list(frame.columns) == SCORE_COLUMNS
    assert len(frame) == len(PROMPTS) and frame["value"].dtype == np.float64
    required = ["metric", "value", "model", "condition", "seed", "prompt_id", "category", "generator_seed", "file",
                "image_sha256", "scorer_id", "weights_sha256", "package", "package_version", "standin"]
    assert frame[required].notna().all().all()
    assert (frame["metric"] == metric).all() and frame["standin"].all() and not frame["failed"].any()
    assert (frame["package_version"] != "not-installed").all()
    manifest = read_jsonl(shard / "manifest.jsonl")
    assert list(frame["image_sha256"]) == [r["sha256"] for r in manifest]
    assert list(frame["generator_seed"]) == [r["generator_seed"] for r in manifest]


def test_tampered_image_fails_naming_the_file(scorers, shards):
    shard, _ = shards
    (shard / "00002.png").write_bytes(png_bytes(99, SIZES[2]))  # valid PNG, not the manifest's bytes
    with pytest.raises(ScoringError, match=r"00002\.png.*sha256"):
        score_shard("clip_t", scorers["clip_t"], shard)


def test_missing_and_corrupt_images_fail_naming_the_file(scorers, shards):
    shard, _ = shards
    (shard / "00001.png").unlink()
    with pytest.raises(ScoringError, match=r"00001\.png.*unreadable"):
        score_shard("clip_t", scorers["clip_t"], shard)
    rows = read_jsonl(shard / "manifest.jsonl")
    rows[1]["sha256"] = sha256_bytes(b"not a png")
    (shard / "00001.png").write_bytes(b"not a png")
    write_jsonl(shard / "manifest.jsonl", rows)
    with pytest.raises(ScoringError, match=r"00001\.png.*not a decodable image"):
        score_shard("clip_t", scorers["clip_t"], shard)


def test_tolerance_records_failures_as_explicit_rows(scorers, shards, tmp_path):
    shard, _ = shards
    (shard / "00003.png").write_bytes(png_bytes(98, SIZES[3]))
    with pytest.raises(ScoringError, match="more than tolerance=0.2"):  # 1 of 4 > 20 %
        score_shard("clip_t", scorers["clip_t"], shard, tolerance=0.2)
    frame = score_shard("clip_t", scorers["clip_t"], shard, tmp_path / "s.parquet", tolerance=0.25)
    bad = frame[frame["failed"]]
    assert list(bad["prompt_id"]) == ["p003"] and bad["value"].isna().all()
    assert "00003.png" in bad["error"].iloc[0]
    good = frame[~frame["failed"]]
    assert good["value"].notna().all() and good["error"].isna().all()
    assert (frame["tolerance"] == 0.25).all()


def test_pairwise_metric_needs_each_baseline_partner(scorers, shards):
    shard, base = shards
    with pytest.raises(ValueError, match="reference_shard_dir"):
        score_shard("lpips", scorers["lpips"], shard)
    rows = [r for r in read_jsonl(base / "manifest.jsonl") if r["prompt_id"] != "p001"]
    write_jsonl(base / "manifest.jsonl", rows)
    with pytest.raises(ScoringError, match=r"00001\.png.*no baseline image for prompt_id 'p001'"):
        score_shard("lpips", scorers["lpips"], shard, reference_shard_dir=base)


def test_changed_weights_are_refused(scorers, tmp_path):
    import shutil

    copy = tmp_path / "clip_t"
    shutil.copytree(scorers["clip_t"], copy)
    with open(copy / "open_clip_model.safetensors", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match=r"open_clip_model\.safetensors.*sha256"):
        load_scorer("clip_t", copy)
    with pytest.raises(ValueError, match="holds a 'clip_t' scorer"):
        load_scorer("hps", scorers["clip_t"])


def test_standins_are_deterministic_and_small(scorers, tmp_path):
    again = build_standin_scorers(tmp_path, seed=0, metrics=["clip_t", "lpips"])
    for name, d in again.items():
        assert json.loads((d / "scorer.json").read_text())["files"] == \
            json.loads((scorers[name] / "scorer.json").read_text())["files"]
    total = sum(p.stat().st_size for d in scorers.values() for p in d.iterdir())
    assert total < 30e6


def test_fetch_fails_early_when_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FetchError, match="HF_HUB_OFFLINE"):
        fetch_scorer_weights("hps", tmp_path / "hps")
    assert not (tmp_path / "hps").exists()


# ---------------------------------------------------------------- FID

def frechet_by_eigenvalues(a: np.ndarray, b: np.ndarray) -> float:
    """tr sqrt(Sa Sb) = sum sqrt(eig(Sa^1/2 Sb Sa^1/2)), the symmetric PSD route."""
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(ca)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root_a @ cb @ root_a)
    d = a.mean(0) - b.mean(0)
    return float(d @ d + np.trace(ca) + np.trace(cb) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


def test_frechet_distance_matches_eigenvalue_route():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 6))
    b = rng.normal(size=(150, 6)) @ rng.normal(size=(6, 6)) * 0.5 + 0.3
    assert frechet_distance(a, b) == pytest.approx(frechet_by_eigenvalues(a, b), rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_score_fid_row_flags_ill_conditioning(scorers, shards, tmp_path):
    shard, base = shards
    out = tmp_path / "fid" / "seed0.parquet"
    frame = score_fid(scorers["fid"], [shard], [base], out)
    row = pd.read_parquet(out).iloc[0]
    assert len(frame) == 1 and row["metric"] == "fid" and row["value"] > 0 and math.isfinite(row["value"])
    assert (row["condition"], row["reference_condition"], row["n_images"], row["dim"]) == ("dsp-k1-L1", "base", 4, 64)
    assert bool(row["ill_conditioned"]) and "ill-conditioned" in row["note"] and row["cov_rank"] <= 3
    assert row["scorer_id"] and row["weights_sha256"] and bool(row["standin"])
    same = score_fid(scorers["fid"], [base], [base])
    assert same["value"].iloc[0] == pytest.approx(0.0, abs=1e-6)
