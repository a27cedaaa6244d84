"""How long resolving a Hugging Face id takes to give up when the hub cannot be had.

``tests/test_embed.py`` checks *that* an unreachable hub falls back to the
bundled model (with the hub at a closed local port, so it holds anywhere);
this script measures *how long* giving up takes, which a unit test must not
assert. Two hubs: a closed local port (refused at once), and the real hub as
this machine reaches it (no route, a firewall that drops packets, or a proxy
that accepts and fails: the probe's timeout, ``qa.resolve.PROBE_TIMEOUT``,
bounds the wait for a connection).

    python benchmarks/hub_fallback.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time

from qa import resolve
from qa.errors import ModelError

SPEC = "BAAI/bge-small-zh-v1.5"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def give_up(endpoint: str) -> tuple[float, str]:
    """Seconds until ``resolve`` raises, and its message."""
    os.environ["HF_ENDPOINT"] = endpoint
    start = time.perf_counter()
    try:
        resolve.resolve(SPEC)
    except ModelError as error:
        return time.perf_counter() - start, error.message
    return time.perf_counter() - start, "resolved (the hub answered)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["HF_HOME"] = home  # an empty cache: the hub must be asked
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "https_proxy", "HTTPS_PROXY"):
            os.environ.pop(var, None)
        hubs = {"closed local port": f"http://127.0.0.1:{closed_port()}",
                "the real hub, from here": "https://huggingface.co"}
        print(f"resolving {SPEC} with an empty cache; probe timeout {resolve.PROBE_TIMEOUT} s")
        for label, endpoint in hubs.items():
            runs = [give_up(endpoint) for _ in range(args.repeat)]
            seconds = [s for s, _ in runs]
            print(f"  {label:<28} median {statistics.median(seconds):.2f} s, worst {max(seconds):.2f} s: {runs[-1][1]}")


if __name__ == "__main__":
    main()
