"""How long a pre-warm fetch may take before it counts as hung, on every platform.

ECS's pre-warm provider and EKS's pre-warm Job both wait this long for the weights to land.
"""

from __future__ import annotations

import math

# Download from the hub or S3 through NAT at ~100 MiB/s sustained; the timeout allows three
# times that plus ten minutes before calling a fetch hung.
DOWNLOAD_MIBPS = 100.0


def prewarm_timeout_s(weights_gib: float) -> int:
    return math.ceil(3 * weights_gib * 1024 / DOWNLOAD_MIBPS) + 600
