"""The fixed inputs the reference tools were run on to make ``tests/fixtures/reference/`` (see its README).

Everything comes from ``numpy.random.RandomState`` (whose stream numpy keeps stable) and closed-form
signals, so the reference runs and the tests see the same numbers without storing the audio.
"""

from __future__ import annotations

import numpy as np

#: Rates the spectral fixtures were made at.
SPECTRAL_RATES = (24_000, 16_000)


def spectral_pairs(sample_rate: int, items: int = 3, seconds: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(items, 1, T) float32 references and estimates: harmonic tones with noise, and a distorted copy."""
    rng = np.random.RandomState(sample_rate // 1000 + items)
    T = int(sample_rate * seconds)
    t = np.arange(T) / sample_rate
    refs, ests = [], []
    for i in range(items):
        f0 = 110.0 * (i + 1) + 20 * rng.rand()
        tone = sum(np.sin(2 * np.pi * k * f0 * t + rng.rand()) / k for k in range(1, 8))
        ref = 0.2 * tone * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.randn(T)
        est = 0.9 * np.roll(ref, i + 1) + 0.03 * rng.randn(T) + 0.05 * np.tanh(4 * ref)
        refs.append(ref)
        ests.append(est)
    return np.stack(refs)[:, None].astype(np.float32), np.stack(ests)[:, None].astype(np.float32)


def class_logits(n: int, classes: int = 527, seed: int = 0) -> np.ndarray:
    """(n, classes) float32 logits with a few confident classes per row, like a tagger's."""
    rng = np.random.RandomState(seed)
    logits = rng.randn(n, classes) * 2.0 - 4.0
    for row in range(n):
        logits[row, rng.randint(0, classes, 3)] += 6.0 * rng.rand(3)
    return logits.astype(np.float32)
