"""AWS limits the service models do not encode, and the short names that keep within them."""

from __future__ import annotations

import pytest

from modelfleet.limits import (
    ALB_IDLE_TIMEOUT,
    ECS_HEALTHCHECK,
    NAME_32,
    PULUMI_AUTONAME_SUFFIX,
    alarm_period_ok,
)
from modelfleet.naming import load_balancer_name, short_name, target_group_name


def test_limit_check_names_the_range_and_the_source() -> None:
    assert ECS_HEALTHCHECK["startPeriod"].check("startPeriod", 300) is None
    msg = ECS_HEALTHCHECK["startPeriod"].check("startPeriod", 301)
    assert msg is not None
    assert msg.startswith("startPeriod = 301 is outside AWS's range 0-300 (https://docs.aws")
    assert ALB_IDLE_TIMEOUT.check("idle", 4001) is not None
    assert ALB_IDLE_TIMEOUT.check("idle", 4000) is None


@pytest.mark.parametrize(
    ("period", "evaluations", "ok"),
    [
        (60, 5, True),
        (10, 3, True),  # high resolution: 10, 20 or 30 s
        (45, 1, False),  # neither high resolution nor a multiple of 60
        (300, 288, True),  # 300 x 288 = 86,400 s: exactly one day
        (300, 289, False),  # one period over a day
        (3600, 48, True),  # an hour or more: the one-day cap does not apply
    ],
)
def test_alarm_period(period: int, evaluations: int, ok: bool) -> None:
    assert (alarm_period_ok(period, evaluations) is None) is ok


def test_short_names_stay_unique_and_within_32_characters() -> None:
    assert short_name("llama-8b") == "llama-8b"
    a = short_name("search-rerank-model-a")
    b = short_name("search-rerank-model-b")
    # at most 12 characters: the first 7 of the name (less a trailing "-"), "-", and 4 hex
    # digits of the whole name's sha256, so names sharing a start stay apart
    assert a != b
    assert a.startswith("search-") and len(a) == 11
    assert len(short_name("abcdefghij-x")) == 12  # 12 characters: kept as it is
    assert len(short_name("abcdefghijk-x")) == 12  # 13: "abcdefg" + "-" + 4 hex digits
    longest = short_name("a" * 24)  # the longest model name the schema accepts
    assert len(target_group_name(longest)) + PULUMI_AUTONAME_SUFFIX <= NAME_32.maximum
    assert len(load_balancer_name("x" * 20)) + PULUMI_AUTONAME_SUFFIX <= NAME_32.maximum
