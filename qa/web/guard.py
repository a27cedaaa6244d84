"""What stands between the open web chat and the server: requests, passwords, messages.

Gradio accepts uploads from anyone (``POST /gradio_api/upload`` needs no
password: the browser uploads a file as soon as it is picked), and its
preprocessing fetches any ``http(s)`` "file" named in a request into its temp
folder, from any endpoint. So the checks cannot wait for a handler:
``RequestGuard`` sits in front of the whole app and refuses, before anything is
read to disk or fetched, every file reference that is not an upload it handed
out itself, and bounds what anonymous uploads can hold in the upload folder.
``Throttle`` slows password guessing per client; ``hide_paths`` keeps server
paths out of messages. No gradio import here: this runs under ``qa --help``.

An upload holds one of MAX_UPLOADS_AT_ONCE slots only while its bytes
arrive. A client that goes quiet for UPLOAD_READ_TIMEOUT seconds between two
chunks, or is still sending after UPLOAD_DEADLINE seconds, gets 408 and its
slot back: 10 s is far longer than a working connection pauses (TCP retries
a lost packet within a few seconds), and 180 s moves the largest default
upload (20 MB) over an uplink of under 1 Mbit/s. Otherwise four idle sockets
would shut uploads off for everyone for as long as they stay open. A trickle
just fast enough to dodge both can still hold the anonymous slots for a
while, so an address that passed the admin password within the last hour
(``TrustedClients``, told by the admin handlers) has slots and folder room
of its own that anonymous uploads cannot take: the admin is never starved.
That reservation is per address: a guesser behind the admin's own NAT or
proxy address shares it, which is why it is small (ADMIN_UPLOADS_AT_ONCE).
gradio leaves the partial file of a dropped upload in the folder; it counts
against the quota until the sweep deletes it (after ``max_age``).

gradio stores an upload under the hash of its bytes, so two uploads of the
same file would share one path, and an admin action on one (a wrong password
too deletes what it was given) would delete the other's file. The guard
therefore gives every upload request a folder of its own (``own-<random>``),
links the stored files into it and answers with those paths; requests may
name only such owned files. The shared copies go as soon as no upload is in
flight (one may be about to link the same path).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

UPLOAD_ROUTE = "/gradio_api/upload"
MAX_JSON_BYTES = 8 * 1024 * 1024  # a request body other than an upload: a long chat history is ~1 MB
MAX_WAITING_FILES = 200  # files that may wait in the upload folder (each request adds at most gradio's 1000)
MAX_UPLOADS_AT_ONCE = 4  # anonymous upload requests in flight; more are refused, not queued
ADMIN_UPLOADS_AT_ONCE = 2  # more, for addresses that passed the admin password (TrustedClients)
UPLOAD_QUOTA_FACTOR = 10  # the upload folder may hold this many largest-allowed files at once
UPLOAD_READ_TIMEOUT = 10.0  # seconds an upload may send nothing before it gets 408 (see the module docstring)
UPLOAD_DEADLINE = 180.0  # seconds an upload may take in all
OWNED_PREFIX = "own-"  # the folder of one upload request, below the upload folder
API_PREFIXES = ("/v1/", "/api/")  # qa/web/api.py: refusals there are in OpenAI's error shape

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


# -- paths ---------------------------------------------------------------------------------------

def inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """True when ``path`` (symlinks and ``..`` resolved) is a file strictly below ``folder``."""
    try:
        real, root = os.path.realpath(path), os.path.realpath(folder)
    except (ValueError, OSError):  # a NUL byte, a loop
        return False
    return real.startswith(root.rstrip(os.sep) + os.sep)


def sweep(folder: Path, max_age: float, now: float | None = None) -> tuple[int, int]:
    """Delete what has waited in ``folder`` longer than ``max_age`` seconds; return the (bytes, files) left.

    gradio's own ``delete_cache`` forgets some files (gradio_client uploads
    leave an empty temp file beside each upload), so the folder is swept as a
    whole before each upload is let in.
    """
    now = time.time() if now is None else now
    size = count = 0
    for base, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            path = os.path.join(base, name)
            try:
                info = os.lstat(path)
                if now - info.st_mtime > max_age:
                    os.unlink(path)
                    continue
            except OSError:
                continue
            size += info.st_size
            count += 1
        for name in dirs:
            try:
                os.rmdir(os.path.join(base, name))  # only succeeds when empty
            except OSError:
                pass
    return size, count


def discard(paths: Iterable[str | os.PathLike], folder: Path) -> None:
    """Delete uploaded temp files (and their emptied hash folder); anything outside ``folder`` is left alone."""
    for path in paths:
        if not inside(path, folder):
            continue
        real, root = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
        try:
            real.unlink()
        except OSError:
            continue
        parent = real.parent
        while parent != root and root in parent.parents:  # <own-…>/<hash>/<name>: the emptied folders go too
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


def owned(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """True when ``path`` is an upload the guard handed to one request (below an ``own-`` folder in ``folder``)."""
    if not inside(path, folder):
        return False
    relative = Path(os.path.realpath(path)).relative_to(os.path.realpath(folder))
    return len(relative.parts) > 1 and relative.parts[0].startswith(OWNED_PREFIX)


_PATHLIKE = re.compile(r"[^\s'\"()（）《》「」，。；：、]*/[^\s'\"()（）《》「」，。；：、]*")


def hide_paths(text: str) -> str:
    """A message without server paths: every token with a ``/`` keeps only its last part.

    Error messages name files so an operator at the terminal can act; over
    the web the last component says enough and the layout of the server stays
    private. URLs are kept.
    """

    def short(match: re.Match) -> str:
        token = match.group(0)
        if "://" in token:
            return token
        core = token.rstrip(".,;:!?")
        return (core.rstrip("/").rsplit("/", 1)[-1] or "…") + token[len(core):]

    return _PATHLIKE.sub(short, text)


# -- passwords -----------------------------------------------------------------------------------

def same_secret(given: str, expected: str) -> bool:
    """Constant-time compare that also hides the length (both sides hashed first)."""
    return hmac.compare_digest(hashlib.sha256(given.encode("utf-8")).digest(),
                               hashlib.sha256(expected.encode("utf-8")).digest())


def client_key(host: str | None) -> str:
    """Who a failed attempt is charged to: the address, or its /64 for IPv6 (one host owns a whole /64)."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return host or "?"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class Throttle:
    """Per-client lockout after wrong passwords: FREE tries, then 1, 2, 4 ... up to CAP seconds.

    An attempt is charged before the password is compared, so parallel
    requests cannot slip past the count; a right password clears the record.
    A lockout (not a sleep) keeps worker threads free while a guesser waits.
    """

    FREE = 5
    CAP = 300.0
    FORGET = 3600.0  # a client with no failure for an hour starts afresh
    MAX_CLIENTS = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[int, float, float]] = {}  # key -> (failures, last failure, locked until)

    def delay(self, failures: int) -> float:
        return 0.0 if failures < self.FREE else min(2.0 ** (failures - self.FREE), self.CAP)

    def attempt(self, host: str | None) -> float:
        """0 if this client may try a password now (the try is charged), else seconds to wait."""
        key, now = client_key(host), self._clock()
        with self._lock:
            failures, last, until = self._seen.get(key, (0, now, 0.0))
            if now - last > self.FORGET:
                failures, until = 0, 0.0
            if now < until:
                return until - now
            failures += 1
            if len(self._seen) >= self.MAX_CLIENTS:
                self._prune(now)
            self._seen[key] = (failures, now, now + self.delay(failures))
            return 0.0

    def locked(self, host: str | None) -> float:
        """Seconds this client is still locked out (0: it may try), charging nothing: for checks that
        charge only a failure (the API key, asked on every request; see ``api.Keys``)."""
        key, now = client_key(host), self._clock()
        with self._lock:
            failures, last, until = self._seen.get(key, (0, now, 0.0))
        return max(0.0, until - now) if now - last <= self.FORGET else 0.0

    def succeeded(self, host: str | None) -> None:
        with self._lock:
            self._seen.pop(client_key(host), None)

    def _prune(self, now: float) -> None:
        stale = [k for k, (_, last, until) in self._seen.items() if now - last > self.FORGET and now >= until]
        for key in stale or sorted(self._seen, key=lambda k: self._seen[k][1])[: self.MAX_CLIENTS // 10]:
            del self._seen[key]


class TrustedClients:
    """Addresses that typed the admin password recently; the upload guard keeps room for them.

    Told by the admin handlers (``Admin.check_password``), asked by
    ``RequestGuard`` for every upload; keyed like ``Throttle`` (an IPv6 /64).
    """

    REMEMBER = 3600.0
    MAX_CLIENTS = 1000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}

    def add(self, host: str | None) -> None:
        now = self._clock()
        with self._lock:
            if len(self._seen) >= self.MAX_CLIENTS:
                oldest = sorted(self._seen, key=self._seen.__getitem__)[: self.MAX_CLIENTS // 10]
                for key in oldest:
                    del self._seen[key]
            self._seen[client_key(host)] = now

    def __contains__(self, host: object) -> bool:
        if host is not None and not isinstance(host, str):
            return False
        with self._lock:
            seen = self._seen.get(client_key(host))
        return seen is not None and self._clock() - seen <= self.REMEMBER


# -- requests ------------------------------------------------------------------------------------

def file_paths(data: Any) -> list[Any]:
    """Every ``path`` of a gradio FileData object anywhere in a decoded request body."""
    found, stack = [], [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            meta = item.get("meta")
            if "path" in item and isinstance(meta, dict) and meta.get("_type") == "gradio.FileData":
                found.append(item["path"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


class RequestGuard:
    """ASGI middleware in front of the gradio app; see the module docstring for why.

    - ``POST /gradio_api/upload``: files older than ``max_age`` are swept out
      first; then it needs a Content-Length, which must fit in what the upload
      folder may still take; refused while the folder holds MAX_WAITING_FILES
      files or MAX_UPLOADS_AT_ONCE uploads are running (trusted addresses have
      room of their own); 408 when the body stalls or takes too long; the
      stored files are answered as paths owned by this request.
    - any other multipart body is refused (this app reads files only there).
    - every other POST body is read (up to MAX_JSON_BYTES) and refused if it
      names a file that is not an owned upload, before gradio sees it.
    """

    def __init__(self, app: Callable, folder: Path, max_file_bytes: int, max_age: float,
                 trusted: TrustedClients | None = None, read_timeout: float = UPLOAD_READ_TIMEOUT,
                 deadline: float = UPLOAD_DEADLINE) -> None:
        self.app, self.folder, self.max_age = app, Path(folder), max_age
        self.quota = UPLOAD_QUOTA_FACTOR * max_file_bytes
        self.trusted = trusted if trusted is not None else TrustedClients()
        self.read_timeout, self.deadline = read_timeout, deadline
        self._lock = threading.Lock()
        self._reserved = 0
        self._running = {False: 0, True: 0}  # uploads in flight: anonymous, trusted
        self._shared: set[str] = set()  # gradio's hash-named copies, deleted once no upload is in flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        multipart = headers.get("content-type", "").lower().startswith("multipart/")
        if scope.get("path", "").rstrip("/").endswith(UPLOAD_ROUTE):
            return await self._upload(scope, receive, send, headers.get("content-length"))
        if multipart:
            return await _refuse(send, 415, "此处不接受文件。", scope)
        body, complete = await _read(receive, MAX_JSON_BYTES)
        if not complete:
            return await _refuse(send, 413, "请求过大。", scope)
        try:
            paths = file_paths(json.loads(body)) if body else []
        except (ValueError, RecursionError):
            paths = []  # not JSON: gradio's own parsing refuses it
        if any(not isinstance(p, str) or not owned(p, self.folder) for p in paths):
            return await _refuse(send, 400, "只接受通过本页面上传的文件。", scope)
        return await self.app(scope, _replay(body, receive), send)

    def _admit(self, trusted: bool, size: int) -> tuple[int, str] | None:
        """None when an upload of ``size`` bytes may start (its room is then reserved), else the refusal."""
        used, files = sweep(self.folder, self.max_age) if self.folder.is_dir() else (0, 0)
        slots, most_files, quota = ((ADMIN_UPLOADS_AT_ONCE, 2 * MAX_WAITING_FILES, 2 * self.quota) if trusted
                                    else (MAX_UPLOADS_AT_ONCE, MAX_WAITING_FILES, self.quota))
        with self._lock:
            if self._running[trusted] >= slots or files >= most_files:
                return 429, "正在处理的上传过多，请稍后再试。"
            if used + self._reserved + size > quota:
                return 413, "上传临时空间已满或文件过大，请稍后再试。"
            self._reserved += size
            self._running[trusted] += 1
        return None

    async def _upload(self, scope: Scope, receive: Receive, send: Send, length: str | None) -> None:
        if length is None or not length.isdigit():
            return await _refuse(send, 411, "上传请求缺少 Content-Length。")
        size = int(length)
        trusted = (scope.get("client") or (None,))[0] in self.trusted
        refusal = self._admit(trusted, size)
        if refusal:
            return await _refuse(send, *refusal)
        upload = _TimedUpload(receive, send, self.read_timeout, self.deadline, self._own)
        try:
            await self.app(scope, upload.receive, upload.send)
        except Exception:
            if not upload.timed_out:
                raise  # gradio's own failure (ClientDisconnect after a stall is expected: answered below)
        finally:
            with self._lock:
                self._reserved -= size
                self._running[trusted] -= 1
                idle = not any(self._running.values())
                shared, self._shared = (self._shared, set()) if idle else (set(), self._shared)
            discard(shared, self.folder)
        if upload.timed_out and not upload.answered:
            await _refuse(send, 408, f"上传超时：连接 {int(self.read_timeout)} 秒没有发送数据或上传过慢，请重试。")

    def _own(self, body: bytes) -> bytes:
        """gradio's answer to an upload (a JSON list of stored paths), with each file linked into a
        folder of this request's own; the hash-named original is left for ``_upload`` to delete."""
        try:
            paths = json.loads(body)
        except ValueError:
            return body
        if not isinstance(paths, list) or not all(isinstance(p, str) and inside(p, self.folder) for p in paths):
            return body
        root = Path(os.path.realpath(self.folder))
        own = root / f"{OWNED_PREFIX}{secrets.token_hex(8)}"
        mine = []
        for path in paths:
            real = Path(os.path.realpath(path))
            target = own / real.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(real, target)
            except OSError:
                shutil.copyfile(real, target)
            with self._lock:
                self._shared.add(str(real))
            mine.append(str(target))
        return json.dumps(mine, ensure_ascii=False).encode("utf-8")


class _TimedUpload:
    """One upload's receive and send: the body must keep coming (``read_timeout`` between chunks,
    ``deadline`` in all), and a 200 answer is held back until ``own`` has rewritten its paths."""

    def __init__(self, receive: Receive, send: Send, read_timeout: float, deadline: float,
                 own: Callable[[bytes], bytes]) -> None:
        self._receive, self._send, self._own = receive, send, own
        self.read_timeout = read_timeout
        self.ends = time.monotonic() + deadline
        self.timed_out = self.answered = self._body_done = False
        self._start: dict | None = None
        self._parts: list[bytes] = []

    async def receive(self) -> dict:
        if self._body_done:
            return await self._receive()  # after the body: the client's disconnect, whenever it comes
        if self.timed_out:
            return {"type": "http.disconnect"}
        try:
            left = self.ends - time.monotonic()
            if left <= 0:
                raise TimeoutError
            message = await asyncio.wait_for(self._receive(), min(self.read_timeout, left))
        except TimeoutError:
            self.timed_out = True  # gradio sees a disconnect and gives up; _upload answers 408
            return {"type": "http.disconnect"}
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._body_done = True
        return message

    async def send(self, message: dict) -> None:
        if self.timed_out:
            return  # whatever gradio answers to the disconnect: the client gets 408 instead
        if message["type"] == "http.response.start":
            self.answered = True
            if message.get("status") == 200:
                self._start = message
                return
        elif message["type"] == "http.response.body" and self._start is not None:
            self._parts.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = self._own(b"".join(self._parts))
            headers = [(k, v) for k, v in self._start.get("headers", []) if k.lower() != b"content-length"]
            await self._send({**self._start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            self._start = None
            message = {"type": "http.response.body", "body": body}
        await self._send(message)


async def _read(receive: Receive, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later messages: the client's disconnect

    return again


async def _refuse(send: Send, status: int, message: str, scope: Scope | None = None) -> None:
    api = scope is not None and str(scope.get("path", "")).startswith(API_PREFIXES)
    code = {400: "file_not_allowed", 413: "request_too_large", 415: "unsupported_media_type"}.get(status, "refused")
    shape = ({"error": {"message": message, "type": "invalid_request_error", "code": code, "param": None}}
             if api else {"detail": message})
    body = json.dumps(shape, ensure_ascii=False).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
