"""The report page a supervisor reads: tables first under side-by-side headline figures,
charts with visible titles, axis labels and a target legend, the generated time in the
report's time zone, agents by name and their time, in English and in Chinese."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from hotline.reports.aggregate import OpenedTicket
from hotline.reports.charts import Series, bar_chart
from hotline.reports.messages import CATALOG, translate
from hotline.reports.period import ReportError, parse_request
from hotline.reports.presence import AgentTime
from hotline.reports.render import render
from tests.test_reports import D1, NOW, hand_made

pytestmark = pytest.mark.unit


def page(lang: str) -> str:
    builder = hand_made()
    builder.names = {"1001": "李雷"}
    builder.now = datetime(2026, 3, 20, 1, 2, 3, 456789, tzinfo=UTC)
    builder.add_ticket(OpenedTicket(D1, "complaint", NOW, NOW, satisfaction=4))
    builder.add_presence({(D1, "1001"): AgentTime(3600.0, {"lunch": 600.0})}, {D1: {"1001"}})
    return render(builder.build(time_zone="Asia/Shanghai"), "html", lang=lang).decode()


def text_of(svg: str) -> list[str]:
    return re.findall(r'<text[^>]*class="(?:title|axis-label)"[^>]*>([^<]*)</text>', svg)


def test_the_page_puts_the_headline_figures_side_by_side_and_tables_before_charts() -> None:
    english = page("en")
    assert '<html lang="en">' in english
    assert "generated 2026-03-20 09:02:03 +0800." in english  # Shanghai time, to the second
    assert "456789" not in english
    headline = re.search(r'<div class="headline">(.*?)</div></div>', english)
    assert headline is not None
    figures = re.findall(r"<b>([^<]*)</b><span>([^<]*)</span>", headline.group(0))
    assert figures[:3] == [
        ("40.0 %", "Service level"),
        ("40.0 %", "Within 3 rings"),
        ("20.0 %", "Abandon rate"),
    ]
    assert english.index("<table") < english.index("<svg")
    assert "李雷 (1001)" in english
    assert "Agent time" in english
    assert "1:00:00" in english  # logged in
    assert "0:10:00" in english  # paused for lunch
    assert text_of(english)[:3] == ["Service level per queue and period", "Service level", "Period"]
    assert 'style="width:100%;height:auto"' in english
    assert "target 80.0 %" in english  # the target line's legend entry


def test_the_page_in_chinese() -> None:
    chinese = page("zh")
    assert '<html lang="zh">' in chinese
    assert "热线报表 2026-03-02 至 2026-03-03" in chinese
    assert "生成于 2026-03-20 09:02:03 +0800" in chinese
    for word in ("服务水平", "3 声内接听率", "放弃率", "投诉按时回复率", "坐席时间", "目标 80.0 %"):
        assert word in chinese, word
    assert "各队列各时段服务水平" in text_of(chinese)
    assert "Per queue" not in chinese


def test_the_catalog_translates_by_the_english_text() -> None:
    assert translate("zh", "Within {rings} rings", rings=3) == "3 声内接听率"
    assert translate("en", "Within {rings} rings", rings=3) == "Within 3 rings"
    assert translate("zh", "no such text") == "no such text"
    for english, chinese in CATALOG["zh"].items():
        fields = set(re.findall(r"{(\w+)}", english))
        assert fields == set(re.findall(r"{(\w+)}", chinese)), english
    with pytest.raises(ReportError) as bad:
        parse_request("day", "2026-03-02", "2026-03-02", "html", lang="fr")
    assert set(bad.value.fields) == {"lang"}


def test_a_chart_shows_its_title_axis_labels_and_target_in_the_legend() -> None:
    svg = bar_chart(
        "Calls",
        ["a", "b"],
        [Series("s", [1.0, 2.0], "#000")],
        target=("goal", 1.5),
        x_label="day",
        y_label="calls",
    )
    assert text_of(svg) == ["Calls", "calls", "day"]
    assert svg.count('class="target"') == 2  # the line and its legend key
    assert ">goal 1.5</text>" in svg
