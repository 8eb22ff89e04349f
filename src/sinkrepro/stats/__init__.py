"""Paired statistics for the reproduction: pure functions over score rows (no I/O)."""
from .analysis import add_adjustments, analyze_experiment, family_id, family_names
from .bootstrap import BootstrapCI, bootstrap_ci, mean_statistic, ratio_statistic, seeded_rng
from .config import DEFAULT_DIRECTIONS, DEFAULT_MARGINS, StatsConfig
from .mixed import random_intercept_fit
from .multiplicity import adjust_p
from .paired import difference_battery, t_test, tost, wilcoxon
from .pairing import clean_scores, pair_values
from .files import write_experiment_stats

__all__ = [
    "analyze_experiment", "add_adjustments", "family_id", "family_names", "BootstrapCI", "bootstrap_ci", "mean_statistic",
    "ratio_statistic", "seeded_rng", "DEFAULT_DIRECTIONS", "DEFAULT_MARGINS", "StatsConfig",
    "random_intercept_fit", "adjust_p", "difference_battery", "t_test", "tost", "wilcoxon",
    "clean_scores", "pair_values", "write_experiment_stats",
]
