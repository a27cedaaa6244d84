"""Cleaning: furniture out, every body sentence kept, metadata read by general rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from qa.clean import make_doc_id, normalise_date, to_document
from qa.errors import LoadError
from qa.load import read
from qa.pipeline import load_documents
from qa.types import RawText

# What the articles say (the check, not the rule: clean.py knows none of these strings).
EXPECTED = {
    "000_89856b89963e2241.txt": ("党建工作在路上 人民群众放心上 — 记滨州经济技术开发区交警大队党支部", None, None),
    "001_3e1261f488e53be9.txt": ("山东临沂蒙阴交警大队:多彩党建文化 赋能提升交管质效", "2023-08-15", "人民视点"),
    "002_d806f1f854c00282.txt": ("常德公安交警直属一大队开展文明单位创建工作成效显著", "2022-08-15", "法制周刊"),
    "003_98e2c888875555e2.txt": ("“四群”教育:迪庆高原交警在行动", "2012-04-15", "香格里拉网"),
    "004_ebcf79fdcfa0e81b.txt": ("泰州海陵公安分局:“流动党建”锻造红色警队", "2020-07-13", "泰州日报"),
}

# The furniture issue 3 lists for the seeds (regexes where the text varies).
FURNITURE = [
    "欢迎您来到国盈网",
    "官网首页 小额贷款 购房贷款",
    "国盈网 >",
    "温馨提示",
    "本站不承担",
    "微信扫描二维码",
    "长按图片识别二维码",
    "江苏长安网 © 2012 版权所有",
    "苏ICP备",
    "Copyright 2012 All Rights Reserved",
    r"图片 \d+\.png",
    "责任编辑",
    r"\(责编:",
    "原文地址",
    "本站原创",
    "摘要:",
    "发布时间",
    "来源:",
    "法周融媒",
]

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def seed_docs(seeds_dir: Path):
    docs, skipped = load_documents([seeds_dir])
    assert skipped == []
    return {Path(doc.path).name: doc for doc in docs}


def test_titles_dates_sources_match_the_articles(seed_docs) -> None:
    assert set(seed_docs) == set(EXPECTED)
    for name, (title, date, source) in EXPECTED.items():
        doc = seed_docs[name]
        assert (doc.title, doc.date, doc.source) == (title, date, source), name
        assert not doc.text.startswith(title), f"{name}: the title is metadata, not body"


def test_original_url_comes_from_the_article(seed_docs) -> None:
    assert seed_docs["000_89856b89963e2241.txt"].url == "http://www.guoyinggangguan.com/xedk/217814.html"
    assert seed_docs["004_ebcf79fdcfa0e81b.txt"].url is None


def test_no_furniture_left_in_cleaned_text(seed_docs) -> None:
    for name, doc in seed_docs.items():
        for pattern in FURNITURE:
            assert not re.search(pattern, doc.text), f"{name}: {pattern!r} survived cleaning"


def test_every_body_sentence_survives(seeds_dir: Path, seed_docs) -> None:
    """Each raw line with >= 20 CJK characters ending in sentence punctuation stays."""
    for name, doc in seed_docs.items():
        raw = (seeds_dir / name).read_text(encoding="utf-8")
        for line in raw.splitlines():
            line = line.strip()  # body lines are kept verbatim
            if (
                len(CJK.findall(line)) >= 20
                and line[-1] in "。!?！？;；…)”"
                and not line.startswith(("温馨提示", "摘要"))
            ):
                assert line in doc.text, f"{name}: lost body line {line[:40]!r}"


def test_every_eval_answer_survives_cleaning(seed_docs, eval_rows) -> None:
    rows = [row for row in eval_rows if row["doc"]]
    assert rows
    for row in rows:
        assert row["answer"] in seed_docs[row["doc"]].text, row["id"]


def test_cmrc_articles_keep_title_and_every_answer(eval_dir: Path) -> None:
    """Clean Wikipedia-style files (title, blank line, paragraph) lose nothing."""
    folder = eval_dir / "cmrc2018-trial"
    docs, skipped = load_documents([folder / "docs"])
    assert skipped == [] and len(docs) == 256
    by_name = {Path(doc.path).name: doc for doc in docs}
    for doc in docs:
        first_line = Path(doc.path).read_text(encoding="utf-8").split("\n", 1)[0].strip()
        assert doc.title == first_line
    rows = [json.loads(line) for line in (folder / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line]
    lost = [row["id"] for row in rows if row["answer"] not in by_name[row["doc"]].text]
    assert lost == []


def test_unseen_furniture_is_removed_by_general_rules(tmp_path: Path) -> None:
    raw = "\n".join(
        [
            "欢迎访问城南区人民政府门户网站",
            "首页 | 政务 | 新闻 | 服务 | 互动 | 专题",
            "当前位置:首页 » 工作动态 » 正文",
            "城南区开展冬季道路交通安全整治",
            "发布日期:2021年12月3日 08:10 来源:城南日报 作者:李华 浏览次数:392",
            "",
            "12月2日,城南区交警大队联合多部门开展冬季道路交通安全整治行动,共检查车辆1280辆次,查处违法行为96起。",
            "photo_2021.jpg",
            "整治期间,民警还走进12所学校开展交通安全宣传,发放资料3000余份。",
            "[图片]",
            "分享到: 微信 微博 QQ空间",
            "免责声明:本网转载的文章仅供参考,如有侵权请联系删除。",
            "(编辑:王芳)",
            "版权所有 © 城南区人民政府 浙ICP备00000000号-1",
        ]
    )
    path = tmp_path / "news.txt"
    path.write_text(raw, encoding="utf-8")
    doc = to_document(read(path))
    assert doc.title == "城南区开展冬季道路交通安全整治"
    assert (doc.date, doc.source) == ("2021-12-03", "城南日报")
    assert doc.text == (
        "12月2日,城南区交警大队联合多部门开展冬季道路交通安全整治行动,共检查车辆1280辆次,查处违法行为96起。"
        "\n\n整治期间,民警还走进12所学校开展交通安全宣传,发放资料3000余份。"
    )


def test_body_lines_that_mention_furniture_words_are_kept(tmp_path: Path) -> None:
    """Position matters: mid-article sentences with 'QR code' or 'welcome' words stay."""
    body = [
        "交警大队推出便民服务新举措",
        "",
        "今年以来,交警大队推出多项便民服务措施,群众办理业务更加方便快捷,满意度明显提升。",
        "群众可以扫一扫窗口的二维码预约办理驾驶证业务,平均等候时间缩短到10分钟。",
        "温馨提示:冬季雨雪天气多,驾驶人出行前要检查车辆,雨雪天气请减速慢行。",
        "首页 新闻 服务 互动",
        "市民张先生说:“欢迎你们来到社区,给我们讲交通安全知识。”",
        "大队负责人表示,下一步将继续推出更多便民利民措施,让群众少跑腿、好办事。",
    ]
    path = tmp_path / "service.txt"
    path.write_text("\n".join(body), encoding="utf-8")
    doc = to_document(read(path))
    for line in body[2:5] + body[6:]:
        assert line in doc.text
    assert "首页 新闻 服务 互动" in doc.text  # a body line shaped like a menu is kept in the body


def test_doc_id_is_stable_readable_and_path_based(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "报告 2023.txt", tmp_path / "b" / "报告 2023.txt"
    assert make_doc_id(a) == make_doc_id(a) and make_doc_id(a) != make_doc_id(b)
    assert make_doc_id(a).startswith("报告-2023-")
    assert re.fullmatch(r"[\w-]+", make_doc_id(a))


def test_content_hash_follows_cleaned_text(tmp_path: Path) -> None:
    text = "标题行\n\n正文第一句话写在这里,内容足够长,包含了数字123。第二句话也在这里。"
    one = to_document(RawText(str(tmp_path / "x.txt"), text))
    two = to_document(RawText(str(tmp_path / "x.txt"), text + "\n\n版权所有 © 2023"))
    three = to_document(RawText(str(tmp_path / "x.txt"), text.replace("123", "124")))
    assert one.content_hash == two.content_hash != three.content_hash
    assert one.doc_id == three.doc_id


def test_nothing_left_raises_load_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="menu.txt"):
        to_document(
            RawText(str(tmp_path / "menu.txt"), "首页 新闻 关于我们 联系我们\n\nCopyright 2020 All Rights Reserved")
        )


@pytest.mark.parametrize(
    "text, iso",
    [
        ("2023年08月15日  |  来源:人民视点", "2023-08-15"),
        ("发布时间:2022-08-15 08:54:29", "2022-08-15"),
        ("2020-07-13 16:25:00", "2020-07-13"),
        ("2021/3/5", "2021-03-05"),
        ("2019.11.02", "2019-11-02"),
        ("2023-08-15T09:30:00+08:00", "2023-08-15"),
        ("2023年 8月 1日", "2023-08-01"),
        ("没有日期 1.26%", None),
        ("2023-13-40", None),
    ],
)
def test_dates_are_normalised(text: str, iso: str | None) -> None:
    assert normalise_date(text) == iso
