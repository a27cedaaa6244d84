"""Knowledge bases: several separate collections in one deployment, some of them private.

A base is a name (letters, digits, ``-``, ``_``; at most 64), a title, and one
complete index of its own (``qa.index.bases.locate``): its documents,
passages, embedding cache, manifest, uploads folder and build lock are
separate, so a question asked of one base is answered only from it, and
building one never blocks asking or building another. ``default`` is the
index a deployment had before bases existed, opened where it is, with nothing
moved or re-embedded; it is always public and cannot be deleted (its index is
what ``qa`` without ``--kb`` and the web chat serve; ``qa remove`` empties it).

Private bases. ``create(..., private=True)`` returns a key once: 32 random
bytes (``secrets``), URL-safe. Only its SHA-256 is stored; a key is checked by
hashing it and comparing in constant time (``hmac.compare_digest``).
``new_key`` replaces the hash, which revokes the old key at once, in every
process (records are read per access, never cached).

Access rules, in one place:

- **The CLI reads and writes every base without a key.** It runs on the
  server, as a user who can read the index files (and the records) anyway; a
  key would protect nothing there. ``qa kb list`` shows private bases to that
  operator, marked private. ``Bases.server_open`` is this door.
- **The web chat and the API must go through ``Bases.open(name, key)`` and
  ``Bases.visible(keys)``.** A public base opens with any key or none (the API,
  when ``QA_API_KEY`` is set, demands that key or a private base's on its
  own); a private base only with its key. An unknown name, an invalid name and a private base
  without its key all raise the same ``NoSuchBase``, whose message lists the
  public bases only, so no answer tells a private base from a missing one.

The API (``qa/web/api.py``) goes through them: a request's bearer key is ``QA_API_KEY``'s
or a private base's (``key_holder``), and every base it names is opened with ``open(name, key)``.
For the web chat and the API the same calls::

    bases = Bases(settings)               # once per process, on the deployment's settings
    bases.visible(keys)                   # [Base]: default, then by name: public ones and private ones a key opens
    bot = bases.open(name, key)           # Bot of that base (cached, one model shared by all), or NoSuchBase
    bot.ask(...); bot.documents(); bot.document(doc_id); bot.build([...]); bot.remove([...])
    bot.settings.uploads_dir              # the base's own uploads folder; bot.settings.seeds_dir: its documents/
    bases.create(name, title, private) / bases.delete(name)   # the admin's, behind the admin password
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .config import Settings, check_kb_name
from .errors import IndexMissing, QAError, UsageError
from .index import connect
from .index import DEFAULT_BASE as DEFAULT
from .index import Registry, locate, registry
from .text import one_line, printable

if TYPE_CHECKING:
    from .pipeline import BuildReport, Bot, Encoders
    from .types import PassageEncoder, Progress

__all__ = ["DEFAULT", "Base", "Bases", "NoSuchBase", "ensure_index", "hash_key"]

KEY_PREFIX = "qakb-"
MAX_TITLE = 200
_NO_HASH = hashlib.sha256(b"no such base").hexdigest()  # compared when there is no record: the same work


class NoSuchBase(QAError):
    """An unknown base, or a private one without its key: one error, so neither is told from the other."""

    exit_code = 2


@dataclass(frozen=True)
class Base:
    """What may be shown of a base (never its key's hash)."""

    name: str
    title: str
    private: bool
    created: str = ""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _new_key() -> tuple[str, str]:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hash_key(key)


def _opens(record: dict[str, Any] | None, key: str | None) -> bool:
    """Whether ``key`` reads the base of ``record`` (None: no such base). Always hashes and compares once."""
    stored = str(record.get("key_sha256") or _NO_HASH) if record else _NO_HASH
    given = hash_key(key) if isinstance(key, str) and key else ""
    matches = hmac.compare_digest(given.encode("ascii"), stored.encode("ascii"))
    if record is None:
        return False
    return matches if record.get("private") else True


class Bases:
    """The knowledge bases of one deployment (``settings`` as loaded: its index folder or Milvus collection)."""

    def __init__(self, settings: Settings, encoder: PassageEncoder | None = None) -> None:
        self.settings = settings
        self._encoder = encoder
        self._encoders: Encoders | None = None
        self._bots: dict[str, Bot] = {}
        self._lock = threading.Lock()
        self._registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = registry(self.settings)
        return self._registry

    # -- reading ------------------------------------------------------------------
    def all(self) -> list[Base]:
        """Every base, private ones included: for the operator (the CLI), never for a visitor."""
        return [Base(DEFAULT, "", False)] + [_base(name, r) for name, r in self.registry.records().items()]

    def visible(self, keys: Iterable[str] = ()) -> list[Base]:
        """``default``, then by name the public bases and the private ones one of ``keys`` opens."""
        keys = [k for k in keys if isinstance(k, str) and k]
        found = [Base(DEFAULT, "", False)]
        for name, record in self.registry.records().items():
            if not record.get("private") or any(_opens(record, key) for key in keys):
                found.append(_base(name, record))
        return found

    def key_holder(self, key: str | None, records: dict[str, dict[str, Any]] | None = None) -> str | None:
        """The private base ``key`` opens, or None: the API's question "whose key is this?".

        Every base's hash is compared through ``_opens`` with no early exit, so the time taken tells
        at most how many bases there are, never which one matched. ``records``: the registry's
        records when the caller has read them already (the API reads them before its throttle check,
        off the event loop); otherwise they are read now, so a revoked key fails at once."""
        records = self.registry.records() if records is None else records
        found = None
        for name, record in records.items():
            opened = _opens(record, key)  # a public record "opens" with any key: only private ones count
            if opened and record.get("private") and found is None:
                found = name
        return found

    def public_names(self) -> list[str]:
        return [b.name for b in self.all() if not b.private]

    def check(self, name: str, key: str | None = None) -> Base:
        """The base ``name`` if ``key`` may read it; else ``NoSuchBase`` (the same for every reason)."""
        valid = isinstance(name, str) and check_name_quietly(name)
        record = None if not valid or name == DEFAULT else self.registry.get(name)
        if valid and name == DEFAULT:
            _opens(None, key)
            return Base(DEFAULT, "", False)
        if not _opens(record, key):
            raise self._unknown(name)
        assert record is not None
        return _base(name, record)

    def open(self, name: str, key: str | None = None) -> Bot:
        """The ``Bot`` of base ``name`` for a visitor holding ``key`` (web chat, API); ``NoSuchBase`` otherwise."""
        self.check(name, key)
        return self._bot(name)

    def server_open(self, name: str) -> Bot:
        """The ``Bot`` of base ``name`` for the server's operator (the CLI): private bases need no key."""
        self.get(name)
        return self._bot(name)

    def get(self, name: str) -> Base:
        """Base ``name`` for the server's operator (no key); ``NoSuchBase`` when there is none."""
        if check_kb_name(name) == DEFAULT:
            return Base(DEFAULT, "", False)
        return _base(name, self._record(name))

    def settings_of(self, name: str) -> Settings:
        """The settings of base ``name`` (its index folder, uploads, Milvus alias); no access check."""
        return locate(self.settings, name)

    def counts(self, name: str) -> tuple[int, int]:
        """(documents, passages) of base ``name``; (0, 0) before its first build."""
        try:
            reader = connect(self.settings_of(name)).live()
        except IndexMissing:
            return 0, 0
        return len(reader.documents()), reader.passage_count()

    # -- changing (the operator's: the CLI, or the web admin behind its password) ---------------------------
    def create(self, name: str, title: str = "", private: bool = False) -> tuple[Base, str | None]:
        """A new, empty base; with ``private``, also its key (shown once: only its hash is kept)."""
        check_kb_name(name)
        title = one_line(printable(title or "")).strip()[:MAX_TITLE]
        taken = {b.name.lower(): b.name for b in self.all()}
        if name.lower() in taken:  # Hr and hr would share a folder on a case-insensitive disk
            also = "" if taken[name.lower()] == name else " (names may not differ only in case)"
            raise UsageError(f"A knowledge base named {taken[name.lower()]} exists already{also}.",
                             "Choose another name (qa kb list).")
        record: dict[str, Any] = {"title": title, "private": private,
                                  "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        key = None
        if private:
            key, record["key_sha256"] = _new_key()
        self.registry.add(name, record)
        return _base(name, record), key

    def new_key(self, name: str) -> str:
        """A new key for private base ``name``; the old one stops working at once."""
        record = self._record(name)
        if not record.get("private"):
            raise UsageError(f"Knowledge base {name} is public: it has no key.",
                             "Keys are for private bases (qa kb create NAME --private).")
        key, record["key_sha256"] = _new_key()
        self.registry.put(name, record)
        return key

    def delete(self, name: str) -> None:
        """Delete base ``name`` with its index and files; ``default`` cannot be deleted."""
        check_kb_name(name)
        if name == DEFAULT:
            raise UsageError("The default knowledge base cannot be deleted.",
                             "Empty it with: qa remove DOC_ID ... (qa docs lists them).")
        self._record(name)
        with self._lock:
            self._bots.pop(name, None)
        self.registry.drop(name)

    # -- inside ---------------------------------------------------------------------
    def _record(self, name: str) -> dict[str, Any]:
        check_kb_name(name)
        record = None if name == DEFAULT else self.registry.get(name)
        if record is None:
            raise self._unknown(name)
        return record

    def _unknown(self, name: object) -> NoSuchBase:
        shown = one_line(printable(str(name)))[:70]
        return NoSuchBase(f"There is no knowledge base {shown!r}.",
                          f"Knowledge bases: {', '.join(self.public_names())}.")

    def _bot(self, name: str) -> Bot:
        from .pipeline import Bot, Encoders

        with self._lock:
            bot = self._bots.get(name)
            if bot is None:
                if self._encoders is None:  # one model for every base
                    self._encoders = Encoders(self.settings, self._encoder)
                bot = Bot(self.settings_of(name), encoders=self._encoders)
                self._bots[name] = bot
            return bot


def check_name_quietly(name: str) -> bool:
    try:
        check_kb_name(name)
    except UsageError:
        return False
    return True


def _base(name: str, record: dict[str, Any]) -> Base:
    return Base(name, str(record.get("title") or ""), bool(record.get("private")), str(record.get("created") or ""))


def ensure_index(bot: Bot, progress: Progress | None = None, say: Callable[[str], None] = print) -> BuildReport | None:
    """``Bot.ensure_index`` for any base: ``default`` builds from the seeds on first use, as it always did;
    another base is never built implicitly (which folder would it be?), and says how to build it."""
    name = bot.settings.kb
    if name == DEFAULT:
        return bot.ensure_index(progress, say)
    if bot.has_index():
        return None
    raise IndexMissing(f"Knowledge base {name} has no index yet.", f"Run: qa --kb {name} build FOLDER")
