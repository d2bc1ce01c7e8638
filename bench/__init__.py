"""The benchmark: a developer tool run from a checkout (`python -m bench`), not part of the shipped package."""

from bench.runner import ARMS, SMOKE_SIZE, run

__all__ = ["ARMS", "SMOKE_SIZE", "run"]
