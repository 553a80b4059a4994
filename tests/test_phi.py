"""The phi table of SAT: which shared phi convolution refines each scale (official rule)."""

from __future__ import annotations

import numpy as np
import pytest

from aar.config import SATConfig


def official_table(num_phi: int, num_scales: int) -> list[int]:
    """The official rule, written out: nearest tick to i / (S - 1), ticks special-cased for K == 4."""
    edge = 1 / (3 * num_phi) if num_phi == 4 else 1 / (2 * num_phi)
    ticks = np.linspace(edge, 1 - edge, num_phi)
    at = np.arange(num_scales) / max(num_scales - 1, 1)
    return [int(np.argmin(np.abs(ticks - a))) for a in at]


def _config(num_phi: int, num_scales: int) -> SATConfig:
    frames = SATConfig().frames_per_window
    return SATConfig(num_phi=num_phi, scales=tuple(range(frames - num_scales + 1, frames + 1)))


@pytest.mark.parametrize("num_phi", range(1, 9))
def test_phi_table_follows_the_official_rule(num_phi):
    for num_scales in range(1, 33):
        got = _config(num_phi, num_scales).phi_index
        assert list(got) == official_table(num_phi, num_scales), (num_phi, num_scales)


@pytest.mark.parametrize(
    ("num_phi", "num_scales", "table"),
    [
        (4, 5, (0, 1, 2, 2, 3)),  # the K == 4 ticks; (1/8, 3/8, 5/8, 7/8) would give (0, 1, 1, 2, 3)
        (4, 16, (0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)),  # ticks 1/12 + j * 5/18
        (6, 16, (0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 5, 5, 5)),  # the released SAT
        (1, 4, (0, 0, 0, 0)),
    ],
)
def test_phi_table_spot_values(num_phi, num_scales, table):
    assert _config(num_phi, num_scales).phi_index == table
