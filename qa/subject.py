"""What a question is about, and whether an article mentions it.

A question about one actor, bank or plant is easily "answered" from another
actor's, bank's or plant's article: the question's words that say *what* is
asked (毕业, 成立, 叶子, 哪一年) are everywhere, and a dense encoder finds
the other article close. What tells them apart is the subject: the name, the
title, the term the question is about. An article that never mentions it does
not answer the question, however well the rest matches.

The subject is found without a name dictionary, from the question's form and
the collection's statistics:

* form: a title in 《》, a quoted term (“”, 「」, 『』, ""), a Latin or mixed
  name (JAXR, 35M线's 35M); these weigh ``NAMED_WEIGHT`` times their IDF. A
  number of two digits or more (a year, a route number) counts at its IDF;
* rarity: a content word of the question (jieba's precise mode without its
  HMM, which invents words across boundaries) that at most ``RARE_SHARE`` of
  the collection's passages contain and that general Chinese does not use
  often (jieba's dictionary count at most ``COMMON``: not 特点, 形状); a run
  of single characters (a name jieba does not know: 萱 侬 律); a word jieba
  glued a function character to (慧是 of 王法慧是) loses it. Question words
  (哪一年, 什么样, 何处, 多长) and words pointing at a paragraph the reader
  saw (此鱼, 该书) are never the subject.

``mentioned`` gives the IDF-weighted share of these terms that an article
(title and text, case and width folded) contains, a Chinese term of three or
more characters earning the share of its character pairs found; ``best``
the highest share among the articles a lead may come from.
``retrieve.decide`` abstains when that share is under ``MIN_SUBJECT`` and
the best passage is no close paraphrase (cosine under ``SUBJECT_DENSE``).
``about_first`` cites first the top article that names the subject, and
``focus`` gives the lead the characters of what is asked about it.
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from collections import OrderedDict
from typing import Callable, Sequence

from . import segment
from .segment import STOP_WORDS
from .text import CJK
from .types import Hit

RARE_SHARE = 0.02  # a word in at most this share of the passages is distinctive
COMMON = 1000  # ... unless general Chinese uses it this often (jieba's dictionary count): 特点, 别名, 外形

NAMED_WEIGHT = 3.0
FIRST_REACH = 3  # about_first looks at this many top hits ...
FIRST_MARGIN = 0.3  # ... and moves one first that mentions this much more of the subject

_TITLE = re.compile(r"《([^《》]{1,60})》")
_QUOTED = re.compile(r"“([^“”]{1,40})”|「([^「」]{1,40})」|『([^『』]{1,40})』|\"([^\"]{1,40})\"")
_LATIN = re.compile(r"[0-9]*[A-Za-z][A-Za-z0-9]*(?:[-.&'][A-Za-z0-9]+)*")
# A word that asks rather than names: 哪一年, 什么样, 何处, 多长, 需不需 (the question's form, not its subject).
_ASKING = re.compile(r"[哪谁啥怎]|什么|几|^何[处时种地人年故以在]$|^多[长高重远宽深久大少厚]$|(.)[不没]\1")
# Single characters jieba glues to a name it does not know (王法慧是 -> 王法 + 慧是, 五月艾所 -> 五月 + 艾所).
_GLUE = frozenset(w for w in STOP_WORDS if len(w) == 1) | frozenset("所著")
_POINTING = re.compile(r"[此该这其本]")  # 此鱼, 该书, 这张专辑: the subject is in a paragraph the reader saw
_CJK_ONLY = re.compile(f"{CJK.pattern}+")
_NUMBER = re.compile(r"(?<![0-9.])[0-9]{2,}(?![0-9.])")


def terms(
    question: str, doc_freq: Callable[[str], int], total: int, cut: Sequence[str] | None = None
) -> dict[str, float]:
    """The question's distinctive terms with their weights (smoothed IDF over ``total`` passages).

    ``cut``: the question as jieba cuts it without the HMM, when the caller has it (``segment.Cut.plain``).
    """
    found: list[str] = []
    for match in _TITLE.finditer(question):
        found.append(match.group(1).strip())
    for match in _QUOTED.finditer(question):
        found.append(next(g for g in match.groups() if g is not None).strip())
    found += [m.group(0) for m in _LATIN.finditer(question) if len(m.group(0)) >= 2]
    found = [_norm(t) for t in found if t.strip()]
    found = [t for i, t in enumerate(found) if not any(t in other for other in found[:i])]  # JAXR of 《JAXR》
    named = set(found)  # what the question's form marks as a name weighs NAMED_WEIGHT times its IDF
    found += [m.group(0) for m in _NUMBER.finditer(question)]
    limit = max(1.0, RARE_SHARE * total)
    for word in _words(question, cut):
        if any(word in t for t in found):
            continue  # part of a title, quote or name already taken whole
        if _LATIN.fullmatch(word) or _NUMBER.fullmatch(word) or _ASKING.search(word) or _POINTING.match(word):
            continue  # taken by form above when it counts; a question word or 此鱼, 该书 names no subject
        df = doc_freq(word)
        if df <= limit and _general(word) <= COMMON:
            found.append(_core(word, question) if df == 0 else word)
    return {t: _idf(t, doc_freq, total) * (NAMED_WEIGHT if t in named else 1.0) for t in dict.fromkeys(found) if t}


def _words(question: str, cut: Sequence[str] | None = None) -> list[str]:
    """The question's content words of two or more characters (jieba, precise mode), plus runs of
    single characters: a name jieba does not know is cut into them (萱 侬 律, 阿 閦 佛).

    Without jieba's HMM, which invents words across boundaries (岗的老 of 第一岗的老党员)."""
    if cut is None:
        cut = segment.cut(question).plain
    words: list[str] = []
    run: list[str] = []

    def close() -> None:
        if len(run) >= 2:
            words.append("".join(run))
        run.clear()

    for raw in cut:
        word = _norm(raw).strip()
        if len(word) == 1 and CJK.match(word) and word not in _GLUE:
            run.append(word)
            continue
        close()
        if len(word) >= 2 and word not in STOP_WORDS and re.search(r"\w", word):
            words.append(word)
    close()
    return list(dict.fromkeys(words))


def _core(word: str, question: str) -> str:
    """``word`` without a function character jieba glued to it; a one-character rest takes its neighbour.

    王法慧是谁 is cut 王法 / 慧是 / 谁: the term is 法慧, which the article on 王法慧 contains.
    """
    if all(c in _GLUE for c in word):
        return ""
    start, end = 0, len(word)
    while end - start > 1 and word[end - 1] in _GLUE:
        end -= 1
    while end - start > 1 and word[start] in _GLUE:
        start += 1
    core = word[start:end]
    if len(core) > 1 or core == word:
        return core
    at = question.find(word)
    if end < len(word) and at > 0 and _joins(question[at - 1]):
        return question[at - 1] + core  # 慧是 -> 法慧
    after = at + len(word)
    if start > 0 and 0 <= at and after < len(question) and _joins(question[after]):
        return core + question[after]
    return ""


def _joins(char: str) -> bool:
    return bool(CJK.match(char)) and char not in _GLUE


def _general(word: str) -> int:
    """How common ``word`` is in general Chinese: its count in jieba's dictionary (0: not a known word)."""
    segment.tokenize("")  # jieba initialised once, through the project's dictionary cache
    import jieba

    return int(jieba.get_FREQ(word) or 0)


def mentioned(weights: dict[str, float], article: str) -> float | None:
    """The weighted share of the terms that ``article`` mentions; None without terms."""
    total = sum(weights.values())
    if total <= 0:
        return None
    text = _norm_article(article)
    return sum(w * _credit(t, text) for t, w in weights.items()) / total


def best(weights: dict[str, float], articles: Sequence[str]) -> float | None:
    """The highest share ``mentioned`` gives any of ``articles`` (None without terms; 0.0 without articles)."""
    if not weights:
        return None
    return max((mentioned(weights, a) or 0.0 for a in articles), default=0.0)


def about_first(weights: dict[str, float], hits: Sequence[Hit]) -> list[Hit]:
    """``hits`` with the one of the first ``FIRST_REACH`` whose article mentions the most of the terms moved
    first, when it mentions ``FIRST_MARGIN`` more of them (by weight) than the first hit's article does.

    Two articles on similar subjects (黄蝉 and 软枝黄蝉, two footballers) score alike on everything but the
    name; the one that names the question's subject is the one that answers it.
    """
    hits = list(hits)
    if not weights or len(hits) < 2:
        return hits
    shares = [mentioned(weights, f"{h.document.title}\n{h.document.text}") or 0.0 for h in hits[:FIRST_REACH]]
    best_at = max(range(len(shares)), key=lambda i: (shares[i], -i))
    if shares[best_at] - shares[0] < FIRST_MARGIN:
        return hits
    return [hits[best_at]] + hits[:best_at] + hits[best_at + 1 :]


def missing(weights: dict[str, float], article: str) -> list[str]:
    """The terms ``article`` does not mention (for reports and tests)."""
    text = _norm_article(article)
    return [t for t in weights if _credit(t, text) < 1.0]


def _credit(term: str, text: str) -> float:
    """1 for a term ``text`` holds; for a Chinese term of three or more characters the share of its character
    pairs it holds (重要性 by 重要, 经纬度 by 纬度: a longer word is often the article's in other form)."""
    if _in(term, text):
        return 1.0
    if len(term) < 3 or not _CJK_ONLY.fullmatch(term):
        return 0.0
    pairs = [term[i : i + 2] for i in range(len(term) - 1)]
    return sum(pair in text for pair in pairs) / len(pairs)


def _in(term: str, text: str) -> bool:
    if term in text:
        return True
    parts = re.split(r"[·・•]", term)
    return len(parts) > 1 and all(p in text for p in parts if p)


def _idf(term: str, doc_freq: Callable[[str], int], total: int) -> float:
    return math.log(1.0 + (total + 1) / (doc_freq(term) + 0.5))


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


NORMALISED_CHARS = 4_000_000  # articles and their folded forms kept, in characters (8-16 MB)
_normalised: OrderedDict[str, str] = OrderedDict()  # article -> _norm(article), least recently used first
_normalised_chars = 0
_normalised_lock = threading.Lock()


def _norm_article(article: str) -> str:
    """``_norm(article)``, kept for the articles met last.

    Why: one question compares its terms with the same few top articles
    several times (``about_first``, ``best``), and the next questions often
    with the same articles again; folding a whole article each time was about
    a tenth of answering at 100,000 passages. Keyed by the article's text
    itself, so a changed or other article can never get a stale form; bounded
    by ``NORMALISED_CHARS``, so long articles cannot pin memory.
    """
    global _normalised_chars
    with _normalised_lock:
        folded = _normalised.get(article)
        if folded is not None:
            _normalised.move_to_end(article)
            return folded
    folded = _norm(article)
    size = len(article) + len(folded)
    if size <= NORMALISED_CHARS // 4:
        with _normalised_lock:
            if article not in _normalised:
                _normalised[article] = folded
                _normalised_chars += size
                while _normalised_chars > NORMALISED_CHARS:
                    old, old_folded = _normalised.popitem(last=False)
                    _normalised_chars -= len(old) + len(old_folded)
    return folded


_ASKING_CHARS = frozenset("哪什么谁几怎何多少吗呢啥")


def focus(question: str, title: str = "") -> frozenset[str]:
    """The Chinese characters of ``question`` that say what is asked about its subject: not those of ``title``
    (the article's subject, credited to every sentence alike), not function characters, not question words.

    叶子有什么特点 -> 叶 子 特 点: the sentence 叶为披针形 shares 叶 with it, the article's opening shares none.
    """
    taken = set(_norm(title)) | _GLUE | _ASKING_CHARS
    return frozenset(c for c in _norm(question) if CJK.match(c) and c not in taken)

