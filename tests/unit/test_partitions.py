"""modelfleet.partitions against botocore's own partition function, on the same data."""

from __future__ import annotations

import pytest
from botocore.endpoint_provider import RuleSetStandardLibrary

from modelfleet.partitions import partition_of, partitions_data

LIBRARY = RuleSetStandardLibrary(partitions_data())
LISTED = sorted(r for p in partitions_data()["partitions"] for r in p["regions"])


@pytest.mark.parametrize(
    "region",
    [*LISTED, "us-east-9", "cn-west-7", "us-gov-south-2", "eu-isoe-north-3", "xx-mars-1"],
)
def test_partition_is_botocores(region: str) -> None:
    expected = LIBRARY.aws_partition(region)
    assert partition_of(region) == (expected["name"], expected["dnsSuffix"])


def test_partitions_that_change_names() -> None:
    assert partition_of("cn-north-1") == ("aws-cn", "amazonaws.com.cn")
    assert partition_of("us-gov-west-1") == ("aws-us-gov", "amazonaws.com")
    assert partition_of("eu-central-2") == ("aws", "amazonaws.com")
