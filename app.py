"""Start the web chat: ``python app.py [--host HOST] [--port PORT]``.

Same as ``qa serve``. Settings come from ``QA_*`` variables (see qa/config.py);
a flag beats a variable. With no index yet, one is built from the seeds
folder first, with progress in the terminal.
"""

from __future__ import annotations

import argparse
import sys

from qa.config import Settings
from qa.errors import QAError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start the document question-answering web chat.")
    parser.add_argument("--host", help="address to listen on (QA_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (QA_PORT, default 7860)")
    args = parser.parse_args(argv)
    try:
        from qa import ui

        ui.serve(Settings.load(host=args.host, port=args.port))
    except QAError as error:
        print(f"Error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
