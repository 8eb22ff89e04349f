"""A real single-node SLURM on loopback (tests/cluster/start_slurm.sh: munged, slurmctld, slurmd, four
fake GPUs): the tiny config of test_dvc.py through the slurm-gres and the slurm workflow profiles,
scaled to the node (tests/cluster/loopback_profile.py), byte-identical to the local run.

Cheap by design (each DAG level on SLURM costs 12-33 s of status polling): the weights come from
the local run (as `make pull` would bring them); the slurm-gres run makes the prompt table, the
images and the scores (two levels), and the tables are then built from those scores locally; at
the same time the slurm run generates one shard. Skipped, with the reason, where SLURM can't run
(not root, binaries missing)."""
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sinkrepro import layout
from test_dvc import TINY_CONFIG, built_paper

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "tests" / "cluster"
MARK = "# written by sinkrepro tests/cluster/start_slurm.sh"
DAEMONS = ("slurmctld", "slurmd", "munged")
GPU_RULES = {"generate", "score", "fid"}
RUN_TIMEOUT = 900  # seconds per workflow run; a broken status query hangs rather than fails
BASE_SHARD = "tiny-sd3/base/seed0/shard000"


def cannot_run() -> str | None:
    if os.geteuid() != 0:
        return "slurmd and munged need root here"
    missing = [b for b in (*DAEMONS, "sbatch", "squeue", "scontrol", "ss") if shutil.which(b) is None]
    if missing:
        return (f"missing {', '.join(missing)}: apt-get install -y --no-install-recommends slurmctld slurmd "
                "slurm-client munge iproute2")
    conf = Path("/etc/slurm/slurm.conf")
    if conf.exists() and MARK not in conf.read_text():
        return f"{conf} belongs to another SLURM; not touching it"
    return None


def listening(names) -> list[str]:
    """'address:port process' of every TCP socket the named processes listen on."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, timeout=30, check=True).stdout
    found = []
    for line in out.splitlines():
        fields = line.split()
        owners = re.findall(r'\("([^"]+)"', line)
        found += [f"{fields[3]} {owner}" for owner in owners if owner in names]
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = cannot_run()
    if reason:
        pytest.skip(f"no loopback SLURM: {reason}")
    stack = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "STACK": str(stack)}
    try:
        started = subprocess.run(["bash", str(CLUSTER / "start_slurm.sh")], env=env, capture_output=True, text=True,
                                 timeout=120)
        assert started.returncode == 0, started.stdout + started.stderr
        yield {"stack": stack, "sockets": listening({"slurmctld", "slurmd"})}
    finally:  # stop_slurm.sh stops each daemon by the PID in its pid file
        subprocess.run(["bash", str(CLUSTER / "stop_slurm.sh")], env=env, timeout=120)


def md5s(root: Path, rels) -> dict:
    files = [p for rel in rels for p in sorted((root / rel).rglob("*")) if p.is_file()]
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in files
            if not p.name.startswith(".snakemake")}


def run_env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def start_profile(work: Path, reference: Path, profile: str, *targets: str) -> subprocess.Popen:
    """Start `targets` of the tiny config (device: auto, so GPU rules claim a GPU) through a loopback
    copy of `profile` in `work`, with the reference run's weights; the log goes to work/run.log."""
    work.mkdir()
    (work / "config").symlink_to(ROOT / "config")  # prompt tables are read relative to the working directory
    shutil.copytree(reference / "resources", work / "resources")
    assert "\ndevice: cpu\n" in TINY_CONFIG  # as text: the order of conditions orders the stats rows
    (work / "tiny.yaml").write_text(TINY_CONFIG.replace("\ndevice: cpu\n", "\ndevice: auto\n"))
    subprocess.run([sys.executable, str(CLUSTER / "loopback_profile.py"), str(ROOT / "workflow/profiles" / profile),
                    str(work / "profile")], check=True, timeout=60)
    with open(work / "run.log", "w") as log:
        return subprocess.Popen(["timeout", "-k", "10", str(RUN_TIMEOUT), sys.executable, "-m", "snakemake", *targets,
                                 "-s", str(ROOT / "workflow" / "Snakefile"), "-d", str(work), "--workflow-profile",
                                 str(work / "profile"), "--configfile", str(work / "tiny.yaml")],
                                cwd=work, env=run_env(), stdout=log, stderr=subprocess.STDOUT)


def slurm_jobs(log: str) -> dict[str, str]:
    """SLURM job id -> rule, of every job this run submitted through sbatch."""
    return dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/", log))


def job_fields(jobid: str) -> dict:
    out = subprocess.run(["scontrol", "show", "job", "-o", jobid], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    return dict(f.split("=", 1) for f in out.split() if "=" in f)


def task_gpus(stack: Path) -> dict[str, set]:
    """SLURM job id -> the CUDA_VISIBLE_DEVICES values its tasks saw ('-': unset), from the task prolog."""
    seen: dict = {}
    log = stack / "slurm" / "log" / "task_gpus.txt"
    for line in log.read_text().splitlines() if log.exists() else []:
        jobid, _step, devices = line.split()
        seen.setdefault(jobid, set()).add(devices)
    return seen


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    """Both profiles at once on the one cluster: slurm-gres makes the prompt table, images and scores
    (then the tables are built from them here, locally), slurm the base images."""
    reference = built_paper(tmp_path_factory)
    base = tmp_path_factory.mktemp("slurm-runs")
    targets = {"slurm-gres": ["scores", layout.PROMPT_TABLE.format(prompt_set="tiny")],
               "slurm": [f"results/images/{BASE_SHARD}"]}
    procs = {}
    try:
        for profile, target in targets.items():
            procs[profile] = start_profile(base / profile, reference, profile, *target)
        for profile, proc in procs.items():
            log = (base / profile / "run.log")
            assert proc.wait(timeout=RUN_TIMEOUT + 30) == 0, f"{profile} run failed:\n{log.read_text()[-4000:]}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    tables = subprocess.run([sys.executable, "-m", "snakemake", "paper_tables", "--cores", "2", "-s",
                             str(ROOT / "workflow" / "Snakefile"), "-d", str(base / "slurm-gres"), "--configfile",
                             str(base / "slurm-gres" / "tiny.yaml")], env=run_env(), capture_output=True, text=True,
                            timeout=RUN_TIMEOUT)
    assert tables.returncode == 0, tables.stdout[-3000:] + tables.stderr[-3000:]
    return {"reference": reference, "tables_log": tables.stdout + tables.stderr,
            **{p: (base / p, (base / p / "run.log").read_text()) for p in targets}}


def test_every_daemon_listens_on_loopback_only(cluster):
    sockets = cluster["sockets"]
    assert {s.split()[1] for s in sockets} == {"slurmctld", "slurmd"}, sockets  # munged: a unix socket only
    assert all(s.startswith("127.0.0.1:") for s in sockets), sockets


@pytest.mark.parametrize("profile, request_field", [("slurm-gres", "TresPerNode"), ("slurm", "TresPerJob")])
def test_jobs_ran_through_sbatch_and_gpu_jobs_saw_a_gpu(runs, cluster, profile, request_field):
    _, log = runs[profile]
    jobs = slurm_jobs(log)
    rules = set(jobs.values())
    assert "generate" in rules
    assert not rules & {"model", "scorer"}  # the weights came from the reference run
    seen = task_gpus(cluster["stack"])
    for jobid, rule in jobs.items():
        fields = job_fields(jobid)
        assert fields["JobState"] == "COMPLETED", (rule, fields["JobState"])
        assert seen.get(jobid), f"job {jobid} ({rule}) ran no task"
        if rule in GPU_RULES:  # the profile's GPU request reached SLURM, and every task got a device
            assert fields.get(request_field) == "gres:gpu:1", (rule, fields)
            assert "-" not in seen[jobid] and seen[jobid] <= {"0", "1", "2", "3"}, (rule, seen[jobid])
        else:
            assert seen[jobid] == {"-"}, (rule, seen[jobid])


def test_slurm_gres_run_matches_the_local_run_byte_for_byte(runs):
    work, log = runs["slurm-gres"]
    assert sorted(set(slurm_jobs(log).values())) == ["generate", "prompt_table", "score"]
    assert re.findall(r"^(?:local)?rule (\w+):", runs["tables_log"], re.M) == ["stats", "paper_tables"]
    outputs = ("results/images", "results/scores", "paper/tables")
    built, local = md5s(work, outputs), md5s(runs["reference"], outputs)
    assert any(p.endswith(".png") for p in built) and any(p.startswith("paper/tables/") for p in built)
    assert built == local


def test_slurm_run_generates_one_shard_byte_for_byte(runs):
    work, log = runs["slurm"]
    assert list(slurm_jobs(log).values()) == ["generate"]
    shard = f"results/images/{BASE_SHARD}"
    built = md5s(work, [shard])
    assert any(p.endswith(".png") for p in built) and built == md5s(runs["reference"], [shard])
