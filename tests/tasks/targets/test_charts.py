"""The report chart: Chinese labels render as Chinese, from the font the project installs.

The checks are on the PNG itself: the shipped Noto Sans SC has a glyph for every character of
the labels (DejaVu Sans, matplotlib's own, has none of them); drawn with it, matplotlib reports
no missing glyph, while the DejaVu rendering does (its text is tofu boxes); and the two PNGs
differ where the labels are. Plus the bounds (at most MAX_MEMBERS members, a note for the
rest) and a stable, valid PNG."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import pytest
from matplotlib import font_manager
from PIL import Image, ImageChops

from tasks.targets.charts import (
    FONT_PATH,
    MAX_MEMBERS,
    ChartSpec,
    chart_spec,
    font_family,
    missing_glyphs,
    render_chart,
)

LABELS = "东区片区 一号加油站 营业额 加油量 新客户 新卡首充 目标完成率 无目标"


def _entry(name: str, pct: float | None) -> dict[str, Any]:
    cells = ("revenue", "volume", "new_customers", "first_recharge")
    return {"name": name, "cells": {c: {"pace_pct": pct} for c in cells}}


def _spec(count: int = 3) -> ChartSpec:
    entries = [_entry("东区片区", 90.0)] + [
        _entry(f"东区{n}号加油站", None if n == 2 else 40.0 * n) for n in range(1, count + 1)
    ]
    spec = chart_spec(
        entries,
        locale="zh-CN",
        kind="monthly",
        scope_name="东区片区",
        period="2026-11",
        thresholds=(80.0, 120.0),
    )
    assert spec is not None
    return spec


def _render(family: str | None) -> tuple[bytes, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png = render_chart(_spec(), family=family)
    return png, [str(w.message) for w in caught]


def test_the_installed_font_has_every_glyph_of_the_labels() -> None:
    assert FONT_PATH.is_file()  # installed by the project's own dependencies (a wheel)
    assert missing_glyphs(LABELS) == set()
    dejavu = font_manager.findfont("DejaVu Sans", fallback_to_default=False)
    assert missing_glyphs("东区", path=Path(dejavu)) == {"东", "区"}
    assert font_family() == "Noto Sans SC"


def test_chinese_renders_with_glyphs_not_tofu() -> None:
    chinese, chinese_warnings = _render(None)
    tofu, tofu_warnings = _render("DejaVu Sans")
    assert not [w for w in chinese_warnings if "missing from font" in w]
    assert any("missing from font" in w for w in tofu_warnings)  # what tofu looks like
    first, second = Image.open(io.BytesIO(chinese)), Image.open(io.BytesIO(tofu))
    assert first.format == "PNG" and first.size == second.size
    difference = ImageChops.difference(first.convert("RGB"), second.convert("RGB")).getbbox()
    assert difference is not None  # the labels are drawn differently
    # The bars (same data, same layout) are the same: only the text differs, so the
    # differing box starts left of the plot, where the member names are.
    assert difference[0] < first.size[0] * 0.2


def test_the_same_spec_gives_the_same_png() -> None:
    assert render_chart(_spec()) == render_chart(_spec())


def test_a_chart_is_bounded_and_says_how_many_are_left_out() -> None:
    spec = _spec(MAX_MEMBERS + 5)
    assert len(spec.members) == MAX_MEMBERS
    assert spec.note is not None and str(5) in spec.note
    assert all(len(values) == MAX_MEMBERS for _, _, values in spec.series)
    assert _spec(2).note is None
    assert spec.series[0][2][1] is None  # no target: no bar, the label says so
    png = render_chart(spec)
    height = Image.open(io.BytesIO(png)).size[1]
    assert height < 2500  # bounded: 40 members x 4 bars


def test_a_view_without_members_has_no_chart() -> None:
    assert (
        chart_spec(
            [_entry("东区片区", 1.0)],
            locale="en",
            kind="weekly",
            scope_name="x",
            period="2026-W49",
            thresholds=(80.0, 120.0),
        )
        is None
    )


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_titles_follow_the_kind_and_locale(locale: str) -> None:
    spec = chart_spec(
        [_entry("公司", 1.0), _entry("东区片区", 50.0)],
        locale=locale,
        kind="weekly",
        scope_name="公司",
        period="2026-W49",
        thresholds=(80.0, 120.0),
    )
    assert spec is not None and "2026-W49" in spec.title
    assert ("进度" in spec.title) == (locale == "zh-CN")
