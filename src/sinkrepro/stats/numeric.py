"""Small numeric helpers shared by the statistics modules."""
from __future__ import annotations

import numpy as np


def is_constant(values: np.ndarray) -> bool:
    """True when all values agree up to floating-point noise."""
    values = np.asarray(values, dtype=float)
    return values.size > 0 and float(np.ptp(values)) <= 1e-12 * max(1.0, float(np.abs(values).max()))
