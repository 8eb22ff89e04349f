"""How every number meant for a human is printed (tables, dynamics tables, claims): by significant
digits, never a fixed number of decimals that would turn a small real value into 0."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

MISSING = "--"
P_FLOOR = 1e-4  # p-values below it print as "<1e-4"


def is_missing(value) -> bool:
    """None, NaN or pd.NA (a scalar); anything else, strings included, is a value."""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def sig(value, digits: int = 3, signed: bool = False) -> str:
    """`value` to `digits` significant digits: 0.000123 -> '0.000123', 12.345 -> '12.3',
    123456 -> '123456', 1.2e-07 -> '1.20e-07'. Integers print whole; NaN/None print '--'."""
    if is_missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    plus = "+" if signed else ""
    if isinstance(value, (int, np.integer)):
        return f"{int(value):{plus}d}"
    value = float(value)
    if math.isinf(value):
        return f"{value:{plus}}"
    if value == 0:
        return f"{0:{plus}d}"
    magnitude = math.floor(math.log10(abs(value)))
    if not -4 <= magnitude < 7:
        return f"{value:{plus}.{digits - 1}e}"
    decimals = max(digits - 1 - magnitude, 0)
    return f"{value:{plus}.{decimals}f}"


def p_value(value, digits: int = 2) -> str:
    """A p-value: significant digits, '<1e-4' below the floor."""
    if is_missing(value):
        return MISSING
    return f"<{P_FLOOR:g}" if value < P_FLOOR else sig(value, digits)


def whole(value) -> str:
    """A count, seed or k: no decimals ('1', not '1.0')."""
    if is_missing(value):
        return MISSING
    return str(int(value)) if float(value).is_integer() else sig(value)


# Columns that hold counts, seeds, k or layer indices: printed and stored whole.
WHOLE_COLUMNS = frozenset({"seed", "reference_seed", "k", "n", "n_seeds", "n_images", "n_pairs", "n_excluded",
                           "n_unpaired", "layer", "n_sinks", "step", "rank", "x"})
# Differences and their bounds: printed with a sign.
SIGNED_COLUMNS = frozenset({"delta", "delta_delta", "delta_condition", "delta_control", "mean", "ci_low", "ci_high",
                            "dz"})
P_COLUMNS = frozenset({"p_t", "p_t_1s", "p_w", "p_adj_family", "p_adj_paper", "p_tost", "lmm_p", "p_noninferior"})


def cell(value, column: str = "") -> str:
    """One displayed cell of `column`: text as it is, p-values to 2 significant digits, counts whole,
    differences signed, every other number to 3 significant digits."""
    if isinstance(value, str):
        return value
    if is_missing(value) or isinstance(value, (bool, np.bool_)):
        return sig(value)
    if column in P_COLUMNS:
        return p_value(value)
    if column in WHOLE_COLUMNS:
        return whole(value)
    return sig(value, 3, signed=column in SIGNED_COLUMNS)


def interval(low, high, digits: int = 3) -> str:
    """'[low, high]'; '--' when a bound is missing."""
    if is_missing(low) or is_missing(high):
        return MISSING
    return f"[{sig(low, digits)}, {sig(high, digits)}]"


def estimate(mean, low, high, digits: int = 3) -> str:
    """'mean [low, high]', or the mean alone when a bound is missing."""
    if is_missing(low) or is_missing(high):
        return sig(mean, digits)
    return f"{sig(mean, digits)} {interval(low, high, digits)}"
