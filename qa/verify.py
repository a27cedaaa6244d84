"""The check: which sentences of a model's reply the cited passages support.

A written answer is only worth more than the extractive lead if a reader can
trust each sentence as much as the passage it cites. So every sentence of the
reply is checked against the passage(s) it cites, with tests a changed fact
cannot pass:

- it must cite at least one passage that was given (``[n]`` is ``citations[n-1]``);
- every number in it (Arabic or Chinese numerals, in dates, amounts, counts and
  percentages; compared by value, so 三月 = 3月 and 1,200 = 1200) appears in the cited
  passage(s);
- every name in it (jieba's person, place and organisation tags, the role-word
  names of ``question.names``, quoted or 《》 terms) appears in the cited passage(s)
  or in the question;
- at least ``CONTENT_SHARE`` of its content words appear in the cited passage(s).

A sentence that restates the question with its answer (三长负责制里的三长分别由片长担任, asked
三长负责制里的三长分别由谁担任？) is judged in two parts: the stretches it shares with the question
and what it adds. The question's words are the asker's, and a passage that answers need not repeat
them (分别, 担任), so those it lacks are left out of the share; in exchange each part must stand at
least ``PART_SHARE`` in the cited passage(s) on its own. The answer part catches a wrong answer that
the question's words would otherwise outweigh (海陵巡特警从联系卡业务入手推动站站联勤, asked which
业务: 6 of its 7 words are in the passage, but not the answer),
and the question part catches a true restatement citing a passage about something else. Each part is
cut into words on its own, so no word straddles the two (扶贫点在 + 果咱底村, not 点在果). A sentence
that adds nothing to the question is checked as a whole, so repeating the question's premise is not
evidence for it.

"The cited passage" is what the model was shown: title, source, date and text.
A sentence with no ``[n]`` at all is kept only when one given passage passes
the check, and it is then shown citing that passage. A sentence citing a passage
that was not given, or one that fails, is not re-cited: a wrong citation is a
wrong answer.

Failing sentences are **dropped**, not shown in a fold: the point of the written
answer is that everything a person sees is supported. They stay in
``Generated.sentences`` with ``supported`` false and ``why``, for the API and
for measuring a model, and the reply says how many were left out. What the check
cannot catch: a sentence whose words and numbers are all in the passage but
whose meaning is changed (a negation, two numbers swapped between facts).

``CONTENT_SHARE`` and ``PART_SHARE`` were chosen on the faithfulness benchmark
(``benchmarks/faithfulness.py --sweep``): tuned on the odd-numbered public
questions, reported on the even-numbered ones.
"""

from __future__ import annotations

import re
import unicodedata
from itertools import groupby
from dataclasses import dataclass
from typing import Sequence

from . import question as q
from . import segment
from .types import CheckedSentence, Hit

CONTENT_SHARE = 0.75  # share of a sentence's content words that must be in the cited passage(s); see the docstring
PART_SHARE = 0.5  # share of each part of a restated question (its words, its answer) in the passage(s); see above

# The fixed reply the prompt asks for when the passages do not answer (qa/generate.py uses it too).
NO_ANSWER = "资料中没有找到答案。"
_NO_ANSWER_MARKS = ("没有找到答案", "无法回答", "不能回答", "没有提供", "未提及", "没有提及", "未提供")

_CITE = re.compile(r"[\[【［]\s*(\d{1,3}(?:\s*[,，、\-–]\s*\d{1,3})*)\s*[\]】］]")
_ENDS = "。！？!?；;\n"
_CLOSERS = "”’」』）)】》\"'"

_CN_DIGITS = {"零": 0, "〇": 0, "○": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
              "八": 8, "九": 9}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_BIG = {"万": 10_000, "亿": 100_000_000}
_ARABIC = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
_CHINESE = re.compile(r"[零〇○一二两三四五六七八九十百千万亿]+")
# A Chinese numeral is read as a number only before a unit, a classifier or a date part, or when it is
# long (二〇一三): a lone 一 is mostly an article (一个问题, 统一, 第一), not a fact.
_UNIT_AFTER = re.compile(r"[" + q._CLASSIFIERS + r"月日号岁%％]|人次|分之|点|成")
_PERCENT_CN = re.compile(r"百分之([零〇○一二两三四五六七八九十百千点]+)")
_APPROXIMATE = "几"  # 十几, 几十万: a range, not a number to check
_QUOTED = re.compile(r"“([^”]{2,30})”|「([^」]{2,30})」|《([^》]{1,40})》|\"([^\"]{2,30})\"")
_NAME_TAGS = ("nr", "ns", "nt")
_NUMBER_WORD = re.compile(r"\d+(?:\.\d+)?")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Piece:
    """One sentence of the reply, its text without markers and the ``[n]`` it gave."""

    text: str
    citations: tuple[int, ...]


def says_no_answer(reply: str) -> bool:
    """Whether the reply is (or opens with) the fixed "the passages do not answer" reply."""
    head = _CITE.sub("", _normal(reply))[:40]
    return any(mark in head for mark in _NO_ANSWER_MARKS) and len(_CITE.findall(reply)) == 0


def split(reply: str) -> list[Piece]:
    """The reply's sentences, each with the citations written after it (or right after its end mark)."""
    reply = reply.replace("\r", "")  # not NFKC: the sentences are shown as the model wrote them
    pieces: list[Piece] = []
    buffer: list[str] = []
    cites: list[int] = []
    i = 0

    def flush() -> None:
        sentence = _clean(_CITE.sub("", "".join(buffer)))
        if sentence and re.search(r"\w", sentence):
            pieces.append(Piece(sentence, tuple(dict.fromkeys(cites))))
        elif cites and pieces:  # markers alone on a line belong to the sentence before
            last = pieces[-1]
            pieces[-1] = Piece(last.text, tuple(dict.fromkeys(last.citations + tuple(cites))))
        buffer.clear()
        cites.clear()

    while i < len(reply):
        marker = _CITE.match(reply, i)
        if marker:
            numbers = _numbers_in_marker(marker.group(1))
            if not "".join(buffer).strip() and pieces:  # 句子。[1]: the marker after the end mark
                last = pieces[-1]
                pieces[-1] = Piece(last.text, tuple(dict.fromkeys(last.citations + tuple(numbers))))
            else:
                cites.extend(numbers)
            i = marker.end()
            continue
        char = reply[i]
        buffer.append(char)
        i += 1
        if char in _ENDS:
            while i < len(reply) and reply[i] in _CLOSERS:
                buffer.append(reply[i])
                i += 1
            trailing = _CITE.match(reply, i)
            while trailing:  # 句子。[1][2]
                cites.extend(_numbers_in_marker(trailing.group(1)))
                i = trailing.end()
                trailing = _CITE.match(reply, i)
            flush()
    flush()
    return pieces


def check(reply: str, question: str, hits: Sequence[Hit]) -> list[CheckedSentence]:
    """Every sentence of ``reply`` with its citations (1-based, as shown), whether it is supported, and why."""
    supports = [support_text(h) for h in hits]
    checked = []
    for piece in split(reply):
        if not piece.citations:
            found = None
            for number, support in enumerate(supports, start=1):
                if not _fails(piece.text, question, support):
                    found = number
                    break
            if found is None:
                checked.append(CheckedSentence(piece.text, [], False, "没有引用，也没有哪一段能证实"))
            else:
                why = f"没有引用；第 [{found}] 段能证实，已补上引用"
                checked.append(CheckedSentence(piece.text, [found], True, why))
            continue
        given = [n for n in piece.citations if 1 <= n <= len(supports)]
        if len(given) < len(piece.citations):
            absent = ", ".join(str(n) for n in piece.citations if n not in given)
            why = f"引用了没有提供的段落 [{absent}]"
            checked.append(CheckedSentence(piece.text, list(piece.citations), False, why))
            continue
        reason = _fails(piece.text, question, "\n".join(supports[n - 1] for n in given))
        checked.append(CheckedSentence(piece.text, given, reason is None, reason or "所引段落能证实"))
    return checked


def support_text(hit: Hit) -> str:
    """What the model was shown of one passage: the check looks for the sentence's facts here."""
    d = hit.document
    return "\n".join(x for x in (d.title, d.source or "", d.date or "", hit.passage.text) if x)


def shown(sentences: Sequence[CheckedSentence]) -> str:
    """The text shown: the supported sentences, each followed by its ``[n]``."""
    return "".join(f"{s.text}{''.join(f'[{n}]' for n in s.citations)}" for s in sentences if s.supported)


def _fails(sentence: str, question: str, support: str) -> str | None:
    """Why ``support`` does not support ``sentence``; None when it does."""
    support = _normal(support)
    missing_numbers = [n for n in numbers(sentence, claimed=True) if n not in numbers(support)]
    if missing_numbers:
        return "数字不在所引段落中: " + "、".join(_show_number(n) for n in missing_numbers[:3])
    asked = _normal(question)
    missing_names = [n for n in names(sentence) if n not in support and n not in asked]
    if missing_names:
        return "名称不在所引段落中: " + "、".join(missing_names[:3])
    # Words are compared with every number written as its value (1.5万人次 is 15000人次), lowercased,
    # and a number word by value (8 is not in 2018).
    sentence, text = _canonical(sentence), _canonical(support)
    values = {v for _, _, value, bare in _number_spans(support) for v in (value, bare) if v is not None}

    def held(word: str) -> bool:
        return float(word) in values if _NUMBER_WORD.fullmatch(word) else word in text

    repeated, said = _split_by_question(sentence, _canonical(question))
    if said:
        for part, what in ((repeated, "问题中的"), (said, "问题之外的")):
            found = [w for w in part if held(w)]
            if len(found) < PART_SHARE * len(part):
                absent = [w for w in part if not held(w)]
                return f"{what}实词只有 {len(found)}/{len(part)} 个在所引段落中（缺: {'、'.join(absent[:4])}）"
        # The question's own words frame the answer: past the test above, the passage need not repeat them.
        words = list(dict.fromkeys([w for w in repeated if held(w)] + said))
    else:
        words = content_words(sentence)
    if not words:
        return "没有可核对的实词"  # a fragment (营, 段落:) says nothing a reader should see as an answer
    found_all = sum(1 for w in words if held(w))
    if found_all < CONTENT_SHARE * len(words):
        absent = [w for w in words if not held(w)]
        return f"只有 {found_all}/{len(words)} 个实词在所引段落中（缺: {'、'.join(absent[:4])}）"
    return None


def _split_by_question(sentence: str, question: str) -> tuple[list[str], list[str]]:
    """The content words of ``sentence`` in the stretches it shares with ``question`` (two characters or
    more) and in the rest, what it says beyond the question: 迪庆交警支队的挂钩扶贫点在果咱底村, asked as
    迪庆交警支队的挂钩扶贫点在哪个村, adds 果咱底村. Each stretch is cut into words on its own, so no
    word straddles the question's text and the answer's."""
    sentence, question = _normal(sentence).lower(), _normal(question).lower()
    taken = [False] * len(sentence)
    for start in range(len(sentence) - 1):
        end = start + 2
        while end <= len(sentence) and sentence[start:end] in question:
            end += 1
        if end - 1 - start >= 2:
            taken[start : end - 1] = [True] * (end - 1 - start)
    pairs = zip(sentence, taken, strict=True)
    runs = [(t, "".join(c for c, _ in group)) for t, group in groupby(pairs, key=lambda x: x[1])]
    asked = [w for t, run in runs if t for w in content_words(run)]
    said = [w for t, run in runs if not t for w in content_words(run)]
    return list(dict.fromkeys(asked)), list(dict.fromkeys(said))


def content_words(sentence: str) -> list[str]:
    """The sentence's content words (jieba precise mode, stop words and single characters out), lowercased."""
    return segment.keywords(_normal(sentence))


def names(sentence: str) -> list[str]:
    """People, places and organisations named in ``sentence``, and its quoted terms."""
    sentence = _normal(sentence)
    found = [w for w, flag in q._tag(sentence) if len(w) >= 2 and flag.startswith(_NAME_TAGS)]
    found += list(q.names(sentence))
    # 辅警立春: any name after a role word
    found += [_after_copula(m.group(1)) for m in q._ROLE_NAME.finditer(sentence)]
    found += [next(g for g in m.groups() if g) for m in _QUOTED.finditer(sentence)]
    return list(dict.fromkeys(_normal(n) for n in found))


def _after_copula(name: str) -> str:
    """书记是王宏 names 王宏, not 是王宏: a leading function word (是, 为, 由 ...) that is no surname is cut."""
    if len(name) >= 3 and name[0] in segment.STOP_WORDS and name[0] not in q._SURNAMES:
        return name[1:]
    return name


def numbers(sentence: str, claimed: bool = False) -> frozenset[float]:
    """The values of the numbers in ``sentence``: Arabic and Chinese numerals, with 万 and 亿 applied.

    In a passage 3万 is 30000 and also 3, so that it supports 3万人 however a sentence writes it; a
    sentence's 1.5万 (``claimed``) is only 15000, which a passage saying 15000 or 1.5万 holds. Ranks
    count (第九名 is 9), but not a claimed 第一."""
    sentence = _normal(sentence)
    values: set[float] = set()
    for start, _, value, bare in _number_spans(sentence):
        if claimed and value == 1 and sentence[max(0, start - 1) : start] == "第":
            continue  # 第一批, 第一时间: as often a word as a rank
        values.add(value)
        if bare is not None and not claimed:
            values.add(bare)
    return frozenset(values)


def _canonical(text: str) -> str:
    """``text`` lowercased, with every number it holds written as its value in Arabic digits (1.5万,
    一万五千 and 15,000 all become 15000), so that words are compared however numbers are written."""
    text = _normal(text).lower()
    out, last = [], 0
    for start, end, value, _ in _number_spans(text):
        out += [text[last:start], _show_number(value)]
        last = end
    return "".join(out) + text[last:]


def _number_spans(sentence: str) -> list[tuple[int, int, float, float | None]]:
    """``(start, end, value, bare)`` of each number in ``sentence`` (already normal): Arabic and Chinese
    numerals (ranks too: 第九名), and 百分之; ``bare`` is 3 of 3万 (whose value is 30000), else None."""
    spans: list[tuple[int, int, float, float | None]] = []
    for m in _PERCENT_CN.finditer(sentence):
        value = _chinese_value(m.group(1))
        if value is not None:
            spans.append((m.start(), m.end(), value, None))
    taken = [(a, b) for a, b, _, _ in spans]

    def free(start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b in taken)

    for m in _ARABIC.finditer(sentence):
        if _APPROXIMATE in sentence[max(0, m.start() - 1) : m.end() + 1] or not free(m.start(), m.end()):
            continue
        value = float(m.group().replace(",", ""))
        scale = _CN_BIG.get(sentence[m.end() : m.end() + 1])
        if scale:
            spans.append((m.start(), m.end() + 1, value * scale, value))
        else:
            spans.append((m.start(), m.end(), value, None))
    taken = [(a, b) for a, b, _, _ in spans]
    for m in _CHINESE.finditer(sentence):
        token = m.group()
        around = sentence[max(0, m.start() - 1) : m.end() + 1]
        if _APPROXIMATE in around or token in ("万", "亿", "千", "百") or not free(m.start(), m.end()):
            continue
        ordinal = sentence[max(0, m.start() - 1) : m.start()] == "第"
        if not ordinal and (token == "一" or (len(token) < 3 and not _UNIT_AFTER.match(sentence, m.end()))):
            continue  # 一个: an article, not a count
        value = _year_digits(token) if len(token) == 4 and all(c in _CN_DIGITS for c in token) else None
        value = value if value is not None else _chinese_value(token)
        if value is not None:
            spans.append((m.start(), m.end(), value, None))
    return sorted(spans)


def _year_digits(token: str) -> float:
    """二〇一三 read digit by digit."""
    return float("".join(str(_CN_DIGITS[c]) for c in token))


def _chinese_value(token: str) -> float | None:
    """三十五 -> 35, 两万三千 -> 23000, 一点五 -> 1.5; None when it is not a well-formed numeral."""
    if "点" in token:
        whole, _, part = token.partition("点")
        head = _chinese_value(whole) if whole else 0.0
        if head is None or not part or any(c not in _CN_DIGITS for c in part):
            return None
        return head + float("0." + "".join(str(_CN_DIGITS[c]) for c in part))
    total, section, digit = 0.0, 0.0, None
    for char in token:
        if char in _CN_DIGITS:
            if digit is not None:  # 二三: digits in a row, read as written
                digit = digit * 10 + _CN_DIGITS[char]
            else:
                digit = _CN_DIGITS[char]
        elif char in _CN_UNITS:
            section += (digit if digit is not None else 1) * _CN_UNITS[char]
            digit = None
        elif char in _CN_BIG:
            section += digit or 0
            total += (section or 1) * _CN_BIG[char]
            section, digit = 0.0, None
        else:
            return None
    return total + section + (digit or 0)


def _show_number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def _numbers_in_marker(inside: str) -> list[int]:
    parts = [int(p) for p in re.findall(r"\d+", inside)]
    if re.search(r"[\-–]", inside) and len(parts) == 2 and 0 < parts[1] - parts[0] < 10:
        return list(range(parts[0], parts[1] + 1))  # [1-3]
    return parts


def _normal(value: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", value)).strip()


def _clean(sentence: str) -> str:
    return sentence.strip().lstrip("，,、：:；;").strip()
