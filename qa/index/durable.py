"""Durable file operations for index builds: fsync, the atomic CURRENT switch, the build lock.

Why fsync files *and* directories: a rename is only durable once its directory
is, and a snapshot must be complete on disk before CURRENT may name it (see
index.py for the order a build follows).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import IndexBusy


def remove_store(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fsync(os.path.join(dirpath, name))
        fsync(dirpath)
    fsync(str(root.parent))


def fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)  # a directory too: that makes its entries durable
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_current(index_dir: Path, name: str) -> None:
    tmp = index_dir / "CURRENT.tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, index_dir / "CURRENT")
    fsync(str(index_dir))


def take_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise IndexBusy(
            f"Another build of the index in {path.parent} is running (process {holder}).",
            "Wait for it to finish, then try again.",
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
    return fd
