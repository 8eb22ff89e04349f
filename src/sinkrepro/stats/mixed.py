"""Linear mixed models with a prompt random intercept (statsmodels MixedLM, REML)."""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats as sps

from .numeric import is_constant

NAN = math.nan
EMPTY = dict(lmm_mean=NAN, lmm_se=NAN, lmm_p=NAN, lmm_ci_low=NAN, lmm_ci_high=NAN, lmm_var_prompt=NAN)


def random_intercept_fit(y, groups, x=None, *, level: float = 0.95) -> dict:
    """Fit y = b0 [+ b1*x] + u_prompt + e. Reports b0 (no x) or the slope b1 (with x).

    Returns lmm_* columns; NaN with `lmm_note` when the model is not identifiable.
    """
    from statsmodels.regression.mixed_linear_model import MixedLM
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    y = np.asarray(y, dtype=float)
    groups = np.asarray(groups)
    _, sizes = np.unique(groups, return_counts=True)
    if sizes.size < 2:
        return EMPTY | {"lmm_note": "fewer than 2 prompts"}
    if sizes.max() < 2:
        return EMPTY | {"lmm_note": "one observation per prompt (one seed): prompt random intercept not identifiable"}
    if is_constant(y):
        return EMPTY | {"lmm_note": "zero variance"}
    exog = np.ones((y.size, 1)) if x is None else np.column_stack([np.ones(y.size), np.asarray(x, float)])
    if x is not None and np.ptp(exog[:, 1]) == 0:
        return EMPTY | {"lmm_note": "one dose only"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = MixedLM(y, exog, groups=groups).fit(reml=True)
        except (np.linalg.LinAlgError, ValueError) as err:
            return EMPTY | {"lmm_note": f"MixedLM failed: {err}"}
    j = exog.shape[1] - 1
    est, se = float(result.fe_params[j]), float(result.bse_fe[j])
    if not (math.isfinite(se) and se > 0):
        return EMPTY | {"lmm_note": "MixedLM gave no standard error"}
    z = sps.norm.ppf(0.5 + level / 2)
    notes = sorted({str(w.message).split("\n")[0] for w in caught if issubclass(w.category, ConvergenceWarning)})
    return dict(lmm_mean=est, lmm_se=se, lmm_p=float(2 * sps.norm.sf(abs(est / se))),
                lmm_ci_low=float(est - z * se), lmm_ci_high=float(est + z * se),
                lmm_var_prompt=float(np.asarray(result.cov_re)[0, 0]),
                lmm_note="; ".join(notes))
