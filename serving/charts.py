"""Server-drawn SVG charts for the marketer page: every value written on the chart itself.

No JavaScript and no hover needed: labels sit beside (or, on a phone, above) each bar and
values right of it, so a chart reads the same printed, on a phone or through a screen reader
(each chart has a title and a description, and the page shows the same numbers in a table
next to it). Labels and values come written (:mod:`lifecycle.serving.i18n`); the charts only
write effect sizes, with :func:`lifecycle.features.formatting.number`.

No label is ever cut: SVG text does not wrap, so the label area is sized from the labels'
estimated widths (:func:`text_width`, generous on purpose: wide system fonts, Hangul at a full
em) and a label longer than the area is wrapped onto several lines (:func:`wrap`). Each chart
comes twice, a wide drawing and a narrow one that puts each label above its bar; the page's
stylesheet shows the narrow one on a phone, where the wide one would shrink below legibility.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from lifecycle.features.formatting import number

INK = "#1f2933"
MUTED = "#52606d"
BAR = "#2f6fb0"
UP = "#b3261e"
DOWN = "#1b7f4c"
GRID = "#d9e2ec"

WIDE = 760
"""Width of the wide drawing (SVG units; the page scales it to its column)."""
NARROW = 340
"""Width of the phone drawing: about a phone's column, so its text stays near its size."""
LABEL_SHARE = 0.42
"""The most of the wide drawing's width a bar chart's labels take before they wrap."""
DIVERGING_LABEL_SHARE = 0.5
"""The same for a diverging chart, whose bars each use only half of the rest."""
FONT = 14
LINE = 18
GAP = 8

# Advance widths in em, a little above DejaVu Sans (the widest common system font); an
# estimate that errs on the wide side leaves some space, one that errs narrow cuts text.
_NARROW_CHARS = frozenset(" .,:;'!|()[]ilIjt\u00b7")
_WIDE_CHARS = frozenset("mwMW@%")


def _char_em(char: str) -> float:
    if unicodedata.east_asian_width(char) in ("W", "F"):
        return 1.02
    if char in _NARROW_CHARS:
        return 0.36
    if char in _WIDE_CHARS:
        return 1.0
    if char.isupper() or char.isdigit():
        return 0.74
    if char.isascii():
        return 0.64
    return 0.8  # arrows, dashes, accented letters


def text_width(text: str, size: float = FONT) -> float:
    """Return a generous estimate of ``text``'s width in pixels at font ``size``.

    Examples
    --------
    >>> text_width("장바구니", 10) > text_width("cart", 10)
    True
    """
    return sum(_char_em(c) for c in text) * size


def wrap(text: str, width: float, size: float = FONT) -> list[str]:
    """Break ``text`` into lines no wider than ``width`` (a word too long alone is split).

    Examples
    --------
    >>> wrap("days since the latest purchase", 120, 14)
    ['days since the', 'latest purchase']
    """
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if text_width(candidate, size) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for char in word:  # a word wider than the line: split it where it must
            if line and text_width(line + char, size) > width:
                lines.append(line)
                line = ""
            line += char
    if line:
        lines.append(line)
    return lines or [""]


@dataclass(frozen=True)
class Row:
    """One bar of a chart: its label, value, written value and optional note and hover text."""

    label: str
    value: float
    shown: str
    note: str = ""
    exact: str = ""


def _svg(width: float, height: float, title: str, desc: str, body: str, kind: str) -> Markup:
    # Every text in ``body`` and here is escaped where it is written; the rest is our markup.
    return Markup(  # noqa: S704
        f'<svg class="chart {kind}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
        f'preserveAspectRatio="xMinYMin meet">'
        f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>{body}</svg>"
    )


def _lines(
    lines: Sequence[str], x: float, y: float, anchor: str, cls: str, size: int = FONT
) -> str:
    """One ``<text>`` of several lines (``tspan``s), first baseline at ``y``."""
    spans = "".join(
        f'<tspan x="{x:.1f}" dy="{0 if i == 0 else LINE}">{escape(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    return (
        f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{INK}" '
        f'font-size="{size}">{spans}</text>'
    )


def _value(row: Row, x: float, y: float, anchor: str = "start", note_below: bool = False) -> str:
    """Write the value (bold) and its note, on one line or the note on the next."""
    hover = f"<title>{escape(row.exact)}</title>" if row.exact else ""
    note = ""
    if row.note and note_below:
        note = (
            f'<tspan x="{x:.1f}" dy="{LINE}" fill="{MUTED}" font-weight="400">'
            f"{escape(row.note)}</tspan>"
        )
    elif row.note:
        note = f'<tspan fill="{MUTED}" font-weight="400"> {escape(row.note)}</tspan>'
    return (
        f'<text class="value" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{INK}" '
        f'font-size="{FONT}" font-weight="600">{hover}{escape(row.shown)}{note}</text>'
    )


def _desc(rows: Sequence[Row]) -> str:
    return "; ".join(f"{r.label}: {r.shown}" + (f" {r.note}" if r.note else "") for r in rows)


def _bars_wide(rows: Sequence[Row], title: str, width: float) -> Markup:
    top = max((r.value for r in rows), default=0.0) or 1.0
    longest = max((text_width(r.label) for r in rows), default=0.0)
    label_width = min(longest, width * LABEL_SHARE) + GAP
    full = max((text_width(f"{r.shown} {r.note}".strip(), FONT) for r in rows), default=0.0)
    alone = max((max(text_width(r.shown), text_width(r.note)) for r in rows), default=0.0)
    note_below = width - label_width - full - GAP < width * 0.25
    value_width = (alone if note_below else full) + GAP
    span = max(width - label_width - value_width - GAP, 1.0)
    parts, y = [], 4.0
    for r in rows:
        lines = wrap(r.label, label_width - GAP)
        height = max(len(lines), 2 if note_below and r.note else 1) * LINE + 12
        length = max(0.0, r.value) / top * span
        parts.append(_lines(lines, label_width - GAP, y + FONT, "end", "label"))
        parts.append(
            f'<rect x="{label_width:.1f}" y="{y + 2:.1f}" width="{length:.1f}" '
            f'height="{LINE - 2}" fill="{BAR}" rx="2"/>'
        )
        parts.append(_value(r, label_width + length + 6, y + FONT, note_below=note_below))
        y += height
    return _svg(width, y + 4, title, _desc(rows), "".join(parts), "wide")


def _bars_narrow(rows: Sequence[Row], title: str, width: float) -> Markup:
    top = max((r.value for r in rows), default=0.0) or 1.0
    full = max((text_width(f"{r.shown} {r.note}".strip()) for r in rows), default=0.0)
    note_below = full > width * 0.6
    value_width = (
        max((max(text_width(r.shown), text_width(r.note)) for r in rows), default=0.0)
        if note_below
        else full
    )
    span = max(width - value_width - GAP, width * 0.2)
    parts, y = [], 4.0
    for r in rows:
        lines = wrap(r.label, width)
        parts.append(_lines(lines, 0, y + FONT, "start", "label"))
        y += len(lines) * LINE + 2
        length = max(0.0, r.value) / top * span
        parts.append(
            f'<rect x="0" y="{y + 2:.1f}" width="{length:.1f}" height="{LINE - 2}" '
            f'fill="{BAR}" rx="2"/>'
        )
        x = length + 6
        if x + text_width(r.shown) > width:  # the longest bar keeps its value inside the box
            x = width - text_width(r.shown)
        parts.append(_value(r, x, y + FONT, note_below=note_below))
        y += (2 if note_below and r.note else 1) * LINE + 12
    return _svg(width, y + 4, title, _desc(rows), "".join(parts), "narrow")


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    value_labels: Sequence[str],
    *,
    title: str,
    notes: Sequence[str] | None = None,
    exact: Sequence[str] | None = None,
    width: float = WIDE,
) -> Markup:
    """Horizontal bars, one row each: label, bar, value (and an optional note after it).

    Parameters
    ----------
    labels, values, value_labels
        Each bar's label, length and written value.
    title
        The chart's title (and accessible name).
    notes
        A muted note after each value ("(42%)"), or None.
    exact
        Each value written exactly, shown on hover where the written value is rounded.
    width
        The wide drawing's width in SVG units.

    Returns
    -------
    Markup
        Two ``<svg class="chart ...">``: ``wide`` and ``narrow`` (the page's stylesheet shows
        one of them by the screen's width).
    """
    rows = [
        Row(str(lab), float(v), str(s), notes[i] if notes else "", exact[i] if exact else "")
        for i, (lab, v, s) in enumerate(zip(labels, values, value_labels, strict=True))
    ]
    return _bars_wide(rows, title, width) + _bars_narrow(rows, title, NARROW)


def _diverging_row(
    parts: list[str], r: Row, zero: float, half: float, top: float, y: float, colour: str
) -> None:
    length = abs(r.value) / top * half
    up = r.value > 0
    x = zero if up else zero - length
    parts.append(
        f'<rect x="{x:.1f}" y="{y + 2:.1f}" width="{length:.1f}" height="{LINE - 2}" '
        f'fill="{colour}" rx="2"/>'
    )
    text_x = zero + length + 6 if up else zero - length - 6
    parts.append(
        f'<text class="value" x="{text_x:.1f}" y="{y + FONT - 1:.1f}" '
        f'text-anchor="{"start" if up else "end"}" fill="{INK}" font-size="{FONT - 1}">'
        f"{escape(r.shown)}</text>"
    )


def diverging_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    up_word: str,
    down_word: str,
    up_is_good: bool = False,
    width: float = WIDE,
) -> Markup:
    """Bars right (raise) or left (lower) of a zero line, one per feature.

    Green marks the direction that is good for the business (lower churn risk, higher chance
    or value), red the other; the arrow and the number say the direction in any case. Returns
    a wide and a narrow drawing, as :func:`bar_chart` does.
    """
    rows = [
        Row(
            str(lab),
            float(v),
            f"{up_word if float(v) > 0 else down_word} {number(abs(float(v)), digits=2)}",
        )
        for lab, v in zip(labels, values, strict=True)
    ]
    top = max((abs(r.value) for r in rows), default=0.0) or 1.0
    value_width = max((text_width(r.shown, FONT - 1) for r in rows), default=0.0) + 6

    def colour(r: Row) -> str:
        return DOWN if (r.value > 0) == up_is_good else UP

    # wide: labels left, the zero line in the middle of what is left
    longest = max((text_width(r.label) for r in rows), default=0.0)
    label_width = min(longest, width * DIVERGING_LABEL_SHARE) + GAP
    plot = width - label_width - GAP
    zero = label_width + plot / 2
    half = max(plot / 2 - value_width - 2, 1.0)
    parts, y = [], 4.0
    for r in rows:
        lines = wrap(r.label, label_width - GAP)
        parts.append(_lines(lines, label_width - GAP, y + FONT, "end", "label"))
        _diverging_row(parts, r, zero, half, top, y, colour(r))
        y += len(lines) * LINE + 10
    axis = (
        f'<line x1="{zero:.1f}" y1="0" x2="{zero:.1f}" y2="{y:.1f}" '
        f'stroke="{GRID}" stroke-width="2"/>'
    )
    wide = _svg(width, y + 4, title, _desc(rows), axis + "".join(parts), "wide")

    # narrow: each label above its bar, the zero line in the middle of the phone's width
    zero, half = NARROW / 2, max(NARROW / 2 - value_width - 2, 1.0)
    parts, y = [], 4.0
    spans: list[tuple[float, float]] = []
    for r in rows:
        lines = wrap(r.label, NARROW)
        parts.append(_lines(lines, 0, y + FONT, "start", "label"))
        y += len(lines) * LINE + 2
        spans.append((y, y + LINE))
        _diverging_row(parts, r, zero, half, top, y, colour(r))
        y += LINE + 12
    axes = "".join(
        f'<line x1="{zero:.1f}" y1="{a - 2:.1f}" x2="{zero:.1f}" y2="{b + 2:.1f}" '
        f'stroke="{GRID}" stroke-width="2"/>'
        for a, b in spans
    )
    narrow = _svg(NARROW, y + 4, title, _desc(rows), axes + "".join(parts), "narrow")
    return wide + narrow
