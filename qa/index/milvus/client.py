"""The connection to one Milvus: calls, what a lost server becomes, reading many rows, writing in batches.

Why a layer over ``pymilvus.MilvusClient``: a server that went away must
give the user one line (``IndexUnavailable``), not a gRPC traceback; a
connection the server closed while idle must be replaced once, quietly; and a
refusal (no such alias, a bad request) must be told apart from an outage,
because "no alias" means "no index yet".
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from typing import Any, Iterable
from urllib.parse import urlsplit

from ...errors import IndexUnavailable, QAError, UsageError
from ..common import short_error

# gRPC's C core logs on its own (an https:// URI against a plaintext server prints a handshake
# line before our one-line error); it reads this when grpc is first imported, which is through
# pymilvus, only ever from this package. A user's own setting stands.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

CONNECT_TIMEOUT = 5.0  # seconds: an unreachable server gives one line, soon
CALL_TIMEOUT = 20.0  # seconds per read or small write
BULK_TIMEOUT = 600.0  # inserts, index building, loading
BATCH = 500  # rows per insert
BATCH_BYTES = 8 << 20  # and at most about this much text per insert
QUERY_LIMIT = 16_384  # the most rows one query returns

# Calls that must not be sent twice: an insert that arrived before the connection broke would
# add its rows twice (Milvus does not deduplicate primary keys on insert).
_NOT_REPEATABLE = frozenset({"insert", "create_collection", "create_alias"})


class Connection:
    """One client to one Milvus, shared by threads, made when first used and again after a loss;
    and the names of one index's collections in it (``name`` and what derives from it)."""

    def __init__(self, uri: str, token: str | None, db: str | None, name: str) -> None:
        refuse_path(uri)
        self.uri = uri
        self.token = token
        self.db = db
        self.name = name
        self._client: Any = None
        self._client_lock = threading.Lock()

    @property
    def location(self) -> str:
        return f"Milvus collection {self.name} at {self.uri}"

    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                try:
                    from pymilvus import MilvusClient
                except ImportError:
                    from ...errors import MissingDependency

                    raise MissingDependency.for_module("pymilvus", "pymilvus[milvus-lite]") from None
                # Our own connection (not pymilvus's shared one, whose reconnect back-off outlives a
                # restarted server), and no keep-alive pings while idle: Milvus Lite's gRPC server
                # answers pings every 10 s with GOAWAY "too_many_pings" and drops the connection.
                kwargs: dict[str, Any] = {"uri": self.uri, "timeout": CONNECT_TIMEOUT, "dedicated": True,
                                          "grpc_options": {"grpc.keepalive_permit_without_calls": 0}}
                if self.token:
                    kwargs["token"] = self.token
                if self.db:
                    kwargs["db_name"] = self.db
                for name in list(logging.root.manager.loggerDict):  # pymilvus sets its own levels on import
                    if name.startswith("pymilvus"):
                        logging.getLogger(name).setLevel(logging.CRITICAL)
                try:
                    self._client = MilvusClient(**kwargs)
                except Exception as error:  # noqa: BLE001 - pymilvus raises several kinds; all mean "not now"
                    if no_database(error):  # Milvus itself checks the database when a client connects
                        raise self.missing_database() from None
                    raise self.unavailable(error) from None
            return self._client

    def call(self, method: str, *args: Any, timeout: float = CALL_TIMEOUT, **kwargs: Any) -> Any:
        """One client call; a lost server becomes ``IndexUnavailable`` (and a fresh client next time)."""
        for attempt in range(2):
            client = self.client()
            try:
                return getattr(client, method)(*args, timeout=timeout, **kwargs)
            except Exception as error:  # noqa: BLE001 - sorted below into "unreachable" and "refused"
                if lost(error):
                    self._drop_client(client)
                    if attempt == 0 and method not in _NOT_REPEATABLE:
                        # a connection the server closed while idle: one fresh connection; a server
                        # that is down fails again at once
                        continue
                    raise self.unavailable(error) from None
                if no_database(error):
                    raise self.missing_database() from None
                if attempt == 0 and args and "load()" in str(error):
                    # a restarted server (Milvus Lite) comes back with collections released
                    self.call("load_collection", args[0], timeout=BULK_TIMEOUT)
                    continue
                raise Refused(error) from None
        raise AssertionError("unreachable")

    def query_all(self, collection: str, filter: str, fields: list[str], strong: bool = True) -> list[dict]:
        """Every matching row: one query, or Milvus's iterator when there are more than one query returns."""
        level: dict[str, Any] = {"consistency_level": "Strong"} if strong else {}
        rows = self.call("query", collection, filter=filter, output_fields=fields, limit=QUERY_LIMIT, **level)
        if len(rows) < QUERY_LIMIT:
            return [dict(r) for r in rows]
        out: list[dict] = []
        iterator = self.call("query_iterator", collection, filter=filter, output_fields=fields, batch_size=4096,
                             timeout=BULK_TIMEOUT)
        try:
            while True:
                page = iterator.next()
                if not page:
                    return out
                out += [dict(r) for r in page]
        except Exception as error:  # noqa: BLE001 - the iterator calls the server itself
            if lost(error):
                raise self.unavailable(error) from None
            if no_database(error):
                raise self.missing_database() from None
            raise Refused(error) from None
        finally:
            iterator.close()

    def _drop_client(self, client: Any) -> None:
        with self._client_lock:
            if self._client is client:
                self._client = None
        try:
            client.close()
        except Exception:  # noqa: BLE001 - closing a dead connection may fail; it is dropped anyway
            pass

    def unavailable(self, error: BaseException) -> IndexUnavailable:
        return IndexUnavailable(
            f"The Milvus server at {self.uri} cannot be reached ({short_error(error)}).",
            "Start it (or check QA_MILVUS_URI and QA_MILVUS_TOKEN), then try again.",
        )

    def missing_database(self) -> UsageError:
        db = self.db or "default"
        return UsageError(
            f"There is no database {db} on the Milvus server at {self.uri}.",
            f"Set QA_MILVUS_DB to one that exists (unset: the server's default), or create it first "
            f"(in Python: pymilvus.MilvusClient('{self.uri}').create_database('{db}')).",
        )

    # -- names ---------------------------------------------------------------------
    def meta(self, base: str) -> str:
        return f"{base}_meta"

    @property
    def lock_name(self) -> str:
        return f"{self.name}_lock"

    def bases(self) -> list[str]:
        """Every pair of collections of this name (either half may be all a dead build left)."""
        pattern = re.compile(re.escape(self.name) + r"(_b\d{6})(_meta)?")
        found = (pattern.fullmatch(c) for c in self.call("list_collections"))
        return sorted({self.name + m.group(1) for m in found if m})

    def indexes(self) -> list[str]:
        """The names of the qa indexes in this database: aliases that name a pair ``<alias>_b<n>``."""
        collections = set(self.call("list_collections"))
        try:
            aliases = self.call("list_aliases").get("aliases", [])
        except Refused:  # a server without the call: the names of complete pairs
            aliases = {m.group(1) for c in collections if (m := re.fullmatch(r"(\w+)_b\d{6}_meta", c))}
        pairs = {m.group(1) for c in collections if (m := re.fullmatch(r"(\w+)_b\d{6}", c))}
        return sorted(set(aliases) & pairs)

    def target(self) -> str | None:
        """The passage collection the alias names, or None before the first build."""
        try:
            return str(self.call("describe_alias", alias=self.name)["collection_name"])
        except Refused:
            return None

    def head(self, base: str, strong: bool = True) -> int | None:
        """The committed generation. Per question it is read with the collection's default (Bounded)
        consistency: a Strong read costs 0.1-0.5 s on Milvus Lite at 100,000 passages, and a
        replica then sees another's commit within Milvus's staleness bound (seconds)."""
        level: dict[str, Any] = {"consistency_level": "Strong"} if strong else {}
        rows = self.call("query", self.meta(base), filter='k == "head"', output_fields=["body"], **level)
        return int(json.loads(rows[0]["body"])["generation"]) if rows else None


class Refused(QAError):
    """The server answered but refused (no such alias or collection, a bad request).

    Mostly caught where a refusal has a meaning (no alias: no index yet); one that
    reaches the user is still a single line.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"Milvus refused a request ({short_error(error)}).",
                         "Check QA_MILVUS_* and the server's version; qa build --full writes the collection anew.")
        self.error = error


def refuse_path(uri: str) -> None:
    """A server address with a path is refused before anything is asked: pymilvus would take the path
    for a database name, and a mistyped one used to read as "no index yet" (a Milvus Lite file is a path)."""
    if not uri.startswith(("http://", "https://", "tcp://")):
        return
    path = urlsplit(uri).path
    if path not in ("", "/"):
        raise UsageError(f"QA_MILVUS_URI {uri} has a path ({path}); a Milvus server's address is http(s)://host:port.",
                         "Drop the path, and name a database other than the default with QA_MILVUS_DB.")


def no_database(error: BaseException) -> bool:
    """Whether a refusal means the database asked for does not exist (Milvus: code 800, "database not found";
    Milvus Lite: "database 'x' does not exist")."""
    text = str(getattr(error, "message", "") or error).lower()
    return getattr(error, "code", None) == 800 or bool(re.search(r"database\b.*\b(not found|does not exist)", text))


def lost(error: BaseException) -> bool:
    """Whether an exception means the server is unreachable (rather than a refusal)."""
    text = f"{type(error).__name__} {error}".lower()
    return any(word in text for word in ("unavailable", "connect", "deadline", "timeout", "timed out",
                                         "socket", "channel", "refused", "closed", "not ready"))


def batches(rows: list[dict]) -> Iterable[list[dict]]:
    """Rows in inserts of at most ``BATCH`` rows and about ``BATCH_BYTES`` of text (a gRPC message is bounded)."""
    batch: list[dict] = []
    size = 0
    for row in rows:
        weight = len(row.get("body", "")) * 3 + len(row.get("tokens", "")) * 3 + 2048
        if batch and (len(batch) >= BATCH or size + weight > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += weight
    if batch:
        yield batch


def chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def pymilvus_version() -> str:
    import pymilvus

    return str(getattr(pymilvus, "__version__", "?"))
