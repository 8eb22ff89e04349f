"""DVC round trips through real servers on 127.0.0.1 (tests/servers.py): OpenSSH's sshd (the dvc-ssh
remote) and SeaweedFS's S3 gateway (the dvc-s3 remote). Each pushes the tiny repo of test_dvc.py (built
once), clones it afresh, pulls, touches, plans only the paper's jobs and rebuilds the tables byte for
byte (tests/roundtrip.py). Credentials reach DVC only through the environment (an ssh-agent socket;
AWS_* variables): no file in either repository holds them."""
import pytest

from roundtrip import check_round_trip, round_trip
from test_dvc import built_paper

pytestmark = pytest.mark.slow


def test_ssh_round_trip(sshd, tmp_path_factory):
    assert sshd["sockets"] and all(s.startswith("127.0.0.1:") for s in sshd["sockets"]), sshd["sockets"]
    clone = tmp_path_factory.mktemp("clone-sshr") / "repo"
    trip = round_trip(built_paper(tmp_path_factory), clone, "sshr", sshd["url"], sshd["env"])
    check_round_trip(trip, sshd["secret"])
    assert any(sshd["store"].rglob("*")), "nothing arrived in the SSH remote's directory"


def test_s3_round_trip(seaweed, tmp_path_factory):
    assert seaweed["sockets"] and all(s.startswith("127.0.0.1:") for s in seaweed["sockets"]), seaweed["sockets"]
    clone = tmp_path_factory.mktemp("clone-s3r") / "repo"
    trip = round_trip(built_paper(tmp_path_factory), clone, "s3r", seaweed["url"], seaweed["env"],
                      [("endpointurl", seaweed["endpoint"])])
    check_round_trip(trip, seaweed["secret"])
    listed = seaweed["client"].list_objects_v2(Bucket="dvc", Prefix="store/")
    assert listed.get("KeyCount", 0) > 0
    config = (trip["a"] / ".dvc" / "config").read_text()
    assert seaweed["env"]["AWS_ACCESS_KEY_ID"] not in config and "secret" not in config
