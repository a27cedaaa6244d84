"""Start the web chat: ``python app.py [--host HOST] [--port PORT] [--milvus-uri URI]``.

Exactly ``qa serve``, so both report errors, Ctrl-C and SIGTERM through the one
place in ``qa/cli.py``. Settings come from ``QA_*`` variables (see
qa/config.py); a flag beats a variable. With no folder index yet, one is built
from the seeds folder first, with progress in the terminal; on Milvus nothing is
built implicitly (run ``qa build`` first).
"""

from __future__ import annotations

import sys

from qa.cli import cli

if __name__ == "__main__":
    cli.main(["serve", *sys.argv[1:]], prog_name="app.py")
