"""The README's commands run as written, so they cannot drift; the committed paper/README.md is the
index the default config writes; no file points at notes outside the repository."""
import subprocess

import pytest

from conftest import REPO, run_in
from sinkrepro.config import grid_for, load_config
from sinkrepro.paper.index import render_markdown

# The session fixture `reproduced` runs this one exactly as written.
RUN_BY_FIXTURE = {"make reproduce"}
# CI runs it (.ci/run); running it from a test would recurse.
RUN_BY_CI = {"make test"}
# Run here, in the fixture's copy of the repo after `make reproduce`: command -> text its output must hold.
RUN_HERE = {
    ".venv/bin/sinkrepro plan config/config.yaml": "generations:",
    ".venv/bin/snakemake --cores 2 --configfile config/config.yaml": "Nothing to be done",
    '.venv/bin/sinkrepro sinks --model-dir resources/models/tiny-sd3 --family sd3 --prompt "a red car" --layer 1':
        "top1 mass",
    '.venv/bin/sinkrepro generate --model-dir resources/models/tiny-sd3 --family sd3 --prompt "a red car" '
    '--preset rds --k 1 --layers 1 --out img.png': "wrote img.png",
}
# Not run by the tests, and why.
NOT_RUN = {
    ".venv/bin/sinkrepro plan config/paper.yaml --seconds-per-step sd3-medium=0.3":
        "fetches the paper's prompt lists from the network once",
    ".venv/bin/snakemake --configfile config/paper.yaml --workflow-profile workflow/profiles/slurm":
        "needs a SLURM cluster, GPUs and the hub weights (tests/test_profiles.py checks the profile)",
    "make push": "needs a DVC remote (tests/test_dvc.py pushes to a local one)",
    "make pull": "needs a DVC remote (tests/test_dvc.py pulls from a local one)",
}


def readme_commands() -> list[str]:
    """Every line of the README's indented code blocks (4 spaces, after a blank line)."""
    commands, in_block, previous = [], False, ""
    for line in (REPO / "README.md").read_text().splitlines():
        in_block = line.startswith("    ") and bool(line.strip()) and (in_block or not previous.strip())
        if in_block:
            commands.append(line.strip())
        previous = line
    return commands


def test_every_readme_command_is_run_or_has_a_reason():
    commands = readme_commands()
    assert len(commands) == len(set(commands))
    covered = RUN_BY_FIXTURE | RUN_BY_CI | set(RUN_HERE) | set(NOT_RUN)
    assert set(commands) == covered, "a README command changed: run it in a test or say why not"
    assert not any("..." in c for c in commands)


def test_make_test_is_what_ci_runs_and_does_not_recurse():
    assert "make test" in (REPO / ".ci" / "run").read_text().splitlines()
    recipe = (REPO / "Makefile").read_text().split("\ntest:")[1].split("\n\n")[0].splitlines()[1:]
    assert any("pytest" in line for line in recipe)
    assert not any("make" in line.lower() for line in recipe)  # no recursion into make targets


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(RUN_HERE))
def test_readme_command_runs_as_written(reproduced, command):
    work, _ = reproduced
    done = run_in(work, command, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert RUN_HERE[command] in done.stdout + done.stderr


@pytest.mark.slow
def test_make_reproduce_writes_the_index_and_the_report(reproduced):
    work, _ = reproduced
    index = (work / "paper" / "README.md").read_text()
    assert "| Table 2 | **reproduced** |" in index and "| Table 8 | **hand-made in the paper** |" in index
    html = (work / "paper" / "report.html").read_text()
    assert "Index of the paper" in html and "max-width: 72rem" in html  # workflow/report/report.css
    assert "k_sweep" not in html  # names only the categories this run has


def test_committed_paper_index_is_what_the_default_config_writes():
    """paper/README.md is in the repository before any run, and a default run rewrites it unchanged."""
    grid = grid_for(load_config(REPO / "config" / "config.yaml"), root=REPO)
    assert (REPO / "paper" / "README.md").read_text() == render_markdown(grid.experiments.values())


def test_no_file_points_at_notes_outside_the_repository():
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()
    banned = ("paper-" + "reference", "/work/" + "shared", "../" + "shared")
    for name in listed:
        path = REPO / name
        if path.is_file() and path.suffix in (".py", ".md", ".smk", ".rst", ".yaml", ".txt", ""):
            text = path.read_text(errors="ignore")
            assert not any(b in text for b in banned), f"{name} cites notes outside the repository"
