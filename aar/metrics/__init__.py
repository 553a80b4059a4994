"""Evaluation metrics: reconstruction distances, Fréchet distance, Inception Score and KL divergence.

``from aar.metrics import mel_distance, frechet_distance`` and so on; see docs/evaluation.md for the
definitions and the numerical choices.
"""

from .distribution import frechet_distance, inception_score, kl_divergence
from .reconstruction import mel_distance, si_sdr, stft_distance

__all__ = [
    "frechet_distance",
    "inception_score",
    "kl_divergence",
    "mel_distance",
    "si_sdr",
    "stft_distance",
]
