"""What a question asks for, and whether a sentence holds that kind of answer.

A lead that covers the question's words can still miss what was asked: the
sentence about 滨州第一岗 without the man's name, a count of one unit's
members for another unit. So the question is typed with general rules over
its words (who / how many / when / where / which ones / how or why / contact),
and each type has a test for a sentence that could answer it: a person's
name, a number with the classifier asked for, a date, a place, a list, a
telephone number. The lead prefers such sentences; their absence is an
abstention signal (``lead.has_evidence``, weighed by ``abstain.decide``). The
rules look only at the question's wording, never at any particular question
or document.

Names come from jieba's part-of-speech tags (``nr`` person, ``ns`` place,
``nt`` organisation), which are noisy on rare names; so a person is also
recognised by a role word directly before two or three characters
(民警王栋, 支队长高玉林).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from . import segment, text

WHO, COUNT, WHEN, WHERE, WHICH, HOW, CONTACT, WHAT = "who", "count", "when", "where", "which", "how", "contact", "what"

_CLASSIFIERS = "个名次项年岁人位条家天月号件双户张处面把起辆座部种元块台套份场期批所周倍米公里"
_YEAR_ASKED = re.compile(r"哪一?年|何年|年份")
_DAY_ASKED = re.compile(r"哪一?天|几月|几号|哪个月|日期")
_YEAR = re.compile(r"[0-9０-９]{4}年|[一二〇零○两三四五六七八九]{4}年|[今去前明]年")
_WHEN = re.compile(r"哪一?年|哪一?天|何时|什么时候|什么时间|几月|几号|哪个月|几点|日期|时间是")
_CONTACT = re.compile(r"电话|号码|联系方式|手机|邮箱|传真|热线号")
_WHO = re.compile(r"谁|哪位|哪名|名字|姓名")
_PERSON_HEAD = re.compile(r"(?:人|员|警|长|者|官|师|姨|叔|爷|婆|生|老人|书记|主任|同志|领导)$")
_COUNT = re.compile(
    r"(?:多少|几)(人次|[" + _CLASSIFIERS + r"])?|多大年纪|多大岁数|排第几|比例|百分之?几|几成|(?:率|额)是?多少"
)
_WHERE = re.compile(r"哪里|哪儿|在哪|何处|什么地方|哪个(?:村|镇|乡|县|市|省|区|地方|国家|城市)|哪座城")
_WHICH = re.compile(r"哪些|哪几|包括什么|包括哪|分别|有哪")
_HOW = re.compile(r"为什么|为何|原因|怎样|怎么|如何|什么做法|什么办法")
_ASK_NAME = re.compile(r"(\w{1,6}?)(?:叫什么|是谁|名叫)")

# The same people counted with another classifier (名 民警 = 人 民警).
_SAME_UNIT = {"名": "名人位", "人": "名人位", "位": "名人位"}
_DIGITS = r"(?:[0-9０-９][0-9０-９.,，]*|[一二两三四五六七八九十百千万亿几]+)"
_NUMBER = re.compile(_DIGITS + r"(?:万|千|百|亿)?(?:余|多)?(?:[" + _CLASSIFIERS + r"]|人次|%|％)")
_ANY_NUMBER = re.compile(r"[0-9０-９]|[一二两三四五六七八九十百千万]+(?:[" + _CLASSIFIERS + r"]|%|％)")
_DATE = re.compile(
    r"[0-9０-９]{2,4}年|[0-9０-９一二三四五六七八九十]{1,3}月|[0-9０-９一二三四五六七八九十]{1,3}[日号]"
    r"|[今去前明]年|上半年|下半年|年初|年底|春节|元旦|清明|端午|中秋|国庆|[0-9]{1,2}[:：][0-9]{2}|[上下]午|凌晨|傍晚"
)
_PLACE_SUFFIX = re.compile(
    rf"[{text.CJK_RANGES}]{{1,8}}(?:村|镇|乡|县|市|省|区|州|街道|社区|路|街|站|院|厅|馆|堂|所|广场|大厦)"
)
_PHONE = re.compile(r"(?:[0-9]{3,4}[-－—])?[0-9]{7,8}|1[3-9][0-9]{9}|[0-9]{3}[-－ ][0-9]{4}[-－ ][0-9]{4}|\w+@\w+\.\w+")
_ROLE_NAME = re.compile(
    r"(?:民警|辅警|交警|女警|警官|队长|站长|所长|局长|科长|主任|书记|政委|支队长|大队长|中队长|指导员|教导员|老人|老党员|同志"
    rf"|先生|女士|村民|群众)([{text.CJK_RANGES}]{{2,3}}?)(?=[,，、。；;：:\s“”的在为和与等]|$)"
)
# The 254 commonest surnames: a two-character ``nr`` word is only a
# name when it starts with one (jieba tags 盖上, 立功 as names too).
_SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟"
    "谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易"
    "乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华"
    "喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇"
    "栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝刀"
)
PRONOUN = re.compile(r"[他她]")  # a sentence about a person it does not name
_LIST = re.compile(r"[、]|”“|」「")


@dataclass(frozen=True)
class Asked:
    """The type of answer a question wants, with what narrows it."""

    kind: str
    classifier: str | None = None  # COUNT: the unit asked (名, 辆 …); WHEN: 年 a year, 日 a date; None: any
    entities: tuple[str, ...] = ()  # named people, places and organisations in the question
    places: tuple[str, ...] = ()  # the places and organisations among them (ns, nt)


@lru_cache(maxsize=512)
def analyse(question: str) -> Asked:
    """Type ``question`` by its question words (first match wins, in order of how specific they are)."""
    q = question.strip()
    entities, places = _entities(q)
    if _CONTACT.search(q):
        return Asked(CONTACT, entities=entities, places=places)
    if _WHEN.search(q):
        exact = "年" if _YEAR_ASKED.search(q) else "日" if _DAY_ASKED.search(q) else None
        return Asked(WHEN, classifier=exact, entities=entities, places=places)
    if re.search(r"哪几|哪些", q):  # 哪几种颜色, 哪几座站: a list, even though 几 counts
        return Asked(WHICH, entities=entities, places=places)
    count = _COUNT.search(q)
    if count:
        unit = count.group(1) if count.lastindex else None
        if unit == "个":  # 几个 counts anything: 几个孩子 is answered by 3名子女
            unit = None
        if re.search(r"年纪|岁数|年龄", q):
            unit = "岁"
        return Asked(COUNT, classifier=unit, entities=entities, places=places)
    if _WHERE.search(q):
        return Asked(WHERE, entities=entities, places=places)
    if _WHO.search(q) or _asks_person(q):
        return Asked(WHO, entities=entities, places=places)
    if _WHICH.search(q):
        return Asked(WHICH, entities=entities, places=places)
    if _HOW.search(q):
        return Asked(HOW, entities=entities, places=places)
    return Asked(WHAT, entities=entities, places=places)


def _asks_person(q: str) -> bool:
    """哪个民警… / …的老人叫什么: a question word bound to a person noun."""
    m = re.search(rf"哪个([{text.CJK_RANGES}]{{1,4}})", q)
    if m and _PERSON_HEAD.search(m.group(1)[:2]) and not re.search(r"队|单位|部门|机构|组织", m.group(1)[:3]):
        return True
    named = _ASK_NAME.search(q)
    return bool(named and _PERSON_HEAD.search(named.group(1)))


def _entities(q: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    people, places = [], []
    for word, flag in _tag(q):
        if len(word) < 2:
            continue
        if flag in ("ns", "nt"):
            places.append(word)
        elif flag == "nr":
            people.append(word)
    return tuple(dict.fromkeys(places + people)), tuple(dict.fromkeys(places))


def _tag(sentence: str) -> list[tuple[str, str]]:
    segment.tokenize("")  # jieba initialised once, through the project's dictionary cache
    import jieba.posseg

    return [(pair.word, pair.flag) for pair in jieba.posseg.cut(sentence)]


@lru_cache(maxsize=4096)
def names(sentence: str) -> tuple[str, ...]:
    """People named in ``sentence``: jieba ``nr`` words and role-word + name patterns."""
    found = [w for w, f in _tag(sentence) if f == "nr" and (len(w) >= 3 or (len(w) == 2 and w[0] in _SURNAMES))]
    found += [m.group(1) for m in _ROLE_NAME.finditer(sentence) if m.group(1)[0] in _SURNAMES]
    return tuple(dict.fromkeys(found))


def holds(asked: Asked, sentence: str, question: str = "") -> bool:
    """Whether ``sentence`` holds a candidate answer of the asked type (True for types without a test)."""
    kind = asked.kind
    if kind == COUNT:
        return _has_count(sentence, asked.classifier)
    if kind == WHEN:
        return bool((_YEAR if asked.classifier == "年" else _DATE).search(sentence))
    if kind == CONTACT:
        return bool(_PHONE.search(sentence))
    if kind == WHO:
        return any(name not in question for name in names(sentence))
    if kind == WHERE:
        places = [w for w, f in _tag(sentence) if f == "ns" and w not in question]
        return bool(places) or any(m.group(0) not in question for m in _PLACE_SUFFIX.finditer(sentence))
    if kind == WHICH:
        return len(_LIST.findall(sentence)) >= 2
    return True


def _has_count(sentence: str, classifier: str | None) -> bool:
    if classifier is None:
        return bool(_ANY_NUMBER.search(sentence))
    allowed = _SAME_UNIT.get(classifier, classifier)
    for match in _NUMBER.finditer(sentence):
        unit = match.group(0)[-2:] if match.group(0).endswith("人次") else match.group(0)[-1]
        if unit in allowed or unit == classifier:
            return True
    return False
