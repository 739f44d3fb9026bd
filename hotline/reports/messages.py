# ruff: noqa: RUF001  (the Chinese texts use full-width punctuation, as they should)
"""A small message catalog: the report page's words in English and Chinese.

Keys are the English texts, so a page reads in English when a text has no
translation, and a translation is found by the text it replaces. The panels can
reuse :func:`translate` and :data:`CATALOG` for their own words.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CATALOG", "LANGUAGES", "translate"]

LANGUAGES: Final = ("en", "zh")
"""The languages of the catalog; ``en`` is the keys themselves."""

CATALOG: Final[dict[str, dict[str, str]]] = {
    "zh": {
        "Hotline report {first} to {last}": "热线报表 {first} 至 {last}",
        "By {period}, dates inclusive, time zone {zone}; generated {at}.": (
            "按{period}统计，含起止日期，时区 {zone}；生成于 {at}。"
        ),
        "Site {site}: its calls and rings; tickets and agents' time for the whole centre.": (
            "站点 {site}：该站点的通话与振铃；工单与坐席时间为全中心。"
        ),
        "The whole centre: every site.": "全中心：所有站点。",
        "day": "日",
        "week": "周",
        "month": "月",
        "15min": "15 分钟",
        "30min": "30 分钟",
        "hour": "小时",
        "Service level": "服务水平",
        "Within {rings} rings": "{rings} 声内接听率",
        "Abandon rate": "放弃率",
        "Offered": "呼入",
        "Answered": "接听",
        "Abandoned": "放弃",
        "Calls": "通话",
        "Tickets": "工单",
        "Per queue": "按队列",
        "Per agent": "按坐席",
        "Agent time": "坐席时间",
        "Repairs by responsible party": "维修及时率（按责任方）",
        "Period": "时段",
        "Queue": "队列",
        "Agent": "坐席",
        "Party": "责任方",
        "Total": "合计",
        "All": "全部",
        "Short": "短时放弃",
        "While waiting": "排队中放弃",
        "While ringing": "振铃中放弃",
        "Overflowed": "溢出",
        "In progress": "进行中",
        "ASA": "平均应答时间",
        "AHT": "平均处理时长",
        "Longest wait": "最长等待",
        "Agents logged in": "在线坐席",
        "Missed": "未接",
        "No answer": "振铃未应答",
        "Busy": "忙",
        "Logged in": "登录时长",
        "Paused": "暂停时长",
        "Available": "空闲时长",
        "Talk": "通话时长",
        "Wrap-up": "话后处理",
        "Occupancy": "占用率",
        "Complaints": "投诉",
        "On time": "按时",
        "Late": "超时",
        "Pending": "待定",
        "Replied on time": "投诉按时回复率",
        "Repairs": "维修",
        "Completed": "完成",
        "Timeliness": "维修及时率",
        "Rated": "已评价",
        "Average": "满意度均值",
        "Callbacks": "回访",
        "Done": "完成",
        "Failed": "失败",
        "target": "目标",
        "Service level per queue and period": "各队列各时段服务水平",
        "Calls per period by outcome": "各时段呼叫结果",
        "Rings answered within {rings} rings, per agent": "各坐席 {rings} 声内接听率",
        "Satisfaction scores": "满意度分布",
        "Survey responses": "满意度调查回复",
        "Survey score": "满意度调查均分",
        "Quality reviews": "质检次数",
        "Quality score": "质检均分",
        "share of calls": "占比",
        "calls": "呼叫数",
        "tickets": "工单数",
        "score": "评分",
        "within {rings} rings": "{rings} 声内",
        "answered": "接听",
        "abandoned": "放弃",
        "overflowed": "溢出",
        "in progress": "进行中",
        "No calls in this period.": "本时段没有呼叫。",
        "No tickets opened or repairs completed in this period.": "本时段没有新工单或完成的维修。",
        "Service level: answered within {threshold} s, short abandons (within {short} s) "
        "left out, target {target}. Within {rings} rings: rang at most {rings} \u00d7 "
        "{cadence} s.": (
            "服务水平：{threshold} 秒内接听，{short} 秒内的短时放弃不计，目标 {target}。"
            "{rings} 声内：振铃不超过 {rings} \u00d7 {cadence} 秒。"
        ),
    }
}
"""Per language, the English text -> its translation."""


def translate(lang: str, text: str, **values: object) -> str:
    """``text`` in ``lang`` (English when there is no translation), with ``values`` filled in."""
    found = CATALOG.get(lang, {}).get(text, text)
    return found.format(**values) if values else found
