"""aar's metrics against the outputs of the reference tools themselves (tests/fixtures/reference/README.md).

Each fixture holds what a named tool printed on the inputs of ``tests/reference_inputs.py`` (spectral
distances) or on random-weight networks in the published layouts (ISc, KL, FAD); these tests assert
that aar's functions give the same numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from reference_inputs import SPECTRAL_RATES, spectral_pairs

from aar.metrics import mel_distance, stft_distance

FIXTURES = Path(__file__).parent / "fixtures" / "reference"


def _load(name: str):
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize("sample_rate", SPECTRAL_RATES)
@pytest.mark.parametrize("name, metric", [
    ("official", lambda r, e, sr: mel_distance(r, e, sr, definition="official")),
    ("dac", lambda r, e, sr: mel_distance(r, e, sr, definition="dac")),
    ("auraloss", lambda r, e, sr: stft_distance(r, e, sr, definition="auraloss")),
])
def test_spectral_distances_equal_the_reference_tools(name, metric, sample_rate):
    """official: losses.py l_f of the official repository; dac: MelSpectrogramLoss as conf/final/24khz.yml
    sets it; auraloss: MultiResolutionSTFTLoss() (estimate as input, reference as target)."""
    expected = torch.tensor(_load("spectral.json")[str(sample_rate)][name], dtype=torch.float64)
    ref, est = spectral_pairs(sample_rate)
    got = metric(ref, est, sample_rate).double()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=0)
