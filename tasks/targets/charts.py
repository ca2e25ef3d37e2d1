"""The target report's chart: one PNG per view, drawn headless with matplotlib.

No pyplot: a bare ``Figure`` on the Agg canvas (``FigureCanvasAgg``), so nothing depends on a
display, a backend setting or pyplot's global figure registry; no figure outlives its call.
The font is set with ``rc_context``, which is process-wide: the reports of a run are composed
by its one task, one chart after another.

Text is drawn in Noto Sans SC, shipped by the ``pylopdf-fonts-zh-cn`` wheel (a runtime
dependency): Chinese names and labels render as Chinese on any machine that installed the
project, with no system font. It holds Latin letters and digits too; DejaVu Sans
(matplotlib's own) is the fallback for anything it lacks.

One horizontal grouped bar chart per view - its members (a region's stations, or the company's
regions) on the vertical axis, for each the completion (monthly) or pace (weekly) of the
email's headline figures, with lines at 100 % and at the policy's behind / star thresholds.
Bounded: at most ``MAX_MEMBERS`` members are drawn (the note says how many more the XLSX has);
bars are clipped at ``CLIP_PCT`` with their true value written beside them.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pylopdf_fonts_zh_cn
from matplotlib import font_manager, rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.patches import Patch

FONT_PATH = Path(pylopdf_fonts_zh_cn.sans_path())
FALLBACK_FAMILY = "DejaVu Sans"
MAX_MEMBERS = 40
CLIP_PCT = 200.0
DPI = 100
# Series: (the member entry's cell, its colour).
SERIES = (
    ("revenue", "#1f6fb2"),
    ("volume", "#4aa3df"),
    ("new_customers", "#f0a030"),
    ("first_recharge", "#6bb36b"),
)
TEXT = {
    "zh-CN": {
        "revenue": "营业额",
        "volume": "加油量",
        "new_customers": "新客户",
        "first_recharge": "新卡首充",
        "monthly": "{scope} {period} 目标完成率",
        "weekly": "{scope} {period} 进度（按工作日折算的目标）",
        "axis": "完成率（%）",
        "axis_weekly": "进度（%）",
        "no_target": "无目标",
        "more": "另有 {count} 个未画出，见附件 XLSX",
    },
    "en": {
        "revenue": "revenue",
        "volume": "volume",
        "new_customers": "new customers",
        "first_recharge": "first recharges",
        "monthly": "{scope} {period}: target completion",
        "weekly": "{scope} {period}: pace against the pro-rated target",
        "axis": "completion (%)",
        "axis_weekly": "pace (%)",
        "no_target": "no target",
        "more": "{count} more not drawn: see the XLSX attachment",
    },
}


@dataclass(frozen=True)
class ChartSpec:
    """What one chart shows (values in percent; None: no target)."""

    title: str
    axis: str
    members: Sequence[str]
    series: Sequence[tuple[str, str, Sequence[float | None]]]  # (label, colour, per member)
    thresholds: tuple[float, float]  # behind below, star above (percent)
    no_target: str
    note: str | None = None


@lru_cache(maxsize=1)
def font_family() -> str:
    """Register the shipped CJK font with matplotlib (once per process); its family name."""
    font_manager.fontManager.addfont(str(FONT_PATH))
    return str(font_manager.FontProperties(fname=str(FONT_PATH)).get_name())


@lru_cache(maxsize=4)
def _charmap(path: str) -> frozenset[int]:
    return frozenset(FT2Font(path).get_charmap())


def missing_glyphs(text: str, path: Path = FONT_PATH) -> set[str]:
    """The characters of ``text`` the font at ``path`` has no glyph for (spaces aside)."""
    mapped = _charmap(str(path))
    return {ch for ch in text if not ch.isspace() and ord(ch) not in mapped}


def chart_spec(
    entries: Sequence[Mapping[str, Any]],
    *,
    locale: str,
    kind: str,
    scope_name: str,
    period: str,
    thresholds: tuple[float, float],
) -> ChartSpec | None:
    """The chart of a view's member entries (``rules.reports.members``, the view's own row
    first, which the chart leaves out); None when the view has no member to draw."""
    text = TEXT.get(locale, TEXT["en"])
    drawn = list(entries[1 : MAX_MEMBERS + 1])
    if not drawn:
        return None
    more = len(entries) - 1 - len(drawn)
    return ChartSpec(
        title=text[kind if kind in ("monthly", "weekly") else "monthly"].format(
            scope=scope_name, period=period
        ),
        axis=text["axis_weekly" if kind == "weekly" else "axis"],
        members=[str(e["name"]) for e in drawn],
        series=[
            (text[column], colour, [e["cells"][column]["pace_pct"] for e in drawn])
            for column, colour in SERIES
        ],
        thresholds=thresholds,
        no_target=text["no_target"],
        note=text["more"].format(count=more) if more > 0 else None,
    )


def render_chart(spec: ChartSpec, family: str | None = None) -> bytes:
    """The PNG of ``spec``; ``family`` overrides the font (tests draw a tofu reference)."""
    count, groups = len(spec.members), len(spec.series)
    # Inches: a fixed frame (title, axis, legend) and a row per bar; margins fixed rather than
    # computed by tight_layout, which would lay every text out once more.
    frame, per_bar = 1.5, 0.1
    height = max(2.8, frame + per_bar * groups * count)
    families = [family or font_family(), FALLBACK_FAMILY]
    with rc_context({"font.family": families, "axes.unicode_minus": False}):
        figure = Figure(figsize=(8.0, height), dpi=DPI)
        FigureCanvasAgg(figure)
        figure.subplots_adjust(left=0.2, right=0.97, top=1 - 0.45 / height, bottom=0.75 / height)
        axes = figure.add_subplot()
        bar = 0.8 / groups
        handles = []
        for g, (label, colour, values) in enumerate(spec.series):
            offsets = [i + (g - (groups - 1) / 2) * bar for i in range(count)]
            half = bar * 0.46
            # One collection per series (a draw call each), not a patch per bar: matplotlib's
            # cost is per artist.
            boxes = [
                [
                    (0, y - half),
                    (min(v, CLIP_PCT), y - half),
                    (min(v, CLIP_PCT), y + half),
                    (0, y + half),
                ]
                for y, v in zip(offsets, values, strict=True)
                if v is not None
            ]
            axes.add_collection(PolyCollection(boxes, facecolors=colour, linewidths=0))
            handles.append(Patch(facecolor=colour, label=label))
            # Only what the bar cannot show is written: a missing target, a clipped value.
            for y, value in zip(offsets, values, strict=True):
                if value is None or value > CLIP_PCT:
                    shown = spec.no_target if value is None else f"{value:.0f}%"
                    x = 1.0 if value is None else CLIP_PCT + 1.0
                    axes.text(x, y, shown, va="center", fontsize=6, color="#555555")
        # Member names as plain text left of the axes: a tick per member would cost five
        # artists each.
        names = axes.get_yaxis_transform()
        for i, name in enumerate(spec.members):
            axes.text(-0.01, i, name, transform=names, ha="right", va="center", fontsize=8)
        axes.set_yticks([])
        low, high = spec.thresholds
        axes.axvline(100, color="#333333", linewidth=0.9)
        axes.axvline(low, color="#c0392b", linewidth=0.8, linestyle="--")
        axes.axvline(high, color="#2e8b57", linewidth=0.8, linestyle="--")
        axes.set_ylim(count - 0.5, -0.5)  # the first member at the top, as in the table
        axes.set_xlim(0, CLIP_PCT + 25)
        axes.set_xticks(range(0, int(CLIP_PCT) + 1, 20))
        axes.set_xlabel(spec.axis, fontsize=8)
        axes.set_title(spec.title, fontsize=10)
        axes.tick_params(axis="x", labelsize=7)
        axes.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.5 / (height - 1.2)),
            fontsize=7,
            frameon=False,
            ncols=groups,
        )
        if spec.note:
            figure.text(0.01, 0.01, spec.note, fontsize=7, color="#555555")
        buffer = io.BytesIO()
        # No Software/date metadata: the same spec gives the same bytes.
        figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
