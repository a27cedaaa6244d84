"""Loading: encodings detected, formats read, bad files skipped by name with a reason."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from qa.errors import LoadError
from qa.load import SUPPORTED, decode_text, discover, read
from qa.pipeline import load_documents
from qa.types import RawText, Skipped

SIMPLIFIED = "交警大队党总支现有党员54人,其中民警47人。"
TRADITIONAL = "交警大隊黨總支現有黨員54人,其中民警47人。"
ARTICLE = (
    "泰州海陵公安分局巡特警大队开展流动党建\n\n"
    "2020-07-13 来源:泰州日报\n\n"
    "泰州市公安局海陵分局巡特警大队党总支现有党员54人,其中民警47人,辅警7人,下设2个党支部。"
    "该党总支确定每周一为集中学习日,定期开展主题党课教育。\n"
)

ARTICLE_TRADITIONAL = (
    "泰州海陵公安分局巡特警大隊開展流動黨建\n\n"
    "2020-07-13 來源:泰州日報\n\n"
    "泰州市公安局海陵分局巡特警大隊黨總支現有黨員54人,其中民警47人,輔警7人,下設2個黨支部。"
    "該黨總支確定每週一為集中學習日,定期開展主題黨課教育。\n"
)


@pytest.mark.parametrize(
    "encoding, text",
    [
        ("utf-8", SIMPLIFIED),
        ("utf-8-sig", SIMPLIFIED),
        ("gb18030", SIMPLIFIED),
        ("gbk", SIMPLIFIED),
        ("gbk", "欢迎光临"),
        ("gbk", "党员民警在路口执勤。"),
        ("big5", TRADITIONAL),
        ("big5", "歡迎光臨"),
        ("big5", "學生們在圖書館裡讀書。"),
        ("utf-16", SIMPLIFIED),
    ],
)
def test_short_chinese_text_loads_in_each_encoding(tmp_path: Path, encoding: str, text: str) -> None:
    path = tmp_path / f"short-{encoding}.txt"
    path.write_bytes(text.encode(encoding))
    assert read(path).text == text


@pytest.mark.parametrize("encoding", ["gb18030", "gbk", "big5", "utf-8-sig"])
def test_article_loads_and_cleans_in_each_encoding(tmp_path: Path, encoding: str) -> None:
    text = ARTICLE_TRADITIONAL if encoding == "big5" else ARTICLE
    path = tmp_path / f"article-{encoding}.txt"
    path.write_bytes(text.replace("\n", "\r\n").encode(encoding))
    docs, skipped = load_documents([path])
    assert skipped == []
    assert docs[0].date == "2020-07-13" and docs[0].source in ("泰州日报", "泰州日報")
    assert docs[0].title == text.splitlines()[0]
    assert "54人" in docs[0].text and "\r" not in docs[0].text
    assert not docs[0].text.startswith("\ufeff")


def test_undecodable_and_binary_bytes_are_rejected_with_the_file_name() -> None:
    junk = random.Random(7).randbytes(3000)
    with pytest.raises(LoadError, match="junk.txt"):
        decode_text(junk, "junk.txt")
    high = bytes(range(0x80, 0x100)) * 8  # no NUL, valid in no Chinese encoding as text
    with pytest.raises(LoadError, match="encoding could not be recognised"):
        decode_text(high, "odd.txt")


def _html_page() -> str:
    return """<!doctype html><html><head><meta charset="gbk">
<title>交警大队开展党建活动 - 某某市政府网</title>
<link rel="canonical" href="https://example.gov.cn/news/2023/0815/1.html">
<meta property="article:published_time" content="2023-08-15T09:30:00+08:00">
<style>.x{color:red}</style><script>var tracking = "脚本内容不应出现";</script></head>
<body><header><a href="/">首页</a> <a>新闻中心</a> 欢迎访问某某市政府网</header>
<nav><ul><li>首页</li><li>政务公开</li><li>办事服务</li></ul></nav>
<div class="breadcrumb">首页 &gt; 新闻 &gt; 正文</div>
<article><h1>交警大队开展党建活动</h1>
<p>今年以来,交警大队累计开展主题党日活动24次,参与党员民警300余人次。</p>
<p>大队还组织志愿服务20余次,<br>受到群众好评。</p></article>
<aside>热门文章 推荐阅读</aside>
<div class="share-bar">分享到: 微信 微博</div>
<footer>版权所有 &copy; 2023 某某市政府网 京ICP备12345678号</footer></body></html>"""


def test_html_keeps_article_drops_furniture_and_reads_hints(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_bytes(_html_page().encode("gbk"))
    raw = read(path)
    assert raw.title == "交警大队开展党建活动"
    assert raw.url == "https://example.gov.cn/news/2023/0815/1.html"
    assert raw.date.startswith("2023-08-15")
    assert "24次" in raw.text and "受到群众好评" in raw.text
    for furniture in ("脚本内容", "color:red", "政务公开", "欢迎访问", "热门文章", "分享到", "ICP备", "正文"):
        assert furniture not in raw.text
    docs, _ = load_documents([path])
    assert docs[0].title == "交警大队开展党建活动" and docs[0].date == "2023-08-15"
    assert docs[0].url == "https://example.gov.cn/news/2023/0815/1.html"
    assert docs[0].text.startswith("今年以来")


def test_docx_generated_in_test_loads(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = "蒙阴交警党建工作"
    document.add_heading("蒙阴交警党建工作", level=1)
    document.add_paragraph("上半年各党支部累计召开党员大会24次、集中学习72次。")
    document.add_paragraph("车驾管业务满意度位列全市第1名、全省第9名。")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "下放业务"
    table.rows[0].cells[1].text = "9项"
    path = tmp_path / "report.docx"
    document.save(str(path))
    raw = read(path)
    assert raw.title == "蒙阴交警党建工作"
    assert "党员大会24次" in raw.text and "全省第9名" in raw.text and "下放业务 9项" in raw.text
    doc = load_documents([path])[0][0]
    assert doc.title == "蒙阴交警党建工作" and "党员大会24次" in doc.text


def test_pdf_with_chinese_text_generated_in_test_loads(tmp_path: Path) -> None:
    """reportlab's built-in CID font STSong-Light writes Chinese without a font file."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    path = tmp_path / "report.pdf"
    pdf = canvas.Canvas(str(path))
    pdf.setTitle("海陵巡特警流动党建")
    pdf.setFont("STSong-Light", 12)
    pdf.drawString(50, 800, "海陵巡特警流动党建")
    pdf.drawString(50, 770, "大队开展涉疫警情处置386起,核查群众9.5万余人次。")
    pdf.showPage()
    pdf.setFont("STSong-Light", 12)
    pdf.drawString(50, 800, "累计方便群众办理港澳签注229起。")
    pdf.save()
    raw = read(path)
    assert raw.title == "海陵巡特警流动党建"
    assert "涉疫警情处置386起" in raw.text and "港澳签注229起" in raw.text
    doc = load_documents([path])[0][0]
    assert "9.5万余人次" in doc.text


def test_folder_loads_good_files_and_skips_bad_ones_by_name(tmp_path: Path) -> None:
    good = tmp_path / "a" / "good.txt"
    good.parent.mkdir()
    good.write_text(ARTICLE, encoding="utf-8")
    (tmp_path / "a" / "nested").mkdir()
    (tmp_path / "a" / "nested" / "more.md").write_text(ARTICLE.replace("54", "55"), encoding="gb18030")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.md").write_text("  \n\n ", encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 20)
    (tmp_path / "fake.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (tmp_path / "fake.docx").write_bytes(b"PK not a zip at all")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n")
    (tmp_path / ".hidden.txt").write_text(ARTICLE, encoding="utf-8")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "notes.txt").write_text(ARTICLE, encoding="utf-8")
    (tmp_path / "furniture.txt").write_text("首页 新闻 关于我们 联系我们 网站地图\n版权所有 © 2023", encoding="utf-8")

    docs, skipped = load_documents([tmp_path])
    assert sorted(Path(d.path).name for d in docs) == ["good.txt", "more.md"]
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert set(reasons) == {
        "empty.txt",
        "blank.md",
        "binary.txt",
        "fake.pdf",
        "fake.docx",
        "image.png",
        "furniture.txt",
    }
    assert "empty" in reasons["empty.txt"] and "empty" in reasons["blank.md"]
    assert "binary" in reasons["binary.txt"]
    assert "PDF" in reasons["fake.pdf"] and "docx" in reasons["fake.docx"]
    assert "unsupported file type .png" in reasons["image.png"]
    assert "no article text" in reasons["furniture.txt"]
    assert all(isinstance(s, Skipped) and s.reason for s in skipped)


def test_discover_is_sorted_recursive_and_reports_missing_paths(tmp_path: Path) -> None:
    for name in ("b.txt", "a.html", "sub/c.pdf", "sub/.d.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x", encoding="utf-8")
    files, skipped = discover([tmp_path, tmp_path / "b.txt", tmp_path / "missing.txt"])
    assert files == sorted(files) and [f.name for f in files] == ["a.html", "b.txt", "c.pdf"]
    assert skipped == [Skipped(str(tmp_path / "missing.txt"), "no such file or folder")]
    assert {".txt", ".md", ".html", ".htm", ".docx", ".pdf"} == SUPPORTED


def test_read_rejects_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "sheet.xlsx"
    path.write_bytes(b"data")
    with pytest.raises(LoadError, match="sheet.xlsx: unsupported file type .xlsx"):
        read(path)


def test_seeds_all_load(seeds_dir: Path) -> None:
    docs, skipped = load_documents([seeds_dir])
    assert skipped == [] and len(docs) == 5
    assert isinstance(read(sorted(seeds_dir.iterdir())[0]), RawText)


def test_markdown_markup_is_removed_and_front_matter_gives_hints(tmp_path: Path) -> None:
    path = tmp_path / "note.md"
    path.write_text(
        "---\ntitle: 交警大队开展党建活动\ndate: 2023-08-15\n---\n# 交警大队开展党建活动\n\n![现场](photo.jpg)\n\n"
        "## 活动情况\n\n- 今年以来,**交警大队**累计开展[主题党日](https://x.cn/a)活动24次。\n"
        "- 参与党员民警300余人次。\n",
        encoding="utf-8",
    )
    doc = load_documents([path])[0][0]
    assert (doc.title, doc.date) == ("交警大队开展党建活动", "2023-08-15")
    assert doc.text == "活动情况\n\n今年以来,交警大队累计开展主题党日活动24次。\n\n参与党员民警300余人次。"


def test_html_wrapper_named_like_navigation_keeps_the_article(tmp_path: Path) -> None:
    page = (
        '<html><head><meta charset="utf-8"><title>站点</title></head><body><div class="nav-wrapper">'
        '<div class="top-menu">首页 新闻 服务 互动</div>'
        "<article><header><h1>大队开展便民服务</h1><time datetime='2022-03-01'>3月1日</time></header>"
        "<p>今年以来,大队推出便民服务措施12项,办理业务3000余件,群众满意率达到99%。</p>"
        "<footer>责任编辑:王芳</footer></article></div></body></html>"
    )
    path = tmp_path / "wrapped.htm"
    path.write_text(page, encoding="utf-8")
    doc = load_documents([path])[0][0]
    assert (doc.title, doc.date) == ("大队开展便民服务", "2022-03-01")
    assert doc.text == "今年以来,大队推出便民服务措施12项,办理业务3000余件,群众满意率达到99%。"


def test_html_furniture_is_judged_by_its_share_of_the_body_however_many_pieces_it_holds(tmp_path: Path) -> None:
    """A share bar of 300 links is dropped; a "sidebar" holding most of the page's text is the page, and stays."""
    prose = "今年以来,大队推出便民服务措施12项,办理业务3000余件。" * 120
    share = "".join(f"<span>分享{i}</span>" for i in range(300))
    page = f"<html><body><p>{prose}</p><div class='share'>{share}</div><p>尾段文字。</p></body></html>"
    path = tmp_path / "share.html"
    path.write_text(page, encoding="utf-8")
    assert read(path).text == f"{prose}\n\n尾段文字。"

    path.write_text(f"<html><body><p>导航</p><div class='sidebar'><p>{prose}</p>{share}</div></body></html>", "utf-8")
    assert read(path).text == "导航\n\n" + prose + "\n\n" + "".join(f"分享{i}" for i in range(300))


def test_html_longest_article_is_measured_without_its_furniture(tmp_path: Path) -> None:
    """Of two <article>s the one with more text once its related-links block is dropped is the page."""
    links = "".join(f"<a href='/n/{i}'>相关新闻标题第{i}条</a>" for i in range(40))
    page = (
        f"<html><body><div>{'站点介绍文字。' * 300}</div>"
        f"<article><div class='related'>{links}</div><p>短讯。</p></article>"
        "<article><p>今年以来,大队推出便民服务措施12项,办理业务3000余件,群众满意率达到99%。</p></article>"
        "</body></html>"
    )
    path = tmp_path / "two.html"
    path.write_text(page, encoding="utf-8")
    assert read(path).text == "今年以来,大队推出便民服务措施12项,办理业务3000余件,群众满意率达到99%。"


def test_html_read_in_pieces_keeps_line_breaks_and_wide_characters(tmp_path: Path) -> None:
    """A page longer than one 64 K piece: CR LF across a piece boundary is one break; an emoji loads."""
    rows = "".join(f"第{i}行😀\r\n" for i in range(20_000))
    path = tmp_path / "long.html"
    path.write_bytes(f"<html><body><pre>{rows}</pre></body></html>".encode())
    assert read(path).text == "\n\n".join(f"第{i}行😀" for i in range(20_000))


def test_placeholder_document_titles_are_ignored(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = "Microsoft Word - 报告.docx"
    document.add_paragraph("城南交警工作报告")
    document.add_paragraph("全年查处交通违法行为5.6万起,较上年下降3%。")
    path = tmp_path / "报告.docx"
    document.save(str(path))
    doc = load_documents([path])[0][0]
    assert doc.title == "城南交警工作报告" and doc.date is None


# ---------------------------------------------------------------- hardening (issue 11, item 1)


def _docx_parts() -> dict[str, bytes]:
    import io
    import zipfile

    import docx

    document = docx.Document()
    document.add_paragraph(SIMPLIFIED)
    out = io.BytesIO()
    document.save(out)
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as archive:
        return {info.filename: archive.read(info.filename) for info in archive.infolist()}


def _zip(parts: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_a_docx_with_broken_xml_skips_only_that_file(tmp_path: Path) -> None:
    """The issue's case: word/document.xml cut in half made lxml's XMLSyntaxError abort the whole build."""
    (tmp_path / "good.txt").write_text(ARTICLE, encoding="utf-8")
    parts = _docx_parts()
    xml = parts["word/document.xml"]
    (tmp_path / "cut.docx").write_bytes(_zip({**parts, "word/document.xml": xml[: len(xml) // 2]}))
    docs, skipped = load_documents([tmp_path])
    assert [Path(d.path).name for d in docs] == ["good.txt"]
    assert [Path(s.path).name for s in skipped] == ["cut.docx"]
    assert "not a readable .docx" in skipped[0].reason and "XMLSyntaxError" in skipped[0].reason
    assert "\n" not in skipped[0].reason


def test_any_reader_failure_becomes_a_skip(tmp_path: Path, monkeypatch) -> None:
    """Whatever a reader library raises (here MemoryError and RecursionError) costs one file only."""
    import qa.load as load
    from qa.pipeline import load_collection

    for name in ("a.html", "b.html", "c.html"):
        (tmp_path / name).write_text(f"<p>{ARTICLE}</p>", encoding="utf-8")
    (tmp_path / "good.txt").write_text(ARTICLE, encoding="utf-8")
    failures = iter([MemoryError(), RecursionError("maximum recursion depth"), AttributeError("x\ny")])

    def broken(data, path):
        raise next(failures)

    monkeypatch.setattr(load, "_read_html", broken)
    loaded = load_collection([tmp_path])
    assert [Path(d.path).name for d in loaded.documents] == ["good.txt"]
    reasons = {Path(s.path).name: s.reason for s in loaded.skipped}
    assert "memory" in reasons["a.html"] and "nested too deeply" in reasons["b.html"]
    assert reasons["c.html"] == "could not be read (AttributeError: x\\ny)"


def test_a_file_without_sentences_to_cut_at_loads_with_a_notice(tmp_path: Path) -> None:
    from qa.pipeline import UNBROKEN_CHARS, load_collection

    (tmp_path / "good.txt").write_text(ARTICLE * 40, encoding="utf-8")  # long, but in sentences
    unbroken = "没有标点的一行" * (UNBROKEN_CHARS // 7 + 1)
    (tmp_path / "one-line.txt").write_text(unbroken, encoding="utf-8")
    loaded = load_collection([tmp_path])
    assert sorted(Path(d.path).name for d in loaded.documents) == ["good.txt", "one-line.txt"]
    assert [(Path(n.path).name, n.message) for n in loaded.notices] == [
        ("one-line.txt", f"{len(unbroken):,} characters without a line break or sentence end; "
                         "passages there are cut by length")]


@pytest.mark.parametrize(
    "name, extra, words",
    [
        ("one-part.docx", lambda xml: {"word/document.xml": xml + b" " * (150 * 2**20)}, "would unpack to"),
        ("high-ratio.docx", lambda xml: {"word/document.xml": xml + b" " * (20 * 2**20)}, "zip bomb"),
        ("many-parts.docx", lambda xml: {f"word/media/{i}.bin": bytes(900_000) for i in range(130)}, "would unpack"),
    ],
)
def test_docx_zip_bombs_are_refused_before_anything_is_inflated(tmp_path: Path, monkeypatch, name, extra, words):
    import docx

    parts = _docx_parts()
    (tmp_path / name).write_bytes(_zip({**parts, **extra(parts["word/document.xml"])}))
    opened = []
    real = docx.Document
    monkeypatch.setattr(docx, "Document", lambda *a, **k: opened.append(1) or real(*a, **k))
    with pytest.raises(LoadError, match=words):
        read(tmp_path / name)
    assert opened == []  # python-docx never saw the archive


def test_a_normal_docx_passes_the_bomb_checks(tmp_path: Path) -> None:
    from qa.load import DOCX_MAX_RATIO

    paragraphs = {"word/document.xml": _docx_parts()["word/document.xml"]}
    path = tmp_path / "ok.docx"
    path.write_bytes(_zip({**_docx_parts(), **paragraphs}))
    assert "54人" in read(path).text
    assert DOCX_MAX_RATIO >= 50


def test_files_over_the_size_cap_are_skipped_before_reading(tmp_path: Path, monkeypatch) -> None:
    from qa.config import Settings
    from qa.pipeline import load_collection

    big = tmp_path / "big.txt"
    big.write_text(ARTICLE * (2 * 2**20 // len(ARTICLE.encode())), encoding="utf-8")
    (tmp_path / "small.txt").write_text(ARTICLE, encoding="utf-8")
    loaded = load_collection([tmp_path], max_file_mb=1)
    assert [Path(d.path).name for d in loaded.documents] == ["small.txt"]
    (skip,) = loaded.skipped
    assert skip.reason.startswith("big.txt: 2.0 MB is over the 1 MB cap") and "QA_MAX_FILE_MB" in skip.reason
    assert len(load_collection([tmp_path], max_file_mb=0).documents) == 2  # 0: no cap
    assert Settings().max_file_mb == 20
    monkeypatch.setenv("QA_MAX_FILE_MB", "3")
    assert Settings.load().max_file_mb == 3


def test_utf8_with_a_few_stray_bytes_loads_and_says_how_many(tmp_path: Path) -> None:
    from qa.load import decode_text
    from qa.pipeline import load_collection

    data = ARTICLE.encode("utf-8")
    middle = len(data) // 2 + 1
    damaged = data[:middle] + b"\xff" + data[middle:]
    text, replaced = decode_text(damaged, "x.txt")
    assert replaced >= 1 and "\ufffd" in text and "辅警7人" in text
    (tmp_path / "damaged.txt").write_bytes(damaged)
    loaded = load_collection([tmp_path])
    assert len(loaded.documents) == 1 and loaded.skipped == []
    assert [(Path(n.path).name, n.message.split()[0]) for n in loaded.notices] == [("damaged.txt", str(replaced))]


def test_too_many_invalid_utf8_bytes_mean_another_encoding_not_repair() -> None:
    """Past 1 byte in 100 of the non-ASCII bytes, UTF-8 is not the encoding: GBK decodes correctly."""
    from qa.load import decode_text

    assert decode_text(SIMPLIFIED.encode("gbk"), "g.txt") == (SIMPLIFIED, 0)
    chinese = (SIMPLIFIED * 10).encode("utf-8")
    non_ascii = len(chinese.translate(None, bytes(range(128))))
    spoiled = bytearray(chinese)
    for i in range(0, len(spoiled), len(spoiled) // (non_ascii // 50)):  # ~2% of the non-ASCII bytes
        spoiled[i] = 0xFF
    with pytest.raises(LoadError, match="encoding could not be recognised"):
        decode_text(bytes(spoiled), "spoiled.txt")


def test_skip_lines_stay_one_line_whatever_the_file_name(tmp_path: Path) -> None:
    from qa.pipeline import BuildReport, load_collection
    from qa.present.report import summary

    (tmp_path / "two\nlines.txt").write_bytes(b"")
    (tmp_path / "esc\x1b[2J.md").write_bytes(b"")
    loaded = load_collection([tmp_path])
    text = summary(BuildReport(skipped=loaded.skipped))
    lines = text.splitlines()
    assert len(lines) == 3 and "\x1b" not in text
    assert any(line.startswith("Skipped ") and "two\\nlines.txt: the file is empty" in line for line in lines)
    assert any("esc\\x1b[2J.md" in line for line in lines)
