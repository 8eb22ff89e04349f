"""The terms every stage shares, each defined here once: token and sink types, the measured top-k,
the metric sets and the dynamics columns. Torch-free, so statistics and paper code can import it.
"""
from __future__ import annotations

# --- token and sink types ---------------------------------------------------------------------
PAD = "pad"  # a text position past its prompt's first EOS
UNKNOWN_TEXT = "text"  # a text key of unknown encoder
# A dynamics row's `sink_type`, in the order tables and figures show them.
SINK_TYPES = ("image", "clip", "t5", PAD, UNKNOWN_TEXT)
SINK_TYPE_LABELS = dict(zip(SINK_TYPES, ("image", "CLIP", "T5", "pad", "text")))  # as tables print them
TEXT_TYPES = tuple(t for t in SINK_TYPES if t != "image")
# Where a key sits (attention.tokens codes these 0..3); padding is a flag on top of the region.
REGIONS = tuple(t for t in SINK_TYPES if t != PAD)

# --- measurement ------------------------------------------------------------------------------
MEASURE_K = 5  # topk_mass sums the MEASURE_K largest incoming masses (attention.attach's default)

# The columns of a dynamics row in contract order (docs/contracts.md "Dynamics"), as
# attach(...).dynamics_rows() gives them; the generation job appends model, condition, standin.
DYNAMICS_COLUMNS = ("prompt_id", "seed", "step", "progress", "timestep", "layer", "batch_half", "head",
                    "top1_mass", "topk_mass", "entropy", "top5_conc", "sink_index", "sink_type", "sink_row",
                    "sink_col", "bos_mass", "edited_mass", "max_activation")

# --- metrics ----------------------------------------------------------------------------------
SET_LEVEL_METRICS = ("fid",)  # one score per image set; every other metric has one per image
PAIRWISE_METRICS = ("lpips", "feat_l2")  # each image against its baseline partner
SCORER_OF = {"feat_l2": "fid"}  # a metric scored by another metric's scorer: feat_l2 uses FID's features
# A metric named in an experiment -> the per-image score metrics it needs (FID also gets the paired
# per-image feature distance).
SCORES_NEEDED = {"clip_t": ("clip_t",), "hps": ("hps",), "imagereward": ("imagereward",), "lpips": ("lpips",),
                 "fid": ("feat_l2",)}
SCORER_NAMES = tuple(SCORES_NEEDED)  # one scorer directory per metric an experiment can name


def per_image_metrics(metrics) -> list[str]:
    """The per-image score metrics behind an experiment's `metrics`, in order."""
    return [m for name in metrics for m in SCORES_NEEDED[name]]
