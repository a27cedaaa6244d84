"""The ``qa`` command: a thin shell over ``pipeline.py``.

Heavy libraries are imported inside the commands, never at module level, so
``qa --help`` answers at once. Every ``QAError`` becomes one line on stderr
and a non-zero exit code; no traceback reaches the user.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .config import Settings
from .errors import QAError
from .present.report import summary
from .text import one_line, printable

if TYPE_CHECKING:
    from .pipeline import Bot
    from .types import Progress


_KB_HELP = "The knowledge base to act on [QA_KB; default] (qa kb list)."
_MILVUS_HELP = "Use the index in Milvus: http(s)://host:port, or a local *.db file [QA_MILVUS_URI; unset: the folder]."


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except QAError as error:
            click.echo(f"Error: {one_line(str(error))}", err=True)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted; the index is unchanged unless a build had finished.", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qa")
@click.option("--index-dir", type=click.Path(path_type=Path), help="Index folder [QA_INDEX_DIR; embeddings/].")
@click.option("--model", help="Embedding model: local folder or Hugging Face id [QA_MODEL; bundled e5-small].")
@click.option("--milvus-uri", help=_MILVUS_HELP)
@click.option("--kb", help=_KB_HELP)
@click.pass_context
def cli(ctx: click.Context, index_dir: Path | None, model: str | None, milvus_uri: str | None, kb: str | None) -> None:
    """Ask questions of a collection of Chinese articles and get cited passages."""
    ctx.obj = {"index_dir": index_dir, "model": model, "milvus_uri": milvus_uri, "kb": kb}


def _milvus(command: Any) -> Any:
    """``--milvus-uri`` after the command name too (``qa build --milvus-uri URI``)."""

    def keep(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value is not None:
            ctx.ensure_object(dict)["milvus_uri"] = value

    return click.option("--milvus-uri", help=_MILVUS_HELP, expose_value=False, callback=keep)(command)


def _kb(command: Any) -> Any:
    """``--kb`` after the command name too (``qa ask --kb hr ...``)."""

    def keep(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value is not None:
            ctx.ensure_object(dict)["kb"] = value

    return click.option("--kb", help=_KB_HELP, expose_value=False, callback=keep)(command)


def _llm(command: Any) -> Any:
    """``--llm-url``, ``--llm-model``, ``--llm-timeout``: the written answer (qa/generate.py). The key stays in
    QA_LLM_API_KEY, out of the process list."""
    def keep(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None:
            ctx.ensure_object(dict)[str(param.name)] = value

    for name, kind, text in (
        ("--llm-timeout", int, "Seconds for the model's whole reply [QA_LLM_TIMEOUT; 30]."),
        ("--llm-model", str, "Model name on that server [QA_LLM_MODEL]."),
        ("--llm-url", str, "Written answers from an OpenAI-compatible API at this base URL [QA_LLM_URL; unset: none]."),
    ):
        command = click.option(name, type=kind, help=text, expose_value=False, callback=keep)(command)
    return command


def _settings(ctx: click.Context, **overrides) -> Settings:
    return Settings.load(**ctx.obj, **overrides)


def _bot(settings: Settings) -> Bot:
    """The bot of the base ``--kb`` / QA_KB names. The CLI is the server's operator: private bases open
    without their key (see qa/kb.py)."""
    from .kb import Bases

    return Bases(settings).server_open(settings.kb)


def _progress() -> Progress:
    from .present.terminal import progress_bars

    return progress_bars()


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--add", "add_only", is_flag=True, help="Only add or update PATHS; remove nothing.")
@click.option("--full", is_flag=True, help="Re-embed everything (e.g. after a damaged index).")
@click.option("--chunk-size", type=int, help="Target passage length in characters [QA_CHUNK_SIZE; 400].")
@click.option("--max-file-mb", type=int, help="Skip files larger than this, 0 for no cap [QA_MAX_FILE_MB; 20].")
@click.option("--follow-links", is_flag=True, help="Also index symbolic links that point outside the folders.")
@_kb
@_milvus
@click.pass_context
def build(
    ctx: click.Context,
    paths: tuple[Path, ...],
    add_only: bool,
    full: bool,
    chunk_size: int | None,
    max_file_mb: int | None,
    follow_links: bool,
) -> None:
    """Index PATHS (files or folders; default: seeds/), embedding only what changed."""
    settings = _settings(ctx, chunk_size=chunk_size, max_file_mb=max_file_mb)
    if add_only and not paths:
        raise click.UsageError("--add needs the files to add.")
    bot = _bot(settings)
    report = bot.build(
        list(paths) or None, add_only=add_only, full=full, progress=_progress(), follow_links=follow_links
    )
    click.echo(summary(report))
    click.echo(f"Model: {bot.encoder_name}", err=True)


@cli.command()
@click.argument("doc_ids", nargs=-1, required=True)
@_kb
@_milvus
@click.pass_context
def remove(ctx: click.Context, doc_ids: tuple[str, ...]) -> None:
    """Remove documents by id (see: qa docs)."""
    report = _bot(_settings(ctx)).remove(list(doc_ids))
    click.echo(summary(report))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_kb
@_milvus
@click.pass_context
def docs(ctx: click.Context, as_json: bool) -> None:
    """List the indexed documents."""
    from dataclasses import asdict

    infos = _bot(_settings(ctx)).documents()
    if as_json:
        from .clean import safe_url

        rows = [{**asdict(i), "url": safe_url(i.url)} for i in infos]  # an older index may hold javascript: URLs
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    for info in infos:  # titles and paths come from files: nothing in them may drive the terminal
        title, source = one_line(printable(info.title or "")), one_line(printable(info.source or "?"))
        click.echo(f"{info.doc_id}  {info.date or '----------'}  {info.passages:>3}p  {title}  [{source}]")
        click.echo(f"    {one_line(info.path)}")


def _ensure_index(bot: Bot) -> None:
    from .kb import ensure_index

    ensure_index(bot, _progress(), say=lambda line: click.echo(line, err=True))


@cli.command()
@click.argument("question")
@click.option("-k", "top_k", type=int, help="Passages to return [QA_TOP_K; 5].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (one per line with '-').")
@_kb
@_milvus
@_llm
@click.pass_context
def ask(ctx: click.Context, question: str, top_k: int | None, as_json: bool) -> None:
    """Ask a QUESTION ('-' reads one question per line from standard input)."""
    from .present.json import answer_to_json
    from .present.terminal import format_answer

    bot = _bot(_settings(ctx, top_k=top_k))
    _ensure_index(bot)
    questions = (line.strip() for line in sys.stdin) if question == "-" else iter([question])
    for q in map(printable, questions):  # escapes in a question are never echoed back
        if question == "-" and not q:
            continue
        try:
            result = bot.ask(q)
        except QAError as error:
            if question != "-":
                raise
            click.echo(json.dumps({"question": q, "error": str(error)}, ensure_ascii=False))
            continue
        if as_json:
            click.echo(json.dumps(answer_to_json(result), ensure_ascii=False))
        else:
            if result.generated is not None and not result.abstained:
                from .present.terminal import format_generated

                click.echo("\n".join(format_generated(result.generated)))  # the checked answer first
            click.echo(format_answer(result))
    if bot.encoder_notice and not as_json:
        click.echo(bot.encoder_notice, err=True)


@cli.command(name="eval")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--mode", type=click.Choice(["hybrid", "bm25", "dense", "all"]), default="hybrid", show_default=True)
@click.option("--fusion", type=click.Choice(["weighted", "rrf"]), default="weighted", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--llm", "use_llm", is_flag=True, help="Also run the LLM (QA_LLM_URL) and report its checked answers.")
@_kb
@_milvus
@_llm
@click.pass_context
def evaluate(ctx: click.Context, file: Path, mode: str, fusion: str, as_json: bool, use_llm: bool) -> None:
    """Score retrieval on a JSONL question set (hit@1, hit@5, MRR, lead, abstention)."""
    from .evaluate import format_report, read_rows, score
    from .present.json import answer_to_json

    rows = read_rows(file)
    settings = _settings(ctx)
    if use_llm and not settings.llm_url:
        raise click.UsageError("--llm needs the model's address: --llm-url URL or QA_LLM_URL.")
    bot = _bot(settings if use_llm else settings.with_(llm_url=""))  # the model is asked only with --llm
    _ensure_index(bot)
    modes = ["bm25", "dense", "hybrid"] if mode == "all" else [mode]
    reports: dict[str, Any] = {}
    for m in modes:
        answers = [bot.ask(r["question"], mode=m, fusion=fusion) for r in rows]
        reports[m] = score(rows, [answer_to_json(a) for a in answers])
        if use_llm:
            from .generate import eval_report

            reports[m]["llm"] = eval_report(answers)
    if as_json:
        click.echo(json.dumps(reports if mode == "all" else reports[mode], ensure_ascii=False, indent=1))
        return
    for m, report in reports.items():
        click.echo(format_report(report, label=f"[{m}{'/' + fusion if m == 'hybrid' else ''}] "))
        if "llm" in report:
            from .generate import format_eval

            click.echo(format_eval(report["llm"]))


@cli.group()
def model() -> None:
    """The embedding model: install the bundled one, show the active one."""


@model.command()
@click.pass_context
def install(ctx: click.Context) -> None:
    """Convert the bundled multilingual-e5-small into a sentence-transformers model (once)."""
    from .convert import install_bundled

    settings = _settings(ctx)
    path = install_bundled(settings.cache_dir, progress=lambda msg: click.echo(msg, err=True))
    click.echo(f"Bundled model ready in {path}")


@model.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def info(ctx: click.Context, as_json: bool) -> None:
    """Which model is active, where it lives and how it was made."""
    from .embed import model_info

    details = model_info(_settings(ctx))
    if as_json:
        click.echo(json.dumps(details, ensure_ascii=False, indent=1))
    else:
        for key, value in details.items():
            if isinstance(value, dict):  # the precision figures: one line per candidate
                for name, figures in value.items():
                    click.echo(f"{key}[{name}]: {json.dumps(figures, ensure_ascii=False)}")
            else:
                click.echo(f"{key}: {value}")


@cli.command()
@click.option("--host", help="Address to listen on [QA_HOST; 127.0.0.1].")
@click.option("--port", type=int, help="Port [QA_PORT; 7860].")
@_kb
@_milvus
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Start the web chat and the API over every knowledge base (the folder index of the default base is
    built from seeds/ first if there is none; Milvus never is). --kb: the base the chat page opens on."""
    from .web.server import serve as run

    run(_settings(ctx, host=host, port=port))


@cli.command()
@click.option("--passages", "n_passages", type=int, default=100_000, show_default=True,
              help="Size of the generated collection for the scale figures.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--first-build", is_flag=True,
              help="Also time a build with an empty model cache, as on a new machine (adds minutes).")
@_kb
@_milvus
@click.pass_context
def bench(ctx: click.Context, n_passages: int, as_json: bool, first_build: bool) -> None:
    """Measure speed and memory: encoder, retrieval, add-one-document, cold start."""
    from .bench import format_report, run

    settings = _bot(_settings(ctx)).settings  # another base: its documents/ folder stands in for the seeds
    if settings.kb != "default" and not any(Path(settings.seeds_dir).iterdir()):
        raise click.UsageError(f"qa --kb {settings.kb} bench measures the base's documents folder, which is empty:"
                               f" put its articles in {settings.seeds_dir}.")
    report = run(settings, n_passages, log=lambda msg: click.echo(msg, err=True), first_build=first_build)
    click.echo(json.dumps(report, ensure_ascii=False, indent=1) if as_json else format_report(report))


@cli.group(name="kb")
def kb_group() -> None:
    """Knowledge bases: separate collections in one deployment, some private (--kb NAME picks one)."""


def _bases(ctx: click.Context) -> Any:
    from .kb import Bases

    return Bases(_settings(ctx))


@kb_group.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_milvus
@click.pass_context
def kb_list(ctx: click.Context, as_json: bool) -> None:
    """List every base, private ones included (this runs on the server), with its documents and passages."""
    bases = _bases(ctx)
    rows = []
    for base in bases.all():
        documents, passages = bases.counts(base.name)
        rows.append({"name": base.name, "title": base.title, "documents": documents, "passages": passages,
                     "private": base.private})
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    for row in rows:
        shown = one_line(printable(row["title"]))
        click.echo(f"{row['name']:<16}  {row['documents']:>4} documents  {row['passages']:>6} passages"
                   f"{'  private' if row['private'] else ''}{'  ' + shown if shown else ''}")


@kb_group.command(name="create")
@click.argument("name")
@click.option("--title", default="", help="A title shown beside the name.")
@click.option("--private", is_flag=True, help="Readable only with its key (printed once).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {name, title, private[, key]}.")
@_milvus
@click.pass_context
def kb_create(ctx: click.Context, name: str, title: str, private: bool, as_json: bool) -> None:
    """Create an empty base NAME; then: qa --kb NAME build FOLDER."""
    base, key = _bases(ctx).create(name, title, private)
    if as_json:
        row: dict[str, Any] = {"name": base.name, "title": base.title, "private": base.private}
        if key is not None:
            row["key"] = key
        click.echo(json.dumps(row, ensure_ascii=False))
        return
    click.echo(f"Created {'private ' if private else ''}knowledge base {base.name}. Fill it: qa --kb {base.name} "
               "build FOLDER")
    if key is not None:
        click.echo(f"Key (shown once; qa kb key {base.name} issues a new one): {key}")


@kb_group.command(name="key")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {name, key}.")
@_milvus
@click.pass_context
def kb_key(ctx: click.Context, name: str, as_json: bool) -> None:
    """Issue a new key for private base NAME; the old key stops working."""
    key = _bases(ctx).new_key(name)
    if as_json:
        click.echo(json.dumps({"name": name, "key": key}))
    else:
        click.echo(f"New key for {name} (the old one no longer works): {key}")


@kb_group.command(name="delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_milvus
@click.pass_context
def kb_delete(ctx: click.Context, name: str, yes: bool) -> None:
    """Delete base NAME with its index, documents folder and uploads (not default)."""
    bases = _bases(ctx)
    if name == "default":
        bases.delete(name)  # refused, with what to do instead
    bases.get(name)  # an unknown base: the error before the question
    documents, passages = bases.counts(name)
    if not yes and not click.confirm(f"Delete knowledge base {name} ({documents} documents, {passages} passages)?"):
        click.echo("Nothing deleted.")
        ctx.exit(1)
    bases.delete(name)
    click.echo(f"Deleted knowledge base {name}.")


def main(args: list[str] | None = None) -> None:
    """Entry point; ``args`` lets tests call the CLI in-process."""
    cli.main(args=args, prog_name="qa", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])

