"""Word segmentation for keyword search and highlighting: where jieba is loaded and configured.

Why one module: BM25 only works when passages and queries are cut into words
the same way, and jieba is slow to initialise, so it is loaded once, lazily
and quietly here. Search mode (``cut_for_search``) also emits the short words
inside long ones (中华人民共和国 -> 中华, 人民, 共和国 …), so a question that
names part of a compound still matches it.

jieba's own start-up reads its prefix dictionary (about 500,000 entries) from
a marshal file in 1.35-1.9 s here. That was the largest part of a one-off
``qa ask``, so the same dictionary is kept in the cache directory as JSON,
which loads in about 0.5 s (benchmarks/cold_start_steps.py). JSON, not pickle,
so loading it cannot run code. The words are one newline-separated string and
the counts one list, not a JSON object: building the dict from the two took
0.26 s of CPU where parsing the same dict as an object took 0.41 s.
The file is named after jieba's version and dictionary size, and it holds
exactly what jieba would build. A missing or unreadable file just means
jieba's own start-up.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .text import CJK

# Function words, question words and fillers that carry no topic. Numbers are kept.
# Deictic time words (今天, 现在) point at the asker's present, not at anything an
# archived article is about, so they must not count as evidence of an answer.
STOP_WORDS: frozenset[str] = frozenset(
    """
    的 了 是 在 和 与 及 或 也 都 就 还 又 而 并 且 但 但是 而且 并且 以及 或者 还是 因为 所以 如果 虽然
    之 其 这 那 这个 那个 这些 那些 这里 那里 这样 那样 之一 个 位 些 把 被 对 从 向 于 以 为 给 让 由 将
    跟 同 到 上 下 中 里 着 过 得 地 啊 吗 呢 吧 呀 哦 嗯 么 啦 嘛 我 你 他 她 它 我们 你们 他们 她们 它们
    自己 有 没 没有 不 很 最 更 会 能 要 想 可以 可能 应该 就是 已经 曾经 一 一个 一些 等 等等 请 请问 告诉
    什么 多少 几 哪 哪个 哪些 哪里 哪儿 哪位 哪年 哪天 谁 怎么 怎么样 怎样 如何 为何 为什么 何时 何地 是否
    是不是 有没有 多 多久 多大 几个 几次 几年 几名
    今天 明天 昨天 现在
    a an the of to in on at by for with from and or but is are was were be been being do does did
    what which who whom whose when where why how it its this that these those i you he she we they me my your
    our their there here as if than then so not no can could would should will shall may might must about
    """.split()
)


_lock = threading.Lock()
_jieba = None
_WORD = re.compile(r"[\w]", re.UNICODE)


def prepare(cache_dir: Path | str | None = None) -> None:
    """Initialise jieba now, reading its dictionary from ``cache_dir`` (see the module docstring).

    jieba's dictionary is process-wide by jieba's design, so this only matters
    before the first segmentation: later calls return at once whatever folder
    they name. Segmenting without calling this first still works, from
    jieba's own (slower) start-up.
    """
    _segmenter(Path(cache_dir) if cache_dir else None)


def prepare_tagger(cache_dir: Path | str | None = None) -> None:
    """Load jieba's part-of-speech model now, after its dictionary (``prepare``).

    Why apart: it costs another 0.3 s (its HMM tables, and a second reading of
    jieba's dictionary for the tags) that only the question analysis needs
    (``qa.question``: names, places); ``qa ask`` loads it in a background
    thread while the model compiles instead of on the question's path.
    """
    prepare(cache_dir)
    import jieba.posseg  # noqa: F401 - loading it is the point


def _segmenter(cache_dir: Path | None = None):
    """The jieba module, initialised once and without its stderr chatter."""
    global _jieba
    if _jieba is None:
        with _lock:
            if _jieba is None:
                import logging

                import jieba

                jieba.setLogLevel(logging.WARNING)
                cache = _dictionary_cache(jieba, cache_dir)
                if cache is None or not _load_dictionary(jieba.dt, cache):
                    jieba.initialize()
                    if cache is not None:
                        _save_dictionary(jieba.dt, cache)
                _jieba = jieba
    return _jieba


def _dictionary_cache(jieba, cache_dir: Path | None) -> Path | None:
    if cache_dir is None or jieba.dt.dictionary is not None:  # only jieba's default dictionary
        return None
    try:
        size = (Path(jieba.__file__).parent / "dict.txt").stat().st_size
    except OSError:
        return None
    return cache_dir / "jieba" / f"dict-{jieba.__version__}-{size}-v2.json"


def _load_dictionary(dt, path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        words, counts, total = data["words"].split("\n"), data["counts"], int(data["total"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    if not isinstance(counts, list) or not counts or len(words) != len(counts) or total <= 0:
        return False
    freq = dict(zip(words, counts, strict=True))
    with dt.lock:
        dt.FREQ, dt.total, dt.initialized = freq, total, True
    return True


def _save_dictionary(dt, path: Path) -> None:
    """Written to a temporary file and renamed, so a reader never sees half a file."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"total": dt.total, "words": "\n".join(dt.FREQ), "counts": list(dt.FREQ.values())}, out,
                      ensure_ascii=False, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:  # a read-only cache only costs speed
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _normalise(word: str) -> str:
    return unicodedata.normalize("NFKC", word).strip().lower()


def _content(word: str) -> bool:
    return bool(word) and word not in STOP_WORDS and bool(_WORD.search(word))


def tokenize(text: str) -> list[str]:
    """Search-mode words of ``text``: lowercased, stop words and punctuation dropped."""
    return _tokens(_segmenter().cut_for_search(text))


def _tokens(words: Iterable[str]) -> list[str]:
    normalised = (_normalise(word) for word in words)
    return [word for word in normalised if _content(word)]


def keywords(text: str) -> list[str]:
    """The unique content words of a question, in order (no single CJK characters).

    Precise-mode words, because coverage and highlighting want the words a
    reader sees, not the overlapping fragments search mode adds.
    """
    return _keywords(_segmenter().cut(text))


def _keywords(words: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for word in words:
        word = _normalise(word)
        if _content(word) and not (len(word) == 1 and CJK.match(word)):
            seen.setdefault(word, None)
    return list(seen)


@dataclass(frozen=True)
class Cut:
    """One question cut by jieba once, for every stage of the answer path that reads its words.

    Why: answering a question read four segmentations of it (search-mode
    tokens for BM25 and for the abstention's word count, precise-mode
    ``keywords``, the subject's words without jieba's HMM), and jieba's
    costly step, the dictionary lattice and its best route, is the same for
    all of them. ``cut`` runs it once; each view gives exactly what its jieba
    call gives (tests/test_segment.py compares them on the seeds and the
    evaluation questions).
    """

    words: tuple[str, ...]  # precise mode, with the HMM: jieba.cut(text)
    plain: tuple[str, ...]  # precise mode, without the HMM: jieba.cut(text, HMM=False)
    tokens: tuple[str, ...]  # what ``tokenize`` gives
    keywords: tuple[str, ...]  # what ``keywords`` gives


def cut(text: str) -> Cut:
    """``text`` segmented once in both precise modes, with the search-mode tokens and keywords of it."""
    jieba = _segmenter()
    dt = jieba.dt
    words: list[str] = []
    plain: list[str] = []
    for block in jieba.re_han_default.split(text):  # jieba.cut's own blocks: runs of words, the rest
        if not block:
            continue
        if jieba.re_han_default.match(block):
            route: dict[int, tuple[float, int]] = {}
            dt.calc(block, dt.get_DAG(block), route)
            words += _route_with_hmm(dt, block, route)
            plain += _route_without_hmm(jieba.re_eng, block, route)
        else:
            for piece in jieba.re_skip_default.split(block):
                pieces = [piece] if jieba.re_skip_default.match(piece) else list(piece)
                words += pieces
                plain += pieces
    search = []  # jieba's cut_for_search: the dictionary's 2- and 3-grams inside a longer word, then the word
    for word in words:
        for n in (2, 3):
            if len(word) > n:
                search += [word[i : i + n] for i in range(len(word) - n + 1) if dt.FREQ.get(word[i : i + n])]
        search.append(word)
    return Cut(tuple(words), tuple(plain), tuple(_tokens(search)), tuple(_keywords(words)))


def _route_with_hmm(dt, block: str, route: dict[int, tuple[float, int]]) -> list[str]:
    """jieba's ``Tokenizer.__cut_DAG`` after its route: a run of single characters that is no dictionary
    word goes to the HMM (``finalseg``), which finds the words jieba does not know."""
    from jieba import finalseg

    out: list[str] = []

    def flush(run: str) -> None:
        if len(run) == 1:
            out.append(run)
        elif run:
            out.extend(finalseg.cut(run) if not dt.FREQ.get(run) else run)

    x, run = 0, ""
    while x < len(block):
        y = route[x][1] + 1
        if y - x == 1:
            run += block[x]
        else:
            flush(run)
            run = ""
            out.append(block[x:y])
        x = y
    flush(run)
    return out


def _route_without_hmm(re_eng, block: str, route: dict[int, tuple[float, int]]) -> list[str]:
    """jieba's ``Tokenizer.__cut_DAG_NO_HMM`` after its route: single Latin letters and digits run together."""
    out: list[str] = []
    x, run = 0, ""
    while x < len(block):
        y = route[x][1] + 1
        word = block[x:y]
        if len(word) == 1 and re_eng.match(word):
            run += word
        else:
            if run:
                out.append(run)
                run = ""
            out.append(word)
        x = y
    if run:
        out.append(run)
    return out


def highlight_spans(text: str, words: Sequence[str]) -> list[tuple[int, int]]:
    """Non-overlapping ``(start, end)`` spans of ``words`` in ``text``, longest words first, sorted."""
    taken = [False] * len(text)
    spans: list[tuple[int, int]] = []
    for word in sorted({w for w in words if w and w.strip()}, key=len, reverse=True):
        for match in re.finditer(re.escape(word), text, re.IGNORECASE):
            start, end = match.span()
            if not any(taken[start:end]):
                taken[start:end] = [True] * (end - start)
                spans.append((start, end))
    return sorted(spans)


def predicate(question: str) -> str:
    """The question from its first verb on (有多少名党员民警？ of 滨州交警大队有多少名党员民警？).

    Used to fold a follow-up (那海陵巡特警大队呢？) into the previous question:
    the subject is what precedes the first verb. In a subject like
    蒙阴交警大队的党建品牌 only the owner (before the last 的) is replaced, so
    the predicate keeps 的党建品牌. Empty when there is no verb after a
    subject, so the caller can fall back to joining the questions.
    """
    import jieba.posseg as posseg  # initialised through _segmenter

    _segmenter()
    position = 0
    for pair in posseg.cut(question):
        if pair.flag.startswith("v") and position > 0:
            owner_end = question.rfind("的", 0, position)
            return question[owner_end if owner_end > 0 else position :]
        position += len(pair.word)
    return ""
