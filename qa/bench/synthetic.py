"""Deterministic generated collections for the benchmarks (``qa bench``, benchmarks/).

Why generated: embedding 100,000 passages with a 12-layer model on two cores
takes over an hour, so scale figures use generated passages and vectors while
every store, FAISS, BM25 and fusion step runs for real. Two generators:

* ``seed_collection``: passages made of the seed articles' own sentences,
  each sentence in one of many variants (words swapped for other words of the
  collection, numbers changed), combined at random. BM25 therefore sees real
  Chinese words with a real-looking frequency spread, and no passage repeats.
  Vectors are the real embeddings of the seed passages the sentences came
  from, mixed and perturbed, so a real query vector has real-looking
  neighbours (and cosine scores in the range the model produces).
* ``clustered_corpus``: no text model at all (random two-character words with
  a Zipf spread, vectors clustered around random topics); for the storage
  layer alone (benchmarks/index_scale.py).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from ..types import Document, Passage, text_hash

PER_DOC = 10  # passages per generated document
VERSION = 1  # bump when the seed generator changes: cached indexes are keyed by it

Generated = tuple[Document, list[Passage], np.ndarray, list[list[str]]]


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def make_doc(doc_id: str, texts: Sequence[str], title: str | None = None) -> tuple[Document, list[Passage]]:
    """A document whose passages are ``texts`` in order (offsets are exact)."""
    text = "".join(texts)
    doc = Document(doc_id=doc_id, path=f"/generated/{doc_id}.txt", title=title or doc_id, text=text,
                   content_hash=text_hash(text), source="generated")
    passages, pos = [], 0
    for i, t in enumerate(texts):
        passages.append(Passage(doc_id, i, t, pos, pos + len(t)))
        pos += len(t)
    return doc, passages


# -- from the seeds ---------------------------------------------------------------
@dataclass
class SentencePool:
    """Sentence variants with their tokens and the seed passage each comes from."""

    texts: list[str]
    tokens: list[list[str]]
    source: np.ndarray  # index of the seed passage (row of the seed vectors)
    titles: list[str]
    variants: int  # per sentence; every ``variants``-th text is an original sentence


def sentence_pool(docs: Sequence[Document], passages: Sequence[Passage], variants: int = 32,
                  seed: int = 0) -> SentencePool:
    """``variants`` versions of every seed sentence, tokenised once (jieba runs here only)."""
    from ..chunk import split_sentences
    from ..segment import tokenize

    rng = np.random.default_rng(seed)
    owner: dict[tuple[str, int], int] = {}
    for i, p in enumerate(passages):
        for pos in range(p.start, p.end):
            owner.setdefault((p.doc_id, pos), i)
    sentences, sources, titles = [], [], []
    for doc in docs:
        for start, end in split_sentences(doc.text):
            if (doc.doc_id, start) in owner and end - start >= 8:
                sentences.append(doc.text[start:end])
                sources.append(owner[(doc.doc_id, start)])
        titles.append(doc.title)
    base_tokens = [tokenize(s) for s in sentences]
    words = sorted({t for toks in base_tokens for t in toks if len(t) >= 2 and not t.isdigit()})
    texts, tokens, source = [], [], []
    for sentence, toks, src in zip(sentences, base_tokens, sources, strict=True):
        swappable = sorted({t for t in toks if len(t) >= 2 and not t.isdigit()})
        for v in range(variants):
            text = sentence
            if v:  # variant 0 is the sentence itself
                for old in rng.choice(swappable, size=min(len(swappable), int(rng.integers(1, 4))), replace=False):
                    text = text.replace(str(old), words[int(rng.integers(len(words)))], 1)
                text = re.sub(r"\d+", lambda m: str(int(rng.integers(1, 10 ** len(m.group())))), text)
            texts.append(text)
            tokens.append(tokenize(text) if v else toks)
            source.append(src)
    return SentencePool(texts, tokens, np.asarray(source), titles, variants)


def seed_collection(pool: SentencePool, seed_vectors: np.ndarray, n: int, seed: int = 0) -> Iterator[Generated]:
    """``n`` passages in documents of ``PER_DOC``, streamed (memory stays flat).

    A passage is 3-6 sentence variants drawn at random; its vector is the mean
    of the seed vectors of their sources plus noise, normalised.
    """
    rng = np.random.default_rng(seed)
    dim = seed_vectors.shape[1]
    made = 0
    for d in range((n + PER_DOC - 1) // PER_DOC):
        count = min(PER_DOC, n - made)
        texts, toks, vecs = [], [], np.empty((count, dim), np.float32)
        for j in range(count):
            picks = rng.integers(0, len(pool.texts), int(rng.integers(3, 7)))
            texts.append("".join(pool.texts[i] for i in picks))
            toks.append([t for i in picks for t in pool.tokens[i]])
            vecs[j] = seed_vectors[pool.source[picks]].mean(axis=0)
        vecs = unit(vecs + rng.standard_normal(vecs.shape).astype(np.float32) * (0.25 / np.sqrt(dim)))
        title = f"{pool.titles[d % len(pool.titles)]}（汇编第{d + 1}期）"
        doc, passages = make_doc(f"gen-{d:06d}", texts, title)
        made += count
        yield doc, passages, vecs, toks


def queries(pool: SentencePool, count: int = 40, seed: int = 1) -> list[str]:
    """Questions made of fragments of seed sentences (10-20 characters), deterministic."""
    rng = np.random.default_rng(seed)
    originals = [t for t in pool.texts[:: pool.variants] if len(t) >= 24]
    out = []
    for i in rng.choice(len(originals), size=min(count, len(originals)), replace=False):
        text = re.sub(r"[，。；、：“”‘’！？,.;:!?\s]", "", originals[int(i)])
        start = int(rng.integers(0, max(1, len(text) - 20)))
        out.append(text[start : start + int(rng.integers(10, 21))] + "？")
    return out


# -- no text model: the storage layer alone -----------------------------------------
def clustered_corpus(
    n: int, dim: int = 384, seed: int = 0
) -> tuple[list[tuple[Document, list[Passage]]], np.ndarray, list[list[str]]]:
    """(documents with passages, vectors, tokens): Zipf words, clustered vectors."""
    rng = np.random.default_rng(seed)
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    vocab = [chars[i % 3000] + chars[(i * 7919) % 3000] for i in range(40_000)]
    p = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05
    p /= p.sum()
    lengths = rng.integers(60, 180, n)
    flat = rng.choice(len(vocab), size=int(lengths.sum()), p=p)
    tokens, pos = [], 0
    for length in lengths:
        tokens.append([vocab[j] for j in flat[pos : pos + length]])
        pos += length
    centres = unit(rng.standard_normal((max(n // 50, 8), dim)))
    vectors = unit(centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, dim)) / np.sqrt(dim))
    docs = [make_doc(f"gen-{d:06d}", ["".join(t) + "。" for t in tokens[d * PER_DOC : (d + 1) * PER_DOC]])
            for d in range((n + PER_DOC - 1) // PER_DOC)]
    return docs, vectors, tokens


# -- timing ---------------------------------------------------------------------------
def timed(fn: Callable[[int], object], repeat: int) -> list[float]:
    """Seconds per call of ``fn(i)`` for i in range(repeat)."""
    times = []
    for i in range(repeat):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return times


def stats(seconds: Sequence[float]) -> dict[str, float]:
    """p50 and p95 in milliseconds."""
    arr = np.asarray(seconds, dtype=np.float64) * 1000
    return {"p50": round(float(np.median(arr)), 3), "p95": round(float(np.percentile(arr, 95)), 3), "n": len(arr)}
