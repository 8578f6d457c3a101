"""Five-field cron to AWS's six-field form, and the share of the week a schedule runs."""

from __future__ import annotations

from datetime import datetime

import pytest

from modelfleet.cron import CronError, parse_cron, running_fraction, starts_per_month


@pytest.mark.parametrize(
    ("cron", "aws"),
    [
        # AWS: cron(Minutes Hours Day-of-month Month Day-of-week Year); one day field is "?".
        ("0 20 * * MON-FRI", "cron(0 20 ? * MON,TUE,WED,THU,FRI *)"),
        ("0 22 * * *", "cron(0 22 * * ? *)"),
        ("30 19 * * 1-5", "cron(30 19 ? * MON,TUE,WED,THU,FRI *)"),
        # Standard cron counts Sunday as 0 or 7, AWS as 1: rendered by name, never confused.
        ("0 8 * * 0", "cron(0 8 ? * SUN *)"),
        ("0 8 * * 7", "cron(0 8 ? * SUN *)"),
        ("0 8 * * 5-7", "cron(0 8 ? * SUN,FRI,SAT *)"),
        ("0 8 * * SAT,SUN", "cron(0 8 ? * SUN,SAT *)"),
        ("0 0 1 * *", "cron(0 0 1 * ? *)"),
        ("0 0 1,15 JAN-MAR ?", "cron(0 0 1,15 1,2,3 ? *)"),
        ("*/15 9-11 * * *", "cron(0,15,30,45 9,10,11 * * ? *)"),
        ("5/20 * * * *", "cron(5,25,45 * * * ? *)"),
    ],
)
def test_to_aws(cron: str, aws: str) -> None:
    assert parse_cron(cron).to_aws() == aws


def test_day_of_week_one_to_seven_is_every_day() -> None:
    assert parse_cron("0 8 * * 1-7").weekdays == frozenset(range(7))


@pytest.mark.parametrize(
    ("cron", "fragment"),
    [
        ("0 20 * *", "needs five fields"),
        ("0 20 * * * 2026", "needs five fields"),
        ("60 20 * * *", "minute: 60 is outside 0-59"),
        ("0 24 * * *", "hour: 24 is outside 0-23"),
        ("0 0 32 * *", "day-of-month: 32 is outside 1-31"),
        ("0 0 0 * *", "day-of-month: 0 is outside 1-31"),
        ("0 0 * 13 *", "month: 13 is outside 1-12"),
        ("0 0 * * 8", "day-of-week: 8 is outside 0-7"),
        ("0 20 1 * MON", "restricts both day-of-month and day-of-week"),
        ("0 20 * * FRI-MON", "runs backwards"),
        ("0 20 * * MOM", "'MOM' is not a number or a name"),
        ("*/0 * * * *", "bad step"),
        ("0 L * * *", "'L' is not a number"),
    ],
)
def test_rejected(cron: str, fragment: str) -> None:
    with pytest.raises(CronError) as info:
        parse_cron(cron)
    assert fragment in str(info.value)


def test_matches_uses_sunday_zero() -> None:
    sunday_8 = datetime(2026, 1, 11, 8, 0)  # 2026-01-11 is a Sunday
    assert parse_cron("0 8 * * SUN").matches(sunday_8)
    assert parse_cron("0 8 * * 7").matches(sunday_8)
    assert not parse_cron("0 8 * * MON-FRI").matches(sunday_8)


@pytest.mark.parametrize(
    ("down", "up", "hours_on", "hours_in_period"),
    [
        # Up 07:00, down 20:00, Monday to Friday: 13 h x 5 days = 65 of 168 hours a week.
        ("0 20 * * MON-FRI", "0 7 * * MON-FRI", 65, 168),
        # Daily 06:00-22:00: 16 of 24 hours.
        ("0 22 * * *", "0 6 * * *", 16, 24),
        # Crossing midnight: up 18:00, down 02:00 the next day: 6 h + 2 h = 8 of 24.
        ("0 2 * * *", "0 18 * * *", 8, 24),
        # Weekends off: down Friday 18:00, up Monday 08:00: off 6 + 48 + 8 = 62 h; 106 on.
        ("0 18 * * FRI", "0 8 * * MON", 106, 168),
        # Half hours: up 08:00, down 19:30 Monday-Friday: 11.5 x 5 = 57.5 of 168.
        ("30 19 * * MON-FRI", "0 8 * * MON-FRI", 57.5, 168),
    ],
)
def test_running_fraction(down: str, up: str, hours_on: float, hours_in_period: int) -> None:
    assert running_fraction(down, up) == pytest.approx(hours_on / hours_in_period)


def test_running_fraction_of_a_seasonal_schedule() -> None:
    # Up at 07:00 only from June to August, down at 20:00 every day: 13 h on 92 days of the
    # 365-day year = 1,196 of 8,760 hours (a sample of a few January weeks would say 0).
    assert running_fraction("0 20 * * *", "0 7 * JUN-AUG *") == pytest.approx(92 * 13 / 8760)


def test_running_fraction_by_day_of_month() -> None:
    # Up on the 10th at 07:00, down daily at 20:00: 13 h x 12 months of 8,760 hours.
    assert running_fraction("0 20 * * *", "0 7 10 * *") == pytest.approx(12 * 13 / 8760)


def test_scale_down_wins_at_the_same_minute() -> None:
    assert running_fraction("0 20 * * *", "0 20 * * *") == 0.0
    # Down every quarter hour, up 5 minutes later: 10 of every 15 minutes.
    assert running_fraction("*/15 * * * *", "5/15 * * * *") == pytest.approx(10 / 15)


@pytest.mark.parametrize(
    ("down", "up", "starts"),
    [
        # Monday to Friday: 5 starts a week; a 730-hour month is 730/168 = 4.345 weeks.
        ("0 20 * * MON-FRI", "0 7 * * MON-FRI", 5 * 730 / 168),
        # Three scale-ups a morning start the fleet once: the later two find it running.
        ("0 20 * * *", "0 7,8,9 * * *", 7 * 730 / 168),
        # Once a month (the 10th), over the year: 12 starts in 8,760 h -> 1 per 730 h.
        ("0 20 * * *", "0 7 10 * *", 1.0),
        # Up and down at the same minute: down wins, nothing ever starts.
        ("0 20 * * *", "0 20 * * *", 0.0),
    ],
)
def test_starts_per_month(down: str, up: str, starts: float) -> None:
    assert starts_per_month(down, up) == pytest.approx(starts)
