"""Server-drawn SVG charts for the marketer page: every value written on the chart itself.

No JavaScript and no hover: labels sit left of each bar and values right of it, so a chart
reads the same printed, on a phone or through a screen reader (each chart has a title and a
description, and the page shows the same numbers in a table next to it). Labels and values
come written (:mod:`lifecycle.serving.i18n`); the charts only write effect sizes, with
:func:`lifecycle.features.formatting.number`.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from lifecycle.features.formatting import number

INK = "#1f2933"
MUTED = "#52606d"
BAR = "#2f6fb0"
UP = "#b3261e"
DOWN = "#1b7f4c"
GRID = "#d9e2ec"


def _svg(width: int, height: int, title: str, desc: str, body: str) -> Markup:
    # Every text in ``body`` and here is escaped where it is written; the rest is our markup.
    return Markup(  # noqa: S704
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
        f'preserveAspectRatio="xMinYMin meet">'
        f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>{body}</svg>"
    )


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    value_labels: Sequence[str],
    *,
    title: str,
    notes: Sequence[str] | None = None,
    width: int = 720,
    label_width: int = 230,
    row: int = 34,
) -> Markup:
    """Horizontal bars, one row each: label, bar, value (and an optional note under the value)."""
    top = max((float(v) for v in values), default=0.0) or 1.0
    value_width = 330 if notes else 170
    span = width - label_width - value_width - 10
    parts = []
    for i, (label, value, shown) in enumerate(zip(labels, values, value_labels, strict=True)):
        y = i * row + 6
        length = max(0.0, float(value)) / top * span
        note = notes[i] if notes else ""
        parts.append(
            f'<text x="{label_width - 8}" y="{y + 17}" text-anchor="end" fill="{INK}" '
            f'font-size="14">{escape(label)}</text>'
            f'<rect x="{label_width}" y="{y + 4}" width="{length:.1f}" height="{row - 14}" '
            f'fill="{BAR}" rx="2"/>'
            f'<text x="{label_width + length + 6:.1f}" y="{y + 17}" fill="{INK}" '
            f'font-size="14" font-weight="600">{escape(shown)}'
            + (f'<tspan fill="{MUTED}" font-weight="400"> {escape(note)}</tspan>' if note else "")
            + "</text>"
        )
    height = len(labels) * row + 12
    desc = "; ".join(f"{lab}: {val}" for lab, val in zip(labels, value_labels, strict=True))
    return _svg(width, height, title, desc, "".join(parts))


def diverging_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    up_word: str,
    down_word: str,
    up_is_good: bool = False,
    width: int = 780,
    label_width: int = 330,
    row: int = 30,
) -> Markup:
    """Bars right (raise) or left (lower) of a zero line, one per feature.

    Green marks the direction that is good for the business (lower churn risk, higher chance
    or value), red the other; the arrow and the number say the direction in any case.
    """
    top = max((abs(float(v)) for v in values), default=0.0) or 1.0
    plot = width - label_width - 20
    zero = label_width + plot / 2
    half = plot / 2 - 70
    parts = [
        f'<line x1="{zero:.1f}" y1="0" x2="{zero:.1f}" y2="{len(labels) * row + 8}" '
        f'stroke="{GRID}" stroke-width="2"/>'
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = i * row + 4
        length = abs(float(value)) / top * half
        up = float(value) > 0
        x = zero if up else zero - length
        word = up_word if up else down_word
        text_x = zero + length + 6 if up else zero - length - 6
        anchor = "start" if up else "end"
        parts.append(
            f'<text x="{label_width - 8}" y="{y + 16}" text-anchor="end" fill="{INK}" '
            f'font-size="13">{escape(label)}</text>'
            f'<rect x="{x:.1f}" y="{y + 3}" width="{length:.1f}" height="{row - 10}" '
            f'fill="{DOWN if up == up_is_good else UP}" rx="2"/>'
            f'<text x="{text_x:.1f}" y="{y + 16}" text-anchor="{anchor}" fill="{INK}" '
            f'font-size="12">{escape(word)} {number(abs(float(value)), digits=2)}</text>'
        )
    height = len(labels) * row + 12
    desc = "; ".join(
        f"{lab}: {up_word if float(v) > 0 else down_word} {number(abs(float(v)), digits=2)}"
        for lab, v in zip(labels, values, strict=True)
    )
    return _svg(width, height, title, desc, "".join(parts))
