"""paper/provenance.json: for each table and figure, the md5 of its input files, and the run's
config hash, git commit, package versions and weight hashes. Written by the `provenance` rule
(workflow/rules/provenance.smk), checked by `sinkrepro verify`. Kept apart from
sinkrepro.provenance (the stand-in notice), which the stats code imports: an edit here reruns only
the provenance job.

Hashes are md5 of a file's bytes: the hash DVC records for a file (in dvc.lock, or in the .dir
listing of a tracked directory), so an entry can be looked up in the DVC cache."""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from sinkrepro.io import file_digest
from sinkrepro.layout import PROVENANCE
from sinkrepro.provenance import STANDIN_NOTICE, package_version

RUNTIME_KEYS = ("device",)
PACKAGES = ("sinkrepro", "torch", "diffusers", "transformers", "open_clip_torch", "lpips", "pytorch-fid", "numpy",
            "pandas", "scipy", "statsmodels", "snakemake", "snakemake-executor-plugin-slurm", "dvc")


def md5_file(path: Path) -> str:
    """The md5 DVC records for a file."""
    return file_digest(path, "md5")


def files_of(root: Path, rel: str) -> list[str]:
    """`rel` itself when a file, else the files under it (Snakemake's timestamp markers left out)."""
    path = root / rel
    if path.is_dir():
        return sorted(str(p.relative_to(root)) for p in path.rglob("*")
                      if p.is_file() and not p.name.startswith(".snakemake"))
    return [rel]


def hash_files(root: Path, rels) -> dict[str, str]:
    """relative path -> md5; a missing file -> 'missing'."""
    return {rel: md5_file(root / rel) if (root / rel).is_file() else "missing" for rel in rels}


def dir_md5(files: dict[str, str]) -> str:
    """One hash of a directory: md5 of its sorted 'path md5' lines."""
    return hashlib.md5("".join(f"{p} {h}\n" for p, h in sorted(files.items())).encode()).hexdigest()


def git_commit(root: Path) -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def dvc_outs(root: Path) -> tuple[str, ...]:
    """The cached (shared) outs of root/dvc.yaml; none without one."""
    from sinkrepro.sharing import DVC_FILE, read_shared_stages

    return read_shared_stages(root).outs if (root / DVC_FILE).exists() else ()


def outputs_config(config: dict) -> dict:
    """The config less its runtime knobs (the global `device`, scorers' `batch_size`): what decides the
    outputs. A knob change reruns nothing, so it must not change the recorded config either."""
    from sinkrepro.config import SCORER_RUNTIME_KEYS

    out = {k: v for k, v in config.items() if k not in RUNTIME_KEYS}
    out["scorers"] = {name: {k: v for k, v in cfg.items() if k not in SCORER_RUNTIME_KEYS}
                      for name, cfg in config.get("scorers", {}).items()}
    return out


def build_provenance(root: Path, paper_inputs: dict, weight_dirs, config: dict, standin: bool) -> dict:
    """The record for `paper_inputs` (table/figure file -> files and directories its job read), made
    with `config` (outputs_config of the run's config)."""
    from sinkrepro.grid import config_hash

    outs = dvc_outs(root)

    def dvc_out(rel: str) -> str | None:  # the DVC-shared directory holding rel, if any
        return next((out for out in outs if rel == out or rel.startswith(out.rstrip("/") + "/")), None)

    inputs = {rel: {"md5": md5, "dvc_out": dvc_out(rel)} for rel, md5 in hash_files(
        root, sorted({f for deps in paper_inputs.values() for dep in deps for f in files_of(root, dep)})).items()}
    weights = {}
    for rel in weight_dirs:
        files = hash_files(root, files_of(root, rel))
        weights[rel] = {"md5": dir_md5(files), "files": files, "dvc_out": dvc_out(rel)}
    record = {"notice": STANDIN_NOTICE} if standin else {}
    return {**record,
            "config": {"hash": config_hash(config), "values": config},
            "git_commit": git_commit(root),
            "packages": {name: package_version(name) for name in PACKAGES},
            "weights": weights,
            "outputs": {out: {"md5": hash_files(root, [out])[out],
                              "inputs": sorted({f for dep in deps for f in files_of(root, dep)})}
                        for out, deps in sorted(paper_inputs.items())},
            "inputs": inputs}


def check_provenance(root: Path, record: dict, config_file: Path | None = None) -> list[tuple[str, str, list[str]]]:
    """Recompute every hash the record holds: (file, what is wrong, the outputs it is an input of).
    Weight directories that are not here at all (a results tree shared without them) are skipped.
    With `config_file`, also check that it is the config the outputs were made with."""
    from sinkrepro.config import load_config
    from sinkrepro.grid import config_hash

    readers: dict = {}
    for out, entry in record["outputs"].items():
        for rel in entry["inputs"]:
            readers.setdefault(rel, []).append(out)
    expected = {out: entry["md5"] for out, entry in record["outputs"].items()}
    expected |= {rel: entry["md5"] for rel, entry in record["inputs"].items()}
    weights = {rel: entry for rel, entry in record["weights"].items() if (root / rel).is_dir()}  # absent: not shared here
    for entry in weights.values():
        expected |= entry["files"]
    problems = []
    for rel, recorded in sorted(expected.items()):
        actual = hash_files(root, [rel])[rel]
        if actual != recorded:
            problems.append((rel, f"md5 {actual} but {PROVENANCE} records {recorded}", readers.get(rel, [])))
    for rel, entry in weights.items():
        extra = sorted(set(files_of(root, rel)) - set(entry["files"]))
        if extra:
            problems.append((rel, f"holds files {PROVENANCE} does not list: {', '.join(extra)}", []))
    if config_file is not None:
        actual = config_hash(outputs_config(load_config(config_file)))
        if actual != record["config"]["hash"]:
            problems.append((str(config_file), f"config hash {actual} but {PROVENANCE} records "
                                               f"{record['config']['hash']}: the outputs came from another config "
                                               f"(its values are in {PROVENANCE})", []))
    return problems


def write_provenance(path: Path, record: dict) -> None:
    from sinkrepro.io import write_text

    write_text(path, json.dumps(record, indent=1, sort_keys=True) + "\n")
