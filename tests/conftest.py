"""Test-wide settings: offline, single-threaded, deterministic."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


# ---- one `make reproduce`, shared by the workflow, README and figure tests ----------------------
REPO = Path(__file__).resolve().parents[1]


def repo_copy(dest: Path) -> Path:
    """The repository's files (tracked and untracked, not ignored) copied to `dest`, with a `.venv`
    that links to this checkout's environment and is newer than its requirements, so `make` does not
    install again."""
    from roundtrip import checkout_copy

    checkout_copy(dest)
    venv = (REPO / ".venv").resolve()
    (dest / ".venv").mkdir()
    for entry in venv.iterdir():
        if entry.name != ".installed":
            (dest / ".venv" / entry.name).symlink_to(entry)
    (dest / ".venv" / ".installed").touch()
    return dest


def run_in(work: Path, command: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    """`command` run by bash in `work`, importing `work`'s own sinkrepro, offline."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(work / "src")}
    return subprocess.run(["bash", "-c", command], cwd=work, capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory):
    """`make reproduce`, exactly as the README says, in a copy of the repository whose
    config/config.yaml is the tiny end-to-end config of tests/test_workflow.py."""
    import yaml
    from helpers import TINY_PROMPTS, tiny_config

    work = repo_copy(tmp_path_factory.mktemp("repo"))
    (work / "prompts.tsv").write_text(TINY_PROMPTS)
    config = work / "config" / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config(work / "prompts.tsv")))
    done = run_in(work, "make reproduce")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return work, config
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



# ---- real servers on 127.0.0.1 for the DVC remotes (tests/servers.py) ----------------------------
@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    import servers

    with servers.sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    import servers

    with servers.seaweed(tmp_path_factory.mktemp("seaweed")) as server:
        yield server
