"""aar's metrics against the outputs of the reference tools themselves (tests/fixtures/reference/README.md).

Each fixture holds what a named tool printed on the inputs of ``tests/reference_inputs.py`` (spectral
distances) or on random-weight networks in the published layouts (ISc, KL, FAD); these tests assert
that aar's functions give the same numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from reference_inputs import SPECTRAL_RATES, class_logits, spectral_pairs

from aar.metrics import inception_score, inception_score_splits, kl_divergence, mel_distance, stft_distance

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


@pytest.mark.parametrize("n", ["12", "37"])
def test_isc_and_kl_equal_audioldm_eval(n):
    """audioldm_eval's calculate_isc (softmax, 10 splits after a shuffle with seed 2020) and calculate_kl
    (softmax and sigmoid forms, eps 1e-6) on the same logits."""
    expected = _load("isc_kl.json")[n]
    gen = torch.from_numpy(class_logits(int(n), seed=1)).double()
    ref = torch.from_numpy(class_logits(int(n), seed=2)).double()
    parts = inception_score_splits(gen.softmax(-1))
    assert inception_score(gen.softmax(-1)) == pytest.approx(expected["inception_score_mean"], rel=1e-6)
    assert float(np.std(parts)) == pytest.approx(expected["inception_score_std"], rel=1e-5, abs=1e-12)
    assert kl_divergence(ref.softmax(-1), gen.softmax(-1)) == pytest.approx(
        expected["kullback_leibler_divergence_softmax"], rel=1e-5)
    assert kl_divergence(ref.sigmoid(), gen.sigmoid()) == pytest.approx(
        expected["kullback_leibler_divergence_sigmoid"], rel=1e-5)
