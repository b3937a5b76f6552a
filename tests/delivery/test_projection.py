"""A package's projected run-out day from its recent pace."""

from __future__ import annotations

from datetime import UTC, datetime

from delivery.metering.projection import project

NOON = datetime(2026, 11, 30, 4, tzinfo=UTC).timestamp()  # 12:00 in China, 2026-11-30
PACKAGE = {"id": "pool1", "remaining": 100, "valid_from": NOON - 30 * 86400, "valid_to": NOON + 60 * 86400}


def test_pace_over_the_window_and_run_out_day() -> None:
    usage = [
        {"day": "2026-11-30", "package": "sf/pool1", "units": 14},
        {"day": "2026-11-20", "package": "sf/pool1", "units": 14},
        {"day": "2026-11-01", "package": "sf/pool1", "units": 500},  # before the 14-day window
        {"day": "2026-11-30", "package": "sf/other", "units": 999},  # another package
    ]
    out = project(PACKAGE, usage, NOON)
    assert out == {"dailyUnits": 2.0, "runOut": "2027-01-19", "expires": "2027-01-29"}


def test_a_new_package_is_paced_since_it_started_and_idle_ones_never_run_out() -> None:
    fresh = {**PACKAGE, "valid_from": NOON - 86400}  # started yesterday: two days of pace
    assert (
        project(fresh, [{"day": "2026-11-30", "package": "sf/pool1", "units": 10}], NOON)["dailyUnits"] == 5.0
    )
    assert project(PACKAGE, [], NOON)["runOut"] is None
    assert project({**PACKAGE, "remaining": 0}, [], NOON)["runOut"] == "2026-11-30"


def test_a_package_ending_at_a_china_midnight_expires_the_day_before() -> None:
    """valid_to is exclusive: ending at 2027-04-01 00:00 (+08) its last day is 2027-03-31."""
    end = datetime(2027, 3, 31, 16, tzinfo=UTC).timestamp()  # 2027-04-01 00:00 in China
    assert project({**PACKAGE, "valid_to": end}, [], NOON)["expires"] == "2027-03-31"
