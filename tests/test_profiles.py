"""Execution profiles: every workflow profile plans the default config's jobs, and what the SLURM
profiles ask of sbatch is what the installed executor plugin builds from the planned resources.

Dry runs only, in a copy of the checkout (Snakemake's .snakemake/ goes there, not into the source
tree): fake sbatch/squeue/sacct/... on PATH record any call, so no SLURM is needed and the tests
prove that planning never submits. The real loopback-SLURM run is tests/cluster/ (by hand).
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

import snakemake_executor_plugin_slurm as slurm_plugin
import snakemake_executor_plugin_slurm_jobstep as jobstep_plugin
from snakemake_executor_plugin_slurm.submit_string import get_submit_command
from snakemake_executor_plugin_slurm.utils import set_gres_string

from roundtrip import checkout_copy

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "workflow" / "profiles"
GPU_RULES = {"generate", "score", "fid"}
SLURM_TOOLS = ("sbatch", "srun", "squeue", "sacct", "scontrol", "sinfo", "sshare", "sacctmgr", "scancel")
# Resource names Snakemake itself reads; the executor plugin's are read from its source below.
SNAKEMAKE_RESOURCES = {"mem_mb", "runtime", "gpu", "disk_mb", "tmpdir"}


@pytest.fixture(scope="module")
def fake_slurm(tmp_path_factory):
    """A PATH dir whose SLURM tools log their name and fail."""
    bin_dir = tmp_path_factory.mktemp("fake-slurm")
    calls = bin_dir / "calls.log"
    for tool in SLURM_TOOLS:
        script = bin_dir / tool
        script.write_text(f"#!/bin/sh\necho {tool} >> {calls}\nexit 1\n")
        script.chmod(0o755)
    return SimpleNamespace(bin=bin_dir, calls=calls)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A copy of the checkout to plan in, with the root's profiles/ link (checkout_copy copies files)."""
    dest = checkout_copy(tmp_path_factory.mktemp("repo"))
    (dest / "profiles").symlink_to("workflow/profiles")
    return dest


def snakemake_dry_run(work, fake_slurm, *args):
    """`snakemake -n --forceall --nolock *args` in `work`, importing its own sinkrepro, with the fake SLURM tools."""
    env = {**os.environ, "PATH": f"{fake_slurm.bin}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(work / "src")}
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall", "--nolock", *args], cwd=work,
                          env=env, capture_output=True, text=True, timeout=300)


def dry_run(profile, work, fake_slurm, *extra):
    return snakemake_dry_run(work, fake_slurm, "--workflow-profile", str(profile), *extra)


def parse_value(text):
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def planned_jobs(stdout):
    """(rule, outputs, resources, threads) of each job block of a dry-run listing."""
    jobs = []
    for block in re.split(r"\n(?=rule \w+:)", stdout):
        head = re.match(r"rule (\w+):", block)
        if not head:
            continue
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, flags=re.M))
        resources = {}
        for item in fields.get("resources", "").split(", "):
            if "=" in item:
                key, value = item.split("=", 1)
                resources[key] = parse_value(value)
        jobs.append(SimpleNamespace(rule=head.group(1), outputs=fields.get("output", ""),
                                    resources=resources, threads=int(fields.get("threads", 1))))
    return jobs


@pytest.fixture(scope="module")
def plans(work, fake_slurm):
    """Dry runs: the default profile on the default config, every profile on it with device=auto."""
    runs = {("default", "cpu"): dry_run(PROFILES / "default", work, fake_slurm)}
    for name in ("default", "local-gpus", "slurm", "slurm-gres"):
        runs[(name, "auto")] = dry_run(PROFILES / name, work, fake_slurm, "--config", "device=auto")
    for key, run in runs.items():
        assert run.returncode == 0, f"dry run {key} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return {key: planned_jobs(run.stdout) for key, run in runs.items()}


def test_every_profile_plans_the_same_jobs(plans):
    job_sets = {key: sorted((j.rule, j.outputs) for j in jobs) for key, jobs in plans.items()}
    reference = job_sets[("default", "cpu")]
    assert {j[0] for j in reference} >= GPU_RULES | {"model", "scorer", "stats", "paper_tables"}
    for key, jobs in job_sets.items():
        assert jobs == reference, f"profile {key[0]} (device={key[1]}) plans other jobs"


def test_planning_never_submits(plans, fake_slurm):
    called = fake_slurm.calls.read_text().split() if fake_slurm.calls.exists() else []
    assert not {"sbatch", "srun", "scancel"} & set(called)


def test_gpu_rules_claim_one_gpu_unless_the_config_is_cpu(plans):
    for key in [("default", "auto"), ("local-gpus", "auto"), ("slurm", "auto")]:
        for job in plans[key]:
            assert job.resources.get("gpu", 0) == (1 if job.rule in GPU_RULES else 0), (key, job.rule)
    for job in plans[("default", "cpu")]:
        assert job.resources.get("gpu", 0) == 0, job.rule


def test_local_gpus_profile_caps_gpu_jobs():
    cfg = yaml.safe_load((PROFILES / "local-gpus" / "config.yaml").read_text())
    assert isinstance(cfg["resources"]["gpu"], int) and cfg["resources"]["gpu"] >= 1


def plugin_resource_names():
    """Every resource name the installed plugin and its jobstep read (job.resources.get("x") / .x)."""
    names = set()
    for module in (slurm_plugin, jobstep_plugin):
        for source in Path(module.__file__).parent.glob("*.py"):
            text = source.read_text()
            names |= set(re.findall(r"resources\.get\(\s*[\"'](\w+)[\"']", text))
            names |= set(re.findall(r"resources\.(\w+)\b(?!\()", text))
    return names


@pytest.mark.parametrize("name", ["default", "local-gpus", "slurm", "slurm-gres"])
def test_profile_resources_are_names_snakemake_or_the_plugin_reads(name):
    cfg = yaml.safe_load((PROFILES / name / "config.yaml").read_text())
    used = set(cfg.get("default-resources") or {}) | set(cfg.get("resources") or {})
    for rule, resources in (cfg.get("set-resources") or {}).items():
        assert re.search(rf"^rule {rule}:", rules_text(), flags=re.M), f"{name}: no rule {rule}"
        used |= set(resources)
    known = SNAKEMAKE_RESOURCES | plugin_resource_names()
    assert {"slurm_partition", "cpus_per_gpu", "gres", "gpu_model"} <= known
    assert used <= known, f"{name}: unknown resource names {used - known}"


def rules_text():
    files = [ROOT / "workflow" / "Snakefile", *(ROOT / "workflow" / "rules").glob("*.smk")]
    return "\n".join(p.read_text() for p in files)


class JobResources(dict):
    __getattr__ = dict.__getitem__


def sbatch_args(job):
    """The sbatch command line the installed plugin builds for a planned job (minus the wrap)."""
    fake = SimpleNamespace(name=job.rule, threads=job.threads, resources=JobResources(job.resources))
    params = {"run_uuid": "uuid", "slurm_logfile": "log", "comment_str": job.rule, "account": "",
              "partition": "", "workdir": str(ROOT)}
    return get_submit_command(fake, params) + set_gres_string(fake)


def test_slurm_profile_asks_for_gpus_with_cpus_per_gpu(plans):
    for job in plans[("slurm", "auto")]:
        if job.rule in ("default", "all"):
            continue
        args = sbatch_args(job)
        assert "--gres" not in args
        assert re.search(rf"--mem {job.resources['mem_mb']}\b", args) and re.search(r" -t \d+", args)
        if job.rule in GPU_RULES:
            assert "--gpus=1" in args and "--cpus-per-gpu=4" in args and "--cpus-per-task" not in args, args
            assert job.resources["slurm_partition"] == "gpu"
        else:
            assert "--gpus" not in args and "--cpus-per-task=1" in args, args
            assert "slurm_partition" not in job.resources


def test_slurm_gres_profile_asks_for_gres_only(plans):
    for job in plans[("slurm-gres", "auto")]:
        if job.rule in ("default", "all"):
            continue
        args = sbatch_args(job)
        assert "--gpus" not in args, args
        if job.rule in GPU_RULES:
            assert "--gres=gpu:1" in args and "--cpus-per-task=4" in args, args
        else:
            assert "--gres" not in args, args


def test_runtime_is_minutes_and_gpu_jobs_get_the_longest(plans):
    jobs = plans[("slurm", "auto")]
    gen = next(j for j in jobs if j.rule == "generate")
    assert gen.resources["runtime"] == 240 and "-t 240" in sbatch_args(gen)


def test_a_misspelt_profile_key_fails_the_dry_run(tmp_path, work, fake_slurm):
    profile = tmp_path / "typo"
    shutil.copytree(PROFILES / "slurm", profile)
    with open(profile / "config.yaml", "a") as f:
        f.write("slurm-status-comand: squeue\n")
    run = dry_run(profile, work, fake_slurm)
    assert run.returncode != 0 and "slurm-status-comand" in run.stderr + run.stdout


def test_plain_snakemake_from_the_repo_root_loads_the_default_profile(work, fake_slurm):
    """Snakemake looks for profiles/default beside the main Snakefile, the root one: profiles/ links to
    workflow/profiles/, so its default profile (rerun-incomplete, ...) applies and the run says so."""
    run = snakemake_dry_run(work, fake_slurm)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Using workflow specific profile profiles/default" in run.stderr
    assert (ROOT / "profiles" / "default").resolve() == (PROFILES / "default").resolve()
    assert yaml.safe_load((PROFILES / "default" / "config.yaml").read_text())["rerun-incomplete"] is True
