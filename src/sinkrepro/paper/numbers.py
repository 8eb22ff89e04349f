"""How every number meant for a human is printed: by significant digits, never a fixed number of
decimals that would turn a small real value into 0."""
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
