"""One exception family. Each message says what happened and what to do next.

The CLI and the web chat print ``str(error)`` and nothing else, so every
message must be a complete sentence a user can act on.
"""

from __future__ import annotations


class QAError(Exception):
    """Base of every error the program reports to a user instead of a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} {hint}" if hint else message)


class UsageError(QAError):
    """A flag, setting or argument is wrong."""

    exit_code = 2


class LoadError(QAError):
    """A file could not be read as a document."""


class ModelError(QAError):
    """The embedding model could not be found, converted or loaded."""


class IndexMissing(QAError):
    """There is no index yet."""


class IndexCorrupt(QAError):
    """The index on disk cannot be read."""


class IndexMismatch(QAError):
    """The index is intact but was built for another embedding model: it needs a rebuild, not a repair."""


class IndexUnavailable(QAError):
    """The index is served by another process (Milvus) that cannot be reached now; retrying later may work."""


class IndexBusy(QAError):
    """Another build holds the index lock."""


class IndexWriteError(QAError):
    """The disk failed while a build wrote or switched to its snapshot; the message says which index is live."""


class MissingDependency(QAError):
    """An optional library is not installed."""

    @classmethod
    def for_module(cls, module: str, package: str | None = None) -> "MissingDependency":
        return cls(
            f"The Python package '{package or module}' is not installed.",
            f'Run: pip install -e . (or pip install "{package or module}")',
        )
