"""Write a copy of a SLURM workflow profile scaled to the loopback node (8 CPUs, 20 GB, 4 fake GPUs,
partition debug): same keys, smaller numbers, so the check exercises the real profile's structure.

    python tests/cluster/loopback_profile.py workflow/profiles/slurm OUT_DIR
"""
import sys
from pathlib import Path

import yaml

LIMITS = {"mem_mb": 2000, "runtime": 15, "cpus_per_task": 1, "cpus_per_gpu": 1}


def scale(resources: dict) -> dict:
    out = {k: min(v, LIMITS[k]) if k in LIMITS else v for k, v in resources.items() if k != "gpu_model"}
    if "slurm_partition" in out:
        out["slurm_partition"] = "debug"
    return out


def loopback(profile: dict) -> dict:
    out = dict(profile, jobs=4, retries=0, **{"latency-wait": 5, "slurm-init-seconds-before-status-checks": 1,
                                   "slurm-keep-successful-logs": True})
    out["default-resources"] = scale({**profile.get("default-resources", {}), "slurm_partition": "debug"})
    out["set-resources"] = {rule: scale(res) for rule, res in profile.get("set-resources", {}).items()}
    return out


if __name__ == "__main__":
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    dst.mkdir(parents=True, exist_ok=True)
    profile = yaml.safe_load((src / "config.yaml").read_text())
    (dst / "config.yaml").write_text(yaml.safe_dump(loopback(profile), sort_keys=False))
