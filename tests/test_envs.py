"""The conda env for cluster users lists exactly the pins the Makefile installs."""
from pathlib import Path

import yaml

ENVS = Path(__file__).resolve().parents[1] / "envs"


def requirement_lines(*names):
    lines = []
    for name in names:
        for line in (ENVS / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line:
                lines.append(line)
    return lines


def test_conda_env_pins_match_the_pip_sets():
    env = yaml.safe_load((ENVS / "sinkrepro.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == requirement_lines("torch.txt", "core.txt")
    assert (ENVS / "sinkrepro.post-deploy.sh").stat().st_mode & 0o111
