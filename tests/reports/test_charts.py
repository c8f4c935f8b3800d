"""The report's charts: only measured runs on a parameter axis, a readable axis when every value is
the same, a hover value on every point and bar, numbers rounded to their intervals."""

from __future__ import annotations

import re

import pytest

from llama_zoo.formatting import p_value, with_interval
from llama_zoo.reports.charts import by_option, metric_vs_params, nice_ticks, value_range


def row(model, params, value, source="hub", family="llama-2", options=None, ci=None):
    metric = {"value": value, "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None}
    return {"run": {"model_id": model, "weights_source": source, "options": options or {}}, "params": params,
            "family": family, "measured": source not in ("shadow", "random"), "metrics": {"pass@1": metric}}


def tips(svg: str) -> list[str]:
    return re.findall(r'data-tip="([^"]*)"', svg)


def test_shadow_runs_are_never_plotted_at_the_real_models_size():
    svg = metric_vs_params([row("llama-2-7b", 6.74e9, 0.3, ci=(0.2, 0.4)), row("llama-2-13b", 13e9, 0.4),
                            row("llama-2-70b", 69e9, 0.0, source="shadow")], "pass@1")
    assert [t.split(" · ")[0] for t in tips(svg)] == ["llama-2-7b", "llama-2-13b"]
    assert "pass@1 0.3 [0.2, 0.4]" in tips(svg)[0] and "6.74B params" in tips(svg)[0]
    assert metric_vs_params([row("llama-2-70b", 69e9, 0.1, source="shadow")], "pass@1") is None


def test_all_zero_values_get_an_axis_that_shows_them():
    low, high = value_range([0.0, 0.0, 0.0])
    assert (low, high) == (0.0, 1.0)
    svg = metric_vs_params([row("a", 1e9, 0.0), row("b", 7e9, 0.0)], "pass@1")
    assert ">-0.04<" not in svg and len(tips(svg)) == 2
    assert value_range([5.0, 5.0]) == (4.5, 5.5)
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_bars_by_option_tell_the_series_apart():
    rows = [row("code-llama-7b", 6.7e9, v, options={"subset": s, "fim_mode": m})
            for s, m, v in (("single-line", "psm", 0.5), ("single-line", "spm", 0.55), ("multi-line", "psm", 0.2))]
    rows.append(row("code-llama-7b", 6.7e9, 0.0, source="shadow", options={"subset": "single-line", "fim_mode": "psm"}))
    svg = by_option(rows, "pass@1", "subset", "fim_mode")
    assert len(tips(svg)) == 3 and "(measured runs only)" in svg  # the shadow run is not among the measurements
    apart = by_option(rows, "pass@1", "subset", "fim_mode", measured=False)
    assert [t.split(" · ")[0] for t in tips(apart)] == ["code-llama-7b (shadow)"]  # drawn apart, marked
    assert "(shadow and random runs: not measurements)" in apart
    assert by_option(rows[-1:], "pass@1", "subset", "fim_mode") is None  # shadow runs only: no measured chart


@pytest.mark.parametrize("value,low,high,expected", [
    (14.96, 14.9, 15.02, ("14.96", "[14.90, 15.02]")),  # not 14.96 [15, 15]
    (0.3333, 0.26, 0.41, ("0.33", "[0.26, 0.41]")),
    (5.47, None, None, ("5.47", "")),
    (4.5e34, 9.4e28, 2.1e37, ("4.5e+34", "[9.4e+28, 2.1e+37]")),
])
def test_numbers_are_rounded_to_their_intervals(value, low, high, expected):
    assert with_interval(value, low, high) == expected


def test_p_values_are_never_zero_and_need_enough_pairs():
    assert p_value(0.0, 100) == "< 0.001" and p_value(0.0412, 100) == "0.0412"
    assert p_value(0.0, 3) == "n/a (n < 10)"
