"""Bar charts as inline SVG, drawn on the server: no script, no external resource.

:func:`bar_chart` draws one group of bars per category (a period, a score),
one bar per series side by side, or the series stacked. Every text is escaped;
the chart shows its title above the plot (and has a ``<title>`` and an
``aria-label`` for screen readers), optional axis labels, a legend with every
series and the target line, and scales to the width of the page; each bar has a
``<title>`` with its value (a tooltip).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

__all__ = ["PALETTE", "Series", "bar_chart"]

PALETTE: Final = (
    "#2f6db5",
    "#e08a1e",
    "#3a9b55",
    "#c0392b",
    "#7d5ba6",
    "#8c6d3f",
    "#d35f9b",
    "#6b7b8c",
)
"""Series colours, in order."""

_HEIGHT: Final = 200
_TOP: Final = 34
_LEFT: Final = 64
_BOTTOM: Final = 52
_LEGEND_ROW: Final = 18
_MAX_LABELS: Final = 24
_LEGEND_WIDTH: Final = 150
_MIN_PLOT: Final = 900
"""The narrowest plot (px): the chart is scaled to the page's width anyway."""
_LEGEND_CHARS: Final = 22
_CHAR_WIDTH: Final = 6.5
"""About the width of one character of an 11 px label."""


@dataclass(frozen=True, slots=True)
class Series:
    """One named row of values (``None``: nothing to draw), with its colour."""

    name: str
    values: Sequence[float | None]
    colour: str


def _nice_top(value: float) -> float:
    """An axis maximum at or above ``value`` whose four tick steps are round numbers (whole
    numbers below forty)."""
    if value <= 0:
        return 4.0
    magnitude = 10.0 ** math.floor(math.log10(value / 4))
    steps = (1.0, 2.0, 2.5, 5.0, 10.0) if magnitude >= 10 else (1.0, 2.0, 5.0, 10.0)
    return next(4 * step * magnitude for step in steps if 4 * step * magnitude >= value)


def _short(name: str) -> str:
    """A legend entry that fits its slot."""
    return name if len(name) <= _LEGEND_CHARS else name[: _LEGEND_CHARS - 1] + "\u2026"


def _attr(text: str) -> str:
    return escape(text, quote=True)


def _axis_labels(x_label: str, y_label: str, plot_width: int) -> list[str]:
    """The axes' names, where given (the y one turned upright)."""
    parts = []
    if y_label:
        parts.append(
            f'<text x="14" y="{_TOP + _HEIGHT / 2:.0f}" class="axis-label" text-anchor="middle" '
            f'transform="rotate(-90 14 {_TOP + _HEIGHT / 2:.0f})">{escape(y_label)}</text>'
        )
    if x_label:
        parts.append(
            f'<text x="{_LEFT + plot_width / 2:.0f}" y="{_TOP + _HEIGHT + 32}" '
            f'class="axis-label" text-anchor="middle">{escape(x_label)}</text>'
        )
    return parts


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where everything of one chart goes (px), and its value axis."""

    axis_top: float
    per_group: int
    bar_width: int
    group_width: int
    plot_width: int
    inset: int
    per_row: int
    width: int
    height: int

    @property
    def base(self) -> int:
        """The y of the value 0."""
        return _TOP + _HEIGHT

    def y(self, value: float) -> float:
        """The y of ``value``, clipped to the axis."""
        return self.base - _HEIGHT * min(max(value, 0.0), self.axis_top) / self.axis_top

    def legend_slot(self, number: int) -> tuple[int, int]:
        """The x and y of the ``number``th legend entry."""
        x = _LEFT + (number % self.per_row) * _LEGEND_WIDTH
        return x, self.base + _BOTTOM + (number // self.per_row) * _LEGEND_ROW


def _layout(
    categories: int, series: Sequence[Series], stacked: bool, top: float | None, keys: int
) -> _Layout:
    if stacked:
        heights = [sum(s.values[i] or 0.0 for s in series) for i in range(categories)]
    else:
        heights = [v or 0.0 for s in series for v in s.values]
    axis_top = top if top is not None else _nice_top(max(heights, default=0.0))
    per_group = 1 if stacked else max(len(series), 1)
    bar_width = 14 if per_group * categories <= 60 else 6
    group_width = per_group * bar_width + 8
    if categories and group_width * categories < _MIN_PLOT:
        group_width = min(_MIN_PLOT // categories, 4 * group_width)
    plot_width = max(group_width * categories, _MIN_PLOT)
    per_row = plot_width // _LEGEND_WIDTH
    legend_height = _LEGEND_ROW * math.ceil(keys / per_row)
    return _Layout(
        axis_top=axis_top,
        per_group=per_group,
        bar_width=bar_width,
        group_width=group_width,
        plot_width=plot_width,
        inset=(group_width - 8 - per_group * bar_width) // 2,
        per_row=per_row,
        width=_LEFT + plot_width + 16,
        height=_TOP + _HEIGHT + _BOTTOM + legend_height,
    )


def _grid(layout: _Layout, label: Callable[[float], str]) -> list[str]:
    """The five horizontal grid lines with their values."""
    parts = []
    for tick in range(5):
        level = layout.axis_top * tick / 4
        y = layout.y(level)
        parts.append(
            f'<line x1="{_LEFT}" x2="{_LEFT + layout.plot_width}" y1="{y:.1f}" '
            f'y2="{y:.1f}" class="grid"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
            f"{escape(label(level))}</text>"
        )
    return parts


def _group(
    layout: _Layout,
    index: int,
    category: str,
    series: Sequence[Series],
    stacked: bool,
    label: Callable[[float], str],
) -> list[str]:
    """The bars of one category."""
    parts = []
    bars = _LEFT + index * layout.group_width + 4 + layout.inset
    bar_width = layout.bar_width
    stack = 0.0
    for number, one in enumerate(series):
        value = one.values[index]
        if value is None:
            continue
        if stacked:
            x, low, high = bars, stack, stack + value
            stack = high
        else:
            x, low, high = bars + number * bar_width, 0.0, value
        parts.append(
            f'<rect x="{x}" y="{layout.y(high):.1f}" width="{bar_width - 1}" '
            f'height="{layout.y(low) - layout.y(high):.1f}" fill="{_attr(one.colour)}">'
            f"<title>{escape(f'{one.name}, {category}: {label(value)}')}</title></rect>"
        )
    return parts


def _bars(
    layout: _Layout,
    categories: Sequence[str],
    series: Sequence[Series],
    stacked: bool,
    label: Callable[[float], str],
) -> list[str]:
    """Every category's bars, and the category names that fit under them."""
    parts = []
    group_width = layout.group_width
    widest = max((len(category) for category in categories), default=0) * _CHAR_WIDTH + 6
    every = max(1, math.ceil(widest / group_width), math.ceil(len(categories) / _MAX_LABELS))
    for index, category in enumerate(categories):
        parts += _group(layout, index, category, series, stacked, label)
        if index % every == 0:
            x0 = _LEFT + index * group_width + 4
            parts.append(
                f'<text x="{x0 + (group_width - 8) / 2:.1f}" y="{layout.base + 14}" '
                f'class="tick" text-anchor="middle">{escape(category)}</text>'
            )
    return parts


def _legend(
    layout: _Layout,
    series: Sequence[Series],
    target: tuple[str, float] | None,
    label: Callable[[float], str],
) -> list[str]:
    """The target line, and the legend: every series, then the target."""
    parts = []
    if target is not None:
        name, value = target
        y = layout.y(value)
        parts.append(
            f'<line x1="{_LEFT}" x2="{_LEFT + layout.plot_width}" y1="{y:.1f}" '
            f'y2="{y:.1f}" class="target"><title>{escape(name)}</title></line>'
        )
    for number, one in enumerate(series):
        x, row_y = layout.legend_slot(number)
        parts.append(
            f'<rect x="{x}" y="{row_y - 10}" width="10" height="10" fill="{_attr(one.colour)}"/>'
            f'<text x="{x + 14}" y="{row_y}" class="legend">{escape(_short(one.name))}</text>'
        )
    if target is not None:
        x, row_y = layout.legend_slot(len(series))
        parts.append(
            f'<line x1="{x}" x2="{x + 10}" y1="{row_y - 5}" y2="{row_y - 5}" class="target"/>'
            f'<text x="{x + 14}" y="{row_y}" class="legend">'
            f"{escape(_short(f'{target[0]} {label(target[1])}'))}</text>"
        )
    return parts


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    stacked: bool = False,
    top: float | None = None,
    label: Callable[[float], str] = lambda v: f"{v:g}",
    target: tuple[str, float] | None = None,
    x_label: str = "",
    y_label: str = "",
) -> str:
    """An SVG bar chart; ``top`` fixes the axis maximum (else a round one above the data);
    ``label`` formats values; ``target`` draws a named horizontal line (in the legend too);
    ``x_label`` and ``y_label`` name the axes."""
    keys = len(series) + (target is not None)
    layout = _layout(len(categories), series, stacked, top, keys)
    width, height = layout.width, layout.height
    parts = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'style="width:100%;height:auto" role="img" aria-label="{_attr(title)}">'
        f"<title>{escape(title)}</title>"
        f'<text x="{_LEFT}" y="18" class="title">{escape(title)}</text>'
    ]
    parts += _axis_labels(x_label, y_label, layout.plot_width)
    parts += _grid(layout, label)
    parts += _bars(layout, categories, series, stacked, label)
    parts += _legend(layout, series, target, label)
    parts.append(f'<line x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{layout.base}" class="axis"/>')
    parts.append("</svg>")
    return "".join(parts)
