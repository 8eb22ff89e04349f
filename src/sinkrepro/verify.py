"""`sinkrepro verify`: check the results tree against its own records, on demand, rerunning nothing.

- every image against the sha256 its shard's manifest records;
- every per-image score row against the image it names (and that image's manifest);
- every FID row against its image set (sha256 over the set's sorted image hashes);
- paper/provenance.json, where a run wrote one: every table, figure, input file and weight file
  against the md5 it records, and the config file against its config hash.
A changed image is named with the outputs built from it: the score files that read it (as the
scored image or as a pairwise baseline), the FID files of its set, and the experiments' stats and
paper figures and claims that read those scores.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sinkrepro import layout
from sinkrepro.io import read_jsonl, sha256_bytes, sha256_file
from sinkrepro.provenance_record import check_provenance

IMAGES, SCORES, STATS = Path("results/images"), Path("results/scores"), Path("results/stats")
FIGURES, CLAIMS = Path("paper/figures"), Path("paper/claims.md")
PROVENANCE = Path(layout.PROVENANCE)


@dataclass
class Report:
    problems: dict = field(default_factory=dict)              # file -> what is wrong with it
    built_from: dict = field(default_factory=lambda: defaultdict(set))  # image -> outputs that read it
    shard_of: dict = field(default_factory=dict)              # image -> its shard directory
    counts: dict = field(default_factory=lambda: defaultdict(int))

    @property
    def ok(self) -> bool:
        return not self.problems


def _short(digest) -> str:
    return f"{str(digest)[:12]}..."


def _check_images(root: Path, report: Report) -> dict:
    """(model, condition, seed) -> {file name: (image path, manifest sha256)}; flags changed images."""
    sets = defaultdict(dict)
    for manifest in sorted((root / IMAGES).rglob("manifest.jsonl")):
        shard = manifest.parent
        for row in read_jsonl(manifest):
            image = shard / row["file"]
            report.counts["images"] += 1
            report.shard_of[image] = shard
            sets[(row["model"], row["condition"], int(row["seed"]))][row["file"]] = (image, row["sha256"])
            if not image.is_file():
                report.problems[image] = f"missing; {manifest.relative_to(root)} lists it"
            elif (actual := sha256_file(image)) != row["sha256"]:
                report.problems[image] = (f"sha256 {_short(actual)} but {manifest.relative_to(root)} records "
                                          f"{_short(row['sha256'])}")
    return sets


def _check_scores(root: Path, sets: dict, report: Report) -> None:
    for path in sorted((root / SCORES).rglob("*.parquet")):
        frame = pd.read_parquet(path)
        for row in frame.to_dict("records"):
            key = (row["model"], row["condition"], int(row["seed"]))
            if row["metric"] == "fid":
                report.counts["FID rows"] += 1
                ref = (row["model"], row["reference_condition"], int(row["reference_seed"]))
                for image, _ in [*sets[key].values(), *sets[ref].values()]:
                    report.built_from[image].add(path)
                recorded = "".join(sorted(sha + "\n" for _, sha in sets[key].values()))
                if sha256_bytes(recorded.encode()) != row["image_sha256"]:
                    report.problems[path] = (f"its FID row was computed from another set of {key[1]} seed {key[2]} "
                                             "images than the manifests now list")
                continue
            report.counts["score rows"] += 1
            image, recorded = sets[key].get(row["file"], (None, None))
            if row.get("reference_file"):
                ref_image, _ = sets[(row["model"], row["reference_condition"], key[2])].get(row["reference_file"],
                                                                                            (None, None))
                if ref_image is not None:
                    report.built_from[ref_image].add(path)
            if image is None:
                report.problems[path] = f"scores {row['file']} of {key[1]} seed {key[2]}, which no manifest lists"
                continue
            report.built_from[image].add(path)
            if row["image_sha256"] != recorded:
                report.problems.setdefault(path, f"its row for {image.relative_to(root)} records sha256 "
                                                 f"{_short(row['image_sha256'])}, the manifest {_short(recorded)}")


def _downstream(root: Path, report: Report) -> None:
    """Stats and figures of the experiments whose stats name a condition a changed image belongs to."""
    stats = {p: pd.read_parquet(p) for p in sorted((root / STATS).glob("*.parquet"))}
    for image in [p for p in report.problems if p in report.shard_of]:
        condition = image.parent.parent.parent.name
        for path, frame in stats.items():
            named = {v for col in ("condition", "reference", "control") if col in frame for v in frame[col].dropna()}
            if condition in named:
                built = [*(root / STATS).glob(f"{path.stem}.*"), *(root / FIGURES / path.stem).glob("*"), root / CLAIMS]
                report.built_from[image] |= {p for p in built if p.is_file()}


def _check_provenance(root: Path, report: Report, config: Path | None) -> None:
    if not (root / PROVENANCE).is_file():
        return
    record = json.loads((root / PROVENANCE).read_text())
    report.counts["provenance entries"] = len(record["outputs"]) + len(record["inputs"]) + len(record["weights"])
    for rel, reason, readers in check_provenance(root, record, config):
        report.problems.setdefault(root / rel, reason)
        report.built_from[root / rel] |= {root / out for out in readers}


def verify(root: str | Path = ".", config: str | Path | None = None) -> Report:
    """`config`: also check it is the config paper/provenance.json records (a path under root)."""
    root = Path(root)
    report = Report()
    sets = _check_images(root, report)
    _check_scores(root, sets, report)
    _downstream(root, report)
    _check_provenance(root, report, None if config is None else root / config)
    return report


def format_report(report: Report, root: str | Path = ".") -> str:
    root = Path(root)
    lines = []
    for path, reason in sorted(report.problems.items()):
        lines.append(f"CHANGED {path.relative_to(root)}: {reason}")
        built = sorted(report.built_from.get(path, ()))
        if built:
            lines.append("  outputs built from it: " + ", ".join(str(p.relative_to(root)) for p in built))
        if path in report.shard_of:
            lines.append(f"  fix: snakemake --forcerun {report.shard_of[path].relative_to(root)}")
    counts = ", ".join(f"{n} {what}" for what, n in sorted(report.counts.items()))
    lines.append(f"checked {counts or 'nothing (no results/ here)'}: "
                 + ("all match their records" if report.ok else f"{len(report.problems)} file(s) do not"))
    return "\n".join(lines)
