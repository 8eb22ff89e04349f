"""Share the weights and expensive outputs through a DVC remote (docs/sharing.md).

dvc.yaml runs one Snakemake target rule per stage, named like the stage. A stage with cached outs
is *shared*: `push` reproduces and uploads it, `pull` downloads it and then re-stamps it with
`snakemake --touch`, because a pull gives every file a fresh mtime in no set order and Snakemake
would otherwise redo the generation and scoring it was meant to skip.

    python -m sinkrepro.sharing {push,pull,touch} [--config FILE] [--remote NAME]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

DVC_FILE = "dvc.yaml"


@dataclass(frozen=True)
class SharedStages:
    config: str               # the Snakemake config file every stage runs with (dvc.yaml vars.config)
    stages: tuple[str, ...]   # stages with cached outs, in file order; each is a Snakemake target rule
    outs: tuple[str, ...]     # their cached outs


def _outs(stage: dict) -> list[tuple[str, dict]]:
    """(path, options) of a stage's outs, written either as `- path` or `- path: {options}`."""
    items = []
    for out in stage.get("outs", []):
        items += [(out, {})] if isinstance(out, str) else [(p, o or {}) for p, o in out.items()]
    return items


def unpersisted_outs(doc: dict) -> list[str]:
    """Outs DVC would delete before re-running their stage (and with them Snakemake's finished jobs)."""
    return [f"{name}: {path}" for name, stage in doc["stages"].items()
            for path, opts in _outs(stage) if not opts.get("persist", False)]


def shared_stages(doc: dict) -> SharedStages:
    """What a dvc.yaml shares; errors name the field to fix."""
    variables = {k: v for entry in doc.get("vars", []) if isinstance(entry, dict) for k, v in entry.items()}
    if "config" not in variables:
        raise ValueError(f"{DVC_FILE}: vars.config is missing; add `- config: config/config.yaml` under vars")
    unpersisted = unpersisted_outs(doc)
    if unpersisted:
        raise ValueError(f"{DVC_FILE}: outs without `persist: true` ({', '.join(unpersisted)}): DVC would delete "
                         "Snakemake's finished jobs before each run; add `persist: true`")
    stages, outs = [], []
    for name, stage in doc["stages"].items():
        cached = [path for path, opts in _outs(stage) if opts.get("cache", True)]
        if cached:
            stages.append(name)
            outs += cached
    return SharedStages(str(variables["config"]), tuple(stages), tuple(outs))


def read_shared_stages(root: Path = Path("."), config: str | None = None) -> SharedStages:
    """Read root/dvc.yaml; `config`, when given, must be the config the stages run with."""
    shared = shared_stages(yaml.safe_load((root / DVC_FILE).read_text()))
    if config is not None and Path(config) != Path(shared.config):
        raise ValueError(f"{DVC_FILE}: vars.config is {shared.config!r} but this run uses {config!r}; the shared "
                         f"outputs come from the config in dvc.yaml, so set vars.config there to {config!r} "
                         f"(and commit it) or pass CONFIG={shared.config}")
    return shared


def touch_command(shared: SharedStages) -> list[str]:
    """Mark the shared stages' outputs up to date, in DAG order, without running any job."""
    return [sys.executable, "-m", "snakemake", "--touch", "--cores", "1", *shared.stages,
            "--configfile", shared.config]


def _run(cmd: list[str], root: Path) -> None:
    # Stage commands call `snakemake`: find the one installed next to this interpreter first.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=root, env=env, check=True)


def _dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def touch(root: Path, shared: SharedStages) -> None:
    missing = [out for out in shared.outs if not (root / out).exists()]
    if missing:
        raise FileNotFoundError(f"pulled outputs missing: {', '.join(missing)}; run `make pull` "
                                "(dvc pull) first, or `dvc repro` to build them")
    _run(touch_command(shared), root)


def push(root: Path, shared: SharedStages, remote: str | None) -> None:
    """Bring the shared stages up to date (a no-op where Snakemake has nothing to do), then upload."""
    _run(_dvc("repro", *shared.stages), root)
    _run(_dvc("push", *(["-r", remote] if remote else []), *shared.stages), root)
    print("Pushed. Commit dvc.lock so others can pull exactly these outputs.")


def pull(root: Path, shared: SharedStages, remote: str | None) -> None:
    _run(_dvc("pull", *(["-r", remote] if remote else []), *shared.stages), root)
    touch(root, shared)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sinkrepro.sharing", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["push", "pull", "touch"])
    parser.add_argument("--config", help="the config this run uses; must match vars.config in dvc.yaml")
    parser.add_argument("--remote", help="DVC remote name (default: the remote set with `dvc remote add -d`)")
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root")
    args = parser.parse_args(argv)
    try:
        shared = read_shared_stages(args.root, args.config)
        if args.action == "touch":
            touch(args.root, shared)
        else:
            {"push": push, "pull": pull}[args.action](args.root, shared, args.remote)
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    except subprocess.CalledProcessError as err:
        sys.exit(f"error: `{' '.join(map(str, err.cmd))}` exited with {err.returncode}")


if __name__ == "__main__":
    main()
