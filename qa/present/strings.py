"""The words every presenter shares, so the web chat and the terminal cannot drift apart.

A phrase used by one presenter only stays beside the code that lays it out;
one said to the user both in the browser and in the terminal lives here.
"""

from __future__ import annotations

NO_ANSWER = "文档库中没有找到能回答这个问题的内容。"
RELATED = "可能相关"  # heads the passages shown after NO_ANSWER
QUERY = "按“{query}”检索"  # a follow-up folded into the earlier question: what was searched for
CHARS = "字符 {start}–{end}"  # a character range of the cleaned article
POSITION = "第{number}段 · " + CHARS
SEP = " · "  # between the pieces of a citation's metadata

# The written answer (qa/generate.py): why the extractive lead is shown instead, and what was left out.
LLM_FALLBACK = "显示的是摘录的答案：{reason}"
LLM_DROPPED = "另有 {n} 句无法由所引段落证实，未显示。"
