"""Test-wide settings: offline, single-threaded, deterministic."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """The mini runs of tests/test_reliability.py (one uninterrupted, one killed and rerun), made once
    for every module that reads them."""
    from test_reliability import mini_runs

    return mini_runs(tmp_path_factory)


@pytest.fixture(scope="session")
def reference(runs):
    """The uninterrupted mini run; tests must not change its files."""
    return runs.reference
