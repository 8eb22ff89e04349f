"""Atomic writes: all or nothing, with ordinary permissions."""
import os

import pytest

from sinkrepro.io import atomic_dir, atomic_path, write_text


def test_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]


def test_failed_directory_leaves_the_old_directory(tmp_path):
    target = tmp_path / "shard"
    with atomic_dir(target) as tmp:
        (tmp / "a.png").write_text("a")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "b.png").write_text("b")
            raise RuntimeError("crash")
    assert sorted(os.listdir(target)) == ["a.png"] and os.listdir(tmp_path) == ["shard"]


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "f.txt", "x")
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_a_killed_writers_temp_is_removed_by_the_next_write(tmp_path):
    """Temps name their writer; the next write of the target removes those of dead writers only."""
    import socket
    import subprocess
    import sys

    from sinkrepro.io import remove_stale_temps

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    stale = tmp_path / f".shard000.{host}-{int(dead.stdout)}.ab12cd.tmp"
    stale.mkdir()
    (stale / "a.png").write_text("half")
    live = tmp_path / f".shard000.{host}-{os.getpid()}.ef34gh.tmp"  # this process: still writing
    live.mkdir()
    other = tmp_path / ".shard001.myhost-1.ab12cd.tmp"
    other.mkdir()
    with atomic_dir(tmp_path / "shard000") as tmp:
        (tmp / "b.png").write_text("b")
    assert not stale.exists() and live.exists() and other.exists()
    assert sorted(os.listdir(tmp_path / "shard000")) == ["b.png"]
    assert remove_stale_temps(tmp_path / "shard000") == []
