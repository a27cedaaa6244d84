"""One build at a time across machines: the build lock of a Milvus index."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import threading
import time

from ...errors import IndexBusy, IndexUnavailable
from .client import Connection, Refused

LOCK_STALE = 60.0  # seconds without a heartbeat after which a build lock is taken over
HEARTBEAT = 10.0

_OWNER = re.compile(r"_lk_([0-9a-f]+)_(\d+)_(\d+)(?:_[0-9a-f]+)?$")


class BuildLock:
    """One build at a time across machines: an alias, which Milvus lets only one caller create.

    Each build makes a small collection named after itself (host, process, start
    time, a random tail) and then tries to point the alias ``<name>_lock`` at it; a second build
    finds the alias taken and reads the owner from the name. A heartbeat row keeps
    the lock fresh while the build runs. A lock whose owner is gone (a dead process
    on this host, or no heartbeat for ``LOCK_STALE`` seconds) is taken over, so a
    killed build does not block the next one for long.
    """

    def __init__(self, backend: Connection) -> None:
        self._b = backend
        self.host, self.pid, self.since = socket.gethostname(), os.getpid(), int(time.time())
        # the random tail keeps two builds of one process in the same second apart (a web rebuild
        # beside a CLI build in one interpreter, or a test); only the alias decides who holds the lock
        self.own = f"{backend.name}_lk_{_host_tag(self.host)}_{self.pid}_{self.since}_{secrets.token_hex(4)}"
        self._held = False
        self._last = 0.0
        self._stop = threading.Event()

    @property
    def alias(self) -> str:
        return self._b.lock_name

    def take(self) -> BuildLock:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False)
        schema.add_field("k", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("beat", DataType.DOUBLE)
        schema.add_field("host", DataType.VARCHAR, max_length=256)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
        index = MilvusClient.prepare_index_params()
        index.add_index("v", index_type="FLAT", metric_type="L2")
        self._b.call("create_collection", self.own, schema=schema, index_params=index)
        self._held = True
        self.beat(force=True)
        holder = None
        for _ in range(3):
            try:
                self._b.call("create_alias", self.own, alias=self.alias)
                threading.Thread(target=self._heartbeat, daemon=True).start()
                return self
            except Refused:
                pass
            holder = self._holder()
            if holder is not None and self._stale(holder):
                self._drop(holder["collection"])  # a dead build's lock
        self.release()
        who = f"process {holder['pid']} on {holder['host']}" if holder else "another process"
        raise IndexBusy(f"Another build of {self._b.location} is running ({who}).",
                        "Wait for it to finish, then try again.")

    def _holder(self) -> dict | None:
        try:
            name = str(self._b.call("describe_alias", alias=self.alias)["collection_name"])
            owner = _OWNER.search(name)
            if owner is None:
                raise ValueError(name)
            tag, pid, since = owner.groups()
            rows = self._b.call("query", name, filter='k == "beat"', output_fields=["beat", "host"],
                                consistency_level="Strong")
        except (Refused, ValueError, KeyError):
            return None
        beat = float(rows[0]["beat"]) if rows else float(since)
        host = rows[0]["host"] if rows else f"host {tag}"
        return {"collection": name, "host": host, "pid": int(pid), "beat": beat, "tag": tag}

    def _stale(self, holder: dict) -> bool:
        if holder["tag"] == _host_tag(self.host):
            try:
                os.kill(int(holder["pid"]), 0)
            except ProcessLookupError:
                return True
            except (PermissionError, ValueError):
                pass
        return time.time() - holder["beat"] > LOCK_STALE

    def _drop(self, collection: str) -> None:
        try:
            self._b.call("drop_alias", alias=self.alias)
        except Refused:
            pass
        try:
            self._b.call("drop_collection", collection)
        except Refused:
            pass

    def beat(self, force: bool = False) -> None:
        if self._held and (force or time.monotonic() - self._last > HEARTBEAT / 2):
            self._last = time.monotonic()
            try:
                self._b.call("upsert", self.own, [{"k": "beat", "beat": time.time(), "host": self.host[:200],
                                                   "v": [0.0, 0.0]}])
            except (Refused, IndexUnavailable):
                pass  # the next beat tries again

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            self.beat()

    def release(self) -> None:
        self._stop.set()
        if self._held:
            self._held = False
            try:
                holder = self._holder()
                if holder is not None and holder["collection"] == self.own:
                    self._b.call("drop_alias", alias=self.alias)
                self._b.call("drop_collection", self.own)
            except (Refused, IndexUnavailable):
                pass  # it goes stale and the next build takes it over


def _host_tag(host: str) -> str:
    """Names the host in a lock's collection name (which allows only letters, digits and _)."""
    return hashlib.blake2b(host.encode("utf-8"), digest_size=4).hexdigest()
