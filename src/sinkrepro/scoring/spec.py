"""A scorer directory: `scorer.json` plus the local files it names, each with its sha256.

    scorer.json = {
      "metric": "clip_t" | "hps" | "imagereward" | "lpips" | "fid",
      "scorer_id": "clip_t/ViT-B-32/openai",   # what the score rows call this scorer
      "standin": bool,                          # random-init stand-in (not a scientific result)
      "package": "open_clip_torch",             # whose code computes the score (its version is recorded)
      "source": "...",                          # where the weights came from
      "config": {...},                          # architecture, per metric
      "files": {"weights": {"path": "...", "sha256": "..."}, ...}
    }
Real and stand-in scorers share this layout and one loading path; only the files differ.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sinkrepro.io import sha256_bytes, sha256_file, write_text
from sinkrepro.provenance import package_version
from sinkrepro.vocab import SCORER_NAMES

SPEC_FILE = "scorer.json"


@dataclass(frozen=True)
class ScorerSpec:
    root: Path
    metric: str
    scorer_id: str
    standin: bool
    package: str
    source: str
    config: dict
    files: dict  # role -> {"path": relative path, "sha256": hex}

    @classmethod
    def load(cls, root: str | Path, *, verify: bool = True) -> "ScorerSpec":
        root = Path(root)
        path = root / SPEC_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: build the stand-ins (sinkrepro.scoring.build_standin_scorers) "
                "or fetch the real weights (sinkrepro.scoring.fetch_scorer_weights) first"
            )
        raw = json.loads(path.read_text())
        missing = [k for k in ("metric", "scorer_id", "standin", "package", "config", "files") if k not in raw]
        if missing:
            raise ValueError(f"{path} lacks {missing}")
        if raw["metric"] not in SCORER_NAMES:
            raise ValueError(f"{path}: metric {raw['metric']!r} is not one of {SCORER_NAMES}")
        spec = cls(root, raw["metric"], raw["scorer_id"], bool(raw["standin"]), raw["package"],
                   raw.get("source", ""), raw["config"], raw["files"])
        if verify:
            spec.verify()
        return spec

    def file(self, role: str) -> Path:
        if role not in self.files:
            raise KeyError(f"{self.root / SPEC_FILE} names no {role!r} file")
        return self.root / self.files[role]["path"]

    def verify(self) -> None:
        """Every named file exists and has its recorded sha256 (weights are never silently swapped)."""
        for role, info in self.files.items():
            path = self.root / info["path"]
            if not path.is_file():
                raise FileNotFoundError(f"{path} ({self.metric} {role}) is missing; rebuild or re-fetch {self.root}")
            digest = sha256_file(path)
            if digest != info["sha256"]:
                raise ValueError(
                    f"{path} ({self.metric} {role}) has sha256 {digest}, but {self.root / SPEC_FILE} records "
                    f"{info['sha256']}; the weights changed: rebuild or re-fetch {self.root}"
                )

    @property
    def weights_sha256(self) -> str:
        """One file's sha256, or a digest of all (role=sha256 lines) when the scorer has several files."""
        if len(self.files) == 1:
            return next(iter(self.files.values()))["sha256"]
        lines = "".join(f"{role}={info['sha256']}\n" for role, info in sorted(self.files.items()))
        return sha256_bytes(lines.encode())

    @property
    def package_version(self) -> str:
        return package_version(self.package)


def write_spec(root: Path, *, metric: str, scorer_id: str, standin: bool, package: str, source: str,
               config: dict, files: dict[str, str]) -> Path:
    """Hash the named files (role -> path relative to root) and write scorer.json beside them."""
    entries = {role: {"path": rel, "sha256": sha256_file(root / rel)} for role, rel in files.items()}
    doc = dict(metric=metric, scorer_id=scorer_id, standin=standin, package=package, source=source,
               config=config, files=entries)
    write_text(root / SPEC_FILE, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return root / SPEC_FILE
