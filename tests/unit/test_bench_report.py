"""make bench's ratio over repeated campaigns: each campaign against the floors beside it, the median reported."""

from __future__ import annotations

from typing import Any

import pytest

from bench.campaign_run import CampaignRun
from bench.floor import FloorRun
from bench.report import SizeResult, _campaign_runs, _floor_names, _floor_rate, _ratio


def _floor(rate: float) -> FloorRun:
    counts: Any = None
    return FloorRun(1000, 1000 / rate, 4, 1, counts, (0.0, 0.0))


def _campaign(rate: float) -> CampaignRun:
    nothing: Any = None
    return CampaignRun(1000, 1, nothing, nothing, 1000 / rate, {}, {})


def test_each_campaign_is_compared_with_the_floors_before_and_after_it_and_the_median_is_reported() -> None:
    # floor 200, campaign 120, floor 160, campaign 150, floor 140, campaign 100, floor 100
    result = SizeResult(
        1000,
        [_floor(200), _floor(160), _floor(140), _floor(100)],
        [_campaign(120), _campaign(150), _campaign(100)],
    )
    assert result.ratios == pytest.approx([120 / 180, 150 / 150, 100 / 120])
    assert result.ratio == pytest.approx(100 / 120)
    assert result.median_index == 2
    # The figures of one run are the median campaign's, beside its own floors.
    assert result.campaign is result.campaigns[2]
    assert [f.rate for f in result.beside] == pytest.approx([140, 100])
    assert result.floor_rate == pytest.approx(120)
    assert _floor_rate(result) == "120 (140, 100)"
    assert _ratio(result) == "0.83 ✓ (median of 0.67, 1.00, 0.83)"


def test_an_even_count_reports_the_lower_middle_ratio_and_a_single_campaign_is_reported_as_before() -> None:
    two = SizeResult(1000, [_floor(100), _floor(100), _floor(100)], [_campaign(90), _campaign(60)])
    assert two.ratio == pytest.approx(0.6)
    assert two.campaign is two.campaigns[1]
    assert _ratio(two) == "0.60 ✗ (median of 0.90, 0.60)"

    one = SizeResult(1000, [_floor(200), _floor(100)], [_campaign(105)])
    assert one.ratio == pytest.approx(0.7)
    assert _ratio(one) == "0.70 ✓"
    assert _floor_rate(one) == "150 (200, 100)"


def test_without_floors_or_without_campaigns_there_is_no_ratio() -> None:
    campaigns_only = SizeResult(1000, [], [_campaign(100), _campaign(110)])
    assert campaigns_only.ratio is None and _ratio(campaigns_only) == "-"
    assert campaigns_only.campaign is campaigns_only.campaigns[0]
    floor_only = SizeResult(1000, [_floor(150)], [])
    assert floor_only.ratio is None and floor_only.campaign is None
    assert _floor_rate(floor_only) == "150"


def test_the_report_names_each_floor_by_the_campaigns_beside_it_and_lists_every_campaign() -> None:
    assert _floor_names(1) == ["before the campaign", "after the campaign"]
    assert _floor_names(3) == ["before campaign 1", "after campaign 1", "after campaign 2", "after campaign 3"]
    result = SizeResult(1000, [_floor(100), _floor(100), _floor(100)], [_campaign(80), _campaign(70)])
    rows = _campaign_runs(result)
    assert "| 1 | 12.5 | 80 | 100, 100 | 0.80 |" in rows
    assert "| 2 (median: the sections below) | 14.3 | 70 | 100, 100 | 0.70 |" in rows
