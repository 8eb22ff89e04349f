"""Recovering from a killed run: Snakemake's stale locks.

Snakemake locks a working directory with files in `.snakemake/locks` and deletes them when it
exits; after `kill -9` they stay, and every later run stops with "Directory cannot be locked".
A lock is stale when no Snakemake process on this machine works in this directory. Runs on other
machines sharing the directory cannot be seen from here: with those, run `snakemake --unlock`
yourself once they are gone.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import psutil


def live_snakemake_runs(workdir: Path) -> list[int]:
    """PIDs of other Snakemake processes whose working directory is `workdir` (not us, not our parents)."""
    ours = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    workdir = workdir.resolve()
    live = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.pid in ours or not any("snakemake" in part for part in proc.info["cmdline"] or ()):
                continue
            if Path(proc.cwd()).resolve() == workdir:
                live.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return live


def clear_stale_locks(workdir: str | os.PathLike = ".") -> list[str]:
    """Remove `.snakemake/locks` when no Snakemake run is alive in `workdir`; return what was done."""
    workdir = Path(workdir)
    locks = workdir / ".snakemake" / "locks"
    if not locks.is_dir() or not any(locks.iterdir()):
        return []
    live = live_snakemake_runs(workdir)
    if live:
        return []
    shutil.rmtree(locks)
    return [f"removed the stale locks of a killed run ({locks}): no Snakemake process works in {workdir.resolve()}"]
