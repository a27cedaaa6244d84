"""Running the web chat and its API: `qa serve`, the page mounted on the API, the upload folder, stopping.

The served app listens on loopback unless told otherwise (and then says at
start what that opens up), fetches nothing from the internet, sends no raw
exception text to a browser, and has the ``guard.RequestGuard`` in front of
every route. SIGTERM stops it the way Ctrl-C does, so the upload folder goes too.

Questions need only the light question encoder, loaded before the server
listens; uploads need the full encoder, which takes seconds more (about 16 s
on two cores). It loads in a background thread as the server starts, so the
first upload does not wait for it and the first question is not held up by
it; stderr says when it starts and when it is ready.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..present import html as page
from ..config import Settings
from ..kb import DEFAULT
from .admin import STAGES, TEMP_MAX_AGE, upload_folder
from .api import Gate, build_api
from .guard import UPLOAD_QUOTA_FACTOR, RequestGuard, Throttle, TrustedClients
from .layout import CONCURRENCY, build_app

if TYPE_CHECKING:
    from ..kb import Bases
    from ..pipeline import Bot


def exposure_warning(settings: Settings) -> str | None:
    """What a non-loopback address opens up, said at start; None on a loopback address."""
    if _loopback(settings.host):
        return None
    admin = ("upload, remove and rebuild are open to anyone who types QA_ADMIN_PASSWORD "
             f"(wrong passwords lock the client out for up to {int(Throttle.CAP)} s)"
             if settings.admin_password else "upload, remove and rebuild are disabled (QA_ADMIN_PASSWORD is not set)")
    api = (f"the OpenAI-compatible and REST API (/v1, /api) needs one of the {len(settings.api_keys)} "
           "QA_API_KEY keys or a private knowledge base's key (wrong keys lock the client out like wrong "
           "passwords)"
           if settings.api_keys else "the OpenAI-compatible and REST API (/v1, /api) is open to anyone too "
           "(QA_API_KEY is not set), private knowledge bases excepted: each needs its key")
    return (
        f"Warning: listening on {settings.host}:{settings.port}, reachable from other machines. "
        "Anyone who can reach it can ask questions and read every indexed document "
        "(the chat and its /ask, /search, /documents endpoints); "
        f"{api}; {admin}. Anyone can also send files to the temporary upload folder (at most "
        f"{UPLOAD_QUOTA_FACTOR * settings.max_upload_mb} MB, deleted after use or {TEMP_MAX_AGE // 60} minutes). "
        "There is no TLS: put a reverse proxy with HTTPS in front, or use --host 127.0.0.1."
    )


def _loopback(host: str) -> bool:
    if host.strip("[]").lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def page_options(settings: Settings) -> dict:
    """How the chat page is mounted (``gr.mount_gradio_app``): no share link, nothing fetched from the
    internet, raw exception text never sent to a browser (show_error=False; gr.Error lines still are)."""
    import gradio as gr

    fonts = ["PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC",
             "WenQuanYi Micro Hei", "system-ui", "sans-serif"]
    theme = gr.themes.Soft(primary_hue="teal", neutral_hue="slate", font=fonts,
                           font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"])
    return dict(
        server_name=settings.host,
        server_port=settings.port,
        theme=theme,
        css=page.CSS,
        head=page.HEAD,
        max_file_size=f"{settings.max_upload_mb}mb",
        footer_links=["api"],
        enable_monitoring=False,
        mcp_server=False,
        ssr_mode=False,
        pwa=False,
        run_history=False,
        show_error=False,
    )


def build_server_app(bases: Bases, settings: Settings) -> Any:
    """One ASGI app for the port: the API (``api.build_api``, a FastAPI app, over every base of ``bases``)
    with the chat page mounted at ``/`` (the ``default`` base), and the ``RequestGuard`` in front of both.
    The chat and the API share one ``Gate`` of answer slots. The guard sweeps the upload folder, so call
    this after ``private_upload_folder`` (as ``serve`` does), never with a shared /tmp/gradio.

    Why a FastAPI app with gradio mounted, not routes added to gradio's own app: gradio's app publishes
    its own internals at /openapi.json and owns its exception handlers; a parent app has a schema of the
    API alone, OpenAI-shaped errors of its own, and the guard still sees every request first."""
    import gradio as gr

    trusted = TrustedClients()  # the admin addresses, shared by the admin handlers and the upload guard
    gate = Gate(CONCURRENCY, settings.api_queue)
    chat = build_app(bases, settings, trusted, gate)
    app = build_api(bases, settings, gate)
    gr.mount_gradio_app(app, chat, path="/", **page_options(settings))
    app.add_middleware(RequestGuard, folder=upload_folder(), max_age=TEMP_MAX_AGE,
                       max_file_bytes=settings.max_upload_mb * 1024 * 1024, trusted=trusted)
    return app


def serve(settings: Settings) -> None:
    """`qa serve` / `python app.py`: build the ``default`` index if there is none, then run the chat and
    the API over every knowledge base. ``settings.kb`` must name a base (the one the chat page opens on)."""
    from ..kb import Bases
    from ..present.terminal import progress_bars

    bases = Bases(settings)  # once per process: one model for every base
    bases.get(settings.kb)  # an unknown --kb / QA_KB: NoSuchBase, one line, before anything starts
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    warning = exposure_warning(settings)
    if warning:
        print(warning, file=sys.stderr)
    stop_on_sigterm()
    private_upload_folder()
    bot = bases.open(DEFAULT)
    bot.ensure_index(progress_bars(STAGES), say=lambda line: print(line, file=sys.stderr))
    print(f"嵌入模型：{bot.encoder_name}", file=sys.stderr)
    if bot.encoder_notice:
        print(bot.encoder_notice, file=sys.stderr)
    app = build_server_app(bases, settings)
    loading = preload_full_encoder(bot)
    try:
        run(app, settings)
    finally:
        # OpenVINO compiles the network in threads of its own: a process that exits while they run aborts
        # ("terminate called without an active exception", exit code -6) instead of stopping cleanly
        if loading.is_alive():
            print("Waiting for the encoder to finish loading before exit.", file=sys.stderr, flush=True)
            loading.join(timeout=120)


def run(app: Any, settings: Settings) -> None:
    """Serve ``app`` until Ctrl-C or SIGTERM, as gradio's ``launch`` does: uvicorn in a thread with no
    signal handlers of its own (both reach this thread as KeyboardInterrupt), the chat's heartbeat streams
    ended first so the server can close at once."""
    import uvicorn
    from starlette.routing import Mount

    host = settings.host.strip("[]")
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=settings.port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="qa-server", daemon=True)
    try:
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise OSError(f"Cannot listen on {settings.host}:{settings.port}; is the port in use? "
                              "Choose another with --port or QA_PORT.")
            time.sleep(0.01)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else settings.host
        print(f"* Running on local URL:  http://{shown}:{settings.port}  (API: /v1, /api; schema: /openapi.json)",
              flush=True)
        while thread.is_alive():
            time.sleep(0.1)
    except KeyboardInterrupt:
        print("Keyboard interruption in main thread... closing server.", flush=True)
    finally:
        for route in getattr(app, "routes", []):
            if isinstance(route, Mount) and hasattr(route.app, "stop_event"):
                route.app.stop_event.set()  # gradio's heartbeat streams end, so no connection holds the exit
        server.should_exit = True
        thread.join(timeout=5)


def preload_full_encoder(bot: Bot) -> threading.Thread:
    """Load the encoder uploads need in a daemon thread (see the module docstring); a failure is
    one line here, and the first upload meets it again and reports it to the admin."""

    def load() -> None:
        print("Loading the full encoder for uploads in the background.", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            bot.encoder  # noqa: B018 - loading it is the point
        except Exception as error:  # noqa: BLE001 - not fatal: questions use the light encoder
            print(f"The full encoder could not be loaded in the background ({type(error).__name__}); "
                  "the first upload will try again.", file=sys.stderr, flush=True)
            return
        print(f"Full encoder loaded in {time.monotonic() - started:.1f} s; uploads will not wait for it.",
              file=sys.stderr, flush=True)

    thread = threading.Thread(target=load, name="qa-full-encoder", daemon=True)
    thread.start()
    return thread


def stop_on_sigterm() -> None:
    """Let SIGTERM (systemd, docker stop, kill) stop the chat the way Ctrl-C does.

    Python's default SIGTERM ends the process without running ``atexit``, so every
    restart by a service manager would leave its upload folder behind in /tmp.
    As KeyboardInterrupt, gradio closes its server and the cleanup runs; a build
    under way stops as it does on Ctrl-C (the index stays as it was).
    """
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def private_upload_folder() -> Path:
    """A fresh upload folder for this process (inside GRADIO_TEMP_DIR if set), removed at exit.

    The RequestGuard accepts only files in it and counts what it holds, and
    the upload handler deletes from it: none of that may touch another
    gradio app's files in a shared /tmp/gradio.
    """
    import atexit

    parent = os.environ.get("GRADIO_TEMP_DIR") or None
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="qa-uploads-", dir=parent)
    os.environ["GRADIO_TEMP_DIR"] = folder
    atexit.register(shutil.rmtree, folder, True)
    return Path(folder)
