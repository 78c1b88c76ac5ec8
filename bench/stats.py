"""The one percentile rule every figure of the bench uses (nearest rank, no interpolation)."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(ordered: Sequence[float], share: float) -> float:
    """The value at ``share`` (0..1) of ``ordered`` (sorted ascending); NaN when it is empty."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]
