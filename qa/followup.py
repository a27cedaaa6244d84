"""Fold a follow-up question into the one before it.

People chat: after 滨州开发区交警大队有多少名党员民警？ they ask 那海陵巡特警大队呢？
The second question names a new subject and leans on the first for the
predicate. We recognise such a question by its shape (it opens with 那/那么/
还有/另外…, or ends in 呢, or is very short) and rebuild a full question: the
new subject followed by the previous question's predicate, i.e. the previous
question from its first verb on. When the previous question has no verb to
split on, the two are simply joined, which still retrieves well.

The result is shown to the user as the interpreted query, so a wrong guess is
visible and can be corrected by asking in full.
"""

from __future__ import annotations

import re
from typing import Sequence

from . import segment

_OPENERS = re.compile(r"^(那么|那|还有|另外|然后|而|其他的?|其余的?)[,，、\s]*")
_TAIL = re.compile(r"(的情况|怎么样|如何)?[呢吗嘛]?[?？。!！\s]*$")
_SHORT = 8  # a question with fewer characters than this leans on context


def is_followup(question: str) -> bool:
    q = question.strip()
    return bool(_OPENERS.match(q)) or bool(re.search(r"呢[?？]?\s*$", q)) or len(re.sub(r"\W", "", q)) < _SHORT


def interpret(question: str, history: Sequence[str]) -> str:
    """The query to search for ``question`` given earlier questions (oldest first)."""
    question = question.strip()
    previous = next((h.strip() for h in reversed(history) if h and h.strip()), "")
    if not previous or not is_followup(question):
        return question
    core = _TAIL.sub("", _OPENERS.sub("", question)).strip()
    if not core:
        return previous
    predicate = segment.predicate(previous)
    if predicate:
        return f"{core}{predicate}"
    return f"{core} {previous}"
