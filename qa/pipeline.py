"""The only module that knows the order of the stages.

Build: load -> clean -> chunk -> embed (through the cache) -> index (atomic commit).
Ask:   interpret follow-up -> embed query -> retrieve (BM25 + dense, fused) -> abstain? -> lead.

``Bot`` is what the CLI and the web chat hold. Reads are thread-safe: each
question takes the index that is current when it starts, and a build that
commits meanwhile is picked up by the next question.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import answer, chunk, load, question, retrieve, text
from .clean import safe_url
from .config import Settings
from .errors import IndexCorrupt, IndexMissing, UsageError
from .followup import interpret
from .types import Answer, Document, Passage

MAX_QUESTION_CHARS = 500  # longer questions are cut here: the model reads ~512 tokens at most
CUT_NOTICE = "问题超过 {limit} 个字符，只按前 {limit} 个字符检索。"
# Passages encoded between two cache commits: a killed build loses at most one batch (about 15 s of encoding on
# 2 cores), and the commit after it costs about 1 ms, under 0.1 % of that (benchmarks/cache_commit.py). 64 is also
# the group encode_passages forms itself, so batching here changes none of its forward passes.
EMBED_BATCH = 64

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class BuildReport:
    """What a build or removal changed, in words a user can check."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[load.Skipped] = field(default_factory=list)
    notices: list[load.Notice] = field(default_factory=list)  # files that loaded with a caveat
    full_rebuild_reason: str | None = None
    embedded: int = 0  # passages actually run through the encoder (cache misses)
    passages: int = 0  # passages in the index after the build

    def summary(self) -> str:
        lines = []
        if self.full_rebuild_reason:
            lines.append(f"Full rebuild: {self.full_rebuild_reason}.")
        lines.append(
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
            f"{len(self.unchanged)} unchanged; {self.embedded} passages embedded; "
            f"{self.passages} passages in the index."
        )
        for notice in self.notices:
            lines.append(f"Loaded {text.one_line(notice.path)}: {text.one_line(notice.message)}")
        for skip in self.skipped:
            lines.append(f"Skipped {text.one_line(skip.path)}: {text.one_line(skip.reason)}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Candidates:
    """Both retrievers' candidates for one question, before fusion."""

    question: str
    query: str
    index: object
    dense: list[tuple[int, float]]
    keyword: list[tuple[int, float]]
    cut: bool = False  # the question was longer than MAX_QUESTION_CHARS and was cut


def index_text(doc: Document, passage: Passage) -> str:
    """What BM25 and the encoder see for a passage: the title gives it context."""
    if passage.heading and passage.heading not in passage.text:
        return f"{doc.title}\n{passage.heading}\n{passage.text}"
    return f"{doc.title}\n{passage.text}"


class Bot:
    def __init__(self, settings: Settings, encoder=None) -> None:
        self.settings = settings
        text.use_cache_dir(settings.cache_dir)
        self._encoder = encoder
        self._index = None
        self._index_version: str | None = None
        self._lock = threading.Lock()
        self._query_encoder = None
        self._query_lock = threading.Lock()

    # -- model -------------------------------------------------------------
    @property
    def encoder(self):
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    from .embed import load_encoder

                    self._encoder = load_encoder(self.settings)
        return self._encoder

    @property
    def query_encoder(self):
        """What encodes questions: the light OpenVINO path when it applies (no torch import,
        seconds faster to start), else the full encoder. Both give the same vectors."""
        if self._query_encoder is None:
            with self._query_lock:
                if self._query_encoder is None:
                    from .embed import load_query_encoder

                    light = None if self._encoder is not None else load_query_encoder(self.settings)
                    self._query_encoder = light or self.encoder
        return self._query_encoder

    @property
    def encoder_name(self) -> str:
        return self.query_encoder.name

    @property
    def encoder_notice(self) -> str | None:
        return self.query_encoder.notice

    # -- index -------------------------------------------------------------
    def index(self):
        """The current index, reopened when a build has switched it."""
        from .index import current_version, open_index

        version = current_version(self.settings.index_dir)
        with self._lock:
            if self._index is None or version != self._index_version:
                self._index = open_index(self.settings.index_dir)
                self._index_version = version
            return self._index

    def has_index(self) -> bool:
        from .index import current_version

        return current_version(self.settings.index_dir) is not None

    def documents(self):
        return self.index().documents()

    def document(self, doc_id: str) -> Document:
        return self.index().document(doc_id)

    # -- ask ---------------------------------------------------------------
    def ask(
        self,
        question: str,
        history: Sequence[str] = (),
        k: int | None = None,
        mode: str = "hybrid",
        fusion: str = "weighted",
        weight: float = retrieve.DENSE_WEIGHT,
    ) -> Answer:
        """Answer one question; ``mode`` (hybrid | bm25 | dense) and ``fusion``
        (weighted | rrf) exist so ``qa eval`` can compare the alternatives."""
        return self.answer(self.candidates(question, history), k, mode, fusion, weight)

    def candidates(self, question: str, history: Sequence[str] = ()) -> Candidates:
        """Interpret the question and take candidates from both retrievers (the costly part)."""
        question = text.printable(question or "").strip()  # no control codes reach the answer or its echo
        if not question:
            raise UsageError("The question is empty.", "Type a question in Chinese, e.g. 蒙阴交警大队的党建品牌叫什么？")
        if self._query_encoder is None:  # first question: load jieba and the model while the index opens
            _in_background(text.tokenize, "")
            _in_background(lambda: self.query_encoder)
        query = interpret(question[:MAX_QUESTION_CHARS], [h[:MAX_QUESTION_CHARS] for h in history])
        index = self.index()
        encoder = self.query_encoder
        built_with = index.manifest.get("encoder")
        if built_with != encoder.identity:
            raise IndexCorrupt(
                f"The index was built with another embedding model ({index.manifest.get('encoder_name', built_with)}),"
                f" but {encoder.name} is active.",
                "Run: qa build (it re-embeds everything for the active model).",
            )
        qvec = encoder.encode_queries([query])[0]
        dense = index.search_dense(qvec, retrieve.CANDIDATES)
        keyword = index.search_keyword(text.tokenize(query), retrieve.CANDIDATES)
        return Candidates(question, query, index, dense, keyword, cut=len(question) > MAX_QUESTION_CHARS)

    def answer(
        self,
        found: Candidates,
        k: int | None = None,
        mode: str = "hybrid",
        fusion: str = "weighted",
        weight: float = retrieve.DENSE_WEIGHT,
    ) -> Answer:
        """Fuse, merge, decide abstention and pick the lead (cheap; no model call)."""
        if mode not in ("hybrid", "bm25", "dense") or fusion not in ("weighted", "rrf"):
            raise UsageError(f"Unknown mode {mode!r} or fusion {fusion!r}.", "Use hybrid, bm25 or dense; weighted or rrf.")
        k = k or self.settings.top_k
        index, dense, keyword = found.index, found.dense, found.keyword
        ranked_dense, ranked_keyword = (dense if mode != "bm25" else []), (keyword if mode != "dense" else [])
        if fusion == "rrf":
            fused = retrieve.fuse_rrf(ranked_dense, ranked_keyword)
        else:
            fused = retrieve.fuse_weighted(ranked_dense, ranked_keyword, weight)
        words = text.keywords(found.query)
        weights = retrieve.idf_weights(words, index.doc_freq, index.passage_count())
        hits = retrieve.rank(fused, dense, keyword, index.passages, k, self.settings.chunk_max, weights)
        cover = retrieve.coverage(words, weights, [index_text(h.document, h.passage) for h in hits[:3]])
        top_dense = retrieve.best_dense(dense)
        asked = question.analyse(found.query)
        articles = {h.document.doc_id: f"{h.document.title}\n{h.document.text}" for h in hits}
        missing = retrieve.missing_names(asked.places, index.doc_freq, list(articles.values()))
        evidenced = answer.has_evidence(asked, found.query, hits, weights)
        abstained = (
            not hits
            or not text.tokenize(found.query)  # emoji, punctuation, symbols: nothing to search for
            or retrieve.decide(cover, top_dense, missing=len(missing), evidenced=evidenced)
        )
        lead = [] if abstained else answer.lead(found.query, hits, weights, asked)
        notices = [CUT_NOTICE.format(limit=MAX_QUESTION_CHARS)] if found.cut else []
        return Answer(
            question=found.question,
            query=found.query,
            abstained=abstained,
            hits=hits,
            lead=lead,
            encoder=self.query_encoder.name,
            signals={
                "coverage": None if cover is None else round(cover, 3),
                "dense": round(top_dense, 3),
                "evidence": 1.0 if evidenced else 0.0,
                "missing_names": float(len(missing)),
            },
            notices=notices,
        )

    # -- build -------------------------------------------------------------
    def manifest(self) -> dict:
        s = self.settings
        return {
            "encoder": self.encoder.identity,
            "encoder_name": self.encoder.name,
            "dim": self.encoder.dim,
            "chunking": {"size": s.chunk_size, "max": s.chunk_max, "overlap": s.chunk_overlap},
            "index_text": "title + heading + passage",
        }

    def build(
        self,
        paths: Sequence[Path] | None = None,
        add_only: bool = False,
        full: bool = False,
        progress: Progress | None = None,
        follow_links: bool = False,
    ) -> BuildReport:
        """Bring the index up to date with ``paths`` (default: the seeds folder).

        New and changed documents (by content hash) are embedded; documents
        whose files under ``paths`` are gone are removed unless ``add_only``;
        documents indexed from elsewhere (other folders, uploads) are kept.
        ``follow_links`` indexes symbolic links that point outside the folders.
        """
        from .index import Builder

        roots = [Path(p) for p in (paths or [self.settings.seeds_dir])]
        for root in roots:
            if not root.exists():
                raise UsageError(f"{root} does not exist.", "Give a file or folder of articles to index.")
        scan = load.load_collection(roots, self.settings.max_file_mb, follow_links)
        docs = scan.documents
        report = BuildReport(skipped=list(scan.skipped), notices=list(scan.notices))
        wanted = self.manifest()
        old, reason = self._old_index(wanted, full)
        with Builder(self.settings.index_dir, fresh=reason is not None, previous=old) as builder:
            report.full_rebuild_reason = reason if old is not None or full else None
            existing = builder.existing()
            loaded = {d.doc_id for d in docs}
            if reason is not None and old is not None:
                # carry over documents indexed from elsewhere: re-chunk their stored text
                docs = docs + [old.document(info.doc_id) for info in old.documents() if info.doc_id not in loaded]
            todo = []
            for doc in docs:
                if existing.get(doc.doc_id) == doc.content_hash:
                    report.unchanged.append(doc.doc_id)
                    continue
                (report.updated if doc.doc_id in existing else report.added).append(doc.doc_id)
                todo.append(doc)
            if not add_only:
                for doc_id in self._vanished(builder, existing, loaded, roots, scan.files):
                    builder.remove_document(doc_id)
                    report.removed.append(doc_id)
            report.embedded = self._add(builder, todo, progress)
            report.passages = builder.passage_count()
            builder.commit(wanted)
        return report

    def remove(self, doc_ids: Sequence[str]) -> BuildReport:
        from .index import Builder

        report = BuildReport()
        self.index()  # a clear IndexMissing before taking the lock
        with Builder(self.settings.index_dir) as builder:
            existing = builder.existing()
            unknown = [d for d in doc_ids if d not in existing]
            if unknown:
                raise UsageError(f"No document with id {', '.join(unknown)}.", "List the ids with: qa docs")
            for doc_id in doc_ids:
                builder.remove_document(doc_id)
                report.removed.append(doc_id)
            report.passages = builder.passage_count()
            builder.commit(self.index().manifest)
        return report

    def _old_index(self, wanted: dict, full: bool):
        """The index being replaced, and why a full rebuild is needed (None: incremental)."""
        from .index import open_index

        try:
            old = open_index(self.settings.index_dir)
        except IndexMissing:
            return None, "there is no index yet"
        except IndexCorrupt as error:
            return None, f"the index could not be read ({error.message})"
        have = old.manifest
        if full:
            return old, "--full was asked for"
        if have.get("encoder") != wanted["encoder"]:
            return old, f"the embedding model changed ({have.get('encoder_name')} -> {wanted['encoder_name']})"
        if have.get("chunking") != wanted["chunking"] or have.get("index_text") != wanted["index_text"]:
            return old, f"the chunking settings changed ({have.get('chunking')} -> {wanted['chunking']})"
        return old, None

    @staticmethod
    def _vanished(
        builder, existing: dict, loaded: set[str], roots: Sequence[Path], found: Sequence[Path]
    ) -> list[str]:
        """Indexed documents under the scanned roots whose files this scan no longer found.

        "Found" is what discovery listed, not what exists on disk: a symbolic
        link that was deleted, or that now points outside the folder, is no
        longer found even though its target still exists. A file that is still
        there but failed to load keeps its previous version.
        """
        resolved = [r.resolve() for r in roots]
        present = {str(path) for path in found}
        gone = []
        for doc_id in existing:
            if doc_id in loaded:
                continue
            path = Path(builder.document_path(doc_id))
            inside = any(path == r or r in path.parents for r in resolved)
            if inside and str(path) not in present:
                gone.append(doc_id)
        return gone

    def _add(self, builder, docs: list[Document], progress: Progress | None) -> int:
        """Chunk, tokenise and embed ``docs`` (through the cache), then add them."""
        s = self.settings
        plans = []
        for doc in docs:
            passages = chunk.chunk_document(doc, size=s.chunk_size, max_size=s.chunk_max, overlap=s.chunk_overlap)
            texts = [index_text(doc, p) for p in passages]
            plans.append((doc, passages, texts))
        all_texts = [t for _, _, texts in plans for t in texts]
        cached, embedded = self._embed(all_texts, progress)
        offset = 0
        for doc, passages, texts in plans:  # add_document replaces an existing doc_id
            vectors = np.asarray(cached[offset : offset + len(texts)], dtype=np.float32).reshape(-1, self.encoder.dim)
            offset += len(texts)
            builder.add_document(doc, passages, vectors, [text.tokenize(t) for t in texts])
        return embedded

    def _embed(self, texts: list[str], progress: Progress | None) -> tuple[list[np.ndarray], int]:
        """One vector per text, and how many texts were encoded: from the cache, else encoded and cached batch
        by batch.

        Each batch is committed to ``cache.sqlite`` as soon as it is encoded, so
        a build killed after N passages (even by SIGKILL) finds them there when
        it is run again and encodes only the rest. Identical texts are encoded
        once; texts go to the encoder longest first, as ``encode_passages``
        would order them itself, so batching adds no padding.
        """
        from .index import EmbeddingCache

        identity = self.encoder.identity
        with EmbeddingCache(self.settings.index_dir) as cache:
            found = cache.get(identity, texts)
            todo = sorted({t for t, v in zip(texts, found, strict=True) if v is None}, key=lambda t: (-len(t), t))
            vectors = {t: v for t, v in zip(texts, found, strict=True) if v is not None}
            for start in range(0, len(todo), EMBED_BATCH):
                batch = todo[start : start + EMBED_BATCH]
                report = (lambda done, s=start: progress("embed", s + done, len(todo))) if progress else None
                fresh = self.encoder.encode_passages(batch, progress=report)
                cache.put(identity, batch, fresh)
                vectors.update(zip(batch, fresh, strict=True))
        return [vectors[t] for t in texts], len(todo)


def _in_background(work: Callable, *args) -> None:
    """Start slow set-up early; a failure is left for the main thread to meet and report."""

    def run() -> None:
        try:
            work(*args)
        except Exception:  # noqa: BLE001 - the same call on the main thread raises it properly
            pass

    threading.Thread(target=run, daemon=True).start()


def answer_to_json(result: Answer) -> dict:
    """The shape of ``qa ask --json`` and of the web API."""
    return {
        "question": result.question,
        "query": result.query,
        "abstained": result.abstained,
        "notices": list(result.notices),
        "signals": result.signals,
        "encoder": result.encoder,
        "lead": [asdict(s) for s in result.lead],
        "citations": [
            {
                "rank": rank,
                "doc_id": h.document.doc_id,
                "title": h.document.title,
                "source": h.document.source,
                "date": h.document.date,
                "url": safe_url(h.document.url),  # an older index may hold a javascript: URL
                "path": h.document.path,
                "heading": h.passage.heading,
                "text": h.passage.text,
                "start": h.passage.start,
                "end": h.passage.end,
                "score": round(h.score, 4),
            }
            for rank, h in enumerate(result.hits, start=1)
        ],
    }

