"""The ``qa`` command: a thin shell over ``pipeline.py``.

Heavy libraries are imported inside the commands, never at module level, so
``qa --help`` answers at once. Every ``QAError`` becomes one line on stderr
and a non-zero exit code; no traceback reaches the user.
"""

from __future__ import annotations

import sys

import click

from . import __version__
from .errors import QAError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except QAError as error:
            click.echo(f"Error: {error}", err=True)
            ctx.exit(error.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qa")
def cli() -> None:
    """Ask questions of a collection of Chinese articles and get cited passages."""


def main(args: list[str] | None = None) -> None:
    """Entry point; ``args`` lets tests call the CLI in-process."""
    cli.main(args=args, prog_name="qa", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
