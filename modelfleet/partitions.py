"""A region's AWS partition and DNS suffix, the one source of both for a stack: its ARNs
(`FleetPlan.partition`), the ECR registry host of the engine image, the EC2 service principal,
and the partition a certificate or admin role ARN must carry, all known offline.

The data is botocore's `data/partitions.json`, the table every AWS SDK's endpoint rules resolve
partitions from (aws-cn: amazonaws.com.cn, aws-us-gov, the isolated partitions, and new ones
as botocore gains them). The match is botocore's `RuleSetStandardLibrary.aws_partition`
(endpoint_provider.py): the first partition that lists the region or whose regionRegex matches
it, else the first partition (aws). It is repeated here rather than imported because importing
botocore.endpoint_provider costs ~260 ms, measured here, and `modelfleet plan` must stay fast
(tests/cli/test_cli_e2e.py keeps botocore out of the CLI's imports);
tests/unit/test_partitions.py checks that both agree.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from pathlib import Path
from typing import Any


@functools.cache
def partitions_data() -> dict[str, Any]:
    """botocore's partitions.json, read without importing botocore."""
    spec = importlib.util.find_spec("botocore")
    assert spec is not None and spec.origin is not None  # boto3 is a dependency
    data: dict[str, Any] = json.loads(
        (Path(spec.origin).parent / "data" / "partitions.json").read_text()
    )
    return data


@functools.cache
def partition_of(region: str) -> tuple[str, str]:
    """(partition, DNS suffix) of `region`: ("aws-cn", "amazonaws.com.cn") for cn-north-1."""
    partitions = partitions_data()["partitions"]
    for p in partitions:
        if region in p["regions"] or re.match(p["regionRegex"], region):
            return p["outputs"]["name"], p["outputs"]["dnsSuffix"]
    first = partitions[0]["outputs"]
    return first["name"], first["dnsSuffix"]
