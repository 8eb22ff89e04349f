"""A DVC round trip as a lab shares results: push the shared stages of a built repository to a remote,
clone it afresh, pull (which re-stamps the pulled outputs with `snakemake --touch`), plan, and rebuild
the tables from the pulled data. Used with the tiny sharing repo (test_remotes.py) and the paper twin
(test_twin.py)."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from sinkrepro.sharing import read_shared_stages

REPO = Path(__file__).resolve().parents[1]
EXPENSIVE_RULES = {"model", "scorer", "generate", "score", "fid"}  # what a pull must spare the puller
TABLES = "paper/tables"


def checkout_copy(dest: Path) -> Path:
    """This checkout's files (tracked, and untracked but not ignored) copied to `dest`, times kept."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def repo_env(repo: Path) -> dict:
    """The environment of a command in `repo`: its own sinkrepro, this venv's tools first, offline."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(repo / "src"), "HF_HUB_OFFLINE": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # real runs write __pycache__ into dep dirs; .dvcignore must hide it
    return env


def run(repo: Path, env: dict, *cmd: str, timeout: int = 1800) -> str:
    """Run in repo with `env` added (credentials); returns stdout+stderr, fails the test on a non-zero exit."""
    proc = subprocess.run(cmd, cwd=repo, env={**repo_env(repo), **env}, capture_output=True, text=True,
                          timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{out[-4000:]}"
    return out


def jobs_run(log: str) -> set[str]:
    """The rules a Snakemake log (or dry run) names."""
    return set(re.findall(r"^(?:local)?rule (\w+):", log, re.M))


def round_trip(a: Path, clone: Path, name: str, url: str, env: dict, options=(), targets=("paper_tables",)) -> dict:
    """Push repo `a` to remote `name` at `url`, clone it to `clone`, pull, plan, then build `targets`, each with
    the config dvc.yaml's stages run with (vars.config)."""
    py = sys.executable
    run(a, {}, py, "-m", "dvc", "remote", "add", name, url)
    for option in options:
        run(a, {}, py, "-m", "dvc", "remote", "modify", name, *option)
    run(a, {}, "git", "add", ".dvc/config")
    run(a, {}, "git", "commit", "-qm", f"remote {name}")
    push = run(a, env, py, "-m", "sinkrepro.sharing", "push", "--remote", name)
    run(a, {}, "git", "add", "dvc.lock")
    run(a, {}, "git", "commit", "-qm", f"outputs pushed to {name}", "--allow-empty")
    run(a, {}, "git", "clone", "-q", str(a), str(clone))
    pull = run(clone, env, py, "-m", "sinkrepro.sharing", "pull", "--remote", name)
    config = ("--configfile", read_shared_stages(clone).config)  # the config dvc.yaml shares; last, as it
    planned = jobs_run(run(clone, {}, py, "-m", "snakemake", "-n", *config))  # takes every word after it
    before = {p.name for p in (clone / TABLES).glob("*")} if (clone / TABLES).exists() else set()
    run(clone, {}, py, "-m", "snakemake", "--cores", "2", *targets, *config)
    return {"a": a, "clone": clone, "push": push, "pull": pull, "planned": planned, "before": before}


def check_round_trip(trip: dict, secret: str) -> None:
    """Pushed, pulled, only the paper's jobs planned, and the tables byte-identical to the pusher's."""
    a, clone = trip["a"], trip["clone"]
    assert "files pushed" in trip["push"] or "file pushed" in trip["push"], trip["push"][-2000:]
    assert not trip["before"], "the tables came through git or DVC instead of being rebuilt"
    assert trip["planned"] and "stats" in trip["planned"] and not trip["planned"] & EXPENSIVE_RULES, trip["planned"]
    tables = sorted(p.name for p in (a / TABLES).glob("*"))
    assert tables and sorted(p.name for p in (clone / TABLES).glob("*")) == tables
    for name in tables:
        assert (clone / TABLES / name).read_bytes() == (a / TABLES / name).read_bytes(), name
    for repo in (a, clone):  # the credential is in no file git tracks
        found = subprocess.run(["git", "grep", "-I", "-l", "-F", secret], cwd=repo, capture_output=True, text=True)
        assert found.returncode == 1 and not found.stdout, found.stdout
