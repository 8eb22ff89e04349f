"""The one number formatter that tables, dynamics tables and claims print with."""
from __future__ import annotations

import math

import numpy as np

from sinkrepro.paper.numbers import MISSING, cell, estimate, interval


def test_cell_picks_the_format_from_the_column():
    assert cell(0.000123, "delta") == "+0.000123"  # a difference: signed, never rounded to 0
    assert cell(-0.0456789, "ci_low") == "-0.0457"
    assert cell(0.0456789, "margin") == "0.0457"  # a plain number: unsigned
    assert cell(3e-5, "p_t") == "<0.0001" and cell(0.0123456, "p_adj_paper") == "0.012"
    assert cell(np.float64(12.0), "n") == "12" and cell(np.int64(3), "k") == "3"
    assert cell(math.nan, "delta") == MISSING and cell(None, "p_t") == MISSING
    assert cell(np.bool_(True), "ci_contains_zero") == "yes"
    assert cell("complete (mass exactly 0)", "reduction") == "complete (mass exactly 0)"


def test_estimate_and_interval():
    assert estimate(1.23456, 1.0, 1.5, 4) == "1.235 [1.000, 1.500]"
    assert estimate(1.23456, math.nan, 1.5, 4) == "1.235"  # no interval when a bound is missing
    assert interval(0.5, 2.0) == "[0.500, 2.00]" and interval(None, 2.0) == MISSING
