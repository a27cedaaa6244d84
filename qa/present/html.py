"""HTML for the web chat: replies, citations and the article viewer.

Pure functions from ``qa.types`` to strings, so they can be tested without a
browser. Every piece of document text is HTML-escaped here, slice by slice:
keyword and citation marks are inserted *between* escaped slices computed on
the raw text's offsets, never by replacing inside HTML, so markup in an
article (``<script>``, ``<img onerror=…>``) can only ever show as text.
The output is one line with no blank lines: the chat component then treats it
as a single HTML block and no Markdown or LaTeX rule can rewrite it.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Sequence
from urllib.parse import quote, unquote

from ..clean import safe_url
from ..text import printable
from ..types import Answer, Document, Generated, Hit
from . import Reply, citation_meta, reply, strings

CITE_PREFIX = "#qa-cite:"  # href of a citation link; the page script turns a click into "open article"
CITED_ID = "qa-cited"  # id of the <mark> around the cited span in the article viewer
PASSAGE_CHARS = 120  # a passage longer than this is shown shortened around its first keyword
EXAMPLE_CHARS = 26  # longest subject named in an example question
NARROW = 1023  # px: up to this width the chat and the article are stacked (gradio's lg breakpoint is 1024)
# Closes the article when it is opened over the chat on a narrow screen (hidden on a wide one; see HEAD and CSS).
CLOSE = '<button type="button" class="qa-close" aria-label="关闭原文" title="关闭原文">✕ 关闭</button>'
WRITING = "{model} 正在撰写，核对后显示"  # under the model's text as it streams
WRITTEN = "由 {model} 撰写，每句都已与所引段落核对"  # under the checked answer
KB_LINE = "知识库：{name}"  # atop a reply: the knowledge base that answered (BaseLine)


def esc(text: str) -> str:
    """Escape text for HTML and keep line breaks visible without raw newlines.

    Control characters and bidi overrides are removed too (``printable``): they
    are invisible in a browser but can reorder what a reader sees, and an
    index built before ingestion stripped them may still hold some.
    """
    return html.escape(printable(text), quote=True).replace("\n", "<br>")


def _spans(text: str, words: Sequence[str]) -> list[tuple[int, int]]:
    """Keyword spans in raw-text offsets (``qa.segment`` matches the jieba keywords)."""
    if not words or not text:
        return []
    from ..segment import highlight_spans

    return list(highlight_spans(text, list(words)))


def mark_spans(text: str, spans: Sequence[tuple[int, int]], css: str = "qa-kw") -> str:
    """Escape ``text`` and wrap each span (offsets into the raw text) in a <mark>.

    Spans are clipped to the text; overlapping ones are merged.
    """
    parts: list[str] = []
    pos = 0
    for start, end in sorted((max(0, s), min(len(text), e)) for s, e in spans):
        if end <= start:
            continue
        start = max(start, pos)
        if end <= start:
            continue
        parts.append(esc(text[pos:start]))
        parts.append(f'<mark class="{css}">{esc(text[start:end])}</mark>')
        pos = end
    parts.append(esc(text[pos:]))
    return "".join(parts)


def highlight(text: str, words: Sequence[str]) -> str:
    """Escaped ``text`` with the question's keywords marked."""
    return mark_spans(text, _spans(text, words))


def cite_href(doc_id: str, start: int, end: int) -> str:
    return f"{CITE_PREFIX}{quote(doc_id, safe='')}:{int(start)}:{int(end)}"


def parse_cite(value: str) -> tuple[str, int, int] | None:
    """Inverse of :func:`cite_href`; None for anything malformed."""
    value = (value or "").strip()
    if value.startswith(CITE_PREFIX):
        value = value[len(CITE_PREFIX) :]
    parts = value.rsplit(":", 2)
    if len(parts) != 3:
        return None
    try:
        start, end = int(parts[1]), int(parts[2])
    except ValueError:
        return None
    doc_id = unquote(parts[0])
    if not doc_id or start < 0 or end <= start:
        return None
    return doc_id, start, end


def _cite_link(rank: int, hit: Hit) -> str:
    href = cite_href(hit.document.doc_id, hit.passage.start, hit.passage.end)
    return f'<a class="qa-cite" href="{esc(href)}" title="查看原文">[{rank}]</a>'


def _meta(pieces: Sequence[str]) -> str:
    return strings.SEP.join(esc(m) for m in pieces)


def _excerpt(text: str, words: Sequence[str], limit: int = PASSAGE_CHARS) -> str:
    """The passage on one line, shortened around its first keyword when it is long."""
    text = text.replace("\r", " ").replace("\n", " ")  # same length: offsets still hold
    spans = _spans(text, words)
    if len(text) <= limit:
        return mark_spans(text, spans)
    first = spans[0][0] if spans else 0
    start = max(0, min(first - limit // 4, len(text) - limit))
    end = start + limit
    inner = [(s - start, e - start) for s, e in spans if s >= start and e <= end]
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(text) else ""
    return prefix + mark_spans(text[start:end], inner) + suffix


def source_card(rank: int, hit: Hit, words: Sequence[str]) -> str:
    head = (
        f'<div class="qa-src-head">{_cite_link(rank, hit)} '
        f'<span class="qa-title">{esc(hit.document.title)}</span></div>'
        f'<div class="qa-meta">{_meta(citation_meta(hit))}</div>'
    )
    return f'<div class="qa-src">{head}<div class="qa-passage">{_excerpt(hit.passage.text, words)}</div></div>'


def render_answer(answer: Answer, words: Sequence[str], base: BaseLine | None = None) -> str:
    """The assistant's reply: the answer with citation numbers, then the cited passages.

    The answer is the model's checked answer when there is one (``answer.generated``
    without a fallback), else the extractive lead, after a notice saying why when the
    model was asked and its answer cannot be shown. ``base``: the knowledge base that
    answered (see ``BaseLine``).
    """
    shown = reply(answer)
    generated = answer.generated if shown.answered else None
    if generated is not None and not generated.fallback:
        return _reply_html(answer, shown, words, _written(generated, shown, words), base=base)
    notices = [strings.LLM_FALLBACK.format(reason=generated.fallback)] if generated and generated.fallback else []
    return _reply_html(answer, shown, words, _lead(shown, words) if shown.answered else "", notices, base)


def render_writing(answer: Answer, text: str, model: str, words: Sequence[str], base: BaseLine | None = None) -> str:
    """The reply while the model writes: its text so far, unchecked and marked so, then the passages."""
    shown = reply(answer)
    if not shown.answered:
        return render_answer(answer, words, base)
    lead = (f'<p class="qa-lead qa-writing">{esc(text)}<span class="qa-caret">▍</span></p>'
            f'<div class="qa-by">{esc(WRITING.format(model=model))}</div>')
    return _reply_html(answer, shown, words, lead, base=base)


@dataclass(frozen=True)
class BaseLine:
    """The knowledge base a reply came from: ``name`` is kept in the reply (``data-kb``) so the next question's
    history can leave out turns of another base; ``shown`` (``知识库：NAME · TITLE``) is printed when the
    deployment has more than one base."""

    name: str
    title: str = ""
    shown: bool = True

    def html(self) -> str:
        if not self.shown:
            return ""
        label = KB_LINE.format(name=self.name) + (strings.SEP + self.title if self.title else "")
        return f'<div class="qa-kb">{esc(label)}</div>'


def reply_base(message: dict) -> str | None:
    """The ``data-kb`` of an assistant message rendered here (None: no base named, e.g. an error line)."""
    content = message.get("content")
    if not isinstance(content, str):
        return None
    found = re.match(r'<div class="qa-reply" data-kb="([A-Za-z0-9_-]{1,64})"', content)
    return found.group(1) if found else None


def _lead(shown: Reply, words: Sequence[str]) -> str:
    """The extractive lead sentence(s) with their citation numbers."""
    by_rank = dict(shown.citations)
    lead = [highlight(text, words) + (_cite_link(rank, by_rank[rank]) if rank else "") for text, rank in shown.lead]
    if not lead:  # no lead sentence: the best passage speaks for itself
        lead.append(f"{_excerpt(shown.citations[0][1].passage.text, words)}{_cite_link(*shown.citations[0])}")
    return f'<p class="qa-lead">{"".join(lead)}</p>'


def _written(generated: Generated, shown: Reply, words: Sequence[str]) -> str:
    """The checked answer: each kept sentence with its ``[n]`` links (``[n]`` is ``citations[n-1]``), then who
    wrote it and how many sentences were left out."""
    by_rank = dict(shown.citations)
    kept = [
        highlight(s.text, words) + "".join(_cite_link(n, by_rank[n]) for n in s.citations if n in by_rank)
        for s in generated.sentences
        if s.supported
    ]
    by = WRITTEN.format(model=generated.model)
    dropped = sum(not s.supported for s in generated.sentences)
    if dropped:
        by += "；" + strings.LLM_DROPPED.format(n=dropped)
    return f'<p class="qa-lead qa-written">{"".join(kept)}</p><div class="qa-by">{esc(by)}</div>'


def _reply_html(answer: Answer, shown: Reply, words: Sequence[str], lead: str, notices: Sequence[str] = (),
                base: BaseLine | None = None) -> str:
    """The reply's frame: base and query lines, notices, the answer (``lead``, already HTML), then the passages."""
    parts = [f'<div class="qa-reply" data-kb="{esc(base.name)}">' if base else '<div class="qa-reply">']
    if base:
        parts.append(base.html())
    if shown.query:
        parts.append(f'<div class="qa-query">{esc(strings.QUERY.format(query=shown.query))}</div>')
    parts.extend(f'<div class="qa-notice">{esc(notice)}</div>' for notice in [*answer.notices, *notices])
    if not shown.answered:
        parts.append(f'<p class="qa-none">{strings.NO_ANSWER}</p>')
        if shown.citations:
            parts.append(f'<div class="qa-related">{strings.RELATED}：</div>')
    else:
        parts.append(lead)
        parts.append('<div class="qa-related">来源：</div>')
    parts.extend(source_card(rank, hit, words) for rank, hit in shown.citations)
    parts.append("</div>")
    return "".join(parts)


def render_article(doc: Document, start: int, end: int, words: Sequence[str]) -> str:
    """The whole cleaned article with the cited span in ``<mark id="qa-cited">``."""
    text = doc.text
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    spans = _spans(text, words)

    def clip(lo: int, hi: int) -> str:
        inner = [(max(s, lo) - lo, min(e, hi) - lo) for s, e in spans if s < hi and e > lo]
        return mark_spans(text[lo:hi], inner)

    meta = [m for m in (doc.source, doc.date) if m]
    if end > start:
        meta.append("引用：" + strings.CHARS.format(start=start, end=end))
        body = f'{clip(0, start)}<mark id="{CITED_ID}" class="qa-cited">{clip(start, end)}</mark>{clip(end, len(text))}'
    else:
        body = clip(0, len(text))
    header = f'{CLOSE}<div class="qa-art-title">{esc(doc.title)}</div><div class="qa-meta">{_meta(meta)}</div>'
    if url := safe_url(doc.url):  # an index from before ingestion checked URLs may hold javascript: ones
        header += f'<div class="qa-meta qa-url">{esc(url)}</div>'
    return f'<div class="qa-article"><div class="qa-art-head">{header}</div><div class="qa-art-body">{body}</div></div>'


def render_notice(message: str) -> str:
    """A short message in the article panel (nothing opened yet, or an error)."""
    return f'<div class="qa-article qa-empty">{CLOSE}{esc(message)}</div>'


def example_questions(titles: Sequence[str], limit: int = 3) -> list[str]:
    """Questions about the collection's own articles, so the examples always have answers.

    Each names the most telling short part of a title (the longest piece
    between separators that fits on an example card).
    """
    out = []
    for title in titles:
        parts = [p.lstrip("记") for p in re.split(r"[\s—–:：|｜·]+", title) if p]
        fitting = [p for p in parts if 2 <= len(p) <= EXAMPLE_CHARS]
        if not parts:
            continue
        subject = max(fitting, key=len) if fitting else parts[0][:EXAMPLE_CHARS]
        out.append(f"介绍一下{subject}")
        if len(out) == limit:
            break
    return out


def render_header(model: str, notice: str | None) -> str:
    """Title bar: what this is, and which embedding model answers."""
    line = (f'<div class="qa-head"><span class="qa-brand">文档问答</span>'
            f'<span class="qa-model">嵌入模型：{esc(model)}</span></div>')
    if notice:
        line += f'<div class="qa-notice">{esc(notice)}</div>'
    return line


def render_documents(docs: Sequence[dict], base: str = "") -> str:
    """The documents tab's table (titles come from articles, so they are escaped too); ``base``: the
    knowledge base they belong to, named above the table when the deployment has several."""
    named = KB_LINE.format(name=base) + strings.SEP if base else ""
    if not docs:
        return render_notice(f"{named}文档库是空的。")
    rows = "".join(
        f"<tr><td>{esc(d.get('title') or '')}</td><td>{esc(d.get('source') or '')}</td>"
        f"<td>{esc(d.get('date') or '')}</td><td class=\"num\">{int(d.get('passages') or 0)}</td>"
        f"<td class=\"id\">{esc(str(d.get('doc_id') or '')[:12])}</td></tr>"
        for d in docs
    )
    head = "<tr><th>标题</th><th>来源</th><th>日期</th><th>段落</th><th>ID</th></tr>"
    count = f'<div class="qa-meta">{esc(named)}共 {len(docs)} 篇</div>'
    return f'<div class="qa-doclist">{count}<table>{head}{rows}</table></div>'


def message_text(message: dict) -> str:
    """The plain text of a chat message (user messages are stored HTML-escaped)."""
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(c.get("text", "") for c in content if isinstance(c, dict))
    return html.unescape(content or "")


def earlier_questions(messages: Sequence[dict], turns: int = 3) -> list[str]:
    """The user's earlier questions, most recent last: the history a follow-up leans on."""
    return [message_text(m) for m in messages if m.get("role") == "user"][-turns:]


# A narrow screen (see HEAD). In the page's head, not in CSS: gradio scopes the media rules of its css to its
# container, which holds neither the body nor the page's padding.
NARROW_STYLE = """<style>
@media (max-width: NARROWpx) {
  .gradio-container > .main { padding-left: 8px !important; padding-right: 8px !important; }
  #qa-side { display: none !important; }
  body.qa-sheet { overflow: hidden; }
  body.qa-sheet #qa-side { display: flex !important; position: fixed; left: 0; right: 0; bottom: 0; top: 6vh;
    z-index: 1000; margin: 0; padding: 6px; min-width: 0 !important; background: var(--background-fill-primary);
    border-radius: 14px 14px 0 0; box-shadow: 0 -4px 24px rgba(0, 0, 0, .25); }
  body.qa-sheet #qa-article .qa-article { height: calc(94vh - 12px) !important; }
  body.qa-sheet #qa-chat .scroll-down-button-container { display: none; }
  .qa-close { display: inline-block !important; }
}
</style>""".replace("NARROW", str(NARROW))

# Page script. A click on a citation hands it to the hidden "open" button (see the web chat's layout). On a narrow
# screen (a phone) the chat and the article cannot stand side by side: the article panel is hidden, and a click on
# a citation opens it over the chat as a sheet, which its close button (or Escape) closes again, back to the answer.
# The cited span is scrolled into view inside the panel only, never by scrolling the page: on a phone that took the
# page to the article and the answer out of sight. New replies are scrolled to their top.
HEAD = """<script>
window.qaScrollCited = function (root) {
  root = root || document.getElementById('qa-article');
  var m = root && root.querySelector('#qa-cited'), box = m && m.closest('.qa-article');
  if (!box || !box.offsetParent) return;
  var head = box.querySelector('.qa-art-head');
  box.scrollTop += m.getBoundingClientRect().top - box.getBoundingClientRect().top - (head ? head.offsetHeight : 0) - 8;
};
window.qaSheet = function (open) {
  document.body.classList.toggle('qa-sheet', open && window.matchMedia('(max-width: NARROWpx)').matches);
  if (open) requestAnimationFrame(function () { window.qaScrollCited(); });
};
document.addEventListener('click', function (ev) {
  var t = ev.target && ev.target.closest ? ev.target : null;
  if (!t) return;
  if (t.closest('.qa-close')) { ev.preventDefault(); window.qaSheet(false); return; }
  var a = t.closest('a[href^="#qa-cite:"]');
  if (!a) return;
  ev.preventDefault(); ev.stopPropagation();
  window.qaCite = a.getAttribute('href');
  var b = document.getElementById('qa-open');
  if (b && b.tagName !== 'BUTTON') b = b.querySelector('button');
  if (b) b.click();
  window.qaSheet(true);
}, true);
document.addEventListener('keydown', function (ev) { if (ev.key === 'Escape') window.qaSheet(false); });
/* Like ChatGPT: a new reply is shown from its question down, not scrolled to its end. */
window.qaSeen = 0;
new MutationObserver(function () {
  var replies = document.querySelectorAll('#qa-chat .qa-reply');
  if (replies.length === window.qaSeen) return;
  var grew = replies.length > window.qaSeen;
  window.qaSeen = replies.length;
  if (!grew) return;
  var users = document.querySelectorAll('#qa-chat .user-row');
  var reply = users.length ? users[users.length - 1] : replies[replies.length - 1], box = reply.parentElement;
  while (box && !(box.scrollHeight > box.clientHeight + 4 && /(auto|scroll)/.test(getComputedStyle(box).overflowY)))
    box = box.parentElement;
  if (box) box.scrollTop += reply.getBoundingClientRect().top - box.getBoundingClientRect().top - 12;
}).observe(document.documentElement, {childList: true, subtree: true});
</script>""".replace("NARROW", str(NARROW)) + NARROW_STYLE

# Runs in the article panel after each update: bring the cited span into view, inside the panel (see HEAD).
SCROLL_JS = """watch('value', () => window.qaScrollCited && window.qaScrollCited(element));"""


CSS = """
.gradio-container { max-width: 1400px !important; }
#qa-header .qa-head { display: flex; align-items: baseline; gap: 14px; padding: 4px 2px; }
.qa-brand { font-size: 1.35rem; font-weight: 650; }
.qa-model { font-size: .82rem; color: var(--body-text-color-subdued); }
.qa-notice { margin-top: 4px; padding: 6px 10px; border-radius: 8px; background: #fff7e0; color: #7a5200;
  font-size: .85rem; }
#qa-chat { font-size: 15px; line-height: 1.7; }
.qa-reply { display: flex; flex-direction: column; gap: 6px; }
.qa-query, .qa-kb { font-size: .8rem; color: var(--body-text-color-subdued); }
.qa-lead { margin: 0 0 4px 0 !important; font-size: 1rem; }
.qa-none { margin: 0 !important; font-weight: 600; }
.qa-related { font-size: .8rem; color: var(--body-text-color-subdued); margin-top: 2px; }
.qa-src { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 6px 10px;
  background: var(--background-fill-secondary); }
.qa-src-head { font-size: .88rem; font-weight: 600; }
.qa-meta { font-size: .75rem; color: var(--body-text-color-subdued); }
.qa-passage { font-size: .86rem; line-height: 1.6; margin-top: 2px; display: -webkit-box; -webkit-line-clamp: 2;
  -webkit-box-orient: vertical; overflow: hidden; }
a.qa-cite { text-decoration: none !important; font-weight: 600; font-size: .8em; color: var(--color-accent) !important;
  padding: 0 2px; margin: 0 1px; border-radius: 4px; cursor: pointer; vertical-align: super; }
.qa-src-head a.qa-cite { vertical-align: baseline; font-size: .9em; }
a.qa-cite:hover { background: var(--color-accent-soft); }
mark.qa-kw { background: #fde68a; color: inherit; padding: 0 1px; border-radius: 2px; }
#qa-article .qa-article { height: 72vh; overflow-y: auto; border: 1px solid var(--border-color-primary);
  border-radius: 12px; padding: 0 18px 14px; background: var(--background-fill-primary); }
.qa-art-head { position: sticky; top: 0; z-index: 1; padding: 12px 0 8px; background: var(--background-fill-primary);
  border-bottom: 1px solid var(--border-color-primary); }
.qa-empty { padding-top: 14px !important; }
.qa-url { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.qa-art-title { font-size: 1.1rem; font-weight: 650; margin-bottom: 2px; }
.qa-art-body { margin-top: 10px; line-height: 1.85; font-size: .95rem; }
mark.qa-cited { background: #ccfbf1; color: inherit; padding: 2px 0; scroll-margin-top: 90px; }
.qa-art-body mark.qa-kw { background: #fef3c7; }
.qa-art-body .qa-cited mark.qa-kw { background: #fcd34d; }
.qa-empty { color: var(--body-text-color-subdued); }
.qa-error { color: #b91c1c; margin: 0 !important; }
.qa-doclist table { width: 100%; border-collapse: collapse; font-size: .9rem; border: none !important; }
.qa-doclist th, .qa-doclist td { text-align: left; padding: 6px 8px; border: none !important;
  border-bottom: 1px solid var(--border-color-primary) !important; }
.qa-doclist th { font-weight: 600; color: var(--body-text-color-subdued); }
.qa-doclist td.num { text-align: right; } .qa-doclist td.id { font-family: var(--font-mono); font-size: .75rem; }
.qa-writing { color: var(--body-text-color-subdued); }
.qa-caret { animation: qa-blink 1s steps(2) infinite; } @keyframes qa-blink { 50% { opacity: 0; } }
.qa-by { font-size: .75rem; color: var(--body-text-color-subdued); }
.qa-close { display: none; float: right; margin: 0 0 4px 8px; padding: 2px 10px; border-radius: 8px; font-size: .85rem;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-secondary); cursor: pointer; }
"""
