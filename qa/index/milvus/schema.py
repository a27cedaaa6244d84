"""What a Milvus index holds: the two collections' schemas and indexes, the rows written, the rows read back.

The layout is described in the package docstring (``__init__.py``). Kept
apart from the reader and writer so both name the same fields, and so the
row formats (document text in parts, the manifest with its compressed
document frequencies, sparse BM25 vectors) are one reading.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import zlib
from typing import Any, Mapping, Sequence

import numpy as np

from ...errors import IndexCorrupt, UsageError
from ...types import Document
from ..common import FORMAT, REBUILD, short_error, term_weights
from ..vectors import IVF_FROM
from .client import BULK_TIMEOUT, Connection, chunks


NEVER = 2**62  # ``removed`` of a row no build has hidden
PART_BYTES = 60_000  # document text per row (VARCHAR holds 65,535 bytes)
MAX_VARCHAR = 65_535
HASH_SPACE = 2**32 - 2  # sparse dimensions for words; one more is the placeholder below
EMPTY_DIM = 2**32 - 2  # a passage with no words: Milvus refuses an empty sparse vector
HNSW_FROM = IVF_FROM  # below it dense search is exact (FLAT), as with FAISS
HNSW = {"M": 16, "efConstruction": 200}
HNSW_EF = 128

PASSAGE_FIELDS = ["id", "doc_key", "doc_id", "ordinal", "start", "end", "heading", "tokens", "added", "removed",
                  "dense", "sparse"]
META_FIELDS = ["k", "kind", "doc_key", "doc_id", "part", "added", "removed", "body", "v"]


@functools.lru_cache(maxsize=1 << 20)
def token_id(token: str) -> int:
    """The sparse dimension of a word: stable across processes and builds (Python's hash is not).

    Two words of a collection share a dimension about once per 10^5 pairs (32 bits);
    they then count as one word, as a rare collision in any hashed vocabulary does."""
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little") % HASH_SPACE


def visible(gen: int) -> str:
    """The filter of rows a reader of generation ``gen`` sees."""
    return f"added <= {int(gen)} and removed > {int(gen)}"


# -- collections ----------------------------------------------------------------------------
# fields both collections have, in this order: the document a row belongs to, and the
# generations that see it (``visible``)
_Field = tuple[str, str, dict[str, Any]]  # name, pymilvus DataType name, add_field's options
_DOCUMENT: list[_Field] = [("doc_key", "INT64", {}), ("doc_id", "VARCHAR", {"max_length": 1024})]
_GENERATIONS: list[_Field] = [("added", "INT64", {}), ("removed", "INT64", {})]


def _schema(description: str, fields: Sequence[_Field]) -> Any:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=description)
    for name, kind, extra in fields:
        schema.add_field(name, getattr(DataType, kind), **extra)
    return schema


def passage_schema() -> Any:
    """The passage collection's fields but the dense vector, added once its dimension is known."""
    return _schema(f"qa passages, format {FORMAT}", [
        ("id", "INT64", {"is_primary": True}),
        *_DOCUMENT,
        ("ordinal", "INT64", {}),
        ("start", "INT64", {}),
        ("end", "INT64", {}),
        ("heading", "VARCHAR", {"max_length": MAX_VARCHAR}),
        ("tokens", "VARCHAR", {"max_length": MAX_VARCHAR}),
        *_GENERATIONS,
        ("sparse", "SPARSE_FLOAT_VECTOR", {}),
    ])


def create_meta(backend: Connection, collection: str) -> None:
    """The collection of documents, manifests and the "head" row."""
    from pymilvus import MilvusClient

    meta = _schema(f"qa documents and manifests, format {FORMAT}", [
        ("k", "VARCHAR", {"is_primary": True, "max_length": 256}),
        ("kind", "VARCHAR", {"max_length": 16}),
        *_DOCUMENT,
        ("part", "INT64", {}),
        *_GENERATIONS,
        ("body", "VARCHAR", {"max_length": MAX_VARCHAR}),
        ("v", "FLOAT_VECTOR", {"dim": 2}),  # Milvus wants a vector in every collection
    ])
    index = MilvusClient.prepare_index_params()
    index.add_index("v", index_type="FLAT", metric_type="L2")
    backend.call("create_collection", collection, schema=meta, index_params=index, timeout=BULK_TIMEOUT)


def passage_indexes(kind: str) -> Any:
    """The passage collection's indexes: dense (FLAT or HNSW), sparse BM25, and the filtered scalars."""
    from pymilvus import MilvusClient

    index = MilvusClient.prepare_index_params()
    if kind == "HNSW":
        index.add_index("dense", index_type="HNSW", metric_type="IP", params=HNSW)
    else:
        index.add_index("dense", index_type="FLAT", metric_type="IP")
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP",
                    params={"drop_ratio_build": 0.0})
    for scalar in ("added", "removed", "doc_key"):  # every filter names them
        index.add_index(scalar, index_type="INVERTED")
    return index


# -- rows written ---------------------------------------------------------------------------
def meta_row(k: str, kind: str, body: str, *, doc_key: int = 0, doc_id: str = "", part: int = 0,
             added: int = 0) -> dict[str, Any]:
    """A row of the meta collection (``v`` is the placeholder vector every collection needs)."""
    return {"k": k, "kind": kind, "doc_key": doc_key, "doc_id": doc_id, "part": part, "added": added,
            "removed": NEVER, "body": body, "v": [0.0, 0.0]}


def term_counts(tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """A passage's distinct sparse dimensions and how often each occurs."""
    if not tokens:
        return np.zeros(0, np.uint32), np.zeros(0, np.float32)
    ids = np.fromiter((token_id(t) for t in tokens), dtype=np.int64, count=len(tokens))
    dims, counts = np.unique(ids, return_counts=True)
    return dims.astype(np.uint32), counts.astype(np.float32)


def bm25_vector(dims: np.ndarray, counts: np.ndarray, dl: int, avgdl: float) -> dict[int, float]:
    """A passage's sparse vector: each word's BM25 term weight, without the IDF (the query has it)."""
    if not len(dims):
        return {EMPTY_DIM: 1e-9}  # Milvus refuses an empty sparse vector; no query names this dimension
    return dict(zip(dims.tolist(), term_weights(counts, dl, avgdl).tolist(), strict=True))


def split_text(text: str, limit: int = PART_BYTES) -> list[str]:
    """``text`` in pieces of at most ``limit`` UTF-8 bytes, cut between characters."""
    data = text.encode("utf-8")
    parts, start = [], 0
    while start < len(data):
        end = min(len(data), start + limit)
        while end < len(data) and data[end] & 0xC0 == 0x80:  # not inside a character
            end -= 1
        parts.append(data[start:end].decode("utf-8"))
        start = end
    return parts


def document_rows(doc: Document, key: int, passages: int, gen: int) -> list[dict]:
    """The document's metadata, then its cleaned text in parts."""
    meta = {"doc_id": doc.doc_id, "path": doc.path, "title": doc.title, "content_hash": doc.content_hash,
            "source": doc.source, "date": doc.date, "url": doc.url, "passages": passages}
    bodies = [json.dumps(meta, ensure_ascii=False), *split_text(doc.text)]
    if len(bodies[0].encode("utf-8")) > MAX_VARCHAR:
        raise UsageError(f"{doc.doc_id}: the title or path is too long for a Milvus text field.",
                         "Shorten the file name or the title.")
    return [meta_row(f"d:{key}:{part}", "doc", body, doc_key=key, doc_id=doc.doc_id, part=part, added=gen)
            for part, body in enumerate(bodies)]


def manifest_rows(manifest: Mapping[str, Any], df: Mapping[str, int], gen: int) -> list[dict]:
    """The manifest, then the document frequencies (compressed JSON in base64, in parts)."""
    blob = base64.b64encode(zlib.compress(json.dumps(df, ensure_ascii=False).encode("utf-8"), 6)).decode("ascii")
    pieces = [blob[i : i + PART_BYTES] for i in range(0, len(blob), PART_BYTES)]
    bodies = [json.dumps(dict(manifest, df_parts=len(pieces)), ensure_ascii=False), *pieces]
    return [meta_row(f"m:{gen}:{part}", "manifest", body, part=part, added=gen) for part, body in enumerate(bodies)]


# -- rows read back ---------------------------------------------------------------------------
def load_documents(backend: Connection, base: str, keys: list[int], strong: bool = True) -> dict[int, Document]:
    parts: dict[int, list[tuple[int, str]]] = {}
    for chunk in chunks(keys, 100):
        for row in backend.query_all(backend.meta(base), f'kind == "doc" and doc_key in {chunk}',
                                     ["doc_key", "part", "body"], strong):
            parts.setdefault(int(row["doc_key"]), []).append((int(row["part"]), row["body"]))
    out = {}
    for key, pieces in parts.items():
        pieces.sort()
        m = json.loads(pieces[0][1])
        out[key] = Document(doc_id=m["doc_id"], path=m["path"], title=m["title"],
                            text="".join(body for _, body in pieces[1:]), content_hash=m["content_hash"],
                            source=m["source"], date=m["date"], url=m["url"])
    return out


def manifest_of(backend: Connection, base: str, gen: int | None) -> dict[str, Any]:
    """Generation ``gen``'s manifest without its document frequencies; {} when there is none."""
    if gen is None:
        return {}
    rows = backend.call("query", backend.meta(base), filter=f'k == "m:{int(gen)}:0"', output_fields=["body"],
                        consistency_level="Strong")
    return json.loads(rows[0]["body"]) if rows else {}


def read_manifest(backend: Connection, base: str, gen: int) -> tuple[dict[str, Any], dict[str, int]]:
    """Generation ``gen``'s manifest and document frequencies; ``IndexCorrupt`` when they cannot be read."""
    rows = backend.query_all(backend.meta(base), f'kind == "manifest" and added == {int(gen)}', ["part", "body"])
    rows.sort(key=lambda r: int(r["part"]))
    try:
        manifest = json.loads(rows[0]["body"])
        if manifest.get("format") != FORMAT:
            raise IndexCorrupt(f"The index in {backend.location} was written by another version of qa.", REBUILD)
        if len(rows) != manifest["df_parts"] + 1:
            raise ValueError(f"{len(rows) - 1} of {manifest['df_parts']} parts")
        blob = "".join(r["body"] for r in rows[1:])
        df = json.loads(zlib.decompress(base64.b64decode(blob)).decode("utf-8")) if blob else {}
    except (IndexError, KeyError, ValueError, TypeError, zlib.error) as error:
        raise IndexCorrupt(f"The manifest in {backend.location} cannot be read ({short_error(error)}).",
                           REBUILD) from None
    return manifest, df
