"""The only module that knows the order of the stages.

Build (``Indexer``): load -> clean -> chunk -> embed (through the cache) -> index (atomic commit).
Ask (``Asker``):     interpret follow-up -> embed query -> retrieve (BM25 + dense, fused) -> abstain? -> lead.

The two paths are separate objects because they share nothing but the index
and the model: asking only reads, building only writes. ``Bot`` is the thin
facade the CLI and the web chat hold. Reads are thread-safe: each question
takes the index that is live when it starts, and a build that commits
meanwhile is picked up by the next question. Both talk to the index only
through ``qa.index``'s interface, never to its files.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from . import abstain, chunk, clean, generate, lead, load, question, retrieve, segment, subject, text
from .config import Settings
from .errors import IndexCorrupt, IndexMismatch, IndexMissing, LoadError, UsageError
from .followup import interpret
from .index import IndexBackend, IndexReader, IndexWriter, connect
from .present.report import summary
from .types import Answer, DocInfo, Document, Encoder, Notice, Passage, PassageEncoder, Progress, Skipped

MAX_QUESTION_CHARS = 500  # longer questions are cut here: the model reads ~512 tokens at most
CUT_NOTICE = "问题超过 {limit} 个字符，只按前 {limit} 个字符检索。"
# A file whose text runs this long without a line break or sentence mark (minified data, lost line breaks,
# text without punctuation) has no sentences to cut at: its passages are cut by length, and the user is told.
UNBROKEN_CHARS = 5000
UNBROKEN_NOTICE = "{chars:,} characters without a line break or sentence end; passages there are cut by length"
# Passages encoded between two cache commits: a killed build loses at most one batch (about 15 s of encoding on
# 2 cores), and the commit after it costs about 1 ms, under 0.1 % of that (benchmarks/cache_commit.py). 64 is also
# the group encode_passages forms itself, so batching here changes none of its forward passes.
EMBED_BATCH = 64


@dataclass
class BuildReport:
    """What a build or removal changed, in words a user can check."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)  # files that loaded with a caveat
    full_rebuild_reason: str | None = None
    embedded: int = 0  # passages actually run through the encoder (cache misses)
    passages: int = 0  # passages in the index after the build


@dataclass(frozen=True)
class Candidates:
    """Both retrievers' candidates for one question, before fusion, and the index state they came from."""

    question: str
    query: str
    index: IndexReader
    dense: list[tuple[int, float]]
    keyword: list[tuple[int, float]]
    cut: bool = False  # the question was longer than MAX_QUESTION_CHARS and was cut
    words: segment.Cut | None = None  # the query segmented once, for the answer's stages (None: cut on demand)


def index_text(doc: Document, passage: Passage) -> str:
    """What BM25 and the encoder see for a passage: the title gives it context."""
    if passage.heading and passage.heading not in passage.text:
        return f"{doc.title}\n{passage.heading}\n{passage.text}"
    return f"{doc.title}\n{passage.text}"


@dataclass
class Loaded:
    """What one scan of the given paths found, read and cleaned."""

    documents: list[Document]
    skipped: list[Skipped]
    notices: list[Notice]
    files: list[Path]  # every supported file discovered, loaded or not: what the folders hold now
    unread: list[str] = field(default_factory=list)  # doc ids of files not read again: their stat says unchanged
    stats: dict[str, str] = field(default_factory=dict)  # path -> stat key (``SeenFiles.key``) of each file read


def load_collection(
    paths: Iterable[Path],
    max_file_mb: int = 0,
    follow_links: bool = False,
    seen: load.SeenFiles | None = None,
    indexed: Mapping[str, str] | None = None,
) -> Loaded:
    """Discover, read and clean every file; whatever goes wrong with one file skips that file only.

    ``max_file_mb`` caps each file's size (0: no cap). A reason is always one
    line (names and library messages are escaped), because the CLI prints
    one ``Skipped <file>: <reason>`` line per file. With ``seen`` and
    ``indexed`` (doc_id -> content hash in the index), a file whose stat
    matches its record for a hash the index still holds is not read: its
    doc id goes to ``unread``, with its recorded notices.
    """
    files, skipped = load.discover(paths, follow_links)
    loaded = Loaded([], skipped, [], files)
    max_bytes = max_file_mb * 2**20 if max_file_mb else None
    for file in files:
        key = None
        if seen is not None:
            key = seen.key(file)
            if (kept := seen.unchanged(file, key, indexed or {})) is not None:
                loaded.unread.append(kept[0])
                loaded.notices.extend(Notice(str(file), message) for message in kept[1])
                continue
        try:
            raw = load.read(file, max_bytes)
            loaded.documents.append(clean.to_document(raw))
        except LoadError as error:
            skipped.append(Skipped(str(file), text.one_line(error.message)))
            continue
        except MemoryError:
            skipped.append(Skipped(str(file), "too large to read in the memory available"))
            continue
        except RecursionError:
            skipped.append(Skipped(str(file), "nested too deeply to read"))
            continue
        except Exception as error:  # noqa: BLE001 - a reader library failed on this file; the others still load
            skipped.append(Skipped(str(file), f"could not be read ({load.describe(error)})"))
            continue
        if key is not None:
            loaded.stats[str(file)] = key
        if raw.replaced:
            loaded.notices.append(Notice(str(file), f"{raw.replaced} undecodable byte(s) replaced by \ufffd"))
        unbroken = chunk.longest_unbroken(loaded.documents[-1].text)
        if unbroken > UNBROKEN_CHARS:
            loaded.notices.append(Notice(str(file), UNBROKEN_NOTICE.format(chars=unbroken)))
    return loaded


def load_documents(paths: Iterable[Path]) -> tuple[list[Document], list[Skipped]]:
    """Discover, read and clean; a bad file is skipped with a reason, the rest load."""
    loaded = load_collection(paths)
    return loaded.documents, loaded.skipped


def indexed_texts(paths: Iterable[Path], settings: Settings) -> list[str]:
    """Every passage of the documents under ``paths`` as the encoder and BM25 see it (``index_text``)."""
    docs, _ = load_documents(paths)
    return [t for _, _, texts in Indexer(settings).plan(docs) for t in texts]


class Encoders:
    """The embedding model, loaded once and shared by the question and build paths.

    Questions go through the light OpenVINO path when it applies (no torch
    import, seconds faster to start), else through the full encoder; both
    give the same vectors. When the full encoder is loaded already (given, or
    a build ran first), questions use it rather than load a second copy.
    """

    def __init__(self, settings: Settings, encoder: PassageEncoder | None = None) -> None:
        self.settings = settings
        self._full = encoder
        self._query: Encoder | None = None
        self._lock = threading.Lock()
        self._query_lock = threading.Lock()

    def full(self) -> PassageEncoder:
        if self._full is None:
            with self._lock:
                if self._full is None:
                    from .embed import load_encoder

                    self._full = load_encoder(self.settings)
        return self._full

    def query(self) -> Encoder:
        if self._query is None:
            with self._query_lock:
                if self._query is None:
                    from .embed import load_query_encoder

                    light = None if self._full is not None else load_query_encoder(self.settings)
                    self._query = light or self.full()
        return self._query

    @property
    def query_loaded(self) -> bool:
        return self._query is not None


class Asker:
    """The question path. Only reads the index; safe to call from several threads."""

    def __init__(self, settings: Settings, index: IndexBackend | None = None, encoders: Encoders | None = None) -> None:
        self.settings = settings
        self.backend = index or connect(settings)
        self.encoders = encoders or Encoders(settings)

    @property
    def query_encoder(self) -> Encoder:
        return self.encoders.query()

    @property
    def encoder_name(self) -> str:
        return self.query_encoder.name

    @property
    def encoder_notice(self) -> str | None:
        return self.query_encoder.notice

    def index(self) -> IndexReader:
        """The live index, reopened when a build has switched it."""
        return self.backend.live()

    def has_index(self) -> bool:
        return self.backend.live_version() is not None

    def documents(self) -> list[DocInfo]:
        return self.index().documents()

    def document(self, doc_id: str) -> Document:
        return self.index().document(doc_id)

    def ask(
        self,
        question: str,
        history: Sequence[str] = (),
        k: int | None = None,
        mode: str = "hybrid",
        fusion: str = "weighted",
        weight: float = retrieve.DENSE_WEIGHT,
        written: bool = True,
    ) -> Answer:
        """Answer one question; ``mode`` (hybrid | bm25 | dense) and ``fusion``
        (weighted | rrf) exist so ``qa eval`` can compare the alternatives.
        ``written=False`` stops before the model: the web chat calls ``write`` itself, to stream it."""
        result = self.answer(self.candidates(question, history), k, mode, fusion, weight)
        return self.write(result) if written else result

    def write(self, answer: Answer, on_text: generate.OnText | None = None) -> Answer:
        """``answer`` with its written answer (only with QA_LLM_URL and no abstention); ``on_text`` gets the stream."""
        return generate.attach(self.settings, answer, on_text)

    def candidates(self, question: str, history: Sequence[str] = (), qvec: np.ndarray | None = None) -> Candidates:
        """Interpret the question and take candidates from both retrievers (the costly part).

        ``qvec``: the query's vector when the caller has it already (``qa bench``
        times retrieval apart from encoding); it must be the vector of the
        interpreted query.
        """
        question = text.printable(question or "").strip()  # no control codes reach the answer or its echo
        if not question:
            raise UsageError(
                "The question is empty.", "Type a question in Chinese, e.g. 蒙阴交警大队的党建品牌叫什么？"
            )
        if not self.encoders.query_loaded:  # first question: load jieba and the model while the index opens
            _in_background(segment.prepare_tagger, self.settings.cache_dir)  # the dictionary, then POS tags
            _in_background(self.encoders.query)
        query = interpret(question[:MAX_QUESTION_CHARS], [h[:MAX_QUESTION_CHARS] for h in history])
        index = self.index()
        encoder = self.query_encoder
        built_with = index.manifest.get("encoder")
        if built_with != encoder.identity:
            raise IndexMismatch(
                f"The index was built with another embedding model ({index.manifest.get('encoder_name', built_with)}),"
                f" but {encoder.name} is active.",
                "Run: qa build (it re-embeds everything for the active model).",
            )
        if qvec is None:
            qvec = encoder.encode_queries([query])[0]
        segment.prepare(self.settings.cache_dir)
        words = segment.cut(query)
        dense = index.search_dense(qvec, retrieve.CANDIDATES)
        keyword = index.search_keyword(list(words.tokens), retrieve.CANDIDATES)
        return Candidates(question, query, index, dense, keyword, len(question) > MAX_QUESTION_CHARS, words)

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
            raise UsageError(
                f"Unknown mode {mode!r} or fusion {fusion!r}.", "Use hybrid, bm25 or dense; weighted or rrf."
            )
        k = k or self.settings.top_k
        index, dense, keyword = found.index, found.dense, found.keyword
        ranked_dense, ranked_keyword = (dense if mode != "bm25" else []), (keyword if mode != "dense" else [])
        if fusion == "rrf":
            fused = retrieve.fuse_rrf(ranked_dense, ranked_keyword)
        else:
            fused = retrieve.fuse_weighted(ranked_dense, ranked_keyword, weight)
        cut = found.words or segment.cut(found.query)
        words = list(cut.keywords)
        weights = retrieve.idf_weights(words, index.doc_freq, index.passage_count())
        hits = retrieve.rank(fused, dense, keyword, index.passages, k, self.settings.chunk_max, weights)
        subject_terms = subject.terms(found.query, index.doc_freq, index.passage_count(), cut.plain)
        hits = subject.about_first(subject_terms, hits)  # the article that names the subject leads
        cover = retrieve.coverage(words, weights, [index_text(h.document, h.passage) for h in hits[:3]])
        top_dense = retrieve.best_dense(dense)
        asked = question.analyse(found.query)
        articles = {h.document.doc_id: f"{h.document.title}\n{h.document.text}" for h in hits}
        missing = retrieve.missing_names(asked.places, index.doc_freq, list(articles.values()))
        evidenced = lead.has_evidence(asked, found.query, hits, weights)
        # the question's subject must be mentioned by an article the lead may come from
        about = subject.best(subject_terms, [articles[h.document.doc_id] for h in hits[: lead.LEAD_PASSAGES]])
        abstained, reason = abstain.decide(
            hits=len(hits),
            words=len(cut.tokens),  # emoji, punctuation, symbols: nothing to search for
            coverage=cover,
            dense=top_dense,
            missing=len(missing),
            evidenced=evidenced,
            subject=about,
        )
        sentences = [] if abstained else lead.pick(found.query, hits, weights, asked)
        notices = [CUT_NOTICE.format(limit=MAX_QUESTION_CHARS)] if found.cut else []
        return Answer(
            question=found.question,
            query=found.query,
            abstained=abstained,
            hits=hits,
            lead=sentences,
            encoder=self.query_encoder.name,
            signals={
                "coverage": None if cover is None else round(cover, 3),
                "dense": round(top_dense, 3),
                "evidence": 1.0 if evidenced else 0.0,
                "missing_names": float(len(missing)),
                "subject": None if about is None else round(about, 3),
                "reason": reason,
            },
            notices=notices,
        )


class Indexer:
    """The build path: brings the index up to date with folders of articles. One build at a time."""

    def __init__(self, settings: Settings, index: IndexBackend | None = None, encoders: Encoders | None = None) -> None:
        self.settings = settings
        self.backend = index or connect(settings)
        self.encoders = encoders or Encoders(settings)

    @property
    def encoder(self) -> PassageEncoder:
        return self.encoders.full()

    def manifest(self) -> dict[str, Any]:
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
        roots = [Path(p) for p in (paths or [self.settings.seeds_dir])]
        for root in roots:
            if not root.exists():
                raise UsageError(f"{root} does not exist.", "Give a file or folder of articles to index.")
        segment.prepare(self.settings.cache_dir)
        wanted = self.manifest()
        old, reason, shown = self._old_index(wanted, full)
        with (
            self.backend.writer(fresh=reason is not None, previous=old) as writer,
            load.SeenFiles(self.settings.index_dir, _reader_version()) as seen,
        ):
            existing = writer.existing()  # read under the build lock: the hashes the unread files are checked against
            scan = load_collection(roots, self.settings.max_file_mb, follow_links, seen, existing)
            docs = scan.documents
            report = BuildReport(skipped=list(scan.skipped), notices=list(scan.notices))
            report.full_rebuild_reason = reason if shown else None
            report.unchanged.extend(scan.unread)
            loaded = {d.doc_id for d in docs} | set(scan.unread)
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
                for doc_id in self._vanished(writer, existing, loaded, roots, scan.files):
                    writer.remove_document(doc_id)
                    report.removed.append(doc_id)
            report.embedded = self._add(writer, todo, progress)
            report.passages = writer.passage_count()
            writer.commit(wanted)
            seen.record(*_records(scan, roots, seen))
        return report

    def remove(self, doc_ids: Sequence[str]) -> BuildReport:
        report = BuildReport()
        manifest = self.backend.live().manifest  # a clear IndexMissing before taking the lock
        with self.backend.writer() as writer:
            existing = writer.existing()
            unknown = [d for d in doc_ids if d not in existing]
            if unknown:
                raise UsageError(f"No document with id {', '.join(unknown)}.", "List the ids with: qa docs")
            for doc_id in doc_ids:
                writer.remove_document(doc_id)
                report.removed.append(doc_id)
            report.passages = writer.passage_count()
            writer.commit(manifest)
        return report

    def _old_index(self, wanted: dict[str, Any], full: bool) -> tuple[IndexReader | None, str | None, bool]:
        """The index being replaced, why a full rebuild is needed (None: incremental), and
        whether that reason is news to the user (a first build is not)."""
        try:
            old = self.backend.open()
        except IndexMissing:
            return None, "there is no index yet", False
        except IndexCorrupt as error:
            return None, f"the index could not be read ({error.message})", True
        have = old.manifest
        if full:
            return old, "--full was asked for", True
        if have.get("encoder") != wanted["encoder"]:
            return old, f"the embedding model changed ({have.get('encoder_name')} -> {wanted['encoder_name']})", True
        if have.get("chunking") != wanted["chunking"] or have.get("index_text") != wanted["index_text"]:
            return old, f"the chunking settings changed ({have.get('chunking')} -> {wanted['chunking']})", True
        return old, None, False

    @staticmethod
    def _vanished(
        writer: IndexWriter, existing: dict[str, str], loaded: set[str], roots: Sequence[Path], found: Sequence[Path]
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
            where = writer.document_path(doc_id)
            if where is None:
                continue
            path = Path(where)
            inside = any(path == r or r in path.parents for r in resolved)
            if inside and str(path) not in present:
                gone.append(doc_id)
        return gone

    def plan(self, docs: Sequence[Document]) -> list[tuple[Document, list[Passage], list[str]]]:
        """Each document with its passages and what the encoder and BM25 see of each."""
        s = self.settings
        plans = []
        for doc in docs:
            passages = chunk.chunk_document(doc, size=s.chunk_size, max_size=s.chunk_max, overlap=s.chunk_overlap)
            plans.append((doc, passages, [index_text(doc, p) for p in passages]))
        return plans

    def _add(self, writer: IndexWriter, docs: list[Document], progress: Progress | None) -> int:
        """Chunk, tokenise and embed ``docs`` (through the cache), then add them."""
        plans = self.plan(docs)
        all_texts = [t for _, _, texts in plans for t in texts]
        cached, embedded = self._embed(all_texts, progress)
        offset = 0
        for done, (doc, passages, texts) in enumerate(plans, start=1):  # add_document replaces an existing doc_id
            vectors = np.asarray(cached[offset : offset + len(texts)], dtype=np.float32).reshape(-1, self.encoder.dim)
            offset += len(texts)
            writer.add_document(doc, passages, vectors, [segment.tokenize(t) for t in texts])
            if progress is not None:
                progress("index", done, len(plans))
        return embedded

    def _embed(self, texts: list[str], progress: Progress | None) -> tuple[list[np.ndarray], int]:
        """One vector per text, and how many texts were encoded: from the cache, else encoded and cached batch
        by batch.

        Each batch is committed to the cache as soon as it is encoded, so a
        build killed after N passages (even by SIGKILL) finds them there when
        it is run again and encodes only the rest. Identical texts are encoded
        once; texts go to the encoder longest first, as ``encode_passages``
        would order them itself, so batching adds no padding.
        """
        identity = self.encoder.identity
        with self.backend.vector_cache() as cache:
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


class Bot:
    """What the CLI and the web chat hold: one ``Asker`` and one ``Indexer`` on one index and model.

    A facade rather than handing callers the two objects: both the CLI and
    the web chat ask and build through the same connection and encoders, and
    ``ensure_index`` needs both paths. Its methods are the ones those callers
    use; ``asker`` and ``indexer`` stay public for what only tests and the
    benchmarks need (candidates apart from fusion, the manifest).
    """

    def __init__(
        self, settings: Settings, encoder: PassageEncoder | None = None, encoders: Encoders | None = None
    ) -> None:
        """``encoders``: a model already shared with other bots (one per knowledge base, ``qa/kb.py``)."""
        self.settings = settings
        backend = connect(settings)
        encoders = encoders or Encoders(settings, encoder)
        self.asker = Asker(settings, backend, encoders)
        self.indexer = Indexer(settings, backend, encoders)

    def ask(self, question: str, history: Sequence[str] = (), **options: Any) -> Answer:
        """``options``: ``k``, ``mode``, ``fusion``, ``weight``, ``written`` of ``Asker.ask``."""
        return self.asker.ask(question, history, **options)

    def write(self, answer: Answer, on_text: generate.OnText | None = None) -> Answer:
        return self.asker.write(answer, on_text)

    def index(self) -> IndexReader:
        return self.asker.index()

    def has_index(self) -> bool:
        return self.asker.has_index()

    def documents(self) -> list[DocInfo]:
        return self.asker.documents()

    def document(self, doc_id: str) -> Document:
        return self.asker.document(doc_id)

    def build(self, paths: Sequence[Path] | None = None, **options: Any) -> BuildReport:
        """``options``: ``add_only``, ``full``, ``progress``, ``follow_links`` of ``Indexer.build``."""
        return self.indexer.build(paths, **options)

    def remove(self, doc_ids: Sequence[str]) -> BuildReport:
        return self.indexer.remove(doc_ids)

    @property
    def encoder(self) -> PassageEncoder:
        return self.indexer.encoder

    @property
    def query_encoder(self) -> Encoder:
        return self.asker.query_encoder

    @property
    def encoder_name(self) -> str:
        return self.asker.encoder_name

    @property
    def encoder_notice(self) -> str | None:
        return self.asker.encoder_notice

    def ensure_index(self, progress: Progress | None = None, say: Callable[[str], None] = print) -> BuildReport | None:
        """First use: build the index from the seeds folder, saying so; None when there is one.

        Only where the backend allows it (``builds_on_first_use``); elsewhere (Milvus) a missing
        index is the backend's ``IndexMissing``, which says what there is and how to build."""
        if self.has_index():
            return None
        if not self.indexer.backend.builds_on_first_use:
            self.index()  # raises IndexMissing, unless a build has just made one
            return None
        say(f"No index yet in {self.indexer.backend.location}; building it from {self.settings.seeds_dir} first.")
        report = self.build([Path(self.settings.seeds_dir)], progress=progress)
        say(summary(report))
        return report


@functools.cache
def _reader_version() -> str:
    """Changes when the code that turns a file into a document does (see ``load.SeenFiles``)."""
    digest = hashlib.sha1()
    for module in (load, clean, text):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()[:12]


def _records(scan: Loaded, roots: Sequence[Path], seen: load.SeenFiles) -> tuple[list, list[str]]:
    """What to remember of this scan's files (``SeenFiles.record``), and the records under ``roots`` to forget:
    files no longer found there."""
    notices: dict[str, list[str]] = {}
    for notice in scan.notices:
        notices.setdefault(notice.path, []).append(notice.message)
    rows = [
        (doc.path, key, doc.doc_id, doc.content_hash, notices.get(doc.path, []))
        for doc in scan.documents
        if (key := scan.stats.get(doc.path)) is not None
    ]
    resolved = [r.resolve() for r in roots]
    present = {str(path) for path in scan.files}
    gone = [
        path
        for path in seen.paths()
        if path not in present and any(Path(path) == r or r in Path(path).parents for r in resolved)
    ]
    return rows, gone


def _in_background(work: Callable[..., object], *args: object) -> None:
    """Start slow set-up early; a failure is left for the main thread to meet and report."""

    def run() -> None:
        try:
            work(*args)
        except Exception:  # noqa: BLE001 - the same call on the main thread raises it properly
            pass

    threading.Thread(target=run, daemon=True).start()
