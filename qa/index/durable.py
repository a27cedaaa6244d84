"""Durable file operations for index builds: fsync, the atomic CURRENT switch, the build lock, reader pins.

Why fsync files *and* directories: a rename is only durable once its directory
is, and a snapshot must be complete on disk before CURRENT may name it (see
``local.py`` for the order a build follows).

Why readers pin snapshots with ``flock``: a question may hold a snapshot for as
long as it runs, across any number of builds; a shared lock on the snapshot's
``READERS`` file tells a build's clean-up to leave that snapshot (its files,
its store and the rows it sees) alone, and the kernel drops the lock when the
reader closes it or its process dies, so a crashed reader never pins forever.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from ..errors import IndexBusy

PIN = "READERS"  # inside each snapshot folder; deleted last when the snapshot goes


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


def write_file(path: Path, data: bytes) -> None:
    """Write ``path`` and fsync it (its directory entry is made durable by the caller)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def replace_current(index_dir: Path, name: str) -> None:
    """Point CURRENT at snapshot ``name``: write a temp file, fsync it, rename it, fsync the folder.

    The rename is the commit point. Anything raised before it leaves CURRENT
    as it was; anything raised after it (the folder fsync, or a Ctrl-C
    arriving as the rename returns) leaves the new snapshot live, so a
    caller that sees an exception from here must check CURRENT before it
    deletes anything.
    """
    tmp = index_dir / "CURRENT.tmp"
    write_file(tmp, (name + "\n").encode("ascii"))
    os.replace(tmp, index_dir / "CURRENT")
    fsync(str(index_dir))


def pin(snapshot: Path) -> int | None:
    """Hold a shared lock on ``snapshot`` for a reader; None for a snapshot written before pins existed.

    ``BlockingIOError`` means a build is deleting this snapshot right now.
    """
    try:
        fd = os.open(snapshot / PIN, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def remove_unpinned(snapshot: Path) -> bool:
    """Delete ``snapshot`` unless a reader pins it; False when it was kept.

    The pin file goes last, after everything else: a reader that finds a
    snapshot without its pin file also finds it without its manifest, so it
    never reads a snapshot that is being deleted.
    """
    pin_path = snapshot / PIN
    try:
        fd: int | None = os.open(pin_path, os.O_RDONLY)
    except FileNotFoundError:
        fd = None  # written before pins existed, or a deletion that was interrupted after the pin went
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        for child in snapshot.iterdir():
            if child.name == PIN:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        pin_path.unlink(missing_ok=True)
        snapshot.rmdir()
        return True
    finally:
        if fd is not None:
            os.close(fd)


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
