"""Fixtures live in sidecar_harness, so test modules can import its helpers by name."""

from sidecar_harness import make_sidecar, sidecar, upstream

__all__ = ["make_sidecar", "sidecar", "upstream"]
