"""A killed run recovered by rerunning the same command; library code as an input; runtime knobs
that rerun nothing; byte-identical reruns. All on a one-experiment mini config of the tiny stand-ins."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from sinkrepro import layout

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = """prompt_id\tprompt\tcategory
m0\ta photo of a teapot\tsingle_object
m1\ta photo of three apples\tcounting
m2\ta photo of a purple umbrella\tcolors
m3\ta photo of a cat left of a chair\tposition
"""
MINI = {
    "shard_size": 4, "batch_size": 4, "device": "cpu",
    "models": {"tiny-sd3": {"family": "sd3", "source": "standin", "heads": 4,
                            "sampler": {"steps": 2, "guidance": 5.0, "height": 32, "width": 32,
                                        "max_sequence_length": 16}}},
    "prompt_sets": {"mini": {"source": "local", "path": "prompts.tsv"}},
    "scorers": {"clip_t": {"source": "standin", "batch_size": 4}, "lpips": {"source": "standin", "batch_size": 4}},
    "stats": {"bootstrap_resamples": 200},
    "experiments": {"sweep": {
        "model": "tiny-sd3", "prompts": "mini", "seeds": [0], "layers": [1], "k": [1],
        "conditions": {"sink": {"preset": "dsp"}, "random": {"preset": "dsp_random"}},
        "contrasts": [["sink", "random"]], "metrics": ["clip_t", "lpips"], "tables": ["table2"],
    }},
}
OUTPUTS = ("results", "resources", "paper")


def workdir(root: Path, config: dict = MINI) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "prompts.tsv").write_text(PROMPTS)
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root


def command(work: Path, *args, config: str = "config.yaml", snakefile: Path = ROOT / "workflow" / "Snakefile"):
    return [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(work), "--cores", "2",
            "--configfile", str(work / config), *args]


def env(src: Path = ROOT / "src") -> dict:
    return {**os.environ, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1"}


def snakemake(work: Path, *args, src: Path = ROOT / "src", **where):
    done = subprocess.run(command(work, *args, **where), env=env(src), capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def planned(output: str) -> dict[str, int]:
    """Job counts of a dry run's 'Job stats' table ({} when there is nothing to do)."""
    block = output.split("Job stats:")[1].split("\n\n")[0] if "Job stats:" in output else ""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M) if m.group(1) != "total"}


def tree(work: Path) -> dict[str, bytes]:
    return {str(p.relative_to(work)): p.read_bytes() for top in OUTPUTS for p in sorted((work / top).rglob("*"))
            if p.is_file()}


def mini_runs(tmp_path_factory):
    """An uninterrupted run, and beside it (concurrently) a run killed with SIGKILL to its whole process
    group mid-generation, then the same command again (the `runs` fixture, tests/conftest.py)."""
    reference, killed = workdir(tmp_path_factory.mktemp("reference")), workdir(tmp_path_factory.mktemp("killed"))
    with open(reference / "run.log", "w") as log:
        uninterrupted = subprocess.Popen(command(reference), env=env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        proc = subprocess.Popen(command(killed), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        images = killed / "results" / "images"
        deadline = time.monotonic() + 1800
        try:
            while not (images.exists() and any(images.rglob(".shard*.tmp"))):
                assert proc.poll() is None, "the run ended before generation started"
                assert time.monotonic() < deadline, "no generation started within 30 minutes"
                time.sleep(0.05)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        left = {"temps": sorted(images.rglob(".shard*.tmp")),
                "locks": sorted((killed / ".snakemake" / "locks").glob("*"))}
        rerun = snakemake(killed)
        assert uninterrupted.wait(timeout=3000) == 0, (reference / "run.log").read_text()[-3000:]
    finally:
        if uninterrupted.poll() is None:  # a failure above: don't leave it running
            uninterrupted.kill()
            uninterrupted.wait()
    return SimpleNamespace(reference=reference, log=(reference / "run.log").read_text(), recovered=killed,
                           left=left, rerun=rerun)


@pytest.mark.slow
def test_rerun_after_kill_completes_byte_identical(runs):
    assert re.search(r"Using workflow specific profile \S*profiles/default", runs.log)
    assert runs.left["temps"] and runs.left["locks"], "the kill must leave a half-written shard and Snakemake's locks"
    assert "removed the stale locks of a killed run" in runs.rerun
    work = runs.recovered
    assert not [p for top in OUTPUTS for p in (work / top).rglob(".*.tmp")], "killed writers' temps are removed"
    ours, theirs = tree(work), tree(runs.reference)
    assert sorted(ours) == sorted(theirs)
    differ = [name for name in ours if ours[name] != theirs[name]]
    assert not differ, f"files differ between the recovered and the uninterrupted run: {differ}"
    assert any(name.endswith(".pdf") for name in ours)


def test_stale_lock_of_a_dead_run_is_removed_and_a_live_ones_kept(tmp_path):
    from sinkrepro.recovery import clear_stale_locks

    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text("results/x\n")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "snakemake"], cwd=tmp_path)
    try:
        time.sleep(0.5)
        assert clear_stale_locks(tmp_path) == [] and (locks / "0.output.lock").exists()
    finally:
        live.kill()
        live.wait()
    assert clear_stale_locks(tmp_path) and not locks.exists()


def edited_copy(tmp_path: Path, module: str | None) -> Path:
    """src/ and workflow/ copied, with `module` (a file under src/sinkrepro) given one more comment line."""
    copy = tmp_path / "repo"
    for part in ("src", "workflow"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    if module:
        target = copy / "src" / "sinkrepro" / module
        target.write_text(target.read_text() + "# edited\n")
    return copy


@pytest.mark.slow
@pytest.mark.parametrize("module,rerun,not_rerun", [
    (None, set(), {"generate", "score", "stats", "paper_tables", "model", "scorer"}),
    ("stats/analysis.py", {"stats", "paper_tables", "paper_claims", "stats_figure"}, {"generate", "score", "model", "scorer"}),
    ("attention/runtime.py", {"generate", "score", "stats", "paper_claims", "panels_figure"}, {"model", "scorer"}),
])
def test_library_edits_rerun_the_jobs_that_run_that_code(reference, tmp_path, module, rerun, not_rerun):
    copy = edited_copy(tmp_path, module)
    jobs = planned(snakemake(reference, "-n", src=copy / "src", snakefile=copy / "workflow" / "Snakefile"))
    assert rerun <= set(jobs) and not (not_rerun & set(jobs)), jobs
    if module == "attention":
        assert jobs["generate"] == 3  # every shard: base, sink, random


@pytest.mark.slow
def test_runtime_knobs_rerun_nothing(reference):
    knobs = yaml.safe_load(yaml.safe_dump(MINI))
    knobs["device"] = "auto"
    knobs["scorers"]["clip_t"]["batch_size"] = 1
    work = reference
    (work / "knobs.yaml").write_text(yaml.safe_dump(knobs))
    out = snakemake(work, "-n", config="knobs.yaml")
    assert planned(out) == {}, out[-2000:]
    # a scoring policy change reruns the scores it governs, and still rebuilds no scorer
    knobs["scorers"]["clip_t"]["tolerance"] = 0.5
    (work / "knobs.yaml").write_text(yaml.safe_dump(knobs))
    jobs = planned(snakemake(work, "-n", config="knobs.yaml"))
    assert jobs.get("score") == 3 and "scorer" not in jobs and "generate" not in jobs, jobs


# ---- every message names a rule, target or command that exists -----------------------------

def workflow_names():
    """Rule names, the path patterns in the rule files, Makefile targets, `sinkrepro` subcommands."""
    from sinkrepro.cli import build_parser

    smk = [*(ROOT / "workflow" / "rules").glob("*.smk"), ROOT / "workflow" / "Snakefile"]
    text = "\n".join(p.read_text() for p in smk)
    rules = set(re.findall(r"^rule (\w+):", text, re.M))
    quoted = re.findall(r"\"((?:results|resources|paper)/[^\"]+)\"", text)
    quoted += [v for v in vars(layout).values() if isinstance(v, str) and v.startswith(("results/", "resources/", "paper/"))]
    paths = {re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(p)) for p in quoted}  # {wildcard} -> one path part
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    return rules, paths, targets, commands


def strings_of(path: Path) -> list[str]:
    """Every string literal of a module, f-strings joined with their fields as <...>."""
    import ast

    nodes = list(ast.walk(ast.parse(path.read_text())))
    joined = [n for n in nodes if isinstance(n, ast.JoinedStr)]
    parts = {id(v) for n in joined for v in n.values}
    out = ["".join(v.value if isinstance(v, ast.Constant) else "<x>" for v in n.values) for n in joined]
    return out + [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)
                  and id(n) not in parts]


def wrong_names(path: Path) -> list[str]:
    rules, paths, targets, commands = workflow_names()
    wrong = []
    for text in strings_of(path):
        wrong += [f"rule {r}" for r in re.findall(r"\bthe `?(\w+)`? rule\b", text) if r not in rules]
        wrong += [f"rule {r}" for r in re.findall(r"--forcerun (\w+)\b(?!/)", text) if r not in rules]
        wrong += [f"make {t}" for t in re.findall(r"(?:`|run )make ([\w-]+)", text) if t not in targets]
        wrong += [f"sinkrepro {c}" for c in re.findall(r"`sinkrepro ([\w-]+)", text) if c not in commands]
        for target in re.findall(r"\bsnakemake (?:-\S+ )*((?:results|resources|paper)/[^\s`)\"']+)", text):
            target = re.sub(r"<[^>]*>", "[^/]+", target.rstrip(".,;"))
            if not any(re.fullmatch(p, target.replace("[^/]+", "x")) for p in paths):
                wrong.append(f"snakemake target {target}")
    return wrong


SOURCES = sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "workflow" / "scripts").glob("*.py")])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_messages_name_rules_targets_and_commands_that_exist(path):
    assert wrong_names(path) == []


def test_the_name_check_catches_a_wrong_name(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('raise ValueError(f"run the fetch rule, `make fetch`, then snakemake resources/models/<n>/x.json")\n'
                   'ok = "the model rule; `make verify`; `sinkrepro verify`; snakemake resources/models/<name>"\n')
    assert wrong_names(bad) == ["rule fetch", "make fetch", "snakemake target resources/models/[^/]+/x.json"]


# ---- byte-identical figures ------------------------------------------------------------------

DRAW = """
import glob, sys
from sinkrepro.paper.figures import panel_figure
shards = sorted(glob.glob("img/tiny-sd3/*/seed*/shard000"))
panel_figure(["scores.parquet"], shards, png=sys.argv[1] + ".png", pdf=sys.argv[1] + ".pdf",
             condition="cf-k1-L1", control="cf_random-k1-L1")
"""


def test_two_processes_draw_byte_identical_panels(tmp_path):
    """The panels figure (images, text, constrained layout) drawn twice from the same inputs, each in a
    fresh process with a different environment size (which moves memory addresses)."""
    from helpers import image_shards

    _, scores = image_shards(tmp_path / "img", n_prompts=6, seeds=(0,))
    scores.to_parquet(tmp_path / "scores.parquet")
    for name, pad in (("a", ""), ("b", "x" * 4099)):
        subprocess.run([sys.executable, "-c", DRAW, name], cwd=tmp_path, check=True, timeout=600,
                       env={**env(), "PAD": pad, "MPLBACKEND": "Agg"})
    for ext in ("pdf", "png"):
        assert (tmp_path / f"a.{ext}").read_bytes() == (tmp_path / f"b.{ext}").read_bytes(), ext
